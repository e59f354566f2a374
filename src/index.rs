//! A derived index beside the ledger (`<ledger>.index`): the state folded up to some head,
//! and for each access key the byte offsets of the events that name it. It is never the
//! source of truth: it records the seq, hash and offset of the head it reflects; on every
//! use its checksum is checked, the genesis frame and that head frame are re-read from the
//! ledger and re-hashed, and on any mismatch it is rebuilt from the ledger. Events after
//! its head are replayed and the index rewritten. `verify` and appends never read it.
//!
//! ```text
//! "KLINDEX1" (8) | MessagePack body | checksum (32): blake3-derive-key(CONTEXT, magic || body)
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chain::{Head, event_hash};
use crate::event::Event;
use crate::format::{FrameReader, HEADER_LEN, LEN_PREFIX, MAX_BODY, RawFrame, SIG_LEN};
use crate::state::State;
use crate::store::{Replay, StoreError, open_existing, read_error, replay_frames, stable_len};
use crate::types::{Bytes, Hash32};
use crate::verify::Checker;

const MAGIC: &[u8; 8] = b"KLINDEX1";
const CONTEXT: &str = "keyledger 2026-11-22 index checksum v1";

#[derive(Serialize, Deserialize)]
struct Body {
    genesis: Hash32,
    /// Offset of the head frame, and the head: (seq, hash, time, end offset).
    head_offset: u64,
    head: (u64, Hash32, crate::types::Timestamp, u64),
    state: State,
    key_events: BTreeMap<String, Vec<u64>>,
}

/// How the index served a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// It reflected the head already.
    Current,
    /// It was behind by this many events, now replayed and saved.
    Updated(u64),
    /// It was missing or did not match the ledger (the reason), and was rebuilt.
    Rebuilt(String),
}

/// The head state with the per-key event offsets.
pub struct Indexed {
    pub replay: Replay,
    pub key_events: BTreeMap<String, Vec<u64>>,
    pub freshness: Freshness,
}

pub fn index_path(ledger: &Path) -> PathBuf {
    let mut s = ledger.as_os_str().to_owned();
    s.push(".index");
    PathBuf::from(s)
}

fn checksum(data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(CONTEXT);
    h.update(data);
    *h.finalize().as_bytes()
}

/// Reads one complete frame at `offset` with positioned reads.
fn frame_at(f: &File, offset: u64, len: u64) -> Option<RawFrame> {
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

/// Loads the index and checks it against the ledger; `Err` says why it cannot be used.
fn load(ledger: &File, len: u64, path: &Path) -> Result<Body, String> {
    let bytes = std::fs::read(index_path(path)).map_err(|e| format!("no usable index ({e})"))?;
    if bytes.len() < 40 || &bytes[..8] != MAGIC {
        return Err("the index is not a keyledger index".into());
    }
    let (data, sum) = bytes.split_at(bytes.len() - 32);
    if checksum(data) != sum {
        return Err("the index checksum does not match (corrupted)".into());
    }
    let body: Body = rmp_serde::from_slice(&data[8..])
        .map_err(|e| format!("the index does not decode ({e})"))?;
    let genesis = frame_at(ledger, HEADER_LEN, len).ok_or("the ledger has no genesis frame")?;
    if event_hash(&genesis.body) != body.genesis {
        return Err("the index belongs to another ledger".into());
    }
    let head =
        frame_at(ledger, body.head_offset, len).ok_or("the index's head is not in the ledger")?;
    if event_hash(&head.body) != body.head.1 || head.end() != body.head.3 {
        return Err(
            "the index's head does not match the ledger (rewritten, repaired or tampered)".into(),
        );
    }
    Ok(body)
}

/// The state at the head, through the index; rebuilds or updates the index as needed.
/// Failing to write the index never fails the read.
pub fn read(path: &Path) -> Result<Indexed, StoreError> {
    let f = open_existing(path, false)?;
    let len = stable_len(&f).map_err(|source| StoreError::Io {
        path: path.into(),
        op: "lock",
        source,
    })?;
    let (checker, mut key_events, start, reason) = match load(&f, len, path) {
        Ok(b) => {
            let head = Head {
                seq: b.head.0,
                hash: b.head.1,
                time: b.head.2,
                end: b.head.3,
            };
            (Checker::resume(b.state, head), b.key_events, head.end, None)
        }
        Err(reason) => (Checker::new(false), BTreeMap::new(), 0, Some(reason)),
    };
    let before = checker.head.map(|h| h.seq);
    let mut head_offset = None;
    let mut file = f.try_clone().map_err(|source| StoreError::Io {
        path: path.into(),
        op: "open",
        source,
    })?;
    let replay = {
        let mut visit = |seen: &crate::store::Seen<'_>| {
            if let Some(k) = seen.event.action.key_id() {
                key_events
                    .entry(k.to_owned())
                    .or_default()
                    .push(seen.frame.offset);
            }
            head_offset = Some(seen.frame.offset);
        };
        if start == 0 {
            let frames = FrameReader::new(BufReader::with_capacity(1 << 20, (&mut file).take(len)))
                .map_err(|e| read_error(path, e))?;
            replay_frames(path, frames, len, None, checker, &mut visit)?
        } else {
            file.seek(SeekFrom::Start(start))
                .map_err(|source| StoreError::Io {
                    path: path.into(),
                    op: "seek",
                    source,
                })?;
            let frames = FrameReader::at(
                BufReader::with_capacity(1 << 20, (&mut file).take(len - start)),
                start,
            );
            replay_frames(path, frames, len, None, checker, &mut visit)?
        }
    };
    let freshness = match before {
        None => Freshness::Rebuilt(reason.unwrap_or_default()),
        Some(b) if b == replay.head.seq => Freshness::Current,
        Some(b) => Freshness::Updated(replay.head.seq - b),
    };
    if freshness != Freshness::Current {
        let offset = match head_offset {
            Some(o) => o,
            None => {
                return Ok(Indexed {
                    replay,
                    key_events,
                    freshness,
                });
            }
        };
        let _ = save(path, &f, &replay, offset, &key_events);
    }
    Ok(Indexed {
        replay,
        key_events,
        freshness,
    })
}

fn save(
    path: &Path,
    ledger: &File,
    replay: &Replay,
    head_offset: u64,
    key_events: &BTreeMap<String, Vec<u64>>,
) -> std::io::Result<()> {
    let genesis = frame_at(ledger, HEADER_LEN, u64::MAX)
        .ok_or_else(|| std::io::Error::other("no genesis"))?;
    let h = replay.head;
    let body = Body {
        genesis: Bytes(event_hash(&genesis.body).0),
        head_offset,
        head: (h.seq, h.hash, h.time, h.end),
        state: replay.state.clone(),
        key_events: key_events.clone(),
    };
    let mut data = MAGIC.to_vec();
    data.extend(rmp_serde::to_vec(&body).map_err(std::io::Error::other)?);
    let sum = checksum(&data);
    data.extend_from_slice(&sum);
    let target = index_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, &data)?;
    std::fs::rename(&tmp, &target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The events at `offsets` (from `key_events`), decoded, with their hashes.
pub fn events_at(
    path: &Path,
    offsets: &[u64],
) -> Result<Vec<(RawFrame, Event, Hash32)>, StoreError> {
    let f = open_existing(path, false)?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    offsets
        .iter()
        .map(|&o| {
            let frame = frame_at(&f, o, len).ok_or_else(|| StoreError::Integrity {
                path: path.into(),
                seq: 0,
                offset: o,
                message: "an indexed frame cannot be read".into(),
            })?;
            let ev = Event::decode(&frame.body).map_err(|e| StoreError::Integrity {
                path: path.into(),
                seq: 0,
                offset: o,
                message: e.to_string(),
            })?;
            let h = event_hash(&frame.body);
            Ok((frame, ev, h))
        })
        .collect()
}
