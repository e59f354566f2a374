//! Exports, evidence bundles and checkpoints.

mod common;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;
use ed25519_dalek::Verifier;
use keyledger::core::event::Event;
use keyledger::core::format::FrameReader;
use keyledger::evidence::export::verify_bundle;
use sha2::{Digest, Sha256};

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run_in(dir, args, None);
    assert_eq!(code(&o), 0, "{args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// A demo ledger and the id of ci-deploy's key.
fn demo(dir: &Path) -> String {
    ok(dir, &["demo", "--dir", "d"]);
    let v: serde_json::Value = serde_json::from_str(&ok(
        dir,
        &[
            "--ledger",
            "d/demo.ledger",
            "--json",
            "key",
            "list",
            "--user",
            "ci-deploy",
        ],
    ))
    .unwrap();
    v["keys"][0]["key_id"].as_str().unwrap().to_owned()
}

/// A demo ledger and, in `b/`, the evidence bundle of ci-deploy's key; returns the key id.
fn demo_bundle(dir: &Path) -> String {
    let key_id = demo(dir);
    let args = [
        "--ledger",
        "d/demo.ledger",
        "--key",
        "d/keys/acme.key",
        "export",
        "--format",
        "bundle",
        "--out",
        "b",
    ];
    let mut args = args.to_vec();
    args.extend(["--key", &key_id]);
    ok(dir, &args);
    key_id
}

#[test]
fn a_bundle_verifies_offline_and_every_altered_byte_fails_it() {
    let d = tempfile::tempdir().unwrap();
    demo_bundle(d.path());
    // Offline: the ledger is gone.
    std::fs::rename(d.path().join("d"), d.path().join("gone")).unwrap();
    let trusted = std::fs::read_to_string(d.path().join("gone/keys/acme.key.pub")).unwrap();
    let out = ok(
        d.path(),
        &["verify-bundle", "b", "--trusted-key", trusted.trim()],
    );
    assert!(out.contains("bundle OK: 6 events"), "{out}");
    let pk = keyledger::core::types::PublicKey::parse(&trusted).unwrap();
    let bundle = d.path().join("b");
    let mut flips = 0;
    for entry in std::fs::read_dir(&bundle).unwrap() {
        let p = entry.unwrap().path();
        let original = std::fs::read(&p).unwrap();
        for i in 0..original.len() {
            let mut b = original.clone();
            b[i] ^= 0x01;
            std::fs::write(&p, &b).unwrap();
            assert!(
                verify_bundle(&bundle, Some(&pk), None).is_err(),
                "flip at {}:{i} passed",
                p.display()
            );
            flips += 1;
        }
        std::fs::write(&p, &original).unwrap();
    }
    println!("bundle byte flips tried: {flips}, all failed verification");
    assert!(flips > 5000);
    assert!(verify_bundle(&bundle, Some(&pk), None).is_ok());
    // A missing file fails too.
    std::fs::remove_file(bundle.join("README.txt")).unwrap();
    let o = run_in(d.path(), &["verify-bundle", "b"], None);
    assert_eq!(code(&o), 1);
}

#[test]
fn a_bundle_for_one_key_holds_only_that_keys_events() {
    let d = tempfile::tempdir().unwrap();
    let key_id = demo_bundle(d.path());
    let frames = std::fs::read(d.path().join("b/events.frames")).unwrap();
    let mut header = keyledger::core::format::header_bytes().to_vec();
    header.extend_from_slice(&frames);
    let events: Vec<Event> = FrameReader::new(&header[..])
        .unwrap()
        .map(|f| Event::decode(&f.unwrap().body).unwrap())
        .collect();
    assert_eq!(events.len(), 6);
    for e in &events {
        assert_eq!(e.action.key_id(), Some(key_id.as_str()), "{:?}", e.action);
    }
    // Other principals' names appear nowhere in the bundle except as the actors who signed.
    let all: String = std::fs::read_dir(d.path().join("b"))
        .unwrap()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into_owned())
        .collect();
    for other in ["bob", "carol", "partner-sso"] {
        assert!(!all.contains(other), "{other} appears in the bundle");
    }
}

#[test]
fn jsonl_and_csv_exports_carry_every_field_and_no_secret() {
    let d = tempfile::tempdir().unwrap();
    demo(d.path());
    ok(
        d.path(),
        &[
            "--ledger",
            "d/demo.ledger",
            "export",
            "--format",
            "jsonl",
            "--out",
            "all.jsonl",
        ],
    );
    ok(
        d.path(),
        &[
            "--ledger",
            "d/demo.ledger",
            "export",
            "--format",
            "csv",
            "--out",
            "denied.csv",
            "--action",
            "action-denied",
        ],
    );
    let jsonl = std::fs::read_to_string(d.path().join("all.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 33);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64);
        for f in keyledger::evidence::export::CSV_COLUMNS {
            assert!(!l[f].is_null(), "field {f} missing in {l}");
        }
    }
    let csv = std::fs::read_to_string(d.path().join("denied.csv")).unwrap();
    assert!(csv.starts_with(
        "seq,time,time_us,actor,action,detail,hash,prev_hash,signer,signer_enrolled_by,signature,offset,frame_len\r\n"
    ));
    assert_eq!(csv.lines().count(), 1 + 4);
    // The demo's revealed secrets never reach an export.
    for f in std::fs::read_dir(d.path().join("d/secrets")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        let secret = text
            .lines()
            .nth(1)
            .unwrap()
            .split_once(',')
            .unwrap()
            .1
            .to_owned();
        assert!(!jsonl.contains(&secret) && !csv.contains(&secret));
    }
    let o = run_in(
        d.path(),
        &[
            "--ledger",
            "d/demo.ledger",
            "export",
            "--format",
            "csv",
            "--out",
            "denied.csv",
        ],
        None,
    );
    assert_eq!(code(&o), 2, "exports never overwrite");
}

#[test]
fn a_forked_ledger_fails_verify_against_a_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["init", "--account", "acme"]);
    ok(d.path(), &["user", "create", "alice"]);
    let base = std::fs::read(d.path().join("keyledger.ledger")).unwrap();
    ok(d.path(), &["user", "create", "bob"]);
    ok(d.path(), &["checkpoint", "--out", "cp"]);
    // Cut back by exactly one event.
    let full = std::fs::read(d.path().join("keyledger.ledger")).unwrap();
    std::fs::write(d.path().join("keyledger.ledger"), &base).unwrap();
    let o = run_in(d.path(), &["verify", "--checkpoint", "cp"], None);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("covers 3 events but the ledger has 2: the tail was cut"),
        "{}",
        stdout(&o)
    );
    assert!(full.len() > base.len());
    // The fork: same prefix, a different event at the position the checkpoint covers. This
    // user, who verified the longer ledger, is refused an append to the cut one; someone
    // without that memory (no cache) appends.
    assert_eq!(
        code(&run_in(d.path(), &["user", "create", "mallory"], None)),
        4
    );
    let o = run_env(
        d.path(),
        &[("KEYLEDGER_CACHE_DIR", "/dev/null/no-cache")],
        &["user", "create", "mallory"],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run_in(d.path(), &["verify", "--checkpoint", "cp"], None);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("rewritten or forked"), "{}", stdout(&o));
    // A checkpoint whose signature was altered is its own clear error.
    let note = std::fs::read_to_string(d.path().join("cp")).unwrap();
    let bad = note.replacen("\n3\n", "\n2\n", 1);
    std::fs::write(d.path().join("cp2"), bad).unwrap();
    let o = run_in(d.path(), &["verify", "--checkpoint", "cp2"], None);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("does not verify: the checkpoint was altered"),
        "{}",
        stdout(&o)
    );
}

/// An independent signed-note verifier (c2sp.org/signed-note), written here from the spec.
fn open_note(note: &str, vkey: &str) -> Option<String> {
    let mut parts = vkey.splitn(3, '+');
    let (name, id, key) = (parts.next()?, parts.next()?, parts.next()?);
    let key = B64.decode(key).ok()?;
    if key.len() != 33 || key[0] != 1 {
        return None;
    }
    let want_id: [u8; 4] = Sha256::new()
        .chain_update(name)
        .chain_update(b"\n")
        .chain_update(&key)
        .finalize()[..4]
        .try_into()
        .ok()?;
    if keyledger::core::types::to_hex(&want_id) != id {
        return None;
    }
    let split = note.rfind("\n\n")?;
    let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key[1..].try_into().ok()?).ok()?;
    for line in sigs.lines() {
        let rest = line.strip_prefix("\u{2014} ")?;
        let (n, b) = rest.split_once(' ')?;
        let blob = B64.decode(b).ok()?;
        if n == name && blob.len() == 68 && blob[..4] == want_id {
            let sig = ed25519_dalek::Signature::from_bytes(blob[4..].try_into().ok()?);
            if vk.verify(text.as_bytes(), &sig).is_ok() {
                return Some(text.to_owned());
            }
        }
    }
    None
}

#[test]
fn checkpoints_verify_with_an_independent_signed_note_implementation() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["init", "--account", "acme"]);
    ok(d.path(), &["user", "create", "alice"]);
    let note = ok(d.path(), &["checkpoint"]);
    let vkey = ok(d.path(), &["checkpoint", "--vkey"]).trim().to_owned();
    let text = open_note(&note, &vkey).expect("our checkpoint opens with its verifier key");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("keyledger/"));
    assert_eq!(lines[1], "2");
    assert_eq!(B64.decode(lines[2]).unwrap().len(), 32);
    // Altered text or another key fails.
    assert!(open_note(&note.replacen("\n2\n", "\n3\n", 1), &vkey).is_none());
    let other = keyledger::evidence::checkpoint::verifier_key(lines[0], &key(9).public());
    assert!(open_note(&note, &other).is_none());
}

#[test]
fn the_go_reference_signed_note_vector_is_reproduced() {
    // From golang.org/x/mod/sumdb/note's documentation and tests.
    let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    let sig_line = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    let seed: [u8; 32] = B64.decode(skey).unwrap()[1..].try_into().unwrap();
    let k = keyledger::core::signing::SigningKey::from_seed(&seed);
    assert_eq!(
        keyledger::evidence::checkpoint::verifier_key("PeterNeumann", &k.public()),
        vkey
    );
    let mut blob = keyledger::evidence::checkpoint::key_hash("PeterNeumann", &k.public()).to_vec();
    blob.extend_from_slice(&k.sign_bytes(text.as_bytes()));
    assert_eq!(
        format!("\u{2014} PeterNeumann {}\n", B64.encode(blob)),
        sig_line
    );
    assert_eq!(
        open_note(&format!("{text}\n{sig_line}"), vkey).as_deref(),
        Some(text)
    );
}
