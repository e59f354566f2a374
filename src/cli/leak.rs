//! leak: from a leaked secret, security token or key ID to its key and full history (R14).

use std::path::Path;

use keyledger::core::credentials::{Form, scan};
use keyledger::core::query::Filter;
use keyledger::evidence::export;
use serde_json::json;
use zeroize::Zeroizing;

use super::Ctx;
use super::error::CliError;
use super::output::{json, print};
use super::views::{key_history, key_report, read_secret_input, show_history};

/// Largest file `--scan` reads.
const MAX_SCAN: u64 = 256 << 20;
/// Largest stdin read (a pasted secret, or a few lines around it).
const MAX_STDIN: usize = 64 << 10;

fn kind(f: Form) -> &'static str {
    match f {
        Form::PermanentId => "access key ID",
        Form::TemporaryId => "temporary key ID",
        Form::Secret => "secret",
        Form::Token => "security token",
    }
}

/// `--disable`: what the `leak-reported` events record.
pub struct Report {
    pub source: Option<String>,
    pub reason: String,
}

pub fn leak(
    ctx: &Ctx,
    scan_file: Option<&Path>,
    bundle: Option<&Path>,
    report: Option<Report>,
) -> Result<(), CliError> {
    if let Some(dir) = bundle
        && dir.exists()
    {
        return Err(CliError::usage(format!(
            "{} already exists; an evidence bundle is written into a new directory",
            dir.display()
        )));
    }
    let (raw, source) = match scan_file {
        Some(p) => (read_scanned(p)?, p.display().to_string()),
        None => (read_secret_input(MAX_STDIN)?, "stdin".to_owned()),
    };
    let text = Zeroizing::new(String::from_utf8_lossy(&raw).into_owned());
    let found = scan(&text);
    if found.is_empty() && scan_file.is_none() {
        return Err(CliError::usage(
            "stdin holds no keyledger secret, security token or key ID (klsk_…, kltk_…, KLAK…, KLST… with a valid checksum); give the leaked text itself: printf %s \"$SECRET\" | keyledger leak",
        ));
    }
    let v = ctx.read_head()?;
    // (line, offset, form, the key it belongs to); never the credential itself.
    let hits: Vec<(usize, usize, Form, Option<String>)> = found
        .iter()
        .map(|(at, form, t)| {
            let line = text[..*at].matches('\n').count() + 1;
            let key = v.state.key_of_credential(*form, t).map(|k| k.id.clone());
            (line, *at, *form, key)
        })
        .collect();
    let mut keys: Vec<&str> = hits.iter().filter_map(|h| h.3.as_deref()).collect();
    keys.sort();
    keys.dedup();
    let reported = match (&report, keys.is_empty()) {
        (Some(r), false) => {
            let source = r.source.clone().unwrap_or_else(|| match scan_file {
                Some(p) => format!(
                    "file:{}",
                    std::path::absolute(p).unwrap_or(p.into()).display()
                ),
                None => "stdin".into(),
            });
            record(ctx, &v.state, &keys, &source, &r.reason)?
        }
        _ => vec![],
    };
    let mut bundles = Vec::new();
    if let Some(dir) = bundle
        && !keys.is_empty()
    {
        let signer = ctx.signing_key()?;
        if keys.len() > 1 {
            std::fs::create_dir(dir)
                .map_err(|e| CliError::io(format!("{}: {e}", dir.display())))?;
        }
        for k in &keys {
            let out = match keys.len() {
                1 => dir.to_path_buf(),
                _ => dir.join(k),
            };
            let filter = Filter {
                key: Some((*k).to_owned()),
                ..Filter::default()
            };
            let s = export::write_bundle(
                &ctx.ledger,
                &out,
                &filter,
                &signer,
                &ctx.cache,
                |note, _, _| Ok::<_, CliError>(note),
            )?;
            super::warn_torn_tail(s.torn);
            bundles.push((k.to_string(), out.display().to_string(), s.events));
        }
    }
    if ctx.json {
        let mut reports = Vec::new();
        for k in &keys {
            let (r, history) = key_history(ctx, k)?;
            reports.push(key_report(ctx, r.state.keys.get(*k), &history));
        }
        let found: Vec<_> = hits
            .iter()
            .map(|(line, at, f, key)| json!({"line": line, "offset": at, "kind": kind(*f), "key_id": key}))
            .collect();
        let bundles: Vec<_> = bundles
            .iter()
            .map(|(k, dir, n)| json!({"key_id": k, "bundle": dir, "events": n}))
            .collect();
        let reported: Vec<_> = reported
            .iter()
            .map(|(k, seq, d)| json!({"key_id": k, "seq": seq, "disabled_seq": d}))
            .collect();
        json(
            &json!({"source": source, "found": found, "keys": reports, "bundles": bundles, "reported": reported}),
        )?;
    } else {
        let mut out = format!(
            "{} keyledger credential{} in {source}:\n",
            hits.len(),
            if hits.len() == 1 { "" } else { "s" }
        );
        for (line, _, f, key) in &hits {
            let whose = match key {
                Some(k) => {
                    let user = v.state.keys.get(k).map_or("?", |k| k.user.as_str());
                    format!("key {k} of {user}")
                }
                None => "no key of this ledger".into(),
            };
            out.push_str(&format!("  line {line}: a {} → {whose}\n", kind(*f)));
        }
        for (k, seq, d) in &reported {
            let disabled = match d {
                Some(d) => format!("disabled at seq {d}"),
                None => "it was not active".into(),
            };
            out.push_str(&format!("  {k}: leak recorded at seq {seq}; {disabled}\n"));
        }
        print(&out)?;
        for k in &keys {
            print("\n")?;
            let (r, history) = key_history(ctx, k)?;
            show_history(ctx, r.state.keys.get(*k), &history)?;
        }
        for (k, dir, n) in &bundles {
            print(&format!(
                "\nevidence bundle of {k} ({n} events) written to {dir}; check it with keyledger verify-bundle {dir}\n"
            ))?;
        }
    }
    if keys.is_empty() {
        return Err(CliError::check_failed(format!(
            "no key of this ledger matches what {source} holds"
        )));
    }
    Ok(())
}

/// Records each key's leak and disables the active ones, in one group commit: (key, seq of
/// `leak-reported`, seq of `key-disabled`). A refusal is recorded and fails the command.
fn record(
    ctx: &Ctx,
    state: &keyledger::core::state::State,
    keys: &[&str],
    source: &str,
    reason: &str,
) -> Result<Vec<(String, u64, Option<u64>)>, CliError> {
    use keyledger::core::event::Action;
    use keyledger::core::state::KeyStatus;
    let (mut l, signer) = ctx.open()?;
    let mut actions = Vec::new();
    for k in keys {
        actions.push(Action::LeakReported {
            key_id: (*k).to_owned(),
            source: source.to_owned(),
            reason: reason.to_owned(),
        });
        if state
            .keys
            .get(*k)
            .is_some_and(|k| k.status == KeyStatus::Active)
        {
            actions.push(Action::KeyDisabled {
                key_id: (*k).to_owned(),
            });
        }
    }
    let kinds: Vec<(String, bool)> = actions
        .iter()
        .map(|a| {
            (
                a.key_id().unwrap_or("").to_owned(),
                matches!(a, Action::LeakReported { .. }),
            )
        })
        .collect();
    let outcomes = l.append_batch(&signer, actions, ctx.now)?;
    let mut out: Vec<(String, u64, Option<u64>)> = Vec::new();
    for ((key, is_report), o) in kinds.into_iter().zip(outcomes) {
        let receipt = o.map_err(|(refusal, receipt)| {
            CliError::from(keyledger::storage::store::StoreError::Denied { refusal, receipt })
        })?;
        match is_report {
            true => out.push((key, receipt.seq, None)),
            false => {
                if let Some(last) = out.last_mut() {
                    last.2 = Some(receipt.seq);
                }
            }
        }
    }
    Ok(out)
}

/// The file `--scan` reads, whole (it may hold secrets: zeroized when dropped).
fn read_scanned(p: &Path) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let io = |e: std::io::Error| CliError::usage(format!("--scan {}: {e}", p.display()));
    let len = std::fs::metadata(p).map_err(io)?.len();
    if len > MAX_SCAN {
        return Err(CliError::usage(format!(
            "--scan {}: larger than {} MiB; split it",
            p.display(),
            MAX_SCAN >> 20
        )));
    }
    std::fs::read(p).map(Zeroizing::new).map_err(io)
}
