//! keyledger with an independent implementation of the C2SP specs it follows (issue 17):
//! aics-witness (a tlog-witness v1.1.0, Python, from PyPI) cosigns keyledger's checkpoints
//! and refuses a fork; its client gets cosignatures from `keyledger witness serve`; and
//! aics-tlog's tlog-tiles client reproduces roots and proofs from keyledger's tiles, as
//! files and as served by `serve --tiles`. Driven by tests/interop_aics.py.
//!
//! Needs `$KEYLEDGER_PYTHON` with aics-witness, aics-tlog, blake3 and msgpack; `.ci/run`
//! installs them into its virtual environment. A run without them fails, loudly.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::site::{Server, ok};
use common::*;
use serde_json::Value;

/// The Python that has aics-witness and aics-tlog.
fn python() -> PathBuf {
    let py = std::env::var_os("KEYLEDGER_PYTHON").map(PathBuf::from);
    let usable = py.as_ref().is_some_and(|p| {
        Command::new(p)
            .args(["-c", "import aics_witness, aics_tlog, blake3, msgpack"])
            .status()
            .is_ok_and(|s| s.success())
    });
    match (usable, py) {
        (true, Some(p)) => p,
        _ => panic!(
            "AICS-WITNESS IS NOT INSTALLED: these tests need KEYLEDGER_PYTHON set to a Python with \
             `pip install --ignore-requires-python aics-witness==0.1.0 aics-tlog==0.2.1 blake3 msgpack` \
             (in a virtual environment); .ci/run installs them"
        ),
    }
}

/// tests/interop_aics.py ARGS: its JSON answer and whether it exited 0.
fn aics(dir: &Path, args: &[&str]) -> (Value, bool) {
    let o = Command::new(python())
        .current_dir(dir)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop_aics.py"))
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "interop_aics.py {args:?}: {e}\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (v, o.status.success())
}

/// An aics-witness process on a loopback port, stopped when dropped.
struct AicsWitness {
    child: Child,
    url: String,
    vkey: String,
}

impl AicsWitness {
    /// Creates its key, database and configuration in `dir`, trusting the log `log_vkey`,
    /// and serves until it says it listens.
    fn start(dir: &Path, log_vkey: &str) -> AicsWitness {
        let py = python();
        let listen = format!("127.0.0.1:{}", common::pg::free_port());
        let run = |args: &[&str]| {
            let o = Command::new(&py)
                .current_dir(dir)
                .args(["-m", "aics_witness"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "aics-witness {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let config = "aics.json";
        let init = run(&[
            "init",
            "--config",
            config,
            "--name",
            "witness.example/aics",
            "--listen",
            &listen,
        ]);
        let vkey = init.lines().next().unwrap().trim().to_owned();
        let origin = log_vkey.split('+').next().unwrap();
        run(&[
            "add-log", "--config", config, "--origin", origin, "--vkey", log_vkey,
        ]);
        let log = dir.join("aics.log");
        let child = Command::new(&py)
            .current_dir(dir)
            .args(["-m", "aics_witness", "serve", "--config", config])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut w = AicsWitness {
            child,
            url: format!("http://{listen}"),
            vkey,
        };
        let start = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listening on")
        {
            if start.elapsed() > Duration::from_secs(30) || w.child.try_wait().unwrap().is_some() {
                panic!(
                    "AICS-WITNESS DID NOT START: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        w
    }
}

impl Drop for AicsWitness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `keyledger witness serve` for the log `log_vkey`.
fn our_witness(dir: &Path, log_vkey: &str) -> (Server, String) {
    ok(dir, &["keygen", "--out", "w.key"]);
    let s = common::site::serve_in(
        dir,
        &[
            "witness",
            "serve",
            "--key",
            "w.key",
            "--name",
            "witness.example/keyledger",
            "--listen",
            "127.0.0.1:0",
            "--state",
            "w.state",
            "--log",
            log_vkey,
        ],
    );
    let vkey = ok(
        dir,
        &[
            "witness",
            "vkey",
            "--key",
            "w.key",
            "--name",
            "witness.example/keyledger",
        ],
    );
    (s, vkey.trim().to_owned())
}

/// `args` on `ledger`, as the account (`keyledger.key`).
fn on<'a>(ledger: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    [&["--ledger", ledger, "--key", "keyledger.key"][..], args].concat()
}

/// Users created in `ledger` by the account.
fn users(dir: &Path, ledger: &str, names: &[&str]) {
    for n in names {
        ok(dir, &on(ledger, &["user", "create", n]));
    }
}

#[test]
fn an_independent_witness_cosigns_keyledger_checkpoints_and_refuses_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init", "--account", "acme"]);
    users(d, "keyledger.ledger", &["alice", "bob"]);
    let log = ok(d, &["checkpoint", "--vkey"]).trim().to_owned();
    let w = AicsWitness::start(d, &log);
    // First cosignature (old size 0), then a larger tree: the 409 names the size it
    // holds and keyledger sends the consistency proof from it.
    ok(d, &["checkpoint", "--out", "c1", "--witness", &w.url]);
    users(d, "keyledger.ledger", &["carol", "dave", "erin"]);
    let c2 = ok(
        d,
        &["--json", "checkpoint", "--out", "c2", "--witness", &w.url],
    );
    let c2: Value = serde_json::from_str(&c2).unwrap();
    assert_eq!(c2["witnesses"][0]["previous_size"], 3, "{c2}");
    for c in ["c1", "c2"] {
        let v = ok(
            d,
            &[
                "--json",
                "verify",
                "--checkpoint",
                c,
                "--witness-key",
                &w.vkey,
            ],
        );
        let v: Value = serde_json::from_str(&v).unwrap();
        assert_eq!(
            v["report"]["witnesses"], "1 of 1 trusted witnesses cosigned (quorum 1)",
            "{v}"
        );
        // aics's own checkpoint verifier agrees.
        let (r, good) = aics(d, &["check", c, &log, &w.vkey]);
        assert!(good, "{r}");
    }
    // A fork after c2: shown to the aics witness, refused (422, inconsistent).
    std::fs::copy(d.join("keyledger.ledger"), d.join("fork.ledger")).unwrap();
    users(d, "keyledger.ledger", &["honest"]);
    ok(d, &["checkpoint", "--out", "c3", "--witness", &w.url]);
    users(d, "fork.ledger", &["forged", "forged2"]);
    let fork_checkpoint = |out: &str, witness: &str| -> Vec<String> {
        on(
            "fork.ledger",
            &["checkpoint", "--out", out, "--witness", witness],
        )
        .into_iter()
        .map(str::to_owned)
        .collect()
    };
    let f = fork_checkpoint("fork", &w.url);
    let f: Vec<&str> = f.iter().map(String::as_str).collect();
    let o = run_in(d, &f, None);
    assert_eq!(
        code(&o),
        3,
        "the aics witness cosigned a fork: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("HTTP 422"), "{}", stderr(&o));
    assert!(!d.join("fork").exists());
    // keyledger's own witness, shown only the fork, cosigns it: with aics's c3, a proof.
    let (ours, _) = our_witness(d, &log);
    let f2 = fork_checkpoint("fork-ours", &ours.url);
    ok(d, &f2.iter().map(String::as_str).collect::<Vec<_>>());
    ok(
        d,
        &on(
            "fork.ledger",
            &[
                "witness",
                "prove-fork",
                "--a",
                "c3",
                "--b",
                "fork-ours",
                "--out",
                "fork.proof",
            ],
        ),
    );
    let proven = ok(d, &["witness", "check-fork", "fork.proof", "--vkey", &log]);
    assert!(proven.contains("FORK PROVEN"), "{proven}");
}

#[test]
fn an_independent_witness_client_is_cosigned_by_keyledger_witness() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init", "--account", "acme"]);
    users(d, "keyledger.ledger", &["alice"]);
    let log = ok(d, &["checkpoint", "--vkey"]).trim().to_owned();
    let (w, wvkey) = our_witness(d, &log);
    let feed = |note: &str, ledger: &str, out: &str| {
        aics(
            d,
            &["feed", &w.url, &wvkey, note, ledger, out, "client.state"],
        )
    };
    ok(d, &["checkpoint", "--out", "n1"]);
    let (r, good) = feed("n1", "keyledger.ledger", "n1.cosigned");
    assert!(good, "{r}");
    users(d, "keyledger.ledger", &["bob", "carol"]);
    std::fs::copy(d.join("keyledger.ledger"), d.join("fork.ledger")).unwrap();
    users(d, "keyledger.ledger", &["dave"]);
    ok(d, &["checkpoint", "--out", "n2"]);
    // aics's client remembers the size the witness holds and proves consistency from it.
    let (r, good) = feed("n2", "keyledger.ledger", "n2.cosigned");
    assert!(good, "{r}");
    for n in ["n1.cosigned", "n2.cosigned"] {
        ok(d, &["verify", "--checkpoint", n, "--witness-key", &wvkey]);
        let (r, good) = aics(d, &["check", n, &log, &wvkey]);
        assert!(good, "{r}");
    }
    // Another history of the same size as n2: keyledger's witness refuses it (422).
    users(d, "fork.ledger", &["mallory"]);
    ok(d, &on("fork.ledger", &["checkpoint", "--out", "f2"]));
    let (r, good) = feed("f2", "fork.ledger", "f2.cosigned");
    assert!(!good && r["status"] == 422, "{r}");
    assert_eq!(w.stop(), 0);
}

#[test]
fn an_independent_tiles_client_reproduces_roots_and_proofs() {
    // Past 65,536 events: level-2 tiles, full and partial tiles at every level.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = keyledger::tools::synth::build(
        &d.join("big.ledger"),
        70_000,
        keyledger::tools::bench::start_time(),
        11,
    )
    .unwrap();
    keyledger::storage::keyfile::write_new(&s.account, &d.join("acme.key")).unwrap();
    let l = ["--ledger", "big.ledger", "--key", "acme.key"];
    ok(d, &[&l[..], &["user", "create", "probe"]].concat());
    ok(d, &[&l[..], &["tiles", "--out", "t"]].concat());
    assert!(d.join("t/tile/2/000.p/1").is_file());
    // keyledger's own inclusion proofs, at both edges of the tree.
    for (user, out) in [("admin", "b-admin"), ("probe", "b-probe")] {
        ok(
            d,
            &[
                &l[..],
                &["export", "--format", "bundle", "--user", user, "--out", out],
            ]
            .concat(),
        );
    }
    let (r, good) = aics(d, &["tiles", "t", "big.ledger", "b-admin", "b-probe"]);
    assert!(good, "{r}");
    assert_eq!(r["size"], 70_001, "{r}");
    assert!(r["checks"].as_u64().unwrap() > 40, "{r}");
    assert!(r["bundle_events"].as_u64().unwrap() >= 4, "{r}");
}

#[test]
fn an_independent_tiles_client_reads_served_tiles() {
    let site = common::site::Site::new();
    let d = site.dir.path();
    let server = site.serve(&["--tiles"]);
    // More than one full level-0 tile, written through the server.
    for i in 0..260 {
        ok(
            d,
            &[
                "--server",
                &server.url,
                "--key",
                "ops.key",
                "user",
                "create",
                &format!("u{i}"),
            ],
        );
    }
    let (r, good) = aics(d, &["tiles", &server.url, "keyledger.ledger"]);
    assert!(good, "{r}");
    assert!(r["size"].as_u64().unwrap() > 256, "{r}");
    assert_eq!(server.stop(), 0);
}
