//! Issue #7: a doctor's phone co-signs through the real `medsign serve` over HTTP (on PostgreSQL
//! when the test server is there, as in CI). The phone's half of two-party SM2 runs natively here
//! (`medsign_crypto::twoparty`, the code the WebAssembly build wraps; node:test runs the wasm).
//! A HIS binds the phone, the phone enrols a split key; a prescription rendered from the template
//! waits for the doctor's scan; the phone redeems the QR ticket, sees the summary, co-signs; the
//! hospital seal follows automatically; the download verifies in medsign and, per ByteRange, in
//! the independent SM2 checker; `pdftoppm` shows the handwriting (drawn on the phone) in the
//! doctor's box. Then a pending list of 20 data documents is signed in one batch, bad input gets
//! precise 4xx, and the phone unbinds itself (certificate revoked).

mod common;
use base64::Engine;
use common::*;
use medsign_crypto::twoparty::ClientKeyGen;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// What the doctor approves before a drawn signature is stored: `handwriting|<SM3 of the PNG>`.
fn handwriting_digest(png: &[u8]) -> String {
    let sm3 = hex::encode(medsign_crypto::hash::sm3(png));
    medsign_phone::approvals::digest(medsign_phone::approvals::Purpose::Handwriting, &sm3)
}

#[test]
fn a_doctor_scans_and_co_signs_a_prescription_then_a_batch() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "ntp", None, false);
    let mut env = vec![
        ("MEDSIGN_TIME_SOURCES".to_string(), ntp.source()),
        ("MEDSIGN_TIME_POLL_SECONDS".to_string(), "1".to_string()),
    ];
    env.extend(postgres_env(&d, "phone"));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start(&d, &env_ref);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let scopes = r#"{"name":"HIS","scopes":["sign","verify","users:read","users:write","certs"]}"#;
    let (_, v) = s.json("POST", "/admin/v1/apps", Some(&admin), scopes);
    let his = v["token"].as_str().unwrap().to_string();
    let users = r#"[{"employee_no":"1001","name":"张三","title":"主治医师"},{"employee_no":"1002","name":"李四"}]"#;
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), users).0, 201);
    let mut ink = image::RgbaImage::from_pixel(300, 100, image::Rgba([255, 255, 255, 255]));
    for x in 20..280 {
        for w in 0..6 {
            ink.put_pixel(x, 50 + ((x as f32 / 18.0).sin() * 25.0) as u32 + w, image::Rgba([10, 10, 40, 255]));
        }
    }
    let mut png = std::io::Cursor::new(Vec::new());
    ink.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let (me, share) = phone_enrol(&s, &s.endpoint(), &his, "1001");
    let (other, _) = phone_enrol(&s, &s.endpoint(), &his, "1002");
    // the doctor draws the signature on the phone's pad (a transparent PNG); blank is refused
    let body = serde_json::json!({"image_base64": b64(png.get_ref())}).to_string();
    // the session alone cannot set it: the doctor approves this very image with the PIN
    let (st, v) = s.json("POST", "/mobile/v1/handwriting", Some(&me), &body);
    assert_eq!(st, 403, "{v}");
    approve(&s.endpoint(), &me, &handwriting_digest(png.get_ref()));
    let (st, v) = s.json("POST", "/mobile/v1/handwriting", Some(&me), &body);
    assert_eq!((st, v["owner"].as_str()), (201, Some("user:1001")), "{v}");
    let mut blank = std::io::Cursor::new(Vec::new());
    image::RgbaImage::from_pixel(50, 20, image::Rgba([0, 0, 0, 0]))
        .write_to(&mut blank, image::ImageFormat::Png)
        .unwrap();
    let body = serde_json::json!({"image_base64": b64(blank.get_ref())}).to_string();
    approve(&s.endpoint(), &me, &handwriting_digest(blank.get_ref()));
    let (st, v) = s.json("POST", "/mobile/v1/handwriting", Some(&me), &body);
    assert_eq!(st, 400, "{v}");
    let (_, _, chain) = s.raw("GET", "/pki/sm2/ca.pem", None, None, b"");
    d.write("sm2-chain.pem", &chain);

    // the HIS: a prescription from the template, the doctor signs by scanning, then the seal
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
    let link = f["ticket"]["deep_link"].as_str().unwrap();
    let ticket = link.rsplit("t=").next().unwrap().to_string();

    // another doctor scanning it: 403 with the envelope; the ticket still works for the right one
    let target = serde_json::json!({"targets": [{"ticket": ticket}]}).to_string();
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds", Some(&other), &target);
    assert_eq!(st, 403, "{v}");
    assert_envelope(&v, "forbidden");
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds", Some(&me), &target);
    assert_eq!(st, 201, "{v}");
    let round = v["rounds"][0].clone();
    let sum = &round["summary"];
    assert_eq!((sum["title"].as_str(), sum["pages"].as_u64()), (Some("门诊处方笺 MZ20261127009"), Some(1)), "{sum}");
    assert_eq!(sum["template_id"], "outpatient-prescription");
    assert!(sum.get("content_base64").is_none(), "the phone never gets the document");
    // the ticket is one-time
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds", Some(&me), &target);
    assert_eq!(st, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("already used"), "{v}");
    // a tampered message (for another e) is refused; then the real co-signature
    let (_sess, wrong) = share.begin_sign(&[9u8; 32]).unwrap();
    let body = serde_json::json!({"answers": [{"round_id": round["round_id"], "request": wrong}]}).to_string();
    // a stolen device session token alone answers nothing (issue #15)
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds/answers", Some(&me), &body);
    assert_eq!(st, 403, "{v}");
    assert_envelope(&v, "approval_required");
    approve(&s.endpoint(), &me, &rounds_digest(std::slice::from_ref(&round)));
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds/answers", Some(&me), &body);
    assert_eq!(st, 400, "{v}");
    assert_envelope(&v, "invalid_request");
    let out = co_sign(&s.endpoint(), &me, &share, std::slice::from_ref(&round));
    assert_eq!(out["results"][0]["state"], "completed", "{out}");
    let (_, polled) = s.json("GET", &format!("/api/v1/sign-flows/{id}"), Some(&his), "");
    assert_eq!(
        (polled["signers"][0]["custody"].as_str(), polled["signers"][1]["custody"].as_str()),
        (Some("two-party"), Some("server")),
        "{polled}"
    );
    assert!(
        polled["signers"].as_array().unwrap().iter().all(|s| s["state"] == "signed" && s["timestamp_at"].is_string())
    );

    // the download: medsign's verifier, the independent SM2 checker per ByteRange, the page image
    let (st, _, signed) = s.raw("GET", &format!("/api/v1/sign-flows/{id}/file"), Some(&his), None, b"");
    assert_eq!(st, 200);
    d.write("rx.pdf", &signed);
    let (_, r) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&signed)}).to_string());
    assert_eq!(r["indication"], "TOTAL_PASSED", "{r}");
    let found = medsign_pdf::signatures(&signed).unwrap();
    assert_eq!(found.len(), 2);
    for (i, sig) in found.iter().enumerate() {
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
    // poppler's pdfsig cannot compute SM3, but reads the structure independently: the doctor's field
    // and the seal's are signed (PAdES, CAdES-detached), the last signature covers the whole file
    let o = d.run("pdfsig", &[&d.p("rx.pdf")]);
    let sig = text(&o.stdout);
    for want in [
        "Signature Field Name: doctor",
        "Signer Certificate Common Name: 张三",
        "Signature Field Name: hospital_seal",
        "Signature Type: ETSI.CAdES.detached",
        "Total document signed",
    ] {
        assert!(sig.contains(want), "pdfsig: {want} missing in {sig}");
    }
    assert_eq!(sig.matches("Signature Type: ETSI.CAdES.detached").count(), 2, "{sig}");
    assert_ok(&d.run("pdftoppm", &["-r", "72", "-png", "-singlefile", &d.p("rx.pdf"), &d.p("page")]), "pdftoppm");
    let page = image::load_from_memory(&d.read("page.png")).unwrap().to_rgb8();
    let dark = (595 - 130..595 - 85)
        .flat_map(|y| (48..200).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = page.get_pixel(x, y).0;
            p[0] < 100 && p[1] < 100 && p[2] < 140
        })
        .count();
    assert!(dark > 50, "doctor box ink pixels: {dark}");

    // a pending list of 20 data documents signed in one batch (one unlock, three requests)
    let mut ids = Vec::new();
    for i in 0..20 {
        let flow = serde_json::json!({"kind": "data", "title": format!("检验报告 LIS{i:04}"), "content": format!("WBC 6.{i} ×10^9/L"),
            "signers": [{"employee_no": "1001", "mode": "scan"}]});
        let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &flow.to_string());
        assert_eq!(st, 201, "{f}");
        ids.push(f["id"].as_str().unwrap().to_string());
    }
    let (st, list) = s.json("GET", "/mobile/v1/pending", Some(&me), "");
    assert_eq!(st, 200);
    let mut listed: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|i| i["flow_id"].as_str().unwrap()).collect();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    listed.sort();
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(s.json("GET", "/mobile/v1/pending", Some(&other), "").1["items"].as_array().unwrap().len(), 0);
    let targets: Vec<serde_json::Value> = ids.iter().map(|i| serde_json::json!({"flow_id": i})).collect();
    let (st, v) =
        s.json("POST", "/mobile/v1/sign-rounds", Some(&me), &serde_json::json!({"targets": targets}).to_string());
    assert_eq!(st, 201, "{v}");
    let rounds = v["rounds"].as_array().unwrap().clone();
    let out = co_sign(&s.endpoint(), &me, &share, &rounds);
    assert!(out["results"].as_array().unwrap().iter().all(|r| r["state"] == "completed"), "{out}");
    let (st, v) = s.json("GET", "/mobile/v1/pending", Some(&me), "");
    assert_eq!((st, v["items"].as_array().unwrap().len()), (200, 0));
    let (_, _, p7s) = s.raw("GET", &format!("/api/v1/sign-flows/{}/file?signature=p7s", ids[7]), Some(&his), None, b"");
    d.write("lab7.p7s", &p7s);
    d.write("lab7.txt", "WBC 6.7 ×10^9/L".as_bytes());
    assert_ok(
        &d.sm2_check(&["cms", &d.p("lab7.p7s"), "--content", &d.p("lab7.txt"), "--ca", &d.p("sm2-chain.pem")]),
        "batch signature",
    );

    // bad input: no session, unknown round, a signature for another round, empty and oversized batches
    assert_eq!(s.json("GET", "/mobile/v1/pending", Some("mt_forged"), "").0, 401);
    let body = r#"{"answers":[{"round_id":"sr_nope","request":{"version":1,"e":"00","q1":"02"}}]}"#;
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds/answers", Some(&me), body);
    assert_eq!(st, 404, "{v}");
    assert_envelope(&v, "not_found");
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds", Some(&me), r#"{"targets":[]}"#);
    assert_eq!(st, 400, "{v}");
    let many: Vec<serde_json::Value> = (0..201).map(|_| serde_json::json!({"flow_id": "sf_x"})).collect();
    let (st, _) =
        s.json("POST", "/mobile/v1/sign-rounds", Some(&me), &serde_json::json!({"targets": many}).to_string());
    assert_eq!(st, 400);
    let (st, v) =
        s.json("POST", "/mobile/v1/sign-rounds", Some(&me), r#"{"targets":[{"ticket":"tk_x","flow_id":"sf_x"}]}"#);
    assert_eq!(st, 400, "{v}");
    let (st, v) = s.json("POST", "/mobile/v1/sign-rounds", Some(&me), r#"{"targets":[{"flow_id":"sf_x"}],"x":1}"#);
    assert_eq!(st, 400, "{v}");
    // online renewal: a new certificate for the same key; signing goes on with it
    let (st, v) = s.json("POST", "/mobile/v1/certificate/renew", Some(&me), "");
    assert_eq!(st, 403, "a session token alone renews nothing: {v}");
    let serial = round["cert_serial"].as_str().unwrap();
    approve(&s.endpoint(), &me, &medsign_phone::approvals::digest(medsign_phone::approvals::Purpose::Renew, serial));
    let (st, renewed) = s.json("POST", "/mobile/v1/certificate/renew", Some(&me), "");
    assert_eq!(st, 201, "{renewed}");
    let (_, old) =
        s.json("GET", &format!("/api/v1/certificates/{}", round["cert_serial"].as_str().unwrap()), Some(&his), "");
    assert_eq!((old["status"].as_str(), old["reason"].as_str()), (Some("revoked"), Some("superseded")), "{old}");
    let flow = serde_json::json!({"kind": "data", "title": "续期后 / after renewal", "content": "x", "signers": [{"employee_no": "1001", "mode": "scan"}]});
    let (_, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &flow.to_string());
    let target = serde_json::json!({"targets": [{"flow_id": f["id"]}]}).to_string();
    let (_, v) = s.json("POST", "/mobile/v1/sign-rounds", Some(&me), &target);
    assert_eq!(v["rounds"][0]["cert_serial"], renewed["serial"], "{v}");
    let out = co_sign(&s.endpoint(), &me, &share, v["rounds"].as_array().unwrap());
    assert_eq!(out["results"][0]["state"], "completed", "{out}");
    // the phone unbinds itself: its session ends and its certificate is revoked
    let cert_serial = renewed["serial"].as_str().unwrap().to_string();
    assert_eq!(s.req("DELETE", "/mobile/v1/device", Some(&me), None, b"").0, 204);
    assert_eq!(s.json("GET", "/mobile/v1/pending", Some(&me), "").0, 401);
    let (_, c) = s.json("GET", &format!("/api/v1/certificates/{cert_serial}"), Some(&his), "");
    assert_eq!(c["status"], "revoked", "{c}");
    // guessing activation codes from one address is slowed down: 429 with the envelope
    let guess = r#"{"employee_no":"1002","code":"AAAA-BBBB-CCCC","device_name":"x"}"#;
    let statuses: Vec<u16> = (0..12).map(|_| s.json("POST", "/mobile/v1/activate", None, guess).0).collect();
    assert!(statuses.contains(&401) && statuses.last() == Some(&429), "{statuses:?}");
    let (_, v) = s.json("POST", "/mobile/v1/activate", None, guess);
    assert_envelope(&v, "too_many_requests");
    // a scan signer needs SM2 (the two-party key)
    let rsa = serde_json::json!({"kind": "data", "title": "t", "content": "x", "alg": "rsa", "signers": [{"employee_no": "1001", "mode": "scan"}]});
    let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(&his), &rsa.to_string());
    assert!(st == 400 && v["message"].as_str().unwrap().contains("sm2"), "{v}");
    assert_eq!(s.stop(), 0);
}

/// The demo real-name provider (explicit configuration, announced at start): keys are certified only
/// after a real-name check, and its passes are marked `verified-demo`. (The WeChat provider is
/// tested against a local fake of WeChat's API in medsign-phone.)
#[test]
fn the_demo_realname_provider_gates_certificates_and_says_it_is_a_demo() {
    let d = Dir::new();
    let s = Server::start(&d, &[("MEDSIGN_REALNAME_PROVIDER", "dev"), ("MEDSIGN_TIME_SOURCES", "127.0.0.1:9")]);
    assert!(s.stderr_lines.iter().any(|l| l.contains("演示提供方 dev") && l.contains("DEMO")), "{:#?}", s.stderr_lines);
    let admin = s.token().unwrap();
    let (_, v) =
        s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"HIS","scopes":["users:read","users:write"]}"#);
    let his = v["token"].as_str().unwrap().to_string();
    let user = r#"{"employee_no":"1001","name":"张三","id_card":"11010519491231002X"}"#;
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), user).0, 201);
    let (_, code) = s.json("POST", "/api/v1/users/1001/activation-codes", Some(&his), "");
    let body = serde_json::json!({"employee_no": "1001", "code": code["code"], "device_name": "x"}).to_string();
    let token = s.json("POST", "/mobile/v1/activate", None, &body).1["token"].as_str().unwrap().to_string();
    let keygen = |token: &str| {
        let (_, start) = s.json("POST", "/mobile/v1/keys", Some(token), "");
        let (_, req) = ClientKeyGen::start(start["context"].as_str().unwrap().as_bytes()).unwrap();
        let path = format!("/mobile/v1/keys/{}", start["key_id"].as_str().unwrap());
        s.json("POST", &path, Some(token), &serde_json::json!({"request": req}).to_string())
    };
    let (st, v) = keygen(&token);
    assert_eq!(st, 409, "{v}");
    assert!(v["message"].as_str().unwrap().contains("real-name"), "{v}");
    let (st, started) = s.json("POST", "/mobile/v1/realname", Some(&token), "");
    assert_eq!((st, started["demo"].as_bool()), (201, Some(true)), "{started}");
    let (st, out) =
        s.json("POST", &format!("/mobile/v1/realname/{}", started["check_id"].as_str().unwrap()), Some(&token), "");
    assert_eq!((st, out["realname_status"].as_str()), (200, Some("verified-demo")), "{out}");
    assert_eq!(keygen(&token).0, 201);
    let (_, r) = s.json("GET", "/api/v1/users/1001/realname", Some(&his), "");
    assert_eq!((r["realname_status"].as_str(), r["provider"].as_str()), (Some("verified-demo"), Some("dev")), "{r}");
    assert_eq!(s.json("POST", "/mobile/v1/realname/rn_nope", Some(&token), "").0, 404);
    assert_eq!(s.stop(), 0);
    // an unknown provider stops the start with a clear message
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_medsign"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &d.p("bad")])
        .env("MEDSIGN_REALNAME_PROVIDER", "face++");
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("none, wechat or dev"), "{}", text(&o.stderr));
}

/// R7.4.2–R7.4.4 (issue #18): a hospital system asks a doctor's phone for the real-name check and
/// the handwritten signature; the phone lists what was asked, doing it completes the task (once,
/// for each asking app) and the HIS hears back by a signed webhook; the user query then shows the
/// real-name state, the certificate and the signature image. Bad requests get the envelope, and
/// another app cannot read the task.
#[test]
fn a_hospital_system_asks_the_phone_for_realname_and_handwriting() {
    let d = Dir::new();
    let s = Server::start(&d, &[("MEDSIGN_REALNAME_PROVIDER", "dev"), ("MEDSIGN_TIME_SOURCES", "127.0.0.1:9")]);
    let admin = s.token().unwrap();
    let app = |name: &str| {
        let body = serde_json::json!({"name": name, "scopes": ["users:read", "users:write"]}).to_string();
        s.json("POST", "/admin/v1/apps", Some(&admin), &body).1["token"].as_str().unwrap().to_string()
    };
    let (his, emr) = (app("HIS"), app("EMR"));
    let user = r#"{"employee_no":"1001","name":"张三","id_card":"11010519491231002X"}"#;
    assert_eq!(s.json("POST", "/api/v1/users", Some(&his), user).0, 201);
    let (hook, hooks) = receiver();
    let ask =
        |token: &str, what: &str, body: &str| s.json("POST", &format!("/api/v1/users/1001/{what}"), Some(token), body);

    // nothing yet: no certificate, no image
    let (_, u) = s.json("GET", "/api/v1/users/1001", Some(&his), "");
    assert!(u["certificate"].is_null() && u["signature_image"].is_null(), "{u}");
    // asking; asking again returns the same pending task
    let body = serde_json::json!({"callback_url": hook}).to_string();
    let (st, rn) = ask(&his, "realname", &body);
    assert_eq!((st, rn["state"].as_str(), rn["kind"].as_str()), (201, Some("pending"), Some("realname")), "{rn}");
    let (st, again) = ask(&his, "realname", "");
    assert_eq!((st, &again["task_id"]), (200, &rn["task_id"]), "{again}");
    let (st, hw) = ask(&his, "handwriting-requests", &body);
    assert_eq!(st, 201, "{hw}");
    let (st, other) = ask(&emr, "handwriting-requests", "");
    assert_eq!(st, 201, "{other}");
    for (what, bad, code) in [
        ("realname", r#"{"callback_url":"http://169.254.169.254/latest"}"#, 400),
        ("realname", r#"{"expires_in_minutes":0}"#, 400),
        ("realname", r#"{"nope":1}"#, 400),
        ("handwriting-requests", r#"{"expires_in_minutes":99999}"#, 400),
    ] {
        let (st, v) = ask(&his, what, bad);
        assert_eq!(st, code, "{bad}: {v}");
        assert_envelope(&v, "invalid_request");
    }
    assert_eq!(s.json("POST", "/api/v1/users/9999/realname", Some(&his), "").0, 404);
    let task = |token: &str, id: &serde_json::Value| {
        s.json("GET", &format!("/api/v1/user-tasks/{}", id.as_str().unwrap()), Some(token), "")
    };
    assert_eq!(task(&emr, &rn["task_id"]).0, 404, "another app's task is not there");

    // the doctor's phone lists what was asked
    let token = phone_bind(&s, &s.endpoint(), &his, "1001");
    let (st, list) = s.json("GET", "/mobile/v1/tasks", Some(&token), "");
    assert_eq!(st, 200, "{list}");
    let kinds: Vec<&str> = list["tasks"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["realname", "handwriting", "handwriting"], "{list}");
    assert_eq!(list["tasks"][0]["system"], "HIS");

    // the real-name check on the phone completes the HIS's task and calls it back, signed
    let (_, started) = s.json("POST", "/mobile/v1/realname", Some(&token), "");
    let (st, _) =
        s.json("POST", &format!("/mobile/v1/realname/{}", started["check_id"].as_str().unwrap()), Some(&token), "");
    assert_eq!(st, 200);
    let (head, body) = hooks.recv_timeout(std::time::Duration::from_secs(15)).expect("webhook within 15 s");
    let ev: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((ev["event"].as_str(), &ev["task_id"]), (Some("user_task.done"), &rn["task_id"]), "{ev}");
    assert_eq!(ev["result"]["realname_status"], "verified-demo", "{ev}");
    let key = medsign_directory::apps::hmac_key(his.split_once('.').unwrap().1);
    let ts = header(&head, "x-medsign-timestamp");
    assert_eq!(header(&head, "x-medsign-signature"), medsign_signing::flows::webhook_signature(&key, ts, &body));
    let (_, done) = task(&his, &rn["task_id"]);
    assert_eq!(done["state"], "done", "{done}");
    // the phone makes its key and sets its PIN (the real-name check came first)
    let _share = phone_keys(&s.endpoint(), &token);

    // a signature uploaded by the HIS is not the doctor drawing it: the tasks stay open
    let mut ink = image::RgbaImage::from_pixel(120, 40, image::Rgba([255, 255, 255, 255]));
    for x in 10..110 {
        ink.put_pixel(x, 20, image::Rgba([0, 0, 0, 255]));
    }
    let mut png = std::io::Cursor::new(Vec::new());
    ink.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let img = serde_json::json!({"image_base64": b64(png.get_ref())}).to_string();
    assert_eq!(s.json("POST", "/api/v1/users/1001/handwriting", Some(&his), &img).0, 201);
    assert_eq!(task(&his, &hw["task_id"]).1["state"], "pending");
    // drawn on the phone (and approved with the PIN): both apps' handwriting tasks are done, the
    // HIS is called back
    assert_eq!(
        s.json("POST", "/mobile/v1/handwriting", Some(&token), &img).0,
        403,
        "a session alone completes nothing"
    );
    approve(&s.endpoint(), &token, &handwriting_digest(png.get_ref()));
    assert_eq!(s.json("POST", "/mobile/v1/handwriting", Some(&token), &img).0, 201);
    let (_, body) = hooks.recv_timeout(std::time::Duration::from_secs(15)).expect("webhook within 15 s");
    let ev: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((ev["kind"].as_str(), &ev["task_id"]), (Some("handwriting"), &hw["task_id"]), "{ev}");
    assert_eq!(task(&emr, &other["task_id"]).1["state"], "done");
    assert_eq!(s.json("GET", "/mobile/v1/tasks", Some(&token), "").1["tasks"], serde_json::json!([]));

    // the user query (R7.4.2): real-name state, certificate, signature image
    let (st, u) = s.json("GET", "/api/v1/users/1001?image=base64", Some(&his), "");
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["realname_status"], "verified-demo");
    let c = &u["certificate"];
    assert_eq!(
        (c["alg"].as_str(), c["status"].as_str(), c["key"].as_str()),
        (Some("sm2"), Some("active"), Some("phone")),
        "{u}"
    );
    assert!(c["issuer"].as_str().unwrap().contains("CN="), "{c}");
    let pem = medsign_pki::cert::Cert::load_all(c["certificate_pem"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(pem[0].serial_hex(), c["serial"].as_str().unwrap());
    assert_eq!(u["signature_image"], "/api/v1/users/1001/handwriting.png");
    let (_, _, png_now) = s.raw("GET", "/api/v1/users/1001/handwriting.png", Some(&his), None, b"");
    assert_eq!(b64(&png_now), u["signature_image_base64"].as_str().unwrap());
    let (_, plain) = s.json("GET", "/api/v1/users/1001", Some(&his), "");
    assert!(plain.get("signature_image_base64").is_none(), "only when asked for: {plain}");
    assert_eq!(s.json("GET", "/api/v1/users/1001?image=jpeg", Some(&his), "").0, 400);
}
