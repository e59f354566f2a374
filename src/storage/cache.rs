//! A cache of verified state that only the user who runs keyledger can have written (L8).
//!
//! After a pass has verified a ledger up to some head, the folded state, the head, the
//! Merkle frontier and, per access key, where its events lie are saved in the user's own
//! cache directory, authenticated with a key that never leaves it:
//!
//! ```text
//! dir:   $KEYLEDGER_CACHE_DIR, else $XDG_CACHE_HOME/keyledger, else $HOME/.cache/keyledger
//!        a directory owned by the user, writable by no one else (created 0700)
//! key:   <dir>/cache.key        32 random bytes as hex, mode 0600, owned by the user
//! entry: <dir>/<blake3(absolute ledger path), 32 hex>.verified
//!        "KLCACHE1" | MessagePack body | tag (32 bytes)
//!        tag = blake3::keyed_hash(key, "KLCACHE1" || absolute path || 0x00 || body)
//! head:  <same name>.head: "KLHEAD01" | body length (u16) | MessagePack (genesis, head,
//!        head offset) | tag, as above: the furthest head this user verified or appended,
//!        written in place after every append, only ever forward (under a lock on the file)
//! ```
//!
//! The head note makes a cut sticky: if the ledger no longer holds a head this user
//! verified, reads warn and appends refuse, until the user removes these two files.
//!
//! An entry is a claim "this user verified these events", never the truth about the file:
//! the reader re-reads the head frame it names and checks its hash, and verifies every
//! frame after it (`store::head`). Anything that does not check out, or a cache that cannot
//! be used safely, only means verifying from the start.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::chain::Head;
use crate::core::merkle::TreeBuilder;
use crate::core::state::State;
use crate::core::types::{Bytes, Hash32};
use crate::storage::files;
use crate::storage::pass::{TornTail, Trust, Witness};

const MAGIC: &[u8; 8] = b"KLCACHE1";
const HEAD_MAGIC: &[u8; 8] = b"KLHEAD01";
const TRAIL_CONTEXT: &str = "keyledger 2026-11-24 key trail v1";
/// A cache entry larger than this is not one of ours.
const MAX_ENTRY: u64 = 1 << 32;

/// Byte offsets of frames, stored packed (8 bytes each, little-endian).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offsets(pub Vec<u64>);

impl Serialize for Offsets {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|o| o.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Offsets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Offsets;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("packed u64 offsets")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Offsets, E> {
                if !v.len().is_multiple_of(8) {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(Offsets(
                    v.chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                        .collect(),
                ))
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Where one access key's events lie, and a digest of their hashes in order, so that
/// frames re-read at those offsets can be checked to be the ones verified.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyTrail {
    pub offsets: Offsets,
    pub digest: Hash32,
}

impl KeyTrail {
    pub fn push(&mut self, offset: u64, hash: &Hash32) {
        self.offsets.0.push(offset);
        self.digest = trail_digest(&self.digest, hash);
    }
}

/// The next digest of a key trail: BLAKE3-derive-key(TRAIL_CONTEXT, digest || hash).
pub fn trail_digest(digest: &Hash32, hash: &Hash32) -> Hash32 {
    let mut h = blake3::Hasher::new_derive_key(TRAIL_CONTEXT);
    h.update(&digest.0);
    h.update(&hash.0);
    Bytes(*h.finalize().as_bytes())
}

/// A ledger verified up to `head`: what reads and appends decide on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verified {
    pub state: State,
    pub head: Head,
    /// Byte offset of the head frame.
    pub head_offset: u64,
    pub tree: TreeBuilder,
    pub trails: BTreeMap<String, KeyTrail>,
    /// A torn tail after the head (never cached: it is re-read every time).
    #[serde(skip)]
    pub torn: Option<TornTail>,
}

impl Verified {
    /// Records an event at `offset` that names access key `key_id`.
    pub fn note_key_event(&mut self, key_id: &str, offset: u64, hash: &Hash32) {
        note_key_event(&mut self.trails, key_id, offset, hash);
    }
}

/// As `Verified::note_key_event`, on the trails alone.
pub fn note_key_event(
    trails: &mut BTreeMap<String, KeyTrail>,
    key_id: &str,
    offset: u64,
    hash: &Hash32,
) {
    match trails.get_mut(key_id) {
        Some(t) => t.push(offset, hash),
        None => {
            let mut t = KeyTrail::default();
            t.push(offset, hash);
            trails.insert(key_id.to_owned(), t);
        }
    }
}

/// The head note of one ledger, open for writing in place.
pub struct HeadNote {
    file: std::fs::File,
    key: [u8; 32],
    id: Vec<u8>,
}

impl HeadNote {
    /// Records `head` (at `head_offset`) of the ledger whose genesis hash is `genesis`, if
    /// it is further than the head noted: the note only moves forward, and never to
    /// another ledger (that takes `Cache::start_over`). An exclusive lock on the note (a
    /// private file: no one else can open it) keeps this user's concurrent commands from
    /// writing an older head over a newer one.
    pub fn write(&self, genesis: Hash32, head: &Head, head_offset: u64) -> io::Result<()> {
        self.file.lock()?;
        let written = match self.noted() {
            Some((g, _, _)) if g != genesis => Err(io::Error::other(
                "the head note is of another ledger at this path",
            )),
            Some((_, h, _)) if h.seq >= head.seq => Ok(()),
            _ => std::os::unix::fs::FileExt::write_all_at(
                &self.file,
                &Cache::head_bytes(&self.key, &self.id, genesis, head, head_offset),
                0,
            ),
        };
        let _ = self.file.unlock();
        written
    }

    fn noted(&self) -> Option<(Hash32, Head, u64)> {
        let mut bytes = [0u8; 512];
        let n = std::os::unix::fs::FileExt::read_at(&self.file, &mut bytes, 0).unwrap_or(0);
        Cache::parse_head(&self.key, &self.id, &bytes[..n])
    }
}

/// The user's cache directory, or none (then every command verifies from the start).
#[derive(Debug, Clone, Default)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// No cache: every read verifies the whole ledger.
    pub fn none() -> Self {
        Cache { dir: None }
    }

    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Cache {
            dir: Some(dir.into()),
        }
    }

    /// `$KEYLEDGER_CACHE_DIR`, else `$XDG_CACHE_HOME/keyledger`, else `$HOME/.cache/keyledger`.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("KEYLEDGER_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("keyledger")))
            .or_else(|| var("HOME").map(|h| h.join(".cache").join("keyledger")))
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The directory, created 0700 if missing, if it is safe: a directory owned by this user
    /// that no one else can write, reached through directories no one else can change (each
    /// owned by root or this user, and writable by no one else unless sticky) and through no
    /// link anyone else owns, as ssh requires of its files. Otherwise there is no cache.
    fn safe_dir(&self) -> Option<&Path> {
        self.check_dir().ok()
    }

    /// Why the cache directory cannot be used, if it cannot (see `safe_dir`).
    pub fn check_dir(&self) -> Result<&Path, String> {
        let dir = self.dir.as_deref().ok_or("no cache directory is set")?;
        let uid = files::effective_uid();
        let trusted_owner = |m: &std::fs::Metadata| m.uid() == 0 || m.uid() == uid;
        let given = std::path::absolute(dir).map_err(|e| e.to_string())?;
        let unsafe_at = |p: &Path, why: &str| format!("{}: {why}", p.display());
        // Every existing component on the way: links owned by root or this user only;
        // directories owned by root or this user and writable by no one else (unless
        // sticky). Checked before anything is created there.
        for prefix in given.ancestors().collect::<Vec<_>>().into_iter().rev() {
            let Ok(m) = std::fs::symlink_metadata(prefix) else {
                continue;
            };
            if m.file_type().is_symlink() && !trusted_owner(&m) {
                return Err(unsafe_at(prefix, "a link owned by another user"));
            }
            if let Ok(real) = std::fs::canonicalize(prefix) {
                for ancestor in real.ancestors() {
                    let m = std::fs::metadata(ancestor).map_err(|e| e.to_string())?;
                    let others_write = m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0;
                    if !trusted_owner(&m) || others_write {
                        return Err(unsafe_at(
                            ancestor,
                            "owned by another user, or writable by others",
                        ));
                    }
                }
            }
        }
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| unsafe_at(dir, &e.to_string()))?;
        }
        let m = std::fs::metadata(dir).map_err(|e| unsafe_at(dir, &e.to_string()))?;
        let mine = uid == m.uid();
        if !(m.is_dir() && mine && m.mode() & 0o022 == 0) {
            return Err(unsafe_at(
                dir,
                "not a directory of this user's that no one else can write",
            ));
        }
        Ok(dir)
    }

    /// The MAC key, created on first use.
    fn key(&self) -> Option<[u8; 32]> {
        let dir = self.safe_dir()?;
        let path = dir.join("cache.key");
        let read = || -> Option<[u8; 32]> {
            let f = files::open_regular_nofollow(&path, false).ok()?;
            let m = f.metadata().ok()?;
            let mine = files::effective_uid() == m.uid();
            if !mine || m.mode() & 0o077 != 0 {
                return None;
            }
            let text = files::read_file(f, &path, 200).ok()?;
            crate::core::types::from_hex::<32>(std::str::from_utf8(&text).ok()?.trim())
        };
        if let Some(k) = read() {
            return Some(k);
        }
        let mut k = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
        match files::write_new(
            &path,
            format!("{}\n", crate::core::types::to_hex(&k)).as_bytes(),
            0o600,
        ) {
            Ok(()) => Some(k),
            // Another process made it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read(),
            Err(_) => None,
        }
    }

    /// The entry of `ledger`, named by its absolute path as given (links not resolved: a
    /// link swapped for another file at that path is still the path this user verified).
    fn entry(&self, ledger: &Path) -> Option<(PathBuf, Vec<u8>)> {
        let dir = self.dir.as_deref()?;
        let absolute = std::path::absolute(ledger).ok()?;
        let id = absolute.as_os_str().as_encoded_bytes().to_vec();
        let name = blake3::hash(&id).to_hex()[..32].to_owned();
        Some((dir.join(format!("{name}.verified")), id))
    }

    fn tag_with(key: &[u8; 32], magic: &[u8; 8], id: &[u8], body: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(magic);
        h.update(id);
        h.update(&[0]);
        h.update(body);
        *h.finalize().as_bytes()
    }

    /// The verified state saved for `ledger`, if there is one this user wrote; else why not.
    pub fn load(&self, ledger: &Path) -> Result<Verified, String> {
        let key = self.key().ok_or("no usable cache directory")?;
        let (path, id) = self.entry(ledger).ok_or("no cache entry")?;
        let f = files::open_regular_nofollow(&path, false).map_err(|e| e.to_string())?;
        let bytes = files::read_file(f, &path, MAX_ENTRY).map_err(|e| e.to_string())?;
        let body = Self::open_tagged(&key, &id, MAGIC, &bytes)
            .ok_or("the cache entry was not written by this user (its tag does not match)")?;
        rmp_serde::from_slice(body).map_err(|e| format!("the cache entry does not decode ({e})"))
    }

    /// The last head this user verified or appended for `ledger` (its genesis, the head and
    /// its offset), which may be ahead of the saved state: a small note written after every
    /// append, so that a cut of verified events is noticed even before the state is saved.
    pub fn load_head(&self, ledger: &Path) -> Option<(Hash32, Head, u64)> {
        let key = self.key()?;
        let (path, id) = self.entry(ledger)?;
        let path = path.with_extension("head");
        let f = files::open_regular_nofollow(&path, false).ok()?;
        let bytes = files::read_file(f, &path, 4096).ok()?;
        Self::parse_head(&key, &id, &bytes)
    }

    /// "KLHEAD01" | body length (u16 BE) | body | tag, then anything (an older, longer note
    /// overwritten in place): the note, if this user's.
    fn parse_head(key: &[u8; 32], id: &[u8], bytes: &[u8]) -> Option<(Hash32, Head, u64)> {
        let n = u16::from_be_bytes(bytes.get(8..10)?.try_into().ok()?) as usize;
        let used = bytes.get(..10 + n + 32)?;
        let (head, tag) = used.split_at(10 + n);
        if &head[..8] != HEAD_MAGIC {
            return None;
        }
        let body = &head[10..];
        let want = blake3::Hash::from(Self::tag_with(key, HEAD_MAGIC, id, body));
        if want != blake3::Hash::from_bytes(tag.try_into().ok()?) {
            return None;
        }
        rmp_serde::from_slice(body).ok()
    }

    fn head_bytes(key: &[u8; 32], id: &[u8], genesis: Hash32, head: &Head, offset: u64) -> Vec<u8> {
        let body = rmp_serde::to_vec(&(genesis, head, offset)).expect("a head encodes");
        let mut data = HEAD_MAGIC.to_vec();
        data.extend_from_slice(&(body.len() as u16).to_be_bytes());
        data.extend_from_slice(&body);
        data.extend_from_slice(&Self::tag_with(key, HEAD_MAGIC, id, &body));
        data
    }

    /// Records `head` (at `head_offset`) as the last head this user verified for the ledger
    /// at `ledger` whose genesis hash is `genesis`. (The note is always written in place, so
    /// a `HeadNote` held open by a writer stays the note.)
    pub fn save_head(
        &self,
        ledger: &Path,
        genesis: Hash32,
        head: &Head,
        head_offset: u64,
    ) -> io::Result<()> {
        self.head_note(ledger)
            .ok_or_else(|| io::Error::other("no usable cache directory"))?
            .write(genesis, head, head_offset)
    }

    /// The head note of `ledger`, open for writing in place after each append (a rename per
    /// append would cost as much as the append's own fdatasync).
    pub fn head_note(&self, ledger: &Path) -> Option<HeadNote> {
        let key = self.key()?;
        let (path, id) = self.entry(ledger)?;
        let path = path.with_extension("head");
        let file = match files::open_regular_nofollow(&path, true) {
            Ok(f) => f,
            Err(_) => files::create_new(&path, 0o600)
                .or_else(|_| files::open_regular_nofollow(&path, true))
                .ok()?,
        };
        Some(HeadNote { file, key, id })
    }

    /// `magic || body || tag` checked: the body, if the tag is this user's.
    fn open_tagged<'b>(
        key: &[u8; 32],
        id: &[u8],
        magic: &[u8; 8],
        bytes: &'b [u8],
    ) -> Option<&'b [u8]> {
        if bytes.len() < magic.len() + 32 || &bytes[..magic.len()] != magic {
            return None;
        }
        let (data, tag) = bytes.split_at(bytes.len() - 32);
        let body = &data[magic.len()..];
        let want = blake3::Hash::from(Self::tag_with(key, magic, id, body));
        (want == blake3::Hash::from_bytes(tag.try_into().expect("32 bytes"))).then_some(body)
    }

    /// Writes `magic || body || tag` as the entry of `ledger` with `extension`, atomically.
    fn write_tagged(
        &self,
        ledger: &Path,
        extension: &str,
        magic: &[u8; 8],
        body: &[u8],
    ) -> io::Result<()> {
        let key = self
            .key()
            .ok_or_else(|| io::Error::other("no usable cache directory"))?;
        let (_, id) = self
            .entry(ledger)
            .ok_or_else(|| io::Error::other("the ledger path cannot be resolved"))?;
        let mut data = Vec::with_capacity(magic.len() + body.len() + 32);
        data.extend_from_slice(magic);
        data.extend_from_slice(body);
        data.extend_from_slice(&Self::tag_with(&key, magic, &id, body));
        self.write_file(ledger, extension, &data)
    }

    /// Writes `data` as the entry of `ledger` with `extension`: a fresh file renamed over it.
    fn write_file(&self, ledger: &Path, extension: &str, data: &[u8]) -> io::Result<()> {
        let (path, _) = self
            .entry(ledger)
            .ok_or_else(|| io::Error::other("the ledger path cannot be resolved"))?;
        let path = path.with_extension(extension);
        let dir = path.parent().expect("an entry has a directory");
        let stem = format!(
            "{}.tmp",
            path.file_name().expect("a name").to_string_lossy()
        );
        let (mut f, tmp) = files::create_fresh(dir, &stem, 0o600)?;
        let written = f.write_all(data).and_then(|_| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// The head this user last verified of `ledger` (its note, else its entry's head), with
    /// that ledger's genesis: any later verification must pass through it.
    pub fn witness(&self, ledger: &Path) -> Option<Witness> {
        let (genesis, head) = match self.load_head(ledger) {
            Some((g, h, _)) => (g, h),
            None => {
                let v = self.load(ledger).ok()?;
                (v.state.genesis_hash?, v.head)
            }
        };
        Some(Witness {
            genesis,
            head: Trust {
                seq: head.seq,
                hash: head.hash,
            },
        })
    }

    /// Forgets what this user verified of any ledger at `ledger` and saves `v`: for a new
    /// ledger made there (`init`) after the old one was removed on purpose.
    pub fn start_over(&self, ledger: &Path, v: &Verified) -> io::Result<()> {
        self.forget(ledger)?;
        self.save(ledger, v)
    }

    /// Removes what this cache says of `ledger`: for a new ledger made where one was
    /// removed (`init`, `demo`), never for one that is merely different.
    pub fn forget(&self, ledger: &Path) -> io::Result<()> {
        for f in self.entry_files(ledger) {
            match std::fs::remove_file(&f) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The files this user's cache keeps for `ledger` (to remove them, say).
    pub fn entry_files(&self, ledger: &Path) -> Vec<PathBuf> {
        self.entry(ledger)
            .map(|(p, _)| vec![p.clone(), p.with_extension("head")])
            .unwrap_or_default()
    }

    /// Saves `v` for `ledger` (atomically: a fresh file renamed over the entry), and its
    /// head as the last head verified; never over what this user verified of another
    /// ledger at that path (see `start_over`).
    pub fn save(&self, ledger: &Path, v: &Verified) -> io::Result<()> {
        if self.dir().is_none() {
            // No cache: nothing is serialized for nothing.
            return Err(io::Error::other("no cache directory"));
        }
        if let (Some((g, _, _)), Some(genesis)) = (self.load_head(ledger), v.state.genesis_hash)
            && g != genesis
        {
            return Err(io::Error::other(
                "this user verified another ledger at this path",
            ));
        }
        let body = rmp_serde::to_vec(v).map_err(io::Error::other)?;
        self.write_tagged(ledger, "verified", MAGIC, &body)?;
        match v.state.genesis_hash {
            Some(g) => self.save_head(ledger, g, &v.head, v.head_offset),
            None => Ok(()),
        }
    }
}
