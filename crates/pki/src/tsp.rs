//! RFC 3161 / RFC 5816 time-stamp protocol types, encoded and decoded with `der` derives.
//! The TSA (medsign-tsa) builds on these; CMS uses [`TstInfo`] to check the
//! timestamp tokens embedded in signatures.

use crate::{Error, Result, alg::digest_algorithm};
use der::{
    Decode, Encode,
    asn1::{BitString, Int, ObjectIdentifier as Oid, OctetString},
};
use medsign_crypto::HashAlg;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::{Extensions, pkix::name::GeneralName};

/// ```text
/// MessageImprint ::= SEQUENCE {
///     hashAlgorithm AlgorithmIdentifier,
///     hashedMessage OCTET STRING }
/// ```
/// [RFC 3161 § 2.4.1]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct MessageImprint {
    /// hash algorithm
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// the digest
    pub hashed_message: OctetString,
}

impl MessageImprint {
    /// The imprint of `data` under `h`.
    pub fn of(h: HashAlg, data: &[u8]) -> Self {
        Self { hash_algorithm: digest_algorithm(h), hashed_message: OctetString::new(h.digest(data)).expect("digest") }
    }
}

/// ```text
/// TimeStampReq ::= SEQUENCE {
///     version        INTEGER { v1(1) },
///     messageImprint MessageImprint,
///     reqPolicy      TSAPolicyId OPTIONAL,
///     nonce          INTEGER OPTIONAL,
///     certReq        BOOLEAN DEFAULT FALSE,
///     extensions     [0] IMPLICIT Extensions OPTIONAL }
/// ```
/// [RFC 3161 § 2.4.1]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct TimeStampReq {
    /// 1
    pub version: u8,
    /// what to stamp
    pub message_imprint: MessageImprint,
    /// requested policy
    #[asn1(optional = "true")]
    pub req_policy: Option<Oid>,
    /// nonce
    #[asn1(optional = "true")]
    pub nonce: Option<Int>,
    /// include the TSA certificate
    #[asn1(default = "Default::default")]
    pub cert_req: bool,
    /// extensions
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

/// ```text
/// PKIStatusInfo ::= SEQUENCE {
///     status       PKIStatus,
///     statusString PKIFreeText OPTIONAL,
///     failInfo     PKIFailureInfo OPTIONAL }
/// PKIStatus ::= INTEGER { granted(0), grantedWithMods(1), rejection(2), waiting(3),
///     revocationWarning(4), revocationNotification(5) }
/// PKIFreeText ::= SEQUENCE SIZE (1..MAX) OF UTF8String
/// ```
/// [RFC 3161 § 2.4.2], [RFC 4210 § 5.2.3]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct PkiStatusInfo {
    /// status
    pub status: u8,
    /// free text
    #[asn1(optional = "true")]
    pub status_string: Option<Vec<String>>,
    /// failure bits (see [`fail_info`])
    #[asn1(optional = "true")]
    pub fail_info: Option<BitString>,
}

/// PKIStatus values.
pub mod status {
    /// granted
    pub const GRANTED: u8 = 0;
    /// granted with modifications
    pub const GRANTED_WITH_MODS: u8 = 1;
    /// rejection
    pub const REJECTION: u8 = 2;
}

/// PKIFailureInfo bit numbers ([RFC 3161 § 2.4.2]).
pub mod fail_info {
    /// unrecognized or unsupported algorithm
    pub const BAD_ALG: usize = 0;
    /// transaction not permitted or supported
    pub const BAD_REQUEST: usize = 2;
    /// the data submitted has the wrong format
    pub const BAD_DATA_FORMAT: usize = 5;
    /// the TSA's time source is not available
    pub const TIME_NOT_AVAILABLE: usize = 14;
    /// the requested policy is not supported
    pub const UNACCEPTED_POLICY: usize = 15;
    /// the requested extension is not supported
    pub const UNACCEPTED_EXTENSION: usize = 16;
    /// the request cannot be handled due to system failure
    pub const SYSTEM_FAILURE: usize = 25;
}

impl PkiStatusInfo {
    /// A rejection with one failure bit and a text.
    pub fn rejection(bit: usize, text: &str) -> Self {
        let mut bytes = vec![0u8; bit / 8 + 1];
        bytes[bit / 8] |= 0x80 >> (bit % 8);
        let unused = 7 - (bit % 8) as u8;
        Self {
            status: status::REJECTION,
            status_string: Some(vec![text.to_string()]),
            fail_info: Some(BitString::new(unused, bytes).expect("bit string")),
        }
    }

    /// Whether failure bit `bit` is set.
    pub fn has_failure(&self, bit: usize) -> bool {
        self.fail_info
            .as_ref()
            .and_then(|b| b.raw_bytes().get(bit / 8).copied())
            .is_some_and(|byte| byte & (0x80 >> (bit % 8)) != 0)
    }
}

/// ```text
/// TimeStampResp ::= SEQUENCE {
///     status         PKIStatusInfo,
///     timeStampToken TimeStampToken OPTIONAL }
/// TimeStampToken ::= ContentInfo   -- SignedData over TSTInfo
/// ```
/// [RFC 3161 § 2.4.2]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct TimeStampResp {
    /// status
    pub status: PkiStatusInfo,
    /// the token
    #[asn1(optional = "true")]
    pub time_stamp_token: Option<cms::content_info::ContentInfo>,
}

/// ```text
/// Accuracy ::= SEQUENCE {
///     seconds INTEGER           OPTIONAL,
///     millis  [0] INTEGER (1..999) OPTIONAL,
///     micros  [1] INTEGER (1..999) OPTIONAL }
/// ```
/// [RFC 3161 § 2.4.2]
#[derive(der::Sequence, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accuracy {
    /// seconds
    #[asn1(optional = "true")]
    pub seconds: Option<u32>,
    /// milliseconds
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub millis: Option<u16>,
    /// microseconds
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub micros: Option<u16>,
}

impl Accuracy {
    /// From a bound in microseconds (zero components omitted, as DER and the ranges require).
    pub fn from_micros(us: u64) -> Self {
        let s = (us / 1_000_000) as u32;
        let ms = ((us / 1000) % 1000) as u16;
        let mic = (us % 1000) as u16;
        Self { seconds: (s > 0).then_some(s), millis: (ms > 0).then_some(ms), micros: (mic > 0).then_some(mic) }
    }

    /// Total in microseconds.
    pub fn to_micros(&self) -> u64 {
        self.seconds.unwrap_or(0) as u64 * 1_000_000
            + self.millis.unwrap_or(0) as u64 * 1000
            + self.micros.unwrap_or(0) as u64
    }
}

/// ```text
/// TSTInfo ::= SEQUENCE {
///     version        INTEGER { v1(1) },
///     policy         TSAPolicyId,
///     messageImprint MessageImprint,
///     serialNumber   INTEGER,
///     genTime        GeneralizedTime,
///     accuracy       Accuracy OPTIONAL,
///     ordering       BOOLEAN DEFAULT FALSE,
///     nonce          INTEGER OPTIONAL,
///     tsa            [0] GeneralName OPTIONAL,
///     extensions     [1] IMPLICIT Extensions OPTIONAL }
/// ```
/// [RFC 3161 § 2.4.2]
#[derive(der::Sequence, Debug, Clone, PartialEq, Eq)]
pub struct TstInfo {
    /// 1
    pub version: u8,
    /// policy
    pub policy: Oid,
    /// what was stamped
    pub message_imprint: MessageImprint,
    /// unique per token
    pub serial_number: Int,
    /// the time
    pub gen_time: crate::time::PreciseTime,
    /// bound on the error of `gen_time`
    #[asn1(optional = "true")]
    pub accuracy: Option<Accuracy>,
    /// ordering
    #[asn1(default = "Default::default")]
    pub ordering: bool,
    /// the request's nonce
    #[asn1(optional = "true")]
    pub nonce: Option<Int>,
    /// TSA name
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub tsa: Option<GeneralName>,
    /// extensions
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

/// A `granted` TimeStampResp carrying `token` (DER ContentInfo, as [`crate::cms::TokenTemplate`]
/// writes it), written around the token's own bytes: decoding the token to encode it again was
/// about 2 % of the TSA's CPU per token (issue #20). `token` is not read, so it must be a token
/// the caller made, never bytes it was sent (the template checks its first token when built).
pub fn granted(token: &[u8]) -> Vec<u8> {
    // PKIStatusInfo ::= SEQUENCE { status INTEGER granted (0) }
    const GRANTED: [u8; 5] = [0x30, 0x03, 0x02, 0x01, 0x00];
    let len = GRANTED.len() + token.len();
    let mut out = Vec::with_capacity(crate::tlv::tlv_len(len));
    crate::tlv::push_header(&mut out, crate::tlv::SEQUENCE, len);
    out.extend_from_slice(&GRANTED);
    out.extend_from_slice(token);
    out
}

/// A rejection TimeStampResp with one failure bit and a text.
pub fn rejected(bit: usize, text: &str) -> Vec<u8> {
    encode("TimeStampResp", &TimeStampResp { status: PkiStatusInfo::rejection(bit, text), time_stamp_token: None })
        .expect("a rejection encodes")
}

/// Decode any of these types with a readable error.
pub fn decode<'a, T: Decode<'a>>(what: &'static str, der: &'a [u8]) -> Result<T>
where
    T::Error: core::fmt::Display,
{
    T::from_der(der).map_err(|e| Error::malformed(what, e))
}

/// Encode with a readable error.
pub fn encode<T: Encode>(what: &'static str, v: &T) -> Result<Vec<u8>> {
    v.to_der().map_err(|e| Error::malformed(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_response_tstinfo_round_trip() {
        let req = TimeStampReq {
            version: 1,
            message_imprint: MessageImprint::of(HashAlg::Sm3, b"abc"),
            req_policy: None,
            nonce: Some(Int::new(&[0x01, 0x02]).unwrap()),
            cert_req: true,
            extensions: None,
        };
        let der = encode("req", &req).unwrap();
        assert_eq!(decode::<TimeStampReq>("req", &der).unwrap(), req);
        let info = TstInfo {
            version: 1,
            policy: Oid::new_unwrap("1.2.3.4"),
            message_imprint: req.message_imprint.clone(),
            serial_number: Int::new(&[0x05]).unwrap(),
            gen_time: crate::time::PreciseTime(chrono::DateTime::from_timestamp(1_800_000_000, 123_000_000).unwrap()),
            accuracy: Some(Accuracy::from_micros(1_500)),
            ordering: false,
            nonce: req.nonce.clone(),
            tsa: None,
            extensions: None,
        };
        let der = encode("tst", &info).unwrap();
        let back = decode::<TstInfo>("tst", &der).unwrap();
        assert_eq!(back, info);
        assert_eq!(back.accuracy.unwrap().to_micros(), 1_500);
        let rej = TimeStampResp {
            status: PkiStatusInfo::rejection(fail_info::TIME_NOT_AVAILABLE, "clock not synchronised"),
            time_stamp_token: None,
        };
        let back = decode::<TimeStampResp>("resp", &encode("resp", &rej).unwrap()).unwrap();
        assert!(back.status.has_failure(fail_info::TIME_NOT_AVAILABLE));
        assert!(!back.status.has_failure(fail_info::BAD_ALG));
    }

    /// `granted` writes what the `TimeStampResp` structure encodes, for tokens whose lengths take
    /// one, two (a real token's) and three octets.
    #[test]
    fn a_granted_response_is_what_the_structure_encodes() {
        use der::asn1::Any;
        for size in [40usize, 1_500, 70_000] {
            let octets = der::asn1::OctetString::new(vec![0x5a; size]).unwrap();
            let token = cms::content_info::ContentInfo {
                content_type: crate::oid::ID_SIGNED_DATA,
                content: Any::encode_from(&octets).unwrap(),
            };
            let der = token.to_der().unwrap();
            let want = encode(
                "resp",
                &TimeStampResp {
                    status: PkiStatusInfo { status: status::GRANTED, status_string: None, fail_info: None },
                    time_stamp_token: Some(token),
                },
            )
            .unwrap();
            assert_eq!(granted(&der), want, "{size}");
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        for junk in [&b""[..], b"\x30", b"\x30\x03\x02\x01\x01", &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]] {
            assert!(decode::<TimeStampReq>("req", junk).is_err());
            assert!(decode::<TstInfo>("tst", junk).is_err());
            assert!(decode::<TimeStampResp>("resp", junk).is_err());
        }
    }
}
