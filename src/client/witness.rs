//! Getting a checkpoint cosigned (issue 17): each witness is sent the checkpoint with a
//! consistency proof from the size it last cosigned (tlog-witness add-checkpoint), learning
//! that size from its 409 answer; the cosignature lines it returns are added to the note.

use hyper::Method;

use crate::core::merkle::{ProofTree, Sha};
use crate::core::types::{CLOCK_SKEW_US, Timestamp};
use crate::evidence::checkpoint::Checkpoint;
use crate::evidence::cosign::{AddCheckpoint, Witness, cosignatures};

use super::http::Client;

/// What one witness answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Asked {
    pub witness: String,
    /// The name it cosigned under, if it did.
    pub name: String,
    /// Its cosignature lines, if it cosigned.
    #[serde(skip)]
    pub lines: String,
    pub cosigned: bool,
    /// The size it had cosigned before, once it said.
    pub previous_size: Option<u64>,
    /// Why it did not cosign.
    pub refused: Option<String>,
}

/// `http(s)://HOST:PORT[/PREFIX]`: the client of HOST:PORT and the path of add-checkpoint.
fn endpoint(url: &str) -> Result<(Client, String), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?}: a witness URL is http(s)://HOST:PORT[/PREFIX]"))?;
    let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_end_matches('/');
    let path = match prefix.is_empty() {
        true => "/add-checkpoint".to_owned(),
        false => format!("/{prefix}/add-checkpoint"),
    };
    Ok((Client::new(&format!("{scheme}://{host}"), None)?, path))
}

/// Cosignature lines taken from one witness: one per key it holds (a rotation in progress
/// may show two); a note holds at most 100 signature lines in all.
const MAX_LINES_PER_WITNESS: usize = 4;

fn now_secs() -> u64 {
    (Timestamp::now().0 / 1_000_000).max(0) as u64
}

/// The cosignature lines of a witness's 200 answer `text` that may go on `note`, and the
/// witness's name: Ed25519 cosignature lines (4-byte key ID, 8-byte time, 64-byte
/// signature; lines of other types are left out) under one name that is not the log's, one
/// per key ID, each dated within the clock skew of `now` (a line dated otherwise would make
/// verifiers report the events as backdated, or the witness as lying). With `trusted`
/// witnesses, the name must be one of theirs and every line a valid cosignature by its key
/// (§9.4); without, the lines are taken as they come.
fn checked_lines(
    note: &str,
    text: &str,
    trusted: &[Witness],
    now: u64,
    newest: Option<Timestamp>,
) -> Result<(String, String), String> {
    use base64::Engine;
    let origin = Checkpoint::parse(note)
        .map(|c| c.0.origin)
        .map_err(|e| e.to_string())?;
    let mut name: Option<&str> = None;
    let mut key_ids = std::collections::HashSet::new();
    let mut lines = String::new();
    for line in text.split_inclusive('\n') {
        let mut parts = line.strip_suffix('\n').unwrap_or(line).splitn(3, ' ');
        let (Some("\u{2014}"), Some(n), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            continue;
        };
        if blob.len() != 4 + 8 + 64 {
            continue;
        }
        if n == origin {
            return Err("it answered a line under the log's own name".into());
        }
        if name.is_some_and(|x| x != n) {
            return Err("it answered lines under more than one name".into());
        }
        name = Some(n);
        let t = u64::from_be_bytes(blob[4..12].try_into().expect("8 bytes"));
        if t.abs_diff(now) > (CLOCK_SKEW_US / 1_000_000) as u64 {
            return Err(format!(
                "its cosignature is dated {t} (POSIX seconds), more than 5 minutes from this clock's {now}"
            ));
        }
        // Verifiers bound the events' times by it (§9.4 step 5): a line that would make
        // them see the newest event as backdated is a witness clock too far behind.
        let bound = Timestamp((t.min(i64::MAX as u64) as i64).saturating_mul(1_000_000))
            .plus_micros(CLOCK_SKEW_US);
        if let Some(e) = newest.filter(|e| *e > bound) {
            return Err(format!(
                "its cosignature is dated {t} (POSIX seconds), more than 5 minutes before the newest event it covers ({e}): verifiers would see that event as backdated"
            ));
        }
        if key_ids.insert(blob[..4].to_vec()) {
            if key_ids.len() > MAX_LINES_PER_WITNESS {
                return Err(format!(
                    "it answered more than {MAX_LINES_PER_WITNESS} cosignature lines (one per key is expected)"
                ));
            }
            lines.push_str(line.strip_suffix('\n').unwrap_or(line));
            lines.push('\n');
        }
    }
    let Some(name) = name else {
        return Err("its answer holds no Ed25519 cosignature line".into());
    };
    let with = format!("{note}{lines}");
    if !trusted.is_empty() {
        match cosignatures(&with, trusted) {
            Ok((_, got)) if got.iter().filter(|(w, _)| w.name == name).count() == key_ids.len() => {
            }
            Ok(_) => {
                return Err(format!(
                    "it signed as {name} with no key given by --witness-key for that name"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    // What comes back must make the note a note still.
    Checkpoint::parse(&with).map_err(|e| format!("its lines would break the note: {e}"))?;
    Ok((name.to_owned(), lines))
}

/// Asks the witness at `url` to cosign `note` (a checkpoint of `size` events whose newest is
/// dated `newest`); `proof(m)` is the consistency proof from size m to `size`; `trusted`:
/// as for `checked_lines`.
pub fn ask(
    url: &str,
    note: &str,
    size: u64,
    proof: &dyn Fn(u64) -> Vec<Sha>,
    trusted: &[Witness],
    newest: Option<Timestamp>,
) -> Asked {
    let mut asked = Asked {
        witness: url.to_owned(),
        name: String::new(),
        lines: String::new(),
        cosigned: false,
        previous_size: None,
        refused: None,
    };
    let (mut client, path) = match endpoint(url) {
        Ok(c) => c,
        Err(e) => {
            asked.refused = Some(e);
            return asked;
        }
    };
    let mut old = 0;
    // A witness that moved on between two tries is asked again, a few times.
    for _ in 0..4 {
        let body = AddCheckpoint {
            old,
            proof: proof(old),
            note: note.to_owned(),
        }
        .encode();
        let headers = [("content-type", "text/plain; charset=utf-8".to_owned())];
        let reply = match client.request(Method::POST, &path, &headers, body.into_bytes()) {
            Ok(r) => r,
            Err(e) => {
                asked.refused = Some(e);
                return asked;
            }
        };
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        match reply.status.as_u16() {
            200 => {
                match checked_lines(note, &text, trusted, now_secs(), newest) {
                    Ok((name, lines)) => {
                        asked.name = name;
                        asked.lines = lines;
                        asked.cosigned = true;
                    }
                    Err(why) => asked.refused = Some(why),
                }
                return asked;
            }
            409 => {
                let Some(n) = text.trim_end().parse::<u64>().ok() else {
                    asked.refused = Some("a 409 without the size it holds".into());
                    return asked;
                };
                asked.previous_size = Some(n);
                if n > size {
                    asked.refused = Some(format!(
                        "it cosigned {n} events of this log before, more than the {size} here: this ledger was cut, or it was shown another history"
                    ));
                    return asked;
                }
                old = n;
            }
            s => {
                let why: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
                asked.refused = Some(format!("HTTP {s}: {why}"));
                return asked;
            }
        }
    }
    asked.refused = Some("its size kept changing".into());
    asked
}

/// Why a checkpoint was not cosigned by a quorum.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    #[error("--quorum must be between 1 and the {0} --witness given")]
    Quorum(usize),
    #[error("the witnesses' lines together do not make a note ({0}): no checkpoint was written")]
    Malformed(String),
    #[error(
        "{got} of {of} witnesses cosigned, fewer than the quorum of {quorum}: no checkpoint was written"
    )]
    Short {
        got: usize,
        of: usize,
        quorum: usize,
        asked: Vec<Asked>,
    },
}

/// `note`, a checkpoint of `tree` (its size and root), with the cosignatures of
/// `witnesses` (URLs), each sent the consistency proof from the size it cosigned last;
/// fewer than `quorum` (default: all) distinct witnesses cosigning is an error. Witnesses
/// are told apart by name: verified answers under one name count once, and unverified ones
/// (no `trusted` keys) under one name that differ count for neither, since one of them may
/// not be that witness. What each answered comes back either way.
pub fn cosign_note(
    note: &str,
    tree: &ProofTree,
    witnesses: &[String],
    quorum: Option<usize>,
    trusted: &[Witness],
    newest: Option<Timestamp>,
) -> Result<(String, Vec<Asked>), CosignError> {
    let quorum = quorum.unwrap_or(witnesses.len());
    if quorum == 0 || quorum > witnesses.len() {
        return Err(CosignError::Quorum(witnesses.len()));
    }
    let size = tree.size();
    let proof = |m: u64| tree.consistency_proof(m, size);
    let mut asked: Vec<Asked> = witnesses
        .iter()
        .map(|w| ask(w, note, size, &proof, trusted, newest))
        .collect();
    for i in 0..asked.len() {
        for j in 0..i {
            if !(asked[i].cosigned && asked[j].cosigned && asked[i].name == asked[j].name) {
                continue;
            }
            // Verified lines under one name are one witness (given twice, or a rotated
            // key); unverified ones that differ cannot be told apart: neither counts.
            if trusted.is_empty() && asked[i].lines != asked[j].lines {
                let why = format!(
                    "two witnesses answered as {} with different lines (give --witness-key to tell the real one)",
                    asked[i].name
                );
                for k in [i, j] {
                    asked[k].cosigned = false;
                    asked[k].refused = Some(why.clone());
                }
            } else {
                asked[i].cosigned = false;
                asked[i].refused = Some("a witness already counted (the same name)".into());
            }
        }
    }
    let got = asked.iter().filter(|a| a.cosigned).count();
    if got < quorum {
        return Err(CosignError::Short {
            got,
            of: witnesses.len(),
            quorum,
            asked,
        });
    }
    let mut out = note.to_owned();
    for a in asked.iter().filter(|a| a.cosigned) {
        out.push_str(&a.lines);
    }
    Checkpoint::parse(&out).map_err(|e| CosignError::Malformed(e.to_string()))?;
    Ok((out, asked))
}
