//! Fixtures for operation protection (ledger-format.md version 2 revision 2026-12-03: §4.2,
//! §5, §7.3 R13, §8 check 7a g): valid histories, and one ledger per clause, each frame
//! signed by whoever §6 says could have signed it (the server for attestations).

use keyledger::core::event::{Action, Event, FactorKind, Request, SecondFactor};
use keyledger::core::totp::step_of;

use super::common::*;
use super::requests::{ACME, ALICE, BOB, GW, base, by, through};
use super::{Fixture, Fixtures, one_finding, verdict};

/// Appends `action` through gw with `req` and an attestation of `step` (`None`: of the
/// event's own step; `Some(d)`: that step plus `d`).
fn attested(l: &mut RawLedger, action: Action, req: Request, shift: Option<i64>) {
    attested_by(l, GW, action, req, shift)
}

/// As `attested`, with the frame signed by `server`.
fn attested_by(l: &mut RawLedger, server: u8, action: Action, req: Request, shift: Option<i64>) {
    let mut ev: Event = l.next(key(server).public(), action);
    let step = (step_of(ev.time) as i64 + shift.unwrap_or(0)) as u64;
    ev.request = Some(req);
    ev.factor = Some(SecondFactor {
        kind: FactorKind::Totp,
        step,
    });
    l.push_event(&key(server), &ev);
}

/// The base with the account protected through gw (seq 9).
fn account_protected() -> RawLedger {
    let mut l = base();
    let e = enable("acme");
    let r = by(&l, ACME, 1, &e);
    attested(&mut l, e, r, None);
    l
}

fn enable(name: &str) -> Action {
    Action::ProtectionEnabled {
        principal: name.into(),
        factor: FactorKind::Totp,
    }
}

fn disable(name: &str) -> Action {
    Action::ProtectionDisabled {
        principal: name.into(),
    }
}

/// The base, then alice's protection turned on through gw with her first code (seq 9).
fn protected() -> RawLedger {
    let mut l = base();
    let a = enable("alice");
    let r = by(&l, ALICE, 1, &a);
    attested(&mut l, a, r, None);
    l
}

/// `protected()`, then alice's key A asked for through gw with `att` as its attestation.
fn create_a(att: Option<Option<i64>>) -> RawLedger {
    let mut l = protected();
    let a = permanent('A', "alice");
    let r = by(&l, ALICE, 2, &a);
    match att {
        Some(shift) => attested(&mut l, a, r, shift),
        None => through(&mut l, GW, a, r),
    }
    l
}

/// Replaces the attestation's kind `totp` (the last 5 bytes `a4 74 6f 74 70` before its
/// step) in frame `i` by `with`, re-signing the frame with gw's key: only the last frame.
fn rewrite_last(l: &RawLedger, edit: impl FnOnce(&mut Vec<u8>)) -> RawLedger {
    let i = l.hashes.len() - 1;
    let range = l.frame(i);
    let mut body = l.bytes[range.start + 4..range.end - 64].to_vec();
    edit(&mut body);
    let mut out = RawLedger::with_version(2);
    out.bytes = l.bytes[..range.start].to_vec();
    out.hashes = l.hashes[..i].to_vec();
    out.offsets = l.offsets[..i].to_vec();
    let h = keyledger::core::chain::event_hash(&body);
    out.offsets.push(out.bytes.len());
    out.bytes.extend(keyledger::core::format::frame_bytes(
        &body,
        &key(GW).sign_hash(&h),
    ));
    out.hashes.push(h);
    out
}

/// Where the attestation `[ "totp", step ]` starts in a body (the last `92 a4 totp`).
fn attestation_at(body: &[u8]) -> usize {
    let needle = [0x92, 0xa4, b't', b'o', b't', b'p'];
    body.windows(6)
        .rposition(|w| w == needle)
        .expect("an attestation")
}

pub fn ledgers() -> Vec<Fixture> {
    let mut out = Fixtures::default();
    let mut add = |file, l, verdicts| out.add(file, l, verdicts);
    let valid = |d: &str| vec![verdict(d, &[], 0, None, &[])];

    // Valid: alice turns protection on (9), creates key A with a code (10), is refused a
    // key-enabled (11, a denial needs no code), turns protection off with a code (12), then
    // creates key B without one (13).
    let mut l = create_a(Some(None));
    let wanted = Action::KeyEnabled {
        key_id: fixed_key_id(false, 'A'),
    };
    let mut r = by(&l, ALICE, 3, &wanted);
    r.refused = Some(wanted);
    through(
        &mut l,
        GW,
        Action::ActionDenied {
            attempted: "key-enabled".into(),
            user: None,
            key_id: Some(fixed_key_id(false, 'A')),
            reason: "[R8] the key is active".into(),
        },
        r,
    );
    let d = disable("alice");
    let r = by(&l, ALICE, 4, &d);
    attested(&mut l, d, r, Some(-2));
    let b = permanent('B', "alice");
    let r = by(&l, ALICE, 5, &b);
    through(&mut l, GW, b, r);
    add(
        "protect-valid.ledger",
        l,
        valid(
            "alice's protection on through gw with an attested code (seq 9), key A with one (seq 10), a refusal without one (seq 11), protection off with one attested 2 steps before the event's step (seq 12), key B without one once off (seq 13): valid",
        ),
    );

    // Valid: the account protects itself, alice uses a code of a late step, then the account
    // turns alice's protection off with its own code: its step is checked against the
    // account's last (the actor is the factor subject), though it is before alice's.
    let mut l = protected();
    let e = enable("acme");
    let r = by(&l, ACME, 2, &e);
    attested(&mut l, e, r, Some(-2));
    let k = permanent('A', "alice");
    let r = by(&l, ALICE, 3, &k);
    attested(&mut l, k, r, Some(1));
    let d = disable("alice");
    let r = by(&l, ACME, 4, &d);
    attested(&mut l, d, r, Some(-2));
    add(
        "protect-admin-disables.ledger",
        l,
        valid(
            "acme turns its own protection on (seq 10, step c9), alice creates key A with a code of step c9 + 5 (seq 11), acme turns alice's protection off with its own code of step c9 + 4 (seq 12): its subject is acme, whose last step is c9, so valid",
        ),
    );
    // Valid: one code attests both events of one append (equal steps).
    let mut l = create_a(Some(None));
    let b = permanent('B', "alice");
    let r = by(&l, ALICE, 3, &b);
    attested(&mut l, b, r, Some(-2));
    add(
        "protect-one-code-two-actions.ledger",
        l,
        valid(
            "alice's key A (seq 10) and key B (seq 11) both attested with the step of seq 10 (one code for one append): steps may repeat, valid",
        ),
    );

    let bad = one_finding;
    add(
        "protect-action-without-attestation.ledger",
        create_a(None),
        bad(
            "seq 10: protected alice's key creation through gw carries no second-factor attestation",
            10,
            "policy",
        ),
    );
    let mut l = protected();
    l.push(&key(ALICE), permanent('A', "alice"));
    add(
        "protect-direct-action.ledger",
        l,
        bad(
            "seq 10: protected alice creates a key with her own key, without a server",
            10,
            "policy",
        ),
    );
    let mut l = base();
    let a = enable("alice");
    let r = by(&l, ALICE, 1, &a);
    through(&mut l, GW, a, r);
    add(
        "protect-enabled-without-attestation.ledger",
        l,
        bad(
            "seq 9: alice's protection-enabled through gw without the attestation of a first code",
            9,
            "policy",
        ),
    );
    let mut l = base();
    l.push(&key(ALICE), enable("alice"));
    add(
        "protect-enabled-direct.ledger",
        l,
        bad(
            "seq 9: alice signs her own protection-enabled, without a server",
            9,
            "policy",
        ),
    );
    add(
        "protect-step-after-window.ledger",
        create_a(Some(Some(2))),
        bad(
            "seq 10's attested step is 2 steps after the event's step",
            10,
            "request",
        ),
    );
    // The enable attests c9 - 2; the creation c10 - 3 = c9 - 1: after the last step, but 3
    // before its own event's.
    let mut l = base();
    let a = enable("alice");
    let r = by(&l, ALICE, 1, &a);
    attested(&mut l, a, r, Some(-2));
    let k = permanent('A', "alice");
    let r = by(&l, ALICE, 2, &k);
    attested(&mut l, k, r, Some(-3));
    add(
        "protect-step-before-window.ledger",
        l,
        bad(
            "seq 10's attested step is 3 steps before the event's step (and after alice's last, seq 9's)",
            10,
            "request",
        ),
    );
    // A refusal never carries an attestation: its factor subject is decided by its own
    // action, action-denied.
    let mut l = protected();
    let wanted = permanent('A', "alice");
    let mut r = by(&l, ALICE, 2, &wanted);
    r.refused = Some(wanted);
    attested(
        &mut l,
        Action::ActionDenied {
            attempted: "key-created".into(),
            user: Some("alice".into()),
            key_id: None,
            reason: "[R7] alice already has 2 access keys".into(),
        },
        r,
        None,
    );
    add(
        "protect-attestation-on-denial.ledger",
        l,
        bad(
            "seq 10: an action-denied of protected alice's key creation carries an attestation; a refusal has no factor subject",
            10,
            "request",
        ),
    );
    let mut l = base();
    let a = enable("nobody");
    let r = by(&l, ALICE, 1, &a);
    attested(&mut l, a, r, None);
    add(
        "protect-enable-unknown.ledger",
        l,
        bad(
            "seq 9: alice turns on protection of a principal that does not exist (attested: its subject is the name, existing or not)",
            9,
            "policy",
        ),
    );
    // Steps go forward: alice's enable attests the step after its event's (c9 + 1); her key
    // creation a minute later (c10 = c9 + 2) attests c10 - 2 = c9, before it.
    let mut l = base();
    let a = enable("alice");
    let r = by(&l, ALICE, 1, &a);
    attested(&mut l, a, r, Some(1));
    let k = permanent('A', "alice");
    let r = by(&l, ALICE, 2, &k);
    attested(&mut l, k, r, Some(-2));
    add(
        "protect-step-goes-back.ledger",
        l,
        bad(
            "seq 10's attested step is within its window but before the one seq 9 attested for alice",
            10,
            "request",
        ),
    );
    let mut l = base();
    let k = permanent('A', "alice");
    let r = by(&l, ALICE, 1, &k);
    attested(&mut l, k, r, None);
    add(
        "protect-attestation-unneeded.ledger",
        l,
        bad(
            "seq 9: an attestation on unprotected alice's key creation, which needs none",
            9,
            "request",
        ),
    );
    let mut l = protected();
    let d = disable("alice");
    let r = by(&l, BOB, 2, &d);
    attested(&mut l, d, r, None);
    add(
        "protect-disable-by-other.ledger",
        l,
        bad(
            "seq 10: bob (no permission, unprotected) turns alice's protection off; the attestation is refused first, as bob's action needs none",
            10,
            "request",
        ),
    );
    let mut l = protected();
    l.push(&key(ACME), disable("alice"));
    add(
        "protect-disable-by-unprotected-admin.ledger",
        l,
        bad(
            "seq 10: the account, itself unprotected, turns alice's protection off: an admin needs its own second factor",
            10,
            "policy",
        ),
    );
    // The account, which holds server implicitly, vouching for its own second factor.
    let mut l = account_protected();
    let k = permanent('B', "bob");
    let r = by(&l, ACME, 2, &k);
    attested_by(&mut l, ACME, k, r, None);
    add(
        "protect-self-attested.ledger",
        l,
        bad(
            "seq 10: protected acme's key creation, its attestation in a frame signed by acme's own key: a server never vouches for its own principal's factor",
            10,
            "request",
        ),
    );
    let mut l = account_protected();
    l.push(&key(ACME), Action::UserDeleted { name: "bob".into() });
    add(
        "protect-user-deleted-without.ledger",
        l,
        bad(
            "seq 10: protected acme deletes bob with its own key, without a server: user-deleted is a protected action",
            10,
            "policy",
        ),
    );
    // gw itself protected (its enable attested in a frame of the account's key, seq 9), then
    // a scanner's report: its leak-reported and the key-disabled right after need no factor
    // of gw's (seq 11, 12).
    let mut l = base();
    let e = enable("gw");
    let r = by(&l, GW, 1, &e);
    attested_by(&mut l, ACME, e, r, None);
    l.push(&key(ACME), permanent('A', "alice"));
    l.push(
        &key(GW),
        Action::LeakReported {
            key_id: fixed_key_id(false, 'A'),
            source: "https://github.com/acme/app/blob/main/.env".into(),
            reason: "secret scanning partner report".into(),
        },
    );
    l.push(
        &key(GW),
        Action::KeyDisabled {
            key_id: fixed_key_id(false, 'A'),
        },
    );
    add(
        "protect-server-acts-on-report.ledger",
        l,
        valid(
            "gw's protection on (seq 9, attested by the account's server key), alice's key A (seq 10), gw records a scanner's report of A (seq 11) and disables A right after it without a code (seq 12): valid",
        ),
    );
    let l = rewrite_last(&create_a(Some(None)), |b| {
        let at = attestation_at(b);
        b[at + 2..at + 6].copy_from_slice(b"hotp");
    });
    add(
        "protect-factor-kind-unknown.ledger",
        l,
        vec![verdict(
            "frame 10's attestation names the factor kind hotp, not totp: a format error",
            &[],
            1,
            None,
            &["format"],
        )],
    );
    let l = rewrite_last(&create_a(Some(None)), |b| {
        let at = attestation_at(b);
        b.truncate(at);
        b.push(0xc0);
    });
    add(
        "protect-nil-attestation.ledger",
        l,
        vec![verdict(
            "frame 10 has a nil 7th element: a format error (an event without an attestation has 6)",
            &[],
            1,
            None,
            &["format"],
        )],
    );
    let mut v1 = protected();
    v1.bytes[9] = 1;
    add(
        "protect-in-version-1.ledger",
        v1,
        vec![verdict(
            "protected() with a version-1 header: the server permission (seq 3) and the request of seq 9 are format errors there, and nothing else is wrong",
            &[],
            1,
            None,
            &["format"],
        )],
    );
    out.0
}
