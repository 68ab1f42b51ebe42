//! Object identifiers used by medsign, with where each is defined.

use der::asn1::ObjectIdentifier as Oid;

pub use medsign_crypto::keys::oid::{EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP256R1, SM2};

/// SM3 hash (GM/T 0006: 1.2.156.10197.1.401)
pub const SM3: Oid = Oid::new_unwrap("1.2.156.10197.1.401");
/// SHA-256 (RFC 5754)
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// SHA-384 (RFC 5754)
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
/// SHA-512 (RFC 5754)
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
/// SHA-1 (RFC 3279) — OCSP CertID only
pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
/// id-pkix-ocsp-basic (RFC 6960 § 4.2.1)
pub const OCSP_BASIC: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce (RFC 6960 § 4.4.1, RFC 8954)
pub const OCSP_NONCE: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// SM3withSM2 signature (GM/T 0006: 1.2.156.10197.1.501)
pub const SM2_WITH_SM3: Oid = Oid::new_unwrap("1.2.156.10197.1.501");
/// sm2-1 digital signature (GM/T 0006 / GM/T 0010 SignerInfo: 1.2.156.10197.1.301.1)
pub const SM2_SIGN: Oid = Oid::new_unwrap("1.2.156.10197.1.301.1");
/// ecdsa-with-SHA256 (RFC 5758)
pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
/// sha256WithRSAEncryption (RFC 4055)
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
/// id-RSASSA-PSS (RFC 4055)
pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
/// id-mgf1 (RFC 4055)
pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");

/// id-data (RFC 5652 § 4)
pub const ID_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
/// id-signedData (RFC 5652 § 5.1)
pub const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
/// GM/T 0010 data (1.2.156.10197.6.1.4.2.1)
pub const GM_DATA: Oid = Oid::new_unwrap("1.2.156.10197.6.1.4.2.1");
/// GM/T 0010 signedData (1.2.156.10197.6.1.4.2.2)
pub const GM_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.156.10197.6.1.4.2.2");
/// id-ct-TSTInfo (RFC 3161 § 2.4.2)
pub const ID_CT_TST_INFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// id-contentType (RFC 5652 § 11.1)
pub const ATTR_CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest (RFC 5652 § 11.2)
pub const ATTR_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
/// id-signingTime (RFC 5652 § 11.3)
pub const ATTR_SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
/// id-aa-signingCertificateV2 (RFC 5035 § 3)
pub const ATTR_SIGNING_CERTIFICATE_V2: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-aa-timeStampToken (RFC 3161 appendix A)
pub const ATTR_TIMESTAMP_TOKEN: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// id-kp-timeStamping (RFC 5280 § 4.2.1.12)
pub const KP_TIME_STAMPING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.8");
/// id-kp-serverAuth (RFC 5280 § 4.2.1.12)
pub const KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
/// id-kp-clientAuth (RFC 5280 § 4.2.1.12)
pub const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
/// id-kp-OCSPSigning (RFC 5280 § 4.2.1.12)
pub const KP_OCSP_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.9");
/// id-kp-emailProtection (used by document-signing profiles that readers know)
pub const KP_EMAIL_PROTECTION: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
/// id-pkix-ocsp-nocheck (RFC 6960 § 4.2.2.2.1)
pub const OCSP_NOCHECK: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.5");
/// id-ad-ocsp (RFC 5280 § 4.2.2.1)
pub const AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-ad-caIssuers (RFC 5280 § 4.2.2.1)
pub const AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");

/// Extensions (RFC 5280 § 4.2.1)
pub const EXT_SUBJECT_KEY_ID: Oid = Oid::new_unwrap("2.5.29.14");
/// id-ce-subjectAltName (RFC 5280 § 4.2.1.6)
pub const EXT_SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
/// keyUsage
pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
/// basicConstraints
pub const EXT_BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
/// cRLNumber (RFC 5280 § 5.2.3)
pub const EXT_CRL_NUMBER: Oid = Oid::new_unwrap("2.5.29.20");
/// reasonCode (RFC 5280 § 5.3.1)
pub const EXT_CRL_REASON: Oid = Oid::new_unwrap("2.5.29.21");
/// cRLDistributionPoints
pub const EXT_CRL_DISTRIBUTION_POINTS: Oid = Oid::new_unwrap("2.5.29.31");
/// certificatePolicies
pub const EXT_CERTIFICATE_POLICIES: Oid = Oid::new_unwrap("2.5.29.32");
/// authorityKeyIdentifier
pub const EXT_AUTHORITY_KEY_ID: Oid = Oid::new_unwrap("2.5.29.35");
/// extKeyUsage
pub const EXT_EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
/// authorityInfoAccess (RFC 5280 § 4.2.2.1)
pub const EXT_AUTHORITY_INFO_ACCESS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.1");

/// Attribute types of names (RFC 5280 appendix A / X.520)
pub const AT_COMMON_NAME: Oid = Oid::new_unwrap("2.5.4.3");
/// surname
pub const AT_SURNAME: Oid = Oid::new_unwrap("2.5.4.4");
/// serialNumber (X.520; the staff-identity attribute of health-sector certificates)
pub const AT_SERIAL_NUMBER: Oid = Oid::new_unwrap("2.5.4.5");
/// countryName
pub const AT_COUNTRY: Oid = Oid::new_unwrap("2.5.4.6");
/// localityName
pub const AT_LOCALITY: Oid = Oid::new_unwrap("2.5.4.7");
/// stateOrProvinceName
pub const AT_STATE: Oid = Oid::new_unwrap("2.5.4.8");
/// organizationName
pub const AT_ORGANIZATION: Oid = Oid::new_unwrap("2.5.4.10");
/// organizationalUnitName
pub const AT_ORG_UNIT: Oid = Oid::new_unwrap("2.5.4.11");
/// title
pub const AT_TITLE: Oid = Oid::new_unwrap("2.5.4.12");
/// givenName
pub const AT_GIVEN_NAME: Oid = Oid::new_unwrap("2.5.4.42");
/// emailAddress (PKCS#9)
pub const AT_EMAIL: Oid = Oid::new_unwrap("1.2.840.113549.1.9.1");
