//! End-to-end for the TSA (issue #5) against the real `medsign serve` whose only time source is a
//! real NTP server on loopback (chronyd -x): OpenSSL (`openssl ts -query | POST | openssl ts
//! -verify`) and pyHanko (`sign addsig --timestamp-url`, `sign validate` →
//! `TIMESTAMP_TOKEN<INTACT:TRUSTED>`) judge `/tsa/rsa`; `/tsa/sm2` tokens verify with
//! `medsign ts verify` and the independent SM2 checker (asn1crypto + gmssl); the JSON API,
//! protocol errors, records, `/readyz` and metrics; and fail-closed: a source an hour off, or
//! one that says it is not synchronised, means no tokens.

mod common;
use base64::Engine;
use common::*;

fn venv_tool(name: &str) -> String {
    std::path::Path::new(&python()).with_file_name(name).to_string_lossy().into_owned()
}

#[test]
fn tsa_with_a_loopback_ntp_source_judged_by_openssl_pyhanko_and_gmssl() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "good", None, false);
    let s = Server::start(&d, &[("MEDSIGN_TIME_SOURCES", &ntp.source()), ("MEDSIGN_TIME_POLL_SECONDS", "1")]);
    let token = s.token().unwrap();
    let ready = wait_clock(&s, "INSYNC");
    assert!(ready["clock"]["offset_ms"].as_f64().unwrap().abs() < 50.0, "{ready}");
    let (_, _, chain) = s.raw("GET", "/pki/rsa/ca.pem", None, None, b"");
    d.write("rsa-chain.pem", &chain);
    let (_, _, chain) = s.raw("GET", "/pki/sm2/ca.pem", None, None, b"");
    d.write("sm2-chain.pem", &chain);
    d.write("data.bin", "门诊处方笺 No.2026-000123".as_bytes());

    // OpenSSL as the RFC 3161 reference, on /tsa/rsa (and the default /tsa for SHA-512 + SM3)
    let base = format!("http://{}", s.addr);
    for (path, alg) in [
        ("/tsa/rsa", "-sha256"),
        ("/tsa/rsa", "-sha384"),
        ("/tsa/p256", "-sha256"),
        ("/tsa", "-sha512"),
        ("/tsa", "-sm3"),
    ] {
        assert_ok(
            &d.openssl(&["ts", "-query", "-data", &d.p("data.bin"), alg, "-cert", "-out", &d.p("q.tsq")]),
            "openssl ts -query",
        );
        let (st, h, reply) = s.raw("POST", path, None, Some("application/timestamp-query"), &d.read("q.tsq"));
        assert!(st == 200 && h.contains("application/timestamp-reply"), "{st} {h}");
        d.write("r.tsr", &reply);
        let o = d.openssl(&["ts", "-reply", "-in", &d.p("r.tsr"), "-text"]);
        let t = text(&o.stdout);
        assert!(t.contains("Status: Granted.") && t.contains("Nonce:") && t.contains("TSA: DirName:"), "{t}");
        if path == "/tsa/p256" {
            assert!(t.contains("P-256"), "the P-256 profile's TSA name: {t}");
        }
        // the P-256 token's certificate comes from the RSA CA, so one chain verifies both
        if path == "/tsa/rsa" || path == "/tsa/p256" {
            let o = d.openssl(&[
                "ts",
                "-verify",
                "-in",
                &d.p("r.tsr"),
                "-queryfile",
                &d.p("q.tsq"),
                "-CAfile",
                &d.p("rsa-chain.pem"),
            ]);
            assert!(text(&o.stdout).contains("Verification: OK"), "{}{}", text(&o.stdout), text(&o.stderr));
            let o = d.openssl(&[
                "ts",
                "-verify",
                "-in",
                &d.p("r.tsr"),
                "-data",
                &d.p("data.bin"),
                "-CAfile",
                &d.p("rsa-chain.pem"),
            ]);
            assert!(text(&o.stdout).contains("Verification: OK"), "{}", text(&o.stderr));
        }
    }
    // a token for other data does not verify in OpenSSL either
    d.write("other.bin", b"tampered");
    let o = d.openssl(&[
        "ts",
        "-verify",
        "-in",
        &d.p("r.tsr"),
        "-data",
        &d.p("other.bin"),
        "-CAfile",
        &d.p("sm2-chain.pem"),
    ]);
    assert!(!text(&o.stdout).contains("Verification: OK"));

    // /tsa/sm2 through our client; our verifier and the independent checker agree
    let url = format!("{base}/tsa/sm2");
    d.ok(&["ts", "query", "--url", &url, "--in", &d.p("data.bin"), "--out", &d.p("sm2.tsr")]);
    let out =
        d.ok(&["ts", "verify", &d.p("sm2.tsr"), "--in", &d.p("data.bin"), "--trust", &d.p("sm2-chain.pem"), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    let o = d.medsign(&["ts", "verify", &d.p("sm2.tsr"), "--in", &d.p("other.bin"), "--trust", &d.p("sm2-chain.pem")]);
    assert_eq!(o.status.code(), Some(1), "another file: invalid");
    assert_ok(
        &d.openssl(&["ts", "-reply", "-in", &d.p("sm2.tsr"), "-token_out", "-out", &d.p("sm2.tst")]),
        "token_out",
    );
    let o = d.sm2_check(&["cms", &d.p("sm2.tst"), "--ca", &d.p("sm2-chain.pem"), "--imprint-of", &d.p("data.bin")]);
    assert_ok(&o, "independent SM2 checker on the /tsa/sm2 token");
    let o = d.sm2_check(&["cms", &d.p("sm2.tst"), "--ca", &d.p("sm2-chain.pem"), "--imprint-of", &d.p("other.bin")]);
    assert_fails(&o, "the checker refuses another file's imprint");

    // pyHanko as a TSA client: a PDF signed with our /tsa/rsa timestamp validates
    d.write("d.pdf", &medsign_pdf::blank_pdf(595, 842));
    assert_ok(
        &d.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &d.p("k.pem"),
            "-out",
            &d.p("s.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=throwaway-signer",
            "-addext",
            "keyUsage=critical,digitalSignature,nonRepudiation",
        ]),
        "signer for pyHanko",
    );
    let o = d.run(
        &venv_tool("pyhanko"),
        &[
            "sign",
            "addsig",
            "--field",
            "Sig1",
            "--timestamp-url",
            &format!("{base}/tsa/rsa"),
            "pemder",
            "--key",
            &d.p("k.pem"),
            "--cert",
            &d.p("s.pem"),
            "--no-pass",
            &d.p("d.pdf"),
            &d.p("ds.pdf"),
        ],
    );
    assert_ok(&o, "pyhanko sign addsig --timestamp-url");
    let o = d.run(
        &venv_tool("pyhanko"),
        &[
            "sign",
            "validate",
            "--trust",
            &d.p("s.pem"),
            "--trust",
            &d.p("rsa-chain.pem"),
            "--trust-replace",
            &d.p("ds.pdf"),
        ],
    );
    assert!(text(&o.stdout).contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "{}{}", text(&o.stdout), text(&o.stderr));

    // a profile that does not exist: 404 with the envelope (not a TimeStampResp)
    let (st, _, v) = s.req("POST", "/tsa/ed25519", None, Some("application/timestamp-query"), &d.read("q.tsq"));
    assert_eq!(st, 404, "{v}");
    assert_envelope(&v, "not_found");
    // protocol errors: garbage → rejection badDataFormat; wrong media type 415; too large 413
    let (st, _, reply) = s.raw("POST", "/tsa/rsa", None, Some("application/timestamp-query"), b"not a request");
    d.write("bad.tsr", &reply);
    let o = d.openssl(&["ts", "-reply", "-in", &d.p("bad.tsr"), "-text"]);
    assert!(
        st == 200 && text(&o.stdout).contains("Status: Rejected.") && text(&o.stdout).contains("wrong format"),
        "{}",
        text(&o.stdout)
    );
    let (st, _, v) = s.req("POST", "/tsa/sm2", None, Some("text/plain"), &d.read("q.tsq"));
    assert_eq!(st, 415);
    assert_envelope(&v, "unsupported_media_type");
    let (st, _, v) = s.req("POST", "/tsa", None, Some("application/timestamp-query"), &vec![0x30; 70_000]);
    assert_eq!(st, 413, "{v}");
    assert_envelope(&v, "too_large");

    // the JSON API: stamp a digest, verify it (and a wrong one)
    let digest = hex::encode(medsign_crypto::hash::sm3(b"lab report 42"));
    let body = serde_json::json!({"digest": digest, "algorithm": "sm3"}).to_string();
    let (st, t) = s.json("POST", "/api/v1/timestamps", Some(&token), &body);
    assert_eq!((st, t["profile"].as_str()), (201, Some("sm2")), "{t}");
    let verify = |digest: &str| {
        let b = serde_json::json!({"token": t["token"], "digest": digest}).to_string();
        s.json("POST", "/api/v1/timestamps/verify", Some(&token), &b)
    };
    let (st, r) = verify(&digest);
    assert_eq!((st, r["status"].as_str()), (200, Some("TOTAL_PASSED")), "{r}");
    assert_eq!(r["serial"], t["serial"]);
    let (st, r) = verify(&hex::encode(medsign_crypto::hash::sm3(b"lab report 43")));
    assert_eq!((st, r["status"].as_str()), (200, Some("TOTAL_FAILED")), "{r}");
    let data = base64::engine::general_purpose::STANDARD.encode(b"lab report 42");
    let (st, r) = s.json(
        "POST",
        "/api/v1/timestamps/verify",
        Some(&token),
        &serde_json::json!({"token": t["token"], "data": data}).to_string(),
    );
    assert_eq!((st, r["status"].as_str()), (200, Some("TOTAL_PASSED")), "{r}");
    for bad in [
        r#"{"digest":"abcd","algorithm":"sm3"}"#,
        r#"{"digest":"zz","algorithm":"sm3"}"#,
        r#"{"digest":"00","algorithm":"md5"}"#,
        r#"{"digest":"00","algorithm":"sm3","profile":"dsa"}"#,
    ] {
        let (st, v) = s.json("POST", "/api/v1/timestamps", Some(&token), bad);
        assert_eq!(st, 400, "{bad}: {v}");
        assert_envelope(&v, "invalid_request");
    }
    assert_eq!(s.json("POST", "/api/v1/timestamps/verify", Some(&token), r#"{"token":"AAAA","digest":"00"}"#).0, 400);
    // an app without the timestamps scope is refused
    let (_, v) = s.json("POST", "/admin/v1/apps", Some(&token), r#"{"name":"LIS","scopes":["users:read"]}"#);
    let lis = v["token"].as_str().unwrap().to_string();
    assert_eq!(s.json("POST", "/api/v1/timestamps", Some(&lis), &body).0, 403);

    // every issuance is on record; the clock is visible to the admin and in the metrics
    let (st, _, list) = s.req("GET", "/admin/v1/timestamps?page_size=500", Some(&token), None, b"");
    assert_eq!(st, 200);
    assert!(list["total"].as_i64().unwrap() >= 8, "{list}");
    assert!(list["items"].as_array().unwrap().iter().any(|i| i["imprint_hex"] == digest.as_str()), "{list}");
    let (_, _, time) = s.req("GET", "/admin/v1/time", Some(&token), None, b"");
    assert_eq!(
        (time["state"].as_str(), time["source"].as_str()),
        (Some("INSYNC"), Some(ntp.source().as_str())),
        "{time}"
    );
    let (_, _, m) = s.raw("GET", "/metrics", None, None, b"");
    assert!(
        text(&m).contains("medsign_clock_state{state=\"INSYNC\"} 1")
            && text(&m).contains("medsign_clock_offset_seconds"),
        "{}",
        text(&m)
    );
    assert_eq!(s.stop(), 0);
}

/// Fail-closed: the only source is an hour ahead, or says it is not synchronised — no tokens.
#[test]
fn tsa_refuses_when_the_source_is_off_by_an_hour_or_unsynchronised() {
    let d = Dir::new();
    let ahead = Chrony::start(&d, "ahead", Some("+3600s"), false);
    let s = Server::start(&d, &[("MEDSIGN_TIME_SOURCES", &ahead.source()), ("MEDSIGN_TIME_POLL_SECONDS", "1")]);
    let token = s.token().unwrap();
    let ready = wait_clock(&s, "OUT_OF_SYNC");
    let off = ready["clock"]["offset_ms"].as_f64().unwrap();
    assert!((off - 3_600_000.0).abs() < 5_000.0, "the source is an hour ahead: {ready}");
    assert_ok(
        &d.openssl(&["ts", "-query", "-digest", &"ab".repeat(32), "-sha256", "-cert", "-out", &d.p("q.tsq")]),
        "query",
    );
    let (st, _, reply) = s.raw("POST", "/tsa/rsa", None, Some("application/timestamp-query"), &d.read("q.tsq"));
    d.write("r.tsr", &reply);
    let o = d.openssl(&["ts", "-reply", "-in", &d.p("r.tsr"), "-text"]);
    let t = text(&o.stdout);
    assert!(st == 200 && t.contains("Status: Rejected.") && t.contains("time source is not available"), "{t}");
    let body = serde_json::json!({"digest": "ab".repeat(32), "algorithm": "sha256"}).to_string();
    let (st, v) = s.json("POST", "/api/v1/timestamps", Some(&token), &body);
    assert_eq!(st, 503, "{v}");
    assert_envelope(&v, "unavailable");
    assert!(
        s.stderr_lines.iter().any(|l| l.contains("MEDSIGN_TIME_SOURCES")),
        "the banner explains: {:#?}",
        s.stderr_lines
    );
    assert_eq!(s.stop(), 0);

    let d = Dir::new();
    let unsync = Chrony::start(&d, "unsync", None, true);
    let s = Server::start(&d, &[("MEDSIGN_TIME_SOURCES", &unsync.source()), ("MEDSIGN_TIME_POLL_SECONDS", "1")]);
    let (_, _, v) = s.req("GET", "/readyz", None, None, b"");
    assert_eq!(v["clock"]["state"], "UNKNOWN", "{v}");
    let (_, _, time) = s.req("GET", "/admin/v1/time", Some(&s.token().unwrap()), None, b"");
    assert!(time["errors"].to_string().contains("not synchronised"), "{time}");
    let (_, _, reply) = s.raw("POST", "/tsa/sm2", None, Some("application/timestamp-query"), &d_query(&d));
    d.write("r.tsr", &reply);
    let t = text(&d.openssl(&["ts", "-reply", "-in", &d.p("r.tsr"), "-text"]).stdout);
    assert!(t.contains("Status: Rejected.") && t.contains("time source is not available"), "{t}");
    assert_eq!(s.stop(), 0);
}

fn d_query(d: &Dir) -> Vec<u8> {
    assert_ok(&d.openssl(&["ts", "-query", "-digest", &"cd".repeat(32), "-sm3", "-out", &d.p("q2.tsq")]), "query");
    d.read("q2.tsq")
}

/// Issue #15: only the admin may hold or revoke the hospital's TSA certificate, and a held one
/// stops issuance at once (RFC 3161 rejection); released, the TSA issues again.
#[test]
fn a_held_tsa_certificate_stops_issuance_at_once_and_only_the_admin_may_hold_it() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "good", None, false);
    let s = Server::start(&d, &[("MEDSIGN_TIME_SOURCES", &ntp.source()), ("MEDSIGN_TIME_POLL_SECONDS", "1")]);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let (st, v) = s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"HIS","scopes":["certs"]}"#);
    assert_eq!(st, 201, "{v}");
    let his = v["token"].as_str().unwrap().to_string();
    let (st, list) = s.json("GET", "/api/v1/certificates?profile=tsa&alg=rsa&status=active", Some(&admin), "");
    assert_eq!(st, 200, "{list}");
    let serial = list["items"][0]["serial"].as_str().unwrap().to_string();
    assert_ok(
        &d.openssl(&["ts", "-query", "-digest", &"ab".repeat(32), "-sha256", "-cert", "-out", &d.p("q.tsq")]),
        "query",
    );
    let status = |d: &Dir| {
        let (st, _, reply) = s.raw("POST", "/tsa/rsa", None, Some("application/timestamp-query"), &d.read("q.tsq"));
        assert_eq!(st, 200);
        d.write("r.tsr", &reply);
        text(&d.openssl(&["ts", "-reply", "-in", &d.p("r.tsr"), "-text"]).stdout)
    };
    assert!(status(&d).contains("Status: Granted."));
    // an integration app with `certs` may not touch the hospital's own certificates
    for op in ["hold", "revoke"] {
        let (st, v) = s.json(
            "POST",
            &format!("/api/v1/certificates/{serial}/{op}"),
            Some(&his),
            r#"{"reason":"key_compromise"}"#,
        );
        assert_eq!(st, 403, "{op}: {v}");
    }
    assert!(status(&d).contains("Status: Granted."), "nothing changed");
    // the admin holds it: the very next request is refused
    let (st, v) = s.json("POST", &format!("/api/v1/certificates/{serial}/hold"), Some(&admin), "");
    assert_eq!((st, v["status"].as_str()), (200, Some("on_hold")), "{v}");
    let t = status(&d);
    assert!(t.contains("Status: Rejected.") && t.contains("on hold or revoked"), "{t}");
    let (st, v) = s.json("POST", &format!("/api/v1/certificates/{serial}/release"), Some(&admin), "");
    assert_eq!(st, 200, "{v}");
    assert!(status(&d).contains("Status: Granted."));
    // the root's CRL (named by the issuing CA certificate) parses and verifies in OpenSSL; an
    // unknown issuer is a 400
    let (st, _, crl) = s.raw("GET", "/pki/crl?ca=rsa&issuer=root", None, None, b"");
    assert_eq!(st, 200);
    d.write("root.crl", &crl);
    let (_, _, chain) = s.raw("GET", "/pki/rsa/ca.pem", None, None, b"");
    d.write("rsa-chain.pem", &chain);
    let o = d.openssl(&["crl", "-inform", "DER", "-in", &d.p("root.crl"), "-CAfile", &d.p("rsa-chain.pem"), "-noout"]);
    assert!(text(&o.stderr).contains("verify OK") || text(&o.stdout).contains("verify OK"), "{}", text(&o.stderr));
    let (st, v) = s.json("GET", "/pki/crl?ca=rsa&issuer=bogus", None, "");
    assert_eq!(st, 400, "{v}");
    assert_envelope(&v, "invalid_request");
    assert_eq!(s.stop(), 0);
}
