//! Flip every single byte of a small valid ledger, one at a time: verify must report
//! every flip. Zero misses.

mod common;

use keyledger::evidence::verify::{Options, verify_reader};

#[test]
fn every_single_byte_flip_is_reported() {
    let valid = common::valid().bytes;
    assert!(verify_reader(&valid[..], &Options::default()).unwrap().ok);
    let masks = [0x01u8, 0xff];
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let positions: Vec<usize> = (0..valid.len()).collect();
    let misses: Vec<(usize, u8)> = std::thread::scope(|s| {
        let handles: Vec<_> = positions
            .chunks(valid.len().div_ceil(threads))
            .map(|chunk| {
                let valid = &valid;
                s.spawn(move || {
                    let mut misses = vec![];
                    let mut b = valid.clone();
                    for &i in chunk {
                        for m in masks {
                            b[i] ^= m;
                            if verify_reader(&b[..], &Options::default()).unwrap().ok {
                                misses.push((i, m));
                            }
                            b[i] ^= m;
                        }
                    }
                    misses
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    println!(
        "byte flips tried: {} ({} bytes x {} masks), missed: {}",
        valid.len() * masks.len(),
        valid.len(),
        masks.len(),
        misses.len()
    );
    assert!(
        misses.is_empty(),
        "flips not reported (offset, mask): {misses:?}"
    );
}

/// The same through `verify_file`, whose signatures are checked in parallel batches.
#[test]
fn every_single_byte_flip_is_reported_by_the_parallel_path() {
    let valid = common::valid().bytes;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("l.ledger");
    let mut misses = vec![];
    let mut b = valid.clone();
    for i in 0..valid.len() {
        b[i] ^= 0x01;
        std::fs::write(&p, &b).unwrap();
        if keyledger::evidence::verify::verify_file(&p, &Options::default())
            .unwrap()
            .ok
        {
            misses.push(i);
        }
        b[i] ^= 0x01;
    }
    assert!(misses.is_empty(), "flips not reported: {misses:?}");
}

/// Bad signatures in any batch are found and reported at their exact seq, never absorbed.
#[test]
fn bad_signatures_across_batches_are_each_reported() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.ledger");
    keyledger::tools::synth::build(
        &p,
        1000,
        keyledger::core::types::Timestamp::parse("2025-01-01").unwrap(),
        9,
    )
    .unwrap();
    let good = std::fs::read(&p).unwrap();
    assert!(
        keyledger::evidence::verify::verify_file(&p, &Options::default())
            .unwrap()
            .ok
    );
    let frames: Vec<_> = keyledger::core::format::FrameReader::new(&good[..])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (n, i) in [0usize, 1, 255, 256, 257, 511, 700, 999]
        .into_iter()
        .enumerate()
    {
        let mut b = good.clone();
        let f = &frames[i];
        b[f.end() as usize - 1 - n] ^= 0x04;
        std::fs::write(&p, &b).unwrap();
        let r = keyledger::evidence::verify::verify_file(&p, &Options::default()).unwrap();
        assert!(!r.ok, "flip in the signature of event {i} passed");
        let sig: Vec<u64> = r
            .findings
            .iter()
            .filter(|x| x.problem == keyledger::evidence::verify::Problem::Signature)
            .filter_map(|x| x.seq)
            .collect();
        assert_eq!(sig, vec![i as u64], "event {i}");
    }
}
