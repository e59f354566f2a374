//! The ledger file on disk, read: every answer comes from events this process verified, or
//! from this user's own cache of verified state (L8, `cache`). Writing is `ledger`.
//!
//! Readers take no lock (a lock that anyone who can read the file could hold would let
//! them stall every writer); they read complete frames and, when the file ends inside a
//! frame, give an append in flight a moment to finish before calling the tail torn.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::core::chain::{Head, event_hash};
use crate::core::event::Event;
use crate::core::format::{
    self, FormatError, FrameReader, HEADER_LEN, LEN_PREFIX, MAX_BODY, RawFrame, ReadError, SIG_LEN,
};
use crate::core::judge::{Checker, Finding};
use crate::core::merkle::TreeBuilder;
use crate::core::state::{ApplyError, Refusal, State};
use crate::core::types::{Hash32, Timestamp};
use crate::storage::cache::note_key_event;
pub use crate::storage::cache::{Cache, Verified};
use crate::storage::pass::{self, Spec};
pub use crate::storage::pass::{Seen, TornTail, Trust, Until, Witness};

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
        "{path}: the event at seq {seq} (byte offset {offset}) fails its checks: {message}. Nothing is decided on this ledger and nothing appended to it; run `keyledger verify` for the full report"
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
    #[error(
        "{path}: the writers' lock file is not safe to use: {reason}. Only those who can write the ledger may be able to open it; fix it or remove it (keyledger creates it again)"
    )]
    UnsafeLock { path: PathBuf, reason: String },
    #[error(
        "{reason}. Nothing is appended. Compare the ledger with a checkpoint or a backup (`keyledger verify --checkpoint FILE`); if it was restored on purpose, remove this user's cache files for it ({}) and run again",
        files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    Diverged { reason: String, files: Vec<PathBuf> },
    #[error(
        "{path} changed while it was read: a batch of its signatures failed, then the same bytes read again passed, so someone is rewriting it. Nothing was shown. Run `keyledger verify` and compare it with a checkpoint or a backup"
    )]
    ChangedWhileRead { path: PathBuf },
    #[error(
        "the time asked for, {asked}, is more than 5 minutes after this machine's clock ({real}); events are never dated in the future (KEYLEDGER_NOW may only set the clock back)"
    )]
    FutureTime { asked: Timestamp, real: Timestamp },
    #[error(
        "the signing key cannot act here: {0}. An account or admin enrolls it with `keyledger signer enroll NAME --public-key @FILE.pub`"
    )]
    Signer(ApplyError),
    #[error("refused: {refusal}. Recorded as action-denied at seq {}", receipt.seq)]
    Denied { refusal: Refusal, receipt: Receipt },
    #[error("refused: {0}")]
    Invalid(Refusal),
    #[error("{0}. Nothing was recorded: the request itself is wrong, so fix it and run again")]
    Usage(Refusal),
    #[error("the event would be {0} bytes, more than the {MAX_BODY}-byte limit; shorten its text")]
    TooLarge(usize),
    /// A signed request (through a server) fails check 7a; nothing was recorded.
    #[error("the signed request is refused: {message}. Nothing was recorded")]
    Request {
        fault: crate::core::state::RequestFault,
        message: String,
    },
    /// The same signed request was applied before: it is never applied twice.
    #[error("this request was applied before, at seq {}", .0.seq)]
    AlreadyApplied(crate::core::state::Applied),
    /// A server could not be reached or did not answer as the protocol says.
    #[error("{0}")]
    Remote(String),
    /// A server refused a request with this API error code (README, Server API).
    #[error("{message}")]
    Server { code: String, message: String },
}

impl StoreError {
    pub(crate) fn io<'a>(
        path: &'a Path,
        op: &'static str,
    ) -> impl FnOnce(io::Error) -> StoreError + 'a {
        move |source| StoreError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    fn from_finding(path: &Path, f: &Finding, frames: u64) -> StoreError {
        StoreError::Integrity {
            path: path.into(),
            seq: f.seq.or(f.index).unwrap_or(frames),
            offset: f.offset,
            message: f.message.clone(),
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

/// The state replayed from a ledger up to some point, with its head and any torn tail.
pub struct Replay {
    pub state: State,
    pub head: Head,
    pub tree: TreeBuilder,
    pub torn: Option<TornTail>,
    /// The file no longer holds a head this user verified (why): cut or rewritten.
    pub diverged: Option<String>,
}

/// Whether to wait for another writer's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Block,
    NoWait,
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

/// Opens an existing ledger file: a regular file only, never blocking on a FIFO.
pub(crate) fn open_existing(path: &Path, write: bool) -> Result<File, StoreError> {
    crate::storage::files::open_regular(path, write).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound { path: path.into() },
        _ => StoreError::Io {
            path: path.into(),
            op: "open",
            source: e,
        },
    })
}

/// Reads one complete frame at `offset` (with positioned reads) from a file of `len` bytes.
pub(crate) fn frame_at(f: &File, offset: u64, len: u64) -> Option<RawFrame> {
    let mut n = [0u8; LEN_PREFIX];
    f.read_exact_at(&mut n, offset).ok()?;
    let body_len = u32::from_be_bytes(n);
    if body_len == 0 || body_len > MAX_BODY {
        return None;
    }
    let end = offset + (LEN_PREFIX + SIG_LEN) as u64 + body_len as u64;
    if end > len {
        return None;
    }
    let mut body = vec![0u8; body_len as usize];
    f.read_exact_at(&mut body, offset + LEN_PREFIX as u64)
        .ok()?;
    let mut sig = [0u8; SIG_LEN];
    f.read_exact_at(&mut sig, offset + LEN_PREFIX as u64 + body_len as u64)
        .ok()?;
    Some(RawFrame { offset, body, sig })
}

/// The genesis hash of the file (frame 0's body hash), if its header is valid and frame 0
/// complete.
fn file_genesis(f: &File, len: u64) -> Option<Hash32> {
    let mut header = [0u8; HEADER_LEN as usize];
    f.read_exact_at(&mut header, 0).ok()?;
    format::check_header(&header).ok()?;
    frame_at(f, HEADER_LEN, len).map(|g| event_hash(&g.body))
}

/// Does the file hold `head` at `offset` (a frame there, hashing to it, ending where it did)?
fn holds(f: &File, len: u64, head: &Head, offset: u64) -> bool {
    frame_at(f, offset, len)
        .is_some_and(|fr| event_hash(&fr.body) == head.hash && fr.end() == head.end)
}

/// What this user's cache says about the file.
enum Consulted {
    /// A verified state whose head the file still holds.
    Use(Box<Verified>),
    /// No usable cache (the reason): verify from the start.
    Nothing(String),
    /// The file no longer holds a head this user verified: cut or rewritten (the reason).
    Diverged(String),
}

/// What this user's cache says of the file open as `f`, given `note`, the head this user
/// last verified of it (loaded before `len` was taken: the file held that head by then).
fn consult(path: &Path, f: &File, len: u64, cache: &Cache, note: Option<&Noted>) -> Consulted {
    let diverged = |why: String| Consulted::Diverged(format!("{}: {why}", path.display()));
    let Some(genesis) = file_genesis(f, len) else {
        // No readable header or frame 0: verifying from the start reports what is wrong.
        return Consulted::Nothing("the ledger's header or first frame cannot be read".into());
    };
    if let Some((g, h, off)) = note {
        if *g != genesis {
            return diverged(pass::replaced_message(Some(&genesis), g));
        }
        if !holds(f, len, h, *off) {
            return diverged(pass::cut_message(&trust_of(h)));
        }
    }
    let entry = cache.load(path);
    // The entry may have been saved since `len` was taken; its head was on disk by then.
    let now_len = f.metadata().map_or(len, |m| m.len()).max(len);
    match entry {
        Ok(v) if v.state.genesis_hash == Some(genesis) => {
            if holds(f, now_len, &v.head, v.head_offset) {
                Consulted::Use(Box::new(v))
            } else {
                diverged(pass::cut_message(&trust_of(&v.head)))
            }
        }
        Ok(v) => match v.state.genesis_hash {
            Some(g) => diverged(pass::replaced_message(Some(&genesis), &g)),
            None => Consulted::Nothing("the cached state has no genesis".into()),
        },
        Err(e) => Consulted::Nothing(e),
    }
}

/// A head note: the genesis, head and head offset this user last verified of a ledger.
type Noted = (Hash32, Head, u64);

fn trust_of(h: &Head) -> Trust {
    Trust {
        seq: h.seq,
        hash: h.hash,
    }
}

/// The note of `path` in `cache` (read before the file's length is taken), and the file's
/// length after it.
fn note_then_len(path: &Path, f: &File, cache: &Cache, len: u64) -> (Option<Noted>, u64) {
    let note = cache.load_head(path);
    (note, f.metadata().map_or(len, |m| m.len()).max(len))
}

fn witness_of(note: Option<&Noted>) -> Option<Witness> {
    note.map(|(g, h, _)| Witness {
        genesis: *g,
        head: trust_of(h),
    })
}

/// How `head` obtained the verified state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// From this user's cache, after verifying this many newer events.
    Cached { verified: u64 },
    /// Verified from the start (no usable cache: the reason).
    Rebuilt(String),
    /// This user's cache described a different history of this ledger (the reason): it was
    /// cut or rewritten since. Verified again from the start.
    Diverged(String),
}

/// Save the cache again once this many events were verified beyond it.
pub const CACHE_EVERY: u64 = 256;

/// Verifies the ledger open as `f` (`len` bytes) up to its end: from the cached head
/// (re-checked against the file) when `cache` has one, else from the start.
pub(crate) fn verify_to_end(
    path: &Path,
    f: &File,
    len: u64,
    cache: &Cache,
) -> Result<(Verified, Freshness), StoreError> {
    verify_from_cache(path, f, len, cache, true)
}

/// As `verify_to_end`, but every event is verified again: the cache's saved state is not
/// used, only its note of the last head (so a cut below it is still caught).
pub(crate) fn verify_all_to_end(
    path: &Path,
    f: &File,
    len: u64,
    cache: &Cache,
) -> Result<(Verified, Freshness), StoreError> {
    verify_with(path, f, len, cache, true, true)
}

/// `verify_consulted` after consulting the cache.
fn verify_from_cache(
    path: &Path,
    f: &File,
    len: u64,
    cache: &Cache,
    may_batch: bool,
) -> Result<(Verified, Freshness), StoreError> {
    verify_with(path, f, len, cache, may_batch, false)
}

fn verify_with(
    path: &Path,
    f: &File,
    len: u64,
    cache: &Cache,
    may_batch: bool,
    all: bool,
) -> Result<(Verified, Freshness), StoreError> {
    let (note, len) = note_then_len(path, f, cache, len);
    let consulted = match consult(path, f, len, cache, note.as_ref()) {
        Consulted::Use(_) if all => Consulted::Nothing("every event verified again".into()),
        other => other,
    };
    verify_consulted(
        path,
        f,
        len,
        cache,
        consulted,
        witness_of(note.as_ref()),
        may_batch,
    )
}

/// `verify_to_end` from what the cache said (`consulted`), the chain passing through
/// `witness` unless the ledger is known to have diverged; with `may_batch`, long stretches
/// are checked in batches on every core, and a failing batch is checked again one signature
/// at a time, to name the event.
fn verify_consulted(
    path: &Path,
    f: &File,
    len: u64,
    cache: &Cache,
    consulted: Consulted,
    witness: Option<Witness>,
    may_batch: bool,
) -> Result<(Verified, Freshness), StoreError> {
    let now = Timestamp::now();
    let witness = witness.filter(|_| !matches!(consulted, Consulted::Diverged(_)));
    let (start, mut trails, checker, freshness, cached_offset) = match consulted {
        Consulted::Use(v) => (
            v.head.end,
            v.trails,
            Checker::resume(v.state, v.head, v.tree, now),
            Freshness::Cached { verified: 0 },
            Some(v.head_offset),
        ),
        Consulted::Nothing(reason) => (
            0,
            Default::default(),
            Checker::new(now),
            Freshness::Rebuilt(reason),
            None,
        ),
        Consulted::Diverged(reason) => (
            0,
            Default::default(),
            Checker::new(now),
            Freshness::Diverged(reason),
            None,
        ),
    };
    let before = checker.frames();
    // The cached head may lie past the length taken before (an append since): read on.
    let len = if start > len {
        f.metadata().map_or(len, |m| m.len()).max(start)
    } else {
        len
    };
    let file = reader_at(path, f, start)?;
    let frames = if start == 0 {
        FrameReader::new(BufReader::with_capacity(1 << 20, file.take(len)))
            .map_err(|e| read_error(path, e))?
    } else {
        // A few frames to follow need no megabyte of buffer.
        let capacity = (len - start).clamp(8 << 10, 1 << 20) as usize;
        FrameReader::at(
            BufReader::with_capacity(capacity, file.take(len - start)),
            start,
        )
    };
    // Long stretches are checked in batches on every core; a failing batch is re-checked
    // one signature at a time below, to name the event.
    let spec = Spec {
        batched: may_batch && len - start > 1 << 20,
        stop_at_first: true,
        witness,
        ..Spec::default()
    };
    let mut visit = |seen: &Seen<'_>| {
        for k in seen.event.action.key_ids() {
            note_key_event(&mut trails, k, seen.frame.offset, seen.hash);
        }
    };
    let out =
        pass::run(frames, len, checker, &spec, &mut visit).map_err(StoreError::io(path, "read"))?;
    // With signatures checked in batches, events were folded before their batch was
    // judged: a finding may be the effect of an earlier bad signature. Any failure is
    // judged again one signature at a time, so the event named is the first bad one.
    if spec.batched && (out.batch_failed || !out.findings.is_empty()) {
        return verify_from_cache(path, f, len, cache, false);
    }
    // Not the history this user verified: a divergence, verified again from the start.
    if let Some(miss) = out.witness_missed {
        let why = Consulted::Diverged(format!("{}: {}", path.display(), miss.message));
        return verify_consulted(path, f, len, cache, why, None, may_batch);
    }
    if let Some(first) = out.findings.first() {
        return Err(StoreError::from_finding(path, first, out.checker.frames()));
    }
    let Some(head) = out.checker.head else {
        return Err(StoreError::Integrity {
            path: path.into(),
            seq: 0,
            offset: HEADER_LEN,
            message: "the ledger has no genesis event".into(),
        });
    };
    let verified = out.checker.frames() - before;
    let freshness = match freshness {
        Freshness::Cached { .. } => Freshness::Cached { verified },
        other => other,
    };
    let head_offset = out.head_offset.or(cached_offset).unwrap_or(HEADER_LEN);
    Ok((
        Verified {
            state: out.checker.state,
            head,
            head_offset,
            tree: out.checker.tree,
            trails,
            torn: out.torn,
        },
        freshness,
    ))
}

/// Verifies what `f` holds after `v`'s head (frames another writer appended there),
/// continuing from `v` without reading the frames before again. A torn tail is an error.
pub fn verify_after(
    path: &Path,
    f: &File,
    v: Verified,
    cache: &Cache,
) -> Result<Verified, StoreError> {
    let len = f.metadata().map_err(StoreError::io(path, "stat"))?.len();
    let (v, _) = verify_consulted(path, f, len, cache, Consulted::Use(Box::new(v)), None, true)?;
    match v.torn {
        Some(t) => Err(StoreError::Torn {
            path: path.into(),
            offset: t.offset,
            bytes: t.bytes,
        }),
        None => Ok(v),
    }
}

/// A new handle on `f` positioned at `offset` (clones share the file offset, so it is
/// always set).
fn reader_at(path: &Path, f: &File, offset: u64) -> Result<File, StoreError> {
    let mut r = f.try_clone().map_err(StoreError::io(path, "open"))?;
    r.seek(SeekFrom::Start(offset))
        .map_err(StoreError::io(path, "seek"))?;
    Ok(r)
}

/// Waits briefly for an append in flight when the file ends inside a frame: the length
/// to read, re-taken once the file stops growing (at most ~0.3 s).
fn settle(f: &File, len: u64) -> u64 {
    let mut len = len;
    for _ in 0..30 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        match f.metadata() {
            Ok(m) if m.len() != len => len = m.len(),
            _ => return len,
        }
    }
    len
}

/// The ledger at `path`, verified up to its head (through this user's cache when it has
/// one), for queries. A torn tail is reported in `Verified::torn`, not as an error: every
/// complete event before it is still valid. The cache is saved again when it was rebuilt
/// or lags by `CACHE_EVERY` events; failing to save it never fails the read.
pub fn head(path: &Path, cache: &Cache) -> Result<(Verified, Freshness), StoreError> {
    let f = open_existing(path, false)?;
    let mut len = f.metadata().map_err(StoreError::io(path, "stat"))?.len();
    let mut attempt = 0;
    loop {
        let (v, freshness) = verify_to_end(path, &f, len, cache)?;
        if v.torn.is_some() && attempt < 3 {
            let settled = settle(&f, len);
            if settled != len {
                len = settled;
                attempt += 1;
                continue;
            }
        }
        // A divergence stays noticed until the user resolves it: nothing is saved over it.
        match &freshness {
            Freshness::Cached { verified } if *verified >= CACHE_EVERY => {
                let _ = cache.save(path, &v);
            }
            Freshness::Cached { verified } if *verified > 0 => {
                if let Some(g) = v.state.genesis_hash {
                    let _ = cache.save_head(path, g, &v.head, v.head_offset);
                }
            }
            Freshness::Rebuilt(_) => {
                let _ = cache.save(path, &v);
            }
            _ => {}
        }
        return Ok((v, freshness));
    }
}

/// Replays the ledger from its start up to `until`, calling `visit` with each event, every
/// one verified: signatures up to this user's cached head are not checked again, but the
/// chain must lead to that head's hash; every signature after it is checked.
pub fn replay(
    path: &Path,
    cache: &Cache,
    until: Option<Until>,
    visit: impl FnMut(&Seen<'_>),
) -> Result<Replay, StoreError> {
    let f = open_existing(path, false)?;
    let len = f.metadata().map_err(StoreError::io(path, "stat"))?.len();
    let (note, len) = note_then_len(path, &f, cache, len);
    let (trust, witness, diverged) = match consult(path, &f, len, cache, note.as_ref()) {
        Consulted::Use(v) => (Some(trust_of(&v.head)), witness_of(note.as_ref()), None),
        Consulted::Nothing(_) => (None, witness_of(note.as_ref()), None),
        Consulted::Diverged(why) => (None, None, Some(why)),
    };
    let mut r = replay_open(path, &f, len, trust, witness, until, visit)?;
    r.diverged = diverged.or(r.diverged);
    // A file that ends inside a frame and then grows had an append in flight: the replay
    // is of the complete frames before it, and nothing is torn.
    if r.torn.is_some() && settle(&f, len) != len {
        r.torn = None;
    }
    Ok(r)
}

/// As `replay`, on an open file of `len` bytes, trusting `trust` (from a cache, or from a
/// verification this process just did); a chain that misses `witness` is reported in
/// `Replay::diverged`.
pub fn replay_open(
    path: &Path,
    f: &File,
    len: u64,
    trust: Option<Trust>,
    witness: Option<Witness>,
    until: Option<Until>,
    mut visit: impl FnMut(&Seen<'_>),
) -> Result<Replay, StoreError> {
    let reader = reader_at(path, f, 0)?;
    let frames = FrameReader::new(BufReader::with_capacity(1 << 20, reader.take(len)))
        .map_err(|e| read_error(path, e))?;
    let mut spec = Spec {
        batched: true,
        trust,
        witness,
        until,
        stop_at_first: true,
    };
    let out = pass::run(
        frames,
        len,
        Checker::new(Timestamp::now()),
        &spec,
        &mut visit,
    )
    .map_err(StoreError::io(path, "read"))?;
    if out.batch_failed || !out.findings.is_empty() {
        // A failure after batched checks (events are folded, and visited, before their
        // batch is judged): again one signature at a time, to name the first bad event.
        // What was visited is discarded with the error, so there must be one: bytes that
        // pass now were not the bytes visited (the file changed between the two reads).
        spec.batched = false;
        let frames = FrameReader::new(BufReader::with_capacity(
            1 << 20,
            reader_at(path, f, 0)?.take(len),
        ))
        .map_err(|e| read_error(path, e))?;
        let again = pass::run(
            frames,
            len,
            Checker::new(Timestamp::now()),
            &spec,
            &mut |_| {},
        )
        .map_err(StoreError::io(path, "read"))?;
        let Some(first) = again.findings.first() else {
            return Err(StoreError::ChangedWhileRead { path: path.into() });
        };
        return Err(StoreError::from_finding(
            path,
            first,
            again.checker.frames(),
        ));
    }
    if let Some(first) = out.findings.first() {
        return Err(StoreError::from_finding(path, first, out.checker.frames()));
    }
    let head = out.checker.head.ok_or_else(|| StoreError::Integrity {
        path: path.into(),
        seq: 0,
        offset: format::HEADER_LEN,
        message: "the ledger has no genesis event".into(),
    })?;
    Ok(Replay {
        state: out.checker.state,
        head,
        tree: out.checker.tree,
        torn: out.torn,
        diverged: out
            .witness_missed
            .map(|m| format!("{}: {}", path.display(), m.message)),
    })
}

/// Checks the signatures of `events` again (in batches; one by one to name a failure): what
/// is shown or exported with its signature (inspect, exports, bundles) must carry the very
/// signature that verifies, even where the cache vouched for the event itself.
pub fn recheck_signatures(
    path: &Path,
    events: &[(&RawFrame, &Event, &Hash32)],
) -> Result<(), StoreError> {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    let mut points = std::collections::HashMap::new();
    for (_, ev, _) in events {
        points
            .entry(ev.signer)
            .or_insert_with(|| CompressedEdwardsY(*ev.signer.bytes()).decompress());
    }
    for chunk in events.chunks(256) {
        let items: Option<Vec<crate::core::signing::BatchItem<'_>>> = chunk
            .iter()
            .map(|(f, ev, h)| {
                points[&ev.signer]
                    .as_ref()
                    .map(|a| (a, ev.signer.bytes(), &h.0[..], &f.sig))
            })
            .collect();
        if items.is_some_and(|i| crate::core::signing::verify_batch(&i)) {
            continue;
        }
        let (f, ev, h) = chunk
            .iter()
            .find(|(f, ev, h)| !crate::core::signing::verify_hash(&ev.signer, h, &f.sig))
            .expect("a failing batch holds a bad signature");
        return Err(StoreError::Integrity {
            path: path.into(),
            seq: ev.seq,
            offset: f.offset,
            message: format!(
                "signature does not verify against the event hash {h} and signer {}",
                ev.signer
            ),
        });
    }
    Ok(())
}

/// One event re-read through a key trail: its frame, body and hash.
pub type TrailEvent = (RawFrame, Event, Hash32);

/// The events at the offsets of an access key's trail, decoded, with their hashes, checked
/// to be exactly the events verified (the trail's digest); `None` if the file changed.
pub fn trail_events(
    path: &Path,
    trail: &crate::storage::cache::KeyTrail,
) -> Result<Option<Vec<TrailEvent>>, StoreError> {
    let f = open_existing(path, false)?;
    let len = f.metadata().map_err(StoreError::io(path, "stat"))?.len();
    let mut digest = Hash32::ZERO;
    let mut out = Vec::with_capacity(trail.offsets.0.len());
    for &o in &trail.offsets.0 {
        let Some(frame) = frame_at(&f, o, len) else {
            return Ok(None);
        };
        let h = event_hash(&frame.body);
        digest = crate::storage::cache::trail_digest(&digest, &h);
        let Ok(ev) = Event::decode(&frame.body) else {
            return Ok(None);
        };
        out.push((frame, ev, h));
    }
    Ok((digest == trail.digest).then_some(out))
}

/// The writers' lock file beside a ledger: `<ledger>.lock`.
/// Named after the ledger's canonical path, so that every name of one file (a link to it)
/// takes the same lock.
pub fn lock_path(ledger: &Path) -> PathBuf {
    let real = std::fs::canonicalize(ledger).unwrap_or_else(|_| ledger.to_path_buf());
    let mut s = real.into_os_string();
    s.push(".lock");
    PathBuf::from(s)
}

/// The mode of the lock file: read and write exactly for the classes that may write the
/// ledger (its owner, group or others, by its write bits).
fn lock_mode(ledger_mode: u32) -> u32 {
    let mut m = 0;
    for (write, rw) in [(0o200, 0o600), (0o020, 0o060), (0o002, 0o006)] {
        if ledger_mode & write != 0 {
            m |= rw;
        }
    }
    m
}

/// Holds the single-writer lock (L6) until dropped.
pub struct WriterLock {
    _file: File,
}

/// Takes the writers' lock of `ledger` (whose metadata is `meta`): an exclusive `flock`
/// on `<ledger>.lock`, a file only those who can write the ledger can open (its mode gives
/// read and write to exactly the classes with write on the ledger, its group is the
/// ledger's). Created on first use. Someone who can only read the ledger cannot open it,
/// so cannot stall writers. Its owner is whoever created it: any writer may.
pub fn lock_writers(
    ledger: &Path,
    meta: &std::fs::Metadata,
    wait: Wait,
) -> Result<WriterLock, StoreError> {
    let path = lock_path(ledger);
    // Writers through another name of the file would take another lock.
    if meta.nlink() > 1 {
        return Err(StoreError::UnsafeLock {
            path,
            reason: format!(
                "the ledger has {} names (hard links), and writers through different names would not exclude each other; keep one",
                meta.nlink()
            ),
        });
    }
    let real = std::fs::canonicalize(ledger).unwrap_or_else(|_| ledger.to_path_buf());
    if crate::storage::files::is_mount_point(&real) == Some(true) {
        return Err(StoreError::UnsafeLock {
            path,
            reason: "the ledger file is mounted on its own (a bind mount of the file), and writers through another mount of it would take another lock; mount the directory that holds it instead".into(),
        });
    }
    // The lock locked must still be the file at its path (a writer may have removed it
    // meanwhile, and another created a new one): else lock again.
    for _ in 0..8 {
        let file = open_lock_file(&path, meta)?;
        match wait {
            Wait::Block => file.lock().map_err(StoreError::io(&path, "lock"))?,
            Wait::NoWait => file.try_lock().map_err(|e| match e {
                std::fs::TryLockError::WouldBlock => StoreError::Locked {
                    path: ledger.into(),
                },
                std::fs::TryLockError::Error(source) => StoreError::Io {
                    path: path.clone(),
                    op: "lock",
                    source,
                },
            })?,
        }
        let locked = file.metadata().map_err(StoreError::io(&path, "stat"))?;
        if std::fs::symlink_metadata(&path)
            .is_ok_and(|m| (m.dev(), m.ino()) == (locked.dev(), locked.ino()))
        {
            return Ok(WriterLock { _file: file });
        }
    }
    Err(StoreError::UnsafeLock {
        path,
        reason: "it was replaced each time it was locked".into(),
    })
}

/// Opens (creating it if missing) the writers' lock file at `path` of a ledger whose
/// metadata is `meta`, refusing one that is not safe.
fn open_lock_file(path: &Path, meta: &std::fs::Metadata) -> Result<File, StoreError> {
    let path = path.to_path_buf();
    let mode = lock_mode(meta.mode());
    let open = || crate::storage::files::open_regular_nofollow(&path, true);
    let file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match crate::storage::files::create_new(&path, mode) {
                Ok(created) => {
                    // Exactly the ledger's writers: its group, and the mode whatever the umask.
                    let _ = std::os::unix::fs::fchown(&created, None, Some(meta.gid()));
                    let _ = created.set_permissions(std::fs::Permissions::from_mode(mode));
                    open()
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open(),
                Err(e) => Err(e),
            }
            .map_err(StoreError::io(&path, "open the writers' lock"))?
        }
        Err(e)
            if e.kind() == io::ErrorKind::InvalidInput || e.raw_os_error() == Some(libc::ELOOP) =>
        {
            return Err(StoreError::UnsafeLock {
                path,
                reason: "it is not a regular file (a link, FIFO or directory)".into(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(StoreError::UnsafeLock {
                path,
                reason: "it cannot be opened (permission denied): the ledger's permissions changed, or someone else planted it (in a directory with the sticky bit only its owner or root can remove it; keep ledgers in a directory that only their writers can write)".into(),
            });
        }
        Err(e) => return Err(StoreError::io(&path, "open the writers' lock")(e)),
    };
    let m = file.metadata().map_err(StoreError::io(&path, "stat"))?;
    let extra = m.mode() & 0o777 & !mode;
    if extra != 0 {
        return Err(StoreError::UnsafeLock {
            path,
            reason: format!(
                "its mode {:o} lets in some who cannot write the ledger (mode {:o})",
                m.mode() & 0o777,
                meta.mode() & 0o777
            ),
        });
    }
    let me = crate::storage::files::effective_uid();
    if m.uid() != meta.uid() && m.uid() != 0 && m.uid() != me {
        return Err(StoreError::UnsafeLock {
            path,
            reason: format!(
                "it is owned by uid {}, neither the ledger's owner nor you: someone who may not write the ledger could hold it. Remove it and keep the ledger in a directory that only its writers can write (for a ledger shared by a group, its owner creates the lock: `keyledger init` does)",
                m.uid()
            ),
        });
    }
    if m.mode() & 0o070 != 0 && m.gid() != meta.gid() {
        return Err(StoreError::UnsafeLock {
            path,
            reason: format!(
                "it is open to group {}, not the ledger's group {}",
                m.gid(),
                meta.gid()
            ),
        });
    }
    Ok(file)
}
