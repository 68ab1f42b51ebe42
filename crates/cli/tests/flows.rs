//! End-to-end for data signing flows (issue #6, first slice) through the HTTP API of the real
//! `medsign serve` (time from chronyd on loopback): server custody authorized per user, a flow
//! signed by a doctor and the hospital seal with timestamps, the p7s judged by the independent
//! SM2 checker (SM2) and `openssl cms -verify` (RSA), `POST /api/v1/verify/data`, idempotency,
//! revoke rules, and the signed webhook arriving at a local receiver.

mod common;
use base64::Engine;
use common::*;
use std::io::{Read, Write};

#[test]
fn data_flows_through_the_api_judged_by_gmssl_and_openssl() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "ntp", None, false);
    let s = Server::start(&d, &[("MEDSIGN_TIME_SOURCES", &ntp.source()), ("MEDSIGN_TIME_POLL_SECONDS", "1")]);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let (st, v) =
        s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"HIS","scopes":["sign","verify","users:write"]}"#);
    assert_eq!(st, 201, "{v}");
    let his = v["token"].as_str().unwrap().to_string();
    let (st, v) = s.json(
        "POST",
        "/api/v1/users",
        Some(&his),
        r#"[{"employee_no":"1001","name":"张三"},{"employee_no":"1002","name":"李四"}]"#,
    );
    assert_eq!(st, 201, "{v}");
    for (_, which) in [(0, "sm2"), (1, "rsa")] {
        let (_, _, chain) = s.raw("GET", &format!("/pki/{which}/ca.pem"), None, None, b"");
        d.write(&format!("{which}-chain.pem"), &chain);
    }

    // server custody is an admin decision, per user, with a reason
    let (st, v) = s.json(
        "POST",
        "/admin/v1/users/1001/custody",
        Some(&admin),
        r#"{"reason":"院务会决议：门诊电子处方服务器托管签名"}"#,
    );
    assert_eq!((st, v["alg"].as_str()), (201, Some("sm2")), "{v}");
    let (st, _) =
        s.json("POST", "/admin/v1/users/1001/custody", Some(&admin), r#"{"reason":"RSA for PDF readers","alg":"rsa"}"#);
    assert_eq!(st, 201);
    assert_eq!(s.json("POST", "/admin/v1/users/1001/custody", Some(&his), r#"{"reason":"x"}"#).0, 403, "admin only");

    let (url, hooks) = receiver();
    let content = "Rp: 阿莫西林胶囊 0.5g tid ×3d；患者 王某 门诊号 20261127-0042";
    d.write("rx.txt", content.as_bytes());
    let flow = serde_json::json!({"kind": "data", "title": "门诊处方 No.2026-000123", "content": content,
        "signers": [{"employee_no": "1001"}, {"seal": "hospital"}], "callback_url": url});
    let (st, h, f) =
        s.req("POST", "/api/v1/sign-flows", Some(&his), Some("application/json"), flow.to_string().as_bytes());
    assert_eq!((st, f["state"].as_str()), (201, Some("completed")), "{f}");
    let id = f["id"].as_str().unwrap().to_string();
    assert!(!h.contains("idempotent-replayed"));
    let (st, _, p7s) = s.raw("GET", &format!("/api/v1/sign-flows/{id}/file?signature=p7s"), Some(&his), None, b"");
    assert_eq!(st, 200);
    d.write("rx.p7s", &p7s);
    let o = d.sm2_check(&["cms", &d.p("rx.p7s"), "--content", &d.p("rx.txt"), "--ca", &d.p("sm2-chain.pem")]);
    assert_ok(&o, "independent SM2 checker on the flow's CMS (two signers)");
    assert!(text(&o.stdout).contains("signer #1 SM2 signature"), "{}", text(&o.stdout));
    // our verifier through the API: valid, with timestamps; another text fails
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (st, r) = s.json(
        "POST",
        "/api/v1/verify/data",
        Some(&his),
        &serde_json::json!({"signature": b64(&p7s), "data": b64(content.as_bytes())}).to_string(),
    );
    assert_eq!((st, r["indication"].as_str()), (200, Some("TOTAL_PASSED")), "{r}");
    assert!(r["signers"].as_array().unwrap().iter().all(|x| x["timestamp"]["integrity"]["ok"] == true), "{r}");
    let (_, r) = s.json(
        "POST",
        "/api/v1/verify/data",
        Some(&his),
        &serde_json::json!({"signature": b64(&p7s), "data": b64(b"Rp: something else")}).to_string(),
    );
    assert_eq!(r["indication"], "TOTAL_FAILED", "{r}");
    assert_eq!(s.json("POST", "/api/v1/verify/data", Some(&his), r#"{"signature":"bm90IGNtcw=="}"#).0, 400);

    // RSA, attached: OpenSSL verifies it
    let flow = serde_json::json!({"kind": "data", "title": "检验报告 No.42", "content_base64": b64(b"WBC 6.1 x10^9/L"),
        "detached": false, "alg": "rsa", "signers": [{"employee_no": "1001"}]});
    let (st, f2) = s.json("POST", "/api/v1/sign-flows", Some(&his), &flow.to_string());
    assert_eq!(st, 201, "{f2}");
    let (_, _, p7s) = s.raw(
        "GET",
        &format!("/api/v1/sign-flows/{}/file?signature=p7s", f2["id"].as_str().unwrap()),
        Some(&his),
        None,
        b"",
    );
    d.write("lab.p7s", &p7s);
    let o = d.openssl(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        &d.p("lab.p7s"),
        "-CAfile",
        &d.p("rsa-chain.pem"),
        "-purpose",
        "any",
        "-out",
        &d.p("lab.out"),
    ]);
    assert!(text(&o.stderr).contains("Verification successful"), "{}", text(&o.stderr));
    assert_eq!(d.read("lab.out"), b"WBC 6.1 x10^9/L");

    // idempotency: the same key and body replays the same flow
    let flow = serde_json::json!({"kind": "data", "title": "t", "content": "x", "signers": [{"seal": "hospital"}]});
    let again = |key: &str| {
        let mut st = std::net::TcpStream::connect(&s.addr).unwrap();
        let body = flow.to_string();
        write!(
            st,
            "POST /api/v1/sign-flows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {his}\r\nIdempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        st.read_to_string(&mut out).unwrap();
        out
    };
    let (a, b) = (again("flow-0001"), again("flow-0001"));
    let id_of =
        |t: &str| serde_json::from_str::<serde_json::Value>(t.split_once("\r\n\r\n").unwrap().1).unwrap()["id"].clone();
    assert_eq!(id_of(&a), id_of(&b));
    assert!(b.to_lowercase().contains("idempotent-replayed: true"), "{b}");

    // rules: a completed flow cannot be revoked; another app cannot see it; seals do not scan
    let (st, v) = s.json("POST", &format!("/api/v1/sign-flows/{id}/revoke"), Some(&his), r#"{"reason":"开错患者"}"#);
    assert_eq!(st, 409, "{v}");
    assert_envelope(&v, "conflict");
    let (_, v) = s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"EMR","scopes":["sign"]}"#);
    let emr = v["token"].as_str().unwrap().to_string();
    assert_eq!(s.req("GET", &format!("/api/v1/sign-flows/{id}"), Some(&emr), None, b"").0, 404);
    for bad in [
        serde_json::json!({"kind": "data", "title": "t", "content": "x", "signers": [{"employee_no": "1002"}]}),
        serde_json::json!({"kind": "data", "title": "t", "content": "x", "signers": [{"seal": "hospital", "mode": "scan"}]}),
        serde_json::json!({"kind": "data", "title": "t", "content": "x", "signers": [{"employee_no": "1001", "mode": "scan"}], "ticket_ttl_seconds": 9999}),
        serde_json::json!({"kind": "file", "title": "t", "content": "x", "signers": [{"seal": "hospital"}]}),
        serde_json::json!({"kind": "data", "title": "t", "signers": [{"seal": "hospital"}]}),
        serde_json::json!({"kind": "data", "title": "t", "content": "x", "signers": [{"seal": "NOPE"}]}),
        serde_json::json!({"kind": "data", "title": "t", "content": "x", "signers": [{"seal": "hospital"}], "extra": 1}),
    ] {
        let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(&his), &bad.to_string());
        assert_eq!(st, 400, "{bad}: {v}");
        assert_envelope(&v, "invalid_request");
    }
    assert_eq!(s.req("GET", &format!("/api/v1/sign-flows/{id}/file"), Some(&his), None, b"").0, 400);
    assert_eq!(s.req("GET", "/api/v1/sign-flows/sf_nope", Some(&his), None, b"").0, 404);
    let (st, f) = s.json("GET", &format!("/api/v1/sign-flows/{id}"), Some(&his), "");
    assert_eq!((st, f["signers"][1]["ref"].as_str()), (200, Some("hospital")), "{f}");

    // the webhook arrives, signed with the HIS app's key
    let (head, body) = hooks.recv_timeout(std::time::Duration::from_secs(15)).expect("webhook within 15 s");
    let ev: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((ev["event"].as_str(), ev["flow_id"].as_str()), (Some("flow.completed"), Some(id.as_str())), "{ev}");
    let key = medsign_directory::apps::hmac_key(his.split_once('.').unwrap().1);
    let ts = header(&head, "x-medsign-timestamp");
    assert_eq!(
        header(&head, "x-medsign-signature"),
        medsign_signing::flows::webhook_signature(&key, ts, &body),
        "{head}"
    );
    // the receiver answers before the server records the delivery: poll the log briefly
    let mut log = serde_json::Value::Null;
    for _ in 0..50 {
        log = s.req("GET", &format!("/admin/v1/webhooks?flow_id={id}"), Some(&admin), None, b"").2;
        if log[0]["state"] == "delivered" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(log[0]["state"], "delivered", "{log}");

    // custody ends: auto flows for that doctor are refused
    assert_eq!(s.req("DELETE", "/admin/v1/users/1001/custody", Some(&admin), None, b"").0, 204);
    let flow = serde_json::json!({"kind": "data", "title": "t", "content": "x", "signers": [{"employee_no": "1001"}]});
    assert_eq!(s.json("POST", "/api/v1/sign-flows", Some(&his), &flow.to_string()).0, 400);
    assert_eq!(s.stop(), 0);
}

/// PDF flows: a doctor and the hospital seal sign a prescription PDF (RSA for PDF readers, SM2
/// for Chinese verifiers); pyHanko and pdfsig judge the RSA one, the independent SM2 checker the
/// SM2 one over its ByteRange; `POST /api/v1/verify/file` catches a changed byte and an unsigned
/// update.
#[test]
fn file_flows_judged_by_pyhanko_pdfsig_and_gmssl() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "ntp", None, false);
    let s = Server::start(&d, &[("MEDSIGN_TIME_SOURCES", &ntp.source()), ("MEDSIGN_TIME_POLL_SECONDS", "1")]);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let (_, v) =
        s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"HIS","scopes":["sign","verify","users:write"]}"#);
    let his = v["token"].as_str().unwrap().to_string();
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), r#"{"employee_no":"1001","name":"张三"}"#).0, 201);
    for alg in ["sm2", "rsa"] {
        let (st, v) = s.json(
            "POST",
            "/admin/v1/users/1001/custody",
            Some(&admin),
            &format!(r#"{{"reason":"处方托管签名","alg":"{alg}"}}"#),
        );
        assert_eq!(st, 201, "{v}");
        let (_, _, chain) = s.raw("GET", &format!("/pki/{alg}/ca.pem"), None, None, b"");
        d.write(&format!("{alg}-chain.pem"), &chain);
    }
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let pdf = medsign_pdf::blank_pdf(595, 842);
    let flow = |alg: &str| {
        serde_json::json!({"kind": "file", "title": "门诊处方笺 No.2026-000123", "alg": alg, "content_base64": b64(&pdf),
            "signers": [{"employee_no": "1001", "placement": {"page": 1, "rect": [330, 60, 560, 130]}},
                        {"seal": "hospital", "placement": {"page": 1, "rect": [40, 60, 200, 130]}}]})
        .to_string()
    };
    let signed = |alg: &str| {
        let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &flow(alg));
        assert_eq!((st, f["state"].as_str(), f["kind"].as_str()), (201, Some("completed"), Some("file")), "{f}");
        let (st, h, bytes) =
            s.raw("GET", &format!("/api/v1/sign-flows/{}/file", f["id"].as_str().unwrap()), Some(&his), None, b"");
        assert!(st == 200 && h.contains("application/pdf"), "{h} {}", String::from_utf8_lossy(&bytes));
        bytes
    };
    let rsa_pdf = signed("rsa");
    d.write("rsa.pdf", &rsa_pdf);
    let (_, out) = d.pyhanko_validate("rsa-chain.pem", "rsa.pdf");
    let lines: Vec<&str> =
        out.lines().filter(|l| l.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>")).collect();
    assert_eq!(lines.len(), 2, "pyHanko: {out}");
    let (valid, trusted, out) = d.pdfsig("rsa-chain.pem", "rsa.pdf");
    assert_eq!((valid, trusted), (2, 2), "{out}");
    // issue #15: trusting only the root and requiring revocation information for every other
    // certificate — the doctor's, the seal's, the TSA's and the issuing CA's (the root's CRL) —
    // pyHanko fetches it from medsign's CRL and OCSP links and still trusts both signatures
    let chain = String::from_utf8(d.read("rsa-chain.pem")).unwrap();
    let end = "-----END CERTIFICATE-----";
    d.write("rsa-root.pem", &chain.as_bytes()[..chain.find(end).unwrap() + end.len()]);
    let (_, out) = d.pyhanko_validate_with("rsa-root.pem", "rsa.pdf", &["--force-revinfo"]);
    let lines: Vec<&str> =
        out.lines().filter(|l| l.contains(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>")).collect();
    assert_eq!(lines.len(), 2, "pyHanko --force-revinfo: {out}");

    // certified by the doctor (DocMDP P=2), sealed invisibly after: pyHanko sees no illegal change
    let certified = serde_json::json!({"kind": "file", "title": "检验报告单", "alg": "rsa", "content_base64": b64(&pdf), "certify": 2,
        "signers": [{"employee_no": "1001", "placement": {"page": 1, "rect": [330, 60, 560, 130]}}, {"seal": "hospital"}]});
    let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &certified.to_string());
    assert_eq!(st, 201, "{f}");
    let (_, _, cert_pdf) =
        s.raw("GET", &format!("/api/v1/sign-flows/{}/file", f["id"].as_str().unwrap()), Some(&his), None, b"");
    d.write("certified.pdf", &cert_pdf);
    let (ok, out) = d.pyhanko_validate("rsa-chain.pem", "certified.pdf");
    assert!(ok && !out.contains("ILLEGAL") && out.matches(":INTACT:TRUSTED").count() == 2, "{out}");
    let visible_after = serde_json::json!({"kind": "file", "title": "t", "alg": "rsa", "content_base64": b64(&pdf), "certify": 2,
        "signers": [{"employee_no": "1001"}, {"seal": "hospital", "placement": {"page": 1, "rect": [40, 60, 200, 130]}}]});
    assert_eq!(s.json("POST", "/api/v1/sign-flows", Some(&his), &visible_after.to_string()).0, 400);

    // SM2: our verifier and the independent checker over each ByteRange
    let sm2_pdf = signed("sm2");
    let (st, r) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&sm2_pdf)}).to_string());
    assert_eq!((st, r["indication"].as_str()), (200, Some("TOTAL_PASSED")), "{r}");
    assert_eq!(r["signatures"].as_array().unwrap().len(), 2);
    for (i, sig) in medsign_pdf::signatures(&sm2_pdf).unwrap().iter().enumerate() {
        d.write(&format!("sig{i}.p7s"), &sig.cms);
        d.write(&format!("range{i}.bin"), &sig.covered);
        let o = d.sm2_check(&[
            "cms",
            &d.p(&format!("sig{i}.p7s")),
            "--content",
            &d.p(&format!("range{i}.bin")),
            "--ca",
            &d.p("sm2-chain.pem"),
        ]);
        assert_ok(&o, "independent SM2 checker over the PDF ByteRange");
    }
    let (_, r) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&rsa_pdf)}).to_string());
    assert_eq!(r["indication"], "TOTAL_PASSED", "{r}");

    // offline, `medsign verify` with the server's CA bundle and CRL gives the same verdict; without
    // the CRL the revocation is not known (INDETERMINATE, exit 1); a changed file fails (exit 1)
    let (_, _, ca) = s.raw("GET", "/pki/ca.pem", None, None, b"");
    let (_, _, crl) = s.raw("GET", "/pki/crl", None, None, b"");
    d.write("ca.pem", &ca);
    d.write("sm2.crl", &crl);
    d.write("sm2.pdf", &sm2_pdf);
    let j: serde_json::Value =
        serde_json::from_str(&d.ok(&["verify", "sm2.pdf", "--trust", "ca.pem", "--crl", "sm2.crl", "--json"])).unwrap();
    assert_eq!(j["indication"], "TOTAL_PASSED", "{j}");
    assert_eq!(j["signatures"].as_array().unwrap().len(), 2);
    let text_report = d.ok(&["verify", "sm2.pdf", "--trust", "ca.pem", "--crl", "sm2.crl"]);
    assert!(
        text_report.contains("验证结果 / Result: 有效 / TOTAL_PASSED") && text_report.contains("覆盖范围 / Covers"),
        "{text_report}"
    );
    let o = d.medsign(&["verify", "sm2.pdf", "--trust", "ca.pem", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("TRY_LATER"), "{}", text(&o.stdout));

    // a changed byte in the signed area; an unsigned update appended after the signatures
    let mut changed = sm2_pdf.clone();
    changed[pdf.len() - 30] ^= 1;
    d.write("changed.pdf", &changed);
    let o = d.medsign(&["verify", "changed.pdf", "--trust", "ca.pem", "--crl", "sm2.crl"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("TOTAL_FAILED"), "{}", text(&o.stdout));
    d.write("not.pdf", b"%PDF-1.7\nnothing");
    assert_eq!(d.medsign(&["verify", "not.pdf", "--trust", "ca.pem"]).status.code(), Some(2));
    let (_, r) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&changed)}).to_string());
    assert_eq!(r["indication"], "TOTAL_FAILED", "{r}");
    let mut forged = sm2_pdf.clone();
    let prev = String::from_utf8_lossy(&sm2_pdf)
        .rsplit("startxref")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let obj = "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>\nendobj\n";
    let xref_at = sm2_pdf.len() + obj.len();
    forged.extend_from_slice(obj.as_bytes());
    forged.extend_from_slice(
        format!("xref\n3 1\n{:010} 00000 n \ntrailer\n<< /Size 40 /Root 1 0 R /Prev {prev} >>\nstartxref\n{xref_at}\n%%EOF\n", sm2_pdf.len()).as_bytes(),
    );
    let (st, r) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&forged)}).to_string());
    assert_eq!((st, r["indication"].as_str()), (200, Some("TOTAL_FAILED")), "{r}");
    // the update took the signature widgets off the page: named, with object and page
    assert_eq!(r["signatures"][0]["sub_indication"], "FORMAT_FAILURE", "{r}");
    assert!(r["signatures"][0]["reason"].as_str().unwrap().contains("changed after signing"), "{r}");
    assert!(
        r["signatures"][0]["changes"].as_array().unwrap().iter().any(|c| c["allowed"] == false && c["page"] == 1),
        "{r}"
    );

    // bad input: not a PDF, off the page, no signatures to verify
    let bad = serde_json::json!({"kind": "file", "title": "t", "content_base64": b64(b"hello"), "signers": [{"seal": "hospital"}]});
    let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(&his), &bad.to_string());
    assert!(st == 400 && v["message"].as_str().unwrap().contains("not a PDF"), "{v}");
    let off = serde_json::json!({"kind": "file", "title": "t", "content_base64": b64(&pdf), "signers": [{"seal": "hospital", "placement": {"page": 1, "rect": [500, 60, 700, 130]}}]});
    let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(&his), &off.to_string());
    assert!(st == 400 && v["message"].as_str().unwrap().contains("not inside page"), "{v}");
    let (st, v) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&pdf)}).to_string());
    assert!(st == 400 && v["message"].as_str().unwrap().contains("no signatures"), "{v}");
    assert_eq!(s.stop(), 0);
}

/// Batch sealing (R1): 1,000 lab reports in one call, the server killed with SIGKILL half-way and
/// restarted: every item ends signed exactly once (one completed flow per item in the database).
#[test]
fn batch_of_1000_survives_kill_9() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "ntp", None, false);
    let env = [
        ("MEDSIGN_TIME_SOURCES", ntp.source()),
        ("MEDSIGN_TIME_POLL_SECONDS", "1".to_string()),
        ("MEDSIGN_SIGN_BATCH_RECLAIM_SECONDS", "2".to_string()),
    ];
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = Server::start(&d, &env_ref);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let (_, v) = s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"LIS","scopes":["sign"]}"#);
    let lis = v["token"].as_str().unwrap().to_string();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let pdf = b64(&medsign_pdf::blank_pdf(595, 842));
    let items: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            serde_json::json!({"kind": "file", "title": format!("检验报告单 No.{i}"), "alg": "rsa", "content_base64": pdf,
                "signers": [{"seal": "hospital", "placement": {"page": 1, "rect": [40, 60, 200, 130]}}]})
        })
        .collect();
    assert_eq!(s.json("POST", "/api/v1/batches", Some(&lis), r#"{"items":[]}"#).0, 400);
    let bad = serde_json::json!({"items": [{"kind": "data"}]});
    assert_eq!(s.json("POST", "/api/v1/batches", Some(&lis), &bad.to_string()).0, 400);
    let start = std::time::Instant::now();
    let (st, b) = s.json("POST", "/api/v1/batches", Some(&lis), &serde_json::json!({"items": items}).to_string());
    assert_eq!((st, b["total"].as_i64()), (202, Some(1000)), "{b}");
    let id = b["id"].as_str().unwrap().to_string();
    let progress = |s: &Server| s.req("GET", &format!("/api/v1/batches/{id}"), Some(&lis), None, b"").2;
    // kill -9 once some are done
    let mut seen = 0;
    for _ in 0..400 {
        seen = progress(&s)["done"].as_i64().unwrap();
        if seen >= 50 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(seen >= 50, "the batch did not start");
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    drop(s);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = Server::start(&d, &env_ref);
    wait_clock(&s, "INSYNC");
    let mut last = serde_json::Value::Null;
    for _ in 0..600 {
        last = progress(&s);
        if last["state"] == "completed" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("1,000 PDFs sealed in {:.1} s including a kill -9 and a restart", start.elapsed().as_secs_f64());
    assert_eq!(
        (last["state"].as_str(), last["done"].as_i64(), last["failed"].as_i64()),
        (Some("completed"), Some(1000), Some(0)),
        "killed at {seen}"
    );
    // exactly one completed flow per item
    let check = format!(
        "import sqlite3, collections; c = sqlite3.connect('{}'); rows = c.execute(\"SELECT request_key FROM sign_flows WHERE state = 'completed' AND request_key LIKE 'batch:{id}:%'\").fetchall(); n = collections.Counter(r[0].split(':')[2] for r in rows); print(len(n), max(n.values()))",
        d.p("data/medsign.db")
    );
    let o = d.run("python3", &["-c", &check]);
    assert_eq!(
        text(&o.stdout).trim(),
        "1000 1",
        "items signed, most completed flows for one item: {}",
        text(&o.stderr)
    );
    let (_, _, f) = s.req(
        "GET",
        &format!("/api/v1/sign-flows/{}", last["items"][999]["flow_id"].as_str().unwrap()),
        Some(&lis),
        None,
        b"",
    );
    assert_eq!(f["state"], "completed", "{f}");
    assert_eq!(s.stop(), 0);
}
