//! The demo: a realistic ledger built through the same API the CLI uses. Events are spread
//! over the 120 days before `now` so that audits have history to look at.

use crate::protocol::ops::Ops;
use crate::storage::ledger::Appender;
use std::path::{Path, PathBuf};

use crate::core::event::{Action, Permission};
use crate::core::signing::SigningKey;
use crate::core::types::Timestamp;
use crate::evidence::verify::{self, Report};
use crate::protocol::ops::KeyRequest;
use crate::storage::keyfile::{self, write_exclusive};
use crate::storage::ledger::Ledger;
use crate::storage::store::{StoreError, Wait};

/// What the demo built.
#[derive(Debug)]
pub struct Demo {
    pub dir: PathBuf,
    pub ledger: PathBuf,
    pub account_key: PathBuf,
    pub genesis: String,
    pub steps: Vec<String>,
    pub refusals: Vec<String>,
    /// One line on the derived state at the head.
    pub summary: String,
    pub report: Report,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Builds the demo ledger in `dir` (which must not exist or be empty).
pub fn build(dir: &Path, now: Timestamp) -> Result<Demo, DemoError> {
    let file_err = |path: &Path, e: &dyn std::fmt::Display| DemoError::File {
        path: path.into(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, &e))?;
    let keys_dir = dir.join("keys");
    let secrets_dir = dir.join("secrets");
    for d in [&keys_dir, &secrets_dir] {
        std::fs::create_dir_all(d).map_err(|e| file_err(d, &e))?;
    }
    let ledger_path = dir.join("demo.ledger");
    let mut day = now.plus_days(-120);
    let mut tick = || {
        // About 3.5 days apart: 32 events span the 120 days.
        day = day.plus_micros((3 * 24 + 13) * 3600 * 1_000_000 + 7 * 60 * 1_000_000);
        day
    };
    let new_key = |name: &str| -> Result<SigningKey, DemoError> {
        let k = SigningKey::generate();
        let p = keys_dir.join(format!("{name}.key"));
        keyfile::write_new(&k, &p).map_err(|e| file_err(&p, &e))?;
        Ok(k)
    };
    let acme = new_key("acme")?;
    let account_key = keys_dir.join("acme.key");
    let (mut l, genesis) = Ledger::init(&ledger_path, "acme", &acme, tick())?;
    let mut steps = vec![format!("init: account acme, genesis {}", genesis.hash)];
    let mut refusals = Vec::new();

    // Evidence of a refusal is the point of these calls: keep the reason, go on.
    let expect_denied = |r: Result<_, StoreError>, what: &str, refusals: &mut Vec<String>| match r {
        Err(StoreError::Denied { refusal, receipt }) => {
            refusals.push(format!(
                "{what}: {} (action-denied at seq {})",
                refusal.message, receipt.seq
            ));
            Ok(())
        }
        Err(e) => Err(DemoError::Store(e)),
        Ok(_) => Err(DemoError::File {
            path: ledger_path.clone(),
            message: format!("demo step {what:?} should have been refused"),
        }),
    };

    let alice = new_key("alice")?;
    let bob = new_key("bob")?;
    let ci = new_key("ci-deploy")?;
    l.append(
        &acme,
        Action::UserCreated {
            name: "alice".into(),
            federated: false,
        },
        tick(),
    )?;
    l.append(
        &acme,
        Action::SignerEnrolled {
            principal: "alice".into(),
            public_key: alice.public(),
        },
        tick(),
    )?;
    l.append(
        &acme,
        Action::PermissionGranted {
            principal: "alice".into(),
            permission: Permission::Admin,
        },
        tick(),
    )?;
    steps.push("acme created alice, enrolled her signing key and made her admin".into());
    for (name, federated) in [
        ("bob", false),
        ("carol", false),
        ("ci-deploy", false),
        ("partner-sso", true),
    ] {
        l.append(
            &alice,
            Action::UserCreated {
                name: name.into(),
                federated,
            },
            tick(),
        )?;
    }
    l.append(
        &alice,
        Action::SignerEnrolled {
            principal: "bob".into(),
            public_key: bob.public(),
        },
        tick(),
    )?;
    l.append(
        &alice,
        Action::SignerEnrolled {
            principal: "ci-deploy".into(),
            public_key: ci.public(),
        },
        tick(),
    )?;
    l.append(
        &alice,
        Action::PermissionGranted {
            principal: "bob".into(),
            permission: Permission::ManageOwnKeys,
        },
        tick(),
    )?;
    steps.push("alice created bob, carol, ci-deploy and federated partner-sso; bob may manage his own keys".into());

    let reveal_to_csv = |l: &mut Ledger,
                         signer: &SigningKey,
                         key: crate::protocol::ops::NewKey,
                         name: &str,
                         t: Timestamp|
     -> Result<String, DemoError> {
        let p = secrets_dir.join(format!("{name}.csv"));
        let csv = format!(
            "AccessKey ID,AccessKey Secret\n{},{}\n",
            key.key_id,
            key.secret.expose()
        );
        write_exclusive(&p, csv.as_bytes(), 0o600).map_err(|e| file_err(&p, &e))?;
        // A channel names the file by its absolute path (ledger-format.md §5).
        let abs = std::path::absolute(&p).map_err(|e| file_err(&p, &e))?;
        l.record_reveal(signer, &key.key_id, &format!("csv:{}", abs.display()), t)?;
        Ok(key.key_id)
    };
    let req = |user, scenario| KeyRequest {
        user,
        scenario,
        confirmed_necessary: true,
        allow_root_key: false,
    };
    let ci_key = l.create_key(
        &alice,
        &req(
            "ci-deploy",
            "CI runner outside the cloud uploads release artifacts",
        ),
        tick(),
    )?;
    let ci_secret = crate::core::credentials::SecretText::from_input(ci_key.secret.expose());
    let ci_id = reveal_to_csv(&mut l, &alice, ci_key, "ci-deploy-1", tick())?;
    steps.push(format!(
        "alice created {ci_id} for ci-deploy; secret revealed once into secrets/ci-deploy-1.csv"
    ));
    for _ in 0..3 {
        l.authenticate(&ci, &ci_id, &ci_secret, None, tick())?;
    }
    l.authenticate(
        &ci,
        &ci_id,
        &crate::core::credentials::SecretText::from_input("klsk_wrong"),
        None,
        tick(),
    )?;
    steps.push(format!(
        "{ci_id} authenticated 3 times; 1 attempt with a wrong secret was recorded"
    ));

    let bob1 = l.create_key(
        &bob,
        &req("bob", "local scripts against the storage API"),
        tick(),
    )?;
    let bob1 = reveal_to_csv(&mut l, &bob, bob1, "bob-1", tick())?;
    let bob2 = l.rotate_key(&bob, &bob1, tick())?;
    let bob2 = reveal_to_csv(&mut l, &bob, bob2, "bob-2", tick())?;
    steps.push(format!(
        "bob created his own key {bob1}, then rotated it to {bob2} (a key-rotated event ties them)"
    ));
    expect_denied(
        l.create_key(&bob, &req("bob", "a third key"), tick())
            .map(|_| ()),
        "bob asks for a third key",
        &mut refusals,
    )?;
    expect_denied(
        l.create_key(&bob, &req("carol", "a key for carol"), tick())
            .map(|_| ()),
        "bob creates a key for carol",
        &mut refusals,
    )?;
    expect_denied(
        l.create_key(
            &alice,
            &req("partner-sso", "permanent key for a federated user"),
            tick(),
        )
        .map(|_| ()),
        "alice creates a permanent key for federated partner-sso",
        &mut refusals,
    )?;
    expect_denied(
        l.create_key(&acme, &req("acme", "root key"), tick())
            .map(|_| ()),
        "acme creates a root key without --allow-root-key",
        &mut refusals,
    )?;

    l.append(
        &alice,
        Action::KeyDisabled {
            key_id: bob1.clone(),
        },
        tick(),
    )?;
    l.append(
        &alice,
        Action::KeyDeleted {
            key_id: bob1.clone(),
        },
        tick(),
    )?;
    steps.push(format!(
        "alice finished bob's rotation: {bob1} disabled, then deleted"
    ));

    let sts = l.issue_temporary(&alice, "partner-sso", 3600 * 1_000_000, tick())?;
    l.record_reveal(&alice, &sts.key_id, "stdout:json", sts.receipt.time)?;
    steps.push(format!(
        "alice issued temporary credentials {} to partner-sso, valid 1h until {}",
        sts.key_id, sts.expires
    ));

    let unrevealed = l.create_key(
        &alice,
        &req(
            "carol",
            "batch job; the session crashed before the secret was shown",
        ),
        tick(),
    )?;
    steps.push(format!(
        "alice created {} for carol but its secret was never revealed (an audit finding)",
        unrevealed.key_id
    ));
    drop(unrevealed);
    l.delete_user(&alice, "carol", true, tick())?;
    steps.push("alice deleted carol and her key".into());

    let genesis_hash = genesis.hash.hex();
    let head = l.head();
    let summary = summarize(l.state(), head.time);
    drop(l);
    let report = verify::verify_file(
        &ledger_path,
        &verify::Options {
            genesis: Some(genesis.hash),
            anchor: Some(verify::Anchor::Head(head.hash)),
            witness: None,
            witnessed: None,
        },
    )
    .map_err(|e| file_err(&ledger_path, &e))?;
    // Reopen to prove the lock was released and the file is appendable.
    Ledger::open(&ledger_path, Wait::NoWait)?;
    Ok(Demo {
        dir: dir.into(),
        ledger: ledger_path,
        account_key,
        genesis: genesis_hash,
        steps,
        refusals,
        summary,
        report,
    })
}

/// Principals and keys by status, as derived at `t`.
pub fn summarize(s: &crate::core::state::State, t: Timestamp) -> String {
    let deleted = s
        .principals
        .values()
        .filter(|p| p.deleted.is_some())
        .count();
    let mut by_status = std::collections::BTreeMap::new();
    for k in s.keys.values() {
        *by_status.entry(k.status_at(t)).or_insert(0) += 1;
    }
    let keys: Vec<String> = by_status
        .iter()
        .map(|(st, n)| format!("{n} {st}"))
        .collect();
    format!(
        "{} principals ({deleted} deleted), {} access keys ({}), {} events",
        s.principals.len(),
        s.keys.len(),
        keys.join(", "),
        s.events
    )
}
