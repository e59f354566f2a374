//! Judging frames one after another (ledger-format.md §8): format, sequence, chain, time,
//! genesis, signer, policy and recorded anchors. Pure: bytes and a verdict on the signature
//! in, findings and the folded state out. Which signatures to check, and how, is the
//! caller's choice (`pass`); a frame whose signature fails never changes the state.

use serde::Serialize;

use crate::core::chain::{Head, event_hash};
use crate::core::event::{Action, DecodeError, Event};
use crate::core::format::RawFrame;
use crate::core::merkle::TreeBuilder;
use crate::core::state::State;
use crate::core::types::{CLOCK_SKEW_US, Hash32, Timestamp};

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
    /// The request inside an event written through a server (§8 check 7a).
    Request,
    Policy,
    Genesis,
    /// The ledger does not match an anchor (genesis hash, head hash, checkpoint, a recorded
    /// checkpoint, or a head this user verified earlier).
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
            Self::Request => "request",
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

/// The outcome of judging one frame.
pub struct Step {
    pub event: Option<Event>,
    pub hash: Hash32,
    pub findings: Vec<Finding>,
}

/// Judges frames in file order. Owns the folded state, the head and the Merkle tree.
pub struct Checker {
    pub state: State,
    pub head: Option<Head>,
    /// Merkle tree (§9.1) over the hash of every frame judged so far, in file order,
    /// whatever each frame's verdict.
    pub tree: TreeBuilder,
    /// Hash of frame 0's body, whatever its verdict (what `--expect-genesis` compares).
    pub genesis_hash: Option<Hash32>,
    index: u64,
    last_seq: Option<u64>,
    prev_hash: Hash32,
    /// The greatest time of the events so far that changed the state and are not from the
    /// future (§8.4).
    last_time: Option<Timestamp>,
    /// Events dated after this are from the future of the verifier's clock (§8.4, L9).
    latest: Timestamp,
}

impl Checker {
    /// A checker for a ledger read from its start, on a verifier whose clock reads `now`.
    pub fn new(now: Timestamp) -> Self {
        Checker {
            state: State::default(),
            head: None,
            tree: TreeBuilder::default(),
            genesis_hash: None,
            index: 0,
            last_seq: None,
            prev_hash: Hash32::ZERO,
            last_time: None,
            latest: now.plus_micros(CLOCK_SKEW_US),
        }
    }

    /// Continues after a verified `head` whose folded state is `state` and tree `tree`.
    pub fn resume(state: State, head: Head, tree: TreeBuilder, now: Timestamp) -> Self {
        Checker {
            genesis_hash: state.genesis_hash,
            state,
            head: Some(head),
            tree,
            index: head.seq + 1,
            last_seq: Some(head.seq),
            prev_hash: head.hash,
            last_time: Some(head.time),
            latest: now.plus_micros(CLOCK_SKEW_US),
        }
    }

    /// Frames judged so far (the index of the next one).
    pub fn frames(&self) -> u64 {
        self.index
    }

    /// Hashes and decodes `frame`, then judges it; `sig` as for `judge`.
    pub fn step(&mut self, frame: &RawFrame, sig: impl FnOnce(&Event, &Hash32) -> bool) -> Step {
        let hash = event_hash(&frame.body);
        let decoded = Event::decode(&frame.body);
        let verdict = decoded.as_ref().ok().map(|ev| sig(ev, &hash));
        self.judge(frame, hash, decoded, verdict)
    }

    /// Judges one frame whose body hashes to `hash` and decodes to `decoded`. `sig` is the
    /// verdict on its signature, or `None` when it is checked elsewhere (in a batch, or
    /// earlier by this user's verified cache); an event whose signature fails is reported
    /// and never applied.
    pub fn judge(
        &mut self,
        frame: &RawFrame,
        hash: Hash32,
        decoded: Result<Event, DecodeError>,
        sig: Option<bool>,
    ) -> Step {
        let index = self.index;
        self.index += 1;
        if index == 0 {
            self.genesis_hash = Some(hash);
        }
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
        // What only version 2 may hold is a format error in an older file (§1).
        let decoded = decoded.and_then(|ev| {
            if ev.needs_version_2() && self.state.format_version < 2 {
                return Err(DecodeError::Invalid(format!(
                    "a request or the server permission needs format version 2; this file is version {}",
                    self.state.format_version
                )));
            }
            Ok(ev)
        });
        let ev = match decoded {
            Ok(ev) => ev,
            Err(e) => {
                add(Problem::Format, None, e.to_string());
                self.prev_hash = hash;
                self.last_seq = Some(self.last_seq.map_or(0, |s| s + 1));
                self.tree.push(&hash);
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
        let future = ev.time > self.latest;
        if future {
            add(
                Problem::Time,
                seq,
                format!(
                    "time {} is in the future: more than 5 minutes after this verifier's clock",
                    ev.time
                ),
            );
        }
        let authentic = sig != Some(false);
        if !authentic {
            add(
                Problem::Signature,
                seq,
                format!(
                    "signature does not verify against the event hash {hash} and signer {}",
                    ev.signer
                ),
            );
        }
        // Whether the event changed the state (authentic, and allowed).
        let mut applied = false;
        match (&ev.action, index) {
            (Action::Genesis { .. }, 0) => match State::check_genesis(&ev) {
                Err(e) => add(Problem::Genesis, seq, e.to_string()),
                Ok(()) if authentic => match self.state.genesis(&ev, &hash) {
                    Err(e) => add(Problem::Genesis, seq, e.to_string()),
                    Ok(()) => applied = true,
                },
                Ok(()) => {}
            },
            (_, 0) => add(
                Problem::Genesis,
                seq,
                "the first frame is not a genesis event".into(),
            ),
            (Action::Genesis { .. }, _) => add(
                Problem::Genesis,
                seq,
                "a genesis event may only be the first frame".into(),
            ),
            _ if authentic => match self.state.apply(&ev, &hash) {
                Err(e) => {
                    let problem = if e.is_signer_problem() {
                        Problem::Signer
                    } else if e.is_request_problem() {
                        Problem::Request
                    } else {
                        Problem::Policy
                    };
                    add(problem, seq, e.to_string());
                }
                Ok(()) => {
                    applied = true;
                    if let Action::LogRepaired { offset, .. } = &ev.action
                        && *offset != frame.offset
                    {
                        applied = false;
                        add(
                            Problem::Policy,
                            seq,
                            format!(
                                "log-repaired says the torn tail began at byte {offset}, but the repair event itself is at byte {} (it takes the torn tail's place)",
                                frame.offset
                            ),
                        );
                    }
                }
            },
            _ => {}
        }
        if let Action::CheckpointRecorded { size, root } = &ev.action
            && (*size != index || root.0 != self.tree.root())
        {
            add(
                Problem::Anchor,
                seq,
                format!(
                    "the recorded checkpoint of {size} events does not match the {index} frames before it (their count and Merkle root)"
                ),
            );
        }
        self.tree.push(&hash);
        self.prev_hash = hash;
        self.last_seq = Some(ev.seq);
        // Only an event that changed the state, and is not from the future, raises the bar
        // for the times after it: one altered, forged or future-dated event is one finding,
        // not a cascade over the honest events after it.
        if applied && !future {
            self.last_time = Some(self.last_time.map_or(ev.time, |t| t.max(ev.time)));
        }
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

    /// Past the point a query asked for, only checks that `frame` continues the chain (its
    /// body decodes, with the next seq and the previous hash), so that a prefix can be
    /// confirmed to lead to a hash verified earlier without folding it.
    pub fn link(
        &mut self,
        frame: &RawFrame,
        hash: Hash32,
        decoded: &Result<Event, DecodeError>,
    ) -> Option<Finding> {
        let index = self.index;
        self.index += 1;
        let expected_seq = self.last_seq.map_or(0, |s| s + 1);
        let broken = match decoded {
            Ok(ev) if ev.seq == expected_seq && ev.prev == self.prev_hash => None,
            Ok(ev) => Some((
                Some(ev.seq),
                "does not continue the chain of the events before it".to_owned(),
            )),
            Err(e) => Some((None, e.to_string())),
        };
        self.prev_hash = hash;
        self.last_seq = Some(expected_seq);
        broken.map(|(seq, message)| Finding {
            problem: if seq.is_some() {
                Problem::Chain
            } else {
                Problem::Format
            },
            seq,
            index: Some(index),
            offset: frame.offset,
            message,
        })
    }
}
