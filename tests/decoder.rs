//! The event decoder against its reference: rmp-serde's decoder plus a re-encode comparison,
//! which accepts exactly the canonical encodings (ledger-format.md §4).

mod common;

use common::edit;
use keyledger::core::event::{ACTION_TAGS, Action, Event, Permission};
use keyledger::core::types::{Bytes, Hash32, PublicKey, Timestamp};
use proptest::prelude::*;

fn reference(body: &[u8]) -> Option<Event> {
    let ev: Event = rmp_serde::from_slice(body).ok()?;
    (ev.encode() == body).then_some(ev)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9@.-]{0,40}",
        (0usize..300).prop_map(|n| "é".repeat(n)),
        Just("x".repeat(70_000)),
    ]
}

fn hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Bytes)
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        -70_000i64..70_000,
        Just(i64::MIN),
        Just(i64::MAX)
    ]
}

fn permission() -> impl Strategy<Value = Permission> {
    prop::sample::select(Permission::ALL.to_vec())
}

fn action() -> impl Strategy<Value = Action> {
    let pk = || hash().prop_map(PublicKey);
    prop_oneof![
        (any::<[u8; 16]>(), text(), pk()).prop_map(|(l, account, public_key)| {
            Action::Genesis {
                ledger_id: Bytes(l),
                account,
                public_key,
            }
        }),
        (text(), pk()).prop_map(|(principal, public_key)| Action::SignerEnrolled {
            principal,
            public_key
        }),
        (text(), pk()).prop_map(|(principal, public_key)| Action::SignerRevoked {
            principal,
            public_key
        }),
        (text(), any::<bool>())
            .prop_map(|(name, federated)| Action::UserCreated { name, federated }),
        text().prop_map(|name| Action::UserDeleted { name }),
        (text(), permission()).prop_map(|(principal, permission)| Action::PermissionGranted {
            principal,
            permission
        }),
        (text(), permission()).prop_map(|(principal, permission)| Action::PermissionRevoked {
            principal,
            permission
        }),
        (text(), text(), hash(), text(), any::<bool>(), any::<bool>()).prop_map(
            |(key_id, user, fingerprint, scenario, c, r)| {
                Action::KeyCreated {
                    key_id,
                    user,
                    fingerprint,
                    scenario,
                    confirmed_necessary: c,
                    root_key_allowed: r,
                }
            }
        ),
        (text(), text(), hash(), hash(), int()).prop_map(
            |(key_id, user, fingerprint, token_fingerprint, e)| {
                Action::TemporaryIssued {
                    key_id,
                    user,
                    fingerprint,
                    token_fingerprint,
                    expires: Timestamp(e),
                }
            }
        ),
        (text(), text(), text()).prop_map(|(key_id, to, channel)| Action::SecretRevealed {
            key_id,
            to,
            channel
        }),
        text().prop_map(|key_id| Action::KeyDisabled { key_id }),
        text().prop_map(|key_id| Action::KeyEnabled { key_id }),
        text().prop_map(|key_id| Action::KeyDeleted { key_id }),
        text().prop_map(|key_id| Action::AuthSucceeded { key_id }),
        (text(), text()).prop_map(|(old_key_id, new_key_id)| Action::KeyRotated {
            old_key_id,
            new_key_id
        }),
        (text(), text()).prop_map(|(key_id, reason)| Action::AuthFailed { key_id, reason }),
        (text(), text(), text()).prop_map(|(key_id, source, reason)| Action::LeakReported {
            key_id,
            source,
            reason
        }),
        (
            text(),
            prop::option::of(text()),
            prop::option::of(text()),
            text()
        )
            .prop_map(|(attempted, user, key_id, reason)| {
                Action::ActionDenied {
                    attempted,
                    user,
                    key_id,
                    reason,
                }
            }),
        (any::<u64>(), hash()).prop_map(|(size, root)| Action::CheckpointRecorded { size, root }),
        (any::<u64>(), any::<u64>(), hash(), text()).prop_map(
            |(offset, removed_bytes, removed_blake3, quarantine)| {
                Action::LogRepaired {
                    offset,
                    removed_bytes,
                    removed_blake3,
                    quarantine,
                }
            }
        ),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        prop_oneof![any::<u64>(), 0u64..70_000],
        int(),
        hash(),
        hash(),
        action(),
    )
        .prop_map(|(seq, time, prev, signer, action)| Event {
            factor: None,
            seq,
            time: Timestamp(time),
            prev,
            signer: PublicKey(signer),
            action,
            request: None,
        })
}

/// Every longer or other-typed form of each value of one event, in every combination:
/// both decoders must agree on each, and only the all-canonical body is accepted.
#[test]
fn every_alternative_form_agrees_with_the_reference() {
    let uint = |v: u8| -> Vec<Vec<u8>> {
        vec![
            vec![v],
            vec![0xcc, v],
            vec![0xcd, 0, v],
            vec![0xce, 0, 0, 0, v],
            vec![0xcf, 0, 0, 0, 0, 0, 0, 0, v],
            vec![0xd0, v],
            vec![0xd3, 0, 0, 0, 0, 0, 0, 0, v],
        ]
    };
    let bin = |b: &[u8]| -> Vec<Vec<u8>> {
        let n = b.len() as u8;
        [
            vec![0xc4, n],
            vec![0xc5, 0, n],
            vec![0xc6, 0, 0, 0, n],
            vec![0xd9, n],
        ]
        .into_iter()
        .map(|mut h| {
            h.extend_from_slice(b);
            h
        })
        .collect()
    };
    let text = |s: &str| -> Vec<Vec<u8>> {
        let n = s.len() as u8;
        [
            vec![0xa0 | n],
            vec![0xd9, n],
            vec![0xda, 0, n],
            vec![0xdb, 0, 0, 0, n],
            vec![0xc4, n],
        ]
        .into_iter()
        .map(|mut h| {
            h.extend_from_slice(s.as_bytes());
            h
        })
        .collect()
    };
    let head = |fix: u8, n: u8, wide: u8| {
        vec![vec![fix | n], vec![wide, 0, n], vec![wide + 1, 0, 0, 0, n]]
    };
    let parts: Vec<Vec<Vec<u8>>> = vec![
        head(0x90, 5, 0xdc),
        uint(1),
        uint(5),
        bin(&[0xab; 32]),
        bin(&[1; 32]),
        head(0x80, 1, 0xde),
        text("key-deleted"),
        head(0x90, 1, 0xdc),
        text("K"),
    ];
    let mut accepted = 0;
    let mut tried = 0;
    let mut choice = vec![0usize; parts.len()];
    loop {
        let body: Vec<u8> = parts
            .iter()
            .zip(&choice)
            .flat_map(|(p, &c)| p[c].clone())
            .collect();
        let ours = Event::decode(&body).ok();
        assert_eq!(ours, reference(&body), "{body:02x?}");
        if ours.is_some() {
            accepted += 1;
            assert!(choice.iter().all(|&c| c == 0), "{choice:?}");
        }
        tried += 1;
        // The next combination, as an odometer.
        let mut i = 0;
        while i < parts.len() {
            choice[i] += 1;
            if choice[i] < parts[i].len() {
                break;
            }
            choice[i] = 0;
            i += 1;
        }
        if i == parts.len() {
            break;
        }
    }
    assert_eq!((accepted, tried), (1, 3 * 7 * 7 * 4 * 4 * 3 * 5 * 3 * 5));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn valid_bodies_decode_to_their_value(ev in event()) {
        prop_assert!(ACTION_TAGS.contains(&ev.action.tag()));
        prop_assert_eq!(Event::decode(&ev.encode()), Ok(ev));
    }

    #[test]
    fn mutated_bodies_agree_with_the_reference(
        ev in event(),
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut b = ev.encode();
        for (kind, at, byte) in edits {
            edit(&mut b, kind % 4, at, 0, byte);
        }
        prop_assert_eq!(Event::decode(&b).ok(), reference(&b));
    }

    #[test]
    fn random_bytes_agree_with_the_reference(b in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(Event::decode(&b).ok(), reference(&b));
    }
}
