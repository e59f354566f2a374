//! Audits and reports: each control fires on a ledger built to break it and stays silent
//! on one built to pass it; --as-of moves findings in time; evidence seqs point to the
//! events that prove them; JSON and HTML carry the same findings.

mod common;

use keyledger::protocol::ops::Ops;
use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::Value;

/// Runs keyledger in `dir` at the time `now` (RFC 3339).
fn at(dir: &Path, now: &str, args: &[&str]) -> Output {
    run_at(dir, Some(now), args, None)
}

fn ok_at(dir: &Path, now: &str, args: &[&str]) -> String {
    let o = at(dir, now, args);
    assert_eq!(code(&o), 0, "{args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

const T0: &str = "2026-01-01T00:00:00Z";

fn findings(dir: &Path, now: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--json", "audit", "--fail-on", "none"];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&ok_at(dir, now, &args)).unwrap();
    v["findings"].as_array().unwrap().clone()
}

fn controls(f: &[Value]) -> Vec<String> {
    let mut c: Vec<String> = f
        .iter()
        .map(|x| x["control"].as_str().unwrap().to_owned())
        .collect();
    c.sort();
    c.dedup();
    c
}

fn new_ledger() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    ok_at(d.path(), T0, &["init", "--account", "acme"]);
    d
}

/// Creates a key revealed on stdout; returns (id, secret).
fn key(dir: &Path, now: &str, user: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "--json",
        "key",
        "create",
        "--user",
        user,
        "--scenario",
        "s",
        "--confirm-necessary",
    ];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&ok_at(dir, now, &args)).unwrap();
    (
        v["access_key_id"].as_str().unwrap().to_owned(),
        v["access_key_secret"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_compliant_ledger_has_no_findings() {
    let d = new_ledger();
    let p = d.path();
    ok_at(p, T0, &["user", "create", "bob"]);
    let (k1, s1) = key(p, T0, "bob", &[]);
    // Used on day 30, rotated on day 60 (new key first, old deleted at once), used again on day 65.
    assert_eq!(
        code(&run_at(
            p,
            Some("2026-01-31T00:00:00Z"),
            &["auth", &k1],
            Some(&s1)
        )),
        0
    );
    let (k2, s2) = key(p, "2026-03-02T00:00:00Z", "bob", &[]);
    ok_at(p, "2026-03-02T00:00:01Z", &["key", "delete", &k1]);
    assert_eq!(
        code(&run_at(
            p,
            Some("2026-03-07T00:00:00Z"),
            &["auth", &k2],
            Some(&s2)
        )),
        0
    );
    let f = findings(p, "2026-03-12T00:00:00Z", &[]);
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(code(&at(p, "2026-03-12T00:00:00Z", &["audit"])), 0);
}

#[test]
fn each_control_fires_on_a_ledger_built_to_break_it() {
    let d = new_ledger();
    let p = d.path();
    ok_at(p, T0, &["user", "create", "bob"]);
    ok_at(p, T0, &["user", "create", "carol"]);
    ok_at(p, T0, &["user", "create", "fed", "--federated"]);
    // root-access-key
    let (root, _) = key(p, T0, "acme", &["--allow-root-key"]);
    // one-active-key-per-user (bob has two active keys)
    let (b1, b1_secret) = key(p, T0, "bob", &[]);
    let (b2, _) = key(p, T0, "bob", &[]);
    // leaked-key-active: b1 reported leaked (and so disabled), then enabled again
    let o = run_at(p, Some(T0), &["leak", "--disable"], Some(&b1_secret));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    ok_at(p, T0, &["key", "enable", &b1]);
    // secret-revealed-to-file
    ok_at(
        p,
        T0,
        &[
            "key",
            "create",
            "--user",
            "carol",
            "--scenario",
            "s",
            "--confirm-necessary",
            "--csv",
            "carol.csv",
        ],
    );
    // secret-never-revealed: a key created but never revealed (a crashed session)
    {
        let mut l = keyledger::storage::ledger::Ledger::open(
            &p.join("keyledger.ledger"),
            keyledger::storage::store::Wait::Block,
        )
        .unwrap();
        let k = keyledger::storage::keyfile::load(&p.join("keyledger.key")).unwrap();
        let req = keyledger::protocol::ops::KeyRequest {
            user: "carol",
            scenario: "s",
            confirmed_necessary: true,
            allow_root_key: false,
        };
        l.create_key(
            &k,
            &req,
            keyledger::core::types::Timestamp::parse(T0).unwrap(),
        )
        .unwrap();
    }
    // keys-of-deleted-users: fed's expired temporary credentials outlive fed
    ok_at(
        p,
        T0,
        &["sts", "issue", "--user", "fed", "--duration", "15m"],
    );
    ok_at(p, "2026-01-01T01:00:00Z", &["user", "delete", "fed"]);
    // refused-actions-burst: five refusals within an hour by one actor
    ok_at(p, T0, &["keygen", "--out", "bob.key"]);
    let pubkey = std::fs::read_to_string(p.join("bob.key.pub")).unwrap();
    ok_at(
        p,
        T0,
        &["signer", "enroll", "bob", "--public-key", pubkey.trim()],
    );
    for i in 0..5 {
        let o = at(
            p,
            "2026-01-02T10:00:00Z",
            &["--key", "bob.key", "user", "create", &format!("x{i}")],
        );
        assert_eq!(code(&o), 3);
    }
    // privileged-without-protection: where a server may write (gw holds server), bob
    // manages keys without operation protection.
    ok_at(p, T0, &["user", "create", "gw"]);
    ok_at(p, T0, &["grant", "gw", "server"]);
    ok_at(p, T0, &["grant", "bob", "manage-keys"]);
    // auth-failure-flood: gw, holding server, summarizes failures past its rate.
    ok_at(p, T0, &["keygen", "--out", "gw.key"]);
    ok_at(
        p,
        T0,
        &["signer", "enroll", "gw", "--public-key", "@gw.key.pub"],
    );
    {
        use keyledger::storage::ledger::Appender;
        let t = keyledger::core::types::Timestamp::parse(T0).unwrap();
        let gw = keyledger::storage::keyfile::load(&p.join("gw.key")).unwrap();
        let mut l = keyledger::storage::ledger::Ledger::open(
            &p.join("keyledger.ledger"),
            keyledger::storage::store::Wait::Block,
        )
        .unwrap();
        let flood = keyledger::core::event::Action::AuthFailuresSummarized {
            key_id: b2.clone(),
            count: 500,
            first: t.plus_micros(-60_000_000),
            last: t,
        };
        l.append(&gw, flood, t).unwrap();
    }
    let now = "2026-06-01T00:00:00Z";
    // temporary-credentials-duration fires with a stricter limit than the policy's 12 h.
    let f = findings(p, now, &["--max-temporary", "0"]);
    let got = controls(&f);
    for c in keyledger::audit::CONTROLS.map(|c| c.0) {
        assert!(got.contains(&c.to_string()), "{c} did not fire: {got:?}");
    }
    let root_f = f
        .iter()
        .find(|x| x["control"] == "root-access-key")
        .unwrap();
    assert_eq!(root_f["key_id"], root.as_str());
    assert_eq!(root_f["severity"], "critical");
    let multi = f
        .iter()
        .find(|x| x["control"] == "one-active-key-per-user")
        .unwrap();
    assert!(
        multi["message"].as_str().unwrap().contains(&b1)
            && multi["message"].as_str().unwrap().contains(&b2)
    );
    // --fail-on: the default (high) fails on these findings; none never fails.
    assert_eq!(code(&at(p, now, &["audit"])), 1);
    assert_eq!(code(&at(p, now, &["audit", "--fail-on", "none"])), 0);
    // Every evidence seq names an event that concerns the finding's key or principal.
    for x in &f {
        for seq in x["evidence"].as_array().unwrap() {
            let ev: Value =
                serde_json::from_str(&ok_at(p, now, &["--json", "inspect", &seq.to_string()]))
                    .unwrap();
            let fields = ev["fields"].to_string();
            let named = x["key_id"].as_str().is_some_and(|k| fields.contains(k))
                || x["principal"]
                    .as_str()
                    .is_some_and(|u| fields.contains(u) || ev["actor"] == u);
            assert!(
                named,
                "evidence seq {seq} of {} does not concern it: {ev}",
                x["control"]
            );
        }
    }
    // JSON and HTML carry the same findings.
    ok_at(
        p,
        now,
        &[
            "audit",
            "--format",
            "html",
            "--out",
            "a.html",
            "--max-temporary",
            "0",
            "--fail-on",
            "none",
        ],
    );
    let html = std::fs::read_to_string(p.join("a.html")).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "self-contained, no network"
    );
    for x in &f {
        assert!(html.contains(&format!("<code>{}</code>", x["control"].as_str().unwrap())));
        for seq in x["evidence"].as_array().unwrap() {
            assert!(
                html.contains(&format!("id=\"seq-{seq}\"")),
                "evidence {seq} is linked"
            );
        }
    }
    assert_eq!(html.matches("<tr><td><span class=\"sev").count(), f.len());
}

#[test]
fn as_of_moves_findings_in_time() {
    let d = new_ledger();
    ok_at(d.path(), T0, &["user", "create", "bob"]);
    let (k, _) = key(d.path(), T0, "bob", &[]);
    // Day 89: compliant with the 90-day rotation rule; day 91: flagged.
    let day89 = findings(
        d.path(),
        "2026-11-01T00:00:00Z",
        &["--as-of", "2026-03-31T00:00:00Z"],
    );
    assert!(
        !controls(&day89).contains(&"access-key-rotated".to_string()),
        "{day89:?}"
    );
    let day91 = findings(
        d.path(),
        "2026-11-01T00:00:00Z",
        &["--as-of", "2026-04-02T00:00:00Z"],
    );
    let rot = day91
        .iter()
        .find(|f| f["control"] == "access-key-rotated")
        .expect("flagged at day 91");
    assert_eq!(rot["key_id"], k.as_str());
    // Unused: day 44 silent, day 46 flagged.
    assert!(
        !controls(&findings(
            d.path(),
            "2026-11-01T00:00:00Z",
            &["--as-of", "2026-02-14T00:00:00Z"]
        ))
        .contains(&"unused-credentials".to_string())
    );
    assert!(
        controls(&findings(
            d.path(),
            "2026-11-01T00:00:00Z",
            &["--as-of", "2026-02-16T00:00:00Z"]
        ))
        .contains(&"unused-credentials".to_string())
    );
    // Before the key existed there is nothing to say about it.
    let before = findings(
        d.path(),
        "2026-11-01T00:00:00Z",
        &["--as-of", "2025-12-31T00:00:00Z"],
    );
    assert!(before.is_empty(), "{before:?}");
}

#[test]
fn the_credential_report_has_the_aws_columns() {
    let d = new_ledger();
    ok_at(d.path(), T0, &["user", "create", "bob"]);
    key(d.path(), T0, "bob", &[]);
    let csv = ok_at(d.path(), T0, &["report", "credentials"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.len() == 22));
    assert_eq!(rows[0][0], "<root_account>");
    let bob = &rows[1];
    assert_eq!(
        (bob[0], bob[8], bob[9], bob[10], bob[13]),
        ("bob", "true", "2026-01-01T00:00:00+00:00", "N/A", "false")
    );
    // As of before bob existed: only the account (replay always includes the genesis).
    let past = ok_at(
        d.path(),
        T0,
        &["report", "credentials", "--as-of", "2025-12-31"],
    );
    assert_eq!(past.lines().count(), 2, "{past}");
    assert!(past.lines().nth(1).unwrap().starts_with("<root_account>,"));
}

#[test]
fn an_audit_of_a_ledger_that_does_not_verify_fails() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sig-bitflip.ledger"),
        d.path().join("keyledger.ledger"),
    )
    .unwrap();
    let o = at(d.path(), T0, &["audit"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
}

/// Issue 13, item 10: the HTML report opens with an executive summary: counts by control
/// and severity now and at each month end, each month end being the audit as of then.
#[test]
fn the_executive_summary_is_the_audit_at_each_month_end() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(d.path(), &["demo", "--dir", "d"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let l = ["--ledger", "d/demo.ledger"];
    let audit_json = |extra: &[&str]| -> Value {
        let mut args = vec![l[0], l[1], "--json", "audit", "--fail-on", "none"];
        args.extend_from_slice(extra);
        let o = run_in(d.path(), &args, None);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    assert!(
        audit_json(&[])["trend"].as_array().unwrap().is_empty(),
        "the trend costs replays: on request"
    );
    let a = audit_json(&["--trend"]);
    let trend = a["trend"].as_array().unwrap();
    assert!(trend.len() >= 2, "the demo spans several months: {a}");
    for p in trend {
        let at = p["at"].as_str().unwrap();
        assert!(at.ends_with("59.999999Z"), "a month's last instant: {at}");
        let then = audit_json(&["--as-of", at]);
        let mut by_control = serde_json::Map::new();
        for f in then["findings"].as_array().unwrap() {
            let c = f["control"].as_str().unwrap().to_owned();
            let n = by_control.get(&c).and_then(Value::as_u64).unwrap_or(0);
            by_control.insert(c, (n + 1).into());
        }
        assert_eq!(p["by_control"], Value::Object(by_control), "at {at}");
    }
    let o = run_in(
        d.path(),
        &[
            l[0],
            l[1],
            "audit",
            "--format",
            "html",
            "--out",
            "a.html",
            "--fail-on",
            "none",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let html = std::fs::read_to_string(d.path().join("a.html")).unwrap();
    let summary = html.find("Executive summary").expect("a summary");
    assert!(
        summary < html.find("<h2>Findings</h2>").unwrap(),
        "the summary comes first"
    );
    assert!(html.contains("<svg class=\"trend\""));
    for (control, _) in keyledger::audit::CONTROLS {
        assert!(
            html.contains(&format!("<tr><td><code>{control}</code></td><td class=")),
            "{control} row"
        );
    }
    for p in trend {
        let month = &p["at"].as_str().unwrap()[..7];
        assert!(
            html.contains(&format!("<th>{month}</th>")),
            "{month} column"
        );
    }
    // Still one self-contained file.
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http")
    );
}
