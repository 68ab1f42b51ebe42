use super::*;
use crate::seams::NoGrants;
use medsign_testkit::{
    db::backends,
    hospital::{ORG, World, issuer, world},
};
use medsign_tsa::clock::Clock;
use std::sync::{Arc, Mutex};

/// A local HTTP receiver for webhooks (tests only): records (headers, body); answers 500 to
/// the first `fail_first` requests.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let seen = seen.clone();
            let calls = calls.clone();
            async move {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail_first {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                seen.lock().unwrap().push((h, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_flows_end_to_end_in_core() {
    for (_d, db) in backends().await {
        let World { kek, ctx, cas, tsa } = world(&db).await;
        let issuer = issuer(&cas);
        let sg = Signing { db: &db, kek: &kek, cas: &cas, organization: ORG, tsa: &tsa, grants: &NoGrants };
        let (app, token) =
            medsign_directory::apps::create(&db, &kek, &ctx, "HIS", &[medsign_directory::apps::Scope::Sign])
                .await
                .unwrap();
        let u = |no: &str| users::NewUser {
            employee_no: no.into(),
            name: format!("医生{no}"),
            department: None,
            title: None,
            phone: None,
            id_card: None,
            role: users::Role::Doctor,
        };
        users::create_many(&db, &kek, &ctx, &[u("1001"), u("1002")]).await.unwrap();
        // custody: authorized for 1001 only
        assert!(authorize_custody(&db, &kek, issuer, &ctx, "1001", "", "sm2").await.is_err());
        let c = authorize_custody(&db, &kek, issuer, &ctx, "1001", "院长办公会决议 2026-11", "sm2").await.unwrap();
        assert_eq!(c.employee_no, "1001");
        authorize_custody(&db, &kek, issuer, &ctx, "1001", "again: same key, same certificate", "sm2").await.unwrap();
        authorize_custody(&db, &kek, issuer, &ctx, "1001", "RSA too", "rsa").await.unwrap();
        let (url, got) = receiver(1).await;
        let flow = |signers: serde_json::Value, extra: serde_json::Value| {
            let mut v = serde_json::json!({"kind": "data", "title": "门诊处方 No.1", "content": "Rp: 阿莫西林 0.5g tid", "signers": signers, "callback_url": url});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<NewFlow>(v).unwrap()
        };
        let nf = flow(serde_json::json!([{"employee_no": "1001"}, {"seal": "hospital"}]), serde_json::json!({}));
        let f = create(&sg, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert_eq!(f.state, FlowState::Completed);
        assert!(f.doc_no.starts_with("QM-"), "{}", f.doc_no);
        assert!(
            f.signers.iter().all(|s| s.state == SignerState::Signed && s.timestamp_at.is_some()),
            "{:?}",
            f.signers
        );
        let sig = signature_bytes(&db, Some(&app.app_id), &f.id).await.unwrap();
        let rep = verify_data(&db, &cas, &sig, Some("Rp: 阿莫西林 0.5g tid".as_bytes())).await.unwrap();
        assert!(rep.is_valid(), "{rep:?}");
        assert_eq!(rep.signers.len(), 2);
        assert!(rep.signers.iter().all(|s| s.timestamp.as_ref().is_some_and(|t| t.ok())), "{rep:?}");
        times_are_each_signers_own(&f, &rep);
        let tampered = verify_data(&db, &cas, &sig, Some(b"Rp: something else")).await.unwrap();
        assert!(!tampered.is_valid());
        // RSA, attached, JSON content
        let nf = flow(
            serde_json::json!([{"employee_no": "1001"}]),
            serde_json::json!({"alg": "rsa", "detached": false, "content": null, "content_json": {"b": 1, "a": [1, 2]}}),
        );
        let f2 = create(&sg, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        let sig2 = signature_bytes(&db, Some(&app.app_id), &f2.id).await.unwrap();
        let rep2 = verify_data(&db, &cas, &sig2, None).await.unwrap();
        assert!(rep2.is_valid(), "{rep2:?}");
        // not the owner: not found; completed: no revoke
        assert!(matches!(get(&db, Some("app_other"), &f.id).await, Err(Error::NotFound(_))));
        assert!(matches!(revoke(&db, &ctx, Some(&app.app_id), &f.id, "wrong patient").await, Err(Error::Conflict(_))));
        // bad input: unauthorized staff, unknown seal, scan mode, PDF, empty content, two contents
        for (signers, extra) in [
            (serde_json::json!([{"employee_no": "1002"}]), serde_json::json!({})),
            (serde_json::json!([{"employee_no": "9999"}]), serde_json::json!({})),
            (serde_json::json!([{"seal": "NOPE"}]), serde_json::json!({})),
            (serde_json::json!([{"seal": "hospital", "mode": "scan"}]), serde_json::json!({})),
            (serde_json::json!([{"employee_no": "1001", "mode": "wave"}]), serde_json::json!({})),
            (serde_json::json!([{"employee_no": "NOPE", "mode": "scan"}]), serde_json::json!({})),
            (
                serde_json::json!([{"employee_no": "1001", "mode": "scan"}]),
                serde_json::json!({"ticket_ttl_seconds": 5}),
            ),
            (serde_json::json!([{"employee_no": "1001", "field": "doctor"}]), serde_json::json!({})),
            (serde_json::json!([{"employee_no": "1001", "seal": "hospital"}]), serde_json::json!({})),
            (serde_json::json!([]), serde_json::json!({})),
            (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"kind": "file"})),
            (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"content": ""})),
            (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"content_base64": "AA=="})),
            (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"alg": "dsa"})),
            (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"callback_url": "ftp://x"})),
            (
                serde_json::json!([{"employee_no": "1001"}]),
                serde_json::json!({"callback_url": "http://169.254.169.254/latest/meta-data/"}),
            ),
        ] {
            let nf = flow(signers.clone(), extra.clone());
            let e = create(&sg, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{signers} {extra}: {e}");
        }
        // scan mode (R7.4.6): the seal signs now, the doctor's turn waits with a one-time QR ticket
        let nf = flow(
            serde_json::json!([{"seal": "hospital"}, {"employee_no": "1001", "mode": "scan"}]),
            serde_json::json!({}),
        );
        let w = create(&sg, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert_eq!(w.state, FlowState::Signing);
        assert_eq!(
            w.signers.iter().map(|s| (s.mode.as_str(), s.state.as_str())).collect::<Vec<_>>(),
            [("auto", "signed"), ("scan", "pending")]
        );
        let t = crate::tickets::current(&db, &w.id).await.unwrap().expect("an open ticket");
        assert_eq!(t.signer_index, 1);
        let v = crate::tickets::view("https://sign.example.org/", &t).unwrap();
        assert_eq!(v.deep_link, format!("https://sign.example.org/m/#/sign?t={}", t.id));
        assert!(v.qr_svg.contains("<svg") && !v.qr_png_base64.is_empty());
        // a renewal supersedes it; the new one redeems once, then never again
        let t2 = crate::scan::renew(&db, &ctx, &app.app_id, &w.id, Some(120)).await.unwrap();
        let e = crate::tickets::redeem(&db, &ctx, &t.id).await.unwrap_err();
        assert!(e.to_string().contains("already used"), "{e}");
        assert_eq!(crate::tickets::redeem(&db, &ctx, &t2.id).await.unwrap().flow_id, w.id);
        assert!(crate::tickets::redeem(&db, &ctx, &t2.id).await.unwrap_err().to_string().contains("already used"));
        assert!(crate::tickets::redeem(&db, &ctx, "tk_nope").await.unwrap_err().to_string().contains("unknown"));
        // an expired ticket is refused
        let t3 = crate::scan::renew(&db, &ctx, &app.app_id, &w.id, None).await.unwrap();
        sqlx::query("UPDATE sign_tickets SET expires_at = '2000-01-01T00:00:00Z' WHERE id = $1")
            .bind(&t3.id)
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(crate::tickets::redeem(&db, &ctx, &t3.id).await.unwrap_err().to_string().contains("expired"));
        // another app cannot renew it; a completed flow has nothing to scan
        assert!(matches!(crate::scan::renew(&db, &ctx, "other", &w.id, None).await, Err(Error::NotFound(_))));
        assert!(matches!(crate::scan::renew(&db, &ctx, &app.app_id, &f.id, None).await, Err(Error::Conflict(_))));
        let refused: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'ticket.redeem' AND outcome = 'refused'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(refused, 4);

        // custody revoked → refused
        revoke_custody(&db, &ctx, "1001").await.unwrap();
        let nf = flow(serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({}));
        assert!(create(&sg, &ctx, &app.app_id, &nf, 1 << 20).await.is_err());
        assert!(matches!(revoke_custody(&db, &ctx, "1001").await, Err(Error::NotFound(_))));

        // the TSA out of sync: `required` fails the flow (503), `later` releases and stamps later
        let cold = Tsa::start(&db, &kek, &cas, "x", &Default::default(), Arc::new(Clock::new(&Default::default())))
            .await
            .unwrap();
        let nf = flow(serde_json::json!([{"seal": "hospital"}]), serde_json::json!({}));
        let e = create(&Signing { tsa: &cold, ..sg }, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap_err();
        assert!(matches!(e, Error::Unavailable(_)), "{e}");
        authorize_custody(&db, &kek, issuer, &ctx, "1001", "授权恢复 / authorized again", "sm2").await.unwrap();
        let nf = flow(
            serde_json::json!([{"employee_no": "1001"}, {"seal": "hospital"}]),
            serde_json::json!({"timestamp": "later"}),
        );
        let f3 = create(&Signing { tsa: &cold, ..sg }, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
        assert!(f3.timestamp_pending && f3.state == FlowState::Completed);
        // a pending flow whose stored signature is unreadable is set aside; the others still get
        // their timestamps (one bad row used to stop the job for every flow after it)
        sqlx::query(
            "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, timestamp_mode, ts_pending, signature_b64, expires_at, created_at, updated_at) \
             VALUES ('sf_broken', 'QM-BROKEN', $1, 'data', 't', 'completed', 'sm2', 1, '', '', 'later', 1, 'not base64 ~', '2099-01-01T00:00:00Z', '0', '0')",
        )
        .bind(&app.app_id)
        .execute(&db.pool)
        .await
        .unwrap();
        assert_eq!(complete_pending_timestamps(&db, &cold).await.unwrap(), 0);
        assert_eq!(complete_pending_timestamps(&db, &tsa).await.unwrap(), 1);
        let broken = get(&db, None, "sf_broken").await.unwrap();
        assert!(broken.timestamp_pending, "still shown as pending");
        assert_eq!(complete_pending_timestamps(&db, &tsa).await.unwrap(), 0, "set aside, not retried");
        let f3 = get(&db, None, &f3.id).await.unwrap();
        assert!(!f3.timestamp_pending && f3.signers.iter().all(|s| s.timestamp_at.is_some()), "{f3:?}");
        let rep3 = verify_data(
            &db,
            &cas,
            &signature_bytes(&db, None, &f3.id).await.unwrap(),
            Some("Rp: 阿莫西林 0.5g tid".as_bytes()),
        )
        .await
        .unwrap();
        assert!(rep3.is_valid() && rep3.signers.len() == 2, "{rep3:?}");
        // each signer's recorded time is the time of its own token, found by certificate
        times_are_each_signers_own(&f3, &rep3);

        // an unfinished flow past its expiry is closed, with its webhook
        sqlx::query(
            "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, timestamp_mode, ts_pending, callback_url, expires_at, created_at, updated_at) \
             VALUES ('sf_old', 'QM-OLD', $1, 'data', 't', 'signing', 'sm2', 1, '', '', 'required', 0, $2, '2020-01-01T00:00:00Z', 'x', 'x')",
        )
        .bind(&app.app_id)
        .bind(&url)
        .execute(&db.pool)
        .await
        .unwrap();
        assert_eq!(get(&db, None, "sf_old").await.unwrap().state, FlowState::Expired, "computed on read");
        assert_eq!(expire_due(&db).await.unwrap(), 1);
        assert_eq!(expire_due(&db).await.unwrap(), 0);
        assert!(matches!(revoke(&db, &ctx, None, "sf_old", "late").await, Err(Error::Conflict(_))));

        // webhooks: the first attempt fails (500) and is retried later; all signed with the app key
        let client = webhook_client();
        deliver_due(&db, &kek, &client).await.unwrap();
        let ds = deliveries(&db, None).await.unwrap();
        assert!(ds.iter().any(|d| d.attempts == 1 && d.state == "pending" && d.last_status == Some(500)), "{ds:?}");
        sqlx::query("UPDATE webhook_deliveries SET next_at = '1970-01-01T00:00:00.000Z' WHERE state = 'pending'")
            .execute(&db.pool)
            .await
            .unwrap();
        deliver_due(&db, &kek, &client).await.unwrap();
        let ds = deliveries(&db, None).await.unwrap();
        assert!(ds.iter().all(|d| d.state == "delivered"), "{ds:?}");
        let events: Vec<String> = ds.iter().map(|d| d.event.clone()).collect();
        for e in ["flow.completed", "flow.failed", "flow.timestamped", "flow.expired"] {
            assert!(events.contains(&e.to_string()), "{events:?}");
        }
        let key = medsign_directory::apps::hmac_key(token.split_once('.').unwrap().1);
        for (h, body) in got.lock().unwrap().iter() {
            let ts = h["x-medsign-timestamp"].to_str().unwrap();
            assert_eq!(h["x-medsign-signature"].to_str().unwrap(), webhook_signature(&key, ts, body));
        }
    }
}

/// Each signer's recorded `timestamp_at` is the genTime of the token on its own SignerInfo (found
/// by certificate serial: the SET OF re-sorts, so position proves nothing).
fn times_are_each_signers_own(f: &FlowView, rep: &cms::CmsReport) {
    for s in &f.signers {
        let r = rep.signers.iter().find(|r| r.serial == s.cert_serial).expect("signer in the CMS");
        let token = r.timestamp.as_ref().and_then(|t| t.time).expect("token time");
        let at = chrono::DateTime::parse_from_rfc3339(s.timestamp_at.as_deref().expect("recorded")).unwrap();
        assert_eq!(at.timestamp_millis(), token.timestamp_millis(), "signer #{}", s.index);
    }
}

#[test]
fn callback_urls_refuse_link_local_and_metadata_hosts() {
    for bad in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://169.254.0.23/",
        "http://2852039166/latest/meta-data/", // 169.254.169.254 in decimal
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.GOOGLE.INTERNAL./computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
    ] {
        let e = check_callback_url(bad).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e:?}");
        assert!(e.to_string().contains("link-local or cloud metadata"), "{bad}: {e}");
    }
    for good in [
        "http://127.0.0.1:8080/hook",
        "http://localhost:9/x",
        "http://[::1]/x",
        "http://10.1.2.3/his/callback",
        "https://his.example/medsign/callback",
    ] {
        check_callback_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for broken in ["ftp://x", "http://", "http:// x", "https://[::1"] {
        assert!(check_callback_url(broken).is_err(), "{broken}");
    }
}

#[tokio::test]
async fn the_webhook_resolver_drops_link_local_answers() {
    use reqwest::dns::Resolve;
    let r = GuardedResolver;
    let addrs: Vec<_> = r.resolve("127.0.0.1".parse().unwrap()).await.unwrap().collect();
    assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty(), "loopback stays allowed");
    // what a name resolving to the metadata address gets
    let e = r.resolve("169.254.169.254".parse().unwrap()).await.err().expect("refused").to_string();
    assert!(e.contains("link-local"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_never_reach_metadata_and_never_follow_redirects() {
    let stolen = Arc::new(Mutex::new(0usize));
    let seen = stolen.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(|| async {
                (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, "/stolen")])
            }),
        )
        .route(
            "/stolen",
            axum::routing::any(move || {
                let seen = seen.clone();
                async move {
                    *seen.lock().unwrap() += 1;
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    for (_d, db) in backends().await {
        let kek = Kek::generate().unwrap();
        for (id, url) in [
            ("wh_meta", "http://169.254.169.254/latest/meta-data/".to_string()),
            ("wh_redirect", format!("http://{addr}/hook")),
        ] {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, app_id, flow_id, event, url, payload, state, attempts, next_at, created_at) \
                 VALUES ($1, 'app_x', 'sf_x', 'flow.completed', $2, '{}', 'pending', 0, '1970-01-01T00:00:00.000Z', '1970-01-01T00:00:00.000Z')",
            )
            .bind(id)
            .bind(url)
            .execute(&db.pool)
            .await
            .unwrap();
        }
        let started = std::time::Instant::now();
        assert_eq!(deliver_due(&db, &kek, &webhook_client()).await.unwrap(), 0);
        assert!(started.elapsed() < std::time::Duration::from_secs(4), "the metadata address was not contacted");
        let ds = deliveries(&db, None).await.unwrap();
        let meta = ds.iter().find(|d| d.id == "wh_meta").unwrap();
        assert_eq!((meta.state.as_str(), meta.last_status), ("failed", None), "{meta:?}");
        assert!(meta.last_error.as_deref().unwrap_or("").contains("link-local"), "{meta:?}");
        let redirect = ds.iter().find(|d| d.id == "wh_redirect").unwrap();
        assert_eq!((redirect.state.as_str(), redirect.last_status), ("pending", Some(302)), "{redirect:?}");
    }
    assert_eq!(*stolen.lock().unwrap(), 0, "the redirect was not followed");
}
