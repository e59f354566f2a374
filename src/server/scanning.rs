//! R14: the secret scanning partner endpoint (GitHub's partner program format). A scanner
//! POSTs `[{token, type, url, source}]`, signed with ECDSA P-256 over SHA-256 of the raw
//! body (DER, base64, in `Github-Public-Key-Signature`, by the key named in
//! `Github-Public-Key-Identifier`). A report that verifies against a configured key is
//! recorded: each keyledger secret or token of this ledger gets a `leak-reported` by the
//! server, and its key a `key-disabled` (unless reports only are configured). The answer is
//! the program's feedback: one `true_positive` / `false_positive` label per token, by the
//! token's SHA-256 (never the token itself).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

/// At most this many matches in one report.
pub const MAX_MATCHES: usize = 1000;

#[derive(Debug, Error)]
pub enum ScanKeyError {
    #[error("the scanner keys {path}: {message}")]
    Bad { path: PathBuf, message: String },
}

/// The public keys of the scanners this server believes, by key identifier: GitHub's
/// `https://api.github.com/meta/public_keys/secret_scanning` document, saved to a file.
pub struct ScannerKeys {
    keys: Vec<(String, Vec<u8>)>,
}

#[derive(Deserialize)]
struct KeysFile {
    public_keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    key_identifier: String,
    key: String,
}

/// DER of a P-256 SubjectPublicKeyInfo up to its uncompressed point: SEQUENCE, the
/// AlgorithmIdentifier (id-ecPublicKey, prime256v1), BIT STRING of 66 bytes (0 unused bits).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The uncompressed point (65 bytes) of a PEM `PUBLIC KEY` of P-256, or why not.
pub fn p256_point(pem: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.as_bytes())
        .map_err(|_| "a key is not PEM (base64 between BEGIN and END lines)".to_owned())?;
    match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
        Some(point) if point.len() == 65 && point[0] == 4 => Ok(point.to_vec()),
        _ => Err("a key is not an ECDSA P-256 public key (SubjectPublicKeyInfo)".into()),
    }
}

/// A P-256 public key as PEM, from its uncompressed point (for tests and tools).
pub fn p256_pem(point: &[u8]) -> String {
    use base64::Engine;
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(point);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
}

impl ScannerKeys {
    pub fn load(path: &Path) -> Result<Self, ScanKeyError> {
        let bad = |message: String| ScanKeyError::Bad {
            path: path.into(),
            message,
        };
        let bytes =
            crate::storage::files::read_regular(path, 1 << 20).map_err(|e| bad(e.to_string()))?;
        let file: KeysFile = serde_json::from_slice(&bytes).map_err(|_| {
            bad("not {\"public_keys\": [{\"key_identifier\", \"key\"}, …]} as JSON (GitHub's /meta/public_keys/secret_scanning)".into())
        })?;
        if file.public_keys.is_empty() {
            return Err(bad("it lists no key".into()));
        }
        let keys = file
            .public_keys
            .into_iter()
            .map(|k| Ok((k.key_identifier, p256_point(&k.key).map_err(bad)?)))
            .collect::<Result<_, ScanKeyError>>()?;
        Ok(ScannerKeys { keys })
    }

    /// Does `signature` (base64 of DER ECDSA) verify over `body` with the key `id`?
    pub fn verify(&self, id: &str, signature: &str, body: &[u8]) -> bool {
        use base64::Engine;
        let Some((_, point)) = self.keys.iter().find(|(k, _)| k == id) else {
            return false;
        };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
            .verify(body, &sig)
            .is_ok()
    }
}

/// One match of a report.
#[derive(Deserialize)]
pub struct Match {
    pub token: Zeroizing<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// The program's feedback on one token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Feedback {
    /// SHA-256 of the token, hex: the token itself never leaves in an answer.
    pub token_hash: String,
    pub token_type: String,
    /// `true_positive`: a credential of this ledger; `false_positive`: not one.
    pub label: String,
}

pub fn token_hash(token: &str) -> String {
    crate::core::types::to_hex(
        ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref(),
    )
}

/// A server's scanner configuration.
pub struct Scanner {
    pub keys: ScannerKeys,
    /// Record the leak only; leave the key as it is.
    pub report_only: bool,
}
