//! audit and report credentials.

use keyledger::audit::report;
use keyledger::audit::{self, AuditError, Options, Severity};
use keyledger::storage::keyfile::write_exclusive;
use keyledger::storage::store::Until;
use serde_json::json;

use super::args::{AuditArgs, AuditFormat};
use super::error::CliError;
use super::output::{or_dash, print, table};
use super::views::evidence_text;
use super::{Ctx, parse_time};

pub fn audit(ctx: &Ctx, a: &AuditArgs) -> Result<(), CliError> {
    let as_of = a
        .as_of
        .as_deref()
        .map(|t| parse_time("--as-of", t))
        .transpose()?
        .unwrap_or(ctx.now);
    let fail_on = match a.fail_on.as_str() {
        "none" => None,
        s => Some(Severity::parse(s).ok_or_else(|| {
            CliError::usage(format!(
                "--fail-on {s:?}: use low, medium, high, critical or none"
            ))
        })?),
    };
    for (flag, v) in [
        ("--max-key-age", a.max_key_age),
        ("--max-unused", a.max_unused),
        ("--max-temporary", a.max_temporary),
    ] {
        if v < 0 {
            return Err(CliError::usage(format!("{flag} must not be negative")));
        }
    }
    if a.burst == 0 {
        return Err(CliError::usage("--burst must be at least 1"));
    }
    let opts = Options {
        whole: a.as_of.is_none(),
        max_key_age_days: a.max_key_age,
        max_unused_days: a.max_unused,
        max_temporary_hours: a.max_temporary,
        burst_threshold: a.burst,
        // The HTML report's summary shows 24 months; other formats on request.
        trend_months: match (a.trend, ctx.json, a.format) {
            (true, _, _) | (false, false, AuditFormat::Html) => 24,
            _ => 0,
        },
        ..Options::at(as_of)
    };
    let r = audit::audit(&ctx.ledger, &opts, &ctx.cache).map_err(|e| match e {
        AuditError::Store(s) => CliError::from(s),
        AuditError::NotVerified(_) | AuditError::Diverged(_) => {
            CliError::check_failed(e.to_string())
        }
        AuditError::Io(..) => CliError::io(e),
    })?;
    let format = if ctx.json {
        AuditFormat::Json
    } else {
        a.format
    };
    let text = match format {
        AuditFormat::Json => serde_json::to_string_pretty(&json!({
            "ledger": ctx.shown_ledger(), "as_of": r.as_of.to_string(), "as_of_seq": r.as_of_seq, "events": r.events,
            "ledger_events": r.ledger_events,
            "evaluated": {"first_seq": 0, "last_seq": r.as_of_seq, "whole_ledger": r.events == r.ledger_events},
            "findings": r.findings,
            "rotations": r.rotations(),
            "trend": r.trend,
        }))
        .map_err(CliError::io)?
            + "\n",
        AuditFormat::Html => report::audit_html(&r, &ctx.shown_ledger()),
        AuditFormat::Text => {
            let rows: Vec<Vec<String>> = r
                .findings
                .iter()
                .map(|f| {
                    vec![f.severity.as_str().into(), f.control.into(), or_dash(f.principal.as_ref()), or_dash(f.key_id.as_ref()), evidence_text(&f.evidence), f.message.clone()]
                })
                .collect();
            let coverage = if r.events == r.ledger_events {
                format!("seq 0..={}, the whole ledger", r.as_of_seq)
            } else {
                format!(
                    "seq 0..={} of {} events; seq {}..={} are dated after {} and not evaluated",
                    r.as_of_seq,
                    r.ledger_events,
                    r.as_of_seq + 1,
                    r.ledger_events - 1,
                    r.as_of
                )
            };
            let rotations: String = r
                .rotations()
                .iter()
                .map(|x| format!("  {} of {}: {} -> {} at seq {} (old key now {})\n", x.time, x.user, x.old_key_id, x.new_key_id, x.seq, x.old_status))
                .collect();
            format!(
                "audit of {} as of {} (evaluated {coverage}): every event verifies; {} finding(s)\n\n{}{}",
                ctx.shown_ledger(),
                r.as_of,
                r.findings.len(),
                table(&["SEVERITY", "CONTROL", "PRINCIPAL", "KEY", "EVIDENCE", "FINDING"], &rows),
                if rotations.is_empty() { String::new() } else { format!("\nrotations:\n{rotations}") }
            )
        }
    };
    match &a.out {
        Some(p) => {
            write_exclusive(p, text.as_bytes(), 0o644)?;
            super::output::message(&format!("wrote the audit to {}", p.display()));
        }
        None => print(&text)?,
    }
    let worst = r.findings.iter().map(|f| f.severity).max();
    match (fail_on, worst) {
        (Some(limit), Some(w)) if w >= limit => Err(CliError::check_failed(format!(
            "the audit has findings at or above {} (exit 1; --fail-on sets the level)",
            limit.as_str()
        ))),
        _ => Ok(()),
    }
}

pub fn credentials(ctx: &Ctx, as_of: Option<&str>) -> Result<(), CliError> {
    let until = as_of
        .map(|t| parse_time("--as-of", t))
        .transpose()?
        .map(Until::Time);
    let r = ctx.read(until, |_| {})?;
    print(&report::credential_report(&r.state))
}
