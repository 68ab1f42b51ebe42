//! The signing seam: code that needs a signature (CMS, PDF, CA, TSA) asks a [`Signer`] and never
//! holds a key. A local key, a two-party (phone + server) key or a remote service implement it
//! the same way (after pyHanko's signer abstraction).

use crate::{Error, HashAlg, PrivateKey, PublicKey, Result};

/// A signature algorithm as carried in X.509 and CMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SignatureScheme {
    /// SM2 with SM3 (`SM3withSM2`, 1.2.156.10197.1.501).
    Sm2Sm3,
    /// ECDSA P-256 with SHA-256 (1.2.840.10045.4.3.2).
    EcdsaP256Sha256,
    /// RSA PKCS#1 v1.5 with SHA-256 (1.2.840.113549.1.1.11).
    RsaPkcs1Sha256,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32 (1.2.840.113549.1.1.10).
    RsaPssSha256,
}

impl SignatureScheme {
    /// The message hash of this scheme.
    pub fn hash(self) -> HashAlg {
        match self {
            SignatureScheme::Sm2Sm3 => HashAlg::Sm3,
            _ => HashAlg::Sha256,
        }
    }

    /// Readable name.
    pub fn name(self) -> &'static str {
        match self {
            SignatureScheme::Sm2Sm3 => "SM3withSM2",
            SignatureScheme::EcdsaP256Sha256 => "ecdsa-with-SHA256",
            SignatureScheme::RsaPkcs1Sha256 => "sha256WithRSAEncryption",
            SignatureScheme::RsaPssSha256 => "RSASSA-PSS-SHA256",
        }
    }
}

/// Anything that can produce signatures for one public key.
pub trait Signer: Send + Sync {
    /// The scheme of the signatures this signer makes.
    fn scheme(&self) -> SignatureScheme;
    /// The public key that verifies them.
    fn public_key(&self) -> &PublicKey;
    /// The SM2 distinguishing ID used (ignored for other schemes).
    fn sm2_id(&self) -> &[u8] {
        crate::sm2::DEFAULT_ID
    }
    /// Sign `msg` (hashing included; SM2 includes Z_A). SM2 and ECDSA return DER.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>>;
}

/// A [`Signer`] over a local [`PrivateKey`] (server custody, CLI).
pub struct KeySigner {
    key: PrivateKey,
    public: PublicKey,
    scheme: SignatureScheme,
    sm2_id: Vec<u8>,
    /// `Z_A` of an SM2 key for `sm2_id`: the same for every signature, so hashed once (four SM3
    /// blocks of every signature otherwise; issue #20).
    sm2_z: Option<[u8; 32]>,
}

impl KeySigner {
    /// A signer with the key's default scheme and the default SM2 ID.
    pub fn new(key: PrivateKey) -> Self {
        let public = key.public_key();
        let scheme = public.default_scheme();
        Self { key, public, scheme, sm2_id: Vec::new(), sm2_z: None }.with_sm2_id(crate::sm2::DEFAULT_ID)
    }

    /// Choose the scheme (e.g. RSA-PSS); it must suit the key.
    pub fn with_scheme(mut self, scheme: SignatureScheme) -> Result<Self> {
        if !self.public.schemes().contains(&scheme) {
            return Err(Error::Unsupported(format!(
                "a {} key cannot sign with {}",
                self.public.alg().name(),
                scheme.name()
            )));
        }
        self.scheme = scheme;
        Ok(self)
    }

    /// Choose the SM2 distinguishing ID.
    pub fn with_sm2_id(mut self, id: &[u8]) -> Self {
        self.sm2_id = id.to_vec();
        // an ID too long for ENTL leaves no Z: signing then reports it, as before
        self.sm2_z = self.public.as_sm2().and_then(|p| p.z_a(id).ok());
        self
    }

    /// The key.
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }
}

impl Signer for KeySigner {
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sm2_id(&self) -> &[u8] {
        &self.sm2_id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        match (&self.key, self.scheme, &self.sm2_z) {
            (PrivateKey::Sm2(k), SignatureScheme::Sm2Sm3, Some(z)) => {
                Ok(k.sign_prehash(&crate::hash::sm3_parts(&[z, msg]))?.to_der())
            }
            _ => self.key.sign(self.scheme, msg, Some(&self.sm2_id)),
        }
    }
}

/// A signer shared between holders (a seal key loaded once and used by every signature).
impl<S: Signer + ?Sized> Signer for std::sync::Arc<S> {
    fn scheme(&self) -> SignatureScheme {
        (**self).scheme()
    }
    fn public_key(&self) -> &PublicKey {
        (**self).public_key()
    }
    fn sm2_id(&self) -> &[u8] {
        (**self).sm2_id()
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        (**self).sign(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyAlg, sm2::DEFAULT_ID};

    #[test]
    fn key_signer_uses_its_scheme_and_id() {
        let s = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap()).with_sm2_id(b"alice@hospital");
        let sig = s.sign(b"m").unwrap();
        s.public_key().verify(s.scheme(), b"m", &sig, Some(b"alice@hospital")).unwrap();
        assert!(s.public_key().verify(s.scheme(), b"m", &sig, None).is_err());
        // the Z hashed once at construction is the default ID's, and follows a change of ID
        let d = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
        d.public_key().verify(d.scheme(), b"m", &d.sign(b"m").unwrap(), None).unwrap();
        let back = s.with_sm2_id(DEFAULT_ID);
        back.public_key().verify(back.scheme(), b"m", &back.sign(b"m").unwrap(), None).unwrap();
        // an ID too long for ENTL (16 bits of bit length) is still refused when signing
        let long = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap()).with_sm2_id(&[b'a'; 8192]);
        assert!(long.sign(b"m").is_err());
        assert!(
            KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap())
                .with_scheme(SignatureScheme::RsaPssSha256)
                .is_err()
        );
    }
}
