//! Flip every single byte of a small valid ledger, one at a time: verify must report
//! every flip. Zero misses.

mod common;

use keyledger::verify::{Options, verify_reader};

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
