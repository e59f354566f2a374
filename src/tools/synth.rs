//! Synthetic ledgers of any size for measurement: an account, an admin, a gateway that
//! records authentications, and users whose keys are created, revealed, used, rotated,
//! disabled and refused, in proportions like a real estate (mostly authentications).
//! Written through the normal append path with group commits.

use crate::storage::ledger::Appender;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::core::credentials::{SecretText, fingerprint, new_key_id};
use crate::core::event::{Action, Permission};
use crate::core::signing::SigningKey;
use crate::core::types::Timestamp;
use crate::storage::ledger::Ledger;
use crate::storage::store::StoreError;

/// Group commit size used when building.
pub const BATCH: usize = 1024;

pub struct Synth {
    pub account: SigningKey,
    pub admin: SigningKey,
    pub gateway: SigningKey,
    pub events: u64,
}

/// Builds a ledger of about `events` events at `path`, starting at `start`, one second apart.
pub fn build(path: &Path, events: u64, start: Timestamp, seed: u64) -> Result<Synth, StoreError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let account = SigningKey::from_seed(&rng.r#gen());
    let admin = SigningKey::from_seed(&rng.r#gen());
    let gateway = SigningKey::from_seed(&rng.r#gen());
    let (mut l, _) = Ledger::init(path, "acme", &account, start)?;
    let mut t = start;
    let tick = |t: &mut Timestamp| {
        *t = t.plus_micros(1_000_000);
        *t
    };
    let setup = vec![
        Action::UserCreated {
            name: "admin".into(),
            federated: false,
        },
        Action::SignerEnrolled {
            principal: "admin".into(),
            public_key: admin.public(),
        },
        Action::PermissionGranted {
            principal: "admin".into(),
            permission: Permission::Admin,
        },
        Action::UserCreated {
            name: "gateway".into(),
            federated: false,
        },
        Action::SignerEnrolled {
            principal: "gateway".into(),
            public_key: gateway.public(),
        },
    ];
    l.append_batch(&account, setup, tick(&mut t))?;
    let users = (events / 1000).clamp(10, 5000) as usize;
    // (key id, user, active)
    let mut keys: Vec<(String, usize, bool)> = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    for u in 0..users {
        batch.push(Action::UserCreated {
            name: format!("user{u:05}"),
            federated: false,
        });
    }
    let new_key = |u: usize, keys: &mut Vec<(String, usize, bool)>, batch: &mut Vec<Action>| {
        let id = new_key_id(false);
        let secret = SecretText::new_secret();
        batch.push(Action::KeyCreated {
            key_id: id.clone(),
            user: format!("user{u:05}"),
            fingerprint: fingerprint(&id, &secret),
            scenario: "service running outside the cloud".into(),
            confirmed_necessary: true,
            root_key_allowed: false,
        });
        batch.push(Action::SecretRevealed {
            key_id: id.clone(),
            to: "admin".into(),
            channel: "stdout:json".into(),
        });
        keys.push((id, u, true));
    };
    for u in 0..users {
        new_key(u, &mut keys, &mut batch);
    }
    let flush = |l: &mut Ledger,
                 batch: &mut Vec<Action>,
                 key: &SigningKey,
                 t: &mut Timestamp|
     -> Result<(), StoreError> {
        if !batch.is_empty() {
            l.append_batch(key, std::mem::take(batch), tick(t))?;
        }
        Ok(())
    };
    flush(&mut l, &mut batch, &admin, &mut t)?;
    while l.head().seq + 1 < events {
        let room = (events - l.head().seq - 1).min(BATCH as u64) as usize;
        // Authentications, recorded by the gateway: the bulk of any real ledger.
        for _ in 0..room.saturating_sub(room / 20) {
            let k = rng.gen_range(0..keys.len());
            let (id, _, active) = &keys[k];
            batch.push(if *active && rng.gen_ratio(97, 100) {
                Action::AuthSucceeded { key_id: id.clone() }
            } else {
                Action::AuthFailed {
                    key_id: id.clone(),
                    reason: "the secret does not match".into(),
                }
            });
        }
        flush(&mut l, &mut batch, &gateway, &mut t)?;
        // Administration: rotations, disables, refusals.
        let admin_room = (events.saturating_sub(l.head().seq + 1)).min((room / 20) as u64) as usize;
        while batch.len() + 4 <= admin_room {
            let k = rng.gen_range(0..keys.len());
            let (id, u, active) = keys[k].clone();
            match rng.gen_range(0..4) {
                0 if active => {
                    batch.push(Action::KeyDisabled { key_id: id });
                    keys[k].2 = false;
                }
                1 if !active => {
                    batch.push(Action::KeyEnabled { key_id: id });
                    keys[k].2 = true;
                }
                2 => {
                    // Rotation: a new key, then the old one deleted.
                    new_key(u, &mut keys, &mut batch);
                    batch.push(Action::KeyDeleted { key_id: id });
                    keys.swap_remove(k);
                }
                _ => batch.push(Action::PermissionGranted {
                    principal: "acme".into(),
                    permission: Permission::Admin,
                }),
            }
        }
        flush(&mut l, &mut batch, &admin, &mut t)?;
    }
    Ok(Synth {
        account,
        admin,
        gateway,
        events: l.head().seq + 1,
    })
}

/// Builds a ledger at `path` where the account creates `users` users and one permanent key
/// for each (created and revealed): 3 × `users` + 1 events, the shape that shows whether
/// per-principal work grows faster than the ledger. Returns the account's key.
pub fn principals(path: &Path, users: usize, start: Timestamp) -> Result<SigningKey, StoreError> {
    let account = SigningKey::from_seed(&[0x5a; 32]);
    let (mut l, _) = Ledger::init(path, "acme", &account, start)?;
    let mut t = start;
    let mut batch = Vec::with_capacity(BATCH);
    for u in 0..users {
        let user = format!("user{u:06}");
        let id = new_key_id(false);
        let secret = SecretText::new_secret();
        batch.push(Action::UserCreated {
            name: user.clone(),
            federated: false,
        });
        batch.push(Action::KeyCreated {
            fingerprint: fingerprint(&id, &secret),
            key_id: id.clone(),
            user,
            scenario: "service running outside the cloud".into(),
            confirmed_necessary: true,
            root_key_allowed: false,
        });
        batch.push(Action::SecretRevealed {
            key_id: id,
            to: "acme".into(),
            channel: "stdout:json".into(),
        });
        if batch.len() >= BATCH {
            t = t.plus_micros(1_000_000);
            l.append_batch(&account, std::mem::take(&mut batch), t)?;
        }
    }
    if !batch.is_empty() {
        l.append_batch(&account, batch, t.plus_micros(1_000_000))?;
    }
    Ok(account)
}
