//! Checkpoints: the C2SP tlog-checkpoint body (origin, tree size, base64 Merkle root),
//! wrapped in a C2SP signed note with an Ed25519 signature, so any signed-note verifier can
//! check it. Specified in `ledger-format.md` §9.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::core::merkle::Sha;
use crate::core::signing::{SigningKey, verify_bytes};
use crate::core::types::{LedgerId, PublicKey};

/// Signed-note signature type byte for Ed25519.
const ED25519_TYPE: u8 = 0x01;
/// The em dash that begins every signature line, followed by a space.
const SIG_LINE_START: &str = "\u{2014} ";
/// Signature lines accepted on one note (signed-note asks for at least 16).
const MAX_SIGNATURES: usize = 100;

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
    #[error(
        "a signature on the checkpoint by a key that may sign it does not verify: the checkpoint was altered"
    )]
    BadSignature,
    #[error(
        "the checkpoint has no signature by a key that may sign it: one active in this ledger after the events it covers, under the origin's name"
    )]
    NoKnownSignature,
    #[error(
        "the line of trusted witness {0} on the checkpoint does not verify (a bad signature, a time of 0 or past 2^63-1, or not 8+64 bytes): the note was altered, or the line forged"
    )]
    BadCosignature(String),
}

/// The origin line for a ledger: `keyledger/<ledger id hex>`.
pub fn origin(ledger_id: &LedgerId) -> String {
    format!("keyledger/{}", ledger_id.hex())
}

/// Signed-note key ID of a key of signature type `ty`: the first 4 bytes of
/// SHA-256(name || 0x0A || ty || public key).
pub fn key_id_of(ty: u8, name: &str, pk: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ty]);
    h.update(pk.bytes());
    h.finalize()[..4].try_into().expect("4 bytes")
}

/// A signed-note verifier key of type `ty`: `<name>+<hex key ID>+<base64(ty || key)>`.
pub fn vkey_of(ty: u8, name: &str, pk: &PublicKey) -> String {
    let mut k = vec![ty];
    k.extend_from_slice(pk.bytes());
    format!(
        "{name}+{}+{}",
        crate::core::types::to_hex(&key_id_of(ty, name, pk)),
        B64.encode(k)
    )
}

/// Signed-note key hash of an Ed25519 note key (type 0x01).
pub fn key_hash(name: &str, pk: &PublicKey) -> [u8; 4] {
    key_id_of(ED25519_TYPE, name, pk)
}

/// The standard note verifier key (type 0x01).
pub fn verifier_key(name: &str, pk: &PublicKey) -> String {
    vkey_of(ED25519_TYPE, name, pk)
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

    /// Parses a signed note (c2sp.org/signed-note) whose text is a checkpoint
    /// (c2sp.org/tlog-checkpoint), strictly: UTF-8 with no control character but newline;
    /// the text ends at the last blank line; at least three non-empty text lines (origin,
    /// tree size in decimal with no leading zero or sign, standard base64 of a 32-byte
    /// root), then optional non-empty extension lines, which are ignored; one or more
    /// signature lines `— <name> <base64(4-byte key ID || signature)>`, where the name is
    /// non-empty with no space and no `+`. Signatures are not checked here. Returns the
    /// checkpoint, the signature lines and the signed text.
    pub fn parse(note: &str) -> Result<(Checkpoint, Vec<NoteSignature>, String), CheckpointError> {
        let m = CheckpointError::Malformed;
        if note.chars().any(|c| c < ' ' && c != '\n') {
            return Err(m("the note holds a control character other than newline"));
        }
        let split = note
            .rfind("\n\n")
            .ok_or(m("no blank line between the text and the signatures"))?;
        let (text, sigs) = (&note[..split + 1], &note[split + 2..]);
        let mut lines = text.split_terminator('\n');
        let origin = lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or(m("no origin line"))?;
        let size = lines.next().and_then(crate::core::text::decimal).ok_or(m(
            "the second line is not a tree size (decimal digits, no sign, no leading zero)",
        ))?;
        let root: Sha = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|v| v.try_into().ok())
            .ok_or(m(
                "the third line is not the standard base64 of a 32-byte root hash",
            ))?;
        if lines.any(str::is_empty) {
            return Err(m("the text has an empty line"));
        }
        if !sigs.ends_with('\n') || sigs.is_empty() {
            return Err(m(
                "the note does not end with a newline after its signatures",
            ));
        }
        let mut out = Vec::new();
        for line in sigs.split_terminator('\n') {
            let rest = line.strip_prefix(SIG_LINE_START).ok_or(m(
                "a signature line does not start with an em dash and a space",
            ))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(m("a signature line has no key name"))?;
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '+') {
                return Err(m("a key name is empty or holds a space or a plus sign"));
            }
            let blob = B64
                .decode(b64)
                .map_err(|_| m("a signature is not standard base64"))?;
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
        if out.len() > MAX_SIGNATURES {
            return Err(m("more than 100 signature lines"));
        }
        Ok((
            Checkpoint {
                origin: origin.to_owned(),
                size,
                root,
            },
            out,
            text.to_owned(),
        ))
    }

    /// Parses `note` and checks it is a checkpoint of `expected_origin` signed by one of
    /// `keys` (§9.3): a signature line is by a known key when its name is the origin and
    /// its key ID is that key's; every such signature must verify (one that does not
    /// rejects the note), at least one must exist, and other lines (witnesses, other
    /// logs) are ignored. Returns the checkpoint and the first key that signed it.
    pub fn verify<'k>(
        note: &str,
        expected_origin: &str,
        keys: impl IntoIterator<Item = &'k PublicKey>,
    ) -> Result<(Checkpoint, PublicKey), CheckpointError> {
        let (cp, sigs, text) = Self::parse(note)?;
        if cp.origin != expected_origin {
            return Err(CheckpointError::WrongOrigin {
                found: cp.origin,
                expected: expected_origin.to_owned(),
            });
        }
        let keys: Vec<&PublicKey> = keys.into_iter().collect();
        let mut signer = None;
        for s in sigs.iter().filter(|s| s.name == cp.origin) {
            // Known keys with this key ID (4 bytes can collide): the line must verify with one.
            let mut known = keys
                .iter()
                .filter(|pk| key_hash(&cp.origin, pk) == s.key_hash)
                .peekable();
            if known.peek().is_none() {
                continue;
            }
            let by = known.find(|pk| {
                <[u8; 64]>::try_from(s.sig.as_slice())
                    .is_ok_and(|sig| verify_bytes(pk, text.as_bytes(), &sig))
            });
            match by {
                Some(pk) => {
                    signer.get_or_insert(**pk);
                }
                None => return Err(CheckpointError::BadSignature),
            }
        }
        match signer {
            Some(pk) => Ok((cp, pk)),
            None => Err(CheckpointError::NoKnownSignature),
        }
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
            Err(CheckpointError::NoKnownSignature)
        );
        let tampered = note.replacen("\n7\n", "\n8\n", 1);
        assert_eq!(
            Checkpoint::verify(&tampered, "keyledger/00", [&k.public()]),
            Err(CheckpointError::BadSignature)
        );
        assert!(verifier_key("keyledger/00", &k.public()).starts_with("keyledger/00+"));
    }
}
