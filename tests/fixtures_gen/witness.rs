//! Fixtures for witnesses (ledger-format.md §9.4), fork proofs (§9.5) and tiles (§9.6):
//! checkpoints of `valid.ledger` with cosignature lines, each built to pass or break one
//! rule; fork proofs with the verdict of `witness check-fork`; and the tiles of a ledger
//! of 300 events, which `keyledger tiles` must reproduce byte for byte.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keyledger::core::event::Action;
use keyledger::core::merkle::ProofTree;
use keyledger::core::types::{Bytes, Hash32};
use keyledger::evidence::checkpoint::{self, Checkpoint};
use keyledger::evidence::cosign::{self, COSIGNATURE_TYPE, ED25519_TYPE, ForkProof};
use serde_json::{Value, json};

use super::common::*;
use super::verdict;

/// The fixtures' witnesses: name and key seed.
pub const WITNESSES: [(&str, u8); 3] = [
    ("witness.example/w1", 20),
    ("witness.example/w2", 21),
    ("witness.example/w3", 22),
];

/// Witness `i`'s verifier key (type 0x04).
pub fn vkey(i: usize) -> String {
    let (name, seed) = WITNESSES[i];
    cosign::vkey(name, &key(seed).public())
}

/// POSIX seconds of event `i` of a fixture script (T0 + i minutes).
fn secs_of(i: usize) -> u64 {
    (time_of(i).0 / 1_000_000) as u64
}

/// Witness `i`'s cosignature line on note text `text` at `time`.
pub fn line(i: usize, text: &str, time: u64) -> String {
    let (name, seed) = WITNESSES[i];
    cosign::cosign(&key(seed), name, text, time)
}

/// `line` with its signature's last byte changed.
fn broken(line: &str) -> String {
    let (head, b64) = line.trim_end().rsplit_once(' ').unwrap();
    let mut blob = B64.decode(b64).unwrap();
    *blob.last_mut().unwrap() ^= 1;
    format!("{head} {}\n", B64.encode(blob))
}

/// Witness `i`'s signature at `time`, under a key ID made with type byte `ty` (the right
/// one is 0x04).
fn with_key_id_type(i: usize, text: &str, time: u64, ty: u8) -> String {
    let (name, seed) = WITNESSES[i];
    let k = key(seed);
    let mut blob = checkpoint::key_id_of(ty, name, &k.public()).to_vec();
    blob.extend_from_slice(&time.to_be_bytes());
    blob.extend_from_slice(&k.sign_bytes(cosign::signed_message(text, time).as_bytes()));
    format!("\u{2014} {name} {}\n", B64.encode(blob))
}

/// acme's (key 1) checkpoint of the first `n` of `hashes`, and its note text.
fn acme_note(hashes: &[Hash32], n: usize) -> (String, String) {
    let cp = Checkpoint {
        origin: checkpoint::origin(&Bytes(LEDGER_ID)),
        size: n as u64,
        root: keyledger::core::merkle::root_of(&hashes[..n]),
    };
    (cp.sign(&key(1)), cp.body())
}

/// Checkpoints of `valid.ledger` (event hashes `hashes`) with witness cosignatures, and
/// their verdicts under `verify --checkpoint F --witness-key …`.
pub fn witnessed_checkpoints(hashes: &[Hash32]) -> Vec<(String, Vec<u8>, Value)> {
    let n = hashes.len();
    assert!(n > 12, "the backdating cases need more than 12 events");
    let (note, text) = acme_note(hashes, n);
    // After the last event: an honest cosignature time.
    let fresh = secs_of(n - 1) + 60;
    let (w1, w2, w3) = (vkey(0), vkey(1), vkey(2));
    let cp = |f: &str, extra: &[&str]| -> Vec<String> {
        let mut a = vec!["--checkpoint".to_owned(), f.to_owned()];
        for v in extra {
            a.extend(["--witness-key".to_owned(), v.to_string()]);
        }
        a
    };
    let with_quorum = |mut a: Vec<String>, q: &str| {
        a.extend(["--quorum".to_owned(), q.to_owned()]);
        a
    };
    let two = format!("{note}{}{}", line(0, &text, fresh), line(1, &text, fresh));
    // (file, note, [(args, exit, first_seq, problems, what)])
    type Case = (Vec<String>, i32, Option<u64>, Vec<&'static str>, String);
    let mut cases: Vec<(&str, String, Vec<Case>)> = vec![(
        "witnessed.checkpoint",
        two.clone(),
        vec![
            (
                cp("witnessed.checkpoint", &[&w1, &w2]),
                0,
                None,
                vec![],
                "cosigned by w1 and w2 after the last event; both trusted, quorum 2 (the default: every witness given)".into(),
            ),
            (
                with_quorum(cp("witnessed.checkpoint", &[&w1, &w2, &w3]), "2"),
                0,
                None,
                vec![],
                "cosigned by w1 and w2; w1, w2 and w3 trusted, quorum 2".into(),
            ),
            (
                cp("witnessed.checkpoint", &[&w1, &w2, &w3]),
                1,
                None,
                vec!["anchor"],
                "cosigned by w1 and w2; w1, w2 and w3 trusted, quorum 3 (the default): fewer than the quorum".into(),
            ),
            (
                cp("witnessed.checkpoint", &[&w3]),
                1,
                None,
                vec!["anchor"],
                "cosigned by w1 and w2; only w3 trusted: lines by witnesses not trusted count for nothing".into(),
            ),
        ],
    )];
    cases.push((
        "witness-bad-cosignature.checkpoint",
        format!("{note}{}{}", broken(&line(0, &text, fresh)), line(1, &text, fresh)),
        vec![
            (
                with_quorum(cp("witness-bad-cosignature.checkpoint", &[&w1, &w2]), "1"),
                1,
                None,
                vec!["anchor"],
                "w1's line does not verify, w2's does; both trusted, quorum 1: a trusted witness's line that fails rejects the checkpoint".into(),
            ),
            (
                cp("witness-bad-cosignature.checkpoint", &[&w2]),
                0,
                None,
                vec![],
                "w1's line does not verify, w2's does; only w2 trusted: the line of a witness not trusted is ignored".into(),
            ),
        ],
    ));
    cases.push((
        "witness-twice.checkpoint",
        format!("{note}{}{}", line(0, &text, fresh), line(0, &text, fresh + 1)),
        vec![(
            cp("witness-twice.checkpoint", &[&w1, &w2]),
            1,
            None,
            vec!["anchor"],
            "two valid lines by w1 (two times); w1 and w2 trusted, quorum 2: one witness counts once".into(),
        )],
    ));
    cases.push((
        "witness-key-id-0x01.checkpoint",
        format!("{note}{}", with_key_id_type(0, &text, fresh, ED25519_TYPE)),
        vec![(
            cp("witness-key-id-0x01.checkpoint", &[&w1]),
            1,
            None,
            vec!["anchor"],
            "w1's valid cosignature under a key ID computed with type byte 0x01 instead of 0x04: not w1's line".into(),
        )],
    ));
    cases.push((
        "witness-time-zero.checkpoint",
        format!("{note}{}", with_key_id_type(0, &text, 0, COSIGNATURE_TYPE)),
        vec![(
            cp("witness-time-zero.checkpoint", &[&w1]),
            1,
            None,
            vec!["anchor"],
            "w1's line signed over `time 0`: a timestamp of 0 is not valid, so a trusted witness's line fails".into(),
        )],
    ));
    // w1 cosigned 5 minutes before event 10's time, w2 after the last event. The bound is
    // the quorum-th earliest time: events 11 onwards are after w1's time plus the skew
    // (event 10 is exactly at it, which is allowed), but not after w2's.
    let early = secs_of(10) - 300;
    let backdated = "witness-backdated.checkpoint";
    cases.push((
        backdated,
        format!("{note}{}{}", line(0, &text, early), line(1, &text, fresh)),
        vec![
            (
                cp(backdated, &[&w1]),
                1,
                Some(11),
                vec!["time"],
                "w1 cosigned 5 minutes before event 10's time; w1 trusted, quorum 1: every event from 11 on is dated more than 5 minutes after the cosignature".into(),
            ),
            (
                with_quorum(cp(backdated, &[&w1, &w2]), "1"),
                1,
                Some(11),
                vec!["time"],
                "as above with w2's later cosignature too; w1 and w2 trusted, quorum 1: the bound is the earliest time".into(),
            ),
            (
                cp(backdated, &[&w1, &w2]),
                0,
                None,
                vec![],
                "as above, quorum 2: the bound is the second earliest time (w2's), so w1 alone cannot accuse the log".into(),
            ),
            (
                cp(backdated, &[&w2]),
                0,
                None,
                vec![],
                "as above, only w2 trusted: the untrusted w1's time bounds nothing".into(),
            ),
        ],
    ));
    // A checkpoint of the first 12 events cosigned just after event 11: later events are
    // not covered, so their times are not bounded.
    let (note12, text12) = acme_note(hashes, 12);
    cases.push((
        "witness-12-events.checkpoint",
        format!("{note12}{}", line(0, &text12, secs_of(11) - 300)),
        vec![(
            cp("witness-12-events.checkpoint", &[&w1]),
            0,
            None,
            vec![],
            "a checkpoint of the first 12 events, cosigned by w1 5 minutes before event 11's time: the events it covers are within the bound, the later ones are not covered".into(),
        )],
    ));
    let mut out = vec![];
    for (file, note, vs) in cases {
        for (args, exit, first_seq, problems, what) in vs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let v = verdict(
                &format!("valid.ledger against a witnessed checkpoint: {what}"),
                &args,
                exit,
                first_seq,
                &problems,
            );
            out.push((file.to_owned(), note.clone().into_bytes(), v));
        }
    }
    out
}

/// Fork proofs (§9.5) about `valid.ledger`'s log keys (acme's, key 1, and bob's, key 3)
/// and their verdicts under `witness check-fork PROOF --vkey VKEY…`: files (path under
/// fixtures/, bytes) and verdicts {proof, vkeys, exit, description}.
pub fn fork_proofs(hashes: &[Hash32]) -> (Vec<(String, Vec<u8>)>, Vec<Value>) {
    let n = hashes.len();
    let origin = checkpoint::origin(&Bytes(LEDGER_ID));
    let log = checkpoint::verifier_key(&origin, &key(1).public());
    let bob = checkpoint::verifier_key(&origin, &key(3).public());
    let honest = ProofTree::new(hashes);
    // Another history: event 3's hash replaced.
    let mut other = hashes.to_vec();
    other[3] = Bytes([0xab; 32]);
    let forked = ProofTree::new(&other);
    let note = |tree: &ProofTree, size: u64, signer: u8| {
        Checkpoint {
            origin: origin.clone(),
            size,
            root: tree.mth(0, size),
        }
        .sign(&key(signer))
    };
    let m = 10u64;
    let proof = |a: String, b: String, tree: &ProofTree, m: u64, n: u64| ForkProof {
        a: a.into_bytes(),
        b: b.into_bytes(),
        b_root_at_a_size: tree.mth(0, m),
        proof: tree.consistency_proof(m, n),
    };
    let n64 = n as u64;
    let fork = proof(note(&honest, m, 1), note(&forked, n64, 1), &forked, m, n64);
    let mut wrong_root = fork.clone();
    wrong_root.b_root_at_a_size = honest.mth(0, m);
    let both = format!("{log}\n{bob}");
    // fork.proof with a byte that is not UTF-8 in an extension line of note A.
    let mut not_utf8 = fork.clone();
    let a = not_utf8.a.clone();
    let cut = a.windows(2).position(|w| w == b"\n\n").unwrap() + 1;
    not_utf8.a = [&a[..cut], b"\xff\n", &a[cut..]].concat();
    let cases: Vec<(&str, Vec<u8>, &str, i32, &str)> = vec![
        (
            "fork.proof",
            fork.encode(),
            &log,
            0,
            "A: the first 10 events; B: all events of a history whose event 3 differs; both signed by acme: a fork",
        ),
        (
            "fork-equal-size.proof",
            proof(
                note(&honest, n64, 1),
                note(&forked, n64, 1),
                &forked,
                n64,
                n64,
            )
            .encode(),
            &log,
            0,
            "A and B of the same size with different roots (the proof is empty, the root is B's): a fork",
        ),
        (
            "fork.proof",
            fork.encode(),
            &bob,
            1,
            "a fork proven about acme's key, checked with bob's verifier key: neither note verifies with it",
        ),
        (
            "consistent.proof",
            proof(note(&honest, m, 1), note(&honest, n64, 1), &honest, m, n64).encode(),
            &log,
            1,
            "A and B of one history: B's first 10 leaves have A's root, no fork",
        ),
        (
            "fork-wrong-root.proof",
            wrong_root.encode(),
            &log,
            1,
            "fork.proof with its root line replaced by A's root: the consistency proof no longer leads to B's root",
        ),
        (
            "fork-a-empty.proof",
            proof(note(&honest, 0, 1), note(&forked, n64, 1), &forked, 0, n64).encode(),
            &log,
            1,
            "A of size 0: the empty tree is consistent with every tree",
        ),
        (
            "fork-b-by-bob.proof",
            proof(note(&honest, m, 1), note(&forked, n64, 3), &forked, m, n64).encode(),
            &log,
            1,
            "B signed by bob's key, not acme's: a fork only counts between two notes of the log's key",
        ),
        (
            "fork-b-by-bob.proof",
            proof(note(&honest, m, 1), note(&forked, n64, 3), &forked, m, n64).encode(),
            &both,
            0,
            "A signed by acme's key, B by bob's, both keys given: two keys of one log signed inconsistent checkpoints, a fork",
        ),
        (
            "fork-a-larger.proof",
            proof(note(&forked, n64, 1), note(&honest, m, 1), &honest, m, m).encode(),
            &log,
            1,
            "A larger than B: A must be the smaller checkpoint",
        ),
        (
            "fork-note-not-utf8.proof",
            not_utf8.encode(),
            &log,
            1,
            "fork.proof with a byte that is not UTF-8 in note A: a well-formed proof whose note is malformed (§9.2), so it does not check",
        ),
        (
            "not-a-proof.proof",
            b"keyledger fork proof v2\n\n".to_vec(),
            &log,
            2,
            "not a fork proof (another first line): bad input",
        ),
    ];
    let mut files = vec![];
    let mut verdicts = vec![];
    for (file, text, vkeys, exit, what) in cases {
        let path = format!("forks/{file}");
        if !files.iter().any(|(p, _)| *p == path) {
            files.push((path.clone(), text));
        }
        let vkeys: Vec<&str> = vkeys.split('\n').collect();
        verdicts.push(json!({"proof": path, "vkeys": vkeys, "exit": exit, "description": what}));
    }
    (files, verdicts)
}

/// A ledger of 300 events (genesis, then 299 users created by acme), its tiles as
/// `keyledger --key <acme> tiles --out tiles-300` writes them (checkpoint signed by acme),
/// and the verdict file naming both.
pub fn tiles() -> Vec<(String, Vec<u8>)> {
    let mut script: Script = vec![(1, genesis())];
    for i in 1..300 {
        script.push((
            1,
            Action::UserCreated {
                name: format!("user{i:03}"),
                federated: false,
            },
        ));
    }
    let l = build(&script);
    let size = l.hashes.len() as u64;
    let (note, _) = acme_note(&l.hashes, l.hashes.len());
    let mut files = vec![
        ("tiles-300.ledger".to_owned(), l.bytes.clone()),
        ("tiles-300/checkpoint".to_owned(), note.into_bytes()),
    ];
    for (path, bytes, _) in keyledger::evidence::tiles::tiles(&l.hashes, size) {
        files.push((format!("tiles-300/{path}"), bytes));
    }
    let verdicts = json!([{
        "ledger": "tiles-300.ledger",
        "tiles": "tiles-300",
        "key_seed_hex": to_hex_seed(1),
        "description": "the tiles of a ledger of 300 events: full level-0 tile 000 (256 hashes), partial tile 001.p/44, partial level-1 tile 000.p/1, their entry bundles, and the checkpoint signed by acme (Ed25519 seed 32 bytes of 0x01)",
    }]);
    files.push((
        "tiles-verdicts.json".into(),
        format!("{}\n", serde_json::to_string_pretty(&verdicts).unwrap()).into_bytes(),
    ));
    files
}

fn to_hex_seed(n: u8) -> String {
    keyledger::core::types::to_hex(&[n; 32])
}
