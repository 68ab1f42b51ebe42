//! CMS / PKCS#7 SignedData (RFC 5652): sign (attached or detached, several signers), add an
//! RFC 3161 timestamp token as an unsigned attribute, and verify with a structured report.
//!
//! SM2 signatures can use either OID style ([`OidStyle`]): RFC 5652 content types with SM2/SM3
//! algorithm identifiers (what pyHanko, OpenSSL 3 and most of the world read), or
//! GM/T 0010 / GB/T 35275 (`1.2.156.10197.6.1.4.2.x` content types, `sm2-1` signature OID) that
//! Chinese CA toolkits expect. Verification accepts both.

use crate::{
    Error, Result,
    alg::{Sm2IdPolicy, digest_algorithm, hash_from_digest_algorithm, signature_algorithm, verify_signature},
    cert::Cert,
    crl::Crl,
    name, oid,
    path::{PathOptions, validate},
    time::{from_x509_time, to_x509_time},
    tsp::TstInfo,
};
use chrono::{DateTime, Utc};
use cms::{
    cert::{CertificateChoices, IssuerAndSerialNumber},
    content_info::{CmsVersion, ContentInfo},
    signed_data::{CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos},
};
use der::{
    Any, Decode, Encode,
    asn1::{ObjectIdentifier as Oid, OctetString, SetOfVec},
};
use medsign_crypto::{HashAlg, SignatureScheme, Signer};
use serde::Serialize;
use spki::AlgorithmIdentifierOwned;
use x509_cert::{
    attr::Attribute,
    ext::pkix::{certpolicy::PolicyInformation, name::GeneralName},
    serial_number::SerialNumber,
    time::Time,
};

mod token;
pub use token::TokenTemplate;

/// ```text
/// IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber CertificateSerialNumber }
/// ```
/// [RFC 5035 § 4]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct IssuerSerial {
    /// issuer
    pub issuer: Vec<GeneralName>,
    /// serial
    pub serial_number: SerialNumber,
}

/// ```text
/// ESSCertIDv2 ::= SEQUENCE {
///     hashAlgorithm AlgorithmIdentifier DEFAULT {algorithm id-sha256},
///     certHash      Hash,
///     issuerSerial  IssuerSerial OPTIONAL }
/// ```
/// [RFC 5035 § 4] — `hash_algorithm` is `None` for SHA-256 (DER omits a DEFAULT value).
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct EssCertIdV2 {
    /// hash algorithm, None = SHA-256
    #[asn1(optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    /// hash of the certificate DER
    pub cert_hash: OctetString,
    /// issuer and serial
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// ```text
/// SigningCertificateV2 ::= SEQUENCE {
///     certs    SEQUENCE OF ESSCertIDv2,
///     policies SEQUENCE OF PolicyInformation OPTIONAL }
/// ```
/// [RFC 5035 § 3]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct SigningCertificateV2 {
    /// certificate identifiers, the signer's first
    pub certs: Vec<EssCertIdV2>,
    /// policies
    #[asn1(optional = "true")]
    pub policies: Option<Vec<PolicyInformation>>,
}

impl EssCertIdV2 {
    /// The identifier of `cert` hashed with `h`.
    pub fn of(cert: &Cert, h: HashAlg) -> Result<Self> {
        Ok(Self {
            hash_algorithm: (h != HashAlg::Sha256).then(|| digest_algorithm(h)),
            cert_hash: OctetString::new(cert.digest(h)).expect("digest"),
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(cert.issuer().clone())],
                serial_number: cert.x509().tbs_certificate().serial_number().clone(),
            }),
        })
    }

    /// Whether this identifies `cert`.
    pub fn matches(&self, cert: &Cert) -> bool {
        let h = match &self.hash_algorithm {
            None => HashAlg::Sha256,
            Some(a) => match hash_from_digest_algorithm(a) {
                Ok(h) => h,
                Err(_) => return false,
            },
        };
        self.cert_hash.as_bytes() == cert.digest(h)
    }
}

/// Which object identifiers to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OidStyle {
    /// RFC 5652: id-signedData / id-data; SM2 as SM3withSM2 (1.2.156.10197.1.501).
    #[default]
    Rfc5652,
    /// GM/T 0010: 1.2.156.10197.6.1.4.2.2 / .1; SM2 as sm2-1 (1.2.156.10197.1.301.1).
    Gmt0010,
}

impl OidStyle {
    /// Parse `rfc5652` / `gmt0010`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "rfc5652" => Some(OidStyle::Rfc5652),
            "gmt0010" | "gm" => Some(OidStyle::Gmt0010),
            _ => None,
        }
    }
}

/// One signer: the signing seam, its certificate and the chain to send along.
pub struct CmsSigner<'a> {
    /// produces the signature
    pub signer: &'a dyn Signer,
    /// the signer's certificate
    pub cert: &'a Cert,
    /// intermediate certificates to include
    pub chain: &'a [Cert],
}

/// Options of [`sign`].
#[derive(Debug, Clone, Default)]
pub struct SignOptions {
    /// leave the content out (detached signature)
    pub detached: bool,
    /// OID style
    pub oid_style: OidStyle,
    /// signingTime attribute (None = now)
    pub signing_time: Option<DateTime<Utc>>,
    /// eContentType when not data (e.g. id-ct-TSTInfo for timestamp tokens)
    pub content_type: Option<Oid>,
    /// leave the certificates out (a timestamp request without certReq)
    pub omit_certificates: bool,
    /// no signingTime attribute (PAdES: the time is in the /M entry and the timestamp)
    pub omit_signing_time: bool,
}

fn attr<T: Encode + der::EncodeValue + der::Tagged>(o: Oid, v: &T) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values
        .insert(Any::encode_from(v).map_err(|e| Error::malformed("attribute", e))?)
        .map_err(|e| Error::malformed("attribute", e))?;
    Ok(Attribute { oid: o, values })
}

fn set_of<T: der::DerOrd>(items: Vec<T>) -> Result<SetOfVec<T>> {
    let mut s = SetOfVec::new();
    for i in items {
        s.insert(i).map_err(|e| Error::malformed("SET OF", e))?;
    }
    Ok(s)
}

fn sid_of(cert: &Cert) -> SignerIdentifier {
    SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: cert.issuer().clone(),
        serial_number: cert.x509().tbs_certificate().serial_number().clone(),
    })
}

fn signer_info_algorithm(scheme: SignatureScheme, style: OidStyle) -> AlgorithmIdentifierOwned {
    match (scheme, style) {
        (SignatureScheme::Sm2Sm3, OidStyle::Gmt0010) => {
            AlgorithmIdentifierOwned { oid: oid::SM2_SIGN, parameters: None }
        }
        _ => signature_algorithm(scheme),
    }
}

/// Sign `content` (CMS SignedData with signed attributes contentType, signingTime,
/// messageDigest and signingCertificateV2).
pub fn sign(content: &[u8], signers: &[CmsSigner<'_>], opts: &SignOptions) -> Result<Vec<u8>> {
    if signers.is_empty() {
        return Err(Error::Invalid("at least one signer is needed".into()));
    }
    let (outer, data_oid) = match opts.oid_style {
        OidStyle::Rfc5652 => (oid::ID_SIGNED_DATA, oid::ID_DATA),
        OidStyle::Gmt0010 => (oid::GM_SIGNED_DATA, oid::GM_DATA),
    };
    let econtent_type = opts.content_type.unwrap_or(data_oid);
    let signing_time = to_x509_time(opts.signing_time.unwrap_or_else(Utc::now))?;
    let mut digest_algs = Vec::new();
    let mut certs: Vec<&Cert> = Vec::new();
    let mut infos = Vec::new();
    for s in signers {
        if s.cert.public_key()? != s.signer.public_key() {
            return Err(Error::Invalid(format!("the key does not match the certificate of {}", s.cert.describe())));
        }
        let scheme = s.signer.scheme();
        let h = scheme.hash();
        let dalg = digest_algorithm(h);
        if !digest_algs.contains(&dalg) {
            digest_algs.push(dalg.clone());
        }
        for c in std::iter::once(s.cert).chain(s.chain.iter()) {
            if !certs.contains(&c) {
                certs.push(c);
            }
        }
        let ess = SigningCertificateV2 { certs: vec![EssCertIdV2::of(s.cert, h)?], policies: None };
        let mut attrs = vec![
            attr(oid::ATTR_CONTENT_TYPE, &econtent_type)?,
            attr(oid::ATTR_MESSAGE_DIGEST, &OctetString::new(h.digest(content)).expect("digest"))?,
            attr(oid::ATTR_SIGNING_CERTIFICATE_V2, &ess)?,
        ];
        if !opts.omit_signing_time {
            attrs.push(attr(oid::ATTR_SIGNING_TIME, &signing_time)?);
        }
        let signed_attrs = set_of(attrs)?;
        let to_sign = signed_attrs.to_der().map_err(|e| Error::malformed("signed attributes", e))?;
        let signature = s.signer.sign(&to_sign)?;
        infos.push(SignerInfo {
            version: CmsVersion::V1,
            sid: sid_of(s.cert),
            digest_alg: dalg,
            signed_attrs: Some(signed_attrs),
            signature_algorithm: signer_info_algorithm(scheme, opts.oid_style),
            signature: OctetString::new(signature).map_err(|e| Error::malformed("signature", e))?,
            unsigned_attrs: None,
        });
    }
    let econtent = if opts.detached {
        None
    } else {
        Some(
            Any::encode_from(&OctetString::new(content).map_err(|e| Error::malformed("content", e))?)
                .map_err(|e| Error::malformed("content", e))?,
        )
    };
    let sd = SignedData {
        version: if econtent_type == oid::ID_DATA || econtent_type == oid::GM_DATA {
            CmsVersion::V1
        } else {
            CmsVersion::V3
        },
        digest_algorithms: set_of(digest_algs)?,
        encap_content_info: EncapsulatedContentInfo { econtent_type, econtent },
        // written from each certificate's own DER below, not re-encoded
        certificates: None,
        crls: None,
        signer_infos: SignerInfos(set_of(infos)?),
    };
    let out = SignedDataDer { sd: &sd, certs: (!opts.omit_certificates).then(|| der_set_order(&certs)) };
    ContentInfo { content_type: outer, content: Any::encode_from(&out).map_err(|e| Error::malformed("SignedData", e))? }
        .to_der()
        .map_err(|e| Error::malformed("ContentInfo", e))
}

/// A SignedData whose `certificates` are written from the certificates' own DER, without cloning
/// each certificate's parsed structure and encoding it again on every signature (about a tenth
/// of a timestamp token's CPU time, issue #20). `sd` has no certificates and no CRLs. The set is
/// in X.690's order; the `cms` crate orders two certificates of the same length differently (it
/// compares them as sequences of integers), so a message it re-encodes ([`Parsed::to_der`]) may
/// list them the other way round — both are read the same.
struct SignedDataDer<'a> {
    sd: &'a SignedData,
    /// `[0] IMPLICIT CertificateSet`: the DER of each certificate, in a SET OF's DER order
    certs: Option<Vec<&'a [u8]>>,
}

impl SignedDataDer<'_> {
    const CERTS_TAG: der::Tag = der::Tag::ContextSpecific { constructed: true, number: der::TagNumber(0) };

    fn certs_header(&self) -> der::Result<Option<der::Header>> {
        let Some(certs) = &self.certs else { return Ok(None) };
        let mut len = der::Length::ZERO;
        for c in certs {
            len = (len + der::Length::try_from(c.len())?)?;
        }
        Ok(Some(der::Header::new(Self::CERTS_TAG, len)))
    }
}

impl der::FixedTag for SignedDataDer<'_> {
    const TAG: der::Tag = der::Tag::Sequence;
}

impl der::EncodeValue for SignedDataDer<'_> {
    fn value_len(&self) -> der::Result<der::Length> {
        let sd = self.sd;
        let mut len = ((sd.version.encoded_len()? + sd.digest_algorithms.encoded_len()?)?
            + sd.encap_content_info.encoded_len()?)?;
        if let Some(h) = self.certs_header()? {
            len = ((len + h.encoded_len()?)? + h.length())?;
        }
        len + sd.signer_infos.encoded_len()?
    }

    fn encode_value(&self, w: &mut impl der::Writer) -> der::Result<()> {
        let sd = self.sd;
        sd.version.encode(w)?;
        sd.digest_algorithms.encode(w)?;
        sd.encap_content_info.encode(w)?;
        if let (Some(h), Some(certs)) = (self.certs_header()?, &self.certs) {
            h.encode(w)?;
            for c in certs {
                w.write(c)?;
            }
        }
        sd.signer_infos.encode(w)
    }
}

/// The certificates' DER in the order DER puts a SET OF ([`crate::tlv::set_order`]).
fn der_set_order<'a>(certs: &[&'a Cert]) -> Vec<&'a [u8]> {
    let mut v: Vec<&[u8]> = certs.iter().map(|c| c.der()).collect();
    crate::tlv::set_order(&mut v);
    v
}

/// A "certs-only" message (RFC 5652 § 5.2 degenerate SignedData: no content, no signers) — what
/// EST (RFC 7030 § 4.1.3, § 4.2.3) answers with.
pub fn certs_only(certs: &[Cert]) -> Result<Vec<u8>> {
    let sd = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: set_of(vec![])?,
        encap_content_info: EncapsulatedContentInfo { econtent_type: oid::ID_DATA, econtent: None },
        certificates: Some(CertificateSet(set_of(
            certs.iter().map(|c| CertificateChoices::Certificate(c.x509().clone())).collect(),
        )?)),
        crls: None,
        signer_infos: SignerInfos(set_of(vec![])?),
    };
    ContentInfo {
        content_type: oid::ID_SIGNED_DATA,
        content: Any::encode_from(&sd).map_err(|e| Error::malformed("SignedData", e))?,
    }
    .to_der()
    .map_err(|e| Error::malformed("ContentInfo", e))
}

/// A parsed SignedData with its outer content type.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// outer content type (id-signedData or GM/T 0010 signedData)
    pub outer_type: Oid,
    /// the SignedData
    pub signed_data: SignedData,
}

impl Parsed {
    /// Parse DER or PEM (`PKCS7` / `CMS`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let der = match core::str::from_utf8(bytes) {
            Ok(t) if t.contains("-----BEGIN") => medsign_crypto::keys::pem_decode(t)?.1,
            _ => bytes.to_vec(),
        };
        let ci = ContentInfo::from_der(&der).map_err(|e| Error::malformed("CMS ContentInfo", e))?;
        if ci.content_type != oid::ID_SIGNED_DATA && ci.content_type != oid::GM_SIGNED_DATA {
            return Err(Error::Invalid(format!("CMS content type {} is not SignedData", ci.content_type)));
        }
        let sd = ci.content.decode_as::<SignedData>().map_err(|e| Error::malformed("SignedData", e))?;
        Ok(Self { outer_type: ci.content_type, signed_data: sd })
    }

    /// DER of the whole ContentInfo.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        ContentInfo {
            content_type: self.outer_type,
            content: Any::encode_from(&self.signed_data).map_err(|e| Error::malformed("SignedData", e))?,
        }
        .to_der()
        .map_err(|e| Error::malformed("ContentInfo", e))
    }

    /// The OID style the message uses.
    pub fn oid_style(&self) -> OidStyle {
        if self.outer_type == oid::GM_SIGNED_DATA { OidStyle::Gmt0010 } else { OidStyle::Rfc5652 }
    }

    /// The encapsulated content, when attached.
    pub fn content(&self) -> Result<Option<Vec<u8>>> {
        match &self.signed_data.encap_content_info.econtent {
            None => Ok(None),
            Some(any) => Ok(Some(
                any.decode_as::<OctetString>().map_err(|e| Error::malformed("eContent", e))?.as_bytes().to_vec(),
            )),
        }
    }

    /// The certificates carried in the message (unreadable ones skipped).
    pub fn certificates(&self) -> Vec<Cert> {
        self.signed_data
            .certificates
            .iter()
            .flat_map(|s| s.0.iter())
            .filter_map(|c| match c {
                CertificateChoices::Certificate(c) => c.to_der().ok().and_then(|d| Cert::from_der(&d).ok()),
                _ => None,
            })
            .collect()
    }

    /// The signer infos in order.
    pub fn signer_infos(&self) -> &[SignerInfo] {
        self.signed_data.signer_infos.0.as_slice()
    }

    /// The bytes an RFC 3161 token for signer `i` must stamp: the signature value (RFC 3161
    /// appendix A).
    pub fn signature_value(&self, i: usize) -> Result<Vec<u8>> {
        Ok(self
            .signer_infos()
            .get(i)
            .ok_or_else(|| Error::Invalid(format!("no signer #{i}")))?
            .signature
            .as_bytes()
            .to_vec())
    }

    /// The certificate serial (upper-case hex, as [`Cert::serial_hex`]) that signer `i` names, when
    /// it names one by issuer and serial.
    pub fn signer_serial_hex(&self, i: usize) -> Option<String> {
        match &self.signer_infos().get(i)?.sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => Some(hex::encode_upper(isn.serial_number.as_bytes())),
            SignerIdentifier::SubjectKeyIdentifier(_) => None,
        }
    }

    /// Whether signer `i` carries a signature timestamp token.
    pub fn has_timestamp(&self, i: usize) -> bool {
        self.signer_infos()
            .get(i)
            .is_some_and(|si| find_attr(si.unsigned_attrs.as_ref(), oid::ATTR_TIMESTAMP_TOKEN).is_some())
    }

    /// The digest algorithm of signer `i` (what its timestamp imprint should use).
    pub fn digest_of(&self, i: usize) -> Result<HashAlg> {
        let si = self.signer_infos().get(i).ok_or_else(|| Error::Invalid(format!("no signer #{i}")))?;
        hash_from_digest_algorithm(&si.digest_alg)
    }

    /// Add the signers of `other` — a signature over the same content, e.g. made later by a
    /// phone — as parallel signers: their signer infos, digest algorithms and certificates.
    pub fn merge(&mut self, other: &Parsed) -> Result<()> {
        if self.signed_data.encap_content_info.econtent_type != other.signed_data.encap_content_info.econtent_type {
            return Err(Error::Invalid("the two messages sign different content types".into()));
        }
        let mut infos: Vec<SignerInfo> = self.signer_infos().to_vec();
        infos.extend(other.signer_infos().iter().cloned());
        self.signed_data.signer_infos =
            SignerInfos(SetOfVec::try_from(infos).map_err(|e| Error::malformed("signer infos", e))?);
        for alg in other.signed_data.digest_algorithms.iter() {
            if !self.signed_data.digest_algorithms.iter().any(|a| a == alg) {
                self.signed_data
                    .digest_algorithms
                    .insert(alg.clone())
                    .map_err(|e| Error::malformed("digest algorithms", e))?;
            }
        }
        let theirs: Vec<CertificateChoices> =
            other.signed_data.certificates.iter().flat_map(|s| s.0.iter().cloned()).collect();
        if !theirs.is_empty() {
            let mut mine = self.signed_data.certificates.take().map(|s| s.0).unwrap_or_default();
            for c in theirs {
                if !mine.iter().any(|m| m == &c) {
                    mine.insert(c).map_err(|e| Error::malformed("certificates", e))?;
                }
            }
            self.signed_data.certificates = Some(CertificateSet(mine));
        }
        Ok(())
    }

    /// Add an RFC 3161 timestamp token (a ContentInfo DER) to signer `i` as the unsigned
    /// attribute id-aa-timeStampToken. Returns the new message.
    pub fn add_timestamp(&mut self, i: usize, token_der: &[u8]) -> Result<Vec<u8>> {
        let token = ContentInfo::from_der(token_der).map_err(|e| Error::malformed("timestamp token", e))?;
        let mut infos: Vec<SignerInfo> = self.signer_infos().to_vec();
        let si = infos.get_mut(i).ok_or_else(|| Error::Invalid(format!("no signer #{i}")))?;
        let mut ua = si.unsigned_attrs.clone().unwrap_or_default();
        ua.insert(attr(oid::ATTR_TIMESTAMP_TOKEN, &token)?).map_err(|e| Error::malformed("unsigned attributes", e))?;
        si.unsigned_attrs = Some(ua);
        self.signed_data.signer_infos =
            SignerInfos(SetOfVec::try_from(infos).map_err(|e| Error::malformed("signer infos", e))?);
        self.to_der()
    }
}

/// Options of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// trust anchors (root CAs) for signer certificates
    pub trust: Vec<Cert>,
    /// trust anchors for TSA certificates (in addition to `trust`)
    pub tsa_trust: Vec<Cert>,
    /// further intermediate certificates
    pub extra_certs: Vec<Cert>,
    /// CRLs to consult for revocation
    pub crls: Vec<Crl>,
    /// OCSP responses (DER) to consult for revocation, e.g. from a PDF's DSS
    pub ocsps: Vec<Vec<u8>>,
    /// validate certificates at this instant when there is no valid timestamp (None = now)
    pub at: Option<DateTime<Utc>>,
    /// SM2 ID policy
    pub sm2_ids: Sm2IdPolicy,
    /// accept a signer certificate whose revocation could not be checked (pyHanko's
    /// "soft-fail"); the report still says it was not checked. Off: such a signature is
    /// INDETERMINATE (TRY_LATER), as ETSI EN 319 102-1 has it.
    pub soft_revocation: bool,
}

/// Overall result, after EU DSS's indications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Indication {
    /// every check passed
    TotalPassed,
    /// the signature is cryptographically wrong or the certificate revoked
    TotalFailed,
    /// integrity is fine but trust could not be established
    Indeterminate,
}

impl Indication {
    /// Chinese and English label.
    pub fn label(self) -> &'static str {
        match self {
            Indication::TotalPassed => "有效 / TOTAL_PASSED",
            Indication::TotalFailed => "无效 / TOTAL_FAILED",
            Indication::Indeterminate => "无法确定 / INDETERMINATE",
        }
    }
}

/// A check's outcome: `ok`, or the reason it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// passed
    pub ok: bool,
    /// explanation (Chinese / English)
    pub detail: String,
}

impl Check {
    fn pass(detail: impl Into<String>) -> Self {
        Self { ok: true, detail: detail.into() }
    }
    fn fail(detail: impl Into<String>) -> Self {
        Self { ok: false, detail: detail.into() }
    }
}

/// The report of an embedded timestamp token.
#[derive(Debug, Clone, Serialize)]
pub struct TimestampReport {
    /// genTime
    pub time: Option<DateTime<Utc>>,
    /// accuracy in microseconds
    pub accuracy_us: Option<u64>,
    /// TSA certificate subject
    pub tsa: Option<String>,
    /// token signature + imprint over the signature value
    pub integrity: Check,
    /// TSA certificate chain (with timeStamping EKU)
    pub chain: Check,
}

impl TimestampReport {
    /// Both checks passed.
    pub fn ok(&self) -> bool {
        self.integrity.ok && self.chain.ok
    }
}

/// The report of one signer.
#[derive(Debug, Clone, Serialize)]
pub struct SignerReport {
    /// signer certificate subject
    pub subject: Option<String>,
    /// signer certificate serial (hex)
    pub serial: Option<String>,
    /// signature algorithm
    pub algorithm: Option<String>,
    /// SM2 ID that verified (when SM2)
    pub sm2_id: Option<String>,
    /// claimed signing time (signed attribute; not proof)
    pub signing_time: Option<DateTime<Utc>>,
    /// digest + signature
    pub integrity: Check,
    /// certificate chain to a trust anchor
    pub chain: Check,
    /// revocation status of the signer's certificate from the given CRLs and OCSP responses:
    /// `ok` only when it was checked and found not revoked (the detail says what was checked,
    /// and which CA certificates had no revocation data)
    pub revocation: Check,
    /// the instant certificates were validated at
    pub validated_at: DateTime<Utc>,
    /// embedded timestamp
    pub timestamp: Option<TimestampReport>,
    /// DSS-style overall result
    pub indication: Indication,
    /// DSS-style sub-indication when not passed
    pub sub_indication: Option<String>,
}

/// The report of a whole message.
#[derive(Debug, Clone, Serialize)]
pub struct CmsReport {
    /// OID style
    pub oid_style: OidStyle,
    /// eContentType
    pub content_type: String,
    /// content was not embedded
    pub detached: bool,
    /// per signer
    pub signers: Vec<SignerReport>,
    /// worst of the signers
    pub indication: Indication,
}

impl CmsReport {
    /// True only when every signer is TOTAL_PASSED.
    pub fn is_valid(&self) -> bool {
        self.indication == Indication::TotalPassed
    }
}

fn find_attr(attrs: Option<&x509_cert::attr::Attributes>, o: Oid) -> Option<&Any> {
    attrs?.iter().find(|a| a.oid == o).and_then(|a| a.values.iter().next())
}

fn find_signer_cert(si: &SignerInfo, pool: &[Cert]) -> Option<Cert> {
    pool.iter()
        .find(|c| match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                name::same(&isn.issuer, c.issuer()) && isn.serial_number.as_bytes() == c.serial()
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => c.subject_key_id().as_deref() == Some(ski.0.as_bytes()),
        })
        .cloned()
}

/// Verify the signature of one SignerInfo over `content`; returns (scheme name, SM2 id).
fn check_integrity(
    si: &SignerInfo,
    cert: &Cert,
    content: &[u8],
    econtent_type: Oid,
    policy: Sm2IdPolicy,
) -> Result<(String, Option<&'static [u8]>), String> {
    let h = hash_from_digest_algorithm(&si.digest_alg).map_err(|e| e.to_string())?;
    let key = cert.public_key().map_err(|e| e.to_string())?;
    let signed = match &si.signed_attrs {
        Some(attrs) => {
            let md = find_attr(Some(attrs), oid::ATTR_MESSAGE_DIGEST)
                .ok_or("缺少 messageDigest 属性 / messageDigest attribute missing")?
                .decode_as::<OctetString>()
                .map_err(|e| format!("messageDigest: {e}"))?;
            if md.as_bytes() != h.digest(content).as_slice() {
                return Err("内容摘要不符，文件已被改动 / message digest mismatch: the content was changed".into());
            }
            let ct = find_attr(Some(attrs), oid::ATTR_CONTENT_TYPE)
                .ok_or("缺少 contentType 属性 / contentType attribute missing")?
                .decode_as::<Oid>()
                .map_err(|e| format!("contentType: {e}"))?;
            if ct != econtent_type {
                return Err(format!(
                    "contentType 属性与内容类型不符 / contentType attribute {ct} differs from eContentType {econtent_type}"
                ));
            }
            attrs.to_der().map_err(|e| e.to_string())?
        }
        None => content.to_vec(),
    };
    let scheme = crate::alg::scheme_for(&si.signature_algorithm, key, Some(h)).map_err(|e| e.to_string())?;
    let id = verify_signature(&si.signature_algorithm, Some(h), key, &signed, si.signature.as_bytes(), policy)
        .map_err(|_| "签名值验证失败 / signature value does not verify".to_string())?;
    Ok((scheme.name().to_string(), id))
}

fn verify_timestamp(token: &Any, signature: &[u8], opts: &VerifyOptions) -> TimestampReport {
    match token.to_der() {
        Ok(der) => verify_timestamp_token(&der, Stamped::Data(signature), opts).0,
        Err(e) => TimestampReport {
            time: None,
            accuracy_us: None,
            tsa: None,
            integrity: Check::fail(format!("时间戳无法解析 / unreadable token: {e}")),
            chain: Check::fail("未检查 / not checked"),
        },
    }
}

/// Sign `info` as a timestamp token (CMS SignedData over TSTInfo with signingCertificateV2, RFC
/// 5816); the TSA certificate and `chain` are included only when the request asked (certReq).
pub fn sign_timestamp_token(
    info: &TstInfo,
    signer: &dyn medsign_crypto::Signer,
    cert: &crate::cert::Cert,
    chain: &[crate::cert::Cert],
    include_certs: bool,
) -> Result<Vec<u8>> {
    let content = crate::tsp::encode("TSTInfo", info)?;
    sign(
        &content,
        &[CmsSigner { signer, cert, chain }],
        &SignOptions {
            content_type: Some(crate::oid::ID_CT_TST_INFO),
            signing_time: Some(info.gen_time.0),
            omit_certificates: !include_certs,
            ..Default::default()
        },
    )
}

/// What a timestamp token is expected to cover.
#[derive(Debug, Clone, Copy)]
pub enum Stamped<'a> {
    /// these bytes (hashed with the token's imprint algorithm)
    Data(&'a [u8]),
    /// this digest
    Digest(&'a [u8]),
    /// do not check the imprint
    Unchecked,
}

/// Verify an RFC 3161 token (DER ContentInfo): the TSA's signature, its certificate (EKU
/// timeStamping, chain to `opts.trust` / `opts.tsa_trust` at genTime) and the imprint. Returns the
/// report and the TSTInfo when readable.
pub fn verify_timestamp_token(
    der: &[u8],
    stamped: Stamped<'_>,
    opts: &VerifyOptions,
) -> (TimestampReport, Option<TstInfo>) {
    let mut rep = TimestampReport {
        time: None,
        accuracy_us: None,
        tsa: None,
        integrity: Check::fail("未检查 / not checked"),
        chain: Check::fail("未检查 / not checked"),
    };
    let parsed = match Parsed::from_bytes(der) {
        Ok(p) => p,
        Err(e) => {
            rep.integrity = Check::fail(format!("时间戳无法解析 / unreadable token: {e}"));
            return (rep, None);
        }
    };
    let info = match parsed.content().ok().flatten().and_then(|c| TstInfo::from_der(&c).ok()) {
        Some(i) if parsed.signed_data.encap_content_info.econtent_type == oid::ID_CT_TST_INFO => i,
        _ => {
            rep.integrity = Check::fail("时间戳不含 TSTInfo / token carries no TSTInfo");
            return (rep, None);
        }
    };
    rep.time = Some(info.gen_time.0);
    rep.accuracy_us = info.accuracy.map(|a| a.to_micros());
    let imprint = info.message_imprint.hashed_message.as_bytes();
    let imprint_ok = match stamped {
        Stamped::Unchecked => true,
        Stamped::Digest(d) => d == imprint,
        Stamped::Data(data) => hash_from_digest_algorithm(&info.message_imprint.hash_algorithm)
            .map(|h| imprint == h.digest(data).as_slice())
            .unwrap_or(false),
    };
    let mut topts = opts.clone();
    topts.trust.extend(opts.tsa_trust.iter().cloned());
    topts.at = rep.time;
    let inner = verify_parsed(&parsed, None, &topts, false);
    match inner {
        Ok(r) => {
            let s = &r.signers[0];
            rep.tsa = s.subject.clone();
            rep.integrity = if !imprint_ok {
                Check::fail("时间戳摘要与被盖时间戳的数据不符 / token imprint does not match the stamped data")
            } else if !s.integrity.ok {
                Check::fail(format!("时间戳签名无效 / token signature: {}", s.integrity.detail))
            } else {
                Check::pass("时间戳完整 / token intact")
            };
            rep.chain = if s.chain.ok {
                Check::pass(format!("时间戳证书可信 / TSA certificate trusted: {}", s.chain.detail))
            } else {
                Check::fail(format!("时间戳证书不可信 / TSA certificate: {}", s.chain.detail))
            };
        }
        Err(e) => rep.integrity = Check::fail(format!("时间戳无效 / token: {e}")),
    }
    (rep, Some(info))
}

const NOT_CHECKED: &str = "未检查：没有该证书的吊销信息 / not checked: no revocation data for the certificate";

/// The revocation status of a validated chain (leaf first, anchor last) from the CRLs and OCSP
/// responses in `opts`, at `at`, and whether a certificate of it is revoked. Passes only when the
/// signer's certificate was checked and no certificate of the chain is revoked; a CA certificate
/// without data is named in the detail.
fn revocation(chain: &[Cert], at: DateTime<Utc>, opts: &VerifyOptions) -> (Check, bool) {
    let ocsps: Vec<crate::ocsp::Response> =
        opts.ocsps.iter().filter_map(|d| crate::ocsp::parse_response(d).ok()).collect();
    let mut unchecked_cas = Vec::new();
    let mut leaf_source = None;
    for (i, c) in chain.iter().enumerate().take(chain.len().saturating_sub(1)) {
        let issuer = &chain[i + 1];
        let mut source = None;
        for crl in opts.crls.iter().filter(|crl| crl.verify(issuer, opts.sm2_ids).is_ok()) {
            match crl.find(c.serial()) {
                Some(r) if r.time <= at => {
                    let detail = format!(
                        "已吊销：证书 {} 于 {} 吊销 / revoked: certificate {} revoked at {} (reason {:?})",
                        c.describe(),
                        r.time,
                        c.describe(),
                        r.time,
                        r.reason
                    );
                    return (Check::fail(detail), true);
                }
                _ => source = Some(format!("CRL {}", crl.this_update().format("%Y-%m-%d %H:%M"))),
            }
        }
        for resp in &ocsps {
            let Some(a) =
                resp.answers.iter().find(|a| a.cert_id.issued_by(issuer) && a.cert_id.serial_hex() == c.serial_hex())
            else {
                continue;
            };
            if resp.verify(issuer).is_err() {
                continue;
            }
            match &a.status {
                crate::ocsp::Status::Revoked { time, .. } if *time <= at => {
                    let detail = format!(
                        "已吊销：证书 {} 于 {time} 吊销（OCSP）/ revoked: certificate {} revoked at {time} (OCSP)",
                        c.describe(),
                        c.describe()
                    );
                    return (Check::fail(detail), true);
                }
                crate::ocsp::Status::Unknown => {}
                _ => source = Some(format!("OCSP {}", a.this_update.format("%Y-%m-%d %H:%M"))),
            }
        }
        match (i, source) {
            (0, s) => leaf_source = s,
            (_, None) => unchecked_cas.push(name::common_name_or_dn(c.subject())),
            _ => {}
        }
    }
    let Some(src) = leaf_source else { return (Check::fail(NOT_CHECKED), false) };
    if unchecked_cas.is_empty() {
        (Check::pass(format!("未吊销（{src}）/ not revoked ({src})")), false)
    } else {
        let cas = unchecked_cas.join(", ");
        let detail = format!(
            "签名证书未吊销（{src}）；CA 证书 {cas} 无吊销信息，未检查 / signer certificate not revoked ({src}); \
             CA certificate {cas}: no revocation data, not checked"
        );
        (Check::pass(detail), false)
    }
}

/// Verify a CMS SignedData. `content` is required for detached signatures. An `Err` means the
/// input could not be read at all; everything else is in the report.
pub fn verify(bytes: &[u8], content: Option<&[u8]>, opts: &VerifyOptions) -> Result<CmsReport> {
    let parsed = Parsed::from_bytes(bytes)?;
    verify_parsed(&parsed, content, opts, true)
}

fn verify_parsed(
    parsed: &Parsed,
    content: Option<&[u8]>,
    opts: &VerifyOptions,
    want_timestamps: bool,
) -> Result<CmsReport> {
    let attached = parsed.content()?;
    let content: Vec<u8> = match (&attached, content) {
        (Some(a), Some(c)) if a.as_slice() != c => {
            return Err(Error::Invalid("the message embeds content that differs from the content given".into()));
        }
        (Some(a), _) => a.clone(),
        (None, Some(c)) => c.to_vec(),
        (None, None) => {
            return Err(Error::Invalid("detached signature: the signed content must be given (--content)".into()));
        }
    };
    let econtent_type = parsed.signed_data.encap_content_info.econtent_type;
    let mut pool = parsed.certificates();
    pool.extend(opts.extra_certs.iter().cloned());
    let infos = parsed.signer_infos();
    if infos.is_empty() {
        return Err(Error::Invalid("the message has no signer".into()));
    }
    let mut signers = Vec::new();
    for si in infos {
        let cert = find_signer_cert(si, &pool);
        let mut rep = SignerReport {
            subject: cert.as_ref().map(Cert::subject_display),
            serial: cert.as_ref().map(Cert::serial_hex),
            algorithm: None,
            sm2_id: None,
            signing_time: find_attr(si.signed_attrs.as_ref(), oid::ATTR_SIGNING_TIME)
                .and_then(|a| a.decode_as::<Time>().ok())
                .map(|t| from_x509_time(&t)),
            integrity: Check::fail("未检查 / not checked"),
            chain: Check::fail("未检查 / not checked"),
            revocation: Check::fail(NOT_CHECKED),
            validated_at: opts.at.unwrap_or_else(Utc::now),
            timestamp: None,
            indication: Indication::TotalFailed,
            sub_indication: None,
        };
        let Some(cert) = cert else {
            rep.integrity = Check::fail("消息中找不到签名者证书 / signer certificate not found in the message");
            rep.sub_indication = Some("NO_SIGNING_CERTIFICATE_FOUND".into());
            rep.indication = Indication::Indeterminate;
            signers.push(rep);
            continue;
        };
        match check_integrity(si, &cert, &content, econtent_type, opts.sm2_ids) {
            Ok((alg, id)) => {
                rep.algorithm = Some(alg);
                rep.sm2_id = id.map(|i| String::from_utf8_lossy(i).into_owned());
                rep.integrity = Check::pass("签名完整，内容未被改动 / signature intact, content unchanged");
            }
            Err(e) => rep.integrity = Check::fail(e),
        }
        if let Some(attr) = find_attr(si.signed_attrs.as_ref(), oid::ATTR_SIGNING_CERTIFICATE_V2) {
            let ok = attr
                .decode_as::<SigningCertificateV2>()
                .ok()
                .and_then(|s| s.certs.first().map(|c| c.matches(&cert)))
                .unwrap_or(false);
            if !ok && rep.integrity.ok {
                rep.integrity = Check::fail(
                    "signingCertificateV2 与签名者证书不符 / signingCertificateV2 does not match the signer certificate",
                );
            }
        }
        if want_timestamps && let Some(tok) = find_attr(si.unsigned_attrs.as_ref(), oid::ATTR_TIMESTAMP_TOKEN) {
            // the TSA's chain may come from the signature's own certificates
            let topts = VerifyOptions { extra_certs: pool.clone(), ..opts.clone() };
            let t = verify_timestamp(tok, si.signature.as_bytes(), &topts);
            if t.ok()
                && let Some(time) = t.time
            {
                rep.validated_at = time;
            }
            rep.timestamp = Some(t);
        }
        let mut revoked = false;
        let mut popts = PathOptions::at(rep.validated_at);
        popts.sm2_ids = opts.sm2_ids;
        if !want_timestamps {
            popts.required_eku = Some(oid::KP_TIME_STAMPING);
        }
        match validate(&cert, &pool, &opts.trust, &popts) {
            Ok(path) => {
                rep.chain = Check::pass(
                    path.chain.iter().map(|c| name::common_name_or_dn(c.subject())).collect::<Vec<_>>().join(" → "),
                );
                (rep.revocation, revoked) = revocation(&path.chain, rep.validated_at, opts);
            }
            Err(e) => rep.chain = Check::fail(e.to_string()),
        }
        let (ind, sub) = if !rep.integrity.ok {
            (
                Indication::TotalFailed,
                if rep.integrity.detail.contains("digest") { "HASH_FAILURE" } else { "SIG_CRYPTO_FAILURE" },
            )
        } else if revoked {
            (Indication::TotalFailed, "REVOKED")
        } else if !rep.chain.ok {
            (Indication::Indeterminate, "NO_CERTIFICATE_CHAIN_FOUND")
        } else if rep.timestamp.as_ref().is_some_and(|t| !t.ok()) {
            (Indication::Indeterminate, "TIMESTAMP_FAILURE")
        } else if !rep.revocation.ok && !opts.soft_revocation {
            (Indication::Indeterminate, "TRY_LATER")
        } else {
            (Indication::TotalPassed, "")
        };
        rep.indication = ind;
        rep.sub_indication = (!sub.is_empty()).then(|| sub.to_string());
        signers.push(rep);
    }
    let indication = if signers.iter().any(|s| s.indication == Indication::TotalFailed) {
        Indication::TotalFailed
    } else if signers.iter().any(|s| s.indication == Indication::Indeterminate) {
        Indication::Indeterminate
    } else {
        Indication::TotalPassed
    };
    Ok(CmsReport {
        oid_style: parsed.oid_style(),
        content_type: econtent_type.to_string(),
        detached: attached.is_none(),
        signers,
        indication,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests::test_pki;
    use medsign_crypto::{KeyAlg, signer::KeySigner};

    fn opts(p: &crate::cert::tests::TestPki) -> VerifyOptions {
        VerifyOptions { trust: vec![p.root.clone()], extra_certs: vec![], soft_revocation: true, ..Default::default() }
    }

    #[test]
    fn attached_and_detached_every_algorithm_and_style() {
        for alg in [KeyAlg::Sm2, KeyAlg::P256, KeyAlg::Rsa2048] {
            let p = test_pki(alg);
            for style in [OidStyle::Rfc5652, OidStyle::Gmt0010] {
                for detached in [false, true] {
                    let chain = [p.ca.clone()];
                    let s = CmsSigner { signer: &p.leaf_key, cert: &p.leaf, chain: &chain };
                    let o = SignOptions { detached, oid_style: style, ..Default::default() };
                    let der = sign("门诊处方".as_bytes(), &[s], &o).unwrap();
                    let content = detached.then_some("门诊处方".as_bytes());
                    let r = verify(&der, content, &opts(&p)).unwrap();
                    assert!(r.is_valid(), "{alg:?} {style:?} {detached}: {r:#?}");
                    assert_eq!(r.oid_style, style);
                    assert_eq!(r.detached, detached);
                    assert_eq!(r.signers[0].subject.as_deref(), Some("CN=张三,OU=心内科,O=某县人民医院,C=CN"));
                    // tampered content
                    if detached {
                        let r = verify(&der, Some("门诊处方!".as_bytes()), &opts(&p)).unwrap();
                        assert_eq!(r.indication, Indication::TotalFailed);
                        assert_eq!(r.signers[0].sub_indication.as_deref(), Some("HASH_FAILURE"));
                    } else {
                        assert!(verify(&der, Some(b"other"), &opts(&p)).is_err());
                    }
                }
            }
        }
    }

    /// The certificates written from their own DER are the bytes the `cms` crate writes for the
    /// same message, its certificate set built from the parsed certificates (and sorted by the
    /// `der` crate): with one certificate, a chain, two signers' chains (four certificates, given
    /// out of order), and none. (The two orders differ only for certificates of equal length,
    /// which these are not; `certificates_of_equal_length_are_in_byte_order` pins that case.)
    #[test]
    fn certificates_written_from_their_der_are_what_cms_writes() {
        let p = test_pki(KeyAlg::Sm2);
        let q = test_pki(KeyAlg::Rsa2048);
        let (a, b) = ([p.ca.clone()], [q.ca.clone()]);
        // (signers as certificate, chain and key; certificates omitted; the certificates expected)
        type Case<'a> = (&'a [(&'a Cert, &'a [Cert], &'a KeySigner)], bool, Vec<&'a Cert>);
        let cases: [Case<'_>; 4] = [
            (&[(&p.leaf, &[], &p.leaf_key)], false, vec![&p.leaf]),
            (&[(&p.leaf, &a, &p.leaf_key)], false, vec![&p.leaf, &p.ca]),
            (&[(&q.leaf, &b, &q.leaf_key), (&p.leaf, &a, &p.leaf_key)], false, vec![&q.leaf, &q.ca, &p.leaf, &p.ca]),
            (&[(&p.leaf, &a, &p.leaf_key)], true, vec![]),
        ];
        for (signers, omit, certs) in cases {
            let signers: Vec<CmsSigner<'_>> =
                signers.iter().map(|(cert, chain, signer)| CmsSigner { signer: *signer, cert, chain }).collect();
            let der =
                sign(b"lab report", &signers, &SignOptions { omit_certificates: omit, ..Default::default() }).unwrap();
            let ci = ContentInfo::from_der(&der).unwrap();
            let mut sd: SignedData = ci.content.decode_as().unwrap();
            sd.certificates = (!omit).then(|| {
                CertificateSet(
                    set_of(certs.iter().map(|c| CertificateChoices::Certificate(c.x509().clone())).collect()).unwrap(),
                )
            });
            let theirs = ContentInfo { content_type: ci.content_type, content: Any::encode_from(&sd).unwrap() };
            assert_eq!(theirs.to_der().unwrap(), der, "{} certificates", certs.len());
        }
    }

    /// X.690's order for two certificates of the same length is their byte order: the one whose
    /// first differing octet is smaller comes first, whatever the octets after it.
    #[test]
    fn certificates_of_equal_length_are_in_byte_order() {
        let p = test_pki(KeyAlg::P256);
        let mut der = p.leaf.der().to_vec();
        // two certificates of one length, differing in the signature's last octets
        let n = der.len();
        der[n - 2] = 0x7F;
        der[n - 1] = 0xFF;
        let low = Cert::from_der(&der).unwrap();
        der[n - 2] = 0x80;
        der[n - 1] = 0x00;
        let high = Cert::from_der(&der).unwrap();
        assert_eq!(der_set_order(&[&high, &low]), vec![low.der(), high.der()]);
        assert_eq!(der_set_order(&[&low, &high]), vec![low.der(), high.der()]);
    }

    #[test]
    fn untrusted_tampered_and_multi_signer() {
        let p = test_pki(KeyAlg::Sm2);
        let q = test_pki(KeyAlg::Rsa2048);
        let a = [p.ca.clone()];
        let b = [q.ca.clone()];
        let der = sign(
            b"lab report",
            &[
                CmsSigner { signer: &p.leaf_key, cert: &p.leaf, chain: &a },
                CmsSigner { signer: &q.leaf_key, cert: &q.leaf, chain: &b },
            ],
            &SignOptions::default(),
        )
        .unwrap();
        let mut o = opts(&p);
        o.trust.push(q.root.clone());
        let r = verify(&der, None, &o).unwrap();
        assert_eq!(r.signers.len(), 2);
        assert!(r.is_valid(), "{r:#?}");
        // only one root trusted: indeterminate, not failed
        let r = verify(&der, None, &opts(&p)).unwrap();
        assert_eq!(r.indication, Indication::Indeterminate);
        // flip a byte inside a signature value: find the last signer's signature bytes
        let parsed = Parsed::from_bytes(&der).unwrap();
        let sig = parsed.signature_value(0).unwrap();
        let pos = der.windows(sig.len()).position(|w| w == sig.as_slice()).unwrap();
        let mut t = der.clone();
        t[pos + sig.len() / 2] ^= 0x01;
        // the flipped byte is inside the signature value, so the message still parses
        assert_eq!(verify(&t, None, &o).unwrap().indication, Indication::TotalFailed);
        // a key that does not match the certificate
        assert!(
            sign(b"x", &[CmsSigner { signer: &q.leaf_key, cert: &p.leaf, chain: &[] }], &SignOptions::default())
                .is_err()
        );
    }

    #[test]
    fn a_later_signature_merges_as_a_parallel_signer() {
        let p = test_pki(KeyAlg::Sm2);
        let q = test_pki(KeyAlg::Rsa2048);
        let (a, b) = ([p.ca.clone()], [q.ca.clone()]);
        for detached in [false, true] {
            let o = SignOptions { detached, ..Default::default() };
            let first =
                sign(b"lab report", &[CmsSigner { signer: &p.leaf_key, cert: &p.leaf, chain: &a }], &o).unwrap();
            let later =
                sign(b"lab report", &[CmsSigner { signer: &q.leaf_key, cert: &q.leaf, chain: &b }], &o).unwrap();
            let mut m = Parsed::from_bytes(&first).unwrap();
            m.merge(&Parsed::from_bytes(&later).unwrap()).unwrap();
            let der = m.to_der().unwrap();
            let mut vo = opts(&p);
            vo.trust.push(q.root.clone());
            let r = verify(&der, detached.then_some(b"lab report".as_slice()), &vo).unwrap();
            assert_eq!(r.signers.len(), 2);
            assert!(r.is_valid(), "{r:#?}");
            assert_eq!(m.signed_data.digest_algorithms.len(), 2, "SM3 and SHA-256");
            assert_eq!(m.certificates().len(), 4, "both leaves and both CAs, once each");
            // merging the same signer again does not duplicate its certificates
            m.merge(&Parsed::from_bytes(&later).unwrap()).unwrap();
            assert_eq!(m.certificates().len(), 4);
        }
        // a timestamp token (other content type) does not merge into a data signature
        let tst = sign(
            b"x",
            &[CmsSigner { signer: &p.leaf_key, cert: &p.leaf, chain: &a }],
            &SignOptions { content_type: Some(oid::ID_CT_TST_INFO), ..Default::default() },
        )
        .unwrap();
        let mut m = Parsed::from_bytes(
            &sign(b"x", &[CmsSigner { signer: &p.leaf_key, cert: &p.leaf, chain: &a }], &SignOptions::default())
                .unwrap(),
        )
        .unwrap();
        assert!(m.merge(&Parsed::from_bytes(&tst).unwrap()).is_err());
    }

    #[test]
    fn revoked_signer_fails_with_crl() {
        let p = test_pki(KeyAlg::Sm2);
        let chain = [p.ca.clone()];
        let der =
            sign(b"x", &[CmsSigner { signer: &p.leaf_key, cert: &p.leaf, chain: &chain }], &SignOptions::default())
                .unwrap();
        let now = Utc::now();
        let crl = crate::crl::build(
            &p.ca,
            &p.ca_key,
            now,
            now + chrono::Duration::hours(1),
            1,
            &[crate::crl::Revoked {
                serial: p.leaf.serial().to_vec(),
                time: now - chrono::Duration::minutes(1),
                reason: None,
            }],
        )
        .unwrap();
        let mut o = opts(&p);
        o.crls.push(Crl::from_bytes(&crl).unwrap());
        let r = verify(&der, None, &o).unwrap();
        assert_eq!(r.signers[0].sub_indication.as_deref(), Some("REVOKED"));
    }

    #[test]
    fn revocation_not_checked_is_never_ok() {
        let p = test_pki(KeyAlg::P256);
        let chain = [p.ca.clone()];
        let der =
            sign(b"x", &[CmsSigner { signer: &p.leaf_key, cert: &p.leaf, chain: &chain }], &SignOptions::default())
                .unwrap();
        let strict = VerifyOptions { trust: vec![p.root.clone()], ..Default::default() };
        let r = verify(&der, None, &strict).unwrap();
        assert!(!r.signers[0].revocation.ok, "{r:#?}");
        assert_eq!(
            (r.indication, r.signers[0].sub_indication.as_deref()),
            (Indication::Indeterminate, Some("TRY_LATER"))
        );
        // soft-fail passes, but still says it was not checked
        let r = verify(&der, None, &VerifyOptions { soft_revocation: true, ..strict.clone() }).unwrap();
        assert!(r.is_valid() && !r.signers[0].revocation.ok, "{r:#?}");
        // a CRL of another CA checks nothing
        let now = Utc::now();
        let other = test_pki(KeyAlg::P256);
        let foreign =
            crate::crl::build(&other.ca, &other.ca_key, now, now + chrono::Duration::hours(1), 1, &[]).unwrap();
        let mut o = strict.clone();
        o.crls.push(Crl::from_bytes(&foreign).unwrap());
        assert_eq!(verify(&der, None, &o).unwrap().indication, Indication::Indeterminate);
        // the issuing CA's CRL checks the leaf: passed, and the detail names the unchecked CA
        let crl = crate::crl::build(&p.ca, &p.ca_key, now, now + chrono::Duration::hours(1), 1, &[]).unwrap();
        let mut o = strict.clone();
        o.crls.push(Crl::from_bytes(&crl).unwrap());
        let r = verify(&der, None, &o).unwrap();
        assert!(r.is_valid() && r.signers[0].revocation.ok, "{r:#?}");
        assert!(r.signers[0].revocation.detail.contains("CA certificate"), "{}", r.signers[0].revocation.detail);
        // an OCSP answer "good" from the issuing CA checks it too; "revoked" fails it
        let id = crate::ocsp::CertId::new(&p.leaf, &p.ca, None).unwrap();
        for (status, want) in [
            (crate::ocsp::Status::Good, Indication::TotalPassed),
            (
                crate::ocsp::Status::Revoked { time: now - chrono::Duration::minutes(5), reason: None },
                Indication::TotalFailed,
            ),
        ] {
            let answer = crate::ocsp::SingleAnswer {
                cert_id: id.clone(),
                status,
                this_update: now,
                next_update: now + chrono::Duration::hours(1),
            };
            let resp = crate::ocsp::build_response(&p.ca, &p.ca_key, now, &[answer], None).unwrap();
            let o = VerifyOptions { ocsps: vec![resp], ..strict.clone() };
            assert_eq!(verify(&der, None, &o).unwrap().indication, want);
        }
    }

    /// A timestamp token (SignedData over TSTInfo, RFC 3161 § 2.4.2) made with our own CMS code
    /// by a TSA certificate, attached to signer 0: the report shows the time, validates the
    /// chain at that time, and a token over other bytes is refused.
    fn token_for(
        p: &crate::cert::tests::TestPki,
        tsa: &KeySigner,
        tsa_cert: &Cert,
        stamped: &[u8],
        at: DateTime<Utc>,
    ) -> Vec<u8> {
        use crate::tsp::{Accuracy, MessageImprint, TstInfo};
        let info = TstInfo {
            version: 1,
            policy: Oid::new_unwrap("1.2.156.112562.7.1"),
            message_imprint: MessageImprint::of(HashAlg::Sm3, stamped),
            serial_number: der::asn1::Int::new(&[0x2a]).unwrap(),
            gen_time: crate::time::PreciseTime(at),
            accuracy: Some(Accuracy::from_micros(1000)),
            ordering: false,
            nonce: None,
            tsa: None,
            extensions: None,
        };
        let chain = [p.ca.clone()];
        sign(
            &info.to_der().unwrap(),
            &[CmsSigner { signer: tsa, cert: tsa_cert, chain: &chain }],
            &SignOptions { content_type: Some(oid::ID_CT_TST_INFO), signing_time: Some(at), ..Default::default() },
        )
        .unwrap()
    }

    #[test]
    fn timestamp_token_is_added_and_verified() {
        use crate::cert::{CertTemplate, Profile, issue};
        use medsign_crypto::{PrivateKey, signer::KeySigner};
        let p = test_pki(KeyAlg::Sm2);
        let now = Utc::now();
        let tsa = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
        let t = CertTemplate::new(
            crate::name::parse_dn("CN=某县人民医院时间戳服务,C=CN").unwrap(),
            tsa.public_key().clone(),
            Profile::Tsa,
            now - chrono::Duration::hours(1),
            now + chrono::Duration::days(30),
        );
        let tsa_cert = issue(&t, Some(&p.ca), &p.ca_key).unwrap();
        let chain = [p.ca.clone()];
        let der =
            sign(b"doc", &[CmsSigner { signer: &p.leaf_key, cert: &p.leaf, chain: &chain }], &SignOptions::default())
                .unwrap();
        let mut parsed = Parsed::from_bytes(&der).unwrap();
        let stamp_at = now - chrono::Duration::minutes(10);
        let token = token_for(&p, &tsa, &tsa_cert, &parsed.signature_value(0).unwrap(), stamp_at);
        let stamped = parsed.add_timestamp(0, &token).unwrap();
        let r = verify(&stamped, None, &opts(&p)).unwrap();
        assert!(r.is_valid(), "{r:#?}");
        let ts = r.signers[0].timestamp.as_ref().unwrap();
        assert!(ts.ok(), "{ts:#?}");
        assert_eq!(ts.time.unwrap().timestamp(), stamp_at.timestamp());
        assert_eq!(ts.accuracy_us, Some(1000));
        assert_eq!(r.signers[0].validated_at.timestamp(), stamp_at.timestamp(), "chain checked at the timestamp");

        // a token over other bytes: imprint mismatch → INDETERMINATE (TIMESTAMP_FAILURE)
        let mut parsed = Parsed::from_bytes(&der).unwrap();
        let wrong = token_for(&p, &tsa, &tsa_cert, b"something else", stamp_at);
        let r = verify(&parsed.add_timestamp(0, &wrong).unwrap(), None, &opts(&p)).unwrap();
        assert_eq!(r.indication, Indication::Indeterminate);
        assert_eq!(r.signers[0].sub_indication.as_deref(), Some("TIMESTAMP_FAILURE"));
        // a token by a certificate without the timeStamping EKU: chain check fails
        let mut parsed = Parsed::from_bytes(&der).unwrap();
        let by_leaf = token_for(&p, &p.leaf_key, &p.leaf, &parsed.signature_value(0).unwrap(), stamp_at);
        let r = verify(&parsed.add_timestamp(0, &by_leaf).unwrap(), None, &opts(&p)).unwrap();
        assert!(!r.signers[0].timestamp.as_ref().unwrap().chain.ok);
        assert_eq!(r.indication, Indication::Indeterminate);
        // a signature long after the leaf expired still verifies thanks to the timestamp
        let mut late = opts(&p);
        late.at = Some(now + chrono::Duration::days(400));
        let mut parsed = Parsed::from_bytes(&der).unwrap();
        let r = verify(&parsed.add_timestamp(0, &token).unwrap(), None, &late).unwrap();
        assert!(r.signers[0].chain.ok, "{r:#?}");
        let r = verify(&der, None, &late).unwrap();
        assert!(!r.signers[0].chain.ok, "without a timestamp the expired leaf fails");
    }

    #[test]
    fn garbage_is_an_error() {
        for junk in [&b""[..], b"\x30\x00", b"hello", b"\x30\x0b\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01"] {
            assert!(verify(junk, None, &VerifyOptions::default()).is_err());
        }
    }
}
