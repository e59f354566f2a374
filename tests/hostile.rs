//! Issue 8: hostile input to every command. Malformed arguments, broken ledgers and bad key
//! files each get a clear message and a documented exit code, never a panic, and leave the
//! ledger's bytes as they were.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// Runs `args` in `dir` and checks what every failure must satisfy: a documented exit code
/// (1-5), a message on stderr, no panic. Returns the exit code.
fn fails_cleanly(dir: &Path, args: &[&str], stdin: Option<&str>) -> i32 {
    let o = run_in(dir, args, stdin);
    let (c, err) = (code(&o), stderr(&o));
    assert!((1..=5).contains(&c), "{args:?}: exit {c}\n{err}");
    // verify's report on stdout is its message; everything else explains on stderr.
    let said = if args.contains(&"verify") {
        stdout(&o) + &err
    } else {
        err.clone()
    };
    assert!(!said.trim().is_empty(), "{args:?}: no message");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{args:?}: {err}"
    );
    c
}

/// A ledger with the account, user alice and one key of hers; returns the key's ID.
fn setup(dir: &Path) -> String {
    for args in [
        &["init", "--account", "acme"][..],
        &["user", "create", "alice"],
    ] {
        assert_eq!(code(&run_in(dir, args, None)), 0);
    }
    let o = run_in(
        dir,
        &[
            "--json",
            "key",
            "create",
            "--user",
            "alice",
            "--scenario",
            "ci",
            "--confirm-necessary",
        ],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["access_key_id"].as_str().unwrap().to_owned()
}

const BAD_NAMES: &[&str] = &[
    "", "bad name", "-lead", "a/b", "ünï", "x\ty", "a;rm -rf", "名前",
];
const BAD_TIMES: &[&str] = &[
    "",
    "yesterday",
    "2026-13-01",
    "2026-02-30",
    "1e9",
    "2026-11-22T25:00:00Z",
];
const BAD_DURATIONS: &[&str] = &[
    "",
    "30m2h",
    "forever",
    "0",
    "-1h",
    "1h1h",
    "99999999999999999999h",
];
const BAD_SEQS: &[&str] = &["-1", "abc", "99999999999999999999999", "1.5", ""];
const BAD_HEX: &[&str] = &["zz", "", "00", "ed25519:00"];

/// Every command, as typed after `keyledger`.
const COMMANDS: &[&str] = &[
    "init",
    "keygen",
    "user create",
    "user delete",
    "user list",
    "signer enroll",
    "signer revoke",
    "grant",
    "revoke",
    "key create",
    "key disable",
    "key enable",
    "key delete",
    "key list",
    "key show",
    "sts issue",
    "auth",
    "log",
    "inspect",
    "verify",
    "repair",
    "checkpoint",
    "export",
    "verify-bundle",
    "audit",
    "report credentials",
    "bench",
    "demo",
];

/// The commands that need no argument (the rest exit 2 without theirs).
const RUN_WITHOUT_ARGUMENTS: &[&str] = &[
    "user list",
    "key list",
    "log",
    "verify",
    "repair",
    "checkpoint",
    "audit",
    "report credentials",
    "bench",
    "demo",
];

fn bad_key_ids(valid: &str) -> Vec<String> {
    let mut wrong_check = valid.to_owned();
    let last = wrong_check.pop().unwrap();
    wrong_check.push(if last == 'A' { 'B' } else { 'A' });
    vec![
        String::new(),
        "AKIAIOSFODNN7EXAMPLE".into(),
        "KLAK".into(),
        wrong_check,
        format!("{valid}X"),
        valid.to_lowercase(),
        "K".repeat(10_000),
    ]
}

/// Every malformed argument to every command that takes one: exit 2, ledger unchanged.
#[test]
fn malformed_arguments_to_every_command_exit_2_and_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let key_id = setup(dir);
    let ledger = dir.join("keyledger.ledger");
    let before = std::fs::read(&ledger).unwrap();
    let mut cases: Vec<Vec<String>> = Vec::new();
    let mut add = |args: &[&str]| cases.push(args.iter().map(|s| s.to_string()).collect());
    for n in BAD_NAMES {
        add(&["user", "create", n]);
        add(&["user", "delete", n]);
        add(&["grant", n, "admin"]);
        add(&["revoke", n, "admin"]);
        add(&[
            "key",
            "create",
            "--user",
            n,
            "--scenario",
            "s",
            "--confirm-necessary",
        ]);
        add(&["sts", "issue", "--user", n, "--duration", "1h"]);
        add(&["init", "--ledger", "new.ledger", "--account", n]);
    }
    // `auth` records an attempt with any ID that could be presented (R11); only IDs that
    // cannot be one are usage errors.
    add(&["auth", ""]);
    add(&["auth", &"K".repeat(10_000)]);
    add(&["auth", "KLAK-with-dashes"]);
    add(&["log", "--action", "key-creatd"]);
    add(&["grant", "alice", "superuser"]);
    add(&["grant", "alice"]);
    for k in &bad_key_ids(&key_id) {
        for verb in ["disable", "enable", "delete", "show"] {
            add(&["key", verb, k]);
        }
        add(&["log", "--key", k]);
        add(&[
            "export", "--format", "jsonl", "--out", "x.jsonl", "--key", k,
        ]);
    }
    for t in BAD_TIMES {
        add(&["key", "list", "--as-of", t]);
        add(&["user", "list", "--as-of", t]);
        add(&["log", "--since", t]);
        add(&["log", "--until", t]);
        add(&["audit", "--as-of", t]);
        add(&["report", "credentials", "--as-of", t]);
    }
    for du in BAD_DURATIONS {
        add(&["sts", "issue", "--user", "alice", "--duration", du]);
    }
    for s in BAD_SEQS {
        add(&["inspect", s]);
        add(&["key", "list", "--at-seq", s]);
        add(&["log", "--limit", s]);
    }
    for h in BAD_HEX {
        add(&["verify", "--expect-head", h]);
        add(&["verify", "--expect-genesis", h]);
        add(&["signer", "enroll", "alice", "--public-key", h]);
    }
    add(&["audit", "--max-key-age", "-3"]);
    add(&["audit", "--fail-on", "sometimes"]);
    add(&["export", "--format", "xml", "--out", "x"]);
    add(&["export", "--format", "jsonl"]);
    add(&["verify", "--checkpoint", "no-such-file"]);
    add(&["verify-bundle", "no-such-dir"]);
    add(&["checkpoint", "--out", "/no/such/dir/cp"]);
    add(&["bench", "--events", "10"]);
    add(&["--ledger", "missing.ledger", "key", "list"]);
    add(&["--key", "missing.key", "user", "create", "bob"]);
    // Unknown commands and flags, missing and extra arguments, for every command.
    for c in COMMANDS {
        let words: Vec<&str> = c.split(' ').collect();
        add(&[&words[..], &["--no-such-flag"]].concat());
        add(&[&words[..], &["a", "b", "c", "d"]].concat());
        if !RUN_WITHOUT_ARGUMENTS.contains(c) {
            add(&words);
        }
    }
    add(&["no-such-command"]);
    let mut exit2 = 0;
    for args in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let c = fails_cleanly(dir, &a, Some(""));
        assert_eq!(c, 2, "{a:?}");
        assert_eq!(
            std::fs::read(&ledger).unwrap(),
            before,
            "{a:?} changed the ledger"
        );
        exit2 += 1;
    }
    assert!(!dir.join("new.ledger").exists());
    eprintln!(
        "hostile input: {exit2} malformed invocations, each exit 2 with the ledger unchanged"
    );
}

/// A broken ledger given to every command: a documented non-zero exit, never a panic, and
/// its bytes unchanged.
#[test]
fn broken_ledgers_are_refused_by_every_command_and_left_as_they_were() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    setup(dir);
    let good = std::fs::read(dir.join("keyledger.ledger")).unwrap();
    let mut huge = good[..16].to_vec();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    huge.extend_from_slice(&[0xab; 100]);
    let mut garbage = vec![0u8; 4096];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut garbage);
    let mut bad_header = good.clone();
    bad_header[8] = 99; // an unknown format version
    let variants: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("empty", Some(vec![])),
        ("garbage", Some(garbage)),
        ("header only", Some(good[..16].to_vec())),
        ("huge length prefix", Some(huge)),
        (
            "truncated mid-frame",
            Some(good[..good.len() - 30].to_vec()),
        ),
        ("unknown version", Some(bad_header)),
        ("a directory", None),
    ];
    let unknown_key = fixed_key_id(false, 'A');
    let commands: &[&[&str]] = &[
        &["verify"],
        &["key", "list"],
        &["user", "list"],
        &["key", "show", &unknown_key],
        &["log"],
        &["inspect", "0"],
        &["audit"],
        &["report", "credentials"],
        &["checkpoint"],
        &["export", "--format", "jsonl", "--out", "out.jsonl"],
        &["user", "create", "bob"],
        &["grant", "alice", "admin"],
        &["sts", "issue", "--user", "alice", "--duration", "1h"],
        &["repair"],
    ];
    let mut tried = 0;
    for (name, bytes) in &variants {
        let p = dir.join("broken.ledger");
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(dir.join("broken.ledger.index"));
        match bytes {
            Some(b) => std::fs::write(&p, b).unwrap(),
            None => std::fs::create_dir(&p).unwrap(),
        }
        let torn = *name == "truncated mid-frame";
        for cmd in commands {
            // A torn tail is the one thing `repair` is meant to change.
            if torn && cmd[0] == "repair" {
                continue;
            }
            let args = [
                &["--ledger", "broken.ledger", "--key", "keyledger.key"][..],
                cmd,
            ]
            .concat();
            let writes = matches!(cmd[0], "user" | "grant" | "sts") && cmd[1] != "list";
            // verify and audit judge the whole file: a torn tail fails them.
            let checks = matches!(cmd[0], "verify" | "audit");
            if torn && !writes && !checks {
                // Reads answer from the intact frames and warn about the torn one.
                let o = run_in(dir, &args, None);
                // (2: the key asked for is not in the intact part.)
                assert!([0, 2].contains(&code(&o)), "{args:?}: {}", stderr(&o));
                // (`inspect` reads only the frame asked for.)
                assert!(
                    code(&o) != 0 || cmd[0] == "inspect" || stderr(&o).contains("torn"),
                    "{args:?}: no warning"
                );
                let _ = std::fs::remove_file(dir.join("out.jsonl"));
            } else {
                let c = fails_cleanly(dir, &args, None);
                assert_ne!(c, 3, "{name}: {args:?}");
                if torn && writes {
                    assert_eq!(c, 4, "{args:?}: appends wait for `repair`");
                }
            }
            if let Some(b) = bytes {
                assert_eq!(
                    &std::fs::read(&p).unwrap(),
                    b,
                    "{name}: {args:?} changed it"
                );
            }
            assert!(
                !dir.join("out.jsonl").exists(),
                "{name}: export wrote from a bad ledger"
            );
            tried += 1;
        }
    }
    eprintln!(
        "broken ledgers: {} kinds x {} commands = {tried} runs, none panicked or changed a byte",
        variants.len(),
        commands.len()
    );
}

#[test]
fn malformed_or_exposed_key_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    setup(dir);
    let ledger = dir.join("keyledger.ledger");
    let before = std::fs::read(&ledger).unwrap();
    let good = std::fs::read_to_string(dir.join("keyledger.key")).unwrap();
    let contents = [
        ("empty", String::new(), 0o600),
        ("garbage", "not a key\n".into(), 0o600),
        (
            "short seed",
            good.trim_end()[..good.trim_end().len() - 2].to_owned(),
            0o600,
        ),
        (
            "non-hex seed",
            good.replace(
                |c: char| c.is_ascii_hexdigit() && c.is_ascii_lowercase(),
                "z",
            ),
            0o600,
        ),
        (
            "binary",
            String::from_utf8_lossy(&[0xff, 0, 1, 2]).into_owned(),
            0o600,
        ),
        ("readable by group", good.clone(), 0o640),
        ("readable by others", good.clone(), 0o604),
        ("world writable", good.clone(), 0o666),
    ];
    for (name, text, mode) in contents {
        let p = dir.join("bad.key");
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, &text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let c = fails_cleanly(dir, &["--key", "bad.key", "user", "create", "bob"], None);
        assert_eq!(c, 2, "{name}");
        let err = stderr(&run_in(
            dir,
            &["--key", "bad.key", "user", "create", "bob"],
            None,
        ));
        // The message never echoes key material.
        let seed_hex = good.trim().rsplit(':').next().unwrap();
        assert!(!err.contains(seed_hex), "{name}: {err}");
        assert_eq!(std::fs::read(&ledger).unwrap(), before, "{name}");
    }
}

/// A presented secret never appears in any output, whatever its form.
#[test]
fn presented_secrets_are_never_echoed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let key_id = setup(dir);
    let valid_looking = format!("klsk_{}", "Q".repeat(40));
    for secret in [
        valid_looking.as_str(),
        "hunter2-not-a-secret-format",
        &"S".repeat(100_000),
        "line one\nline two",
    ] {
        for id in [key_id.as_str(), "KLAKAAAAAAAAAAAAAAAAAAAAAA"] {
            let o = run_in(dir, &["auth", id], Some(secret));
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!((1..=2).contains(&code(&o)), "{}", all);
            let probe = &secret[..secret.len().min(20)];
            assert!(
                !all.contains(probe),
                "auth echoed the presented secret: {all}"
            );
            let log =
                String::from_utf8_lossy(&std::fs::read(dir.join("keyledger.ledger")).unwrap())
                    .into_owned();
            assert!(
                !log.contains(probe),
                "the ledger holds the presented secret"
            );
        }
    }
}

mod mutated_ledgers {
    use super::common::*;
    use keyledger::evidence::verify::{Options, verify_file, verify_reader};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Random edits of a valid ledger: neither verifier panics, the parallel and the
        /// sequential verifier give the same report, and any change that is not a cut at a
        /// frame boundary is found.
        #[test]
        fn mutated_ledgers_never_panic_and_both_verifiers_agree(
            edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), any::<u8>()), 1..5),
        ) {
            let good = valid();
            let mut b = good.bytes.clone();
            for (kind, at, to, byte) in edits {
                edit(&mut b, kind, at, to, byte);
            }
            let seq = verify_reader(&b[..], &Options::default()).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("m.ledger");
            std::fs::write(&p, &b).unwrap();
            let par = verify_file(&p, &Options::default()).unwrap();
            prop_assert_eq!(seq.ok, par.ok);
            prop_assert_eq!(&seq.findings, &par.findings);
            let clean_cut = good.bytes.starts_with(&b)
                && (b.len() == good.bytes.len() || good.offsets.contains(&b.len()))
                && b.len() > good.offsets[0];
            prop_assert_eq!(seq.ok, clean_cut, "{:?}", seq.findings);
        }

        #[test]
        fn random_files_never_panic(b in prop::collection::vec(any::<u8>(), 0..4096), header in any::<bool>()) {
            let mut data = if header { valid().bytes[..16].to_vec() } else { vec![] };
            data.extend_from_slice(&b);
            let r = verify_reader(&data[..], &Options::default()).unwrap();
            prop_assert!(!r.ok);
        }
    }
}
