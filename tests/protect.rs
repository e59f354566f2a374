//! Operation protection (issue 15 items 1–3, R13) through a real `keyledger serve`: the
//! seed stays with the server, protected actions need a fresh code, every refusal is
//! recorded, the event shows the factor, and verify rejects a protected action without
//! the server's attestation.

mod common;

use std::path::Path;
use std::process::Output;

use common::site::*;
use common::*;
use keyledger::core::chain::event_hash;
use keyledger::core::event::Event;
use keyledger::core::format::frame_bytes;
use keyledger::core::totp;
use keyledger::core::types::Timestamp;
use serde_json::Value;

fn through(server: &Server, dir: &Path, key: &str, args: &[&str]) -> Output {
    let mut all = vec!["--server", &server.url, "--key", key];
    all.extend_from_slice(args);
    run_in(dir, &all, None)
}

/// The seed in an `otpauth://` URI.
fn seed_of(uri: &str) -> Vec<u8> {
    let b32 = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("a secret parameter");
    totp::base32_decode(b32).expect("base32")
}

/// The code of `seed` `ahead` steps after now.
fn code_at(seed: &[u8], ahead: u64) -> String {
    let step = totp::step_of(Timestamp::now()) + ahead;
    String::from_utf8(totp::code(seed, step).to_vec()).unwrap()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Enables and confirms protection of `name` (acting with `key`); returns its seed.
fn protect(
    server: &Server,
    dir: &Path,
    key: &str,
    name: &str,
    outputs: &mut Vec<String>,
) -> Vec<u8> {
    let o = through(server, dir, key, &["--json", "protect", "enable", name]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let uri = json_of(&o)["uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("otpauth://totp/keyledger:"), "{uri}");
    assert!(
        uri.contains("digits=6") && uri.contains("period=30"),
        "{uri}"
    );
    outputs.push(stderr(&o));
    let seed = seed_of(&uri);
    assert_eq!(seed.len(), totp::SEED_LEN);
    let o = through(
        server,
        dir,
        key,
        &["protect", "confirm", name, "--code", &code_at(&seed, 0)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    outputs.push(stdout(&o) + &stderr(&o));
    seed
}

fn create_for_alice(server: &Server, dir: &Path, code: Option<&str>) -> Output {
    let mut args = vec![
        "--json",
        "key",
        "create",
        "--user",
        "alice",
        "--scenario",
        "batch job",
        "--confirm-necessary",
    ];
    if let Some(c) = code {
        args.extend(["--code", c]);
    }
    through(server, dir, "ops.key", &args)
}

/// The last event's JSON (`inspect`), read directly from the server's ledger file.
fn event(dir: &Path, seq: u64) -> Value {
    let o = run_in(dir, &["--json", "inspect", &seq.to_string()], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    json_of(&o)
}

#[test]
fn a_protected_actors_key_create_needs_one_fresh_code_and_each_refusal_is_recorded() {
    let site = Site::new();
    let d = site.dir.path();
    let server = site.serve(&[]);
    let mut outputs = Vec::new();
    let seed = protect(&server, d, "ops.key", "ops", &mut outputs);

    // Without a code (no terminal to ask on), with a wrong one: refused, exit 3, recorded.
    let o = create_for_alice(&server, d, None);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--code") && stderr(&o).contains("[R13]"),
        "{}",
        stderr(&o)
    );
    outputs.push(stdout(&o) + &stderr(&o));
    let right = code_at(&seed, 1);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let o = create_for_alice(&server, d, Some(wrong));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not ops's current one"),
        "{}",
        stderr(&o)
    );
    outputs.push(stdout(&o) + &stderr(&o));

    // The next code: created, and the event shows the factor.
    let o = create_for_alice(&server, d, Some(&right));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let created = json_of(&o);
    outputs.push(stderr(&o));
    let seq = created["seq"].as_u64().expect("the creation's seq");

    // The same code again: used already, refused and recorded.
    let o = create_for_alice(&server, d, Some(&right));
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("used already"), "{}", stderr(&o));
    outputs.push(stdout(&o) + &stderr(&o));

    // alice turns her own protection on, then off with her next code.
    let alice = protect(&server, d, "alice.key", "alice", &mut outputs);
    let o = through(
        &server,
        d,
        "alice.key",
        &["protect", "disable", "alice", "--code", &code_at(&alice, 1)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(server.stop(), 0);

    let ev = event(d, seq);
    assert_eq!(ev["action"], "key-created", "{ev}");
    assert_eq!(ev["second_factor"]["kind"], "totp", "{ev}");
    let log = run_in(d, &["--json", "log", "--action", "action-denied"], None);
    let reasons: Vec<String> = json_of(&log)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    for want in [
        "needs a second factor",
        "not ops's current one",
        "used already",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "no action-denied says {want:?}: {reasons:?}"
        );
    }
    let st = run_in(d, &["--json", "protect", "status"], None);
    let st = json_of(&st);
    let of = |n: &str| {
        st["principals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(of("ops")["protected"], true);
    assert_eq!(of("alice")["protected"], false);

    // Direct file mode: a protected actor's protected action is refused, told to use the server.
    let o = run_in(
        d,
        &[
            "--key",
            "ops.key",
            "key",
            "disable",
            created["access_key_id"].as_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("through the server"), "{}", stderr(&o));
    outputs.push(stdout(&o) + &stderr(&o));
    let v = run_in(d, &["verify"], None);
    assert_eq!(code(&v), 0, "{}", stdout(&v) + &stderr(&v));

    // The seed: in the server's store and the one URI shown, nowhere else.
    let b32 = totp::base32(&seed);
    let a32 = totp::base32(&alice);
    let exported = d.join("export.jsonl");
    let o = run_in(
        d,
        &[
            "export",
            "--format",
            "jsonl",
            "--out",
            exported.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run_in(
        d,
        &[
            "export",
            "--format",
            "bundle",
            "--out",
            d.join("bundle").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let store = std::fs::read_to_string(d.join("keyledger.ledger.seeds")).unwrap();
    assert!(store.contains(&b32), "the store holds the seed in force");
    let mut files = Vec::new();
    let mut stack = vec![d.to_path_buf(), test_cache_dir()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path != d.join("keyledger.ledger.seeds") {
                files.push(path);
            }
        }
    }
    assert!(files.iter().any(|f| f.ends_with("server.log")));
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for (what, needle) in [
            ("seed (base32)", b32.as_bytes()),
            ("seed", &seed[..]),
            ("alice's seed", a32.as_bytes()),
            ("alice's seed", &alice[..]),
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{what} found in {}",
                f.display()
            );
        }
        // No code either: the one that created the key.
        if f.ends_with("keyledger.ledger") {
            assert!(!bytes.windows(6).any(|w| w == right.as_bytes()));
        }
    }
    for text in &outputs {
        assert!(!text.contains(&b32) && !text.contains(&a32), "{text}");
    }
}

/// The frames of a ledger file: (offset, body, signature).
fn frames(bytes: &[u8]) -> Vec<(usize, Vec<u8>, [u8; 64])> {
    let mut out = Vec::new();
    let mut at = 16;
    while at + 4 <= bytes.len() {
        let n = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let body = bytes[at + 4..at + 4 + n].to_vec();
        let sig: [u8; 64] = bytes[at + 4 + n..at + 68 + n].try_into().unwrap();
        out.push((at, body, sig));
        at += 68 + n;
    }
    out
}

#[test]
fn verify_rejects_a_protected_action_whose_attestation_the_server_key_left_out() {
    let site = Site::new();
    let d = site.dir.path();
    let server = site.serve(&[]);
    let seed = protect(&server, d, "ops.key", "ops", &mut Vec::new());
    let o = create_for_alice(&server, d, Some(&code_at(&seed, 1)));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let seq = json_of(&o)["seq"].as_u64().unwrap();
    assert_eq!(server.stop(), 0);

    // The holder of the server's key re-signs the creation without its attestation and cuts
    // what follows (the reveal), as if the code had never been asked for.
    let path = site.ledger();
    let bytes = std::fs::read(&path).unwrap();
    let fs = frames(&bytes);
    let (offset, body, _) = &fs[seq as usize];
    let mut ev = Event::decode(body).unwrap();
    assert!(ev.factor.is_some(), "the server attested the code");
    ev.factor = None;
    let new_body = ev.encode();
    let sig = site.key("gw").sign_hash(&event_hash(&new_body));
    let mut forged = bytes[..*offset].to_vec();
    forged.extend(frame_bytes(&new_body, &sig));
    let forged_path = d.join("forged.ledger");
    std::fs::write(&forged_path, &forged).unwrap();
    let v = run_in(d, &["--ledger", "forged.ledger", "--json", "verify"], None);
    assert_eq!(code(&v), 1, "{}", stdout(&v));
    let report: Value = serde_json::from_str(&stdout(&v)).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("\"policy\"") && text.contains("second factor"),
        "{text}"
    );
    assert!(text.contains(&format!("\"seq\":{seq}")), "{text}");

    // And one with its attestation moved to a step the code could not have had.
    let mut ev = Event::decode(body).unwrap();
    if let Some(f) = &mut ev.factor {
        f.step -= 3;
    }
    let new_body = ev.encode();
    let sig = site.key("gw").sign_hash(&event_hash(&new_body));
    let mut forged = bytes[..*offset].to_vec();
    forged.extend(frame_bytes(&new_body, &sig));
    std::fs::write(&forged_path, &forged).unwrap();
    let v = run_in(d, &["--ledger", "forged.ledger", "--json", "verify"], None);
    assert_eq!(code(&v), 1, "{}", stdout(&v));
    assert!(stdout(&v).contains("\"request\""), "{}", stdout(&v));
}

/// The current TOTP step, after waiting out the last 3 seconds of a step: the codes of the
/// steps before, at and after it all stay acceptable for the next few seconds.
fn settled_step() -> u64 {
    let into = Timestamp::now().0.rem_euclid(totp::STEP_US);
    if into > totp::STEP_US - 3_000_000 {
        std::thread::sleep(std::time::Duration::from_micros(
            (totp::STEP_US - into) as u64 + 10_000,
        ));
    }
    totp::step_of(Timestamp::now())
}

fn code_of(seed: &[u8], step: u64) -> String {
    String::from_utf8(totp::code(seed, step).to_vec()).unwrap()
}

#[test]
fn replayed_requests_with_wrong_codes_cannot_lock_a_principal_out_and_user_delete_is_protected() {
    use keyledger::client::{Client, ledger_info, submit};
    use keyledger::core::types::LedgerId;
    use keyledger::protocol::wire::Code;
    let site = Site::new();
    let d = site.dir.path();
    let server = site.serve(&[]);
    let o = through(
        &server,
        d,
        "ops.key",
        &["--json", "protect", "enable", "ops"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let seed = seed_of(json_of(&o)["uri"].as_str().unwrap());
    let c = settled_step();
    let o = through(
        &server,
        d,
        "ops.key",
        &[
            "protect",
            "confirm",
            "ops",
            "--code",
            &code_of(&seed, c - 1),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = through(
        &server,
        d,
        "ops.key",
        &[
            "--json",
            "grant",
            "alice",
            "manage-own-keys",
            "--code",
            &code_of(&seed, c),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let seq = json_of(&o)["events"][0]["seq"].as_u64().unwrap();
    // Anyone who reads the ledger has ops's signed request: replayed with wrong codes.
    let bytes = std::fs::read(site.ledger()).unwrap();
    let (_, body, _) = &frames(&bytes)[seq as usize];
    let ev = Event::decode(body).unwrap();
    let signed = (ev.action.clone(), ev.request.clone().unwrap());
    let mut cl = Client::new(&server.url, None).unwrap();
    let id = LedgerId::parse_hex(&ledger_info(&mut cl).unwrap().ledger_id).unwrap();
    for _ in 0..8 {
        let wrong = Code(zeroize::Zeroizing::new("000000".into()));
        let r = submit(&mut cl, &id, std::slice::from_ref(&signed), Some(wrong)).unwrap();
        assert!(r[0].replayed, "{:?}", r[0]);
    }
    // Deleting a user is protected too: refused without a code.
    let o = through(&server, d, "ops.key", &["user", "delete", "gw"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(stderr(&o).contains("[R13]"), "{}", stderr(&o));
    // ops's next code still works: the replays counted no failure.
    let o = through(
        &server,
        d,
        "ops.key",
        &[
            "revoke",
            "alice",
            "manage-own-keys",
            "--code",
            &code_of(&seed, c + 1),
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(server.stop(), 0);
}
