//! One test per domain rule R1–R12, driving the CLI as a user would. Every `World`
//! collects each secret and token the CLI printed or wrote, and on drop asserts that none
//! occurs in the ledger or any other file but the CSV the user asked for, or in stderr.

mod common;

use keyledger::protocol::ops::Ops;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use serde_json::Value;

const NOW: &str = "2026-03-01T12:00:00Z";

struct World {
    dir: tempfile::TempDir,
    now: String,
    secrets: Vec<String>,
    /// Files the user asked a secret to be written to.
    secret_files: Vec<PathBuf>,
}

/// Every credential-shaped string (secret or token) in `s`.
fn credentials_in(s: &str) -> Vec<String> {
    let mut out = vec![];
    for (prefix, len) in [("klsk_", 51), ("kltk_", 75)] {
        for (i, _) in s.match_indices(prefix) {
            if let Some(c) = s.get(i..i + len) {
                out.push(c.to_owned());
            }
        }
    }
    out
}

impl World {
    fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
            now: NOW.into(),
            secrets: vec![],
            secret_files: vec![],
        };
        let o = w.raw(&["init", "--account", "acme"], None);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        w
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn raw(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_at(
            self.path(),
            Some(&self.now),
            args,
            Some(stdin.unwrap_or("")),
        )
    }

    /// Runs keyledger, records any secret it printed, and checks the exit code.
    fn run(&mut self, args: &[&str], want: i32) -> String {
        let o = self.raw(args, None);
        self.collect(&o);
        assert_eq!(
            code(&o),
            want,
            "{args:?}\nstdout: {}\nstderr: {}",
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    fn collect(&mut self, o: &Output) {
        assert!(
            credentials_in(&stderr(o)).is_empty(),
            "a secret reached stderr"
        );
        self.secrets.extend(credentials_in(&stdout(o)));
    }

    fn json(&mut self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.run(&a, 0)).unwrap()
    }

    /// A user with an enrolled signing key `NAME.key`.
    fn user(&mut self, name: &str, extra: &[&str]) {
        self.run(&["keygen", "--out", &format!("{name}.key")], 0);
        let mut a = vec!["user", "create", name, "--public-key"];
        let pubf = format!("@{name}.key.pub");
        a.push(&pubf);
        a.extend_from_slice(extra);
        self.run(&a, 0);
    }

    /// Creates a key as `signer` (a key file); returns (id, secret).
    fn create_key(&mut self, signer: &str, user: &str) -> (String, String) {
        let v = self.json(&[
            "--key",
            signer,
            "key",
            "create",
            "--user",
            user,
            "--scenario",
            "service",
            "--confirm-necessary",
        ]);
        (
            v["access_key_id"].as_str().unwrap().into(),
            v["access_key_secret"].as_str().unwrap().into(),
        )
    }

    fn denied_count(&mut self) -> usize {
        self.json(&["log", "--action", "action-denied"])["events"]
            .as_array()
            .unwrap()
            .len()
    }

    fn ledger(&self) -> Vec<u8> {
        std::fs::read(self.path().join("keyledger.ledger")).unwrap()
    }

    fn verify_ok(&mut self) {
        assert!(self.run(&["verify"], 0).contains("result   OK"));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // No secret in any file but the ones the user asked it to be written to.
        for entry in std::fs::read_dir(self.path()).unwrap() {
            let p = entry.unwrap().path();
            if self.secret_files.contains(&p.canonicalize().unwrap()) || !p.is_file() {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            for s in &self.secrets {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                    "a secret occurs in {}",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn r1_the_account_gets_a_key_only_when_asked_explicitly() {
    let mut w = World::new();
    let out = w.raw(
        &[
            "key",
            "create",
            "--user",
            "acme",
            "--scenario",
            "x",
            "--confirm-necessary",
        ],
        None,
    );
    assert_eq!(code(&out), 3);
    assert!(
        stderr(&out).contains("--allow-root-key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.denied_count(), 1);
    let v = w.json(&[
        "key",
        "create",
        "--user",
        "acme",
        "--scenario",
        "break-glass",
        "--confirm-necessary",
        "--allow-root-key",
    ]);
    w.secrets
        .push(v["access_key_secret"].as_str().unwrap().into());
    // An admin may not create the account's key even when asked.
    w.user("alice", &[]);
    w.run(&["grant", "alice", "admin"], 0);
    w.run(
        &[
            "--key",
            "alice.key",
            "key",
            "create",
            "--user",
            "acme",
            "--scenario",
            "x",
            "--confirm-necessary",
            "--allow-root-key",
        ],
        3,
    );
    w.verify_ok();
}

#[test]
fn r2_a_user_with_keys_is_deleted_only_with_its_keys_each_as_an_event() {
    let mut w = World::new();
    w.user("bob", &[]);
    let (id, _) = w.create_key("keyledger.key", "bob");
    let out = w.raw(&["user", "delete", "bob"], None);
    assert_eq!(code(&out), 3);
    assert!(stderr(&out).contains("--delete-keys"));
    let v = w.json(&["user", "delete", "bob", "--delete-keys"]);
    assert_eq!(
        v["events"].as_array().unwrap().len(),
        2,
        "key deletion and user deletion are separate events"
    );
    let log = w.json(&["log", "--user", "bob"]);
    let tags: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(tags.ends_with(&["key-deleted", "user-deleted"]), "{tags:?}");
    assert_eq!(w.json(&["key", "list"])["keys"][0]["status"], "deleted");
    assert_eq!(w.json(&["key", "show", &id])["key"]["status"], "deleted");
    // A deleted user's signing key no longer signs.
    w.run(&["--key", "bob.key", "user", "list"], 0);
    w.run(&["--key", "bob.key", "key", "list"], 0);
    let o = w.raw(&["--key", "bob.key", "grant", "acme", "admin"], None);
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("deleted"), "{}", stderr(&o));
    w.verify_ok();
}

#[test]
fn r3_federated_users_get_only_temporary_credentials_of_15m_to_12h() {
    let mut w = World::new();
    w.user("fed", &["--federated"]);
    w.run(
        &[
            "key",
            "create",
            "--user",
            "fed",
            "--scenario",
            "x",
            "--confirm-necessary",
        ],
        3,
    );
    // A duration out of range is a usage error: nothing is recorded.
    let before = w.denied_count();
    for bad in ["10m", "12h1m"] {
        w.run(&["sts", "issue", "--user", "fed", "--duration", bad], 2);
    }
    assert_eq!(w.denied_count(), before);
    let v = w.json(&["sts", "issue", "--user", "fed"]);
    let id = v["access_key_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("KLST"));
    assert!(v["security_token"].as_str().unwrap().starts_with("kltk_"));
    assert_eq!(
        v["expiration"], "2026-03-01T13:00:00Z",
        "default duration is 1h"
    );
    let secret = v["access_key_secret"].as_str().unwrap().to_owned();
    let token = v["security_token"].as_str().unwrap().to_owned();
    // Expiry is decided on the real clock: dating the attempt back (KEYLEDGER_NOW) to
    // when the credentials were valid does not revive them.
    let o = w.raw(&["auth", &id], Some(&format!("{secret}\n{token}\n")));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("expired"), "{}", stderr(&o));
    // On the real clock: fresh credentials authenticate with the secret and the token.
    w.now = keyledger::core::types::Timestamp::now().to_string();
    let v = w.json(&["sts", "issue", "--user", "fed"]);
    let id = v["access_key_id"].as_str().unwrap().to_owned();
    let secret = v["access_key_secret"].as_str().unwrap().to_owned();
    let token = v["security_token"].as_str().unwrap().to_owned();
    let o = w.raw(&["auth", &id], Some(&secret));
    assert_eq!(code(&o), 1, "the secret alone is not enough");
    assert!(stderr(&o).contains("security token"), "{}", stderr(&o));
    let both = format!("{secret}\n{token}\n");
    assert_eq!(code(&w.raw(&["auth", &id], Some(&both))), 0);
    // Early deletion of another set.
    let v = w.json(&["sts", "issue", "--user", "fed", "--duration", "15m"]);
    let id2 = v["access_key_id"].as_str().unwrap().to_owned();
    w.run(&["key", "delete", &id2], 0);
    assert_eq!(w.json(&["key", "show", &id2])["key"]["status"], "deleted");
    w.verify_ok();
}

#[test]
fn r4_permissions_decide_who_manages_which_keys() {
    let mut w = World::new();
    w.user("bob", &[]);
    w.user("carol", &[]);
    w.user("ops", &[]);
    // Only the account or an admin grants.
    w.run(&["--key", "bob.key", "grant", "bob", "admin"], 3);
    w.run(&["grant", "bob", "manage-own-keys"], 0);
    w.run(&["grant", "ops", "manage-keys"], 0);
    // manage-own-keys: own keys only.
    let (bob_key, bob_secret) = w.create_key("bob.key", "bob");
    w.run(
        &[
            "--key",
            "bob.key",
            "key",
            "create",
            "--user",
            "carol",
            "--scenario",
            "x",
            "--confirm-necessary",
        ],
        3,
    );
    // manage-keys: any user's keys, but not the account's.
    let (carol_key, _) = w.create_key("ops.key", "carol");
    w.run(&["--key", "ops.key", "key", "disable", &bob_key], 0);
    w.run(
        &[
            "--key",
            "ops.key",
            "key",
            "create",
            "--user",
            "acme",
            "--scenario",
            "x",
            "--confirm-necessary",
            "--allow-root-key",
        ],
        3,
    );
    w.run(&["--key", "bob.key", "key", "disable", &carol_key], 3);
    w.run(&["revoke", "bob", "manage-own-keys"], 0);
    w.run(&["--key", "bob.key", "key", "enable", &bob_key], 3);
    w.run(&["--key", "ops.key", "key", "enable", &bob_key], 0);
    // A key authenticates only as its owner.
    let v: Value = serde_json::from_str(&stdout(
        &w.raw(&["--json", "auth", &bob_key], Some(&bob_secret)),
    ))
    .unwrap();
    assert_eq!(v["user"], "bob");
    assert_eq!(w.denied_count(), 5);
    w.verify_ok();
}

#[test]
fn r5_key_ids_are_unique_recognisable_and_checksummed() {
    let mut w = World::new();
    let mut ids = std::collections::BTreeSet::new();
    for i in 0..6 {
        let name = format!("u{i}");
        w.user(&name, &[]);
        for _ in 0..2 {
            let (id, _) = w.create_key("keyledger.key", &name);
            assert!(id.starts_with("KLAK") && id.len() == 26, "{id}");
            assert!(keyledger::core::credentials::id_form(&id).is_some());
            ids.insert(id);
        }
    }
    assert_eq!(ids.len(), 12);
    let id = ids.iter().next().unwrap().clone();
    let mut bad = id.clone().into_bytes();
    bad[10] = if bad[10] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let o = w.raw(&["key", "disable", &bad], None);
    assert_eq!(code(&o), 2, "a mistyped ID fails its checksum");
    assert!(stderr(&o).contains("checksum"));
    w.verify_ok();
}

#[test]
fn r6_only_a_domain_separated_fingerprint_of_the_secret_is_stored() {
    let mut w = World::new();
    w.user("bob", &[]);
    let (id, secret) = w.create_key("keyledger.key", "bob");
    assert!(secret.starts_with("klsk_") && secret.len() == 51);
    assert!(keyledger::core::credentials::is_valid(
        keyledger::core::credentials::Form::Secret,
        &secret
    ));
    let ledger = w.ledger();
    assert!(!ledger.windows(secret.len()).any(|x| x == secret.as_bytes()));
    let seq = w.json(&["key", "show", &id])["key"]["created_seq"]
        .as_u64()
        .unwrap();
    let ev = w.json(&["inspect", &seq.to_string()]);
    let stored = ev["fields"]["key-created"]["fingerprint"].as_str().unwrap();
    let mut h = blake3::Hasher::new_derive_key("keyledger 2026-11-22 secret fingerprint v1");
    h.update(id.as_bytes());
    h.update(&[0]);
    h.update(secret.as_bytes());
    assert_eq!(stored, h.finalize().to_hex().as_str());
    w.verify_ok();
}

#[test]
fn r7_at_most_two_keys_per_user_disabled_ones_included() {
    let mut w = World::new();
    w.user("bob", &[]);
    let (k1, _) = w.create_key("keyledger.key", "bob");
    w.create_key("keyledger.key", "bob");
    w.run(&["key", "disable", &k1], 0);
    let o = w.raw(
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "x",
            "--confirm-necessary",
        ],
        None,
    );
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("already has 2 access keys"),
        "{}",
        stderr(&o)
    );
    assert!(
        credentials_in(&stdout(&o)).is_empty(),
        "no secret is shown for a refused key"
    );
    w.run(&["key", "delete", &k1], 0);
    w.create_key("keyledger.key", "bob");
    w.verify_ok();
}

#[test]
fn r8_active_on_creation_disable_enable_and_final_delete() {
    let mut w = World::new();
    w.user("bob", &[]);
    let (k, _) = w.create_key("keyledger.key", "bob");
    let status = |w: &mut World| {
        w.json(&["key", "show", &k])["key"]["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status(&mut w), "active");
    w.run(&["key", "enable", &k], 3);
    w.run(&["key", "disable", &k], 0);
    assert_eq!(status(&mut w), "disabled");
    w.run(&["key", "disable", &k], 3);
    w.run(&["key", "enable", &k], 0);
    assert_eq!(status(&mut w), "active");
    w.run(&["key", "delete", &k], 0);
    assert_eq!(status(&mut w), "deleted");
    for verb in ["enable", "disable", "delete"] {
        w.run(&["key", verb, &k], 3);
    }
    w.verify_ok();
}

#[test]
fn r9_creation_needs_a_scenario_and_a_confirmation_both_recorded_a_missing_one_is_usage() {
    let mut w = World::new();
    w.user("bob", &[]);
    let o = w.raw(
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "nightly export",
        ],
        None,
    );
    // What the request alone gets wrong is a usage error (exit 2), not evidence.
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--confirm-necessary"));
    assert!(stderr(&o).contains("Nothing was recorded"));
    w.run(
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            " ",
            "--confirm-necessary",
        ],
        2,
    );
    assert_eq!(w.denied_count(), 0);
    let (id, _) = w.create_key("keyledger.key", "bob");
    let seq = w.json(&["key", "show", &id])["key"]["created_seq"]
        .as_u64()
        .unwrap();
    let ev = w.json(&["inspect", &seq.to_string()]);
    assert_eq!(ev["fields"]["key-created"]["scenario"], "service");
    assert_eq!(ev["fields"]["key-created"]["confirmed_necessary"], true);
    w.verify_ok();
}

#[test]
fn r10_the_secret_is_revealed_exactly_once_and_the_reveal_recorded() {
    let mut w = World::new();
    w.user("bob", &[]);
    let out = w.run(
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "s",
            "--confirm-necessary",
            "--csv",
            "bob.csv",
        ],
        0,
    );
    let csv = w.path().join("bob.csv");
    w.secret_files.push(csv.canonicalize().unwrap());
    assert_eq!(
        std::fs::metadata(&csv).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("AccessKey ID,AccessKey Secret"));
    let (id, secret) = lines.next().unwrap().split_once(',').unwrap();
    w.secrets.push(secret.to_owned());
    assert!(
        out.contains(id) && !out.contains(secret),
        "stdout names the file, not the secret"
    );
    let shown = w.json(&["key", "show", id]);
    let revealed = &shown["key"]["revealed"];
    assert_eq!(revealed["to"], "acme");
    assert_eq!(
        revealed["channel"],
        format!("csv:{}", csv.canonicalize().unwrap().display())
    );
    // Never overwrite; no key is created when the file cannot be.
    let before = w.json(&["key", "list"])["keys"].as_array().unwrap().len();
    let o = w.raw(
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "s",
            "--confirm-necessary",
            "--csv",
            "bob.csv",
        ],
        None,
    );
    assert_eq!(code(&o), 2);
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), text);
    assert_eq!(
        w.json(&["key", "list"])["keys"].as_array().unwrap().len(),
        before
    );
    // Other channels record themselves.
    let env = w.run(
        &[
            "key",
            "create",
            "--user",
            "bob",
            "--scenario",
            "s",
            "--confirm-necessary",
            "--format",
            "env",
        ],
        0,
    );
    assert!(env.contains("KEYLEDGER_ACCESS_KEY_SECRET=klsk_"));
    let reveals = w.json(&["log", "--action", "secret-revealed"])["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(reveals.len(), 2);
    assert_eq!(
        reveals[1]["detail"]["secret-revealed"]["channel"],
        "stdout:env"
    );
    // Nothing shows a secret again.
    for args in [
        &["key", "show", id][..],
        &["log"],
        &["--json", "log"],
        &["key", "list"],
    ] {
        let o = w.raw(args, None);
        assert!(credentials_in(&stdout(&o)).is_empty(), "{args:?}");
    }
    // A crash between creation and reveal leaves the key marked never revealed.
    {
        let mut l = keyledger::storage::ledger::Ledger::open(
            &w.path().join("keyledger.ledger"),
            keyledger::storage::store::Wait::Block,
        )
        .unwrap();
        let key = keyledger::storage::keyfile::load(&w.path().join("keyledger.key")).unwrap();
        let req = keyledger::protocol::ops::KeyRequest {
            user: "acme",
            scenario: "s",
            confirmed_necessary: true,
            allow_root_key: true,
        };
        let k = l
            .create_key(
                &key,
                &req,
                keyledger::core::types::Timestamp::parse(NOW).unwrap(),
            )
            .unwrap();
        drop(l);
        let shown = w.json(&["key", "show", &k.key_id]);
        assert_eq!(shown["key"]["revealed"], Value::Null);
        assert!(
            w.run(&["key", "show", &k.key_id], 0)
                .contains("secret never revealed")
        );
    }
    w.verify_ok();
}

#[test]
fn r11_auth_checks_the_secret_and_records_last_use_and_failures() {
    let mut w = World::new();
    w.user("bob", &[]);
    let (id, secret) = w.create_key("keyledger.key", "bob");
    assert_eq!(
        w.json(&["key", "show", &id])["key"]["last_used"],
        Value::Null
    );
    w.now = "2026-03-02T08:00:00Z".into();
    let o = w.raw(&["auth", &id], Some(&format!("{secret}\n")));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        w.json(&["key", "show", &id])["key"]["last_used"],
        "2026-03-02T08:00:00Z"
    );
    let wrong = w.raw(&["auth", &id], Some("klsk_not-the-secret"));
    assert_eq!(code(&wrong), 1);
    assert!(
        !stderr(&wrong).contains("klsk_not"),
        "failure messages carry no secret material"
    );
    w.run(&["key", "disable", &id], 0);
    assert_eq!(code(&w.raw(&["auth", &id], Some(&secret))), 1);
    let unknown = keyledger::core::credentials::new_key_id(false);
    assert_eq!(code(&w.raw(&["auth", &unknown], Some(&secret))), 1);
    let fails = w.json(&["log", "--action", "auth-failed"])["events"]
        .as_array()
        .unwrap()
        .clone();
    let reasons: Vec<&str> = fails
        .iter()
        .map(|e| e["detail"]["auth-failed"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "the secret does not match",
            "the key is disabled",
            "no such access key"
        ]
    );
    assert_eq!(w.json(&["key", "show", &id])["key"]["failed_auths"], 2);
    w.verify_ok();
}

#[test]
fn r12_a_refusal_is_an_action_denied_event_and_changes_nothing_else() {
    let mut w = World::new();
    w.user("bob", &[]);
    let users_before = w.json(&["user", "list"])["principals"].clone();
    let o = w.raw(&["--key", "bob.key", "user", "create", "mallory"], None);
    assert_eq!(code(&o), 3);
    let err = stderr(&o);
    assert!(
        err.contains("bob may not create users") && err.contains("admin"),
        "{err}"
    );
    assert!(err.contains("action-denied at seq"), "{err}");
    assert_eq!(w.json(&["user", "list"])["principals"], users_before);
    let denied = w.json(&["log", "--action", "action-denied"]);
    let e = &denied["events"][0];
    assert_eq!(e["actor"], "bob");
    assert_eq!(e["detail"]["action-denied"]["user"], "mallory");
    assert!(
        e["detail"]["action-denied"]["reason"]
            .as_str()
            .unwrap()
            .contains("may not create users")
    );
    let human = w.run(&["log", "--action", "action-denied"], 0);
    assert!(human.contains("user-created mallory"), "{human}");
    // A key that is not enrolled cannot sign anything, not even a refusal.
    w.run(&["keygen", "--out", "stranger.key"], 0);
    let len = w.ledger().len();
    let o = w.raw(&["--key", "stranger.key", "user", "create", "x"], None);
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("not an enrolled signing key"),
        "{}",
        stderr(&o)
    );
    assert_eq!(w.ledger().len(), len);
    w.verify_ok();
}
