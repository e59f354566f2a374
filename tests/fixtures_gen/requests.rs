//! Fixtures for format version 2 (ledger-format.md §4.1, §8 check 7a): events a server wrote
//! with the actor's signed request inside, one valid ledger and one per clause of check 7a,
//! each breaking only that clause (the frame re-signed by the server, so the frame itself
//! is authentic: only the request is wrong).

use keyledger::core::event::{Action, Event, Permission, Request};
use keyledger::core::request::{REQUEST_SKEW_US, request_hash};
use keyledger::core::types::{Bytes, LedgerId, Timestamp};

use super::common::*;
use super::{Fixture, Fixtures, one_finding, verdict};

/// acme (the account) = key 1; alice (manage-own-keys) = key 3; bob = key 4;
/// the server principal `gw` (holding only `server`) = key 5.
pub(super) const ACME: u8 = 1;
pub(super) const ALICE: u8 = 3;
pub(super) const BOB: u8 = 4;
pub(super) const GW: u8 = 5;

pub(super) fn ledger_id() -> LedgerId {
    match genesis() {
        Action::Genesis { ledger_id, .. } => ledger_id,
        _ => unreachable!(),
    }
}

/// A request by `signer` with a deterministic nonce (`n` repeated), signed over `action`
/// (the requested action) for `ledger`.
fn request(signer: u8, time: Timestamp, n: u8, ledger: &LedgerId, action: &Action) -> Request {
    let nonce = Bytes([n; 16]);
    let h = request_hash(ledger, time, &nonce, action);
    Request {
        key: key(signer).public(),
        time,
        nonce,
        refused: None,
        sig: Bytes(key(signer).sign_hash(&h)),
    }
}

fn user(name: &str, signer: u8) -> Vec<Action> {
    vec![
        Action::UserCreated {
            name: name.into(),
            federated: false,
        },
        Action::SignerEnrolled {
            principal: name.into(),
            public_key: key(signer).public(),
        },
    ]
}

fn grant(principal: &str, permission: Permission) -> Action {
    Action::PermissionGranted {
        principal: principal.into(),
        permission,
    }
}

/// Genesis and the principals, all by acme, in a version-2 file.
pub(super) fn base() -> RawLedger {
    let mut l = RawLedger::with_version(2);
    l.push(&key(ACME), genesis());
    let mut setup = user("gw", GW);
    setup.push(grant("gw", Permission::Server));
    setup.extend(user("alice", ALICE));
    setup.push(grant("alice", Permission::ManageOwnKeys));
    setup.extend(user("bob", BOB));
    for a in setup {
        l.push(&key(ACME), a);
    }
    l
}

/// Appends `action` through the server `server`, with `req` (or a request by `actor` made
/// here, nonce `n`, signed at the event's time).
pub(super) fn through(l: &mut RawLedger, server: u8, action: Action, req: Request) {
    let mut ev: Event = l.next(key(server).public(), action);
    ev.request = Some(req);
    l.push_event(&key(server), &ev);
}

pub(super) fn by(l: &RawLedger, actor: u8, n: u8, action: &Action) -> Request {
    request(actor, l.time, n, &ledger_id(), action)
}

/// The valid history: alice creates her key A through gw, reveals it, is refused creating
/// a user (recorded with the action she signed), and gw records a use of A on its own.
fn valid() -> RawLedger {
    let mut l = base();
    let a = permanent('A', "alice");
    let r = by(&l, ALICE, 1, &a);
    through(&mut l, GW, a, r);
    let reveal = Action::SecretRevealed {
        key_id: fixed_key_id(false, 'A'),
        to: "alice".into(),
        channel: "stdout:text".into(),
    };
    // Signed exactly 5 minutes before the event: the edge of the skew, still valid.
    let r = request(
        ALICE,
        l.time.plus_micros(-REQUEST_SKEW_US),
        2,
        &ledger_id(),
        &reveal,
    );
    through(&mut l, GW, reveal, r);
    let wanted = user("mallory", 9).remove(0);
    let mut r = by(&l, ALICE, 3, &wanted);
    r.refused = Some(wanted);
    through(
        &mut l,
        GW,
        Action::ActionDenied {
            attempted: "user-created mallory".into(),
            user: Some("mallory".into()),
            key_id: None,
            reason: "[R4] alice may not create users".into(),
        },
        r,
    );
    l.push(
        &key(GW),
        Action::AuthSucceeded {
            key_id: fixed_key_id(false, 'A'),
        },
    );
    l
}

/// The bytes of `requests-valid.ledger`, for the bundle fixtures.
pub fn valid_bytes() -> Vec<u8> {
    valid().bytes
}

/// `valid()` up to and including alice's key creation (seq 9), then `last` through gw.
fn then(last: impl FnOnce(&mut RawLedger)) -> RawLedger {
    let mut l = base();
    let a = permanent('A', "alice");
    let r = by(&l, ALICE, 1, &a);
    through(&mut l, GW, a, r);
    last(&mut l);
    l
}

fn disable_a() -> Action {
    Action::KeyDisabled {
        key_id: fixed_key_id(false, 'A'),
    }
}

/// Appends alice's key A disabled through `server`, with the request `req` makes for it.
fn disable(l: &mut RawLedger, server: u8, req: impl FnOnce(&RawLedger, &Action) -> Request) {
    let a = disable_a();
    let r = req(l, &a);
    through(l, server, a, r);
}

pub fn ledgers() -> Vec<Fixture> {
    let mut out = Fixtures::default();
    let mut add = |file, l, verdicts| out.add(file, l, verdicts);
    let bad = one_finding;
    add(
        "requests-valid.ledger",
        valid(),
        vec![verdict(
            "version 2: alice acts through the server gw (her key creation, a reveal signed 5 minutes before its event, a refusal recorded with the action she signed) and gw records a use of her key: valid",
            &[],
            0,
            None,
            &[],
        )],
    );
    // One byte of the request changed, the frame re-signed by the server: what a server
    // that forged or altered a request would write.
    for (file, what, byte) in [
        ("requests-sig-byte.ledger", "signature", 0usize),
        ("requests-nonce-byte.ledger", "nonce", 1),
        ("requests-time-byte.ledger", "time", 2),
    ] {
        let l = then(|l| {
            disable(l, GW, |l, a| {
                let mut r = by(l, ALICE, 4, a);
                match byte {
                    0 => r.sig.0[17] ^= 0x01,
                    1 => r.nonce.0[5] ^= 0x01,
                    _ => r.time = r.time.plus_micros(1),
                }
                r
            })
        });
        add(
            file,
            l,
            bad(
                &format!(
                    "one bit of the request's {what} changed in seq 10, the frame re-signed by the server: the request signature fails"
                ),
                10,
                "request",
            ),
        );
    }
    add(
        "requests-replayed.ledger",
        then(|l| {
            let a = disable_a();
            let r = by(l, ALICE, 4, &a);
            through(l, GW, a.clone(), r.clone());
            let b = Action::KeyEnabled {
                key_id: fixed_key_id(false, 'A'),
            };
            let mut again = r;
            again.time = l.time;
            // The same key and nonce, freshly signed over another action: still a replay.
            let h = request_hash(&ledger_id(), again.time, &again.nonce, &b);
            again.sig = Bytes(key(ALICE).sign_hash(&h));
            through(l, GW, b, again);
        }),
        bad(
            "seq 11 reuses the key and nonce of seq 10's request: a request is applied once",
            11,
            "request",
        ),
    );
    add(
        "requests-skew.ledger",
        then(|l| {
            disable(l, GW, |l, a| {
                let t = l.time.plus_micros(-REQUEST_SKEW_US - 1);
                request(ALICE, t, 4, &ledger_id(), a)
            })
        }),
        bad(
            "seq 10's request was signed 5 minutes and 1 µs before its event",
            10,
            "request",
        ),
    );
    add(
        "requests-server-lacks-permission.ledger",
        then(|l| disable(l, BOB, |l, a| by(l, ALICE, 4, a))),
        bad(
            "seq 10 carries alice's request in a frame signed by bob, who does not hold server",
            10,
            "request",
        ),
    );
    add(
        "requests-unknown-key.ledger",
        then(|l| disable(l, GW, |l, a| by(l, 9, 4, a))),
        bad(
            "seq 10's request is signed by a key enrolled to no one",
            10,
            "request",
        ),
    );
    add(
        "requests-revoked-key.ledger",
        then(|l| {
            l.push(
                &key(ACME),
                Action::SignerRevoked {
                    principal: "alice".into(),
                    public_key: key(ALICE).public(),
                },
            );
            disable(l, GW, |l, a| by(l, ALICE, 4, a));
        }),
        bad(
            "seq 11's request is signed by alice's key, revoked at seq 10",
            11,
            "request",
        ),
    );
    add(
        "requests-other-ledger.ledger",
        then(|l| {
            disable(l, GW, |l, a| {
                request(ALICE, l.time, 4, &Bytes([0x77; 16]), a)
            })
        }),
        bad(
            "seq 10's request was signed for another ledger id",
            10,
            "request",
        ),
    );
    add(
        "requests-denied-without-refused.ledger",
        then(|l| {
            let denied = Action::ActionDenied {
                attempted: "user-created mallory".into(),
                user: Some("mallory".into()),
                key_id: None,
                reason: "[R4] alice may not create users".into(),
            };
            let r = by(l, ALICE, 4, &denied);
            through(l, GW, denied, r);
        }),
        bad(
            "seq 10 is an action-denied through the server without the refused action (alice signed the denial itself)",
            10,
            "request",
        ),
    );
    add(
        "requests-refused-on-allowed.ledger",
        then(|l| {
            disable(l, GW, |l, a| Request {
                refused: Some(a.clone()),
                ..by(l, ALICE, 4, a)
            })
        }),
        bad(
            "seq 10 is a key-disabled that also carries a refused action",
            10,
            "request",
        ),
    );
    // A gateway (bob) presents key A through gw and the secret is wrong: the auth-failed
    // carries bob's signed auth-succeeded for the same key as its refused action (§4.1).
    let failed_auth = |asked: String| {
        then(move |l| {
            let wanted = Action::AuthSucceeded { key_id: asked };
            let mut r = by(l, BOB, 4, &wanted);
            r.refused = Some(wanted);
            let failed = Action::AuthFailed {
                key_id: fixed_key_id(false, 'A'),
                reason: "the secret does not match".into(),
            };
            through(l, GW, failed, r);
        })
    };
    add(
        "requests-auth-failed.ledger",
        failed_auth(fixed_key_id(false, 'A')),
        vec![verdict(
            "seq 10: a gateway's failed check of key A through gw, its auth-succeeded for A carried as the refused action: valid",
            &[],
            0,
            None,
            &[],
        )],
    );
    add(
        "requests-auth-failed-other-key.ledger",
        failed_auth(fixed_key_id(false, 'B')),
        bad(
            "seq 10 is an auth-failed for key A whose refused auth-succeeded names key B",
            10,
            "request",
        ),
    );
    add(
        "requests-policy-is-the-actors.ledger",
        then(|l| {
            let b = permanent('B', "bob");
            let r = by(l, ALICE, 4, &b);
            through(l, ACME, b, r);
        }),
        bad(
            "seq 10: alice (manage-own-keys) asks for a key for bob through the account's key; policy is decided for alice, not for the server",
            10,
            "policy",
        ),
    );
    let mut l = RawLedger::with_version(2);
    let g = genesis();
    let r = by(&l, ACME, 1, &g);
    let mut ev: Event = l.next(key(ACME).public(), g);
    ev.request = Some(r);
    l.push_event(&key(ACME), &ev);
    add(
        "requests-on-genesis.ledger",
        l,
        vec![verdict(
            "a genesis carrying a (validly signed) request: the first event is the account's own",
            &[],
            1,
            Some(0),
            &["genesis"],
        )],
    );
    let mut v1 = valid();
    v1.bytes[9] = 1;
    add(
        "requests-in-version-1.ledger",
        v1,
        vec![verdict(
            "requests-valid.ledger with a version-1 header: the server permission (seq 3) and the requests (seqs 9-11) are format errors there (frames judged no further, findings without a seq, §8), so gw's use of a key never created (seq 12) is refused by policy",
            &[],
            1,
            Some(12),
            &["format", "policy"],
        )],
    );
    out.0
}
