//! Policy (ledger-format.md §7): may an actor perform an action, given the state just before
//! it? The one rule book for appends, replays and `verify`, so a ledger that verifies obeyed
//! exactly the rules its writer enforced.

use crate::core::credentials::{self, Form};
use crate::core::event::{Action, Permission};
use crate::core::signing::key_problem;
use crate::core::state::{
    AccessKey, KeyStatus, MAX_ID, MAX_KEYS_PER_USER, MAX_TEMPORARY_US, MAX_TEXT, MAX_TORN,
    MIN_TEMPORARY_US, Principal, PrincipalKind, Refusal, State,
};
use crate::core::types::{PublicKey, Timestamp, valid_name};

fn refuse<T>(rule: &'static str, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        rule,
        message: message.into(),
    })
}

/// The channels a `secret-revealed` event may name (§5).
pub const STDOUT_CHANNELS: [&str; 3] = ["stdout:text", "stdout:json", "stdout:env"];

/// A text field of at most `max` bytes that holds no well-formed secret or security token.
fn check_text(field: &str, s: &str, max: usize) -> Result<(), Refusal> {
    if s.len() > max {
        return refuse("L1", format!("{field} is longer than {max} bytes"));
    }
    if credentials::contains_credential(s) {
        return refuse(
            "R6",
            format!("{field} holds an access key secret or security token; no event may"),
        );
    }
    Ok(())
}

/// Is `channel` one of the forms of §5: `stdout:text|json|env` or `csv:` and an absolute path?
pub fn valid_channel(channel: &str) -> bool {
    STDOUT_CHANNELS.contains(&channel)
        || channel
            .strip_prefix("csv:")
            .is_some_and(|p| p.starts_with('/') && !p.contains('\0'))
}

/// The rules an action's own fields decide, whatever the state (§7): a request that breaks
/// one is a usage error, refused before anything is appended, not evidence of a refusal.
/// `authorize` applies them too, so a ledger holding such an event does not verify.
pub fn check_form(action: &Action, time: Timestamp) -> Result<(), Refusal> {
    match action {
        Action::KeyCreated {
            scenario,
            confirmed_necessary,
            ..
        } => {
            check_text("scenario", scenario, MAX_TEXT)?;
            if !confirmed_necessary {
                return refuse(
                    "R9",
                    "creating a permanent key needs --confirm-necessary: confirm that temporary credentials will not do",
                );
            }
            if scenario.trim().is_empty() {
                return refuse("R9", "say why a permanent key is needed: --scenario TEXT");
            }
            Ok(())
        }
        Action::TemporaryIssued { expires, .. } => {
            let d = expires.0.saturating_sub(time.0);
            if !(MIN_TEMPORARY_US..=MAX_TEMPORARY_US).contains(&d) {
                return refuse("R3", "temporary credentials last between 15m and 12h");
            }
            Ok(())
        }
        Action::SecretRevealed { channel, .. } => {
            check_text("channel", channel, MAX_TEXT)?;
            if !valid_channel(channel) {
                return refuse(
                    "R10",
                    "the channel must be stdout:text, stdout:json, stdout:env or csv: and an absolute path",
                );
            }
            Ok(())
        }
        Action::LeakReported { source, reason, .. } => {
            check_text("source", source, MAX_TEXT)?;
            check_text("reason", reason, MAX_TEXT)?;
            if source.trim().is_empty() || reason.trim().is_empty() {
                return refuse(
                    "R14",
                    "a leak report says where the credential was found (--source) and why it is reported (--reason)",
                );
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl State {
    pub(crate) fn is_admin(&self, who: &str) -> bool {
        self.has(who, Permission::Admin)
    }

    /// R13: is operation protection of `who` in force?
    pub fn is_protected(&self, who: &str) -> bool {
        self.principals
            .get(who)
            .is_some_and(|p| p.protection.is_some())
    }

    /// R13: whose second factor `action` by `actor` needs, if any: the actor's, for a
    /// protected action by a protected actor; the named principal's (its new
    /// authenticator's), for `protection-enabled`.
    pub fn factor_subject<'a>(&self, actor: &'a str, action: &'a Action) -> Option<&'a str> {
        match action {
            Action::ProtectionEnabled { principal, .. } => Some(principal),
            // R14: a server disabling the key it just recorded a scanner's report of acts on
            // that signed report, not on its own say: no factor of its own is asked.
            Action::KeyDisabled { key_id } if self.disables_after_report(actor, key_id) => None,
            a if a.is_protected() && self.is_protected(actor) => Some(actor),
            _ => None,
        }
    }

    /// R14: `actor` holds `server` and the last event applied is its `leak-reported` of
    /// `key_id`.
    pub fn disables_after_report(&self, actor: &str, key_id: &str) -> bool {
        self.has(actor, Permission::Server)
            && self
                .last_leak
                .as_ref()
                .is_some_and(|(k, by)| k == key_id && by == actor)
    }

    /// R13: refuses `action` by `actor` if it needs a second factor and none was verified.
    /// `direct`: the event is written to the file without a server.
    pub fn require_factor(
        &self,
        actor: &str,
        action: &Action,
        verified: bool,
        direct: bool,
    ) -> Result<(), Refusal> {
        let Some(subject) = self.factor_subject(actor, action) else {
            return Ok(());
        };
        if verified {
            return Ok(());
        }
        let what = action.tag();
        let how = match (direct, subject == actor) {
            (true, _) => "the server alone holds the seeds and checks codes: run it through the server (keyledger --server URL … --code CODE)".to_owned(),
            (false, true) => format!("pass --code CODE from {subject}'s authenticator"),
            (false, false) => format!("pass --code CODE from {subject}'s new authenticator"),
        };
        refuse(
            "R13",
            match action {
                Action::ProtectionEnabled { .. } => format!(
                    "turning on operation protection of {subject} needs a first code from the authenticator: {how}"
                ),
                _ => format!(
                    "{subject} has operation protection on: {what} needs a second factor; {how}"
                ),
            },
        )
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

    fn require_admin(&self, actor: &str, what: &str) -> Result<(), Refusal> {
        if self.is_admin(actor) {
            return Ok(());
        }
        refuse(
            "R4",
            format!("{actor} may not {what}: only the account or a principal with `admin` may"),
        )
    }

    /// Only the account manages the account's own signing keys (R1, L3): no admin may give
    /// itself the account's powers or lock the account out.
    fn require_account_for(&self, actor: &str, principal: &str, what: &str) -> Result<(), Refusal> {
        if principal == self.account && actor != self.account {
            return refuse(
                "R1",
                format!("{actor} may not {what} of the account: only the account may"),
            );
        }
        Ok(())
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

    fn check_new_name(&self, name: &str) -> Result<(), Refusal> {
        if !valid_name(name) {
            return refuse(
                "R2",
                format!(
                    "{:?} is not a valid name: use 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit, without klsk_ or kltk_ in it",
                    name.chars().take(MAX_ID).collect::<String>()
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
                    "{:?} is not a well-formed {} key ID",
                    id.chars().take(MAX_ID).collect::<String>(),
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

    fn check_enrollable(&self, public_key: &PublicKey) -> Result<(), Refusal> {
        if let Some(reason) = key_problem(public_key) {
            return refuse(
                "L3",
                format!("{public_key} cannot be a signing key: {reason}"),
            );
        }
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

    /// May `actor` rotate `old_key_id`, whatever key replaces it (the `key-rotated` rule on
    /// the old key alone)? `key rotate` asks before it creates the new key.
    pub fn may_rotate_but_for_new(
        &self,
        actor: &str,
        old_key_id: &str,
    ) -> Result<&AccessKey, Refusal> {
        let old = self.key(old_key_id)?;
        self.require_key_manager(actor, &old.user, "rotate keys")?;
        if old.temporary {
            return refuse(
                "R8",
                "only permanent keys are rotated; temporary credentials expire",
            );
        }
        if old.status == KeyStatus::Deleted {
            return refuse("R8", format!("{old_key_id} is deleted; deletion is final"));
        }
        if let Some(r) = &old.rotated_to {
            return refuse(
                "R8",
                format!(
                    "{old_key_id} was already rotated to {} at seq {}",
                    r.key_id, r.at.seq
                ),
            );
        }
        Ok(old)
    }

    /// May `actor` delete the user `name` once its keys are gone (R2 but its keys, R1, R4)?
    /// `user delete --delete-keys` deletes keys only if so.
    pub fn may_delete_user_but_for_keys(&self, actor: &str, name: &str) -> Result<(), Refusal> {
        self.require_admin(actor, "delete users")?;
        if name == self.account {
            return refuse("R1", "the account cannot be deleted");
        }
        self.live(name).map(|_| ())
    }

    /// May `actor` perform `action` at `time`, given this state? (Genesis is structural, §8.6.)
    pub fn authorize(&self, actor: &str, action: &Action, time: Timestamp) -> Result<(), Refusal> {
        match action {
            Action::Genesis { .. } => refuse("L3", "a genesis event may only be the first frame"),
            Action::SignerEnrolled {
                principal,
                public_key,
            } => {
                self.require_admin(actor, "enroll signing keys")?;
                self.require_account_for(actor, principal, "enroll signing keys")?;
                self.live(principal)?;
                self.check_enrollable(public_key)
            }
            Action::SignerRevoked {
                principal,
                public_key,
            } => {
                self.require_account_for(actor, principal, "revoke signing keys")?;
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
                if *principal == self.account
                    && self
                        .principals
                        .get(principal)
                        .is_none_or(|p| p.active_signers <= 1)
                {
                    return refuse(
                        "L3",
                        "that is the account's last signing key; enroll another first",
                    );
                }
                Ok(())
            }
            Action::UserCreated { name, .. } => {
                self.require_admin(actor, "create users")?;
                self.check_new_name(name)
            }
            Action::UserDeleted { name } => {
                self.may_delete_user_but_for_keys(actor, name)?;
                let (shown, more) = self.live_keys_of(name, time, 5);
                if !shown.is_empty() {
                    let more = if more { " and more" } else { "" };
                    return refuse(
                        "R2",
                        format!(
                            "{name} still has keys ({}{more}); delete them first or pass --delete-keys",
                            shown.join(", ")
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
                root_key_allowed,
                ..
            } => {
                self.check_new_key_id(key_id, false)?;
                check_form(action, time)?;
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
                let live = self.live_permanent_keys(user);
                if live.len() >= MAX_KEYS_PER_USER {
                    return refuse(
                        "R7",
                        format!(
                            "{user} already has {MAX_KEYS_PER_USER} access keys ({}); disabled keys count: delete one first",
                            live.join(", ")
                        ),
                    );
                }
                Ok(())
            }
            Action::TemporaryIssued { key_id, user, .. } => {
                self.check_new_key_id(key_id, true)?;
                if *user == self.account {
                    return refuse(
                        "R1",
                        "temporary credentials are issued to users, not the account",
                    );
                }
                self.live(user)?;
                check_form(action, time)?;
                self.require_key_manager(actor, user, "issue temporary credentials")
            }
            Action::SecretRevealed { key_id, to, .. } => {
                check_form(action, time)?;
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
                // R14: a server disables a key at once after recording its leak report
                // (a secret scanner's signed report it verified).
                let after_report = matches!(action, Action::KeyDisabled { .. })
                    && self.disables_after_report(actor, key_id);
                if !after_report {
                    self.require_key_manager(actor, &k.user, &format!("{verb} keys"))?;
                }
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
            Action::KeyRotated {
                old_key_id,
                new_key_id,
            } => {
                let old = self.may_rotate_but_for_new(actor, old_key_id)?;
                let new = self.key(new_key_id)?;
                if new.temporary {
                    return refuse(
                        "R8",
                        "only permanent keys are rotated; temporary credentials expire",
                    );
                }
                if old.user != new.user {
                    return refuse(
                        "R8",
                        format!(
                            "{old_key_id} belongs to {} and {new_key_id} to {}: a rotation replaces a user's key with another of theirs",
                            old.user, new.user
                        ),
                    );
                }
                if new.created.seq <= old.created.seq {
                    return refuse("R8", format!("{new_key_id} is not newer than {old_key_id}"));
                }
                if new.status == KeyStatus::Deleted {
                    return refuse("R8", format!("{new_key_id} is deleted"));
                }
                if let Some(r) = &new.rotated_from {
                    return refuse(
                        "R8",
                        format!(
                            "{new_key_id} already replaced {} at seq {}",
                            r.key_id, r.at.seq
                        ),
                    );
                }
                Ok(())
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
                check_text("key_id", key_id, MAX_ID)?;
                check_text("reason", reason, MAX_TEXT)
            }
            // R11: a server's summary of failures past its per-key rate.
            Action::AuthFailuresSummarized {
                key_id,
                count,
                first,
                last,
            } => {
                check_text("key_id", key_id, MAX_ID)?;
                if !self.has(actor, Permission::Server) {
                    return refuse(
                        "R11",
                        format!(
                            "{actor} does not hold server: only a server summarizes failed checks"
                        ),
                    );
                }
                if *count == 0 || first > last || *last > time {
                    return refuse(
                        "R11",
                        "a summary counts at least one failure, between its first and last, both at or before the event",
                    );
                }
                Ok(())
            }
            Action::ProtectionEnabled { principal, .. } => {
                self.require_account_for(actor, principal, "turn on operation protection")?;
                if actor != principal {
                    self.require_admin(actor, "turn on another principal's operation protection")?;
                }
                if self.live(principal)?.protection.is_some() {
                    return refuse(
                        "R13",
                        format!("operation protection of {principal} is already on"),
                    );
                }
                Ok(())
            }
            Action::ProtectionDisabled { principal } => {
                self.require_account_for(actor, principal, "turn off operation protection")?;
                if self.live(principal)?.protection.is_none() {
                    return refuse(
                        "R13",
                        format!("operation protection of {principal} is not on"),
                    );
                }
                if actor != principal {
                    self.require_admin(actor, "turn off another principal's operation protection")?;
                    if !self.is_protected(actor) {
                        return refuse(
                            "R13",
                            format!(
                                "{actor} may turn off {principal}'s operation protection only with a second factor of its own: turn on {actor}'s first (keyledger protect enable {actor})"
                            ),
                        );
                    }
                }
                Ok(())
            }
            // Any key of the ledger, whatever its status, by whoever may disable it.
            Action::LeakReported { key_id, .. } => {
                check_form(action, time)?;
                let k = self.key(key_id)?;
                // R14: a server records the reports of secret scanners it verified.
                if self.has(actor, Permission::Server) {
                    return Ok(());
                }
                self.require_key_manager(actor, &k.user, "report leaks of keys")
            }
            Action::ActionDenied {
                attempted,
                user,
                key_id,
                reason,
            } => {
                check_text("attempted", attempted, MAX_TEXT)?;
                check_text("user", user.as_deref().unwrap_or(""), MAX_ID)?;
                check_text("key_id", key_id.as_deref().unwrap_or(""), MAX_ID)?;
                check_text("reason", reason, MAX_TEXT)
            }
            // Its size and root are an anchor, checked against the frames before it (§8.9).
            Action::CheckpointRecorded { .. } => Ok(()),
            Action::LogRepaired {
                quarantine,
                removed_bytes,
                ..
            } => {
                check_text("quarantine", quarantine, MAX_TEXT)?;
                if quarantine.is_empty() || quarantine.contains(['/', '\0']) {
                    return refuse(
                        "L6",
                        "quarantine must be the name of a file beside the ledger (no '/')",
                    );
                }
                if !(1..=MAX_TORN).contains(removed_bytes) {
                    return refuse(
                        "L6",
                        format!("a torn tail is 1 to {MAX_TORN} bytes, not {removed_bytes}"),
                    );
                }
                self.require_admin(actor, "repair the ledger")
            }
        }
    }
}
