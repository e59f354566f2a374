//! OCSF 1.6.0 events for SIEMs: each ledger event as one record of the fitting IAM class
//! (Account Change 3001, Authentication 3002, Entity Management 3004), with the ledger's
//! seq, hashes, signer and signature kept (`metadata.uid`, `metadata.sequence`, `raw_data`,
//! `unmapped.keyledger`) so the chain stays checkable downstream. The mapping table is in
//! the README; `scripts/ocsf_validate.py` checks records against the compiled schema in
//! `fixtures/ocsf/`.

use serde_json::{Value, json};

use crate::core::event::Action;
use crate::evidence::export::Record;

pub const OCSF_VERSION: &str = "1.6.0";

const ACCOUNT_CHANGE: (u64, &str) = (3001, "Account Change");
const AUTHENTICATION: (u64, &str) = (3002, "Authentication");
const ENTITY_MANAGEMENT: (u64, &str) = (3004, "Entity Management");

/// The OCSF class and activity (id, name) of an action, and whether it records a failure.
pub fn class_of(action: &Action) -> ((u64, &'static str), (u64, &'static str), bool) {
    use Action::*;
    match action {
        Genesis { .. } | UserCreated { .. } => (ACCOUNT_CHANGE, (1, "Create"), false),
        UserDeleted { .. } => (ACCOUNT_CHANGE, (6, "Delete"), false),
        PermissionGranted { .. } => (ACCOUNT_CHANGE, (7, "Attach Policy"), false),
        PermissionRevoked { .. } => (ACCOUNT_CHANGE, (8, "Detach Policy"), false),
        ProtectionEnabled { .. } => (ACCOUNT_CHANGE, (10, "MFA Factor Enable"), false),
        ProtectionDisabled { .. } => (ACCOUNT_CHANGE, (11, "MFA Factor Disable"), false),
        SignerEnrolled { .. } => (ENTITY_MANAGEMENT, (6, "Enroll"), false),
        SignerRevoked { .. } => (ENTITY_MANAGEMENT, (7, "Unenroll"), false),
        KeyCreated { .. } | TemporaryIssued { .. } => (ENTITY_MANAGEMENT, (1, "Create"), false),
        SecretRevealed { .. } => (ENTITY_MANAGEMENT, (2, "Read"), false),
        KeyRotated { .. } => (ENTITY_MANAGEMENT, (3, "Update"), false),
        KeyEnabled { .. } => (ENTITY_MANAGEMENT, (8, "Enable"), false),
        KeyDisabled { .. } => (ENTITY_MANAGEMENT, (9, "Disable"), false),
        KeyDeleted { .. } => (ENTITY_MANAGEMENT, (4, "Delete"), false),
        LeakReported { .. } => (ENTITY_MANAGEMENT, (99, "Other"), false),
        AuthSucceeded { .. } => (AUTHENTICATION, (1, "Logon"), false),
        AuthFailed { .. } | AuthFailuresSummarized { .. } => (AUTHENTICATION, (1, "Logon"), true),
        ActionDenied { .. } => (ENTITY_MANAGEMENT, (99, "Other"), true),
        CheckpointRecorded { .. } | LogRepaired { .. } => (ENTITY_MANAGEMENT, (99, "Other"), false),
    }
}

fn user(name: &str) -> Value {
    json!({"name": name, "uid": name})
}

fn key_entity(kind: &str, key_id: &str, owner: Option<&str>, data: Value) -> Value {
    let mut e = json!({"type": kind, "uid": key_id, "name": key_id, "data": data});
    if let Some(o) = owner {
        e["user"] = user(o);
    }
    e
}

/// The class-specific part: `user` and `policy` (Account Change), `user` (Authentication),
/// `entity` (Entity Management).
fn subject(action: &Action, owner: Option<&str>, ledger_id: &str) -> Value {
    use Action::*;
    let ledger = |what: &str, data: Value| json!({"entity": {"type": what, "uid": ledger_id, "name": "keyledger ledger", "data": data}});
    match action {
        Genesis { account, .. } => json!({"user": user(account)}),
        UserCreated { name, federated } => {
            let mut u = user(name);
            u["type"] = json!(if *federated { "Federated" } else { "User" });
            u["type_id"] = json!(if *federated { 99 } else { 1 });
            json!({ "user": u })
        }
        UserDeleted { name }
        | ProtectionEnabled {
            principal: name, ..
        }
        | ProtectionDisabled { principal: name } => json!({"user": user(name)}),
        PermissionGranted {
            principal,
            permission,
        }
        | PermissionRevoked {
            principal,
            permission,
        } => json!({
            "user": user(principal),
            "policy": {"name": permission.as_str(), "uid": permission.as_str()},
        }),
        SignerEnrolled {
            principal,
            public_key,
        }
        | SignerRevoked {
            principal,
            public_key,
        } => json!({"entity": {
            "type": "signing key", "uid": public_key.to_string(), "name": public_key.to_string(),
            "user": user(principal),
        }}),
        KeyCreated {
            key_id,
            user,
            scenario,
            confirmed_necessary,
            root_key_allowed,
            ..
        } => json!({"entity": key_entity("access key", key_id, Some(user), json!({
            "scenario": scenario, "confirmed_necessary": confirmed_necessary,
            "root_key_allowed": root_key_allowed,
        }))}),
        TemporaryIssued {
            key_id,
            user,
            expires,
            ..
        } => json!({"entity": key_entity("temporary credentials", key_id, Some(user), json!({
            "expires": expires.to_string(),
        }))}),
        SecretRevealed {
            key_id,
            to,
            channel,
        } => json!({"entity": key_entity("access key", key_id, owner, json!({
            "revealed_to": to, "channel": channel,
        }))}),
        KeyRotated {
            old_key_id,
            new_key_id,
        } => json!({"entity": key_entity("access key", old_key_id, owner, json!({
            "replaced_by": new_key_id,
        }))}),
        LeakReported {
            key_id,
            source,
            reason,
        } => json!({"entity": key_entity("access key", key_id, owner, json!({
            "leak_source": source, "leak_reason": reason,
        }))}),
        KeyEnabled { key_id } | KeyDisabled { key_id } | KeyDeleted { key_id } => {
            json!({"entity": key_entity("access key", key_id, owner, json!({}))})
        }
        // The service authenticated to: this ledger (the keys' issuer).
        AuthSucceeded { .. } | AuthFailed { .. } | AuthFailuresSummarized { .. } => json!({
            "user": user(owner.unwrap_or("unknown")),
            "service": {"name": "keyledger", "uid": ledger_id},
        }),
        ActionDenied {
            attempted,
            user: who,
            key_id,
            ..
        } => json!({"entity": {
            "type": "request", "name": attempted,
            "data": {"user": who, "key_id": key_id},
        }}),
        CheckpointRecorded { size, root } => ledger(
            "ledger checkpoint",
            json!({"size": size, "root": root.hex()}),
        ),
        LogRepaired {
            offset,
            removed_bytes,
            removed_blake3,
            quarantine,
        } => ledger(
            "ledger repair",
            json!({"offset": offset, "removed_bytes": removed_bytes,
                "removed_blake3": removed_blake3.hex(), "quarantine": quarantine}),
        ),
    }
}

/// One OCSF record. `owner` is the user owning the access key the event names, if any;
/// `message` a one-line description for people.
pub fn event(r: &Record, owner: Option<&str>, ledger_id: &str, message: &str) -> Value {
    let ((class_uid, class_name), (activity_id, activity_name), failed) = class_of(&r.detail);
    let mut v = json!({
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "class_uid": class_uid,
        "class_name": class_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": format!("{class_name}: {activity_name}"),
        "severity_id": 1,
        "severity": "Informational",
        "status_id": if failed { 2 } else { 1 },
        "status": if failed { "Failure" } else { "Success" },
        "time": r.time_us.div_euclid(1000),
        "message": message,
        "actor": {"user": user(&r.actor)},
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "keyledger", "vendor_name": "keyledger", "version": env!("CARGO_PKG_VERSION")},
            "uid": r.hash,
            "sequence": r.seq,
            "log_name": ledger_id,
            "log_provider": "keyledger",
        },
        "raw_data": r.body_hex,
        "unmapped": {"keyledger": {
            "seq": r.seq, "time": r.time, "hash": r.hash, "prev_hash": r.prev_hash,
            "signer": r.signer, "signer_enrolled_by": r.signer_enrolled_by,
            "signature": r.signature, "offset": r.offset, "frame_len": r.frame_len,
            "action": r.action, "detail": r.detail,
        }},
    });
    if let Action::AuthFailed { reason, .. } | Action::ActionDenied { reason, .. } = &r.detail {
        v["status_detail"] = json!(reason);
    }
    if let (Value::Object(m), Value::Object(s)) = (&mut v, subject(&r.detail, owner, ledger_id)) {
        m.extend(s);
    }
    v
}
