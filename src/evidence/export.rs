//! Exports: one record per selected event (JSON Lines or CSV), and self-contained evidence
//! bundles that a recipient verifies offline (`ledger-format.md` §10).
//!
//! A bundle is a new directory holding:
//! ```text
//! README.txt     what this is and how to check it, for the recipient
//! checkpoint     C2SP signed note of the ledger head at export (§9)
//! events.frames  the selected events' frames, byte for byte as stored, back to back
//! manifest.json  ledger id, genesis hash, checkpoint, the signing keys, per event its seq,
//!                place in events.frames, hash and RFC 9162 inclusion proof, and the
//!                blake3 of every other file
//! manifest.sig   Ed25519 over blake3-derive-key(MANIFEST_CONTEXT, manifest.json), by the
//!                checkpoint's key, as 128 hex digits
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::core::chain::event_hash;
use crate::core::event::Event;
use crate::core::format::{FRAME_OVERHEAD, LEN_PREFIX, RawFrame, SIG_LEN};
use crate::core::merkle::{ProofTree, Sha, leaf_hash, verify_inclusion};
use crate::core::query::Filter;
use crate::core::signing::{SigningKey, verify_bytes, verify_hash};
use crate::core::types::{Bytes, Hash32, PublicKey, from_hex, to_hex};
use crate::evidence::checkpoint::{self, Checkpoint};
use crate::evidence::cosign::WitnessPolicy;
use crate::storage::cache::Cache;
use crate::storage::keyfile::write_exclusive;
use crate::storage::store::{self, StoreError};

pub const BUNDLE_FORMAT: &str = "keyledger-bundle 1";
pub const MANIFEST_CONTEXT: &str = "keyledger 2026-11-22 bundle manifest v1";

/// One exported event with every field.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub seq: u64,
    pub time: String,
    pub time_us: i64,
    pub actor: String,
    pub action: &'static str,
    pub detail: crate::core::event::Action,
    pub hash: String,
    pub prev_hash: String,
    pub signer: String,
    /// Who enrolled the signing key (the actor of its `signer-enrolled` event).
    pub signer_enrolled_by: String,
    pub signature: String,
    pub offset: u64,
    pub frame_len: u64,
    /// R13: the second factor the server attested for this event (`totp`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_factor: Option<&'static str>,
    /// The event body exactly as stored, in hex (for OCSF's raw_data; not in JSON Lines
    /// or CSV, which carry the decoded fields).
    #[serde(skip)]
    pub body_hex: String,
}

impl Record {
    /// The record of one verified event; `state` knows every signer ever enrolled.
    pub fn new(
        state: &crate::core::state::State,
        frame: &RawFrame,
        ev: &Event,
        hash: &Hash32,
        actor: &str,
    ) -> Record {
        Record {
            seq: ev.seq,
            time: ev.time.to_string(),
            time_us: ev.time.0,
            actor: actor.to_owned(),
            action: ev.action.tag(),
            detail: ev.action.clone(),
            hash: hash.hex(),
            prev_hash: ev.prev.hex(),
            signer: ev.signer.to_string(),
            signer_enrolled_by: state
                .signers
                .get(&ev.signer)
                .map_or("?".into(), |s| s.enrolled_by.clone()),
            signature: to_hex(&frame.sig),
            offset: frame.offset,
            frame_len: frame.len(),
            second_factor: ev.factor.map(|f| f.kind.as_str()),
            body_hex: to_hex(&frame.body),
        }
    }
}

/// The columns of CSV exports, in order (`detail` is the action's JSON).
pub const CSV_COLUMNS: [&str; 13] = [
    "seq",
    "time",
    "time_us",
    "actor",
    "action",
    "detail",
    "hash",
    "prev_hash",
    "signer",
    "signer_enrolled_by",
    "signature",
    "offset",
    "frame_len",
];

/// The selected events (frames as stored) and every event hash (for proofs).
pub struct Selection {
    pub frames: Vec<(RawFrame, Event, Hash32, String)>,
    pub hashes: Vec<Hash32>,
    pub state: crate::core::state::State,
    /// The latest time of any event of the ledger (not only the selected ones).
    pub newest: Option<crate::core::types::Timestamp>,
    /// A torn tail after the last whole event, left out of the selection.
    pub torn: Option<store::TornTail>,
}

/// One pass over the ledger: the events that match `filter`, and all hashes.
pub fn select(path: &Path, filter: &Filter, cache: &Cache) -> Result<Selection, StoreError> {
    let mut frames = vec![];
    let mut hashes = vec![];
    let mut newest = None;
    let r = store::replay(path, cache, None, |seen| {
        hashes.push(*seen.hash);
        newest = newest.max(Some(seen.event.time));
        let owner = seen.state.key_owner(&seen.event.action);
        if filter.matches(seen.event, seen.actor(), owner) {
            frames.push((
                seen.frame.clone(),
                seen.event.clone(),
                *seen.hash,
                seen.actor().to_owned(),
            ));
        }
    })?;
    let out: Vec<_> = frames.iter().map(|(f, ev, h, _)| (f, ev, h)).collect();
    store::recheck_signatures(path, &out)?;
    Ok(Selection {
        frames,
        hashes,
        state: r.state,
        newest,
        torn: r.torn,
    })
}

impl Selection {
    pub fn records(&self) -> Vec<Record> {
        self.frames
            .iter()
            .map(|(f, ev, h, actor)| Record::new(&self.state, f, ev, h, actor))
            .collect()
    }
}

/// JSON Lines: one record per line.
pub fn to_jsonl(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).expect("records serialize") + "\n")
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// CSV (RFC 4180) with the `CSV_COLUMNS` header.
pub fn to_csv(records: &[Record]) -> String {
    let mut out = CSV_COLUMNS.join(",") + "\r\n";
    for r in records {
        let detail = serde_json::to_string(&r.detail).expect("actions serialize");
        let cells = [
            r.seq.to_string(),
            r.time.clone(),
            r.time_us.to_string(),
            r.actor.clone(),
            r.action.to_owned(),
            detail,
            r.hash.clone(),
            r.prev_hash.clone(),
            r.signer.clone(),
            r.signer_enrolled_by.clone(),
            r.signature.clone(),
            r.offset.to_string(),
            r.frame_len.to_string(),
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEvent {
    pub seq: u64,
    /// Where the frame is in events.frames.
    pub frame_offset: u64,
    pub frame_len: u64,
    pub hash: String,
    /// RFC 9162 inclusion proof of leaf `seq` in the checkpoint's tree, hex hashes.
    pub proof: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestKey {
    pub public_key: String,
    pub principal: String,
    /// Who enrolled the key for that principal (ledger-format.md §6.2).
    pub enrolled_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestCheckpoint {
    pub size: u64,
    pub root: String,
    pub signed_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub ledger_id: String,
    pub genesis_hash: String,
    /// RFC 9162 inclusion proof of the genesis hash as leaf 0 of the checkpoint's tree.
    pub genesis_proof: Vec<String>,
    pub origin: String,
    pub selection: String,
    pub checkpoint: ManifestCheckpoint,
    /// blake3 (plain, hex) of README.txt, checkpoint and events.frames.
    pub files: std::collections::BTreeMap<String, String>,
    pub keys: Vec<ManifestKey>,
    pub events: Vec<ManifestEvent>,
}

#[derive(Debug, Error)]
pub enum BundleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the signing key is not an enrolled signer of this ledger")]
    NotEnrolled,
    #[error("the bundle is not valid: {0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.into(),
        source,
    }
}

fn manifest_digest(manifest: &[u8]) -> Hash32 {
    let mut h = blake3::Hasher::new_derive_key(MANIFEST_CONTEXT);
    h.update(manifest);
    Bytes(*h.finalize().as_bytes())
}

const README: &str = "\
This is a keyledger evidence bundle: events copied byte for byte from an append-only,
hash-chained, signed ledger of access keys, with the proof that they are exactly what the
ledger recorded. It can be checked offline, without access to the ledger or its operator.

Files
  events.frames  the selected events, as stored in the ledger (format: ledger-format.md §2-§5)
  checkpoint     a signed C2SP checkpoint of the whole ledger at export time (§9)
  manifest.json  for each event: its seq, hash and RFC 9162 inclusion proof against the
                 checkpoint; the public keys that signed; and the blake3 of the other files
  manifest.sig   the Ed25519 signature of the manifest by the checkpoint's key

To check it with keyledger:
  keyledger verify-bundle THIS_DIRECTORY --trusted-key ed25519:<the key you trust>

To check it with other tools (all steps must pass):
  1. manifest.sig verifies (Ed25519) over BLAKE3-derive-key(\"keyledger 2026-11-22 bundle
     manifest v1\", manifest.json) with the key in manifest.checkpoint.signed_by, and that key
     is one you trust for this ledger (obtained from the ledger's owner, not from this bundle).
  2. The plain BLAKE3 of README.txt, checkpoint and events.frames equal manifest.files.
  3. checkpoint is a valid signed note by that key (c2sp.org/signed-note), whose tree size and
     root equal manifest.checkpoint.
  4. For each event: the BLAKE3-derive-key(\"keyledger 2026-11-22 event hash v1\") of its body is
     its hash; the RFC 9162 inclusion proof of leaf SHA-256(0x00 || hash) at index seq leads to
     the checkpoint root; its Ed25519 signature over the hash verifies with its signer key;
     and a request it carries (written through a server) is signed by one of the listed keys
     over this ledger, its time (within 5 minutes of the event's), its nonce (each used
     once) and the action it asked for (ledger-format.md, sections 4.1 and 10.3).

The bundle contains only the selected events; other events of the ledger appear only as
hashes inside the proofs.
";

/// What `write_bundle` wrote.
pub struct BundleSummary {
    pub events: usize,
    pub checkpoint_size: u64,
    pub signed_by: String,
    /// A torn tail after the last whole event, left out of the bundle.
    pub torn: Option<store::TornTail>,
}

/// Writes a new bundle directory `dir` with the events of `path` that match `filter`,
/// proven against a checkpoint of the head signed by `key` (an enrolled signer). `cosign`
/// may add witnesses' cosignatures to the checkpoint note (given the tree it is of and the
/// latest time of its events) before anything is written; an error from it leaves nothing
/// behind.
pub fn write_bundle<E: From<BundleError>>(
    path: &Path,
    dir: &Path,
    filter: &Filter,
    key: &SigningKey,
    cache: &Cache,
    cosign: impl FnOnce(String, &ProofTree, Option<crate::core::types::Timestamp>) -> Result<String, E>,
) -> Result<BundleSummary, E> {
    // Refused before any witness is asked to cosign for nothing.
    if fs::symlink_metadata(dir).is_ok() {
        return Err(BundleError::Io {
            path: dir.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                "already exists; a bundle goes into a new directory",
            ),
        }
        .into());
    }
    let sel = select(path, filter, cache).map_err(BundleError::from)?;
    let signer = sel
        .state
        .actor_of(&key.public())
        .map_err(|_| BundleError::NotEnrolled)?
        .to_owned();
    let ledger_id = sel
        .state
        .ledger_id
        .expect("a replayed ledger has a genesis");
    let origin = checkpoint::origin(&ledger_id);
    let tree = ProofTree::new(&sel.hashes);
    let size = tree.size();
    let root = tree.mth(0, size);
    let note = Checkpoint {
        origin: origin.clone(),
        size,
        root,
    }
    .sign(key);
    let note = cosign(note, &tree, sel.newest)?;
    let mut frames = Vec::new();
    let mut events = Vec::new();
    // Each key with the principal it is enrolled to (a server's key frames other
    // principals' requests: the event's actor is not its frame signer's principal).
    let listed = |pk: &PublicKey| {
        let s = sel.state.signers.get(pk);
        ManifestKey {
            public_key: pk.to_string(),
            principal: s.map_or("?".into(), |s| s.principal.clone()),
            enrolled_by: s.map_or("?".into(), |s| s.enrolled_by.clone()),
        }
    };
    let mut keys: Vec<ManifestKey> = vec![ManifestKey {
        principal: signer.clone(),
        ..listed(&key.public())
    }];
    for (f, ev, h, _) in &sel.frames {
        let offset = frames.len() as u64;
        frames.extend(crate::core::format::frame_bytes(&f.body, &f.sig));
        events.push(ManifestEvent {
            seq: ev.seq,
            frame_offset: offset,
            frame_len: f.len(),
            hash: h.hex(),
            proof: tree
                .inclusion_proof(ev.seq, size)
                .iter()
                .map(|p| to_hex(p))
                .collect(),
        });
        // The frame's signer, then its request's (§4.1), each listed once.
        for pk in std::iter::once(&ev.signer).chain(ev.request.as_ref().map(|r| &r.key)) {
            if !keys.iter().any(|k| k.public_key == pk.to_string()) {
                keys.push(listed(pk));
            }
        }
    }
    fs::create_dir(dir).map_err(io_err(dir))?;
    let files = [
        ("README.txt", README.as_bytes()),
        ("checkpoint", note.as_bytes()),
        ("events.frames", frames.as_slice()),
    ];
    let mut hashes = std::collections::BTreeMap::new();
    for (name, data) in files {
        let p = dir.join(name);
        write_exclusive(&p, data, 0o644).map_err(|e| BundleError::Io {
            path: p.clone(),
            source: io::Error::other(e.to_string()),
        })?;
        hashes.insert(name.to_owned(), blake3::hash(data).to_hex().to_string());
    }
    let manifest = Manifest {
        format: BUNDLE_FORMAT.into(),
        ledger_id: ledger_id.hex(),
        genesis_hash: sel.state.genesis_hash.expect("genesis").hex(),
        genesis_proof: tree
            .inclusion_proof(0, size)
            .iter()
            .map(|p| to_hex(p))
            .collect(),
        origin,
        selection: filter.describe(),
        checkpoint: ManifestCheckpoint {
            size,
            root: to_hex(&root),
            signed_by: key.public().to_string(),
        },
        files: hashes,
        keys,
        events,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    let sig = key.sign_hash(&manifest_digest(&json));
    for (name, data) in [
        ("manifest.json", json),
        ("manifest.sig", format!("{}\n", to_hex(&sig)).into_bytes()),
    ] {
        let p = dir.join(name);
        write_exclusive(&p, &data, 0o644).map_err(|e| BundleError::Io {
            path: p.clone(),
            source: io::Error::other(e.to_string()),
        })?;
    }
    Ok(BundleSummary {
        events: sel.frames.len(),
        checkpoint_size: size,
        signed_by: signer,
        torn: sel.torn,
    })
}

/// What `verify_bundle` established.
#[derive(Debug, Serialize)]
pub struct BundleReport {
    pub ledger_id: String,
    pub genesis_hash: String,
    pub selection: String,
    pub checkpoint_size: u64,
    /// The key that signed the manifest and the checkpoint.
    pub signing_key: String,
    /// The principal the bundle says that key belongs to (its own claim).
    pub signed_by: String,
    /// Whether the signing key is the one the caller said they trust. Without that, the
    /// bundle is intact and consistent, but proves nothing about whose ledger it is.
    pub key_trusted: bool,
    /// How many trusted witnesses cosigned the checkpoint, when witnesses were given.
    pub witnesses: Option<String>,
    pub events: Vec<u64>,
}

/// The files a bundle holds, exactly.
pub const BUNDLE_FILES: [&str; 5] = [
    "README.txt",
    "checkpoint",
    "events.frames",
    "manifest.json",
    "manifest.sig",
];

/// Largest file of a bundle read (events.frames of a whole large ledger fits).
const MAX_BUNDLE_FILE: u64 = 1 << 34;

fn hex_of<const N: usize>(s: &str) -> Option<[u8; N]> {
    // Lower-case only: one text form per value.
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        .then(|| from_hex::<N>(s))
        .flatten()
}

/// Checks a bundle with no access to the ledger (§10.3), in this order: exactly the five
/// files; the manifest's form; its signing key (the trusted one, if given); manifest.sig;
/// every file's BLAKE3; origin, ledger id, genesis hash and its proof; the checkpoint; and
/// every event (order, placement, body, hash, proof, signature), accounting for every byte
/// of events.frames. `trusted`: the key the recipient trusts for this ledger;
/// `witnesses`: the witnesses they trust to have cosigned the checkpoint (§9.4).
pub fn verify_bundle(
    dir: &Path,
    trusted: Option<&PublicKey>,
    witnesses: Option<&WitnessPolicy>,
) -> Result<BundleReport, BundleError> {
    let bad = |m: String| BundleError::Invalid(m);
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(io_err(dir))?;
    names.sort();
    let mut want: Vec<String> = BUNDLE_FILES.iter().map(|s| s.to_string()).collect();
    want.sort();
    if names != want {
        let extra: Vec<&String> = names.iter().filter(|n| !want.contains(n)).collect();
        let missing: Vec<&String> = want.iter().filter(|n| !names.contains(n)).collect();
        return Err(bad(format!(
            "a bundle holds exactly {}; this one has extra {extra:?} and lacks {missing:?}",
            BUNDLE_FILES.join(", ")
        )));
    }
    let read = |name: &str| {
        let p = dir.join(name);
        let f = crate::storage::files::open_regular_nofollow(&p, false).map_err(|e| {
            match e.kind() {
                io::ErrorKind::InvalidInput => bad(format!("{name} is not a regular file")),
                _ => BundleError::Io {
                    path: p.clone(),
                    source: e,
                },
            }
        })?;
        crate::storage::files::read_file(f, &p, MAX_BUNDLE_FILE).map_err(io_err(&p))
    };
    let json = read("manifest.json")?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| bad(format!("manifest.json is not a bundle manifest: {e}")))?;
    if manifest.format != BUNDLE_FORMAT {
        return Err(bad(format!("unknown bundle format {:?}", manifest.format)));
    }
    let signer = PublicKey::parse(&manifest.checkpoint.signed_by)
        .filter(|k| k.to_string() == manifest.checkpoint.signed_by)
        .ok_or_else(|| bad("manifest checkpoint.signed_by is not a public key".into()))?;
    if let Some(t) = trusted
        && *t != signer
    {
        return Err(bad(format!(
            "the bundle is signed by {signer}, not by the trusted key {t}"
        )));
    }
    let sig_text = read("manifest.sig")?;
    let sig = std::str::from_utf8(&sig_text)
        .ok()
        .and_then(|t| t.strip_suffix('\n'))
        .and_then(hex_of::<64>)
        .ok_or_else(|| bad("manifest.sig is not 128 lower-case hex digits and a newline".into()))?;
    if !verify_hash(&signer, &manifest_digest(&json), &sig) {
        return Err(bad(
            "manifest.sig does not verify: the manifest was altered".into(),
        ));
    }
    let covered: Vec<&String> = manifest.files.keys().collect();
    if covered != ["README.txt", "checkpoint", "events.frames"] {
        return Err(bad(format!(
            "manifest files must list exactly README.txt, checkpoint and events.frames, not {covered:?}"
        )));
    }
    let mut contents = std::collections::BTreeMap::new();
    for (name, want) in &manifest.files {
        let data = read(name)?;
        if blake3::hash(&data).to_hex().as_str() != want {
            return Err(bad(format!(
                "{name} was altered (its blake3 does not match the manifest)"
            )));
        }
        contents.insert(name.as_str(), data);
    }
    let ledger_id = hex_of::<16>(&manifest.ledger_id)
        .ok_or_else(|| bad("manifest ledger_id is not 32 lower-case hex digits".into()))?;
    let origin = checkpoint::origin(&Bytes(ledger_id));
    if manifest.origin != origin {
        return Err(bad(format!(
            "manifest origin {:?} is not the origin of ledger {} ({origin})",
            manifest.origin, manifest.ledger_id
        )));
    }
    let genesis = hex_of::<32>(&manifest.genesis_hash)
        .ok_or_else(|| bad("manifest genesis_hash is not 64 lower-case hex digits".into()))?;
    match manifest.keys.first() {
        Some(k) if k.public_key == manifest.checkpoint.signed_by => {}
        _ => {
            return Err(bad(
                "manifest keys[0] must be the key that signed the checkpoint".into(),
            ));
        }
    }
    let mut keys: Vec<PublicKey> = Vec::with_capacity(manifest.keys.len());
    for k in &manifest.keys {
        let pk = PublicKey::parse(&k.public_key)
            .filter(|p| p.to_string() == k.public_key && !keys.contains(p))
            .ok_or_else(|| {
                bad(format!(
                    "manifest key {:?} is not a distinct public key",
                    k.public_key
                ))
            })?;
        if !crate::core::types::valid_name(&k.principal)
            || !crate::core::types::valid_name(&k.enrolled_by)
        {
            return Err(bad(format!(
                "manifest key {pk} names no valid principal or enroller"
            )));
        }
        keys.push(pk);
    }
    let note = String::from_utf8(contents["checkpoint"].clone())
        .map_err(|_| bad("checkpoint is not text".into()))?;
    let (cp, _) = Checkpoint::verify(&note, &origin, [&signer]).map_err(|e| bad(e.to_string()))?;
    let root: Sha = hex_of::<32>(&manifest.checkpoint.root)
        .ok_or_else(|| bad("manifest checkpoint.root is not 64 lower-case hex digits".into()))?;
    if cp.size != manifest.checkpoint.size || cp.root != root {
        return Err(bad("the checkpoint does not match the manifest".into()));
    }
    // Step 7a: witnessed by a quorum of trusted witnesses; the quorum-th earliest
    // cosignature bounds the time of every event (step 9).
    let witnessed = witnesses
        .map(|p| p.judge(&note))
        .transpose()
        .map_err(|e| bad(format!("the checkpoint's cosignatures: {e}")))?;
    if let Some(w) = witnessed.as_ref().filter(|w| !w.met()) {
        return Err(bad(format!(
            "the checkpoint is not witnessed: {}",
            w.summary()
        )));
    }
    let bound = witnessed.as_ref().and_then(|w| w.time_bound());
    let proof = |p: &[String], what: &str| -> Result<Vec<Sha>, BundleError> {
        p.iter()
            .map(|h| hex_of::<32>(h))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                bad(format!(
                    "{what}: a proof hash is not 64 lower-case hex digits"
                ))
            })
    };
    if !verify_inclusion(
        0,
        cp.size,
        &leaf_hash(&Bytes(genesis)),
        &proof(&manifest.genesis_proof, "genesis_proof")?,
        &root,
    ) {
        return Err(bad(
            "the genesis hash is not leaf 0 of the checkpoint's tree (genesis_proof)".into(),
        ));
    }
    let frames = &contents["events.frames"];
    let mut seqs: Vec<u64> = vec![];
    let mut covered = 0u64;
    let mut nonces = std::collections::HashSet::new();
    for e in &manifest.events {
        if seqs.last().is_some_and(|&last| e.seq <= last) {
            return Err(bad(format!(
                "event {} is out of order (events must be listed by increasing seq)",
                e.seq
            )));
        }
        if e.frame_offset != covered {
            return Err(bad(format!(
                "event {} does not start where the previous frame ends (byte {covered})",
                e.seq
            )));
        }
        let start = e.frame_offset as usize;
        let end = start
            .checked_add(e.frame_len as usize)
            .filter(|&x| x <= frames.len())
            .ok_or_else(|| bad(format!("event {} lies outside events.frames", e.seq)))?;
        if e.frame_len < FRAME_OVERHEAD {
            return Err(bad(format!("event {} is too short", e.seq)));
        }
        let raw = &frames[start..end];
        let body_len = u32::from_be_bytes(raw[..LEN_PREFIX].try_into().expect("4 bytes")) as usize;
        if body_len + LEN_PREFIX + SIG_LEN != raw.len() {
            return Err(bad(format!("event {}'s frame length is wrong", e.seq)));
        }
        let body = &raw[LEN_PREFIX..LEN_PREFIX + body_len];
        let sig: [u8; 64] = raw[raw.len() - SIG_LEN..].try_into().expect("64 bytes");
        let ev = Event::decode(body).map_err(|x| bad(format!("event {}: {x}", e.seq)))?;
        let h = event_hash(body);
        if ev.seq != e.seq || h.hex() != e.hash {
            return Err(bad(format!(
                "event {} does not match its manifest entry",
                e.seq
            )));
        }
        if e.seq == 0 {
            match &ev.action {
                crate::core::event::Action::Genesis { ledger_id: id, .. }
                    if h.0 == genesis && id.0 == ledger_id => {}
                _ => {
                    return Err(bad(
                        "event 0 is not the genesis of the ledger the manifest names (its hash or ledger id differ)".into(),
                    ));
                }
            }
        }
        if !verify_inclusion(
            e.seq,
            cp.size,
            &leaf_hash(&h),
            &proof(&e.proof, "event")?,
            &root,
        ) {
            return Err(bad(format!(
                "event {}'s inclusion proof does not lead to the checkpoint root",
                e.seq
            )));
        }
        if let Some(b) = bound.filter(|b| ev.time > *b) {
            return Err(bad(format!(
                "event {} is dated {}, more than 5 minutes after a quorum of trusted witnesses had cosigned the checkpoint covering it (by {}): it was backdated",
                e.seq,
                ev.time,
                b.plus_micros(-crate::core::types::CLOCK_SKEW_US)
            )));
        }
        if !keys.contains(&ev.signer) || !verify_bytes(&ev.signer, &h.0, &sig) {
            return Err(bad(format!(
                "event {}'s signature does not verify with a listed key",
                e.seq
            )));
        }
        if let Some(req) = &ev.request {
            use crate::core::request::{REQUEST_SKEW_US, replay_id, requested, verify};
            let asked = requested(req, &ev.action);
            let problem = if let Some(m) =
                crate::core::state::refused_shape(&ev.action, req.refused.as_ref())
            {
                Some(m)
            } else if req.time.0.abs_diff(ev.time.0) > REQUEST_SKEW_US as u64 {
                Some("it was signed more than 5 minutes from the event's time".into())
            } else if !nonces.insert(replay_id(req)) {
                Some("its (key, nonce) already backs an earlier event of the bundle".into())
            } else if !keys.contains(&req.key) || !verify(&Bytes(ledger_id), req, asked) {
                Some("its signature does not verify with a listed key over this ledger and the requested action".into())
            } else {
                None
            };
            if let Some(m) = problem {
                return Err(bad(format!(
                    "event {}'s request signature (§4.1): {m}",
                    e.seq
                )));
            }
        }
        covered += e.frame_len;
        seqs.push(e.seq);
    }
    if covered != frames.len() as u64 {
        return Err(bad(
            "events.frames holds bytes no manifest entry accounts for".into(),
        ));
    }
    Ok(BundleReport {
        ledger_id: manifest.ledger_id,
        genesis_hash: manifest.genesis_hash,
        selection: manifest.selection,
        checkpoint_size: cp.size,
        signing_key: signer.to_string(),
        signed_by: manifest.keys[0].principal.clone(),
        key_trusted: trusted.is_some(),
        witnesses: witnessed.map(|w| w.summary()),
        events: seqs,
    })
}
