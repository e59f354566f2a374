//! The ledger file, written (L6): one writer at a time under the writers' lock; the state
//! appended to is verified first (`store::verify_to_end`); an append is acknowledged only
//! after its frame is on disk (fdatasync); a failed write is rolled back to the previous
//! end; a torn tail refuses appends until `repair`; no event is dated more than the clock
//! skew after this machine's clock (L9).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::core::chain::{Head, event_hash};
use crate::core::event::{Action, Event, Request, SecondFactor};
use crate::core::format::{self, MAX_BODY};
use crate::core::merkle::TreeBuilder;
use crate::core::signing::SigningKey;
use crate::core::state::{ApplyError, Refusal, RequestFault, State};
use crate::core::types::{Bytes, CLOCK_SKEW_US, LedgerId, Timestamp};
use crate::storage::cache::{Cache, Verified};
use crate::storage::keyfile::{KeyFileError, write_exclusive};
use crate::storage::store::{
    CACHE_EVERY, Receipt, StoreError, TornTail, Wait, WriterLock, lock_writers, open_existing,
    verify_all_to_end, verify_to_end,
};

/// Makes new frames (byte offset, frame bytes) durable elsewhere before they are written to
/// the file (`Ledger::append_items_via`).
pub type Commit<'a> = dyn FnMut(&[(u64, Vec<u8>)]) -> Result<(), StoreError> + 'a;

/// One action of a batch: appended, or refused and recorded as `action-denied`.
pub type Outcome = Result<Receipt, (Refusal, Receipt)>;

/// One action to append; with a request, the action its signer asked for (§4.1).
#[derive(Debug, Clone)]
pub struct Item {
    pub action: Action,
    pub request: Option<Request>,
    /// The request's signature was verified over `action` by the caller (a server
    /// checks them on all cores before they reach the single writer).
    pub sig_checked: bool,
    /// R13: what the server found of a second factor that came with the request.
    pub factor: Factor,
}

/// R13: a second factor that came with a request, as the server judged it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Factor {
    /// None came.
    #[default]
    Absent,
    /// A code of `subject`'s authenticator, verified: the attestation to record.
    Verified {
        subject: String,
        attestation: SecondFactor,
    },
    /// A code came and was refused, for this reason (wrong, used before, too many failures).
    Refused(String),
}

impl Item {
    /// An action of the frame signer's own.
    pub fn own(action: Action) -> Self {
        Item {
            action,
            request: None,
            sig_checked: false,
            factor: Factor::Absent,
        }
    }
}

/// A ledger open for writing: holds the writers' lock until dropped.
pub struct Ledger {
    path: PathBuf,
    file: File,
    _lock: WriterLock,
    v: Verified,
    cache: Cache,
    /// Where the last head is noted after each append (see `cache`).
    note: Option<crate::storage::cache::HeadNote>,
    /// The head seq this user's cache holds (saved again `CACHE_EVERY` events later).
    cached_seq: Option<u64>,
    /// Set when a write failed: the in-memory state may be ahead of the file.
    poisoned: bool,
    /// The file is a copy of frames another engine made durable first (PostgreSQL's
    /// mirror): appends to it need no fdatasync.
    copy: bool,
}

fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Whether an action's positive outcome depends on a key not having expired: those are
/// decided on the real clock too, not only on the (possibly earlier) event time.
fn expiry_decides(action: &Action) -> bool {
    matches!(
        action,
        Action::AuthSucceeded { .. } | Action::KeyEnabled { .. }
    )
}

/// A ledger open for writing, as the domain operations (`protocol::ops`) see it: the file
/// itself (`Ledger`), or a server reached through the client.
pub trait Appender {
    /// The verified state, head and tree this writer appends to.
    fn verified(&self) -> &Verified;

    /// Group commit: appends `actions` signed by `key` (or, through a server, by `key`'s
    /// signed requests) with one write and one fdatasync. Each action is validated against
    /// the state left by the ones before it; a refused one is recorded as `action-denied`
    /// (R12) and reported as `Err((refusal, receipt))`. Nothing is acknowledged before it
    /// is on disk. An action that cannot be recorded at all (a usage error) fails the batch.
    fn append_batch(
        &mut self,
        key: &SigningKey,
        actions: Vec<Action>,
        now: Timestamp,
    ) -> Result<Vec<Outcome>, StoreError>;

    /// The time the next event gets when `now` is asked (never before the head; L9).
    fn event_time(&self, now: Timestamp) -> Result<Timestamp, StoreError>;

    fn state(&self) -> &State {
        &self.verified().state
    }

    /// The principal `key` signs for.
    fn actor(&self, key: &SigningKey) -> Result<String, StoreError> {
        self.state()
            .actor_of(&key.public())
            .map(str::to_owned)
            .map_err(StoreError::Signer)
    }

    /// Appends `action` signed by `key`, dated `now` (or the last event's time if that is
    /// later). A policy refusal appends an `action-denied` event instead (R12) and returns
    /// `StoreError::Denied`. A key that is not an enrolled signer cannot sign anything, so
    /// nothing is appended for it.
    fn append(
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
}

impl Appender for Ledger {
    fn verified(&self) -> &Verified {
        &self.v
    }

    fn append_batch(
        &mut self,
        key: &SigningKey,
        actions: Vec<Action>,
        now: Timestamp,
    ) -> Result<Vec<Outcome>, StoreError> {
        let items = actions.into_iter().map(Item::own).collect();
        self.append_items(key, items, now, true)?
            .into_iter()
            .collect()
    }

    fn event_time(&self, now: Timestamp) -> Result<Timestamp, StoreError> {
        check_clock(now)?;
        let head = self.head();
        let real = Timestamp::now();
        if head.time > real.plus_micros(CLOCK_SKEW_US) {
            return Err(StoreError::Integrity {
                path: self.path.clone(),
                seq: head.seq,
                offset: self.v.head_offset,
                message: format!(
                    "it is dated {}, more than 5 minutes after this machine's clock ({real}); no event can follow it until the clock reaches it. Check this machine's clock",
                    head.time
                ),
            });
        }
        Ok(now.max(head.time))
    }
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
        check_clock(time)?;
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
            request: None,
            factor: None,
        };
        let body = genesis.encode();
        let hash = event_hash(&body);
        State::default().genesis(&genesis, &hash).map_err(|e| {
            StoreError::Invalid(Refusal {
                rule: "L3",
                message: e.to_string(),
            })
        })?;
        let mut bytes = format::header_bytes().to_vec();
        bytes.extend(format::frame_bytes(&body, &key.sign_hash(&hash)));
        write_exclusive(path, &bytes, 0o644).map_err(|e| match e {
            KeyFileError::Exists { .. } => StoreError::Exists { path: path.into() },
            KeyFileError::Io { source, .. } => StoreError::Io {
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
        // A ledger that cannot be opened for writing (its lock refused) is never left
        // behind: its account key would be thrown away with the error.
        let ledger = Self::open(path, Wait::Block).inspect_err(|_| {
            if std::fs::read(path).is_ok_and(|b| b == bytes) {
                let _ = std::fs::remove_file(path);
            }
        })?;
        Ok((ledger, receipt))
    }

    /// Opens for appending with no cache: takes the writers' lock, verifies the whole
    /// ledger, refuses a torn tail or any event that fails its checks.
    pub fn open(path: &Path, wait: Wait) -> Result<Ledger, StoreError> {
        Self::open_with(path, wait, &Cache::none())
    }

    /// As `open`, verifying only what this user's `cache` does not already vouch for.
    pub fn open_with(path: &Path, wait: Wait, cache: &Cache) -> Result<Ledger, StoreError> {
        Self::open_checked(path, wait, cache, false)
    }

    /// As `open_with`, verifying every event again (a server's start): the cache's saved
    /// state is not used, only its note of the last head.
    pub fn open_verifying_all(
        path: &Path,
        wait: Wait,
        cache: &Cache,
    ) -> Result<Ledger, StoreError> {
        Self::open_checked(path, wait, cache, true)
    }

    fn open_checked(
        path: &Path,
        wait: Wait,
        cache: &Cache,
        all: bool,
    ) -> Result<Ledger, StoreError> {
        let l = Self::open_allow_torn(path, wait, cache, all)?;
        if let Some(t) = l.v.torn {
            return Err(StoreError::Torn {
                path: path.into(),
                offset: t.offset,
                bytes: t.bytes,
            });
        }
        Ok(l)
    }

    fn open_allow_torn(
        path: &Path,
        wait: Wait,
        cache: &Cache,
        all: bool,
    ) -> Result<Ledger, StoreError> {
        let file = open_existing(path, true)?;
        let meta = file.metadata().map_err(StoreError::io(path, "stat"))?;
        let lock = lock_writers(path, &meta, wait)?;
        // Under the lock the length is settled: no append is in flight.
        let len = file.metadata().map_err(StoreError::io(path, "stat"))?.len();
        let (v, freshness) = match all {
            true => verify_all_to_end(path, &file, len, cache)?,
            false => verify_to_end(path, &file, len, cache)?,
        };
        let cached_seq = match freshness {
            crate::storage::store::Freshness::Cached { verified } => Some(v.head.seq - verified),
            // Appending to a ledger cut below what this user verified would bury the cut.
            crate::storage::store::Freshness::Diverged(reason) => {
                return Err(StoreError::Diverged {
                    reason,
                    files: cache.entry_files(path),
                });
            }
            crate::storage::store::Freshness::Rebuilt(_) => None,
        };
        let mut l = Ledger {
            path: path.into(),
            file,
            _lock: lock,
            v,
            cache: cache.clone(),
            note: cache.head_note(path),
            cached_seq,
            poisoned: false,
            copy: false,
        };
        l.save_cache_if_stale();
        Ok(l)
    }

    fn save_cache_if_stale(&mut self) {
        let head = self.v.head.seq;
        if self.v.torn.is_none()
            && self
                .cached_seq
                .is_none_or(|s| head.saturating_sub(s) >= CACHE_EVERY)
            && self.cache.save(&self.path, &self.v).is_ok()
        {
            self.cached_seq = Some(head);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The head event's frame as the file holds it.
    pub fn head_frame(&self) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; (self.v.head.end - self.v.head_offset) as usize];
        self.file.read_exact_at(&mut b, self.v.head_offset)?;
        Ok(b)
    }

    /// Verifies the file again from this user's cache, in place: the writers' lock stays
    /// held (a second open would wait on it forever). Clears a refusal after a failed write.
    pub fn reload(&mut self) -> Result<(), StoreError> {
        let len = self
            .file
            .metadata()
            .map_err(StoreError::io(&self.path, "stat"))?
            .len();
        let (v, freshness) = verify_to_end(&self.path, &self.file, len, &self.cache)?;
        if let crate::storage::store::Freshness::Diverged(reason) = freshness {
            return Err(StoreError::Diverged {
                reason,
                files: self.cache.entry_files(&self.path),
            });
        }
        if let Some(t) = v.torn {
            return Err(StoreError::Torn {
                path: self.path.clone(),
                offset: t.offset,
                bytes: t.bytes,
            });
        }
        self.v = v;
        self.poisoned = false;
        Ok(())
    }

    /// This file is a copy of frames `append_items_via`'s commit makes durable elsewhere
    /// first: its own appends skip the fdatasync.
    pub fn durable_elsewhere(&mut self) {
        self.copy = true;
    }

    /// Takes in the frames appended to the file since this handle's head by someone it
    /// trusts to hold the writers' lock with it (the PostgreSQL engine, catching its mirror
    /// up): each is verified, continuing from the state held. On failure the handle refuses
    /// appends.
    pub fn follow(&mut self) -> Result<(), StoreError> {
        let len = self
            .file
            .metadata()
            .map_err(StoreError::io(&self.path, "stat"))?
            .len();
        if len == self.v.head.end {
            return Ok(());
        }
        let held = Verified {
            state: State::default(),
            head: self.v.head,
            head_offset: self.v.head_offset,
            tree: TreeBuilder::default(),
            trails: Default::default(),
            torn: None,
        };
        let v = std::mem::replace(&mut self.v, held);
        match crate::storage::store::verify_after(&self.path, &self.file, v, &self.cache) {
            Ok(v) => {
                self.v = v;
                self.save_cache_if_stale();
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    pub fn head(&self) -> Head {
        self.v.head
    }

    /// The Merkle tree over every event so far (§9.1).
    pub fn tree(&self) -> &TreeBuilder {
        &self.v.tree
    }

    /// Is `action` by `actor` allowed now: by the state at the event's `time`, and, where
    /// the answer depends on expiry, at this machine's real clock too (L9)?
    fn authorize(
        &self,
        state: &State,
        actor: &str,
        action: &Action,
        time: Timestamp,
    ) -> Result<(), Refusal> {
        state.authorize(actor, action, time)?;
        if expiry_decides(action) {
            state.authorize(actor, action, time.max(Timestamp::now()))?;
        }
        Ok(())
    }

    /// Group commit of `items`, the frames signed by `key` (L6): each is validated against
    /// the state the ones before it left. An item with a request is its signer's (§4.1):
    /// policy is decided for that actor, a refusal records the request with its `refused`
    /// action, and a request applied before is answered `StoreError::AlreadyApplied`.
    /// An item that cannot be recorded at all gets its own error and changes nothing; with
    /// `all_or_nothing`, it fails the whole batch instead (and nothing is written).
    pub fn append_items(
        &mut self,
        key: &SigningKey,
        items: Vec<Item>,
        now: Timestamp,
        all_or_nothing: bool,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        self.append_items_via(key, items, now, all_or_nothing, &mut |_| Ok(()))
    }

    /// As `append_items`, with `commit` given the new frames (their byte offsets and bytes)
    /// before they are written here: an engine that holds the ledger elsewhere (PostgreSQL)
    /// makes them durable there first. If it fails, nothing is written here and this handle
    /// refuses further appends (its state is ahead; reopen it).
    pub fn append_items_via(
        &mut self,
        key: &SigningKey,
        items: Vec<Item>,
        now: Timestamp,
        all_or_nothing: bool,
        commit: &mut Commit<'_>,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        if self.poisoned {
            return Err(StoreError::Io {
                path: self.path.clone(),
                op: "append",
                source: io::Error::other("an earlier write failed; reopen the ledger"),
            });
        }
        let time = self.event_time(now)?;
        let start = self.head();
        // Bodies and hashes are chained in order; signatures (over the hashes) come after.
        let mut bodies: Vec<(Vec<u8>, crate::core::types::Hash32)> =
            Vec::with_capacity(items.len());
        let mut out = Vec::with_capacity(items.len());
        let mut head = start;
        let mut head_offset = self.v.head_offset;
        for item in items {
            // Everything that can refuse the item runs before the state changes.
            let prepared = self.prepare(key, item, head, time);
            let (ev, body, hash, refusal) = match prepared {
                Ok(p) => p,
                Err(e) if all_or_nothing => {
                    // Bodies already applied moved the state ahead of the file.
                    self.poisoned = !bodies.is_empty();
                    return Err(e);
                }
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            // What the event became (a denial carrying the refused action) is judged again;
            // a failure leaves the state as it was, and the item is not recorded.
            if let Err(e) = self.v.state.apply_with(&ev, &hash, true) {
                let e = match e {
                    ApplyError::Request(fault, message) => StoreError::Request { fault, message },
                    other => StoreError::Signer(other),
                };
                if all_or_nothing {
                    self.poisoned = !bodies.is_empty();
                    return Err(e);
                }
                out.push(Err(e));
                continue;
            }
            self.v.tree.push(&hash);
            let offset = head.end;
            for k in ev.action.key_ids() {
                self.v.note_key_event(k, offset, &hash);
            }
            head = Head {
                seq: ev.seq,
                hash,
                time,
                end: offset + format::FRAME_OVERHEAD + body.len() as u64,
            };
            head_offset = offset;
            bodies.push((body, hash));
            let receipt = Receipt {
                seq: ev.seq,
                hash,
                offset,
                time,
            };
            out.push(Ok(match refusal {
                None => Ok(receipt),
                Some(r) => Err((r, receipt)),
            }));
        }
        if bodies.is_empty() {
            return Ok(out);
        }
        let sigs = sign_all(key, &bodies);
        let mut frames = Vec::with_capacity(bodies.len());
        let mut at = start.end;
        for ((body, _), sig) in bodies.iter().zip(&sigs) {
            let f = format::frame_bytes(body, sig);
            let len = f.len() as u64;
            frames.push((at, f));
            at += len;
        }
        if let Err(e) = commit(&frames) {
            self.poisoned = true;
            return Err(e);
        }
        let buf: Vec<u8> = frames.into_iter().flat_map(|(_, f)| f).collect();
        let written = self
            .file
            .write_all_at(&buf, start.end)
            .and_then(|_| match self.copy {
                true => Ok(()),
                false => self.file.sync_data(),
            });
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
        self.v.head = head;
        self.v.head_offset = head_offset;
        // The head note after every append (small); the whole state when the process is done.
        if let (Some(g), Some(note)) = (self.v.state.genesis_hash, &self.note) {
            let _ = note.write(g, &head, head_offset);
        }
        Ok(out)
    }

    /// The event `item` becomes after `head` at `time`, its body and hash, and the policy
    /// refusal it records if it is refused; or why it cannot be recorded at all. Reads the
    /// state, never changes it.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        key: &SigningKey,
        item: Item,
        head: Head,
        time: Timestamp,
    ) -> Result<(Event, Vec<u8>, crate::core::types::Hash32, Option<Refusal>), StoreError> {
        let state = &self.v.state;
        let Item {
            action,
            mut request,
            sig_checked,
            factor,
        } = item;
        let mut ev = Event {
            seq: head.seq + 1,
            time,
            prev: head.hash,
            signer: key.public(),
            action,
            request: None,
            factor: None,
        };
        let actor = match &request {
            None => state.actor_of(&key.public()).map_err(StoreError::Signer)?,
            Some(req) => {
                if let Some(a) = state.requests.get(&crate::core::request::replay_id(req)) {
                    return Err(match a.same_request(req) {
                        true => StoreError::AlreadyApplied(*a),
                        false => StoreError::Request {
                            fault: RequestFault::Replay,
                            message: format!(
                                "nonce {} of key {} was already used by another request (seq {}); sign each request with a fresh nonce",
                                req.nonce.hex(),
                                req.key,
                                a.seq
                            ),
                        },
                    });
                }
                state
                    .request_actor(&ev, req, sig_checked)
                    .map_err(|e| match e {
                        ApplyError::Request(fault, message) => StoreError::Request { fault, message },
                        other => StoreError::Signer(other),
                    })?
            }
        }
        .to_owned();
        // What the request itself gets wrong is a usage error, never evidence.
        crate::core::policy::check_form(&ev.action, time).map_err(StoreError::Usage)?;
        if (ev.action.needs_version_2() || request.is_some()) && state.format_version < 2 {
            return Err(StoreError::Usage(Refusal {
                rule: "L1",
                message: format!(
                    "{} is a format-version-1 ledger, which has no server permission or signed requests (ledger-format.md §1); a ledger made by `keyledger init` today is version 2",
                    self.path.display()
                ),
            }));
        }
        self.check_structural(&ev.action, head.end)?;
        let decided = self
            .authorize(state, &actor, &ev.action, time)
            .and_then(|()| {
                let Some(subject) = state.factor_subject(&actor, &ev.action) else {
                    return Ok(());
                };
                match factor {
                    Factor::Verified {
                        subject: s,
                        attestation,
                    } if s == subject => {
                        ev.factor = Some(attestation);
                        Ok(())
                    }
                    Factor::Refused(message) => Err(Refusal {
                        rule: "R13",
                        message,
                    }),
                    _ => state.require_factor(&actor, &ev.action, false, request.is_none()),
                }
            });
        let refusal = match decided {
            Ok(()) => None,
            Err(r) => {
                // The request's `refused` is what its signer signed: a recorded refusal (a
                // gateway's failed check) that is itself refused is not recorded at all.
                if request.as_ref().is_some_and(|q| q.refused.is_some()) {
                    return Err(StoreError::Usage(r));
                }
                let denied = denial(&ev.action, &r);
                let asked = std::mem::replace(&mut ev.action, denied);
                if let Some(req) = &mut request {
                    req.refused = Some(asked);
                }
                Some(r)
            }
        };
        ev.request = request;
        let body = ev.encode();
        if body.len() > MAX_BODY as usize {
            return Err(StoreError::TooLarge(body.len()));
        }
        let hash = event_hash(&body);
        Ok((ev, body, hash, refusal))
    }

    /// Checks an action against what only the file knows (§8.9, `log-repaired`): a recorded
    /// checkpoint must cover exactly the events before it with their Merkle root, and a
    /// repair must say it starts where it is written. Refused, not recorded, otherwise.
    fn check_structural(&self, action: &Action, offset: u64) -> Result<(), StoreError> {
        let invalid = |message: String| {
            Err(StoreError::Invalid(Refusal {
                rule: "L5",
                message,
            }))
        };
        match action {
            Action::CheckpointRecorded { size, root }
                if *size != self.v.tree.size() || root.0 != self.v.tree.root() =>
            {
                invalid(format!(
                    "a recorded checkpoint must cover the {} events before it, with their Merkle root",
                    self.v.tree.size()
                ))
            }
            Action::LogRepaired { offset: o, .. } if *o != offset => invalid(format!(
                "a repair at byte {offset} cannot record a torn tail at byte {o}"
            )),
            _ => Ok(()),
        }
    }
}

impl Drop for Ledger {
    /// Saves this user's cache if it lags the head by `CACHE_EVERY` events (once per open
    /// ledger, not per append: saving costs as much as the state is large).
    fn drop(&mut self) {
        if !self.poisoned {
            self.save_cache_if_stale();
        }
    }
}

/// Refuses a requested time more than the skew after this machine's clock.
fn check_clock(asked: Timestamp) -> Result<(), StoreError> {
    let real = Timestamp::now();
    if asked > real.plus_micros(CLOCK_SKEW_US) {
        return Err(StoreError::FutureTime { asked, real });
    }
    Ok(())
}

/// Signatures of the event hashes, in order, signed on every core.
fn sign_all(key: &SigningKey, bodies: &[(Vec<u8>, crate::core::types::Hash32)]) -> Vec<[u8; 64]> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    crate::core::signing::on_cores(bodies, cores, 64, |part| {
        part.iter().map(|(_, h)| key.sign_hash(h)).collect()
    })
}

/// The `action-denied` event recorded instead of a refused action.
pub(crate) fn denial(action: &Action, refusal: &Refusal) -> Action {
    let short = |s: &str| {
        s.chars()
            .take(crate::core::state::MAX_ID)
            .collect::<String>()
    };
    Action::ActionDenied {
        attempted: describe(action),
        user: action.subject().map(short),
        key_id: match action {
            Action::KeyCreated { .. } | Action::TemporaryIssued { .. } => None,
            _ => action.key_id().map(short),
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
    pub removed_blake3: crate::core::types::Hash32,
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
    cache: &Cache,
) -> Result<Option<Repaired>, StoreError> {
    let mut l = Ledger::open_allow_torn(path, wait, cache, false)?;
    let Some(torn) = l.v.torn else {
        return Ok(None);
    };
    let mut removed = vec![0u8; torn.bytes as usize];
    l.file
        .read_exact_at(&mut removed, torn.offset)
        .map_err(StoreError::io(path, "read torn tail"))?;
    let removed_blake3 = Bytes(*blake3::hash(&removed).as_bytes());
    let time = l.event_time(now)?;
    // The quarantine file's name is chosen fresh: a name taken (by anything, a dangling
    // link included) moves on to the next.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = path
        .file_name()
        .map_or("ledger".into(), |n| n.to_string_lossy().into_owned());
    let stem = format!("{base}.quarantine-{}", torn.offset);
    // Check the repairer may repair before touching anything (with the name it would get).
    let action = |name: String| Action::LogRepaired {
        offset: torn.offset,
        removed_bytes: torn.bytes,
        removed_blake3,
        quarantine: name,
    };
    let actor = l.actor(key)?;
    l.state()
        .authorize(&actor, &action(stem.clone()), time)
        .map_err(StoreError::Invalid)?;
    let (mut f, quarantine) = crate::storage::files::create_fresh(&dir, &stem, 0o600)
        .map_err(StoreError::io(path, "create quarantine"))?;
    std::io::Write::write_all(&mut f, &removed)
        .and_then(|_| f.sync_all())
        .map_err(StoreError::io(&quarantine, "write quarantine"))?;
    sync_parent(&quarantine).map_err(StoreError::io(path, "sync directory"))?;
    l.file
        .set_len(torn.offset)
        .and_then(|_| l.file.sync_all())
        .map_err(StoreError::io(path, "truncate"))?;
    l.v.torn = None;
    let name = quarantine
        .file_name()
        .map_or(stem, |n| n.to_string_lossy().into_owned());
    let receipt = l.append(key, action(name), time)?;
    Ok(Some(Repaired {
        torn,
        quarantine,
        removed_blake3,
        receipt,
    }))
}
