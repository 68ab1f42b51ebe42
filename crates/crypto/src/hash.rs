//! Hash functions and HMAC used across medsign: SM3 (GB/T 32905) and SHA-256.

use hmac::{KeyInit, Mac};
use sha2::Digest as _;

/// A hash algorithm medsign signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    /// SM3, 256-bit (GB/T 32905).
    Sm3,
    /// SHA-256 (FIPS 180-4).
    Sha256,
}

impl HashAlg {
    /// Digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sm3 => sm3(data).to_vec(),
            HashAlg::Sha256 => sha256(data).to_vec(),
        }
    }

    /// Output length in bytes (32 for both).
    pub fn output_len(self) -> usize {
        32
    }

    /// Name as used in the CLI and JSON (`sm3`, `sha256`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sm3 => "sm3",
            HashAlg::Sha256 => "sha256",
        }
    }

    /// Parse `sm3` / `sha256` (case-insensitive; `sha-256` accepted).
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sm3" => Some(HashAlg::Sm3),
            "sha256" | "sha-256" => Some(HashAlg::Sha256),
            _ => None,
        }
    }
}

/// SM3 digest.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    sm3::Sm3::digest(data).into()
}

/// SM3 over several parts, without concatenating them first.
pub fn sm3_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = sm3::Sm3::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// SHA-256 digest.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// HMAC-SM3 (RFC 2104 over SM3).
pub fn hmac_sm3(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <hmac::Hmac<sm3::Sm3> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use elliptic_curve::subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GB/T 32905 appendix A, example 1: SM3("abc").
    #[test]
    fn sm3_standard_vector() {
        assert_eq!(hex::encode(sm3(b"abc")), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
        assert_eq!(sm3_parts(&[b"a", b"bc"]), sm3(b"abc"));
    }

    #[test]
    fn hmac_sm3_differs_by_key_and_is_deterministic() {
        let a = hmac_sm3(b"k1", &[b"msg"]);
        assert_eq!(a, hmac_sm3(b"k1", &[b"m", b"sg"]));
        assert_ne!(a, hmac_sm3(b"k2", &[b"msg"]));
    }

    #[test]
    fn names_round_trip() {
        for h in [HashAlg::Sm3, HashAlg::Sha256] {
            assert_eq!(HashAlg::from_name(h.name()), Some(h));
        }
        assert_eq!(HashAlg::from_name("md5"), None);
    }
}
