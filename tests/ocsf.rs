//! OCSF for SIEMs (issue 13, item 9): `export --format ocsf` and `log [--follow] --format
//! ocsf` write records of the fitting IAM class that validate against the OCSF 1.6.0
//! schema (compiled by ocsf-lib from ocsf-schema 1.6.0, in fixtures/ocsf/), and keep the
//! ledger's seq, hashes and body so the chain stays checkable downstream.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::site::serve_in;
use common::*;
use keyledger::core::totp;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the schema validator (standard-library Python) on a JSON Lines file.
fn validate(records: &Path) -> (i32, String) {
    let o = Command::new("python3")
        .arg(root().join("scripts/ocsf_validate.py"))
        .arg(root().join("fixtures/ocsf/ocsf-1.6.0-iam.json"))
        .arg(records)
        .output()
        .expect("python3 must be installed to validate OCSF records against the schema");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args, None);
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// The demo ledger, plus a recorded checkpoint and a repaired torn tail: every tag.
fn every_tag() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["demo", "--dir", "d"]);
    let l = ["--ledger", "d/demo.ledger", "--key", "d/keys/acme.key"];
    let with =
        |rest: &[&str]| -> Vec<String> { l.iter().chain(rest).map(|s| s.to_string()).collect() };
    let run = |rest: &[&str]| {
        let args = with(rest);
        ok(
            d.path(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    run(&["keygen", "--out", "x.key"]);
    run(&["user", "create", "xavier", "--public-key", "@x.key.pub"]);
    run(&["grant", "xavier", "manage-own-keys"]);
    run(&["revoke", "xavier", "manage-own-keys"]);
    let id = run(&[
        "--json",
        "key",
        "create",
        "--user",
        "xavier",
        "--scenario",
        "t",
        "--confirm-necessary",
    ]);
    let id_json: Value = serde_json::from_str(&id).unwrap();
    let id = id_json["access_key_id"].as_str().unwrap();
    run(&["key", "disable", id]);
    run(&["key", "enable", id]);
    // Its secret reported leaked: leak-reported, then disabled.
    let secret = id_json["access_key_secret"].as_str().unwrap();
    let args = with(&[
        "leak",
        "--disable",
        "--source",
        "https://example.com/paste/1",
    ]);
    let o = run_in(
        d.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        Some(secret),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    run(&["key", "enable", id]);
    run(&["signer", "revoke", "xavier", "@x.key.pub"]);
    // Operation protection, through a server: protection-enabled and -disabled.
    run(&["keygen", "--out", "gw.key"]);
    run(&["user", "create", "gw", "--public-key", "@gw.key.pub"]);
    run(&["grant", "gw", "server"]);
    let server = serve_in(
        d.path(),
        &[
            "--ledger",
            "d/demo.ledger",
            "--key",
            "gw.key",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--auth-failures-per-minute",
            "1",
        ],
    );
    let remote = |rest: &[&str]| {
        let mut a = vec!["--server", &server.url, "--key", "d/keys/acme.key"];
        a.extend_from_slice(rest);
        ok(d.path(), &a)
    };
    let uri: Value =
        serde_json::from_str(&remote(&["--json", "protect", "enable", "acme"])).unwrap();
    let b32 = uri["uri"]
        .as_str()
        .unwrap()
        .split("secret=")
        .nth(1)
        .unwrap();
    let seed = totp::base32_decode(b32.split('&').next().unwrap()).unwrap();
    let code = |ahead: u64| {
        let step = totp::step_of(keyledger::core::types::Timestamp::now()) + ahead;
        String::from_utf8(totp::code(&seed, step).to_vec()).unwrap()
    };
    remote(&["protect", "confirm", "acme", "--code", &code(0)]);
    remote(&["protect", "disable", "acme", "--code", &code(1)]);
    // Two wrong secrets at a rate of one a minute: auth-failures-summarized at the drain.
    for _ in 0..2 {
        let o = run_in(
            d.path(),
            &["--server", &server.url, "--key", "gw.key", "auth", id],
            Some("klsk_wrong"),
        );
        assert_eq!(common::code(&o), 1, "{}", stderr(&o));
    }
    assert_eq!(server.stop(), 0);
    run(&["checkpoint", "--record"]);
    // A torn tail: a length prefix promising more than follows.
    let p = d.path().join("d/demo.ledger");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.extend([0, 0, 1, 0, 1, 2, 3]);
    std::fs::write(&p, bytes).unwrap();
    let args = with(&["repair"]);
    ok(
        d.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    d
}

#[test]
fn exported_records_validate_and_keep_the_chain() {
    let d = every_tag();
    ok(
        d.path(),
        &[
            "--ledger",
            "d/demo.ledger",
            "export",
            "--format",
            "ocsf",
            "--out",
            "all.ocsf.jsonl",
        ],
    );
    let out = d.path().join("all.ocsf.jsonl");
    let (code, report) = validate(&out);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains(" 0 problems"), "{report}");
    let records: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tags: std::collections::BTreeSet<&str> = records
        .iter()
        .map(|r| r["unmapped"]["keyledger"]["action"].as_str().unwrap())
        .collect();
    for t in keyledger::core::event::ACTION_TAGS {
        assert!(tags.contains(t), "no {t} among the exported records");
    }
    // The chain, downstream: each body hashes to its hash, and each prev is the last hash.
    let mut prev = "0".repeat(64);
    for (i, r) in records.iter().enumerate() {
        let k = &r["unmapped"]["keyledger"];
        assert_eq!(k["seq"], i as u64);
        assert_eq!(r["metadata"]["sequence"], i as u64);
        let hex = r["raw_data"].as_str().unwrap();
        let body: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let h = keyledger::core::chain::event_hash(&body).hex();
        assert_eq!(k["hash"], h.as_str(), "seq {i}");
        assert_eq!(r["metadata"]["uid"], h.as_str());
        assert_eq!(k["prev_hash"], prev.as_str(), "seq {i}");
        prev = h;
        // The mapping table of the README.
        let (class, activity) = (
            r["class_uid"].as_u64().unwrap(),
            r["activity_id"].as_u64().unwrap(),
        );
        let want = match k["action"].as_str().unwrap() {
            "genesis" | "user-created" => (3001, 1),
            "user-deleted" => (3001, 6),
            "permission-granted" => (3001, 7),
            "permission-revoked" => (3001, 8),
            "protection-enabled" => (3001, 10),
            "protection-disabled" => (3001, 11),
            "auth-succeeded" | "auth-failed" | "auth-failures-summarized" => (3002, 1),
            "key-created" | "temporary-issued" => (3004, 1),
            "secret-revealed" => (3004, 2),
            "key-rotated" => (3004, 3),
            "key-deleted" => (3004, 4),
            "signer-enrolled" => (3004, 6),
            "signer-revoked" => (3004, 7),
            "key-enabled" => (3004, 8),
            "key-disabled" => (3004, 9),
            _ => (3004, 99),
        };
        assert_eq!((class, activity), want, "{r}");
        let failed = matches!(
            k["action"].as_str().unwrap(),
            "auth-failed" | "action-denied" | "auth-failures-summarized"
        );
        assert_eq!(r["status_id"], if failed { 2 } else { 1 }, "{r}");
    }
    // The validator is no rubber stamp: broken records fail it.
    let mut broken = records[0].clone();
    broken.as_object_mut().unwrap().remove("metadata");
    let mut wrong_activity = records[0].clone();
    wrong_activity["activity_id"] = 42.into();
    let mut stray = records[13].clone();
    stray["secret"] = "x".into();
    for (what, r) in [
        ("no metadata", broken),
        ("activity 42", wrong_activity),
        ("a stray attribute", stray),
    ] {
        let p = d.path().join("broken.jsonl");
        std::fs::write(&p, serde_json::to_string(&r).unwrap() + "\n").unwrap();
        let (code, report) = validate(&p);
        assert_eq!(code, 1, "{what} passed: {report}");
    }
}

#[test]
fn log_writes_the_same_records_and_follows_in_ocsf() {
    let d = every_tag();
    let l = ["--ledger", "d/demo.ledger"];
    let exported = {
        ok(
            d.path(),
            &[
                l[0],
                l[1],
                "export",
                "--format",
                "ocsf",
                "--out",
                "e.jsonl",
                "--action",
                "key-created",
            ],
        );
        std::fs::read_to_string(d.path().join("e.jsonl")).unwrap()
    };
    let logged = ok(
        d.path(),
        &[
            l[0],
            l[1],
            "log",
            "--format",
            "ocsf",
            "--action",
            "key-created",
        ],
    );
    assert_eq!(logged, exported);

    let mut child = Command::new(bin())
        .current_dir(d.path())
        .env("KEYLEDGER_CACHE_DIR", test_cache_dir())
        .args([
            l[0],
            l[1],
            "log",
            "--follow",
            "--format",
            "ocsf",
            "--action",
            "user-created",
            "--limit",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = stdout_lines(&mut child);
    ok(
        d.path(),
        &[
            l[0],
            l[1],
            "--key",
            "d/keys/acme.key",
            "user",
            "create",
            "zed",
        ],
    );
    let mut lines = vec![];
    while lines.len() < 2 {
        let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("log --follow --format ocsf printed {lines:?} and then nothing for 20 s");
        };
        lines.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let last: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(last["class_uid"], 3001);
    assert_eq!(last["user"]["name"], "zed");
    let p = d.path().join("followed.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let (code, report) = validate(&p);
    assert_eq!(code, 0, "{report}");
}
