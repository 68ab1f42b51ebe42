//! PKCS#10 certification requests (RFC 2986): parse and check proof of possession; build (for
//! tests, tools and the enrolment flow).

use crate::{
    Error, Result,
    alg::{Sm2IdPolicy, verify_signature},
    cert::{SignedEnvelope, sign_envelope},
};
use der::{Decode, Encode, asn1::SetOfVec};
use medsign_crypto::{PublicKey, Signer};
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
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key: SubjectPublicKeyInfoOwned::from_der(&signer.public_key().to_spki_der())
            .map_err(|e| Error::malformed("public key", e))?,
        attributes: SetOfVec::new(),
    };
    let der = sign_envelope(&info.to_der().map_err(|e| Error::malformed("request", e))?, signer)?;
    Ok(medsign_crypto::keys::pem_encode("CERTIFICATE REQUEST", &der))
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
}
