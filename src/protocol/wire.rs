//! The server API's messages (README "Server API"), shared by `server` and `client`.
//!
//! A write is a signed request (ledger-format.md §4.1), sent as the canonical bytes
//! `[action, request]` (base64 in JSON); the event the server appends carries that same
//! request. A read is signed in headers over `[ledger_id, time, nonce, "METHOD target"]`
//! under its own context, so a read signature can never pass for a write.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::core::event::{Action, Request};
use crate::core::signing::{SigningKey, verify_bytes};
use crate::core::types::{Bytes, Hash32, LedgerId, PublicKey, Timestamp};

/// The BLAKE3 derive-key context of a read request.
pub const READ_CONTEXT: &str = "keyledger 2026-11-24 read v1";
/// Headers of a signed read.
pub const H_KEY: &str = "keyledger-key";
pub const H_TIME: &str = "keyledger-time";
pub const H_NONCE: &str = "keyledger-nonce";
pub const H_SIG: &str = "keyledger-signature";
/// The ledger file's end after the bytes of a `/v1/frames` answer.
pub const H_END: &str = "keyledger-end";
/// The largest request body the server reads.
pub const MAX_REQUEST_BODY: usize = 256 * 1024;
/// At most this many bytes of frames in one `/v1/frames` answer.
pub const MAX_FRAMES_REPLY: u64 = 4 * 1024 * 1024;

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// `GET /v1/ledger`: what a client needs before it can sign (public).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerInfo {
    pub ledger_id: String,
    pub format_version: u16,
    /// The last durable event.
    pub seq: u64,
    pub head: String,
    /// The file's length up to and including that event.
    pub end: u64,
    /// The server's own signing key (it signs every frame it writes).
    pub server_key: String,
    /// Successes of one key within this many seconds are recorded once (R11).
    pub auth_coalesce_seconds: u64,
}

/// `POST /v1/append`: signed requests, applied in order in one group commit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendBody {
    pub ledger_id: String,
    /// Each the base64 of the canonical `[action, request]` (`Request::encode_signed`).
    pub requests: Vec<String>,
    /// R13: a code from the actor's authenticator, for the protected actions among the
    /// requests (checked only if one needs it, then used up). Never recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
}

/// A one-time code as it travels: wiped from memory when dropped, never printed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Code(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(…)")
    }
}

/// `POST /v1/protect/enable?name=NAME`, signed as a read of that target: the URI of a new
/// authenticator for NAME, to be confirmed by `protection-enabled` with its first code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtectReply {
    pub name: String,
    /// `otpauth://totp/…`: shown once, held by nobody but the server afterwards.
    pub uri: String,
}

/// The fate of one request of an append.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ItemReply {
    /// `appended`, `denied` (recorded as action-denied) or `rejected` (nothing recorded).
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// A retried request: this is the original receipt, and nothing new was appended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// For `denied`: the rule; for `rejected`: the error code (as in `ErrorBody`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppendReply {
    pub results: Vec<ItemReply>,
    /// When a request was not appended: the first such one's code and message, as in
    /// `ErrorBody` (the answer's status is that request's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST /v1/auth`: a gateway presents an access key it received. `request` is the
/// gateway's signed request for `auth-succeeded {key_id}` (base64 of the canonical
/// `[action, request]`); the secret travels only in this body, over TLS or loopback.
#[derive(Serialize, Deserialize)]
pub struct AuthBody {
    pub key_id: String,
    pub secret: String,
    #[serde(default)]
    pub token: Option<String>,
    pub request: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthReply {
    pub ok: bool,
    pub user: Option<String>,
    pub reason: Option<String>,
    /// The seq that records this check; `null` when coalesced.
    pub seq: Option<u64>,
    pub hash: Option<String>,
    pub time: Option<String>,
    pub coalesced: bool,
    /// R11: a failure past the server's per-key rate, counted into a later
    /// `auth-failures-summarized` instead of an event of its own.
    #[serde(default)]
    pub summarized: bool,
}

/// Every refusal: a stable code and a message that says what to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// The hash a read request signs.
pub fn read_hash(ledger_id: &LedgerId, time: Timestamp, nonce: &Bytes<16>, target: &str) -> Hash32 {
    let body = rmp_serde::to_vec(&(ledger_id, time, nonce, target)).expect("encodes");
    Bytes(blake3::derive_key(READ_CONTEXT, &body))
}

/// A signed read: the four header values.
#[derive(Debug, Clone)]
pub struct ReadAuth {
    pub key: PublicKey,
    pub time: Timestamp,
    pub nonce: Bytes<16>,
    pub sig: Bytes<64>,
}

impl ReadAuth {
    /// Signs `target` (`"GET /v1/frames?from=0"`) for this ledger, now, with a fresh nonce.
    pub fn sign(key: &SigningKey, ledger_id: &LedgerId, target: &str) -> ReadAuth {
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let time = Timestamp::now();
        let h = read_hash(ledger_id, time, &Bytes(nonce), target);
        ReadAuth {
            key: key.public(),
            time,
            nonce: Bytes(nonce),
            sig: Bytes(key.sign_hash(&h)),
        }
    }

    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (H_KEY, self.key.to_string()),
            (H_TIME, self.time.0.to_string()),
            (H_NONCE, self.nonce.hex()),
            (H_SIG, self.sig.hex()),
        ]
    }

    /// Reads the four headers (by `get`); `None` if one is missing or malformed.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<ReadAuth> {
        Some(ReadAuth {
            key: PublicKey::parse(get(H_KEY)?)?,
            time: Timestamp(get(H_TIME)?.parse().ok()?),
            nonce: Bytes::parse_hex(get(H_NONCE)?)?,
            sig: Bytes::parse_hex(get(H_SIG)?)?,
        })
    }

    /// What the server remembers a read by, so that it is answered once: (key, nonce).
    pub fn replay_id(&self) -> Hash32 {
        let mut h = blake3::Hasher::new_derive_key("keyledger 2026-11-24 read replay id v1");
        h.update(self.key.bytes());
        h.update(&self.nonce.0);
        Bytes(*h.finalize().as_bytes())
    }

    pub fn verify(&self, ledger_id: &LedgerId, target: &str) -> bool {
        let h = read_hash(ledger_id, self.time, &self.nonce, target);
        verify_bytes(&self.key, &h.0, &self.sig.0)
    }
}

/// One signed write, as it goes into `AppendBody::requests`.
pub fn encode_request(action: &Action, req: &Request) -> String {
    b64(&Request::encode_signed(action, req))
}
