//! The ledger's Merkle tree as C2SP tlog-tiles (issue 17): static files a client fetches to
//! compute roots and proofs itself. An entry is an event's 32-byte hash (the leaf data of
//! §9.1); entry bundles hold them uint16-length-prefixed (ledger-format.md §9.6).

use crate::core::merkle::{Sha, leaf_hash, node_hash};
use crate::core::text::decimal;
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

/// The tree of §9.1 as tiles need it: the entries (event hashes) and, for each level L ≥ 1,
/// the hash of every complete subtree of 256^L leaves, computed once as leaves arrive. Any
/// tile is then a slice of hashes (at most 256 leaf hashes for level 0), never a
/// recomputation of the subtree under it.
#[derive(Debug, Clone, Default)]
pub struct TileTree {
    leaves: Vec<Hash32>,
    /// `upper[L - 1][i]`: the MTH of leaves `i·256^L .. (i + 1)·256^L`.
    upper: Vec<Vec<Sha>>,
}

/// The root of a perfect tree whose 2^k bottom hashes are `nodes`.
fn perfect_root(nodes: &[Sha]) -> Sha {
    match nodes.len() {
        1 => nodes[0],
        n => node_hash(
            &perfect_root(&nodes[..n / 2]),
            &perfect_root(&nodes[n / 2..]),
        ),
    }
}

impl TileTree {
    pub fn new(leaves: &[Hash32]) -> TileTree {
        let mut t = TileTree::default();
        for l in leaves {
            t.push(*l);
        }
        t
    }

    /// Adds the next entry; completes the level-1 hash (and above) it finishes, if any.
    pub fn push(&mut self, leaf: Hash32) {
        self.leaves.push(leaf);
        let n = self.leaves.len();
        if !n.is_multiple_of(WIDTH as usize) {
            return;
        }
        let bottom: Vec<Sha> = self.leaves[n - WIDTH as usize..]
            .iter()
            .map(leaf_hash)
            .collect();
        let mut hash = perfect_root(&bottom);
        for level in 0.. {
            if self.upper.len() == level {
                self.upper.push(Vec::new());
            }
            let v = &mut self.upper[level];
            v.push(hash);
            if !v.len().is_multiple_of(WIDTH as usize) {
                break;
            }
            hash = perfect_root(&v[v.len() - WIDTH as usize..]);
        }
    }

    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// The tile at `level` (None: the entry bundle) number `n` of `width` hashes, if the
    /// tree holds it: a full tile once its 256 subtrees are complete, a partial one of any
    /// width whose subtrees are.
    pub fn tile(&self, level: Option<u32>, n: u64, width: u64) -> Option<Vec<u8>> {
        if width == 0 || width > WIDTH {
            return None;
        }
        let lo = usize::try_from(n.checked_mul(WIDTH)?).ok()?;
        let hi = lo.checked_add(width as usize)?;
        let mut out = Vec::with_capacity(34 * width as usize);
        match level {
            None => {
                for l in self.leaves.get(lo..hi)? {
                    out.extend_from_slice(&32u16.to_be_bytes());
                    out.extend_from_slice(&l.0);
                }
            }
            Some(0) => {
                for l in self.leaves.get(lo..hi)? {
                    out.extend_from_slice(&leaf_hash(l));
                }
            }
            Some(l) => {
                for h in self.upper.get(l as usize - 1)?.get(lo..hi)? {
                    out.extend_from_slice(h);
                }
            }
        }
        Some(out)
    }

    /// Every tile and entry bundle of the tree: (path, bytes, full). Full ones never
    /// change; partial ones are those this size has at each level's right edge.
    pub fn all(&self) -> Vec<(String, Vec<u8>, bool)> {
        let size = self.size();
        let mut out = Vec::new();
        for level in 0u32.. {
            let Some(span) = WIDTH.checked_pow(level).filter(|&s| s <= size) else {
                break;
            };
            let hashes = size / span;
            for n in 0..hashes.div_ceil(WIDTH) {
                let width = (hashes - n * WIDTH).min(WIDTH);
                let kinds: &[Option<u32>] = match level {
                    0 => &[Some(0), None],
                    l => &[Some(l)],
                };
                for &kind in kinds {
                    let bytes = self.tile(kind, n, width).expect("within the tree");
                    out.push((tile_path(kind, n, width), bytes, width == WIDTH));
                }
            }
        }
        out
    }
}

/// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` strictly (no leading zeros,
/// `x`-prefixed groups but the last): (level, N, width).
pub fn parse_path(path: &str) -> Option<(Option<u32>, u64, u64)> {
    let rest = path.strip_prefix("tile/")?;
    let (level, rest) = rest.split_once('/')?;
    let level = match level {
        "entries" => None,
        l => Some(decimal(l).filter(|&v| v <= 63)? as u32),
    };
    let (index, width) = match rest.split_once(".p/") {
        Some((i, w)) => (i, decimal(w).filter(|v| (1..WIDTH).contains(v))?),
        None => (rest, WIDTH),
    };
    let groups: Vec<&str> = index.split('/').collect();
    let mut n: u64 = 0;
    for (i, g) in groups.iter().enumerate() {
        let digits = match i + 1 == groups.len() {
            true => *g,
            false => g.strip_prefix('x')?,
        };
        if digits.len() != 3 || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    // One encoding per index: no leading all-zero group.
    (index_path(n) == index).then_some((level, n, width))
}

/// Every tile and entry bundle of the tree of the first `size` of `leaves` (their data:
/// event hashes): (path, bytes, full).
pub fn tiles(leaves: &[Hash32], size: u64) -> Vec<(String, Vec<u8>, bool)> {
    TileTree::new(&leaves[..size as usize]).all()
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
        assert_eq!(
            parse_path("tile/0/x001/x234/067"),
            Some((Some(0), 1234067, 256))
        );
        assert_eq!(parse_path("tile/entries/005.p/112"), Some((None, 5, 112)));
        for bad in [
            "tile/00/000",
            "tile/0/x000/001",
            "tile/0/1",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/64/000",
            "tile/0/001/002",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
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
        // Each hash is the MTH of the leaves under it (the definition, computed directly).
        let tree = TileTree::new(&leaves);
        for (level, n, width) in [(1u32, 0u64, 256u64), (1, 1, 17), (2, 0, 1), (0, 273, 112)] {
            let tile = tree.tile(Some(level), n, width).unwrap();
            let span = WIDTH.pow(level) as usize;
            for i in 0..width as usize {
                let lo = (n as usize * 256 + i) * span;
                assert_eq!(
                    tile[32 * i..32 * i + 32],
                    crate::core::merkle::root_of(&leaves[lo..lo + span]),
                    "tile {level}/{n} hash {i}"
                );
            }
        }
        assert_eq!(tree.tile(Some(2), 0, 2), None, "not there yet");
        assert_eq!(tree.tile(Some(3), 0, 1), None);
    }
}
