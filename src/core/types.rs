//! Small value types shared by every module: hashes, public keys, timestamps, names.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes exactly `N` bytes of hex (either case).
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// A fixed-size byte string, encoded in MessagePack as `bin 8` (never as an array of ints).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes<const N: usize>(pub [u8; N]);

/// A 32-byte hash (blake3 event hash, fingerprint, Merkle root).
pub type Hash32 = Bytes<32>;
/// A ledger id: 16 random bytes chosen at `init`.
pub type LedgerId = Bytes<16>;

impl<const N: usize> Default for Bytes<N> {
    fn default() -> Self {
        Bytes([0u8; N])
    }
}

impl<const N: usize> Bytes<N> {
    pub const ZERO: Self = Bytes([0u8; N]);

    pub fn hex(&self) -> String {
        to_hex(&self.0)
    }

    pub fn parse_hex(s: &str) -> Option<Self> {
        from_hex::<N>(s.trim()).map(Bytes)
    }
}

impl<const N: usize> fmt::Display for Bytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl<const N: usize> fmt::Debug for Bytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl<const N: usize> Serialize for Bytes<N> {
    /// MessagePack (not human-readable): `bin`. JSON (human-readable): a hex string.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de, const N: usize> Deserialize<'de> for Bytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> serde::de::Visitor<'_> for V<N> {
            type Value = Bytes<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a binary string of exactly {N} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                <[u8; N]>::try_from(v)
                    .map(Bytes)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(V::<N>)
    }
}

/// An ed25519 public key, 32 bytes. Text form: `ed25519:` followed by 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(transparent)]
pub struct PublicKey(pub Bytes<32>);

impl Serialize for PublicKey {
    /// MessagePack: `bin 8` of 32 bytes. JSON: the text form.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl PublicKey {
    pub const TEXT_PREFIX: &'static str = "ed25519:";

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0.0
    }

    /// Parses the text form. Whitespace around it is ignored.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.trim().strip_prefix(Self::TEXT_PREFIX)?;
        Bytes::parse_hex(hex).map(PublicKey)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::TEXT_PREFIX, self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A UTC instant, microseconds since 1970-01-01T00:00:00Z. Encoded as a MessagePack integer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    /// MessagePack: an integer. JSON: RFC 3339 UTC text.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Timestamp(t.timestamp_micros())
    }

    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }

    /// Parses RFC 3339 (any offset; converted to UTC). A bare date `YYYY-MM-DD` means midnight UTC.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(Self::from_datetime(t.with_timezone(&Utc)));
        }
        let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        Some(Self::from_datetime(d.and_hms_opt(0, 0, 0)?.and_utc()))
    }

    pub fn plus_micros(self, us: i64) -> Self {
        Timestamp(self.0.saturating_add(us))
    }

    pub fn plus_days(self, days: i64) -> Self {
        self.plus_micros(days.saturating_mul(86_400_000_000))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "@{}us", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parses a duration such as `90s`, `15m`, `1h`, `1h30m`, `7d`. Returns microseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    // Units appear at most once each, largest first (2h30m, not 30m2h or 1h1h).
    let mut last_unit = i64::MAX;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).checked_mul(10)?.checked_add(d as i64)?);
            continue;
        }
        let unit: i64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        if unit >= last_unit {
            return None;
        }
        last_unit = unit;
        total = total.checked_add(num.take()?.checked_mul(unit)?)?;
    }
    if num.is_some() {
        return None; // a number with no unit
    }
    total.checked_mul(1_000_000)
}

/// Principal names: 1–64 characters, ASCII letters, digits and `. _ @ -`, starting with a letter
/// or digit, and not containing `klsk_` or `kltk_` (a pasted secret is never a name).
/// Names appear in file paths and CSV, so nothing else is allowed.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'@' | b'-'))
        && !name.contains("klsk_")
        && !name.contains("kltk_")
}

/// How far ahead of a writer's or verifier's real clock an event may be dated (L9): five
/// minutes, in microseconds.
pub const CLOCK_SKEW_US: i64 = 5 * 60 * 1_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex::<4>("0001ABff"), Some(b));
        assert_eq!(from_hex::<4>("0001abf"), None);
        assert_eq!(from_hex::<4>("0001abfg"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Some(3_600_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000));
        assert_eq!(parse_duration("15m"), Some(900_000_000));
        for bad in ["", "h", "10", "1x", "-1h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps_parse_and_print_utc() {
        let t = Timestamp::parse("2026-01-02T03:04:05+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-01-02T02:04:05Z");
        assert_eq!(
            Timestamp::parse("2026-01-02").unwrap().to_string(),
            "2026-01-02T00:00:00Z"
        );
        assert!(Timestamp::parse("yesterday").is_none());
    }

    #[test]
    fn names() {
        assert!(valid_name("alice"));
        assert!(valid_name("ci-bot@prod.example"));
        for bad in [
            "",
            "-x",
            "a b",
            "a/b",
            "a,b",
            &"x".repeat(65),
            "klsk_abc",
            "kltk_x",
            "a-klsk_b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
