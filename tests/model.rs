//! Property test: random action sequences are applied to a real ledger and to an
//! independent in-memory model of the rules (written here from ledger-format.md §7, not
//! from src/state.rs). Every outcome must agree; the replayed state must equal the model;
//! the ledger must verify.

mod common;

use keyledger::protocol::ops::Ops;
use keyledger::storage::ledger::Appender;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use keyledger::core::event::{Action, Permission};
use keyledger::core::state::KeyStatus;
use keyledger::core::types::Timestamp;
use keyledger::protocol::ops::KeyRequest;
use keyledger::storage::ledger::Ledger;
use keyledger::storage::store::{self, StoreError};
use proptest::prelude::*;

const ACTORS: [&str; 3] = ["acme", "u0", "u1"];
const NEW_USERS: [&str; 3] = ["u2", "u3", "f0"];
const ALL: [&str; 6] = ["acme", "u0", "u1", "u2", "u3", "f0"];
const PERMS: [Permission; 3] = [
    Permission::Admin,
    Permission::ManageKeys,
    Permission::ManageOwnKeys,
];

#[derive(Debug, Clone)]
enum Op {
    CreateUser(usize),
    DeleteUser(usize, bool),
    Grant(usize, usize),
    Revoke(usize, usize),
    CreateKey(usize, bool),
    Disable(usize),
    Enable(usize),
    Delete(usize),
}

fn op() -> impl Strategy<Value = (usize, Op)> {
    let o = prop_oneof![
        2 => (0..3usize).prop_map(Op::CreateUser),
        1 => (0..6usize, any::<bool>()).prop_map(|(u, d)| Op::DeleteUser(u, d)),
        3 => (0..6usize, 0..3usize).prop_map(|(u, p)| Op::Grant(u, p)),
        1 => (0..6usize, 0..3usize).prop_map(|(u, p)| Op::Revoke(u, p)),
        4 => (0..6usize, prop::bool::weighted(0.3)).prop_map(|(u, r)| Op::CreateKey(u, r)),
        2 => (0..8usize).prop_map(Op::Disable),
        2 => (0..8usize).prop_map(Op::Enable),
        1 => (0..8usize).prop_map(Op::Delete),
    ];
    // The account acts half the time, so that much of what is tried is allowed.
    (
        prop_oneof![3 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)],
        o,
    )
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    Denied,
    BadSigner,
}

#[derive(Default, Debug)]
struct Model {
    /// name → (federated, deleted, permissions)
    users: BTreeMap<String, (bool, bool, BTreeSet<Permission>)>,
    /// (id, owner, status) in creation order
    keys: Vec<(String, String, KeyStatus)>,
}

impl Model {
    fn live(&self, u: &str) -> bool {
        u == "acme" || self.users.get(u).is_some_and(|x| !x.1)
    }
    fn has(&self, a: &str, p: Permission) -> bool {
        a == "acme" || self.users.get(a).is_some_and(|x| !x.1 && x.2.contains(&p))
    }
    fn admin(&self, a: &str) -> bool {
        self.has(a, Permission::Admin)
    }
    fn manages(&self, a: &str, owner: &str) -> bool {
        if owner == "acme" {
            return a == "acme";
        }
        self.admin(a)
            || self.has(a, Permission::ManageKeys)
            || (a == owner && self.has(a, Permission::ManageOwnKeys))
    }
    fn live_keys(&self, owner: &str) -> usize {
        self.keys
            .iter()
            .filter(|k| k.1 == owner && k.2 != KeyStatus::Deleted)
            .count()
    }
}

fn run_case(ops: Vec<(usize, Op)>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.ledger");
    let keys: Vec<_> = (1..=3u8).map(common::key).collect();
    let t = Timestamp(common::T0);
    let (mut l, _) = Ledger::init(&path, "acme", &keys[0], t).unwrap();
    let mut m = Model::default();
    for (i, u) in ["u0", "u1"].iter().enumerate() {
        l.append(
            &keys[0],
            Action::UserCreated {
                name: (*u).into(),
                federated: false,
            },
            t,
        )
        .unwrap();
        l.append(
            &keys[0],
            Action::SignerEnrolled {
                principal: (*u).into(),
                public_key: keys[i + 1].public(),
            },
            t,
        )
        .unwrap();
        m.users.insert((*u).into(), (false, false, BTreeSet::new()));
    }
    for (actor_i, op) in ops {
        let actor = ACTORS[actor_i];
        let signer = &keys[actor_i];
        let key_at = |i: usize| m.keys.get(i % m.keys.len().max(1)).map(|k| k.0.clone());
        if !m.live(actor) {
            // A deleted principal's key signs nothing.
            let r = l.append(
                signer,
                Action::UserCreated {
                    name: "zz".into(),
                    federated: false,
                },
                t,
            );
            prop_assert!(matches!(r, Err(StoreError::Signer(_))), "{r:?}");
            continue;
        }
        let outcome = |r: Result<(), StoreError>| match r {
            Ok(()) => Outcome::Done,
            Err(StoreError::Denied { .. }) => Outcome::Denied,
            Err(StoreError::Signer(_)) => Outcome::BadSigner,
            Err(e) => panic!("unexpected error {e}"),
        };
        let (expected, got) = match op {
            Op::CreateUser(i) => {
                let name = NEW_USERS[i];
                let ok = m.admin(actor) && !m.users.contains_key(name);
                if ok {
                    m.users
                        .insert(name.into(), (name == "f0", false, BTreeSet::new()));
                }
                let r = l.append(
                    signer,
                    Action::UserCreated {
                        name: name.into(),
                        federated: name == "f0",
                    },
                    t,
                );
                (ok, outcome(r.map(|_| ())))
            }
            Op::DeleteUser(i, delete_keys) => {
                let name = ALL[i];
                // Keys go first only if the deletion itself may happen (by an admin, who
                // manages every key but the account's, of a live user): a refused deletion
                // deletes none of them on its way.
                let may = m.admin(actor) && name != "acme" && m.live(name);
                if delete_keys && may {
                    for k in &mut m.keys {
                        if k.1 == name {
                            k.2 = KeyStatus::Deleted;
                        }
                    }
                }
                let expected = may && m.live_keys(name) == 0;
                if expected {
                    m.users.get_mut(name).unwrap().1 = true;
                }
                let r = l.delete_user(signer, name, delete_keys, t);
                (expected, outcome(r.map(|_| ())))
            }
            Op::Grant(i, p) | Op::Revoke(i, p) => {
                let (name, perm) = (ALL[i], PERMS[p]);
                let grant = matches!(op, Op::Grant(..));
                let holds = m.users.get(name).is_some_and(|x| x.2.contains(&perm));
                let ok = m.admin(actor) && name != "acme" && m.live(name) && (holds != grant);
                if ok {
                    let set = &mut m.users.get_mut(name).unwrap().2;
                    if grant {
                        set.insert(perm);
                    } else {
                        set.remove(&perm);
                    }
                }
                let principal = name.to_owned();
                let a = if grant {
                    Action::PermissionGranted {
                        principal,
                        permission: perm,
                    }
                } else {
                    Action::PermissionRevoked {
                        principal,
                        permission: perm,
                    }
                };
                (ok, outcome(l.append(signer, a, t).map(|_| ())))
            }
            Op::CreateKey(i, allow_root) => {
                let owner = ALL[i];
                let federated = m.users.get(owner).is_some_and(|x| x.0);
                let ok = m.live(owner)
                    && !federated
                    && (owner != "acme" || allow_root)
                    && m.manages(actor, owner)
                    && m.live_keys(owner) < 2;
                let req = KeyRequest {
                    user: owner,
                    scenario: "s",
                    confirmed_necessary: true,
                    allow_root_key: allow_root,
                };
                let r = l.create_key(signer, &req, t);
                if let Ok(k) = &r {
                    m.keys
                        .push((k.key_id.clone(), owner.into(), KeyStatus::Active));
                }
                (ok, outcome(r.map(|_| ())))
            }
            Op::Disable(i) | Op::Enable(i) | Op::Delete(i) => {
                let id =
                    key_at(i).unwrap_or_else(|| keyledger::core::credentials::new_key_id(false));
                let k = m.keys.iter().position(|k| k.0 == id);
                let (want_from, to): (&[KeyStatus], KeyStatus) = match op {
                    Op::Disable(_) => (&[KeyStatus::Active], KeyStatus::Disabled),
                    Op::Enable(_) => (&[KeyStatus::Disabled], KeyStatus::Active),
                    _ => (
                        &[KeyStatus::Active, KeyStatus::Disabled],
                        KeyStatus::Deleted,
                    ),
                };
                let ok = k.is_some_and(|k| {
                    m.manages(actor, &m.keys[k].1) && want_from.contains(&m.keys[k].2)
                });
                if ok {
                    m.keys[k.unwrap()].2 = to;
                }
                let key_id = id.clone();
                let a = match op {
                    Op::Disable(_) => Action::KeyDisabled { key_id },
                    Op::Enable(_) => Action::KeyEnabled { key_id },
                    _ => Action::KeyDeleted { key_id },
                };
                (ok, outcome(l.append(signer, a, t).map(|_| ())))
            }
        };
        let expected = if expected {
            Outcome::Done
        } else {
            Outcome::Denied
        };
        if got == Outcome::Done { &DONE } else { &DENIED }.fetch_add(1, Ordering::Relaxed);
        prop_assert_eq!(&got, &expected, "actor {} model {:?}", actor, m);
    }
    drop(l);
    let replay = store::replay(
        &path,
        &keyledger::storage::cache::Cache::none(),
        None,
        |_| {},
    )
    .unwrap();
    let s = &replay.state;
    for (name, (federated, deleted, perms)) in &m.users {
        let p = &s.principals[name];
        prop_assert_eq!(p.deleted.is_some(), *deleted, "{}", name);
        prop_assert_eq!(
            p.kind == keyledger::core::state::PrincipalKind::Federated,
            *federated
        );
        prop_assert_eq!(
            &p.permissions.keys().copied().collect::<BTreeSet<_>>(),
            perms
        );
    }
    prop_assert_eq!(s.principals.len(), m.users.len() + 1);
    prop_assert_eq!(s.keys.len(), m.keys.len());
    for (id, owner, status) in &m.keys {
        prop_assert_eq!(&s.keys[id].user, owner);
        prop_assert_eq!(s.keys[id].status, *status);
    }
    let report = keyledger::evidence::verify::verify_file(&path, &Default::default()).unwrap();
    prop_assert!(report.ok, "{:?}", report.findings);
    Ok(())
}

static DONE: AtomicUsize = AtomicUsize::new(0);
static DENIED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn random_actions_agree_with_an_independent_model() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(op(), 1..40), run_case)
        .unwrap();
    let (done, denied) = (DONE.load(Ordering::Relaxed), DENIED.load(Ordering::Relaxed));
    println!("model agreed on {done} allowed and {denied} refused actions");
    // The test means something only if both kinds occur often.
    assert!(
        done > 300 && denied > 300,
        "allowed {done}, refused {denied}"
    );
}
