//! A strict reader of canonical MessagePack (`ledger-format.md` §4). It accepts each value only
//! in the shortest form `rmp-serde` writes, and refuses every other type, width or length
//! form. Lengths are checked against the bytes present before anything is taken, so no
//! allocation is ever sized by an unchecked length.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("at byte {at}: expected {expected}, found {found}")]
    Type {
        at: usize,
        expected: &'static str,
        found: String,
    },
    #[error("at byte {at}: the body ends inside a value ({need} more bytes needed)")]
    Truncated { at: usize, need: usize },
    #[error("at byte {at}: a string is not valid UTF-8")]
    Utf8 { at: usize },
    /// A valid value in a longer form than the canonical one.
    #[error("at byte {at}: {what} is not in its shortest form")]
    NonCanonical { at: usize, what: &'static str },
}

/// Reads values from the front of a byte slice.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn describe(marker: u8) -> String {
    let family = match marker {
        0x00..=0x7f | 0xcc..=0xcf => "uint",
        0xe0..=0xff | 0xd0..=0xd3 => "int",
        0x80..=0x8f | 0xde | 0xdf => "map",
        0x90..=0x9f | 0xdc | 0xdd => "array",
        0xa0..=0xbf | 0xd9..=0xdb => "str",
        0xc4..=0xc6 => "bin",
        0xc0 => "nil",
        0xc2 | 0xc3 => "bool",
        0xca | 0xcb => "float",
        0xc7..=0xc9 | 0xd4..=0xd8 => "ext",
        _ => "an unused marker",
    };
    format!("{family} (0x{marker:02x})")
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.remaining() {
            return Err(WireError::Truncated {
                at: self.pos,
                need: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, WireError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// Reads the marker; `Err` names what was expected instead.
    fn marker(&mut self) -> Result<(usize, u8), WireError> {
        let at = self.pos;
        Ok((at, self.take(1)?[0]))
    }

    fn wrong<T>(at: usize, expected: &'static str, marker: u8) -> Result<T, WireError> {
        Err(WireError::Type {
            at,
            expected,
            found: describe(marker),
        })
    }

    /// A length or unsigned value after `marker` that must not fit a shorter form.
    fn sized(
        &mut self,
        at: usize,
        width: usize,
        min: u64,
        what: &'static str,
    ) -> Result<u64, WireError> {
        let v = self.be(width)?;
        if v < min {
            return Err(WireError::NonCanonical { at, what });
        }
        Ok(v)
    }

    /// An unsigned integer in its shortest unsigned form.
    pub fn uint(&mut self) -> Result<u64, WireError> {
        let (at, m) = self.marker()?;
        match m {
            0x00..=0x7f => Ok(u64::from(m)),
            0xcc => self.sized(at, 1, 0x80, "an integer"),
            0xcd => self.sized(at, 2, 0x100, "an integer"),
            0xce => self.sized(at, 4, 0x1_0000, "an integer"),
            0xcf => self.sized(at, 8, 0x1_0000_0000, "an integer"),
            // A signed form is never canonical for an unsigned field.
            0xd0..=0xd3 | 0xe0..=0xff => Self::wrong(at, "a non-negative integer", m),
            _ => Self::wrong(at, "an integer", m),
        }
    }

    /// A signed integer: non-negative values in unsigned forms, negative ones in the
    /// shortest signed form.
    pub fn int(&mut self) -> Result<i64, WireError> {
        let (at, m) = self.marker()?;
        let neg = |r: &mut Self, width: usize, below: i64| -> Result<i64, WireError> {
            let raw = r.be(width)?;
            let shift = 64 - 8 * width as u32;
            // Sign-extend the big-endian value.
            let v = ((raw << shift) as i64) >> shift;
            if v >= below {
                return Err(WireError::NonCanonical {
                    at,
                    what: "an integer",
                });
            }
            Ok(v)
        };
        match m {
            0xe0..=0xff => Ok(i64::from(m as i8)),
            0xd0 => neg(self, 1, -32),
            0xd1 => neg(self, 2, -128),
            0xd2 => neg(self, 4, -32768),
            0xd3 => neg(self, 8, -2_147_483_648),
            0x00..=0x7f | 0xcc..=0xcf => {
                self.pos = at;
                let v = self.uint()?;
                i64::try_from(v).map_err(|_| WireError::Type {
                    at,
                    expected: "an integer that fits in 64 signed bits",
                    found: format!("{v}"),
                })
            }
            _ => Self::wrong(at, "an integer", m),
        }
    }

    /// A UTF-8 string in its shortest str form.
    pub fn str(&mut self) -> Result<&'a str, WireError> {
        let (at, m) = self.marker()?;
        let len = match m {
            0xa0..=0xbf => u64::from(m & 0x1f),
            0xd9 => self.sized(at, 1, 32, "a string length")?,
            0xda => self.sized(at, 2, 0x100, "a string length")?,
            0xdb => self.sized(at, 4, 0x1_0000, "a string length")?,
            _ => return Self::wrong(at, "a string", m),
        };
        let bytes = self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
        std::str::from_utf8(bytes).map_err(|_| WireError::Utf8 { at })
    }

    /// A string, owned.
    pub fn string(&mut self) -> Result<String, WireError> {
        self.str().map(str::to_owned)
    }

    /// nil, or a string.
    pub fn opt_string(&mut self) -> Result<Option<String>, WireError> {
        if self.nil() {
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// A byte string of exactly `N` bytes (`N` < 256), as bin 8.
    pub fn bin<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (at, m) = self.marker()?;
        let len = match m {
            0xc4 => self.be(1)?,
            0xc5 => self.sized(at, 2, 0x100, "a byte string length")?,
            0xc6 => self.sized(at, 4, 0x1_0000, "a byte string length")?,
            _ => return Self::wrong(at, "a byte string (bin)", m),
        };
        if len != N as u64 {
            return Err(WireError::Type {
                at,
                expected: "a byte string of the field's length",
                found: format!("{len} bytes where {N} were expected"),
            });
        }
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn bool(&mut self) -> Result<bool, WireError> {
        match self.marker()? {
            (_, 0xc2) => Ok(false),
            (_, 0xc3) => Ok(true),
            (at, m) => Self::wrong(at, "a boolean", m),
        }
    }

    /// nil, consumed, if it comes next.
    pub fn nil(&mut self) -> bool {
        let nil = self.buf.get(self.pos) == Some(&0xc0);
        self.pos += usize::from(nil);
        nil
    }

    /// A container header (array or map) with exactly `n` entries, `n` < 16.
    fn container(
        &mut self,
        n: usize,
        fix: u8,
        wide: [u8; 2],
        what: &'static str,
    ) -> Result<(), WireError> {
        self.container_of(&[n], fix, wide, what).map(|_| ())
    }

    /// A container header whose entry count is one of `allowed` (each < 16); returns it.
    fn container_of(
        &mut self,
        allowed: &[usize],
        fix: u8,
        wide: [u8; 2],
        what: &'static str,
    ) -> Result<usize, WireError> {
        let (at, m) = self.marker()?;
        let len = if m & 0xf0 == fix {
            u64::from(m & 0x0f)
        } else if m == wide[0] {
            self.be(2)?
        } else if m == wide[1] {
            self.be(4)?
        } else {
            return Self::wrong(at, what, m);
        };
        let Some(&n) = allowed.iter().find(|&&n| n as u64 == len) else {
            let want: Vec<String> = allowed.iter().map(usize::to_string).collect();
            return Err(WireError::Type {
                at,
                expected: what,
                found: format!("{len} entries where {} were expected", want.join(" or ")),
            });
        };
        if m & 0xf0 != fix {
            return Err(WireError::NonCanonical { at, what });
        }
        Ok(n)
    }

    /// An array header of one of the `allowed` lengths; returns it.
    pub fn array_of(&mut self, allowed: &[usize]) -> Result<usize, WireError> {
        self.container_of(allowed, 0x90, [0xdc, 0xdd], "an array")
    }

    /// An array header of exactly `n` elements.
    pub fn array(&mut self, n: usize) -> Result<(), WireError> {
        self.container(n, 0x90, [0xdc, 0xdd], "an array")
    }

    /// A map header of exactly `n` entries.
    pub fn map(&mut self, n: usize) -> Result<(), WireError> {
        self.container(n, 0x80, [0xde, 0xdf], "a map")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value, read back from what rmp-serde writes, and a longer form refused.
    #[test]
    fn reads_what_rmp_serde_writes_and_refuses_longer_forms() {
        for v in [
            0u64,
            1,
            127,
            128,
            255,
            256,
            65535,
            65536,
            u32::MAX as u64,
            1 << 32,
            u64::MAX,
        ] {
            let b = rmp_serde::to_vec(&v).unwrap();
            let mut r = Reader::new(&b);
            assert_eq!(r.uint(), Ok(v));
            assert_eq!(r.remaining(), 0);
        }
        let ints = [
            0i64,
            5,
            127,
            128,
            255,
            256,
            65536,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            -2_147_483_648,
            -2_147_483_649,
            i64::MIN,
            i64::MAX,
        ];
        for v in ints {
            let b = rmp_serde::to_vec(&v).unwrap();
            assert_eq!(Reader::new(&b).int(), Ok(v), "{v}");
        }
        for n in [0usize, 31, 32, 255, 256, 70_000] {
            let s = "x".repeat(n);
            let b = rmp_serde::to_vec(&s).unwrap();
            assert_eq!(Reader::new(&b).str(), Ok(s.as_str()));
        }
        assert!(matches!(
            Reader::new(&[0xcd, 0, 5]).uint(),
            Err(WireError::NonCanonical { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xd0, 0xff]).int(),
            Err(WireError::NonCanonical { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xd0, 0x05]).int(),
            Err(WireError::NonCanonical { .. })
        ));
        assert!(matches!(
            Reader::new(b"\xd9\x01a").str(),
            Err(WireError::NonCanonical { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xdc, 0, 1, 1]).array(1),
            Err(WireError::NonCanonical { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).int(),
            Err(WireError::Type { .. })
        ));
        assert!(matches!(
            Reader::new(&[0xa2, 0xff, 0xfe]).str(),
            Err(WireError::Utf8 { .. })
        ));
    }

    #[test]
    fn lengths_past_the_end_are_refused_before_reading() {
        assert_eq!(
            Reader::new(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']).str(),
            Err(WireError::Truncated {
                at: 5,
                need: u32::MAX as usize - 1
            })
        );
        assert!(matches!(
            Reader::new(&[0xc4, 32, 1, 2]).bin::<32>(),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&[]).bool(),
            Err(WireError::Truncated { .. })
        ));
    }
}
