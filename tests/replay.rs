//! Point-in-time replay and the derived index: answers at many random points checked
//! against a model; an index that is missing, corrupted, stale, foreign or out of date with
//! a rewritten ledger changes no answer.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use keyledger::event::{Action, Event};
use keyledger::format::FrameReader;
use keyledger::index::{self, Freshness};
use keyledger::store::{self, Until};
use keyledger::types::Timestamp;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn synth(dir: &Path, n: u64, seed: u64) -> std::path::PathBuf {
    let p = dir.join("s.ledger");
    let s = keyledger::synth::build(&p, n, Timestamp::parse("2025-01-01").unwrap(), seed).unwrap();
    s.account.write_new(&dir.join("s.key")).unwrap();
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
        let r = store::read_with(&p, Some(Until::Seq(n)), |_| {}).unwrap();
        assert_eq!(r.head.seq, n);
        let got = statuses(&r);
        assert_eq!(got, model_statuses(&events, |e| e.seq <= n), "at seq {n}");
        let t = events[n as usize].time;
        let r = store::read_with(&p, Some(Until::Time(t)), |_| {}).unwrap();
        let got = statuses(&r);
        assert_eq!(got, model_statuses(&events, |e| e.time <= t), "at time {t}");
    }
}

fn answers(dir: &Path, key_id: &str) -> Vec<Value> {
    let q = |args: &[&str]| -> Value {
        let mut a = vec!["--ledger", "s.ledger", "--json"];
        a.extend_from_slice(args);
        let o = run_in(dir, &a, None);
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
    ]
}

#[test]
fn the_index_never_changes_an_answer() {
    let d = tempfile::tempdir().unwrap();
    let p = synth(d.path(), 3000, 5);
    let ip = index::index_path(&p);
    let state = store::read(&p).unwrap().state;
    let key_id = state
        .keys
        .values()
        .find(|k| k.status == keyledger::state::KeyStatus::Active)
        .unwrap()
        .id
        .clone();
    // The truth: a full replay with no index at all.
    assert!(!ip.exists());
    let truth = answers(d.path(), &key_id);
    assert!(ip.exists(), "the first read builds the index");
    assert_eq!(index::read(&p).unwrap().freshness, Freshness::Current);
    assert!(
        answers(d.path(), &key_id) == truth,
        "answers through a current index"
    );

    // Corrupted: one byte flipped.
    let mut b = std::fs::read(&ip).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&ip, &b).unwrap();
    assert!(
        matches!(index::read(&p).unwrap().freshness, Freshness::Rebuilt(r) if r.contains("checksum"))
    );
    std::fs::write(&ip, &b).unwrap();
    assert!(
        answers(d.path(), &key_id) == truth,
        "answers after corruption"
    );

    // Deleted, truncated, garbage.
    for bad in [
        None,
        Some(b[..100].to_vec()),
        Some(b"not an index".to_vec()),
    ] {
        match bad {
            None => std::fs::remove_file(&ip).unwrap(),
            Some(x) => std::fs::write(&ip, x).unwrap(),
        }
        assert!(
            answers(d.path(), &key_id) == truth,
            "answers after corruption"
        );
    }

    // Stale: the ledger grew after the index was written.
    let good_index = std::fs::read(&ip).unwrap();
    let o = run_in(
        d.path(),
        &[
            "--ledger", "s.ledger", "--key", "s.key", "key", "disable", &key_id,
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(matches!(
        index::read(&p).unwrap().freshness,
        Freshness::Updated(1)
    ));
    let grown = answers(d.path(), &key_id);
    std::fs::write(&ip, &good_index).unwrap();
    assert!(
        answers(d.path(), &key_id) == grown,
        "a stale index is brought up to date"
    );
    assert_eq!(grown[2]["key"]["status"], "disabled");
    std::fs::remove_file(&ip).unwrap();
    assert!(
        answers(d.path(), &key_id) == grown,
        "answers after deleting the index"
    );

    // Mismatching: an index of another ledger, or of this ledger before it was cut back.
    let other = tempfile::tempdir().unwrap();
    let op = synth(other.path(), 3000, 6);
    index::read(&op).unwrap();
    std::fs::copy(index::index_path(&op), &ip).unwrap();
    assert!(
        matches!(index::read(&p).unwrap().freshness, Freshness::Rebuilt(r) if r.contains("another ledger"))
    );
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let last = keyledger::store::read(&p).unwrap();
    assert!(last.head.end == len);
    let frames: Vec<_> = FrameReader::new(&std::fs::read(&p).unwrap()[..])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    f.set_len(frames[frames.len() - 1].offset).unwrap();
    assert!(
        matches!(index::read(&p).unwrap().freshness, Freshness::Rebuilt(r) if r.contains("head"))
    );
}
