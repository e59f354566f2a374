//! The hash chain: each event's hash is blake3 in derive-key mode (a fixed context string
//! for domain separation) over the exact body bytes as stored; each body carries the
//! previous event's hash. The signature is ed25519 over this 32-byte hash.

use crate::core::types::{Bytes, Hash32, Timestamp};

/// blake3 derive-key context for event hashes. Changing it changes every hash.
pub const EVENT_HASH_CONTEXT: &str = "keyledger 2026-11-22 event hash v1";

/// Hash of one stored event body.
pub fn event_hash(body: &[u8]) -> Hash32 {
    // Deriving the context key costs a compression; it is done once and the hasher cloned.
    static KEYED: std::sync::OnceLock<blake3::Hasher> = std::sync::OnceLock::new();
    let mut h = KEYED
        .get_or_init(|| blake3::Hasher::new_derive_key(EVENT_HASH_CONTEXT))
        .clone();
    h.update(body);
    Bytes(*h.finalize().as_bytes())
}

/// The last event of a ledger: what the next event must chain to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: Hash32,
    pub time: Timestamp,
    /// Byte offset just past this event's frame: where the next frame starts.
    pub end: u64,
}

impl Head {
    /// Number of events up to and including this one.
    pub fn size(&self) -> u64 {
        self.seq + 1
    }
}
