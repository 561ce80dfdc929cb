//! The Merkle tree of RFC 9162 (Certificate Transparency 2.0) over the journal's frames:
//! an auditor can be shown that one record is in the journal without the rest.
//!
//! Leaf hash `SHA-256(0x00 || leaf)`, node hash `SHA-256(0x01 || left || right)`. The
//! writer keeps a [`Frontier`] (the roots of the perfect subtrees covering the leaves so
//! far), enough to compute the tree head after each append in O(log n).

use ring::digest::{Context, SHA256};

pub type Hash = [u8; 32];

pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[0]);
    c.update(leaf);
    to_hash(c.finish().as_ref())
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut c = Context::new(&SHA256);
    c.update(&[1]);
    c.update(left);
    c.update(right);
    to_hash(c.finish().as_ref())
}

/// The root of the empty tree.
pub fn empty_root() -> Hash {
    to_hash(ring::digest::digest(&SHA256, b"").as_ref())
}

/// The roots of the perfect subtrees covering leaves `[0, size)`, largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Frontier {
    pub size: u64,
    #[serde(with = "hex_hashes")]
    pub nodes: Vec<Hash>,
}

impl Frontier {
    /// Adds a leaf (already hashed).
    pub fn push(&mut self, mut h: Hash) {
        // Merge equal-sized subtrees: one merge per trailing 1 bit of the old size.
        let mut size = self.size;
        while size & 1 == 1 {
            let left = self.nodes.pop().unwrap_or_default();
            h = node_hash(&left, &h);
            size >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// The tree head of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// The root of `leaves` (already hashed), computed from scratch.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path proving leaf `index` is in the tree of `leaves` (RFC 9162 2.1.3.1).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return Vec::new();
    }
    let k = split(n);
    if index < k {
        let mut p = inclusion_proof(&leaves[..k], index);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = inclusion_proof(&leaves[k..], index - k);
        p.push(root(&leaves[..k]));
        p
    }
}

/// Checks an inclusion proof (RFC 9162 2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &r == root
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

fn to_hash(s: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&s[..32]);
    h
}

mod hex_hashes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[super::Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|h| super::super::hex(h)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<super::Hash>, D::Error> {
        let v: Vec<String> = Vec::deserialize(d)?;
        v.iter()
            .map(|s| {
                super::super::unhex32(s)
                    .ok_or_else(|| serde::de::Error::custom("not a 32-byte hex hash"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn frontier_matches_the_recursive_root() {
        let all = leaves(70);
        let mut f = Frontier::default();
        assert_eq!(f.root(), empty_root());
        for (i, l) in all.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.root(), root(&all[..=i]), "size {}", i + 1);
            assert_eq!(f.nodes.len(), (i + 1).count_ones() as usize);
        }
    }

    #[test]
    fn inclusion_proofs_verify_and_catch_lies() {
        for n in [1usize, 2, 3, 5, 8, 13, 64, 100] {
            let all = leaves(n);
            let r = root(&all);
            for i in 0..n {
                let proof = inclusion_proof(&all, i);
                assert!(
                    verify_inclusion(&all[i], i as u64, n as u64, &proof, &r),
                    "n={n} i={i}"
                );
                let other = leaf_hash(b"forged");
                assert!(!verify_inclusion(&other, i as u64, n as u64, &proof, &r));
                if n > 1 {
                    assert!(
                        !verify_inclusion(&all[i], ((i + 1) % n) as u64, n as u64, &proof, &r)
                            || all[i] == all[(i + 1) % n]
                    );
                }
            }
        }
    }

    #[test]
    fn rfc_9162_empty_tree_root() {
        assert_eq!(
            super::super::hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
