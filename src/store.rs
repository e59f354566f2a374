//! The ledger file on disk (L6): one writer at a time under an exclusive file lock; an
//! append is acknowledged only after its frame is on disk (fdatasync); a failed write is
//! rolled back to the previous end; a torn tail refuses appends until `repair`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::chain::{Head, event_hash};
use crate::event::{Action, Event};
use crate::format::{self, FormatError, FrameReader, MAX_BODY, RawFrame, ReadError};
use crate::signing::{SigningKey, verify_hash, write_exclusive};
use crate::state::{ApplyError, Refusal, State};
use crate::types::{Bytes, Hash32, LedgerId, PublicKey, Timestamp};
use crate::verify::{Checker, Prepared};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{path} already exists; keyledger never overwrites a ledger")]
    Exists { path: PathBuf },
    #[error(
        "{path}: no ledger here; create one with `keyledger init --account NAME` or pass --ledger PATH"
    )]
    NotFound { path: PathBuf },
    #[error("{path}: {source}")]
    Format { path: PathBuf, source: FormatError },
    #[error(
        "{path}: the event at seq {seq} (byte offset {offset}) fails its checks: {message}. The ledger will not be appended to; run `keyledger verify` for the full report"
    )]
    Integrity {
        path: PathBuf,
        seq: u64,
        offset: u64,
        message: String,
    },
    #[error(
        "{path}: the last {bytes} bytes (from byte offset {offset}) are a torn frame from an interrupted write; run `keyledger repair` to quarantine them"
    )]
    Torn {
        path: PathBuf,
        offset: u64,
        bytes: u64,
    },
    #[error(
        "{path} is locked by another keyledger process; try again, or drop --no-wait to wait for it"
    )]
    Locked { path: PathBuf },
    #[error("the signing key {0}")]
    Signer(ApplyError),
    #[error("refused: {refusal}. Recorded as action-denied at seq {}", receipt.seq)]
    Denied { refusal: Refusal, receipt: Receipt },
    #[error("refused: {0}")]
    Invalid(Refusal),
    #[error("the event would be {0} bytes, more than the {MAX_BODY}-byte limit; shorten its text")]
    TooLarge(usize),
}

impl StoreError {
    fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
        move |source| StoreError::Io {
            path: path.into(),
            op,
            source,
        }
    }
}

/// What an acknowledged append returns: the event is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub seq: u64,
    pub hash: Hash32,
    pub offset: u64,
    pub time: Timestamp,
}

/// One action of a batch: appended, or refused and recorded as `action-denied`.
pub type Outcome = Result<Receipt, (Refusal, Receipt)>;

/// A torn tail found at the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    pub offset: u64,
    pub bytes: u64,
}

/// The state replayed from a ledger, with its head and any torn tail.
pub struct Replay {
    pub state: State,
    pub head: Head,
    pub torn: Option<TornTail>,
}

/// How long a reader waits for a writer's lock before reading without it.
const READ_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// The file length under a brief shared lock: no append is half-written within it.
/// Frames are only ever appended, so this prefix stays readable after the lock is released.
/// A reader never hangs behind a stalled writer: after `READ_LOCK_PATIENCE` it reads the
/// current length without the lock, and an append in flight then shows as a torn tail.
pub fn stable_len(file: &File) -> io::Result<u64> {
    let start = std::time::Instant::now();
    loop {
        match file.try_lock_shared() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if start.elapsed() < READ_LOCK_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(TryLockError::WouldBlock) => return file.metadata().map(|m| m.len()),
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    let len = file.metadata().map(|m| m.len());
    file.unlock()?;
    len
}

/// Replays a ledger without checking signatures (they are checked by `verify`), but with
/// every chain, sequence, time and policy check. Stops at the first problem.
pub fn replay_reader<R: Read + Send>(path: &Path, r: R, len: u64) -> Result<Replay, StoreError> {
    let frames = FrameReader::new(r).map_err(|e| read_error(path, e))?;
    replay_frames(path, frames, len, None, Checker::new(false), |_| {})
}

/// Where a point-in-time replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Include events with seq <= N.
    Seq(u64),
    /// Include events with time <= T.
    Time(Timestamp),
}

/// One event seen during a replay, with the state just after it.
pub struct Seen<'a> {
    pub frame: &'a RawFrame,
    pub event: &'a Event,
    pub hash: &'a Hash32,
    pub state: &'a State,
}

impl Seen<'_> {
    /// The principal whose key signed this event.
    pub fn actor(&self) -> &str {
        self.state
            .signers
            .get(&self.event.signer)
            .map_or("?", |s| s.principal.as_str())
    }
}

/// As `replay_reader`, continuing `checker`, stopping after `until`, calling `visit` with
/// each event.
pub fn replay_frames<R: Read + Send>(
    path: &Path,
    frames: FrameReader<R>,
    len: u64,
    until: Option<Until>,
    mut checker: Checker,
    mut visit: impl FnMut(&Seen<'_>),
) -> Result<Replay, StoreError> {
    let mut torn = None;
    // The last event's frame offset, signature, signer and hash.
    let mut last: Option<(u64, [u8; 64], PublicKey, Hash32)> = None;
    crate::verify::pipelined(frames, |items| {
        while let Some(item) = items.next() {
            let Prepared {
                frame,
                hash,
                decoded,
            } = match item {
                Ok(p) => p,
                Err((ReadError::Format(FormatError::Torn { offset, .. }), _)) => {
                    torn = Some(TornTail {
                        offset,
                        bytes: len.saturating_sub(offset),
                    });
                    continue;
                }
                Err((e, _)) => return Err(read_error(path, e)),
            };
            if let (Some(u), Ok(ev)) = (until, &decoded) {
                let past = match u {
                    Until::Seq(n) => ev.seq > n,
                    Until::Time(t) => ev.time > t,
                };
                if past && checker.head.is_some() {
                    break;
                }
            }
            let step = checker.judge(&frame, hash, decoded);
            if let Some(f) = step.findings.first() {
                return Err(StoreError::Integrity {
                    path: path.into(),
                    seq: f.seq.unwrap_or(checker.frames() - 1),
                    offset: f.offset,
                    message: f.message.clone(),
                });
            }
            if let Some(ev) = &step.event {
                visit(&Seen {
                    frame: &frame,
                    event: ev,
                    hash: &step.hash,
                    state: &checker.state,
                });
                last = Some((frame.offset, frame.sig, ev.signer, step.hash));
            }
            items.recycle(frame, step.event);
        }
        Ok(())
    })?;
    let head = checker.head.ok_or_else(|| StoreError::Integrity {
        path: path.into(),
        seq: 0,
        offset: format::HEADER_LEN,
        message: "the ledger has no genesis event".into(),
    })?;
    // Replay skips signatures; the head has no successor whose chain would expose a
    // tampered body, so its signature is checked here.
    if let Some((offset, sig, signer, hash)) = last
        && !verify_hash(&signer, &hash, &sig)
    {
        return Err(StoreError::Integrity {
            path: path.into(),
            seq: head.seq,
            offset,
            message: "the signature of the last event does not verify".into(),
        });
    }
    Ok(Replay {
        state: checker.state,
        head,
        torn,
    })
}

pub(crate) fn read_error(path: &Path, e: ReadError) -> StoreError {
    match e {
        ReadError::Io(source) => StoreError::Io {
            path: path.into(),
            op: "read",
            source,
        },
        ReadError::Format(source) => StoreError::Format {
            path: path.into(),
            source,
        },
    }
}

pub(crate) fn open_existing(path: &Path, write: bool) -> Result<File, StoreError> {
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound { path: path.into() },
            _ => StoreError::Io {
                path: path.into(),
                op: "open",
                source: e,
            },
        })?;
    let meta = f.metadata().map_err(StoreError::io(path, "stat"))?;
    if !meta.is_file() {
        return Err(StoreError::Io {
            path: path.into(),
            op: "open",
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    Ok(f)
}

/// Reads the state of a ledger for queries. A torn tail is reported in `Replay::torn`,
/// not as an error: every complete event before it is still valid.
pub fn read(path: &Path) -> Result<Replay, StoreError> {
    read_with(path, None, |_| {})
}

/// As `read`, up to `until`, calling `visit` with each event.
pub fn read_with(
    path: &Path,
    until: Option<Until>,
    visit: impl FnMut(&Seen<'_>),
) -> Result<Replay, StoreError> {
    let f = open_existing(path, false)?;
    let len = stable_len(&f).map_err(StoreError::io(path, "lock"))?;
    let frames = FrameReader::new(BufReader::with_capacity(1 << 20, f.take(len)))
        .map_err(|e| read_error(path, e))?;
    replay_frames(path, frames, len, until, Checker::new(false), visit)
}

/// Whether to wait for another writer's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Block,
    NoWait,
}

/// A ledger open for writing: holds the exclusive lock until dropped.
pub struct Ledger {
    path: PathBuf,
    file: File,
    replay: Replay,
    /// Set when a write failed: the in-memory state may be ahead of the file.
    poisoned: bool,
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl Ledger {
    /// Creates a new ledger whose genesis binds a fresh ledger id, the account and its key.
    pub fn init(
        path: &Path,
        account: &str,
        key: &SigningKey,
        time: Timestamp,
    ) -> Result<(Ledger, Receipt), StoreError> {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        Self::init_with_id(path, account, key, time, Bytes(id))
    }

    /// As `init`, with a chosen ledger id (fixtures and tests).
    pub fn init_with_id(
        path: &Path,
        account: &str,
        key: &SigningKey,
        time: Timestamp,
        ledger_id: LedgerId,
    ) -> Result<(Ledger, Receipt), StoreError> {
        let genesis = Event {
            seq: 0,
            time,
            prev: Bytes::ZERO,
            signer: key.public(),
            action: Action::Genesis {
                ledger_id,
                account: account.to_owned(),
                public_key: key.public(),
            },
        };
        let mut state = State::default();
        let body = genesis.encode();
        let hash = event_hash(&body);
        state.apply(&genesis, &hash).map_err(|e| match e {
            ApplyError::Policy(r) => StoreError::Invalid(r),
            e => StoreError::Signer(e),
        })?;
        let mut bytes = format::header_bytes().to_vec();
        bytes.extend(format::frame_bytes(&body, &key.sign_hash(&hash)));
        write_exclusive(path, &bytes, 0o644).map_err(|e| match e {
            crate::signing::KeyFileError::Exists { .. } => StoreError::Exists { path: path.into() },
            crate::signing::KeyFileError::Io { source, .. } => StoreError::Io {
                path: path.into(),
                op: "create",
                source,
            },
            other => StoreError::Io {
                path: path.into(),
                op: "create",
                source: io::Error::other(other.to_string()),
            },
        })?;
        sync_parent(path).map_err(StoreError::io(path, "sync directory"))?;
        let receipt = Receipt {
            seq: 0,
            hash,
            offset: format::HEADER_LEN,
            time,
        };
        let ledger = Self::open(path, Wait::Block)?;
        Ok((ledger, receipt))
    }

    /// Opens for appending: takes the exclusive lock, replays, refuses a torn tail.
    pub fn open(path: &Path, wait: Wait) -> Result<Ledger, StoreError> {
        let l = Self::open_allow_torn(path, wait)?;
        if let Some(t) = l.replay.torn {
            return Err(StoreError::Torn {
                path: path.into(),
                offset: t.offset,
                bytes: t.bytes,
            });
        }
        Ok(l)
    }

    fn open_allow_torn(path: &Path, wait: Wait) -> Result<Ledger, StoreError> {
        let file = open_existing(path, true)?;
        match wait {
            Wait::Block => file.lock().map_err(StoreError::io(path, "lock"))?,
            Wait::NoWait => file.try_lock().map_err(|e| match e {
                TryLockError::WouldBlock => StoreError::Locked { path: path.into() },
                TryLockError::Error(source) => StoreError::Io {
                    path: path.into(),
                    op: "lock",
                    source,
                },
            })?,
        }
        let len = file.metadata().map_err(StoreError::io(path, "stat"))?.len();
        let replay = replay_reader(path, BufReader::with_capacity(1 << 20, &file), len)?;
        Ok(Ledger {
            path: path.into(),
            file,
            replay,
            poisoned: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn state(&self) -> &State {
        &self.replay.state
    }

    pub fn head(&self) -> Head {
        self.replay.head
    }

    /// The principal `key` signs for.
    pub fn actor(&self, key: &SigningKey) -> Result<String, StoreError> {
        self.state()
            .actor_of(&key.public())
            .map(str::to_owned)
            .map_err(StoreError::Signer)
    }

    /// Appends `action` signed by `key`. A policy refusal appends an `action-denied`
    /// event instead (R12) and returns `StoreError::Denied`. A key that is not an enrolled
    /// signer cannot sign anything, so nothing is appended for it.
    pub fn append(
        &mut self,
        key: &SigningKey,
        action: Action,
        now: Timestamp,
    ) -> Result<Receipt, StoreError> {
        let mut out = self.append_batch(key, vec![action], now)?;
        match out.pop().expect("one outcome per action") {
            Ok(receipt) => Ok(receipt),
            Err((refusal, receipt)) => Err(StoreError::Denied { refusal, receipt }),
        }
    }

    /// Group commit: appends `actions` signed by `key` with one write and one fdatasync.
    /// Each action is validated against the state left by the ones before it; a refused
    /// one is recorded as `action-denied` (R12) and reported as `Err((refusal, receipt))`.
    /// Nothing is acknowledged before the fdatasync; if the write fails, the file is cut
    /// back to its previous end and this handle refuses further appends.
    pub fn append_batch(
        &mut self,
        key: &SigningKey,
        actions: Vec<Action>,
        now: Timestamp,
    ) -> Result<Vec<Outcome>, StoreError> {
        if self.poisoned {
            return Err(StoreError::Io {
                path: self.path.clone(),
                op: "append",
                source: io::Error::other("an earlier write failed; reopen the ledger"),
            });
        }
        let start = self.head();
        // Bodies and hashes are chained in order; signatures (over the hashes) come after.
        let mut bodies: Vec<(Vec<u8>, Hash32)> = Vec::with_capacity(actions.len());
        let mut end = start.end;
        let mut out = Vec::with_capacity(actions.len());
        // The state advances in place; if anything fails after that, the handle is poisoned.
        let state = &mut self.replay.state;
        let mut head = start;
        let prepared = (|| {
            for action in actions {
                let actor = state
                    .actor_of(&key.public())
                    .map_err(StoreError::Signer)?
                    .to_owned();
                let time = now.max(head.time);
                let (action, refusal) = match state.authorize(&actor, &action, time) {
                    Ok(()) => (action, None),
                    Err(r) => (denial(&action, &r), Some(r)),
                };
                let ev = Event {
                    seq: head.seq + 1,
                    time,
                    prev: head.hash,
                    signer: key.public(),
                    action,
                };
                let body = ev.encode();
                if body.len() > MAX_BODY as usize {
                    return Err(StoreError::TooLarge(body.len()));
                }
                let hash = event_hash(&body);
                let offset = end;
                end += format::FRAME_OVERHEAD + body.len() as u64;
                bodies.push((body, hash));
                state
                    .apply(&ev, &hash)
                    .expect("an authorized event applies");
                head = Head {
                    seq: ev.seq,
                    hash,
                    time,
                    end,
                };
                let receipt = Receipt {
                    seq: ev.seq,
                    hash,
                    offset,
                    time,
                };
                out.push(match refusal {
                    None => Ok(receipt),
                    Some(r) => Err((r, receipt)),
                });
            }
            Ok(())
        })();
        if let Err(e) = prepared {
            self.poisoned = !bodies.is_empty();
            return Err(e);
        }
        let sigs = sign_all(key, &bodies);
        let mut buf = Vec::with_capacity((end - start.end) as usize);
        for ((body, _), sig) in bodies.iter().zip(&sigs) {
            buf.extend(format::frame_bytes(body, sig));
        }
        let written = self
            .file
            .write_all_at(&buf, start.end)
            .and_then(|_| self.file.sync_data());
        if let Err(source) = written {
            // Nothing partial may stay behind an unacknowledged append.
            let cut_back = self
                .file
                .set_len(start.end)
                .and_then(|_| self.file.sync_data());
            self.poisoned = true;
            return Err(StoreError::Io {
                path: self.path.clone(),
                op: if cut_back.is_ok() {
                    "append (nothing was recorded; the ledger is as it was)"
                } else {
                    "append (cutting the partial write back failed too; run `keyledger repair`)"
                },
                source,
            });
        }
        self.replay.head = head;
        Ok(out)
    }
}

/// Signatures of the event hashes, in order; large batches are signed on every core.
fn sign_all(key: &SigningKey, bodies: &[(Vec<u8>, Hash32)]) -> Vec<[u8; 64]> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if bodies.len() < 64 || cores == 1 {
        return bodies.iter().map(|(_, h)| key.sign_hash(h)).collect();
    }
    let chunk = bodies.len().div_ceil(cores);
    std::thread::scope(|s| {
        let parts: Vec<_> = bodies
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(_, h)| key.sign_hash(h))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("signing does not panic"))
            .collect()
    })
}

/// The `action-denied` event recorded instead of a refused action.
fn denial(action: &Action, refusal: &Refusal) -> Action {
    Action::ActionDenied {
        attempted: describe(action),
        user: action.subject().map(str::to_owned),
        key_id: match action {
            Action::KeyCreated { .. } | Action::TemporaryIssued { .. } => None,
            _ => action.key_id().map(str::to_owned),
        },
        reason: refusal.to_string(),
    }
}

/// A short, secret-free description of an action for `action-denied` records.
pub fn describe(action: &Action) -> String {
    let mut s = action.tag().to_owned();
    if let Some(u) = action.subject() {
        s.push_str(&format!(" {u}"));
    }
    match action {
        Action::KeyCreated { .. } | Action::TemporaryIssued { .. } => {}
        _ => {
            if let Some(k) = action.key_id() {
                s.push_str(&format!(" {k}"));
            }
        }
    }
    if let Action::PermissionGranted { permission, .. }
    | Action::PermissionRevoked { permission, .. } = action
    {
        s.push_str(&format!(" {permission}"));
    }
    s
}

/// The outcome of `repair`.
#[derive(Debug, Clone)]
pub struct Repaired {
    pub torn: TornTail,
    pub quarantine: PathBuf,
    pub removed_blake3: Hash32,
    pub receipt: Receipt,
}

/// Moves a torn tail to a quarantine file beside the ledger, truncates, and records a
/// `log-repaired` event. Returns `None` if there is no torn tail. A complete frame that
/// fails its checks is tampering and makes `open` fail: it is never "repaired".
pub fn repair(
    path: &Path,
    key: &SigningKey,
    now: Timestamp,
    wait: Wait,
) -> Result<Option<Repaired>, StoreError> {
    let mut l = Ledger::open_allow_torn(path, wait)?;
    let Some(torn) = l.replay.torn else {
        return Ok(None);
    };
    let mut removed = vec![0u8; torn.bytes as usize];
    l.file
        .read_exact_at(&mut removed, torn.offset)
        .map_err(StoreError::io(path, "read torn tail"))?;
    let removed_blake3 = Bytes(*blake3::hash(&removed).as_bytes());
    let (quarantine, name) = quarantine_path(path, torn.offset);
    let action = Action::LogRepaired {
        offset: torn.offset,
        removed_bytes: torn.bytes,
        removed_blake3,
        quarantine: name,
    };
    // Check the repairer may repair before touching anything.
    let actor = l.actor(key)?;
    l.state()
        .authorize(&actor, &action, now)
        .map_err(StoreError::Invalid)?;
    write_exclusive(&quarantine, &removed, 0o600).map_err(|e| StoreError::Io {
        path: quarantine.clone(),
        op: "write quarantine",
        source: io::Error::other(e.to_string()),
    })?;
    sync_parent(&quarantine).map_err(StoreError::io(path, "sync directory"))?;
    l.file
        .set_len(torn.offset)
        .and_then(|_| l.file.sync_all())
        .map_err(StoreError::io(path, "truncate"))?;
    l.replay.torn = None;
    let receipt = l.append(key, action, now)?;
    Ok(Some(Repaired {
        torn,
        quarantine,
        removed_blake3,
        receipt,
    }))
}

/// `<ledger>.quarantine-<offset>[-n]`, a name that does not exist yet.
fn quarantine_path(path: &Path, offset: u64) -> (PathBuf, String) {
    let base = path
        .file_name()
        .map_or("ledger".into(), |n| n.to_string_lossy().into_owned());
    let mut n = 0;
    loop {
        let name = match n {
            0 => format!("{base}.quarantine-{offset}"),
            _ => format!("{base}.quarantine-{offset}-{n}"),
        };
        let p = path.with_file_name(&name);
        if !p.exists() {
            return (p, name);
        }
        n += 1;
    }
}
