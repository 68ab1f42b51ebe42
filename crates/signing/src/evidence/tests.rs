use super::*;
use crate::flows::tests::signing;
use crate::flows::{NewFlow, authorize_custody, create};
use base64::Engine;
use medsign_testkit::{
    db::backends,
    hospital::{ORG, add_staff, issuer, sign_app, staff, world},
};
use serde_json::json;

fn new_flow(v: Value) -> NewFlow {
    serde_json::from_value(v).unwrap()
}

#[test]
fn values_of_the_reports_read_in_both_languages() {
    assert_eq!(describe(&json!({"ok": true, "detail": "签名完整 / intact"})), "通过 / passed：签名完整 / intact");
    assert_eq!(describe(&json!({"ok": false, "detail": "x"})), "未通过 / failed：x");
    assert_eq!(describe(&json!("TOTAL_FAILED")), "无效 / INVALID — TOTAL_FAILED");
    assert_eq!(describe(&json!(true)), "是 / yes");
    assert_eq!(describe(&json!([])), "无 / none");
    assert!(describe(&json!("2026-11-27T08:00:00.000Z")).starts_with("2026-11-27 16:00:00 (UTC+8)"));
    // a field the verifier adds later is printed, named when known, as it is when not
    assert_eq!(label("covers"), "覆盖范围 / what it covers");
    assert_eq!(label("brand_new_field"), "brand_new_field");
    let nested = describe(&json!({"object": "5 0 R", "page": 1, "allowed": false}));
    assert!(nested.contains("对象 / object: 5 0 R") && nested.contains("允许 / allowed: 否 / no"), "{nested}");
    assert_eq!(action_label("pin.verify"), "PIN 验证（批准）/ PIN approval");
    for (zh, en, _) in
        [verdict(Indication::TotalPassed), verdict(Indication::TotalFailed), verdict(Indication::Indeterminate)]
    {
        assert!(medsign_pdf::missing_chars(zh).is_empty() && medsign_pdf::missing_chars(en).is_empty());
    }
    let u = verify_url("https://sign.example/", b"x", Some("QM-1<script>"));
    assert!(u.starts_with("https://sign.example/verify?sm3=") && u.ends_with("&doc=QM-1script"), "{u}");
}

/// A PDF flow signed by a doctor (server custody, RSA) and the hospital seal: its report holds the
/// verdict and the document's hashes, lists the flow's audit events with the chain proof, and is
/// itself a certified, timestamped PDF signature that verifies; another app gets 404; uploads of
/// the same PDF, a data flow's CMS (with and without its content) and garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_report_is_sealed_verifiable_and_tells_the_story() {
    for (_d, db) in backends().await {
        let w = world(&db).await;
        let (app, _) = sign_app(&db, &w.kek, "HIS").await;
        let (other, _) = sign_app(&db, &w.kek, "OTHER").await;
        add_staff(&db, &w.kek, &[staff("1001", "医生1001")]).await;
        for alg in ["rsa", "sm2"] {
            authorize_custody(&db, &w.kek, issuer(&w.cas), &w.ctx, "1001", "院长办公会决议", alg).await.unwrap();
        }
        let sg = signing(&db, &w);
        let pdf = medsign_pdf::blank_pdf(595, 842);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf);
        let nf = new_flow(json!({"kind": "file", "title": "门诊处方笺 No.7", "alg": "rsa", "content_base64": b64,
            "signers": [{"employee_no": "1001", "placement": {"page": 1, "rect": [330, 60, 560, 130]}}, {"seal": "hospital"}]}));
        let f = create(&sg, &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        let signed = flows::signature_bytes(&db, None, &f.id).await.unwrap();

        let r = for_flow(&sg, &w.ctx, Some(&app.app_id), &f.id, "https://sign.example").await.unwrap();
        assert_eq!(r.indication, Indication::TotalPassed);
        assert!(r.file_name.starts_with("QM-") && r.file_name.ends_with("-evidence.pdf"), "{}", r.file_name);
        // the report's own signature: one certification signature by the RSA hospital seal, timestamped
        let own = flows::verify_file(&db, &w.cas, &r.pdf).await.unwrap();
        assert_eq!(own.indication, Indication::TotalPassed, "{own:?}");
        assert_eq!(own.signatures.len(), 1);
        let s0 = &own.signatures[0].report.as_ref().expect("a CMS report").signers[0];
        assert!(s0.subject.as_deref().unwrap_or("").contains(ORG) && s0.timestamp.is_some(), "{s0:?}");
        assert!(s0.algorithm.as_deref().unwrap_or("").to_ascii_lowercase().contains("rsa"), "{s0:?}");
        let raw = String::from_utf8_lossy(&r.pdf);
        assert!(raw.contains("/DocMDP"), "a certification signature");

        // what it shows (laid out again from the same facts: the PDF's text is in CID fonts)
        let f2 = flows::get(&db, None, &f.id).await.unwrap();
        let events = flow_events(&db, &f2).await.unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert!(["flow.create", "flow.sign", "seal.use"].iter().all(|a| actions.contains(a)), "{actions:?}");
        assert!(events.windows(2).all(|p| p[0].seq < p[1].seq));
        let proof = proof(&db, &events).await.unwrap();
        assert!(proof.chain.broken.is_none() && proof.mismatched.is_empty(), "{:?}", proof.chain);
        let subject = Subject {
            title: f2.title.clone(),
            verify_url: verify_url("https://sign.example", &signed, Some(&f2.doc_no)),
            flow: Some(f2.clone()),
            file: signed.clone(),
            content: None,
            verified: Verified::File(flows::verify_file(&db, &w.cas, &signed).await.unwrap()),
            events: events.clone(),
            proof: Some(proof),
            at: Utc::now(),
            sealed_by: "CN=x".into(),
        };
        let l = layout(&subject);
        let text: String = l
            .pages()
            .iter()
            .flatten()
            .filter_map(|o| if let Op::Text { text, .. } = o { Some(text.as_str()) } else { None })
            .collect::<Vec<_>>()
            .join("\n");
        for want in [
            "验证结论：有效",
            &hex::encode(sm3(&signed)),
            &hex::encode(sha256(&signed)),
            &f2.doc_no,
            "创建签署流程 / flow created",
            "加盖电子印章 / seal applied",
            &events[0].hash,
            "通过：从第 1 条到第",
        ] {
            assert!(text.contains(want), "{want} missing from the report");
        }
        assert!(l.pages().iter().flatten().any(|o| matches!(o, Op::Thumb { index: 0, .. })), "a page thumbnail");
        // generating it was audited, with the report's SM3
        let (last, _) = audit::query(
            &db,
            &audit::Filter { action: Some("evidence.report".into()), page_size: Some(5), ..Default::default() },
        )
        .await
        .unwrap();
        assert_eq!(last[0].target, format!("flow:{}", f.id));
        assert!(last[0].details.contains(&hex::encode(sm3(&r.pdf))), "{}", last[0].details);

        // another app's flow does not exist for it; an unfinished one has no report
        let e = for_flow(&sg, &w.ctx, Some(&other.app_id), &f.id, "https://x").await.unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
        let e = for_flow(&sg, &w.ctx, Some(&app.app_id), "sf_nope", "https://x").await.unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");

        // uploads: the signed PDF; a data flow's detached CMS without / with its content; garbage
        let up = for_upload(&sg, &w.ctx, &signed, None, Some("rx.pdf"), "https://x").await.unwrap();
        assert_eq!(up.indication, Indication::TotalPassed);
        assert_eq!(flows::verify_file(&db, &w.cas, &up.pdf).await.unwrap().indication, Indication::TotalPassed);
        let nf = new_flow(
            json!({"kind": "data", "title": "检验报告", "content": "WBC 6.1", "signers": [{"employee_no": "1001"}]}),
        );
        let d = create(&sg, &w.ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        let p7s = flows::signature_bytes(&db, None, &d.id).await.unwrap();
        let e = for_upload(&sg, &w.ctx, &p7s, None, None, "https://x").await.unwrap_err();
        assert!(matches!(&e, Error::Invalid(m) if m.contains("data")), "{e:?}");
        let ok = for_upload(&sg, &w.ctx, &p7s, Some(b"WBC 6.1"), None, "https://x").await.unwrap();
        assert_eq!(ok.indication, Indication::TotalPassed);
        let bad = for_upload(&sg, &w.ctx, &p7s, Some(b"WBC 9.9"), None, "https://x").await.unwrap();
        assert_eq!(bad.indication, Indication::TotalFailed, "another content");
        let data_report = for_flow(&sg, &w.ctx, None, &d.id, "https://x").await.unwrap();
        assert_eq!(data_report.indication, Indication::TotalPassed);
        for junk in [&b"hello"[..], b"%PDF-1.7 broken", b""] {
            let e = for_upload(&sg, &w.ctx, junk, None, None, "https://x").await.unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        }
        let e = for_upload(&sg, &w.ctx, &pdf, None, None, "https://x").await.unwrap_err();
        assert!(matches!(&e, Error::Invalid(m) if m.contains("no signatures")), "an unsigned PDF: {e:?}");
    }
}
