//! PKCS#10 certification requests (RFC 2986): parse and check proof of possession; build (for
//! tests, tools and the enrolment flow).

use crate::{
    Error, Result,
    alg::{Sm2IdPolicy, verify_signature},
    cert::{SignedEnvelope, envelope, sign_envelope},
};
use der::{Decode, Encode, asn1::SetOfVec};
use medsign_crypto::{PublicKey, SignatureScheme, Signer};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::{
    name::Name,
    request::{CertReq, CertReqInfo, Version},
};

/// A request whose signature (proof of possession) verified.
#[derive(Debug, Clone)]
pub struct Csr {
    /// requested subject
    pub subject: Name,
    /// the key to certify
    pub public_key: PublicKey,
    /// the SM2 ID the proof verified with (SM2 only)
    pub sm2_id: Option<&'static [u8]>,
}

/// Parse a PEM (`CERTIFICATE REQUEST`) or DER request and verify its self-signature.
pub fn parse(bytes: &[u8], policy: Sm2IdPolicy) -> Result<Csr> {
    let der = match core::str::from_utf8(bytes) {
        Ok(t) if t.contains("-----BEGIN") => {
            let (label, der) = medsign_crypto::keys::pem_decode(t)?;
            if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
                return Err(Error::Invalid(format!("PEM block '{label}' is not a certificate request")));
            }
            der
        }
        _ => bytes.to_vec(),
    };
    let req = CertReq::from_der(&der).map_err(|e| Error::malformed("certificate request", e))?;
    let env = SignedEnvelope::from_der(&der).map_err(|e| Error::malformed("certificate request", e))?;
    let info = env.tbs.to_der().map_err(|e| Error::malformed("certificate request", e))?;
    let spki = req.info.public_key.to_der().map_err(|e| Error::malformed("certificate request", e))?;
    let public_key = PublicKey::from_spki_der(&spki)?;
    let sig =
        req.signature.as_bytes().ok_or_else(|| Error::malformed("certificate request", "signature has unused bits"))?;
    let sm2_id = verify_signature(&req.algorithm, None, &public_key, &info, sig, policy)
        .map_err(|_| Error::Invalid("the request's signature (proof of possession) does not verify".into()))?;
    Ok(Csr { subject: req.info.subject, public_key, sm2_id })
}

/// Build a request for `subject`, signed by `signer` (PEM).
pub fn build(subject: &Name, signer: &dyn Signer) -> Result<String> {
    let der = sign_envelope(&request_info(subject, signer.public_key())?, signer)?;
    Ok(medsign_crypto::keys::pem_encode("CERTIFICATE REQUEST", &der))
}

/// The part of a request that is signed (`CertificationRequestInfo`, DER): version 1, `subject`,
/// the key, no attributes. For a key held by two parties (the phone's split key), both sign it
/// with the two-party protocol and [`assemble`] makes the request.
pub fn request_info(subject: &Name, public_key: &PublicKey) -> Result<Vec<u8>> {
    CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key: SubjectPublicKeyInfoOwned::from_der(&public_key.to_spki_der())
            .map_err(|e| Error::malformed("public key", e))?,
        attributes: SetOfVec::new(),
    }
    .to_der()
    .map_err(|e| Error::malformed("request", e))
}

/// A request (DER) from its [`request_info`] and a signature over it made elsewhere; check it
/// with [`parse`] before use.
pub fn assemble(info: &[u8], scheme: SignatureScheme, signature: &[u8]) -> Result<Vec<u8>> {
    envelope(info, scheme, signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::parse_dn;
    use medsign_crypto::{KeyAlg, PrivateKey, signer::KeySigner};

    #[test]
    fn build_parse_and_reject_tampering() {
        for alg in [KeyAlg::Sm2, KeyAlg::P256, KeyAlg::Rsa2048] {
            let s = KeySigner::new(PrivateKey::generate(alg).unwrap());
            let pem = build(&parse_dn("CN=李四,O=某县人民医院,C=CN").unwrap(), &s).unwrap();
            let csr = parse(pem.as_bytes(), Sm2IdPolicy::Standard).unwrap();
            assert_eq!(&csr.public_key, s.public_key());
            let (_, mut der) = medsign_crypto::keys::pem_decode(&pem).unwrap();
            let n = der.len();
            der[n - 4] ^= 1;
            assert!(parse(&der, Sm2IdPolicy::AllowEmpty).is_err());
        }
        assert!(parse(b"junk", Sm2IdPolicy::Standard).is_err());
    }

    #[test]
    fn a_request_signed_elsewhere_is_assembled_and_checked() {
        let s = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
        let subject = parse_dn("CN=王医生,O=某县人民医院,C=CN").unwrap();
        let info = request_info(&subject, s.public_key()).unwrap();
        let sig = s.sign(&info).unwrap();
        let der = assemble(&info, s.scheme(), &sig).unwrap();
        let csr = parse(&der, Sm2IdPolicy::Standard).unwrap();
        assert_eq!((&csr.public_key, &csr.subject), (s.public_key(), &subject));
        // a signature over other bytes, or for another key, is no proof of possession
        let other = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
        assert!(
            parse(&assemble(&info, s.scheme(), &s.sign(b"other").unwrap()).unwrap(), Sm2IdPolicy::AllowEmpty).is_err()
        );
        assert!(
            parse(&assemble(&info, s.scheme(), &other.sign(&info).unwrap()).unwrap(), Sm2IdPolicy::AllowEmpty).is_err()
        );
        assert!(assemble(b"\x30\x80junk", s.scheme(), &sig).is_err());
    }
}
