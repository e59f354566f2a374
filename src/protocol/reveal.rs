//! Reveal once (R10), for every front end: a new secret goes to its requester exactly once,
//! through a channel made ready before the key exists, and the reveal is recorded after.
//!
//! The order is fixed here: (1) the caller prepares its channel (a CSV file is created
//! before the key, so a bad path never strands a key); (2) the key is created (a refusal
//! abandons the channel); (3) the secret is delivered; (4) `secret-revealed` is recorded,
//! naming the channel, never the secret. If (3) fails, no copy of the secret remains and
//! the error says to delete the key; if (4) fails, the channel retracts what it can and
//! the error says so. The CLI's channels are stdout and a 0600 CSV; a server's would be
//! its HTTP reply.

use thiserror::Error;

use crate::core::credentials::SecretText;
use crate::core::signing::SigningKey;
use crate::core::types::Timestamp;
use crate::protocol::ops::{KeyRequest, NewKey, NewTemporary, Ops};
use crate::storage::store::{Receipt, StoreError};

/// What a channel hands over: the new key's ID and secret, and for temporary credentials
/// the security token and expiry.
pub struct Credentials<'a> {
    pub key_id: &'a str,
    pub secret: &'a SecretText,
    pub token: Option<&'a SecretText>,
    pub expires: Option<Timestamp>,
    /// The key's user and the seq of its creation, for the channel's own framing.
    pub user: &'a str,
    pub seq: u64,
}

impl<'a> Credentials<'a> {
    /// A permanent key's: no token, no expiry.
    pub fn permanent(key_id: &'a str, secret: &'a SecretText, user: &'a str, seq: u64) -> Self {
        Credentials {
            key_id,
            secret,
            token: None,
            expires: None,
            user,
            seq,
        }
    }
}

/// Where a secret goes, once.
pub trait Channel {
    /// What the ledger records as the channel (`csv:/abs/path`, `stdout:json`, …); known
    /// before the key exists.
    fn name(&self) -> &str;

    /// Hands the credentials over. On failure nothing of the secret may remain where the
    /// channel put it; the message says what went wrong.
    fn deliver(&mut self, c: &Credentials<'_>) -> Result<(), String>;

    /// Recording the reveal failed after a delivery: remove every copy the channel can,
    /// and say what became of the secret.
    fn retract(&mut self) -> String;

    /// The key was never created: undo what preparing the channel did.
    fn abandon(&mut self) {}
}

#[derive(Debug, Error)]
pub enum RevealError {
    /// Nothing was created (a refusal is recorded as any refusal is).
    #[error(transparent)]
    Create(Box<StoreError>),
    #[error(
        "{message}: {key_id} exists, never revealed, and cannot be shown again; delete it (`keyledger key delete {key_id}`) and create another"
    )]
    Deliver { key_id: String, message: String },
    #[error(
        "{key_id} was created, but recording the reveal of its secret failed ({source}); {retracted}. Delete the key: keyledger key delete {key_id}"
    )]
    Record {
        key_id: String,
        source: Box<StoreError>,
        retracted: String,
    },
}

/// A key, or temporary credentials, revealed and recorded.
#[derive(Debug)]
pub struct Revealed<T> {
    pub new: T,
    /// The key's user.
    pub user: String,
    /// The `secret-revealed` event.
    pub revealed: Receipt,
}

/// Creates a permanent key (R5–R9) and reveals it once through `channel`.
pub fn create_key(
    ops: &mut dyn Ops,
    signer: &SigningKey,
    req: &KeyRequest<'_>,
    channel: &mut dyn Channel,
    now: Timestamp,
) -> Result<Revealed<NewKey>, RevealError> {
    let new = created(channel, ops.create_key(signer, req, now))?;
    deliver_and_record(ops, signer, new, req.user, channel, now)
}

/// Starts a rotation of `old_key_id` (`Ops::rotate_key`) and reveals the new key once.
/// Disabling the old key is the caller's next step, only after this succeeded.
pub fn rotate_key(
    ops: &mut dyn Ops,
    signer: &SigningKey,
    old_key_id: &str,
    channel: &mut dyn Channel,
    now: Timestamp,
) -> Result<Revealed<NewKey>, RevealError> {
    let user = ops
        .state()
        .keys
        .get(old_key_id)
        .map(|k| k.user.clone())
        .unwrap_or_default();
    let new = created(channel, ops.rotate_key(signer, old_key_id, now))?;
    deliver_and_record(ops, signer, new, &user, channel, now)
}

/// Issues temporary credentials (R3) and reveals them once.
pub fn issue_temporary(
    ops: &mut dyn Ops,
    signer: &SigningKey,
    user: &str,
    duration_us: i64,
    channel: &mut dyn Channel,
    now: Timestamp,
) -> Result<Revealed<NewTemporary>, RevealError> {
    let new = created(channel, ops.issue_temporary(signer, user, duration_us, now))?;
    deliver_and_record(ops, signer, new, user, channel, now)
}

/// The created key, or the channel abandoned.
fn created<T>(channel: &mut dyn Channel, r: Result<T, StoreError>) -> Result<T, RevealError> {
    r.map_err(|e| {
        channel.abandon();
        RevealError::Create(Box::new(e))
    })
}

/// What was just created, as a channel hands it over.
trait Issued {
    fn credentials<'a>(&'a self, user: &'a str) -> Credentials<'a>;
}

impl Issued for NewKey {
    fn credentials<'a>(&'a self, user: &'a str) -> Credentials<'a> {
        Credentials::permanent(&self.key_id, &self.secret, user, self.receipt.seq)
    }
}

impl Issued for NewTemporary {
    fn credentials<'a>(&'a self, user: &'a str) -> Credentials<'a> {
        Credentials {
            token: Some(&self.token),
            expires: Some(self.expires),
            ..Credentials::permanent(&self.key_id, &self.secret, user, self.receipt.seq)
        }
    }
}

fn deliver_and_record<T: Issued>(
    ops: &mut dyn Ops,
    signer: &SigningKey,
    new: T,
    user: &str,
    channel: &mut dyn Channel,
    now: Timestamp,
) -> Result<Revealed<T>, RevealError> {
    let revealed = reveal(ops, signer, channel, &new.credentials(user), now)?;
    Ok(Revealed {
        new,
        user: user.to_owned(),
        revealed,
    })
}

/// Steps (3) and (4): deliver, then record.
fn reveal(
    ops: &mut dyn Ops,
    signer: &SigningKey,
    channel: &mut dyn Channel,
    c: &Credentials<'_>,
    now: Timestamp,
) -> Result<Receipt, RevealError> {
    let key_id = c.key_id.to_owned();
    channel.deliver(c).map_err(|message| RevealError::Deliver {
        key_id: key_id.clone(),
        message,
    })?;
    let name = channel.name().to_owned();
    ops.record_reveal(signer, &key_id, &name, now)
        .map_err(|source| RevealError::Record {
            key_id,
            source: Box::new(source),
            retracted: channel.retract(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::Action;
    use crate::storage::ledger::{Appender, Ledger};

    /// A channel that records what happened to it.
    #[derive(Default)]
    struct Probe {
        fail: bool,
        delivered: Vec<String>,
        abandoned: bool,
    }

    impl Channel for Probe {
        fn name(&self) -> &str {
            "stdout:json"
        }
        fn deliver(&mut self, c: &Credentials<'_>) -> Result<(), String> {
            if self.fail {
                return Err("the reader went away".into());
            }
            self.delivered.push(c.key_id.to_owned());
            Ok(())
        }
        fn retract(&mut self) -> String {
            "nothing to retract".into()
        }
        fn abandon(&mut self) {
            self.abandoned = true;
        }
    }

    fn ledger(dir: &std::path::Path) -> (Ledger, SigningKey) {
        let account = SigningKey::generate();
        let now = Timestamp::now();
        let path = dir.join("t.ledger");
        let (mut l, _) = Ledger::init(&path, "acme", &account, now).unwrap();
        l.append(
            &account,
            Action::UserCreated {
                name: "alice".into(),
                federated: false,
            },
            now,
        )
        .unwrap();
        (l, account)
    }

    const REQ: KeyRequest<'static> = KeyRequest {
        user: "alice",
        scenario: "ci",
        confirmed_necessary: true,
        allow_root_key: false,
    };

    /// Created, delivered, then recorded in that order; a refusal abandons the channel
    /// and delivers nothing; a failed delivery records no reveal.
    #[test]
    fn the_reveal_follows_the_delivery_and_a_refusal_delivers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut l, account) = ledger(dir.path());
        let mut ch = Probe::default();
        let r = create_key(&mut l, &account, &REQ, &mut ch, Timestamp::now()).unwrap();
        assert_eq!(ch.delivered, std::slice::from_ref(&r.new.key_id));
        assert_eq!(r.revealed.seq, r.new.receipt.seq + 1);
        let k = &l.state().keys[&r.new.key_id];
        assert_eq!(k.revealed.as_ref().unwrap().channel, "stdout:json");

        // R9: not confirmed necessary is a usage error; nothing is delivered.
        let mut ch = Probe::default();
        let unconfirmed = KeyRequest {
            confirmed_necessary: false,
            ..REQ
        };
        let e = create_key(&mut l, &account, &unconfirmed, &mut ch, Timestamp::now());
        assert!(matches!(e, Err(RevealError::Create(_))));
        assert!(ch.abandoned && ch.delivered.is_empty());

        let mut ch = Probe {
            fail: true,
            ..Probe::default()
        };
        let head = l.head().seq;
        let e = create_key(&mut l, &account, &REQ, &mut ch, Timestamp::now()).unwrap_err();
        let RevealError::Deliver { key_id, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(
            l.head().seq,
            head + 1,
            "the key exists, its reveal does not"
        );
        assert!(l.state().keys[key_id].revealed.is_none());
        assert!(e.to_string().contains("keyledger key delete"));
    }
}
