//! Witnesses (issue 17) with real `keyledger witness serve` processes: a fork shown to one
//! witness twice is refused the second time; shown to two, it gives a proof anyone can
//! check; a tail cut after a cosigned checkpoint fails verify; a cosignature dated before
//! the events it covers is a finding; cosignatures verify with an independent
//! implementation of signed-note and tlog-cosignature (tests/cosignature_check.py).

mod common;

use std::path::Path;
use std::time::Duration;

use common::site::{Server, ok};
use common::*;
use serde_json::Value;

/// `witness serve` arguments: `key` file, `name`, `state` file, on a free loopback port,
/// for the log `log_vkey`.
fn serve_args<'a>(key: &'a str, name: &'a str, state: &'a str, log_vkey: &'a str) -> Vec<&'a str> {
    vec![
        "witness",
        "serve",
        "--key",
        key,
        "--name",
        name,
        "--listen",
        "127.0.0.1:0",
        "--state",
        state,
        "--log",
        log_vkey,
    ]
}

fn witness(dir: &Path, name: &str, port: u16, log_vkey: &str) -> Server {
    let key = format!("{}.key", name.replace('/', "_"));
    if !dir.join(&key).exists() {
        ok(dir, &["keygen", "--out", &key]);
    }
    let state = format!("{}.state", name.replace('/', "_"));
    let listen = format!("127.0.0.1:{port}");
    common::site::serve_in(
        dir,
        &[
            "witness", "serve", "--key", &key, "--name", name, "--listen", &listen, "--state",
            &state, "--log", log_vkey,
        ],
    )
}

fn vkey_of(dir: &Path, name: &str) -> String {
    let key = format!("{}.key", name.replace('/', "_"));
    ok(dir, &["witness", "vkey", "--key", &key, "--name", name])
        .trim()
        .to_owned()
}

#[test]
fn witnesses_catch_forks_cut_tails_and_backdating() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["demo", "--dir", "demo"]);
    let key = "demo/keys/acme.key";
    let a = ["--ledger", "demo/demo.ledger", "--key", key];
    let log = ok(d, &[&a[..], &["checkpoint", "--vkey"]].concat())
        .trim()
        .to_owned();
    let (p1, p2) = (common::pg::free_port(), common::pg::free_port());
    let w1 = witness(d, "w.example/1", p1, &log);
    let w2 = witness(d, "w.example/2", p2, &log);
    let (v1, v2) = (vkey_of(d, "w.example/1"), vkey_of(d, "w.example/2"));
    {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v1.splitn(3, '+').nth(2).unwrap())
            .unwrap();
        assert_eq!(
            (raw[0], raw.len()),
            (0x04, 33),
            "a cosignature key is of type 0x04: {v1}"
        );
    }
    // One witness named twice is one witness.
    let o = run_in(
        d,
        &[
            &a[..],
            &[
                "checkpoint",
                "--out",
                "twice",
                "--witness",
                &w1.url,
                "--witness",
                &format!("{}/", w1.url),
                "--quorum",
                "2",
            ],
        ]
        .concat(),
        None,
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    // The honest history, cosigned by both.
    let c0 = ok(
        d,
        &[
            &a[..],
            &[
                "--json",
                "checkpoint",
                "--out",
                "c0",
                "--witness",
                &w1.url,
                "--witness",
                &w2.url,
            ],
        ]
        .concat(),
    );
    let c0: Value = serde_json::from_str(&c0).unwrap();
    let asked = c0["witnesses"].as_array().unwrap();
    assert!(
        asked.len() == 2 && asked.iter().all(|w| w["cosigned"] == true),
        "{c0}"
    );
    let v = ok(
        d,
        &[
            "--ledger",
            "demo/demo.ledger",
            "--json",
            "verify",
            "--checkpoint",
            "c0",
            "--witness-key",
            &v1,
            "--witness-key",
            &v2,
            "--quorum",
            "2",
        ],
    );
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["report"]["findings"], serde_json::json!([]), "{v}");
    assert_eq!(
        v["report"]["witnesses"], "2 of 2 trusted witnesses cosigned (quorum 2)",
        "{v}"
    );
    // An independent signed-note / tlog-cosignature check agrees.
    if let Some(py) = std::env::var_os("KEYLEDGER_PYTHON") {
        let o = std::process::Command::new(py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cosignature_check.py"))
            .args([d.join("c0").to_str().unwrap(), &log, &v1, &v2])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["log"], true, "{r}");
        assert!(
            r["witnesses"]["w.example/1"].as_u64().unwrap() > 1_700_000_000,
            "{r}"
        );
        assert!(r["witnesses"]["w.example/2"].is_u64(), "{r}");
    }

    // A fork after the cosigned size: the same ledger copied, each copy going its own way.
    std::fs::copy(d.join("demo/demo.ledger"), d.join("fork.ledger")).unwrap();
    let f = ["--ledger", "fork.ledger", "--key", key];
    ok(d, &[&a[..], &["user", "create", "honest"]].concat());
    ok(d, &[&f[..], &["user", "create", "forged"]].concat());
    ok(d, &[&f[..], &["user", "create", "forged2"]].concat());
    // Witness 1 sees the honest history, then is shown the fork: refused.
    ok(
        d,
        &[&a[..], &["checkpoint", "--out", "c1", "--witness", &w1.url]].concat(),
    );
    let o = run_in(
        d,
        &[
            &f[..],
            &["checkpoint", "--out", "fork1", "--witness", &w1.url],
        ]
        .concat(),
        None,
    );
    assert_eq!(code(&o), 3, "a witness cosigned a fork: {}", stderr(&o));
    assert!(stderr(&o).contains("422"), "{}", stderr(&o));
    assert!(!d.join("fork1").exists());
    // Witness 2 is shown only the fork and cosigns it: two cosigned views, one proof.
    ok(
        d,
        &[&f[..], &["checkpoint", "--out", "c2", "--witness", &w2.url]].concat(),
    );
    ok(
        d,
        &[
            &f[..],
            &[
                "witness",
                "prove-fork",
                "--a",
                "c1",
                "--b",
                "c2",
                "--out",
                "fork.proof",
            ],
        ]
        .concat(),
    );
    let proven = ok(d, &["witness", "check-fork", "fork.proof", "--vkey", &log]);
    assert!(proven.contains("FORK PROVEN"), "{proven}");
    // The same proof with the root swapped for the honest one no longer proves anything.
    let text = std::fs::read_to_string(d.join("fork.proof")).unwrap();
    let honest = text.replacen(
        "keyledger fork proof v1\nroot ",
        "keyledger fork proof v1\nroot X",
        1,
    );
    std::fs::write(d.join("bad.proof"), honest).unwrap();
    let o = run_in(
        d,
        &["witness", "check-fork", "bad.proof", "--vkey", &log],
        None,
    );
    assert_ne!(code(&o), 0);

    // A tail cut after a cosigned checkpoint fails verify with it.
    let bytes = std::fs::read(d.join("demo/demo.ledger")).unwrap();
    let cut = bytes.len() - 200;
    let mut at = 16usize;
    let mut last_start = 16usize;
    while at < cut {
        last_start = at;
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + len + 64;
    }
    std::fs::write(d.join("cut.ledger"), &bytes[..last_start]).unwrap();
    let o = run_in(
        d,
        &[
            "--ledger",
            "cut.ledger",
            "verify",
            "--checkpoint",
            "c1",
            "--witness-key",
            &v1,
        ],
        None,
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));

    // Fewer cosigners than the quorum is a finding; so is an unknown witness key's line.
    let o = run_in(
        d,
        &[
            "--ledger",
            "demo/demo.ledger",
            "verify",
            "--checkpoint",
            "c1",
            "--witness-key",
            &v1,
            "--witness-key",
            &v2,
            "--quorum",
            "2",
        ],
        None,
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("fewer than the quorum"),
        "{}",
        stdout(&o)
    );

    // A cosignature dated before the events it covers (here: a witness key of the test's
    // own, signing with an old time) is a finding.
    let wk = keyledger::core::signing::SigningKey::from_seed(&[9; 32]);
    let note = std::fs::read_to_string(d.join("c1")).unwrap();
    let (_, _, text) = keyledger::evidence::checkpoint::Checkpoint::parse(&note).unwrap();
    let line = keyledger::evidence::cosign::cosign(&wk, "w.example/old", &text, 1_600_000_000);
    std::fs::write(d.join("old"), format!("{note}{line}")).unwrap();
    let old = keyledger::evidence::cosign::vkey("w.example/old", &wk.public());
    let o = run_in(
        d,
        &[
            "--ledger",
            "demo/demo.ledger",
            "verify",
            "--checkpoint",
            "old",
            "--witness-key",
            &old,
        ],
        None,
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("backdated"), "{}", stdout(&o));

    // The witness persisted what it cosigned: restarted, it still refuses the fork.
    drop(w1);
    std::thread::sleep(Duration::from_millis(100));
    let w1 = witness(d, "w.example/1", p1, &log);
    let o = run_in(
        d,
        &[
            &f[..],
            &["checkpoint", "--out", "fork3", "--witness", &w1.url],
        ]
        .concat(),
        None,
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
}

/// A hostile "witness" on a loopback port: it answers every request 200 with what
/// `answer(note text)` returns.
fn hostile(answer: impl Fn(&str) -> String + Send + 'static) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream);
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let req =
                keyledger::evidence::cosign::AddCheckpoint::parse(&String::from_utf8_lossy(&body));
            let text = req
                .and_then(|r| keyledger::evidence::checkpoint::Checkpoint::parse(&r.note).ok())
                .map(|(_, _, t)| t)
                .unwrap_or_default();
            let out = answer(&text);
            let _ = write!(
                r.get_mut(),
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                out.len()
            );
        }
    });
    url
}

/// What a client keeps of hostile answers: never a line that does not verify with the
/// witness keys it was given, never one dated far from now, never so many lines that the
/// note breaks; and two witnesses cannot run on one state file through another name.
#[test]
fn hostile_witnesses_and_state_file_names() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init", "--account", "acme"]);
    ok(d, &["user", "create", "alice"]);
    let log = ok(d, &["checkpoint", "--vkey"]).trim().to_owned();
    let w1 = witness(d, "w.example/1", 0, &log);
    let v1 = vkey_of(d, "w.example/1");
    let key_id = {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v1.splitn(3, '+').nth(2).unwrap())
            .unwrap();
        let pk = keyledger::core::types::PublicKey(keyledger::core::types::Bytes(
            raw[1..].try_into().unwrap(),
        ));
        keyledger::evidence::cosign::key_id("w.example/1", &pk)
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    // Impersonation: a line under w1's name and key ID, with a signature of nothing.
    let fake = hostile(move |_| {
        let mut blob = key_id.to_vec();
        blob.extend_from_slice(&now().to_be_bytes());
        blob.extend_from_slice(&[7; 64]);
        format!(
            "\u{2014} w.example/1 {}\n",
            base64::engine::general_purpose::STANDARD.encode(blob)
        )
    });
    let cp = |out: &str, witnesses: &[&str], extra: &[&str]| {
        let mut a = vec!["checkpoint", "--out", out];
        for w in witnesses {
            a.extend(["--witness", w]);
        }
        a.extend(extra);
        run_in(d, &a, None)
    };
    // With w1's key given, the fake is refused and the real w1 counts.
    let o = cp(
        "c1",
        &[&fake, &w1.url],
        &["--quorum", "1", "--witness-key", &v1],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
    ok(d, &["verify", "--checkpoint", "c1", "--witness-key", &v1]);
    // Without keys, two different answers under one name count for neither.
    let o = cp("c2", &[&fake, &w1.url], &["--quorum", "1"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("different lines"), "{}", stderr(&o));
    assert!(!d.join("c2").exists());
    // A valid cosignature by a witness key of the test's own, dated at second 1: refused
    // (kept, it would make every verifier that trusts it see the events as backdated).
    let wk = keyledger::core::signing::SigningKey::from_seed(&[9; 32]);
    let early =
        hostile(move |text| keyledger::evidence::cosign::cosign(&wk, "w.example/early", text, 1));
    let o = cp("c3", &[&early], &[]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("more than 5 minutes"), "{}", stderr(&o));
    // Ninety-nine lines of the right shape: more than one witness's worth, refused.
    let many = hostile(move |_| {
        (0..99u8)
            .map(|i| {
                let mut blob = vec![i, i, i, i];
                blob.extend_from_slice(&now().to_be_bytes());
                blob.extend_from_slice(&[i; 64]);
                format!(
                    "\u{2014} w.example/many {}\n",
                    base64::engine::general_purpose::STANDARD.encode(blob)
                )
            })
            .collect()
    });
    let o = cp("c4", &[&many, &w1.url], &["--quorum", "1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let note = std::fs::read_to_string(d.join("c4")).unwrap();
    assert_eq!(note.matches('\u{2014}').count(), 2, "{note}");
    // A second witness on the same state file through a symbolic link, or a hard link: refused.
    std::os::unix::fs::symlink("w.example_1.state", d.join("link.state")).unwrap();
    ok(d, &["keygen", "--out", "w2.key"]);
    for (state, why) in [
        ("link.state", "another witness"),
        ("w.example_1.state", "another witness"),
        ("hard.state", "hard links"),
    ] {
        if state == "hard.state" {
            std::fs::hard_link(d.join("w.example_1.state"), d.join(state)).unwrap();
        }
        let o = run_in(d, &serve_args("w2.key", "w.example/2", state, &log), None);
        assert_eq!(code(&o), 4, "{state}: {}", stderr(&o));
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
    }
    drop(w1);
}

/// A client that pipelines requests and never reads the answers holds its connection only
/// until a write has waited --client-timeout; a state file named through a link to nothing
/// is refused.
#[test]
fn a_client_that_stops_reading_loses_its_connection() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init", "--account", "acme"]);
    let log = ok(d, &["checkpoint", "--vkey"]).trim().to_owned();
    ok(d, &["keygen", "--out", "w.key"]);
    let serve = |state: &'static str, extra: &[&'static str]| {
        let mut a = serve_args("w.key", "w.example/1", state, &log);
        a.extend(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    std::os::unix::fs::symlink("nothing-yet.state", d.join("dangling.state")).unwrap();
    let args = serve("dangling.state", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run_in(d, &args, None);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("link to a file that does not exist"),
        "{}",
        stderr(&o)
    );
    let args = serve(
        "w.state",
        &["--client-timeout", "1", "--max-connections", "1"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let w = common::site::serve_in(d, &args);
    let addr = w.addr();
    let attacker = std::net::TcpStream::connect(&addr).unwrap();
    let mut writer = attacker.try_clone().unwrap();
    std::thread::spawn(move || {
        let req = b"GET /00/checkpoint HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
        for _ in 0..400 {
            if writer.write_all(&req).is_err() {
                break;
            }
        }
    });
    let probe = || {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(b"GET /00/checkpoint HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        probe().starts_with("HTTP/1.1 503"),
        "the one slot is the attacker's"
    );
    // Once its responses have waited a second to be written, the slot is free again.
    let start = std::time::Instant::now();
    loop {
        let a = probe();
        if a.starts_with("HTTP/1.1 404") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still held after 20 s: {a}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(attacker);
}
