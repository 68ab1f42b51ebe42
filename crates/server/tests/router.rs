//! The router in process (no socket): medsign assembled by `services::open` on a temporary data
//! directory, asked through `tower::ServiceExt::oneshot`. Focused checks of status, code and
//! request id that do not need the binary.

use axum::{body::Body, http::Request};
use medsign_config::config::Config;
use tower::ServiceExt;

/// The router, its bootstrap token, and what must live as long as it (the directory, the lock).
async fn app() -> (tempfile::TempDir, medsign_server::services::Opened, axum::Router, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config::load(None, std::iter::empty()).unwrap();
    cfg.data_dir = Some(dir.path().to_path_buf());
    cfg.time.sources = vec![]; // no clock: nothing here needs a timestamp
    cfg.server.max_body_bytes = 64 * 1024; // small enough to refuse a body in a test
    let mut opened = medsign_server::services::open(&cfg, "http://medsign.invalid").await.unwrap();
    let token = opened.first_token.take().expect("first start: bootstrap token").to_string();
    let state = opened.state(&cfg).unwrap();
    (dir, opened, medsign_server::router(state), token)
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
