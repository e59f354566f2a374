//! The layering `src/lib.rs` describes, held by reading the `use` lines: each library folder
//! imports only the folders before it, and the CLI's command modules share `cli/views.rs`
//! rather than importing one another.

use std::path::Path;

/// Library folders, lowest first: a folder may use only those before it.
const LAYERS: [&str; 8] = [
    "core", "storage", "evidence", "audit", "protocol", "server", "client", "tools",
];

fn rust_files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn each_library_folder_imports_only_the_folders_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for (i, layer) in LAYERS.iter().enumerate() {
        let files = rust_files(&src.join(layer));
        assert!(!files.is_empty(), "src/{layer} has no files");
        for (path, text) in files {
            for above in &LAYERS[i + 1..] {
                if text.contains(&format!("crate::{above}::")) {
                    bad.push(format!("{path} uses crate::{above}"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "imports against the layering: {bad:#?}");
}

#[test]
fn the_core_knows_no_files_sockets_or_terminal() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut bad = Vec::new();
    for (path, text) in rust_files(&src) {
        for banned in [
            "std::fs",
            "std::net",
            "std::process",
            "std::env",
            "println!",
            "eprintln!",
            "SystemTime::now",
        ] {
            if text.contains(banned) {
                bad.push(format!("{path}: {banned}"));
            }
        }
    }
    assert!(bad.is_empty(), "the core must stay pure: {bad:#?}");
}

#[test]
fn cli_command_modules_do_not_import_each_other() {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    let commands = [
        "audit",
        "bench",
        "docs",
        "history",
        "integrity",
        "keys",
        "principals",
    ];
    let mut bad = Vec::new();
    for (path, text) in rust_files(&cli) {
        for c in commands {
            if text.contains(&format!("super::{c}::")) && !path.ends_with("cli/mod.rs") {
                bad.push(format!("{path} uses super::{c}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn the_server_and_the_client_share_only_the_protocol() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for (from, to) in [("server", "client"), ("client", "server")] {
        for (path, text) in rust_files(&src.join(from)) {
            if text.contains(&format!("crate::{to}::")) {
                bad.push(format!("{path} uses crate::{to}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}
