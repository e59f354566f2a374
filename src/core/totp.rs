//! R13: time-based one-time codes (RFC 6238 over RFC 4226 HOTP): HMAC-SHA-1, 6 digits,
//! 30-second steps counted from 1970 — what every authenticator app produces from an
//! `otpauth://totp/` URI. Pure functions of the seed, the code and the time.

use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::core::types::Timestamp;

/// One time step, in µs (RFC 6238 X = 30 s, T0 = 0).
pub const STEP_US: i64 = 30_000_000;
pub const DIGITS: usize = 6;
/// Codes of this many steps before and after the current one are accepted too (clock
/// drift between the authenticator and the server; RFC 6238 §5.2 recommends one).
pub const WINDOW: u64 = 1;
/// Seed length in bytes (RFC 4226 §4 recommends 160 bits).
pub const SEED_LEN: usize = 20;

/// The time step of `t` (floor division; steps before 1970 are 0).
pub fn step_of(t: Timestamp) -> u64 {
    t.0.div_euclid(STEP_US).max(0) as u64
}

/// HOTP (RFC 4226 §5.3) of `seed` at counter `step`, as its 6 ASCII digits.
pub fn code(seed: &[u8], step: u64) -> [u8; DIGITS] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, seed);
    let mac = ring::hmac::sign(&key, &step.to_be_bytes());
    let h = mac.as_ref();
    let o = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    let mut n = bin % 10u32.pow(DIGITS as u32);
    let mut out = [b'0'; DIGITS];
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out
}

/// Whether `text` has the shape of a code: exactly 6 ASCII digits.
pub fn well_formed(text: &str) -> bool {
    text.len() == DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

/// The step whose code `text` is, among the steps `WINDOW` around `now`'s (the latest if
/// several match), or `None`. Every candidate is computed and compared in constant time,
/// whatever matches, so the time taken says nothing about the code.
pub fn matching_step(seed: &[u8], text: &str, now: Timestamp) -> Option<u64> {
    let given: [u8; DIGITS] = text.as_bytes().try_into().ok()?;
    let center = step_of(now);
    let mut found = 0u64;
    let mut any = subtle::Choice::from(0);
    for s in center.saturating_sub(WINDOW)..=center + WINDOW {
        let hit = code(seed, s).ct_eq(&given);
        found.conditional_assign(&s, hit);
        any |= hit;
    }
    bool::from(any).then_some(found)
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what `otpauth://` URIs carry).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(B32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The inverse of `base32` (upper case, no padding); `None` for anything else.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = B32.iter().position(|&x| x == c)? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://totp/` URI (Google Authenticator's key URI format) an authenticator app
/// reads: issuer `keyledger`, the principal's name and the ledger it belongs to as label.
pub fn otpauth_uri(ledger_label: &str, name: &str, seed: &[u8]) -> String {
    let esc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/keyledger:{}%20{}?secret={}&issuer=keyledger&algorithm=SHA1&digits={DIGITS}&period={}",
        esc(name),
        esc(ledger_label),
        base32(seed),
        STEP_US / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, the last 6 of its 8 digits.
    #[test]
    fn rfc_6238_vectors() {
        let seed = b"12345678901234567890";
        for (secs, eight) in [
            (59i64, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            let step = step_of(Timestamp(secs * 1_000_000));
            assert_eq!(&code(seed, step)[..], &eight.as_bytes()[2..], "at {secs}");
        }
    }

    #[test]
    fn window_is_one_step_each_side_and_the_latest_match_wins() {
        let seed = [7u8; SEED_LEN];
        let now = Timestamp(1_700_000_000_000_000);
        let c = step_of(now);
        for s in [c - 1, c, c + 1] {
            let text = String::from_utf8(code(&seed, s).to_vec()).unwrap();
            assert_eq!(matching_step(&seed, &text, now), Some(s));
        }
        for s in [c - 2, c + 2] {
            let text = String::from_utf8(code(&seed, s).to_vec()).unwrap();
            let m = matching_step(&seed, &text, now);
            assert!(m.is_none() || m != Some(s));
        }
        assert_eq!(matching_step(&seed, "12345", now), None);
        assert!(!well_formed("12345a") && well_formed("012345"));
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        for n in 0..25 {
            let v: Vec<u8> = (0..n).map(|i| (i * 37 + 5) as u8).collect();
            assert_eq!(base32_decode(&base32(&v)).unwrap(), v);
        }
        assert_eq!(base32_decode("mzxw"), None);
    }
}
