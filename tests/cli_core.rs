//! The ledger core driven through the CLI as a user would: init, append, torn tails and
//! repair, locking, anchors, key files.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use keyledger::storage::ledger::Ledger;
use keyledger::storage::store::Wait;

fn init(dir: &Path) -> String {
    let o = run_in(dir, &["--json", "init", "--account", "acme"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["genesis_hash"].as_str().unwrap().to_owned()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args, None);
    assert_eq!(code(&o), 0, "{args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

#[test]
fn init_writes_a_private_key_and_never_overwrites() {
    let d = tempfile::tempdir().unwrap();
    let genesis = init(d.path());
    let key = d.path().join("keyledger.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(d.path().join("keyledger.key.pub").exists());
    let before = std::fs::read(d.path().join("keyledger.ledger")).unwrap();
    let key_before = std::fs::read(&key).unwrap();
    let o = run_in(d.path(), &["init", "--account", "other"], None);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"));
    assert_eq!(
        std::fs::read(d.path().join("keyledger.ledger")).unwrap(),
        before
    );
    assert_eq!(std::fs::read(&key).unwrap(), key_before);
    let out = ok(d.path(), &["verify", "--expect-genesis", &genesis]);
    assert!(out.contains("result   OK"), "{out}");
}

#[test]
fn a_torn_tail_refuses_appends_until_repair_which_is_an_event() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    ok(d.path(), &["user", "create", "alice"]);
    let path = d.path().join("keyledger.ledger");
    let good = std::fs::read(&path).unwrap();
    // An interrupted write: half a frame at the end.
    let mut torn = good.clone();
    torn.extend_from_slice(&[0, 0, 0, 90, 1, 2, 3, 4, 5]);
    std::fs::write(&path, &torn).unwrap();

    let o = run_in(d.path(), &["user", "create", "bob"], None);
    assert_eq!(code(&o), 4);
    assert!(stderr(&o).contains("keyledger repair"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        torn,
        "a refused append changes nothing"
    );
    let o = run_in(d.path(), &["verify"], None);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("[torn]"));

    let out = ok(d.path(), &["repair"]);
    assert!(out.contains("moved 9 torn bytes"), "{out}");
    let q = d
        .path()
        .join(format!("keyledger.ledger.quarantine-{}", good.len()));
    assert_eq!(std::fs::read(&q).unwrap(), &torn[good.len()..]);
    assert!(ok(d.path(), &["verify"]).contains("result   OK"));
    let unknown_key = fixed_key_id(false, 'A');
    let log = ok(
        d.path(),
        &[
            "--key",
            "keyledger.key",
            "log",
            "--action",
            "log-repaired",
            "--key",
            &unknown_key,
        ],
    );
    assert!(
        !log.contains("log-repaired"),
        "`log --key ID` filters by access key: {log}"
    );
    let log = ok(d.path(), &["log", "--action", "log-repaired"]);
    assert!(log.contains("9 bytes at offset"), "{log}");
    ok(d.path(), &["user", "create", "bob"]);
    assert!(ok(d.path(), &["repair"]).contains("nothing to repair"));
}

#[test]
fn a_complete_frame_that_fails_its_checks_is_never_repaired() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    ok(d.path(), &["user", "create", "alice"]);
    let path = d.path().join("keyledger.ledger");
    let mut b = std::fs::read(&path).unwrap();
    let n = b.len();
    b[n - 70] ^= 1; // inside the last body
    std::fs::write(&path, &b).unwrap();
    for args in [&["repair"][..], &["user", "create", "bob"]] {
        let o = run_in(d.path(), args, None);
        assert_eq!(code(&o), 4, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("keyledger verify"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&path).unwrap(), b);
}

#[test]
fn concurrent_writers_all_land_in_a_valid_chain() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let (procs, each) = (4, 10);
    std::thread::scope(|s| {
        for p in 0..procs {
            let dir = d.path();
            s.spawn(move || {
                for i in 0..each {
                    ok(dir, &["user", "create", &format!("u{p}-{i}")]);
                }
            });
        }
    });
    let out = ok(d.path(), &["--json", "user", "list"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["principals"].as_array().unwrap().len(), 1 + procs * each);
    assert!(ok(d.path(), &["verify"]).contains("result   OK"));
}

#[test]
fn no_wait_fails_at_once_while_another_writer_holds_the_lock() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let held = Ledger::open(&d.path().join("keyledger.ledger"), Wait::Block).unwrap();
    let o = run_in(d.path(), &["--no-wait", "user", "create", "alice"], None);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).contains("locked by another keyledger process"),
        "{}",
        stderr(&o)
    );
    drop(held);
    ok(d.path(), &["--no-wait", "user", "create", "alice"]);
}

#[test]
fn a_key_file_readable_by_others_is_refused() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let key = d.path().join("keyledger.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::read(d.path().join("keyledger.ledger")).unwrap();
    let o = run_in(d.path(), &["user", "create", "alice"], None);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("SEED"), "no key material in messages");
    assert_eq!(
        std::fs::read(d.path().join("keyledger.ledger")).unwrap(),
        before
    );
}

#[test]
fn a_cut_tail_is_caught_by_head_and_checkpoint_anchors() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    ok(d.path(), &["user", "create", "alice"]);
    ok(d.path(), &["checkpoint", "--out", "cp"]);
    let v: serde_json::Value = serde_json::from_str(&ok(d.path(), &["--json", "verify"])).unwrap();
    let head = v["report"]["head_hash"].as_str().unwrap().to_owned();
    let path = d.path().join("keyledger.ledger");
    let full = std::fs::read(&path).unwrap();
    ok(d.path(), &["user", "create", "bob"]);
    // Anchors from the past still hold after the ledger grows.
    ok(d.path(), &["verify", "--expect-head", &head]);
    ok(d.path(), &["verify", "--checkpoint", "cp"]);
    // Cut back to before the anchored head.
    let genesis_end = {
        let r = keyledger::storage::store::replay(
            &path,
            &keyledger::storage::cache::Cache::none(),
            None,
            |_| {},
        )
        .unwrap();
        assert!(r.head.seq >= 2);
        let mut frames = keyledger::core::format::FrameReader::new(&full[..]).unwrap();
        frames.next().unwrap().unwrap().end() as usize
    };
    std::fs::write(&path, &full[..genesis_end]).unwrap();
    let o = run_in(d.path(), &["verify", "--expect-head", &head], None);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("tail was cut"), "{}", stdout(&o));
    let o = run_in(d.path(), &["verify", "--checkpoint", "cp"], None);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("the tail was cut"), "{}", stdout(&o));
    // To this user, who verified the longer ledger before, the cut shows anyway (their cache
    // holds the head they saw); to anyone else, without an anchor a cut is invisible.
    let o = run_in(d.path(), &["verify"], None);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("no longer holds"), "{}", stdout(&o));
    assert_eq!(
        code(&run_env(
            d.path(),
            &[("KEYLEDGER_CACHE_DIR", "/dev/null/no-cache")],
            &["verify"],
            None
        )),
        0,
        "without an anchor a cut is invisible"
    );
}

#[test]
fn the_demo_leaves_a_ledger_that_verify_accepts() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(d.path(), &["demo", "--dir", "demo"]);
    assert!(out.contains("result   OK"), "{out}");
    assert!(ok(d.path(), &["--ledger", "demo/demo.ledger", "verify"]).contains("result   OK"));
    let o = run_in(d.path(), &["demo", "--dir", "demo"], None);
    assert_eq!(
        code(&o),
        2,
        "the demo never builds over an existing directory"
    );
}

#[test]
fn bad_input_gets_exit_2_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let path = d.path().join("keyledger.ledger");
    let before = std::fs::read(&path).unwrap();
    for args in [
        &["user", "create", "bad name"][..],
        &["user", "create"],
        &["grant", "alice", "superuser"],
        &["key", "disable", "AKIAIOSFODNN7EXAMPLE"],
        &["key", "list", "--as-of", "yesterday"],
        &["sts", "issue", "--user", "alice", "--duration", "forever"],
        &["signer", "enroll", "alice", "--public-key", "ed25519:zz"],
        &["verify", "--expect-head", "nothex"],
        &["inspect", "-1"],
        &["no-such-command"],
        &["--ledger", "missing.ledger", "key", "list"],
    ] {
        let o = run_in(d.path(), args, None);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
        assert!(!stderr(&o).contains("panicked"), "{args:?}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_reader_never_hangs_behind_a_stalled_writer() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let held = Ledger::open(&d.path().join("keyledger.ledger"), Wait::Block).unwrap();
    let start = std::time::Instant::now();
    let out = ok(d.path(), &["user", "list"]);
    assert!(out.contains("acme"));
    assert!(ok(d.path(), &["verify"]).contains("result   OK"));
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    drop(held);
}

#[test]
fn log_follow_sees_appends_by_another_process_and_stops_when_the_ledger_goes() {
    let d = tempfile::tempdir().unwrap();
    init(d.path());
    let mut child = std::process::Command::new(bin())
        .current_dir(d.path())
        .args(["--json", "log", "--follow", "--action", "user-created"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The child is killed on any failure.
    let rx = stdout_lines(&mut child);
    ok(d.path(), &["user", "create", "alice"]);
    ok(d.path(), &["grant", "alice", "admin"]);
    ok(d.path(), &["user", "create", "bob"]);
    let mut seen = vec![];
    for _ in 0..2 {
        let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("log --follow printed {seen:?} and then nothing for 20 s");
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["action"], "user-created",
            "the filter applies to followed events"
        );
        seen.push(
            v["detail"]["user-created"]["name"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen, ["alice", "bob"]);
    std::fs::remove_file(d.path().join("keyledger.ledger")).unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "follow did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
}
