//! Timestamp tokens with their constant parts encoded once (issue #20).
//!
//! A TSA signs every token with the same key, certificate and chain: of a token's DER only the
//! TSTInfo, its digest, the signing time and the signature change. [`sign`](super::sign) builds
//! the whole SignedData from the `cms` crate's structures on every call, and the `der` crate
//! measures each nested level again for every level above it: about 15 % of the TSA's CPU per
//! token under load went to that encoding. [`TokenTemplate`] encodes the constant parts when a
//! profile is loaded and writes a token by concatenation, its lengths summed once.
//!
//! It writes the bytes [`sign_timestamp_token`](super::sign_timestamp_token) writes for the same
//! TSTInfo, key and time — the tests below compare the two byte for byte for each key type,
//! with and without certificates and a nonce.

use super::{EssCertIdV2, SigningCertificateV2, attr, der_set_order, digest_algorithm, sid_of, signer_info_algorithm};
use crate::{
    Error, Result,
    cert::Cert,
    oid,
    time::to_x509_time,
    tlv::{CONTEXT_0, OCTET_STRING, SEQUENCE, SET, push_header, set_order, tlv, tlv_len},
    tsp::TstInfo,
};
use der::{Decode, Encode, asn1::ContextSpecific};
use medsign_crypto::{HashAlg, SignatureScheme, Signer};
use x509_cert::ext::pkix::name::GeneralName;

/// The value of one whole DER SEQUENCE.
fn value_of_sequence(der: &[u8]) -> Result<&[u8]> {
    let any = der::AnyRef::from_der(der).map_err(|e| Error::malformed("DER", e))?;
    if der::Tagged::tag(&any) != der::Tag::Sequence {
        return Err(Error::Invalid("not a DER SEQUENCE".into()));
    }
    Ok(any.value())
}

/// The constant parts of one TSA certificate's tokens, encoded once.
pub struct TokenTemplate {
    /// the key the certificate certifies: [`TokenTemplate::sign`] refuses another signer
    public_key: medsign_crypto::PublicKey,
    /// the scheme its algorithm identifiers name: [`TokenTemplate::sign`] refuses another
    scheme: SignatureScheme,
    hash: HashAlg,
    /// the TSTInfo's `tsa` field, `[0] EXPLICIT GeneralName` (the certificate's subject)
    tsa_name: Vec<u8>,
    /// `OBJECT IDENTIFIER` id-signedData
    signed_data_oid: Vec<u8>,
    /// `OBJECT IDENTIFIER` id-ct-TSTInfo
    tst_info_oid: Vec<u8>,
    /// `SET OF DigestAlgorithmIdentifier`
    digest_algorithms: Vec<u8>,
    /// `[0] IMPLICIT CertificateSet`: the certificate and its chain, in DER order
    certificates: Vec<u8>,
    /// a SignerInfo's version, sid and digestAlgorithm
    signer_info_head: Vec<u8>,
    /// a SignerInfo's signatureAlgorithm
    signature_algorithm: Vec<u8>,
    /// the signed attributes contentType (id-ct-TSTInfo) and signingCertificateV2
    fixed_attrs: [Vec<u8>; 2],
    /// `SEQUENCE { OBJECT IDENTIFIER` of messageDigest and signingTime, before their `SET`
    message_digest_oid: Vec<u8>,
    signing_time_oid: Vec<u8>,
}

impl TokenTemplate {
    /// The template of tokens signed by `signer` with `cert`, `chain` sent along when asked
    /// for. Refuses a key that `cert` does not certify. It signs one token with `signer` and
    /// verifies it before it is returned: nothing reads a token back before it is handed out.
    pub fn new(signer: &dyn Signer, cert: &Cert, chain: &[Cert]) -> Result<Self> {
        if cert.public_key()? != signer.public_key() {
            return Err(Error::Invalid(format!("the key does not match the certificate of {}", cert.describe())));
        }
        let enc = |what: &'static str, r: der::Result<Vec<u8>>| r.map_err(|e| Error::malformed(what, e));
        let scheme = signer.scheme();
        let hash = scheme.hash();
        let dalg = enc("digestAlgorithm", digest_algorithm(hash).to_der())?;
        let mut certs: Vec<&Cert> = vec![cert];
        for c in chain {
            if !certs.contains(&c) {
                certs.push(c);
            }
        }
        let cert_ders = der_set_order(&certs);
        let oid_der = |o: der::asn1::ObjectIdentifier| enc("OID", o.to_der());
        let ess = SigningCertificateV2 { certs: vec![EssCertIdV2::of(cert, hash)?], policies: None };
        let template = Self {
            public_key: signer.public_key().clone(),
            scheme,
            hash,
            tsa_name: enc(
                "tsa",
                ContextSpecific {
                    tag_number: der::TagNumber(0),
                    tag_mode: der::TagMode::Explicit,
                    value: GeneralName::DirectoryName(cert.subject().clone()),
                }
                .to_der(),
            )?,
            signed_data_oid: oid_der(oid::ID_SIGNED_DATA)?,
            tst_info_oid: oid_der(oid::ID_CT_TST_INFO)?,
            digest_algorithms: tlv(SET, &[&dalg]),
            certificates: tlv(CONTEXT_0, &cert_ders),
            signer_info_head: [&[0x02, 0x01, 0x01][..], &enc("sid", sid_of(cert).to_der())?, &dalg].concat(),
            signature_algorithm: enc(
                "signatureAlgorithm",
                signer_info_algorithm(scheme, super::OidStyle::Rfc5652).to_der(),
            )?,
            fixed_attrs: [
                enc("contentType", attr(oid::ATTR_CONTENT_TYPE, &oid::ID_CT_TST_INFO)?.to_der())?,
                enc("signingCertificateV2", attr(oid::ATTR_SIGNING_CERTIFICATE_V2, &ess)?.to_der())?,
            ],
            message_digest_oid: oid_der(oid::ATTR_MESSAGE_DIGEST)?,
            signing_time_oid: oid_der(oid::ATTR_SIGNING_TIME)?,
        };
        template.check(signer)?;
        Ok(template)
    }

    /// One token over a fixed imprint, signed and read back: its structure, the signature over
    /// its attributes and the digest of its TSTInfo (the chain is not the template's concern).
    fn check(&self, signer: &dyn Signer) -> Result<()> {
        let probe = TstInfo {
            version: 1,
            policy: der::asn1::ObjectIdentifier::new_unwrap("2.5.29.32.0"), // anyPolicy
            message_imprint: crate::tsp::MessageImprint::of(self.hash, b"medsign token template"),
            serial_number: der::asn1::Int::new(&[0x01]).map_err(|e| Error::malformed("serial", e))?,
            gen_time: crate::time::PreciseTime(chrono::Utc::now()),
            accuracy: None,
            ordering: false,
            nonce: None,
            tsa: None,
            extensions: None,
        };
        let der = self.sign(&probe, signer, true)?;
        let (rep, _) = super::verify_timestamp_token(&der, super::Stamped::Unchecked, &super::VerifyOptions::default());
        if !rep.integrity.ok {
            return Err(Error::Invalid(format!(
                "时间戳模板的试签名无法验证 / a token from the template does not verify: {}",
                rep.integrity.detail
            )));
        }
        Ok(())
    }

    /// The token (DER ContentInfo) over `info`, signed by `signer` (the key given to
    /// [`TokenTemplate::new`]); the certificates are included when `include_certs`. `info`'s
    /// `tsa` is written by the template (the certificate's subject), so `info` must have none,
    /// and no extensions.
    pub fn sign(&self, info: &TstInfo, signer: &dyn Signer, include_certs: bool) -> Result<Vec<u8>> {
        if *signer.public_key() != self.public_key || signer.scheme() != self.scheme {
            return Err(Error::Invalid("a token template signs with its own certificate's key and scheme only".into()));
        }
        if info.tsa.is_some() || info.extensions.is_some() {
            return Err(Error::Invalid("a token template writes its own tsa and no extensions".into()));
        }
        let bare = info.to_der().map_err(|e| Error::malformed("TSTInfo", e))?;
        let tst = tlv(SEQUENCE, &[value_of_sequence(&bare)?, &self.tsa_name]);

        // signed attributes: their SET OF in DER order
        let digest = self.hash.digest(&tst);
        let time = to_x509_time(info.gen_time.0)?.to_der().map_err(|e| Error::malformed("signingTime", e))?;
        let message_digest = tlv(SEQUENCE, &[&self.message_digest_oid, &tlv(SET, &[&tlv(OCTET_STRING, &[&digest])])]);
        let signing_time = tlv(SEQUENCE, &[&self.signing_time_oid, &tlv(SET, &[&time])]);
        let mut attrs: [&[u8]; 4] = [&self.fixed_attrs[0], &self.fixed_attrs[1], &message_digest, &signing_time];
        set_order(&mut attrs);
        let mut signed_attrs = tlv(SET, &attrs);
        let signature = signer.sign(&signed_attrs)?;
        // in the SignerInfo the same SET is `[0] IMPLICIT`
        signed_attrs[0] = CONTEXT_0;

        // lengths, innermost first
        let signer_info = self.signer_info_head.len()
            + signed_attrs.len()
            + self.signature_algorithm.len()
            + tlv_len(signature.len());
        let signer_infos = tlv_len(tlv_len(signer_info));
        let encap = self.tst_info_oid.len() + tlv_len(tlv_len(tst.len()));
        let certificates = if include_certs { self.certificates.len() } else { 0 };
        let signed_data = 3 + self.digest_algorithms.len() + tlv_len(encap) + certificates + signer_infos;
        let content_info = self.signed_data_oid.len() + tlv_len(tlv_len(signed_data));

        let mut out = Vec::with_capacity(tlv_len(content_info));
        push_header(&mut out, SEQUENCE, content_info);
        out.extend_from_slice(&self.signed_data_oid);
        push_header(&mut out, CONTEXT_0, tlv_len(signed_data));
        push_header(&mut out, SEQUENCE, signed_data);
        out.extend_from_slice(&[0x02, 0x01, 0x03]); // CMSVersion 3: eContentType is not id-data
        out.extend_from_slice(&self.digest_algorithms);
        push_header(&mut out, SEQUENCE, encap);
        out.extend_from_slice(&self.tst_info_oid);
        push_header(&mut out, CONTEXT_0, tlv_len(tst.len()));
        push_header(&mut out, OCTET_STRING, tst.len());
        out.extend_from_slice(&tst);
        if include_certs {
            out.extend_from_slice(&self.certificates);
        }
        push_header(&mut out, SET, tlv_len(signer_info));
        push_header(&mut out, SEQUENCE, signer_info);
        out.extend_from_slice(&self.signer_info_head);
        out.extend_from_slice(&signed_attrs);
        out.extend_from_slice(&self.signature_algorithm);
        push_header(&mut out, OCTET_STRING, signature.len());
        out.extend_from_slice(&signature);
        debug_assert_eq!(out.len(), tlv_len(content_info));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::tests::test_pki;
    use crate::tsp::{Accuracy, MessageImprint};
    use medsign_crypto::{KeyAlg, PublicKey, SignatureScheme};

    type SignFn<'a> = Box<dyn Fn(&[u8]) -> medsign_crypto::Result<Vec<u8>> + Send + Sync + 'a>;

    /// A signer that claims `claimed`'s key and scheme and signs with `signs`.
    struct Claiming<'a> {
        claimed: &'a dyn Signer,
        signs: SignFn<'a>,
    }

    impl Signer for Claiming<'_> {
        fn scheme(&self) -> SignatureScheme {
            self.claimed.scheme()
        }
        fn public_key(&self) -> &PublicKey {
            self.claimed.public_key()
        }
        fn sign(&self, msg: &[u8]) -> medsign_crypto::Result<Vec<u8>> {
            (self.signs)(msg)
        }
    }

    /// `key`'s claim, with a "signature" made of the SHA-256 of what it is given, as long as a
    /// real one of its scheme (256 bytes for RSA-2048, 71 for a DER ECDSA or SM2 signature), so
    /// that two encoders of the same message must write the same bytes (a real SM2 or ECDSA
    /// signature differs each time).
    fn deterministic(key: &dyn Signer) -> Claiming<'_> {
        let len = if matches!(key.scheme(), SignatureScheme::RsaPkcs1Sha256) { 256 } else { 71 };
        Claiming {
            claimed: key,
            signs: Box::new(move |msg| Ok(HashAlg::Sha256.digest(msg).into_iter().cycle().take(len).collect())),
        }
    }

    fn info(nonce: Option<&[u8]>, at: chrono::DateTime<chrono::Utc>) -> TstInfo {
        TstInfo {
            version: 1,
            policy: der::asn1::ObjectIdentifier::new_unwrap("1.2.156.112562.7.1"),
            message_imprint: MessageImprint::of(HashAlg::Sha256, "检验报告".as_bytes()),
            serial_number: der::asn1::Int::new(&[0x01, 0x9a, 0xc4, 0xf2, 0xe1, 0xa0, 0x7c, 0x21]).unwrap(),
            gen_time: crate::time::PreciseTime(at),
            accuracy: Some(Accuracy::from_micros(2150)),
            ordering: false,
            nonce: nonce.map(|n| der::asn1::Int::new(n).unwrap()),
            tsa: None,
            extensions: None,
        }
    }

    /// The template writes the bytes of the general encoder for each key type, with and
    /// without certificates, a nonce (up to the largest a request may carry) and `ordering`,
    /// for a time with and without milliseconds and one after 2049 (signingTime as
    /// GeneralizedTime), with a chain that repeats the certificate; and a real signature over it
    /// verifies.
    #[test]
    fn a_template_writes_what_the_general_encoder_writes() {
        use chrono::TimeZone;
        let times = [
            chrono::Utc.with_ymd_and_hms(2026, 12, 6, 8, 0, 0).unwrap() + chrono::Duration::milliseconds(123),
            chrono::Utc.with_ymd_and_hms(2026, 12, 6, 8, 0, 0).unwrap(),
            chrono::Utc.with_ymd_and_hms(2051, 1, 1, 0, 0, 0).unwrap(),
        ];
        for alg in [KeyAlg::Sm2, KeyAlg::P256, KeyAlg::Rsa2048] {
            let p = test_pki(alg);
            let fake = deterministic(&p.leaf_key);
            // the largest nonce a request within the TSA's 64 KB bound can carry: three-octet lengths
            let huge = [[0x5a_u8].as_slice(), &[0xa5; 65_400]].concat();
            for chain in [vec![p.ca.clone()], vec![p.leaf.clone(), p.ca.clone()]] {
                let t = TokenTemplate::new(&p.leaf_key, &p.leaf, &chain).unwrap();
                for (at, ordering) in times.iter().zip([false, true, false]) {
                    for nonce in [None, Some(&[0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07][..]), Some(&huge[..])] {
                        for include in [true, false] {
                            let mut i = info(nonce, *at);
                            i.ordering = ordering;
                            let mine = t.sign(&i, &fake, include).unwrap();
                            let mut named = i.clone();
                            named.tsa = Some(GeneralName::DirectoryName(p.leaf.subject().clone()));
                            let general =
                                super::super::sign_timestamp_token(&named, &fake, &p.leaf, &chain, include).unwrap();
                            let case =
                                format!("{alg:?} {at} nonce {:?} B {include} {}", nonce.map(<[u8]>::len), chain.len());
                            assert_eq!(hex::encode(&mine), hex::encode(&general), "{case}");
                        }
                    }
                }
            }
            let t = TokenTemplate::new(&p.leaf_key, &p.leaf, std::slice::from_ref(&p.ca)).unwrap();
            // with the real key the token verifies, certificates included or not
            for include in [true, false] {
                let der = t.sign(&info(None, times[0]), &p.leaf_key, include).unwrap();
                let opts = super::super::VerifyOptions {
                    trust: vec![p.root.clone()],
                    extra_certs: if include { vec![] } else { vec![p.leaf.clone(), p.ca.clone()] },
                    soft_revocation: true,
                    ..Default::default()
                };
                let (rep, tst) = super::super::verify_timestamp_token(
                    &der,
                    super::super::Stamped::Data("检验报告".as_bytes()),
                    &opts,
                );
                assert!(rep.integrity.ok, "{alg:?}: {rep:#?}");
                assert_eq!(tst.unwrap().tsa, Some(GeneralName::DirectoryName(p.leaf.subject().clone())));
            }
        }
    }

    #[test]
    fn a_template_refuses_another_key_scheme_or_tstinfo_and_checks_its_first_token() {
        use medsign_crypto::{PrivateKey, signer::KeySigner};
        let p = test_pki(KeyAlg::Rsa2048);
        let q = test_pki(KeyAlg::Rsa2048);
        assert!(TokenTemplate::new(&q.leaf_key, &p.leaf, &[]).is_err(), "a key the certificate does not certify");
        // the certificate's key claimed, another key's signatures made: the first token fails
        let foreign = Claiming { claimed: &p.leaf_key, signs: Box::new(|msg| q.leaf_key.sign(msg)) };
        let e = TokenTemplate::new(&foreign, &p.leaf, &[]).err().unwrap();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let t = TokenTemplate::new(&p.leaf_key, &p.leaf, &[]).unwrap();
        let now = chrono::Utc::now();
        assert!(t.sign(&info(None, now), &q.leaf_key, true).is_err(), "another key");
        let same_key = PrivateKey::from_pkcs8_der(&p.leaf_key.key().to_pkcs8_der().unwrap()).unwrap();
        let pss = KeySigner::new(same_key).with_scheme(SignatureScheme::RsaPssSha256).unwrap();
        assert!(t.sign(&info(None, now), &pss, true).is_err(), "the same key, another scheme");
        let mut i = info(None, now);
        i.tsa = Some(GeneralName::DirectoryName(p.leaf.subject().clone()));
        assert!(t.sign(&i, &p.leaf_key, true).is_err(), "a tsa of its own");
        let mut i = info(None, now);
        i.extensions = Some(vec![]);
        assert!(t.sign(&i, &p.leaf_key, true).is_err(), "extensions");
        assert!(t.sign(&info(None, now), &p.leaf_key, true).is_ok());
    }

    #[test]
    fn only_one_whole_sequence_is_opened() {
        assert_eq!(value_of_sequence(&[0x30, 0x02, 0x05, 0x00]).unwrap(), &[0x05, 0x00]);
        for bad in [&[0x31, 0x02, 0x05, 0x00][..], &[0x30, 0x03, 0x05, 0x00], &[0x30, 0x01, 0x05, 0x00], &[0x30]] {
            assert!(value_of_sequence(bad).is_err(), "{bad:?}");
        }
    }
}
