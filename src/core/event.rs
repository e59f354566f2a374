//! Events: what one frame's body says. Encoded with rmp-serde's default layout:
//! structs as MessagePack arrays in field order, enums as a one-entry map
//! `{ "tag": [fields…] }`, `Option::None` as nil. See `ledger-format.md` §4 and §5.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::msgpack::{Reader, WireError};
use crate::core::types::{Bytes, Hash32, LedgerId, PublicKey, Timestamp};

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
    /// Through a server (format version 2): the actor's signed request (§4.1). Absent from
    /// the body when `None`, so a direct event keeps its 5-element form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    /// R13: the server's attestation that it verified a second factor for this request
    /// (§4.2). Only beside a request; absent from the body when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<SecondFactor>,
}

/// The kinds of second factor a server verifies (R13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactorKind {
    /// A time-based one-time code (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps).
    Totp,
}

impl FactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
        }
    }
}

/// A server's attestation, inside the body it signs, that it verified a second factor of
/// the event's subject (the actor; for `protection-enabled`, the principal named): which
/// kind, and the TOTP time step of the code it accepted (never the code or the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecondFactor {
    pub kind: FactorKind,
    pub step: u64,
}

/// The actor's own signed request inside an event a server wrote (ledger-format.md §4.1).
/// Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The key that signed the request: the actor's.
    pub key: PublicKey,
    /// The client's clock when it signed.
    pub time: Timestamp,
    pub nonce: Bytes<16>,
    /// The refused action of an `action-denied` event; `None` otherwise (the event's own
    /// action is the one requested).
    pub refused: Option<Action>,
    pub sig: Bytes<64>,
}

/// A permission (R4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    Admin,
    ManageKeys,
    ManageOwnKeys,
    /// R15 (format version 2): its holder's keys may sign the frames of events that carry
    /// another principal's request. It confers nothing else.
    Server,
}

impl Permission {
    pub const ALL: [Permission; 4] = [
        Self::Admin,
        Self::ManageKeys,
        Self::ManageOwnKeys,
        Self::Server,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ManageKeys => "manage-keys",
            Self::ManageOwnKeys => "manage-own-keys",
            Self::Server => "server",
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
    /// A rotation: `new_key_id`, created to replace `old_key_id` of the same user, is its
    /// successor. The reference that ties the rotation's events together (R7–R9).
    KeyRotated {
        old_key_id: String,
        new_key_id: String,
    },
    /// R14: the secret or token of `key_id` was reported leaked, found at `source` (a file,
    /// a URL; never the secret), for `reason`.
    LeakReported {
        key_id: String,
        source: String,
        reason: String,
    },
    /// R13: operation protection of `principal` is in force from this event: the server
    /// verified a first code from the authenticator (the event's attestation).
    ProtectionEnabled {
        principal: String,
        factor: FactorKind,
    },
    /// R13: operation protection of `principal` is off.
    ProtectionDisabled {
        principal: String,
    },
    /// R11: `count` failed checks of `key_id` (`*`: of IDs of no key of this ledger) between
    /// `first` and `last`, past the server's per-key rate, recorded as one event.
    AuthFailuresSummarized {
        key_id: String,
        count: u64,
        first: Timestamp,
        last: Timestamp,
    },
}

/// Every action's wire tag, in §5 order.
pub const ACTION_TAGS: [&str; 23] = [
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
    "key-rotated",
    "leak-reported",
    "protection-enabled",
    "protection-disabled",
    "auth-failures-summarized",
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
            Self::KeyRotated { .. } => "key-rotated",
            Self::LeakReported { .. } => "leak-reported",
            Self::ProtectionEnabled { .. } => "protection-enabled",
            Self::ProtectionDisabled { .. } => "protection-disabled",
            Self::AuthFailuresSummarized { .. } => "auth-failures-summarized",
        }
    }

    /// Every access key this action concerns: both keys of a rotation, else `key_id`.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        let second = match self {
            Self::KeyRotated { new_key_id, .. } => Some(new_key_id.as_str()),
            _ => None,
        };
        self.key_id().into_iter().chain(second)
    }

    /// The access key this action concerns first, if any (for a rotation, the old key).
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::KeyCreated { key_id, .. }
            | Self::TemporaryIssued { key_id, .. }
            | Self::SecretRevealed { key_id, .. }
            | Self::KeyDisabled { key_id }
            | Self::KeyEnabled { key_id }
            | Self::KeyDeleted { key_id }
            | Self::AuthSucceeded { key_id }
            | Self::AuthFailed { key_id, .. }
            | Self::AuthFailuresSummarized { key_id, .. }
            | Self::LeakReported { key_id, .. } => Some(key_id),
            Self::KeyRotated { old_key_id, .. } => Some(old_key_id),
            Self::ActionDenied { key_id, .. } => key_id.as_deref(),
            _ => None,
        }
    }

    /// R13: the critical actions that a principal with operation protection performs only
    /// with a second factor verified by the server.
    pub fn is_protected(&self) -> bool {
        matches!(
            self,
            Self::KeyCreated { .. }
                | Self::TemporaryIssued { .. }
                | Self::KeyDisabled { .. }
                | Self::KeyEnabled { .. }
                | Self::KeyDeleted { .. }
                | Self::SignerEnrolled { .. }
                | Self::SignerRevoked { .. }
                | Self::PermissionGranted { .. }
                | Self::PermissionRevoked { .. }
                | Self::UserDeleted { .. }
                | Self::ProtectionDisabled { .. }
        )
    }

    /// Whether only format version 2 may hold this action (it names `server`, or is about
    /// operation protection, which needs a server).
    pub fn needs_version_2(&self) -> bool {
        matches!(
            self,
            Self::ProtectionEnabled { .. }
                | Self::ProtectionDisabled { .. }
                | Self::AuthFailuresSummarized { .. }
        ) || matches!(
            self,
            Self::PermissionGranted {
                permission: Permission::Server,
                ..
            } | Self::PermissionRevoked {
                permission: Permission::Server,
                ..
            }
        )
    }

    /// Every string field, in wire order (what §7.1–7.2 bound and scan).
    pub fn strings(&self) -> Vec<&str> {
        match self {
            Self::Genesis { account, .. } => vec![account],
            Self::SignerEnrolled { principal, .. }
            | Self::SignerRevoked { principal, .. }
            | Self::PermissionGranted { principal, .. }
            | Self::PermissionRevoked { principal, .. }
            | Self::ProtectionEnabled { principal, .. }
            | Self::ProtectionDisabled { principal } => vec![principal],
            Self::UserCreated { name, .. } | Self::UserDeleted { name } => vec![name],
            Self::KeyCreated {
                key_id,
                user,
                scenario,
                ..
            } => vec![key_id, user, scenario],
            Self::TemporaryIssued { key_id, user, .. } => vec![key_id, user],
            Self::SecretRevealed {
                key_id,
                to,
                channel,
            } => vec![key_id, to, channel],
            Self::KeyDisabled { key_id }
            | Self::KeyEnabled { key_id }
            | Self::KeyDeleted { key_id }
            | Self::AuthSucceeded { key_id } => vec![key_id],
            Self::AuthFailed { key_id, reason } => vec![key_id, reason],
            Self::AuthFailuresSummarized { key_id, .. } => vec![key_id],
            Self::ActionDenied {
                attempted,
                user,
                key_id,
                reason,
            } => [
                Some(attempted.as_str()),
                user.as_deref(),
                key_id.as_deref(),
                Some(reason),
            ]
            .into_iter()
            .flatten()
            .collect(),
            Self::CheckpointRecorded { .. } => vec![],
            Self::LogRepaired { quarantine, .. } => vec![quarantine],
            Self::KeyRotated {
                old_key_id,
                new_key_id,
            } => vec![old_key_id, new_key_id],
            Self::LeakReported {
                key_id,
                source,
                reason,
            } => vec![key_id, source, reason],
        }
    }

    /// The principal this action concerns (not the actor), if any.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::Genesis { account, .. } => Some(account),
            Self::SignerEnrolled { principal, .. }
            | Self::SignerRevoked { principal, .. }
            | Self::PermissionGranted { principal, .. }
            | Self::PermissionRevoked { principal, .. }
            | Self::ProtectionEnabled { principal, .. }
            | Self::ProtectionDisabled { principal } => Some(principal),
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

fn factor_kind(r: &mut Reader<'_>) -> Result<FactorKind, DecodeError> {
    match r.str()? {
        "totp" => Ok(FactorKind::Totp),
        s => Err(DecodeError::Invalid(format!(
            "unknown second-factor kind {s:?}"
        ))),
    }
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
        "key-rotated" => {
            fields(r, 2)?;
            Action::KeyRotated {
                old_key_id: r.string()?,
                new_key_id: r.string()?,
            }
        }
        "leak-reported" => {
            fields(r, 3)?;
            Action::LeakReported {
                key_id: r.string()?,
                source: r.string()?,
                reason: r.string()?,
            }
        }
        "protection-enabled" => {
            fields(r, 2)?;
            Action::ProtectionEnabled {
                principal: r.string()?,
                factor: factor_kind(r)?,
            }
        }
        "protection-disabled" => {
            fields(r, 1)?;
            Action::ProtectionDisabled {
                principal: r.string()?,
            }
        }
        "auth-failures-summarized" => {
            fields(r, 4)?;
            Action::AuthFailuresSummarized {
                key_id: r.string()?,
                count: r.uint()?,
                first: Timestamp(r.int()?),
                last: Timestamp(r.int()?),
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
        debug_assert!(
            self.factor.is_none() || self.request.is_some(),
            "an attestation is only ever beside a request"
        );
        // Serializing plain data into a Vec cannot fail.
        rmp_serde::to_vec(self).expect("event encodes")
    }

    /// Decodes a body. Every byte must belong to the event, and every value must be in its
    /// canonical form (§4), so the body is exactly `encode` of what it decodes to and each
    /// event has one byte form.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let arity = r.array_of(&[5, 6, 7])?;
        let seq = r.uint()?;
        let time = Timestamp(r.int()?);
        let prev = Bytes(r.bin()?);
        let signer = public_key(&mut r)?;
        let action = tagged_action(&mut r)?;
        let request = match arity {
            6 | 7 => Some(request(&mut r)?),
            _ => None,
        };
        let factor = match arity {
            7 => {
                r.array(2)?;
                Some(SecondFactor {
                    kind: factor_kind(&mut r)?,
                    step: r.uint()?,
                })
            }
            _ => None,
        };
        if r.remaining() > 0 {
            return Err(DecodeError::Trailing(r.remaining()));
        }
        Ok(Event {
            seq,
            time,
            prev,
            signer,
            action,
            request,
            factor,
        })
    }

    /// The key of the actor: the request's signer through a server, else the frame's.
    pub fn actor_key(&self) -> &PublicKey {
        self.request.as_ref().map_or(&self.signer, |r| &r.key)
    }

    /// What only format version 2 may hold: a request, or the `server` permission.
    pub fn needs_version_2(&self) -> bool {
        self.request.is_some() || self.action.needs_version_2()
    }
}

impl Request {
    /// A signed request as a client sends it (ledger-format.md §4.1, the server API):
    /// `[action, request]`, canonical, every byte accounted for.
    pub fn decode_signed(body: &[u8]) -> Result<(Action, Request), DecodeError> {
        let mut r = Reader::new(body);
        r.array(2)?;
        let action = tagged_action(&mut r)?;
        let req = request(&mut r)?;
        if r.remaining() > 0 {
            return Err(DecodeError::Trailing(r.remaining()));
        }
        Ok((action, req))
    }

    /// The bytes `decode_signed` reads.
    pub fn encode_signed(action: &Action, req: &Request) -> Vec<u8> {
        rmp_serde::to_vec(&(action, req)).expect("a request encodes")
    }
}

/// A request: `[key, time, nonce, refused | nil, sig]`.
fn request(r: &mut Reader<'_>) -> Result<Request, DecodeError> {
    r.array(5)?;
    Ok(Request {
        key: public_key(r)?,
        time: Timestamp(r.int()?),
        nonce: Bytes(r.bin()?),
        refused: if r.nil() {
            None
        } else {
            Some(tagged_action(r)?)
        },
        sig: Bytes(r.bin()?),
    })
}

/// An action map: `{ tag: [fields] }`.
fn tagged_action(r: &mut Reader<'_>) -> Result<Action, DecodeError> {
    r.map(1)?;
    let tag = r.str()?;
    action(r, tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::Bytes;

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
                factor: None,
                seq: 3,
                time: Timestamp(1_700_000_000_000_000),
                prev: Bytes([2; 32]),
                signer: pk,
                action,
                request: None,
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
            factor: None,
            seq: 1,
            time: Timestamp(5),
            prev: Bytes([0; 32]),
            signer: PublicKey(Bytes([1; 32])),
            action: Action::KeyDeleted { key_id: "K".into() },
            request: None,
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

    #[test]
    fn every_listed_tag_is_decoded() {
        for tag in ACTION_TAGS {
            let e = action(&mut Reader::new(&[]), tag).unwrap_err();
            assert!(!e.to_string().contains("unknown action tag"), "{tag}");
        }
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use crate::core::types::Bytes;

    #[test]
    fn wire_uses_bin_and_ints_json_uses_text() {
        let ev = Event {
            factor: None,
            seq: 1,
            time: Timestamp(5),
            prev: Bytes([0xab; 32]),
            signer: PublicKey(Bytes([1; 32])),
            action: Action::KeyDeleted { key_id: "K".into() },
            request: None,
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

#[cfg(test)]
mod request_tests {
    use super::*;

    fn through_server(refused: Option<Action>) -> Event {
        Event {
            factor: None,
            seq: 7,
            time: Timestamp(1_767_225_600_000_000),
            prev: Bytes([9; 32]),
            signer: PublicKey(Bytes([5; 32])),
            action: Action::KeyDisabled {
                key_id: "KLAKAAAAAAAAAAAAAAAALP5KS6".into(),
            },
            request: Some(Request {
                key: PublicKey(Bytes([3; 32])),
                time: Timestamp(1_767_225_599_000_000),
                nonce: Bytes([1; 16]),
                refused,
                sig: Bytes([4; 64]),
            }),
        }
    }

    /// A request rides as the body's 6th element (an array of 5) and decodes back; a direct
    /// event keeps its 5 elements, and a nil 6th element is not a form either has.
    #[test]
    fn a_request_is_the_sixth_element_and_only_present_when_there_is_one() {
        for refused in [None, Some(Action::UserDeleted { name: "bob".into() })] {
            let ev = through_server(refused);
            let body = ev.encode();
            assert_eq!(body[0], 0x96);
            assert_eq!(Event::decode(&body).unwrap(), ev);
        }
        let mut direct = through_server(None);
        direct.request = None;
        let body = direct.encode();
        assert_eq!(body[0], 0x95);
        assert_eq!(Event::decode(&body).unwrap(), direct);
        let mut nil_sixth = body.clone();
        nil_sixth[0] = 0x96;
        nil_sixth.push(0xc0);
        assert!(Event::decode(&nil_sixth).is_err());
        let mut seventh = through_server(None).encode();
        seventh[0] = 0x97;
        seventh.push(0xc0);
        assert!(Event::decode(&seventh).is_err());
    }
}
