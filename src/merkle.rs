//! RFC 9162 (Certificate Transparency v2) Merkle tree hash with SHA-256, over the 32-byte
//! blake3 event hashes as leaf data, so existing tlog tooling can check our roots.
//! `MTH({}) = SHA-256()`, `leaf = SHA-256(0x00 || d)`, `node = SHA-256(0x01 || l || r)`,
//! split at the largest power of two smaller than n.

use sha2::{Digest, Sha256};

use crate::types::Hash32;

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
#[derive(Debug, Clone, Default)]
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
    use crate::types::Bytes;

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
