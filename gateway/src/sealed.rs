//! Files sealed with a passphrase: backups (`ztgw backup`) and join bundles
//! (`ztgw join-bundle`). One format: an 8-byte magic naming the kind, a 16-byte salt, the
//! PBKDF2-HMAC-SHA256 iteration count (4 bytes, little-endian), a 12-byte nonce, then the
//! ChaCha20-Poly1305 encryption of the contents with the key PBKDF2 derives from the
//! passphrase; the header is the AEAD's associated data, so a change anywhere (the
//! magic and the iteration count too) makes it fail to open.

use std::num::NonZeroU32;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;
use ztgw_pki::Secret;

use crate::clock::{Entropy, random};

pub const HEADER_LEN: usize = 8 + 16 + 4 + 12;
/// The AEAD's tag, after the contents.
pub const TAG_LEN: usize = 16;
/// PBKDF2 iterations for what is sealed now (OWASP's figure for PBKDF2-HMAC-SHA256).
pub const ITERATIONS: u32 = 600_000;
/// The most iterations a sealed file may ask of whoever opens it.
const MAX_ITERATIONS: u32 = 10_000_000;
/// The shortest passphrase accepted.
pub const MIN_PASSPHRASE: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the passphrase must be at least {MIN_PASSPHRASE} characters")]
    WeakPassphrase,
    /// Not of the kind asked for (another magic), or cut short.
    #[error("not of this kind")]
    NotOurs,
    #[error("wrong passphrase, or damaged")]
    Decrypt,
    #[error("{0}")]
    Other(String),
}

/// Seals `plain` under `magic` with `passphrase`.
pub fn seal(
    magic: &[u8; 8],
    mut plain: Vec<u8>,
    passphrase: &Secret<String>,
    entropy: &dyn Entropy,
) -> Result<Vec<u8>, SealError> {
    if passphrase.expose().chars().count() < MIN_PASSPHRASE {
        return Err(SealError::WeakPassphrase);
    }
    let salt: [u8; 16] = random(entropy).map_err(|e| SealError::Other(e.to_string()))?;
    let nonce: [u8; 12] = random(entropy).map_err(|e| SealError::Other(e.to_string()))?;
    let mut header = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
    header.extend_from_slice(magic);
    header.extend_from_slice(&salt);
    header.extend_from_slice(&ITERATIONS.to_le_bytes());
    header.extend_from_slice(&nonce);
    let key = derive(passphrase, &salt, ITERATIONS)?;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(&header),
        &mut plain,
    )
    .map_err(|_| SealError::Other("encryption failed".into()))?;
    let mut out = header;
    out.extend_from_slice(&plain);
    Ok(out)
}

/// Opens `bytes` sealed under `magic` with `passphrase`: the contents.
pub fn open(
    magic: &[u8; 8],
    bytes: &[u8],
    passphrase: &Secret<String>,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if bytes.len() < HEADER_LEN + TAG_LEN || &bytes[..8] != magic {
        return Err(SealError::NotOurs);
    }
    let (header, sealed) = bytes.split_at(HEADER_LEN);
    let salt = &header[8..24];
    let iterations = u32::from_le_bytes([header[24], header[25], header[26], header[27]]);
    if !(1..=MAX_ITERATIONS).contains(&iterations) {
        return Err(SealError::NotOurs);
    }
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&header[28..40]);
    let key = derive(passphrase, salt, iterations)?;
    let mut data = Zeroizing::new(sealed.to_vec());
    let n = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut data,
        )
        .map_err(|_| SealError::Decrypt)?
        .len();
    data.truncate(n);
    Ok(data)
}

fn derive(
    passphrase: &Secret<String>,
    salt: &[u8],
    iterations: u32,
) -> Result<LessSafeKey, SealError> {
    let mut key = Zeroizing::new([0u8; 32]);
    let n = NonZeroU32::new(iterations).ok_or(SealError::NotOurs)?;
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        salt,
        passphrase.expose().as_bytes(),
        key.as_mut(),
    );
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, key.as_ref())
        .map_err(|_| SealError::Other("key".into()))?;
    Ok(LessSafeKey::new(unbound))
}
