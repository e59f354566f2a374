//! `key rotate` (issue 13, item 8): AWS's rotation procedure within R7, one rotation
//! reference tying its events together, and the 90-day control crediting it.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const LONG_AGO: &str = "2026-01-01T00:00:00Z";

fn ok(dir: &Path, now: Option<&str>, args: &[&str]) -> String {
    let o = run_at(dir, now, args, None);
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(dir, None, &a)).unwrap()
}

fn events(dir: &Path) -> Vec<Value> {
    json(dir, &["log"])["events"].as_array().unwrap().clone()
}

/// A ledger made long ago, with bob holding one key created then; returns its ID.
fn world() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, Some(LONG_AGO), &["init", "--account", "acme"]);
    ok(d, Some(LONG_AGO), &["user", "create", "bob"]);
    let v: Value = serde_json::from_str(&ok(
        d,
        Some(LONG_AGO),
        &[
            "--json",
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "ci",
            "--confirm-necessary",
        ],
    ))
    .unwrap();
    (dir, v["access_key_id"].as_str().unwrap().to_owned())
}

fn rotated_control(dir: &Path, key: &str) -> Option<Value> {
    let o = run_in(dir, &["--json", "audit", "--fail-on", "none"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let a: Value = serde_json::from_str(&stdout(&o)).unwrap();
    a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["control"] == "access-key-rotated" && f["key_id"] == key)
        .cloned()
}

#[test]
fn a_rotation_creates_reveals_links_and_then_disables() {
    let (dir, old) = world();
    let d = dir.path();
    // Not rotated: the 90-day control is high.
    let f = rotated_control(d, &old).expect("an old key is flagged");
    assert_eq!(f["severity"], "high", "{f}");
    assert!(f["message"].as_str().unwrap().contains("key rotate"), "{f}");

    let before = events(d).len();
    let out = ok(d, None, &["key", "rotate", &old, "--csv", "new.csv"]);
    assert!(out.contains(&format!("rotated {old} to")), "{out}");
    let csv = std::fs::read_to_string(d.join("new.csv")).unwrap();
    let new = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    assert!(new.starts_with("KLAK") && new != old);
    // Created, rotated (one group commit), revealed: three events, in that order.
    let ev = events(d);
    let tags: Vec<&str> = ev[before..]
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["key-created", "key-rotated", "secret-revealed"]);
    let link = &ev[before + 1]["detail"]["key-rotated"];
    assert_eq!(link["old_key_id"], old.as_str());
    assert_eq!(link["new_key_id"], new.as_str());
    // Both keys' histories hold the rotation; the key views point at each other.
    let o = json(d, &["key", "show", &old]);
    assert_eq!(o["key"]["rotated_to"]["key_id"], new.as_str());
    assert!(
        o["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["action"] == "key-rotated")
    );
    let n = json(d, &["key", "show", &new]);
    assert_eq!(n["key"]["rotated_from"]["key_id"], old.as_str());
    assert!(
        n["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["action"] == "key-rotated")
    );
    assert_eq!(
        json(d, &["log", "--key", &new])["events"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Credited while the old key is still active: medium, naming the successor.
    let f = rotated_control(d, &old).expect("still active and old");
    assert_eq!(f["severity"], "medium", "{f}");
    assert!(f["message"].as_str().unwrap().contains(&new), "{f}");
    // The audit sees one rotation.
    let a = json(d, &["audit", "--fail-on", "none"]);
    let rotations = a["rotations"].as_array().unwrap();
    assert_eq!(rotations.len(), 1, "{a}");
    assert_eq!(rotations[0]["old_key_id"], old.as_str());
    assert_eq!(rotations[0]["new_key_id"], new.as_str());
    assert_eq!(rotations[0]["old_status"], "active");
    // Disabling the old key closes it.
    ok(d, None, &["key", "disable", &old]);
    assert!(rotated_control(d, &old).is_none());
    // A key is rotated once.
    let o = run_in(d, &["key", "rotate", &old], None);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("already rotated"), "{}", stderr(&o));
    ok(d, None, &["verify"]);
}

#[test]
fn disable_old_comes_after_the_reveal() {
    let (dir, old) = world();
    let d = dir.path();
    let before = events(d).len();
    let out = ok(d, None, &["key", "rotate", &old, "--disable-old"]);
    assert!(out.contains("AccessKey Secret"), "{out}");
    let tags: Vec<String> = events(d)[before..]
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        tags,
        [
            "key-created",
            "key-rotated",
            "secret-revealed",
            "key-disabled"
        ]
    );
    assert_eq!(json(d, &["key", "show", &old])["key"]["status"], "disabled");
    assert!(rotated_control(d, &old).is_none());
    // A CSV path that cannot be created: nothing is created, nothing disabled.
    let (dir, old) = world();
    let d = dir.path();
    std::fs::write(d.join("taken.csv"), b"").unwrap();
    let before = std::fs::read(d.join("keyledger.ledger")).unwrap();
    let o = run_in(
        d,
        &["key", "rotate", &old, "--disable-old", "--csv", "taken.csv"],
        None,
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert_eq!(std::fs::read(d.join("keyledger.ledger")).unwrap(), before);
}

#[test]
fn no_room_no_right_or_no_such_key_is_refused_once() {
    let (dir, old) = world();
    let d = dir.path();
    ok(
        d,
        None,
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "b",
            "--confirm-necessary",
            "--csv",
            "b.csv",
        ],
    );
    let before = events(d).len();
    let o = run_in(d, &["key", "rotate", &old, "--csv", "r.csv"], None);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("delete the other one first"),
        "{}",
        stderr(&o)
    );
    assert!(
        !d.join("r.csv").exists(),
        "no CSV left for a key never made"
    );
    let ev = events(d);
    assert_eq!(ev.len(), before + 1, "one refusal recorded");
    assert_eq!(ev[before]["action"], "action-denied");
    // Someone who does not manage bob's keys.
    ok(d, None, &["keygen", "--out", "eve.key"]);
    ok(
        d,
        None,
        &["user", "create", "eve", "--public-key", "@eve.key.pub"],
    );
    let o = run_in(d, &["--key", "eve.key", "key", "rotate", &old], None);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    // Temporary credentials are not rotated.
    let t = json(d, &["sts", "issue", "--user", "bob"]);
    let o = run_in(
        d,
        &["key", "rotate", t["access_key_id"].as_str().unwrap()],
        None,
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("temporary"), "{}", stderr(&o));
    // A malformed ID is a usage error.
    let o = run_in(d, &["key", "rotate", "nope"], None);
    assert_eq!(code(&o), 2);
    ok(d, None, &["verify"]);
}
