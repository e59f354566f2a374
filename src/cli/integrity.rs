//! verify, repair, checkpoint, demo.

use std::path::{Path, PathBuf};

use keyledger::core::types::Hash32;
use keyledger::evidence::checkpoint::{self, Checkpoint};
use keyledger::evidence::verify::{self, Anchor, Options, Report};
use keyledger::storage::keyfile::write_exclusive;
use serde_json::json;

use super::Ctx;
use super::args::{CosignArgs, ExportArgs, ExportFormat, VerifyArgs};
use super::error::CliError;
use super::output::{json, print};
use keyledger::evidence::export::{self, BundleError};

fn parse_hash(flag: &str, s: &str) -> Result<Hash32, CliError> {
    Hash32::parse_hex(s)
        .ok_or_else(|| CliError::usage(format!("{flag}: {s:?} is not a 64-digit hex hash")))
}

/// Renders a report for people.
fn render(shown: &str, r: &Report) -> String {
    let mut out = format!("ledger   {shown}\n");
    if let Some(id) = &r.ledger_id {
        out.push_str(&format!("id       {id}\n"));
    }
    if let Some(g) = &r.genesis_hash {
        out.push_str(&format!("genesis  {g}\n"));
    }
    out.push_str(&format!("events   {} ({} bytes)\n", r.events, r.bytes));
    if let (Some(s), Some(h), Some(t)) = (r.head_seq, &r.head_hash, &r.head_time) {
        out.push_str(&format!("head     seq {s}  {h}  {t}\n"));
    }
    if let Some(a) = &r.genesis_anchor {
        out.push_str(&format!("anchor   {a}\n"));
    }
    if let Some(a) = &r.anchor {
        out.push_str(&format!("anchor   {a}\n"));
    }
    if let Some(w) = &r.witnesses {
        out.push_str(&format!("witness  {w}\n"));
    }
    if r.ok {
        out.push_str("result   OK: every event is intact, chained, signed by a key enrolled at that point, and allowed by policy\n");
        if r.anchor.is_none() {
            out.push_str("note     no tail anchor given: a cut-off tail is only caught with --expect-head or --checkpoint\n");
        }
        return out;
    }
    let ranges = r.ranges();
    out.push_str(&format!(
        "result   FAILED: {} problem(s) in {} bad range(s)\n",
        r.findings.len(),
        ranges.len()
    ));
    for range in ranges {
        let seqs = match (range.first_seq, range.last_seq) {
            (Some(a), Some(b)) if a != b => format!("seq {a}..{b}"),
            (Some(a), _) => format!("seq {a}"),
            _ => "file".into(),
        };
        out.push_str(&format!(
            "  {seqs}, from byte offset {}:\n",
            range.start_offset
        ));
        for f in range.findings {
            let at = f.seq.map_or(String::new(), |s| format!("seq {s} "));
            out.push_str(&format!(
                "    {at}@{} [{}] {}\n",
                f.offset,
                f.problem.as_str(),
                super::output::clean(&f.message)
            ));
        }
    }
    out
}

/// What an archive lacks or leaves unprotected, as sentences (empty: nothing).
pub fn archive_problems(r: &keyledger::client::archive::Rebuilt) -> Vec<String> {
    let mut out = Vec::new();
    if r.segments.is_empty() {
        out.push("the archive holds no segments".to_owned());
    }
    for (a, b) in &r.missing {
        out.push(format!(
            "seqs {a}-{b} are missing from the archive (no segment holds them)"
        ));
    }
    for s in &r.without_checkpoint {
        out.push(format!("the segment ending at seq {s} has no checkpoint"));
    }
    for k in &r.not_locked {
        out.push(format!(
            "{k} is not under COMPLIANCE retention: it could be changed"
        ));
    }
    for k in &r.junk {
        out.push(format!(
            "{k} is neither a segment's nor a checkpoint's name"
        ));
    }
    for k in &r.rewritten {
        out.push(format!(
            "{k} was written again or deleted after it was sealed (its first, sealed version was read)"
        ));
    }
    out
}

/// The witnesses trusted to cosign, if any were given.
fn policy(
    a: &super::args::WitnessKeyArgs,
) -> Result<Option<keyledger::evidence::cosign::WitnessPolicy>, CliError> {
    if a.witness_keys.is_empty() {
        return Ok(None);
    }
    keyledger::evidence::cosign::WitnessPolicy::from_vkeys(&a.witness_keys, a.quorum)
        .map(Some)
        .map_err(CliError::usage)
}

pub fn verify(ctx: &Ctx, a: &VerifyArgs) -> Result<(), CliError> {
    // Read once: the anchor and the cosignatures are checked on the same bytes.
    let note = a
        .checkpoint
        .as_ref()
        .map(|p| {
            keyledger::storage::files::read_regular(p, 1 << 20)
                .map_err(|e| CliError::usage(format!("{}: {e}", p.display())))
        })
        .transpose()?;
    let anchor = match (&note, &a.expect_head) {
        (Some(n), _) => Some(Anchor::Checkpoint(n.clone())),
        (None, Some(h)) => Some(Anchor::Head(parse_hash("--expect-head", h)?)),
        (None, None) => None,
    };
    // From an archive, every checkpoint it holds is an anchor (and the user's, if given).
    let anchor = match (&ctx.archive, anchor) {
        (Some((_, r)), None | Some(Anchor::Checkpoint(_))) if !r.checkpoints.is_empty() => {
            let mut notes = r.checkpoints.clone();
            notes.extend(note.clone());
            Some(Anchor::Checkpoints(notes))
        }
        (_, anchor) => anchor,
    };
    let witnessed = match (&note, policy(&a.witnesses)?) {
        (Some(note), Some(p)) => Some((note.clone(), p)),
        (None, Some(_)) => {
            return Err(CliError::usage(
                "--witness-key checks the cosignatures on --checkpoint FILE: give the checkpoint",
            ));
        }
        _ => None,
    };
    let opts = Options {
        // A head this user verified earlier is an anchor too: a cut below it is a finding.
        witness: ctx.cache.witness(&ctx.ledger),
        witnessed,
        genesis: a
            .expect_genesis
            .as_deref()
            .map(|g| parse_hash("--expect-genesis", g))
            .transpose()?,
        anchor,
    };
    if !ctx.ledger.exists() {
        return Err(CliError::usage(format!(
            "{}: no ledger here",
            ctx.ledger.display()
        )));
    }
    let (report, verified) = verify::verify_file_full(&ctx.ledger, &opts, true)
        .map_err(|e| CliError::io(format!("{}: {e}", ctx.ledger.display())))?;
    // A ledger this user just verified in full (through the head they verified before)
    // needs no verifying again by later commands.
    if let Some(v) = verified {
        let _ = ctx.cache.save(&ctx.ledger, &v);
    }
    let problems = ctx
        .archive
        .as_ref()
        .map_or_else(Vec::new, |(_, r)| archive_problems(r));
    if ctx.json {
        let archive = ctx.archive.as_ref().map(|(_, r)| {
            json!({"segments": r.segments, "covers_to": r.rebuilt_to, "missing": r.missing,
                "without_checkpoint": r.without_checkpoint, "not_locked": r.not_locked, "rewritten": r.rewritten, "junk": r.junk,
                "checkpoints": r.checkpoints.len(), "problems": problems})
        });
        json(
            &json!({"ledger": ctx.shown_ledger(), "report": report, "ranges": report.ranges(), "archive": archive}),
        )?;
    } else {
        let mut out = render(&ctx.shown_ledger(), &report);
        if let Some((_, r)) = &ctx.archive {
            let covers = r
                .rebuilt_to
                .map_or("no seqs".to_owned(), |t| format!("seqs 0-{t}"));
            out.push_str(&format!(
                "archive  {} segment(s) and {} checkpoint(s); the rebuilt ledger covers {covers}\n",
                r.segments.len(),
                r.checkpoints.len()
            ));
        }
        for p in &problems {
            out.push_str(&format!("PROBLEM  {p}\n"));
        }
        print(&out)?;
    }
    if !problems.is_empty() {
        return Err(CliError::check_failed(""));
    }
    if report.ok {
        Ok(())
    } else {
        Err(CliError::check_failed(""))
    }
}

pub fn repair(ctx: &Ctx) -> Result<(), CliError> {
    let key = ctx.signing_key()?;
    match keyledger::storage::ledger::repair(&ctx.ledger, &key, ctx.now, ctx.wait, &ctx.cache)? {
        None => {
            if ctx.json {
                return json(&json!({"repaired": false}));
            }
            print("nothing to repair: the ledger ends on a complete frame\n")
        }
        Some(r) => {
            if ctx.json {
                return json(&json!({
                    "repaired": true, "offset": r.torn.offset, "removed_bytes": r.torn.bytes,
                    "removed_blake3": r.removed_blake3.hex(), "quarantine": r.quarantine, "seq": r.receipt.seq,
                }));
            }
            print(&format!(
                "moved {} torn bytes from offset {} to {} (blake3 {}); recorded as log-repaired at seq {}\n",
                r.torn.bytes,
                r.torn.offset,
                r.quarantine.display(),
                r.removed_blake3,
                r.receipt.seq
            ))
        }
    }
}

pub fn checkpoint(
    ctx: &Ctx,
    out: Option<&Path>,
    vkey: bool,
    record: bool,
    cosign: &CosignArgs,
) -> Result<(), CliError> {
    let key = ctx.signing_key()?;
    let not_signer = |e: keyledger::core::state::ApplyError| CliError {
        code: super::error::REFUSED,
        message: format!(
            "the signing key {e}; only an active signing key of this ledger may sign its checkpoints"
        ),
    };
    // The root of every verified event, from this user's cache or a fresh verification.
    let (state, tree) = if record {
        let (mut l, _) = ctx.open()?;
        l.actor(&key).map_err(|e| match e {
            keyledger::storage::store::StoreError::Signer(a) => not_signer(a),
            other => other.into(),
        })?;
        let action = keyledger::core::event::Action::CheckpointRecorded {
            size: l.verified().tree.size(),
            root: keyledger::core::types::Bytes(l.verified().tree.root()),
        };
        let tree = l.verified().tree.clone();
        let receipt = l.append(&key, action, ctx.now)?;
        super::output::message(&format!(
            "recorded the checkpoint of {} events at seq {}",
            tree.size(),
            receipt.seq
        ));
        (l.state().clone(), tree)
    } else {
        let v = ctx.read_head()?;
        (v.state, v.tree)
    };
    let actor = state
        .actor_of(&key.public())
        .map_err(not_signer)?
        .to_owned();
    let origin = checkpoint::origin(&state.ledger_id.expect("a verified ledger has a genesis"));
    if vkey {
        let v = checkpoint::verifier_key(&origin, &key.public());
        return if ctx.json {
            json(&json!({"vkey": v, "principal": actor}))
        } else {
            print(&format!("{v}\n"))
        };
    }
    let mut note = Checkpoint {
        origin,
        size: tree.size(),
        root: tree.root(),
    }
    .sign(&key);
    let mut asked = Vec::new();
    if !cosign.witnesses.is_empty() {
        (note, asked) = cosigned(ctx, &note, tree.size(), cosign)?;
    }
    let asked = json!(asked);
    match out {
        Some(p) => {
            write_exclusive(p, note.as_bytes(), 0o644)?;
            if ctx.json {
                json(
                    &json!({"checkpoint": p, "size": tree.size(), "signed_by": actor, "witnesses": asked}),
                )
            } else {
                print(&format!(
                    "wrote checkpoint of {} events signed by {actor} to {}\n",
                    tree.size(),
                    p.display()
                ))
            }
        }
        None => print(&note),
    }
}

/// `note` (a checkpoint of the first `size` events) cosigned by a quorum of `witnesses`
/// (client::witness::cosign_note); each refusal is said on stderr.
pub(super) fn cosigned(
    ctx: &Ctx,
    note: &str,
    size: u64,
    cosign: &CosignArgs,
) -> Result<(String, Vec<keyledger::client::witness::Asked>), CliError> {
    let mut leaves = Vec::new();
    let mut newest = None;
    keyledger::storage::store::replay(&ctx.ledger, &ctx.cache, None, |seen| {
        if (leaves.len() as u64) < size {
            leaves.push(*seen.hash);
            newest = newest.max(Some(seen.event.time));
        }
    })?;
    cosigned_over(
        &keyledger::core::merkle::ProofTree::new(&leaves),
        newest,
        note,
        cosign,
    )
}

/// As `cosigned`, for the tree the note is a checkpoint of, whose latest event is dated
/// `newest`.
pub(super) fn cosigned_over(
    tree: &keyledger::core::merkle::ProofTree,
    newest: Option<keyledger::core::types::Timestamp>,
    note: &str,
    cosign: &CosignArgs,
) -> Result<(String, Vec<keyledger::client::witness::Asked>), CliError> {
    use keyledger::client::witness::{CosignError, cosign_note};
    let trusted = keyledger::evidence::cosign::parse_witness_keys(&cosign.witness_keys)
        .map_err(CliError::usage)?;
    if trusted.is_empty() {
        super::output::message(
            "no --witness-key given: the witnesses' answers are not checked against their keys",
        );
    }
    let said = |asked: &[keyledger::client::witness::Asked]| {
        for a in asked.iter().filter(|a| !a.cosigned) {
            super::output::message(&format!(
                "witness {} did not cosign: {}",
                a.witness,
                a.refused.as_deref().unwrap_or("?")
            ));
        }
    };
    match cosign_note(
        note,
        tree,
        &cosign.witnesses,
        cosign.quorum,
        &trusted,
        newest,
    ) {
        Ok((note, asked)) => {
            said(&asked);
            Ok((note, asked))
        }
        Err(e @ CosignError::Quorum(_)) => Err(CliError::usage(e.to_string())),
        Err(e @ CosignError::Malformed(_)) => Err(CliError::check_failed(e.to_string())),
        Err(e) => {
            if let CosignError::Short { asked, .. } = &e {
                said(asked);
            }
            Err(CliError {
                code: super::error::REFUSED,
                message: e.to_string(),
            })
        }
    }
}

pub fn demo(ctx: &Ctx, dir: Option<PathBuf>) -> Result<(), CliError> {
    let dir = match dir {
        Some(d) => {
            if d.exists() && d.read_dir().map_err(CliError::io)?.next().is_some() {
                return Err(CliError::usage(format!(
                    "{} is not empty; the demo builds in a new or empty directory",
                    d.display()
                )));
            }
            d
        }
        None => (1..)
            .map(|n| {
                PathBuf::from(if n == 1 {
                    "keyledger-demo".into()
                } else {
                    format!("keyledger-demo-{n}")
                })
            })
            .find(|p| !p.exists())
            .expect("some name is free"),
    };
    let d = keyledger::tools::demo::build(&dir, ctx.now).map_err(|e| match e {
        keyledger::tools::demo::DemoError::Store(s) => CliError::from(s),
        other => CliError::io(other),
    })?;
    if ctx.json {
        return json(&json!({
            "dir": d.dir, "ledger": d.ledger, "account_key": d.account_key, "genesis_hash": d.genesis,
            "steps": d.steps, "refusals": d.refusals, "summary": d.summary, "verify": d.report,
        }));
    }
    let mut out = format!(
        "Built a sample ledger in {}/\n\nWhat happened:\n",
        d.dir.display()
    );
    for s in &d.steps {
        out.push_str(&format!("  - {s}\n"));
    }
    out.push_str("Refused by policy, each recorded as an action-denied event:\n");
    for s in &d.refusals {
        out.push_str(&format!("  - {s}\n"));
    }
    out.push_str(&format!("\nDerived state: {}\n", d.summary));
    out.push_str(&format!(
        "\nVerification (signatures, chain, policy, anchored to the head):\n{}",
        render(&d.ledger.display().to_string(), &d.report)
    ));
    // A new ledger at this path: what this user's cache said of one removed from here goes.
    let _ = ctx.cache.forget(&d.ledger);
    let audit = keyledger::audit::audit(
        &d.ledger,
        &keyledger::audit::Options::at(ctx.now),
        &ctx.cache,
    )
    .map_err(CliError::io)?;
    out.push_str(&format!(
        "\nAudit as of now ({} finding(s), each citing the events that prove it):\n",
        audit.findings.len()
    ));
    for f in &audit.findings {
        out.push_str(&format!(
            "  [{}] {}: {} (seq {})\n",
            f.severity.as_str(),
            f.control,
            super::output::clean(&f.message),
            super::views::evidence_text(&f.evidence)
        ));
    }
    let (kl, hint) = invocation();
    let l = shell_word(&d.ledger.display().to_string());
    let k = shell_word(&d.account_key.display().to_string());
    let dir = d.dir.display().to_string();
    let in_dir = |name: &str| shell_word(&format!("{dir}/{name}"));
    out.push_str(&format!(
        "\nTry:\n  {kl} --ledger {l} key list\n  {kl} --ledger {l} log --action action-denied\n  \
         {kl} --ledger {l} verify --expect-genesis {}\n  {kl} --ledger {l} --key {k} checkpoint --out {}\n  \
         {kl} --ledger {l} audit --format html --out {}\n  {kl} --ledger {l} report credentials\n{hint}",
        d.genesis,
        in_dir("head.checkpoint"),
        in_dir("audit.html"),
    ));
    print(&out)?;
    if d.report.ok {
        Ok(())
    } else {
        Err(CliError::check_failed("the demo ledger did not verify"))
    }
}

pub fn export(ctx: &Ctx, a: &ExportArgs) -> Result<(), CliError> {
    let filter = super::views::to_filter(&a.filter)?;
    if a.out.exists() {
        return Err(CliError::usage(format!(
            "{} already exists; exports never overwrite",
            a.out.display()
        )));
    }
    if !a.cosign.witnesses.is_empty() && a.format != ExportFormat::Bundle {
        return Err(CliError::usage(
            "--witness cosigns a bundle's checkpoint: it goes with --format bundle",
        ));
    }
    let (what, n) = match a.format {
        ExportFormat::Bundle => {
            let key = ctx.signing_key()?;
            let s = export::write_bundle(
                &ctx.ledger,
                &a.out,
                &filter,
                &key,
                &ctx.cache,
                |note, tree, newest| match a.cosign.witnesses.is_empty() {
                    true => Ok(note),
                    false => cosigned_over(tree, newest, &note, &a.cosign).map(|c| c.0),
                },
            )?;
            super::warn_torn_tail(s.torn);
            (
                format!(
                    "evidence bundle of {} events, proven against a checkpoint of {} events signed by {}",
                    s.events, s.checkpoint_size, s.signed_by
                ),
                s.events,
            )
        }
        ExportFormat::Ledger => {
            if !filter.is_everything() {
                return Err(CliError::usage(
                    "--format ledger exports the whole ledger (a ledger with events left out would not verify): drop the filters",
                ));
            }
            let v = ctx.read_head()?;
            super::warn_torn_tail(v.torn);
            let bytes = keyledger::storage::files::read_regular(&ctx.ledger, v.head.end)
                .map_err(|e| CliError::io(format!("{}: {e}", ctx.ledger.display())))?;
            let n = v.head.seq + 1;
            write_exclusive(&a.out, &bytes[..v.head.end as usize], 0o644)?;
            (
                format!("the ledger file of {n} events, head {}", v.head.hash),
                n as usize,
            )
        }
        ExportFormat::Jsonl | ExportFormat::Csv | ExportFormat::Ocsf => {
            let sel = export::select(&ctx.ledger, &filter, &ctx.cache)?;
            super::warn_torn_tail(sel.torn);
            let records = sel.records();
            let text = match a.format {
                ExportFormat::Csv => export::to_csv(&records),
                ExportFormat::Ocsf => records
                    .iter()
                    .map(|r| super::views::ocsf_line(&sel.state, r))
                    .collect(),
                _ => export::to_jsonl(&records),
            };
            write_exclusive(&a.out, text.as_bytes(), 0o644)?;
            (format!("{} events", records.len()), records.len())
        }
    };
    if ctx.json {
        return json(&json!({"out": a.out, "events": n, "selection": filter.describe()}));
    }
    print(&format!(
        "exported {what} ({}) to {}\n",
        filter.describe(),
        a.out.display()
    ))
}

pub fn verify_bundle(
    ctx: &Ctx,
    path: &Path,
    trusted: Option<&str>,
    witnesses: &super::args::WitnessKeyArgs,
) -> Result<(), CliError> {
    let trusted = trusted.map(super::parse_public_key).transpose()?;
    let witnesses = policy(witnesses)?;
    if !path.is_dir() {
        return Err(CliError::usage(format!(
            "{} is not a bundle directory",
            path.display()
        )));
    }
    match export::verify_bundle(path, trusted.as_ref(), witnesses.as_ref()) {
        Ok(r) => {
            let witnessed = r
                .witnesses
                .as_ref()
                .map_or(String::new(), |w| format!("witnessed: {w}\n"));
            if ctx.json {
                json(
                    &json!({"ok": r.key_trusted, "valid": true, "trusted": r.key_trusted, "report": r}),
                )?;
            } else if r.key_trusted {
                print(&format!(
                    "bundle OK: {} events ({}) of ledger {}, each proven included in a checkpoint of {} events signed by the key you trust ({})\n",
                    r.events.len(),
                    super::output::clean(&r.selection),
                    r.ledger_id,
                    r.checkpoint_size,
                    r.signing_key
                ))?;
                print(&witnessed)?;
            } else {
                print(&format!(
                    "bundle VALID BUT UNTRUSTED: {} events ({}), intact and consistent, signed by {} (which the bundle says is {} of ledger {}).\n\
                     Anyone can make such a bundle with their own key: it proves nothing until you check that this key is the one you trust for that ledger.\n\
                     Run again with --trusted-key KEY (the key obtained from the ledger's owner, not from this bundle).\n",
                    r.events.len(),
                    super::output::clean(&r.selection),
                    r.signing_key,
                    r.signed_by,
                    r.ledger_id
                ))?;
                print(&witnessed)?;
            }
            if r.key_trusted {
                Ok(())
            } else {
                Err(CliError {
                    code: super::error::UNTRUSTED,
                    message: String::new(),
                })
            }
        }
        Err(BundleError::Invalid(m)) => {
            if ctx.json {
                json(&json!({"ok": false, "valid": false, "problem": m}))?;
            } else {
                print(&format!("bundle FAILED: {}\n", super::output::clean(&m)))?;
            }
            Err(CliError::check_failed(""))
        }
        Err(BundleError::Io { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
            if ctx.json {
                json(
                    &json!({"ok": false, "valid": false, "problem": format!("{} is missing", path.display())}),
                )?;
            } else {
                print(&format!(
                    "bundle FAILED: {} is missing\n",
                    super::output::clean(&path.display().to_string())
                ))?;
            }
            Err(CliError::check_failed(""))
        }
        Err(e) => Err(CliError::io(e)),
    }
}

/// How to run this program as typed: `keyledger` when that name on PATH is this very
/// program, else its full path, with a hint on installing it.
fn invocation() -> (String, &'static str) {
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("keyledger"))
            .find(|c| c.is_file())
            .and_then(|c| std::fs::canonicalize(c).ok())
    });
    match (me, on_path) {
        (Some(me), Some(found)) if me == found => ("keyledger".into(), ""),
        (Some(me), _) => (
            shell_word(&me.display().to_string()),
            "(keyledger is not on your PATH, or is another build: `cargo install --path .` in the source directory puts this one there)\n",
        ),
        (None, _) => ("keyledger".into(), ""),
    }
}

/// `s` as one shell word: as is when it is plain, else in single quotes.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `import FILE` (issue 16): a verified ledger file into the database --ledger names.
pub fn import(ctx: &Ctx, file: &std::path::Path) -> Result<(), CliError> {
    let Some(url) = &ctx.postgres else {
        return Err(CliError::usage(
            "import copies a ledger file into a database: pass --ledger postgres://USER@HOST:PORT/DB?ledger=NAME (a file is copied with cp)",
        ));
    };
    let (report, verified) = keyledger::evidence::verify::verify_file_full(
        file,
        &keyledger::evidence::verify::Options::default(),
        true,
    )
    .map_err(|e| CliError::io(format!("{}: {e}", file.display())))?;
    let (true, Some(v)) = (report.ok, verified) else {
        return Err(CliError::check_failed(format!(
            "{} does not verify ({} findings; run `keyledger --ledger {} verify`): nothing was imported",
            file.display(),
            report.findings.len(),
            file.display()
        )));
    };
    let bytes = keyledger::storage::files::read_regular(file, v.head.end)
        .map_err(|e| CliError::io(format!("{}: {e}", file.display())))?;
    let frames = keyledger::storage::postgres::import(url, &bytes[..v.head.end as usize])?;
    let _ = ctx.cache.forget(&ctx.ledger);
    let _ = std::fs::remove_file(&ctx.ledger);
    let m = keyledger::storage::postgres::sync(url, &ctx.ledger, &ctx.cache)?;
    if ctx.json {
        return json(
            &json!({"imported": file, "ledger": url, "events": frames, "head_hash": m.head.hash.hex()}),
        );
    }
    print(&format!(
        "imported {frames} events of {} into {url} (head {})\n",
        file.display(),
        m.head.hash
    ))
}

/// An archive's error as the CLI reports it: a store that refuses or cannot be reached is
/// an I/O failure (5); an archive that is not this ledger's, or is damaged, a failed check
/// (1); a wrong URL, a bucket without Object Lock or a key that may not sign, usage (2).
pub fn archive_error(e: keyledger::client::archive::ArchiveError) -> CliError {
    use keyledger::client::archive::ArchiveError as A;
    match e {
        A::Store(s) => CliError::from(s),
        A::S3(s) => CliError::io(s.to_string()),
        e @ (A::Diverged { .. } | A::Gap { .. } | A::Layout { .. }) => {
            CliError::check_failed(e.to_string())
        }
        e @ (A::Url(_) | A::NoObjectLock(_) | A::Signer(_)) => CliError::usage(e.to_string()),
    }
}

pub fn archive(
    ctx: &Ctx,
    to: &str,
    endpoint: Option<String>,
    retain_days: u32,
    segment_events: u64,
) -> Result<(), CliError> {
    use keyledger::client::archive::{self, Location};
    let mut at = Location::parse(to).map_err(|e| CliError::usage(e.to_string()))?;
    if endpoint.is_some() {
        at.endpoint = endpoint;
    }
    let key = ctx.signing_key()?;
    let until = ctx.now.plus_micros(retain_days as i64 * 86_400_000_000);
    let done = archive::archive(&at, &ctx.ledger, &ctx.cache, &key, until, segment_events)
        .map_err(archive_error)?;
    if ctx.json {
        return json(&json!({"archive": to, "ledger": ctx.shown_ledger(), "result": done}));
    }
    let mut out = match done.uploaded.as_slice() {
        [] => format!(
            "nothing new to archive: {to} already covers seqs 0-{}\n",
            done.covers_to
        ),
        segs => format!(
            "archived seqs {}-{} in {} segment(s) to {to}, each with its checkpoint, retained (COMPLIANCE) until {}\n",
            segs[0].0,
            done.covers_to,
            segs.len(),
            done.retain_until
        ),
    };
    for s in &done.checkpoints_completed {
        out.push_str(&format!(
            "completed the checkpoint of the segment ending at seq {s} (an earlier run stopped before it)\n"
        ));
    }
    print(&out)
}

/// `tiles --out DIR` (issue 17): the checkpoint and every tile and entry bundle of the tree,
/// each file written to a temporary name and renamed; a full tile already there must hold
/// the same bytes (it never changes), else the directory holds another log's tree.
pub fn tiles(ctx: &Ctx, out: &Path) -> Result<(), CliError> {
    let key = ctx.signing_key()?;
    let mut leaves = Vec::new();
    let r = keyledger::storage::store::replay(&ctx.ledger, &ctx.cache, None, |seen| {
        leaves.push(*seen.hash)
    })?;
    let size = leaves.len() as u64;
    let origin = checkpoint::origin(&r.state.ledger_id.expect("a verified ledger has a genesis"));
    r.state
        .actor_of(&key.public())
        .map_err(|e| CliError::usage(format!("the signing key {e}")))?;
    let note = Checkpoint {
        origin,
        size,
        root: r.tree.root(),
    }
    .sign(&key);
    std::fs::create_dir_all(out).map_err(|e| CliError::io(format!("{}: {e}", out.display())))?;
    let write = |rel: &str, bytes: &[u8]| -> Result<(), CliError> {
        let path = out.join(rel);
        // Every directory under DIR is a real one, made here if absent: a link planted
        // inside DIR would send the tiles elsewhere.
        let mut dir = out.to_path_buf();
        for part in Path::new(rel)
            .parent()
            .into_iter()
            .flat_map(Path::components)
        {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(CliError::check_failed(format!(
                        "{}: not a directory (a link, or a file) inside the tiles directory; remove it",
                        dir.display()
                    )));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&dir)
                    .map_err(|e| CliError::io(format!("{}: {e}", dir.display())))?,
                Err(e) => return Err(CliError::io(format!("{}: {e}", dir.display()))),
            }
        }
        // A fresh file (never through a link planted at the temporary name), then renamed.
        let tmp = path.with_extension("tmp-keyledger");
        let _ = std::fs::remove_file(&tmp);
        keyledger::storage::files::write_new(&tmp, bytes, 0o644)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| CliError::io(format!("{}: {e}", path.display())))
    };
    let (mut written, mut kept) = (0, 0);
    for (rel, bytes, full) in keyledger::evidence::tiles::tiles(&leaves, size) {
        if full {
            match std::fs::read(out.join(&rel)) {
                Ok(b) if b == bytes => {
                    kept += 1;
                    continue;
                }
                Ok(_) => {
                    return Err(CliError::check_failed(format!(
                        "{}: a full tile already there holds other hashes: {} holds another log's tree (or this ledger was rewritten)",
                        out.join(&rel).display(),
                        out.display()
                    )));
                }
                Err(_) => {}
            }
        }
        write(&rel, &bytes)?;
        written += 1;
    }
    // The checkpoint last: a client that reads it finds every tile it needs.
    write("checkpoint", note.as_bytes())?;
    if ctx.json {
        return json(&json!({"dir": out, "size": size, "written": written, "kept": kept}));
    }
    print(&format!(
        "wrote the tiles of {size} events to {} ({written} files written, {kept} full tiles already there) and its checkpoint\n",
        out.display()
    ))
}
