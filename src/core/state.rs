//! State is a pure fold over events (L4). `authorize` decides whether an actor may perform
//! an action given the state at that point; `apply` = identify actor + authorize + mutate.
//! Append, replay and verify all use this one fold, so a ledger that verifies obeyed the
//! same rules the writer enforced.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::credentials::{Form, contains_credential};
use crate::core::event::{Action, Event, Permission, Request};
use crate::core::request::{self, REQUEST_SKEW_US};
use crate::core::types::{Hash32, LedgerId, PublicKey, Timestamp, valid_name};

/// Temporary credentials live between these bounds (R3), in microseconds.
pub const MIN_TEMPORARY_US: i64 = 15 * 60 * 1_000_000;
pub const MAX_TEMPORARY_US: i64 = 12 * 3600 * 1_000_000;
/// At most this many undeleted permanent keys per user (R7).
pub const MAX_KEYS_PER_USER: usize = 2;
/// Longest free text (scenario, reasons, channels, quarantine) an event may carry, in bytes.
pub const MAX_TEXT: usize = 1024;
/// Longest key ID or principal name an `auth-failed` or `action-denied` event may name.
pub const MAX_ID: usize = 64;
/// Largest torn tail `log-repaired` can record: less than one whole frame of the largest size.
pub const MAX_TORN: u64 =
    crate::core::format::FRAME_OVERHEAD + crate::core::format::MAX_BODY as u64 - 1;

/// Where and when something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct At {
    pub seq: u64,
    pub time: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalKind {
    Account,
    User,
    Federated,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::User => "user",
            Self::Federated => "federated",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind,
    pub created: At,
    pub deleted: Option<At>,
    pub permissions: BTreeMap<Permission, At>,
    /// IDs of the access keys issued to this principal, oldest first (so per-user rules
    /// need not scan every key).
    pub keys: Vec<String>,
    /// Signing keys ever enrolled for this principal, in enrolment order (revoked ones too).
    #[serde(default)]
    pub signing_keys: Vec<PublicKey>,
    /// How many of `signing_keys` are not revoked.
    #[serde(default)]
    pub active_signers: u64,
    /// Undeleted permanent keys (R7 allows at most two).
    #[serde(default)]
    pub live_permanent: Vec<String>,
    /// Undeleted temporary credentials by expiry, so "any live key at t" is one lookup.
    #[serde(default)]
    pub open_temporary: std::collections::BTreeSet<(Timestamp, String)>,
    /// R13: operation protection, in force since this event.
    #[serde(default)]
    pub protection: Option<Protection>,
    /// R13: the greatest TOTP step a server attested for this principal (never decreases,
    /// across a disable and a new enable too).
    #[serde(default)]
    pub factor_step: Option<u64>,
}

/// R13: a principal's operation protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    pub since: At,
    pub factor: crate::core::event::FactorKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signer {
    pub principal: String,
    pub enrolled: At,
    /// Who enrolled the key (the actor of its `signer-enrolled` event; the account for the
    /// genesis key): the principal an event's signature really vouches for.
    pub enrolled_by: String,
    pub revoked: Option<At>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Disabled,
    Deleted,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reveal {
    pub at: At,
    pub to: String,
    pub channel: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub user: String,
    pub temporary: bool,
    pub fingerprint: Hash32,
    pub token_fingerprint: Option<Hash32>,
    pub created: At,
    pub created_by: String,
    pub scenario: Option<String>,
    pub expires: Option<Timestamp>,
    pub status: KeyStatus,
    pub status_changed: At,
    pub revealed: Option<Reveal>,
    pub last_used: Option<At>,
    pub failed_auths: u64,
    /// The key that replaced this one in a rotation, and when.
    pub rotated_to: Option<Rotation>,
    /// The key this one replaced in a rotation, and when.
    pub rotated_from: Option<Rotation>,
    /// The first `leak-reported` event of this key, and how many there were (R14).
    #[serde(default)]
    pub leak_reported: Option<At>,
    #[serde(default)]
    pub leak_reports: u64,
}

/// One side of a `key-rotated` event: the other key, and the event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rotation {
    pub key_id: String,
    pub at: At,
}

impl AccessKey {
    pub fn expired_at(&self, t: Timestamp) -> bool {
        self.expires.is_some_and(|e| t >= e)
    }

    /// Status as seen at `t`: temporary credentials past expiry read `expired`.
    pub fn status_at(&self, t: Timestamp) -> &'static str {
        if self.status != KeyStatus::Deleted && self.expired_at(t) {
            "expired"
        } else {
            self.status.as_str()
        }
    }
}

/// A policy refusal: which rule, and a message that says why and what would be allowed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message} [{rule}]")]
pub struct Refusal {
    pub rule: &'static str,
    pub message: String,
}

/// Why an event could not be applied.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("the first event must be a genesis event at seq 0")]
    NoGenesis,
    #[error("a genesis event may only appear at seq 0")]
    LateGenesis,
    #[error("genesis is signed by {signer}, not by the account key it names ({named})")]
    GenesisSigner { signer: PublicKey, named: PublicKey },
    #[error("the genesis names the account key {key}, which may not sign: {reason}")]
    GenesisKey {
        key: PublicKey,
        reason: &'static str,
    },
    #[error("the genesis names the account {0:?}, which is not a valid name")]
    GenesisAccount(String),
    #[error("the genesis carries a request; the ledger's first event is its account's own")]
    GenesisRequest,
    #[error("signer {0} is not an enrolled signing key of this ledger")]
    NotEnrolled(PublicKey),
    /// The request inside an event written through a server fails check 7a (§8).
    #[error("request: {1}")]
    Request(RequestFault, String),
    #[error("signer {key} (of {principal}) was revoked at seq {revoked_seq}")]
    Revoked {
        key: PublicKey,
        principal: String,
        revoked_seq: u64,
    },
    #[error("signer {key} belongs to {principal}, who was deleted at seq {deleted_seq}")]
    PrincipalDeleted {
        key: PublicKey,
        principal: String,
        deleted_seq: u64,
    },
    #[error("action not allowed by policy: {0}")]
    Policy(#[from] Refusal),
}

impl ApplyError {
    /// Signer problems are integrity failures (L3); the rest are policy (L4).
    pub fn is_request_problem(&self) -> bool {
        matches!(self, Self::Request(..))
    }

    pub fn is_signer_problem(&self) -> bool {
        matches!(
            self,
            Self::NotEnrolled(_) | Self::Revoked { .. } | Self::PrincipalDeleted { .. }
        )
    }
}

/// What part of check 7a a request fails: a server answers a client by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// The frame's signer may not carry requests (no `server` permission).
    Server,
    /// The request's key is not an enrolled, live signing key.
    Key,
    /// The request's shape: a `refused` action where none belongs, or one too long.
    Shape,
    /// The request's time is too far from the event's.
    Time,
    /// The (key, nonce) was applied before.
    Replay,
    /// The signature does not verify (another ledger, another action, a changed byte).
    Signature,
    /// A second-factor attestation where none belongs, or with a step outside its window
    /// or before one attested already (§8 7a g).
    Factor,
}

/// A request applied to the ledger: where, and enough to recognise it again, so that a
/// retried request is answered with its original receipt instead of being applied twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub seq: u64,
    pub time: Timestamp,
    pub hash: Hash32,
    /// Recorded as `action-denied` (or `auth-failed`): the request was refused.
    pub refused: bool,
    /// The first 8 bytes of the request's signature: the same request, not only its nonce.
    pub tag: [u8; 8],
}

impl Applied {
    pub fn same_request(&self, req: &Request) -> bool {
        req.sig.0[..8] == self.tag
    }
}

/// Why the `refused` element of a request does not fit its event's action, if it does not
/// (§8 7a b): an `action-denied` carries the action its actor signed (never a genesis or a
/// denial; bounded and credential-free); an `auth-failed` carries the `auth-succeeded`
/// its gateway asked for, for the same key; every other event carries none.
pub(crate) fn refused_shape(action: &Action, refused: Option<&Action>) -> Option<String> {
    match (action, refused) {
        (Action::ActionDenied { .. }, None) => Some(
            "an action-denied event through a server must carry the refused action its actor signed".into(),
        ),
        (
            Action::ActionDenied { .. },
            Some(Action::Genesis { .. } | Action::ActionDenied { .. }),
        ) => Some("the refused action cannot be a genesis or an action-denied".into()),
        (Action::ActionDenied { .. }, Some(r)) => r
            .strings()
            .into_iter()
            .find(|f| f.len() > MAX_TEXT || contains_credential(f))
            .map(|f| {
                format!(
                    "a field of the refused action is longer than {MAX_TEXT} bytes or holds a credential ({} bytes)",
                    f.len()
                )
            }),
        (Action::AuthFailed { key_id, .. }, Some(Action::AuthSucceeded { key_id: asked }))
            if asked == key_id =>
        {
            None
        }
        (Action::AuthFailed { .. }, Some(_)) => Some(
            "an auth-failed event can carry only the auth-succeeded its gateway asked for, for the same key".into(),
        ),
        (_, Some(_)) => Some(
            "only an action-denied or auth-failed event carries a refused action".into(),
        ),
        (_, None) => None,
    }
}

/// Everything derived from the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub ledger_id: Option<LedgerId>,
    pub account: String,
    pub genesis_hash: Option<Hash32>,
    pub principals: BTreeMap<String, Principal>,
    pub signers: HashMap<PublicKey, Signer>,
    pub keys: BTreeMap<String, AccessKey>,
    /// Events applied so far (the next event's seq).
    pub events: u64,
    /// The file's format version (§1): a request or the `server` permission needs 2.
    pub format_version: u16,
    /// Requests applied so far, by `request::replay_id`: a request is never applied twice
    /// (§8 7a e).
    pub requests: HashMap<Hash32, Applied>,
    /// R14: (key ID, actor) when the last event applied is a `leak-reported`: a server
    /// may disable that key next.
    #[serde(default)]
    pub last_leak: Option<(String, String)>,
    /// R11: the summaries of failed checks past a server's rate (floods), in log order.
    #[serde(default)]
    pub floods: Vec<Flood>,
}

/// R11: the key ID a summary gives failed checks of IDs of no key of this ledger.
pub const UNKNOWN_KEYS: &str = "*";

/// R11: one `auth-failures-summarized` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flood {
    pub at: At,
    pub key_id: String,
    pub count: u64,
    pub first: Timestamp,
    pub last: Timestamp,
}

impl State {
    /// The principal an enrolled, unrevoked key signs for.
    pub fn actor_of(&self, pk: &PublicKey) -> Result<&str, ApplyError> {
        let s = self.signers.get(pk).ok_or(ApplyError::NotEnrolled(*pk))?;
        if let Some(r) = s.revoked {
            return Err(ApplyError::Revoked {
                key: *pk,
                principal: s.principal.clone(),
                revoked_seq: r.seq,
            });
        }
        if let Some(d) = self.principals.get(&s.principal).and_then(|p| p.deleted) {
            return Err(ApplyError::PrincipalDeleted {
                key: *pk,
                principal: s.principal.clone(),
                deleted_seq: d.seq,
            });
        }
        Ok(&s.principal)
    }

    /// The principal who acted in `ev` (the request's signer through a server, §6.2), and
    /// the principal who enrolled that key; `?` for a key never enrolled.
    pub fn actor_and_enroller(&self, ev: &Event) -> (&str, &str) {
        self.signers.get(ev.actor_key()).map_or(("?", "?"), |s| {
            (s.principal.as_str(), s.enrolled_by.as_str())
        })
    }

    pub fn has(&self, who: &str, p: Permission) -> bool {
        who == self.account
            || self
                .principals
                .get(who)
                .is_some_and(|x| x.deleted.is_none() && x.permissions.contains_key(&p))
    }

    /// Undeleted permanent keys of `user`: those that count toward R7.
    pub fn live_permanent_keys(&self, user: &str) -> &[String] {
        self.principals
            .get(user)
            .map_or(&[][..], |p| &p.live_permanent[..])
    }

    /// Keys of `user` live at `t` (undeleted, unexpired): up to `max` of their IDs, and
    /// whether there are more. O(log n + max), however many keys the user ever had.
    pub fn live_keys_of(&self, user: &str, t: Timestamp, max: usize) -> (Vec<&str>, bool) {
        let Some(p) = self.principals.get(user) else {
            return (Vec::new(), false);
        };
        let after = (t.plus_micros(1), String::new());
        let mut ids: Vec<&str> = p.live_permanent.iter().map(String::as_str).collect();
        ids.extend(
            p.open_temporary
                .range(after..)
                .take(max + 1)
                .map(|(_, id)| id.as_str()),
        );
        let more = ids.len() > max;
        ids.truncate(max);
        (ids, more)
    }

    /// Every access key issued to `user`, oldest first.
    pub fn keys_of<'a>(&'a self, user: &str) -> impl Iterator<Item = &'a AccessKey> + 'a {
        let ids = self.principals.get(user).map_or(&[][..], |p| &p.keys[..]);
        ids.iter().filter_map(|id| self.keys.get(id))
    }

    /// Why `ev` cannot start a ledger, if it cannot (§8.6): it must be a genesis signed by
    /// the key it names, that key acceptable (§6.2), and the account a name.
    pub fn check_genesis(ev: &Event) -> Result<(), ApplyError> {
        let Action::Genesis {
            account,
            public_key,
            ..
        } = &ev.action
        else {
            return Err(ApplyError::NoGenesis);
        };
        if ev.request.is_some() {
            return Err(ApplyError::GenesisRequest);
        }
        if ev.signer != *public_key {
            return Err(ApplyError::GenesisSigner {
                signer: ev.signer,
                named: *public_key,
            });
        }
        if let Some(reason) = crate::core::signing::key_problem(public_key) {
            return Err(ApplyError::GenesisKey {
                key: *public_key,
                reason,
            });
        }
        if !valid_name(account) {
            return Err(ApplyError::GenesisAccount(account.clone()));
        }
        Ok(())
    }

    /// Starts the state from a genesis event (frame 0) that passes `check_genesis`.
    pub fn genesis(&mut self, ev: &Event, hash: &Hash32) -> Result<(), ApplyError> {
        if self.ledger_id.is_some() {
            return Err(ApplyError::LateGenesis);
        }
        Self::check_genesis(ev)?;
        let Action::Genesis {
            ledger_id,
            account,
            public_key,
        } = &ev.action
        else {
            return Err(ApplyError::NoGenesis);
        };
        let at = At {
            seq: ev.seq,
            time: ev.time,
        };
        self.ledger_id = Some(*ledger_id);
        self.account = account.clone();
        self.genesis_hash = Some(*hash);
        self.add_principal(account, PrincipalKind::Account, at);
        self.enroll(account, *public_key, account, at);
        self.events += 1;
        Ok(())
    }

    /// Applies one event after genesis: identifies the actor by its signer, authorizes,
    /// mutates. On error the state is unchanged.
    pub fn apply(&mut self, ev: &Event, hash: &Hash32) -> Result<(), ApplyError> {
        self.apply_with(ev, hash, false)
    }

    /// As `apply`; with `request_sig_checked`, the request's signature (never anything
    /// else of check 7a) is taken as verified by the caller, who checked it over this
    /// event's requested action.
    pub fn apply_with(
        &mut self,
        ev: &Event,
        hash: &Hash32,
        request_sig_checked: bool,
    ) -> Result<(), ApplyError> {
        if matches!(ev.action, Action::Genesis { .. }) {
            return Err(ApplyError::LateGenesis);
        }
        if self.ledger_id.is_none() {
            // No valid genesis: no key is enrolled, so nothing can be signed validly.
            return Err(ApplyError::NotEnrolled(ev.signer));
        }
        let at = At {
            seq: ev.seq,
            time: ev.time,
        };
        let actor = match &ev.request {
            None => self.actor_of(&ev.signer)?,
            Some(req) => self.request_actor(ev, req, request_sig_checked)?,
        };
        self.authorize(actor, &ev.action, ev.time)?;
        self.require_factor(actor, &ev.action, ev.factor.is_some(), ev.request.is_none())?;
        let attested = match (&ev.factor, self.factor_subject(actor, &ev.action)) {
            (Some(f), Some(subject)) => Some((subject.to_owned(), f.step)),
            _ => None,
        };
        let leak = match &ev.action {
            Action::LeakReported { key_id, .. } => Some((key_id.clone(), actor.to_owned())),
            _ => None,
        };
        // Only new keys and signers keep their actor's name; nothing else needs a copy.
        let actor = match ev.action {
            Action::KeyCreated { .. }
            | Action::TemporaryIssued { .. }
            | Action::SignerEnrolled { .. } => actor.to_owned(),
            _ => String::new(),
        };
        if let Some(req) = &ev.request {
            let applied = Applied {
                seq: ev.seq,
                time: ev.time,
                hash: *hash,
                refused: req.refused.is_some(),
                tag: req.sig.0[..8].try_into().expect("8 bytes"),
            };
            self.requests.insert(request::replay_id(req), applied);
        }
        self.mutate(actor, &ev.action, at);
        self.last_leak = leak;
        if let Some((subject, step)) = attested {
            self.principal_mut(&subject).factor_step = Some(step);
        }
        self.events += 1;
        Ok(())
    }

    /// The key a leaked credential belongs to (R14): by its ID, or by the fingerprint of a
    /// secret or security token compared with every key's (one BLAKE3 each, so 100,000
    /// keys take milliseconds). `None` if it is no key of this ledger.
    pub fn key_of_credential(&self, form: Form, text: &str) -> Option<&AccessKey> {
        use crate::core::credentials::{SecretText, matches};
        let presented = SecretText::from_input(text);
        let stored = |k: &AccessKey| match form {
            Form::Secret => Some(k.fingerprint),
            Form::Token => k.token_fingerprint,
            Form::PermanentId | Form::TemporaryId => None,
        };
        match form {
            Form::PermanentId | Form::TemporaryId => self.keys.get(text),
            Form::Secret | Form::Token => self
                .keys
                .values()
                .find(|k| stored(k).is_some_and(|fp| matches(&k.id, &presented, &fp))),
        }
    }

    /// Check 7a (§8) of an event with a request; the actor is the request's signer.
    /// With `sig_checked`, the signature is taken as verified (see `apply_with`).
    pub fn request_actor(
        &self,
        ev: &Event,
        req: &Request,
        sig_checked: bool,
    ) -> Result<&str, ApplyError> {
        use RequestFault as F;
        let bad = |f: RequestFault, m: String| Err(ApplyError::Request(f, m));
        let server = self.actor_of(&ev.signer)?;
        if !self.has(server, Permission::Server) {
            return bad(
                F::Server,
                format!(
                    "the frame is signed by {server}, who does not hold the server permission, so it cannot carry another principal's request"
                ),
            );
        }
        let actor = match self.actor_of(&req.key) {
            Ok(a) => a,
            Err(e) => return bad(F::Key, format!("the request's key: {e}")),
        };
        if let Some(m) = refused_shape(&ev.action, req.refused.as_ref()) {
            return bad(F::Shape, m);
        }
        if req.time.0.abs_diff(ev.time.0) > REQUEST_SKEW_US as u64 {
            return bad(
                F::Time,
                format!(
                    "signed at {}, more than 5 minutes from the event's time {}",
                    req.time, ev.time
                ),
            );
        }
        if let Some(a) = self.requests.get(&request::replay_id(req)) {
            return bad(
                F::Replay,
                format!(
                    "nonce {} of key {} was already used by the request of seq {}: a request is applied once",
                    req.nonce.hex(),
                    req.key,
                    a.seq
                ),
            );
        }
        if let Some(f) = &ev.factor {
            let step = |t: Timestamp| t.0.div_euclid(crate::core::totp::STEP_US);
            let now = step(ev.time);
            let Some(subject) = self.factor_subject(actor, &ev.action) else {
                return bad(
                    F::Factor,
                    format!(
                        "a second-factor attestation on {} by {actor}, which needs none (R13: only a protected action of a protected actor, or protection-enabled)",
                        ev.action.tag()
                    ),
                );
            };
            let s = f.step as i64;
            if f.step > i64::MAX as u64 || s < now - 2 || s > now + 1 {
                return bad(
                    F::Factor,
                    format!(
                        "the attested TOTP step {} is not within 2 steps before and 1 after the event's step {now}",
                        f.step
                    ),
                );
            }
            if subject == server {
                return bad(
                    F::Factor,
                    format!(
                        "the attestation of {subject}'s second factor is signed by a key of {subject} itself: a server never vouches for its own principal's factor"
                    ),
                );
            }
            let last = self.principals.get(subject).and_then(|p| p.factor_step);
            if let Some(last) = last.filter(|l| f.step < *l) {
                return bad(
                    F::Factor,
                    format!(
                        "the attested TOTP step {} of {subject} is before step {last}, attested already: codes are accepted in time order, once",
                        f.step
                    ),
                );
            }
        }
        let ledger_id = self.ledger_id.expect("checked by apply");
        if !sig_checked && !request::verify(&ledger_id, req, request::requested(req, &ev.action)) {
            return bad(
                F::Signature,
                format!(
                    "the request signature does not verify for key {} over this ledger's id, the request's time and nonce and the action",
                    req.key
                ),
            );
        }
        Ok(actor)
    }

    fn enroll(&mut self, principal: &str, key: PublicKey, by: &str, at: At) {
        let p = self.principal_mut(principal);
        p.signing_keys.push(key);
        p.active_signers += 1;
        self.signers.insert(
            key,
            Signer {
                principal: principal.to_owned(),
                enrolled: at,
                enrolled_by: by.to_owned(),
                revoked: None,
            },
        );
    }

    fn add_principal(&mut self, name: &str, kind: PrincipalKind, at: At) {
        self.principals.insert(
            name.to_owned(),
            Principal {
                name: name.to_owned(),
                kind,
                created: at,
                deleted: None,
                permissions: BTreeMap::new(),
                keys: Vec::new(),
                signing_keys: Vec::new(),
                active_signers: 0,
                live_permanent: Vec::new(),
                open_temporary: Default::default(),
                protection: None,
                factor_step: None,
            },
        );
    }

    fn key_mut(&mut self, id: &str) -> &mut AccessKey {
        self.keys
            .get_mut(id)
            .expect("authorized actions name existing keys")
    }

    fn principal_mut(&mut self, name: &str) -> &mut Principal {
        self.principals
            .get_mut(name)
            .expect("authorized actions name existing principals")
    }

    /// Mutation after a successful `authorize`; cannot fail. `actor` is set for the
    /// actions that record who performed them (new keys and signers), else empty.
    fn mutate(&mut self, actor: String, action: &Action, at: At) {
        match action {
            Action::Genesis { .. } | Action::ActionDenied { .. } => {}
            Action::SignerEnrolled {
                principal,
                public_key,
            } => self.enroll(principal, *public_key, &actor, at),
            Action::SignerRevoked {
                principal,
                public_key,
            } => {
                if let Some(s) = self.signers.get_mut(public_key) {
                    s.revoked = Some(at);
                }
                let p = self.principal_mut(principal);
                p.active_signers = p.active_signers.saturating_sub(1);
            }
            Action::UserCreated { name, federated } => {
                let kind = if *federated {
                    PrincipalKind::Federated
                } else {
                    PrincipalKind::User
                };
                self.add_principal(name, kind, at);
            }
            Action::UserDeleted { name } => self.principal_mut(name).deleted = Some(at),
            Action::PermissionGranted {
                principal,
                permission,
            } => {
                self.principal_mut(principal)
                    .permissions
                    .insert(*permission, at);
            }
            Action::PermissionRevoked {
                principal,
                permission,
            } => {
                self.principal_mut(principal).permissions.remove(permission);
            }
            Action::KeyCreated {
                key_id,
                user,
                fingerprint,
                scenario,
                ..
            } => self.insert_key(
                key_id,
                user,
                false,
                *fingerprint,
                None,
                Some(scenario.clone()),
                None,
                actor,
                at,
            ),
            Action::TemporaryIssued {
                key_id,
                user,
                fingerprint,
                token_fingerprint,
                expires,
            } => self.insert_key(
                key_id,
                user,
                true,
                *fingerprint,
                Some(*token_fingerprint),
                None,
                Some(*expires),
                actor,
                at,
            ),
            Action::SecretRevealed {
                key_id,
                to,
                channel,
            } => {
                self.key_mut(key_id).revealed = Some(Reveal {
                    at,
                    to: to.clone(),
                    channel: channel.clone(),
                });
            }
            Action::KeyDisabled { key_id } => self.set_status(key_id, KeyStatus::Disabled, at),
            Action::KeyEnabled { key_id } => self.set_status(key_id, KeyStatus::Active, at),
            Action::KeyDeleted { key_id } => {
                self.set_status(key_id, KeyStatus::Deleted, at);
                let k = &self.keys[key_id];
                let (user, expires) = (k.user.clone(), k.expires);
                let p = self.principal_mut(&user);
                p.live_permanent.retain(|id| id != key_id);
                if let Some(e) = expires {
                    p.open_temporary.remove(&(e, key_id.clone()));
                }
            }
            Action::AuthSucceeded { key_id } => self.key_mut(key_id).last_used = Some(at),
            Action::AuthFailed { key_id, .. } => {
                if let Some(k) = self.keys.get_mut(key_id) {
                    k.failed_auths += 1;
                }
            }
            Action::AuthFailuresSummarized {
                key_id,
                count,
                first,
                last,
            } => {
                if let Some(k) = self.keys.get_mut(key_id) {
                    k.failed_auths = k.failed_auths.saturating_add(*count);
                }
                self.floods.push(Flood {
                    at,
                    key_id: key_id.clone(),
                    count: *count,
                    first: *first,
                    last: *last,
                });
            }
            Action::KeyRotated {
                old_key_id,
                new_key_id,
            } => {
                self.key_mut(old_key_id).rotated_to = Some(Rotation {
                    key_id: new_key_id.clone(),
                    at,
                });
                self.key_mut(new_key_id).rotated_from = Some(Rotation {
                    key_id: old_key_id.clone(),
                    at,
                });
            }
            Action::LeakReported { key_id, .. } => {
                let k = self.key_mut(key_id);
                k.leak_reported.get_or_insert(at);
                k.leak_reports += 1;
            }
            Action::ProtectionEnabled { principal, factor } => {
                self.principal_mut(principal).protection = Some(Protection {
                    since: at,
                    factor: *factor,
                });
            }
            Action::ProtectionDisabled { principal } => {
                self.principal_mut(principal).protection = None;
            }
            Action::LogRepaired { .. } | Action::CheckpointRecorded { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn insert_key(
        &mut self,
        id: &str,
        user: &str,
        temporary: bool,
        fingerprint: Hash32,
        token_fingerprint: Option<Hash32>,
        scenario: Option<String>,
        expires: Option<Timestamp>,
        created_by: String,
        at: At,
    ) {
        let p = self.principal_mut(user);
        p.keys.push(id.to_owned());
        match expires {
            Some(e) => {
                p.open_temporary.insert((e, id.to_owned()));
            }
            None => p.live_permanent.push(id.to_owned()),
        }
        self.keys.insert(
            id.to_owned(),
            AccessKey {
                id: id.to_owned(),
                user: user.to_owned(),
                temporary,
                fingerprint,
                token_fingerprint,
                created: at,
                created_by,
                scenario,
                expires,
                status: KeyStatus::Active,
                status_changed: at,
                revealed: None,
                last_used: None,
                failed_auths: 0,
                rotated_to: None,
                rotated_from: None,
                leak_reported: None,
                leak_reports: 0,
            },
        );
    }

    fn set_status(&mut self, id: &str, status: KeyStatus, at: At) {
        let k = self.key_mut(id);
        k.status = status;
        k.status_changed = at;
    }

    /// Permissions of a principal as a sorted set (the account implicitly holds all).
    pub fn permissions_of(&self, name: &str) -> BTreeSet<Permission> {
        if name == self.account {
            return Permission::ALL.into_iter().collect();
        }
        self.principals
            .get(name)
            .map(|p| p.permissions.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The user owning the access key that `action` names, if any.
    pub fn key_owner(&self, action: &Action) -> Option<&str> {
        action
            .key_id()
            .and_then(|k| self.keys.get(k))
            .map(|k| k.user.as_str())
    }

    /// Active (unrevoked) signing keys of a principal, in enrolment order.
    pub fn signing_keys_of(&self, name: &str) -> Vec<PublicKey> {
        self.principals.get(name).map_or_else(Vec::new, |p| {
            p.signing_keys
                .iter()
                .filter(|k| self.signers.get(k).is_some_and(|s| s.revoked.is_none()))
                .copied()
                .collect()
        })
    }
}
