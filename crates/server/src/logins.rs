//! Scan-to-login (issue #7; R2.5, R3.3): login tickets for hospital systems on `/api/v1`, their
//! state as server-sent events, and the phone's scan / decline on `/mobile/v1`.
//!
//! The events stream needs no token: a PC page cannot send the system's bearer token with
//! `EventSource`, so the 128-bit ticket id is the capability, and the stream carries only the state.
//! The signed assertion comes from `GET /api/v1/login-tickets/{id}` with the system's token.

use crate::{
    ApiError,
    error::ErrorBody,
    extract::{Phone, StrictJson},
    extract::{Scoped, scope},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medsign_phone::logins;
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

/// Body of `POST /api/v1/login-tickets`.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct NewLogin {
    /// the system name the phone shows (default: the app's name)
    system: Option<String>,
    /// signed into the assertion (default: 128 random bits, hex)
    challenge: Option<String>,
    /// 30–600 (default 120)
    ttl_seconds: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/login-tickets", tag = "login", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = Option<NewLogin>, description = "optional: no body (or an empty one) takes every default", example = json!({"system": "门诊医生站", "challenge": "9f1c2a…", "ttl_seconds": 120})),
    responses((status = 201, body = logins::LoginView, example = json!({"ticket_id": "lt_5f0c…", "state": "waiting", "system": "门诊医生站", "challenge": "9f1c2a…", "expires_at": "2026-11-27T08:02:00Z", "employee_no": null, "assertion": null, "deep_link": "https://medsign.example/m/#/login?t=lt_5f0c…", "qr_png_base64": "iVBORw0…", "qr_svg": "<svg …>"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "ttl_seconds 须为 30–600 / ttl_seconds must be 30-600", "request_id": "…"}))))]
/// `POST /api/v1/login-tickets` (R2.5, R3.3): a one-time login QR for a PC page (scope `sign`).
pub async fn create(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    body: Option<StrictJson<NewLogin>>,
) -> Result<Response, ApiError> {
    let b = body.map(|StrictJson(b)| b).unwrap_or_default();
    let system = b.system.unwrap_or_else(|| caller.app.name.clone());
    let v = logins::create(
        &s.db,
        &caller.ctx,
        &s.app_url,
        &caller.app.app_id,
        &system,
        b.challenge.as_deref(),
        b.ttl_seconds,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

#[utoipa::path(get, path = "/api/v1/login-tickets/{ticket_id}", tag = "login", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("ticket_id" = String, Path, example = "lt_5f0c2d…")),
    responses((status = 200, body = logins::LoginView, example = json!({"ticket_id": "lt_5f0c…", "state": "confirmed", "system": "门诊医生站", "challenge": "9f1c2a…", "expires_at": "2026-11-27T08:02:00Z", "employee_no": "1001", "assertion": {"employee_no": "1001", "cert_serial": "2BE1…", "signed_at": "2026-11-27T08:00:31.204Z", "data_base64": "eyJ0eXBlIjoi…", "signature_base64": "MIIG…", "flow_id": "sf_…"}})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "登录票据 X 不存在 / no login ticket X", "request_id": "…"}))))]
/// `GET /api/v1/login-tickets/{ticket_id}`: state, and once confirmed the signed login assertion
/// (check it with `POST /api/v1/verify/data`).
pub async fn get(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(logins::get(&s.db, Some(&caller.app.app_id), &id).await?).into_response())
}

#[utoipa::path(get, path = "/api/v1/login-tickets/{ticket_id}/events", tag = "login",
    params(("ticket_id" = String, Path, example = "lt_5f0c2d…")),
    responses((status = 200, content_type = "text/event-stream", body = String, example = json!("event: state\ndata: {\"state\":\"scanned\"}\n\nevent: state\ndata: {\"state\":\"confirmed\"}\n\n")),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "登录票据 X 不存在 / no login ticket X", "request_id": "…"}))))]
/// `GET /api/v1/login-tickets/{ticket_id}/events` (SSE): `state` events (`waiting`, `scanned`,
/// `confirmed`, `refused`, `expired`) as they happen; the stream ends after a final state. No token
/// (the ticket id is the capability); the assertion itself needs the system's token.
pub async fn events(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let state = |v: &logins::LoginView| (serde_json::json!({"state": v.state}), v.is_final());
    let first = logins::get(&s.db, None, &id).await?;
    Ok(crate::events::state_events(state(&first), move || {
        let (st, id) = (s.clone(), id.clone());
        async move { logins::get(&st.db, None, &id).await.ok().map(|v| state(&v)) }
    }))
}

#[utoipa::path(post, path = "/mobile/v1/login-tickets/{ticket_id}/scan", tag = "mobile", security(("device" = [])),
    params(("ticket_id" = String, Path, example = "lt_5f0c2d…")),
    responses((status = 201, body = logins::Scanned, example = json!({"system": "门诊医生站", "challenge": "9f1c2a…", "expires_at": "2026-11-27T08:02:00Z", "round": {"round_id": "sr_…", "e": "9a3c…", "key_id": "sk_…", "cert_serial": "2BE1…", "expires_at": "2026-11-27T08:05:00Z", "summary": {"title": "扫码登录 门诊医生站", "kind": "data"}}})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "登录二维码无效（already used）/ the login QR code is not valid (already used)", "request_id": "…"}))))]
/// `POST /mobile/v1/login-tickets/{ticket_id}/scan`: the phone scanned a login QR; confirm by
/// signing the returned round (answers, then signatures), or decline.
pub async fn scan(State(s): State<Arc<AppState>>, phone: Phone, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.limits.take("scan", crate::ratelimit::SCAN, &phone.session.device_id)?;
    let v = logins::scan(&s.db, &s.kek, &s.cas, &s.organization, &s.tsa, &phone.ctx, &phone.session, &id).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/login-tickets/{ticket_id}/refuse", tag = "mobile", security(("device" = [])),
    params(("ticket_id" = String, Path, example = "lt_5f0c2d…")),
    responses((status = 204, description = "declined"),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "没有待确认的登录 / no login of this phone is waiting for confirmation", "request_id": "…"}))))]
/// `POST /mobile/v1/login-tickets/{ticket_id}/refuse`: the user declined the login.
pub async fn refuse(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    logins::refuse(&s.db, &phone.ctx, &phone.session, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Its routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(get))
        .routes(routes!(events))
        .routes(routes!(scan))
        .routes(routes!(refuse))
}
