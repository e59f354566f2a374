//! Fixtures for `leak-reported` (version 2 revision 2026-12-02 (2) of ledger-format.md,
//! §5, §7.1 and §7.3): one valid history, and one ledger per clause of the rule.

use keyledger::core::event::{Action, Permission};

use super::common::*;
use super::{Fixture, Fixtures, one_finding, verdict};

fn report(key: char, source: &str, reason: &str) -> Action {
    Action::LeakReported {
        key_id: fixed_key_id(false, key),
        source: source.into(),
        reason: reason.into(),
    }
}

/// Genesis by acme (key 1); alice (key A) and bob (signing key 3, manage-own-keys); then
/// `last` signed by `signer`.
fn ledger(signer: u8, last: Action) -> RawLedger {
    let mut l = RawLedger::new();
    l.push(&key(1), genesis());
    for a in [
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
    ] {
        l.push(&key(1), a);
    }
    l.push(&key(signer), last);
    l
}

pub fn ledgers() -> Vec<Fixture> {
    let mut out = Fixtures::default();
    let mut add = |file, l, verdicts| out.add(file, l, verdicts);
    let bad = |description: &str, seq: u64| one_finding(description, seq, "policy");
    let source = "https://github.com/acme/app/blob/main/.env";

    let mut l = ledger(1, report('A', source, "found by a secret scanner"));
    l.push(
        &key(1),
        Action::KeyDisabled {
            key_id: fixed_key_id(false, 'A'),
        },
    );
    // A second report of the now disabled key is still evidence.
    l.push(&key(1), report('A', "stdin", "reported again"));
    add(
        "leak-valid.ledger",
        l,
        vec![verdict(
            "acme reports alice's key A leaked (seq 6), disables it (seq 7) and reports it again while disabled (seq 8): valid",
            &[],
            0,
            None,
            &[],
        )],
    );
    add(
        "leak-by-non-manager.ledger",
        ledger(3, report('A', source, "seen in a paste")),
        bad(
            "bob, who manages only his own keys, reports alice's key: he does not manage alice",
            6,
        ),
    );
    add(
        "leak-unknown-key.ledger",
        ledger(1, report('Z', source, "seen in a paste")),
        bad("a leak report of a key the ledger never created", 6),
    );
    add(
        "leak-empty-source.ledger",
        ledger(1, report('A', " \t", "seen in a paste")),
        bad(
            "a leak report whose source is only white space: it must say where the credential was found",
            6,
        ),
    );
    add(
        "leak-source-too-long.ledger",
        ledger(1, report('A', &"x".repeat(1025), "seen in a paste")),
        bad(
            "a leak report whose source is 1,025 bytes (the bound is 1,024)",
            6,
        ),
    );
    // R14: the server gw (holding only `server`) records a secret scanner's report on its
    // own key and disables the key right after: alice's keys A (seq 9) and B (seq 10).
    let served = |last: &dyn Fn(&mut RawLedger)| {
        let mut l = super::requests::base();
        l.push(&key(1), permanent('A', "alice"));
        l.push(&key(1), permanent('B', "alice"));
        last(&mut l);
        l
    };
    let gw = super::requests::GW;
    let disable = |k: char| Action::KeyDisabled {
        key_id: fixed_key_id(false, k),
    };
    let scanned = report('A', source, "secret scanning partner report");
    add(
        "leak-by-server.ledger",
        served(&|l| {
            l.push(&key(gw), scanned.clone());
            l.push(&key(gw), disable('A'));
        }),
        vec![verdict(
            "gw, holding only server, records a scanner's report of alice's key A (seq 11) and disables A right after it (seq 12): valid",
            &[],
            0,
            None,
            &[],
        )],
    );
    add(
        "leak-server-disables-unreported.ledger",
        served(&|l| {
            l.push(&key(gw), disable('A'));
        }),
        bad(
            "gw disables alice's key A with no leak report before it",
            11,
        ),
    );
    add(
        "leak-server-disables-other-key.ledger",
        served(&|l| {
            l.push(&key(gw), scanned.clone());
            l.push(&key(gw), disable('B'));
        }),
        bad(
            "gw reports alice's key A (seq 11), then disables key B (seq 12), which it did not report",
            12,
        ),
    );
    add(
        "leak-server-disables-after-denial.ledger",
        served(&|l| {
            l.push(&key(gw), scanned.clone());
            l.push(
                &key(1),
                Action::ActionDenied {
                    attempted: "user-created carol".into(),
                    user: Some("carol".into()),
                    key_id: None,
                    reason: "[R2] a refusal".into(),
                },
            );
            l.push(&key(gw), disable('A'));
        }),
        bad(
            "gw reports key A (seq 11), an action-denied is recorded (seq 12: it changes the state in §8's sense), then gw disables A (seq 13)",
            13,
        ),
    );
    add(
        "leak-server-disables-later.ledger",
        served(&|l| {
            l.push(&key(gw), scanned.clone());
            l.push(&key(1), user("carol"));
            l.push(&key(gw), disable('A'));
        }),
        bad(
            "gw reports key A (seq 11), acme creates carol (seq 12), then gw disables A (seq 13): not right after the report",
            13,
        ),
    );
    out.0
}
