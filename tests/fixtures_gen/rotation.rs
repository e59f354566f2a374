//! Fixtures for `key-rotated` (revision 2026-11-24 (2) of ledger-format.md, §5 and §7.3):
//! one valid rotation, and one ledger per clause of the rule, each breaking only it.

use keyledger::core::credentials;
use keyledger::core::event::{Action, Permission};

use super::common::*;
use super::{Fixture, Fixtures, one_finding, verdict};

fn rotated(old: char, new: char) -> Action {
    Action::KeyRotated {
        old_key_id: fixed_key_id(false, old),
        new_key_id: fixed_key_id(false, new),
    }
}

/// Genesis by acme (key 1), then `actions` signed by acme, then `last` signed by `signer`.
fn ledger(actions: Vec<Action>, signer: u8, last: Action) -> RawLedger {
    let mut l = RawLedger::new();
    l.push(&key(1), genesis());
    for a in actions {
        l.push(&key(1), a);
    }
    l.push(&key(signer), last);
    l
}

pub fn ledgers() -> Vec<Fixture> {
    let mut out = Fixtures::default();
    let mut add = |file, l, verdicts| out.add(file, l, verdicts);
    let bad = |description: &str, seq: u64| one_finding(description, seq, "policy");

    let mut l = ledger(
        vec![
            user("alice"),
            permanent('A', "alice"),
            permanent('B', "alice"),
        ],
        1,
        rotated('A', 'B'),
    );
    l.push(
        &key(1),
        Action::KeyDisabled {
            key_id: fixed_key_id(false, 'A'),
        },
    );
    add(
        "rotation-valid.ledger",
        l,
        vec![verdict(
            "alice's key A rotated to her newer key B by acme, then A disabled: valid",
            &[],
            0,
            None,
            &[],
        )],
    );
    add(
        "rotation-other-user.ledger",
        ledger(
            vec![
                user("alice"),
                user("bob"),
                permanent('A', "alice"),
                permanent('B', "bob"),
            ],
            1,
            rotated('A', 'B'),
        ),
        bad(
            "alice's key A rotated to bob's key B: the keys of a rotation belong to one user",
            5,
        ),
    );
    add(
        "rotation-to-older-key.ledger",
        ledger(
            vec![
                user("alice"),
                permanent('A', "alice"),
                permanent('B', "alice"),
            ],
            1,
            rotated('B', 'A'),
        ),
        bad(
            "key B rotated to key A, created before it: the new key must be newer",
            4,
        ),
    );
    add(
        "rotation-unknown-new-key.ledger",
        ledger(
            vec![user("alice"), permanent('A', "alice")],
            1,
            rotated('A', 'B'),
        ),
        bad("key A rotated to a key B that was never created", 3),
    );
    add(
        "rotation-deleted-old-key.ledger",
        ledger(
            vec![
                user("alice"),
                permanent('A', "alice"),
                permanent('B', "alice"),
                Action::KeyDeleted {
                    key_id: fixed_key_id(false, 'A'),
                },
            ],
            1,
            rotated('A', 'B'),
        ),
        bad(
            "a deleted key A rotated to B: a deleted key takes no part in a rotation",
            5,
        ),
    );
    add(
        "rotation-twice.ledger",
        ledger(
            vec![
                user("alice"),
                permanent('A', "alice"),
                permanent('B', "alice"),
                rotated('A', 'B'),
                Action::KeyDeleted {
                    key_id: fixed_key_id(false, 'B'),
                },
                permanent('C', "alice"),
            ],
            1,
            rotated('A', 'C'),
        ),
        bad(
            "key A, already rotated to B (since deleted), rotated again to C: a key is rotated once",
            7,
        ),
    );
    let t = fixed_key_id(true, 'T');
    add(
        "rotation-to-temporary.ledger",
        ledger(
            vec![
                user("alice"),
                permanent('A', "alice"),
                Action::TemporaryIssued {
                    fingerprint: credentials::fingerprint(&t, &fixed_secret('t')),
                    token_fingerprint: credentials::fingerprint(&t, &fixed_secret('u')),
                    key_id: t.clone(),
                    user: "alice".into(),
                    expires: time_of(3).plus_micros(3600 * 1_000_000),
                },
            ],
            1,
            Action::KeyRotated {
                old_key_id: fixed_key_id(false, 'A'),
                new_key_id: t,
            },
        ),
        bad(
            "a permanent key rotated to temporary credentials: only permanent keys take part",
            4,
        ),
    );
    add(
        "rotation-by-non-manager.ledger",
        ledger(
            vec![
                user("alice"),
                user("bob"),
                Action::SignerEnrolled {
                    principal: "bob".into(),
                    public_key: key(3).public(),
                },
                Action::PermissionGranted {
                    principal: "bob".into(),
                    permission: Permission::ManageOwnKeys,
                },
                permanent('A', "alice"),
                permanent('B', "alice"),
            ],
            3,
            rotated('A', 'B'),
        ),
        bad(
            "bob, who manages only his own keys, rotates alice's key: he does not manage alice",
            7,
        ),
    );
    out.0
}
