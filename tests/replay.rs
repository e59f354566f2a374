//! Point-in-time replay and the user's cache of verified state: answers at many random
//! points checked against a model; a cache that is missing, corrupted, forged, stale,
//! foreign or out of date with a rewritten ledger changes no answer.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use keyledger::core::event::{Action, Event};
use keyledger::core::format::FrameReader;
use keyledger::core::types::Timestamp;
use keyledger::storage::cache::Cache;
use keyledger::storage::store::{self, Freshness, Until};
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn synth(dir: &Path, n: u64, seed: u64) -> std::path::PathBuf {
    let p = dir.join("s.ledger");
    let s = keyledger::tools::synth::build(&p, n, Timestamp::parse("2025-01-01").unwrap(), seed)
        .unwrap();
    keyledger::storage::keyfile::write_new(&s.account, &dir.join("s.key")).unwrap();
    p
}

/// Key statuses after the events up to and including `stop`, computed directly from the
/// decoded events (a model independent of the state fold).
fn model_statuses(
    events: &[Event],
    stop: impl Fn(&Event) -> bool,
) -> BTreeMap<String, &'static str> {
    let mut m = BTreeMap::new();
    for ev in events.iter().take_while(|e| stop(e)) {
        let status = match &ev.action {
            Action::KeyCreated { .. } | Action::KeyEnabled { .. } => "active",
            Action::KeyDisabled { .. } => "disabled",
            Action::KeyDeleted { .. } => "deleted",
            _ => continue,
        };
        m.insert(ev.action.key_id().unwrap().to_owned(), status);
    }
    m
}

#[test]
fn point_in_time_state_matches_a_model_at_random_points() {
    let d = tempfile::tempdir().unwrap();
    let p = synth(d.path(), 5000, 3);
    let bytes = std::fs::read(&p).unwrap();
    let events: Vec<Event> = FrameReader::new(&bytes[..])
        .unwrap()
        .map(|f| Event::decode(&f.unwrap().body).unwrap())
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let statuses = |r: &store::Replay| -> BTreeMap<String, &'static str> {
        r.state
            .keys
            .iter()
            .map(|(k, v)| (k.clone(), v.status.as_str()))
            .collect()
    };
    for _ in 0..40 {
        let n = rng.gen_range(0..events.len() as u64);
        let r = store::replay(&p, &Cache::none(), Some(Until::Seq(n)), |_| {}).unwrap();
        assert_eq!(r.head.seq, n);
        let got = statuses(&r);
        assert_eq!(got, model_statuses(&events, |e| e.seq <= n), "at seq {n}");
        let t = events[n as usize].time;
        let r = store::replay(&p, &Cache::none(), Some(Until::Time(t)), |_| {}).unwrap();
        let got = statuses(&r);
        assert_eq!(got, model_statuses(&events, |e| e.time <= t), "at time {t}");
    }
}

/// The answers of the reads that go through the cache, with `cache` as the cache directory.
fn answers(dir: &Path, cache: &Path, key_id: &str) -> Vec<Value> {
    let q = |args: &[&str]| -> Value {
        let mut a = vec!["--ledger", "s.ledger", "--json"];
        a.extend_from_slice(args);
        let o = run_env(
            dir,
            &[("KEYLEDGER_CACHE_DIR", cache.to_str().unwrap())],
            &a,
            None,
        );
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let mut v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        // The clock at query time is not part of the answer.
        if let Some(m) = v.as_object_mut() {
            m.remove("evaluated_at");
        }
        v
    };
    vec![
        q(&["key", "list"]),
        q(&["user", "list"]),
        q(&["key", "show", key_id]),
        q(&["log", "--key", key_id]),
        q(&["log"]),
    ]
}

/// The one cache entry in `dir`.
fn entry(dir: &Path) -> std::path::PathBuf {
    let found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "verified"))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn the_cache_never_changes_an_answer() {
    let d = tempfile::tempdir().unwrap();
    let p = synth(d.path(), 3000, 5);
    let cdir = d.path().join("cache");
    let cache = Cache::at(&cdir);
    let (v, fresh) = store::head(&p, &Cache::none()).unwrap();
    assert!(matches!(fresh, Freshness::Rebuilt(_)));
    let (key_id, deleted_id) = {
        let mut active = v
            .state
            .keys
            .values()
            .filter(|k| k.status == keyledger::core::state::KeyStatus::Active);
        let deleted = v
            .state
            .keys
            .values()
            .find(|k| k.status == keyledger::core::state::KeyStatus::Deleted);
        (
            active.next().unwrap().id.clone(),
            deleted.unwrap().id.clone(),
        )
    };
    // The truth: no usable cache at all (a cache directory that cannot exist).
    let none = Path::new("/dev/null/no-cache");
    let truth = answers(d.path(), none, &key_id);
    assert!(!cdir.exists());
    assert!(
        answers(d.path(), &cdir, &key_id) == truth,
        "answers that build the cache"
    );
    let e = entry(&cdir);
    assert_eq!(
        store::head(&p, &cache).unwrap().1,
        Freshness::Cached { verified: 0 }
    );
    assert!(
        answers(d.path(), &cdir, &key_id) == truth,
        "answers through a current cache"
    );

    // Corrupted: one byte flipped.
    let good = std::fs::read(&e).unwrap();
    let mut b = good.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&e, &b).unwrap();
    assert!(
        matches!(store::head(&p, &cache).unwrap().1, Freshness::Rebuilt(r) if r.contains("tag")),
    );
    std::fs::write(&e, &b).unwrap();
    assert!(
        answers(d.path(), &cdir, &key_id) == truth,
        "answers after corruption"
    );

    // Forged: a deleted key shown active, the entry tagged by someone without this user's
    // cache key (here: written through another cache directory, then copied in).
    let (mut forged, _) = store::head(&p, &cache).unwrap();
    forged.state.keys.get_mut(&deleted_id).unwrap().status =
        keyledger::core::state::KeyStatus::Active;
    let other_dir = d.path().join("other-cache");
    Cache::at(&other_dir).save(&p, &forged).unwrap();
    std::fs::copy(entry(&other_dir), &e).unwrap();
    assert!(
        matches!(store::head(&p, &cache).unwrap().1, Freshness::Rebuilt(r) if r.contains("tag")),
    );
    std::fs::copy(entry(&other_dir), &e).unwrap();
    assert!(
        answers(d.path(), &cdir, &key_id) == truth,
        "answers after a forged cache"
    );

    // Deleted, truncated, garbage.
    for bad in [
        None,
        Some(good[..100].to_vec()),
        Some(b"not a cache".to_vec()),
    ] {
        match bad {
            None => std::fs::remove_file(&e).unwrap(),
            Some(x) => std::fs::write(&e, x).unwrap(),
        }
        assert!(
            answers(d.path(), &cdir, &key_id) == truth,
            "answers after corruption"
        );
    }

    // Stale: the ledger grew after the cache was written.
    let good = std::fs::read(&e).unwrap();
    let o = run_env(
        d.path(),
        &[("KEYLEDGER_CACHE_DIR", cdir.to_str().unwrap())],
        &[
            "--ledger", "s.ledger", "--key", "s.key", "key", "disable", &key_id,
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::write(&e, &good).unwrap();
    assert_eq!(
        store::head(&p, &cache).unwrap().1,
        Freshness::Cached { verified: 1 }
    );
    let grown = answers(d.path(), &cdir, &key_id);
    assert!(
        answers(d.path(), none, &key_id) == grown,
        "a stale cache is brought up to date"
    );
    assert_eq!(grown[2]["key"]["status"], "disabled");

    // Mismatching: the entry of another ledger, or of this ledger before it was cut back.
    let other = tempfile::tempdir().unwrap();
    let op = synth(other.path(), 3000, 6);
    let oc = other.path().join("cache");
    store::head(&op, &Cache::at(&oc)).unwrap();
    std::fs::copy(entry(&oc), &e).unwrap();
    assert!(
        matches!(store::head(&p, &cache).unwrap().1, Freshness::Rebuilt(r) if r.contains("tag")),
        "an entry is bound to its ledger's path"
    );
    let len = std::fs::metadata(&p).unwrap().len();
    let (last, _) = store::head(&p, &cache).unwrap();
    assert!(last.head.end == len);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(last.head_offset).unwrap();
    assert!(
        matches!(store::head(&p, &cache).unwrap().1, Freshness::Diverged(r) if r.contains("cut or it was rewritten")),
    );
}
