//! `keyledger bench`: measures the ledger against this machine's own limits, in one run.
//! Every figure is returned beside the limit it is compared with; nothing here is a
//! pass/fail test, only measurement.

use crate::storage::ledger::Appender;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::core::event::Action;
use crate::core::signing::SigningKey;
use crate::core::types::Timestamp;
use crate::storage::ledger::Ledger;
use crate::storage::store::{StoreError, Wait};

/// Raw limits of this machine, measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub cores: usize,
    /// ed25519 signatures per second on one core.
    pub sign_per_s: f64,
    /// ed25519 verifications per second on one core with `verify_batch` (batches of 256).
    pub batch_verify_per_s_per_core: f64,
    /// blake3 hashes of 300-byte records per second on one core.
    pub blake3_per_s: f64,
    /// Median latency of one small write + fdatasync, microseconds.
    pub fdatasync_us: f64,
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// ed25519 signatures per second on one core (50,000 signatures).
pub fn sign_rate() -> f64 {
    let key = SigningKey::from_seed(&[7; 32]);
    let msgs = messages();
    let t = Instant::now();
    for m in &msgs {
        std::hint::black_box(key.sign_bytes(m));
    }
    rate(msgs.len(), t.elapsed())
}

/// Enough messages for about a second of work per measurement: shorter windows catch
/// this shared machine's speed swings and make the limits noisy.
fn messages() -> Vec<[u8; 32]> {
    (0..50_000u32)
        .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
        .collect()
}

/// `verify_batch` verifications per second on one core, in batches of 256 (50,000 in all).
pub fn batch_verify_rate() -> f64 {
    let key = SigningKey::from_seed(&[7; 32]);
    let msgs = messages();
    let sigs: Vec<ed25519_dalek::Signature> = msgs
        .iter()
        .map(|m| ed25519_dalek::Signature::from_bytes(&key.sign_bytes(m)))
        .collect();
    let vk = ed25519_dalek::VerifyingKey::from_bytes(key.public().bytes()).expect("a valid key");
    let t = Instant::now();
    let mut n = 0;
    for (m, s) in msgs.chunks(256).zip(sigs.chunks(256)) {
        let ms: Vec<&[u8]> = m.iter().map(|x| &x[..]).collect();
        let ks = vec![vk; ms.len()];
        ed25519_dalek::verify_batch(&ms, s, &ks).expect("valid signatures");
        n += ms.len();
    }
    rate(n, t.elapsed())
}

/// Measures the machine's limits (a few seconds). `dir` is where the fdatasync probe writes.
pub fn limits(dir: &Path) -> std::io::Result<Limits> {
    let sign_per_s = sign_rate();
    let batch_verify_per_s_per_core = batch_verify_rate();
    let record = [0x5au8; 300];
    let t = Instant::now();
    for i in 0..2_000_000u32 {
        let mut h = blake3::Hasher::new();
        h.update(&i.to_le_bytes());
        h.update(&record);
        std::hint::black_box(h.finalize());
    }
    let blake3_per_s = rate(2_000_000, t.elapsed());
    let probe = dir.join("fdatasync.probe");
    let f = std::fs::File::create(&probe)?;
    let mut lat = Vec::with_capacity(200);
    for i in 0..200u64 {
        let t = Instant::now();
        std::os::unix::fs::FileExt::write_all_at(&f, &[1u8; 200], i * 200)?;
        f.sync_data()?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    let _ = std::fs::remove_file(&probe);
    Ok(Limits {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sign_per_s,
        batch_verify_per_s_per_core,
        blake3_per_s,
        fdatasync_us: percentile(&mut lat, 50.0),
    })
}

pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
    v.get(i).copied().unwrap_or(0.0)
}

/// ZIP-215 single-signature verifications per second on one core (the rule every path
/// follows, ledger-format.md §6), and, for comparison, ed25519-dalek's `verify_strict`.
pub fn single_verify_rates() -> (f64, f64) {
    let key = SigningKey::from_seed(&[7; 32]);
    let msgs: Vec<[u8; 32]> = messages().into_iter().take(20_000).collect();
    let sigs: Vec<[u8; 64]> = msgs.iter().map(|m| key.sign_bytes(m)).collect();
    let pk = key.public();
    // Both with the public key decompressed once, as a verifier holding its signers does.
    let a = curve25519_dalek::edwards::CompressedEdwardsY(*pk.bytes())
        .decompress()
        .expect("a valid key");
    let t = Instant::now();
    for (m, s) in msgs.iter().zip(&sigs) {
        assert!(crate::core::signing::verify_with_point(
            &a,
            pk.bytes(),
            m,
            s
        ));
    }
    let zip215 = rate(msgs.len(), t.elapsed());
    let vk = ed25519_dalek::VerifyingKey::from_bytes(pk.bytes()).expect("a valid key");
    let t = Instant::now();
    for (m, s) in msgs.iter().zip(&sigs) {
        let sig = ed25519_dalek::Signature::from_bytes(s);
        assert!(vk.verify_strict(m, &sig).is_ok());
    }
    (zip215, rate(msgs.len(), t.elapsed()))
}

/// Durable single-event append latencies (p50, p99) in microseconds, on an open ledger.
pub fn single_appends(
    path: &Path,
    key: &SigningKey,
    n: usize,
    cache: &crate::storage::cache::Cache,
) -> Result<(f64, f64), StoreError> {
    let mut l = Ledger::open_with(path, Wait::Block, cache)?;
    let mut lat = Vec::with_capacity(n);
    let now = l.head().time;
    for i in 0..n {
        let action = Action::AuthFailed {
            key_id: format!("KLAKBENCH{i}"),
            reason: "bench".into(),
        };
        let t = Instant::now();
        l.append(key, action, now)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((percentile(&mut lat, 50.0), percentile(&mut lat, 99.0)))
}

/// The peak resident memory of this process so far, in KiB (Linux `VmHWM`).
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A fixed timestamp for synthetic ledgers.
pub fn start_time() -> Timestamp {
    Timestamp::parse("2025-01-01").expect("a date")
}
