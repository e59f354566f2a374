//! Signing keys and signatures: generation, signing, and the one verification rule every
//! path applies (ledger-format.md §6). Key files are `storage::keyfile`'s.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::Signer;
use rand::RngCore;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::core::types::{Bytes, Hash32, PublicKey};

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

    /// The 32-byte seed, for a key file writer (zeroized when dropped).
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.0.as_bytes())
    }
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

/// Decompressed signer keys, by their bytes (`None`: not a curve point). A ledger has few
/// signers, and decompressing a key costs about as much as verifying a signature.
pub type KeyPoints = std::collections::HashMap<PublicKey, Option<EdwardsPoint>>;

/// One signature to check: the key, the 32-byte message (a hash), the signature.
pub type Check = (PublicKey, Hash32, [u8; 64]);

/// Decompresses (once) the keys of `checks` into `points`.
pub fn learn_points(checks: &[Check], points: &mut KeyPoints) {
    for (pk, _, _) in checks {
        points
            .entry(*pk)
            .or_insert_with(|| CompressedEdwardsY(*pk.bytes()).decompress());
    }
}

/// True if every signature of `checks` verifies (`verify_batch`); the keys must be in
/// `points` (`learn_points`).
pub fn all_valid(checks: &[Check], points: &KeyPoints) -> bool {
    let items: Option<Vec<BatchItem<'_>>> = checks
        .iter()
        .map(|(pk, h, sig)| {
            points
                .get(pk)
                .and_then(Option::as_ref)
                .map(|a| (a, pk.bytes(), &h.0[..], sig))
        })
        .collect();
    items.is_some_and(|items| verify_batch(&items))
}

/// The verdict on each signature of `checks`, in order, by exactly the rule of
/// `verify_bytes`: one batch per core (`threads`), checked one at a time only in a batch
/// that fails. The keys must be in `points` (`learn_points`); a key missing there fails.
pub fn verify_each(checks: &[Check], points: &KeyPoints, threads: usize) -> Vec<bool> {
    let one_by_one = |part: &[Check]| -> Vec<bool> {
        if all_valid(part, points) {
            return vec![true; part.len()];
        }
        part.iter()
            .map(
                |(pk, h, sig)| match points.get(pk).and_then(Option::as_ref) {
                    Some(a) => verify_with_point(a, pk.bytes(), &h.0, sig),
                    None => false,
                },
            )
            .collect()
    };
    on_cores(checks, threads, 64, one_by_one)
}

/// `work` over `items` split in `threads` chunks, one thread each, results in order; on the
/// calling thread alone below `min` items (a thread costs more than a few signatures).
pub fn on_cores<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    min: usize,
    work: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    if threads < 2 || items.len() < min.max(2) {
        return work(items);
    }
    let chunk = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || work(part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("signature work does not panic"))
            .collect()
    })
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

    /// A batch gives each signature the verdict it gets alone, whatever else is in it.
    #[test]
    fn verify_each_names_exactly_the_bad_signatures() {
        let keys: Vec<SigningKey> = (0..3u8)
            .map(|i| SigningKey::from_seed(&[i + 1; 32]))
            .collect();
        let mut checks: Vec<Check> = (0..80u8)
            .map(|i| {
                let k = &keys[i as usize % 3];
                let h = Bytes([i; 32]);
                (k.public(), h, k.sign_hash(&h))
            })
            .collect();
        checks[7].2[3] ^= 1;
        checks[31].1 = Bytes([99; 32]);
        checks[20].0 = keys[0].public(); // signed by keys[2]
        let mut points = KeyPoints::new();
        learn_points(&checks, &mut points);
        for threads in [1, 2, 3] {
            let v = verify_each(&checks, &points, threads);
            assert_eq!(v.len(), checks.len());
            let bad: Vec<usize> = (0..v.len()).filter(|&i| !v[i]).collect();
            assert_eq!(bad, [7, 20, 31], "threads {threads}");
        }
        assert!(verify_each(&checks[..7], &points, 2).iter().all(|&ok| ok));
        // A key never learned fails, never panics.
        assert_eq!(verify_each(&checks[..1], &KeyPoints::new(), 1), [false]);
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
