//! Domain operations over an open ledger that create or check secrets. Secrets exist only
//! in the returned values (zeroized on drop); the events carry fingerprints alone.

use crate::core::credentials::{self, SecretText};
use crate::core::event::Action;
use crate::core::signing::SigningKey;
use crate::core::state::{KeyStatus, State};
use crate::core::types::Timestamp;
use crate::storage::ledger::{Appender, Ledger};
use crate::storage::store::{Receipt, StoreError};

/// A permanent key just created. Its secret has not been revealed yet.
#[derive(Debug)]
pub struct NewKey {
    pub receipt: Receipt,
    pub key_id: String,
    pub secret: SecretText,
}

/// Temporary credentials just issued (R3).
#[derive(Debug)]
pub struct NewTemporary {
    pub receipt: Receipt,
    pub key_id: String,
    pub secret: SecretText,
    pub token: SecretText,
    pub expires: Timestamp,
}

/// The result of presenting a secret (R11). Recorded either way.
#[derive(Debug)]
pub struct AuthOutcome {
    pub ok: bool,
    pub reason: Option<String>,
    pub user: Option<String>,
    /// Where it was recorded; `None` for a success a server coalesced into the key's last
    /// recorded use (R11: at most one `auth-succeeded` per key per coalescing window).
    pub receipt: Option<Receipt>,
}

/// Options of `key create` (R1, R9).
#[derive(Debug, Clone)]
pub struct KeyRequest<'a> {
    pub user: &'a str,
    pub scenario: &'a str,
    pub confirmed_necessary: bool,
    pub allow_root_key: bool,
}

/// The domain operations that create or check secrets, over any writer: the file itself,
/// or a server through the client. Only `authenticate` differs: through a server, the
/// server (which alone holds every fingerprint in memory) checks the secret.
pub trait Ops: Appender {
    /// Checks a presented secret (and, for temporary credentials, the security token that
    /// came with them) against `key_id`, and records the outcome (R11): by default here
    /// (`authenticate_on`); a server's client asks the server instead.
    fn authenticate(
        &mut self,
        signer: &SigningKey,
        key_id: &str,
        presented: &SecretText,
        token: Option<&SecretText>,
        now: Timestamp,
    ) -> Result<AuthOutcome, StoreError> {
        authenticate_on(self, signer, key_id, presented, token, now)
    }

    /// Creates a permanent key (R5–R9). Policy refusals are recorded (R12).
    fn create_key(
        &mut self,
        signer: &SigningKey,
        req: &KeyRequest<'_>,
        now: Timestamp,
    ) -> Result<NewKey, StoreError> {
        let key_id = credentials::new_key_id(false);
        let secret = SecretText::new_secret();
        let action = Action::KeyCreated {
            key_id: key_id.clone(),
            user: req.user.to_owned(),
            fingerprint: credentials::fingerprint(&key_id, &secret),
            scenario: req.scenario.to_owned(),
            confirmed_necessary: req.confirmed_necessary,
            root_key_allowed: req.allow_root_key,
        };
        let receipt = self.append(signer, action, now)?;
        Ok(NewKey {
            receipt,
            key_id,
            secret,
        })
    }

    /// Starts a rotation of `old_key_id` (AWS's procedure, within R7): creates the user's
    /// next key and the `key-rotated` event that ties the two, in one group commit. The
    /// secret is then revealed as for `create_key`; disabling the old key comes after the
    /// reveal (`Action::KeyDisabled`), so a secret that never reached its requester never
    /// costs the working key. A refusal (the old key, or R7: no room for a second key) is
    /// recorded once, as for any append.
    fn rotate_key(
        &mut self,
        signer: &SigningKey,
        old_key_id: &str,
        now: Timestamp,
    ) -> Result<NewKey, StoreError> {
        let actor = self.actor(signer)?;
        let time = self.event_time(now)?;
        let key_id = credentials::new_key_id(false);
        let rotated = Action::KeyRotated {
            old_key_id: old_key_id.to_owned(),
            new_key_id: key_id.clone(),
        };
        let old = match self.state().may_rotate_but_for_new(&actor, old_key_id) {
            Ok(old) => old.clone(),
            Err(refusal) => return Err(self.record_refusal(signer, &rotated, refusal, time)),
        };
        let secret = SecretText::new_secret();
        let scenario: String = format!(
            "rotation of {old_key_id}: {}",
            old.scenario.as_deref().unwrap_or("")
        );
        let created = Action::KeyCreated {
            key_id: key_id.clone(),
            user: old.user.clone(),
            fingerprint: credentials::fingerprint(&key_id, &secret),
            scenario: truncate(&scenario, crate::core::state::MAX_TEXT),
            confirmed_necessary: true,
            root_key_allowed: old.user == self.state().account,
        };
        if let Err(refusal) = self.state().authorize(&actor, &created, time) {
            // No room (R7) or no permission: recorded once, as that refusal.
            return Err(self.record_refusal(signer, &created, refusal, time));
        }
        let mut out = self.append_batch(signer, vec![created, rotated], time)?;
        let rotated = out.pop();
        let created = out.pop();
        match (created, rotated) {
            (Some(Ok(receipt)), Some(Ok(_))) => Ok(NewKey {
                receipt,
                key_id,
                secret,
            }),
            (_, Some(Err((refusal, receipt)))) | (Some(Err((refusal, receipt))), _) => {
                Err(StoreError::Denied { refusal, receipt })
            }
            _ => Err(StoreError::Invalid(crate::core::state::Refusal {
                rule: "R8",
                message: "the rotation was not recorded".into(),
            })),
        }
    }

    /// Records `action` as refused (R12), as an append of it would: the `action-denied`
    /// event, and the error that names it.
    fn record_refusal(
        &mut self,
        signer: &SigningKey,
        action: &Action,
        refusal: crate::core::state::Refusal,
        time: Timestamp,
    ) -> StoreError {
        match self.append(
            signer,
            crate::storage::ledger::denial(action, &refusal),
            time,
        ) {
            Ok(receipt) => StoreError::Denied { refusal, receipt },
            Err(e) => e,
        }
    }

    /// Issues temporary credentials valid for `duration_us` (R3).
    fn issue_temporary(
        &mut self,
        signer: &SigningKey,
        user: &str,
        duration_us: i64,
        now: Timestamp,
    ) -> Result<NewTemporary, StoreError> {
        let key_id = credentials::new_key_id(true);
        let secret = SecretText::new_secret();
        let token = SecretText::new_token();
        let time = self.event_time(now)?;
        let expires = time.plus_micros(duration_us);
        let action = Action::TemporaryIssued {
            key_id: key_id.clone(),
            user: user.to_owned(),
            fingerprint: credentials::fingerprint(&key_id, &secret),
            token_fingerprint: credentials::fingerprint(&key_id, &token),
            expires,
        };
        let receipt = self.append(signer, action, time)?;
        Ok(NewTemporary {
            receipt,
            key_id,
            secret,
            token,
            expires,
        })
    }

    /// Records that the secret of `key_id` was handed to the signer through `channel` (R10).
    fn record_reveal(
        &mut self,
        signer: &SigningKey,
        key_id: &str,
        channel: &str,
        now: Timestamp,
    ) -> Result<Receipt, StoreError> {
        let to = self.actor(signer)?;
        self.append(
            signer,
            Action::SecretRevealed {
                key_id: key_id.to_owned(),
                to,
                channel: channel.to_owned(),
            },
            now,
        )
    }

    /// Deletes a user (R2); with `delete_keys`, each of its undeleted keys first, each as
    /// its own event, in one group commit with the user's deletion (so one second factor,
    /// R13, covers the whole deletion). A refused key deletion leaves the user (its own
    /// deletion is then refused too, as the user still has keys).
    fn delete_user(
        &mut self,
        signer: &SigningKey,
        name: &str,
        delete_keys: bool,
        now: Timestamp,
    ) -> Result<Vec<Receipt>, StoreError> {
        let mut receipts = Vec::new();
        // Keys are deleted first only when the user deletion itself would be allowed apart
        // from them: a refused deletion must not have deleted keys on its way.
        let may_delete_user = self
            .actor(signer)
            .is_ok_and(|a| self.state().may_delete_user_but_for_keys(&a, name).is_ok());
        let mut actions: Vec<Action> = Vec::new();
        if delete_keys && may_delete_user {
            actions.extend(
                self.state()
                    .keys_of(name)
                    .filter(|k| k.status != KeyStatus::Deleted)
                    .map(|k| Action::KeyDeleted {
                        key_id: k.id.clone(),
                    }),
            );
        }
        actions.push(Action::UserDeleted {
            name: name.to_owned(),
        });
        for outcome in self.append_batch(signer, actions, now)? {
            match outcome {
                Ok(r) => receipts.push(r),
                Err((refusal, receipt)) => return Err(StoreError::Denied { refusal, receipt }),
            }
        }
        Ok(receipts)
    }
}

impl Ops for crate::storage::postgres::PgLedger {}

impl Ops for Ledger {}

/// Checks a presented secret (and, for temporary credentials, the security token that came
/// with them) against `key_id` in constant time, and records the outcome (R11), on a writer
/// that appends itself (a file, a database). A temporary key authenticates only with both;
/// every comparison runs whatever the others gave, and a failure never says which part was
/// wrong. Expiry is decided on this machine's real clock (L9). Failure reasons never contain
/// secret material.
pub fn authenticate_on<A: Appender + ?Sized>(
    l: &mut A,
    signer: &SigningKey,
    key_id: &str,
    presented: &SecretText,
    token: Option<&SecretText>,
    now: Timestamp,
) -> Result<AuthOutcome, StoreError> {
    let time = l.event_time(now)?;
    let decide = time.max(Timestamp::now());
    let (reason, user) = judge_auth(l.state(), key_id, presented, token, decide);
    let key_id = key_id
        .chars()
        .take(crate::core::state::MAX_ID)
        .collect::<String>();
    let action = match &reason {
        None => Action::AuthSucceeded { key_id },
        Some(r) => Action::AuthFailed {
            key_id,
            reason: r.clone(),
        },
    };
    let receipt = l.append(signer, action, time)?;
    Ok(AuthOutcome {
        ok: reason.is_none(),
        reason,
        user,
        receipt: Some(receipt),
    })
}

/// The verdict on a presented secret (and token) for `key_id`, decided at `decide` (R11):
/// the failure reason, if any (never secret material), and the key's user. Every
/// comparison runs in constant time whatever the others gave, and a failure never says
/// which part was wrong.
pub fn judge_auth(
    state: &State,
    key_id: &str,
    presented: &SecretText,
    token: Option<&SecretText>,
    decide: Timestamp,
) -> (Option<String>, Option<String>) {
    let Some(k) = state.keys.get(key_id) else {
        return (Some("no such access key".to_owned()), None);
    };
    let secret_ok = credentials::matches(key_id, presented, &k.fingerprint);
    let token_ok = match (&k.token_fingerprint, token) {
        (Some(fp), Some(t)) => credentials::matches(key_id, t, fp),
        (None, None) => true,
        _ => false,
    };
    let reason = if !(secret_ok & token_ok) {
        Some(
            match (k.token_fingerprint.is_some(), token.is_some()) {
                (true, false) => "temporary credentials need their security token with the secret",
                (false, true) => "a permanent key takes no security token",
                (true, true) => "the secret or the security token does not match",
                (false, false) => "the secret does not match",
            }
            .to_owned(),
        )
    } else if k.status != KeyStatus::Active || k.expired_at(decide) {
        Some(format!("the key is {}", k.status_at(decide)))
    } else {
        None
    };
    (reason, Some(k.user.clone()))
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
