//! Sealing a secret to an SM2 public key (issue #7, session grants: custody mode 2, docs/architecture.md):
//! the phone seals its share d1 to a fresh grant key the server made, so that only the holder of
//! the grant key can open it, and destroying the grant key destroys the share.
//!
//! ECIES shape: an ephemeral SM2 key `k`, `C1 = [k]G`, the shared point `S = [k]P`;
//! `key = SM3("medsign/seal/v1" ‖ x_S ‖ y_S ‖ C1 ‖ P)[..16]`; the plaintext is wrapped with SM4-GCM
//! under `key` with the caller's associated data ([`crate::wrap::Kek`]). Blob: `C1` (65 bytes,
//! uncompressed) ‖ wrapped.

use crate::{
    Error, Result,
    sm2::{Sm2PublicKey, Sm2SecretKey},
    wrap::Kek,
};
use zeroize::Zeroizing;

const LABEL: &[u8] = b"medsign/seal/v1";

/// `SM3(label ‖ x_S ‖ y_S ‖ C1 ‖ P)[..16]`: the SM4 key of an exchange with the ephemeral point
/// `C1` and the shared point `S` (also the end-to-end channel's, [`crate::e2e`], with its labels).
pub(crate) fn derive(label: &[u8], shared: &[u8; 64], c1: &[u8], recipient: &Sm2PublicKey) -> Result<Kek> {
    let mut input = Zeroizing::new(Vec::with_capacity(label.len() + 64 + 130));
    input.extend_from_slice(label);
    input.extend_from_slice(shared);
    input.extend_from_slice(c1);
    input.extend_from_slice(&recipient.to_sec1_uncompressed());
    let digest = Zeroizing::new(crate::hash::sm3(&input));
    Kek::from_bytes(&digest[..16])
}

/// Seal `plaintext` to `to`, bound to `aad`.
pub fn seal(to: &Sm2PublicKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let eph = Sm2SecretKey::generate()?;
    let c1 = eph.public_key().to_sec1_uncompressed();
    let k = derive(LABEL, &*eph.agree(to)?, &c1, to)?;
    let mut out = c1;
    out.extend_from_slice(&k.wrap(plaintext, aad)?);
    Ok(out)
}

/// Open a blob sealed to `recipient`'s public key with the same `aad`.
pub fn open(recipient: &Sm2SecretKey, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if blob.len() <= 65 {
        return Err(Error::InvalidInput("sealed blob too short".into()));
    }
    let c1 = Sm2PublicKey::from_sec1(&blob[..65])?;
    let k = derive(LABEL, &*recipient.agree(&c1)?, &blob[..65], recipient.public_key())?;
    k.unwrap(&blob[65..], aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_opens_only_with_the_key_and_the_same_aad() {
        let grant = Sm2SecretKey::generate().unwrap();
        let blob = seal(grant.public_key(), b"d1 share bytes", b"grant=g1").unwrap();
        assert_eq!(open(&grant, &blob, b"grant=g1").unwrap().as_slice(), b"d1 share bytes");
        assert!(open(&grant, &blob, b"grant=g2").is_err(), "other context");
        assert!(open(&Sm2SecretKey::generate().unwrap(), &blob, b"grant=g1").is_err(), "other key");
        let mut t = blob.clone();
        *t.last_mut().unwrap() ^= 1;
        assert!(open(&grant, &t, b"grant=g1").is_err(), "tampered");
        let mut c = blob.clone();
        c[10] ^= 1;
        assert!(open(&grant, &c, b"grant=g1").is_err(), "C1 changed");
        assert!(open(&grant, &blob[..60], b"grant=g1").is_err());
        assert_ne!(seal(grant.public_key(), b"x", b"").unwrap(), seal(grant.public_key(), b"x", b"").unwrap());
    }
}
