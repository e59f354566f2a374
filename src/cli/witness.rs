//! `keyledger witness serve|vkey|prove-fork|check-fork` (issue 17).

use std::path::Path;
use std::sync::Arc;

use keyledger::core::merkle::ProofTree;
use keyledger::evidence::checkpoint::Checkpoint;
use keyledger::evidence::cosign::{self, ED25519_TYPE, ForkProof};
use keyledger::server::witness::{self, WitnessConfig};
use keyledger::storage::keyfile;
use serde_json::json;

use super::Ctx;
use super::args::WitnessCmd;
use super::error::{CliError, IO, LEDGER};
use super::output::{json, print};

fn read_text(p: &Path) -> Result<String, CliError> {
    let b = keyledger::storage::files::read_regular(p, 1 << 20)
        .map_err(|e| CliError::usage(format!("{}: {e}", p.display())))?;
    String::from_utf8(b).map_err(|_| CliError::usage(format!("{}: not UTF-8 text", p.display())))
}

/// A witness's name: what a signed-note key name may be.
fn check_name(name: &str) -> Result<(), CliError> {
    if name.is_empty()
        || name.len() > 256
        || name.contains(|c: char| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(CliError::usage(
            "--name: a witness name is 1-256 characters with no space or '+' (e.g. witness.example.com/w1)",
        ));
    }
    Ok(())
}

/// The logs' verifier keys, grouped by origin (their key names).
fn logs(
    vkeys: &[String],
) -> Result<Vec<(String, Vec<keyledger::core::types::PublicKey>)>, CliError> {
    let mut out: Vec<(String, Vec<_>)> = Vec::new();
    for v in vkeys {
        let (name, ty, pk) = cosign::parse_vkey(v).map_err(CliError::usage)?;
        if ty != ED25519_TYPE {
            return Err(CliError::usage(format!(
                "{v}: a log's checkpoint key is of type 0x01, as `keyledger checkpoint --vkey` prints it"
            )));
        }
        match out.iter_mut().find(|(o, _)| *o == name) {
            Some((_, keys)) => keys.push(pk),
            None => out.push((name, vec![pk])),
        }
    }
    Ok(out)
}

pub fn witness(ctx: &Ctx, cmd: WitnessCmd) -> Result<(), CliError> {
    match cmd {
        WitnessCmd::Serve {
            key,
            name,
            listen,
            state,
            logs: vkeys,
            conn,
        } => {
            check_name(&name)?;
            let key = keyfile::load(&key)?;
            let log: keyledger::server::LogSink = Arc::new(|line: &str| eprintln!("{line}"));
            let running = witness::start(WitnessConfig {
                key,
                name,
                listen,
                state,
                logs: logs(&vkeys)?,
                log,
                max_connections: conn.max_connections as usize,
                client_timeout: std::time::Duration::from_secs(conn.client_timeout),
            })
            .map_err(|e| CliError {
                // A state file held by another witness, or unreadable as one, needs
                // attention; anything else is the system's.
                code: match e {
                    keyledger::server::ServerError::WitnessState { .. } => LEDGER,
                    _ => IO,
                },
                message: e.to_string(),
            })?;
            print(&format!("listening on {}\n", running.url))?;
            running
                .run_until_signal()
                .map_err(|e| CliError::io(e.to_string()))
        }
        WitnessCmd::Vkey { key, name } => {
            check_name(&name)?;
            let key = keyfile::load(&key)?;
            let v = cosign::vkey(&name, &key.public());
            match ctx.json {
                true => json(&json!({"vkey": v, "name": name})),
                false => print(&format!("{v}\n")),
            }
        }
        WitnessCmd::ProveFork { a, b, out } => {
            let (na, nb) = (read_text(&a)?, read_text(&b)?);
            let (ca, _, _) =
                Checkpoint::parse(&na).map_err(|e| CliError::usage(format!("--a: {e}")))?;
            let (cb, _, _) =
                Checkpoint::parse(&nb).map_err(|e| CliError::usage(format!("--b: {e}")))?;
            if ca.size > cb.size {
                return Err(CliError::usage(
                    "--a must be the checkpoint of the smaller (or same) size; swap them, with --ledger holding --b's history",
                ));
            }
            let mut leaves = Vec::new();
            keyledger::storage::store::replay(&ctx.ledger, &ctx.cache, None, |seen| {
                leaves.push(*seen.hash)
            })?;
            if (leaves.len() as u64) < cb.size {
                return Err(CliError::check_failed(format!(
                    "--b covers {} events; this ledger has {}",
                    cb.size,
                    leaves.len()
                )));
            }
            let tree = ProofTree::new(&leaves[..cb.size as usize]);
            if tree.mth(0, cb.size) != cb.root {
                return Err(CliError::check_failed(
                    "--b is not a checkpoint of the history --ledger holds (another root at its size)",
                ));
            }
            let proof = ForkProof {
                a: na.into_bytes(),
                b: nb.into_bytes(),
                b_root_at_a_size: tree.mth(0, ca.size),
                proof: tree.consistency_proof(ca.size, cb.size),
            };
            let keys: Vec<_> = ctx.read_head()?.state.signers.keys().copied().collect();
            // Only a proof that checks is written.
            proof.check(&keys).map_err(CliError::check_failed)?;
            keyledger::storage::keyfile::write_exclusive(&out, &proof.encode(), 0o644)?;
            print(&format!(
                "wrote a proof that the log signed two inconsistent checkpoints ({} and {} events) to {}\n",
                ca.size,
                cb.size,
                out.display()
            ))
        }
        WitnessCmd::CheckFork { proof, vkeys } => {
            let Ok([(name, keys)]) = <[_; 1]>::try_from(logs(&vkeys)?) else {
                return Err(CliError::usage(
                    "every --vkey must be a key of one log (one key name, its origin)",
                ));
            };
            let bytes = keyledger::storage::files::read_regular(&proof, 1 << 20)
                .map_err(|e| CliError::usage(format!("{}: {e}", proof.display())))?;
            let p = ForkProof::parse(&bytes)
                .ok_or_else(|| CliError::usage(format!("{}: not a fork proof", proof.display())))?;
            let (origin, m, n) = p.check(&keys).map_err(CliError::check_failed)?;
            if origin != name {
                return Err(CliError::check_failed(format!(
                    "the proof is about log {origin}, not {name} (--vkey's)"
                )));
            }
            match ctx.json {
                true => json(&json!({"fork": true, "origin": origin, "sizes": [m, n]})),
                false => print(&format!(
                    "FORK PROVEN: the key of {origin} signed a checkpoint of {m} events and one of {n} events whose first {m} events have another root\n"
                )),
            }
        }
    }
}
