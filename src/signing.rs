//! Signing keys: generation, key files, signatures over event hashes.
//!
//! Key file (mode 0600, refused if group or others can read it, as ssh does):
//! ```text
//! # comment lines
//! KEYLEDGER-ED25519-SEED:<64 hex digits of the 32-byte ed25519 seed>
//! ```
//! `FILE.pub` holds the public key's text form (`ed25519:<hex>`) and a newline.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::Signer;
use rand::RngCore;
use sha2::{Digest, Sha512};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::types::{Bytes, Hash32, PublicKey, from_hex};

const SEED_PREFIX: &str = "KEYLEDGER-ED25519-SEED:";
/// A key file larger than this is not a key file.
const MAX_KEY_FILE: u64 = 4096;

#[derive(Debug, Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} already exists; keyledger never overwrites a file. Choose another path")]
    Exists { path: PathBuf },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); a signing key must be private: run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "{path} belongs to uid {owner}, not to you: a signing key must be your own file (as ssh requires), or whoever planted it there would sign in its owner's name"
    )]
    NotOwned { path: PathBuf, owner: u32 },
    #[error("{path} is not a keyledger signing key: {reason}")]
    Malformed { path: PathBuf, reason: &'static str },
}

/// An ed25519 signing key. The seed is zeroized on drop (ed25519-dalek's `zeroize`).
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A new key from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *seed);
        Self::from_seed(&seed)
    }

    /// Deterministic key from a 32-byte seed (fixtures, tests).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(Bytes(self.0.verifying_key().to_bytes()))
    }

    /// Signature over an event hash.
    pub fn sign_hash(&self, h: &Hash32) -> [u8; 64] {
        self.sign_bytes(&h.0)
    }

    pub fn sign_bytes(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }

    /// Writes `path` (mode 0600) and `path.pub`, refusing to replace either.
    pub fn write_new(&self, path: &Path) -> Result<PathBuf, KeyFileError> {
        let pub_path = pub_path(path);
        for p in [path, pub_path.as_path()] {
            if p.exists() {
                return Err(KeyFileError::Exists { path: p.into() });
            }
        }
        let seed = Zeroizing::new(crate::types::to_hex(self.0.as_bytes()));
        let text = Zeroizing::new(format!(
            "# keyledger signing key (ed25519). Keep it private: mode 0600, never share or commit it.\n\
             # public key: {}\n{SEED_PREFIX}{}\n",
            self.public(),
            *seed
        ));
        write_exclusive(path, text.as_bytes(), 0o600)?;
        if let Err(e) = write_exclusive(&pub_path, format!("{}\n", self.public()).as_bytes(), 0o644)
        {
            let _ = fs::remove_file(path);
            return Err(e);
        }
        Ok(pub_path)
    }

    /// Reads a key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let io_err = |source| KeyFileError::Io {
            path: path.into(),
            source,
        };
        let mut f = crate::files::open_regular(path, false).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidInput => KeyFileError::Malformed {
                path: path.into(),
                reason: "not a regular file",
            },
            _ => io_err(e),
        })?;
        if path.extension().is_some_and(|e| e == "pub") {
            return Err(KeyFileError::Malformed {
                path: path.into(),
                reason: "it is a public key file (.pub); --key takes the private key file, the same name without .pub",
            });
        }
        let meta = f.metadata().map_err(io_err)?;
        if meta.uid() != crate::files::effective_uid() {
            return Err(KeyFileError::NotOwned {
                path: path.into(),
                owner: meta.uid(),
            });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: path.into(),
                mode,
            });
        }
        if meta.len() > MAX_KEY_FILE {
            return Err(KeyFileError::Malformed {
                path: path.into(),
                reason: "file is too large",
            });
        }
        // Sized up front and read through `take`, so the buffer never grows: a growing
        // Vec would leave unzeroized copies of the seed in freed memory.
        let mut raw = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE as usize + 1));
        (&mut f)
            .take(MAX_KEY_FILE)
            .read_to_end(&mut raw)
            .map_err(io_err)?;
        let malformed = |reason| KeyFileError::Malformed {
            path: path.into(),
            reason,
        };
        let text = std::str::from_utf8(&raw).map_err(|_| malformed("not UTF-8 text"))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines.next().ok_or_else(|| malformed("no key line"))?;
        if lines.next().is_some() {
            return Err(malformed("more than one key line"));
        }
        let hex = line
            .strip_prefix(SEED_PREFIX)
            .ok_or_else(|| malformed("the key line does not start with KEYLEDGER-ED25519-SEED:"))?;
        let seed = Zeroizing::new(
            from_hex::<32>(hex).ok_or_else(|| malformed("the seed is not 64 hex digits"))?,
        );
        Ok(Self::from_seed(&seed))
    }
}

/// `FILE` → `FILE.pub`.
pub fn pub_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Creates `path` exclusively with `mode`, writes `data`, and syncs it to disk.
/// Never follows a symlink at `path` and never replaces anything there.
pub fn write_exclusive(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyFileError> {
    crate::files::write_new(path, data, mode).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => KeyFileError::Exists { path: path.into() },
        _ => KeyFileError::Io {
            path: path.into(),
            source,
        },
    })
}

/// Ed25519 verification with the rules of ZIP-215 (ledger-format.md §6): S must be below
/// the group order; A and R are any 32 bytes that decode to a curve point (no canonical or
/// subgroup check here); and the cofactored equation `[8][S]B = [8]R + [8][k]A` must hold,
/// `k = SHA-512(R || A || message) mod L` over the bytes as given. Batch verification
/// (`ed25519_dalek::verify_batch`) accepts exactly the same signatures, so the verdict on
/// an event does not depend on which path checked it or what was batched with it.
pub fn verify_hash(pk: &PublicKey, h: &Hash32, sig: &[u8; 64]) -> bool {
    verify_bytes(pk, &h.0, sig)
}

pub fn verify_bytes(pk: &PublicKey, msg: &[u8], sig: &[u8; 64]) -> bool {
    match CompressedEdwardsY(*pk.bytes()).decompress() {
        Some(a) => verify_with_point(&a, pk.bytes(), msg, sig),
        None => false,
    }
}

/// A signature's R (as given, and decoded) and S, if S is below L and R is a curve point.
fn split_signature(sig: &[u8; 64]) -> Option<([u8; 32], EdwardsPoint, Scalar)> {
    let (r_bytes, s_bytes) = sig.split_at(32);
    let r_bytes: [u8; 32] = r_bytes.try_into().expect("32 bytes");
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(
        s_bytes.try_into().expect("32 bytes"),
    ))?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    Some((r_bytes, r, s))
}

/// As `verify_bytes`, with the public key already decompressed (`a` from `a_bytes`).
pub fn verify_with_point(a: &EdwardsPoint, a_bytes: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Some((r_bytes, r, s)) = split_signature(sig) else {
        return false;
    };
    let k = challenge(&r_bytes, a_bytes, msg);
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-a, &s);
    (sb_minus_ka - r).mul_by_cofactor().is_identity()
}

/// One signature for `verify_batch`: the signer's decompressed point and its bytes as
/// given, the message, the signature.
pub type BatchItem<'a> = (&'a EdwardsPoint, &'a [u8; 32], &'a [u8], &'a [u8; 64]);

/// Checks many signatures at once by exactly the rule of `verify_bytes`: true if every one
/// is valid, false (but for a chance below 2^-125 per call) if any is not. With random
/// 128-bit z_i it checks `[8]( Σ z_i R_i + Σ (z_i k_i) A_i - (Σ z_i S_i) B )` is the
/// identity: each valid signature's term vanishes under [8] whatever its torsion, so the
/// verdict on a signature never depends on what it is batched with. (ed25519-dalek's own
/// `verify_batch` omits the [8] and would accept or refuse a signature with a torsion
/// component depending on the random z, so it is not used.)
pub fn verify_batch(items: &[BatchItem<'_>]) -> bool {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::traits::VartimeMultiscalarMul;
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let mut scalars = Vec::with_capacity(2 * items.len() + 1);
    let mut points = Vec::with_capacity(2 * items.len() + 1);
    let mut b = Scalar::ZERO;
    for (a, a_bytes, msg, sig) in items {
        let Some((r_bytes, r, s)) = split_signature(sig) else {
            return false;
        };
        let k = challenge(&r_bytes, a_bytes, msg);
        let z = Scalar::from(rng.r#gen::<u128>());
        b += z * s;
        scalars.push(z);
        points.push(r);
        scalars.push(z * k);
        points.push(**a);
    }
    scalars.push(-b);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

/// `k = SHA-512(R || A || message) mod L`, over the bytes as given.
fn challenge(r_bytes: &[u8; 32], a_bytes: &[u8; 32], msg: &[u8]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r_bytes)
            .chain_update(a_bytes)
            .chain_update(msg)
            .finalize()
            .into(),
    )
}

/// Why `pk` may not be a signing key of a ledger (§6, §7): it must decode to a curve point,
/// be canonically encoded, and lie in the prime-order subgroup (so not small-order, and
/// with no small-order component). `None` if it is acceptable.
pub fn key_problem(pk: &PublicKey) -> Option<&'static str> {
    let Some(p) = CompressedEdwardsY(*pk.bytes()).decompress() else {
        return Some("it is not a point on the curve");
    };
    if p.compress().as_bytes() != pk.bytes() {
        return Some("it is not canonically encoded");
    }
    if p.is_small_order() {
        return Some("it is of small order");
    }
    if !p.is_torsion_free() {
        return Some("it has a small-order component (not in the prime-order subgroup)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_and_permission_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        let k = SigningKey::generate();
        let pubp = k.write_new(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pub_text = fs::read_to_string(pubp).unwrap();
        assert_eq!(PublicKey::parse(&pub_text), Some(k.public()));
        assert_eq!(SigningKey::load(&p).unwrap().public(), k.public());
        assert!(matches!(k.write_new(&p), Err(KeyFileError::Exists { .. })));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            SigningKey::load(&p),
            Err(KeyFileError::Permissions { mode: 0o640, .. })
        ));
    }

    #[test]
    fn malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (i, body) in [
            "",
            "hello\n",
            "KEYLEDGER-ED25519-SEED:abcd\n",
            "KEYLEDGER-ED25519-SEED:\u{ff}\n",
        ]
        .iter()
        .enumerate()
        {
            let p = dir.path().join(format!("k{i}"));
            write_exclusive(&p, body.as_bytes(), 0o600).unwrap();
            assert!(
                matches!(SigningKey::load(&p), Err(KeyFileError::Malformed { .. })),
                "{body:?}"
            );
        }
    }

    #[test]
    fn signatures_verify_and_flips_fail() {
        let k = SigningKey::from_seed(&[5; 32]);
        let h = Bytes([1u8; 32]);
        let mut sig = k.sign_hash(&h);
        assert!(verify_hash(&k.public(), &h, &sig));
        sig[10] ^= 1;
        assert!(!verify_hash(&k.public(), &h, &sig));
    }
}
