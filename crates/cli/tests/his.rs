//! Issue #6 "Done when": a scripted HIS drives the real `medsign serve` through the HTTP API alone
//! (on PostgreSQL when the test server is there, as in CI) — creates users, renders an outpatient
//! prescription from the shipped template, has the doctor (authorized server custody, uploaded
//! handwriting) and the hospital seal sign it in the template's signature boxes, polls, downloads,
//! verifies, and validates the download in pyHanko and poppler `pdfsig`; checks the rendered page
//! with `pdftoppm` and the embedded CJK font with `pdffonts`; opens a scan-mode flow (QR ticket)
//! and revokes it; batch-seals 1,000 lab reports from the lab-report template; and receives every
//! webhook.

mod common;
use base64::Engine;
use common::*;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn a_scripted_his_prescribes_signs_verifies_revokes_and_batches() {
    let d = Dir::new();
    let ntp = Chrony::start(&d, "ntp", None, false);
    let mut env = vec![
        ("MEDSIGN_TIME_SOURCES".to_string(), ntp.source()),
        ("MEDSIGN_TIME_POLL_SECONDS".to_string(), "1".to_string()),
        ("MEDSIGN_CA_ORGANIZATION".to_string(), "某某县人民医院".to_string()),
    ];
    env.extend(postgres_env(&d, "his"));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start(&d, &env_ref);
    let admin = s.token().unwrap();
    wait_clock(&s, "INSYNC");
    let (hook, hooks) = receiver();
    let his = his_app(&s, &admin);

    // users: a doctor with server custody (hospital policy) and a handwritten signature
    let (st, v) = s.json(
        "POST",
        "/api/v1/users",
        Some(&his),
        r#"[{"employee_no":"1001","name":"张三","title":"主治医师"},{"employee_no":"1002","name":"李四"}]"#,
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) =
        s.json("POST", "/admin/v1/users/1001/custody", Some(&admin), r#"{"reason":"门诊处方托管签名","alg":"rsa"}"#);
    assert_eq!(st, 201, "{v}");
    let mut ink = image::RgbaImage::from_pixel(300, 100, image::Rgba([255, 255, 255, 255]));
    for x in 20..280 {
        for w in 0..6 {
            ink.put_pixel(x, 50 + ((x as f32 / 18.0).sin() * 25.0) as u32 + w, image::Rgba([10, 10, 40, 255]));
        }
    }
    let mut png = std::io::Cursor::new(Vec::new());
    ink.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let body = serde_json::json!({"image_base64": b64(png.get_ref())}).to_string();
    let (st, v) = s.json("POST", "/api/v1/users/1001/handwriting", Some(&his), &body);
    assert_eq!((st, v["source"].as_str()), (201, Some("uploaded")), "{v}");
    let (st, h, _) = s.raw("GET", "/api/v1/users/1001/handwriting.png", Some(&his), None, b"");
    assert!(st == 200 && h.contains("image/png"), "{h}");
    let (st, v) =
        s.json("POST", "/api/v1/users/1002/handwriting", Some(&his), r#"{"image_base64":"bm90IGFuIGltYWdl"}"#);
    assert_eq!(st, 400, "{v}");
    assert_envelope(&v, "invalid_request");
    assert_eq!(s.req("GET", "/api/v1/users/1002/handwriting.png", Some(&his), None, b"").0, 404);

    // the prescription template: listed with its signature boxes, rendered with Chinese text
    let (_, _, list) = s.req("GET", "/api/v1/templates", Some(&his), None, b"");
    let rx = list.as_array().unwrap().iter().find(|t| t["id"] == "outpatient-prescription").expect("shipped");
    let boxes: Vec<&str> =
        rx["signature_boxes"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(boxes, ["doctor", "pharmacist", "hospital_seal"]);
    let data = serde_json::json!({
        "hospital": "某某县人民医院", "category": "普通", "fee_type": "医保", "department": "内科",
        "outpatient_no": "MZ20261127001", "patient_name": "王小明", "gender": "男", "age": "45岁",
        "diagnosis": "上呼吸道感染", "amount": "¥56.80",
        "items": [{"drug": "阿莫西林胶囊 0.25g×24粒", "dosage": "0.5g", "usage": "口服 每日三次", "quantity": "2盒"}]
    });
    let req = serde_json::json!({"template_id": "outpatient-prescription", "data": data}).to_string();
    let (st, h, rendered) =
        s.raw("POST", "/api/v1/documents/from-template", Some(&his), Some("application/json"), req.as_bytes());
    assert!(st == 200 && h.contains("application/pdf") && h.contains("x-template-version: 1"), "{st} {h}");
    d.write("rendered.pdf", &rendered);
    let o = d.run("pdftotext", &[&d.p("rendered.pdf"), "-"]);
    let words = text(&o.stdout);
    assert!(words.contains("门诊处方笺") && words.contains("王小明") && words.contains("阿莫西林"), "{words}");
    let missing = serde_json::json!({"template_id": "outpatient-prescription", "data": {"hospital": "x"}}).to_string();
    let (st, v) = s.json("POST", "/api/v1/documents/from-template", Some(&his), &missing);
    assert!(st == 400 && v["message"].as_str().unwrap().contains("patient_name"), "{v}");

    // the flow: rendered from the template, certified by the doctor, sealed by the hospital
    let flow = serde_json::json!({"kind": "file", "title": "门诊处方笺 MZ20261127001", "alg": "rsa", "certify": 2,
        "template_id": "outpatient-prescription", "data": data, "callback_url": hook,
        "signers": [{"employee_no": "1001", "field": "doctor"}, {"seal": "hospital", "field": "hospital_seal"}]});
    let (st, f) = s.json("POST", "/api/v1/sign-flows", Some(&his), &flow.to_string());
    assert_eq!(st, 201, "{f}");
    assert_eq!((f["template_id"].as_str(), f["template_version"].as_i64()), (Some("outpatient-prescription"), Some(1)));
    let id = f["id"].as_str().unwrap().to_string();
    let (_, _, polled) = s.req("GET", &format!("/api/v1/sign-flows/{id}"), Some(&his), None, b"");
    assert_eq!(polled["state"], "completed", "{polled}");
    assert!(
        polled["signers"].as_array().unwrap().iter().all(|s| s["state"] == "signed" && s["timestamp_at"].is_string())
    );
    let (st, _, signed) = s.raw("GET", &format!("/api/v1/sign-flows/{id}/file"), Some(&his), None, b"");
    assert_eq!(st, 200);
    d.write("rx.pdf", &signed);
    let (_, r) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&signed)}).to_string());
    assert_eq!(r["indication"], "TOTAL_PASSED", "{r}");
    // pyHanko: both signatures intact and trusted with their timestamps; the certification
    // signature sees only the allowed later signature (no illegal modification)
    let (_, _, chain) = s.raw("GET", "/pki/rsa/ca.pem", None, None, b"");
    d.write("rsa-chain.pem", &chain);
    let (ok, out) = d.pyhanko_validate("rsa-chain.pem", "rx.pdf");
    assert!(ok, "{out}");
    assert_eq!(out.matches(":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>").count(), 2, "{out}");
    assert!(out.contains("doctor:") && out.contains("hospital_seal:"), "{out}");
    assert!(out.contains("ACCEPTABLE_MODIFICATIONS") && !out.contains("ILLEGAL"), "{out}");
    // poppler pdfsig with the root in an NSS store
    let (valid, trusted, out) = d.pdfsig("rsa-chain.pem", "rx.pdf");
    assert_eq!((valid, trusted), (2, 2), "{out}");
    // the CJK font is embedded (a subset, with a ToUnicode map)
    let o = d.run("pdffonts", &[&d.p("rx.pdf")]);
    let fonts = text(&o.stdout);
    assert!(fonts.lines().any(|l| l.contains("NotoSansCJK") && l.contains("yes yes yes")), "{fonts}");
    // rendered: the seal box has the seal's red, the doctor's box dark ink (72 dpi: 1 px = 1 pt)
    assert_ok(&d.run("pdftoppm", &["-r", "72", "-png", "-singlefile", &d.p("rx.pdf"), &d.p("page")]), "pdftoppm");
    let page = image::load_from_memory(&d.read("page.png")).unwrap().to_rgb8();
    assert_eq!(page.dimensions(), (420, 595));
    let count = |[x1, y1, x2, y2]: [u32; 4], want: &dyn Fn(&[u8]) -> bool| {
        (595 - y2..595 - y1)
            .flat_map(|y| (x1..x2).map(move |x| (x, y)))
            .filter(|&(x, y)| want(&page.get_pixel(x, y).0))
            .count()
    };
    let red = count([315, 135, 395, 215], &|p| p[0] > 180 && p[1] < 120 && p[2] < 120);
    let dark = count([48, 85, 200, 130], &|p| p[0] < 100 && p[1] < 100 && p[2] < 140);
    assert!(red > 300, "seal box red pixels: {red}");
    assert!(dark > 50, "doctor box ink pixels: {dark}");

    // a scan-mode flow waits with a one-time QR ticket; the HIS revokes it
    let scan = serde_json::json!({"kind": "data", "title": "住院病历 ZY0001", "content": "病程记录……", "callback_url": hook,
        "signers": [{"employee_no": "1002", "mode": "scan"}]});
    let (st, f2) = s.json("POST", "/api/v1/sign-flows", Some(&his), &scan.to_string());
    assert_eq!((st, f2["state"].as_str()), (201, Some("signing")), "{f2}");
    let t = &f2["ticket"];
    let link = t["deep_link"].as_str().unwrap();
    assert!(link.starts_with(&format!("http://{}/m/#/sign?t=tk_", s.addr)), "{t}");
    let qr = base64::engine::general_purpose::STANDARD.decode(t["qr_png_base64"].as_str().unwrap()).unwrap();
    assert!(qr.starts_with(b"\x89PNG") && t["qr_svg"].as_str().unwrap().contains("<svg"));
    let id2 = f2["id"].as_str().unwrap();
    let (st, t2) = s.json("POST", &format!("/api/v1/sign-flows/{id2}/tickets"), Some(&his), r#"{"ttl_seconds":120}"#);
    assert!(st == 201 && t2["ticket_id"] != t["ticket_id"], "{t2}");
    let (st, v) = s.json("POST", &format!("/api/v1/sign-flows/{id2}/revoke"), Some(&his), r#"{"reason":"患者转院"}"#);
    assert_eq!((st, v["state"].as_str()), (200, Some("revoked")), "{v}");
    let (st, v) = s.json("POST", &format!("/api/v1/sign-flows/{id2}/tickets"), Some(&his), "");
    assert_eq!(st, 409, "{v}");
    let (st, v) = s.json("POST", &format!("/api/v1/sign-flows/{id}/revoke"), Some(&his), r#"{"reason":"x"}"#);
    assert_eq!(st, 409, "a completed flow cannot be revoked: {v}");

    // multipart upload of a PDF, and bad fields
    let boundary = "medsignBoundary7";
    let mut mp = Vec::new();
    let part = |name: &str, ctype: &str, body: &[u8], mp: &mut Vec<u8>| {
        mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n").as_bytes());
        mp.extend_from_slice(body);
        mp.extend_from_slice(b"\r\n");
    };
    let meta = serde_json::json!({"kind": "file", "title": "上传的报告", "alg": "rsa", "signers": [{"seal": "hospital", "field": "nope"}]});
    part("flow", "application/json", meta.to_string().as_bytes(), &mut mp);
    part("file", "application/pdf", &rendered, &mut mp);
    mp.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let (st, _, v) = s.raw("POST", "/api/v1/sign-flows", Some(&his), Some(&ctype), &mp);
    let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert!(st == 400 && v["message"].as_str().unwrap().contains("no empty signature field 'nope'"), "{v}");
    // a form without the file part, with an unknown part, or with the document also in the JSON
    let form = |parts: &[(&str, &[u8])]| {
        let mut b = Vec::new();
        for (name, body) in parts {
            part(name, "application/octet-stream", body, &mut b);
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let (st, _, v) = s.raw("POST", "/api/v1/sign-flows", Some(&his), Some(&ctype), &b);
        (st, serde_json::from_slice::<serde_json::Value>(&v).unwrap())
    };
    let flow_only = meta.to_string();
    let (st, v) = form(&[("flow", flow_only.as_bytes())]);
    assert!(st == 400 && v["message"].as_str().unwrap().contains("no part named file"), "{v}");
    let (st, v) = form(&[("flow", flow_only.as_bytes()), ("file", &rendered), ("extra", b"x")]);
    assert!(st == 400 && v["message"].as_str().unwrap().contains("unknown form field 'extra'"), "{v}");
    let both =
        serde_json::json!({"kind": "file", "title": "t", "content_base64": "AA==", "signers": [{"seal": "hospital"}]});
    let (st, v) = form(&[("flow", both.to_string().as_bytes()), ("file", &rendered)]);
    assert!(st == 400 && v["message"].as_str().unwrap().contains("goes in the file part"), "{v}");
    assert_envelope(&v, "invalid_request");
    let meta = serde_json::json!({"kind": "file", "title": "上传的报告", "alg": "rsa", "signers": [{"seal": "hospital", "field": "pharmacist"}]});
    let mp = String::from_utf8_lossy(&mp).replace(r#""field":"nope""#, r#""field":"pharmacist""#);
    assert!(mp.contains(&meta["signers"][0]["field"].to_string()));
    let (st, _, v) = s.raw("POST", "/api/v1/sign-flows", Some(&his), Some(&ctype), mp.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert_eq!((st, v["state"].as_str()), (201, Some("completed")), "{v}");

    // placement by keyword: the box right after a label printed on the page; a missing one is a 400
    let kw = |k: &str| {
        serde_json::json!({"kind": "file", "title": "关键字定位", "alg": "rsa", "content_base64": b64(&rendered),
            "signers": [{"seal": "hospital", "placement": {"keyword": k, "size": [70, 70]}}]})
        .to_string()
    };
    let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(&his), &kw("金额："));
    assert_eq!((st, v["state"].as_str()), (201, Some("completed")), "{v}");
    let (st, v) = s.json("POST", "/api/v1/sign-flows", Some(&his), &kw("出院诊断"));
    assert!(st == 400 && v["message"].as_str().unwrap().contains("not in the document"), "{v}");

    // batch: 1,000 lab reports from the template, each sealed in its seal box
    let lab = |i: usize| {
        serde_json::json!({"kind": "file", "title": format!("检验报告单 S-{i}"), "alg": "rsa", "template_id": "lab-report",
            "data": {"hospital": "某某县人民医院", "patient_name": "患者", "gender": "女", "age": "32岁", "patient_id": format!("ZY{i:05}"),
                     "sample_no": format!("S-{i}"), "department": "内科", "specimen": "血清",
                     "items": [{"code": "GLU", "name": "葡萄糖", "result": "5.1", "unit": "mmol/L", "reference": "3.9–6.1"}]},
            "signers": [{"seal": "hospital", "field": "lab_seal"}]})
    };
    let items: Vec<serde_json::Value> = (0..1000).map(lab).collect();
    let started = std::time::Instant::now();
    let (st, b) = s.json("POST", "/api/v1/batches", Some(&his), &serde_json::json!({"items": items}).to_string());
    assert_eq!(st, 202, "{b}");
    let bid = b["id"].as_str().unwrap();
    let mut last = serde_json::Value::Null;
    for _ in 0..1200 {
        last = s.req("GET", &format!("/api/v1/batches/{bid}"), Some(&his), None, b"").2;
        if last["state"] == "completed" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("1,000 lab reports rendered and sealed in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!((last["done"].as_i64(), last["failed"].as_i64()), (Some(1000), Some(0)), "{last}");
    let one = last["items"][500]["flow_id"].as_str().unwrap();
    let (_, _, report) = s.raw("GET", &format!("/api/v1/sign-flows/{one}/file"), Some(&his), None, b"");
    let (_, r) =
        s.json("POST", "/api/v1/verify/file", Some(&his), &serde_json::json!({"file": b64(&report)}).to_string());
    assert_eq!(r["indication"], "TOTAL_PASSED", "{r}");

    // every webhook of the flows with a callback arrived, signed
    let mut events = Vec::new();
    while events.len() < 3 {
        let (head, body) = hooks.recv_timeout(std::time::Duration::from_secs(30)).expect("webhook");
        assert!(header(&head, "x-medsign-signature").len() >= 64, "{head}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        events.push(format!("{}:{}", v["event"].as_str().unwrap(), v["flow_id"].as_str().unwrap_or("")));
    }
    events.sort();
    let mut want =
        vec![format!("flow.completed:{id}"), format!("flow.revoked:{id2}"), format!("flow.waiting_scan:{id2}")];
    want.sort();
    assert_eq!(events, want);
    assert_eq!(s.stop(), 0);
}
