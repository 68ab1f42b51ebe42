//! OCSP (RFC 6960) request and response formats, for the responder (`core::ocsp`) and for
//! verifiers that fetch status: parse a request, match a `CertID` against an issuer, build and
//! sign a BasicOCSPResponse (nonce echoed, RFC 8954), error responses, parse and verify a response.

use crate::{
    Error, Result,
    alg::{Sm2IdPolicy, hash_from_digest_algorithm, signature_algorithm, verify_signature},
    cert::Cert,
    oid,
    time::{from_generalized, to_generalized},
};
use chrono::{DateTime, Utc};
use der::{
    AnyRef, Decode, Encode,
    asn1::{BitString, GeneralizedTime, Null, ObjectIdentifier as Oid, OctetString},
};
use medsign_crypto::{HashAlg, Signer, hash};
use spki::AlgorithmIdentifierOwned;
use x509_cert::{
    Certificate,
    ext::{Extension, pkix::CrlReason},
    name::Name,
    serial_number::SerialNumber,
};

/// Most single requests one OCSPRequest may carry.
pub const MAX_REQUESTS: usize = 32;

/// ```text
/// CertID ::= SEQUENCE {
///     hashAlgorithm  AlgorithmIdentifier,
///     issuerNameHash OCTET STRING, -- hash of the issuer's DN
///     issuerKeyHash  OCTET STRING, -- hash of the issuer's public key
///     serialNumber   CertificateSerialNumber }
/// ```
/// [RFC 6960 § 4.1.1]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// hash of the two issuer hashes
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// hash of the issuer's subject DN (DER)
    pub issuer_name_hash: OctetString,
    /// hash of the issuer's subjectPublicKey BIT STRING value
    pub issuer_key_hash: OctetString,
    /// serial of the certificate asked about
    pub serial_number: SerialNumber,
}

/// The hashes a CertID may use: SHA-1 (what most clients send), the SHA-2 family and SM3.
fn certid_hash(a: &AlgorithmIdentifierOwned, data: &[u8]) -> Option<Vec<u8>> {
    if a.oid == oid::SHA1 {
        return Some(hash::sha1_legacy(data).to_vec());
    }
    hash_from_digest_algorithm(a).ok().map(|h| h.digest(data))
}

impl CertId {
    /// The CertID of `cert` issued by `issuer`, hashed with `h` (`None` = SHA-1, the default of
    /// OpenSSL and most clients).
    pub fn new(cert: &Cert, issuer: &Cert, h: Option<HashAlg>) -> Result<Self> {
        let hash_algorithm = match h {
            None => AlgorithmIdentifierOwned { oid: oid::SHA1, parameters: Some(der::Any::from(Null)) },
            Some(h) => crate::alg::digest_algorithm(h),
        };
        let name = issuer.subject().to_der().map_err(|e| Error::malformed("issuer name", e))?;
        let key = issuer.public_key()?.subject_public_key_bytes();
        let digest = |d: &[u8]| OctetString::new(certid_hash(&hash_algorithm, d).expect("supported")).expect("octets");
        Ok(Self {
            issuer_name_hash: digest(&name),
            issuer_key_hash: digest(&key),
            hash_algorithm,
            serial_number: SerialNumber::new(cert.serial()).map_err(|e| Error::Invalid(format!("serial: {e}")))?,
        })
    }

    /// Whether this CertID names `issuer` (both hashes match). `false` for hashes we do not know.
    pub fn issued_by(&self, issuer: &Cert) -> bool {
        let Ok(name) = issuer.subject().to_der() else { return false };
        let Ok(key) = issuer.public_key().map(|k| k.subject_public_key_bytes()) else { return false };
        match (certid_hash(&self.hash_algorithm, &name), certid_hash(&self.hash_algorithm, &key)) {
            (Some(n), Some(k)) => n == self.issuer_name_hash.as_bytes() && k == self.issuer_key_hash.as_bytes(),
            _ => false,
        }
    }

    /// The serial number asked about, upper-case hex without leading zero octets.
    pub fn serial_hex(&self) -> String {
        let b = self.serial_number.as_bytes();
        let start = b.iter().position(|&x| x != 0).unwrap_or(b.len().saturating_sub(1));
        hex::encode_upper(&b[start..])
    }
}

/// ```text
/// Request ::= SEQUENCE {
///     reqCert                 CertID,
///     singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(der::Sequence, Debug, Clone)]
struct SingleRequest {
    req_cert: CertId,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    single_request_extensions: Option<Vec<Extension>>,
}

/// ```text
/// TBSRequest ::= SEQUENCE {
///     version           [0] EXPLICIT Version DEFAULT v1,
///     requestorName     [1] EXPLICIT GeneralName OPTIONAL,
///     requestList           SEQUENCE OF Request,
///     requestExtensions [2] EXPLICIT Extensions OPTIONAL }
/// OCSPRequest ::= SEQUENCE {
///     tbsRequest                  TBSRequest,
///     optionalSignature   [0]     EXPLICIT Signature OPTIONAL }
/// ```
/// The requestor name and the optional signature are read past (this responder does not require
/// signed requests, RFC 6960 § 4.1.2).
#[derive(der::Sequence, Debug, Clone)]
struct TbsRequest<'a> {
    #[asn1(context_specific = "0", default = "Default::default", tag_mode = "EXPLICIT")]
    version: u8,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    requestor_name: Option<AnyRef<'a>>,
    request_list: Vec<SingleRequest>,
    #[asn1(context_specific = "2", optional = "true", tag_mode = "EXPLICIT")]
    request_extensions: Option<Vec<Extension>>,
}

#[derive(der::Sequence, Debug, Clone)]
struct OcspRequestDer<'a> {
    tbs_request: TbsRequest<'a>,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    optional_signature: Option<AnyRef<'a>>,
}

/// A parsed OCSP request.
#[derive(Debug, Clone)]
pub struct Request {
    /// the certificates asked about
    pub cert_ids: Vec<CertId>,
    /// the nonce extension, to be echoed (RFC 8954)
    pub nonce: Option<Extension>,
}

/// Why a request could not be parsed; answered with `malformedRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Parse a DER OCSPRequest (the POST body, or the decoded GET path).
pub fn parse_request(der_bytes: &[u8]) -> std::result::Result<Request, Malformed> {
    let r = OcspRequestDer::from_der(der_bytes).map_err(|e| Malformed(format!("not an OCSPRequest: {e}")))?;
    let tbs = r.tbs_request;
    if tbs.version != 0 {
        return Err(Malformed(format!("unsupported version {}", tbs.version)));
    }
    if tbs.request_list.is_empty() || tbs.request_list.len() > MAX_REQUESTS {
        return Err(Malformed(format!("between 1 and {MAX_REQUESTS} certificates per request")));
    }
    let mut nonce = None;
    for e in tbs.request_extensions.unwrap_or_default() {
        if e.extn_id == oid::OCSP_NONCE {
            // RFC 8954 § 2.1: the value is an OCTET STRING of 1..32 octets; older clients put the
            // raw bytes directly in extnValue.
            let inner = OctetString::from_der(e.extn_value.as_bytes())
                .map(|o| o.as_bytes().len())
                .unwrap_or(e.extn_value.as_bytes().len());
            if !(1..=32).contains(&inner) {
                return Err(Malformed("nonce must be 1 to 32 octets (RFC 8954)".into()));
            }
            nonce = Some(Extension { critical: false, ..e });
        } else if e.critical {
            return Err(Malformed(format!("unsupported critical extension {}", e.extn_id)));
        }
    }
    Ok(Request { cert_ids: tbs.request_list.into_iter().map(|s| s.req_cert).collect(), nonce })
}

/// Build a request for `ids`, with a random 16-octet nonce when `nonce` (a client for tests and
/// for verifiers).
pub fn build_request(ids: &[CertId], nonce: bool) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
    let n = if nonce { Some(medsign_crypto::rng::bytes::<16>()?.to_vec()) } else { None };
    let ext = n.as_ref().map(|v| {
        vec![Extension {
            extn_id: oid::OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(v.clone()).expect("octets").to_der().expect("der"))
                .expect("octets"),
        }]
    });
    let r = OcspRequestDer {
        tbs_request: TbsRequest {
            version: 0,
            requestor_name: None,
            request_list: ids
                .iter()
                .map(|c| SingleRequest { req_cert: c.clone(), single_request_extensions: None })
                .collect(),
            request_extensions: ext,
        },
        optional_signature: None,
    };
    Ok((r.to_der().map_err(|e| Error::malformed("OCSPRequest", e))?, n))
}

/// ```text
/// RevokedInfo ::= SEQUENCE {
///     revocationTime     GeneralizedTime,
///     revocationReason   [0] EXPLICIT CRLReason OPTIONAL }
/// ```
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
struct RevokedInfo {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    revocation_reason: Option<CrlReason>,
}

/// ```text
/// CertStatus ::= CHOICE {
///     good    [0] IMPLICIT NULL,
///     revoked [1] IMPLICIT RevokedInfo,
///     unknown [2] IMPLICIT UnknownInfo }
/// ```
#[derive(der::Choice, Debug, Clone, PartialEq, Eq)]
enum CertStatusDer {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

/// The status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// not revoked
    Good,
    /// revoked (or on hold: reason `CertificateHold`)
    Revoked {
        /// when
        time: DateTime<Utc>,
        /// why, when known
        reason: Option<CrlReason>,
    },
    /// not issued by this responder's CA, or not known to it
    Unknown,
}

impl Status {
    fn to_der(self) -> Result<CertStatusDer> {
        Ok(match self {
            Status::Good => CertStatusDer::Good(Null),
            Status::Unknown => CertStatusDer::Unknown(Null),
            Status::Revoked { time, reason } => CertStatusDer::Revoked(RevokedInfo {
                revocation_time: to_generalized(time)?,
                revocation_reason: reason,
            }),
        })
    }

    fn from_der(s: &CertStatusDer) -> Self {
        match s {
            CertStatusDer::Good(_) => Status::Good,
            CertStatusDer::Unknown(_) => Status::Unknown,
            CertStatusDer::Revoked(r) => {
                Status::Revoked { time: from_generalized(&r.revocation_time), reason: r.revocation_reason }
            }
        }
    }
}

/// ```text
/// SingleResponse ::= SEQUENCE {
///     certID           CertID,
///     certStatus       CertStatus,
///     thisUpdate       GeneralizedTime,
///     nextUpdate       [0] EXPLICIT GeneralizedTime OPTIONAL,
///     singleExtensions [1] EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(der::Sequence, Debug, Clone)]
struct SingleResponseDer {
    cert_id: CertId,
    cert_status: CertStatusDer,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    single_extensions: Option<Vec<Extension>>,
}

/// ```text
/// ResponderID ::= CHOICE {
///     byName [1] Name,
///     byKey  [2] KeyHash }   -- SHA-1 of the responder's public key BIT STRING value
/// ```
/// (the OCSP module uses EXPLICIT tags)
#[derive(der::Choice, Debug, Clone)]
enum ResponderId {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

/// ```text
/// ResponseData ::= SEQUENCE {
///     version            [0] EXPLICIT Version DEFAULT v1,
///     responderID            ResponderID,
///     producedAt             GeneralizedTime,
///     responses              SEQUENCE OF SingleResponse,
///     responseExtensions [1] EXPLICIT Extensions OPTIONAL }
/// ```
#[derive(der::Sequence, Debug, Clone)]
struct ResponseData {
    #[asn1(context_specific = "0", default = "Default::default", tag_mode = "EXPLICIT")]
    version: u8,
    responder_id: ResponderId,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponseDer>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "EXPLICIT")]
    response_extensions: Option<Vec<Extension>>,
}

/// ```text
/// BasicOCSPResponse ::= SEQUENCE {
///     tbsResponseData    ResponseData,
///     signatureAlgorithm AlgorithmIdentifier,
///     signature          BIT STRING,
///     certs          [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
/// ```
/// The TBS is kept as the exact bytes that were signed.
#[derive(der::Sequence, Debug, Clone)]
struct BasicOcspResponseDer<'a> {
    tbs_response_data: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    certs: Option<Vec<Certificate>>,
}

/// ```text
/// ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
/// OCSPResponse ::= SEQUENCE {
///     responseStatus OCSPResponseStatus,
///     responseBytes  [0] EXPLICIT ResponseBytes OPTIONAL }
/// ```
#[derive(der::Sequence, Debug, Clone)]
struct ResponseBytes {
    response_type: Oid,
    response: OctetString,
}

#[derive(der::Sequence, Debug, Clone)]
struct OcspResponseDer {
    response_status: der::asn1::Int,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    response_bytes: Option<ResponseBytes>,
}

/// OCSPResponseStatus (RFC 6960 § 4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// the response has valid confirmations
    Successful = 0,
    /// illegal confirmation request
    MalformedRequest = 1,
    /// internal error in issuer
    InternalError = 2,
    /// try again later
    TryLater = 3,
    /// must sign the request
    SigRequired = 5,
    /// request unauthorized
    Unauthorized = 6,
}

fn status_int(v: u8) -> der::asn1::Int {
    der::asn1::Int::new(&[v]).expect("small int")
}

/// An unsuccessful OCSPResponse carrying only `status` (§ 2.3).
pub fn error_response(status: ResponseStatus) -> Vec<u8> {
    // ENUMERATED, not INTEGER: re-tag the small value.
    OcspResponseDer { response_status: status_int(status as u8), response_bytes: None }
        .to_der()
        .map(enumerated)
        .expect("static structure")
}

/// The DER of OCSPResponse with its first field's tag changed from INTEGER (0x02) to ENUMERATED (0x0a).
fn enumerated(mut der_bytes: Vec<u8>) -> Vec<u8> {
    // SEQUENCE header: 0x30 + length octets; the status follows it.
    let hdr = if der_bytes[1] & 0x80 == 0 { 2 } else { 2 + (der_bytes[1] & 0x7f) as usize };
    debug_assert_eq!(der_bytes[hdr], 0x02);
    der_bytes[hdr] = 0x0a;
    der_bytes
}

/// One answer to put in a response.
#[derive(Debug, Clone)]
pub struct SingleAnswer {
    /// the CertID as the client sent it
    pub cert_id: CertId,
    /// its status
    pub status: Status,
    /// when the status was known correct
    pub this_update: DateTime<Utc>,
    /// when newer information will be available
    pub next_update: DateTime<Utc>,
}

/// Build and sign a successful BasicOCSPResponse. The responder is named by key hash; its
/// certificate is included so a client can check the delegation (RFC 6960 § 4.2.2.2).
pub fn build_response(
    responder: &Cert,
    signer: &dyn Signer,
    produced_at: DateTime<Utc>,
    answers: &[SingleAnswer],
    nonce: Option<&Extension>,
) -> Result<Vec<u8>> {
    if responder.public_key()? != signer.public_key() {
        return Err(Error::Invalid("the signing key does not belong to the OCSP responder".into()));
    }
    let responses = answers
        .iter()
        .map(|a| {
            Ok(SingleResponseDer {
                cert_id: a.cert_id.clone(),
                cert_status: a.status.to_der()?,
                this_update: to_generalized(a.this_update)?,
                next_update: Some(to_generalized(a.next_update)?),
                single_extensions: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let data = ResponseData {
        version: 0,
        responder_id: ResponderId::ByKey(
            OctetString::new(hash::sha1_legacy(&signer.public_key().subject_public_key_bytes())).expect("octets"),
        ),
        produced_at: to_generalized(produced_at)?,
        responses,
        response_extensions: nonce.map(|n| vec![n.clone()]),
    };
    let tbs = data.to_der().map_err(|e| Error::malformed("ResponseData", e))?;
    let sig = signer.sign(&tbs)?;
    let basic = BasicOcspResponseDer {
        tbs_response_data: AnyRef::from_der(&tbs).map_err(|e| Error::malformed("ResponseData", e))?,
        signature_algorithm: signature_algorithm(signer.scheme()),
        signature: BitString::from_bytes(&sig).map_err(|e| Error::malformed("signature", e))?,
        certs: Some(vec![responder.x509().clone()]),
    }
    .to_der()
    .map_err(|e| Error::malformed("BasicOCSPResponse", e))?;
    let resp = OcspResponseDer {
        response_status: status_int(0),
        response_bytes: Some(ResponseBytes {
            response_type: oid::OCSP_BASIC,
            response: OctetString::new(basic).map_err(|e| Error::malformed("ResponseBytes", e))?,
        }),
    };
    Ok(enumerated(resp.to_der().map_err(|e| Error::malformed("OCSPResponse", e))?))
}

/// A parsed OCSP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// responseStatus
    pub status: u8,
    /// producedAt (successful responses)
    pub produced_at: Option<DateTime<Utc>>,
    /// the answers
    pub answers: Vec<SingleAnswer>,
    /// the nonce octets echoed, when any (the inner OCTET STRING of RFC 8954)
    pub nonce: Option<Vec<u8>>,
    /// certificates carried in the response
    pub certs: Vec<Cert>,
    tbs: Vec<u8>,
    signature_algorithm: Option<AlgorithmIdentifierOwned>,
    signature: Vec<u8>,
    responder_key_hash: Option<Vec<u8>>,
    responder_name: Option<Name>,
}

/// Parse an OCSPResponse (any status).
pub fn parse_response(der_bytes: &[u8]) -> Result<Response> {
    // Read the ENUMERATED status as INTEGER by re-tagging a copy.
    let mut copy = der_bytes.to_vec();
    let hdr = match copy.get(1) {
        Some(l) if l & 0x80 == 0 => 2,
        Some(l) => 2 + (l & 0x7f) as usize,
        None => return Err(Error::Invalid("empty OCSP response".into())),
    };
    match copy.get_mut(hdr) {
        Some(t) if *t == 0x0a => *t = 0x02,
        _ => return Err(Error::Invalid("not an OCSPResponse".into())),
    }
    let r = OcspResponseDer::from_der(&copy).map_err(|e| Error::malformed("OCSPResponse", e))?;
    let status = r.response_status.as_bytes().first().copied().unwrap_or(0);
    let mut out = Response {
        status,
        produced_at: None,
        answers: vec![],
        nonce: None,
        certs: vec![],
        tbs: vec![],
        signature_algorithm: None,
        signature: vec![],
        responder_key_hash: None,
        responder_name: None,
    };
    let Some(rb) = r.response_bytes else { return Ok(out) };
    if rb.response_type != oid::OCSP_BASIC {
        return Err(Error::Invalid(format!("unsupported OCSP response type {}", rb.response_type)));
    }
    let basic =
        BasicOcspResponseDer::from_der(rb.response.as_bytes()).map_err(|e| Error::malformed("BasicOCSPResponse", e))?;
    let tbs = basic.tbs_response_data.to_der().map_err(|e| Error::malformed("ResponseData", e))?;
    let data = ResponseData::from_der(&tbs).map_err(|e| Error::malformed("ResponseData", e))?;
    out.produced_at = Some(from_generalized(&data.produced_at));
    for s in &data.responses {
        out.answers.push(SingleAnswer {
            cert_id: s.cert_id.clone(),
            status: Status::from_der(&s.cert_status),
            this_update: from_generalized(&s.this_update),
            next_update: s
                .next_update
                .as_ref()
                .map(from_generalized)
                .unwrap_or_else(|| from_generalized(&s.this_update)),
        });
    }
    for e in data.response_extensions.unwrap_or_default() {
        if e.extn_id == oid::OCSP_NONCE {
            out.nonce = Some(
                OctetString::from_der(e.extn_value.as_bytes())
                    .map(|o| o.as_bytes().to_vec())
                    .unwrap_or_else(|_| e.extn_value.as_bytes().to_vec()),
            );
        }
    }
    match data.responder_id {
        ResponderId::ByKey(k) => out.responder_key_hash = Some(k.as_bytes().to_vec()),
        ResponderId::ByName(n) => out.responder_name = Some(n),
    }
    for c in basic.certs.unwrap_or_default() {
        out.certs.push(Cert::from_der(&c.to_der().map_err(|e| Error::malformed("certificate", e))?)?);
    }
    out.signature = basic.signature.raw_bytes().to_vec();
    out.signature_algorithm = Some(basic.signature_algorithm);
    out.tbs = tbs;
    Ok(out)
}

impl Response {
    /// Check the signature: by the CA itself, or by a delegated responder certificate carried in
    /// the response that the CA issued with EKU OCSPSigning (RFC 6960 § 4.2.2.2). Returns the
    /// certificate that signed.
    pub fn verify(&self, issuer: &Cert) -> Result<Cert> {
        if self.status != ResponseStatus::Successful as u8 {
            return Err(Error::Invalid(format!("OCSP response status {}", self.status)));
        }
        let alg = self.signature_algorithm.as_ref().ok_or_else(|| Error::Invalid("unsigned OCSP response".into()))?;
        let names = |c: &Cert| -> bool {
            match (&self.responder_key_hash, &self.responder_name) {
                (Some(h), _) => {
                    c.public_key().map(|k| hash::sha1_legacy(&k.subject_public_key_bytes()).to_vec()).ok().as_ref()
                        == Some(h)
                }
                (None, Some(n)) => c.subject() == n,
                _ => false,
            }
        };
        let signer = if names(issuer) {
            issuer.clone()
        } else {
            let c = self
                .certs
                .iter()
                .find(|c| names(c))
                .ok_or_else(|| Error::Invalid("the OCSP responder certificate is not in the response".into()))?;
            c.verify_signed_by(issuer, Sm2IdPolicy::Standard)?;
            let delegated = c.ext_key_usage()?.is_some_and(|(_, ekus)| ekus.contains(&oid::KP_OCSP_SIGNING));
            if !delegated {
                return Err(Error::Invalid("the responder certificate lacks id-kp-OCSPSigning".into()));
            }
            c.clone()
        };
        verify_signature(alg, None, signer.public_key()?, &self.tbs, &self.signature, Sm2IdPolicy::Standard)?;
        Ok(signer)
    }

    /// The answer about `cert_id` (same issuer hashes and serial).
    pub fn find(&self, cert_id: &CertId) -> Option<&SingleAnswer> {
        self.answers.iter().find(|a| &a.cert_id == cert_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests::test_pki;
    use medsign_crypto::KeyAlg;

    #[test]
    fn request_response_round_trip() {
        for alg in [KeyAlg::Sm2, KeyAlg::Rsa2048] {
            let pki = test_pki(alg);
            let id = CertId::new(&pki.leaf, &pki.ca, None).unwrap();
            assert!(id.issued_by(&pki.ca));
            assert!(!id.issued_by(&pki.leaf));
            let id_sm3 = CertId::new(&pki.leaf, &pki.ca, Some(HashAlg::Sm3)).unwrap();
            assert!(id_sm3.issued_by(&pki.ca));
            assert_eq!(id.serial_hex(), pki.leaf.serial_hex());
            let (req, nonce) = build_request(&[id.clone(), id_sm3.clone()], true).unwrap();
            let parsed = parse_request(&req).unwrap();
            assert_eq!(parsed.cert_ids, vec![id.clone(), id_sm3.clone()]);
            let now = Utc::now();
            let revoked_at = chrono::DateTime::from_timestamp(now.timestamp() - 60, 0).unwrap();
            let answers = [
                SingleAnswer { cert_id: id.clone(), status: Status::Good, this_update: now, next_update: now },
                SingleAnswer {
                    cert_id: id_sm3.clone(),
                    status: Status::Revoked { time: revoked_at, reason: Some(CrlReason::KeyCompromise) },
                    this_update: now,
                    next_update: now,
                },
            ];
            // the CA signs its own responses here; delegation is tested in core
            let der = build_response(&pki.ca, &pki.ca_key, now, &answers, parsed.nonce.as_ref()).unwrap();
            let r = parse_response(&der).unwrap();
            assert_eq!(r.nonce, nonce);
            assert_eq!(r.verify(&pki.ca).unwrap().serial(), pki.ca.serial());
            assert_eq!(r.find(&id).unwrap().status, Status::Good);
            assert_eq!(
                r.find(&id_sm3).unwrap().status,
                Status::Revoked { time: revoked_at, reason: Some(CrlReason::KeyCompromise) }
            );
            // a flipped bit in the signed data fails
            let mut bad = r.clone();
            let last = bad.tbs.len() - 1;
            bad.tbs[last] ^= 1;
            assert!(bad.verify(&pki.ca).is_err());
            // another CA does not verify it
            let other = test_pki(alg);
            assert!(r.verify(&other.ca).is_err());
        }
    }

    #[test]
    fn malformed_requests_and_error_responses() {
        assert!(parse_request(b"").is_err());
        assert!(parse_request(b"\x30\x03\x02\x01\x00").is_err());
        assert!(parse_request(&[0x30; 100]).is_err());
        let (empty, _) = build_request(&[], false).unwrap();
        assert!(parse_request(&empty).is_err());
        let e = error_response(ResponseStatus::MalformedRequest);
        assert_eq!(e, [0x30, 0x03, 0x0a, 0x01, 0x01]);
        let r = parse_response(&e).unwrap();
        assert_eq!(r.status, 1);
        assert!(r.answers.is_empty());
        assert!(parse_response(b"\x30\x03\x02\x01\x00").is_err());
        assert!(parse_response(b"").is_err());
    }
}
