//! The ledger file's byte layout: a 16-byte header, then length-delimited frames.
//!
//! ```text
//! header: "KEYLEDGR" (8) | version u16 BE (2) | reserved, zero (6)
//! frame:  body_len u32 BE (4) | body (body_len bytes, MessagePack event) | signature (64)
//! ```
//! Invariant: the reader never allocates more than `MAX_BODY` bytes for a body,
//! whatever a length field says.

use std::io::{self, Read};

use thiserror::Error;

pub const MAGIC: [u8; 8] = *b"KEYLEDGR";
/// The version this keyledger writes for a new ledger; it reads 1 and 2 (ledger-format.md §1).
pub const VERSION: u16 = 2;
pub const OLDEST_VERSION: u16 = 1;
pub const HEADER_LEN: u64 = 16;
/// Largest body a frame may carry; a larger length field is a format error.
pub const MAX_BODY: u32 = 65_536;
pub const SIG_LEN: usize = 64;
pub const LEN_PREFIX: usize = 4;
/// Bytes a frame adds around its body.
pub const FRAME_OVERHEAD: u64 = (LEN_PREFIX + SIG_LEN) as u64;

/// The 16 header bytes for `VERSION`.
pub fn header_bytes() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_be_bytes());
    h
}

/// Encodes one frame around an already-encoded body.
pub fn frame_bytes(body: &[u8], sig: &[u8; SIG_LEN]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + FRAME_OVERHEAD as usize);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f.extend_from_slice(sig);
    f
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    #[error("file is empty: not a keyledger ledger (expected a 16-byte header)")]
    Empty,
    #[error("header is {have} bytes, expected 16: the file is truncated or not a keyledger ledger")]
    ShortHeader { have: usize },
    #[error("bad magic {found:?} at offset 0: not a keyledger ledger")]
    BadMagic { found: String },
    #[error(
        "format version {found} is not supported (this keyledger reads versions {OLDEST_VERSION} to {VERSION}); use a newer keyledger"
    )]
    UnsupportedVersion { found: u16 },
    #[error("reserved header bytes 10..16 are not zero: the header was altered")]
    ReservedNonZero,
    #[error(
        "torn frame at byte offset {offset}: {have} of {need} bytes present (an interrupted write); run `keyledger repair`"
    )]
    Torn { offset: u64, have: u64, need: u64 },
    #[error(
        "frame at byte offset {offset} declares a body of {len} bytes (allowed 1..={MAX_BODY}); the rest of the file cannot be framed"
    )]
    BadLength { offset: u64, len: u32 },
}

/// Checks the 16 header bytes; returns the format version.
pub fn check_header(h: &[u8]) -> Result<u16, FormatError> {
    if h.is_empty() {
        return Err(FormatError::Empty);
    }
    if h.len() < HEADER_LEN as usize {
        return Err(FormatError::ShortHeader { have: h.len() });
    }
    if h[..8] != MAGIC {
        return Err(FormatError::BadMagic {
            found: String::from_utf8_lossy(&h[..8])
                .escape_default()
                .to_string(),
        });
    }
    let version = u16::from_be_bytes([h[8], h[9]]);
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(FormatError::UnsupportedVersion { found: version });
    }
    if h[10..16].iter().any(|&b| b != 0) {
        return Err(FormatError::ReservedNonZero);
    }
    Ok(version)
}

/// One frame as stored. `body` is the exact bytes that are hashed.
#[derive(Debug, Clone)]
pub struct RawFrame {
    /// Byte offset of the frame's length prefix in the file.
    pub offset: u64,
    pub body: Vec<u8>,
    pub sig: [u8; SIG_LEN],
}

impl RawFrame {
    pub fn len(&self) -> u64 {
        self.body.len() as u64 + FRAME_OVERHEAD
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn end(&self) -> u64 {
        self.offset + self.len()
    }
}

#[derive(Debug, Error)]
pub enum ReadError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("reading the ledger: {0}")]
    Io(#[from] io::Error),
}

/// Streams frames from a reader positioned at the start of a ledger. Memory is bounded
/// by one frame. After a framing error it yields nothing more.
pub struct FrameReader<R> {
    r: R,
    offset: u64,
    done: bool,
    /// The header's version, when this reader read the header.
    version: Option<u16>,
}

/// Reads until `buf` is full or EOF; returns how many bytes were read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> FrameReader<R> {
    /// Reads and checks the header.
    pub fn new(mut r: R) -> Result<Self, ReadError> {
        let mut h = [0u8; HEADER_LEN as usize];
        let n = read_full(&mut r, &mut h)?;
        let version = check_header(&h[..n])?;
        Ok(FrameReader {
            r,
            offset: HEADER_LEN,
            done: false,
            version: Some(version),
        })
    }

    /// Resumes at a frame boundary `offset` of a reader already positioned there (no header).
    pub fn at(r: R, offset: u64) -> Self {
        FrameReader {
            r,
            offset,
            done: false,
            version: None,
        }
    }

    /// The header's format version, if this reader read the header (`new`, not `at`).
    pub fn version(&self) -> Option<u16> {
        self.version
    }

    /// Byte offset just past the last complete frame returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn read_frame(&mut self) -> Result<Option<RawFrame>, ReadError> {
        let start = self.offset;
        let mut len = [0u8; LEN_PREFIX];
        let n = read_full(&mut self.r, &mut len)?;
        if n == 0 {
            return Ok(None);
        }
        if n < LEN_PREFIX {
            return Err(FormatError::Torn {
                offset: start,
                have: n as u64,
                need: LEN_PREFIX as u64,
            }
            .into());
        }
        let body_len = u32::from_be_bytes(len);
        if body_len == 0 || body_len > MAX_BODY {
            return Err(FormatError::BadLength {
                offset: start,
                len: body_len,
            }
            .into());
        }
        let need = body_len as u64 + FRAME_OVERHEAD;
        let mut body = vec![0u8; body_len as usize];
        let got = read_full(&mut self.r, &mut body)?;
        let mut sig = [0u8; SIG_LEN];
        let got_sig = if got == body.len() {
            read_full(&mut self.r, &mut sig)?
        } else {
            0
        };
        let have = (LEN_PREFIX + got + got_sig) as u64;
        if have < need {
            return Err(FormatError::Torn {
                offset: start,
                have,
                need,
            }
            .into());
        }
        self.offset = start + need;
        Ok(Some(RawFrame {
            offset: start,
            body,
            sig,
        }))
    }
}

impl<R: Read> Iterator for FrameReader<R> {
    type Item = Result<RawFrame, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_frame() {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(frames: &[&[u8]]) -> Vec<u8> {
        let mut v = header_bytes().to_vec();
        for b in frames {
            v.extend(frame_bytes(b, &[7u8; 64]));
        }
        v
    }

    #[test]
    fn reads_frames_with_offsets() {
        let v = file(&[b"abc", b"de"]);
        let frames: Vec<_> = FrameReader::new(&v[..])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].offset, 16);
        assert_eq!(frames[1].offset, 16 + 4 + 3 + 64);
        assert_eq!(frames[1].body, b"de");
    }

    #[test]
    fn torn_tail_is_reported_at_its_offset() {
        let v = file(&[b"abc", b"de"]);
        for cut in 1..(4 + 2 + 64) {
            let t = &v[..v.len() - cut];
            let mut r = FrameReader::new(t).unwrap();
            assert!(r.next().unwrap().is_ok());
            match r.next() {
                Some(Err(ReadError::Format(FormatError::Torn { offset, .. }))) => {
                    assert_eq!(offset, 87)
                }
                other => panic!("cut {cut}: {other:?}"),
            }
            assert!(r.next().is_none());
        }
    }

    #[test]
    fn huge_length_is_refused_without_allocating() {
        let mut v = header_bytes().to_vec();
        v.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut r = FrameReader::new(&v[..]).unwrap();
        assert!(matches!(
            r.next(),
            Some(Err(ReadError::Format(FormatError::BadLength {
                offset: 16,
                ..
            })))
        ));
    }

    #[test]
    fn header_errors() {
        assert_eq!(check_header(b""), Err(FormatError::Empty));
        assert!(matches!(
            check_header(b"KEYLE"),
            Err(FormatError::ShortHeader { have: 5 })
        ));
        let mut h = header_bytes();
        for (v, verdict) in [
            (0, Err(FormatError::UnsupportedVersion { found: 0 })),
            (1, Ok(1)),
            (2, Ok(2)),
            (3, Err(FormatError::UnsupportedVersion { found: 3 })),
        ] {
            h[9] = v;
            assert_eq!(check_header(&h), verdict);
        }
        let mut h = header_bytes();
        h[0] = b'X';
        assert!(matches!(
            check_header(&h),
            Err(FormatError::BadMagic { .. })
        ));
        let mut h = header_bytes();
        h[15] = 1;
        assert_eq!(check_header(&h), Err(FormatError::ReservedNonZero));
    }
}
