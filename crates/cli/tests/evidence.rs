//! Issue #16 § 5, the evidence report (R1.3), through the real `medsign serve`: a doctor (real-name
//! checked by the demo provider, PIN on the phone) scans and co-signs a prescription rendered from
//! the template, the hospital seal follows; `GET …/evidence.pdf` gives the report. pyHanko
//! validates the report's own signature (RSA hospital seal, certification, timestamp); poppler
//! renders page 1 (`pdftoppm -r 60`) and `pdftotext` finds the verdict and the signed PDF's SM3 and
//! SHA-256 on it, and the flow's events (real-name check, PIN approval, scan, seal) further on.
//! `POST /api/v1/evidence` reports on an uploaded PDF; bad input and foreign flows get envelopes.
//! Set `EVIDENCE_REPORT_OUT` to a folder to keep the report and page 1 as PNG.

mod common;
use base64::Engine;
use common::*;
use medsign_crypto::twoparty::ClientKeyShare;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Bind a phone for `no`, pass the (demo) real-name check, enrol a two-party key, set the PIN.
fn enrol(s: &Server, his: &str, no: &str) -> (String, ClientKeyShare) {
    let phone = s.endpoint();
    let token = phone_bind(s, &phone, his, no);
    let (st, started) = s.json("POST", "/mobile/v1/realname", Some(&token), "");
    assert_eq!(st, 201, "{started}");
    let (st, out) =
        s.json("POST", &format!("/mobile/v1/realname/{}", started["check_id"].as_str().unwrap()), Some(&token), "");
    assert_eq!(st, 200, "{out}");
    let share = phone_keys(&phone, &token);
    (token, share)
}

#[test]
fn the_evidence_report_of_a_scan_signed_prescription_is_readable_and_sealed() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "ntp", None, false);
    let mut env = vec![
        ("MEDSIGN_TIME_SOURCES".to_string(), ntp.source()),
        ("MEDSIGN_TIME_POLL_SECONDS".to_string(), "1".to_string()),
        ("MEDSIGN_REALNAME_PROVIDER".to_string(), "dev".to_string()),
    ];
    env.extend(postgres_env(&d, "evidence"));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start(&d, &env_ref);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let scopes = r#"{"name":"HIS","scopes":["sign","verify","users:read","users:write","certs"]}"#;
    let his = s.json("POST", "/admin/v1/apps", Some(&admin), scopes).1["token"].as_str().unwrap().to_string();
    let other = s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"LIS","scopes":["sign"]}"#).1["token"]
        .as_str()
        .unwrap()
        .to_string();
    let user = r#"{"employee_no":"1001","name":"张三","title":"主治医师","id_card":"11010519491231002X"}"#;
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), user).0, 201);
    let (me, share) = enrol(&s, &his, "1001");
    let (_, _, chain) = s.raw("GET", "/pki/rsa/ca.pem", None, None, b"");
    d.write("rsa-chain.pem", &chain);

    // the prescription: the doctor scans and co-signs on the phone, then the hospital seal
    let data = serde_json::json!({
        "hospital": "某县人民医院", "category": "普通", "fee_type": "医保", "department": "内科",
        "outpatient_no": "MZ20261127009", "patient_name": "王小明", "gender": "男", "age": "45岁",
        "diagnosis": "上呼吸道感染", "amount": "¥56.80",
        "items": [{"drug": "阿莫西林胶囊 0.25g×24粒", "dosage": "0.5g", "usage": "口服 每日三次", "quantity": "2盒"}]
    });
    let flow = serde_json::json!({"kind": "file", "title": "门诊处方笺 MZ20261127009", "certify": 2,
        "template_id": "outpatient-prescription", "data": data,
        "signers": [{"employee_no": "1001", "mode": "scan", "field": "doctor"}, {"seal": "hospital", "field": "hospital_seal"}]});
    let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &flow.to_string());
    assert_eq!((st, f["state"].as_str()), (201, Some("signing")), "{f}");
    let id = f["id"].as_str().unwrap().to_string();
    let evidence = format!("/api/v1/sign-flows/{id}/evidence.pdf");
    // not completed yet: 409 with the envelope
    let (st, _, v) = s.req("GET", &evidence, Some(&his), None, b"");
    assert_eq!(st, 409, "{v}");
    assert_envelope(&v, "conflict");
    let ticket = f["ticket"]["deep_link"].as_str().unwrap().rsplit("t=").next().unwrap().to_string();
    let target = serde_json::json!({"targets": [{"ticket": ticket}]}).to_string();
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds", Some(&me), &target);
    assert_eq!(st, 201, "{v}");
    let out = co_sign(&s.endpoint(), &me, &share, std::slice::from_ref(&v["rounds"][0]));
    assert_eq!(out["results"][0]["state"], "completed", "{out}");
    let (_, _, signed) = s.raw("GET", &format!("/api/v1/sign-flows/{id}/file"), Some(&his), None, b"");
    let doc_sm3 = hex::encode(medsign_crypto::hash::sm3(&signed));
    let doc_sha256 = hex::encode(medsign_crypto::hash::sha256(&signed));

    // the report
    let (st, headers, report) = s.raw("GET", &evidence, Some(&his), None, b"");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&report));
    let h = headers.to_ascii_lowercase();
    assert!(h.contains("application/pdf") && h.contains("x-medsign-indication: total_passed"), "{headers}");
    assert!(h.contains("-evidence.pdf"), "{headers}");
    d.write("evidence.pdf", &report);

    // its own signature: pyHanko trusts it (RSA hospital seal, certified, timestamped)
    let (ok, out) = d.pyhanko_validate("rsa-chain.pem", "evidence.pdf");
    assert!(ok && out.contains("INTACT:TRUSTED") && out.contains("TIMESTAMP_TOKEN<INTACT:TRUSTED>"), "pyHanko: {out}");
    assert!(!out.contains("ILLEGAL"), "{out}");
    // and medsign's own verifier
    let (_, r) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&report)}).to_string());
    assert_eq!(r["indication"], "TOTAL_PASSED", "{r}");

    // page 1 as a picture, and its text: the verdict and the signed PDF's hashes
    assert_ok(
        &d.run(
            "pdftoppm",
            &["-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", &d.p("evidence.pdf"), &d.p("p1")],
        ),
        "pdftoppm",
    );
    let page = image::load_from_memory(&d.read("p1.png")).unwrap().to_rgb8();
    assert!(page.width() > 400 && page.height() > 600, "{}x{}", page.width(), page.height());
    let green = page.pixels().filter(|p| p.0[1] > 100 && p.0[0] < 60 && p.0[2] < 100).count();
    let dark = page.pixels().filter(|p| p.0.iter().all(|c| *c < 90)).count();
    assert!(green > 2000, "the green verdict band: {green} pixels");
    assert!(dark > 2000, "text and the QR code: {dark} dark pixels");
    let o = d.run("pdftotext", &["-f", "1", "-l", "1", "-enc", "UTF-8", &d.p("evidence.pdf"), "-"]);
    assert_ok(&o, "pdftotext page 1");
    let p1 = text(&o.stdout);
    for want in
        ["电子签名验证报告", "验证结论：有效", "TOTAL_PASSED", &doc_sm3, &doc_sha256, "门诊处方笺 MZ20261127009"]
    {
        assert!(p1.contains(want), "page 1 lacks {want}:\n{p1}");
    }
    let o = d.run("pdftotext", &["-enc", "UTF-8", &d.p("evidence.pdf"), "-"]);
    let all = text(&o.stdout);
    for want in [
        "实名认证 / real-name check",
        "PIN 验证（批准）",
        "扫码 / ticket scanned",
        "签署 / signed",
        "加盖电子印章",
        "审计链证明",
        "通过：从第 1 条到第",
        "签名 2 / Signature 2 of 2",
    ] {
        assert!(all.contains(want), "the report lacks {want}:\n{all}");
    }
    if let Ok(dir) = std::env::var("EVIDENCE_REPORT_OUT") {
        std::fs::write(format!("{dir}/evidence.pdf"), &report).unwrap();
        std::fs::write(format!("{dir}/evidence-p1.png"), d.read("p1.png")).unwrap();
    }

    // another app's flow, an unknown flow: 404 with the envelope
    for (tok, path) in [(&other, evidence.as_str()), (&his, "/api/v1/sign-flows/sf_nope/evidence.pdf")] {
        let (st, _, v) = s.req("GET", path, Some(tok), None, b"");
        assert_eq!(st, 404, "{v}");
        assert_envelope(&v, "not_found");
    }

    // POST /api/v1/evidence: an uploaded signed PDF; bad input is a 400 envelope
    let body = serde_json::json!({"file": b64(&signed), "name": "处方 MZ20261127009"}).to_string();
    let (st, h, up) = s.raw("POST", "/api/v1/evidence", Some(&his), Some("application/json"), body.as_bytes());
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&up));
    assert!(h.to_ascii_lowercase().contains("application/pdf") && up.starts_with(b"%PDF-"), "{h}");
    for bad in [
        serde_json::json!({"file": "%%%"}),
        serde_json::json!({"file": b64(b"hello")}),
        serde_json::json!({"file": b64(&signed), "data": b64(b"x")}),
        serde_json::json!({"file": b64(&signed), "extra": 1}),
    ] {
        let (st, v) = s.json("POST", "/api/v1/evidence", Some(&his), &bad.to_string());
        assert_eq!(st, 400, "{bad}: {v}");
        assert_envelope(&v, "invalid_request");
    }
    let (st, v) = s.json("POST", "/api/v1/evidence", None, &serde_json::json!({"file": b64(&signed)}).to_string());
    assert_eq!(st, 401, "{v}");
    // both reports were audited
    let (_, log) = s.json("GET", "/admin/v1/audit?action=evidence.report", Some(&admin), "");
    assert_eq!(log["total"], 2, "{log}");
    assert_eq!(s.stop(), 0);
}
