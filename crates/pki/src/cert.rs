//! X.509 v3 certificates: issue (CA and end-entity profiles) and read.
//!
//! Issuing builds the `TBSCertificate` with our own derive type (the `x509-cert` types keep
//! their fields private), asks a [`Signer`] to sign its DER, and re-parses the result, so every
//! certificate we hand out has passed our own parser. Reading uses `x509-cert`.

use crate::{
    Error, Result,
    alg::{Sm2IdPolicy, signature_algorithm, verify_signature},
    name, oid,
    time::{from_x509_time, to_x509_time},
};
use chrono::{DateTime, Utc};
use der::{
    AnyRef, Decode, Encode,
    asn1::{BitString, Ia5String, Null, ObjectIdentifier as Oid, OctetString},
};
use medsign_crypto::{PublicKey, Signer, hash, hash::HashAlg};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::{
    Certificate,
    ext::{
        Extension,
        pkix::{
            AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
            CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectAltName,
            SubjectKeyIdentifier,
            certpolicy::PolicyInformation,
            crl::dp::DistributionPoint,
            name::{DistributionPointName, GeneralName},
        },
    },
    name::Name,
    serial_number::SerialNumber,
    time::Validity,
};

/// What a certificate is for; decides basicConstraints, keyUsage and extKeyUsage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// A certification authority (root or issuing). `path_len` limits the CAs below it.
    Ca {
        /// pathLenConstraint
        path_len: Option<u8>,
    },
    /// A person's signing certificate (staff): digitalSignature + nonRepudiation.
    Signer,
    /// An organisation's seal certificate (hospital, department): as `Signer`.
    Seal,
    /// A timestamp authority: digitalSignature + nonRepudiation, EKU timeStamping (critical).
    Tsa,
    /// A delegated OCSP responder: digitalSignature, EKU OCSPSigning, ocsp-nocheck.
    Ocsp,
    /// A TLS server (the DMZ gateway's tunnel listener): digitalSignature + keyEncipherment, EKU
    /// serverAuth, the names of [`CertTemplate::alt_names`] as subjectAltName.
    TlsServer,
    /// A TLS client (a `medsign serve` instance opening its tunnel): digitalSignature, EKU
    /// clientAuth, subjectAltName as for [`Profile::TlsServer`].
    TlsClient,
}

impl Profile {
    /// Parse a CLI name: `ca`, `signer`, `seal`, `tsa`, `ocsp`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ca" => Some(Profile::Ca { path_len: Some(0) }),
            "signer" => Some(Profile::Signer),
            "seal" => Some(Profile::Seal),
            "tsa" => Some(Profile::Tsa),
            "ocsp" => Some(Profile::Ocsp),
            _ => None,
        }
    }
}

/// Everything that goes into a certificate besides the issuer.
#[derive(Debug, Clone)]
pub struct CertTemplate {
    /// subject name
    pub subject: Name,
    /// subject public key
    pub public_key: PublicKey,
    /// profile
    pub profile: Profile,
    /// start of validity
    pub not_before: DateTime<Utc>,
    /// end of validity
    pub not_after: DateTime<Utc>,
    /// serial number (big-endian, positive); random 128-bit when None
    pub serial: Option<Vec<u8>>,
    /// CRL distribution point URL
    pub crl_url: Option<String>,
    /// OCSP responder URL (AIA)
    pub ocsp_url: Option<String>,
    /// CA certificate URL (AIA caIssuers)
    pub ca_issuers_url: Option<String>,
    /// certificatePolicies OIDs
    pub policies: Vec<Oid>,
    /// subjectAltName entries: an IP address (v4 or v6) becomes an iPAddress, anything else a
    /// dNSName (TLS profiles)
    pub alt_names: Vec<String>,
}

impl CertTemplate {
    /// A template with no URLs or policies.
    pub fn new(
        subject: Name,
        public_key: PublicKey,
        profile: Profile,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
    ) -> Self {
        Self {
            subject,
            public_key,
            profile,
            not_before,
            not_after,
            serial: None,
            crl_url: None,
            ocsp_url: None,
            ca_issuers_url: None,
            policies: vec![],
            alt_names: vec![],
        }
    }
}

/// ```text
/// TBSCertificate ::= SEQUENCE {
///     version         [0] EXPLICIT Version DEFAULT v1,
///     serialNumber         CertificateSerialNumber,
///     signature            AlgorithmIdentifier,
///     issuer               Name,
///     validity             Validity,
///     subject              Name,
///     subjectPublicKeyInfo SubjectPublicKeyInfo,
///     issuerUniqueID  [1] IMPLICIT UniqueIdentifier OPTIONAL,
///     subjectUniqueID [2] IMPLICIT UniqueIdentifier OPTIONAL,
///     extensions      [3] EXPLICIT Extensions OPTIONAL }
/// ```
/// [RFC 5280 § 4.1] — the v3 subset we issue (no unique identifiers).
#[derive(der::Sequence)]
struct TbsCertificateV3 {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: u8,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    extensions: Vec<Extension>,
}

/// ```text
/// Certificate ::= SEQUENCE { tbsCertificate TBSCertificate,
///     signatureAlgorithm AlgorithmIdentifier, signatureValue BIT STRING }
/// ```
/// [RFC 5280 § 4.1], with the TBS kept as the exact bytes that were signed.
#[derive(der::Sequence)]
pub(crate) struct SignedEnvelope<'a> {
    pub tbs: AnyRef<'a>,
    pub algorithm: AlgorithmIdentifierOwned,
    pub signature: BitString,
}

/// Sign `tbs_der` and wrap it as `SEQUENCE { tbs, algorithm, BIT STRING }` (certificates, CRLs).
pub(crate) fn sign_envelope(tbs_der: &[u8], signer: &dyn Signer) -> Result<Vec<u8>> {
    let sig = signer.sign(tbs_der)?;
    envelope(tbs_der, signer.scheme(), &sig)
}

/// Wrap `tbs_der` and a signature made elsewhere (e.g. by two parties) as
/// `SEQUENCE { tbs, algorithm, BIT STRING }`.
pub(crate) fn envelope(tbs_der: &[u8], scheme: medsign_crypto::SignatureScheme, sig: &[u8]) -> Result<Vec<u8>> {
    SignedEnvelope {
        tbs: AnyRef::from_der(tbs_der).map_err(|e| Error::malformed("TBS", e))?,
        algorithm: signature_algorithm(scheme),
        signature: BitString::from_bytes(sig).map_err(|e| Error::malformed("signature", e))?,
    }
    .to_der()
    .map_err(|e| Error::malformed("signed structure", e))
}

fn ext<T: Encode>(id: Oid, critical: bool, v: &T) -> Result<Extension> {
    let der = v.to_der().map_err(|e| Error::malformed("extension", e))?;
    Ok(Extension {
        extn_id: id,
        critical,
        extn_value: OctetString::new(der).map_err(|e| Error::malformed("extension", e))?,
    })
}

/// dNSName or iPAddress (RFC 5280 § 4.2.1.6: the address in network byte order, 4 or 16 octets).
fn alt_names(names: &[String]) -> Result<Vec<GeneralName>> {
    names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => {
                Ok(GeneralName::IpAddress(OctetString::new(a.octets().to_vec()).expect("4")))
            }
            Ok(std::net::IpAddr::V6(a)) => {
                Ok(GeneralName::IpAddress(OctetString::new(a.octets().to_vec()).expect("16")))
            }
            Err(_)
                if !n.is_empty()
                    && n.len() <= 253
                    && n.bytes().all(|c| c.is_ascii_alphanumeric() || b".-*".contains(&c)) =>
            {
                Ok(GeneralName::DnsName(Ia5String::new(n).map_err(|e| Error::malformed("dNSName", e))?))
            }
            Err(_) => Err(Error::Invalid(format!("'{n}' is neither a host name nor an IP address"))),
        })
        .collect()
}

fn uri(u: &str) -> Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5String::new(u).map_err(|_| Error::Invalid(format!("URL '{u}' is not ASCII")))?,
    ))
}

/// Key identifier: the leftmost 160 bits of SHA-256 of the subjectPublicKey bits (RFC 7093 § 2
/// method 1).
pub fn key_identifier(k: &PublicKey) -> Vec<u8> {
    hash::sha256(&k.subject_public_key_bytes())[..20].to_vec()
}

/// A random positive 128-bit serial number (RFC 5280 § 4.1.2.2: ≤ 20 octets; CA/B: ≥ 64 bits
/// of entropy).
pub fn random_serial() -> Result<Vec<u8>> {
    let mut s = medsign_crypto::rng::bytes::<16>()?;
    s[0] &= 0x7f;
    s[0] |= 0x01;
    Ok(s.to_vec())
}

/// Issue a certificate. `issuer = None` makes it self-signed (a root): then `signer` must hold
/// the key of `template.public_key`.
pub fn issue(template: &CertTemplate, issuer: Option<&Cert>, signer: &dyn Signer) -> Result<Cert> {
    let t = template;
    if t.not_after <= t.not_before {
        return Err(Error::Invalid("not_after must be later than not_before".into()));
    }
    let (issuer_name, aki) = match issuer {
        Some(ca) => {
            if ca.public_key()? != signer.public_key() {
                return Err(Error::Invalid("the signing key does not belong to the issuer certificate".into()));
            }
            if !ca.is_ca() {
                return Err(Error::Invalid(format!("issuer '{}' is not a CA certificate", ca.subject_display())));
            }
            (
                ca.inner.tbs_certificate().subject().clone(),
                ca.subject_key_id().unwrap_or_else(|| key_identifier(signer.public_key())),
            )
        }
        None => {
            if &t.public_key != signer.public_key() {
                return Err(Error::Invalid("a self-signed certificate must be signed by its own key".into()));
            }
            (t.subject.clone(), key_identifier(&t.public_key))
        }
    };
    let signing = KeyUsages::DigitalSignature | KeyUsages::NonRepudiation;
    let (ca, path_len, key_usage, eku, eku_critical) = match t.profile {
        Profile::Ca { path_len } => (true, path_len, KeyUsages::KeyCertSign | KeyUsages::CRLSign, vec![], false),
        Profile::Signer | Profile::Seal => (false, None, signing, vec![], false),
        Profile::Tsa => (false, None, signing, vec![oid::KP_TIME_STAMPING], true),
        Profile::Ocsp => (false, None, KeyUsages::DigitalSignature.into(), vec![oid::KP_OCSP_SIGNING], false),
        Profile::TlsServer => {
            (false, None, KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment, vec![oid::KP_SERVER_AUTH], false)
        }
        Profile::TlsClient => (false, None, KeyUsages::DigitalSignature.into(), vec![oid::KP_CLIENT_AUTH], false),
    };
    let mut exts = vec![
        ext(oid::EXT_BASIC_CONSTRAINTS, true, &BasicConstraints { ca, path_len_constraint: path_len })?,
        ext(oid::EXT_KEY_USAGE, true, &KeyUsage(key_usage))?,
    ];
    if !eku.is_empty() {
        exts.push(ext(oid::EXT_EXT_KEY_USAGE, eku_critical, &ExtendedKeyUsage(eku))?);
    }
    if t.profile == Profile::Ocsp {
        exts.push(ext(oid::OCSP_NOCHECK, false, &Null)?);
    }
    if !t.alt_names.is_empty() {
        exts.push(ext(oid::EXT_SUBJECT_ALT_NAME, false, &SubjectAltName(alt_names(&t.alt_names)?))?);
    }
    exts.push(ext(
        oid::EXT_SUBJECT_KEY_ID,
        false,
        &SubjectKeyIdentifier(OctetString::new(key_identifier(&t.public_key)).expect("20 bytes")),
    )?);
    exts.push(ext(
        oid::EXT_AUTHORITY_KEY_ID,
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(aki).expect("octets")),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )?);
    if let Some(u) = &t.crl_url {
        exts.push(ext(
            oid::EXT_CRL_DISTRIBUTION_POINTS,
            false,
            &CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(u)?])),
                reasons: None,
                crl_issuer: None,
            }]),
        )?);
    }
    let mut aia = Vec::new();
    if let Some(u) = &t.ocsp_url {
        aia.push(AccessDescription { access_method: oid::AD_OCSP, access_location: uri(u)? });
    }
    if let Some(u) = &t.ca_issuers_url {
        aia.push(AccessDescription { access_method: oid::AD_CA_ISSUERS, access_location: uri(u)? });
    }
    if !aia.is_empty() {
        exts.push(ext(oid::EXT_AUTHORITY_INFO_ACCESS, false, &AuthorityInfoAccessSyntax(aia))?);
    }
    if !t.policies.is_empty() {
        let p =
            t.policies.iter().map(|o| PolicyInformation { policy_identifier: *o, policy_qualifiers: None }).collect();
        exts.push(ext(oid::EXT_CERTIFICATE_POLICIES, false, &CertificatePolicies(p))?);
    }
    let serial = match &t.serial {
        Some(s) => s.clone(),
        None => random_serial()?,
    };
    let tbs = TbsCertificateV3 {
        version: 2,
        serial_number: SerialNumber::new(&serial).map_err(|e| Error::Invalid(format!("serial number: {e}")))?,
        signature: signature_algorithm(signer.scheme()),
        issuer: issuer_name,
        validity: Validity::new(to_x509_time(t.not_before)?, to_x509_time(t.not_after)?),
        subject: t.subject.clone(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&t.public_key.to_spki_der())
            .map_err(|e| Error::malformed("public key", e))?,
        extensions: exts,
    };
    let tbs_der = tbs.to_der().map_err(|e| Error::malformed("TBSCertificate", e))?;
    Cert::from_der(&sign_envelope(&tbs_der, signer)?)
}

/// A parsed certificate with its DER and decoded public key.
#[derive(Clone, Debug)]
pub struct Cert {
    der: Vec<u8>,
    inner: Certificate,
    public_key: core::result::Result<PublicKey, String>,
    /// The DER's digest under each [`HashAlg`], made on first use: the signing-certificate
    /// attribute of every CMS signature (every timestamp token) names its certificate by one.
    digests: [std::sync::OnceLock<Vec<u8>>; 4],
}

impl PartialEq for Cert {
    fn eq(&self, o: &Self) -> bool {
        self.der == o.der
    }
}
impl Eq for Cert {}

impl Cert {
    /// Parse DER.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let inner = Certificate::from_der(der).map_err(|e| Error::malformed("certificate", e))?;
        let spki = inner
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| Error::malformed("certificate", e))?;
        let public_key = PublicKey::from_spki_der(&spki).map_err(|e| e.to_string());
        Ok(Self { der: der.to_vec(), inner, public_key, digests: Default::default() })
    }

    /// Parse every `CERTIFICATE` block of a PEM text (or a single DER certificate).
    pub fn load_all(bytes: &[u8]) -> Result<Vec<Self>> {
        match core::str::from_utf8(bytes) {
            Ok(text) if text.contains("-----BEGIN") => {
                let blocks = medsign_crypto::keys::pem_decode_all(text)?;
                let certs: Vec<Cert> = blocks
                    .iter()
                    .filter(|(l, _)| l == "CERTIFICATE")
                    .map(|(_, d)| Cert::from_der(d))
                    .collect::<Result<_>>()?;
                if certs.is_empty() {
                    return Err(Error::Invalid("no CERTIFICATE block in the PEM text".into()));
                }
                Ok(certs)
            }
            _ => Ok(vec![Cert::from_der(bytes)?]),
        }
    }

    /// DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The digest of the DER under `h`, computed once per certificate.
    pub fn digest(&self, h: HashAlg) -> &[u8] {
        let slot = match h {
            HashAlg::Sm3 => 0,
            HashAlg::Sha256 => 1,
            HashAlg::Sha384 => 2,
            HashAlg::Sha512 => 3,
        };
        self.digests[slot].get_or_init(|| h.digest(&self.der))
    }

    /// PEM text.
    pub fn to_pem(&self) -> String {
        medsign_crypto::keys::pem_encode("CERTIFICATE", &self.der)
    }

    /// The `x509-cert` structure.
    pub fn x509(&self) -> &Certificate {
        &self.inner
    }

    /// The subject public key (error text when its algorithm is not supported).
    pub fn public_key(&self) -> Result<&PublicKey> {
        self.public_key.as_ref().map_err(|e| Error::Invalid(format!("certificate key: {e}")))
    }

    /// Subject name.
    pub fn subject(&self) -> &Name {
        self.inner.tbs_certificate().subject()
    }

    /// Issuer name.
    pub fn issuer(&self) -> &Name {
        self.inner.tbs_certificate().issuer()
    }

    /// Subject, RFC 4514.
    pub fn subject_display(&self) -> String {
        name::display(self.subject())
    }

    /// Issuer, RFC 4514.
    pub fn issuer_display(&self) -> String {
        name::display(self.issuer())
    }

    /// Serial number bytes.
    pub fn serial(&self) -> &[u8] {
        self.inner.tbs_certificate().serial_number().as_bytes()
    }

    /// Serial number, upper-case hex.
    pub fn serial_hex(&self) -> String {
        hex::encode_upper(self.serial())
    }

    /// Start of validity.
    pub fn not_before(&self) -> DateTime<Utc> {
        from_x509_time(&self.inner.tbs_certificate().validity().not_before)
    }

    /// End of validity.
    pub fn not_after(&self) -> DateTime<Utc> {
        from_x509_time(&self.inner.tbs_certificate().validity().not_after)
    }

    /// SM3 fingerprint of the DER, hex.
    pub fn fingerprint_sm3(&self) -> String {
        hex::encode(hash::sm3(&self.der))
    }

    /// basicConstraints: (cA, pathLenConstraint), or None when absent.
    pub fn basic_constraints(&self) -> Result<Option<(bool, Option<u8>)>> {
        Ok(self
            .inner
            .tbs_certificate()
            .get_extension::<BasicConstraints>()
            .map_err(|e| Error::malformed("basicConstraints", e))?
            .map(|(_, b)| (b.ca, b.path_len_constraint)))
    }

    /// True when basicConstraints says cA.
    pub fn is_ca(&self) -> bool {
        matches!(self.basic_constraints(), Ok(Some((true, _))))
    }

    /// keyUsage, or None when absent.
    pub fn key_usage(&self) -> Result<Option<KeyUsage>> {
        Ok(self
            .inner
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .map_err(|e| Error::malformed("keyUsage", e))?
            .map(|(_, k)| k))
    }

    /// extKeyUsage OIDs and whether the extension is critical (None when absent).
    pub fn ext_key_usage(&self) -> Result<Option<(bool, Vec<Oid>)>> {
        Ok(self
            .inner
            .tbs_certificate()
            .get_extension::<ExtendedKeyUsage>()
            .map_err(|e| Error::malformed("extKeyUsage", e))?
            .map(|(c, e)| (c, e.0)))
    }

    /// subjectKeyIdentifier.
    pub fn subject_key_id(&self) -> Option<Vec<u8>> {
        self.inner
            .tbs_certificate()
            .get_extension::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, s)| s.0.as_bytes().to_vec())
    }

    /// authorityKeyIdentifier keyIdentifier.
    pub fn authority_key_id(&self) -> Option<Vec<u8>> {
        self.inner
            .tbs_certificate()
            .get_extension::<AuthorityKeyIdentifier>()
            .ok()
            .flatten()
            .and_then(|(_, a)| a.key_identifier.map(|k| k.as_bytes().to_vec()))
    }

    /// The DER of the TBSCertificate exactly as signed.
    pub fn tbs_der(&self) -> Result<Vec<u8>> {
        let env = SignedEnvelope::from_der(&self.der).map_err(|e| Error::malformed("certificate", e))?;
        env.tbs.to_der().map_err(|e| Error::malformed("certificate", e))
    }

    /// Check that `issuer`'s key signed this certificate. Returns the SM2 ID that verified.
    pub fn verify_signed_by(&self, issuer: &Cert, policy: Sm2IdPolicy) -> Result<Option<&'static [u8]>> {
        let env = SignedEnvelope::from_der(&self.der).map_err(|e| Error::malformed("certificate", e))?;
        let sig =
            env.signature.as_bytes().ok_or_else(|| Error::malformed("certificate", "signature has unused bits"))?;
        let tbs = env.tbs.to_der().map_err(|e| Error::malformed("certificate", e))?;
        verify_signature(&env.algorithm, None, issuer.public_key()?, &tbs, sig, policy)
    }

    /// Short description for reports: `CN (serial …)`.
    pub fn describe(&self) -> String {
        format!("{} (serial {})", name::common_name_or_dn(self.subject()), self.serial_hex())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::name::parse_dn;
    use chrono::Duration;
    use medsign_crypto::{KeyAlg, PrivateKey, signer::KeySigner};

    /// A root CA, an issuing CA and a leaf, for tests across the crate.
    pub struct TestPki {
        pub root: Cert,
        pub root_key: KeySigner,
        pub ca: Cert,
        pub ca_key: KeySigner,
        pub leaf: Cert,
        pub leaf_key: KeySigner,
    }

    pub fn test_pki(alg: KeyAlg) -> TestPki {
        let now = Utc::now();
        let root_key = KeySigner::new(PrivateKey::generate(alg).unwrap());
        let mut t = CertTemplate::new(
            parse_dn("CN=测试根CA,O=某县人民医院,C=CN").unwrap(),
            root_key.public_key().clone(),
            Profile::Ca { path_len: Some(1) },
            now - Duration::hours(1),
            now + Duration::days(3650),
        );
        let root = issue(&t, None, &root_key).unwrap();
        let ca_key = KeySigner::new(PrivateKey::generate(alg).unwrap());
        t.subject = parse_dn("CN=测试签发CA,O=某县人民医院,C=CN").unwrap();
        t.public_key = ca_key.public_key().clone();
        t.profile = Profile::Ca { path_len: Some(0) };
        let ca = issue(&t, Some(&root), &root_key).unwrap();
        let leaf_key = KeySigner::new(PrivateKey::generate(alg).unwrap());
        let mut lt = CertTemplate::new(
            parse_dn("CN=张三,OU=心内科,O=某县人民医院,C=CN").unwrap(),
            leaf_key.public_key().clone(),
            Profile::Signer,
            now - Duration::hours(1),
            now + Duration::days(365),
        );
        lt.crl_url = Some("http://127.0.0.1:7080/pki/crl".into());
        lt.ocsp_url = Some("http://127.0.0.1:7080/pki/ocsp".into());
        lt.policies = vec![Oid::new_unwrap("1.2.156.112562.2.1.1.1")];
        let leaf = issue(&lt, Some(&ca), &ca_key).unwrap();
        TestPki { root, root_key, ca, ca_key, leaf, leaf_key }
    }

    #[test]
    fn issue_and_read_back_every_algorithm() {
        for alg in [KeyAlg::Sm2, KeyAlg::P256, KeyAlg::Rsa2048] {
            let p = test_pki(alg);
            assert!(p.root.is_ca() && p.ca.is_ca() && !p.leaf.is_ca());
            assert_eq!(p.leaf.subject_display(), "CN=张三,OU=心内科,O=某县人民医院,C=CN");
            assert_eq!(p.leaf.issuer_display(), p.ca.subject_display());
            assert_eq!(p.leaf.public_key().unwrap(), p.leaf_key.public_key());
            assert_eq!(p.leaf.authority_key_id(), p.ca.subject_key_id());
            p.leaf.verify_signed_by(&p.ca, Sm2IdPolicy::Standard).unwrap();
            p.root.verify_signed_by(&p.root, Sm2IdPolicy::Standard).unwrap();
            assert!(p.leaf.verify_signed_by(&p.root, Sm2IdPolicy::Standard).is_err());
            let ku = p.leaf.key_usage().unwrap().unwrap();
            assert!(ku.digital_signature() && ku.non_repudiation() && !ku.key_cert_sign());
            assert_eq!(Cert::load_all(p.leaf.to_pem().as_bytes()).unwrap()[0], p.leaf);
            // the cached digests are the DER's, one per algorithm, kept by a clone
            for h in [HashAlg::Sm3, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
                assert_eq!(p.leaf.digest(h), h.digest(p.leaf.der()).as_slice());
                assert_eq!(p.leaf.clone().digest(h), p.leaf.digest(h));
            }
            assert_ne!(p.leaf.digest(HashAlg::Sm3), p.ca.digest(HashAlg::Sm3));
        }
    }

    #[test]
    fn tls_profiles_name_their_purpose_and_hosts() {
        let p = test_pki(KeyAlg::P256);
        let key = KeySigner::new(PrivateKey::generate(KeyAlg::P256).unwrap());
        let now = Utc::now();
        let mut t = CertTemplate::new(
            parse_dn("CN=gw.hospital.example").unwrap(),
            key.public_key().clone(),
            Profile::TlsServer,
            now,
            now + Duration::days(1),
        );
        t.alt_names = vec!["gw.hospital.example".into(), "127.0.0.1".into(), "::1".into()];
        let c = issue(&t, Some(&p.ca), &p.ca_key).unwrap();
        assert_eq!(c.ext_key_usage().unwrap().unwrap().1, vec![oid::KP_SERVER_AUTH]);
        let san = c.x509().tbs_certificate().get_extension::<SubjectAltName>().unwrap().unwrap().1;
        assert_eq!(san.0.len(), 3);
        assert!(matches!(&san.0[1], GeneralName::IpAddress(a) if a.as_bytes() == [127, 0, 0, 1]));
        assert!(matches!(&san.0[2], GeneralName::IpAddress(a) if a.as_bytes().len() == 16));
        t.profile = Profile::TlsClient;
        let c = issue(&t, Some(&p.ca), &p.ca_key).unwrap();
        assert_eq!(c.ext_key_usage().unwrap().unwrap().1, vec![oid::KP_CLIENT_AUTH]);
        t.alt_names = vec!["张三 医生".into()];
        assert!(issue(&t, Some(&p.ca), &p.ca_key).is_err(), "a name that is no host is refused");
    }

    #[test]
    fn refuses_inconsistent_requests() {
        let p = test_pki(KeyAlg::Sm2);
        let now = Utc::now();
        let t = CertTemplate::new(
            parse_dn("CN=x").unwrap(),
            p.leaf_key.public_key().clone(),
            Profile::Signer,
            now,
            now - Duration::days(1),
        );
        assert!(issue(&t, Some(&p.ca), &p.ca_key).is_err(), "inverted validity");
        let t = CertTemplate::new(
            parse_dn("CN=x").unwrap(),
            p.leaf_key.public_key().clone(),
            Profile::Signer,
            now,
            now + Duration::days(1),
        );
        assert!(issue(&t, Some(&p.ca), &p.root_key).is_err(), "key does not match issuer");
        assert!(issue(&t, Some(&p.leaf), &p.leaf_key).is_err(), "leaf as issuer");
        assert!(issue(&t, None, &p.ca_key).is_err(), "self-signed with a foreign key");
        assert!(Cert::from_der(b"\x30\x03\x02\x01\x01").is_err());
        assert!(Cert::load_all(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
    }
}
