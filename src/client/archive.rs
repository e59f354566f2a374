//! The WORM archive (issue 16): a ledger's frames as sealed, contiguous segments in an S3
//! bucket with Object Lock, each under COMPLIANCE retention with a signed checkpoint of the
//! events up to its end (ledger-format.md §12). Uploading is idempotent and resumable: what
//! is archived is read from the bucket itself, checked against the ledger, and continued.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;
use std::path::Path;

use thiserror::Error;

use crate::core::format::HEADER_LEN;
use crate::core::merkle::Sha;
use crate::core::signing::SigningKey;
use crate::core::types::Timestamp;
use crate::evidence::checkpoint::{self, Checkpoint};
use crate::storage::cache::Cache;
use crate::storage::store::{self, StoreError};

use super::s3::{Bucket, S3Error};

#[derive(Debug, Error)]
pub enum ArchiveError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}: give s3://BUCKET/PREFIX (and the endpoint as --endpoint URL or ?endpoint=URL)")]
    Url(String),
    #[error(
        "bucket {0} does not have Object Lock enabled, so nothing archived there would be write-once: create the bucket with Object Lock (x-amz-bucket-object-lock-enabled: true)"
    )]
    NoObjectLock(String),
    #[error("{key}: {why}")]
    Layout { key: String, why: String },
    #[error("the archive is not this ledger's: {why}. Archive this ledger under another prefix")]
    Diverged { why: String },
    #[error(
        "the archive lacks seqs {first}-{last} before later segments; it cannot be continued. Archive under a new prefix"
    )]
    Gap { first: u64, last: u64 },
    #[error("{0}")]
    Signer(String),
}

/// `s3://BUCKET/PREFIX[?endpoint=URL]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
}

/// Whether `ledger` names an archive.
pub fn is_url(ledger: &Path) -> bool {
    ledger.to_str().is_some_and(|s| s.starts_with("s3://"))
}

impl Location {
    pub fn parse(url: &str) -> Result<Location, ArchiveError> {
        let bad = |why: &str| ArchiveError::Url(format!("{url:?}: {why}"));
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("not an s3:// URL"))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut endpoint = None;
        for p in query.into_iter().flat_map(|q| q.split('&')) {
            match p.strip_prefix("endpoint=") {
                Some(e) if e.starts_with("http://") || e.starts_with("https://") => {
                    endpoint = Some(e.to_owned())
                }
                _ => return Err(bad("the only parameter is endpoint=http(s)://HOST:PORT")),
            }
        }
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let ok_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !ok_bucket {
            return Err(bad(
                "a bucket name is 3-63 lower-case letters, digits, '-' or '.'",
            ));
        }
        let prefix = prefix.trim_end_matches('/');
        let ok_prefix = prefix.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
        if !prefix.is_empty() && !ok_prefix {
            return Err(bad(
                "a prefix is /-separated names of letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint,
        })
    }

    fn under(&self, rest: &str) -> String {
        match self.prefix.is_empty() {
            true => rest.to_owned(),
            false => format!("{}/{rest}", self.prefix),
        }
    }

    /// The key of the segment holding seqs `first..=last` (§12).
    pub fn segment_key(&self, first: u64, last: u64) -> String {
        self.under(&format!("segments/{first:020}-{last:020}.frames"))
    }

    /// The key of the checkpoint of the first `last + 1` events (§12).
    pub fn checkpoint_key(&self, last: u64) -> String {
        self.under(&format!("checkpoints/{last:020}.checkpoint"))
    }

    pub fn open(&self) -> Result<Bucket, ArchiveError> {
        Ok(Bucket::open(&self.bucket, self.endpoint.as_deref())?)
    }
}

/// A segment as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub first: u64,
    pub last: u64,
    pub size: u64,
}

/// One archived object: the first version written (the sealed one; a later version or a
/// delete marker over it is someone's attempt to change it), and whether there are others.
#[derive(Debug, Clone)]
struct Sealed {
    key: String,
    version: String,
    size: u64,
    rewritten: bool,
}

/// What the bucket holds under the prefix: segments by first seq, checkpoints by last seq.
struct Listing {
    segments: BTreeMap<u64, (Segment, Sealed)>,
    checkpoints: HashMap<u64, Sealed>,
    /// Keys under segments/ or checkpoints/ that are not names of either: someone else's
    /// objects, ignored when archiving and reported by verify.
    junk: Vec<String>,
}

/// A seq as the archive names it: exactly 20 decimal digits, at most 2^62 (no ledger
/// comes near it, and every sum on it stays in range).
fn seq_name(s: &str) -> Option<u64> {
    (s.len() == 20 && s.bytes().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
        .filter(|&n: &u64| n <= 1 << 62)
}

fn seq_pair(name: &str) -> Option<(u64, u64)> {
    let (a, b) = name.strip_suffix(".frames")?.split_once('-')?;
    seq_name(a).zip(seq_name(b))
}

fn list(bucket: &mut Bucket, at: &Location) -> Result<Listing, ArchiveError> {
    // S3 lists a key's versions newest first: the last data version listed is the first
    // written.
    let mut sealed: BTreeMap<String, Sealed> = BTreeMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for v in bucket.versions(&at.under(""))? {
        *seen.entry(v.key.clone()).or_default() += 1;
        if !v.delete_marker {
            sealed.insert(
                v.key.clone(),
                Sealed {
                    key: v.key,
                    version: v.version_id,
                    size: v.size,
                    rewritten: false,
                },
            );
        }
    }
    let mut segments = BTreeMap::new();
    let mut checkpoints = HashMap::new();
    let mut junk = Vec::new();
    let (seg_dir, cp_dir) = (at.under("segments/"), at.under("checkpoints/"));
    for (key, mut o) in sealed {
        o.rewritten = seen.get(&key).is_some_and(|&n| n > 1);
        let layout = |why: &str| ArchiveError::Layout {
            key: key.clone(),
            why: why.into(),
        };
        if let Some(name) = key.strip_prefix(&seg_dir) {
            let Some((first, last)) = seq_pair(name).filter(|(f, l)| f <= l) else {
                junk.push(key);
                continue;
            };
            let seg = Segment {
                first,
                last,
                size: o.size,
            };
            if segments.insert(first, (seg, o)).is_some() {
                return Err(layout("two segments begin at the same seq"));
            }
        } else if let Some(name) = key.strip_prefix(&cp_dir) {
            match name.strip_suffix(".checkpoint").and_then(seq_name) {
                Some(last) => {
                    checkpoints.insert(last, o);
                }
                None => junk.push(key),
            }
        }
    }
    Ok(Listing {
        segments,
        checkpoints,
        junk,
    })
}

/// Seq ranges not covered by `segments`, up to the last segment's end.
fn gaps(segments: &BTreeMap<u64, (Segment, Sealed)>) -> Result<Vec<(u64, u64)>, ArchiveError> {
    let mut next = 0;
    let mut out = Vec::new();
    for (seg, o) in segments.values() {
        if seg.first < next {
            return Err(ArchiveError::Layout {
                key: o.key.clone(),
                why: format!(
                    "it overlaps the segment before, which ends at seq {}",
                    next - 1
                ),
            });
        }
        if seg.first > next {
            out.push((next, seg.first - 1));
        }
        next = seg.last + 1;
    }
    Ok(out)
}

/// What `archive` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Archived {
    /// Segments uploaded now, as (first, last) seqs.
    pub uploaded: Vec<(u64, u64)>,
    /// Checkpoints uploaded now for segments archived before (a run cut between the two).
    pub checkpoints_completed: Vec<u64>,
    /// The archive covers seqs 0 to this, inclusive.
    pub covers_to: u64,
    pub retain_until: String,
}

/// Frame offsets and the roots wanted, from one verified pass over the ledger.
struct Scan {
    offsets: Vec<u64>,
    end: u64,
    roots: HashMap<u64, Sha>,
    origin: String,
}

fn scan(ledger: &Path, cache: &Cache, want: impl Fn(u64) -> bool) -> Result<Scan, ArchiveError> {
    let mut offsets = Vec::new();
    let mut roots = HashMap::new();
    let mut origin = None;
    let r = store::replay(ledger, cache, None, |seen| {
        offsets.push(seen.frame.offset);
        if want(seen.event.seq) {
            roots.insert(seen.event.seq, seen.tree.root());
        }
        if origin.is_none() {
            origin = seen.state.ledger_id.map(|id| checkpoint::origin(&id));
        }
    })?;
    if let Some(why) = r.diverged {
        return Err(StoreError::Diverged {
            reason: why,
            files: cache.entry_files(ledger),
        }
        .into());
    }
    let end = r.head.end;
    Ok(Scan {
        offsets,
        end,
        roots,
        origin: origin.unwrap_or_default(),
    })
}

/// At most this many bytes in one segment (and so in one object read back).
pub const MAX_SEGMENT_BYTES: u64 = 256 << 20;

/// Uploads what the archive at `at` lacks of the ledger at `ledger` (verified as it is
/// read): segments of at most `segment_events` events (and `MAX_SEGMENT_BYTES`), each
/// with its checkpoint signed by `key`, retained in COMPLIANCE mode until `until`. Every
/// object already there must be sealed (one version, COMPLIANCE) and this ledger's: each
/// segment's bytes are compared with the ledger's, each checkpoint's size and root with
/// its tree; anything else refuses the run, so nothing is ever signed over what someone
/// else put there.
pub fn archive(
    at: &Location,
    ledger: &Path,
    cache: &Cache,
    key: &SigningKey,
    until: Timestamp,
    segment_events: u64,
) -> Result<Archived, ArchiveError> {
    let (v, _) = store::head(ledger, cache)?;
    v.state.actor_of(&key.public()).map_err(|e| {
        ArchiveError::Signer(format!("the key that signs the archive's checkpoints {e}"))
    })?;
    let mut bucket = at.open()?;
    if !bucket.object_lock_enabled()? {
        return Err(ArchiveError::NoObjectLock(at.bucket.clone()));
    }
    let listing = list(&mut bucket, at)?;
    if let Some(&(first, last)) = gaps(&listing.segments)?.first() {
        return Err(ArchiveError::Gap { first, last });
    }
    let head = v.head.seq;
    let done = listing.segments.values().last().map(|(s, _)| s.last);
    if let Some(d) = done.filter(|&d| d > head) {
        return Err(ArchiveError::Diverged {
            why: format!("it holds seqs up to {d}, past this ledger's head at seq {head}"),
        });
    }
    // One pass: every frame's offset and every tree root (32 bytes per event).
    let s = scan(ledger, cache, |_| true)?;
    let events = s.offsets.len() as u64;
    let offset = |seq: u64| -> u64 {
        match seq {
            0 => 0,
            _ => s.offsets.get(seq as usize).copied().unwrap_or(s.end),
        }
    };
    let root = |seq: u64| {
        s.roots
            .get(&seq)
            .copied()
            .ok_or_else(|| ArchiveError::Diverged {
                why: format!("this ledger has no event {seq} (it changed while being archived)"),
            })
    };
    let file = std::fs::File::open(ledger).map_err(StoreError::io(ledger, "open"))?;
    let read = |from: u64, to: u64| -> Result<Vec<u8>, ArchiveError> {
        let mut b = vec![0u8; to.saturating_sub(from) as usize];
        file.read_exact_at(&mut b, from)
            .map_err(StoreError::io(ledger, "read"))?;
        Ok(b)
    };
    let foreign = |key: &str, why: String| ArchiveError::Diverged {
        why: format!("{key} {why}"),
    };
    // What is there must be sealed and this ledger's.
    let checked = |bucket: &mut Bucket, o: &Sealed| -> Result<(), ArchiveError> {
        if o.rewritten {
            return Err(foreign(
                &o.key,
                "was written again or deleted after it was sealed".into(),
            ));
        }
        match bucket.retention(&o.key, &o.version)? {
            Some((mode, _)) if mode == "COMPLIANCE" => Ok(()),
            _ => Err(foreign(&o.key, "is not under COMPLIANCE retention".into())),
        }
    };
    let mut completed = Vec::new();
    let mut lacking = Vec::new();
    for (seg, o) in listing.segments.values() {
        if seg.last >= events {
            return Err(foreign(
                &o.key,
                format!("holds seqs past this ledger's {events} events"),
            ));
        }
        checked(&mut bucket, o)?;
        let theirs = bucket.get(&o.key, Some(&o.version))?.unwrap_or_default();
        if theirs != read(offset(seg.first), offset(seg.last + 1))? {
            return Err(foreign(&o.key, "holds other bytes than this ledger".into()));
        }
        match listing.checkpoints.get(&seg.last) {
            None => lacking.push(seg.last),
            Some(c) => {
                checked(&mut bucket, c)?;
                let note = bucket.get(&c.key, Some(&c.version))?.unwrap_or_default();
                let theirs = String::from_utf8(note)
                    .ok()
                    .and_then(|n| Checkpoint::parse(&n).ok())
                    .map(|(cp, _, _)| (cp.origin, cp.size, cp.root));
                if theirs != Some((s.origin.clone(), seg.last + 1, root(seg.last)?)) {
                    return Err(foreign(
                        &c.key,
                        format!(
                            "is not a checkpoint of this ledger's first {} events",
                            seg.last + 1
                        ),
                    ));
                }
            }
        }
    }
    let put = |bucket: &mut Bucket, key: String, body: Vec<u8>| -> Result<(), ArchiveError> {
        if bucket.put_locked(&key, body.clone(), until)? {
            return Ok(());
        }
        // Already there (a run cut short, or another archiver): sealed, and these bytes.
        let listed = list(bucket, at)?;
        let o = listed
            .segments
            .values()
            .map(|(_, o)| o)
            .chain(listed.checkpoints.values())
            .find(|o| o.key == key)
            .cloned()
            .ok_or_else(|| foreign(&key, "was refused as existing but is not listed".into()))?;
        checked(bucket, &o)?;
        match bucket.get(&key, Some(&o.version))? {
            Some(b) if b == body => Ok(()),
            _ => Err(foreign(&key, "already holds other bytes".into())),
        }
    };
    let note = |last: u64| -> Result<Vec<u8>, ArchiveError> {
        Ok(Checkpoint {
            origin: s.origin.clone(),
            size: last + 1,
            root: root(last)?,
        }
        .sign(key)
        .into_bytes())
    };
    for &last in &lacking {
        put(&mut bucket, at.checkpoint_key(last), note(last)?)?;
        completed.push(last);
    }
    let mut plan = Vec::new();
    let mut first = done.map_or(0, |d| d + 1);
    while first < events {
        let mut last = first;
        while last + 1 < events
            && last + 1 - first < segment_events.max(1)
            && offset(last + 2) - offset(first) <= MAX_SEGMENT_BYTES
        {
            last += 1;
        }
        plan.push((first, last));
        first = last + 1;
    }
    for &(first, last) in &plan {
        let body = read(offset(first), offset(last + 1))?;
        put(&mut bucket, at.segment_key(first, last), body)?;
        put(&mut bucket, at.checkpoint_key(last), note(last)?)?;
    }
    Ok(Archived {
        uploaded: plan,
        checkpoints_completed: completed,
        covers_to: events.saturating_sub(1),
        retain_until: until.to_string(),
    })
}

/// What an archive holds, as rebuilt into a ledger file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Rebuilt {
    /// (first, last) seqs of each segment, in order.
    pub segments: Vec<(u64, u64)>,
    /// Seq ranges missing before the last segment; the rebuilt file stops before the first.
    pub missing: Vec<(u64, u64)>,
    /// The rebuilt file holds seqs 0 to this (none if segment 0 is missing).
    pub rebuilt_to: Option<u64>,
    /// Segments (by last seq) that have no checkpoint.
    pub without_checkpoint: Vec<u64>,
    /// Objects not under COMPLIANCE retention (anyone with the right could change them).
    pub not_locked: Vec<String>,
    /// Objects written again or hidden by a delete marker after they were sealed (the
    /// sealed first version is what was read).
    pub rewritten: Vec<String>,
    /// Keys under segments/ or checkpoints/ that name neither.
    pub junk: Vec<String>,
    /// Every checkpoint note, to be checked against the rebuilt ledger.
    #[serde(skip)]
    pub checkpoints: Vec<Vec<u8>>,
}

/// The number of frames in `bytes` (a segment; the first begins with the file header), or
/// why they are not whole frames.
fn count_frames(bytes: &[u8], first: u64) -> Result<u64, String> {
    let mut at = 0usize;
    if first == 0 {
        if bytes.len() < HEADER_LEN as usize {
            return Err("the first segment does not begin with the file header".into());
        }
        at = HEADER_LEN as usize;
    }
    let mut n = 0;
    while at < bytes.len() {
        let len = bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or("it ends inside a frame's length")?;
        at = at
            .checked_add(4 + len + 64)
            .filter(|&e| e <= bytes.len())
            .ok_or("it ends inside a frame")?;
        n += 1;
    }
    Ok(n)
}

/// Downloads the archive at `at` into the new file `out`: the segments from seq 0 up to
/// the first missing one, each checked to hold exactly the frames its name says; and
/// every checkpoint and each object's retention, for the caller to check.
pub fn rebuild(at: &Location, out: &Path) -> Result<Rebuilt, ArchiveError> {
    let mut bucket = at.open()?;
    let listing = list(&mut bucket, at)?;
    let mut r = Rebuilt {
        missing: gaps(&listing.segments)?,
        junk: listing.junk.clone(),
        ..Rebuilt::default()
    };
    let _ = std::fs::remove_file(out);
    crate::storage::files::create_private_parent(out)
        .map_err(StoreError::io(out, "create its directory"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(StoreError::io(out, "create"))?;
    let mut contiguous = true;
    let mut next = 0;
    for (seg, o) in listing.segments.values() {
        let key = &o.key;
        r.segments.push((seg.first, seg.last));
        contiguous &= seg.first == next;
        next = seg.last + 1;
        if !listing.checkpoints.contains_key(&seg.last) {
            r.without_checkpoint.push(seg.last);
        }
        if !contiguous {
            continue;
        }
        let bytes = bucket
            .get(key, Some(&o.version))?
            .ok_or_else(|| ArchiveError::Layout {
                key: key.clone(),
                why: "listed but not found".into(),
            })?;
        let layout = |why: String| ArchiveError::Layout {
            key: key.clone(),
            why,
        };
        let n = count_frames(&bytes, seg.first).map_err(layout)?;
        if n != seg.last - seg.first + 1 {
            return Err(layout(format!(
                "it holds {n} frames, not the {} its name says",
                seg.last - seg.first + 1
            )));
        }
        std::io::Write::write_all(&mut file, &bytes).map_err(StoreError::io(out, "write"))?;
        r.rebuilt_to = Some(seg.last);
    }
    file.sync_data().map_err(StoreError::io(out, "sync"))?;
    let mut all: Vec<&Sealed> = listing.segments.values().map(|(_, o)| o).collect();
    let mut cps: Vec<(&u64, &Sealed)> = listing.checkpoints.iter().collect();
    cps.sort_by_key(|c| c.0);
    for (_, o) in &cps {
        if let Some(note) = bucket.get(&o.key, Some(&o.version))? {
            r.checkpoints.push(note);
        }
        all.push(o);
    }
    for o in all {
        match bucket.retention(&o.key, &o.version)? {
            Some((mode, _)) if mode == "COMPLIANCE" => {}
            _ => r.not_locked.push(o.key.clone()),
        }
        if o.rewritten {
            r.rewritten.push(o.key.clone());
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_names() {
        let l = Location::parse("s3://acme-audit/keyledger/prod?endpoint=http://127.0.0.1:9000")
            .unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("acme-audit", "keyledger/prod")
        );
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            l.segment_key(0, 99),
            "keyledger/prod/segments/00000000000000000000-00000000000000000099.frames"
        );
        assert_eq!(
            l.checkpoint_key(99),
            "keyledger/prod/checkpoints/00000000000000000099.checkpoint"
        );
        for bad in [
            "s3://A/x",
            "s3://ab/x",
            "s3://bucket/../x",
            "s3://bucket/a//b",
            "s3://bucket/x?region=eu",
            "s3://bucket/x?endpoint=ftp://h",
            "http://bucket/x",
        ] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            seq_pair("00000000000000000001-00000000000000000002.frames"),
            Some((1, 2))
        );
        assert_eq!(seq_pair("1-2.frames"), None);
        assert_eq!(
            seq_pair("+0000000000000000001-00000000000000000002.frames"),
            None
        );
    }

    #[test]
    fn frames_are_counted_by_their_lengths() {
        let frame = |len: u32| {
            let mut f = len.to_be_bytes().to_vec();
            f.extend(vec![0u8; len as usize + 64]);
            f
        };
        let mut seg = vec![0u8; HEADER_LEN as usize];
        seg.extend(frame(3));
        seg.extend(frame(5));
        assert_eq!(count_frames(&seg, 0), Ok(2));
        assert_eq!(count_frames(&seg[HEADER_LEN as usize..], 7), Ok(2));
        assert!(count_frames(&seg[..seg.len() - 1], 0).is_err());
        assert!(count_frames(&[0, 0], 7).is_err());
    }
}
