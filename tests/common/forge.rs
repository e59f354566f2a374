//! Ed25519 signatures made by hand, as a key's own holder (or anyone, for small-order keys)
//! could make them: nonces with a small-order component, S not reduced, R or A encoded
//! non-canonically. For the signature-rule fixtures and vectors (ledger-format.md §6).

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use sha2::{Digest, Sha512};

/// The group order L, little-endian.
pub const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The secret scalar of an RFC 8032 seed (SHA-512, low half, clamped).
pub fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h = Sha512::digest(seed);
    let mut a: [u8; 32] = h[..32].try_into().unwrap();
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

/// A deterministic nonce scalar from a label.
pub fn nonce(label: &str) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&Sha512::digest(label.as_bytes()).into())
}

/// k = SHA-512(R || A || M) mod L, over the bytes as given.
pub fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r)
            .chain_update(a)
            .chain_update(m)
            .finalize()
            .into(),
    )
}

/// The small-order point `[i]T`, T a generator of the 8-torsion (`[0]T` is the identity).
pub fn torsion(i: usize) -> EdwardsPoint {
    EIGHT_TORSION[i % 8]
}

pub fn enc(p: &EdwardsPoint) -> [u8; 32] {
    p.compress().to_bytes()
}

/// S || R as a signature, S given as 32 little-endian bytes.
pub fn sig(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(s);
    out
}

/// A signature of `m` under the public bytes `a_bytes` (whose discrete log, for its
/// prime-order part, is `a`), with nonce point R = [r]B + `r_torsion`, encoded as
/// `r_bytes` (None: canonically); `hash_r` are the R bytes the challenge is computed over.
pub fn sign_with(
    a: Scalar,
    a_bytes: &[u8; 32],
    m: &[u8],
    r: Scalar,
    r_torsion: EdwardsPoint,
    r_bytes: Option<[u8; 32]>,
    hash_r: Option<[u8; 32]>,
) -> [u8; 64] {
    let r_enc = r_bytes.unwrap_or_else(|| enc(&(B * r + r_torsion)));
    let k = challenge(&hash_r.unwrap_or(r_enc), a_bytes, m);
    sig(&r_enc, &(r + k * a).to_bytes())
}

/// Does the cofactorless equation [S]B = R + [k]A hold (informational; the spec's rule is
/// the cofactored one)? None if a point does not decode or S is not reduced.
pub fn cofactorless(a_bytes: &[u8; 32], m: &[u8], s: &[u8; 64]) -> Option<bool> {
    let a = CompressedEdwardsY(*a_bytes).decompress()?;
    let r_bytes: [u8; 32] = s[..32].try_into().unwrap();
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let sc = Option::<Scalar>::from(Scalar::from_canonical_bytes(s[32..].try_into().unwrap()))?;
    let k = challenge(&r_bytes, a_bytes, m);
    Some((B * sc - r - a * k).is_identity())
}

/// `x + y` for 32-byte little-endian integers (no reduction; the caller keeps it < 2^256).
pub fn add_le(x: &[u8; 32], y: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = x[i] as u16 + y[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// The identity point encoded with the sign bit set (x = 0, "negative zero").
pub const IDENTITY_NEG_ZERO: [u8; 32] = {
    let mut b = [0u8; 32];
    b[0] = 1;
    b[31] = 0x80;
    b
};

/// The identity point encoded with y = 1 + p (y not reduced).
pub const IDENTITY_Y_PLUS_P: [u8; 32] = {
    let mut b = [0xffu8; 32];
    b[0] = 0xee;
    b[31] = 0x7f;
    b
};
