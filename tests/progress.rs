//! Progress on long work (issue 13, item 7): a bar on stderr when it is a terminal, never
//! in pipes or with --json. A pseudo-terminal comes from util-linux's `script`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use keyledger::core::types::Timestamp;

/// Runs keyledger with stdout and stderr on a pseudo-terminal; returns what it showed.
fn on_a_terminal(dir: &Path, args: &str) -> String {
    let o = Command::new("script")
        .args(["-qfec", &format!("{} {args}", bin().display()), "/dev/null"])
        .current_dir(dir)
        .env("KEYLEDGER_CACHE_DIR", dir.join("cache"))
        .env_remove("KEYLEDGER_NOW")
        .output()
        .expect("`script` (util-linux) must be installed to give keyledger a terminal");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn long_passes_show_progress_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // About 10 MB: over the 8 MiB below which no bar is shown.
    keyledger::tools::synth::build(&d.join("big.ledger"), 50_000, Timestamp(T0), 7).unwrap();
    assert!(std::fs::metadata(d.join("big.ledger")).unwrap().len() > 8 << 20);
    for args in [
        "--ledger big.ledger verify",
        "--ledger big.ledger export --format jsonl --out all.jsonl",
        "--ledger big.ledger audit --fail-on none",
    ] {
        let shown = on_a_terminal(d, args);
        assert!(
            shown.contains("reading the ledger"),
            "{args}: no progress on a terminal:\n{shown}"
        );
    }
    // Pipes and JSON: no progress at all.
    let o = run_env(
        d,
        &[("KEYLEDGER_CACHE_DIR", "cache2")],
        &["--ledger", "big.ledger", "verify"],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("reading the ledger"), "{}", stderr(&o));
    let shown = on_a_terminal(d, "--json --ledger big.ledger verify");
    assert!(!shown.contains("reading the ledger"), "{shown}");
    let v: serde_json::Value =
        serde_json::from_str(shown.trim()).expect("--json output is exactly JSON");
    assert_eq!(v["report"]["ok"], true);
    // A small ledger: nothing to wait for, no bar.
    let o = run_in(d, &["init", "--account", "acme"], None);
    assert_eq!(code(&o), 0);
    assert!(!on_a_terminal(d, "verify").contains("reading the ledger"));
}
