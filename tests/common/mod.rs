//! Shared test helpers: a deterministic fixture builder and CLI runners.
#![allow(dead_code)]

pub mod forge;
pub mod pg;
pub mod s3;
pub mod site;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use keyledger::core::chain::event_hash;
use keyledger::core::credentials::{self, Form, SecretText};
use keyledger::core::event::{Action, Event, Permission};
use keyledger::core::format::{frame_bytes, header_bytes};
use keyledger::core::signing::SigningKey;
use keyledger::core::types::{Bytes, Hash32, Timestamp};

/// Writes frames directly, bypassing policy: what an attacker holding a key can do.
pub struct RawLedger {
    pub bytes: Vec<u8>,
    pub hashes: Vec<Hash32>,
    pub offsets: Vec<usize>,
    pub seq: u64,
    pub time: Timestamp,
}

pub const T0: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

impl RawLedger {
    /// A format-version-1 ledger (what every fixture before the server was).
    pub fn new() -> Self {
        Self::with_version(1)
    }

    pub fn with_version(version: u16) -> Self {
        let mut bytes = header_bytes().to_vec();
        bytes[8..10].copy_from_slice(&version.to_be_bytes());
        RawLedger {
            bytes,
            hashes: vec![],
            offsets: vec![],
            seq: 0,
            time: Timestamp(T0),
        }
    }

    /// Appends an event with the next seq, a time one minute on, chained to the last hash.
    pub fn push(&mut self, key: &SigningKey, action: Action) -> Hash32 {
        let prev = self.hashes.last().copied().unwrap_or(Bytes::ZERO);
        let ev = Event {
            factor: None,
            seq: self.seq,
            time: self.time,
            prev,
            signer: key.public(),
            action,
            request: None,
        };
        self.push_event(key, &ev)
    }

    /// Appends exactly `ev`, signed by `key`.
    pub fn push_event(&mut self, key: &SigningKey, ev: &Event) -> Hash32 {
        self.push_signed(ev, |h| key.sign_hash(h))
    }

    /// Appends exactly `ev` with the signature `sign` makes of its hash.
    pub fn push_signed(&mut self, ev: &Event, sign: impl FnOnce(&Hash32) -> [u8; 64]) -> Hash32 {
        let body = ev.encode();
        let h = event_hash(&body);
        self.offsets.push(self.bytes.len());
        self.bytes.extend(frame_bytes(&body, &sign(&h)));
        self.hashes.push(h);
        self.seq = ev.seq + 1;
        self.time = ev.time.plus_micros(60_000_000);
        h
    }

    /// The next event (seq, time one minute on, chained) with `signer` and `action`.
    pub fn next(&self, signer: keyledger::core::types::PublicKey, action: Action) -> Event {
        Event {
            factor: None,
            seq: self.seq,
            time: self.time,
            prev: self.hashes.last().copied().unwrap_or(Bytes::ZERO),
            signer,
            action,
            request: None,
        }
    }

    /// Byte range of frame `i`.
    pub fn frame(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets.get(i + 1).copied().unwrap_or(self.bytes.len())
    }
}

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

/// A well-formed key ID whose random part is `fill` repeated (deterministic).
pub fn fixed_key_id(temporary: bool, fill: char) -> String {
    let prefix = if temporary { "KLST" } else { "KLAK" };
    let body = format!("{prefix}{}", fill.to_string().repeat(16));
    let form = if temporary {
        Form::TemporaryId
    } else {
        Form::PermanentId
    };
    let id = format!("{body}{}", credentials::checksum(form, &body));
    assert!(credentials::is_valid(form, &id));
    id
}

/// A well-formed secret whose random part is `fill` repeated (deterministic).
pub fn fixed_secret(fill: char) -> SecretText {
    let body = format!("klsk_{}", fill.to_string().repeat(40));
    SecretText::from_input(&format!(
        "{body}{}",
        credentials::checksum(Form::Secret, &body)
    ))
}

pub const LEDGER_ID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// The genesis action for account `acme` with key 1.
pub fn genesis() -> Action {
    Action::Genesis {
        ledger_id: Bytes(LEDGER_ID),
        account: "acme".into(),
        public_key: key(1).public(),
    }
}

/// A `user-created` of a (not federated) user.
pub fn user(name: &str) -> Action {
    Action::UserCreated {
        name: name.into(),
        federated: false,
    }
}

/// A well-formed `key-created` of a permanent key (fixed ID and secret from `fill`) for `owner`.
pub fn permanent(fill: char, owner: &str) -> Action {
    let id = fixed_key_id(false, fill);
    Action::KeyCreated {
        fingerprint: credentials::fingerprint(&id, &fixed_secret(fill)),
        key_id: id,
        user: owner.into(),
        scenario: "service".into(),
        confirmed_necessary: true,
        root_key_allowed: false,
    }
}

/// The worked example of ledger-format.md: five events.
pub fn worked_example() -> RawLedger {
    let (acme, alice) = (key(1), key(2));
    let mut l = RawLedger::new();
    l.push(&acme, genesis());
    l.push(
        &acme,
        Action::UserCreated {
            name: "alice".into(),
            federated: false,
        },
    );
    l.push(
        &acme,
        Action::SignerEnrolled {
            principal: "alice".into(),
            public_key: alice.public(),
        },
    );
    l.push(
        &acme,
        Action::PermissionGranted {
            principal: "alice".into(),
            permission: Permission::ManageOwnKeys,
        },
    );
    let id = fixed_key_id(false, 'A');
    l.push(
        &alice,
        Action::KeyCreated {
            fingerprint: credentials::fingerprint(&id, &fixed_secret('a')),
            key_id: id,
            user: "alice".into(),
            scenario: "CI runner".into(),
            confirmed_necessary: true,
            root_key_allowed: false,
        },
    );
    l
}

/// One scripted event: the number of the key that signs it, and the action.
pub type Script = Vec<(u8, Action)>;

/// Event `i` of a script is at T0 + i minutes.
pub fn time_of(i: usize) -> Timestamp {
    Timestamp(T0 + i as i64 * 60_000_000)
}

/// A valid ledger of a few dozen events touching every action type: acme = key 1,
/// alice (admin) = key 2, bob (manage-own-keys, revoked at the end) = key 3.
pub fn valid_script() -> Script {
    let (alice, bob) = (key(2).public(), key(3).public());
    let mut s: Script = vec![(1, genesis())];
    for (name, federated) in [
        ("alice", false),
        ("bob", false),
        ("fed", true),
        ("carol", false),
    ] {
        s.push((
            1,
            Action::UserCreated {
                name: name.into(),
                federated,
            },
        ));
    }
    s.push((
        1,
        Action::SignerEnrolled {
            principal: "alice".into(),
            public_key: alice,
        },
    ));
    s.push((
        1,
        Action::PermissionGranted {
            principal: "alice".into(),
            permission: Permission::Admin,
        },
    ));
    s.push((
        2,
        Action::SignerEnrolled {
            principal: "bob".into(),
            public_key: bob,
        },
    ));
    s.push((
        2,
        Action::PermissionGranted {
            principal: "bob".into(),
            permission: Permission::ManageOwnKeys,
        },
    ));
    for (i, fill) in ['B', 'C'].into_iter().enumerate() {
        let id = fixed_key_id(false, fill);
        s.push((
            3,
            Action::KeyCreated {
                fingerprint: credentials::fingerprint(&id, &fixed_secret(fill)),
                key_id: id.clone(),
                user: "bob".into(),
                scenario: format!("bob's key {i}"),
                confirmed_necessary: true,
                root_key_allowed: false,
            },
        ));
        s.push((
            3,
            Action::SecretRevealed {
                key_id: id.clone(),
                to: "bob".into(),
                channel: "stdout:text".into(),
            },
        ));
        s.push((3, Action::AuthSucceeded { key_id: id }));
    }
    let b = fixed_key_id(false, 'B');
    for a in [
        Action::KeyDisabled { key_id: b.clone() },
        Action::KeyEnabled { key_id: b.clone() },
        Action::KeyDisabled { key_id: b.clone() },
        Action::KeyDeleted { key_id: b.clone() },
    ] {
        s.push((2, a));
    }
    s.push((
        3,
        Action::AuthFailed {
            key_id: b,
            reason: "the key is deleted".into(),
        },
    ));
    s.push((
        3,
        Action::ActionDenied {
            attempted: "key-created carol".into(),
            user: Some("carol".into()),
            key_id: None,
            reason: "bob may not create keys of carol".into(),
        },
    ));
    let t = fixed_key_id(true, 'T');
    s.push((
        2,
        Action::TemporaryIssued {
            fingerprint: credentials::fingerprint(&t, &fixed_secret('t')),
            token_fingerprint: credentials::fingerprint(&t, &fixed_secret('u')),
            key_id: t.clone(),
            user: "fed".into(),
            expires: time_of(s.len()).plus_micros(3600 * 1_000_000),
        },
    ));
    s.push((
        2,
        Action::SecretRevealed {
            key_id: t.clone(),
            to: "alice".into(),
            channel: "stdout:json".into(),
        },
    ));
    s.push((2, Action::KeyDeleted { key_id: t }));
    s.push((
        2,
        Action::PermissionRevoked {
            principal: "bob".into(),
            permission: Permission::ManageOwnKeys,
        },
    ));
    s.push((
        2,
        Action::UserDeleted {
            name: "carol".into(),
        },
    ));
    s.push((
        1,
        Action::SignerRevoked {
            principal: "bob".into(),
            public_key: bob,
        },
    ));
    s.push((
        2,
        Action::UserCreated {
            name: "dave".into(),
            federated: false,
        },
    ));
    s.push((
        1,
        Action::LogRepaired {
            offset: 0, // filled in by `build_tweaked`: where this event is written
            removed_bytes: 17,
            removed_blake3: Bytes([7; 32]),
            quarantine: "valid.ledger.quarantine".into(),
        },
    ));
    s
}

/// Builds a script; `tweak(i, event, key number)` may alter each event before it is signed.
pub fn build_tweaked(
    script: &Script,
    mut tweak: impl FnMut(usize, &mut Event, &mut u8),
) -> RawLedger {
    let mut l = RawLedger::new();
    for (i, (k, action)) in script.iter().enumerate() {
        let mut k = *k;
        let mut ev = Event {
            factor: None,
            seq: i as u64,
            time: time_of(i),
            prev: l.hashes.last().copied().unwrap_or(Bytes::ZERO),
            signer: key(k).public(),
            action: action.clone(),
            request: None,
        };
        // A repair records where it is written: the torn tail it removed began there.
        if let Action::LogRepaired { offset, .. } = &mut ev.action {
            *offset = l.bytes.len() as u64;
        }
        tweak(i, &mut ev, &mut k);
        l.push_event(&key(k), &ev);
    }
    l
}

pub fn build(script: &Script) -> RawLedger {
    build_tweaked(script, |_, _, _| {})
}

pub fn valid() -> RawLedger {
    build(&valid_script())
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keyledger"))
}

/// Runs keyledger with `args` (no stdin), in `dir`, on the real clock.
pub fn run_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    run_at(dir, None, args, stdin)
}

/// Runs keyledger in `dir` with `KEYLEDGER_NOW` set to `now` (if any), `stdin` as input,
/// and no KEYLEDGER_LEDGER / KEYLEDGER_KEY from the environment.
pub fn run_at(dir: &Path, now: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
    let env: Vec<(&str, &str)> = now.map(|t| ("KEYLEDGER_NOW", t)).into_iter().collect();
    run_env(dir, &env, args, stdin)
}

/// The cache directory test runs use unless they say otherwise: one per test binary, under
/// cargo's temporary directory (cache entries are per ledger path, so tests do not mix).
pub fn test_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keyledger-cache")
}

/// The file name stem of a ledger's cache entry and head note: 32 hex digits of
/// blake3(absolute path as given), as the cache's module comment states.
pub fn cache_stem(ledger: &Path) -> String {
    let absolute = std::path::absolute(ledger).unwrap();
    blake3::hash(absolute.as_os_str().as_encoded_bytes()).to_hex()[..32].to_owned()
}

/// Runs keyledger in `dir` with `env` set (after clearing KEYLEDGER_LEDGER, KEYLEDGER_KEY
/// and KEYLEDGER_NOW, and pointing KEYLEDGER_CACHE_DIR at `test_cache_dir()`).
pub fn run_env(dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(bin());
    c.current_dir(dir)
        .args(args)
        .env_remove("KEYLEDGER_LEDGER")
        .env_remove("KEYLEDGER_KEY")
        .env_remove("KEYLEDGER_NOW")
        .env("KEYLEDGER_CACHE_DIR", test_cache_dir())
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn keyledger");
    if let Some(s) = stdin {
        use std::io::Write;
        // The child may exit before reading (bad arguments): a broken pipe is its answer.
        match child.stdin.take().unwrap().write_all(s.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            r => r.unwrap(),
        }
    }
    child.wait_with_output().unwrap()
}

/// Creates a permanent key for `user` in `dir` (the account acting, by `keyledger.key`): its
/// ID and secret.
pub fn create_key(dir: &Path, user: &str) -> (String, String) {
    let o = run_in(
        dir,
        &[
            "--json",
            "key",
            "create",
            "--user",
            user,
            "--scenario",
            "a test's key",
            "--confirm-necessary",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let field = |k: &str| v[k].as_str().unwrap().to_owned();
    (field("access_key_id"), field("access_key_secret"))
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One edit of `b`, chosen by `kind % 5`: overwrite, insert or delete the byte at `at`, cut
/// the tail at `at`, or splice a copy of the range between `at` and `to` in at `byte` (a
/// replayed frame, say). Positions wrap to the length.
pub fn edit(b: &mut Vec<u8>, kind: u8, at: usize, to: usize, byte: u8) {
    let at = at % (b.len() + 1);
    match kind % 5 {
        0 if at < b.len() => b[at] = byte,
        1 => b.insert(at, byte),
        2 if at < b.len() => {
            b.remove(at);
        }
        3 => b.truncate(at),
        4 => {
            let to = to % (b.len() + 1);
            let piece = b[at.min(to)..at.max(to)].to_vec();
            let pos = usize::from(byte) % (b.len() + 1);
            b.splice(pos..pos, piece);
        }
        _ => {}
    }
}

/// The lines a child process writes on stdout, through a channel: a silent child then
/// fails a test (`recv_timeout`) instead of hanging it.
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The independent verifier (scripts/independent_verify.py) on `ledger`: it must say
/// `valid`. Said loudly when it cannot run (KEYLEDGER_PYTHON unset; CI sets it).
pub fn independent_verifier(ledger: &Path, valid: bool) {
    let Ok(python) = std::env::var("KEYLEDGER_PYTHON") else {
        eprintln!(
            "NOT RUN: the independent verifier (set KEYLEDGER_PYTHON to a Python with blake3 and msgpack; CI does)"
        );
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/independent_verify.py");
    let o = Command::new(python)
        .arg(script)
        .arg(ledger)
        .output()
        .unwrap();
    assert_eq!(
        o.status.success(),
        valid,
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
