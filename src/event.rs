//! Events: what one frame's body says. Encoded with rmp-serde's default layout:
//! structs as MessagePack arrays in field order, enums as a one-entry map
//! `{ "tag": [fields…] }`, `Option::None` as nil. See `ledger-format.md` §4 and §5.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::types::{Hash32, LedgerId, PublicKey, Timestamp};

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

impl Action {
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
        "event body is not in canonical form (shortest integers and lengths, arrays, string tags)"
    )]
    NonCanonical,
}

impl Event {
    /// The body bytes for this event (what is hashed and stored).
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        rmp_serde::to_vec(self).expect("event encodes")
    }

    /// Decodes a body. Every byte must belong to the event, and the body must be exactly
    /// the canonical encoding of what it decodes to (so each event has one byte form).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut cur = std::io::Cursor::new(body);
        let ev = {
            let mut de = rmp_serde::Deserializer::new(&mut cur);
            Event::deserialize(&mut de).map_err(|e| DecodeError::Invalid(e.to_string()))?
        };
        let used = cur.position() as usize;
        if used != body.len() {
            return Err(DecodeError::Trailing(body.len() - used));
        }
        if ev.encode() != body {
            return Err(DecodeError::NonCanonical);
        }
        Ok(ev)
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
        assert_eq!(Event::decode(&wide), Err(DecodeError::NonCanonical));
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
