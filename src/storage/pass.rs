//! One pass over a ledger's frames: every read, append and `verify` goes through here, so
//! every path gives one verdict (L5, L8).
//!
//! Signatures are checked inline, or in batches on every core (`Spec::batched`; both use
//! the ZIP-215 rule of `signing`, so they accept exactly the same signatures), except for
//! events up to a `Trust`: a seq and hash that this user verified before (a cache only they
//! could have written). Those need no signature check, but the chain read from the file
//! must pass through that exact hash at that seq, or the pass reports an `anchor` finding.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use crate::core::event::Event;
use crate::core::format::{FormatError, FrameReader, HEADER_LEN, RawFrame, ReadError};
use crate::core::judge::{Checker, Finding, Problem};
use crate::core::merkle::TreeBuilder;
use crate::core::signing::{KeyPoints, verify_hash};
use crate::core::state::State;
use crate::core::types::{Hash32, Timestamp};
use crate::storage::pipeline::{Prepared, pipelined};

/// A seq and the hash of the event there, verified earlier by this user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    pub seq: u64,
    pub hash: Hash32,
}

/// The last head this user verified of a ledger, and that ledger's genesis hash: the
/// chain read must start at that genesis and pass through that head, or the ledger was
/// replaced, cut or rewritten since (`Outcome::witness_missed`). Unlike `Trust`, it
/// spares no signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Witness {
    pub genesis: Hash32,
    pub head: Trust,
}

/// Why a ledger is not the one whose head this user verified: another genesis.
pub fn replaced_message(genesis_now: Option<&Hash32>, verified: &Hash32) -> String {
    format!(
        "this path now holds another ledger (genesis {}) than the one this user verified (genesis {verified}): it was replaced",
        genesis_now.map_or("?".into(), |g| g.hex()),
    )
}

/// Why a ledger is not the one whose head this user verified: that head is gone.
pub fn cut_message(head: &Trust) -> String {
    format!(
        "the ledger no longer holds the event at seq {} (hash {}) that this user verified: its tail was cut or it was rewritten since",
        head.seq, head.hash
    )
}

/// Where a point-in-time replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Include events with seq <= N.
    Seq(u64),
    /// Include events with time <= T.
    Time(Timestamp),
}

impl Until {
    fn is_past(self, ev: &Event) -> bool {
        match self {
            Until::Seq(n) => ev.seq > n,
            Until::Time(t) => ev.time > t,
        }
    }
}

/// A torn tail found at the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    pub offset: u64,
    pub bytes: u64,
}

/// How to run a pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spec {
    /// Check signatures in batches on worker threads (a failing batch sets
    /// `Outcome::batch_failed`; run again unbatched to name the event).
    pub batched: bool,
    pub trust: Option<Trust>,
    pub witness: Option<Witness>,
    /// Fold and visit events only up to here (events after it are read only as far as the
    /// trusted hash, to confirm it).
    pub until: Option<Until>,
    /// Stop at the first finding (reads and appends); else report every one (`verify`).
    pub stop_at_first: bool,
}

/// One event seen during a pass, with the state and tree just after it.
pub struct Seen<'a> {
    pub frame: &'a RawFrame,
    pub event: &'a Event,
    pub hash: &'a Hash32,
    pub state: &'a State,
    pub tree: &'a TreeBuilder,
}

impl Seen<'_> {
    /// The principal who acted (the request's signer through a server).
    pub fn actor(&self) -> &str {
        self.state.actor_and_enroller(self.event).0
    }
}

pub struct Outcome {
    pub checker: Checker,
    pub findings: Vec<Finding>,
    pub torn: Option<TornTail>,
    /// Offset just past the last frame judged.
    pub end: u64,
    /// Offset of the last frame judged (the head frame), if any.
    pub head_offset: Option<u64>,
    /// Some batch of signatures failed (only with `Spec::batched`).
    pub batch_failed: bool,
    /// The chain read does not pass through `Spec::witness` (an `anchor` finding, not
    /// among `findings`: what to do about it is the caller's).
    pub witness_missed: Option<Finding>,
}

/// What a pass has seen of its witness.
struct Witnessed {
    reached: bool,
    missed: Option<Finding>,
}

impl Witnessed {
    /// Frame `index` at `offset` hashes to `hash`.
    fn see(&mut self, w: &Witness, index: u64, offset: u64, hash: &Hash32) {
        let miss = |message| Finding {
            problem: Problem::Anchor,
            seq: Some(index),
            index: Some(index),
            offset,
            message,
        };
        if index == 0 && *hash != w.genesis && self.missed.is_none() {
            self.missed = Some(miss(replaced_message(Some(hash), &w.genesis)));
        }
        if index == w.head.seq {
            self.reached = true;
            if *hash != w.head.hash && self.missed.is_none() {
                self.missed = Some(miss(cut_message(&w.head)));
            }
        }
    }
}

/// Signatures checked per `verify_batch` call.
const SIG_BATCH: usize = 256;

type SigJob = Vec<crate::core::signing::Check>;

/// True if every signature of the batch verifies (`signing::verify_batch`, ZIP-215).
fn batch_ok(job: &SigJob, cache: &mut KeyPoints) -> bool {
    crate::core::signing::learn_points(job, cache);
    crate::core::signing::all_valid(job, cache)
}

/// Runs one pass over `frames` (a file of `len` bytes), continuing `checker`, calling
/// `visit` with each event folded. Only failing to read is an `Err`.
pub fn run<R: Read + Send>(
    frames: FrameReader<R>,
    len: u64,
    mut checker: Checker,
    spec: &Spec,
    visit: &mut dyn FnMut(&Seen<'_>),
) -> io::Result<Outcome> {
    if let Some(v) = frames.version() {
        checker.state.format_version = v;
    }
    let bad = AtomicBool::new(false);
    if !spec.batched {
        return ordered(frames, len, checker, spec, visit, None, &bad);
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<SigJob>(workers * 2);
    let job_rx = std::sync::Mutex::new(job_rx);
    let out = std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut cache = KeyPoints::new();
                loop {
                    let job = match job_rx.lock().map(|rx| rx.recv()) {
                        Ok(Ok(job)) => job,
                        _ => return,
                    };
                    if !batch_ok(&job, &mut cache) {
                        bad.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
        // `job_tx` moves in and is dropped when the ordered pass ends; the workers then
        // drain the queue and stop.
        ordered(frames, len, checker, spec, visit, Some(job_tx), &bad)
    });
    // Read only after the scope has joined every worker: the last batches count too.
    out.map(|mut o| {
        o.batch_failed = bad.load(Ordering::Relaxed);
        o
    })
}

fn rewritten(t: &Trust, index: u64, offset: u64, found: &Hash32) -> Finding {
    Finding {
        problem: Problem::Anchor,
        seq: Some(t.seq),
        index: Some(index),
        offset,
        message: format!(
            "the event at seq {} hashes to {found}, not to {} as when this user verified it: the ledger was rewritten since",
            t.seq, t.hash
        ),
    }
}

fn ordered<R: Read + Send>(
    frames: FrameReader<R>,
    len: u64,
    mut checker: Checker,
    spec: &Spec,
    visit: &mut dyn FnMut(&Seen<'_>),
    jobs: Option<SyncSender<SigJob>>,
    bad: &AtomicBool,
) -> io::Result<Outcome> {
    let mut findings = Vec::new();
    let mut torn = None;
    let mut job: SigJob = Vec::with_capacity(SIG_BATCH);
    let mut folding = true;
    let mut reached_trust = spec.trust.is_none_or(|t| checker.frames() > t.seq);
    let mut witnessed = Witnessed {
        reached: spec.witness.is_none_or(|w| checker.frames() > w.head.seq),
        missed: None,
    };
    // Past `until`, the chain is still read as far as the trusted and witnessed heads.
    let confirm_to = spec
        .trust
        .map(|t| t.seq)
        .max(spec.witness.map(|w| w.head.seq));
    let mut end = checker.head.map_or(HEADER_LEN, |h| h.end);
    let mut head_offset = None;
    pipelined(frames, |items| -> io::Result<()> {
        while let Some(item) = items.next() {
            let Prepared {
                frame,
                hash,
                decoded,
            } = match item {
                Ok(p) => p,
                Err((ReadError::Io(e), _)) => return Err(e),
                Err((ReadError::Format(FormatError::Torn { offset, .. }), _)) => {
                    torn = Some(TornTail {
                        offset,
                        bytes: len.saturating_sub(offset),
                    });
                    continue;
                }
                Err((ReadError::Format(e), good_end)) => {
                    let offset = match e {
                        FormatError::BadLength { offset, .. } => offset,
                        _ => good_end,
                    };
                    findings.push(Finding {
                        problem: Problem::Format,
                        seq: None,
                        index: Some(checker.frames()),
                        offset,
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let index = checker.frames();
            if index.is_multiple_of(16_384) {
                crate::core::progress::report(frame.offset, len);
            }
            if folding
                && let (Some(u), Ok(ev)) = (spec.until, &decoded)
                && u.is_past(ev)
                && checker.head.is_some()
            {
                folding = false;
            }
            if !folding {
                // Past the point asked for: only confirm that the chain reaches the
                // trusted and witnessed hashes that lie ahead.
                let Some(to) = confirm_to.filter(|&to| index <= to) else {
                    break;
                };
                if let Some(f) = checker.link(&frame, hash, &decoded) {
                    findings.push(f);
                    break;
                }
                if let Some(t) = &spec.trust
                    && index == t.seq
                {
                    reached_trust = true;
                    if hash != t.hash {
                        findings.push(rewritten(t, index, frame.offset, &hash));
                        break;
                    }
                }
                if let Some(w) = &spec.witness {
                    witnessed.see(w, index, frame.offset, &hash);
                }
                if index == to {
                    break;
                }
                items.recycle(frame, decoded.ok());
                continue;
            }
            let trusted = spec.trust.is_some_and(|t| index <= t.seq);
            let sig = match &decoded {
                Ok(ev) if !trusted && jobs.is_none() => {
                    Some(verify_hash(&ev.signer, &hash, &frame.sig))
                }
                _ => None,
            };
            let step = checker.judge(&frame, hash, decoded, sig);
            end = frame.end();
            head_offset = Some(frame.offset);
            if !trusted && let (Some(tx), Some(ev)) = (&jobs, &step.event) {
                job.push((ev.signer, step.hash, frame.sig));
                if job.len() == SIG_BATCH {
                    let _ = tx.send(std::mem::replace(&mut job, Vec::with_capacity(SIG_BATCH)));
                }
            }
            let mut step_findings = step.findings;
            if let Some(t) = &spec.trust
                && index == t.seq
            {
                reached_trust = true;
                if step.hash != t.hash {
                    step_findings.push(rewritten(t, index, frame.offset, &step.hash));
                }
            }
            if let Some(w) = &spec.witness {
                witnessed.see(w, index, frame.offset, &step.hash);
            }
            let stop =
                spec.stop_at_first && (!step_findings.is_empty() || bad.load(Ordering::Relaxed));
            findings.extend(step_findings);
            if !stop && let Some(ev) = &step.event {
                visit(&Seen {
                    frame: &frame,
                    event: ev,
                    hash: &step.hash,
                    state: &checker.state,
                    tree: &checker.tree,
                });
            }
            items.recycle(frame, step.event);
            if stop {
                break;
            }
        }
        Ok(())
    })?;
    crate::core::progress::report(len, len);
    if let Some(tx) = jobs
        && !job.is_empty()
    {
        let _ = tx.send(job);
    }
    if !reached_trust
        && findings.is_empty()
        && let Some(t) = &spec.trust
    {
        findings.push(Finding {
            problem: Problem::Anchor,
            seq: None,
            index: None,
            offset: end,
            message: format!(
                "the ledger ends before seq {}, which this user verified earlier (hash {}): its tail was cut or it was rewritten",
                t.seq, t.hash
            ),
        });
    }
    if !witnessed.reached
        && findings.is_empty()
        && let Some(w) = &spec.witness
    {
        witnessed.missed.get_or_insert(Finding {
            problem: Problem::Anchor,
            seq: None,
            index: None,
            offset: end,
            message: cut_message(&w.head),
        });
    }
    Ok(Outcome {
        checker,
        findings,
        torn,
        end,
        head_offset,
        batch_failed: false,
        witness_missed: witnessed.missed,
    })
}
