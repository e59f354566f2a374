//! The ledger's Merkle tree as C2SP tlog-tiles (issue 17): static files a client fetches to
//! compute roots and proofs itself. An entry is an event's 32-byte hash (the leaf data of
//! §9.1); entry bundles hold them uint16-length-prefixed (ledger-format.md §9.6).

use crate::core::merkle::ProofTree;
use crate::core::types::Hash32;

/// Hashes in a full tile.
pub const WIDTH: u64 = 256;

/// `<N>` of a tile path: 3-digit groups, all but the last prefixed with `x`.
pub fn index_path(n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// `tile/<L>/<N>[.p/<W>]` (or `tile/entries/…` for `level` None).
pub fn tile_path(level: Option<u32>, n: u64, width: u64) -> String {
    let l = level.map_or("entries".to_owned(), |l| l.to_string());
    let p = match width {
        WIDTH => String::new(),
        w => format!(".p/{w}"),
    };
    format!("tile/{l}/{}{p}", index_path(n))
}

/// Every tile and entry bundle of the tree of the first `size` of `leaves` (their data:
/// event hashes): (path, bytes, full). Full ones never change; partial ones are those this
/// size needs.
pub fn tiles(leaves: &[Hash32], size: u64) -> Vec<(String, Vec<u8>, bool)> {
    let leaves = &leaves[..size as usize];
    let tree = ProofTree::new(leaves);
    let mut out = Vec::new();
    let mut level = 0u32;
    loop {
        let span = WIDTH.checked_pow(level); // leaves under one hash of this level
        let Some(span) = span.filter(|&s| s <= size) else {
            break;
        };
        let hashes = size / span; // complete subtrees of `span` leaves
        if hashes == 0 {
            break;
        }
        for n in 0..hashes.div_ceil(WIDTH) {
            let width = (hashes - n * WIDTH).min(WIDTH);
            let mut bytes = Vec::with_capacity(32 * width as usize);
            for i in 0..width {
                let lo = (n * WIDTH + i) * span;
                bytes.extend_from_slice(&tree.mth(lo, lo + span));
            }
            out.push((tile_path(Some(level), n, width), bytes, width == WIDTH));
            if level == 0 {
                let mut bundle = Vec::with_capacity(34 * width as usize);
                for i in 0..width {
                    bundle.extend_from_slice(&32u16.to_be_bytes());
                    bundle.extend_from_slice(&leaves[(n * WIDTH + i) as usize].0);
                }
                out.push((tile_path(None, n, width), bundle, width == WIDTH));
            }
        }
        level += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_tlog_tiles() {
        assert_eq!(index_path(1234067), "x001/x234/067");
        assert_eq!(index_path(0), "000");
        assert_eq!(tile_path(Some(0), 1234067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(Some(1), 5, 17), "tile/1/005.p/17");
        assert_eq!(tile_path(None, 5, 112), "tile/entries/005.p/112");
    }

    /// tlog-tiles' example: a tree of size 70,000 is 273 full level-0 tiles, a partial one
    /// of width 112, one full level-1 tile, a partial level-1 tile of width 17 and a
    /// partial level-2 tile of width 1.
    #[test]
    fn a_tree_of_70000_has_the_tiles_the_spec_says() {
        let leaves: Vec<Hash32> = (0..70_000u32)
            .map(|i| crate::core::types::Bytes(*blake3::hash(&i.to_be_bytes()).as_bytes()))
            .collect();
        let t = tiles(&leaves, 70_000);
        let count = |prefix: &str, full: bool| {
            t.iter()
                .filter(|(p, _, f)| p.starts_with(prefix) && *f == full)
                .count()
        };
        assert_eq!(count("tile/0/", true), 273);
        assert_eq!(count("tile/0/", false), 1);
        assert!(
            t.iter()
                .any(|(p, b, _)| p == "tile/0/273.p/112" && b.len() == 112 * 32)
        );
        assert_eq!(count("tile/1/", true), 1);
        assert!(t.iter().any(|(p, _, _)| p == "tile/1/001.p/17"));
        assert!(t.iter().any(|(p, _, _)| p == "tile/2/000.p/1"));
        assert_eq!(count("tile/3/", false) + count("tile/3/", true), 0);
        assert_eq!(count("tile/entries/", true), 273);
    }
}
