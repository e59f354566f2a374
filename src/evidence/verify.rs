//! Verification (L5): integrity (format, chain, contiguous seq, time, signatures by keys
//! enrolled at that point), policy (each action allowed by the state at that point), and
//! the tail against an outside anchor. Every problem is reported, with seq and byte offset;
//! the check continues past bad events wherever framing allows.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::core::format::{FrameReader, ReadError};
pub use crate::core::judge::{Checker, Finding, Problem, Step};
use crate::core::merkle::Sha;
use crate::core::types::{Hash32, PublicKey, Timestamp};
use crate::evidence::checkpoint::{self, Checkpoint};
use crate::evidence::cosign::{WitnessPolicy, Witnessed};
use crate::storage::cache::{KeyTrail, Verified, note_key_event};
use crate::storage::pass::{self, Seen, Spec, TornTail, Witness};

/// An outside anchor for the tail (L5).
#[derive(Debug, Clone)]
pub enum Anchor {
    /// A head hash printed earlier: it must be the hash of some event in this ledger.
    Head(Hash32),
    /// A signed checkpoint note (C2SP format), as read: the first `size` events must have
    /// its root. Bytes that are not a note (not UTF-8, say) fail as an anchor.
    Checkpoint(Vec<u8>),
    /// Several checkpoint notes (an archive's, one per segment), each checked as one.
    Checkpoints(Vec<Vec<u8>>),
}

impl Anchor {
    fn notes(&self) -> &[Vec<u8>] {
        match self {
            Anchor::Head(_) => &[],
            Anchor::Checkpoint(n) => std::slice::from_ref(n),
            Anchor::Checkpoints(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub genesis: Option<Hash32>,
    pub anchor: Option<Anchor>,
    /// The head this user last verified of the ledger at this path (from their cache): the
    /// ledger must still start at its genesis and hold it, or that is an `anchor` finding.
    pub witness: Option<Witness>,
    /// A checkpoint note (as read) and the witnesses trusted to cosign it (§9.4): fewer
    /// than the quorum, or a trusted witness's line that fails, is an `anchor` finding, and
    /// each event it covers dated after the quorum-th earliest cosignature (plus the clock
    /// skew) a `time` finding.
    pub witnessed: Option<(Vec<u8>, WitnessPolicy)>,
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
    /// The genesis checked against `--expect-genesis`, if given, and the outcome.
    pub genesis_anchor: Option<String>,
    /// What the tail was checked against, if anything, and the outcome.
    pub anchor: Option<String>,
    /// How many trusted witnesses cosigned the checkpoint, when witnesses were given.
    pub witnesses: Option<String>,
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
pub fn verify_file(path: &Path, opts: &Options) -> io::Result<Report> {
    verify_file_full(path, opts, false).map(|(r, _)| r)
}

/// As `verify_file`; with `keep`, a ledger that verifies is also returned as `Verified`
/// (with its key trails), to be saved in the user's cache.
///
/// Signatures are first checked in batches on every core while the rest is checked in
/// order; if any batch holds a bad signature, the file is verified again one signature at
/// a time, so that unauthentic events never change the state and each is reported exactly.
pub fn verify_file_full(
    path: &Path,
    opts: &Options,
    keep: bool,
) -> io::Result<(Report, Option<Verified>)> {
    let open = || -> io::Result<_> {
        let file = crate::storage::files::open_regular(path, false)?;
        let len = file.metadata()?.len();
        Ok((BufReader::with_capacity(1 << 20, file.take(len)), len))
    };
    let (r, len) = open()?;
    let (report, verified, bad_batch) = verify_pass(r, len, opts, true, keep)?;
    if !bad_batch {
        return Ok((report, verified));
    }
    let (r, len) = open()?;
    let (report, _, _) = verify_pass(r, len, opts, false, false)?;
    Ok((report, None))
}

/// Verifies a ledger read from `r`, one signature at a time.
pub fn verify_reader<R: Read + Send>(r: R, opts: &Options) -> io::Result<Report> {
    Ok(verify_pass(r, 0, opts, false, false)?.0)
}

/// What the visitor of a verify pass gathers for the anchors.
#[derive(Default)]
struct Gathered {
    /// By checkpoint size: the root of the first `size` events, and the keys active then.
    at_size: BTreeMap<u64, (Sha, Vec<PublicKey>)>,
    head_found_at: Option<u64>,
    trails: BTreeMap<String, KeyTrail>,
    /// Events dated after a witness cosigned a checkpoint covering them.
    backdated: Vec<Finding>,
}

fn verify_pass<R: Read + Send>(
    r: R,
    len: u64,
    opts: &Options,
    batched: bool,
    keep: bool,
) -> io::Result<(Report, Option<Verified>, bool)> {
    let mut findings = Vec::new();
    let witnessed = opts.witnessed.as_ref().map(|(note, policy)| {
        std::str::from_utf8(note)
            .map_err(|_| checkpoint::CheckpointError::Malformed("not UTF-8"))
            .and_then(|n| policy.judge(n))
    });
    let cp_sizes: std::collections::BTreeSet<u64> = opts
        .anchor
        .iter()
        .flat_map(|a| a.notes())
        .filter_map(|note| std::str::from_utf8(note).ok())
        .filter_map(|n| Checkpoint::parse(n).ok())
        .map(|c| c.0.size)
        .collect();
    let frames = match FrameReader::new(r) {
        Err(ReadError::Io(e)) => return Err(e),
        Err(ReadError::Format(e)) => {
            findings.push(file_finding(Problem::Format, 0, e.to_string()));
            let report = finish(
                None,
                findings,
                opts,
                &Gathered::default(),
                witnessed.as_ref(),
                None,
                0,
            );
            return Ok((report, None, false));
        }
        Ok(f) => f,
    };
    let bound = match &witnessed {
        Some(Ok(w)) => w.time_bound().map(|t| (w, t)),
        _ => None,
    };
    let mut g = Gathered::default();
    let mut visit = |seen: &Seen<'_>| {
        if let Some((w, bound)) = bound {
            let index = seen.tree.size() - 1;
            if index < w.size && seen.event.time > bound {
                g.backdated.push(Finding {
                    problem: Problem::Time,
                    seq: Some(seen.event.seq),
                    index: Some(index),
                    offset: seen.frame.offset,
                    message: format!(
                        "event seq {} is dated {}, more than 5 minutes after a quorum of trusted witnesses had cosigned a checkpoint of {} events covering it (by {}): it was backdated, or the ledger was rewritten after",
                        seen.event.seq,
                        seen.event.time,
                        w.size,
                        bound.plus_micros(-crate::core::types::CLOCK_SKEW_US)
                    ),
                });
            }
        }
        // A checkpoint's keys are those active after its first max(size, 1) events.
        let size = seen.tree.size();
        for n in [0, size].into_iter().filter(|&n| n.max(1) == size) {
            if !cp_sizes.contains(&n) {
                continue;
            }
            let root = match n {
                0 => crate::core::merkle::empty_root(),
                _ => seen.tree.root(),
            };
            let keys = seen
                .state
                .signers
                .keys()
                .filter(|k| seen.state.actor_of(k).is_ok())
                .copied()
                .collect();
            g.at_size.insert(n, (root, keys));
        }
        if matches!(opts.anchor, Some(Anchor::Head(h)) if h == *seen.hash) {
            g.head_found_at = Some(seen.event.seq);
        }
        if keep {
            for k in seen.event.action.key_ids() {
                note_key_event(&mut g.trails, k, seen.frame.offset, seen.hash);
            }
        }
    };
    let spec = Spec {
        batched,
        witness: opts.witness,
        ..Spec::default()
    };
    let out = pass::run(
        frames,
        len,
        Checker::new(Timestamp::now()),
        &spec,
        &mut visit,
    )?;
    let mut frame_findings = out.findings;
    if !g.backdated.is_empty() {
        frame_findings.append(&mut g.backdated);
        frame_findings.sort_by_key(|f| f.index.unwrap_or(u64::MAX));
    }
    findings.extend(frame_findings);
    findings.extend(out.witness_missed);
    if let Some(t) = out.torn {
        findings.push(torn_finding(t, out.checker.frames()));
    }
    if out.checker.frames() == 0 && findings.is_empty() {
        findings.push(file_finding(
            Problem::Genesis,
            out.end,
            "the ledger has no events (no genesis)".into(),
        ));
    }
    let bad_batch = out.batch_failed;
    let report = finish(
        Some(&out.checker),
        findings,
        opts,
        &g,
        witnessed.as_ref(),
        out.torn,
        out.end,
    );
    let verified = match (
        keep && report.ok && !bad_batch,
        out.checker.head,
        out.head_offset,
    ) {
        (true, Some(head), Some(head_offset)) => Some(Verified {
            state: out.checker.state,
            head,
            head_offset,
            tree: out.checker.tree,
            trails: g.trails,
            torn: None,
        }),
        _ => None,
    };
    Ok((report, verified, bad_batch))
}

fn torn_finding(t: TornTail, index: u64) -> Finding {
    Finding {
        problem: Problem::Torn,
        seq: None,
        index: Some(index),
        offset: t.offset,
        message: format!(
            "torn frame at byte offset {}: the file ends inside a frame (an interrupted write); run `keyledger repair`",
            t.offset
        ),
    }
}

/// The report, with the genesis and tail anchors checked.
fn finish(
    checker: Option<&Checker>,
    mut findings: Vec<Finding>,
    opts: &Options,
    g: &Gathered,
    witnessed: Option<&Result<Witnessed, checkpoint::CheckpointError>>,
    torn: Option<TornTail>,
    end: u64,
) -> Report {
    let bytes = torn.map_or(end, |t| t.offset + t.bytes).max(end);
    let genesis_hash = checker.and_then(|c| c.genesis_hash);
    let genesis_anchor = opts.genesis.map(|want| {
        if genesis_hash == Some(want) {
            format!("genesis {want} matches the trusted genesis")
        } else {
            findings.push(file_finding(
                Problem::Anchor,
                crate::core::format::HEADER_LEN,
                format!(
                    "genesis hash is {}, not the trusted {want}: this is a different ledger",
                    genesis_hash.map_or("absent".into(), |h| h.hex())
                ),
            ));
            format!("genesis {want} NOT MATCHED")
        }
    });
    let anchor = match &opts.anchor {
        None => None,
        Some(Anchor::Head(h)) => Some(match g.head_found_at {
            Some(seq) => format!("head {h} found at seq {seq}"),
            None => {
                findings.push(file_finding(
                    Problem::Anchor,
                    end,
                    format!("the expected head {h} is not the hash of any event here: the tail was cut or the ledger was rewritten"),
                ));
                format!("head {h} NOT FOUND")
            }
        }),
        Some(Anchor::Checkpoint(note)) => Some(check_checkpoint(
            note,
            checker,
            &g.at_size,
            end,
            &mut findings,
        )),
        Some(Anchor::Checkpoints(notes)) => {
            let before = findings.len();
            let outcomes: Vec<String> = notes
                .iter()
                .map(|n| check_checkpoint(n, checker, &g.at_size, end, &mut findings))
                .collect();
            Some(match findings.len() == before {
                true => format!("{} checkpoints match", notes.len()),
                false => outcomes
                    .into_iter()
                    .filter(|o| o.contains("FAILED"))
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        }
    };
    let witnesses = witnessed.map(|w| match w {
        Ok(w) => {
            if !w.met() {
                findings.push(file_finding(
                    Problem::Anchor,
                    end,
                    format!("the checkpoint is not witnessed: {}", w.summary()),
                ));
            }
            w.summary()
        }
        Err(e) => {
            findings.push(file_finding(
                Problem::Anchor,
                end,
                format!("the checkpoint's cosignatures: {e}"),
            ));
            format!("FAILED: {e}")
        }
    });
    let state = checker.map(|c| &c.state);
    let head = checker.and_then(|c| c.head);
    Report {
        ok: findings.is_empty(),
        events: checker.map_or(0, |c| c.frames()),
        bytes,
        ledger_id: state.and_then(|s| s.ledger_id).map(|i| i.hex()),
        genesis_hash: genesis_hash.map(|h| h.hex()),
        head_seq: head.map(|h| h.seq),
        head_hash: head.map(|h| h.hash.hex()),
        head_time: head.map(|h| h.time.to_string()),
        genesis_anchor,
        anchor,
        witnesses,
        findings,
    }
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

/// §9.3: the checkpoint's origin is this ledger's, it is signed by a key active after its
/// first max(size, 1) events, the ledger has at least `size` events, and the first `size`
/// have its root.
fn check_checkpoint(
    note: &[u8],
    checker: Option<&Checker>,
    at_size: &BTreeMap<u64, (Sha, Vec<PublicKey>)>,
    end: u64,
    findings: &mut Vec<Finding>,
) -> String {
    let mut fail = |msg: String| {
        findings.push(file_finding(Problem::Anchor, end, msg.clone()));
        format!("checkpoint FAILED: {msg}")
    };
    let Some(id) = checker.and_then(|c| c.state.ledger_id) else {
        return fail("the ledger has no genesis to check a checkpoint against".into());
    };
    let Ok(note) = std::str::from_utf8(note) else {
        return fail("the checkpoint is not a signed note: it is not UTF-8 text".into());
    };
    let events = checker.map_or(0, |c| c.frames());
    let parsed = match Checkpoint::parse(note) {
        Ok((cp, _, _)) => cp,
        Err(e) => return fail(e.to_string()),
    };
    if parsed.size > events {
        return fail(format!(
            "the checkpoint covers {} events but the ledger has {events}: the tail was cut",
            parsed.size
        ));
    }
    let Some((root, keys)) = at_size.get(&parsed.size) else {
        return fail(format!(
            "the first {} events could not be read to check the checkpoint",
            parsed.size
        ));
    };
    let (cp, signer) = match Checkpoint::verify(note, &checkpoint::origin(&id), keys) {
        Ok(v) => v,
        Err(e) => return fail(e.to_string()),
    };
    if *root != cp.root {
        return fail(format!(
            "the first {} events do not have the checkpoint's Merkle root: the ledger was rewritten or forked",
            cp.size
        ));
    }
    let who = checker
        .and_then(|c| c.state.signers.get(&signer))
        .map_or("?", |s| s.principal.as_str());
    format!(
        "checkpoint of {} events signed by {who} ({signer}) matches",
        cp.size
    )
}
