//! Format version 2 from the CLI (ledger-format.md §1): a new ledger is version 2 and takes
//! the `server` permission; a version-1 ledger stays valid, keeps being appended to, and
//! refuses what only version 2 can hold, recording nothing.

mod common;

use common::*;
use keyledger::storage::keyfile;

#[test]
fn a_new_ledger_is_version_2_and_takes_the_server_permission() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in(dir.path(), &["init", "--account", "acme"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bytes = std::fs::read(dir.path().join("keyledger.ledger")).unwrap();
    assert_eq!(&bytes[8..10], &[0, 2]);
    for args in [
        &["user", "create", "gw"][..],
        &["grant", "gw", "server"],
        &["verify"],
    ] {
        let o = run_in(dir.path(), args, None);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    }
    let o = run_in(dir.path(), &["--json", "user", "list"], None);
    assert!(stdout(&o).contains("\"server\""), "{}", stdout(&o));
}

#[test]
fn a_version_1_ledger_stays_valid_and_refuses_the_server_permission() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = RawLedger::new();
    l.push(&key(1), genesis());
    let path = dir.path().join("keyledger.ledger");
    std::fs::write(&path, &l.bytes).unwrap();
    keyfile::write_new(&key(1), &dir.path().join("keyledger.key")).unwrap();
    let o = run_in(dir.path(), &["user", "create", "gw"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let before = std::fs::read(&path).unwrap();
    assert_eq!(&before[8..10], &[0, 1]);
    let o = run_in(dir.path(), &["grant", "gw", "server"], None);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("format-version-1 ledger"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "a refusal appended");
    let o = run_in(dir.path(), &["verify"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}
