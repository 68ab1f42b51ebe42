//! Signature and digest algorithm identifiers, and verification of a signature named by an
//! `AlgorithmIdentifier` (shared by certificates, CRLs, CMS, OCSP and timestamps).

use crate::{Error, Result, oid};
use der::{Any, Decode, Encode, asn1::Null};
use medsign_crypto::{HashAlg, PublicKey, SignatureScheme, sm2::DEFAULT_ID};
use spki::AlgorithmIdentifierOwned;

/// Which SM2 distinguishing IDs a verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sm2IdPolicy {
    /// Only the standard ID `1234567812345678` (GM/T 0009).
    #[default]
    Standard,
    /// The standard ID, or the empty ID OpenSSL 3.0 uses when none is set.
    AllowEmpty,
}

impl Sm2IdPolicy {
    fn ids(self) -> &'static [&'static [u8]] {
        match self {
            Sm2IdPolicy::Standard => &[DEFAULT_ID],
            Sm2IdPolicy::AllowEmpty => &[DEFAULT_ID, b""],
        }
    }
}

/// ```text
/// RSASSA-PSS-params ::= SEQUENCE {
///     hashAlgorithm      [0] HashAlgorithm    DEFAULT sha1,
///     maskGenAlgorithm   [1] MaskGenAlgorithm DEFAULT mgf1SHA1,
///     saltLength         [2] INTEGER          DEFAULT 20,
///     trailerField       [3] TrailerField     DEFAULT trailerFieldBC }
/// ```
/// [RFC 4055 § 3.1]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct RsaPssParams {
    /// hash
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    /// MGF
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub mask_gen_algorithm: Option<AlgorithmIdentifierOwned>,
    /// salt length
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub salt_length: Option<u32>,
    /// trailer
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub trailer_field: Option<u32>,
}

/// The AlgorithmIdentifier of a digest (SM3, SHA-256), parameters absent (RFC 5754 § 2).
pub fn digest_algorithm(h: HashAlg) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: match h {
            HashAlg::Sm3 => oid::SM3,
            HashAlg::Sha256 => oid::SHA256,
            HashAlg::Sha384 => oid::SHA384,
            HashAlg::Sha512 => oid::SHA512,
        },
        parameters: None,
    }
}

/// The hash named by a digest AlgorithmIdentifier.
pub fn hash_from_digest_algorithm(a: &AlgorithmIdentifierOwned) -> Result<HashAlg> {
    match a.oid {
        oid::SM3 => Ok(HashAlg::Sm3),
        oid::SHA256 => Ok(HashAlg::Sha256),
        oid::SHA384 => Ok(HashAlg::Sha384),
        oid::SHA512 => Ok(HashAlg::Sha512),
        o => Err(Error::Invalid(format!("unsupported digest algorithm {o} (SM3 and SHA-256/384/512 are supported)"))),
    }
}

fn sha256_with_null() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: oid::SHA256, parameters: Some(Any::from(Null)) }
}

/// The PSS parameters medsign signs with: SHA-256, MGF1-SHA-256, salt 32.
pub fn pss_sha256_params() -> RsaPssParams {
    RsaPssParams {
        hash_algorithm: Some(sha256_with_null()),
        mask_gen_algorithm: Some(AlgorithmIdentifierOwned {
            oid: oid::MGF1,
            parameters: Some(Any::encode_from(&sha256_with_null()).expect("encode")),
        }),
        salt_length: Some(32),
        trailer_field: None,
    }
}

/// The signature AlgorithmIdentifier for certificates and CRLs (and CMS in RFC 5652 style).
pub fn signature_algorithm(s: SignatureScheme) -> AlgorithmIdentifierOwned {
    match s {
        SignatureScheme::Sm2Sm3 => AlgorithmIdentifierOwned { oid: oid::SM2_WITH_SM3, parameters: None },
        SignatureScheme::EcdsaP256Sha256 => AlgorithmIdentifierOwned { oid: oid::ECDSA_WITH_SHA256, parameters: None },
        SignatureScheme::RsaPkcs1Sha256 => {
            AlgorithmIdentifierOwned { oid: oid::SHA256_WITH_RSA, parameters: Some(Any::from(Null)) }
        }
        SignatureScheme::RsaPssSha256 => AlgorithmIdentifierOwned {
            oid: oid::RSASSA_PSS,
            parameters: Some(Any::encode_from(&pss_sha256_params()).expect("encode")),
        },
    }
}

/// The scheme named by a signature AlgorithmIdentifier, for a key of this type.
/// `digest` is the CMS digestAlgorithm, needed when the signature algorithm names only the key
/// type (`rsaEncryption`, as OpenSSL writes in CMS).
pub fn scheme_for(a: &AlgorithmIdentifierOwned, key: &PublicKey, digest: Option<HashAlg>) -> Result<SignatureScheme> {
    let scheme = match a.oid {
        oid::SM2_WITH_SM3 | oid::SM2_SIGN | oid::SM2 => SignatureScheme::Sm2Sm3,
        oid::ECDSA_WITH_SHA256 => SignatureScheme::EcdsaP256Sha256,
        oid::SHA256_WITH_RSA => SignatureScheme::RsaPkcs1Sha256,
        oid::RSA_ENCRYPTION if digest == Some(HashAlg::Sha256) => SignatureScheme::RsaPkcs1Sha256,
        oid::EC_PUBLIC_KEY if digest == Some(HashAlg::Sha256) && matches!(key, PublicKey::P256 { .. }) => {
            SignatureScheme::EcdsaP256Sha256
        }
        oid::RSASSA_PSS => {
            let p = a.parameters.as_ref().ok_or_else(|| Error::Invalid("RSASSA-PSS without parameters".into()))?;
            let p = RsaPssParams::from_der(&p.to_der().map_err(|e| Error::malformed("PSS parameters", e))?)
                .map_err(|e| Error::malformed("PSS parameters", e))?;
            if p.hash_algorithm.as_ref().map(|h| h.oid) != Some(oid::SHA256) {
                return Err(Error::Invalid("RSASSA-PSS with a hash other than SHA-256".into()));
            }
            SignatureScheme::RsaPssSha256
        }
        o => return Err(Error::Invalid(format!("unsupported signature algorithm {o}"))),
    };
    if !key.schemes().contains(&scheme) {
        return Err(Error::Invalid(format!(
            "signature algorithm {} does not match the {} key",
            scheme.name(),
            key.alg().name()
        )));
    }
    if let Some(d) = digest
        && d != scheme.hash()
    {
        return Err(Error::Invalid(format!(
            "digest algorithm {} does not match signature algorithm {}",
            d.name(),
            scheme.name()
        )));
    }
    Ok(scheme)
}

/// Verify `sig` over `msg` with `key` under the algorithm `a`. For SM2, the IDs of `policy` are
/// tried in turn; the one that verified is returned (`None` for other algorithms).
pub fn verify_signature(
    a: &AlgorithmIdentifierOwned,
    digest: Option<HashAlg>,
    key: &PublicKey,
    msg: &[u8],
    sig: &[u8],
    policy: Sm2IdPolicy,
) -> Result<Option<&'static [u8]>> {
    let scheme = scheme_for(a, key, digest)?;
    if scheme == SignatureScheme::Sm2Sm3 {
        for id in policy.ids() {
            if key.verify(scheme, msg, sig, Some(id)).is_ok() {
                return Ok(Some(id));
            }
        }
        return Err(medsign_crypto::Error::BadSignature.into());
    }
    key.verify(scheme, msg, sig, None)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_crypto::{KeyAlg, PrivateKey};

    #[test]
    fn pss_params_round_trip_and_sm2_id_policy() {
        let a = signature_algorithm(SignatureScheme::RsaPssSha256);
        let k = PrivateKey::generate(KeyAlg::Rsa2048).unwrap();
        assert_eq!(scheme_for(&a, &k.public_key(), None).unwrap(), SignatureScheme::RsaPssSha256);
        let sig = k.sign(SignatureScheme::RsaPssSha256, b"m", None).unwrap();
        verify_signature(&a, None, &k.public_key(), b"m", &sig, Sm2IdPolicy::Standard).unwrap();

        let s = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let empty = s.sign(SignatureScheme::Sm2Sm3, b"m", Some(b"")).unwrap();
        let a = signature_algorithm(SignatureScheme::Sm2Sm3);
        assert!(verify_signature(&a, None, &s.public_key(), b"m", &empty, Sm2IdPolicy::Standard).is_err());
        assert_eq!(
            verify_signature(&a, None, &s.public_key(), b"m", &empty, Sm2IdPolicy::AllowEmpty).unwrap(),
            Some(&b""[..])
        );
        // algorithm / key mismatch is an error, not a false "valid"
        assert!(scheme_for(&a, &k.public_key(), None).is_err());
    }
}
