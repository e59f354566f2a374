//! Getting a checkpoint cosigned (issue 17): each witness is sent the checkpoint with a
//! consistency proof from the size it last cosigned (tlog-witness add-checkpoint), learning
//! that size from its 409 answer; the cosignature lines it returns are added to the note.

use hyper::Method;

use crate::core::merkle::{ProofTree, Sha};
use crate::evidence::checkpoint::Checkpoint;
use crate::evidence::cosign::AddCheckpoint;

use super::http::Client;

/// What one witness answered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Asked {
    pub witness: String,
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

/// Asks the witness at `url` to cosign `note` (a checkpoint of `size` events); `proof(m)`
/// is the consistency proof from size m to `size`.
pub fn ask(url: &str, note: &str, size: u64, proof: &dyn Fn(u64) -> Vec<Sha>) -> Asked {
    let mut asked = Asked {
        witness: url.to_owned(),
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
                // Only cosignature-shaped lines (key ID, 8-byte time, 64-byte signature) of
                // one witness, never one named as the log: a witness cannot sign for it.
                let origin = Checkpoint::parse(note)
                    .map(|c| c.0.origin)
                    .unwrap_or_default();
                let shaped = |l: &&str| {
                    let mut parts = l.trim_end().splitn(3, ' ');
                    let (dash, name, b64) = (parts.next(), parts.next(), parts.next());
                    dash == Some("\u{2014}")
                        && name.is_some_and(|n| n != origin)
                        && b64.is_some_and(|b| {
                            use base64::Engine;
                            base64::engine::general_purpose::STANDARD
                                .decode(b)
                                .is_ok_and(|v| v.len() == 4 + 8 + 64)
                        })
                };
                let lines: Vec<&str> = text.split_inclusive('\n').filter(shaped).collect();
                let one_name = lines
                    .iter()
                    .map(|l| l.split(' ').nth(1))
                    .collect::<std::collections::HashSet<_>>()
                    .len()
                    == 1;
                let lines: String = match one_name {
                    true => lines.concat(),
                    false => String::new(),
                };
                // What comes back must make the note a note still.
                if lines.is_empty() || Checkpoint::parse(&format!("{note}{lines}")).is_err() {
                    asked.refused = Some("its answer holds no cosignature line".into());
                } else {
                    asked.lines = lines;
                    asked.cosigned = true;
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
/// fewer than `quorum` (default: all) distinct witnesses cosigning is an error. One
/// witness named twice counts once (distinct witnesses are distinct names on the lines
/// returned). What each witness answered comes back either way.
pub fn cosign_note(
    note: &str,
    tree: &ProofTree,
    witnesses: &[String],
    quorum: Option<usize>,
) -> Result<(String, Vec<Asked>), CosignError> {
    let quorum = quorum.unwrap_or(witnesses.len());
    if quorum == 0 || quorum > witnesses.len() {
        return Err(CosignError::Quorum(witnesses.len()));
    }
    let size = tree.size();
    let proof = |m: u64| tree.consistency_proof(m, size);
    let mut asked: Vec<Asked> = witnesses
        .iter()
        .map(|w| ask(w, note, size, &proof))
        .collect();
    let mut names = std::collections::HashSet::new();
    for a in asked.iter_mut().filter(|a| a.cosigned) {
        let name = a.lines.split(' ').nth(1).unwrap_or_default().to_owned();
        if !names.insert(name) {
            a.cosigned = false;
            a.refused = Some("a witness already counted (the same name)".into());
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
    Ok((out, asked))
}
