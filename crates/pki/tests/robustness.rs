//! Malformed input never panics (issue #2 § 3): every parser and verifier gets thousands of
//! mutations of valid artifacts — bit flips, truncations, insertions, corrupted lengths — and
//! must return an error or a report. A deterministic companion to the `cargo fuzz` targets in
//! fuzz/, cheap enough for every CI run.

use chrono::{Duration, Utc};
use medsign_crypto::{KeyAlg, PrivateKey, PublicKey, Signer, signer::KeySigner, sm2::Sm2Signature};
use medsign_pki::{
    alg::Sm2IdPolicy,
    cert::{Cert, CertTemplate, Profile, issue},
    cms::{self, CmsSigner, SignOptions, VerifyOptions},
    crl::{self, Crl},
    csr,
    name::parse_dn,
    path,
    tsp::{self, MessageImprint, TimeStampReq, TimeStampResp, TstInfo},
};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            4 if v.len() > 4 => {
                // corrupt what is likely a length octet near a tag
                let i = rng.below(v.len() - 1);
                v[i + 1] = [0x80, 0x81, 0x84, 0xff, 0x00][rng.below(5)];
            }
            _ if !v.is_empty() => {
                let a = rng.below(v.len());
                let b = rng.below(v.len());
                v.swap(a, b);
            }
            _ => {}
        }
    }
    v
}

fn artifacts() -> Vec<(&'static str, Vec<u8>)> {
    let now = Utc::now();
    let root_key = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
    let t = CertTemplate::new(
        parse_dn("CN=根,O=医院,C=CN").unwrap(),
        root_key.public_key().clone(),
        Profile::Ca { path_len: None },
        now - Duration::hours(1),
        now + Duration::days(10),
    );
    let root = issue(&t, None, &root_key).unwrap();
    let leaf_key = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
    let mut lt = CertTemplate::new(
        parse_dn("CN=张三,C=CN").unwrap(),
        leaf_key.public_key().clone(),
        Profile::Signer,
        now - Duration::hours(1),
        now + Duration::days(5),
    );
    lt.crl_url = Some("http://x/crl".into());
    lt.ocsp_url = Some("http://x/ocsp".into());
    let leaf = issue(&lt, Some(&root), &root_key).unwrap();
    let rsa = KeySigner::new(PrivateKey::generate(KeyAlg::Rsa2048).unwrap());
    let rt = CertTemplate::new(
        parse_dn("CN=rsa").unwrap(),
        rsa.public_key().clone(),
        Profile::Tsa,
        now,
        now + Duration::days(1),
    );
    let rsa_cert = issue(&rt, None, &rsa).unwrap_or_else(|_| {
        let rt = CertTemplate::new(
            parse_dn("CN=rsa").unwrap(),
            rsa.public_key().clone(),
            Profile::Ca { path_len: None },
            now,
            now + Duration::days(1),
        );
        issue(&rt, None, &rsa).unwrap()
    });
    let crl = crl::build(
        &root,
        &root_key,
        now,
        now + Duration::hours(1),
        3,
        &[crl::Revoked { serial: leaf.serial().to_vec(), time: now, reason: None }],
    )
    .unwrap();
    let cms_sm2 = cms::sign(
        b"content",
        &[CmsSigner { signer: &leaf_key, cert: &leaf, chain: std::slice::from_ref(&root) }],
        &SignOptions::default(),
    )
    .unwrap();
    let cms_rsa = cms::sign(
        b"content",
        &[CmsSigner { signer: &rsa, cert: &rsa_cert, chain: &[] }],
        &SignOptions { detached: true, oid_style: cms::OidStyle::Gmt0010, ..Default::default() },
    )
    .unwrap();
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint::of(medsign_crypto::HashAlg::Sm3, b"x"),
        req_policy: None,
        nonce: None,
        cert_req: true,
        extensions: None,
    };
    let resp =
        TimeStampResp { status: tsp::PkiStatusInfo::rejection(tsp::fail_info::BAD_ALG, "x"), time_stamp_token: None };
    vec![
        ("root", root.der().to_vec()),
        ("leaf", leaf.der().to_vec()),
        ("leaf-pem", leaf.to_pem().into_bytes()),
        ("crl", crl),
        ("cms-sm2", cms_sm2),
        ("cms-rsa-gm", cms_rsa),
        ("csr", csr::build(&parse_dn("CN=李四").unwrap(), &leaf_key).unwrap().into_bytes()),
        ("tsreq", tsp::encode("req", &req).unwrap()),
        ("tsresp", tsp::encode("resp", &resp).unwrap()),
        ("key", leaf_key.key().to_pkcs8_der().unwrap().to_vec()),
        ("spki", leaf_key.public_key().to_spki_der()),
        ("sig", leaf_key.sign(b"m").unwrap()),
    ]
}

fn exercise(data: &[u8], anchors: &[Cert]) {
    if let Ok(certs) = Cert::load_all(data) {
        for c in &certs {
            let _ = (c.subject_display(), c.serial_hex(), c.not_after(), c.basic_constraints(), c.key_usage());
            let _ = c.verify_signed_by(c, Sm2IdPolicy::AllowEmpty);
        }
        let _ = path::validate(&certs[0], &certs, anchors, &path::PathOptions::at(Utc::now()));
    }
    if let Ok(c) = Crl::from_bytes(data) {
        let _ = (c.number(), c.entries(), c.next_update());
        for a in anchors {
            let _ = c.verify(a, Sm2IdPolicy::Standard);
        }
    }
    let opts = VerifyOptions { trust: anchors.to_vec(), ..Default::default() };
    let _ = cms::verify(data, None, &opts);
    let _ = cms::verify(data, Some(b"content"), &opts);
    let _ = csr::parse(data, Sm2IdPolicy::AllowEmpty);
    let _ = tsp::decode::<TimeStampReq>("req", data);
    let _ = tsp::decode::<TimeStampResp>("resp", data);
    let _ = tsp::decode::<TstInfo>("tst", data);
    let _ = PrivateKey::from_bytes(data, Some(b"x"));
    let _ = PublicKey::from_bytes(data);
    let _ = Sm2Signature::from_der(data);
}

#[test]
fn thousands_of_mutations_never_panic() {
    let arts = artifacts();
    let anchors = vec![Cert::from_der(&arts[0].1).unwrap()];
    let mut rng = Rng(0x6d65_6473_6967_6e21);
    let per = 1000;
    for (name, a) in &arts {
        exercise(a, &anchors); // the valid artifact itself
        for i in 0..per {
            let m = mutate(&mut rng, a);
            let r = std::panic::catch_unwind(|| exercise(&m, &anchors));
            assert!(r.is_ok(), "panic on mutation {i} of {name}: {}", hex::encode(&m));
        }
    }
}

#[test]
fn valid_artifacts_still_verify_so_the_mutation_test_reaches_deep_code() {
    let arts = artifacts();
    let anchors = vec![Cert::from_der(&arts[0].1).unwrap()];
    let r = cms::verify(
        &arts[4].1,
        None,
        &VerifyOptions { trust: anchors.clone(), soft_revocation: true, ..Default::default() },
    )
    .unwrap();
    assert!(r.is_valid(), "{r:#?}");
    assert!(Crl::from_bytes(&arts[3].1).unwrap().verify(&anchors[0], Sm2IdPolicy::Standard).is_ok());
}
