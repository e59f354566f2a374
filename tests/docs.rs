//! Completions and man pages are generated from the argument definitions and work in the
//! tools that read them.

mod common;

use std::process::Command;

use common::*;

#[test]
fn bash_completion_lists_subcommands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in(dir.path(), &["completions", "bash"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let script = dir.path().join("keyledger.bash");
    std::fs::write(&script, stdout(&o)).unwrap();
    // As bash calls a completion function: the words so far, the index of the current one,
    // and (command, current word, previous word) as arguments.
    let complete = |words: &str, cword: usize| {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; \
                 _keyledger keyledger \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .expect("bash runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let top = complete("keyledger ''", 1);
    for sub in ["init", "key", "verify", "audit", "completions", "man"] {
        assert!(top.lines().any(|l| l == sub), "{sub} not offered: {top}");
    }
    let key = complete("keyledger key ''", 2);
    for sub in ["create", "rotate", "disable", "list", "show"] {
        assert!(
            key.lines().any(|l| l == sub),
            "key {sub} not offered: {key}"
        );
    }
    let perms = complete("keyledger grant alice ''", 3);
    for p in ["admin", "manage-keys", "manage-own-keys"] {
        assert!(perms.lines().any(|l| l == p), "{p} not offered: {perms}");
    }
    let flags = complete("keyledger key create --", 3);
    assert!(flags.lines().any(|l| l == "--confirm-necessary"), "{flags}");
    for shell in ["zsh", "fish", "powershell"] {
        let o = run_in(dir.path(), &["completions", shell], None);
        assert_eq!(code(&o), 0, "{shell}: {}", stderr(&o));
        assert!(stdout(&o).contains("keyledger"), "{shell}");
    }
    let o = run_in(dir.path(), &["completions", "tcsh"], None);
    assert_eq!(code(&o), 2);
}

#[test]
fn man_pages_render_with_man() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man");
    let o = run_in(dir.path(), &["man", "--out", "man"], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for page in [
        "keyledger.1",
        "keyledger-key-create.1",
        "keyledger-verify.1",
    ] {
        assert!(out.join(page).is_file(), "{page} missing");
    }
    assert!(!out.join("keyledger-help.1").exists());
    let rendered = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(out.join("keyledger-key-create.1"))
        .env("MANWIDTH", "100")
        .output()
        .expect("`man` (man-db) must be installed to check the man pages; .ci/run installs it");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let text = String::from_utf8_lossy(&rendered.stdout);
    for want in [
        "NAME",
        "SYNOPSIS",
        "keyledger-key-create",
        "--confirm-necessary",
    ] {
        assert!(
            text.contains(want),
            "{want} not in the rendered page:\n{text}"
        );
    }
    // Never overwrites.
    let o = run_in(dir.path(), &["man", "--out", "man"], None);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}
