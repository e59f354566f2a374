//! A real `keyledger serve` on a loopback port over a ledger in a temporary directory,
//! and the site it serves: what the server tests share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keyledger::core::signing::SigningKey;
use keyledger::storage::keyfile;

use super::*;

/// A ledger with a server principal `gw` (server permission) and an operator `ops`
/// (admin), each with an enrolled signing key, and a user `alice` with no permission and
/// a signing key too.
pub struct Site {
    pub dir: tempfile::TempDir,
}

pub fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args, None);
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    stdout(&o)
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ok(d, &["init", "--account", "acme"]);
        for (name, perm) in [
            ("gw", Some("server")),
            ("ops", Some("admin")),
            ("alice", None),
        ] {
            ok(d, &["user", "create", name]);
            if let Some(p) = perm {
                ok(d, &["grant", name, p]);
            }
            ok(d, &["keygen", "--out", &format!("{name}.key")]);
            ok(
                d,
                &[
                    "signer",
                    "enroll",
                    name,
                    "--public-key",
                    &format!("@{name}.key.pub"),
                ],
            );
        }
        Site { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ledger(&self) -> PathBuf {
        self.path("keyledger.ledger")
    }

    pub fn key(&self, name: &str) -> SigningKey {
        keyfile::load(&self.path(&format!("{name}.key"))).unwrap()
    }

    pub fn serve(&self, extra: &[&str]) -> Server {
        let mut args = vec!["--key", "gw.key", "serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        serve_in(self.dir.path(), &args)
    }
}

/// Starts `keyledger ARGS` (a `serve` command) in `dir`, its stderr in `dir/server.log`,
/// and waits for its `listening on` line.
pub fn serve_in(dir: &Path, args: &[&str]) -> Server {
    let log = dir.join("server.log");
    {
        let mut c = Command::new(bin());
        c.current_dir(dir)
            .args(args)
            .env_remove("KEYLEDGER_LEDGER")
            .env_remove("KEYLEDGER_KEY")
            .env_remove("KEYLEDGER_SERVER")
            .env("KEYLEDGER_CACHE_DIR", test_cache_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = c.spawn().expect("start keyledger serve");
        let lines = stdout_lines(&mut child);
        let line = match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "SERVER DID NOT START: keyledger serve printed no `listening on` line: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        forget_mirror(&url);
        Server { child, url }
    }
}

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn addr(&self) -> String {
        self.url.split("://").nth(1).unwrap().to_owned()
    }

    /// SIGTERM, then the exit status (a drained server exits 0).
    pub fn stop(mut self) -> i32 {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap().code().unwrap_or(-1)
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tests share one cache directory, and a port is reused by later servers: a copy of an
/// earlier server's ledger kept for this URL is another ledger's, which a client rightly
/// refuses. A new server's URL starts with no copy.
fn forget_mirror(url: &str) {
    let cache = test_cache_dir();
    let mirror = keyledger::client::mirror_path(&cache, url);
    let stem = cache_stem(&mirror);
    let _ = std::fs::remove_file(&mirror);
    let _ = std::fs::remove_file(keyledger::storage::store::lock_path(&mirror));
    for dir in [cache.clone(), cache.join("servers")] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&stem) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
