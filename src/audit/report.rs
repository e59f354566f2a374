//! Reports built from an audit or a replayed state: the AWS IAM credential report layout
//! (CSV) and a self-contained HTML audit report with an SVG timeline per key. Pure
//! functions returning text; no network resources are referenced.

use std::fmt::Write;

use crate::audit::{Audit, CONTROLS};
use crate::core::state::{KeyStatus, PrincipalKind, State};
use crate::core::types::Timestamp;

/// The AWS IAM credential report columns, in AWS's order.
pub const CREDENTIAL_REPORT_COLUMNS: [&str; 22] = [
    "user",
    "arn",
    "user_creation_time",
    "password_enabled",
    "password_last_used",
    "password_last_changed",
    "password_next_rotation",
    "mfa_active",
    "access_key_1_active",
    "access_key_1_last_rotated",
    "access_key_1_last_used_date",
    "access_key_1_last_used_region",
    "access_key_1_last_used_service",
    "access_key_2_active",
    "access_key_2_last_rotated",
    "access_key_2_last_used_date",
    "access_key_2_last_used_region",
    "access_key_2_last_used_service",
    "cert_1_active",
    "cert_1_last_rotated",
    "cert_2_active",
    "cert_2_last_rotated",
];

/// ISO 8601 as AWS writes it: `2026-01-02T03:04:05+00:00`.
fn aws_time(t: Timestamp) -> String {
    t.to_datetime().map_or("N/A".into(), |d| {
        d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    })
}

/// The credential report over `state` (replayed to the time wanted): one row per live principal (the account
/// as `<root_account>`), its first two undeleted permanent keys as key 1 and key 2. Columns
/// that do not apply (passwords, regions, services, certificates) hold what AWS writes for
/// an unused credential (`N/A`, `not_supported`, `false`). The ARN column holds the
/// principal's keyledger id, `keyledger:<ledger id>:root` or `…:user/<name>`.
pub fn credential_report(state: &State) -> String {
    let mut out = CREDENTIAL_REPORT_COLUMNS.join(",") + "\n";
    let ledger = state.ledger_id.map(|i| i.hex()).unwrap_or_default();
    for p in state.principals.values().filter(|p| p.deleted.is_none()) {
        let (user, arn) = match p.kind {
            PrincipalKind::Account => (
                "<root_account>".to_owned(),
                format!("keyledger:{ledger}:root"),
            ),
            _ => (
                p.name.clone(),
                format!("keyledger:{ledger}:user/{}", p.name),
            ),
        };
        let mut keys: Vec<_> = state
            .keys_of(&p.name)
            .filter(|k| !k.temporary && k.status != KeyStatus::Deleted)
            .collect();
        keys.sort_by_key(|k| k.created.seq);
        let mut row = vec![
            user,
            arn,
            aws_time(p.created.time),
            "false".into(),
            "N/A".into(),
            "N/A".into(),
            "N/A".into(),
            "false".into(),
        ];
        for i in 0..2 {
            match keys.get(i) {
                Some(k) => {
                    row.push((k.status == KeyStatus::Active).to_string());
                    row.push(aws_time(k.created.time));
                    row.push(k.last_used.map_or("N/A".into(), |u| aws_time(u.time)));
                    row.push("N/A".into());
                    row.push("N/A".into());
                }
                None => row.extend(["false", "N/A", "N/A", "N/A", "N/A"].map(String::from)),
            }
        }
        row.extend(["false", "N/A", "false", "N/A"].map(String::from));
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// HTML-escaped, with control and direction-changing characters shown as escapes.
fn esc(s: &str) -> String {
    crate::core::text::escape(s, &[])
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Colour of a timeline mark.
fn mark_style(tag: &str) -> (&'static str, &'static str) {
    match tag {
        "key-created" | "temporary-issued" => ("#2563eb", "created"),
        "secret-revealed" => ("#7c3aed", "revealed"),
        "auth-succeeded" => ("#16a34a", "used"),
        "auth-failed" => ("#f97316", "auth failed"),
        "key-disabled" => ("#ca8a04", "disabled"),
        "key-enabled" => ("#0891b2", "enabled"),
        "key-deleted" => ("#dc2626", "deleted"),
        "key-rotated" => ("#db2777", "rotated"),
        _ => ("#6b7280", "other"),
    }
}

/// One SVG timeline: the key's life from creation to deletion or the audit time.
fn timeline_svg(audit: &Audit, key_id: &str) -> String {
    let Some(marks) = audit.timelines.get(key_id) else {
        return String::new();
    };
    let (w, h, pad) = (720.0f64, 56.0f64, 16.0f64);
    let start = marks.first().map_or(audit.as_of.0, |m| m.time.0) as f64;
    let end = (audit.as_of.0 as f64).max(start + 1.0);
    let x = |t: i64| pad + (t as f64 - start) / (end - start) * (w - 2.0 * pad);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="timeline of {key_id}">"#
    );
    // The line ends where the key's life did: deletion, expiry, or the audit time.
    let expiry = audit
        .state
        .keys
        .get(key_id)
        .and_then(|k| k.expires)
        .map_or(audit.as_of.0, |e| e.0.min(audit.as_of.0));
    let last = marks
        .iter()
        .find(|m| m.tag == "key-deleted")
        .map_or(expiry, |m| m.time.0);
    let _ = write!(
        svg,
        r##"<line x1="{pad}" y1="28" x2="{:.1}" y2="28" stroke="#94a3b8" stroke-width="3"/>"##,
        x(last)
    );
    for m in marks {
        let (colour, label) = mark_style(m.tag);
        let cx = x(m.time.0);
        let shape = match m.tag {
            "auth-succeeded" | "auth-failed" => format!(
                r#"<line x1="{cx:.1}" y1="20" x2="{cx:.1}" y2="36" stroke="{colour}" stroke-width="1.5"/>"#
            ),
            "secret-revealed" => format!(
                r#"<rect x="{:.1}" y="22" width="12" height="12" transform="rotate(45 {cx:.1} 28)" fill="{colour}"/>"#,
                cx - 6.0
            ),
            _ => format!(r#"<circle cx="{cx:.1}" cy="28" r="7" fill="{colour}"/>"#),
        };
        let _ = write!(
            svg,
            "<g><title>seq {} {} {} ({label})</title>{shape}</g>",
            m.seq, m.time, m.tag
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{pad}" y="52" font-size="10" fill="#475569">{}</text><text x="{:.1}" y="52" font-size="10" fill="#475569" text-anchor="end">{}</text></svg>"##,
        esc(&marks[0].time.to_string()),
        w - pad,
        esc(&audit.as_of.to_string())
    );
    svg
}

/// A self-contained HTML report: summary, findings with evidence links, a timeline per key.
const SEVERITIES: [crate::audit::Severity; 4] = [
    crate::audit::Severity::Critical,
    crate::audit::Severity::High,
    crate::audit::Severity::Medium,
    crate::audit::Severity::Low,
];

/// The one-page summary on top: what the ledger holds, findings by control and severity
/// now, and the same counts at each month end (the ledger replayed there) as a chart and a
/// table. Everything inline: the report stays one file with no network.
fn executive_summary(h: &mut String, audit: &Audit) {
    use crate::audit::TrendPoint;
    let s = &audit.state;
    let live_users = s
        .principals
        .values()
        .filter(|p| p.deleted.is_none())
        .count();
    let active = s
        .keys
        .values()
        .filter(|k| k.status_at(audit.as_of) == "active")
        .count();
    let rotations = audit.rotations().len();
    let now = TrendPoint {
        at: audit.as_of,
        by_control: audit.findings.iter().fold(Default::default(), |mut m, f| {
            *m.entry(f.control).or_default() += 1;
            m
        }),
        by_severity: audit.findings.iter().fold(Default::default(), |mut m, f| {
            *m.entry(f.severity.as_str()).or_default() += 1;
            m
        }),
    };
    let mut points: Vec<&TrendPoint> = audit.trend.iter().collect();
    points.push(&now);
    // Month ends by their month; the last column is now.
    let labels: Vec<String> = points
        .iter()
        .map(|p| p.at.to_string().get(..7).unwrap_or("").to_owned())
        .take(points.len() - 1)
        .chain(["now".to_owned()])
        .collect();
    let _ = write!(
        h,
        "<section class=\"exec\"><h2>Executive summary</h2><div class=\"tiles\">\
         <div><b>{}</b>events, all verified</div><div><b>{live_users}</b>principals</div>\
         <div><b>{active}</b>active access keys</div><div><b>{rotations}</b>key rotations</div>\
         <div><b>{}</b>findings now</div></div>",
        audit.events,
        audit.findings.len()
    );
    // Chart: findings by severity at each month end and now, stacked.
    let max = points
        .iter()
        .map(|p| p.by_severity.values().sum::<usize>())
        .max()
        .unwrap_or(0)
        .max(1);
    let (bar_w, gap, chart_h) = (34usize, 14usize, 140usize);
    let width = points.len() * (bar_w + gap) + 40;
    let _ = write!(
        h,
        "<h3>Findings by severity, at each month end and now</h3><svg class=\"trend\" width=\"{width}\" height=\"{}\" role=\"img\" aria-label=\"findings by severity over time\">",
        chart_h + 40
    );
    for (i, p) in points.iter().enumerate() {
        let x = 30 + i * (bar_w + gap);
        let mut y = chart_h + 10;
        for sev in SEVERITIES.iter().rev() {
            let n = p.by_severity.get(sev.as_str()).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let hgt = n * chart_h / max;
            y -= hgt;
            let _ = write!(
                h,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{bar_w}\" height=\"{hgt}\" class=\"{}\"><title>{} {}: {n}</title></rect>",
                sev.as_str(),
                p.at,
                sev.as_str()
            );
        }
        let total: usize = p.by_severity.values().sum();
        let label = &labels[i];
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{total}</text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\">{label}</text>",
            x + bar_w / 2,
            y.saturating_sub(3).max(9),
            x + bar_w / 2,
            chart_h + 26
        );
    }
    let _ = write!(
        h,
        "<line x1=\"26\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"#94a3b8\"/></svg>",
        chart_h + 10,
        width - 6
    );
    // Table: control by moment.
    h.push_str("<h3>Findings by control</h3><table class=\"bycontrol\"><tr><th>Control</th>");
    for label in &labels {
        let _ = write!(h, "<th>{label}</th>");
    }
    h.push_str("</tr>");
    for (id, _) in CONTROLS {
        let _ = write!(h, "<tr><td><code>{id}</code></td>");
        for p in &points {
            let n = p.by_control.get(id).copied().unwrap_or(0);
            let _ = write!(
                h,
                "<td class=\"n{}\">{n}</td>",
                if n == 0 { " zero" } else { "" }
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><p class=\"note\">Month-end columns evaluate the controls over the ledger replayed to the last instant of each month (at most 24 months); \"now\" is the evaluation below.</p></section>");
}

pub fn audit_html(audit: &Audit, ledger: &str) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for f in &audit.findings {
        *counts.entry(f.severity).or_insert(0) += 1;
    }
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>keyledger audit of {ledger} as of {asof}</title><style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#0f172a;max-width:1100px}}
h1{{font-size:1.4rem}} h2{{font-size:1.1rem;margin-top:2rem}}
table{{border-collapse:collapse;width:100%}} th,td{{border-bottom:1px solid #e2e8f0;padding:.35rem .5rem;text-align:left;vertical-align:top}}
th{{background:#f1f5f9}} .sev{{font-weight:600;text-transform:uppercase;font-size:.75rem;padding:.1rem .4rem;border-radius:.25rem;color:#fff}}
.critical{{background:#7f1d1d}} .high{{background:#dc2626}} .medium{{background:#d97706}} .low{{background:#64748b}}
.exec{{border:1px solid #e2e8f0;border-radius:.5rem;padding:0 1rem 1rem}} .tiles{{display:flex;gap:1rem;flex-wrap:wrap}} .tiles div{{background:#f8fafc;border-radius:.4rem;padding:.5rem .8rem;min-width:8rem}} .tiles b{{display:block;font-size:1.4rem}}
h3{{font-size:.95rem;margin:1rem 0 .3rem}} svg.trend rect.critical{{fill:#7f1d1d}} svg.trend rect.high{{fill:#dc2626}} svg.trend rect.medium{{fill:#d97706}} svg.trend rect.low{{fill:#64748b}}
.bycontrol th{{white-space:nowrap}} td{{overflow-wrap:anywhere}} td:first-child,.sev{{white-space:nowrap;overflow-wrap:normal}} .bycontrol td.n,.bycontrol td.nzero{{text-align:right;width:4rem}} .bycontrol td.nzero{{color:#cbd5e1}} .note{{color:#64748b;font-size:.85em}}
@media print{{.exec{{page-break-after:always}}}}
.summary span{{margin-right:1.2rem}} code{{font-size:.85em}} .fields code{{overflow-wrap:anywhere}} .legend span{{margin-right:1rem}} .key{{margin:1rem 0}}
</style></head><body>"#,
        ledger = esc(ledger),
        asof = audit.as_of
    );
    let _ = write!(
        h,
        "<h1>keyledger audit</h1><p>Ledger <code>{}</code>, evaluated as of <b>{}</b> (through seq {}, {} events). The ledger verified in full (chain, signatures, policy) before this audit.</p>",
        esc(ledger),
        audit.as_of,
        audit.as_of_seq,
        audit.events
    );
    h.push_str("<p class=\"summary\">");
    for sev in [
        crate::audit::Severity::Critical,
        crate::audit::Severity::High,
        crate::audit::Severity::Medium,
        crate::audit::Severity::Low,
    ] {
        let _ = write!(
            h,
            "<span><span class=\"sev {0}\">{0}</span> {1}</span>",
            sev.as_str(),
            counts.get(&sev).unwrap_or(&0)
        );
    }
    let _ = write!(h, "<span>{} findings</span></p>", audit.findings.len());
    executive_summary(&mut h, audit);
    h.push_str("<h2>Findings</h2><table><tr><th>Severity</th><th>Control</th><th>Principal</th><th>Key</th><th>Finding</th><th>Evidence</th></tr>");
    for f in &audit.findings {
        let ev: Vec<String> = f
            .evidence
            .iter()
            .map(|s| format!("<a href=\"#seq-{s}\">{s}</a>"))
            .collect();
        let _ = write!(
            h,
            "<tr><td><span class=\"sev {0}\">{0}</span></td><td><code>{1}</code></td><td>{2}</td><td><code>{3}</code></td><td>{4}</td><td>{5}</td></tr>",
            f.severity.as_str(),
            f.control,
            esc(f.principal.as_deref().unwrap_or("-")),
            esc(f.key_id.as_deref().unwrap_or("-")),
            esc(&f.message),
            ev.join(", ")
        );
    }
    if audit.findings.is_empty() {
        h.push_str("<tr><td colspan=\"6\">No findings.</td></tr>");
    }
    h.push_str("</table><h2>Key timelines</h2><p class=\"legend\">");
    for tag in [
        "key-created",
        "secret-revealed",
        "auth-succeeded",
        "auth-failed",
        "key-disabled",
        "key-enabled",
        "key-deleted",
        "key-rotated",
    ] {
        let (c, l) = mark_style(tag);
        let _ = write!(
            h,
            "<span><svg width=\"10\" height=\"10\"><circle cx=\"5\" cy=\"5\" r=\"5\" fill=\"{c}\"/></svg> {l}</span>"
        );
    }
    h.push_str("</p>");
    for (id, k) in &audit.state.keys {
        let _ = write!(
            h,
            "<div class=\"key\"><b><code>{}</code></b> {} key of {} — {}<br>{}</div>",
            esc(id),
            if k.temporary {
                "temporary"
            } else {
                "permanent"
            },
            esc(&k.user),
            k.status_at(audit.as_of),
            timeline_svg(audit, id)
        );
    }
    h.push_str("<h2>Evidence events</h2><table><tr><th>Seq</th><th>Time</th><th>Actor</th><th>Action</th><th>Recorded fields</th></tr>");
    for (seq, (t, actor, tag, action)) in &audit.evidence_events {
        let fields = serde_json::to_string(action).unwrap_or_default();
        let _ = write!(
            h,
            "<tr id=\"seq-{seq}\"><td>{seq}</td><td>{t}</td><td>{}</td><td><code>{tag}</code></td><td class=\"fields\"><code>{}</code></td></tr>",
            esc(actor),
            esc(&fields)
        );
    }
    h.push_str("</table><h2>Controls evaluated</h2><table><tr><th>Control</th><th>What it checks</th></tr>");
    for (id, what) in CONTROLS {
        let _ = write!(
            h,
            "<tr><td><code>{id}</code></td><td>{}</td></tr>",
            esc(what)
        );
    }
    h.push_str("</table><p>Check any event independently with <code>keyledger inspect SEQ</code> or <code>keyledger verify</code>.</p></body></html>\n");
    h
}
