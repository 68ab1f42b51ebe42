//! The router and its handlers.

use crate::{
    ApiError,
    error::{ErrorBody, envelope},
    extract::{Caller, RequestId, StrictJson},
    state::AppState,
};
use axum::{
    Extension, Json, Router,
    extract::{DefaultBodyLimit, Path, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use medsign_directory::{
    apps::Scope,
    users::{self, NewUser, User},
};
use serde::Deserialize;
use std::sync::Arc;

/// The OpenAPI 3.1 description of the HTTP API, generated from the handlers above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "medsign API", description = "医院电子签名平台接口 / hospital electronic-signature platform API (R7). \
        Authenticate with `Authorization: Bearer <app_id>.<secret>` or HMAC-SM3 request signing (X-App-Id, X-Timestamp, X-Nonce, X-Signature; see docs/integration.md). \
        Errors: `{code, message, request_id}` with a 4xx/5xx status."),
    paths(healthz, readyz, create_users, list_users, get_user, update_user, delete_user, import_users, import_template,
        create_departments, list_departments, create_app, list_apps, disable_app, enable_app, audit_query, audit_csv, audit_verify, ca_all, ca_sm2, ca_rsa, issue_certificate, get_certificate, revoke_certificate, hold_certificate, release_certificate, expiring_certificates, ra_enroll, tsa_default, tsa_sm2, tsa_rsa, create_timestamp, verify_timestamp, admin_time, list_timestamps, create_seal, list_seals, ca_profile, authorize_custody, revoke_custody, list_webhooks, create_flow, get_flow, revoke_flow, flow_file, verify_data, verify_file, create_batch, get_batch, list_channels, create_channel, activate_channel, enable_channel, disable_channel, check_channel, renew_certificate, list_certificates, crl, ocsp_post, ocsp_get,
        crate::documents::from_template, crate::documents::list_templates, crate::documents::get_template, crate::documents::save_template,
        crate::documents::admin_list_templates, crate::documents::disable_template, crate::documents::enable_template,
        crate::documents::put_seal_image, crate::documents::get_seal_image, crate::documents::post_handwriting,
        crate::documents::get_handwriting, crate::documents::renew_ticket,
        crate::mobile::activation_code, crate::mobile::activate, crate::mobile::keygen_start, crate::mobile::keygen_finish,
        crate::mobile::pending, crate::mobile::start_rounds, crate::mobile::answer_rounds, crate::mobile::finish_rounds,
        crate::logins::create, crate::logins::get, crate::logins::events, crate::logins::scan, crate::logins::refuse,
        crate::mobile::systems, crate::mobile::start_grant, crate::mobile::grant_share, crate::mobile::list_grants, crate::mobile::cancel_grant,
        crate::mobile::set_pin, crate::mobile::unlock, crate::mobile::records, crate::mobile::unbind,
        crate::documents::post_own_handwriting, crate::documents::ticket_events,
        crate::mobile::realname_start, crate::mobile::realname_finish, crate::mobile::realname_status, crate::mobile::renew_certificate,
        crate::mobile::soter_status, crate::mobile::soter_challenge, crate::mobile::soter_enrol, crate::mobile::soter_unlock, crate::mobile::soter_disable),
    components(schemas(ErrorBody, NewApp, medsign_directory::apps::AppInfo, NewUser, users::User, users::UserPatch, users::Page, users::Role, medsign_store::RowError,
        medsign_directory::departments::NewDepartment, medsign_directory::departments::Department, medsign_store::audit::Entry,
        medsign_store::audit::ChainReport)),
    modifiers(&Security),
    tags((name = "users", description = "人员 / staff users (R7.4.1, R7.4.2)"), (name = "admin", description = "管理 / administration (admin scope)"),
        (name = "health", description = "探活 / health"), (name = "pki", description = "证书 / CA certificates, CRL"), (name = "certificates", description = "证书生命周期 / certificate lifecycle (R1.2, R5)"),
        (name = "login", description = "扫码登录 / scan-to-login (R2.5, R3.3)"), (name = "mobile", description = "手机端 / the doctor's phone (issue #7)"))
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

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    let max_body_bytes = state.max_body_bytes;
    // the admin API mirrors the user routes for the console, and adds the audit log; every
    // /admin/v1 call needs the admin scope
    let admin = users_routes()
        .route("/departments", post(create_departments).get(list_departments))
        .route("/apps", post(create_app).get(list_apps))
        .route("/apps/{app_id}/disable", post(disable_app))
        .route("/apps/{app_id}/enable", post(enable_app))
        .route("/audit", get(audit_query))
        .route("/audit.csv", get(audit_csv))
        .route("/audit/verify", get(audit_verify))
        .route("/ca-channels", get(list_channels).post(create_channel))
        .route("/ca-channels/{id}/activate", post(activate_channel))
        .route("/ca-channels/{id}/enable", post(enable_channel))
        .route("/ca-channels/{id}/disable", post(disable_channel))
        .route("/ca-channels/{id}/check", post(check_channel))
        .route("/time", get(admin_time))
        .route("/seals", post(create_seal).get(list_seals))
        .route("/seals/{seal}/image", axum::routing::put(crate::documents::put_seal_image))
        .route("/seals/{seal}/image.png", get(crate::documents::get_seal_image))
        .route("/templates", get(crate::documents::admin_list_templates))
        .route("/templates/{id}", get(crate::documents::get_template).put(crate::documents::save_template))
        .route("/templates/{id}/enable", post(crate::documents::enable_template))
        .route("/templates/{id}/disable", post(crate::documents::disable_template))
        .route("/ca/profile", get(ca_profile))
        .route("/users/{employee_no}/custody", post(authorize_custody).delete(revoke_custody))
        .route("/webhooks", get(list_webhooks))
        .route("/timestamps", get(list_timestamps))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest("/api/v1", users_routes())
        .nest("/admin/v1", admin)
        .route("/api/v1/users/{employee_no}/certificates", post(issue_certificate))
        .route("/api/v1/certificates", get(list_certificates))
        .route("/api/v1/certificates/{serial}", get(get_certificate))
        .route("/api/v1/certificates/{serial}/renew", post(renew_certificate))
        .route("/api/v1/certificates/{serial}/revoke", post(revoke_certificate))
        .route("/api/v1/certificates/{serial}/hold", post(hold_certificate))
        .route("/api/v1/certificates/{serial}/release", post(release_certificate))
        .route("/api/v1/certificates/expiring", get(expiring_certificates))
        .route("/api/v1/ca/enroll", post(ra_enroll))
        .route("/api/v1/sign-flows", post(create_flow))
        .route("/api/v1/sign-flows/{flow_id}", get(get_flow))
        .route("/api/v1/sign-flows/{flow_id}/revoke", post(revoke_flow))
        .route("/api/v1/sign-flows/{flow_id}/file", get(flow_file))
        .route("/api/v1/sign-flows/{flow_id}/tickets", post(crate::documents::renew_ticket))
        .route("/api/v1/documents/from-template", post(crate::documents::from_template))
        .route("/api/v1/templates", get(crate::documents::list_templates))
        .route("/api/v1/users/{employee_no}/activation-codes", post(crate::mobile::activation_code))
        .route("/mobile/v1/activate", post(crate::mobile::activate))
        .route("/mobile/v1/keys", post(crate::mobile::keygen_start))
        .route("/mobile/v1/keys/{key_id}", post(crate::mobile::keygen_finish))
        .route("/sdk/{*path}", get(crate::assets::pc_file))
        .route("/demo/{*path}", get(crate::assets::pc_file))
        .route("/m", get(crate::assets::mobile_root))
        .route("/m/", get(crate::assets::mobile_index))
        .route("/m/{*path}", get(crate::assets::mobile_file))
        .route("/mobile/v1/pending", get(crate::mobile::pending))
        .route("/mobile/v1/systems", get(crate::mobile::systems))
        .route("/mobile/v1/pin", post(crate::mobile::set_pin))
        .route("/mobile/v1/certificate/renew", post(crate::mobile::renew_certificate))
        .route("/mobile/v1/realname", post(crate::mobile::realname_start))
        .route("/mobile/v1/realname/{check_id}", post(crate::mobile::realname_finish))
        .route("/api/v1/users/{employee_no}/realname", get(crate::mobile::realname_status))
        .route("/mobile/v1/unlock", post(crate::mobile::unlock))
        .route(
            "/mobile/v1/soter",
            get(crate::mobile::soter_status).post(crate::mobile::soter_enrol).delete(crate::mobile::soter_disable),
        )
        .route("/mobile/v1/soter/challenges", post(crate::mobile::soter_challenge))
        .route("/mobile/v1/soter/unlock", post(crate::mobile::soter_unlock))
        .route("/mobile/v1/records", get(crate::mobile::records))
        .route("/mobile/v1/device", axum::routing::delete(crate::mobile::unbind))
        .route("/mobile/v1/handwriting", post(crate::documents::post_own_handwriting))
        .route("/mobile/v1/grants", post(crate::mobile::start_grant).get(crate::mobile::list_grants))
        .route("/mobile/v1/grants/{grant_id}", axum::routing::delete(crate::mobile::cancel_grant))
        .route("/mobile/v1/grants/{grant_id}/share", post(crate::mobile::grant_share))
        .route("/api/v1/login-tickets", post(crate::logins::create))
        .route("/api/v1/login-tickets/{ticket_id}", get(crate::logins::get))
        .route("/api/v1/login-tickets/{ticket_id}/events", get(crate::logins::events))
        .route("/api/v1/sign-tickets/{ticket_id}/events", get(crate::documents::ticket_events))
        .route("/mobile/v1/login-tickets/{ticket_id}/scan", post(crate::logins::scan))
        .route("/mobile/v1/login-tickets/{ticket_id}/refuse", post(crate::logins::refuse))
        .route("/mobile/v1/sign-rounds", post(crate::mobile::start_rounds))
        .route("/mobile/v1/sign-rounds/answers", post(crate::mobile::answer_rounds))
        .route("/mobile/v1/sign-rounds/signatures", post(crate::mobile::finish_rounds))
        .route("/api/v1/users/{employee_no}/handwriting", post(crate::documents::post_handwriting))
        .route("/api/v1/users/{employee_no}/handwriting.png", get(crate::documents::get_handwriting))
        .route("/api/v1/verify/data", post(verify_data))
        .route("/api/v1/verify/file", post(verify_file))
        .route("/api/v1/batches", post(create_batch))
        .route("/api/v1/batches/{batch_id}", get(get_batch))
        .route("/tsa", post(tsa_default))
        .route("/tsa/sm2", post(tsa_sm2))
        .route("/tsa/rsa", post(tsa_rsa))
        .route("/api/v1/timestamps", post(create_timestamp))
        .route("/api/v1/timestamps/verify", post(verify_timestamp))
        .route("/pki/crl", get(crl))
        .route("/pki/ocsp", post(ocsp_post))
        .route("/pki/ocsp/{*request}", get(ocsp_get))
        .route("/pki/ca.pem", get(ca_all))
        .route("/pki/sm2/ca.pem", get(ca_sm2))
        .route("/pki/rsa/ca.pem", get(ca_rsa))
        .route("/metrics", get(crate::metrics::render))
        .route("/api/openapi.json", get(|| async { Json(<ApiDoc as utoipa::OpenApi>::openapi()) }))
        .merge(utoipa_swagger_ui::SwaggerUi::new("/api/docs"))
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::metrics::track))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), signed_request))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// Users (R1.4, R7.4.1, R7.4.2), mounted under `/api/v1` and `/admin/v1`.
fn users_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/users", post(create_users).get(list_users))
        .route("/users/import", post(import_users))
        .route("/users/import/template.csv", get(import_template))
        .route("/users/{employee_no}", get(get_user).patch(update_user).delete(delete_user))
}

/// Every `/admin/v1` route needs an app with the admin scope.
async fn require_admin(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = req.into_parts();
    match Caller::from_request_parts(&mut parts, &s).await {
        Ok(c) => match c.app.require(Scope::Admin) {
            Ok(()) => next.run(Request::from_parts(parts, body)).await,
            Err(e) => ApiError { error: e, request_id: c.ctx.request_id }.into_response(),
        },
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

/// HMAC-SM3 signed requests (`X-App-Id`, `X-Timestamp`, `X-Nonce`, `X-Signature`; API.md): the
/// body is read here (within the size limit) because the signature covers it, checked, and put
/// back; the authenticated app rides in the request's extensions to the [`Caller`] extractor.
async fn signed_request(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if !req.headers().contains_key("x-app-id") {
        return next.run(req).await;
    }
    let rid = req.extensions().get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, s.max_body_bytes).await else {
        return envelope(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "请求体过大 / the request body is too large",
            &rid,
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
        Err(e) => ApiError { error: e, request_id: rid }.into_response(),
    }
}

async fn not_found(Extension(rid): Extension<RequestId>) -> Response {
    envelope(StatusCode::NOT_FOUND, "not_found", "没有这个接口 / no such route", &rid.0)
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
        Ok(false) => {
            envelope(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "数据库迁移未完成 / migrations pending", "")
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// One user or an array of users.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<NewUser>),
    One(Box<NewUser>),
}

/// `POST /api/v1/users` (R7.4.1): one object or an array (≤ 10,000), all or nothing.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe creation")),
    request_body(content = Vec<NewUser>, description = "one user object or an array of up to 10,000 (all or nothing)",
        example = json!([{"employee_no": "1001", "name": "张三", "department": "XNK", "title": "主治医师", "id_card": "11010519491231002X", "role": "doctor"}])),
    responses(
        (status = 201, description = "created: the user (single object sent) or {\"users\": [...]}", body = User,
            example = json!({"employee_no": "1001", "name": "张三", "department": "XNK", "title": "主治医师", "phone": null, "id_card_masked": "110105**********2X", "role": "doctor", "status": "active", "realname_status": "none", "certificate": null, "signature_image": null, "created_at": "2026-11-27T08:00:00.000Z", "updated_at": "2026-11-27T08:00:00.000Z"})),
        (status = 400, description = "malformed JSON or unknown field", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another request", body = ErrorBody),
        (status = 422, description = "invalid rows; nothing written", body = ErrorBody,
            example = json!({"code": "invalid_rows", "message": "1 行数据有误，未写入任何数据 / 1 rows are invalid; nothing was written", "request_id": "5f0c…", "errors": [{"row": 0, "field": "id_card", "message": "身份证号无效 / invalid ID-card number"}]})),
    ))]
async fn create_users(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let rid = caller.ctx.request_id.clone();
    let with_id = |e: ApiError| ApiError { request_id: rid.clone(), ..e };
    caller.app.require(Scope::UsersWrite).map_err(|e| with_id(e.into()))?;
    // parse after authentication, so an unauthenticated caller learns nothing about the schema
    let body_text = body.to_string();
    let parsed: OneOrMany = match &body {
        serde_json::Value::Array(_) => serde_json::from_value::<Vec<NewUser>>(body).map(OneOrMany::Many),
        _ => serde_json::from_value::<NewUser>(body).map(|u| OneOrMany::One(Box::new(u))),
    }
    .map_err(|e| with_id(ApiError::invalid(format!("用户数据有误 / invalid user data: {e}"))))?;
    let (list, single) = match parsed {
        OneOrMany::Many(v) => (v, false),
        OneOrMany::One(u) => (vec![*u], true),
    };
    let request_hash = hex::encode(medsign_crypto::hash::sm3(body_text.as_bytes()));
    idempotent(&s, &caller, "POST /api/v1/users", &request_hash, || async {
        let made = users::create_many(&s.db, &s.kek, &caller.ctx, &list).await?;
        let body = if single {
            serde_json::to_value(&made[0])
        } else {
            serde_json::to_value(serde_json::json!({"users": made}))
        }
        .unwrap_or_default();
        Ok((StatusCode::CREATED, body))
    })
    .await
}

/// Run a creating call once per `Idempotency-Key`: a retry with the same key and request gets
/// the stored answer (with `Idempotent-Replayed: true`), a different request with the same key a
/// 409; without the header the call just runs.
async fn idempotent<F, Fut>(
    s: &AppState,
    caller: &Caller,
    route: &str,
    request_hash: &str,
    run: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = medsign_store::Result<(StatusCode, serde_json::Value)>>,
{
    use medsign_store::idempotency::{self, Lookup};
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let Some(key) = &caller.idempotency_key else {
        let (status, body) = run().await.map_err(with_id)?;
        return Ok((status, Json(body)).into_response());
    };
    let scoped = hex::encode(medsign_crypto::hash::sm3_parts(&[route.as_bytes(), b"\n", request_hash.as_bytes()]));
    if let Lookup::Replay { status, body } =
        idempotency::lookup(&s.db, &caller.app.app_id, key, &scoped).await.map_err(with_id)?
    {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        return Ok((status, [("idempotent-replayed", "true")], Json(body)).into_response());
    }
    let (status, body) = run().await.map_err(with_id)?;
    idempotency::store(&s.db, &caller.app.app_id, key, &scoped, status.as_u16(), &body.to_string())
        .await
        .map_err(with_id)?;
    Ok((status, Json(body)).into_response())
}

/// `POST /api/v1/users/import` (R1.4, R7.4.1): multipart field `file`, CSV (UTF-8 or GBK) or
/// XLSX; all or nothing, errors by spreadsheet line.
#[utoipa::path(post, path = "/api/v1/users/import", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content_type = "multipart/form-data", content = Object, description = "field `file`: CSV (UTF-8 or GBK) or XLSX with columns 工号,姓名,科室,职称,手机,身份证号,角色",
        example = json!({"file": "工号,姓名,科室\n1001,张三,XNK"})),
    responses(
        (status = 201, description = "imported", body = Object, example = json!({"imported": 700, "ignored_columns": ["备注"]})),
        (status = 400, description = "unreadable file", body = ErrorBody),
        (status = 422, description = "bad lines (spreadsheet line numbers); nothing written", body = ErrorBody)))]
async fn import_users(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let rid = caller.ctx.request_id.clone();
    let with_id = |e: medsign_store::Error| ApiError { error: e, request_id: rid.clone() };
    let invalid = |m: String| with_id(medsign_store::Error::Invalid(m));
    caller.app.require(Scope::UsersWrite).map_err(with_id)?;
    let mut multipart = multipart.map_err(|e| {
        invalid(format!(
            "须以 multipart/form-data 上传，字段名 file / upload as multipart/form-data with a field named file: {e}"
        ))
    })?;
    let mut file = None;
    while let Some(field) =
        multipart.next_field().await.map_err(|e| invalid(format!("上传内容无法读取 / unreadable upload: {e}")))?
    {
        if field.name() == Some("file") {
            file =
                Some(field.bytes().await.map_err(|e| invalid(format!("上传内容无法读取 / unreadable upload: {e}")))?);
        }
    }
    let bytes = file.ok_or_else(|| invalid("缺少字段 file / the form has no field named file".into()))?;
    let parsed = medsign_directory::import::parse(&bytes).map_err(with_id)?;
    let request_hash = hex::encode(medsign_crypto::hash::sm3(&bytes));
    idempotent(&s, &caller, "POST /api/v1/users/import", &request_hash, || async {
        let made = users::create_many(&s.db, &s.kek, &caller.ctx, &parsed.users)
            .await
            .map_err(|e| medsign_directory::import::to_lines(e, &parsed.lines))?;
        Ok((
            StatusCode::CREATED,
            serde_json::json!({"imported": made.len(), "ignored_columns": parsed.ignored_columns}),
        ))
    })
    .await
}

/// `GET /api/v1/users/import/template.csv`: the import template (UTF-8 with BOM).
#[utoipa::path(get, path = "/api/v1/users/import/template.csv", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "CSV template (UTF-8 with BOM)", content_type = "text/csv", example = json!("工号,姓名,科室,职称,手机,身份证号,角色"))))]
async fn import_template(caller: Caller) -> Result<Response, ApiError> {
    caller
        .app
        .require(Scope::UsersRead)
        .map_err(|e| ApiError { error: e, request_id: caller.ctx.request_id.clone() })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"medsign-users-template.csv\""),
        ],
        medsign_directory::import::TEMPLATE_CSV,
    )
        .into_response())
}

/// `POST /admin/v1/departments`: one department or an array (parents first), all or nothing.
#[utoipa::path(post, path = "/admin/v1/departments", tag = "admin", security(("bearer" = [])),
    request_body(content = Vec<medsign_directory::departments::NewDepartment>, example = json!([{"code": "NK", "name": "内科"}, {"code": "XNK", "name": "心内科", "parent_code": "NK"}])),
    responses((status = 201, body = Object, example = json!({"departments": [{"code": "NK", "name": "内科", "parent_code": null}]})), (status = 422, body = ErrorBody)))]
async fn create_departments(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    use medsign_directory::departments::{self, NewDepartment};
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let list: Vec<NewDepartment> = match body {
        serde_json::Value::Array(_) => serde_json::from_value(body),
        other => serde_json::from_value::<NewDepartment>(other).map(|d| vec![d]),
    }
    .map_err(|e| with_id(medsign_store::Error::Invalid(format!("科室数据有误 / invalid department data: {e}"))))?;
    let made = departments::create_many(&s.db, &caller.ctx, &list).await.map_err(with_id)?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"departments": made}))).into_response())
}

/// `GET /admin/v1/departments`: all departments (flat, with parent codes).
#[utoipa::path(get, path = "/admin/v1/departments", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Object, example = json!({"departments": [{"code": "XNK", "name": "心内科", "parent_code": "NK"}]}))))]
async fn list_departments(State(s): State<Arc<AppState>>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let list = medsign_directory::departments::list(&s.db)
        .await
        .map_err(|e| ApiError { error: e, request_id: caller.ctx.request_id.clone() })?;
    Ok(Json(serde_json::json!({"departments": list})))
}

/// Body of `POST /admin/v1/apps`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewApp {
    /// display name
    name: String,
    /// scopes; empty = every scope but admin
    #[serde(default)]
    scopes: Vec<String>,
}

#[utoipa::path(post, path = "/admin/v1/apps", tag = "admin", security(("bearer" = [])),
    request_body(content = NewApp, example = json!({"name": "HIS 门诊", "scopes": ["users:read", "users:write"]})),
    responses((status = 201, body = Object, description = "the token is shown only in this answer",
        example = json!({"app_id": "app_1a2b3c4d5e6f7a8b", "name": "HIS 门诊", "scopes": ["users:read", "users:write"], "token": "app_1a2b3c4d5e6f7a8b.9f…"})),
        (status = 400, body = ErrorBody)))]
/// `POST /admin/v1/apps`: create an integration app; the token is in this answer only.
async fn create_app(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<NewApp>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let scopes = medsign_directory::apps::Scope::parse_list(&body.scopes.join(",")).map_err(with_id)?;
    let (app, token) =
        medsign_directory::apps::create(&s.db, &s.kek, &caller.ctx, &body.name, &scopes).await.map_err(with_id)?;
    let out =
        serde_json::json!({"app_id": app.app_id, "name": app.name, "scopes": app.scopes, "token": token.as_str()});
    Ok((StatusCode::CREATED, [(axum::http::header::CACHE_CONTROL, "no-store")], Json(out)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/apps", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Object, example = json!({"apps": [{"app_id": "app_1a2b3c4d5e6f7a8b", "name": "HIS 门诊", "scopes": ["users:read"], "disabled": false, "created_at": "2026-11-27T08:00:00.000Z"}]}))))]
/// `GET /admin/v1/apps`: every app (never a secret).
async fn list_apps(State(s): State<Arc<AppState>>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let apps = medsign_directory::apps::list(&s.db)
        .await
        .map_err(|e| ApiError { error: e, request_id: caller.ctx.request_id.clone() })?;
    Ok(Json(serde_json::json!({"apps": apps})))
}

async fn set_app_disabled(s: &AppState, caller: &Caller, app_id: &str, disabled: bool) -> Result<StatusCode, ApiError> {
    medsign_directory::apps::set_disabled(&s.db, &s.auth, &caller.ctx, app_id, disabled)
        .await
        .map_err(|e| ApiError { error: e, request_id: caller.ctx.request_id.clone() })?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/apps/{app_id}/disable", tag = "admin", security(("bearer" = [])),
    params(("app_id" = String, Path, example = "app_1a2b3c4d5e6f7a8b")),
    responses((status = 204, description = "disabled: its tokens stop working at once"), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "应用 app_x 不存在 / no app app_x", "request_id": "…"}))))]
/// `POST /admin/v1/apps/{app_id}/disable`.
async fn disable_app(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_app_disabled(&s, &caller, &id, true).await
}

#[utoipa::path(post, path = "/admin/v1/apps/{app_id}/enable", tag = "admin", security(("bearer" = [])),
    params(("app_id" = String, Path, example = "app_1a2b3c4d5e6f7a8b")),
    responses((status = 204, description = "enabled"), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "应用 app_x 不存在 / no app app_x", "request_id": "…"}))))]
/// `POST /admin/v1/apps/{app_id}/enable`.
async fn enable_app(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_app_disabled(&s, &caller, &id, false).await
}

/// Body of `POST /api/v1/users/{employee_no}/certificates`: a CSR, or a bare SM2 public key with
/// a proof of possession.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    /// PKCS#10 request, PEM (SM2 with the standard or the empty ID, RSA, P-256)
    csr: Option<String>,
    /// a bare SM2 public key (SPKI PEM, base64 SPKI DER, or the 130-hex-digit uncompressed point)
    public_key: Option<String>,
    /// base64 SM3withSM2 signature (standard ID) by that key over
    /// `"medsign-pop/v1\n" + employee_no + "\n" + hex(SPKI DER)`
    proof: Option<String>,
}

/// Body of `POST /api/v1/certificates/{serial}/revoke`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// `unspecified` | `key_compromise` | `affiliation_changed` | `superseded` | `cessation_of_operation`
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/users/{employee_no}/certificates", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    request_body(content = IssueRequest, examples(("csr" = (value = json!({"csr": "-----BEGIN CERTIFICATE REQUEST-----\n…"}))), ("bare SM2 key" = (value = json!({"public_key": "04a1b2…(130 hex digits)", "proof": "MEUCIQ…"}))))),
    responses((status = 201, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "employee_no": "1001", "alg": "sm2", "profile": "signer", "status": "active", "not_before": "2026-11-27T08:00:00Z", "not_after": "2027-11-27T08:00:00Z", "revoked_at": null, "reason": null, "subject": "CN=张三,OU=XNK,O=某县人民医院,C=CN,SERIALNUMBER=…", "certificate_pem": "-----BEGIN CERTIFICATE-----\n…"})),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
/// `POST /api/v1/users/{employee_no}/certificates`: a one-year staff signing certificate from a CSR
/// or from a bare SM2 public key with a proof of possession.
async fn issue_certificate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(no): Path<String>,
    StrictJson(body): StrictJson<IssueRequest>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    let issuer = s.issuer();
    let rec = match (&body.csr, &body.public_key, &body.proof) {
        (Some(csr), None, None) => {
            medsign_ca::certs::issue_for_user(&s.db, &s.kek, issuer, &caller.ctx, &no, csr).await
        }
        (None, Some(k), Some(p)) => {
            medsign_ca::certs::issue_for_key(&s.db, &s.kek, issuer, &caller.ctx, &no, k, p).await
        }
        _ => Err(medsign_store::Error::Invalid(
            "须提供 csr，或 public_key 加 proof（二者择一）/ send either csr, or public_key with proof".into(),
        )),
    }
    .map_err(with_id)?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[utoipa::path(get, path = "/api/v1/certificates/{serial}", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    responses((status = 200, body = medsign_ca::certs::CertRecord), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "证书 X 不存在 / no certificate X", "request_id": "…"}))))]
/// `GET /api/v1/certificates/{serial}`.
async fn get_certificate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(serial): Path<String>,
) -> Result<Json<medsign_ca::certs::CertRecord>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    Ok(Json(medsign_ca::certs::get(&s.db, &serial).await.map_err(with_id)?))
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/revoke", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    request_body(content = RevokeRequest, example = json!({"reason": "key_compromise"})),
    responses((status = 200, body = medsign_ca::certs::CertRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "证书 X 已吊销 / already revoked", "request_id": "…"}))))]
/// `POST /api/v1/certificates/{serial}/revoke`.
async fn revoke_certificate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(serial): Path<String>,
    StrictJson(body): StrictJson<RevokeRequest>,
) -> Result<Json<medsign_ca::certs::CertRecord>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    Ok(Json(
        medsign_ca::certs::revoke(&s.db, &s.cas, Some((&s.kek, &s.channels)), &caller.ctx, &serial, &body.reason)
            .await
            .map_err(with_id)?,
    ))
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/hold", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    responses((status = 200, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "status": "on_hold", "reason": "certificate_hold"})), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "证书 X 已冻结 / already on hold", "request_id": "…"}))))]
/// `POST /api/v1/certificates/{serial}/hold`: suspend (certificateHold) until released.
async fn hold_certificate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(serial): Path<String>,
) -> Result<Json<medsign_ca::certs::CertRecord>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    Ok(Json(medsign_ca::certs::hold(&s.db, &s.cas, &caller.ctx, &serial).await.map_err(with_id)?))
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/release", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    responses((status = 200, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "status": "active", "reason": null})), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "证书 X 未冻结，无需解冻 / not on hold", "request_id": "…"}))))]
/// `POST /api/v1/certificates/{serial}/release`: lift a hold.
async fn release_certificate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(serial): Path<String>,
) -> Result<Json<medsign_ca::certs::CertRecord>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    Ok(Json(medsign_ca::certs::release(&s.db, &s.cas, &caller.ctx, &serial).await.map_err(with_id)?))
}

/// `?days=N` of `GET /api/v1/certificates/expiring`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExpiringQuery {
    /// window in days, 1–3650 (default `ca.expiry_warn_days`, 30)
    days: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/certificates/expiring", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(ExpiringQuery),
    responses((status = 200, body = Object, example = json!({"days": 30, "items": [{"serial": "2BE1F2E0030AEBA4B6203402274DC478", "employee_no": "1001", "not_after": "2026-12-20T08:00:00Z"}]})), (status = 400, body = ErrorBody)))]
/// `GET /api/v1/certificates/expiring?days=N`: active or held certificates that end within N days.
async fn expiring_certificates(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<ExpiringQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    let days = match query {
        Ok(Query(ExpiringQuery { days: None })) => s.ca_config.expiry_warn_days,
        Ok(Query(ExpiringQuery { days: Some(d) })) if (1..=3650).contains(&d) => d,
        _ => return Err(with_id(medsign_store::Error::Invalid("days 须为 1–3650 / days must be 1-3650".into()))),
    };
    let items = medsign_ca::certs::expiring(&s.db, days).await.map_err(with_id)?;
    Ok(Json(serde_json::json!({"days": days, "items": items})))
}

/// Body of `POST /api/v1/certificates/{serial}/renew`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RenewRequest {
    /// a new PKCS#10 request of the same algorithm; absent = keep the key
    csr: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/renew", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("serial" = String, Path, example = "2BE1F2E0030AEBA4B6203402274DC478")),
    request_body(content = RenewRequest, example = json!({})),
    responses((status = 201, body = medsign_ca::certs::CertRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "证书 X 已吊销，不能续期 / revoked certificates cannot be renewed", "request_id": "…"}))))]
/// `POST /api/v1/certificates/{serial}/renew`: same key, or a new CSR; the old certificate is superseded.
async fn renew_certificate(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(serial): Path<String>,
    StrictJson(body): StrictJson<RenewRequest>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    let issuer = s.issuer();
    let rec = medsign_ca::certs::renew(&s.db, &s.kek, issuer, &caller.ctx, &serial, body.csr.as_deref())
        .await
        .map_err(with_id)?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    params(medsign_ca::certs::ListQuery),
    responses((status = 200, body = Object, example = json!({"items": [], "total": 0})), (status = 400, body = ErrorBody)))]
/// `GET /api/v1/certificates?employee_no=&status=&alg=&page=&page_size=`.
async fn list_certificates(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<medsign_ca::certs::ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    let Query(q) =
        query.map_err(|e| with_id(medsign_store::Error::Invalid(format!("查询参数有误 / invalid query: {e}"))))?;
    let (items, total) = medsign_ca::certs::list(&s.db, &q).await.map_err(with_id)?;
    Ok(Json(serde_json::json!({"items": items, "total": total})))
}

#[utoipa::path(post, path = "/api/v1/ca/enroll", tag = "certificates", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = medsign_ca::channels::RaEnrollment, example = json!({"employee_no": "1001", "subject": "CN=张三,OU=心内科,O=某县人民医院,C=CN,SERIALNUMBER=3F2A…", "public_key": "-----BEGIN PUBLIC KEY-----\n…", "csr": null})),
    responses((status = 201, body = medsign_ca::channels::RaIssued, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "certificate_pem": "-----BEGIN CERTIFICATE-----\n…", "chain_pem": "-----BEGIN CERTIFICATE-----\n…"})),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
/// `POST /api/v1/ca/enroll`: this node's CA issues for another medsign acting as registration
/// authority (its `medsign` CA channel); the caller vouches for identity and key possession.
async fn ra_enroll(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<medsign_ca::channels::RaEnrollment>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Certs).map_err(with_id)?;
    let out = medsign_ca::certs::ra_enroll(&s.db, &s.cas, &s.public_url, &caller.ctx, &body).await.map_err(with_id)?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/ca-channels", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<medsign_ca::channels::ChannelRecord>, example = json!([{"id": "builtin", "name": "内置 CA / built-in CA", "kind": "builtin", "profile": "signer", "priority": 0, "enabled": true, "active": true, "config": {}, "health": "ok", "health_at": null, "health_error": null}]))))]
/// `GET /admin/v1/ca-channels`.
async fn list_channels(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<medsign_ca::channels::ChannelRecord>>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    Ok(Json(medsign_ca::channels::list(&s.db).await.map_err(with_id)?))
}

#[utoipa::path(post, path = "/admin/v1/ca-channels", tag = "admin", security(("bearer" = [])),
    request_body(content = medsign_ca::channels::NewChannel, examples(
        ("EST, HTTP Basic" = (value = json!({"name": "省级 CA (EST)", "kind": "est", "priority": 10, "config": {"url": "https://ca.example/.well-known/est", "username": "hospital-01"}, "secret": "password"}))),
        ("another medsign" = (value = json!({"name": "区域平台", "kind": "medsign", "priority": 20, "config": {"url": "https://regional.example"}, "secret": "app_1a2b….secret"}))))),
    responses((status = 201, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "name": "省级 CA (EST)", "kind": "est", "profile": "signer", "priority": 10, "enabled": true, "active": false, "config": {"url": "https://ca.example/.well-known/est", "username": "hospital-01"}, "health": "unknown", "health_at": null, "health_error": null})),
        (status = 400, body = ErrorBody)))]
/// `POST /admin/v1/ca-channels`: add an EST or medsign channel (enabled, not active).
async fn create_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<medsign_ca::channels::NewChannel>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let c = medsign_ca::channels::create(&s.db, &s.kek, &caller.ctx, &body).await.map_err(with_id)?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

#[utoipa::path(post, path = "/admin/v1/ca-channels/{id}/activate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "ch_3f2a9c1b7d4e")),
    responses((status = 200, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "active": true})), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "CA 通道 x 不存在 / no CA channel x", "request_id": "…"}))))]
/// `POST /admin/v1/ca-channels/{id}/activate`: switch online; the next issuance on every node uses it.
async fn activate_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_ca::channels::ChannelRecord>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    Ok(Json(medsign_ca::channels::activate(&s.db, &caller.ctx, &id).await.map_err(with_id)?))
}

#[utoipa::path(post, path = "/admin/v1/ca-channels/{id}/enable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "ch_3f2a9c1b7d4e")),
    responses((status = 200, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "enabled": true})), (status = 404, body = ErrorBody)))]
/// `POST /admin/v1/ca-channels/{id}/enable`: may take part in failover again.
async fn enable_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_ca::channels::ChannelRecord>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    Ok(Json(medsign_ca::channels::set_enabled(&s.db, &caller.ctx, &id, true).await.map_err(with_id)?))
}

#[utoipa::path(post, path = "/admin/v1/ca-channels/{id}/disable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "ch_3f2a9c1b7d4e")),
    responses((status = 200, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "enabled": false})), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "通道 x 正在使用，请先启用另一个通道 / channel x is active; activate another one first", "request_id": "…"}))))]
/// `POST /admin/v1/ca-channels/{id}/disable`.
async fn disable_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_ca::channels::ChannelRecord>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    Ok(Json(medsign_ca::channels::set_enabled(&s.db, &caller.ctx, &id, false).await.map_err(with_id)?))
}

#[utoipa::path(post, path = "/admin/v1/ca-channels/{id}/check", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "ch_3f2a9c1b7d4e")),
    responses((status = 200, body = medsign_ca::channels::ChannelRecord, example = json!({"id": "ch_3f2a9c1b7d4e", "health": "down", "health_error": "CA 通道 https://ca.example 不可用 / CA channel unavailable: connection refused"})), (status = 404, body = ErrorBody)))]
/// `POST /admin/v1/ca-channels/{id}/check`: run the health check now.
async fn check_channel(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_ca::channels::ChannelRecord>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    Ok(Json(medsign_ca::channels::check(&s.db, &s.kek, &s.channels, &id).await.map_err(with_id)?))
}

/// The largest TimeStampReq accepted (a SHA-512 request with a nonce is under 200 bytes).
const TSA_MAX_REQUEST: usize = 64 * 1024;

async fn tsa_answer(
    s: &AppState,
    profile: Option<&str>,
    rid: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Response {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/timestamp-query") {
        return envelope(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type 须为 application/timestamp-query / Content-Type must be application/timestamp-query",
            rid,
        );
    }
    if body.len() > TSA_MAX_REQUEST {
        return envelope(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "时间戳请求过大 / timestamp request too large",
            rid,
        );
    }
    let der = s.tsa.respond(profile, body, "tsa").await;
    ([(header::CONTENT_TYPE, "application/timestamp-reply"), (header::CACHE_CONTROL, "no-store")], der).into_response()
}

#[utoipa::path(post, path = "/tsa", tag = "tsa",
    request_body(content = Vec<u8>, content_type = "application/timestamp-query", description = "DER TimeStampReq (RFC 3161 § 2.4.1)", example = json!("(binary DER)")),
    responses((status = 200, description = "DER TimeStampResp: granted with a token, or rejection with a PKIFailureInfo (badAlg, badRequest, badDataFormat, timeNotAvailable, unacceptedPolicy, unacceptedExtension, systemFailure)", content_type = "application/timestamp-reply", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 413, body = ErrorBody, example = json!({"code": "too_large", "message": "时间戳请求过大 / timestamp request too large", "request_id": "…"})),
        (status = 415, body = ErrorBody, example = json!({"code": "unsupported_media_type", "message": "Content-Type 须为 application/timestamp-query", "request_id": "…"}))))]
/// `POST /tsa`: RFC 3161 with the default profile (`tsa.default_profile`).
async fn tsa_default(
    State(s): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    tsa_answer(&s, None, &rid.0, &headers, &body).await
}

#[utoipa::path(post, path = "/tsa/sm2", tag = "tsa",
    request_body(content = Vec<u8>, content_type = "application/timestamp-query", example = json!("(binary DER)")),
    responses((status = 200, description = "DER TimeStampResp, token signed with SM3withSM2", content_type = "application/timestamp-reply", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 415, body = ErrorBody, example = json!({"code": "unsupported_media_type", "message": "Content-Type 须为 application/timestamp-query", "request_id": "…"}))))]
/// `POST /tsa/sm2`: RFC 3161, SM2/SM3 profile.
async fn tsa_sm2(
    State(s): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    tsa_answer(&s, Some("sm2"), &rid.0, &headers, &body).await
}

#[utoipa::path(post, path = "/tsa/rsa", tag = "tsa",
    request_body(content = Vec<u8>, content_type = "application/timestamp-query", example = json!("(binary DER)")),
    responses((status = 200, description = "DER TimeStampResp, token signed with SHA-256 with RSA", content_type = "application/timestamp-reply", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 415, body = ErrorBody, example = json!({"code": "unsupported_media_type", "message": "Content-Type 须为 application/timestamp-query", "request_id": "…"}))))]
/// `POST /tsa/rsa`: RFC 3161, RSA/SHA-256 profile (for PDF readers).
async fn tsa_rsa(
    State(s): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    tsa_answer(&s, Some("rsa"), &rid.0, &headers, &body).await
}

/// Body of `POST /api/v1/timestamps`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TimestampRequest {
    /// the digest to stamp, hex
    digest: String,
    /// `sm3` | `sha256` | `sha384` | `sha512`
    algorithm: String,
    /// `sm2` | `rsa` (default `tsa.default_profile`)
    profile: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/timestamps", tag = "timestamps", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = TimestampRequest, example = json!({"digest": "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0", "algorithm": "sm3"})),
    responses((status = 201, body = medsign_tsa::tsa::Token, example = json!({"token": "MIIE…", "serial": "0000019AC4F2E1A07C21B3D400000000", "time": "2026-11-27T08:00:00.123Z", "accuracy_us": 2150, "policy": "0.4.0.2023.1.1", "profile": "sm2"})),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody, example = json!({"code": "unavailable", "message": "时钟失去同步，拒绝签发 / the clock is out of sync …", "request_id": "…"}))))]
/// `POST /api/v1/timestamps` (R6.1): a token over a digest.
async fn create_timestamp(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<TimestampRequest>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Timestamps).map_err(with_id)?;
    let t = s
        .tsa
        .stamp_digest(body.profile.as_deref(), &body.algorithm, &body.digest, &caller.app.app_id)
        .await
        .map_err(with_id)?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

/// Body of `POST /api/v1/timestamps/verify`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TimestampVerifyRequest {
    /// the token (TimeStampToken, or a whole TimeStampResp), base64
    token: String,
    /// the stamped digest, hex
    digest: Option<String>,
    /// or the stamped data, base64
    data: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/timestamps/verify", tag = "timestamps", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = TimestampVerifyRequest, example = json!({"token": "MIIE…", "digest": "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"})),
    responses((status = 200, body = Object, example = json!({"status": "TOTAL_PASSED", "time": "2026-11-27T08:00:00.123Z", "accuracy_us": 2150, "serial": "0000019AC4F2E1A07C21B3D400000000", "policy": "0.4.0.2023.1.1", "tsa": "CN=某县人民医院 时间戳服务 SM2,O=某县人民医院,C=CN", "integrity": {"ok": true, "detail": "时间戳完整 / token intact"}, "chain": {"ok": true, "detail": "…"}})),
        (status = 400, body = ErrorBody)))]
/// `POST /api/v1/timestamps/verify` (R6.3): integrity, imprint, TSA certificate chain.
async fn verify_timestamp(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<TimestampVerifyRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use base64::Engine;
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Timestamps).or_else(|_| caller.app.require(Scope::Verify)).map_err(with_id)?;
    let b64 = |v: &str, what: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| with_id(medsign_store::Error::Invalid(format!("{what} 不是 base64 / {what} is not base64"))))
    };
    let token = b64(&body.token, "token")?;
    let digest =
        match &body.digest {
            Some(d) => Some(hex::decode(d.trim()).map_err(|_| {
                with_id(medsign_store::Error::Invalid("digest 须为十六进制 / digest must be hex".into()))
            })?),
            None => None,
        };
    let data = match &body.data {
        Some(d) => Some(b64(d, "data")?),
        None => None,
    };
    let report = medsign_tsa::tsa::verify(&s.cas, &token, digest.as_deref(), data.as_deref()).map_err(with_id)?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

#[utoipa::path(get, path = "/admin/v1/ca/profile", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = medsign_ca::ca::StaffProfile, example = json!({"version": "staff-signer/3f2a9c1b7d4e5a60", "policies": [], "validity_days": 365, "subject": "CN=姓名 name, OU=科室 department, O=医院 hospital, C=CN, SERIALNUMBER=…", "key_usage": "digitalSignature, nonRepudiation", "extensions": "SKI, AKI, CRL distribution point, AIA (OCSP, caIssuers), certificatePolicies"}))))]
/// `GET /admin/v1/ca/profile`: the staff certificate profile in force and its version.
async fn ca_profile(State(s): State<Arc<AppState>>) -> Json<medsign_ca::ca::StaffProfile> {
    Json(s.cas.staff.clone())
}

/// Body of `POST /admin/v1/users/{employee_no}/custody`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CustodyRequest {
    /// the hospital's basis for holding this person's key (policy, resolution, consent)
    reason: String,
    /// `sm2` (default) | `rsa`
    alg: Option<String>,
}

#[utoipa::path(post, path = "/admin/v1/users/{employee_no}/custody", tag = "admin", security(("bearer" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    request_body(content = CustodyRequest, example = json!({"reason": "院长办公会 2026-11 决议：检验科自动审核报告由服务器托管签名", "alg": "sm2"})),
    responses((status = 201, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1F2E0030AEBA4B6203402274DC478", "employee_no": "1001", "alg": "sm2", "status": "active"})),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "用户已有另一把密钥的 sm2 证书 X，请先吊销 / …", "request_id": "…"}))))]
/// `POST /admin/v1/users/{employee_no}/custody`: authorize server custody of this person's signing
/// key (audited); the key is created and certified.
async fn authorize_custody(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(no): Path<String>,
    StrictJson(body): StrictJson<CustodyRequest>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let rec = medsign_signing::flows::authorize_custody(
        &s.db,
        &s.kek,
        s.issuer(),
        &caller.ctx,
        &no,
        &body.reason,
        body.alg.as_deref().unwrap_or("sm2"),
    )
    .await
    .map_err(with_id)?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[utoipa::path(delete, path = "/admin/v1/users/{employee_no}/custody", tag = "admin", security(("bearer" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 204, description = "ended; auto flows naming this person are refused from now on"), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "1001 没有有效的托管授权 / no active custody authorization", "request_id": "…"}))))]
/// `DELETE /admin/v1/users/{employee_no}/custody`.
async fn revoke_custody(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(no): Path<String>,
) -> Result<StatusCode, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    medsign_signing::flows::revoke_custody(&s.db, &caller.ctx, &no).await.map_err(with_id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?flow_id=` of `GET /admin/v1/webhooks`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct WebhookQuery {
    /// one flow's deliveries
    flow_id: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/webhooks", tag = "admin", security(("bearer" = [])), params(WebhookQuery),
    responses((status = 200, body = Vec<medsign_signing::flows::Delivery>, example = json!([{"id": "wh_3f2a9c1b7d4e5a60", "app_id": "app_1a2b", "flow_id": "sf_9c1b7d4e5a603f2a", "event": "flow.completed", "url": "https://his.example/medsign/callback", "state": "delivered", "attempts": 1, "last_status": 200, "last_error": null, "next_at": "…", "delivered_at": "2026-11-27T08:00:01.000Z"}])),
        (status = 400, body = ErrorBody)))]
/// `GET /admin/v1/webhooks[?flow_id=]`: the delivery log.
async fn list_webhooks(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<WebhookQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<medsign_signing::flows::Delivery>>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let Query(q) =
        query.map_err(|e| with_id(medsign_store::Error::Invalid(format!("查询参数有误 / invalid query: {e}"))))?;
    Ok(Json(medsign_signing::flows::deliveries(&s.db, q.flow_id.as_deref()).await.map_err(with_id)?))
}

fn owner(caller: &Caller) -> Option<&str> {
    // an admin app sees every flow; others only their own
    if caller.app.allows(Scope::Admin) { None } else { Some(caller.app.app_id.as_str()) }
}

#[utoipa::path(post, path = "/api/v1/sign-flows", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe creation")),
    request_body(content = medsign_signing::flows::NewFlow, example = json!({"kind": "data", "title": "门诊处方 No.2026-000123", "content_json": {"patient": "李某", "rx": [{"drug": "阿莫西林胶囊", "dose": "0.5g", "freq": "tid"}]}, "signers": [{"employee_no": "1001", "mode": "auto"}, {"seal": "hospital"}], "alg": "sm2", "callback_url": "https://his.example/medsign/callback"})),
    responses((status = 201, body = medsign_signing::flows::FlowView, example = json!({"id": "sf_9c1b7d4e5a603f2a", "doc_no": "QM-20261127-7K3F9Q2A", "kind": "data", "title": "门诊处方 No.2026-000123", "state": "completed", "alg": "sm2", "detached": true, "content_sm3": "66c7…", "timestamp_mode": "required", "timestamp_pending": false, "signers": [{"index": 0, "kind": "staff", "ref": "1001", "mode": "auto", "state": "signed", "cert_serial": "2BE1…", "signed_at": "…", "timestamp_at": "…"}]})),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody, example = json!({"code": "unavailable", "message": "时间戳服务不可用，流程失败，未发布签名 / the TSA cannot issue; …", "request_id": "…"}))))]
/// `POST /api/v1/sign-flows` (R7.4.5–R7.4.8): a flow, signed at once by its auto signers up to the
/// first scan signer, whose QR ticket the response carries. JSON, or multipart/form-data with a
/// part `flow` (the same JSON) and a part `file` (the PDF).
async fn create_flow(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Sign).map_err(with_id)?;
    let (nf, hash) = flow_body(&headers, body).await.map_err(with_id)?;
    let st = s.clone();
    let app_id = caller.app.app_id.clone();
    let ctx = caller.ctx.clone();
    idempotent(&s, &caller, "POST /api/v1/sign-flows", &hash, || async move {
        let max = st.max_body_bytes.min(8 << 20);
        let f = medsign_signing::flows::create(&st.signing(), &ctx, &app_id, &nf, max).await?;
        let f = crate::documents::with_ticket(&st, f).await?;
        Ok((StatusCode::CREATED, serde_json::to_value(f).unwrap_or_default()))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/sign-flows/{flow_id}", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("flow_id" = String, Path, example = "sf_9c1b7d4e5a603f2a")),
    responses((status = 200, body = medsign_signing::flows::FlowView, example = json!({"id": "sf_9c1b7d4e5a603f2a", "doc_no": "QM-20261127-7K3F9Q2A", "state": "completed", "signers": []})), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "签署流程 X 不存在 / no signing flow X", "request_id": "…"}))))]
/// `GET /api/v1/sign-flows/{flow_id}` (R7.4.9): status per flow and per signer.
async fn get_flow(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_signing::flows::FlowView>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Sign).map_err(with_id)?;
    let f = medsign_signing::flows::get(&s.db, owner(&caller), &id).await.map_err(with_id)?;
    Ok(Json(crate::documents::with_ticket(&s, f).await.map_err(with_id)?))
}

/// The new flow of a JSON or multipart request, and the request's hash (idempotency).
async fn flow_body(
    headers: &axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> medsign_store::Result<(medsign_signing::flows::NewFlow, String)> {
    use axum::extract::FromRequest;
    let invalid = |m: String| medsign_store::Error::Invalid(m);
    let parse = |json: &[u8]| {
        serde_json::from_slice::<medsign_signing::flows::NewFlow>(json)
            .map_err(|e| invalid(format!("请求体不是合法的签署流程 / invalid flow: {e}")))
    };
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ctype.starts_with("multipart/form-data") {
        let hash = hex::encode(medsign_crypto::hash::sm3(&body));
        return Ok((parse(&body)?, hash));
    }
    let req = Request::builder()
        .header(header::CONTENT_TYPE, ctype)
        .body(axum::body::Body::from(body.clone()))
        .map_err(|e| invalid(e.to_string()))?;
    let mut mp = axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|e| invalid(format!("multipart 无法读取 / unreadable multipart: {e}")))?;
    let (mut flow, mut file) = (None, None);
    while let Some(field) =
        mp.next_field().await.map_err(|e| invalid(format!("上传内容无法读取 / unreadable upload: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        let bytes = field.bytes().await.map_err(|e| invalid(format!("上传内容无法读取 / unreadable upload: {e}")))?;
        match name.as_str() {
            "flow" => flow = Some(bytes),
            "file" => file = Some(bytes),
            other => return Err(invalid(format!("未知的表单字段 / unknown form field '{other}' (flow, file)"))),
        }
    }
    let flow = flow.ok_or_else(|| invalid("缺少表单字段 flow / the form has no part named flow".into()))?;
    let file = file.ok_or_else(|| invalid("缺少表单字段 file / the form has no part named file".into()))?;
    let mut nf = parse(&flow)?;
    if nf.content.is_some() || nf.content_base64.is_some() || nf.content_json.is_some() || nf.template_id.is_some() {
        return Err(invalid(
            "multipart 上传时文件放在 file 部分 / with multipart, the document goes in the file part".into(),
        ));
    }
    use base64::Engine as _;
    nf.content_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&file));
    let mut h = flow.to_vec();
    h.extend_from_slice(&medsign_crypto::hash::sm3(&file));
    Ok((nf, hex::encode(medsign_crypto::hash::sm3(&h))))
}

/// Body of `POST /api/v1/sign-flows/{flow_id}/revoke`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FlowRevokeRequest {
    /// why
    reason: String,
}

#[utoipa::path(post, path = "/api/v1/sign-flows/{flow_id}/revoke", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("flow_id" = String, Path, example = "sf_9c1b7d4e5a603f2a")),
    request_body(content = FlowRevokeRequest, example = json!({"reason": "开错患者 / wrong patient"})),
    responses((status = 200, body = medsign_signing::flows::FlowView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "流程 QM-… 状态为 completed，不能撤销 / only unfinished flows can be revoked", "request_id": "…"}))))]
/// `POST /api/v1/sign-flows/{flow_id}/revoke` (R7.4.10).
async fn revoke_flow(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<FlowRevokeRequest>,
) -> Result<Json<medsign_signing::flows::FlowView>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Sign).map_err(with_id)?;
    Ok(Json(
        medsign_signing::flows::revoke(&s.db, &caller.ctx, owner(&caller), &id, &body.reason).await.map_err(with_id)?,
    ))
}

/// `?signature=p7s` of `GET /api/v1/sign-flows/{flow_id}/file`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FileQuery {
    /// `p7s`: the CMS signature of a data flow
    signature: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/sign-flows/{flow_id}/file", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("flow_id" = String, Path, example = "sf_9c1b7d4e5a603f2a"), FileQuery),
    responses((status = 200, description = "data flows (?signature=p7s): the CMS SignedData (DER); file flows: the signed PDF", content_type = "application/pdf", body = Vec<u8>, example = json!("(binary)")),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "流程 QM-… 尚未完成 / the flow is not completed", "request_id": "…"}))))]
/// `GET /api/v1/sign-flows/{flow_id}/file[?signature=p7s]` (R7.4.13): the signed PDF, or a data
/// flow's CMS.
async fn flow_file(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Sign).map_err(with_id)?;
    let Query(q) =
        query.map_err(|e| with_id(medsign_store::Error::Invalid(format!("查询参数有误 / invalid query: {e}"))))?;
    let (ctype, name, bytes) =
        medsign_signing::flows::download(&s.db, owner(&caller), &id, q.signature.as_deref()).await.map_err(with_id)?;
    let disposition = format!("attachment; filename=\"{name}\"");
    Ok(([(header::CONTENT_TYPE, ctype.to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes).into_response())
}

/// Body of `POST /api/v1/verify/data`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct VerifyDataRequest {
    /// the CMS signature (DER, base64; PEM also accepted)
    signature: String,
    /// the signed data, base64 (for detached signatures)
    data: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/verify/data", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = VerifyDataRequest, example = json!({"signature": "MIIG…", "data": "UnA6IOmYv+iOq+ilv+aelyAwLjVnIHRpZA=="})),
    responses((status = 200, body = Object, example = json!({"indication": "TOTAL_PASSED", "detached": true, "signers": [{"subject": "CN=张三,OU=心内科,O=某县人民医院,C=CN,SERIALNUMBER=…", "integrity": {"ok": true}, "chain": {"ok": true}, "revocation": {"ok": true}, "timestamp": {"time": "2026-11-27T08:00:00.123Z", "integrity": {"ok": true}, "chain": {"ok": true}}, "indication": "TOTAL_PASSED"}]})),
        (status = 400, body = ErrorBody)))]
/// `POST /api/v1/verify/data` (R7.4.11): integrity, signer identity, certificate status (CRL),
/// timestamp, chain; overall DSS-style indication.
async fn verify_data(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<VerifyDataRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use base64::Engine;
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Verify).or_else(|_| caller.app.require(Scope::Sign)).map_err(with_id)?;
    let sig = if body.signature.contains("-----BEGIN") {
        body.signature.clone().into_bytes()
    } else {
        base64::engine::general_purpose::STANDARD.decode(body.signature.trim()).map_err(|_| {
            with_id(medsign_store::Error::Invalid("signature 不是 base64 / signature is not base64".into()))
        })?
    };
    let data = match &body.data {
        Some(d) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .map_err(|_| with_id(medsign_store::Error::Invalid("data 不是 base64 / data is not base64".into())))?,
        ),
        None => None,
    };
    let rep = medsign_signing::flows::verify_data(&s.db, &s.cas, &sig, data.as_deref()).await.map_err(with_id)?;
    Ok(Json(serde_json::to_value(rep).unwrap_or_default()))
}

/// Body of `POST /api/v1/batches`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    /// up to 1,000 flows, each as for `POST /api/v1/sign-flows`
    #[schema(value_type = Vec<Object>)]
    items: Vec<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/v1/batches", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = BatchRequest, example = json!({"items": [{"kind": "data", "title": "检验报告 No.1", "content": "WBC 6.1", "signers": [{"seal": "JYK"}]}]})),
    responses((status = 202, body = medsign_signing::batches::BatchView, example = json!({"id": "bj_3f2a9c1b7d4e5a60", "state": "queued", "total": 1000, "done": 0, "failed": 0, "pending": 1000, "items": []})),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
/// `POST /api/v1/batches` (R1): queue up to 1,000 flows; a durable job signs them (crash-safe,
/// resumable, nothing signed twice); poll `GET /api/v1/batches/{id}`.
async fn create_batch(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<BatchRequest>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Sign).map_err(with_id)?;
    let b =
        medsign_signing::batches::create(&s.db, &caller.ctx, &caller.app.app_id, &body.items).await.map_err(with_id)?;
    Ok((StatusCode::ACCEPTED, Json(b)).into_response())
}

#[utoipa::path(get, path = "/api/v1/batches/{batch_id}", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("batch_id" = String, Path, example = "bj_3f2a9c1b7d4e5a60")),
    responses((status = 200, body = medsign_signing::batches::BatchView, example = json!({"id": "bj_3f2a9c1b7d4e5a60", "state": "running", "total": 1000, "done": 412, "failed": 0, "pending": 588, "items": [{"index": 0, "state": "done", "flow_id": "sf_9c1b7d4e5a603f2a", "error": null}]})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "批次 X 不存在 / no batch X", "request_id": "…"}))))]
/// `GET /api/v1/batches/{batch_id}`: progress per batch and per item.
async fn get_batch(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_signing::batches::BatchView>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Sign).map_err(with_id)?;
    Ok(Json(medsign_signing::batches::get(&s.db, owner(&caller), &id).await.map_err(with_id)?))
}

/// Body of `POST /api/v1/verify/file`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct VerifyFileRequest {
    /// the signed PDF, base64
    file: String,
}

#[utoipa::path(post, path = "/api/v1/verify/file", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = VerifyFileRequest, example = json!({"file": "JVBERi0xLjcK…"})),
    responses((status = 200, body = Object, example = json!({"indication": "TOTAL_PASSED", "signatures": [{"field": "medsign-1-staff", "sub_filter": "ETSI.CAdES.detached", "whole_file": false, "unsigned_updates_after": 0, "indication": "TOTAL_PASSED", "sub_indication": null, "report": {"signers": [{"subject": "CN=张三,…", "timestamp": {"time": "…"}}]}}]})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "该 PDF 没有签名 / the PDF has no signatures", "request_id": "…"}))))]
/// `POST /api/v1/verify/file` (R7.4.12): every signature of a PDF — integrity over its byte range,
/// coverage, changes after it (other than later signatures), trust, revocation, timestamp.
async fn verify_file(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<VerifyFileRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use base64::Engine;
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Verify).or_else(|_| caller.app.require(Scope::Sign)).map_err(with_id)?;
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(body.file.trim())
        .map_err(|_| with_id(medsign_store::Error::Invalid("file 不是 base64 / file is not base64".into())))?;
    let rep = medsign_signing::flows::verify_file(&s.db, &s.cas, &pdf).await.map_err(with_id)?;
    Ok(Json(serde_json::to_value(rep).unwrap_or_default()))
}

/// Body of `POST /admin/v1/seals`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SealRequest {
    /// a department code; absent: the hospital's seal
    department: Option<String>,
    /// `sm2` (default) | `rsa`
    alg: Option<String>,
}

#[utoipa::path(post, path = "/admin/v1/seals", tag = "admin", security(("bearer" = [])),
    request_body(content = SealRequest, example = json!({"department": "YJK", "alg": "sm2"})),
    responses((status = 201, body = medsign_ca::certs::CertRecord, example = json!({"serial": "5A1F…", "employee_no": "org:seal-dept-YJK-sm2", "alg": "sm2", "profile": "seal", "channel": "builtin", "status": "active", "subject": "CN=某县人民医院 药剂科,OU=药剂科,O=某县人民医院,C=CN"})),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "科室 X 不存在 / no department X", "request_id": "…"}))))]
/// `POST /admin/v1/seals`: the hospital's or a department's seal certificate (R1.6), key in server
/// custody; returns the existing one while it is valid.
async fn create_seal(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<SealRequest>,
) -> Result<Response, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let rec = medsign_ca::certs::organisation_seal(
        &s.db,
        &s.kek,
        &s.cas,
        &s.organization,
        &caller.ctx,
        body.department.as_deref(),
        body.alg.as_deref().unwrap_or("sm2"),
    )
    .await
    .map_err(with_id)?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/seals", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Object, example = json!({"items": [{"serial": "5A1F…", "profile": "seal", "status": "active"}], "total": 1}))))]
/// `GET /admin/v1/seals`: the organisation seal certificates.
async fn list_seals(State(s): State<Arc<AppState>>, caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let q = medsign_ca::certs::ListQuery { profile: Some("seal".into()), page_size: Some(500), ..Default::default() };
    let (items, total) = medsign_ca::certs::list(&s.db, &q).await.map_err(with_id)?;
    Ok(Json(serde_json::json!({"items": items, "total": total})))
}

#[utoipa::path(get, path = "/admin/v1/time", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = medsign_tsa::clock::ClockStatus, example = json!({"state": "INSYNC", "offset_ms": 0.42, "uncertainty_ms": 1.9, "delay_ms": 0.3, "last_sync": "2026-11-27T08:00:00Z", "source": "ntp.ntsc.ac.cn", "stratum": 1, "leap": 0, "max_offset_ms": 1000, "holdover_seconds": 900, "sources": ["ntp.ntsc.ac.cn"], "errors": []}))))]
/// `GET /admin/v1/time`: the TSA clock (R6.4, R6.6).
async fn admin_time(State(s): State<Arc<AppState>>) -> Json<medsign_tsa::clock::ClockStatus> {
    Json(s.tsa.clock.status())
}

#[utoipa::path(get, path = "/admin/v1/timestamps", tag = "admin", security(("bearer" = [])), params(medsign_tsa::tsa::ListQuery),
    responses((status = 200, body = Object, example = json!({"items": [{"serial": "0000019AC4F2E1A07C21B3D400000000", "profile": "sm2", "hash_alg": "sm3", "imprint_hex": "66c7…", "gen_time": "2026-11-27T08:00:00.123456Z", "policy": "0.4.0.2023.1.1", "accuracy_us": 2150, "requester": "tsa"}], "total": 1})), (status = 400, body = ErrorBody)))]
/// `GET /admin/v1/timestamps?from=&to=&imprint=&page=&page_size=`: every issuance, for audit (R6).
async fn list_timestamps(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<medsign_tsa::tsa::ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    let Query(q) =
        query.map_err(|e| with_id(medsign_store::Error::Invalid(format!("查询参数有误 / invalid query: {e}"))))?;
    let (items, total) = medsign_tsa::tsa::list(&s.db, &q).await.map_err(with_id)?;
    Ok(Json(serde_json::json!({"items": items, "total": total})))
}

/// `?ca=rsa` selects the RSA issuing CA's CRL.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CrlQuery {
    /// `sm2` (default) or `rsa`
    ca: Option<String>,
}

#[utoipa::path(get, path = "/pki/crl", tag = "pki", params(CrlQuery),
    responses((status = 200, description = "CRL v2 (DER) of the SM2 or RSA issuing CA, valid 24 h", content_type = "application/pkix-crl", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 400, body = ErrorBody)))]
/// `GET /pki/crl[?ca=rsa]`: the current CRL (re-signed on every status change and every
/// `ca.crl_refresh_hours`).
async fn crl(State(s): State<Arc<AppState>>, Query(q): Query<CrlQuery>) -> Result<Response, ApiError> {
    let h = match q.ca.as_deref() {
        None | Some("sm2") => &s.cas.sm2,
        Some("rsa") => &s.cas.rsa,
        Some(other) => {
            return Err(ApiError::invalid(format!("未知 CA '{other}'（sm2 或 rsa）/ unknown ca (sm2 or rsa)")));
        }
    };
    let der = medsign_ca::certs::crl(&s.db, h, s.ca_config.crl_refresh_hours).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-crl"), (header::CACHE_CONTROL, "public, max-age=300, no-transform")],
        der,
    )
        .into_response())
}

/// The largest OCSP request accepted (32 CertIDs fit in well under 4 KiB).
const OCSP_MAX_REQUEST: usize = 16 * 1024;

fn ocsp_reply(a: medsign_ca::ocsp::Answer, cache: bool) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "application/ocsp-response")], a.der.clone()).into_response();
    let h = r.headers_mut();
    match (cache && a.cacheable, a.this_update, a.next_update) {
        (true, Some(this), Some(next)) => {
            // RFC 5019 § 6.2: cacheable until nextUpdate, revalidated after
            let max_age = (next - chrono::Utc::now()).num_seconds().clamp(0, 600);
            let http_date = |t: chrono::DateTime<chrono::Utc>| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            let etag = format!("\"{}\"", hex::encode(&medsign_crypto::hash::sm3(&a.der)[..16]));
            for (k, v) in [
                (header::CACHE_CONTROL, format!("max-age={max_age}, public, no-transform, must-revalidate")),
                (header::LAST_MODIFIED, http_date(this)),
                (header::EXPIRES, http_date(next)),
                (header::ETAG, etag),
            ] {
                if let Ok(v) = axum::http::HeaderValue::from_str(&v) {
                    h.insert(k, v);
                }
            }
        }
        _ => {
            h.insert(header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache, no-store"));
        }
    }
    r
}

#[utoipa::path(post, path = "/pki/ocsp", tag = "pki",
    request_body(content = Vec<u8>, content_type = "application/ocsp-request", description = "DER OCSPRequest (RFC 6960 § 4.1)", example = json!("(binary DER)")),
    responses((status = 200, description = "DER OCSPResponse: good / revoked (time, reason) / unknown, signed by the delegated responder; malformedRequest for garbage, unauthorized for another CA's certificates", content_type = "application/ocsp-response", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 413, body = ErrorBody, example = json!({"code": "too_large", "message": "OCSP 请求过大 / OCSP request too large", "request_id": "…"})),
        (status = 415, body = ErrorBody, example = json!({"code": "unsupported_media_type", "message": "Content-Type 须为 application/ocsp-request", "request_id": "…"}))))]
/// `POST /pki/ocsp`: the OCSP responder (RFC 6960 appendix A.1).
async fn ocsp_post(
    State(s): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.trim().eq_ignore_ascii_case("application/ocsp-request") {
        return envelope(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type 须为 application/ocsp-request / Content-Type must be application/ocsp-request",
            &rid.0,
        );
    }
    if body.len() > OCSP_MAX_REQUEST {
        return envelope(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "OCSP 请求过大 / OCSP request too large", &rid.0);
    }
    ocsp_reply(s.ocsp.respond(&s.db, &body).await, false)
}

#[utoipa::path(get, path = "/pki/ocsp/{request}", tag = "pki",
    params(("request" = String, Path, description = "URL-encoded base64 of the DER OCSPRequest (RFC 6960 appendix A.1, RFC 5019 § 5)", example = "MEIwQDA%2BMDwwOjAJBgUrDgMCGgUABBQ…")),
    responses((status = 200, description = "DER OCSPResponse, with Cache-Control / ETag / Expires per RFC 5019 when the request has no nonce", content_type = "application/ocsp-response", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 413, body = ErrorBody, example = json!({"code": "too_large", "message": "OCSP 请求过大 / OCSP request too large", "request_id": "…"}))))]
/// `GET /pki/ocsp/{base64}`: the cacheable form.
async fn ocsp_get(
    State(s): State<Arc<AppState>>,
    Extension(rid): Extension<RequestId>,
    Path(request): Path<String>,
) -> Response {
    use base64::Engine;
    if request.len() > OCSP_MAX_REQUEST * 4 / 3 + 4 {
        return envelope(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "OCSP 请求过大 / OCSP request too large", &rid.0);
    }
    let text: String = request.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(text.trim_start_matches('/'))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text.trim_start_matches('/')))
        .unwrap_or_default();
    // undecodable base64 is a malformed OCSP request, answered in the protocol
    ocsp_reply(s.ocsp.respond(&s.db, &der).await, true)
}

fn pem(body: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/x-pem-file")], body).into_response()
}

#[utoipa::path(get, path = "/pki/ca.pem", tag = "pki", responses((status = 200, description = "every CA certificate (SM2 root, SM2 issuing, RSA root, RSA issuing), PEM", content_type = "application/x-pem-file", example = json!("-----BEGIN CERTIFICATE-----\n…"))))]
/// `GET /pki/ca.pem`: every built-in CA certificate.
async fn ca_all(State(s): State<Arc<AppState>>) -> Response {
    pem(format!("{}{}", s.cas.sm2.pem(), s.cas.rsa.pem()))
}

#[utoipa::path(get, path = "/pki/sm2/ca.pem", tag = "pki", responses((status = 200, description = "SM2 root + issuing CA, PEM", content_type = "application/x-pem-file", example = json!("-----BEGIN CERTIFICATE-----\n…"))))]
/// `GET /pki/sm2/ca.pem`.
async fn ca_sm2(State(s): State<Arc<AppState>>) -> Response {
    pem(s.cas.sm2.pem())
}

#[utoipa::path(get, path = "/pki/rsa/ca.pem", tag = "pki", responses((status = 200, description = "RSA root + issuing CA, PEM", content_type = "application/x-pem-file", example = json!("-----BEGIN CERTIFICATE-----\n…"))))]
/// `GET /pki/rsa/ca.pem`.
async fn ca_rsa(State(s): State<Arc<AppState>>) -> Response {
    pem(s.cas.rsa.pem())
}

type AuditQuery = Result<Query<medsign_store::audit::Filter>, axum::extract::rejection::QueryRejection>;

fn audit_filter(caller: &Caller, q: AuditQuery) -> Result<medsign_store::audit::Filter, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Admin).map_err(with_id)?;
    let Query(f) =
        q.map_err(|e| with_id(medsign_store::Error::Invalid(format!("查询参数有误 / invalid query: {e}"))))?;
    Ok(f)
}

/// `GET /admin/v1/audit?kind=&actor=&action=&target=&from=&to=&page=&page_size=` (R1.7).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "admin", security(("bearer" = [])), params(medsign_store::audit::Filter),
    responses((status = 200, body = Object, example = json!({"items": [{"seq": 1, "at": "2026-11-27T08:00:00.000Z", "kind": "admin", "actor": "system", "action": "app.create", "target": "app:app_1a2b", "outcome": "ok", "ip": "local", "user_agent": "medsign-serve", "request_id": "bootstrap", "details": "{}", "prev_hash": "00…", "hash": "2a68…"}], "total": 1, "page": 1, "page_size": 100})),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit_query(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    q: AuditQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let f = audit_filter(&caller, q)?;
    let (items, total) = medsign_store::audit::query(&s.db, &f)
        .await
        .map_err(|e| ApiError { error: e, request_id: caller.ctx.request_id.clone() })?;
    Ok(Json(
        serde_json::json!({"items": items, "total": total, "page": f.page.unwrap_or(1), "page_size": f.page_size.unwrap_or(100)}),
    ))
}

/// `GET /admin/v1/audit.csv` with the same filters: a CSV export (UTF-8 with BOM).
#[utoipa::path(get, path = "/admin/v1/audit.csv", tag = "admin", security(("bearer" = [])), params(medsign_store::audit::Filter),
    responses((status = 200, description = "CSV export (UTF-8 with BOM)", content_type = "text/csv", example = json!("seq,at,kind,actor,action,target,outcome,ip,user_agent,request_id,details,hash"))))]
async fn audit_csv(State(s): State<Arc<AppState>>, caller: Caller, q: AuditQuery) -> Result<Response, ApiError> {
    let f = audit_filter(&caller, q)?;
    let (items, _) = medsign_store::audit::query(&s.db, &f)
        .await
        .map_err(|e| ApiError { error: e, request_id: caller.ctx.request_id.clone() })?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"medsign-audit.csv\""),
        ],
        medsign_store::audit::to_csv(&items),
    )
        .into_response())
}

/// `GET /admin/v1/audit/verify`: walk the hash chain (as `medsign audit verify` does).
#[utoipa::path(get, path = "/admin/v1/audit/verify", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = medsign_store::audit::ChainReport, example = json!({"entries": 42, "head": "2a68…", "broken": null, "anchors": 3}))))]
async fn audit_verify(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<medsign_store::audit::ChainReport>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::Admin).map_err(with_id)?;
    Ok(Json(medsign_store::audit::verify_chain(&s.db).await.map_err(with_id)?))
}

/// `GET /api/v1/users?department=&q=&page=&page_size=` (R7.4.2).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])), params(users::ListQuery),
    responses((status = 200, body = users::Page, example = json!({"items": [], "page": 1, "page_size": 50, "total": 0})),
        (status = 400, body = ErrorBody)))]
async fn list_users(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<users::ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<users::Page>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::UsersRead).map_err(with_id)?;
    let Query(q) =
        query.map_err(|e| with_id(medsign_store::Error::Invalid(format!("查询参数有误 / invalid query: {e}"))))?;
    Ok(Json(users::list(&s.db, &s.kek, &q).await.map_err(with_id)?))
}

/// `PATCH /api/v1/users/{employee_no}` (R1.4): edit, disable (`"status": "disabled"`), enable.
#[utoipa::path(patch, path = "/api/v1/users/{employee_no}", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    request_body(content = users::UserPatch, example = json!({"title": "主任医师", "status": "disabled"})),
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_user(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(no): Path<String>,
    StrictJson(patch): StrictJson<users::UserPatch>,
) -> Result<Json<users::User>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::UsersWrite).map_err(with_id)?;
    Ok(Json(users::update(&s.db, &s.kek, &caller.ctx, &no, &patch).await.map_err(with_id)?))
}

/// `DELETE /api/v1/users/{employee_no}` (R1.4): soft delete, kept for the audit trail.
#[utoipa::path(delete, path = "/api/v1/users/{employee_no}", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 204, description = "deleted (soft; kept for the audit trail)"), (status = 404, body = ErrorBody)))]
async fn delete_user(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(no): Path<String>,
) -> Result<StatusCode, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::UsersWrite).map_err(with_id)?;
    users::delete(&s.db, &s.kek, &caller.ctx, &no).await.map_err(with_id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users/{employee_no}` (R7.4.2).
#[utoipa::path(get, path = "/api/v1/users/{employee_no}", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "工号 9999 的用户不存在 / no user with employee_no 9999", "request_id": "a6df…"}))))]
async fn get_user(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(no): Path<String>,
) -> Result<Json<users::User>, ApiError> {
    let with_id = crate::error::with_request_id(&caller.ctx.request_id);
    caller.app.require(Scope::UsersRead).map_err(with_id)?;
    Ok(Json(users::get(&s.db, &s.kek, &no).await.map_err(with_id)?))
}
