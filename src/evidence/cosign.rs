//! Witness cosignatures (issue 17): C2SP tlog-cosignature's Ed25519 `cosignature/v1` lines
//! on our checkpoints, the tlog-witness `add-checkpoint` request and the witness's verdict
//! on it, and the proof that two checkpoints of one origin cannot both be honest. Pure:
//! the witness server and the client hold state and sockets (ledger-format.md §9.4).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::core::merkle::{Sha, empty_root, verify_consistency};
use crate::core::signing::{SigningKey, verify_bytes};
use crate::core::text::decimal;
use crate::core::types::PublicKey;
use crate::evidence::checkpoint::{Checkpoint, CheckpointError};

/// The signed-note signature type of an Ed25519 cosignature (tlog-cosignature).
pub const COSIGNATURE_TYPE: u8 = 0x04;
/// The signed-note signature type of an Ed25519 note signature (the log's own).
pub const ED25519_TYPE: u8 = 0x01;
/// At most this many consistency proof lines in a request (tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// A cosigner's key ID: SHA-256(name || "\n" || 0x04 || public key)[:4].
pub fn key_id(name: &str, pk: &PublicKey) -> [u8; 4] {
    crate::evidence::checkpoint::key_id_of(COSIGNATURE_TYPE, name, pk)
}

/// A witness's verifier key: `<name>+<hex key ID>+<base64(0x04 || public key)>`.
pub fn vkey(name: &str, pk: &PublicKey) -> String {
    crate::evidence::checkpoint::vkey_of(COSIGNATURE_TYPE, name, pk)
}

/// A verifier key parsed: name, signature type and Ed25519 public key; the key ID in the
/// text must be the one its type's algorithm gives.
pub fn parse_vkey(s: &str) -> Result<(String, u8, PublicKey), String> {
    let bad = |why: &str| format!("{s:?} is not a verifier key (NAME+KEYID+BASE64): {why}");
    let mut parts = s.splitn(3, '+');
    let (name, id, key) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(i), Some(k)) => (n, i, k),
        _ => return Err(bad("three parts joined by '+'")),
    };
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '+') {
        return Err(bad("the name is empty or holds a space"));
    }
    let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
    let (ty, pk) = match raw.split_first() {
        Some((&t, rest)) if rest.len() == 32 => (t, rest),
        _ => return Err(bad("the key is not a type byte and 32 bytes")),
    };
    let pk = PublicKey(crate::core::types::Bytes(pk.try_into().expect("32 bytes")));
    if ty != COSIGNATURE_TYPE && ty != ED25519_TYPE {
        return Err(bad(
            "the type is neither 0x01 (Ed25519) nor 0x04 (cosignature)",
        ));
    }
    let want = crate::evidence::checkpoint::key_id_of(ty, name, &pk);
    if crate::core::types::to_hex(&want) != id {
        return Err(bad("the key ID does not match the name and key"));
    }
    if let Some(why) = crate::core::signing::key_problem(&pk) {
        return Err(bad(&format!("the key is not acceptable: {why}")));
    }
    Ok((name.to_owned(), ty, pk))
}

/// What a cosignature signs: `cosignature/v1`, `time T`, then the checkpoint's note text.
pub fn signed_message(text: &str, time: u64) -> String {
    format!("cosignature/v1\ntime {time}\n{text}")
}

/// The cosignature line (ending in a newline) by witness `name` on the note text `text`.
pub fn cosign(key: &SigningKey, name: &str, text: &str, time: u64) -> String {
    let sig = key.sign_bytes(signed_message(text, time).as_bytes());
    let mut blob = key_id(name, &key.public()).to_vec();
    blob.extend_from_slice(&time.to_be_bytes());
    blob.extend_from_slice(&sig);
    format!("\u{2014} {name} {}\n", B64.encode(blob))
}

/// A witness trusted to cosign: its name and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    pub name: String,
    pub key: PublicKey,
}

/// The valid cosignatures on `note` by `trusted` witnesses: (witness, timestamp), at most
/// one per witness key (its earliest). A line whose name and key ID are a trusted
/// witness's must verify with one of the trusted keys having them (4-byte IDs can
/// collide), else the note is rejected, as signed-note asks.
pub fn cosignatures(
    note: &str,
    trusted: &[Witness],
) -> Result<(Checkpoint, Vec<(Witness, u64)>), CheckpointError> {
    let (cp, sigs, text) = Checkpoint::parse(note)?;
    let mut out: Vec<(Witness, u64)> = Vec::new();
    for s in &sigs {
        let mut candidates = trusted
            .iter()
            .filter(|w| w.name == s.name && key_id(&w.name, &w.key) == s.key_hash)
            .peekable();
        if candidates.peek().is_none() {
            continue;
        }
        let bad = || CheckpointError::BadCosignature(s.name.clone());
        // tlog-cosignature: u64 big-endian time, then the Ed25519 signature.
        let (time, sig) = match s.sig.len() {
            72 => (
                u64::from_be_bytes(s.sig[..8].try_into().expect("8 bytes")),
                <[u8; 64]>::try_from(&s.sig[8..]).expect("64 bytes"),
            ),
            _ => return Err(bad()),
        };
        if time == 0 || time > i64::MAX as u64 {
            return Err(bad());
        }
        let message = signed_message(&text, time);
        let w = candidates
            .find(|w| verify_bytes(&w.key, message.as_bytes(), &sig))
            .ok_or_else(bad)?;
        match out.iter_mut().find(|(x, _)| x == w) {
            Some((_, t)) => *t = (*t).min(time),
            None => out.push((w.clone(), time)),
        }
    }
    Ok((cp, out))
}

/// Which witnesses a verifier trusts and how many distinct ones must cosign
/// (ledger-format.md §9.4). Witnesses are told apart by name: two keys under one name are
/// one witness (its key rotated), and one key under two names is refused when the policy
/// is made, since it would count one witness twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessPolicy {
    trusted: Vec<Witness>,
    quorum: usize,
}

/// What a note shows to a `WitnessPolicy`: the checkpoint's size and, per distinct trusted
/// witness with a valid cosignature, its name and earliest cosignature time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    pub size: u64,
    pub cosigners: Vec<(String, u64)>,
    pub quorum: usize,
    pub trusted: usize,
}

impl Witnessed {
    /// At least a quorum of distinct trusted witnesses cosigned.
    pub fn met(&self) -> bool {
        self.cosigners.len() >= self.quorum
    }

    /// The time by which a quorum of witnesses had seen the tree (the quorum-th earliest
    /// of their times), in µs since the epoch, plus the clock skew: no event the checkpoint
    /// covers may be dated after it. One witness alone (unless the quorum is 1) cannot
    /// accuse the log of backdating with a time of its choosing. None below the quorum.
    pub fn time_bound(&self) -> Option<crate::core::types::Timestamp> {
        let mut times: Vec<u64> = self.cosigners.iter().map(|(_, t)| *t).collect();
        times.sort_unstable();
        times.get(self.quorum.checked_sub(1)?).map(|&t| {
            crate::core::types::Timestamp((t as i64).saturating_mul(1_000_000))
                .plus_micros(crate::core::types::CLOCK_SKEW_US)
        })
    }

    /// One line for people: how many cosigned, of how many trusted, against which quorum.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.cosigners.iter().map(|(n, _)| n.as_str()).collect();
        let mut s = format!(
            "{} of {} trusted witnesses cosigned (quorum {})",
            names.len(),
            self.trusted,
            self.quorum
        );
        if !self.met() {
            s.push_str(", fewer than the quorum");
            if !names.is_empty() {
                s.push_str(&format!(" (cosigned by {})", names.join(", ")));
            }
        }
        s
    }
}

/// How many witnesses `trusted` holds: distinct names (a rotated key is the same witness).
fn distinct_names(trusted: &[Witness]) -> usize {
    trusted
        .iter()
        .map(|w| &w.name)
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// Witnesses' verifier keys (type 0x04, as `witness vkey` prints them), each witness once;
/// one key under two names is refused (it would count one witness twice).
pub fn parse_witness_keys(vkeys: &[String]) -> Result<Vec<Witness>, String> {
    let mut trusted: Vec<Witness> = Vec::new();
    for v in vkeys {
        let (name, ty, key) = parse_vkey(v)?;
        if ty != COSIGNATURE_TYPE {
            return Err(format!(
                "{v}: a witness's key is of type 0x04, as `keyledger witness vkey` prints it (this one is a log's checkpoint key)"
            ));
        }
        if let Some(other) = trusted.iter().find(|w| w.key == key && w.name != name) {
            return Err(format!(
                "{v}: the same key as witness {} under another name; one witness counts once, so give it under one name",
                other.name
            ));
        }
        let w = Witness { name, key };
        if !trusted.contains(&w) {
            trusted.push(w);
        }
    }
    Ok(trusted)
}

impl WitnessPolicy {
    /// A policy from witnesses' verifier keys (type 0x04, as `witness vkey` prints them)
    /// and a quorum (default: every witness named), between 1 and the number of witnesses.
    pub fn from_vkeys(vkeys: &[String], quorum: Option<usize>) -> Result<WitnessPolicy, String> {
        let trusted = parse_witness_keys(vkeys)?;
        let witnesses = distinct_names(&trusted);
        let quorum = quorum.unwrap_or(witnesses);
        if quorum == 0 || quorum > witnesses {
            return Err(format!(
                "--quorum must be between 1 and the {witnesses} distinct witness(es) whose keys are given"
            ));
        }
        Ok(WitnessPolicy { trusted, quorum })
    }

    /// The cosignatures on `note` by trusted witnesses: an error if the note does not parse
    /// or a trusted witness's line on it fails (signed-note: such a note is rejected).
    pub fn judge(&self, note: &str) -> Result<Witnessed, CheckpointError> {
        let (cp, sigs) = cosignatures(note, &self.trusted)?;
        let mut cosigners: Vec<(String, u64)> = Vec::new();
        for (w, t) in sigs {
            match cosigners.iter_mut().find(|(n, _)| *n == w.name) {
                Some((_, at)) => *at = (*at).min(t),
                None => cosigners.push((w.name, t)),
            }
        }
        Ok(Witnessed {
            size: cp.size,
            cosigners,
            quorum: self.quorum,
            trusted: distinct_names(&self.trusted),
        })
    }
}

/// A tlog-witness `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Sha>,
    pub note: String,
}

impl AddCheckpoint {
    pub fn encode(&self) -> String {
        let mut s = format!("old {}\n", self.old);
        for p in &self.proof {
            s.push_str(&B64.encode(p));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.note);
        s
    }

    /// Parses a request body strictly (a decimal old size without leading zeros, at most
    /// 63 base64 hashes, an empty line, the note); `None` if it is not one.
    pub fn parse(body: &str) -> Option<AddCheckpoint> {
        let (first, mut rest) = body.split_once('\n')?;
        let old = decimal(first.strip_prefix("old ")?)?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n')?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return None;
            }
            proof.push(B64.decode(line).ok()?.try_into().ok()?);
        }
        Some(AddCheckpoint {
            old,
            proof,
            note: rest.to_owned(),
        })
    }
}

/// A witness's answer other than a cosignature: HTTP status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub body: String,
}

impl Refusal {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Refusal {
            status,
            body: body.into(),
        }
    }
}

/// The signature lines of `note` by `keys` under `name` that verify: what a witness keeps of
/// a submitted note (nothing else the submitter added).
pub fn verified_lines(note: &str, name: &str, keys: &[PublicKey]) -> String {
    let Ok((_, sigs, text)) = Checkpoint::parse(note) else {
        return String::new();
    };
    let mut out = String::new();
    for s in sigs.iter().filter(|s| s.name == name) {
        let ok = keys.iter().any(|k| {
            crate::evidence::checkpoint::key_hash(name, k) == s.key_hash
                && <[u8; 64]>::try_from(s.sig.as_slice())
                    .is_ok_and(|sig| verify_bytes(k, text.as_bytes(), &sig))
        });
        let mut blob = s.key_hash.to_vec();
        blob.extend_from_slice(&s.sig);
        let line = format!("\u{2014} {name} {}\n", B64.encode(blob));
        // One copy of each: a submitter cannot make the witness keep its lines many times.
        if ok && !out.contains(&line) {
            out.push_str(&line);
        }
    }
    out
}

/// The checks of an add-checkpoint request `req` that need no state, in tlog-witness's
/// order: the form (400), the origin (404: `logs` holds each origin and the log's keys), the
/// log's signatures (403), an old size past the checkpoint's (400). The checkpoint, its note
/// text to cosign, and the log's verified signature lines to keep with it; or the refusal.
/// A witness runs them before it takes the lock on its state.
pub fn precheck(
    req: &AddCheckpoint,
    logs: &[(String, Vec<PublicKey>)],
) -> Result<(Checkpoint, String, String), Refusal> {
    let (cp, _, text) = Checkpoint::parse(&req.note)
        .map_err(|e| Refusal::new(400, format!("not a checkpoint: {e}\n")))?;
    let Some((_, keys)) = logs.iter().find(|(o, _)| *o == cp.origin) else {
        return Err(Refusal::new(404, "unknown log origin\n"));
    };
    Checkpoint::verify(&req.note, &cp.origin, keys.iter())
        .map_err(|e| Refusal::new(403, format!("{e}\n")))?;
    if req.old > cp.size {
        return Err(Refusal::new(
            400,
            "old size is past the checkpoint's size\n",
        ));
    }
    let lines = verified_lines(&req.note, &cp.origin, keys);
    Ok((cp, text, lines))
}

/// The rest of the verdict on `req` for its checkpoint `cp`, against the latest (size,
/// root) the witness cosigned for the origin, if any: the old size must be that size (409
/// with it), and the checkpoint consistent with it (422).
pub fn extends(
    req: &AddCheckpoint,
    cp: &Checkpoint,
    latest: Option<(u64, Sha)>,
) -> Result<(), Refusal> {
    let (size, root) = latest.unwrap_or((0, empty_root()));
    if req.old != size {
        return Err(Refusal::new(409, format!("{size}\n")));
    }
    if cp.size == 0 && cp.root != empty_root() {
        return Err(Refusal::new(422, "a tree of size 0 has the empty root\n"));
    }
    let consistent = match req.old {
        0 => req.proof.is_empty(),
        _ => verify_consistency(req.old, cp.size, &root, &cp.root, &req.proof),
    };
    if !consistent {
        return Err(Refusal::new(
            422,
            "the checkpoint is not consistent with the one cosigned before\n",
        ));
    }
    Ok(())
}

/// A self-contained proof that the holder of a log key signed two views of one log that
/// cannot both be true: checkpoint `a` of size m and checkpoint `b` of size n ≥ m, and,
/// from `b`'s tree, the root of its first m leaves with a consistency proof to `b`'s root;
/// that root differs from `a`'s (ledger-format.md §9.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkProof {
    /// The notes as carried: bytes, judged as notes (§9.2) only when the proof is checked.
    pub a: Vec<u8>,
    pub b: Vec<u8>,
    pub b_root_at_a_size: Sha,
    pub proof: Vec<Sha>,
}

impl ForkProof {
    /// The proof: `keyledger fork proof v1`, the root and proof lines in base64, an empty
    /// line, then each checkpoint note preceded by its length in bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = String::from("keyledger fork proof v1\n");
        s.push_str(&format!("root {}\n", B64.encode(self.b_root_at_a_size)));
        for p in &self.proof {
            s.push_str(&format!("proof {}\n", B64.encode(p)));
        }
        s.push('\n');
        let mut out = s.into_bytes();
        for n in [&self.a, &self.b] {
            out.extend_from_slice(format!("note {}\n", n.len()).as_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    /// Parses a proof strictly (§9.5): the root line first, then at most 63 proof lines,
    /// an empty line, and two notes, each after `note <decimal byte length>`.
    pub fn parse(bytes: &[u8]) -> Option<ForkProof> {
        let rest = bytes.strip_prefix(b"keyledger fork proof v1\n")?;
        let split = rest.windows(2).position(|w| w == b"\n\n")?;
        let head = std::str::from_utf8(&rest[..split]).ok()?;
        let mut notes = &rest[split + 2..];
        let hash = |v: &str| -> Option<Sha> { B64.decode(v).ok()?.try_into().ok() };
        let mut lines = head.split('\n');
        let root = hash(lines.next()?.strip_prefix("root ")?)?;
        let proof = lines
            .map(|l| hash(l.strip_prefix("proof ")?))
            .collect::<Option<Vec<Sha>>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return None;
        }
        let mut read = || -> Option<Vec<u8>> {
            let after = notes.strip_prefix(b"note ")?;
            let eol = after.iter().position(|&c| c == b'\n')?;
            let len = usize::try_from(decimal(std::str::from_utf8(&after[..eol]).ok()?)?).ok()?;
            let after = &after[eol + 1..];
            let note = after.get(..len)?.to_vec();
            notes = &after[len..];
            Some(note)
        };
        let (a, b) = (read()?, read()?);
        (notes.is_empty()).then_some(ForkProof {
            a,
            b,
            b_root_at_a_size: root,
            proof,
        })
    }

    /// Checks the proof against the log's keys: both notes are checkpoints of one origin
    /// signed by one of `keys`, the root is `b`'s first m leaves (by the consistency proof)
    /// and differs from `a`'s. The origin and the two sizes.
    pub fn check(&self, keys: &[PublicKey]) -> Result<(String, u64, u64), String> {
        let not_utf8 = |which: &str| format!("checkpoint {which} is not a signed note: not UTF-8");
        let na = std::str::from_utf8(&self.a).map_err(|_| not_utf8("A"))?;
        let nb = std::str::from_utf8(&self.b).map_err(|_| not_utf8("B"))?;
        let (a, _, _) = Checkpoint::parse(na).map_err(|e| format!("checkpoint A: {e}"))?;
        let (b, _, _) = Checkpoint::parse(nb).map_err(|e| format!("checkpoint B: {e}"))?;
        if a.origin != b.origin {
            return Err("the checkpoints are of two logs (two origins)".into());
        }
        for (which, note) in [("A", na), ("B", nb)] {
            Checkpoint::verify(note, &a.origin, keys.iter())
                .map_err(|e| format!("checkpoint {which}: {e}"))?;
        }
        if a.size > b.size {
            return Err("checkpoint A must be the smaller one".into());
        }
        if a.size == 0 {
            return Err("the empty tree is consistent with every tree: no fork".into());
        }
        if !verify_consistency(a.size, b.size, &self.b_root_at_a_size, &b.root, &self.proof) {
            return Err(
                "the root given is not checkpoint B's first leaves (the consistency proof fails)"
                    .into(),
            );
        }
        if self.b_root_at_a_size == a.root {
            return Err("the two checkpoints are consistent: no fork".into());
        }
        Ok((a.origin, a.size, b.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_verify_and_tamper() {
        let log = SigningKey::from_seed(&[1; 32]);
        let w = SigningKey::from_seed(&[2; 32]);
        let cp = Checkpoint {
            origin: "keyledger/00".into(),
            size: 3,
            root: [7; 32],
        };
        let note = cp.sign(&log);
        let (_, _, text) = Checkpoint::parse(&note).unwrap();
        let line = cosign(&w, "w.example/1", &text, 1_700_000_000);
        let cosigned = format!("{note}{line}");
        let trusted = [Witness {
            name: "w.example/1".into(),
            key: w.public(),
        }];
        let (_, got) = cosignatures(&cosigned, &trusted).unwrap();
        assert_eq!(got, vec![(trusted[0].clone(), 1_700_000_000)]);
        // The log's own signature still verifies with the cosignature beside it.
        assert!(Checkpoint::verify(&cosigned, "keyledger/00", [&log.public()]).is_ok());
        let tampered = cosigned.replacen("\n3\n", "\n4\n", 1);
        assert!(cosignatures(&tampered, &trusted).is_err());
        assert!(parse_vkey(&vkey("w.example/1", &w.public())).is_ok());
        let mut v = vkey("w.example/1", &w.public());
        v = v.replacen("w.example/1", "w.example/2", 1);
        assert!(parse_vkey(&v).is_err(), "a key ID for another name");
    }

    #[test]
    fn a_size_zero_checkpoint_proves_no_fork_and_a_witness_keeps_only_the_logs_lines() {
        let log = SigningKey::from_seed(&[1; 32]);
        let note = |size, root| {
            Checkpoint {
                origin: "keyledger/00".into(),
                size,
                root,
            }
            .sign(&log)
        };
        let p = ForkProof {
            a: note(0, empty_root()).into_bytes(),
            b: note(3, [7; 32]).into_bytes(),
            b_root_at_a_size: [9; 32],
            proof: vec![],
        };
        assert!(
            p.check(&[log.public()]).is_err(),
            "the empty tree is in every tree"
        );
        let n = note(3, [7; 32]);
        let junk = format!("{n}\u{2014} keyledger/00 AAAAAAA=\n\u{2014} other AAAAAAAA\n");
        assert_eq!(
            verified_lines(&junk, "keyledger/00", &[log.public()]),
            n[n.find('\u{2014}').unwrap()..]
        );
    }

    #[test]
    fn add_checkpoint_bodies_parse_strictly() {
        let req = AddCheckpoint {
            old: 5,
            proof: vec![[1; 32], [2; 32]],
            note: "o\n1\nAAAA\n\n\u{2014} o AAAA\n".into(),
        };
        assert_eq!(AddCheckpoint::parse(&req.encode()), Some(req));
        for bad in [
            "old 05\n\nx",
            "old -1\n\nx",
            "old 1\nnot base64\n\nx",
            "new 1\n\nx",
        ] {
            assert_eq!(AddCheckpoint::parse(bad), None, "{bad}");
        }
    }
}
