//! Signed requests (ledger-format.md §4.1): what a client signs when it acts through a
//! server, so that the actor's own signature stays in the event the server appends.

use crate::core::event::{Action, Request};
use crate::core::signing::{SigningKey, verify_bytes};
use crate::core::types::{Bytes, Hash32, LedgerId, Timestamp};

/// The BLAKE3 derive-key context of the request hash.
pub const REQUEST_CONTEXT: &str = "keyledger 2026-11-24 request v1";
/// A request's time may differ from its event's by at most this much, either way (§8 7a).
pub const REQUEST_SKEW_US: i64 = 5 * 60 * 1_000_000;

/// The request hash: BLAKE3-derive-key over `[ledger_id, time, nonce, action]`, canonical.
pub fn request_hash(
    ledger_id: &LedgerId,
    time: Timestamp,
    nonce: &Bytes<16>,
    action: &Action,
) -> Hash32 {
    // Plain data into a Vec: encoding cannot fail.
    let body = rmp_serde::to_vec(&(ledger_id, time, nonce, action)).expect("request encodes");
    Bytes(blake3::derive_key(REQUEST_CONTEXT, &body))
}

/// Signs `action` for the ledger `ledger_id` with a fresh random nonce. For a refusal to be
/// recorded by the server, the same request is kept with the refused action (`refused`).
pub fn sign(key: &SigningKey, ledger_id: &LedgerId, time: Timestamp, action: &Action) -> Request {
    let mut nonce = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let nonce = Bytes(nonce);
    let h = request_hash(ledger_id, time, &nonce, action);
    Request {
        key: key.public(),
        time,
        nonce,
        refused: None,
        sig: Bytes(key.sign_hash(&h)),
    }
}

/// The action a request asked for: the event's own, or the refused one of an
/// `action-denied`.
pub fn requested<'a>(req: &'a Request, action: &'a Action) -> &'a Action {
    req.refused.as_ref().unwrap_or(action)
}

/// Whether `req.sig` is `req.key`'s signature over the request hash of `action` for this
/// ledger (the rule of §6.1).
pub fn verify(ledger_id: &LedgerId, req: &Request, action: &Action) -> bool {
    let h = request_hash(ledger_id, req.time, &req.nonce, action);
    verify_bytes(&req.key, &h.0, &req.sig.0)
}

/// The identity a request's replay is recognised by: `(key, nonce)`, hashed to 32 bytes.
pub fn replay_id(req: &Request) -> Hash32 {
    let mut h = blake3::Hasher::new_derive_key("keyledger 2026-11-24 request replay id v1");
    h.update(req.key.bytes());
    h.update(&req.nonce.0);
    Bytes(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed request verifies for its ledger and action, and for nothing else.
    #[test]
    fn a_request_verifies_only_for_its_ledger_and_action() {
        let key = SigningKey::from_seed(&[3; 32]);
        let ledger = Bytes([1; 16]);
        let action = Action::KeyDisabled {
            key_id: "KLAKAAAAAAAAAAAAAAAALP5KS6".into(),
        };
        let req = sign(&key, &ledger, Timestamp(1_767_225_600_000_000), &action);
        assert_eq!(req.key, key.public());
        assert!(verify(&ledger, &req, &action));
        assert!(!verify(&Bytes([2; 16]), &req, &action));
        let other = Action::KeyEnabled {
            key_id: "KLAKAAAAAAAAAAAAAAAALP5KS6".into(),
        };
        assert!(!verify(&ledger, &req, &other));
        let again = sign(&key, &ledger, req.time, &action);
        assert_ne!(again.nonce, req.nonce, "each request draws a fresh nonce");
        assert_ne!(replay_id(&again), replay_id(&req));
    }
}
