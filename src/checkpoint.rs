//! Checkpoints: the C2SP tlog-checkpoint body (origin, tree size, base64 Merkle root),
//! wrapped in a C2SP signed note with an Ed25519 signature, so any signed-note verifier can
//! check it. Specified in `ledger-format.md` §9.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::merkle::Sha;
use crate::signing::{SigningKey, verify_bytes};
use crate::types::{LedgerId, PublicKey};

/// Signed-note signature type byte for Ed25519.
const ED25519_TYPE: u8 = 0x01;
/// The em dash that begins every signature line, followed by a space.
const SIG_LINE_START: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Sha,
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_hash: [u8; 4],
    pub sig: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("checkpoint is not a signed note: {0}")]
    Malformed(&'static str),
    #[error("checkpoint origin {found:?} is not this ledger's ({expected:?})")]
    WrongOrigin { found: String, expected: String },
    #[error("checkpoint has no signature by a key of this ledger (or the signature is invalid)")]
    BadSignature,
}

/// The origin line for a ledger: `keyledger/<ledger id hex>`.
pub fn origin(ledger_id: &LedgerId) -> String {
    format!("keyledger/{}", ledger_id.hex())
}

/// Signed-note key hash: first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key).
pub fn key_hash(name: &str, pk: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_TYPE]);
    h.update(pk.bytes());
    h.finalize()[..4].try_into().expect("4 bytes")
}

/// The standard note verifier key: `<name>+<hex key hash>+<base64(0x01 || public key)>`.
pub fn verifier_key(name: &str, pk: &PublicKey) -> String {
    let mut k = vec![ED25519_TYPE];
    k.extend_from_slice(pk.bytes());
    format!(
        "{name}+{}+{}",
        crate::types::to_hex(&key_hash(name, pk)),
        B64.encode(k)
    )
}

impl Checkpoint {
    /// The note text: three lines, each ending in a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// The full signed note; the key name is the origin.
    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let pk = key.public();
        let mut blob = key_hash(&self.origin, &pk).to_vec();
        blob.extend_from_slice(&key.sign_bytes(body.as_bytes()));
        format!(
            "{body}\n{SIG_LINE_START}{} {}\n",
            self.origin,
            B64.encode(blob)
        )
    }

    /// Parses a signed note whose body is a checkpoint. Signatures are not checked here.
    pub fn parse(note: &str) -> Result<(Checkpoint, Vec<NoteSignature>, String), CheckpointError> {
        let m = CheckpointError::Malformed;
        let (body, sigs) = note
            .split_once("\n\n")
            .ok_or(m("no blank line between the text and the signatures"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(m("no origin line"))?;
        let size = lines
            .next()
            .and_then(|l| l.parse::<u64>().ok())
            .filter(|_| true)
            .ok_or(m("second line is not a tree size"))?;
        let root: Sha = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|v| v.try_into().ok())
            .ok_or(m("third line is not a base64 32-byte root hash"))?;
        let mut out = Vec::new();
        if !sigs.ends_with('\n') {
            return Err(m("the note does not end with a newline"));
        }
        for line in sigs.lines() {
            let rest = line.strip_prefix(SIG_LINE_START).ok_or(m(
                "a signature line does not start with an em dash and a space",
            ))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(m("a signature line has no key name"))?;
            let blob = B64
                .decode(b64)
                .map_err(|_| m("a signature is not base64"))?;
            if blob.len() < 5 {
                return Err(m("a signature is too short"));
            }
            out.push(NoteSignature {
                name: name.to_owned(),
                key_hash: blob[..4].try_into().expect("4 bytes"),
                sig: blob[4..].to_vec(),
            });
        }
        if out.is_empty() {
            return Err(m("no signature lines"));
        }
        Ok((
            Checkpoint {
                origin: origin.to_owned(),
                size,
                root,
            },
            out,
            body,
        ))
    }

    /// Parses `note` and returns the checkpoint with the first of `keys` that signed it.
    pub fn verify<'k>(
        note: &str,
        expected_origin: &str,
        keys: impl IntoIterator<Item = &'k PublicKey>,
    ) -> Result<(Checkpoint, PublicKey), CheckpointError> {
        let (cp, sigs, body) = Self::parse(note)?;
        if cp.origin != expected_origin {
            return Err(CheckpointError::WrongOrigin {
                found: cp.origin,
                expected: expected_origin.to_owned(),
            });
        }
        for pk in keys {
            for s in &sigs {
                let Ok(sig) = <[u8; 64]>::try_from(s.sig.as_slice()) else {
                    continue;
                };
                if s.key_hash == key_hash(&s.name, pk) && verify_bytes(pk, body.as_bytes(), &sig) {
                    return Ok((cp, *pk));
                }
            }
        }
        Err(CheckpointError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_parse_verify_and_tamper() {
        let k = SigningKey::from_seed(&[3; 32]);
        let cp = Checkpoint {
            origin: "keyledger/00".into(),
            size: 7,
            root: [9; 32],
        };
        let note = cp.sign(&k);
        let (got, pk) = Checkpoint::verify(&note, "keyledger/00", [&k.public()]).unwrap();
        assert_eq!((got, pk), (cp, k.public()));
        let other = SigningKey::from_seed(&[4; 32]).public();
        assert_eq!(
            Checkpoint::verify(&note, "keyledger/00", [&other]),
            Err(CheckpointError::BadSignature)
        );
        let tampered = note.replacen("\n7\n", "\n8\n", 1);
        assert_eq!(
            Checkpoint::verify(&tampered, "keyledger/00", [&k.public()]),
            Err(CheckpointError::BadSignature)
        );
        assert!(verifier_key("keyledger/00", &k.public()).starts_with("keyledger/00+"));
    }
}
