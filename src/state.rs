//! State is a pure fold over events (L4). `authorize` decides whether an actor may perform
//! an action given the state at that point; `apply` = identify actor + authorize + mutate.
//! Append, replay and verify all use this one fold, so a ledger that verifies obeyed the
//! same rules the writer enforced.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::credentials::{self, Form};
use crate::event::{Action, Event, Permission};
use crate::types::{Hash32, LedgerId, PublicKey, Timestamp, valid_name};

/// Temporary credentials live between these bounds (R3), in microseconds.
pub const MIN_TEMPORARY_US: i64 = 15 * 60 * 1_000_000;
pub const MAX_TEMPORARY_US: i64 = 12 * 3600 * 1_000_000;
/// At most this many undeleted permanent keys per user (R7).
pub const MAX_KEYS_PER_USER: usize = 2;
/// Longest free text (scenario, reasons, channels) an event may carry.
pub const MAX_TEXT: usize = 1024;

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signer {
    pub principal: String,
    pub enrolled: At,
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

    /// Counts toward R7 and blocks user deletion (R2).
    fn is_live(&self, t: Timestamp) -> bool {
        self.status != KeyStatus::Deleted && !self.expired_at(t)
    }
}

/// A policy refusal: which rule, and a message that says why and what would be allowed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message} [{rule}]")]
pub struct Refusal {
    pub rule: &'static str,
    pub message: String,
}

fn refuse<T>(rule: &'static str, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        rule,
        message: message.into(),
    })
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
    #[error("signer {0} is not an enrolled signing key of this ledger")]
    NotEnrolled(PublicKey),
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
    pub fn is_signer_problem(&self) -> bool {
        matches!(
            self,
            Self::GenesisSigner { .. }
                | Self::NotEnrolled(_)
                | Self::Revoked { .. }
                | Self::PrincipalDeleted { .. }
        )
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

    pub fn has(&self, who: &str, p: Permission) -> bool {
        who == self.account
            || self
                .principals
                .get(who)
                .is_some_and(|x| x.deleted.is_none() && x.permissions.contains_key(&p))
    }

    fn is_admin(&self, who: &str) -> bool {
        self.has(who, Permission::Admin)
    }

    /// Live (undeleted) principal by name.
    fn live(&self, name: &str) -> Result<&Principal, Refusal> {
        match self.principals.get(name) {
            Some(p) if p.deleted.is_none() => Ok(p),
            Some(p) => refuse(
                "R2",
                format!(
                    "{name} was deleted at seq {}",
                    p.deleted.map_or(0, |d| d.seq)
                ),
            ),
            None => refuse(
                "R2",
                format!("there is no principal named {name:?}; see `keyledger user list`"),
            ),
        }
    }

    fn key(&self, id: &str) -> Result<&AccessKey, Refusal> {
        self.keys.get(id).ok_or_else(|| Refusal {
            rule: "R8",
            message: format!("there is no access key {id:?}; see `keyledger key list`"),
        })
    }

    /// Undeleted, unexpired keys of `user` that count toward R7.
    pub fn live_permanent_keys(&self, user: &str, t: Timestamp) -> Vec<&AccessKey> {
        self.keys_of(user)
            .filter(|k| !k.temporary && k.is_live(t))
            .collect()
    }

    /// Every access key issued to `user`, oldest first.
    pub fn keys_of<'a>(&'a self, user: &str) -> impl Iterator<Item = &'a AccessKey> + 'a {
        let ids = self.principals.get(user).map_or(&[][..], |p| &p.keys[..]);
        ids.iter().filter_map(|id| self.keys.get(id))
    }

    fn require_admin(&self, actor: &str, what: &str) -> Result<(), Refusal> {
        if self.is_admin(actor) {
            return Ok(());
        }
        refuse(
            "R4",
            format!("{actor} may not {what}: only the account or a principal with `admin` may"),
        )
    }

    /// R4: may `actor` manage the keys of `owner`?
    fn require_key_manager(&self, actor: &str, owner: &str, what: &str) -> Result<(), Refusal> {
        if owner == self.account {
            if actor == self.account {
                return Ok(());
            }
            return refuse(
                "R1",
                format!("{actor} may not {what}: only the account manages its own keys"),
            );
        }
        if self.is_admin(actor)
            || self.has(actor, Permission::ManageKeys)
            || (actor == owner && self.has(actor, Permission::ManageOwnKeys))
        {
            return Ok(());
        }
        let need = if actor == owner {
            "admin, manage-keys or manage-own-keys"
        } else {
            "admin or manage-keys"
        };
        refuse(
            "R4",
            format!("{actor} may not {what} of {owner}: that needs {need}"),
        )
    }

    fn check_text(field: &str, s: &str) -> Result<(), Refusal> {
        if s.len() > MAX_TEXT {
            return refuse("L1", format!("{field} is longer than {MAX_TEXT} bytes"));
        }
        Ok(())
    }

    fn check_new_name(&self, name: &str) -> Result<(), Refusal> {
        if !valid_name(name) {
            return refuse(
                "R2",
                format!(
                    "{name:?} is not a valid name: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
                ),
            );
        }
        if let Some(p) = self.principals.get(name) {
            return refuse(
                "R2",
                match p.deleted {
                    Some(d) => {
                        format!("{name} existed until seq {}; names are never reused", d.seq)
                    }
                    None => format!("{name} already exists"),
                },
            );
        }
        Ok(())
    }

    fn check_new_key_id(&self, id: &str, temporary: bool) -> Result<(), Refusal> {
        let form = if temporary {
            Form::TemporaryId
        } else {
            Form::PermanentId
        };
        if !credentials::is_valid(form, id) {
            return refuse(
                "R5",
                format!(
                    "{id:?} is not a well-formed {} key ID",
                    if temporary { "temporary" } else { "permanent" }
                ),
            );
        }
        if self.keys.contains_key(id) {
            return refuse(
                "R5",
                format!("key ID {id} was already used; IDs are never reused"),
            );
        }
        Ok(())
    }

    /// May `actor` perform `action` at `time`, given this state? (Genesis is structural.)
    pub fn authorize(&self, actor: &str, action: &Action, time: Timestamp) -> Result<(), Refusal> {
        match action {
            Action::Genesis { .. } => refuse("L3", "a genesis event may only appear at seq 0"),
            Action::SignerEnrolled {
                principal,
                public_key,
            } => {
                self.require_admin(actor, "enroll signing keys")?;
                self.live(principal)?;
                if let Some(s) = self.signers.get(public_key) {
                    return refuse(
                        "L3",
                        format!(
                            "key {public_key} was already enrolled for {} at seq {}; a key is enrolled once",
                            s.principal, s.enrolled.seq
                        ),
                    );
                }
                Ok(())
            }
            Action::SignerRevoked {
                principal,
                public_key,
            } => {
                if actor != principal {
                    self.require_admin(actor, "revoke another principal's signing key")?;
                }
                match self.signers.get(public_key) {
                    Some(s) if s.principal == *principal && s.revoked.is_none() => {}
                    _ => {
                        return refuse(
                            "L3",
                            format!("{public_key} is not an active signing key of {principal}"),
                        );
                    }
                }
                if *principal == self.account {
                    let others = self
                        .signers
                        .iter()
                        .filter(|(k, s)| {
                            s.principal == self.account && s.revoked.is_none() && *k != public_key
                        })
                        .count();
                    if others == 0 {
                        return refuse(
                            "L3",
                            "that is the account's last signing key; enroll another first",
                        );
                    }
                }
                Ok(())
            }
            Action::UserCreated { name, .. } => {
                self.require_admin(actor, "create users")?;
                self.check_new_name(name)
            }
            Action::UserDeleted { name } => {
                self.require_admin(actor, "delete users")?;
                if *name == self.account {
                    return refuse("R1", "the account cannot be deleted");
                }
                self.live(name)?;
                let live: Vec<&str> = self
                    .keys_of(name)
                    .filter(|k| k.is_live(time))
                    .map(|k| k.id.as_str())
                    .collect();
                if !live.is_empty() {
                    return refuse(
                        "R2",
                        format!(
                            "{name} still has keys ({}); delete them first or pass --delete-keys",
                            live.join(", ")
                        ),
                    );
                }
                Ok(())
            }
            Action::PermissionGranted {
                principal,
                permission,
            } => {
                self.require_admin(actor, "grant permissions")?;
                if *principal == self.account {
                    return refuse("R4", "the account already holds every permission");
                }
                if self.live(principal)?.permissions.contains_key(permission) {
                    return refuse("R4", format!("{principal} already has {permission}"));
                }
                Ok(())
            }
            Action::PermissionRevoked {
                principal,
                permission,
            } => {
                self.require_admin(actor, "revoke permissions")?;
                if !self.live(principal)?.permissions.contains_key(permission) {
                    return refuse("R4", format!("{principal} does not have {permission}"));
                }
                Ok(())
            }
            Action::KeyCreated {
                key_id,
                user,
                scenario,
                confirmed_necessary,
                root_key_allowed,
                ..
            } => {
                self.check_new_key_id(key_id, false)?;
                Self::check_text("scenario", scenario)?;
                if !confirmed_necessary {
                    return refuse(
                        "R9",
                        "creating a permanent key needs --confirm-necessary: confirm that temporary credentials will not do",
                    );
                }
                if scenario.trim().is_empty() {
                    return refuse("R9", "say why a permanent key is needed: --scenario TEXT");
                }
                let owner = self.live(user)?;
                if owner.kind == PrincipalKind::Federated {
                    return refuse(
                        "R3",
                        format!(
                            "{user} is a federated user and may only receive temporary credentials: use `keyledger sts issue --user {user}`"
                        ),
                    );
                }
                if owner.kind == PrincipalKind::Account && !root_key_allowed {
                    return refuse(
                        "R1",
                        "an access key for the account (root) is strongly discouraged; create one for a user, or pass --allow-root-key",
                    );
                }
                self.require_key_manager(actor, user, "create keys")?;
                let live = self.live_permanent_keys(user, time);
                if live.len() >= MAX_KEYS_PER_USER {
                    let ids: Vec<&str> = live.iter().map(|k| k.id.as_str()).collect();
                    return refuse(
                        "R7",
                        format!(
                            "{user} already has {MAX_KEYS_PER_USER} access keys ({}); disabled keys count: delete one first",
                            ids.join(", ")
                        ),
                    );
                }
                Ok(())
            }
            Action::TemporaryIssued {
                key_id,
                user,
                expires,
                ..
            } => {
                self.check_new_key_id(key_id, true)?;
                if *user == self.account {
                    return refuse(
                        "R1",
                        "temporary credentials are issued to users, not the account",
                    );
                }
                self.live(user)?;
                let d = expires.0.saturating_sub(time.0);
                if !(MIN_TEMPORARY_US..=MAX_TEMPORARY_US).contains(&d) {
                    return refuse("R3", "temporary credentials last between 15m and 12h");
                }
                self.require_key_manager(actor, user, "issue temporary credentials")
            }
            Action::SecretRevealed {
                key_id,
                to,
                channel,
            } => {
                Self::check_text("channel", channel)?;
                let k = self.key(key_id)?;
                if k.created_by != actor || to != actor {
                    return refuse(
                        "R10",
                        format!(
                            "only {}, who created {key_id}, receives its secret",
                            k.created_by
                        ),
                    );
                }
                if let Some(r) = &k.revealed {
                    return refuse(
                        "R10",
                        format!(
                            "the secret of {key_id} was already revealed at seq {}; it is never shown again: create another key",
                            r.at.seq
                        ),
                    );
                }
                if k.status == KeyStatus::Deleted {
                    return refuse("R10", format!("{key_id} is deleted"));
                }
                Ok(())
            }
            Action::KeyDisabled { key_id }
            | Action::KeyEnabled { key_id }
            | Action::KeyDeleted { key_id } => {
                let k = self.key(key_id)?;
                let verb = action
                    .tag()
                    .trim_start_matches("key-")
                    .trim_end_matches('d');
                self.require_key_manager(actor, &k.user, &format!("{verb} keys"))?;
                match (action, k.status) {
                    (_, KeyStatus::Deleted) => {
                        refuse("R8", format!("{key_id} is deleted; deletion is final"))
                    }
                    (Action::KeyDisabled { .. }, KeyStatus::Disabled) => {
                        refuse("R8", format!("{key_id} is already disabled"))
                    }
                    (Action::KeyEnabled { .. }, KeyStatus::Active) => {
                        refuse("R8", format!("{key_id} is already active"))
                    }
                    (Action::KeyEnabled { .. }, _) if k.expired_at(time) => {
                        refuse("R3", format!("{key_id} has expired"))
                    }
                    _ => Ok(()),
                }
            }
            Action::AuthSucceeded { key_id } => {
                let k = self.key(key_id)?;
                if k.status != KeyStatus::Active || k.expired_at(time) {
                    return refuse(
                        "R11",
                        format!("{key_id} is {} and cannot authenticate", k.status_at(time)),
                    );
                }
                Ok(())
            }
            Action::AuthFailed { key_id, reason } => {
                Self::check_text("key id", key_id)?;
                Self::check_text("reason", reason)
            }
            Action::ActionDenied {
                attempted, reason, ..
            } => {
                Self::check_text("attempted", attempted)?;
                Self::check_text("reason", reason)
            }
            Action::CheckpointRecorded { size, .. } => {
                if *size != self.events {
                    return refuse(
                        "L5",
                        format!(
                            "a recorded checkpoint covers the {} events before it, not {size}",
                            self.events
                        ),
                    );
                }
                Ok(())
            }
            Action::LogRepaired { quarantine, .. } => {
                Self::check_text("quarantine", quarantine)?;
                self.require_admin(actor, "repair the ledger")
            }
        }
    }

    /// Applies one event: identifies the actor by its signer, authorizes, mutates.
    /// On error the state is unchanged.
    pub fn apply(&mut self, ev: &Event, hash: &Hash32) -> Result<(), ApplyError> {
        let at = At {
            seq: ev.seq,
            time: ev.time,
        };
        if let Action::Genesis {
            ledger_id,
            account,
            public_key,
        } = &ev.action
        {
            if self.ledger_id.is_some() || ev.seq != 0 {
                return Err(ApplyError::LateGenesis);
            }
            if ev.signer != *public_key {
                return Err(ApplyError::GenesisSigner {
                    signer: ev.signer,
                    named: *public_key,
                });
            }
            if !valid_name(account) {
                return Err(Refusal {
                    rule: "R1",
                    message: format!("account name {account:?} is not a valid name"),
                }
                .into());
            }
            self.ledger_id = Some(*ledger_id);
            self.account = account.clone();
            self.genesis_hash = Some(*hash);
            self.add_principal(account, PrincipalKind::Account, at);
            self.signers.insert(
                *public_key,
                Signer {
                    principal: account.clone(),
                    enrolled: at,
                    revoked: None,
                },
            );
            self.events += 1;
            return Ok(());
        }
        if self.ledger_id.is_none() {
            return Err(ApplyError::NoGenesis);
        }
        let actor = self.actor_of(&ev.signer)?;
        self.authorize(actor, &ev.action, ev.time)?;
        // Only new keys keep their creator's name; no other action needs an owned copy.
        let creator = match ev.action {
            Action::KeyCreated { .. } | Action::TemporaryIssued { .. } => actor.to_owned(),
            _ => String::new(),
        };
        self.mutate(creator, &ev.action, at);
        self.events += 1;
        Ok(())
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

    /// Mutation after a successful `authorize`; cannot fail.
    fn mutate(&mut self, creator: String, action: &Action, at: At) {
        match action {
            Action::Genesis { .. } | Action::ActionDenied { .. } => {}
            Action::SignerEnrolled {
                principal,
                public_key,
            } => {
                self.signers.insert(
                    *public_key,
                    Signer {
                        principal: principal.clone(),
                        enrolled: at,
                        revoked: None,
                    },
                );
            }
            Action::SignerRevoked { public_key, .. } => {
                if let Some(s) = self.signers.get_mut(public_key) {
                    s.revoked = Some(at);
                }
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
                creator,
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
                creator,
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
            Action::KeyDeleted { key_id } => self.set_status(key_id, KeyStatus::Deleted, at),
            Action::AuthSucceeded { key_id } => self.key_mut(key_id).last_used = Some(at),
            Action::AuthFailed { key_id, .. } => {
                if let Some(k) = self.keys.get_mut(key_id) {
                    k.failed_auths += 1;
                }
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
        self.principal_mut(user).keys.push(id.to_owned());
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

    /// Active signing keys of a principal.
    pub fn signing_keys_of(&self, name: &str) -> Vec<PublicKey> {
        let mut v: Vec<PublicKey> = self
            .signers
            .iter()
            .filter(|(_, s)| s.principal == name && s.revoked.is_none())
            .map(|(k, _)| *k)
            .collect();
        v.sort();
        v
    }
}
