//! `keyledger serve` and `--server`, with real servers on loopback ports (issue 14): many
//! writers, kill -9 under load, idempotent retries, bad clients, TLS, and the actor's own
//! signature inside every event.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::site::*;
use common::*;
use keyledger::client::{Client, ledger_info, submit};
use keyledger::core::event::{Action, Request};
use keyledger::core::request;
use keyledger::core::signing::SigningKey;
use keyledger::core::types::{Bytes, LedgerId, Timestamp};
use keyledger::protocol::wire::ItemReply;
use keyledger::storage::cache::Cache;

fn connect(url: &str) -> (Client, LedgerId) {
    let mut c = Client::new(url, None).unwrap();
    let info = ledger_info(&mut c).unwrap();
    let id = LedgerId::parse_hex(&info.ledger_id).unwrap();
    (c, id)
}

fn user(name: &str) -> Action {
    Action::UserCreated {
        name: name.into(),
        federated: false,
    }
}

fn signed(key: &SigningKey, id: &LedgerId, action: Action) -> (Action, Request) {
    let r = request::sign(key, id, Timestamp::now(), &action);
    (action, r)
}

fn one(c: &mut Client, id: &LedgerId, s: (Action, Request)) -> ItemReply {
    submit(c, id, &[s], None).unwrap().pop().unwrap()
}

/// The verified state of a ledger file (every event checked, no cache).
fn state_of(path: &Path) -> keyledger::core::state::State {
    keyledger::storage::store::head(path, &Cache::none())
        .expect("the ledger verifies")
        .0
        .state
}

#[test]
fn eight_clients_of_two_hundred_writes_are_all_present_once() {
    let site = Site::new();
    let server = site.serve(&[]);
    let ops = Arc::new(site.key("ops"));
    let receipts = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (url, ops, receipts) = (server.url.clone(), ops.clone(), receipts.clone());
            std::thread::spawn(move || {
                let (mut c, id) = connect(&url);
                for i in 0..200 {
                    let r = match submit(
                        &mut c,
                        &id,
                        &[signed(&ops, &id, user(&format!("u{t}-{i}")))],
                        None,
                    ) {
                        Ok(mut r) => r.pop().unwrap(),
                        Err(e) => {
                            eprintln!("DEBUG {e} at {}", Timestamp::now());
                            std::thread::sleep(Duration::from_secs(1000));
                            panic!()
                        }
                    };
                    assert_eq!(r.status, "appended", "{r:?}");
                    receipts.lock().unwrap().push(r.seq.unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.stop(), 0, "a drained server exits 0");
    let mut seqs = receipts.lock().unwrap().clone();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 1600, "1600 distinct receipts");
    let state = state_of(&site.ledger());
    for t in 0..8 {
        for i in 0..200 {
            assert!(state.principals.contains_key(&format!("u{t}-{i}")));
        }
    }
    assert_eq!(
        state.requests.len(),
        1600,
        "each request applied exactly once"
    );
    let o = run_in(site.dir.path(), &["verify"], None);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn kill_9_under_64_clients_loses_nothing_acknowledged() {
    let site = Site::new();
    let ops = Arc::new(site.key("ops"));
    let acked: Arc<Mutex<Vec<(String, u64, String)>>> = Arc::default();
    let mut repairs = 0;
    for round in 0..50 {
        let server = site.serve(&[]);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads: Vec<_> = (0..64)
            .map(|t| {
                let (url, ops, acked, stop) =
                    (server.url.clone(), ops.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    let Ok(mut c) = Client::new(&url, None) else {
                        return;
                    };
                    let Ok(info) = ledger_info(&mut c) else {
                        return;
                    };
                    let id = LedgerId::parse_hex(&info.ledger_id).unwrap();
                    for i in 0.. {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            return;
                        }
                        let name = format!("r{round}-c{t}-{i}");
                        match submit(&mut c, &id, &[signed(&ops, &id, user(&name))], None) {
                            Ok(mut r) => {
                                let r = r.pop().unwrap();
                                if r.status == "appended" {
                                    acked.lock().unwrap().push((
                                        name,
                                        r.seq.unwrap(),
                                        r.hash.unwrap(),
                                    ));
                                }
                            }
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(40 + (round * 37 % 200) as u64));
        server.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        // A write cut by the kill leaves a torn tail that was never acknowledged.
        let o = run_in(site.dir.path(), &["verify"], None);
        if code(&o) != 0 {
            let r = run_in(site.dir.path(), &["repair"], None);
            assert_eq!(code(&r), 0, "round {round}: {}{}", stdout(&o), stderr(&r));
            repairs += 1;
        }
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 500,
        "only {} writes acknowledged",
        acked.len()
    );
    let mut hashes = std::collections::HashMap::new();
    keyledger::storage::store::replay(&site.ledger(), &Cache::none(), None, |seen| {
        hashes.insert(seen.event.seq, seen.hash.hex());
    })
    .unwrap();
    let state = state_of(&site.ledger());
    for (name, seq, hash) in acked.iter() {
        assert!(
            state.principals.contains_key(name),
            "{name} was acknowledged and lost"
        );
        assert_eq!(
            hashes.get(seq),
            Some(hash),
            "seq {seq} is not the acknowledged event"
        );
    }
    eprintln!(
        "kill -9: 50 rounds, {} acknowledged writes all present, {repairs} torn tails repaired",
        acked.len()
    );
    let o = run_in(site.dir.path(), &["verify"], None);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}

#[test]
fn a_retried_request_gets_its_original_receipt_also_after_a_restart() {
    let site = Site::new();
    let server = site.serve(&[]);
    let ops = site.key("ops");
    let (mut c, id) = connect(&server.url);
    let s = signed(&ops, &id, user("once"));
    let first = one(&mut c, &id, s.clone());
    assert_eq!(first.status, "appended");
    let len = std::fs::metadata(site.ledger()).unwrap().len();
    let again = one(&mut c, &id, s.clone());
    assert!(again.replayed, "{again:?}");
    assert_eq!((again.seq, &again.hash), (first.seq, &first.hash));
    assert_eq!(std::fs::metadata(site.ledger()).unwrap().len(), len);
    // The same nonce over another action is not a retry: refused, nothing recorded.
    let mut other = signed(&ops, &id, user("twice"));
    other.1.nonce = s.1.nonce;
    let h = request::request_hash(&id, other.1.time, &other.1.nonce, &other.0);
    other.1.sig = Bytes(ops.sign_hash(&h));
    let r = submit(&mut c, &id, &[other], None).unwrap().pop().unwrap();
    assert_eq!(
        (r.status.as_str(), r.code.as_deref()),
        ("rejected", Some("replayed"))
    );
    assert_eq!(server.stop(), 0);
    let server = site.serve(&[]);
    let (mut c, id) = connect(&server.url);
    let after = one(&mut c, &id, s);
    assert!(after.replayed, "{after:?}");
    assert_eq!((after.seq, after.hash), (first.seq, first.hash));
    assert_eq!(std::fs::metadata(site.ledger()).unwrap().len(), len);
}

/// A raw HTTP exchange: the status and body.
fn raw(addr: &str, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    raw(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

#[test]
fn bad_clients_get_a_4xx_and_change_nothing() {
    let site = Site::new();
    let server = site.serve(&["--client-timeout", "1", "--max-connections", "4"]);
    let addr = server.addr();
    let (mut c, id) = connect(&server.url);
    let ops = site.key("ops");
    let before = std::fs::read(site.ledger()).unwrap();
    let unchanged = |what: &str| {
        assert_eq!(
            std::fs::read(site.ledger()).unwrap(),
            before,
            "{what} changed the ledger"
        );
    };
    let envelope = |s: &(Action, Request), ledger: &str| {
        format!(
            "{{\"ledger_id\":\"{ledger}\",\"requests\":[\"{}\"]}}",
            keyledger::protocol::wire::encode_request(&s.0, &s.1)
        )
    };
    let mut cases: Vec<(&str, String, u16, &str)> = vec![
        ("malformed JSON", "{not json".into(), 400, "malformed"),
        (
            "a request that is not MessagePack",
            format!("{{\"ledger_id\":\"{}\",\"requests\":[\"AAAA\"]}}", id.hex()),
            400,
            "malformed",
        ),
        (
            "an oversized body",
            "x".repeat(300 * 1024),
            413,
            "too-large",
        ),
    ];
    let stranger = SigningKey::from_seed(&[77; 32]);
    cases.push((
        "an unknown key",
        envelope(&signed(&stranger, &id, user("x1")), &id.hex()),
        401,
        "unknown-key",
    ));
    let mut bad_sig = signed(&ops, &id, user("x2"));
    bad_sig.1.sig.0[5] ^= 1;
    cases.push((
        "a bad signature",
        envelope(&bad_sig, &id.hex()),
        401,
        "bad-signature",
    ));
    let other_ledger = Bytes([9u8; 16]);
    cases.push((
        "another ledger's id",
        envelope(&signed(&ops, &id, user("x3")), &other_ledger.hex()),
        400,
        "wrong-ledger",
    ));
    cases.push((
        "a request signed for another ledger",
        envelope(&signed(&ops, &other_ledger, user("x4")), &id.hex()),
        401,
        "bad-signature",
    ));
    for (what, minutes) in [("a stale time", -10), ("a future time", 10)] {
        let t = Timestamp::now().plus_micros(minutes * 60 * 1_000_000);
        let a = user("x5");
        let r = request::sign(&ops, &id, t, &a);
        cases.push((what, envelope(&(a, r), &id.hex()), 400, "stale-request"));
    }
    for (what, body, status, code) in &cases {
        let (got, text) = post(&addr, "/v1/append", body);
        assert_eq!(got, *status, "{what}: {text}");
        assert!(
            text.contains(&format!("\"error\":\"{code}\"")),
            "{what}: {text}"
        );
        unchanged(what);
    }
    // A malformed auth body never comes back quoted: it may hold a secret.
    let (status, text) = post(&addr, "/v1/auth", "\"klsk_NOT-TO-BE-ECHOED\"");
    assert_eq!(status, 400, "{text}");
    assert!(!text.contains("NOT-TO-BE-ECHOED"), "{text}");
    // A request whose refusal could not be recorded (a genesis: its denial cannot carry
    // it) is rejected, and the server lives on (the denial below is recorded).
    let g = Action::Genesis {
        ledger_id: id,
        account: "x".into(),
        public_key: ops.public(),
    };
    let r = one(&mut c, &id, signed(&ops, &id, g));
    assert_eq!(r.status, "rejected", "{r:?}");
    unchanged("a signed genesis");
    // A revoked key: enrolled, revoked, then refused.
    let d = site.dir.path();
    ok(d, &["keygen", "--out", "old.key"]);
    ok(
        d,
        &[
            "--server",
            &server.url,
            "signer",
            "enroll",
            "alice",
            "--public-key",
            "@old.key.pub",
        ],
    );
    ok(
        d,
        &[
            "--server",
            &server.url,
            "signer",
            "revoke",
            "alice",
            "@old.key.pub",
        ],
    );
    let before = std::fs::read(site.ledger()).unwrap();
    let old = site.key("old");
    let r = one(&mut c, &id, signed(&old, &id, user("x6")));
    assert_eq!(
        (r.status.as_str(), r.code.as_deref()),
        ("rejected", Some("unknown-key")),
        "{r:?}"
    );
    assert!(r.message.unwrap().contains("revoked"));
    assert_eq!(
        std::fs::read(site.ledger()).unwrap(),
        before,
        "a revoked key changed the ledger"
    );
    // A slow client: headers never finished, then a body never finished.
    let (status, _) = raw(&addr, b"POST /v1/append HTTP/1.1\r\nhost: x\r\n");
    assert!(
        status == 408 || status == 0,
        "a client that never ends its headers is cut off"
    );
    let (status, text) = raw(
        &addr,
        b"POST /v1/append HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"ledger",
    );
    assert_eq!(status, 408, "{text}");
    // Too many connections: the limit's worth held open, the next one refused.
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, text) = raw(&addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("too-many-connections"));
    drop(held);
    assert_eq!(std::fs::read(site.ledger()).unwrap(), before);
    // A policy refusal of an authenticated actor is recorded, for that actor.
    std::thread::sleep(Duration::from_millis(1500));
    let alice = site.key("alice");
    let r = one(&mut c, &id, signed(&alice, &id, user("x7")));
    assert_eq!(r.status, "denied", "{r:?}");
    let o = run_in(d, &["--json", "inspect", &r.seq.unwrap().to_string()], None);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["actor"], "alice", "{v}");
    assert_eq!(server.stop(), 0);
}

#[test]
fn the_actor_is_the_request_signer_and_a_changed_request_byte_fails_verify() {
    let site = Site::new();
    let server = site.serve(&[]);
    let d = site.dir.path();
    let via = |key: &str, args: &[&str]| {
        let mut all = vec!["--server", &server.url, "--key", key];
        all.extend_from_slice(args);
        run_in(d, &all, None)
    };
    let o = via(
        "ops.key",
        &[
            "key",
            "create",
            "--user",
            "alice",
            "--scenario",
            "ci",
            "--confirm-necessary",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let created: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let key_id = created["access_key_id"].as_str().unwrap().to_owned();
    let secret = created["access_key_secret"].as_str().unwrap().to_owned();
    // A gateway checks the key: success recorded once per window, failure always.
    for (input, want) in [(&secret, 0), (&secret, 0), (&"klsk_wrong".to_owned(), 1)] {
        let o = run_in(
            d,
            &["--server", &server.url, "--key", "gw.key", "auth", &key_id],
            Some(input),
        );
        assert_eq!(code(&o), want, "{}", stderr(&o));
    }
    // Same output and exit codes as direct mode: a refusal is exit 3.
    let o = via("alice.key", &["user", "create", "mallory"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert_eq!(server.stop(), 0);
    let log = ok(d, &["--json", "log"]);
    let log: serde_json::Value = serde_json::from_str(&log).unwrap();
    let events = log["events"].as_array().unwrap().clone();
    let by = |action: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["actor"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(by("key-created"), ["ops"], "{log}");
    assert_eq!(by("secret-revealed"), ["ops"]);
    assert_eq!(by("auth-succeeded"), ["gw"], "one success recorded: {log}");
    assert_eq!(by("auth-failed"), ["gw"]);
    assert_eq!(by("action-denied"), ["alice"]);
    let show = ok(d, &["--json", "key", "show", &key_id]);
    assert!(
        show.contains("\"created_by\": \"ops\"") || show.contains("\"created_by\":\"ops\""),
        "{show}"
    );
    // Every request field is covered: a byte of its signature, nonce or time changed fails.
    let bytes = std::fs::read(site.ledger()).unwrap();
    let mut r = keyledger::core::format::FrameReader::new(&bytes[..]).unwrap();
    let mut requests = Vec::new();
    for f in r.by_ref() {
        let f = f.unwrap();
        let ev = keyledger::core::event::Event::decode(&f.body).unwrap();
        if let Some(req) = ev.request {
            requests.push(req);
        }
    }
    assert!(requests.len() >= 5, "the server's events carry requests");
    let req = &requests[0];
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    for (what, at) in [
        ("signature", find(&req.sig.0) + 10),
        ("nonce", find(&req.nonce.0) + 3),
        ("time", find(&req.time.0.to_be_bytes()) + 7),
    ] {
        let mut b = bytes.clone();
        b[at] ^= 1;
        let copy = site.path(&format!("changed-{what}.ledger"));
        std::fs::write(&copy, &b).unwrap();
        let o = run_in(d, &["--ledger", copy.to_str().unwrap(), "verify"], None);
        assert_eq!(code(&o), 1, "a changed request {what} byte: {}", stdout(&o));
        independent_verifier(&copy, false);
    }
    independent_verifier(&site.ledger(), true);

    // An evidence bundle of the key lists each key with its own principal (the server's
    // key as gw's, the request signer's as ops') and checks every request signature
    // (ledger-format.md §10.3, step 9): without the actor's key it does not verify.
    ok(
        d,
        &[
            "export", "--format", "bundle", "--out", "b", "--key", &key_id,
        ],
    );
    let account = std::fs::read_to_string(site.path("keyledger.key.pub")).unwrap();
    let verify_bundle = |dir: &str| {
        run_in(
            d,
            &["verify-bundle", dir, "--trusted-key", account.trim()],
            None,
        )
    };
    assert_eq!(code(&verify_bundle("b")), 0);
    let manifest = std::fs::read(site.path("b/manifest.json")).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let principal_of = |m: &serde_json::Value, pk: &str| {
        m["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["public_key"] == pk)
            .map(|k| k["principal"].as_str().unwrap().to_owned())
    };
    let ops_key = site.key("ops").public().to_string();
    let gw_key = site.key("gw").public().to_string();
    assert_eq!(principal_of(&m, &gw_key).as_deref(), Some("gw"), "{m}");
    assert_eq!(principal_of(&m, &ops_key).as_deref(), Some("ops"), "{m}");
    // The exporter re-signs a manifest that leaves the actor's key out.
    m["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["public_key"] != ops_key.as_str());
    let forged = serde_json::to_vec_pretty(&m).unwrap();
    let digest = blake3::derive_key("keyledger 2026-11-22 bundle manifest v1", &forged);
    let sig = site
        .key("keyledger")
        .sign_hash(&keyledger::core::types::Bytes(digest));
    let b2 = site.path("b2");
    std::fs::create_dir(&b2).unwrap();
    for f in ["README.txt", "checkpoint", "events.frames"] {
        std::fs::copy(site.path(&format!("b/{f}")), b2.join(f)).unwrap();
    }
    std::fs::write(b2.join("manifest.json"), &forged).unwrap();
    let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(b2.join("manifest.sig"), format!("{hex}\n")).unwrap();
    let o = verify_bundle("b2");
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(said.contains("request signature"), "{said}");
}

/// A test CA and a certificate for 127.0.0.1 made with openssl.
fn test_ca(dir: &Path) -> Option<()> {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .ok()?;
    let steps: [&[&str]; 4] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=keyledger test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "tls.key",
            "-out",
            "tls.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tls.pem",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ],
        &["version"],
    ];
    steps.iter().all(|s| run(s)).then_some(())
}

#[test]
fn tls_with_a_test_ca_works_and_plain_http_off_loopback_is_refused() {
    let site = Site::new();
    let d = site.dir.path();
    test_ca(d).expect("OPENSSL COULD NOT MAKE THE TEST CA: install openssl (CI does)");
    let server = site.serve(&["--tls-cert", "tls.pem", "--tls-key", "tls.key"]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let o = run_in(
        d,
        &[
            "--server",
            &server.url,
            "--ca",
            "ca.pem",
            "--key",
            "ops.key",
            "user",
            "create",
            "overtls",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run_in(
        d,
        &[
            "--server",
            &server.url,
            "--ca",
            "tls.pem",
            "--key",
            "ops.key",
            "user",
            "list",
        ],
        None,
    );
    assert_ne!(
        code(&o),
        0,
        "a CA that did not issue the certificate is not trusted"
    );
    let o = run_in(
        d,
        &[
            "--server",
            &server.url.replace("https", "http"),
            "--key",
            "ops.key",
            "user",
            "list",
        ],
        None,
    );
    assert_ne!(code(&o), 0, "plain http to a TLS server fails");
    assert_eq!(server.stop(), 0);
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let o = run_in(d, &["--key", "gw.key", "serve", "--listen", listen], None);
        assert_eq!(code(&o), 2, "{listen}: {}", stderr(&o));
        assert!(stderr(&o).contains("without TLS"), "{}", stderr(&o));
    }
    let o = run_in(
        d,
        &["--key", "alice.key", "serve", "--listen", "127.0.0.1:0"],
        None,
    );
    assert_eq!(
        code(&o),
        3,
        "a key without the server permission: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("grant alice server"), "{}", stderr(&o));
}
