//! Fixtures for `auth-failures-summarized` (R11; ledger-format.md version 2 revision
//! 2026-12-03: §5, §7.1, §7.3): a server's count of failed checks past its per-key rate.

use keyledger::core::event::Action;
use keyledger::core::types::Timestamp;

use super::common::*;
use super::requests::{ACME, ALICE, GW, base};
use super::{Fixture, Fixtures, one_finding, verdict};

/// The base with alice's key A (seq 9), then `last` signed by `signer`.
fn ledger(signer: u8, last: impl FnOnce(Timestamp) -> Action) -> RawLedger {
    let mut l = base();
    l.push(&key(ACME), permanent('A', "alice"));
    let t = l.time;
    l.push(&key(signer), last(t));
    l
}

fn summary(key_id: &str, count: u64, first: Timestamp, last: Timestamp) -> Action {
    Action::AuthFailuresSummarized {
        key_id: key_id.into(),
        count,
        first,
        last,
    }
}

pub fn ledgers() -> Vec<Fixture> {
    let mut out = Fixtures::default();
    let mut add = |file, l, verdicts| out.add(file, l, verdicts);
    let a = fixed_key_id(false, 'A');
    let bad = |d: &str| one_finding(d, 10, "policy");
    let mut l = ledger(GW, |t| summary(&a, 240, t.plus_micros(-60_000_000), t));
    let t = l.time;
    l.push(&key(GW), summary("*", 1, t, t));
    add(
        "floods-valid.ledger",
        l,
        vec![verdict(
            "gw summarizes 240 failed checks of key A in the minute up to its event (seq 10), then one of IDs of no key (`*`, seq 11): valid",
            &[],
            0,
            None,
            &[],
        )],
    );
    add(
        "floods-by-non-server.ledger",
        ledger(ALICE, |t| summary(&a, 3, t, t)),
        bad("seq 10: alice, who does not hold server, summarizes failures"),
    );
    add(
        "floods-count-zero.ledger",
        ledger(GW, |t| summary(&a, 0, t, t)),
        bad("seq 10: a summary of 0 failures"),
    );
    add(
        "floods-first-after-last.ledger",
        ledger(GW, |t| summary(&a, 2, t, t.plus_micros(-1))),
        bad("seq 10: a summary whose first failure is after its last"),
    );
    add(
        "floods-last-after-event.ledger",
        ledger(GW, |t| summary(&a, 2, t, t.plus_micros(1))),
        bad("seq 10: a summary whose last failure is after the event's own time"),
    );
    add(
        "floods-key-id-too-long.ledger",
        ledger(GW, |t| summary(&"K".repeat(65), 2, t, t)),
        bad("seq 10: a summary whose key_id is 65 bytes (the bound is 64)"),
    );
    out.0
}
