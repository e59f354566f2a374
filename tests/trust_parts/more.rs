//! The larger checks behind `trust.rs`'s weakness tests.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::common::forge::*;
use super::common::*;
use super::{W, append_frame, load_key};
use keyledger::core::event::Action;
use keyledger::core::merkle::ProofTree;
use keyledger::core::signing::SigningKey;
use keyledger::core::types::{Bytes, Timestamp, to_hex};
use keyledger::evidence::checkpoint::Checkpoint;
use keyledger::evidence::verify::{Options, verify_file, verify_reader};
use keyledger::storage::cache::Cache;
use keyledger::storage::keyfile;
use keyledger::storage::ledger::Appender;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Runs keyledger in `dir` (with `env`), killing it and failing the test if it has not
/// finished within `secs`: nothing planted beside a ledger may make a command hang.
pub fn run_bounded(dir: &Path, env: &[(&str, &str)], args: &[&str], secs: u64) -> Output {
    let mut c = Command::new(bin());
    c.current_dir(dir)
        .args(args)
        .env_remove("KEYLEDGER_NOW")
        .env("KEYLEDGER_CACHE_DIR", test_cache_dir())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// Item 4: every vector of fixtures/ed25519-vectors.json gets the spec's verdict from the
/// single check, from a batch of its own, and from batches of any size around it.
pub fn signature_vectors_get_one_verdict_on_every_path() {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("ed25519-vectors.json")).unwrap(),
    )
    .unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 12);
    let honest = SigningKey::from_seed(&[0x33; 32]);
    let mut separated = 0;
    for x in vectors {
        let hex = |k: &str| keyledger::core::types::from_hex::<64>(x[k].as_str().unwrap());
        let pk_bytes: [u8; 32] =
            keyledger::core::types::from_hex(x["public_key"].as_str().unwrap()).unwrap();
        let pk = keyledger::core::types::PublicKey(Bytes(pk_bytes));
        let m = hex_vec(x["message"].as_str().unwrap());
        let s = hex("signature").unwrap();
        let want = x["zip215_valid"].as_bool().unwrap();
        let what = x["description"].as_str().unwrap();
        assert_eq!(
            keyledger::core::signing::verify_bytes(&pk, &m, &s),
            want,
            "single: {what}"
        );
        assert_eq!(
            keyledger::core::signing::key_problem(&pk).is_none(),
            x["key_acceptable"].as_bool().unwrap(),
            "key: {what}"
        );
        let point = curve25519_dalek::edwards::CompressedEdwardsY(pk_bytes)
            .decompress()
            .unwrap();
        let hpoint = curve25519_dalek::edwards::CompressedEdwardsY(*honest.public().bytes())
            .decompress()
            .unwrap();
        let hbytes = *honest.public().bytes();
        for before in [0usize, 1, 100, 255] {
            // Many times each: the batch's random coefficients must never change the verdict.
            for _ in 0..8 {
                let msgs: Vec<Vec<u8>> =
                    (0..before).map(|i| format!("m{i}").into_bytes()).collect();
                let sigs: Vec<[u8; 64]> = msgs.iter().map(|m| honest.sign_bytes(m)).collect();
                let mut items: Vec<keyledger::core::signing::BatchItem<'_>> = msgs
                    .iter()
                    .zip(&sigs)
                    .map(|(m, s)| (&hpoint, &hbytes, m.as_slice(), s))
                    .collect();
                items.insert(before / 2, (&point, &pk_bytes, &m, &s));
                assert_eq!(
                    keyledger::core::signing::verify_batch(&items),
                    want,
                    "batch of {}: {what}",
                    before + 1
                );
            }
        }
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk_bytes).unwrap();
        if want
            && vk
                .verify_strict(&m, &ed25519_dalek::Signature::from_bytes(&s))
                .is_err()
        {
            separated += 1;
        }
    }
    assert!(
        separated >= 5,
        "the vectors separate the rules ({separated} valid ones verify_strict refuses)"
    );
}

fn hex_vec(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Item 4: a signature with a mixed-order R by the key's own holder is one verdict (valid)
/// on every path, wherever it sits among other signatures, and does not jam the ledger.
pub fn a_mixed_order_signature_does_not_jam_or_flip() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("sig-mixed-order-r.ledger"),
        d.path().join("keyledger.ledger"),
    )
    .unwrap();
    keyfile::write_new(&key(1), &d.path().join("keyledger.key")).unwrap();
    let ok = |args: &[&str]| {
        let o = run_in(d.path(), args, None);
        assert_eq!(code(&o), 0, "{args:?}: {}{}", stdout(&o), stderr(&o));
        stdout(&o)
    };
    assert!(ok(&["verify"]).contains("result   OK"));
    ok(&["inspect", "2"]);
    assert!(ok(&["repair"]).contains("nothing to repair"));
    ok(&[
        "export",
        "--format",
        "bundle",
        "--out",
        "b",
        "--action",
        "user-created",
    ]);
    ok(&["verify-bundle", "b", "--trusted-key", "@keyledger.key.pub"]);
    ok(&["user", "create", "carol"]);
    assert!(ok(&["verify"]).contains("result   OK"));
    // Wherever it falls in the batches, and whatever follows it, the verdict holds.
    let a = secret_scalar(&[1; 32]);
    let ab = *key(1).public().bytes();
    for before in [0usize, 1, 254, 255, 300] {
        for after in [0usize, 1, 256] {
            let mut l = RawLedger::new();
            l.push(&key(1), genesis());
            for i in 0..before {
                l.push(
                    &key(1),
                    Action::AuthFailed {
                        key_id: format!("K{i}"),
                        reason: "r".into(),
                    },
                );
            }
            let ev = l.next(
                key(1).public(),
                Action::AuthFailed {
                    key_id: "T".into(),
                    reason: "torsion".into(),
                },
            );
            l.push_signed(&ev, |h| {
                sign_with(
                    a,
                    &ab,
                    &h.0,
                    nonce(&format!("{before}")),
                    torsion(3),
                    None,
                    None,
                )
            });
            for i in 0..after {
                l.push(
                    &key(1),
                    Action::AuthFailed {
                        key_id: format!("A{i}"),
                        reason: "r".into(),
                    },
                );
            }
            let p = d.path().join(format!("f{before}-{after}.ledger"));
            std::fs::write(&p, &l.bytes).unwrap();
            assert!(
                verify_file(&p, &Options::default()).unwrap().ok,
                "batched {before}/{after}"
            );
            assert!(
                verify_reader(&l.bytes[..], &Options::default()).unwrap().ok,
                "single {before}/{after}"
            );
        }
    }
}

/// Item 5: an outsider's bundle claiming the victim's ledger; and every cross-check.
pub fn outsider_bundles_are_untrusted_and_inconsistent_ones_fail() {
    let victim = W::new();
    victim.user("bob", &[]);
    let vstate = victim.json(&["verify"]);
    let vid = vstate["report"]["ledger_id"].as_str().unwrap().to_owned();
    let vgenesis = vstate["report"]["genesis_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let outsider = W::new();
    outsider.user("bob", &[]);
    outsider.ok(&["export", "--format", "bundle", "--out", "b"]);
    let b = outsider.path().join("b");
    let okey = load_key(&outsider, "keyledger.key");
    // Rewrite it as a bundle of the victim's ledger: a tree whose leaf 0 is the victim's
    // genesis, a checkpoint of it under the victim's origin, a manifest to match.
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(b.join("manifest.json")).unwrap()).unwrap();
    let frames = std::fs::read(b.join("events.frames")).unwrap();
    let mut leaves: Vec<_> = keyledger::core::format::FrameReader::at(&frames[..], 0)
        .map(|f| keyledger::core::chain::event_hash(&f.unwrap().body))
        .collect();
    leaves[0] = keyledger::core::types::Hash32::parse_hex(&vgenesis).unwrap();
    let tree = ProofTree::new(&leaves);
    let n = leaves.len() as u64;
    let origin = format!("keyledger/{vid}");
    let note = Checkpoint {
        origin: origin.clone(),
        size: n,
        root: tree.mth(0, n),
    }
    .sign(&okey);
    std::fs::write(b.join("checkpoint"), &note).unwrap();
    m["ledger_id"] = vid.clone().into();
    m["genesis_hash"] = vgenesis.clone().into();
    m["origin"] = origin.into();
    m["checkpoint"]["root"] = to_hex(&tree.mth(0, n)).into();
    m["genesis_proof"] = tree
        .inclusion_proof(0, n)
        .iter()
        .map(|p| to_hex(p))
        .collect::<Vec<_>>()
        .into();
    for e in m["events"].as_array_mut().unwrap() {
        let seq = e["seq"].as_u64().unwrap();
        e["hash"] = leaves[seq as usize].hex().into();
        e["proof"] = tree
            .inclusion_proof(seq, n)
            .iter()
            .map(|p| to_hex(p))
            .collect::<Vec<_>>()
            .into();
    }
    // Frame 0 is the outsider's genesis, whose hash is no longer leaf 0: drop it.
    let first_len = m["events"][0]["frame_len"].as_u64().unwrap() as usize;
    m["events"].as_array_mut().unwrap().remove(0);
    for e in m["events"].as_array_mut().unwrap() {
        let o = e["frame_offset"].as_u64().unwrap() - first_len as u64;
        e["frame_offset"] = o.into();
    }
    std::fs::write(b.join("events.frames"), &frames[first_len..]).unwrap();
    resign(&b, &mut m, &okey);
    let o = run_in(outsider.path(), &["verify-bundle", "b"], None);
    let out = stdout(&o) + &stderr(&o);
    assert_eq!(code(&o), 6, "{out}");
    assert!(
        out.contains("UNTRUSTED") && out.contains(&okey.public().to_string()),
        "{out}"
    );
    let v: Value = serde_json::from_str(&stdout(&run_in(
        outsider.path(),
        &["--json", "verify-bundle", "b"],
        None,
    )))
    .unwrap();
    assert_eq!(
        (v["valid"].as_bool(), v["trusted"].as_bool()),
        (Some(true), Some(false))
    );
    let vkey = victim.path().join("keyledger.key.pub");
    let o = run_in(
        outsider.path(),
        &[
            "verify-bundle",
            "b",
            "--trusted-key",
            &format!("@{}", vkey.display()),
        ],
        None,
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));

    // The victim's own bundle, then one inconsistency at a time (re-signed by the victim's
    // key, so only the cross-check can catch it).
    victim.ok(&["export", "--format", "bundle", "--out", "good"]);
    let vk = load_key(&victim, "keyledger.key");
    let trusted = format!("@{}", vkey.display());
    let check = |edit: &dyn Fn(&Path, &mut Value), want: &str| {
        let dir = victim.path().join("case");
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&victim.path().join("good"), &dir);
        let mut m: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        edit(&dir, &mut m);
        resign(&dir, &mut m, &vk);
        let o = run_in(
            victim.path(),
            &["verify-bundle", "case", "--trusted-key", &trusted],
            None,
        );
        assert_eq!(code(&o), 1, "{want}: {}", stdout(&o));
        assert!(stdout(&o).contains(want), "{want}: {}", stdout(&o));
    };
    let o = run_in(
        victim.path(),
        &["verify-bundle", "good", "--trusted-key", &trusted],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    check(
        &|d, _| std::fs::write(d.join("notes.txt"), "x").unwrap(),
        "extra",
    );
    check(&|_, m| m["origin"] = "keyledger/00".into(), "origin");
    check(
        &|_, m| m["ledger_id"] = m["ledger_id"].as_str().unwrap().to_uppercase().into(),
        "ledger_id",
    );
    check(
        &|_, m| m["genesis_hash"] = "ab".repeat(32).into(),
        "genesis",
    );
    let bob = std::fs::read_to_string(victim.path().join("bob.key.pub")).unwrap();
    check(
        &|_, m| {
            let k = serde_json::json!({"public_key": bob.trim(), "principal": "bob", "enrolled_by": "acme"});
            m["keys"].as_array_mut().unwrap().insert(0, k);
        },
        "keys[0]",
    );
    check(&|_, m| m["extra"] = 1.into(), "manifest");
    check(
        &|_, m| m["events"][1]["seq"] = m["events"][0]["seq"].clone(),
        "out of order",
    );
    check(
        &|_, m| m["events"].as_array_mut().unwrap().swap(0, 1),
        "does not start where",
    );
    check(
        &|_, m| {
            let e = &mut m["events"][1];
            e["frame_offset"] = (e["frame_offset"].as_u64().unwrap() + 1).into();
        },
        "does not start where",
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Rewrites manifest.json (with the files' hashes brought up to date) and signs it with `k`.
fn resign(dir: &Path, m: &mut Value, k: &SigningKey) {
    for name in ["README.txt", "checkpoint", "events.frames"] {
        if let Ok(data) = std::fs::read(dir.join(name)) {
            m["files"][name] = blake3::hash(&data).to_hex().to_string().into();
        }
    }
    let json = serde_json::to_vec_pretty(m).unwrap();
    let digest = blake3::derive_key(keyledger::evidence::export::MANIFEST_CONTEXT, &json);
    std::fs::write(dir.join("manifest.json"), &json).unwrap();
    std::fs::write(
        dir.join("manifest.sig"),
        format!("{}\n", to_hex(&k.sign_bytes(&digest))),
    )
    .unwrap();
}

/// Item 6: signers active at the checkpoint's size only; C2SP-exact parsing.
pub fn checkpoints_follow_c2sp_and_only_active_keys_sign() {
    let w = W::new();
    w.user("bob", &[]);
    w.ok(&["--key", "bob.key", "checkpoint", "--out", "bob.cp"]);
    let bob = load_key(&w, "bob.key");
    w.ok(&["signer", "revoke", "bob", &bob.public().to_string()]);
    // Made while bob's key could sign: still an anchor after its revocation.
    assert!(
        w.ok(&["verify", "--checkpoint", "bob.cp"])
            .contains("matches")
    );
    let head = w.json(&["verify"]);
    let n = head["report"]["events"].as_u64().unwrap();
    let id = head["report"]["ledger_id"].as_str().unwrap();
    let r = keyledger::storage::store::replay(&w.ledger(), &Cache::none(), None, |_| {}).unwrap();
    let cp = Checkpoint {
        origin: format!("keyledger/{id}"),
        size: n,
        root: r.tree.root(),
    };
    // Covering its own revocation: refused.
    std::fs::write(w.path().join("late.cp"), cp.sign(&bob)).unwrap();
    let out = w.fails(&["verify", "--checkpoint", "late.cp"], None, 1);
    assert!(
        out.contains("no signature by a key that may sign it"),
        "{out}"
    );
    // The account's, in every spelling of the size but the one C2SP allows.
    let acme = load_key(&w, "keyledger.key");
    let good = cp.sign(&acme);
    std::fs::write(w.path().join("good.cp"), &good).unwrap();
    w.ok(&["verify", "--checkpoint", "good.cp"]);
    for bad in [
        format!("0{n}"),
        format!("+{n}"),
        format!("{n} "),
        format!("{n}.0"),
    ] {
        let text = cp
            .body()
            .replacen(&format!("\n{n}\n"), &format!("\n{bad}\n"), 1);
        let mut note = text.clone();
        let sig = acme.sign_bytes(text.as_bytes());
        let mut blob =
            keyledger::evidence::checkpoint::key_hash(&cp.origin, &acme.public()).to_vec();
        blob.extend_from_slice(&sig);
        use base64::Engine;
        note.push_str(&format!(
            "\n\u{2014} {} {}\n",
            cp.origin,
            base64::engine::general_purpose::STANDARD.encode(blob)
        ));
        std::fs::write(w.path().join("bad.cp"), note).unwrap();
        let out = w.fails(&["verify", "--checkpoint", "bad.cp"], None, 1);
        assert!(out.contains("tree size"), "{bad:?}: {out}");
    }
    // Size 0 is a checkpoint too (the empty tree), signed by a key active after genesis.
    let zero = Checkpoint {
        origin: cp.origin.clone(),
        size: 0,
        root: keyledger::core::merkle::empty_root(),
    };
    std::fs::write(w.path().join("zero.cp"), zero.sign(&acme)).unwrap();
    w.ok(&["verify", "--checkpoint", "zero.cp"]);
}

/// Item 7: FIFOs, links and taken names beside a ledger and in the cache.
pub fn planted_files_are_never_followed_or_waited_on() {
    let w = W::new();
    w.user("bob", &[]);
    let cache = w.path().join("cache");
    let env = [("KEYLEDGER_CACHE_DIR", cache.to_str().unwrap())];
    let quick = |args: &[&str]| run_bounded(w.path(), &env, args, 10);
    // A FIFO where the old index lived: ignored.
    mkfifo(&w.path().join("keyledger.ledger.index"));
    assert_eq!(code(&quick(&["key", "list"])), 0);
    // A link planted at the cache's temporary name: never followed.
    let victim = w.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    let entry = format!("{}.verified", cache_stem(&w.ledger()));
    std::fs::remove_file(cache.join(&entry)).unwrap();
    std::os::unix::fs::symlink(&victim, cache.join(format!("{entry}.tmp"))).unwrap();
    assert_eq!(code(&quick(&["key", "list"])), 0);
    assert!(
        cache.join(&entry).is_file(),
        "the cache is written under a fresh name"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    // FIFOs where a ledger, a key file, a public key, a checkpoint or the writers' lock
    // should be: refused at once.
    mkfifo(&w.path().join("fifo"));
    for args in [
        &["--ledger", "fifo", "key", "list"][..],
        &["--ledger", "fifo", "verify"],
        &["--key", "fifo", "user", "create", "x"],
        &["user", "create", "x", "--public-key", "@fifo"],
        &["verify", "--checkpoint", "fifo"],
    ] {
        let o = quick(args);
        assert!((1..=5).contains(&code(&o)), "{args:?}: {}", stderr(&o));
    }
    let lock = w.path().join("keyledger.ledger.lock");
    std::fs::remove_file(&lock).unwrap();
    mkfifo(&lock);
    let o = quick(&["user", "create", "x"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("lock"), "{}", stderr(&o));
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    assert_eq!(code(&quick(&["user", "create", "x"])), 4);
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(code(&quick(&["user", "create", "x"])), 0);
    // A dangling link at the quarantine's name: repair moves on to a fresh name.
    let mut torn = std::fs::read(w.ledger()).unwrap();
    let offset = torn.len();
    torn.extend_from_slice(&[0, 0, 0, 90, 1, 2, 3]);
    std::fs::write(w.ledger(), &torn).unwrap();
    let target = w.path().join("nowhere");
    std::os::unix::fs::symlink(
        &target,
        w.path()
            .join(format!("keyledger.ledger.quarantine-{offset}")),
    )
    .unwrap();
    let o = quick(&["repair"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("quarantine-{offset}-1")),
        "{}",
        stdout(&o)
    );
    assert!(!target.exists(), "the link was not followed");
    // A FIFO inside a bundle.
    assert_eq!(
        code(&quick(&["export", "--format", "bundle", "--out", "b"])),
        0
    );
    std::fs::remove_file(w.path().join("b/README.txt")).unwrap();
    mkfifo(&w.path().join("b/README.txt"));
    assert_eq!(code(&quick(&["verify-bundle", "b"])), 1);
}

/// Item 8: a reader's lock on the ledger does not stop writers; the writers' lock is a
/// file readers cannot open.
pub fn readers_cannot_hold_the_writers_lock() {
    let w = W::new();
    let f = std::fs::File::open(w.ledger()).unwrap();
    f.lock().unwrap(); // an exclusive flock on a read-only descriptor
    let o = run_bounded(w.path(), &[], &["user", "create", "bob"], 10);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let t = Instant::now();
    assert_eq!(code(&run_bounded(w.path(), &[], &["key", "list"], 10)), 0);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "reads do not wait for a reader's lock"
    );
    drop(f);
    let lock = w.path().join("keyledger.ledger.lock");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&w.ledger()), 0o644);
    assert_eq!(
        mode(&lock) & 0o077,
        0,
        "only the ledger's writers may open its lock"
    );
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run_in(w.path(), &["user", "create", "carol"], None);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("lets in some who cannot write"),
        "{}",
        stderr(&o)
    );
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).unwrap();
    // As another user who can read the ledger: it may lock the ledger file, which stalls no
    // one, and cannot open the writers' lock at all.
    let root = effective_root();
    let setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !(root && setpriv) {
        eprintln!("NOTE: not root or no setpriv: the check as another user is skipped");
        return;
    }
    std::fs::set_permissions(w.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(args)
            .output()
            .unwrap()
    };
    let cannot = as_nobody(&["flock", "-n", lock.to_str().unwrap(), "true"]);
    assert!(!cannot.status.success(), "nobody opened the writers' lock");
    let mut holder = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "flock",
            "-x",
        ])
        .arg(w.ledger())
        .args(["sleep", "20"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = run_bounded(w.path(), &[], &["user", "create", "carol"], 10);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// Item 10: a secret or token pasted anywhere input is echoed is never repeated.
pub fn pasted_secrets_are_never_repeated() {
    let w = W::new();
    w.user("bob", &[]);
    let (_, secret) = w.key("keyledger.key", "bob", "svc");
    let token = {
        w.ok(&["user", "create", "fed", "--federated"]);
        let v = w.json(&["sts", "issue", "--user", "fed"]);
        v["security_token"].as_str().unwrap().to_owned()
    };
    let before = std::fs::read(w.ledger()).unwrap();
    for pasted in [secret.as_str(), token.as_str(), &secret[..30]] {
        let scenario = format!("replacing {pasted}");
        let cases: Vec<Vec<&str>> = vec![
            vec!["key", "show", pasted],
            vec!["key", "disable", pasted],
            vec!["key", "enable", pasted],
            vec!["key", "delete", pasted],
            vec!["log", "--key", pasted],
            vec!["export", "--format", "jsonl", "--out", "x", "--key", pasted],
            vec!["log", "--user", pasted],
            vec!["user", "create", pasted],
            vec!["user", "delete", pasted],
            vec!["grant", pasted, "admin"],
            vec![
                "key",
                "create",
                "--user",
                pasted,
                "--scenario",
                "s",
                "--confirm-necessary",
            ],
            vec![
                "key",
                "create",
                "--user",
                "bob",
                "--scenario",
                &scenario,
                "--confirm-necessary",
            ],
            vec!["sts", "issue", "--user", pasted],
            vec!["signer", "enroll", "bob", "--public-key", pasted],
            vec!["verify", "--expect-head", pasted],
            vec!["--ledger", pasted, "key", "list"],
            vec!["inspect", pasted],
            vec!["key", "show", "KLAK", pasted],
            vec!["audit", "--as-of", pasted],
            vec!["auth", pasted],
        ];
        for args in cases {
            let o = w.run(&args, Some(""));
            let all = stdout(&o) + &stderr(&o);
            assert_ne!(code(&o), 0, "{args:?}");
            assert!(!all.contains(&pasted[5..]), "{args:?} repeated it: {all}");
        }
    }
    assert_eq!(
        std::fs::read(w.ledger()).unwrap(),
        before,
        "nothing was recorded"
    );
}

fn median_ms(mut f: impl FnMut() -> Output) -> f64 {
    let mut v: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let o = f();
            assert_eq!(code(&o), 0, "{}", stderr(&o));
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[1]
}

/// Item 11: reads at 4× the principals take about 4× as long, not 16×.
pub fn reads_grow_no_worse_than_n_log_n() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let env = [("KEYLEDGER_CACHE_DIR", cache.to_str().unwrap())];
    let mut ratio = vec![];
    let start = Timestamp::parse("2025-01-01").unwrap();
    let mut times = vec![];
    for n in [6_000usize, 24_000] {
        let p = d.path().join(format!("p{n}.ledger"));
        keyledger::tools::synth::principals(&p, n, start).unwrap();
        keyledger::storage::store::head(&p, &Cache::at(&cache)).unwrap();
        let p = p.to_str().unwrap().to_owned();
        let t: Vec<f64> = [
            &["--json", "user", "list"][..],
            &["--json", "key", "list"],
            &["report", "credentials"],
            &["log", "--user", "user000001"],
        ]
        .iter()
        .map(|args| {
            let mut a = vec!["--ledger", p.as_str()];
            a.extend_from_slice(args);
            median_ms(|| run_env(d.path(), &env, &a, None))
        })
        .collect();
        times.push(t);
    }
    for (i, what) in ["user list", "key list", "report credentials", "log --user"]
        .iter()
        .enumerate()
    {
        let r = times[1][i] / times[0][i];
        eprintln!(
            "{what}: {:.0} ms at 6k principals, {:.0} ms at 24k: x{r:.1}",
            times[0][i], times[1][i]
        );
        ratio.push(r);
        assert!(
            r < 9.0,
            "{what} grew x{r:.1} for 4x the principals (quadratic would be x16)"
        );
    }
}

/// Item 12: once this user's cache vouches for a ledger, an append verifies only what came
/// after it.
pub fn appends_verify_only_what_the_cache_does_not_vouch_for() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.ledger");
    let s = keyledger::tools::synth::build(&p, 20_000, Timestamp::parse("2025-01-01").unwrap(), 9)
        .unwrap();
    keyfile::write_new(&s.account, &d.path().join("s.key")).unwrap();
    let cdir = d.path().join("cache");
    let cache = Cache::at(&cdir);
    let (_, f) = keyledger::storage::store::head(&p, &cache).unwrap();
    assert!(matches!(
        f,
        keyledger::storage::store::Freshness::Rebuilt(_)
    ));
    let env = [("KEYLEDGER_CACHE_DIR", cdir.to_str().unwrap())];
    for i in 0..3 {
        let o = run_env(
            d.path(),
            &env,
            &[
                "--ledger",
                "s.ledger",
                "--key",
                "s.key",
                "user",
                "create",
                &format!("n{i}"),
            ],
            None,
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    // The three appends each verified only the events after the cached head.
    assert_eq!(
        keyledger::storage::store::head(&p, &cache).unwrap().1,
        keyledger::storage::store::Freshness::Cached { verified: 3 }
    );
    let mut l = keyledger::storage::ledger::Ledger::open_with(
        &p,
        keyledger::storage::store::Wait::Block,
        &cache,
    )
    .unwrap();
    let now = l.head().time;
    for i in 0..300 {
        l.append(
            &s.account,
            Action::UserCreated {
                name: format!("m{i}"),
                federated: false,
            },
            now,
        )
        .unwrap();
    }
    drop(l);
    let (v, f) = keyledger::storage::store::head(&p, &cache).unwrap();
    match f {
        keyledger::storage::store::Freshness::Cached { verified } => {
            assert!(
                verified < keyledger::storage::store::CACHE_EVERY,
                "the cache was saved as the head moved: {verified}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(v.head.seq > 20_000);
    // And an append after a forged frame is still refused: the tail is always verified.
    let acme = load_key_at(&d.path().join("s.key"));
    let ev = keyledger::core::event::Event {
        factor: None,
        seq: v.head.seq + 1,
        time: v.head.time,
        prev: v.head.hash,
        signer: acme.public(),
        action: Action::UserCreated {
            name: "forged".into(),
            federated: false,
        },
        request: None,
    };
    append_frame(&p, &ev, |_| [7; 64]);
    let o = run_env(
        d.path(),
        &env,
        &[
            "--ledger", "s.ledger", "--key", "s.key", "user", "create", "late",
        ],
        None,
    );
    assert_eq!(code(&o), 4, "{}", stderr(&o));
}

fn load_key_at(p: &Path) -> SigningKey {
    keyfile::load(p).unwrap()
}

/// Item 1, on a ledger large enough for batched checks: one flipped signature deep inside
/// is named exactly by reads and appends (no cache), and by reads through a cache that
/// vouches only for a prefix before it.
pub fn a_bad_signature_deep_inside_is_named() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.ledger");
    let s = keyledger::tools::synth::build(&p, 20_000, Timestamp::parse("2025-01-01").unwrap(), 4)
        .unwrap();
    keyfile::write_new(&s.account, &d.path().join("s.key")).unwrap();
    let mut b = std::fs::read(&p).unwrap();
    let frames: Vec<_> = keyledger::core::format::FrameReader::new(&b[..])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let bad = 12_345usize;
    let at = frames[bad].end() as usize - 7;
    b[at] ^= 1;
    std::fs::write(&p, &b).unwrap();
    refused_without_cache(d.path(), bad as u64, "");
}

/// A read, a history and an append on `s.ledger` in `dir`, with no cache, each refuse
/// (exit 4) naming the event at `seq` (and saying `why`).
fn refused_without_cache(dir: &Path, seq: u64, why: &str) {
    let none = Path::new("/dev/null/no-cache");
    for args in [
        &["key", "list"][..],
        &["log"],
        &["--key", "s.key", "user", "create", "x"],
    ] {
        let mut a = vec!["--ledger", "s.ledger"];
        a.extend_from_slice(args);
        let o = run_env(
            dir,
            &[("KEYLEDGER_CACHE_DIR", none.to_str().unwrap())],
            &a,
            None,
        );
        let err = stderr(&o);
        assert_eq!(code(&o), 4, "{args:?}: {err}");
        assert!(
            err.contains(&format!("seq {seq} ")) && err.contains(why),
            "{args:?}: {err}"
        );
    }
}

/// Item 1 (found by attacking the first fix): a cut of events this user verified (or
/// appended) is noticed by every command and stays noticed: appends and auth refuse,
/// reads warn, verify and audit fail, until the user removes the cache files.
pub fn a_cut_of_verified_events_is_sticky() {
    for verify_first in [true, false] {
        let w = W::new();
        w.user("bob", &[]);
        let (id, secret) = w.key("keyledger.key", "bob", "ci");
        let size = std::fs::metadata(w.ledger()).unwrap().len();
        w.ok(&["key", "disable", &id]);
        if verify_first {
            w.ok(&["verify"]);
        }
        // Someone who can write the file, with no key, cuts the disable off.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(w.ledger())
            .unwrap();
        f.set_len(size).unwrap();
        drop(f);
        let before = std::fs::read(w.ledger()).unwrap();
        for _ in 0..2 {
            let out = w.fails(&["auth", &id], Some(&secret), 4);
            assert!(out.contains("cut or it was rewritten"), "{out}");
            w.fails(&["user", "create", "carol"], None, 4);
            let o = w.run(&["key", "list"], None);
            assert_eq!(code(&o), 0);
            assert!(
                stderr(&o).contains("no longer holds"),
                "reads warn: {}",
                stderr(&o)
            );
            let out = w.fails(&["verify"], None, 1);
            assert!(out.contains("no longer holds"), "{out}");
            w.fails(&["audit"], None, 1);
        }
        assert_eq!(
            std::fs::read(w.ledger()).unwrap(),
            before,
            "nothing was appended"
        );
        // Resolved by removing this user's cache files for the ledger.
        let name = cache_stem(&w.ledger());
        for ext in ["verified", "head"] {
            let _ = std::fs::remove_file(test_cache_dir().join(format!("{name}.{ext}")));
        }
        w.ok(&["user", "create", "carol"]);
    }
}

/// Item 1/2 (found by attacking the first fix): the signature bytes of an event the cache
/// vouches for, overwritten later, are never shown or exported as if they verified.
pub fn overwritten_signatures_are_never_shown_or_exported() {
    let w = W::new();
    w.user("bob", &[]);
    let (id, _) = w.key("keyledger.key", "bob", "ci");
    w.ok(&["verify"]);
    let mut b = std::fs::read(w.ledger()).unwrap();
    let frames: Vec<_> = keyledger::core::format::FrameReader::new(&b[..])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let f2 = &frames[2];
    let end = f2.end() as usize;
    b[end - 64..end].copy_from_slice(&[0x41; 64]);
    std::fs::write(w.ledger(), &b).unwrap();
    for args in [
        &["inspect", "2"][..],
        &["export", "--format", "jsonl", "--out", "e.jsonl"],
        &["export", "--format", "csv", "--out", "e.csv"],
        &[
            "export",
            "--format",
            "bundle",
            "--out",
            "bun",
            "--action",
            "signer-enrolled",
        ],
    ] {
        let out = w.fails(args, None, 4);
        assert!(out.contains("seq 2 "), "{args:?}: {out}");
    }
    assert!(!w.path().join("bun").exists() && !w.path().join("e.jsonl").exists());
    let _ = id;
}

/// Item 1 (found by attacking the first fix): with signatures checked in batches, an event
/// folded before its batch was judged could make a later honest event look guilty; the
/// event named is the first bad one.
pub fn a_forged_event_is_named_not_its_victim() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.ledger");
    let s = keyledger::tools::synth::build(&p, 12_000, Timestamp::parse("2025-01-01").unwrap(), 6)
        .unwrap();
    keyfile::write_new(&s.account, &d.path().join("s.key")).unwrap();
    let bob = SigningKey::from_seed(&[0xb0; 32]);
    let mut last = keyledger::storage::store::replay(&p, &Cache::none(), None, |_| {})
        .unwrap()
        .head;
    let mut push = |action: Action, by: &SigningKey, forge: bool| {
        let ev = keyledger::core::event::Event {
            factor: None,
            seq: last.seq + 1,
            time: last.time,
            prev: last.hash,
            signer: by.public(),
            action,
            request: None,
        };
        let h = append_frame(
            &p,
            &ev,
            |h| if forge { [0x11; 64] } else { by.sign_hash(h) },
        );
        last = keyledger::core::chain::Head {
            seq: ev.seq,
            hash: h,
            time: ev.time,
            end: 0,
        };
        ev.seq
    };
    push(
        Action::UserCreated {
            name: "bob".into(),
            federated: false,
        },
        &s.account,
        false,
    );
    push(
        Action::SignerEnrolled {
            principal: "bob".into(),
            public_key: bob.public(),
        },
        &s.account,
        false,
    );
    let forged = push(Action::UserDeleted { name: "bob".into() }, &s.account, true);
    push(
        Action::ActionDenied {
            attempted: "x".into(),
            user: None,
            key_id: None,
            reason: "r".into(),
        },
        &bob,
        false,
    );
    refused_without_cache(d.path(), forged, "signature");
}

/// Items 9 and 10 (found by attacking the first fix): a newline in recorded or bundled text
/// never starts a line; a secret in a path argument is refused before anything echoes it.
pub fn no_forged_lines_and_no_secrets_in_arguments() {
    let w = W::new();
    w.user("bob", &[]);
    w.ok(&["export", "--format", "bundle", "--out", "b"]);
    let b = w.path().join("b");
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(b.join("manifest.json")).unwrap()).unwrap();
    m["selection"] = "all\nbundle OK: forged line".into();
    resign(&b, &mut m, &load_key(&w, "keyledger.key"));
    let o = w.run(&["verify-bundle", "b"], None);
    assert_eq!(code(&o), 6);
    assert!(
        !stdout(&o).lines().any(|l| l.starts_with("bundle OK")),
        "{}",
        stdout(&o)
    );
    let secret = fixed_secret('p');
    let s = secret.expose();
    for args in [
        vec!["keygen", "--out", s],
        vec!["export", "--format", "jsonl", "--out", s],
        vec!["checkpoint", "--out", s],
        vec!["--ledger", s, "init", "--account", "zz"],
        vec![
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "x",
            "--confirm-necessary",
            "--csv",
            s,
        ],
    ] {
        let out = w.fails(&args, None, 2);
        assert!(
            !out.contains(&s[5..]) && out.contains("command line"),
            "{args:?}: {out}"
        );
        assert!(!w.path().join(s).exists());
    }
    for var in ["KEYLEDGER_CACHE_DIR", "XDG_CACHE_HOME", "HOME"] {
        let o = run_env(w.path(), &[(var, s)], &["key", "list"], None);
        let out = stdout(&o) + &stderr(&o);
        assert_eq!(code(&o), 2, "{var}: {out}");
        assert!(!out.contains(&s[5..]) && out.contains(var), "{var}: {out}");
    }
    // A --csv path that cannot be recorded is refused before the key exists.
    let long = format!("{}/{}.csv", w.path().display(), "d".repeat(1100));
    let before = w.json(&["key", "list"])["keys"].as_array().unwrap().len();
    w.fails(
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "x",
            "--confirm-necessary",
            "--csv",
            &long,
        ],
        None,
        2,
    );
    assert_eq!(
        w.json(&["key", "list"])["keys"].as_array().unwrap().len(),
        before,
        "no key was created"
    );
}

/// Item 8 (found by attacking the first fix): the writers' lock gets the ledger's group and
/// exactly the writers' mode whatever the umask, and any writer may have created it.
pub fn the_lock_follows_the_ledgers_writers() {
    let w = W::new();
    let lock = w.path().join("keyledger.ledger.lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::set_permissions(w.ledger(), std::fs::Permissions::from_mode(0o664)).unwrap();
    w.ok(&["user", "create", "bob"]);
    let m = std::fs::metadata(&lock).unwrap();
    let l = std::fs::metadata(w.ledger()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        m.mode() & 0o777,
        0o660,
        "group writers may lock, others may not open it"
    );
    assert_eq!(m.gid(), l.gid());
}

/// Item 1 (found by attacking the second fix): another ledger copied over the one this user
/// verified, with its own account key, is a replacement: appends refuse, reads warn,
/// verify fails. Nothing is appended to it.
pub fn a_replaced_ledger_is_noticed() {
    let w = W::new();
    w.user("bob", &[]);
    w.ok(&["verify"]);
    let other = W::new();
    std::fs::copy(other.ledger(), w.ledger()).unwrap();
    std::fs::copy(
        other.path().join("keyledger.key"),
        w.path().join("keyledger.key"),
    )
    .unwrap();
    let before = std::fs::read(w.ledger()).unwrap();
    let out = w.fails(&["user", "create", "carol"], None, 4);
    assert!(out.contains("another ledger"), "{out}");
    let o = w.run(&["key", "list"], None);
    assert_eq!(code(&o), 0);
    assert!(stderr(&o).contains("another ledger"), "{}", stderr(&o));
    let out = w.fails(&["verify"], None, 1);
    assert!(out.contains("another ledger"), "{out}");
    assert_eq!(std::fs::read(w.ledger()).unwrap(), before);
    // `init` at a path whose ledger was removed on purpose starts afresh.
    std::fs::remove_file(w.ledger()).unwrap();
    for f in ["keyledger.key", "keyledger.key.pub"] {
        std::fs::remove_file(w.path().join(f)).unwrap();
    }
    w.ok(&["init", "--account", "acme"]);
    w.ok(&["user", "create", "carol"]);
}

/// Item 8 (found by attacking the second fix): every name of the ledger takes one lock; a
/// ledger with several hard links is refused for writing; a lock planted by another user
/// is refused.
pub fn every_name_of_the_ledger_takes_one_lock() {
    let w = W::new();
    let lock = w.path().join("keyledger.ledger.lock");
    let alias = w.path().join("alias.ledger");
    std::os::unix::fs::symlink(w.ledger(), &alias).unwrap();
    let via_alias = ["--ledger", "alias.ledger", "--key", "keyledger.key"];
    let held = std::fs::File::open(&lock).unwrap();
    held.lock().unwrap();
    let before = std::fs::read(w.ledger()).unwrap();
    let args: Vec<&str> = via_alias
        .iter()
        .copied()
        .chain(["--no-wait", "user", "create", "bob"])
        .collect();
    let o = run_bounded(w.path(), &[], &args, 10);
    assert_eq!(
        code(&o),
        4,
        "the alias waits for the same lock: {}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(w.ledger()).unwrap(), before);
    drop(held);
    let o = run_bounded(w.path(), &[], &args, 10);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!w.path().join("alias.ledger.lock").exists());

    let hard = w.path().join("hard.ledger");
    std::fs::hard_link(w.ledger(), &hard).unwrap();
    let out = w.fails(&["user", "create", "carol"], None, 4);
    assert!(out.contains("hard links"), "{out}");
    std::fs::remove_file(&hard).unwrap();
    w.ok(&["user", "create", "carol"]);

    let root = effective_root();
    if !root {
        eprintln!("NOTE: not root: the check of a lock owned by another user is skipped");
        return;
    }
    std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = w.fails(&["user", "create", "dave"], None, 4);
    assert!(out.contains("owned by uid 65534"), "{out}");
    std::fs::remove_file(&lock).unwrap();

    // A lock planted before `init` in a directory anyone can write: init is refused, is
    // warned of the directory, and leaves neither a ledger nor its account key behind.
    let shared = w.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = shared.join("team.ledger.lock");
    std::fs::write(&planted, b"").unwrap();
    std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
    let o = run_bounded(
        w.path(),
        &[],
        &[
            "--ledger",
            "shared/team.ledger",
            "init",
            "--account",
            "acme",
        ],
        10,
    );
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("can be written by anyone"),
        "{}",
        stderr(&o)
    );
    let left: Vec<_> = std::fs::read_dir(&shared)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("team.ledger.lock")]);

    // A ledger file bind-mounted on its own (into a container, say) would be locked by
    // another name there: writing through it is refused.
    if Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("NOTE: no unshare: the bind-mount check is skipped");
        return;
    }
    let inside = w.path().join("inside");
    std::fs::create_dir(&inside).unwrap();
    std::fs::write(inside.join("m.ledger"), b"").unwrap();
    let before = std::fs::read(w.ledger()).unwrap();
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount --bind keyledger.ledger inside/m.ledger && exec \"$0\" --ledger inside/m.ledger --key keyledger.key user create erin",
        ])
        .arg(bin())
        .current_dir(w.path())
        .env("KEYLEDGER_CACHE_DIR", test_cache_dir())
        .env_remove("KEYLEDGER_NOW")
        .output()
        .unwrap();
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("mounted on its own"), "{}", stderr(&o));
    assert_eq!(std::fs::read(w.ledger()).unwrap(), before);
}

fn effective_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Item 3 (found by attacking the second fix): `user delete --delete-keys` by someone who
/// may not delete the user deletes none of the user's keys on the way to being refused.
pub fn a_refused_user_deletion_deletes_no_keys() {
    let w = W::new();
    w.user("bob", &[]);
    w.user("mallory", &["manage-keys"]);
    w.key("keyledger.key", "bob", "ci");
    let keys = |w: &W| {
        w.json(&["key", "list", "--user", "bob"])["keys"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(keys(&w), 1);
    let out = w.fails(
        &[
            "--key",
            "mallory.key",
            "user",
            "delete",
            "bob",
            "--delete-keys",
        ],
        None,
        3,
    );
    assert!(out.contains("Recorded as action-denied"), "{out}");
    assert!(
        !w.ok(&["log"]).contains("key-deleted"),
        "no key was deleted"
    );
    assert_eq!(keys(&w), 1);
    w.fails(&["user", "delete", "acme", "--delete-keys"], None, 3);
    w.ok(&["user", "delete", "bob", "--delete-keys"]);

    // A user already deleted (its temporary key had expired, so it could be) keeps that
    // key: deleting it again is refused, and deletes nothing on the way.
    let d = tempfile::tempdir().unwrap();
    let past = Timestamp::now()
        .plus_micros(-3 * 3600 * 1_000_000)
        .to_string();
    let at = |now: Option<&str>, args: &[&str]| {
        let env: Vec<(&str, &str)> = now.map(|t| ("KEYLEDGER_NOW", t)).into_iter().collect();
        let o = run_env(d.path(), &env, args, None);
        (code(&o), stdout(&o) + &stderr(&o))
    };
    for args in [
        &["init", "--account", "acme"][..],
        &["user", "create", "partner", "--federated"],
        &["sts", "issue", "--user", "partner", "--duration", "15m"],
    ] {
        assert_eq!(at(Some(&past), args).0, 0, "{args:?}");
    }
    assert_eq!(at(None, &["user", "delete", "partner"]).0, 0);
    let (c, out) = at(None, &["user", "delete", "partner", "--delete-keys"]);
    assert_eq!(c, 3, "{out}");
    assert!(out.contains("was deleted at seq"), "{out}");
    let (_, log) = at(None, &["log"]);
    assert!(!log.contains("key-deleted"), "{log}");
}

/// Item 9 (found by attacking the second fix): `log --follow` stops with exit 4 at bytes
/// that cannot be framed (other than a frame still being written), rather than waiting
/// forever in silence.
pub fn following_stops_at_bytes_that_cannot_be_framed() {
    let w = W::new();
    let mut c = Command::new(bin());
    c.current_dir(w.path())
        .args(["log", "--follow"])
        .env_remove("KEYLEDGER_NOW")
        .env("KEYLEDGER_CACHE_DIR", test_cache_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(w.ledger())
        .unwrap();
    std::io::Write::write_all(&mut f, &[0xff; 64]).unwrap();
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("log --follow kept waiting at bytes that cannot be framed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("byte offset"), "{}", stderr(&o));
}

/// Item 7 (found by attacking the second fix): a cache directory others could change is
/// not used, and the user is told once why.
pub fn an_unsafe_cache_directory_is_named() {
    let w = W::new();
    let shared = w.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let dir = shared.join("cache");
    let o = run_bounded(
        w.path(),
        &[("KEYLEDGER_CACHE_DIR", dir.to_str().unwrap())],
        &["key", "list"],
        10,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("not using the cache").count(), 1, "{err}");
    assert!(err.contains("writable by others"), "{err}");
    assert!(
        !dir.exists(),
        "nothing is created under a directory others can write"
    );
}

/// Item 1 (found by attacking the second fix): two commands of one user finishing in either
/// order leave the further head noted: the note never moves back on one ledger, and never
/// to another ledger (another genesis) but through `init` (`Cache::start_over`).
pub fn the_head_note_only_moves_forward() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::at(d.path().join("cache"));
    let ledger = d.path().join("x.ledger");
    let head = |seq: u64| keyledger::core::chain::Head {
        seq,
        hash: Bytes([seq as u8; 32]),
        time: Timestamp::now(),
        end: 100 * seq,
    };
    let (g, other) = (Bytes([1; 32]), Bytes([2; 32]));
    cache.save_head(&ledger, g, &head(5), 400).unwrap();
    cache.save_head(&ledger, g, &head(3), 200).unwrap();
    let (noted_g, noted, off) = cache.load_head(&ledger).unwrap();
    assert_eq!((noted_g, noted.seq, off), (g, 5, 400));
    assert!(cache.save_head(&ledger, other, &head(9), 900).is_err());
    let (noted_g, noted, _) = cache.load_head(&ledger).unwrap();
    assert_eq!(
        (noted_g, noted.seq),
        (g, 5),
        "never moved to another ledger"
    );
}

/// Item 1 (found by attacking the third fix): `verify` judges the very bytes it read
/// against the head this user verified before, and never adopts another ledger as that
/// path's: another ledger, read in a race with a check that saw the right one, was saved
/// as verified and stayed so.
pub fn verify_never_adopts_another_ledger() {
    let w = W::new();
    w.user("bob", &[]);
    w.ok(&["verify"]);
    let other = W::new();
    let cache = Cache::at(test_cache_dir());
    let witness = cache.witness(&w.ledger()).expect("a head verified here");
    // The other ledger's bytes, judged against this path's witness: a finding, nothing kept.
    let opts = keyledger::evidence::verify::Options {
        witness: Some(witness),
        ..Default::default()
    };
    let (report, kept) =
        keyledger::evidence::verify::verify_file_full(&other.ledger(), &opts, true).unwrap();
    assert!(!report.ok && kept.is_none());
    assert!(
        report.findings[0].message.contains("another ledger"),
        "{:?}",
        report.findings
    );
    // Nor can a verified state of the other ledger be saved over this path's.
    let (_, theirs) =
        keyledger::evidence::verify::verify_file_full(&other.ledger(), &Default::default(), true)
            .unwrap();
    assert!(cache.save(&w.ledger(), &theirs.unwrap()).is_err());
    assert_eq!(cache.witness(&w.ledger()), Some(witness));
    // A cut is judged the same way: the head verified is missing from what was read.
    let (_, mine) =
        keyledger::evidence::verify::verify_file_full(&w.ledger(), &opts, true).unwrap();
    assert!(mine.is_some());
    let f0 = keyledger::core::format::FrameReader::new(&std::fs::read(w.ledger()).unwrap()[..])
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let cut = w.path().join("cut.ledger");
    std::fs::write(
        &cut,
        &std::fs::read(w.ledger()).unwrap()[..f0.end() as usize],
    )
    .unwrap();
    let (report, kept) = keyledger::evidence::verify::verify_file_full(&cut, &opts, true).unwrap();
    assert!(!report.ok && kept.is_none());
    assert!(
        report.findings[0].message.contains("no longer holds"),
        "{:?}",
        report.findings
    );
}

/// Item 7 (found by attacking the third fix): with no /proc, ownership is still checked
/// (a cache directory of another user's was trusted), and a signing key file must be the
/// user's own (one planted by another user signed in its owner's name).
pub fn ownership_is_checked_without_proc_and_of_keys() {
    if !effective_root() || Command::new("unshare").arg("--version").output().is_err() {
        eprintln!(
            "NOTE: not root or no unshare: the checks without /proc and as another user are skipped"
        );
        return;
    }
    let w = W::new();
    let theirs = w.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = Command::new("unshare")
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /proc && exec \"$0\" key list",
        ])
        .arg(bin())
        .current_dir(w.path())
        .env("KEYLEDGER_CACHE_DIR", &theirs)
        .env_remove("KEYLEDGER_LEDGER")
        .env_remove("KEYLEDGER_KEY")
        .env_remove("KEYLEDGER_NOW")
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not using the cache"),
        "a directory of uid 65534 is not this user's: {}",
        stderr(&o)
    );
    let key = w.path().join("keyledger.key");
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).unwrap();
    let out = w.fails(&["user", "create", "bob"], None, 2);
    assert!(out.contains("belongs to uid 65534"), "{out}");
    std::os::unix::fs::chown(&key, Some(0), Some(0)).unwrap();
    w.ok(&["user", "create", "bob"]);
}

/// Round 4: a batched replay visits events before their batch of signatures is judged. If
/// the file is cut back between that read and the one-at-a-time re-read that names the bad
/// event, the re-read passes; what was visited must still not come back as an answer.
pub fn events_visited_before_a_failed_batch_never_come_back() {
    let w = W::new();
    w.user("bob", &[]);
    let acme = load_key(&w, "keyledger.key").public();
    let p = w.ledger();
    let honest_len = std::fs::metadata(&p).unwrap().len();
    let forged = w.append_raw(
        acme,
        Action::UserCreated {
            name: "mallory".into(),
            federated: false,
        },
        None,
        |_| [0x42; 64],
    );
    let f = std::fs::File::open(&p).unwrap();
    let len = f.metadata().unwrap().len();
    let mut seen_forged = false;
    let r = keyledger::storage::store::replay_open(&p, &f, len, None, None, None, |seen| {
        if seen.event.seq == forged {
            seen_forged = true;
            // The attacker puts the honest file back before the re-read.
            let g = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            g.set_len(honest_len).unwrap();
        }
    });
    assert!(
        seen_forged,
        "the batched pass visits the forged event first"
    );
    let Err(e) = r else {
        panic!("a replay that visited a forged event must not succeed")
    };
    assert!(
        matches!(
            e,
            keyledger::storage::store::StoreError::ChangedWhileRead { .. }
        ),
        "{e}"
    );
}
