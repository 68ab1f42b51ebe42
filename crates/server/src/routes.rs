//! The router and its handlers.

use crate::{
    ApiError,
    error::{ErrorBody, envelope},
    extract::{Caller, RequestId},
    state::AppState,
};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use medsign_directory::{
    apps::Scope,
    users::{self, NewUser},
};
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The OpenAPI 3.1 description of the HTTP API, generated from the handlers above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "medsign API", description = "医院电子签名平台接口 / hospital electronic-signature platform API (R7). \
        Authenticate with `Authorization: Bearer <app_id>.<secret>` or HMAC-SM3 request signing (X-App-Id, X-Timestamp, X-Nonce, X-Signature; see docs/integration.md). \
        Errors: `{code, message, request_id}` with a 4xx/5xx status."),
    // every other path is collected from its module's routes(); this one is routed by hand (wildcard)
    paths(crate::pki::ocsp_get),
    components(schemas(ErrorBody, crate::directory::NewApp, medsign_directory::apps::AppInfo, NewUser, users::User, users::UserPatch, users::Page, users::Role, medsign_store::RowError,
        medsign_directory::departments::NewDepartment, medsign_directory::departments::Department, medsign_store::audit::Entry,
        medsign_store::audit::ChainReport)),
    modifiers(&Security),
    tags((name = "users", description = "人员 / staff users (R7.4.1, R7.4.2)"), (name = "admin", description = "管理 / administration (admin scope)"),
        (name = "health", description = "探活 / health"), (name = "pki", description = "证书 / CA certificates, CRL"), (name = "certificates", description = "证书生命周期 / certificate lifecycle (R1.2, R5)"),
        (name = "login", description = "扫码登录 / scan-to-login (R2.5, R3.3)"), (name = "mobile", description = "手机端 / the doctor's phone (issue #7)"), (name = "console", description = "管理控制台登录 / console login (people: password + TOTP)"))
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("<app_id>.<secret>").build(),
            ),
        );
        c.add_security_scheme("hmac_sm3", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Signature"))));
        c.add_security_scheme(
            "device",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("device session token (mt_…)").build(),
            ),
        );
    }
}

/// An optional body (`Option<StrictJson<T>>`, documented as `request_body(content = Option<T>)`)
/// may be left out, but when one is sent it must be a `T`: `StrictJson` refuses a JSON `null`.
/// utoipa writes such a body as `oneOf: [T, null]`; keep only the `T`, so the document does not
/// promise that `null` is accepted.
fn optional_bodies_are_not_null(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{
        RefOr, Required,
        schema::{Schema, SchemaType, Type},
    };
    let is_null =
        |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    for item in api.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        let bodies = ops.into_iter().flatten().filter_map(|op| op.request_body.as_mut());
        for body in bodies.filter_map(|b| if let RefOr::T(b) = b { Some(b) } else { None }) {
            if matches!(body.required, Some(Required::True)) {
                continue;
            }
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else { continue };
                if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema
                    && one.items.len() == 2
                    && let Some(i) = one.items.iter().position(is_null)
                {
                    content.schema = Some(one.items[1 - i].clone());
                }
            }
        }
    }
}

/// The whole HTTP surface. Each context's module registers its routes beside its handlers
/// (`routes()`, `admin_routes()`), and the OpenAPI document is collected from the same registration,
/// so a route cannot be served undocumented or documented unserved.
pub fn router(state: Arc<AppState>) -> Router {
    crate::e2e::unsealing(state.clone(), routes(state), crate::e2e::Listener::Direct)
}

fn routes(state: Arc<AppState>) -> Router {
    let max_body_bytes = state.max_body_bytes;
    // every /admin/v1 call needs the admin scope
    let admin = OpenApiRouter::new()
        .merge(crate::directory::admin_routes())
        .merge(crate::audit::admin_routes())
        .merge(crate::pki::admin_routes())
        .merge(crate::tsa::admin_routes())
        .merge(crate::documents::admin_routes())
        .merge(crate::flows::admin_routes())
        .merge(crate::console::admin_routes())
        .merge(crate::mobile::admin_routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    let (api, openapi) = OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .merge(crate::directory::routes())
        .merge(crate::pki::routes())
        .merge(crate::tsa::routes())
        .merge(crate::flows::routes())
        .merge(crate::evidence::routes())
        .merge(crate::documents::routes())
        .merge(crate::mobile::routes())
        .merge(crate::logins::routes())
        .merge(crate::console::routes())
        .merge(admin)
        .split_for_parts();
    let mut openapi = openapi;
    optional_bodies_are_not_null(&mut openapi);
    // served as the bytes it serialises to, made once: the document itself (thousands of small
    // strings, maps and options) held 5 MB of an idle server's 8 MB of heap (issue #20, goal 5)
    let openapi_json = axum::body::Bytes::from(
        serde_json::to_vec(&openapi)
            .expect("the OpenAPI document has string keys only and always serialises")
            .into_boxed_slice(),
    );
    drop(openapi);
    api
        // the console's mirror of the users API (documented once, under /api/v1)
        .nest(
            "/admin/v1",
            crate::directory::users_mirror().route_layer(middleware::from_fn_with_state(state.clone(), require_admin)),
        )
        // an OCSP GET request is base64 and may contain '/': one wildcard segment (documented in ApiDoc)
        .route("/pki/ocsp/{*request}", get(crate::pki::ocsp_get))
        .route("/sdk/{*path}", get(crate::assets::pc_file))
        .route("/demo/{*path}", get(crate::assets::pc_file))
        .route(medsign_signing::evidence::VERIFY_PATH, get(crate::assets::verify_file))
        .route("/verify/{*path}", get(crate::assets::verify_file))
        .route("/", get(crate::assets::home))
        .route("/admin", get(crate::assets::console_root))
        .route("/admin/", get(crate::assets::console_file))
        .route("/admin/console.js", get(crate::assets::console_file))
        .route("/admin/pages.js", get(crate::assets::console_file))
        .route("/admin/ui.js", get(crate::assets::console_file))
        .route("/admin/flows.js", get(crate::assets::console_file))
        .route("/admin/editor.js", get(crate::assets::console_file))
        .route("/admin/console.css", get(crate::assets::console_file))
        .route("/favicon.svg", get(crate::assets::favicon))
        .route("/favicon.ico", get(crate::assets::favicon))
        .route("/m", get(crate::assets::mobile_root))
        .route("/m/", get(crate::assets::mobile_index))
        .route("/m/{*path}", get(crate::assets::mobile_file))
        .route("/metrics", get(crate::metrics::render))
        .route(
            "/api/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi_json) }),
        )
        // Swagger UI reads the one spec served above (without a URL it shows "no API definition")
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/api/docs").config(utoipa_swagger_ui::Config::from("/api/openapi.json")),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), signed_request))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::map_response(crate::http::security_headers))
        .with_state(state)
}

/// What a DMZ gateway's tunnel reaches (`medsign serve` opens it; docs/gateway.md): the phone's
/// API, the H5 app and `GET /pki/crl?ca=rsa` (the gateway checks the tunnel certificates
/// against it) — nothing else of the server, whatever the gateway sends (behind the
/// gateway's own allow-list, a second fence). The phone's address, which the gateway puts in
/// `X-Forwarded-For`, becomes the request's peer address: the tunnel is mutually authenticated,
/// so the gateway is trusted for that one fact (audit records, rate limits).
///
/// The phone API itself is reached only sealed ([`crate::e2e`]): a plain call through the tunnel
/// other than `GET /mobile/v1/channel` is refused (`e2e_required`), so what a phone tells the
/// server never crosses the DMZ readable, whatever an old or altered app does.
pub fn tunnel_router(state: Arc<AppState>) -> Router {
    crate::e2e::unsealing(
        state.clone(),
        routes(state).layer(middleware::from_fn(through_tunnel)),
        crate::e2e::Listener::Tunnel,
    )
}

async fn through_tunnel(mut req: Request, next: Next) -> Response {
    let p = req.uri().path();
    // the CRL is what the gateway itself asks for (gateway::revocation); its allow-list keeps
    // phones from it
    let crl = p == "/pki/crl" && req.method() == axum::http::Method::GET && req.uri().query() == Some("ca=rsa");
    if !(crl || p == "/m" || p.starts_with("/m/") || p.starts_with("/mobile/v1/")) {
        return not_found().await;
    }
    if req.extensions().get::<crate::e2e::Unsealed>().is_some() {
        // opened from an envelope: the channel set the phone's address already
        return next.run(req).await;
    }
    if p.starts_with("/mobile/v1/") && p != crate::e2e::CHANNEL_PATH {
        return ApiError(medsign_store::Error::coded(
            medsign_store::error::Refusal::Forbidden,
            "e2e_required",
            "经 DMZ 网关访问时手机接口只能走端到端加密通道 / through the DMZ gateway the phone API is reached only end-to-end encrypted (POST /mobile/v1/sealed)",
        ))
        .into_response();
    }
    let phone = crate::e2e::tunnel_phone(req.headers());
    req.headers_mut().remove("x-forwarded-for");
    req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::new(phone, 0)));
    next.run(req).await
}

/// Every `/admin/v1` route needs an app with the admin scope.
async fn require_admin(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = req.into_parts();
    match Caller::from_request_parts(&mut parts, &s).await {
        Ok(c) => {
            // a person of the console by role and path; an app by the admin scope
            let path = parts
                .extensions
                .get::<axum::extract::OriginalUri>()
                .map(|u| u.0.path().to_string())
                .unwrap_or_else(|| parts.uri.path().to_string());
            let allowed = match c.role {
                Some(role) => crate::console::role_allows(role, &parts.method, &path),
                None => c.app.require(Scope::Admin),
            };
            match allowed {
                Ok(()) => next.run(Request::from_parts(parts, body)).await,
                Err(e) => ApiError::from(e).into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

/// Give every request an id (or keep a sane one the client sent), expose it in `X-Request-Id`,
/// and make it the id of every error envelope made while the request is handled.
async fn request_id(mut req: Request, next: Next) -> Response {
    let sent = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
        .map(str::to_string);
    let id = sent.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let start = std::time::Instant::now();
    let span = tracing::info_span!("request", request_id = %id, %method, path = %path);
    let mut resp =
        crate::error::with_request_scope(id.clone(), tracing::Instrument::instrument(next.run(req), span.clone()))
            .await;
    let status = resp.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::error!(status, ms, "request failed");
        } else if status >= 400 {
            tracing::info!(status, ms, "request refused");
        } else {
            tracing::debug!(status, ms, "request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// HMAC-SM3 signed requests (`X-App-Id`, `X-Timestamp`, `X-Nonce`, `X-Signature`; docs/integration.md): the
/// body is read here (within the size limit) because the signature covers it, checked, and put
/// back; the authenticated app rides in the request's extensions to the [`Caller`] extractor.
async fn signed_request(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !req.headers().contains_key("x-app-id") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, s.max_body_bytes).await else {
        return envelope(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "请求体过大 / the request body is too large",
        );
    };
    let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (app_id, timestamp, nonce, signature) = (h("x-app-id"), h("x-timestamp"), h("x-nonce"), h("x-signature"));
    let signed = medsign_directory::apps::SignedRequest {
        app_id: &app_id,
        timestamp: &timestamp,
        nonce: &nonce,
        signature: &signature,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        body: &bytes,
    };
    match s.auth.check_signed(&s.db, &s.kek, &signed).await {
        Ok(app) => {
            parts.extensions.insert(crate::extract::SignedApp(app));
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn not_found() -> Response {
    envelope(StatusCode::NOT_FOUND, "not_found", "没有这个接口 / no such route")
}

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive", body = Object, example = json!({"status": "ok"}))))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "database reachable, migrations current", body = Object, example = json!({"status": "ready", "database": "ok", "migrations": "current"})),
    (status = 503, description = "not ready", body = ErrorBody)))]
async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    match s.db.ready().await {
        Ok(true) => {
            // the clock does not decide readiness (the rest of the platform works without it),
            // but it is shown: the TSA refuses while it is not INSYNC / SOON_OUT_OF_SYNC
            let clock = s.tsa.clock.status();
            Json(serde_json::json!({"status": "ready", "database": "ok", "migrations": "current",
                "clock": {"state": clock.state, "offset_ms": clock.offset_ms, "uncertainty_ms": clock.uncertainty_ms, "source": clock.source, "last_sync": clock.last_sync}}))
            .into_response()
        }
        Ok(false) => envelope(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "数据库迁移未完成 / migrations pending"),
        Err(e) => ApiError::from(e).into_response(),
    }
}
