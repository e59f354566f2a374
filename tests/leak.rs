//! `keyledger leak` (issue 15, item 4, in part): from a leaked secret, token or key ID alone
//! to its key and history among many keys; `--scan` finds exactly the real credentials.

mod common;

use std::path::Path;

use common::*;
use keyledger::core::credentials::SecretText;
use keyledger::core::event::Action;
use keyledger::core::signing::SigningKey;
use keyledger::core::types::Timestamp;
use keyledger::protocol::ops::{KeyRequest, Ops};
use keyledger::storage::ledger::{Appender, Ledger};
use serde_json::Value;

/// A ledger of 150 users with 2 keys each and one federated user's temporary credentials;
/// returns (dir, a permanent key's (id, secret), the temporary (id, token)).
fn many() -> (
    tempfile::TempDir,
    (String, SecretText),
    (String, SecretText),
) {
    let dir = tempfile::tempdir().unwrap();
    let account = SigningKey::generate();
    keyledger::storage::keyfile::write_new(&account, &dir.path().join("keyledger.key")).unwrap();
    let now = Timestamp::now();
    let (mut l, _) =
        Ledger::init(&dir.path().join("keyledger.ledger"), "acme", &account, now).unwrap();
    let users: Vec<Action> = (0..150)
        .map(|i| Action::UserCreated {
            name: format!("svc{i}"),
            federated: false,
        })
        .chain([Action::UserCreated {
            name: "fed".into(),
            federated: true,
        }])
        .collect();
    l.append_batch(&account, users, now).unwrap();
    let mut picked = None;
    for i in 0..150 {
        for _ in 0..2 {
            let user = format!("svc{i}");
            let req = KeyRequest {
                user: &user,
                scenario: "batch job",
                confirmed_necessary: true,
                allow_root_key: false,
            };
            let k = l.create_key(&account, &req, now).unwrap();
            if i == 97 && picked.is_none() {
                picked = Some((k.key_id, k.secret));
            }
        }
    }
    let t = l
        .issue_temporary(&account, "fed", 3_600_000_000, now)
        .unwrap();
    drop(l);
    (dir, picked.unwrap(), (t.key_id, t.token))
}

fn leak(dir: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut a = vec!["leak"];
    a.extend_from_slice(args);
    let o = run_in(dir, &a, stdin);
    (code(&o), stdout(&o), stderr(&o))
}

#[test]
fn a_leaked_secret_or_token_alone_finds_its_key_among_many() {
    let (dir, (id, secret), (temp_id, token)) = many();
    let d = dir.path();
    let (c, out, err) = leak(d, &[], Some(secret.expose()));
    assert_eq!(c, 0, "{err}");
    assert!(
        out.contains(&format!("a secret → key {id} of svc97")),
        "{out}"
    );
    assert!(
        out.contains("scenario batch job") && out.contains("secret never revealed"),
        "{out}"
    );
    assert!(!out.contains(secret.expose()) && !err.contains(secret.expose()));

    let mut args = vec!["--json"];
    args.push("leak");
    let o = run_in(d, &args, Some(token.expose()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["found"][0]["kind"], "security token");
    assert_eq!(v["found"][0]["key_id"], temp_id.as_str());
    assert_eq!(v["keys"][0]["key"]["user"], "fed");
    assert!(!stdout(&o).contains(token.expose()));

    // Well formed, but no key of this ledger: exit 1. Not a credential at all: exit 2.
    let stranger = SecretText::new_secret();
    assert_eq!(leak(d, &[], Some(stranger.expose())).0, 1);
    assert_eq!(leak(d, &[], Some("klsk_not-a-secret")).0, 2);
}

#[test]
fn scan_finds_the_three_real_credentials_among_twenty_near_misses_and_bundles_them() {
    let (dir, (id, secret), (temp_id, token)) = many();
    let d = dir.path();
    let s = secret.expose();
    let t = token.expose();
    let mut misses: Vec<String> = vec![];
    for cut in 1..=4 {
        misses.push(s[..s.len() - cut].to_owned());
        misses.push(t[..t.len() - cut].to_owned());
    }
    for at in [6, 20, 40, 45, 50] {
        let mut c: Vec<char> = s.chars().collect();
        c[at] = if c[at] == 'z' { 'y' } else { 'z' };
        misses.push(c.into_iter().collect());
    }
    misses.push(format!("{s}0"));
    misses.push(format!("x{t}"));
    misses.push(s.to_uppercase());
    // The last character changed (never to itself: an ID may end in Q).
    let last = if id.ends_with('Q') { 'R' } else { 'Q' };
    misses.push(format!("{}{last}", &id[..id.len() - 1]));
    misses.push(id.to_lowercase());
    misses.push(format!("KLAK{}", &id[4..25]));
    misses.push(format!("{temp_id}A"));
    assert_eq!(misses.len(), 20);
    let mut text = String::from("2026-12-01 deploy log\n");
    for (i, m) in misses.iter().enumerate() {
        text.push_str(&format!("step {i}: {m}\n"));
        if i == 5 {
            text.push_str(&format!("export AWS_SECRET={s}\n"));
        }
        if i == 12 {
            text.push_str(&format!("token: \"{t}\", id {id}\n"));
        }
    }
    std::fs::write(d.join("dump.txt"), &text).unwrap();
    let o = run_in(
        d,
        &[
            "--json", "leak", "--scan", "dump.txt", "--bundle", "evidence",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let found: Vec<(String, String)> = v["found"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["key_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("secret".to_owned(), id.clone()),
            ("security token".to_owned(), temp_id.clone()),
            ("access key ID".to_owned(), id.clone()),
        ],
        "{v}"
    );
    assert!(!stdout(&o).contains(s) && !stdout(&o).contains(t));
    // Two keys: a bundle each, and each verifies offline against the account's key.
    for k in [&id, &temp_id] {
        let b = format!("evidence/{k}");
        let o = run_in(
            d,
            &["verify-bundle", &b, "--trusted-key", "@keyledger.key.pub"],
            None,
        );
        assert_eq!(code(&o), 0, "{}", stdout(&o));
    }
    // Nothing real in a file of near-misses alone: exit 1.
    std::fs::write(d.join("misses.txt"), misses.join("\n")).unwrap();
    let (c, out, _) = leak(d, &["--scan", "misses.txt"], None);
    assert_eq!(c, 1, "{out}");
    assert!(
        out.starts_with("0 keyledger credentials in misses.txt"),
        "{out}"
    );
}

#[test]
fn disable_records_the_leak_and_disables_the_key_and_audit_flags_it_if_enabled_again() {
    let (dir, (id, secret), _) = many();
    let d = dir.path();
    // Not a key manager: refused by policy, recorded, and nothing else changes.
    ok_in(d, &["keygen", "--out", "eve.key"]);
    ok_in(
        d,
        &["user", "create", "eve", "--public-key", "@eve.key.pub"],
    );
    let o = run_in(
        d,
        &["--key", "eve.key", "leak", "--disable"],
        Some(secret.expose()),
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let (c, _, err) = leak(d, &["--disable", "--source", " "], Some(secret.expose()));
    assert_eq!(c, 2, "an empty source is a usage error: {err}");

    let o = run_in(
        d,
        &[
            "--json",
            "leak",
            "--disable",
            "--source",
            "https://example.com/paste/9",
        ],
        Some(secret.expose()),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let r = &v["reported"][0];
    assert_eq!(r["key_id"], id.as_str());
    assert_eq!(r["disabled_seq"], r["seq"].as_u64().unwrap() + 1);
    assert_eq!(v["keys"][0]["key"]["status"], "disabled");
    assert_eq!(v["keys"][0]["key"]["leak_reports"], 1);
    let log = ok_in(d, &["--json", "log", "--key", &id]);
    let log: Value = serde_json::from_str(&log).unwrap();
    let actions: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.ends_with(&["leak-reported", "key-disabled"]),
        "{actions:?}"
    );
    // The secret is nowhere in the ledger or its exports.
    ok_in(d, &["export", "--format", "jsonl", "--out", "all.jsonl"]);
    for f in ["keyledger.ledger", "all.jsonl"] {
        let bytes = std::fs::read(d.join(f)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(secret.expose()), "{f} holds the secret");
    }
    ok_in(d, &["verify"]);
    // Enabled again: the audit's critical finding.
    ok_in(d, &["key", "enable", &id]);
    let o = run_in(d, &["--json", "audit"], None);
    let a: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let f: Vec<&Value> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["control"] == "leaked-key-active")
        .collect();
    assert_eq!(f.len(), 1, "{a}");
    assert_eq!(f[0]["severity"], "critical");
}

fn ok_in(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args, None);
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    stdout(&o)
}
