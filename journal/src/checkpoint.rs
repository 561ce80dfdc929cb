//! Signed tree heads: the journal key (Ed25519) signs the Merkle root, the chain hash and
//! the size of the journal, so a verifier holding the public key detects any change,
//! reordering or deletion, and truncation back past a checkpoint it kept.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::merkle::{Frontier, Hash};
use super::{hex, unhex32};

/// The statement a checkpoint signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// The gateway (its CA fingerprint), hex.
    pub gateway: String,
    /// Frames covered: seq 0 to size - 1.
    pub size: u64,
    /// Merkle root of those frames, hex.
    pub root: String,
    /// Chain hash of frame size - 1, hex.
    pub chain: String,
    pub time_ms: i64,
}

/// A tree head with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    #[serde(flatten)]
    pub head: TreeHead,
    /// First 8 bytes of SHA-256 of the public key, hex.
    pub key_id: String,
    /// Ed25519 signature, base64.
    pub signature: String,
}

/// The signed state a purge leaves: where the kept journal starts, so it still verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeState {
    pub gateway: String,
    pub first_seq: u64,
    /// Chain hash of frame first_seq - 1, hex.
    pub chain: String,
    /// The Merkle frontier of frames 0 to first_seq - 1.
    pub frontier: Frontier,
    pub segments_removed: Vec<String>,
    pub time_ms: i64,
    pub key_id: String,
    pub signature: String,
}

fn head_message(h: &TreeHead) -> Vec<u8> {
    let mut m = b"ztgw-journal-v1 tree-head\0".to_vec();
    m.extend_from_slice(h.gateway.as_bytes());
    m.push(0);
    m.extend_from_slice(&h.size.to_le_bytes());
    m.extend_from_slice(h.root.as_bytes());
    m.push(0);
    m.extend_from_slice(h.chain.as_bytes());
    m.push(0);
    m.extend_from_slice(&h.time_ms.to_le_bytes());
    m
}

fn purge_message(p: &PurgeState) -> Vec<u8> {
    let mut m = b"ztgw-journal-v1 purge\0".to_vec();
    m.extend_from_slice(p.gateway.as_bytes());
    m.push(0);
    m.extend_from_slice(&p.first_seq.to_le_bytes());
    m.extend_from_slice(p.chain.as_bytes());
    m.push(0);
    for n in &p.frontier.nodes {
        m.extend_from_slice(n);
    }
    m.extend_from_slice(&p.frontier.size.to_le_bytes());
    for s in &p.segments_removed {
        m.extend_from_slice(s.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(&p.time_ms.to_le_bytes());
    m
}

/// The journal's signing key. Its `Debug` shows only the key id.
pub struct JournalKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for JournalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JournalKey({})", self.key_id())
    }
}

impl JournalKey {
    /// A new key; returns it with its PKCS#8 encoding to store (0600).
    pub fn generate() -> Result<(Self, ztgw_pki::Secret<Vec<u8>>), String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| e.to_string())?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| e.to_string())?;
        Ok((
            Self { pair },
            ztgw_pki::Secret::new(pkcs8.as_ref().to_vec()),
        ))
    }

    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self, String> {
        Ed25519KeyPair::from_pkcs8(bytes)
            .map(|pair| Self { pair })
            .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}"))
    }

    pub fn public(&self) -> PublicKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(k)
    }

    pub fn key_id(&self) -> String {
        self.public().key_id()
    }

    pub fn sign_head(&self, head: TreeHead) -> SignedTreeHead {
        let sig = self.pair.sign(&head_message(&head));
        SignedTreeHead {
            key_id: self.key_id(),
            signature: B64.encode(sig.as_ref()),
            head,
        }
    }

    pub fn sign_purge(&self, mut p: PurgeState) -> PurgeState {
        p.key_id = self.key_id();
        p.signature = B64.encode(self.pair.sign(&purge_message(&p)).as_ref());
        p
    }
}

/// The journal's public key: what auditors hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Parses the base64 text of `journal.pub`.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = B64.decode(text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    pub fn key_id(&self) -> String {
        hex(&ring::digest::digest(&ring::digest::SHA256, &self.0).as_ref()[..8])
    }

    pub fn verify_head(&self, sth: &SignedTreeHead) -> bool {
        let Ok(sig) = B64.decode(&sth.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&head_message(&sth.head), &sig)
            .is_ok()
    }

    pub fn verify_purge(&self, p: &PurgeState) -> bool {
        let Ok(sig) = B64.decode(&p.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&purge_message(p), &sig)
            .is_ok()
    }
}

/// A tree head for the state `(size, root, chain)`.
pub fn head(gateway: &[u8; 32], size: u64, root: &Hash, chain: &Hash, time_ms: i64) -> TreeHead {
    TreeHead {
        gateway: hex(gateway),
        size,
        root: hex(root),
        chain: hex(chain),
        time_ms,
    }
}

/// Reads a hash field back.
pub fn hash_field(s: &str) -> Option<Hash> {
    unhex32(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_verify_only_unchanged_and_with_the_right_key() {
        let (key, _) = JournalKey::generate().expect("key");
        let (other, _) = JournalKey::generate().expect("key");
        let sth = key.sign_head(head(&[1; 32], 10, &[2; 32], &[3; 32], 1_000));
        assert!(key.public().verify_head(&sth));
        assert!(!other.public().verify_head(&sth));
        let mut changed = sth.clone();
        changed.head.size = 9;
        assert!(!key.public().verify_head(&changed));
        let json = serde_json::to_string(&sth).expect("json");
        let back: SignedTreeHead = serde_json::from_str(&json).expect("back");
        assert!(key.public().verify_head(&back));
        assert!(!format!("{key:?}").contains("pkcs8"));
    }
}
