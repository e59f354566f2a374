//! Events: what one frame's body says. Encoded with rmp-serde's default layout:
//! structs as MessagePack arrays in field order, enums as a one-entry map
//! `{ "tag": [fields…] }`, `Option::None` as nil. See `ledger-format.md` §4 and §5.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::msgpack::{Reader, WireError};
use crate::types::{Bytes, Hash32, LedgerId, PublicKey, Timestamp};

/// One ledger event. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub time: Timestamp,
    /// Hash of the previous event; all zero for the genesis event.
    pub prev: Hash32,
    /// The public key whose signature follows the body. The actor is the principal it is enrolled to.
    pub signer: PublicKey,
    pub action: Action,
}

/// A permission (R4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    Admin,
    ManageKeys,
    ManageOwnKeys,
}

impl Permission {
    pub const ALL: [Permission; 3] = [Self::Admin, Self::ManageKeys, Self::ManageOwnKeys];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ManageKeys => "manage-keys",
            Self::ManageOwnKeys => "manage-own-keys",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an event does. The serde tag of each variant (kebab-case) is its wire tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Seq 0 only: binds the ledger id, the account (R1) and the account's signing key (L3).
    Genesis {
        ledger_id: LedgerId,
        account: String,
        public_key: PublicKey,
    },
    /// Enrolls a signing key for a principal (L3).
    SignerEnrolled {
        principal: String,
        public_key: PublicKey,
    },
    /// Revokes a signing key; events it signs after this are invalid.
    SignerRevoked {
        principal: String,
        public_key: PublicKey,
    },
    /// R2, R3.
    UserCreated {
        name: String,
        federated: bool,
    },
    /// R2: only for a user with no undeleted permanent key.
    UserDeleted {
        name: String,
    },
    /// R4.
    PermissionGranted {
        principal: String,
        permission: Permission,
    },
    PermissionRevoked {
        principal: String,
        permission: Permission,
    },
    /// A permanent access key (R5–R9). Only the secret's fingerprint is stored (R6).
    KeyCreated {
        key_id: String,
        user: String,
        fingerprint: Hash32,
        scenario: String,
        confirmed_necessary: bool,
        root_key_allowed: bool,
    },
    /// Temporary credentials (R3): key, secret and security token, valid until `expires`.
    TemporaryIssued {
        key_id: String,
        user: String,
        fingerprint: Hash32,
        token_fingerprint: Hash32,
        expires: Timestamp,
    },
    /// R10: the secret of `key_id` was handed to `to` through `channel` (a file path, never the secret).
    SecretRevealed {
        key_id: String,
        to: String,
        channel: String,
    },
    /// R8.
    KeyDisabled {
        key_id: String,
    },
    KeyEnabled {
        key_id: String,
    },
    KeyDeleted {
        key_id: String,
    },
    /// R11: a presented secret matched an active, unexpired key.
    AuthSucceeded {
        key_id: String,
    },
    /// R11: a presented secret was refused; `reason` never contains secret material.
    AuthFailed {
        key_id: String,
        reason: String,
    },
    /// R12: an action refused by policy. Changes nothing else.
    ActionDenied {
        attempted: String,
        user: Option<String>,
        key_id: Option<String>,
        reason: String,
    },
    /// A checkpoint of the `size` events before this one (`size` = this event's seq), whose
    /// RFC 9162 Merkle root is `root`. `verify` recomputes it.
    CheckpointRecorded {
        size: u64,
        root: Hash32,
    },
    /// L6: a torn tail of `removed_bytes` bytes at `offset` was moved to `quarantine`.
    LogRepaired {
        offset: u64,
        removed_bytes: u64,
        removed_blake3: Hash32,
        quarantine: String,
    },
}

/// Every action's wire tag, in §5 order.
pub const ACTION_TAGS: [&str; 18] = [
    "genesis",
    "signer-enrolled",
    "signer-revoked",
    "user-created",
    "user-deleted",
    "permission-granted",
    "permission-revoked",
    "key-created",
    "temporary-issued",
    "secret-revealed",
    "key-disabled",
    "key-enabled",
    "key-deleted",
    "auth-succeeded",
    "auth-failed",
    "action-denied",
    "checkpoint-recorded",
    "log-repaired",
];

impl Action {
    /// `signer-enrolled` (`enroll`) or `signer-revoked`.
    pub fn signer_change(enroll: bool, principal: String, public_key: PublicKey) -> Self {
        if enroll {
            Self::SignerEnrolled {
                principal,
                public_key,
            }
        } else {
            Self::SignerRevoked {
                principal,
                public_key,
            }
        }
    }

    /// `permission-granted` (`grant`) or `permission-revoked`.
    pub fn permission_change(grant: bool, principal: String, permission: Permission) -> Self {
        if grant {
            Self::PermissionGranted {
                principal,
                permission,
            }
        } else {
            Self::PermissionRevoked {
                principal,
                permission,
            }
        }
    }

    /// The wire tag, e.g. `key-created`.
    pub fn tag(&self) -> &'static str {
        match self {
            Self::Genesis { .. } => "genesis",
            Self::SignerEnrolled { .. } => "signer-enrolled",
            Self::SignerRevoked { .. } => "signer-revoked",
            Self::UserCreated { .. } => "user-created",
            Self::UserDeleted { .. } => "user-deleted",
            Self::PermissionGranted { .. } => "permission-granted",
            Self::PermissionRevoked { .. } => "permission-revoked",
            Self::KeyCreated { .. } => "key-created",
            Self::TemporaryIssued { .. } => "temporary-issued",
            Self::SecretRevealed { .. } => "secret-revealed",
            Self::KeyDisabled { .. } => "key-disabled",
            Self::KeyEnabled { .. } => "key-enabled",
            Self::KeyDeleted { .. } => "key-deleted",
            Self::AuthSucceeded { .. } => "auth-succeeded",
            Self::AuthFailed { .. } => "auth-failed",
            Self::ActionDenied { .. } => "action-denied",
            Self::CheckpointRecorded { .. } => "checkpoint-recorded",
            Self::LogRepaired { .. } => "log-repaired",
        }
    }

    /// The access key this action concerns, if any.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::KeyCreated { key_id, .. }
            | Self::TemporaryIssued { key_id, .. }
            | Self::SecretRevealed { key_id, .. }
            | Self::KeyDisabled { key_id }
            | Self::KeyEnabled { key_id }
            | Self::KeyDeleted { key_id }
            | Self::AuthSucceeded { key_id }
            | Self::AuthFailed { key_id, .. } => Some(key_id),
            Self::ActionDenied { key_id, .. } => key_id.as_deref(),
            _ => None,
        }
    }

    /// The principal this action concerns (not the actor), if any.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::Genesis { account, .. } => Some(account),
            Self::SignerEnrolled { principal, .. }
            | Self::SignerRevoked { principal, .. }
            | Self::PermissionGranted { principal, .. }
            | Self::PermissionRevoked { principal, .. } => Some(principal),
            Self::UserCreated { name, .. } | Self::UserDeleted { name } => Some(name),
            Self::KeyCreated { user, .. } | Self::TemporaryIssued { user, .. } => Some(user),
            Self::ActionDenied { user, .. } => user.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event body is not a valid event: {0}")]
    Invalid(String),
    #[error("event body has {0} trailing bytes after the event")]
    Trailing(usize),
    #[error(
        "event body is not in canonical form (shortest integers and lengths, arrays, string tags): {0}"
    )]
    NonCanonical(String),
}

impl From<WireError> for DecodeError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NonCanonical { .. } => DecodeError::NonCanonical(e.to_string()),
            _ => DecodeError::Invalid(e.to_string()),
        }
    }
}

fn public_key(r: &mut Reader<'_>) -> Result<PublicKey, WireError> {
    r.bin().map(|b| PublicKey(Bytes(b)))
}

fn permission(r: &mut Reader<'_>) -> Result<Permission, DecodeError> {
    let s = r.str()?;
    Permission::parse(s).ok_or_else(|| DecodeError::Invalid(format!("unknown permission {s:?}")))
}

/// The fields of the action tagged `tag`, after its array header of `n` fields.
fn action(r: &mut Reader<'_>, tag: &str) -> Result<Action, DecodeError> {
    let fields = |r: &mut Reader<'_>, n| r.array(n);
    Ok(match tag {
        "genesis" => {
            fields(r, 3)?;
            Action::Genesis {
                ledger_id: Bytes(r.bin()?),
                account: r.string()?,
                public_key: public_key(r)?,
            }
        }
        "signer-enrolled" | "signer-revoked" => {
            fields(r, 2)?;
            let principal = r.string()?;
            Action::signer_change(tag == "signer-enrolled", principal, public_key(r)?)
        }
        "user-created" => {
            fields(r, 2)?;
            Action::UserCreated {
                name: r.string()?,
                federated: r.bool()?,
            }
        }
        "user-deleted" => {
            fields(r, 1)?;
            Action::UserDeleted { name: r.string()? }
        }
        "permission-granted" | "permission-revoked" => {
            fields(r, 2)?;
            let principal = r.string()?;
            Action::permission_change(tag == "permission-granted", principal, permission(r)?)
        }
        "key-created" => {
            fields(r, 6)?;
            Action::KeyCreated {
                key_id: r.string()?,
                user: r.string()?,
                fingerprint: Bytes(r.bin()?),
                scenario: r.string()?,
                confirmed_necessary: r.bool()?,
                root_key_allowed: r.bool()?,
            }
        }
        "temporary-issued" => {
            fields(r, 5)?;
            Action::TemporaryIssued {
                key_id: r.string()?,
                user: r.string()?,
                fingerprint: Bytes(r.bin()?),
                token_fingerprint: Bytes(r.bin()?),
                expires: Timestamp(r.int()?),
            }
        }
        "secret-revealed" => {
            fields(r, 3)?;
            Action::SecretRevealed {
                key_id: r.string()?,
                to: r.string()?,
                channel: r.string()?,
            }
        }
        "key-disabled" | "key-enabled" | "key-deleted" | "auth-succeeded" => {
            fields(r, 1)?;
            let key_id = r.string()?;
            match tag {
                "key-disabled" => Action::KeyDisabled { key_id },
                "key-enabled" => Action::KeyEnabled { key_id },
                "key-deleted" => Action::KeyDeleted { key_id },
                _ => Action::AuthSucceeded { key_id },
            }
        }
        "auth-failed" => {
            fields(r, 2)?;
            Action::AuthFailed {
                key_id: r.string()?,
                reason: r.string()?,
            }
        }
        "action-denied" => {
            fields(r, 4)?;
            Action::ActionDenied {
                attempted: r.string()?,
                user: r.opt_string()?,
                key_id: r.opt_string()?,
                reason: r.string()?,
            }
        }
        "checkpoint-recorded" => {
            fields(r, 2)?;
            Action::CheckpointRecorded {
                size: r.uint()?,
                root: Bytes(r.bin()?),
            }
        }
        "log-repaired" => {
            fields(r, 4)?;
            Action::LogRepaired {
                offset: r.uint()?,
                removed_bytes: r.uint()?,
                removed_blake3: Bytes(r.bin()?),
                quarantine: r.string()?,
            }
        }
        other => {
            return Err(DecodeError::Invalid(format!(
                "unknown action tag {other:?}"
            )));
        }
    })
}

impl Event {
    /// The body bytes for this event (what is hashed and stored).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        rmp_serde::to_vec(self).expect("event encodes")
    }

    /// Decodes a body. Every byte must belong to the event, and every value must be in its
    /// canonical form (§4), so the body is exactly `encode` of what it decodes to and each
    /// event has one byte form.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        r.array(5)?;
        let seq = r.uint()?;
        let time = Timestamp(r.int()?);
        let prev = Bytes(r.bin()?);
        let signer = public_key(&mut r)?;
        r.map(1)?;
        let tag = r.str()?;
        let action = action(&mut r, tag)?;
        if r.remaining() > 0 {
            return Err(DecodeError::Trailing(r.remaining()));
        }
        Ok(Event {
            seq,
            time,
            prev,
            signer,
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Bytes;

    #[test]
    fn round_trip_every_action_and_reject_trailing_bytes() {
        let pk = PublicKey(Bytes([9; 32]));
        let actions = vec![
            Action::Genesis {
                ledger_id: Bytes([1; 16]),
                account: "acme".into(),
                public_key: pk,
            },
            Action::PermissionGranted {
                principal: "bob".into(),
                permission: Permission::ManageOwnKeys,
            },
            Action::ActionDenied {
                attempted: "key create".into(),
                user: None,
                key_id: Some("K".into()),
                reason: "r".into(),
            },
        ];
        for action in actions {
            let ev = Event {
                seq: 3,
                time: Timestamp(1_700_000_000_000_000),
                prev: Bytes([2; 32]),
                signer: pk,
                action,
            };
            let mut b = ev.encode();
            assert_eq!(Event::decode(&b).unwrap(), ev);
            b.push(0xc0);
            assert_eq!(Event::decode(&b), Err(DecodeError::Trailing(1)));
        }
    }

    #[test]
    fn non_canonical_bodies_are_refused() {
        let ev = Event {
            seq: 1,
            time: Timestamp(5),
            prev: Bytes([0; 32]),
            signer: PublicKey(Bytes([1; 32])),
            action: Action::KeyDeleted { key_id: "K".into() },
        };
        let good = ev.encode();
        // seq as uint16 instead of a positive fixint.
        let mut wide = vec![0x95, 0xcd, 0x00, 0x01];
        wide.extend_from_slice(&good[2..]);
        assert!(matches!(
            Event::decode(&wide),
            Err(DecodeError::NonCanonical(_))
        ));
        // The action tag as an integer index instead of its string.
        let tag_at = good.len() - 3 - 1 - "key-deleted".len();
        let mut int_tag = good[..tag_at].to_vec();
        int_tag.push(12);
        int_tag.extend_from_slice(&good[good.len() - 3..]);
        assert!(Event::decode(&int_tag).is_err());
    }

    #[test]
    fn permission_wire_form_is_a_string() {
        let b = rmp_serde::to_vec(&Permission::ManageKeys).unwrap();
        assert_eq!(b, b"\xabmanage-keys");
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use crate::types::Bytes;

    #[test]
    fn wire_uses_bin_and_ints_json_uses_text() {
        let ev = Event {
            seq: 1,
            time: Timestamp(5),
            prev: Bytes([0xab; 32]),
            signer: PublicKey(Bytes([1; 32])),
            action: Action::KeyDeleted { key_id: "K".into() },
        };
        let b = ev.encode();
        // [seq=1, time=5, bin8(32) ...]
        assert_eq!(&b[..5], &[0x95, 0x01, 0x05, 0xc4, 0x20]);
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["time"], "1970-01-01T00:00:00.000005Z");
        assert_eq!(j["prev"], "ab".repeat(32));
        assert_eq!(j["signer"], format!("ed25519:{}", "01".repeat(32)));
        assert_eq!(j["action"]["key-deleted"]["key_id"], "K");
    }
}

/// The decoder against its reference: rmp-serde's decoder plus a re-encode comparison, which
/// accepts exactly the canonical encodings. Both must agree on every body, valid or mutated.
#[cfg(test)]
mod decoder_vs_reference {
    use super::*;
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
            (text(), text()).prop_map(|(key_id, reason)| Action::AuthFailed { key_id, reason }),
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
            (any::<u64>(), hash())
                .prop_map(|(size, root)| Action::CheckpointRecorded { size, root }),
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
                seq,
                time: Timestamp(time),
                prev,
                signer: PublicKey(signer),
                action,
            })
    }

    /// One edit of a valid body: overwrite, insert, delete a byte, or cut the tail.
    fn mutate(body: &[u8], kind: u8, at: usize, byte: u8) -> Vec<u8> {
        let mut b = body.to_vec();
        let at = at % (b.len() + 1);
        match kind % 4 {
            0 if at < b.len() => b[at] = byte,
            1 => b.insert(at, byte),
            2 if at < b.len() => {
                b.remove(at);
            }
            _ => b.truncate(at),
        }
        b
    }

    #[test]
    fn every_listed_tag_is_decoded() {
        for tag in ACTION_TAGS {
            let e = super::action(&mut Reader::new(&[]), tag).unwrap_err();
            assert!(!e.to_string().contains("unknown action tag"), "{tag}");
        }
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
                b = mutate(&b, kind, at, byte);
            }
            prop_assert_eq!(Event::decode(&b).ok(), reference(&b));
        }

        #[test]
        fn random_bytes_agree_with_the_reference(b in prop::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(Event::decode(&b).ok(), reference(&b));
        }
    }
}
