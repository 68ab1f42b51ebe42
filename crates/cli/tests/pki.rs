//! End-to-end for the CA (issue #4) against the real `medsign serve`, with OpenSSL and
//! pyhanko-certvalidator as independent judges: an RSA staff certificate from an OpenSSL-made CSR
//! verifies as a full chain; `openssl ocsp` reports good, then revoked with the reason; the GET
//! form of OCSP is cacheable (RFC 5019); hold and release show in OCSP and the CRL; garbage gets
//! `malformedRequest`; pyhanko-certvalidator validates with our OCSP responder as the required
//! revocation source and refuses after revocation; a bare SM2 key with proof of possession gets
//! a certificate; the expiring list works.

mod common;
use base64::Engine;
use common::*;

fn ca_files(d: &Dir, s: &Server, which: &str) {
    let (st, _, pem) = s.raw("GET", &format!("/pki/{which}/ca.pem"), None, None, b"");
    assert_eq!(st, 200);
    let certs = medsign_pki::cert::Cert::load_all(&pem).unwrap();
    d.write(&format!("{which}-root.pem"), certs[0].to_pem().as_bytes());
    d.write(&format!("{which}-issuing.pem"), certs[1].to_pem().as_bytes());
    d.write(&format!("{which}-chain.pem"), &pem);
}

fn ocsp(d: &Dir, s: &Server, which: &str, cert: &str, extra: &[&str]) -> String {
    let url = format!("http://{}/pki/ocsp", s.addr);
    let issuer = d.p(&format!("{which}-issuing.pem"));
    let chain = d.p(&format!("{which}-chain.pem"));
    let cert = d.p(cert);
    let mut args = vec!["ocsp", "-issuer", &issuer, "-cert", &cert, "-url", &url, "-CAfile", &chain];
    args.extend_from_slice(extra);
    let o = d.openssl(&args);
    assert_ok(&o, "openssl ocsp");
    format!("{}{}", text(&o.stdout), text(&o.stderr))
}

fn certvalidator(d: &Dir, leaf: &str, which: &str) -> (bool, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/certvalidator_check.py");
    let o = d.run(
        &python(),
        &[
            script.to_str().unwrap(),
            &d.p(leaf),
            &d.p(&format!("{which}-root.pem")),
            &d.p(&format!("{which}-issuing.pem")),
        ],
    );
    (o.status.success(), format!("{}{}", text(&o.stdout), text(&o.stderr)))
}

#[test]
fn ca_ocsp_crl_with_openssl_and_certvalidator() {
    let d = Dir::new();
    let s = Server::start(&d, &[("MEDSIGN_CA_POLICY_OIDS", "1.3.6.1.4.1.99999.7.1")]);
    let token = s.token().unwrap();
    let (st, v) = s.json("POST", "/admin/v1/departments", Some(&token), r#"{"code":"JYK","name":"检验科"}"#);
    assert_eq!(st, 201, "{v}");
    let (st, v) = s.json(
        "POST",
        "/api/v1/users",
        Some(&token),
        r#"[{"employee_no":"3001","name":"王五","department":"JYK"},{"employee_no":"3002","name":"赵六"}]"#,
    );
    assert_eq!(st, 201, "{v}");
    ca_files(&d, &s, "rsa");
    ca_files(&d, &s, "sm2");

    // an RSA staff certificate from a CSR that OpenSSL made
    assert_ok(
        &d.openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &d.p("rsa.key")]),
        "genpkey",
    );
    assert_ok(
        &d.openssl(&["req", "-new", "-key", &d.p("rsa.key"), "-subj", "/CN=ignored", "-out", &d.p("rsa.csr")]),
        "req",
    );
    let csr = String::from_utf8(d.read("rsa.csr")).unwrap();
    let (st, v) =
        s.json("POST", "/api/v1/users/3001/certificates", Some(&token), &serde_json::json!({"csr": csr}).to_string());
    assert_eq!((st, v["alg"].as_str()), (201, Some("rsa")), "{v}");
    let serial = v["serial"].as_str().unwrap().to_string();
    d.write("staff.pem", v["certificate_pem"].as_str().unwrap().as_bytes());
    let (_, _, profile) = s.req("GET", "/admin/v1/ca/profile", Some(&token), None, b"");
    assert_eq!(profile["policies"][0], "1.3.6.1.4.1.99999.7.1", "{profile}");
    assert_eq!(v["profile_version"], profile["version"], "the certificate records its profile version");
    let root = d.p("rsa-root.pem");
    let issuing = d.p("rsa-issuing.pem");
    let staff = d.p("staff.pem");
    assert_ok(
        &d.openssl(&["verify", "-x509_strict", "-CAfile", &root, "-untrusted", &issuing, &staff]),
        "openssl verify, full RSA chain",
    );
    let o = d.openssl(&["x509", "-in", &staff, "-noout", "-text"]);
    let t = text(&o.stdout);
    assert!(
        t.contains("Policy: 1.3.6.1.4.1.99999.7.1")
            && t.contains("OCSP - URI:http://")
            && t.contains("CA Issuers - URI:"),
        "{t}"
    );

    // OCSP: good, verified by OpenSSL through the delegated responder; with and without nonce
    let out = ocsp(&d, &s, "rsa", "staff.pem", &[]);
    assert!(out.contains("Response verify OK") && out.contains("staff.pem: good"), "{out}");
    let out = ocsp(&d, &s, "rsa", "staff.pem", &["-no_nonce"]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    let (ok, why) = certvalidator(&d, "staff.pem", "rsa");
    assert!(ok, "pyhanko-certvalidator with our OCSP: {why}");

    // the GET form (RFC 5019): the same request twice gives the same cacheable bytes
    assert_ok(
        &d.openssl(&["ocsp", "-issuer", &issuing, "-cert", &staff, "-no_nonce", "-reqout", &d.p("req.der")]),
        "openssl ocsp -reqout",
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(d.read("req.der"));
    let path = format!("/pki/ocsp/{}", b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"));
    let (st, h1, r1) = s.raw("GET", &path, None, None, b"");
    let (_, _, r2) = s.raw("GET", &path, None, None, b"");
    assert_eq!(st, 200);
    assert!(
        h1.contains("application/ocsp-response") && h1.contains("max-age=") && h1.to_lowercase().contains("etag"),
        "{h1}"
    );
    assert_eq!(r1, r2, "cached answer");
    d.write("resp.der", &r1);
    let o = d.openssl(&[
        "ocsp",
        "-respin",
        &d.p("resp.der"),
        "-issuer",
        &issuing,
        "-cert",
        &staff,
        "-CAfile",
        &d.p("rsa-chain.pem"),
    ]);
    assert_ok(&o, "openssl ocsp -respin (GET answer)");
    assert!(text(&o.stdout).contains(": good"), "{}", text(&o.stdout));

    // hold: revoked (certificateHold) in OCSP and in the CRL; release: good again
    let (st, v) = s.json("POST", &format!("/api/v1/certificates/{serial}/hold"), Some(&token), "");
    assert_eq!((st, v["status"].as_str()), (200, Some("on_hold")), "{v}");
    let out = ocsp(&d, &s, "rsa", "staff.pem", &[]);
    assert!(out.contains(": revoked") && out.contains("certificateHold"), "{out}");
    let (_, _, crl) = s.raw("GET", "/pki/crl?ca=rsa", None, None, b"");
    d.write("rsa.crl", &crl);
    let o = d.openssl(&["crl", "-inform", "DER", "-in", &d.p("rsa.crl"), "-noout", "-text"]);
    assert!(text(&o.stdout).contains(&serial) && text(&o.stdout).contains("Certificate Hold"), "{}", text(&o.stdout));
    let (st, v) = s.json("POST", &format!("/api/v1/certificates/{serial}/release"), Some(&token), "");
    assert_eq!((st, v["status"].as_str()), (200, Some("active")), "{v}");
    assert_eq!(s.json("POST", &format!("/api/v1/certificates/{serial}/release"), Some(&token), "").0, 409);
    assert!(ocsp(&d, &s, "rsa", "staff.pem", &[]).contains(": good"));

    // revoke: OpenSSL sees the time and reason, the CRL lists it, certvalidator refuses
    let (st, v) = s.json(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        Some(&token),
        r#"{"reason":"key_compromise"}"#,
    );
    assert_eq!(st, 200, "{v}");
    let out = ocsp(&d, &s, "rsa", "staff.pem", &["-no_nonce"]);
    assert!(out.contains(": revoked") && out.contains("keyCompromise") && out.contains("Revocation Time"), "{out}");
    let (_, _, crl) = s.raw("GET", "/pki/crl?ca=rsa", None, None, b"");
    d.write("rsa.crl", &crl);
    let o = d.openssl(&["crl", "-inform", "DER", "-in", &d.p("rsa.crl"), "-noout", "-text"]);
    assert_ok(&o, "openssl crl");
    assert!(text(&o.stdout).contains(&serial) && text(&o.stdout).contains("Key Compromise"), "{}", text(&o.stdout));
    let (ok, why) = certvalidator(&d, "staff.pem", "rsa");
    assert!(!ok && why.to_lowercase().contains("revoked"), "certvalidator after revocation: {why}");

    // an SM2 certificate from a bare key with proof of possession; OCSP answers for it (OpenSSL
    // 3.0 cannot verify SM2 OCSP signatures with the standard ID, so we verify them ourselves)
    let key = medsign_crypto::PrivateKey::generate(medsign_crypto::KeyAlg::Sm2).unwrap();
    let public = key.public_key();
    let proof = key
        .sign(medsign_crypto::SignatureScheme::Sm2Sm3, &medsign_ca::certs::pop_message("3002", &public), None)
        .unwrap();
    let body = serde_json::json!({"public_key": public.to_pem(), "proof": base64::engine::general_purpose::STANDARD.encode(&proof)});
    let (st, v) = s.json("POST", "/api/v1/users/3002/certificates", Some(&token), &body.to_string());
    assert_eq!((st, v["alg"].as_str()), (201, Some("sm2")), "{v}");
    let sm2_cert =
        medsign_pki::cert::Cert::load_all(v["certificate_pem"].as_str().unwrap().as_bytes()).unwrap().remove(0);
    let sm2_ca = medsign_pki::cert::Cert::load_all(&d.read("sm2-issuing.pem")).unwrap().remove(0);
    let id = medsign_pki::ocsp::CertId::new(&sm2_cert, &sm2_ca, Some(medsign_crypto::HashAlg::Sm3)).unwrap();
    let (req, nonce) = medsign_pki::ocsp::build_request(std::slice::from_ref(&id), true).unwrap();
    let (st, _, resp) = s.raw("POST", "/pki/ocsp", None, Some("application/ocsp-request"), &req);
    assert_eq!(st, 200);
    let r = medsign_pki::ocsp::parse_response(&resp).unwrap();
    r.verify(&sm2_ca).unwrap();
    assert_eq!((&r.nonce, r.find(&id).unwrap().status), (&nonce, medsign_pki::ocsp::Status::Good));
    // a proof made for someone else is refused, as is a body with both forms
    assert_eq!(s.json("POST", "/api/v1/users/3001/certificates", Some(&token), &body.to_string()).0, 400);
    let both = serde_json::json!({"csr": csr, "public_key": public.to_pem(), "proof": "AA=="});
    assert_eq!(s.json("POST", "/api/v1/users/3001/certificates", Some(&token), &both.to_string()).0, 400);

    // a department seal certificate (key in server custody); OCSP answers good for it
    let (st, v) = s.json("POST", "/admin/v1/seals", Some(&token), r#"{"department":"JYK","alg":"rsa"}"#);
    assert_eq!((st, v["profile"].as_str()), (201, Some("seal")), "{v}");
    d.write("seal.pem", v["certificate_pem"].as_str().unwrap().as_bytes());
    assert!(ocsp(&d, &s, "rsa", "seal.pem", &[]).contains("seal.pem: good"));
    assert_eq!(s.json("POST", "/admin/v1/seals", Some(&token), r#"{"department":"NOPE"}"#).0, 404);
    assert_eq!(s.json("POST", "/admin/v1/seals", Some(&token), r#"{"alg":"dsa"}"#).0, 400);

    // garbage: malformedRequest in the protocol; wrong media type and oversized bodies: 4xx
    let (st, _, r) = s.raw("POST", "/pki/ocsp", None, Some("application/ocsp-request"), b"hello");
    assert_eq!((st, r.as_slice()), (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..]));
    let (st, _, r) = s.raw("GET", "/pki/ocsp/not-base64!", None, None, b"");
    assert_eq!((st, r.as_slice()), (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..]));
    let (st, _, v) = s.req("POST", "/pki/ocsp", None, Some("application/json"), &req);
    assert_eq!(st, 415);
    assert_envelope(&v, "unsupported_media_type");
    let (st, _, v) = s.req("POST", "/pki/ocsp", None, Some("application/ocsp-request"), &vec![0u8; 20_000]);
    assert_eq!(st, 413);
    assert_envelope(&v, "too_large");

    // certificates that end within a year: the SM2 one (the RSA one is revoked)
    let (st, _, v) = s.req("GET", "/api/v1/certificates/expiring?days=400", Some(&token), None, b"");
    assert_eq!((st, v["items"].as_array().map(Vec::len)), (200, Some(1)), "{v}");
    assert_eq!(s.req("GET", "/api/v1/certificates/expiring?days=0", Some(&token), None, b"").0, 400);

    // the responder was asked over HTTP by OpenSSL and certvalidator
    let (_, _, m) = s.raw("GET", "/metrics", None, None, b"");
    assert!(text(&m).contains(r#"route="/pki/ocsp",status="200""#), "{}", text(&m));
    assert_eq!(s.stop(), 0);
}

/// Two medsign nodes: the hospital's uses the regional node's CA through a `medsign` CA channel
/// (switched online), revocation propagates, and when the regional node stops, issuance fails
/// over to the hospital's built-in CA with audit entries.
#[test]
fn two_nodes_medsign_channel_switch_and_failover() {
    let (dh, dr) = (Dir::new(), Dir::new());
    let hospital = Server::start(&dh, &[("MEDSIGN_CA_ORGANIZATION", "某县人民医院")]);
    let regional = Server::start(&dr, &[]);
    let (ht, rt) = (hospital.token().unwrap(), regional.token().unwrap());
    // the regional node registers the hospital as a registration authority under its name
    let (st, v) =
        regional.json("POST", "/admin/v1/apps", Some(&rt), r#"{"name":"某县人民医院","scopes":["ca:enroll"]}"#);
    assert_eq!(st, 201, "{v}");
    let ra_token = v["token"].as_str().unwrap().to_string();
    // issue #15: no integration app gets a certificate naming someone else for its own key — an
    // app with `certs` is refused the RA call; the RA must prove possession (a signed CSR) and
    // may name only its own organisation
    let (_, his) = regional.json("POST", "/admin/v1/apps", Some(&rt), r#"{"name":"HIS","scopes":["certs"]}"#);
    let his = his["token"].as_str().unwrap().to_string();
    assert_ok(
        &dr.openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &dr.p("a.key")]),
        "genpkey",
    );
    assert_ok(&dr.openssl(&["pkey", "-in", &dr.p("a.key"), "-pubout", "-out", &dr.p("a.pub")]), "pubout");
    assert_ok(&dr.openssl(&["req", "-new", "-key", &dr.p("a.key"), "-subj", "/CN=x", "-out", &dr.p("a.csr")]), "req");
    let (spki, csr_pem) = (String::from_utf8(dr.read("a.pub")).unwrap(), String::from_utf8(dr.read("a.csr")).unwrap());
    let enrol = |token: &str, subject: &str, csr: Option<&str>| {
        let b = serde_json::json!({"employee_no": "1001", "subject": subject, "public_key": spki, "csr": csr});
        regional.json("POST", "/api/v1/ca/enroll", Some(token), &b.to_string())
    };
    let (st, v) = enrol(&his, "CN=张三,O=某县人民医院,C=CN", Some(&csr_pem));
    assert_eq!(st, 403, "{v}");
    let (st, v) = enrol(&ra_token, "CN=张三,O=某县人民医院,C=CN", None);
    assert_eq!(st, 400, "no proof of possession: {v}");
    let (st, v) = enrol(&ra_token, "CN=张三,O=另一家医院,C=CN", Some(&csr_pem));
    assert_eq!(st, 403, "another organisation: {v}");

    let (st, v) = hospital.json(
        "POST",
        "/api/v1/users",
        Some(&ht),
        r#"[{"employee_no":"4001","name":"钱七"},{"employee_no":"4002","name":"孙八"}]"#,
    );
    assert_eq!(st, 201, "{v}");
    ca_files(&dr, &regional, "rsa");

    // a medsign channel to the regional node; a bad one (no token) is refused
    let bad =
        serde_json::json!({"name": "x", "kind": "medsign", "config": {"url": format!("http://{}", regional.addr)}});
    assert_eq!(hospital.json("POST", "/admin/v1/ca-channels", Some(&ht), &bad.to_string()).0, 400);
    let body = serde_json::json!({"name": "区域平台 CA", "kind": "medsign", "priority": 20,
        "config": {"url": format!("http://{}", regional.addr)}, "secret": ra_token});
    let (st, ch) = hospital.json("POST", "/admin/v1/ca-channels", Some(&ht), &body.to_string());
    assert_eq!(st, 201, "{ch}");
    assert!(ch.to_string().find(&ra_token).is_none(), "the token is never shown again");
    let id = ch["id"].as_str().unwrap().to_string();
    let (st, c) = hospital.json("POST", &format!("/admin/v1/ca-channels/{id}/check"), Some(&ht), "");
    assert_eq!((st, c["health"].as_str()), (200, Some("ok")), "{c}");
    let (st, c) = hospital.json("POST", &format!("/admin/v1/ca-channels/{id}/activate"), Some(&ht), "");
    assert_eq!((st, c["active"].as_bool()), (200, Some(true)), "{c}");

    // issued by the regional CA; OpenSSL checks the chain and asks the regional OCSP responder
    assert_ok(
        &dr.openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", &dr.p("k.pem")]),
        "genpkey",
    );
    assert_ok(&dr.openssl(&["req", "-new", "-key", &dr.p("k.pem"), "-subj", "/CN=x", "-out", &dr.p("k.csr")]), "req");
    let csr = serde_json::json!({"csr": String::from_utf8(dr.read("k.csr")).unwrap()}).to_string();
    let (st, v) = hospital.json("POST", "/api/v1/users/4001/certificates", Some(&ht), &csr);
    assert_eq!((st, v["channel"].as_str()), (201, Some(id.as_str())), "{v}");
    assert!(v["subject"].as_str().unwrap().starts_with("CN=钱七"), "{v}");
    let serial = v["serial"].as_str().unwrap().to_string();
    dr.write("remote.pem", v["certificate_pem"].as_str().unwrap().as_bytes());
    assert_ok(
        &dr.openssl(&[
            "verify",
            "-CAfile",
            &dr.p("rsa-root.pem"),
            "-untrusted",
            &dr.p("rsa-issuing.pem"),
            &dr.p("remote.pem"),
        ]),
        "the hospital's certificate chains to the regional CA",
    );
    assert!(ocsp(&dr, &regional, "rsa", "remote.pem", &[]).contains(": good"));

    // issue #17 item 5: a signature under the regional CA is INDETERMINATE at the hospital until
    // the hospital puts the regional root (and its issuing CA, with their CRLs) on its trust list
    dr.write("rx.txt", "Rp: 阿莫西林 0.5 g tid".as_bytes());
    let signed = dr.openssl(&[
        "cms",
        "-sign",
        "-binary",
        "-in",
        &dr.p("rx.txt"),
        "-signer",
        &dr.p("remote.pem"),
        "-inkey",
        &dr.p("k.pem"),
        "-outform",
        "DER",
        "-out",
        &dr.p("rx.p7s"),
    ]);
    assert_ok(&signed, "openssl cms -sign with the regional certificate");
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body = serde_json::json!({"signature": b64(&dr.read("rx.p7s")), "data": b64(&dr.read("rx.txt"))}).to_string();
    let verify = || {
        let (st, r) = hospital.json("POST", "/api/v1/verify/data", Some(&ht), &body);
        assert_eq!(st, 200, "{r}");
        r
    };
    let r = verify();
    assert_eq!(r["indication"], "INDETERMINATE", "not trusted yet: {r}");
    // an integration app cannot put anything on the list, whatever its scopes
    let (_, app) = hospital.json(
        "POST",
        "/admin/v1/apps",
        Some(&ht),
        r#"{"name":"EMR","scopes":["sign","verify","certs","users:write"]}"#,
    );
    let emr = app["token"].as_str().unwrap();
    let b = serde_json::json!({"pem": String::from_utf8_lossy(&dr.read("rsa-root.pem"))}).to_string();
    assert_eq!(hospital.json("POST", "/admin/v1/trust", Some(emr), &b).0, 403);
    let crl_url = |issuer: &str| format!("http://{}/pki/crl?ca=rsa&issuer={issuer}", regional.addr);
    let trust = |pem: &[u8], crl: Option<String>| {
        let b = serde_json::json!({"pem": String::from_utf8_lossy(pem), "crl_url": crl, "note": "区域平台 CA"});
        hospital.json("POST", "/admin/v1/trust", Some(&ht), &b.to_string())
    };
    let (st, root) = trust(&dr.read("rsa-root.pem"), Some(crl_url("root")));
    assert_eq!((st, root[0]["anchor"].as_bool()), (201, Some(true)), "{root}");
    assert!(root[0]["crl_at"].is_string() && root[0]["crl_error"].is_null(), "the root's CRL was fetched: {root}");
    let (st, issuing) = trust(&dr.read("rsa-issuing.pem"), Some(crl_url("issuing")));
    assert_eq!((st, issuing[0]["anchor"].as_bool()), (201, Some(false)), "{issuing}");
    let r = verify();
    assert_eq!(r["indication"], "TOTAL_PASSED", "{r}");
    // what does not go on the list: a person's certificate, garbage, a CRL URL for two
    // certificates or of another scheme, a CRL from someone else; an unknown entry is 404
    assert_eq!(trust(&dr.read("remote.pem"), None).0, 400);
    assert_eq!(trust(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None).0, 400);
    assert_eq!(trust(&dr.read("rsa-chain.pem"), Some(crl_url("issuing"))).0, 400);
    assert_eq!(trust(&dr.read("rsa-root.pem"), Some("ftp://regional.invalid/crl".into())).0, 400);
    assert_eq!(hospital.json("DELETE", "/admin/v1/trust/00ff", Some(&ht), "").0, 404);
    // revoked at the hospital → revoked at the regional CA
    let (st, v) = hospital.json(
        "POST",
        &format!("/api/v1/certificates/{serial}/revoke"),
        Some(&ht),
        r#"{"reason":"affiliation_changed"}"#,
    );
    assert_eq!(st, 200, "{v}");
    let out = ocsp(&dr, &regional, "rsa", "remote.pem", &[]);
    assert!(out.contains(": revoked") && out.contains("affiliationChanged"), "{out}");
    // … and, once the trust list's CRLs are fetched again, the signature says so
    let (st, list) = hospital.json("POST", "/admin/v1/trust/refresh", Some(&ht), "");
    assert_eq!((st, list.as_array().map(Vec::len)), (200, Some(2)), "{list}");
    let r = verify();
    assert_ne!(r["indication"], "TOTAL_PASSED", "{r}");
    assert!(r.to_string().contains("revoked"), "{r}");
    // off the list: not trusted any more
    let fp = root[0]["fingerprint"].as_str().unwrap();
    assert_eq!(hospital.json("DELETE", &format!("/admin/v1/trust/{fp}"), Some(&ht), "").0, 204);
    let r = verify();
    assert_eq!(r["indication"], "INDETERMINATE", "{r}");
    let (_, _, audit) = hospital.req("GET", "/admin/v1/audit?action=trust.add", Some(&ht), None, b"");
    assert_eq!(audit["total"], 2, "{audit}");
    // a held remote certificate is not a thing
    let (st, v) = hospital.json("POST", "/api/v1/users/4001/certificates", Some(&ht), &csr);
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        hospital.json("POST", &format!("/api/v1/certificates/{}/hold", v["serial"].as_str().unwrap()), Some(&ht), "").0,
        400
    );

    // the regional node stops: the next issuance fails over to the built-in CA, which takes over
    assert_eq!(regional.stop(), 0);
    let (st, v) = hospital.json("POST", "/api/v1/users/4002/certificates", Some(&ht), &csr);
    assert_eq!((st, v["channel"].as_str()), (201, Some("builtin")), "{v}");
    let (_, _, list) = hospital.req("GET", "/admin/v1/ca-channels", Some(&ht), None, b"");
    let find = |i: &str| list.as_array().unwrap().iter().find(|c| c["id"] == i).unwrap().clone();
    assert_eq!(find("builtin")["active"], true, "{list}");
    assert_eq!((find(&id)["active"].as_bool(), find(&id)["health"].as_str()), (Some(false), Some("down")), "{list}");
    let (_, _, audit) = hospital.req("GET", "/admin/v1/audit?action=ca.channel.failover", Some(&ht), None, b"");
    assert_eq!(audit["total"], 1, "{audit}");
    // the active channel cannot be disabled; an unknown one is 404
    assert_eq!(hospital.json("POST", "/admin/v1/ca-channels/builtin/disable", Some(&ht), "").0, 409);
    assert_eq!(hospital.json("POST", "/admin/v1/ca-channels/nope/activate", Some(&ht), "").0, 404);
    assert_eq!(hospital.stop(), 0);
}

/// Issue #17 item 5: with an outside CA over EST active (the FAKE EST server, plain HTTP on
/// loopback), a phone's split key is certified only from the PKCS#10 that phone and server sign
/// together; until then the phone signs nothing. The doctor's signature then names the outside CA
/// as its issuer, and it verifies only once the hospital puts that CA on its trust list.
#[test]
fn an_outside_ca_certifies_a_phone_key_from_its_own_request() {
    let d = Dir::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (fake, url) = rt.block_on(medsign_ca::est_fake::EstFake::start());
    let env = postgres_env(&d, "outside_ca");
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start(&d, &env_ref);
    let admin = s.token().unwrap();
    let (_, app) =
        s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"HIS","scopes":["sign","verify","users:write"]}"#);
    let his = app["token"].as_str().unwrap().to_string();
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), r#"{"employee_no":"1001","name":"王医生"}"#).0, 201);
    let ch = serde_json::json!({"name": "省级 CA (EST)", "kind": "est", "priority": 10,
        "config": {"url": url, "username": fake.user}, "secret": fake.password});
    let (st, ch) = s.json("POST", "/admin/v1/ca-channels", Some(&admin), &ch.to_string());
    assert_eq!(st, 201, "{ch}");
    let ch_id = ch["id"].as_str().unwrap();
    assert_eq!(s.json("POST", &format!("/admin/v1/ca-channels/{ch_id}/activate"), Some(&admin), "").0, 200);

    // the key is made, but not certified without its own request; the phone cannot sign yet
    let phone = s.endpoint();
    let token = phone_bind(&s, &phone, &his, "1001");
    let share = phone_keys(&phone, &token);
    let content = "Rp: 阿莫西林胶囊 0.5 g tid × 3 日";
    let flow = serde_json::json!({"kind": "data", "title": "门诊处方", "content": content, "timestamp": "later",
        "signers": [{"employee_no": "1001", "mode": "scan"}]});
    let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &flow.to_string());
    assert_eq!(st, 201, "{f}");
    let target = serde_json::json!({"targets": [{"flow_id": f["id"]}]}).to_string();
    let (st, v) = phone.json("POST", "/mobile/v1/sign-rounds", Some(&token), &target);
    assert_eq!(st, 409, "{v}");
    assert_envelope(&v, "certificate_pending");
    assert_eq!(fake.enrolled.load(std::sync::atomic::Ordering::SeqCst), 0);

    // phone and server sign the request; the outside CA certifies the joint key
    let (st, cert) = phone_certify(&phone, &token, &share);
    assert_eq!((st, cert["channel"].as_str()), (201, Some(ch_id)), "{cert}");
    assert_eq!(fake.enrolled.load(std::sync::atomic::Ordering::SeqCst), 1);
    let issued = medsign_pki::cert::Cert::load_all(cert["certificate_pem"].as_str().unwrap().as_bytes()).unwrap();
    issued[0].verify_signed_by(&fake.ca, medsign_pki::alg::Sm2IdPolicy::Standard).unwrap();

    // now the doctor signs; the signature names the outside CA
    let (st, v) = phone.json("POST", "/mobile/v1/sign-rounds", Some(&token), &target);
    assert_eq!(st, 201, "{v}");
    let out = co_sign(&phone, &token, &share, v["rounds"].as_array().unwrap());
    assert_eq!(out["results"][0]["state"], "completed", "{out}");
    let (st, _, p7s) = s.raw(
        "GET",
        &format!("/api/v1/sign-flows/{}/file?signature=p7s", f["id"].as_str().unwrap()),
        Some(&his),
        None,
        b"",
    );
    assert_eq!(st, 200);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let body = serde_json::json!({"signature": b64(&p7s), "data": b64(content.as_bytes())}).to_string();
    let verify = || {
        let (st, r) = s.json("POST", "/api/v1/verify/data", Some(&his), &body);
        assert_eq!(st, 200, "{r}");
        r
    };
    let r = verify();
    assert_eq!(r["indication"], "INDETERMINATE", "the outside CA is not trusted yet: {r}");
    assert_eq!(r["signers"][0]["serial"], cert["serial"], "signed with the outside CA's certificate: {r}");
    let add = serde_json::json!({"pem": fake.ca.to_pem(), "crl_url": fake.crl_url, "note": "省级 CA（测试用伪 EST）"})
        .to_string();
    let (st, t) = s.json("POST", "/admin/v1/trust", Some(&admin), &add);
    assert_eq!(st, 201, "{t}");
    let r = verify();
    assert_eq!(r["indication"], "TOTAL_PASSED", "{r}");
    drop(rt);
}
