//! The router in process (no socket): medsign assembled by `services::open` on a temporary data
//! directory, asked through `tower::ServiceExt::oneshot`. Focused checks of status, code and
//! request id that do not need the binary.

use axum::{body::Body, http::Request};
use medsign_config::config::Config;
use tower::ServiceExt;

/// The router, its bootstrap token, and what must live as long as it (the directory, the lock).
async fn app() -> (tempfile::TempDir, medsign_server::services::Opened, axum::Router, String) {
    let (dir, opened, state, token) = app_state().await;
    (dir, opened, medsign_server::router(state), token)
}

/// The handlers' state instead of the router (to build both the direct and the tunnel router).
async fn app_state()
-> (tempfile::TempDir, medsign_server::services::Opened, std::sync::Arc<medsign_server::AppState>, String) {
    app_state_with(|_| {}).await
}

/// [`app_state`] with a setting changed.
async fn app_state_with(
    change: impl FnOnce(&mut Config),
) -> (tempfile::TempDir, medsign_server::services::Opened, std::sync::Arc<medsign_server::AppState>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::load(None, std::iter::empty()).unwrap();
    change(&mut cfg);
    cfg.data_dir = Some(dir.path().to_path_buf());
    cfg.time.sources = vec![]; // no clock: nothing here needs a timestamp
    cfg.server.max_body_bytes = 64 * 1024; // small enough to refuse a body in a test
    let mut opened = medsign_server::services::open(&cfg, "http://medsign.invalid").await.unwrap();
    let token = opened.first_token.take().expect("first start: bootstrap token").to_string();
    let state = opened.state(&cfg).unwrap();
    (dir, opened, state, token)
}

async fn ask(app: &axum::Router, req: Request<Body>) -> (u16, Option<String>, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let id = resp.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, id, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn status_code_and_request_id_of_refusals() {
    let (_dir, _opened, app, admin) = app().await;
    let get = |uri: &str, token: Option<&str>| {
        let mut b = Request::get(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty()).unwrap()
    };
    for (req, status, code) in [
        (get("/api/v1/users/1001", None), 401, "unauthorized"),
        (get("/api/v1/users/1001", Some("app_x.nope")), 401, "unauthorized"),
        (get("/api/v1/users/1001", Some(&admin)), 404, "not_found"),
        (get("/mobile/v1/records", Some("mt_forged")), 401, "session_invalid"),
        (get("/pki/crl?ca=x", None), 400, "invalid_request"),
        // found by scripts/api-fuzz: the offset of this page overflowed i64 (a panic: no answer)
        (get("/api/v1/users?page=9223372036854775806&page_size=50", Some(&admin)), 400, "invalid_request"),
        (get("/no/such/route", None), 404, "not_found"),
    ] {
        let what = format!("{} {}", req.method(), req.uri());
        let (st, id, v) = ask(&app, req).await;
        assert_eq!((st, v["code"].as_str()), (status, Some(code)), "{what}: {v}");
        assert_eq!(v["request_id"].as_str(), id.as_deref(), "{what}: body and header carry one id");
    }
    // a client's own id is kept
    let req = Request::get("/api/v1/users/1001").header("x-request-id", "his-42").body(Body::empty()).unwrap();
    let (_, id, v) = ask(&app, req).await;
    assert_eq!((id.as_deref(), v["request_id"].as_str()), (Some("his-42"), Some("his-42")));
}

/// A request with headers and a body.
fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

/// Every way an error answer is made — a middleware's refusal (signature, admin scope, body
/// size), an extractor's rejection (credentials, scope, idempotency key, device session, JSON
/// body), `envelope()` in a handler (media type), and a plain `?` in a handler of each route
/// family — carries in its body the id of its `X-Request-Id` header; none attaches it by hand.
#[tokio::test]
async fn every_kind_of_refusal_carries_the_request_id_of_its_header() {
    let (_dir, _opened, app, admin) = app().await;
    let bearer = format!("Bearer {admin}");
    let json = ("content-type", "application/json");
    let auth = ("authorization", bearer.as_str());
    let (st, _, v) =
        ask(&app, request("POST", "/admin/v1/apps", &[auth, json], r#"{"name":"LIS","scopes":["users:read"]}"#)).await;
    assert_eq!(st, 201, "{v}");
    let lis = format!("Bearer {}", v["token"].as_str().unwrap());
    let lis = ("authorization", lis.as_str());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let signed: [(&str, &str); 5] =
        [("x-app-id", "app_nope"), ("x-timestamp", &now), ("x-nonce", "nonce-0001"), ("x-signature", "00"), json];
    let too_large = vec![b' '; 65 * 1024];
    let activate = r#"{"employee_no":"1001","code":"nope","device_name":"p"}"#;
    // (request, status, code, a part of the message that says who refused)
    for (req, status, code, says) in [
        // middlewares
        (request("POST", "/api/v1/users", &signed, "{}"), 401, "unauthorized", "X-App-Id"),
        (request("POST", "/api/v1/users", &signed, too_large.clone()), 413, "payload_too_large", "too large"),
        (request("GET", "/admin/v1/apps", &[lis], ""), 403, "forbidden", "lacks scope admin"),
        // extractors
        (request("POST", "/api/v1/sign-flows/sf_x/revoke", &[lis, json], "{}"), 403, "forbidden", "lacks scope sign"),
        (
            request("GET", "/api/v1/users/1001", &[auth, ("idempotency-key", "")], ""),
            400,
            "invalid_request",
            "Idempotency-Key",
        ),
        (
            request("POST", "/api/v1/users", &[auth, ("content-type", "text/plain")], "{}"),
            415,
            "unsupported_media_type",
            "JSON",
        ),
        (request("POST", "/api/v1/users", &[auth, json], "{\"broken\": "), 400, "invalid_request", "invalid JSON"),
        (request("POST", "/api/v1/users", &[auth, json], too_large), 413, "payload_too_large", "too large"),
        // envelope() in a handler
        (
            request("POST", "/tsa", &[("content-type", "text/plain")], "x"),
            415,
            "unsupported_media_type",
            "timestamp-query",
        ),
        (
            request("POST", "/pki/ocsp", &[("content-type", "text/plain")], "x"),
            415,
            "unsupported_media_type",
            "ocsp-request",
        ),
        // a handler's `?`, one route family after another
        (request("GET", "/api/v1/certificates/00", &[auth], ""), 404, "not_found", ""),
        (request("GET", "/api/v1/sign-flows/sf_nope", &[auth], ""), 404, "not_found", ""),
        (request("GET", "/api/v1/login-tickets/nope", &[auth], ""), 404, "not_found", ""),
        (request("GET", "/api/v1/sign-tickets/nope/events", &[], ""), 404, "not_found", ""),
        (request("POST", "/mobile/v1/activate", &[json], activate), 401, "unauthorized", "activation code"),
        (request("GET", "/admin/v1/templates/nope", &[auth], ""), 404, "not_found", ""),
        (request("GET", "/admin/v1/audit?page=x", &[auth], ""), 400, "invalid_request", "invalid query"),
        (
            request("POST", "/api/v1/timestamps/verify", &[auth, json], r#"{"token":"!"}"#),
            400,
            "invalid_request",
            "base64",
        ),
        (request("POST", "/admin/v1/departments", &[auth, json], "7"), 400, "invalid_request", "department"),
    ] {
        let what = format!("{} {}", req.method(), req.uri());
        let (st, id, v) = ask(&app, req).await;
        assert_eq!((st, v["code"].as_str()), (status, Some(code)), "{what}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| m.contains(says)), "{what}: {v}");
        let id = id.unwrap_or_else(|| panic!("{what}: no X-Request-Id"));
        assert!(!id.is_empty(), "{what}");
        assert_eq!(v["request_id"].as_str(), Some(id.as_str()), "{what}: body and header carry one id");
    }
}

#[tokio::test]
async fn every_page_is_served_with_csp_and_frame_denial() {
    let (_dir, _opened, app, _token) = app().await;
    for path in ["/api/docs/", "/m/", "/demo/his"] {
        let resp = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in ["default-src 'self'", "frame-ancestors 'none'", "'wasm-unsafe-eval'"] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        let script = csp.split(';').map(str::trim).find(|d| d.starts_with("script-src")).unwrap();
        assert!(!script.contains("'unsafe-inline'"), "{path}: no inline script: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert!(h.get("strict-transport-security").is_none(), "{path}: HSTS only over HTTPS");
    }
    // JSON too is never sniffed or framed
    let resp = app.clone().oneshot(Request::get("/healthz").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
}

/// Found by scripts/api-fuzz: the OpenAPI document called these bodies required though the
/// handlers take none (every field has a default); it now says what the server does.
#[tokio::test]
async fn optional_bodies_are_documented_optional() {
    let (_dir, _opened, app, _admin) = app().await;
    let (st, _, api) = ask(&app, Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(st, 200);
    // served as bytes made once at start-up (issue #20): still declared JSON
    let resp = app.clone().oneshot(Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    for path in ["/api/v1/login-tickets", "/mobile/v1/realname"] {
        let body = &api["paths"][path]["post"]["requestBody"];
        assert!(body["content"]["application/json"].is_object(), "{path}: {body}");
        assert_ne!(body["required"], true, "{path}: the handler takes no body; the spec must not require one");
        // but one that is sent must be the object: StrictJson refuses `null`
        let schema = &body["content"]["application/json"]["schema"];
        assert!(schema["$ref"].as_str().is_some(), "{path}: {schema}");
    }
    // and a required one stays required
    assert_eq!(api["paths"]["/api/v1/users"]["post"]["requestBody"]["required"], true);
}

/// A request as if from `peer` (what the listener's connection info says).
trait WithPeer {
    fn with_peer(self, ip: &str) -> Self;
}

impl WithPeer for Request<Body> {
    fn with_peer(mut self, ip: &str) -> Self {
        let addr = std::net::SocketAddr::new(ip.parse().unwrap(), 40000);
        self.extensions_mut().insert(axum::extract::ConnectInfo(addr));
        self
    }
}

/// A phone's end of the end-to-end channel (what web/mobile/api.js does), sealing to `key`.
struct Sealer {
    key: medsign_crypto::sm2::Sm2PublicKey,
    kid: String,
}

impl Sealer {
    fn seal(&self, inner: &serde_json::Value) -> (String, medsign_crypto::e2e::Opener) {
        use base64::Engine;
        let (blob, opener) = medsign_crypto::e2e::seal_request(&self.key, inner.to_string().as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
        (serde_json::json!({"v": 1, "kid": self.kid, "blob": b64}).to_string(), opener)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// POST a sealed body; the outer status and JSON, and the opened `{status, body}` when it opens.
async fn post_sealed(
    app: &axum::Router,
    body: &str,
    opener: &medsign_crypto::e2e::Opener,
) -> (u16, serde_json::Value, Option<serde_json::Value>) {
    use base64::Engine;
    let from_phone = [("content-type", "application/json"), ("x-forwarded-for", "127.0.0.9")];
    let (st, _, outer) = ask(app, request("POST", "/mobile/v1/sealed", &from_phone, body.to_string())).await;
    let inner = outer["blob"].as_str().map(|b| {
        let blob = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        serde_json::from_slice(&opener.open(&blob).expect("the answer opens for the phone that asked")).unwrap()
    });
    (st, outer, inner)
}

/// Issue #17 item 3: through the tunnel, the phone API is reached only sealed to the servers'
/// channel key; each opened call is held to the gateway's typed allow-list; a stale, replayed,
/// altered or misaddressed envelope is refused; and the phone's address from the gateway is the
/// one recorded.
#[tokio::test]
async fn through_the_tunnel_the_phone_api_is_reached_only_sealed() {
    let (_dir, _opened, state, admin) = app_state().await;
    let direct = medsign_server::router(state.clone());
    let tunnel = medsign_server::tunnel_router(state);
    let (st, _, ch) = ask(&tunnel, Request::get("/mobile/v1/channel").body(Body::empty()).unwrap()).await;
    assert_eq!(st, 200, "{ch}");
    let point = hex::decode(ch["public_key"].as_str().unwrap()).unwrap();
    let key = medsign_crypto::sm2::Sm2PublicKey::from_sec1(&point).unwrap();
    assert_eq!(ch["fingerprint"].as_str().unwrap(), hex::encode(medsign_crypto::e2e::fingerprint(&key)));
    assert!((ch["server_time_ms"].as_i64().unwrap() - now_ms()).abs() < 60_000);
    let phone = Sealer { key, kid: ch["kid"].as_str().unwrap().to_string() };

    // besides the phone's paths the tunnel serves only the CRL the gateway asks for (GET)
    let (st, _, _) = ask(&tunnel, Request::get("/pki/crl?ca=rsa").body(Body::empty()).unwrap()).await;
    assert_eq!(st, 200, "the tunnel CA's CRL");
    let others = [
        ("POST", "/pki/crl?ca=rsa"),
        ("GET", "/pki/crl"),
        ("GET", "/pki/crl?ca=rsa&issuer=root"),
        ("GET", "/pki/crl?ca=sm2"),
    ];
    for (method, path) in
        others.into_iter().chain([("GET", "/pki/ocsp"), ("GET", "/api/v1/users"), ("GET", "/healthz")])
    {
        let (st, _, _) = ask(&tunnel, request(method, path, &[], "")).await;
        assert_eq!(st, 404, "{method} {path} through the tunnel");
    }
    // a plain call through the tunnel is refused before any handler; directly it is served
    let (st, _, v) = ask(&tunnel, request("GET", "/mobile/v1/records", &[("authorization", "Bearer mt_x")], "")).await;
    assert_eq!((st, v["code"].as_str()), (403, Some("e2e_required")), "{v}");
    let (st, _, v) = ask(&direct, request("GET", "/mobile/v1/records", &[("authorization", "Bearer mt_x")], "")).await;
    assert_eq!((st, v["code"].as_str()), (401, Some("session_invalid")), "{v}");

    // the activation code carries the fingerprint to pin
    let json = [("content-type", "application/json"), ("authorization", &format!("Bearer {admin}"))];
    let (st, _, _) =
        ask(&direct, request("POST", "/api/v1/users", &json, r#"{"employee_no":"1001","name":"张三"}"#)).await;
    assert_eq!(st, 201);
    let (st, _, code) = ask(&direct, request("POST", "/api/v1/users/1001/activation-codes", &json, "")).await;
    assert_eq!(st, 201, "{code}");
    assert_eq!(code["channel_fingerprint"], ch["fingerprint"]);

    // bind, sealed; the answer opens only with the call's own opener
    let activate = serde_json::json!({"ts": now_ms(), "method": "POST", "path": "/mobile/v1/activate", "auth": null,
        "body": {"employee_no": "1001", "code": code["code"], "device_name": "sealed phone"}});
    let (body, opener) = phone.seal(&activate);
    let (st, outer, inner) = post_sealed(&tunnel, &body, &opener).await;
    assert_eq!(st, 200, "{outer}");
    let inner = inner.unwrap();
    assert_eq!(inner["status"], 201, "{inner}");
    let token = inner["body"]["token"].as_str().unwrap().to_string();
    assert!(
        !outer.to_string().contains(&token) && !outer.to_string().contains("1001"),
        "the envelope hides the answer"
    );
    let (_, other) = phone.seal(&activate);
    let blob =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, outer["blob"].as_str().unwrap()).unwrap();
    assert!(other.open(&blob).is_err(), "another call's opener cannot read this answer");

    // the same envelope again (a gateway replaying it): refused, and nothing happens twice
    let (st, v, _) = post_sealed(&tunnel, &body, &opener).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("e2e_replay")), "{v}");

    // a sealed call is served, as the phone at the gateway's X-Forwarded-For
    let records = |ts: i64| serde_json::json!({"ts": ts, "method": "GET", "path": "/mobile/v1/records?limit=5", "auth": token, "body": null});
    let (body, opener) = phone.seal(&records(now_ms()));
    let (st, _, inner) = post_sealed(&tunnel, &body, &opener).await;
    let inner = inner.unwrap();
    assert_eq!((st, &inner["status"]), (200, &serde_json::json!(200)), "{inner}");
    let logins = inner["body"]["logins"].as_array().unwrap();
    assert!(!logins.is_empty() && logins.iter().all(|l| l["ip"] == "127.0.0.9"), "{inner}");
    // an inner refusal stays inside the envelope: the gateway sees a 200 whatever the outcome
    let (body, opener) = phone.seal(&serde_json::json!({"ts": now_ms(), "method": "GET", "path": "/mobile/v1/records",
        "auth": "mt_stolen", "body": null}));
    let (st, _, inner) = post_sealed(&tunnel, &body, &opener).await;
    let inner = inner.unwrap();
    assert_eq!(
        (st, inner["status"].as_u64(), inner["body"]["code"].as_str()),
        (200, Some(401), Some("session_invalid"))
    );

    // stale and future envelopes (the phone's clock or a gateway holding them back): refused
    // sealed, with the server's clock, so the phone can tell it from a refusal a gateway made up
    for ts in [now_ms() - 6 * 60_000, now_ms() + 6 * 60_000, i64::MIN, i64::MAX] {
        let (body, opener) = phone.seal(&records(ts));
        let (st, _, inner) = post_sealed(&tunnel, &body, &opener).await;
        let inner = inner.unwrap();
        assert_eq!((st, inner["status"].as_u64(), inner["body"]["code"].as_str()), (200, Some(400), Some("e2e_stale")));
        assert!((inner["time_ms"].as_i64().unwrap() - now_ms()).abs() < 60_000, "{inner}");
    }
    // a call over its route's cap, or shaped to parse into far more than its size: refused
    // before it is parsed
    let big = serde_json::json!({"ts": now_ms(), "method": "POST", "path": "/mobile/v1/unlock", "auth": token,
        "body": {"verifier": "a".repeat(100_000), "approve": "b"}});
    let wide = serde_json::json!({"ts": now_ms(), "method": "POST", "path": "/mobile/v1/handwriting", "auth": token,
        "body": {"image_base64": serde_json::Value::Array(vec![0.into(); 70_000])}});
    for call in [big, wide] {
        let (b, opener) = phone.seal(&call);
        let (st, _, inner) = post_sealed(&tunnel, &b, &opener).await;
        let inner = inner.unwrap();
        assert_eq!(
            (st, inner["status"].as_u64(), inner["body"]["code"].as_str()),
            (200, Some(400), Some("e2e_invalid")),
            "{inner}"
        );
    }
    // another key's id, a changed byte, not an envelope at all
    let (body, opener) = phone.seal(&records(now_ms()));
    let mut env: serde_json::Value = serde_json::from_str(&body).unwrap();
    env["kid"] = "0123456789abcdef".into();
    let (st, v, _) = post_sealed(&tunnel, &env.to_string(), &opener).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("e2e_key_changed")), "{v}");
    let mut env: serde_json::Value = serde_json::from_str(&body).unwrap();
    let b64 = env["blob"].as_str().unwrap();
    let flipped = if b64.as_bytes()[120] == b'A' { 'B' } else { 'A' };
    env["blob"] = format!("{}{}{}", &b64[..120], flipped, &b64[121..]).into();
    let (st, v, _) = post_sealed(&tunnel, &env.to_string(), &opener).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("e2e_invalid")), "{v}");
    for bad in ["", "{}", r#"{"v":2,"kid":"x","blob":""}"#, r#"{"v":1,"kid":"x","blob":"","extra":1}"#] {
        let (st, v, _) = post_sealed(&tunnel, bad, &opener).await;
        assert!(matches!(st, 400 | 409), "{bad}: {st} {v}");
    }

    // what a sealed call may carry is the phone API, typed: not the HIS API, not a smuggled
    // field, not another sealed call, not a path that climbs out
    for (path, method, body) in [
        ("/api/v1/users", "GET", serde_json::Value::Null),
        ("/mobile/v1/../api/v1/users", "GET", serde_json::Value::Null),
        ("/mobile/v1/sealed", "POST", serde_json::json!({"v": 1, "kid": phone.kid, "blob": ""})),
        ("/mobile/v1/channel", "GET", serde_json::Value::Null),
        ("/mobile/v1/sign-rounds", "POST", serde_json::json!({"targets": [], "content_base64": "JVBERi0xLjc="})),
        ("/mobile/v1/records?limit=5&dump=1", "GET", serde_json::Value::Null),
        ("/mobile/v1/pending", "GET", serde_json::json!({"x": 1})),
    ] {
        let (b, opener) = phone
            .seal(&serde_json::json!({"ts": now_ms(), "method": method, "path": path, "auth": token, "body": body}));
        let (st, outer, inner) = post_sealed(&tunnel, &b, &opener).await;
        let inner = inner.unwrap_or_else(|| panic!("{path}: {outer}"));
        assert_eq!(
            (st, inner["status"].as_u64(), inner["body"]["code"].as_str()),
            (200, Some(400), Some("e2e_invalid")),
            "{path}: {inner}"
        );
    }
    // on the server's own listener the phone's address is decided as for a plain call: a client
    // cannot name itself through X-Forwarded-For (no trusted proxy here), and the envelope's
    // header is not passed to the call
    let (st, _, _) =
        ask(&direct, request("POST", "/api/v1/users", &json, r#"{"employee_no":"1002","name":"李四"}"#)).await;
    assert_eq!(st, 201);
    let (_, _, code2) = ask(&direct, request("POST", "/api/v1/users/1002/activation-codes", &json, "")).await;
    let direct_call = |call: serde_json::Value| {
        let (b, opener) = phone.seal(&call);
        let req = request(
            "POST",
            "/mobile/v1/sealed",
            &[("content-type", "application/json"), ("x-forwarded-for", "127.0.0.66")],
            b,
        )
        .with_peer("127.0.0.5");
        let direct = direct.clone();
        async move {
            let (st, _, outer) = ask(&direct, req).await;
            assert_eq!(st, 200, "{outer}");
            let blob =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, outer["blob"].as_str().unwrap())
                    .unwrap();
            serde_json::from_slice::<serde_json::Value>(&opener.open(&blob).unwrap()).unwrap()
        }
    };
    let act =
        direct_call(serde_json::json!({"ts": now_ms(), "method": "POST", "path": "/mobile/v1/activate", "auth": null,
        "body": {"employee_no": "1002", "code": code2["code"], "device_name": "direct"}}))
        .await;
    assert_eq!(act["status"], 201, "{act}");
    let rec = direct_call(serde_json::json!({"ts": now_ms(), "method": "GET", "path": "/mobile/v1/records?limit=5",
        "auth": act["body"]["token"], "body": null}))
    .await;
    let ips: Vec<_> = rec["body"]["logins"].as_array().unwrap().iter().map(|l| l["ip"].clone()).collect();
    assert_eq!(ips, vec![serde_json::Value::from("127.0.0.5")], "{rec}");

    // the sealed route on its own is documented, and refuses to be nested
    let (st, _, api) = ask(&direct, Request::get("/api/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(st, 200);
    assert!(
        api["paths"]["/mobile/v1/sealed"]["post"].is_object() && api["paths"]["/mobile/v1/channel"]["get"].is_object()
    );
}

/// Issue #17: a channel key rotated by another instance (or `medsign channel rotate`) opens calls
/// here as soon as a phone uses it (a miss makes this instance look at once), while the previous
/// key still does; phones are told of the new key only once every instance has had time to see
/// it, and then in every sealed answer; after a compromise the old key is refused.
#[tokio::test]
async fn a_channel_key_rotated_elsewhere_opens_calls_here_at_once() {
    let (_dir, _opened, state, _admin) = app_state().await;
    let (db, kek) = (state.db.clone(), state.kek.clone());
    let tunnel = medsign_server::tunnel_router(state);
    let sealer = |k: &medsign_crypto::sm2::Sm2SecretKey| Sealer {
        key: *k.public_key(),
        kid: hex::encode(medsign_crypto::e2e::fingerprint(k.public_key()))[..16].to_string(),
    };
    let call = serde_json::json!({"ts": now_ms(), "method": "GET", "path": "/mobile/v1/records"});
    let channel = || async { ask(&tunnel, Request::get("/mobile/v1/channel").body(Body::empty()).unwrap()).await.2 };
    let ctx = medsign_store::audit::Context::cli();
    // this instance has just looked (the channel read), so only a miss makes it look again
    channel().await;
    medsign_phone::channel::rotate(&db, &kek, &ctx, false).await.unwrap();
    let keys = medsign_phone::channel::load(&db, &kek).await.unwrap();
    let (new, old) = (sealer(&keys.accepted[0].key), sealer(&keys.accepted[1].key));
    let answers_naming = |named: String| {
        let (new, old, call, tunnel) = (&new, &old, &call, &tunnel);
        async move {
            for phone in [new, old] {
                let (body, opener) = phone.seal(call);
                let (st, outer, inner) = post_sealed(tunnel, &body, &opener).await;
                assert_eq!(st, 200, "{outer}");
                let inner = inner.unwrap();
                assert_eq!(
                    (inner["status"].as_u64(), inner["kid"].as_str()),
                    (Some(401), Some(named.as_str())),
                    "{inner}"
                );
            }
        }
    };
    answers_naming(old.kid.clone()).await;
    let ch = channel().await;
    assert_eq!((ch["kid"].as_str(), ch["history"].as_array().map(Vec::len)), (Some(old.kid.as_str()), Some(2)), "{ch}");
    tokio::time::sleep(medsign_phone::channel::ADVERTISE_AFTER).await;
    answers_naming(new.kid.clone()).await;
    let ch = channel().await;
    assert_eq!((ch["kid"].as_str(), ch["history"].as_array().map(Vec::len)), (Some(new.kid.as_str()), Some(2)), "{ch}");
    // withdrawn after a compromise: within the refresh interval the old key is refused in the
    // clear, as a key the server lacks
    medsign_phone::channel::rotate(&db, &kek, &ctx, true).await.unwrap();
    tokio::time::sleep(medsign_phone::channel::REFRESH + std::time::Duration::from_millis(100)).await;
    let (body, opener) = new.seal(&call);
    let (st, outer, _) = post_sealed(&tunnel, &body, &opener).await;
    assert_eq!((st, outer["code"].as_str()), (409, Some("e2e_key_changed")), "{outer}");
    // a database that goes back to an older generation (a restored backup) is not followed
    sqlx::query("DELETE FROM channel_keys WHERE generation = 3").execute(&db.pool).await.unwrap();
    sqlx::query("UPDATE channel_keys SET accepted = 1 WHERE generation = 2").execute(&db.pool).await.unwrap();
    tokio::time::sleep(medsign_phone::channel::REFRESH + std::time::Duration::from_millis(100)).await;
    let ch = channel().await;
    assert_ne!(ch["kid"].as_str(), Some(new.kid.as_str()), "{ch}");
}

/// A flood of envelopes from one address is cut off before any of them is opened (no key
/// agreement, no write); another address is not affected.
#[tokio::test]
async fn a_flood_of_envelopes_from_one_address_is_limited() {
    let (_dir, _opened, state, _admin) = app_state().await;
    let tunnel = medsign_server::tunnel_router(state);
    let from = |ip: &str| {
        request("POST", "/mobile/v1/sealed", &[("content-type", "application/json"), ("x-forwarded-for", ip)], "{}")
    };
    // the burst (600) passes; of the next 600, only what refilled meanwhile (50 a second)
    let mut seen = Vec::new();
    for _ in 0..1200 {
        let (st, _, v) = ask(&tunnel, from("127.0.0.7")).await;
        seen.push((st, v["code"].as_str().unwrap_or("").to_string()));
    }
    assert!(seen[..600].iter().all(|(st, c)| *st == 400 && c == "e2e_invalid"), "{:?}", &seen[..5]);
    let refused = seen.iter().filter(|(st, c)| *st == 429 && c == "too_many_requests").count();
    assert!(refused > 0 && seen.iter().all(|(st, _)| matches!(st, 400 | 429)), "refused {refused}");
    let (st, _, v) = ask(&tunnel, from("127.0.0.8")).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("e2e_invalid")), "another phone address");
}

/// R2.4 with `sign.phone_view = "summary"`: the document view is refused before any round is
/// looked at; with the default, an unknown round is simply not found.
#[tokio::test]
async fn a_hospital_can_limit_the_phone_to_the_summary() {
    for (setting, status) in [("summary", 403), ("content", 404)] {
        let (_dir, _opened, state, admin) = app_state_with(|c| c.sign.phone_view = setting.into()).await;
        let app = medsign_server::router(state);
        let json = [("content-type", "application/json"), ("authorization", &format!("Bearer {admin}"))];
        let (st, _, _) =
            ask(&app, request("POST", "/api/v1/users", &json, r#"{"employee_no":"1001","name":"张三"}"#)).await;
        assert_eq!(st, 201);
        let (_, _, code) = ask(&app, request("POST", "/api/v1/users/1001/activation-codes", &json, "")).await;
        let body = serde_json::json!({"employee_no": "1001", "code": code["code"], "device_name": "p"}).to_string();
        let (st, _, s) = ask(
            &app,
            request("POST", "/mobile/v1/activate", &[("content-type", "application/json")], body)
                .with_peer("127.0.0.1"),
        )
        .await;
        assert_eq!(st, 201, "{s}");
        let bearer = format!("Bearer {}", s["token"].as_str().unwrap());
        let (st, _, v) = ask(
            &app,
            request("GET", "/mobile/v1/sign-rounds/sr_0123/view", &[("authorization", &bearer)], "")
                .with_peer("127.0.0.1"),
        )
        .await;
        assert_eq!(st, status, "{setting}: {v}");
    }
}

/// Issue #17: an instance made the flow, then died before it kept the answer of the request's
/// Idempotency-Key. While the reservation may still be running, a retry is told so by its own
/// code; once taken over, the retry finds the flow the dead attempt made instead of making a
/// second one.
#[tokio::test]
async fn a_flow_whose_instance_died_before_answering_is_not_made_twice() {
    let (_dir, _opened, state, admin) = app_state().await;
    let db = state.db.clone();
    let app = medsign_server::router(state);
    let auth = format!("Bearer {admin}");
    let json =
        [("content-type", "application/json"), ("authorization", auth.as_str()), ("idempotency-key", "his-rx-1")];
    let user = r#"{"employee_no":"1001","name":"张三"}"#;
    assert_eq!(ask(&app, request("POST", "/api/v1/users", &json[..2], user)).await.0, 201);
    let flow =
        r#"{"kind":"data","title":"处方","content":"Rp: 阿莫西林","signers":[{"employee_no":"1001","mode":"scan"}]}"#;
    let (st, _, first) = ask(&app, request("POST", "/api/v1/sign-flows", &json, flow)).await;
    assert_eq!(st, 201, "{first}");
    // the state a kill -9 between the flow's commit and the answer's leaves: a reservation
    // without an answer
    let unanswered = "UPDATE idempotency_keys SET status = 0, response = 'dead-attempt', created_at = $1";
    let now = chrono::Utc::now().timestamp();
    sqlx::query(unanswered).bind(now).execute(&db.pool).await.unwrap();
    let (st, _, v) = ask(&app, request("POST", "/api/v1/sign-flows", &json, flow)).await;
    assert_eq!((st, v["code"].as_str()), (409, Some("idempotency_in_progress")), "{v}");
    // past the takeover time: the retry runs, and finds the flow — even one whose instance died
    // between the flow's commit and its scan ticket's (the chaos run met it): the ticket is
    // opened now, so the HIS can show the QR
    let old = now - medsign_store::idempotency::RUNNING_SECS - 1;
    sqlx::query(unanswered).bind(old).execute(&db.pool).await.unwrap();
    sqlx::query("DELETE FROM sign_tickets").execute(&db.pool).await.unwrap();
    let (st, _, again) = ask(&app, request("POST", "/api/v1/sign-flows", &json, flow)).await;
    assert_eq!((st, &again["id"]), (201, &first["id"]), "{again}");
    assert!(again["ticket"]["deep_link"].as_str().is_some_and(|l| l.contains("/m/#/sign?t=tk_")), "{again}");
    let flows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sign_flows").fetch_one(&db.pool).await.unwrap();
    assert_eq!(flows, 1, "a second flow was made");
    // and its answer is kept now: a further retry is a replay
    let resp = app.clone().oneshot(request("POST", "/api/v1/sign-flows", &json, flow)).await.unwrap();
    assert_eq!(resp.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    // a creation that failed (its reservation released) is not the answer of the retry: a new flow
    sqlx::query("UPDATE sign_flows SET state = 'failed'").execute(&db.pool).await.unwrap();
    sqlx::query("DELETE FROM idempotency_keys").execute(&db.pool).await.unwrap();
    let (st, _, fresh) = ask(&app, request("POST", "/api/v1/sign-flows", &json, flow)).await;
    assert_eq!(st, 201, "{fresh}");
    assert_ne!(fresh["id"], first["id"], "the failed flow was given back as made");
    // nor is the flow of the same key with another body, once the key's answer has gone
    sqlx::query("DELETE FROM idempotency_keys").execute(&db.pool).await.unwrap();
    let other = flow.replace("阿莫西林", "头孢克肟");
    let (st, _, v) = ask(&app, request("POST", "/api/v1/sign-flows", &json, other.clone())).await;
    assert_eq!(st, 201, "{v}");
    assert!(v["id"] != fresh["id"] && v["id"] != first["id"], "another request's flow: {v}");
    // another integration app that sends the same key and body (guessed or copied) gets its own
    // flow, never this app's
    let (st, _, emr) =
        ask(&app, request("POST", "/admin/v1/apps", &json[..2], r#"{"name":"EMR","scopes":["sign"]}"#)).await;
    assert_eq!(st, 201, "{emr}");
    let other_auth = format!("Bearer {}", emr["token"].as_str().unwrap());
    let theirs =
        [("content-type", "application/json"), ("authorization", other_auth.as_str()), ("idempotency-key", "his-rx-1")];
    sqlx::query("DELETE FROM idempotency_keys").execute(&db.pool).await.unwrap();
    let (st, _, own) = ask(&app, request("POST", "/api/v1/sign-flows", &theirs, other)).await;
    assert_eq!(st, 201, "{own}");
    assert!(own["id"] != v["id"] && own["id"] != fresh["id"] && own["id"] != first["id"], "another app's flow: {own}");
}
