//! The README as a new user meets it: every ```sh block (not ```sh ci, which CI runs itself,
//! nor ```text, the reference) runs in order, in one shell, in an empty directory, with
//! `keyledger` on PATH; and the demo's suggestions run exactly as printed.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The bodies of the README's fenced blocks whose info string is exactly `sh`.
fn runnable_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().unwrap()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(current.is_none(), "an unclosed block in the README");
    blocks
}

/// A shell with `keyledger` on PATH, this test's own cache and home, and no KEYLEDGER_*.
fn shell(dir: &Path, script: &str) -> std::process::Output {
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("bash");
    c.args(["-e", "-u", "-o", "pipefail", "-x", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env("KEYLEDGER_CACHE_DIR", dir.join(".cache"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYLEDGER_") && k != "KEYLEDGER_CACHE_DIR" {
            c.env_remove(k);
        }
    }
    c.output().unwrap()
}

#[test]
fn every_readme_example_runs_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let blocks = runnable_blocks(&readme);
    assert!(
        blocks.len() >= 3,
        "the README's first session has gone missing"
    );
    let dir = tempfile::tempdir().unwrap();
    let script = blocks.join("\n");
    let o = shell(dir.path(), &script);
    assert_eq!(
        code(&o),
        0,
        "a README example failed as written (the last command traced is the one):\n{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    // What the examples promise happened.
    let out = stdout(&o);
    assert!(out.contains("refused, exit 3"), "{out}");
    for f in [
        "keyledger.ledger",
        "alice.key",
        "bob-backup.csv",
        "bob-rotated.csv",
        "bob.ocsf.jsonl",
        "head.checkpoint",
        "evidence",
        "audit.html",
        "carol.csv",
        "serve.log",
    ] {
        assert!(dir.path().join(f).exists(), "{f} was not made");
    }
    let v = shell(dir.path(), "keyledger verify");
    assert_eq!(code(&v), 0, "{}", stdout(&v));
}

#[test]
fn the_demo_suggests_commands_that_work_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    // Once with keyledger on PATH, once without: both print what runs.
    for (on_path, sub) in [(true, "a"), (false, "b")] {
        let mut script = format!("keyledger demo --dir {sub}");
        if !on_path {
            script = format!("PATH=/usr/bin:/bin {} demo --dir {sub}", bin().display());
        }
        let o = shell(dir.path(), &script);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let out = stdout(&o);
        let tries: Vec<&str> = out
            .lines()
            .skip_while(|l| *l != "Try:")
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .map(str::trim)
            .collect();
        assert!(tries.len() >= 5, "{out}");
        for t in tries {
            assert_eq!(
                t.starts_with("keyledger "),
                on_path,
                "{t}: the program as it can be typed"
            );
            let run = if on_path {
                t.to_owned()
            } else {
                format!("PATH=/usr/bin:/bin {t}")
            };
            let r = shell(dir.path(), &run);
            assert_eq!(code(&r), 0, "{t}: {}", stderr(&r));
        }
        if !on_path {
            assert!(out.contains("cargo install --path ."), "{out}");
        }
    }
}
