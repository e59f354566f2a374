//! RFC 9162 (Certificate Transparency v2) Merkle tree hash with SHA-256, over the 32-byte
//! blake3 event hashes as leaf data, so existing tlog tooling can check our roots.
//! `MTH({}) = SHA-256()`, `leaf = SHA-256(0x00 || d)`, `node = SHA-256(0x01 || l || r)`,
//! split at the largest power of two smaller than n.

use sha2::{Digest, Sha256};

use crate::core::types::Hash32;

pub type Sha = [u8; 32];

pub fn leaf_hash(data: &Hash32) -> Sha {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data.0);
    h.finalize().into()
}

pub fn node_hash(l: &Sha, r: &Sha) -> Sha {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

pub fn empty_root() -> Sha {
    Sha256::digest([]).into()
}

/// Builds the root incrementally in O(log n) memory: a stack of perfect subtrees, merged
/// like a binary counter; the final fold right-to-left gives RFC 9162's MTH.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TreeBuilder {
    /// (subtree size, subtree hash), sizes strictly decreasing powers of two.
    stack: Vec<(u64, Sha)>,
    size: u64,
}

impl TreeBuilder {
    pub fn push(&mut self, leaf_data: &Hash32) {
        let mut node = (1u64, leaf_hash(leaf_data));
        while let Some(&(size, ref top)) = self.stack.last() {
            if size != node.0 {
                break;
            }
            node = (size * 2, node_hash(top, &node.1));
            self.stack.pop();
        }
        self.stack.push(node);
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn root(&self) -> Sha {
        let mut it = self.stack.iter().rev();
        let Some(&(_, last)) = it.next() else {
            return empty_root();
        };
        it.fold(last, |acc, (_, h)| node_hash(h, &acc))
    }
}

/// The reference recursive definition (for tests and small inputs).
pub fn root_of(leaves: &[Hash32]) -> Sha {
    match leaves.len() {
        0 => empty_root(),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::Bytes;

    #[test]
    fn incremental_root_equals_recursive_definition() {
        let leaves: Vec<Hash32> = (0..300u32)
            .map(|i| Bytes(*blake3::hash(&i.to_be_bytes()).as_bytes()))
            .collect();
        let mut b = TreeBuilder::default();
        assert_eq!(b.root(), root_of(&[]));
        for (i, l) in leaves.iter().enumerate() {
            b.push(l);
            assert_eq!(b.root(), root_of(&leaves[..=i]), "size {}", i + 1);
        }
    }
}

/// All leaves with every perfect aligned subtree hashed, so that any subtree hash in the
/// RFC 9162 recursion costs O(log n) lookups. Memory: about 2n hashes.
pub struct ProofTree {
    /// levels[h][i] = hash of leaves [i·2^h, (i+1)·2^h), for complete blocks only.
    levels: Vec<Vec<Sha>>,
}

fn split_point(n: u64) -> u64 {
    // The largest power of two smaller than n (n >= 2).
    1u64 << (63 - (n - 1).leading_zeros())
}

impl ProofTree {
    pub fn new(leaves: &[Hash32]) -> Self {
        let mut levels = vec![leaves.iter().map(leaf_hash).collect::<Vec<_>>()];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().expect("non-empty");
            let next = prev
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(next);
        }
        ProofTree { levels }
    }

    pub fn size(&self) -> u64 {
        self.levels[0].len() as u64
    }

    /// MTH of leaves [lo, hi).
    pub fn mth(&self, lo: u64, hi: u64) -> Sha {
        let n = hi - lo;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            return self.levels[n.trailing_zeros() as usize][(lo / n) as usize];
        }
        let k = split_point(n);
        node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
    }

    /// RFC 9162 §2.1.3.1 PATH(m, D[0:n]): the inclusion proof of leaf m in the tree of size n.
    pub fn inclusion_proof(&self, m: u64, n: u64) -> Vec<Sha> {
        let mut out = Vec::new();
        self.path(m, 0, n, &mut out);
        out
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Sha>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.mth(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.mth(lo, lo + k));
        }
    }

    /// RFC 9162 §2.1.4.1 PROOF(m, D[0:n]): the consistency proof from size m to size n.
    pub fn consistency_proof(&self, m: u64, n: u64) -> Vec<Sha> {
        let mut out = Vec::new();
        if m > 0 && m < n {
            self.subproof(m, 0, n, true, &mut out);
        }
        out
    }

    fn subproof(&self, m: u64, lo: u64, hi: u64, b: bool, out: &mut Vec<Sha>) {
        let n = hi - lo;
        if m == n {
            if !b {
                out.push(self.mth(lo, hi));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, lo, lo + k, b, out);
            out.push(self.mth(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.mth(lo, lo + k));
        }
    }
}

/// RFC 9162 §2.1.3.2: does `proof` show leaf `index` (with leaf hash `leaf`) in the tree of
/// `size` leaves with root `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Sha, proof: &[Sha], root: &Sha) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `proof` show the tree of size `m` with root `old` is a prefix of
/// the tree of size `n` with root `new`?
pub fn verify_consistency(m: u64, n: u64, old: &Sha, new: &Sha, proof: &[Sha]) -> bool {
    if m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && old == new;
    }
    if m == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Sha> = proof.to_vec();
    if m.is_power_of_two() {
        path.insert(0, *old);
    }
    if path.is_empty() {
        return false;
    }
    let (mut f, mut s) = (m - 1, n - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && fr == *old && sr == *new
}

#[cfg(test)]
mod proof_tests {
    use super::*;
    use crate::core::types::Bytes;

    fn leaves(n: u32) -> Vec<Hash32> {
        (0..n)
            .map(|i| Bytes(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect()
    }

    #[test]
    fn proofs_verify_at_every_size_up_to_64_and_tampering_fails() {
        let all = leaves(64);
        let t = ProofTree::new(&all);
        for n in 1..=64u64 {
            let root = root_of(&all[..n as usize]);
            assert_eq!(t.mth(0, n), root);
            for m in 0..n {
                let p = t.inclusion_proof(m, n);
                let leaf = leaf_hash(&all[m as usize]);
                assert!(
                    verify_inclusion(m, n, &leaf, &p, &root),
                    "inclusion {m} in {n}"
                );
                let other = leaf_hash(&all[(m as usize + 1) % 64]);
                assert!(
                    !verify_inclusion(m, n, &other, &p, &root),
                    "a different leaf fails"
                );
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(m, n, &leaf, &bad, &root));
                }
                let old = root_of(&all[..(m + 1) as usize]);
                let c = t.consistency_proof(m + 1, n);
                assert!(
                    verify_consistency(m + 1, n, &old, &root, &c),
                    "consistency {} -> {n}",
                    m + 1
                );
                if m + 1 < n {
                    let mut bad = c.clone();
                    bad[0][5] ^= 1;
                    assert!(!verify_consistency(m + 1, n, &old, &root, &bad));
                    assert!(!verify_consistency(m + 1, n, &root, &old, &c));
                }
            }
        }
    }

    #[test]
    fn proofs_verify_at_random_sizes_up_to_3000() {
        use rand::{Rng, SeedableRng};
        let all = leaves(3000);
        let t = ProofTree::new(&all);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..300 {
            let n = rng.gen_range(1..=3000u64);
            let m = rng.gen_range(0..n);
            let root = t.mth(0, n);
            assert_eq!(root, root_of(&all[..n as usize]));
            assert!(verify_inclusion(
                m,
                n,
                &leaf_hash(&all[m as usize]),
                &t.inclusion_proof(m, n),
                &root
            ));
            let old = t.mth(0, m + 1);
            assert!(verify_consistency(
                m + 1,
                n,
                &old,
                &root,
                &t.consistency_proof(m + 1, n)
            ));
        }
    }
}
