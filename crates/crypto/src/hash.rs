//! Hash functions and HMAC used across medsign: SM3 (GB/T 32905) and the SHA-2 family; SHA-1 only
//! for legacy identifiers (OCSP CertID and responder key hashes), never for signatures.

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
    /// SHA-384 (FIPS 180-4).
    Sha384,
    /// SHA-512 (FIPS 180-4).
    Sha512,
}

impl HashAlg {
    /// Digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sm3 => sm3(data).to_vec(),
            HashAlg::Sha256 => sha256(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sm3 | HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Name as used in the CLI and JSON (`sm3`, `sha256`, `sha384`, `sha512`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sm3 => "sm3",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// Parse a name (case-insensitive; `sha-256` style accepted).
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sm3" => Some(HashAlg::Sm3),
            "sha256" => Some(HashAlg::Sha256),
            "sha384" => Some(HashAlg::Sha384),
            "sha512" => Some(HashAlg::Sha512),
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

#[cfg(feature = "native")]
/// SHA-1 — only for identifiers that protocols still define with it (OCSP CertID, RFC 6960
/// responder key hash, RFC 5280 key identifiers); never for signatures.
pub fn sha1_legacy(data: &[u8]) -> [u8; 20] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
    d.as_ref().try_into().expect("SHA-1 is 20 bytes")
}

#[cfg(feature = "native")]
/// A time-based one-time password (RFC 6238: HOTP of RFC 4226 over the 30-second step `step`,
/// HMAC-SHA-1, 6 digits) — what authenticator apps compute from the secret of an `otpauth://`
/// link. SHA-1 because every such app defaults to it; HMAC-SHA-1 has no known weakness here.
pub fn totp(secret: &[u8], step: u64) -> u32 {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = aws_lc_rs::hmac::sign(&key, &step.to_be_bytes());
    let h = mac.as_ref();
    let at = (h[19] & 0x0f) as usize;
    let code = u32::from_be_bytes([h[at] & 0x7f, h[at + 1], h[at + 2], h[at + 3]]);
    code % 1_000_000
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

    /// RFC 6238 Appendix B (SHA-1 seed "12345678901234567890"), the last six of its eight digits.
    #[cfg(feature = "native")]
    #[test]
    fn totp_matches_rfc6238() {
        let seed = b"12345678901234567890";
        for (t, code) in
            [(59u64, 287082), (1111111109, 81804), (1111111111, 50471), (1234567890, 5924), (2000000000, 279037)]
        {
            assert_eq!(totp(seed, t / 30), code, "T = {t}");
        }
    }

    /// GB/T 32905 appendix A, example 1: SM3("abc").
    #[test]
    fn sm3_standard_vector() {
        assert_eq!(hex::encode(sm3(b"abc")), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
        assert_eq!(sm3_parts(&[b"a", b"bc"]), sm3(b"abc"));
    }

    /// FIPS 180-4 "abc" vectors (first bytes), and the name round trip.
    #[test]
    fn sha_family_vectors() {
        assert_eq!(hex::encode(sha1_legacy(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert!(hex::encode(HashAlg::Sha384.digest(b"abc")).starts_with("cb00753f45a35e8b"));
        assert!(hex::encode(HashAlg::Sha512.digest(b"abc")).starts_with("ddaf35a193617aba"));
        for h in [HashAlg::Sm3, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            assert_eq!(HashAlg::from_name(h.name()), Some(h));
            assert_eq!(h.digest(b"x").len(), h.output_len());
        }
        assert_eq!(HashAlg::from_name("SHA-256"), Some(HashAlg::Sha256));
        assert_eq!(HashAlg::from_name("md5"), None);
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
