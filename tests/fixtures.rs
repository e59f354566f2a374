//! The fixtures: ledgers with a stated verdict (fixtures/verdicts.json), generated here
//! deterministically, and one table-driven test that runs `keyledger verify` on each.
//!
//! Regenerate after a deliberate format change: `KEYLEDGER_WRITE_FIXTURES=1 cargo test --test fixtures`.

mod common;
#[path = "fixtures_gen/floods.rs"]
mod floods;
#[path = "fixtures_gen/leak.rs"]
mod leak;
#[path = "fixtures_gen/protect.rs"]
mod protect;
#[path = "fixtures_gen/requests.rs"]
mod requests;
#[path = "fixtures_gen/rotation.rs"]
mod rotation;
#[path = "fixtures_gen/rules.rs"]
mod rules;
#[path = "fixtures_gen/witness.rs"]
mod witness;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use keyledger::core::credentials::{self, Form};
use keyledger::core::event::{Action, Event, Permission};
use keyledger::core::format::HEADER_LEN;
use keyledger::core::merkle;
use keyledger::core::types::{Bytes, to_hex};
use keyledger::evidence::checkpoint;
use serde_json::{Value, json};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// One fixture file and the verdicts stated for it.
struct Fixture {
    file: &'static str,
    bytes: Vec<u8>,
    verdicts: Vec<Value>,
}

/// Files the verdicts refer to (checkpoint notes), and the Ed25519 vectors.
fn extra_files() -> (Vec<(String, Vec<u8>)>, Vec<Value>) {
    let script = valid_script();
    let v = build(&script);
    let mut files = vec![];
    let mut verdicts = vec![];
    let checkpoints = rules::checkpoints(&v.hashes, &script)
        .into_iter()
        .chain(witness::witnessed_checkpoints(&v.hashes));
    for (name, bytes, mut verdict) in checkpoints {
        verdict["file"] = json!("valid.ledger");
        if !files.iter().any(|(f, _)| *f == name) {
            files.push((name, bytes));
        }
        verdicts.push(verdict);
    }
    let (fork_files, fork_verdicts) = witness::fork_proofs(&v.hashes);
    files.extend(fork_files);
    files.push((
        "fork-verdicts.json".into(),
        format!(
            "{}\n",
            serde_json::to_string_pretty(&fork_verdicts).unwrap()
        )
        .into_bytes(),
    ));
    files.extend(witness::tiles());
    let (bundle_files, bundle_verdicts) = rules::bundles(&v.bytes, &requests::valid_bytes());
    files.extend(bundle_files);
    files.push((
        "bundle-verdicts.json".into(),
        format!(
            "{}\n",
            serde_json::to_string_pretty(&bundle_verdicts).unwrap()
        )
        .into_bytes(),
    ));
    files.push((
        "ed25519-vectors.json".into(),
        format!(
            "{}\n",
            serde_json::to_string_pretty(&rules::ed25519_vectors()).unwrap()
        )
        .into_bytes(),
    ));
    (files, verdicts)
}

fn verdict(
    description: &str,
    args: &[&str],
    exit: i32,
    first_seq: Option<u64>,
    problems: &[&str],
) -> Value {
    json!({"description": description, "args": args, "exit": exit, "first_seq": first_seq, "problems": problems})
}

/// The fixtures a generator makes, in order.
#[derive(Default)]
struct Fixtures(Vec<Fixture>);

impl Fixtures {
    fn add(&mut self, file: &'static str, l: RawLedger, verdicts: Vec<Value>) {
        self.0.push(Fixture {
            file,
            bytes: l.bytes,
            verdicts,
        });
    }
}

/// The verdict of a ledger whose one fault is a finding of `problem` at `seq`.
fn one_finding(description: &str, seq: u64, problem: &str) -> Vec<Value> {
    vec![verdict(description, &[], 1, Some(seq), &[problem])]
}

fn policy_script(third_key: bool) -> Script {
    let bob = key(3).public();
    let mut s: Script = vec![
        (1, genesis()),
        (
            1,
            Action::UserCreated {
                name: "bob".into(),
                federated: false,
            },
        ),
    ];
    s.push((
        1,
        Action::SignerEnrolled {
            principal: "bob".into(),
            public_key: bob,
        },
    ));
    if third_key {
        for fill in ['D', 'E', 'F'] {
            let id = fixed_key_id(false, fill);
            s.push((
                1,
                Action::KeyCreated {
                    fingerprint: credentials::fingerprint(&id, &fixed_secret(fill)),
                    key_id: id,
                    user: "bob".into(),
                    scenario: "service".into(),
                    confirmed_necessary: true,
                    root_key_allowed: false,
                },
            ));
        }
    } else {
        s.push((
            3,
            Action::PermissionGranted {
                principal: "bob".into(),
                permission: Permission::Admin,
            },
        ));
    }
    s.push((
        1,
        Action::UserCreated {
            name: "zed".into(),
            federated: false,
        },
    ));
    s
}

fn all_fixtures() -> Vec<Fixture> {
    let script = valid_script();
    let v = build(&script);
    let n = v.hashes.len();
    let head = v.hashes[n - 1].hex();
    let mut out = vec![];
    let mut add = |file, bytes: Vec<u8>, verdicts| {
        out.push(Fixture {
            file,
            bytes,
            verdicts,
        })
    };

    add(
        "valid.ledger",
        v.bytes.clone(),
        vec![
            verdict("a valid ledger", &[], 0, None, &[]),
            verdict(
                "anchored to its head",
                &["--expect-head", &head],
                0,
                None,
                &[],
            ),
            verdict(
                "anchored to its genesis",
                &["--expect-genesis", &v.hashes[0].hex()],
                0,
                None,
                &[],
            ),
            verdict(
                "a different ledger's genesis",
                &["--expect-genesis", &"ab".repeat(32)],
                1,
                None,
                &["anchor"],
            ),
        ],
    );
    let cut = v.bytes[..v.frame(n - 1).start].to_vec();
    add(
        "cut-tail.ledger",
        cut,
        vec![
            verdict(
                "last event removed at a frame boundary: undetectable without an anchor",
                &[],
                0,
                None,
                &[],
            ),
            verdict(
                "last event removed, caught by the head anchor",
                &["--expect-head", &head],
                1,
                None,
                &["anchor"],
            ),
        ],
    );
    let mut b = v.bytes.clone();
    let r = v.frame(10);
    b[r.end - 64 - 1] ^= 0x01; // last body byte of event 10
    add(
        "body-bitflip.ledger",
        b,
        vec![verdict(
            "one bit of event 10's body flipped",
            &[],
            1,
            Some(10),
            &["signature", "chain"],
        )],
    );
    let mut b = v.bytes.clone();
    b[v.frame(10).end - 10] ^= 0x20;
    add(
        "sig-bitflip.ledger",
        b,
        vec![verdict(
            "one bit of event 10's signature flipped",
            &[],
            1,
            Some(10),
            &["signature"],
        )],
    );
    let prev = build_tweaked(&script, |i, ev, _| {
        if i == 10 {
            ev.prev = Bytes([0xee; 32]);
        }
    });
    add(
        "prev-altered.ledger",
        prev.bytes,
        vec![verdict(
            "event 10 re-signed with a wrong prev hash",
            &[],
            1,
            Some(10),
            &["chain"],
        )],
    );
    let mut b = v.bytes.clone();
    b.drain(v.frame(10));
    add(
        "deleted-middle.ledger",
        b,
        vec![verdict(
            "event 10 deleted from the middle (the log-repaired event at the end no longer sits at the offset it records)",
            &[],
            1,
            Some(11),
            &["sequence", "chain", "policy"],
        )],
    );
    let mut b = v.bytes[..v.frame(10).start].to_vec();
    b.extend_from_slice(&v.bytes[v.frame(11)]);
    b.extend_from_slice(&v.bytes[v.frame(10)]);
    b.extend_from_slice(&v.bytes[v.frame(12).start..]);
    add(
        "swapped.ledger",
        b,
        vec![verdict(
            "events 10 and 11 swapped",
            &[],
            1,
            Some(11),
            &["sequence", "chain", "time"],
        )],
    );
    let last = v.frame(n - 1);
    add(
        "torn-tail.ledger",
        v.bytes[..last.start + (last.end - last.start) / 2].to_vec(),
        vec![verdict(
            "the last frame cut in half (an interrupted write)",
            &[],
            1,
            None,
            &["torn"],
        )],
    );
    let mut b = v.bytes.clone();
    b.extend_from_slice(b"garbage after the last frame\n");
    add(
        "trailing-garbage.ledger",
        b,
        vec![verdict(
            "bytes that are not a frame after the last frame",
            &[],
            1,
            None,
            &["format"],
        )],
    );
    let unenrolled = build_tweaked(&script, |i, ev, k| {
        if i == 10 {
            *k = 9;
            ev.signer = key(9).public();
        }
    });
    add(
        "unenrolled-signer.ledger",
        unenrolled.bytes,
        vec![verdict(
            "event 10 validly signed by a key never enrolled",
            &[],
            1,
            Some(10),
            &["signer"],
        )],
    );
    let mut revoked_script = script.clone();
    revoked_script.push((
        3,
        Action::AuthFailed {
            key_id: fixed_key_id(false, 'C'),
            reason: "late".into(),
        },
    ));
    add(
        "revoked-signer.ledger",
        build(&revoked_script).bytes,
        vec![verdict(
            "an event signed by bob's key after it was revoked",
            &[],
            1,
            Some(n as u64),
            &["signer"],
        )],
    );
    let backwards = build_tweaked(&script, |i, ev, _| {
        if i == 10 {
            ev.time = time_of(5);
        }
    });
    add(
        "time-backwards.ledger",
        backwards.bytes,
        vec![verdict(
            "event 10 re-signed with a time before event 9's",
            &[],
            1,
            Some(10),
            &["time"],
        )],
    );
    let mut b = v.bytes.clone();
    b[9] = 3;
    add(
        "unknown-version.ledger",
        b,
        vec![verdict(
            "header says format version 3 (this format knows 1 and 2)",
            &[],
            1,
            None,
            &["format"],
        )],
    );
    add(
        "empty.ledger",
        vec![],
        vec![verdict("an empty file", &[], 1, None, &["format"])],
    );
    add(
        "policy-r4.ledger",
        build(&policy_script(false)).bytes,
        vec![verdict(
            "bob, with no permission, grants himself admin (validly signed)",
            &[],
            1,
            Some(3),
            &["policy"],
        )],
    );
    add(
        "policy-r7.ledger",
        build(&policy_script(true)).bytes,
        vec![verdict(
            "a third access key for bob (validly signed by the account)",
            &[],
            1,
            Some(5),
            &["policy"],
        )],
    );
    let mut cp = RawLedger::new();
    cp.push(&key(1), genesis());
    cp.push(
        &key(1),
        Action::UserCreated {
            name: "bob".into(),
            federated: false,
        },
    );
    let root = Bytes(merkle::root_of(&cp.hashes));
    cp.push(&key(1), Action::CheckpointRecorded { size: 2, root });
    cp.push(&key(1), Action::CheckpointRecorded { size: 3, root });
    add(
        "checkpoint-recorded-wrong.ledger",
        cp.bytes,
        vec![verdict(
            "a correct recorded checkpoint at seq 2, then one at seq 3 whose root is wrong (validly signed)",
            &[],
            1,
            Some(3),
            &["anchor"],
        )],
    );
    add(
        "worked-example.ledger",
        worked_example().bytes,
        vec![verdict(
            "the worked example of ledger-format.md",
            &[],
            0,
            None,
            &[],
        )],
    );
    out.extend(rules::ledgers());
    out.extend(rotation::ledgers());
    out.extend(leak::ledgers());
    out.extend(requests::ledgers());
    out.extend(protect::ledgers());
    out.extend(floods::ledgers());
    out
}

/// The annotated hex dump of the worked example that ledger-format.md quotes verbatim.
fn worked_example_dump() -> String {
    let l = worked_example();
    let mut s = String::new();
    s.push_str(&format!(
        "acme  key seed  {}\n      public    {}\n",
        "01".repeat(32),
        key(1).public()
    ));
    s.push_str(&format!(
        "alice key seed  {}\n      public    {}\n",
        "02".repeat(32),
        key(2).public()
    ));
    s.push_str(&format!(
        "header (offset 0, 16 bytes)\n  {}\n",
        to_hex(&l.bytes[..HEADER_LEN as usize])
    ));
    for i in 0..l.hashes.len() {
        let r = l.frame(i);
        let f = &l.bytes[r.clone()];
        let body = &f[4..f.len() - 64];
        let ev = Event::decode(body).unwrap();
        s.push_str(&format!(
            "frame {i} (offset {}, {} bytes): {}\n",
            r.start,
            f.len(),
            ev.action.tag()
        ));
        s.push_str(&format!(
            "  body_len   {}  ({})\n",
            to_hex(&f[..4]),
            body.len()
        ));
        for (j, chunk) in body.chunks(32).enumerate() {
            s.push_str(&format!(
                "  {}  {}\n",
                if j == 0 { "body     " } else { "         " },
                to_hex(chunk)
            ));
        }
        s.push_str(&format!("  hash       {}\n", l.hashes[i]));
        let sig = &f[f.len() - 64..];
        s.push_str(&format!(
            "  signature  {}\n             {}\n",
            to_hex(&sig[..32]),
            to_hex(&sig[32..])
        ));
    }
    s.push_str(&format!("genesis hash (trust anchor)  {}\n", l.hashes[0]));
    s.push_str(&format!(
        "merkle leaf 0                {}\n",
        to_hex(&merkle::leaf_hash(&l.hashes[0]))
    ));
    s.push_str(&format!(
        "merkle root (5 leaves)       {}\n",
        to_hex(&merkle::root_of(&l.hashes))
    ));
    let origin = checkpoint::origin(&Bytes(LEDGER_ID));
    let note = checkpoint::Checkpoint {
        origin: origin.clone(),
        size: 5,
        root: merkle::root_of(&l.hashes),
    }
    .sign(&key(1));
    s.push_str("checkpoint of 5 events signed by acme (between the lines):\n--\n");
    s.push_str(&note);
    s.push_str("--\n");
    s.push_str(&format!(
        "acme verifier key  {}\n",
        checkpoint::verifier_key(&origin, &key(1).public())
    ));
    s.push_str(&format!(
        "head hash                    {}\n",
        l.hashes[l.hashes.len() - 1]
    ));
    let id = fixed_key_id(false, 'A');
    let secret = fixed_secret('a');
    s.push_str(&format!("key id       {id}\n"));
    s.push_str(&format!(
        "secret       {}  (a test vector; never stored)\n",
        secret.expose()
    ));
    s.push_str(&format!(
        "fingerprint  {}\n",
        credentials::fingerprint(&id, &secret)
    ));
    s.push_str(&format!(
        "temporary id {}  token {}\n",
        fixed_key_id(true, 'T'),
        {
            let body = format!("kltk_{}", "u".repeat(64));
            format!("{body}{}", credentials::checksum(Form::Token, &body))
        }
    ));
    s
}

fn generated_files() -> Vec<(String, Vec<u8>)> {
    let fixtures = all_fixtures();
    let mut files: Vec<(String, Vec<u8>)> = fixtures
        .iter()
        .map(|f| (f.file.to_string(), f.bytes.clone()))
        .collect();
    let (extra, extra_verdicts) = extra_files();
    let verdicts: Vec<Value> = fixtures
        .iter()
        .flat_map(|f| {
            f.verdicts.iter().map(move |v| {
                let mut v = v.clone();
                v["file"] = json!(f.file);
                v
            })
        })
        .chain(extra_verdicts)
        .collect();
    files.extend(extra);
    files.push((
        "verdicts.json".into(),
        format!("{}\n", serde_json::to_string_pretty(&verdicts).unwrap()).into_bytes(),
    ));
    files.push((
        "worked-example.txt".into(),
        worked_example_dump().into_bytes(),
    ));
    files
}

#[test]
fn fixtures_are_up_to_date() {
    let dir = fixtures_dir();
    let write = std::env::var_os("KEYLEDGER_WRITE_FIXTURES").is_some();
    for (name, bytes) in generated_files() {
        let p = dir.join(&name);
        if write {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, &bytes).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (regenerate with KEYLEDGER_WRITE_FIXTURES=1)",
                p.display()
            )
        });
        assert!(
            on_disk == bytes,
            "{name} differs from what the generator makes; regenerate deliberately with KEYLEDGER_WRITE_FIXTURES=1"
        );
    }
}

/// The verdicts stated in fixtures/`name`.
fn read_verdicts(name: &str) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join(name)).unwrap()).unwrap()
}

/// `o` exited as verdict `v` says.
fn assert_exit(o: &std::process::Output, v: &Value) {
    assert_eq!(
        code(o),
        v["exit"].as_i64().unwrap() as i32,
        "{}: {}{}",
        v["description"],
        stdout(o),
        stderr(o)
    );
}

#[test]
fn every_bundle_gets_its_stated_verdict() {
    let dir = fixtures_dir();
    let verdicts = read_verdicts("bundle-verdicts.json");
    assert!(verdicts.len() >= 5);
    for v in &verdicts {
        let mut args = vec!["verify-bundle", v["bundle"].as_str().unwrap()];
        args.extend(
            v["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap()),
        );
        assert_exit(&run_in(&dir, &args, None), v);
    }
}

#[test]
fn every_fork_proof_gets_its_stated_verdict() {
    let dir = fixtures_dir();
    let verdicts = read_verdicts("fork-verdicts.json");
    assert!(verdicts.iter().any(|v| v["exit"] == 0) && verdicts.iter().any(|v| v["exit"] == 1));
    for v in &verdicts {
        let mut args = vec!["witness", "check-fork", v["proof"].as_str().unwrap()];
        for k in v["vkeys"].as_array().unwrap() {
            args.extend(["--vkey", k.as_str().unwrap()]);
        }
        assert_exit(&run_in(&dir, &args, None), v);
    }
}

/// `keyledger tiles` writes exactly the fixture's tiles (ledger-format.md §9.6).
#[test]
fn tiles_are_the_fixture_tiles() {
    let dir = fixtures_dir();
    let verdicts = read_verdicts("tiles-verdicts.json");
    for v in &verdicts {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let ledger = t.join("l.ledger");
        std::fs::copy(dir.join(v["ledger"].as_str().unwrap()), &ledger).unwrap();
        let seed: [u8; 32] =
            keyledger::core::types::from_hex(v["key_seed_hex"].as_str().unwrap()).unwrap();
        let k = keyledger::core::signing::SigningKey::from_seed(&seed);
        keyledger::storage::keyfile::write_new(&k, &t.join("k.key")).unwrap();
        let o = run_in(
            t,
            &[
                "--ledger", "l.ledger", "--key", "k.key", "tiles", "--out", "out",
            ],
            None,
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let want = dir.join(v["tiles"].as_str().unwrap());
        let list = |root: &Path| {
            let mut out = BTreeSet::new();
            let mut stack = vec![root.to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else {
                        out.insert(p.strip_prefix(root).unwrap().to_path_buf());
                    }
                }
            }
            out
        };
        assert_eq!(list(&t.join("out")), list(&want), "{}", v["description"]);
        for f in list(&want) {
            assert!(
                std::fs::read(t.join("out").join(&f)).unwrap()
                    == std::fs::read(want.join(&f)).unwrap(),
                "{} differs",
                f.display()
            );
        }
    }
}

#[test]
fn every_fixture_gets_its_stated_verdict() {
    let dir = fixtures_dir();
    let verdicts: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verdicts.json")).unwrap()).unwrap();
    assert!(verdicts.len() >= 15);
    let tmp = tempfile::tempdir().unwrap();
    for v in &verdicts {
        let file = v["file"].as_str().unwrap();
        // Copy so that no test can alter a fixture (and the files its arguments name).
        let copy = tmp.path().join(file);
        std::fs::copy(dir.join(file), &copy).unwrap();
        for a in v["args"].as_array().unwrap() {
            let a = a.as_str().unwrap();
            if dir.join(a).is_file() {
                std::fs::copy(dir.join(a), tmp.path().join(a)).unwrap();
            }
        }
        let mut args = vec!["--ledger", copy.to_str().unwrap(), "--json", "verify"];
        let extra: Vec<&str> = v["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        args.extend(&extra);
        let o = run_in(tmp.path(), &args, None);
        let what = format!("{file} {}: {}", extra.join(" "), v["description"]);
        assert_eq!(
            code(&o),
            v["exit"].as_i64().unwrap() as i32,
            "{what}\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        let report: Value =
            serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{what}: {e}"));
        let findings = report["report"]["findings"].as_array().unwrap();
        let problems: BTreeSet<&str> = findings
            .iter()
            .map(|f| f["problem"].as_str().unwrap())
            .collect();
        let want: BTreeSet<&str> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(problems, want, "{what}");
        let first_seq = findings.iter().find_map(|f| f["seq"].as_u64());
        assert_eq!(first_seq, v["first_seq"].as_u64(), "{what}");
        assert_eq!(report["report"]["ok"], json!(findings.is_empty()), "{what}");
    }
}

#[test]
fn ledger_format_md_quotes_the_worked_example_verbatim() {
    let md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ledger-format.md"))
            .unwrap();
    let dump = worked_example_dump();
    assert!(
        md.contains(&dump),
        "ledger-format.md must contain fixtures/worked-example.txt verbatim"
    );
}
