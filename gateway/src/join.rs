//! The join bundle: how a gateway's certificate authority reaches another gateway of the
//! same registry (`ztgw join-bundle` on one, `ztgw init --join` on the other), never
//! through the database.
//!
//! A bundle is a text file: a first line `ztgw-join-bundle v1`, then base64 of a file
//! sealed with the passphrase ([`crate::sealed`], magic `ZTGWJON1`) whose contents are a
//! JSON object: the CA's certificate and key, and the registry's URL. A bundle altered
//! anywhere does not open. The passphrase travels apart from the file.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use ztgw_pki::Secret;

use crate::clock::Entropy;
use crate::sealed::SealError;

const HEADER: &str = "ztgw-join-bundle v1";
const MAGIC: &[u8; 8] = b"ZTGWJON1";
/// The largest bundle read.
pub const MAX_BUNDLE_BYTES: u64 = 64 * 1024;

/// What a bundle carries.
#[derive(Clone, Serialize, Deserialize)]
pub struct JoinBundle {
    pub ca_cert: String,
    pub ca_key: String,
    /// The registry the gateways share (`[registry] url`, never with a password).
    pub registry_url: Option<String>,
}

impl std::fmt::Debug for JoinBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinBundle")
            .field("registry_url", &self.registry_url)
            .finish_non_exhaustive()
    }
}

impl Drop for JoinBundle {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.ca_key);
    }
}

/// Why a bundle was not made or not opened.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("this is not a ztgw join bundle (its first line is not \"{HEADER}\")")]
    NotABundle,
    #[error("the bundle is damaged ({0})")]
    Damaged(&'static str),
    #[error("the bundle does not open with this passphrase (or it was altered)")]
    WrongPassphrase,
    #[error("{0}")]
    Sealed(SealError),
}

impl From<SealError> for JoinError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::NotOurs => Self::Damaged("not a sealed bundle"),
            SealError::Decrypt => Self::WrongPassphrase,
            other => Self::Sealed(other),
        }
    }
}

/// Seals `bundle` with `passphrase`: the bundle file's text.
pub fn seal(
    bundle: &JoinBundle,
    passphrase: &Secret<String>,
    entropy: &dyn Entropy,
) -> Result<String, JoinError> {
    let json = serde_json::to_vec(bundle).map_err(|e| SealError::Other(e.to_string()))?;
    let sealed = crate::sealed::seal(MAGIC, json, passphrase, entropy)?;
    Ok(format!(
        "{HEADER}\n{}\n",
        base64::engine::general_purpose::STANDARD.encode(sealed)
    ))
}

/// Opens a bundle file's `text` with `passphrase`.
pub fn open(text: &str, passphrase: &Secret<String>) -> Result<JoinBundle, JoinError> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(HEADER) {
        return Err(JoinError::NotABundle);
    }
    let body: String = lines.map(str::trim).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| JoinError::Damaged("not base64"))?;
    let plain = crate::sealed::open(MAGIC, &raw, passphrase)?;
    serde_json::from_slice(&plain).map_err(|_| JoinError::Damaged("its contents"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemEntropy;

    fn bundle() -> JoinBundle {
        JoinBundle {
            ca_cert: "CERT".into(),
            ca_key: "KEY".into(),
            registry_url: Some("postgresql://db/ztgw".into()),
        }
    }

    fn pass(s: &str) -> Secret<String> {
        Secret::new(s.to_owned())
    }

    #[test]
    fn a_bundle_opens_with_its_passphrase_only() {
        let text = seal(
            &bundle(),
            &pass("correct horse battery"),
            &SystemEntropy::new(),
        )
        .expect("seal");
        assert!(!text.contains("KEY") && text.starts_with(HEADER));
        let b = open(&text, &pass("correct horse battery")).expect("open");
        assert_eq!((b.ca_cert.as_str(), b.ca_key.as_str()), ("CERT", "KEY"));
        assert!(matches!(
            open(&text, &pass("correct horse battery!")),
            Err(JoinError::WrongPassphrase)
        ));
        // One character changed anywhere in the body: it does not open.
        let body_at = text.find('\n').expect("two lines") + 10;
        let mut altered = text.clone().into_bytes();
        altered[body_at] = if altered[body_at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).expect("text");
        assert!(open(&altered, &pass("correct horse battery")).is_err());
        assert!(matches!(
            open("something else\n", &pass("correct horse battery")),
            Err(JoinError::NotABundle)
        ));
        assert!(
            format!("{b:?}").find("KEY").is_none(),
            "the key stays out of Debug"
        );
    }

    #[test]
    fn a_short_passphrase_is_refused() {
        assert!(matches!(
            seal(&bundle(), &pass("short"), &SystemEntropy::new()),
            Err(JoinError::Sealed(SealError::WeakPassphrase))
        ));
    }
}
