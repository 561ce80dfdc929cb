//! The journal's on-disk records and their hash chain. Pure functions over bytes.
//!
//! A frame is `len: u32 LE | body | hash: [u8; 32]`, where
//! `body = kind: u8 | seq: u64 LE | time_ms: i64 LE | payload` and
//! `hash = SHA-256("ztgw-journal-v1 record\0" || previous hash || leaf)`, where `leaf` is
//! the body's Merkle leaf hash (`SHA-256(0x00 || body)`), so the body is hashed once for
//! both the chain and the tree.
//! The first frame's previous hash is [`genesis`] of the gateway. Every frame, whatever
//! its kind, is one link of the chain and one leaf of the Merkle tree (leaf index = seq).

use ring::digest::{Context, SHA256};

/// Largest payload a frame may carry (an event is a few hundred bytes).
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Bytes of a frame around its payload.
pub const OVERHEAD: usize = 4 + BODY_HEADER + 32;
const BODY_HEADER: usize = 1 + 8 + 8;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Opens a segment: which gateway, which segment, where the chain stands.
    SegmentHeader,
    /// An audit event (JSON).
    Event,
    /// A signed tree head over every frame before it.
    Checkpoint,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Self::SegmentHeader => 0,
            Self::Event => 1,
            Self::Checkpoint => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::SegmentHeader),
            1 => Some(Self::Event),
            2 => Some(Self::Checkpoint),
            _ => None,
        }
    }
}

/// A frame read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: Kind,
    pub seq: u64,
    pub time_ms: i64,
    pub payload: &'a [u8],
    /// The body as stored: what the chain and the Merkle leaf hash.
    pub body: &'a [u8],
    pub hash: [u8; 32],
}

/// The chain's starting point for a gateway (identified by its CA fingerprint).
pub fn genesis(gateway: &[u8; 32]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(b"ztgw-journal-v1 genesis\0");
    c.update(gateway);
    to_array(c.finish().as_ref())
}

/// The chain hash of a frame whose body's leaf hash is `leaf`, following `prev`.
pub fn chain_hash(prev: &[u8; 32], leaf: &[u8; 32]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(b"ztgw-journal-v1 record\0");
    c.update(prev);
    c.update(leaf);
    to_array(c.finish().as_ref())
}

/// Appends one frame to `out` and returns its chain hash and its Merkle leaf hash.
pub fn encode(
    out: &mut Vec<u8>,
    prev: &[u8; 32],
    kind: Kind,
    seq: u64,
    time_ms: i64,
    payload: &[u8],
) -> ([u8; 32], [u8; 32]) {
    let len = (BODY_HEADER + payload.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    let body_start = out.len();
    out.push(kind.byte());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let leaf = super::merkle::leaf_hash(&out[body_start..]);
    let hash = chain_hash(prev, &leaf);
    out.extend_from_slice(&hash);
    (hash, leaf)
}

/// Why bytes are not the next frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the frame announces: a torn write, or a cut.
    Incomplete,
    /// The length is impossible.
    BadLength,
    /// The kind byte is unknown.
    BadKind,
}

/// Reads the frame at the start of `bytes`; returns it and its total size. The hash is
/// read, not checked: the chain check needs the previous hash ([`check_link`]).
pub fn decode(bytes: &[u8]) -> Result<(Frame<'_>, usize), FrameError> {
    let len_bytes: [u8; 4] = bytes
        .get(..4)
        .ok_or(FrameError::Incomplete)?
        .try_into()
        .map_err(|_| FrameError::Incomplete)?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if !(BODY_HEADER..=BODY_HEADER + MAX_PAYLOAD).contains(&len) {
        return Err(FrameError::BadLength);
    }
    let total = 4 + len + 32;
    let frame = bytes.get(..total).ok_or(FrameError::Incomplete)?;
    let body = &frame[4..4 + len];
    let kind = Kind::from_byte(body[0]).ok_or(FrameError::BadKind)?;
    let seq = u64::from_le_bytes(to_array(&body[1..9]));
    let time_ms = i64::from_le_bytes(to_array(&body[9..17]));
    Ok((
        Frame {
            kind,
            seq,
            time_ms,
            payload: &body[BODY_HEADER..],
            body,
            hash: to_array(&frame[4 + len..]),
        },
        total,
    ))
}

/// Whether `frame`, whose leaf hash is `leaf`, follows `prev` in the chain.
pub fn check_link(prev: &[u8; 32], frame: &Frame<'_>, leaf: &[u8; 32]) -> bool {
    chain_hash(prev, leaf) == frame.hash
}

fn to_array<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&s[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn frames_round_trip_and_chain() {
        let g = genesis(&[7; 32]);
        let mut buf = Vec::new();
        let (h1, l1) = encode(
            &mut buf,
            &g,
            Kind::Event,
            0,
            1_700_000_000_000,
            b"{\"a\":1}",
        );
        let (h2, l2) = encode(&mut buf, &h1, Kind::Checkpoint, 1, 1_700_000_000_001, b"{}");
        let (f1, n1) = decode(&buf).expect("first");
        assert_eq!(
            (f1.kind, f1.seq, f1.payload),
            (Kind::Event, 0, &b"{\"a\":1}"[..])
        );
        assert_eq!(leaf_hash(f1.body), l1);
        assert!(check_link(&g, &f1, &l1));
        let (f2, n2) = decode(&buf[n1..]).expect("second");
        assert_eq!(f2.hash, h2);
        assert!(check_link(&h1, &f2, &l2));
        assert!(!check_link(&g, &f2, &l2));
        assert_eq!(n1 + n2, buf.len());
    }

    #[test]
    fn damaged_frames_are_told_apart() {
        let g = genesis(&[1; 32]);
        let mut buf = Vec::new();
        encode(&mut buf, &g, Kind::Event, 0, 0, b"payload");
        assert_eq!(
            decode(&buf[..buf.len() - 1]).err(),
            Some(FrameError::Incomplete)
        );
        assert_eq!(decode(&[]).err(), Some(FrameError::Incomplete));
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 0]).err(),
            Some(FrameError::BadLength)
        );
        let mut bad = buf.clone();
        bad[4] = 9;
        assert_eq!(decode(&bad).err(), Some(FrameError::BadKind));
        let mut flipped = buf.clone();
        flipped[20] ^= 1;
        let (f, _) = decode(&flipped).expect("still a frame");
        assert!(
            !check_link(&g, &f, &leaf_hash(f.body)),
            "a flipped byte breaks the link"
        );
    }
}
