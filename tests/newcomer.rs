//! What a new user tripped over (issue 13, item 4): each answer says what happened and
//! what to do.

mod common;

use common::*;

fn ledger() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in(dir.path(), &["init", "--account", "acme"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run_in(dir.path(), &["user", "create", "bob"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    dir
}

#[test]
fn a_key_file_after_the_command_is_pointed_before_it() {
    let dir = ledger();
    let o = run_in(
        dir.path(),
        &["user", "create", "carol", "--key", "keyledger.key"],
        None,
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("keyledger --key alice.key key create"),
        "{}",
        stderr(&o)
    );
}

/// `--ledger` and `--no-wait` mean nothing to commands that open no ledger: absent from
/// their help, refused when given after them, still taken by commands that open one.
#[test]
fn global_flags_appear_only_where_they_mean_something() {
    let dir = ledger();
    // bench takes --ledger only to measure a PostgreSQL engine (issue 16), never --no-wait.
    let o = run_in(dir.path(), &["bench", "--help"], None);
    assert!(stdout(&o).contains("--ledger") && !stdout(&o).contains("--no-wait"));
    for cmd in ["demo", "verify-bundle", "keygen", "completions", "man"] {
        let o = run_in(dir.path(), &[cmd, "--help"], None);
        assert_eq!(code(&o), 0, "{cmd}: {}", stderr(&o));
        for flag in ["--ledger", "--no-wait"] {
            assert!(!stdout(&o).contains(flag), "{cmd} --help shows {flag}");
        }
        assert!(stdout(&o).contains("--json"), "{cmd} --help lost --json");
    }
    let o = run_in(dir.path(), &["demo", "--ledger", "x.ledger"], None);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("--ledger means nothing to `keyledger demo`"),
        "{}",
        stderr(&o)
    );
    let o = run_in(dir.path(), &["keygen", "--out", "k", "--no-wait"], None);
    assert_eq!(code(&o), 2);
    assert!(
        !dir.path().join("k").exists(),
        "a refused keygen wrote a key"
    );
    let o = run_in(dir.path(), &["verify", "--help"], None);
    assert!(stdout(&o).contains("--ledger"), "{}", stdout(&o));
    let o = run_in(
        dir.path(),
        &["user", "list", "--ledger", "keyledger.ledger", "--no-wait"],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("acme"), "{}", stdout(&o));
}

#[test]
fn checkpoint_onto_an_existing_file_names_no_key_file() {
    let dir = ledger();
    std::fs::write(dir.path().join("head.checkpoint"), b"x").unwrap();
    let o = run_in(
        dir.path(),
        &["checkpoint", "--out", "head.checkpoint"],
        None,
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("never overwrites a file"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("key file"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.path().join("head.checkpoint")).unwrap(),
        b"x"
    );
}

#[test]
fn verify_says_the_genesis_matched() {
    let dir = ledger();
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&run_in(dir.path(), &["--json", "verify"], None))).unwrap();
    let g = v["report"]["genesis_hash"].as_str().unwrap().to_owned();
    assert!(v["report"]["genesis_anchor"].is_null());
    let o = run_in(dir.path(), &["verify", "--expect-genesis", &g], None);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains(&format!("genesis {g} matches")),
        "{}",
        stdout(&o)
    );
    let o = run_in(
        dir.path(),
        &["--json", "verify", "--expect-genesis", &g],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        v["report"]["genesis_anchor"]
            .as_str()
            .unwrap()
            .contains("matches"),
        "{v}"
    );
    let other = "ab".repeat(32);
    let o = run_in(
        dir.path(),
        &["--json", "verify", "--expect-genesis", &other],
        None,
    );
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        v["report"]["genesis_anchor"]
            .as_str()
            .unwrap()
            .contains("NOT MATCHED"),
        "{v}"
    );
}

#[test]
fn a_time_before_the_ledger_and_an_unknown_user_are_said_so() {
    let dir = ledger();
    for args in [
        &["user", "list", "--as-of", "2000-01-01"][..],
        &["key", "list", "--as-of", "2000-01-01"],
    ] {
        let o = run_in(dir.path(), args, None);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(stderr(&o).contains("did not exist yet"), "{}", stderr(&o));
    }
    let o = run_in(dir.path(), &["key", "list", "--user", "nosuch"], None);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no principal"), "{}", stderr(&o));
    // A user with no keys is an empty list, not an error.
    let o = run_in(
        dir.path(),
        &["--json", "key", "list", "--user", "bob"],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn input_mistakes_are_not_evidence() {
    let dir = ledger();
    let before = std::fs::read(dir.path().join("keyledger.ledger")).unwrap();
    for args in [
        &["key", "create", "--user", "bob", "--scenario", "ci"][..],
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "  ",
            "--confirm-necessary",
        ],
        &["sts", "issue", "--user", "bob", "--duration", "13h"],
        &["sts", "issue", "--user", "bob", "--duration", "5m"],
    ] {
        let o = run_in(dir.path(), args, None);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("Nothing was recorded"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(
        std::fs::read(dir.path().join("keyledger.ledger")).unwrap(),
        before
    );
    // A refusal that depends on the state is still evidence.
    let o = run_in(
        dir.path(),
        &[
            "key",
            "create",
            "--user",
            "nosuch",
            "--scenario",
            "ci",
            "--confirm-necessary",
        ],
        None,
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_ne!(
        std::fs::read(dir.path().join("keyledger.ledger")).unwrap(),
        before
    );
}

/// Found by a new user's walkthrough: acting as the account by default was silent, a
/// public key given as --key got advice to chmod it, and an unenrolled key no next step.
#[test]
fn who_acts_is_said_and_wrong_keys_are_explained() {
    let dir = ledger();
    let d = dir.path();
    let o = run_in(d, &["user", "create", "carol"], None);
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("acting as the account (acme"),
        "{}",
        stderr(&o)
    );
    let o = run_in(d, &["keygen", "--out", "alice.key"], None);
    assert_eq!(code(&o), 0);
    let o = run_in(
        d,
        &["user", "create", "alice", "--public-key", "@alice.key.pub"],
        None,
    );
    assert_eq!(code(&o), 0);
    let o = run_in(d, &["grant", "alice", "admin"], None);
    assert_eq!(code(&o), 0);
    let o = run_in(d, &["--key", "alice.key", "user", "create", "dave"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("acting as"), "{}", stderr(&o));
    let o = run_in(
        d,
        &["--key", "alice.key.pub", "user", "create", "erin"],
        None,
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("public key file"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("chmod"), "{}", stderr(&o));
    let o = run_in(d, &["keygen", "--out", "stranger.key"], None);
    assert_eq!(code(&o), 0);
    let o = run_in(
        d,
        &["--key", "stranger.key", "user", "create", "erin"],
        None,
    );
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("keyledger signer enroll"),
        "{}",
        stderr(&o)
    );
}

/// A reader that stops early (`keyledger log | head`) ends a listing quietly with success;
/// but a secret that could not be shown is said so, with what to do.
#[test]
fn a_closed_stdout_is_quiet_unless_a_secret_was_lost() {
    let dir = ledger();
    let closed = |args: &[&str]| {
        let mut c = std::process::Command::new(bin())
            .current_dir(dir.path())
            .env("KEYLEDGER_CACHE_DIR", test_cache_dir())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(c.stdout.take());
        c.wait_with_output().unwrap()
    };
    let o = closed(&["log"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("Broken pipe"), "{}", stderr(&o));
    let o = closed(&[
        "key",
        "create",
        "--user",
        "bob",
        "--scenario",
        "ci-pipeline",
        "--confirm-necessary",
    ]);
    assert_eq!(code(&o), 5);
    assert!(
        stderr(&o).contains("never revealed, and cannot be shown again; delete it"),
        "{}",
        stderr(&o)
    );
}
