//! Verification (L5): integrity (format, chain, contiguous seq, non-decreasing time,
//! signatures by keys enrolled at that point), policy (each action allowed by the state at
//! that point), and the tail against an outside anchor. Every problem is reported, with
//! seq and byte offset; the check continues past bad events wherever framing allows.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::chain::{Head, event_hash};
use crate::checkpoint::{self, Checkpoint};
use crate::event::{DecodeError, Event};
use crate::format::{FormatError, FrameReader, RawFrame, ReadError};
use crate::merkle::TreeBuilder;
use crate::signing::verify_hash;
use crate::state::State;
use crate::types::{Hash32, PublicKey, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    /// Header, frame length, or an undecodable body.
    Format,
    /// A frame cut short at the end of the file (an interrupted write).
    Torn,
    Sequence,
    Chain,
    Time,
    Signature,
    Signer,
    Policy,
    Genesis,
    /// The ledger does not match the outside anchor (genesis hash, head hash, checkpoint).
    Anchor,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Format => "format",
            Self::Torn => "torn",
            Self::Sequence => "sequence",
            Self::Chain => "chain",
            Self::Time => "time",
            Self::Signature => "signature",
            Self::Signer => "signer",
            Self::Policy => "policy",
            Self::Genesis => "genesis",
            Self::Anchor => "anchor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub problem: Problem,
    /// The seq the event claims (absent if it could not be decoded, or for whole-file problems).
    pub seq: Option<u64>,
    /// Position of the frame in the file, counting from 0 (absent for whole-file problems).
    pub index: Option<u64>,
    /// Byte offset of the frame (or of the problem) in the file.
    pub offset: u64,
    pub message: String,
}

/// The outcome of checking one frame.
pub struct Step {
    pub event: Option<Event>,
    pub hash: Hash32,
    pub findings: Vec<Finding>,
}

/// Judges frames one after another. Owns the folded state and the head.
#[derive(Default)]
pub struct Checker {
    pub state: State,
    pub head: Option<Head>,
    check_signatures: bool,
    index: u64,
    last_seq: Option<u64>,
    prev_hash: Hash32,
    last_time: Option<Timestamp>,
}

impl Checker {
    pub fn new(check_signatures: bool) -> Self {
        Checker {
            check_signatures,
            ..Default::default()
        }
    }

    /// Continues after a known-good `head` whose folded state is `state` (no signature checks).
    pub fn resume(state: State, head: Head) -> Self {
        Checker {
            state,
            head: Some(head),
            check_signatures: false,
            index: head.seq + 1,
            last_seq: Some(head.seq),
            prev_hash: head.hash,
            last_time: Some(head.time),
        }
    }

    /// Frames judged so far.
    pub fn frames(&self) -> u64 {
        self.index
    }

    pub fn step(&mut self, frame: &RawFrame) -> Step {
        self.judge(frame, event_hash(&frame.body), Event::decode(&frame.body))
    }

    /// As `step`, with the frame's hash and decoded body already computed (`Prepared`).
    pub fn judge(
        &mut self,
        frame: &RawFrame,
        hash: Hash32,
        decoded: Result<Event, DecodeError>,
    ) -> Step {
        let index = self.index;
        self.index += 1;
        let mut findings = Vec::new();
        let mut add = |problem, seq, message: String| {
            findings.push(Finding {
                problem,
                seq,
                index: Some(index),
                offset: frame.offset,
                message,
            })
        };
        let ev = match decoded {
            Ok(ev) => ev,
            Err(e) => {
                add(Problem::Format, None, e.to_string());
                self.prev_hash = hash;
                self.last_seq = self.last_seq.map(|s| s + 1).or(Some(0));
                return Step {
                    event: None,
                    hash,
                    findings,
                };
            }
        };
        let seq = Some(ev.seq);
        let expected_seq = self.last_seq.map_or(0, |s| s + 1);
        if ev.seq != expected_seq {
            add(
                Problem::Sequence,
                seq,
                format!(
                    "seq {} where {expected_seq} was expected (events missing, duplicated or reordered)",
                    ev.seq
                ),
            );
        }
        if ev.prev != self.prev_hash {
            add(
                Problem::Chain,
                seq,
                format!(
                    "prev hash {} does not match the hash of the event before it ({})",
                    ev.prev, self.prev_hash
                ),
            );
        }
        if let Some(t) = self.last_time.filter(|t| ev.time < *t) {
            add(
                Problem::Time,
                seq,
                format!("time {} is earlier than the previous event's {t}", ev.time),
            );
        }
        let sig_ok = !self.check_signatures || verify_hash(&ev.signer, &hash, &frame.sig);
        if !sig_ok {
            add(
                Problem::Signature,
                seq,
                format!(
                    "signature does not verify against the event hash {hash} and signer {}",
                    ev.signer
                ),
            );
        }
        if index == 0 && !matches!(ev.action, crate::event::Action::Genesis { .. }) {
            add(
                Problem::Genesis,
                seq,
                "the first event is not a genesis event".into(),
            );
        } else if sig_ok {
            // An event whose signature fails is not authentic: it must not change the state.
            if let Err(e) = self.state.apply(&ev, &hash) {
                let problem = if e.is_signer_problem() {
                    Problem::Signer
                } else if index == 0 {
                    Problem::Genesis
                } else {
                    Problem::Policy
                };
                add(problem, seq, e.to_string());
            }
        }
        self.prev_hash = hash;
        self.last_seq = Some(ev.seq);
        self.last_time = Some(self.last_time.map_or(ev.time, |t| t.max(ev.time)));
        self.head = Some(Head {
            seq: ev.seq,
            hash,
            time: ev.time,
            end: frame.end(),
        });
        Step {
            event: Some(ev),
            hash,
            findings,
        }
    }
}

/// A frame with the work that needs no state: its hash and its decoded body.
pub struct Prepared {
    pub frame: RawFrame,
    pub hash: Hash32,
    pub decoded: Result<Event, DecodeError>,
}

/// A read error, and the offset just past the last complete frame before it.
pub type PreparedError = (ReadError, u64);

/// Frames handed over per channel message, and the body bytes after which a batch is sent
/// early (so memory stays bounded however large the frames).
const PREPARE_BATCH: usize = 256;
const PREPARE_BATCH_BYTES: usize = 256 * 1024;

type Batch = Vec<Result<Prepared, PreparedError>>;
type Spent = Vec<(RawFrame, Option<Event>)>;

/// Frames read, hashed and decoded in order on a helper thread, a few batches ahead.
pub struct Pipeline {
    rx: std::sync::mpsc::Receiver<Batch>,
    pending: std::vec::IntoIter<Result<Prepared, PreparedError>>,
    spent_tx: std::sync::mpsc::Sender<Spent>,
    spent: Spent,
    spent_bytes: usize,
}

impl Iterator for Pipeline {
    type Item = Result<Prepared, PreparedError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.next() {
                return Some(item);
            }
            self.pending = self.rx.recv().ok()?.into_iter();
        }
    }
}

impl Pipeline {
    /// Hands a finished frame and event back to be freed on the helper thread, which
    /// allocated them: frees across threads contend on the allocator's locks.
    pub fn recycle(&mut self, frame: RawFrame, event: Option<Event>) {
        self.spent_bytes += frame.body.len();
        self.spent.push((frame, event));
        if self.spent.len() == PREPARE_BATCH || self.spent_bytes >= PREPARE_BATCH_BYTES {
            self.spent_bytes = 0;
            // If the helper has finished, the batch is simply dropped here.
            let _ = self.spent_tx.send(std::mem::replace(
                &mut self.spent,
                Vec::with_capacity(PREPARE_BATCH),
            ));
        }
    }
}

/// Runs `f` over the frames of `frames` (replay and verify then use two cores). The helper
/// stops when the frames end, at the first read error (passed on as the last item), or
/// when `f` returns.
pub fn pipelined<R: Read + Send, T>(
    mut frames: FrameReader<R>,
    f: impl FnOnce(&mut Pipeline) -> T,
) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Spent>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut batch = Vec::with_capacity(PREPARE_BATCH);
            let mut bytes = 0;
            while let Some(item) = frames.next() {
                let stop = item.is_err();
                batch.push(match item {
                    Ok(frame) => {
                        bytes += frame.body.len();
                        Ok(Prepared {
                            hash: event_hash(&frame.body),
                            decoded: Event::decode(&frame.body),
                            frame,
                        })
                    }
                    Err(e) => Err((e, frames.offset())),
                });
                if stop || batch.len() == PREPARE_BATCH || bytes >= PREPARE_BATCH_BYTES {
                    bytes = 0;
                    // A closed channel means the consumer is done.
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(PREPARE_BATCH));
                    if tx.send(full).is_err() || stop {
                        return;
                    }
                    spent_rx.try_iter().for_each(drop);
                }
            }
            let _ = tx.send(batch);
        });
        let mut pipeline = Pipeline {
            rx,
            pending: Vec::new().into_iter(),
            spent_tx,
            spent: Vec::with_capacity(PREPARE_BATCH),
            spent_bytes: 0,
        };
        f(&mut pipeline)
        // `pipeline` (the receiver) is dropped here, before the scope joins the helper.
    })
}

/// An outside anchor for the tail (L5).
#[derive(Debug, Clone)]
pub enum Anchor {
    /// A head hash printed earlier: it must be the hash of some event in this ledger.
    Head(Hash32),
    /// A signed checkpoint note (C2SP format): the first `size` events must have its root.
    Checkpoint(String),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub genesis: Option<Hash32>,
    pub anchor: Option<Anchor>,
}

/// Consecutive bad frames, merged for display.
#[derive(Debug, Clone, Serialize)]
pub struct BadRange {
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub start_offset: u64,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub events: u64,
    pub bytes: u64,
    pub ledger_id: Option<String>,
    pub genesis_hash: Option<String>,
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    pub head_time: Option<String>,
    /// What the tail was checked against, if anything, and the outcome.
    pub anchor: Option<String>,
    pub findings: Vec<Finding>,
}

impl Report {
    /// Findings grouped into runs of adjacent frames.
    pub fn ranges(&self) -> Vec<BadRange> {
        let mut out: Vec<BadRange> = Vec::new();
        let mut last_index: Option<u64> = None;
        for f in &self.findings {
            let adjacent = match (last_index, f.index) {
                (Some(a), Some(b)) => b == a || b == a + 1,
                _ => false,
            };
            match out.last_mut() {
                Some(r) if adjacent => {
                    if f.seq.is_some() {
                        r.last_seq = f.seq;
                    }
                    r.findings.push(f.clone());
                }
                _ => out.push(BadRange {
                    first_seq: f.seq,
                    last_seq: f.seq,
                    start_offset: f.offset,
                    findings: vec![f.clone()],
                }),
            }
            last_index = f.index;
        }
        out
    }
}

/// Verifies a ledger file. Only failing to open or read the file is an `Err`.
///
/// Signatures are first checked in batches on every core while the rest is checked in
/// order; if any batch holds a bad signature, the file is verified again one signature at
/// a time, so that unauthentic events never change the state and each is reported exactly.
pub fn verify_file(path: &Path, opts: &Options) -> io::Result<Report> {
    let open = || -> io::Result<_> {
        let file = File::open(path)?;
        let len = crate::store::stable_len(&file)?;
        Ok(BufReader::with_capacity(1 << 20, file.take(len)))
    };
    let (report, bad_signatures) = verify_pass(open()?, opts, true)?;
    if !bad_signatures {
        return Ok(report);
    }
    Ok(verify_pass(open()?, opts, false)?.0)
}

/// Verifies a ledger read from `r`, one signature at a time.
pub fn verify_reader<R: Read + Send>(r: R, opts: &Options) -> io::Result<Report> {
    Ok(verify_pass(r, opts, false)?.0)
}

/// Signatures checked per `verify_batch` call.
const SIG_BATCH: usize = 256;

type SigJob = Vec<(PublicKey, Hash32, [u8; 64])>;

/// Decompressed signer keys, by their bytes (`None`: not a usable key). A ledger has few
/// signers, and decompressing a key costs about as much as verifying a signature.
type KeyCache = std::collections::HashMap<PublicKey, Option<ed25519_dalek::VerifyingKey>>;

/// True if every signature of the batch verifies.
fn batch_ok(job: &SigJob, cache: &mut KeyCache) -> bool {
    let keys: Option<Vec<ed25519_dalek::VerifyingKey>> = job
        .iter()
        .map(|(pk, _, _)| {
            *cache.entry(*pk).or_insert_with(|| {
                ed25519_dalek::VerifyingKey::from_bytes(pk.bytes())
                    .ok()
                    .filter(|k| !k.is_weak())
            })
        })
        .collect();
    let Some(keys) = keys else {
        return false;
    };
    let msgs: Vec<&[u8]> = job.iter().map(|(_, h, _)| &h.0[..]).collect();
    let sigs: Vec<ed25519_dalek::Signature> = job
        .iter()
        .map(|(_, _, s)| ed25519_dalek::Signature::from_bytes(s))
        .collect();
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
}

/// One pass. With `batched`, signatures go to worker threads and the state fold assumes
/// them valid; the second value says whether any batch failed (then run unbatched).
fn verify_pass<R: Read + Send>(r: R, opts: &Options, batched: bool) -> io::Result<(Report, bool)> {
    if !batched {
        return verify_ordered(r, opts, None).map(|rep| (rep, false));
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<SigJob>(workers * 2);
    let job_rx = std::sync::Mutex::new(job_rx);
    let bad = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut cache = KeyCache::new();
                loop {
                    let job = match job_rx.lock().map(|rx| rx.recv()) {
                        Ok(Ok(job)) => job,
                        _ => return,
                    };
                    if !batch_ok(&job, &mut cache) {
                        bad.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        // `job_tx` moves in and is dropped when the ordered pass ends; the workers then
        // drain the queue and stop.
        verify_ordered(r, opts, Some(job_tx))
    })
    .map(|rep| {
        // Read only after the scope has joined every worker: the last batches count too.
        (rep, bad.load(std::sync::atomic::Ordering::Relaxed))
    })
}

/// The in-order checks. With `jobs`, signatures are sent there in batches instead of being
/// checked here.
fn verify_ordered<R: Read + Send>(
    r: R,
    opts: &Options,
    jobs: Option<std::sync::mpsc::SyncSender<SigJob>>,
) -> io::Result<Report> {
    let mut findings = Vec::new();
    let mut checker = Checker::new(jobs.is_none());
    let mut job: SigJob = Vec::with_capacity(SIG_BATCH);
    let want_size = match &opts.anchor {
        Some(Anchor::Checkpoint(note)) => Checkpoint::parse(note).ok().map(|c| c.0.size),
        _ => None,
    };
    let mut tree = TreeBuilder::default();
    let mut root_at_size = None;
    let mut head_found_at = None;
    let mut bytes = crate::format::HEADER_LEN;
    match FrameReader::new(r) {
        Err(ReadError::Io(e)) => return Err(e),
        Err(ReadError::Format(e)) => findings.push(file_finding(Problem::Format, 0, e.to_string())),
        Ok(frames) => {
            pipelined(frames, |items| -> io::Result<()> {
                while let Some(item) = items.next() {
                    let (frame, hash, decoded) = match item {
                        Ok(p) => (p.frame, p.hash, p.decoded),
                        Err((ReadError::Io(e), _)) => return Err(e),
                        Err((ReadError::Format(e), good_end)) => {
                            let (problem, offset) = match e {
                                FormatError::Torn { offset, .. } => (Problem::Torn, offset),
                                FormatError::BadLength { offset, .. } => (Problem::Format, offset),
                                _ => (Problem::Format, good_end),
                            };
                            findings.push(Finding {
                                problem,
                                seq: None,
                                index: Some(checker.frames()),
                                offset,
                                message: e.to_string(),
                            });
                            continue;
                        }
                    };
                    let step = checker.judge(&frame, hash, decoded);
                    findings.extend(step.findings);
                    bytes = frame.end();
                    if let (Some(tx), Some(ev)) = (&jobs, &step.event) {
                        job.push((ev.signer, step.hash, frame.sig));
                        if job.len() == SIG_BATCH {
                            let _ =
                                tx.send(std::mem::replace(&mut job, Vec::with_capacity(SIG_BATCH)));
                        }
                    }
                    if let Some(Event {
                        seq,
                        action: crate::event::Action::CheckpointRecorded { size, root },
                        ..
                    }) = &step.event
                        && (*size != tree.size() || root.0 != tree.root())
                    {
                        findings.push(Finding {
                            problem: Problem::Anchor,
                            seq: Some(*seq),
                            index: Some(checker.frames() - 1),
                            offset: frame.offset,
                            message: format!("the recorded checkpoint of {size} events does not match the Merkle root of the events before it"),
                        });
                    }
                    tree.push(&step.hash);
                    if Some(tree.size()) == want_size {
                        root_at_size = Some(tree.root());
                    }
                    if matches!(opts.anchor, Some(Anchor::Head(h)) if h == step.hash) {
                        head_found_at = step
                            .event
                            .as_ref()
                            .map(|e| e.seq)
                            .or(Some(checker.frames() - 1));
                    }
                    items.recycle(frame, step.event);
                }
                Ok(())
            })?;
            if checker.frames() == 0 && findings.is_empty() {
                findings.push(file_finding(
                    Problem::Genesis,
                    bytes,
                    "the ledger has no events (no genesis)".into(),
                ));
            }
        }
    }
    if let Some(tx) = jobs
        && !job.is_empty()
    {
        let _ = tx.send(job);
    }
    let state = &checker.state;
    if let Some(want) = opts.genesis
        && state.genesis_hash != Some(want)
    {
        let got = state.genesis_hash;
        findings.push(file_finding(
            Problem::Anchor,
            crate::format::HEADER_LEN,
            format!(
                "genesis hash is {}, not the trusted {want}: this is a different ledger",
                got.map_or("absent".into(), |h| h.hex())
            ),
        ));
    }
    let anchor = match &opts.anchor {
        None => None,
        Some(Anchor::Head(h)) => Some(match head_found_at {
            Some(seq) => format!("head {h} found at seq {seq}"),
            None => {
                findings.push(file_finding(
                    Problem::Anchor,
                    bytes,
                    format!("the expected head {h} is not the hash of any event here: the tail was cut or the ledger was rewritten"),
                ));
                format!("head {h} NOT FOUND")
            }
        }),
        Some(Anchor::Checkpoint(note)) => Some(check_checkpoint(
            note,
            state,
            checker.frames(),
            root_at_size,
            bytes,
            &mut findings,
        )),
    };
    let head = checker.head;
    Ok(Report {
        ok: findings.is_empty(),
        events: checker.frames(),
        bytes,
        ledger_id: state.ledger_id.map(|i| i.hex()),
        genesis_hash: state.genesis_hash.map(|h| h.hex()),
        head_seq: head.map(|h| h.seq),
        head_hash: head.map(|h| h.hash.hex()),
        head_time: head.map(|h| h.time.to_string()),
        anchor,
        findings,
    })
}

fn file_finding(problem: Problem, offset: u64, message: String) -> Finding {
    Finding {
        problem,
        seq: None,
        index: None,
        offset,
        message,
    }
}

fn check_checkpoint(
    note: &str,
    state: &State,
    events: u64,
    root_at_size: Option<[u8; 32]>,
    bytes: u64,
    findings: &mut Vec<Finding>,
) -> String {
    let mut fail = |msg: String| {
        findings.push(file_finding(Problem::Anchor, bytes, msg.clone()));
        format!("checkpoint FAILED: {msg}")
    };
    let Some(id) = state.ledger_id else {
        return fail("the ledger has no genesis to check a checkpoint against".into());
    };
    let keys: Vec<_> = state.signers.keys().collect();
    let (cp, signer) = match Checkpoint::verify(note, &checkpoint::origin(&id), keys) {
        Ok(v) => v,
        Err(e) => return fail(e.to_string()),
    };
    if cp.size > events {
        return fail(format!(
            "the checkpoint covers {} events but the ledger has {events}: the tail was cut",
            cp.size
        ));
    }
    if root_at_size != Some(cp.root) {
        return fail(format!(
            "the first {} events do not have the checkpoint's Merkle root: the ledger was rewritten or forked",
            cp.size
        ));
    }
    let who = state
        .signers
        .get(&signer)
        .map_or("?", |s| s.principal.as_str());
    format!(
        "checkpoint of {} events signed by {who} ({signer}) matches",
        cp.size
    )
}
