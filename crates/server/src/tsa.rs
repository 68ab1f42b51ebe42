//! Handlers of time (R6): the RFC 3161 endpoints, JSON timestamps, the clock's state.

use crate::extract::StrictQuery;
use crate::{
    ApiError,
    error::{ErrorBody, envelope},
    extract::{Caller, StrictJson, Visitor},
    extract::{Scoped, scope},
    state::AppState,
};
use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The largest TimeStampReq accepted (a SHA-512 request with a nonce is under 200 bytes).
const TSA_MAX_REQUEST: usize = 64 * 1024;

async fn tsa_answer(
    s: &AppState,
    profile: Option<&str>,
    v: &Visitor,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Response {
    if let Some(limit) = s.public_rate
        && let Err(e) = s.limits.take("tsa", limit, &v.ctx.ip)
    {
        return ApiError::from(e).into_response();
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/timestamp-query") {
        return envelope(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type 须为 application/timestamp-query / Content-Type must be application/timestamp-query",
        );
    }
    if body.len() > TSA_MAX_REQUEST {
        return envelope(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "时间戳请求过大 / timestamp request too large");
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
    v: Visitor,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    tsa_answer(&s, None, &v, &headers, &body).await
}

/// The profiles of `POST /tsa/{profile}` (OpenAPI: the values the path takes).
#[derive(utoipa::ToSchema)]
#[schema(example = "sm2")]
#[allow(dead_code)]
enum TsaProfileName {
    /// SM3withSM2, the SM2 CA
    #[schema(rename = "sm2")]
    Sm2,
    /// SHA-256 with RSA-2048, the RSA CA (for PDF readers)
    #[schema(rename = "rsa")]
    Rsa,
    /// ECDSA P-256 with SHA-256, certified by the RSA CA
    #[schema(rename = "p256")]
    P256,
}

#[utoipa::path(post, path = "/tsa/{profile}", tag = "tsa",
    params(("profile" = TsaProfileName, Path, description = "`sm2` (SM3withSM2), `rsa` (SHA-256 with RSA-2048, for PDF readers) or `p256` (ECDSA P-256 with SHA-256, certificate from the RSA CA)", example = "sm2")),
    request_body(content = Vec<u8>, content_type = "application/timestamp-query", example = json!("(binary DER)")),
    responses((status = 200, description = "DER TimeStampResp, token signed with the profile's key", content_type = "application/timestamp-reply", body = Vec<u8>, example = json!("(binary DER)")),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "没有时间戳配置 x / no timestamp profile x (sm2, rsa, p256)", "request_id": "…"})),
        (status = 415, body = ErrorBody, example = json!({"code": "unsupported_media_type", "message": "Content-Type 须为 application/timestamp-query", "request_id": "…"}))))]
/// `POST /tsa/{profile}`: RFC 3161 with one named profile.
async fn tsa_profile(
    State(s): State<Arc<AppState>>,
    axum::extract::Path(profile): axum::extract::Path<String>,
    v: Visitor,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(p) = s.tsa.profile(Some(&profile)) else {
        let shown: String = profile.chars().take(16).collect();
        return envelope(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("没有时间戳配置 {shown} / no timestamp profile {shown} (sm2, rsa, p256)"),
        );
    };
    tsa_answer(&s, Some(p.name), &v, &headers, &body).await
}

/// Body of `POST /api/v1/timestamps`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TimestampRequest {
    /// the digest to stamp, hex
    digest: String,
    /// `sm3` | `sha256` | `sha384` | `sha512`
    algorithm: String,
    /// `sm2` | `rsa` | `p256` (default `tsa.default_profile`)
    profile: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/timestamps", tag = "timestamps", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = TimestampRequest, example = json!({"digest": "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0", "algorithm": "sm3"})),
    responses((status = 201, body = medsign_tsa::tsa::Token, example = json!({"token": "MIIE…", "serial": "0000019AC4F2E1A07C21B3D400000000", "time": "2026-11-27T08:00:00.123Z", "accuracy_us": 2150, "policy": "0.4.0.2023.1.1", "profile": "sm2"})),
        (status = 400, body = ErrorBody), (status = 503, body = ErrorBody, example = json!({"code": "unavailable", "message": "时钟失去同步，拒绝签发 / the clock is out of sync …", "request_id": "…"}))))]
/// `POST /api/v1/timestamps` (R6.1): a token over a digest.
async fn create_timestamp(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Timestamps>,
    StrictJson(body): StrictJson<TimestampRequest>,
) -> Result<Response, ApiError> {
    let t = s.tsa.stamp_digest(body.profile.as_deref(), &body.algorithm, &body.digest, &caller.app.app_id).await?;
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
    _caller: Scoped<scope::TimestampsOrVerify>,
    StrictJson(body): StrictJson<TimestampVerifyRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use base64::Engine;
    let b64 = |v: &str, what: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| medsign_store::Error::Invalid(format!("{what} 不是 base64 / {what} is not base64")))
    };
    let token = b64(&body.token, "token")?;
    let digest = match &body.digest {
        Some(d) => Some(
            hex::decode(d.trim())
                .map_err(|_| medsign_store::Error::Invalid("digest 须为十六进制 / digest must be hex".into()))?,
        ),
        None => None,
    };
    let data = match &body.data {
        Some(d) => Some(b64(d, "data")?),
        None => None,
    };
    let listed = medsign_ca::trust::load(&s.db).await?;
    let report = medsign_tsa::tsa::verify(&s.cas, &listed, &token, digest.as_deref(), data.as_deref())?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

#[utoipa::path(get, path = "/admin/v1/time", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = medsign_tsa::clock::ClockStatus, example = json!({"state": "INSYNC", "offset_ms": 0.42, "uncertainty_ms": 1.9, "delay_ms": 0.3, "last_sync": "2026-11-27T08:00:00Z", "source": "ntp.ntsc.ac.cn", "stratum": 1, "leap": 0, "max_offset_ms": 1000, "holdover_seconds": 900, "sources": ["ntp.ntsc.ac.cn"], "errors": []}))))]
/// `GET /admin/v1/time`: the TSA clock (R6.4, R6.6).
async fn admin_time(State(s): State<Arc<AppState>>) -> Json<medsign_tsa::clock::ClockStatus> {
    Json(s.tsa.clock.status())
}

#[utoipa::path(get, path = "/admin/v1/time/history", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<medsign_tsa::clock::ClockPoint>, example = json!([{"at": "2026-12-04T08:00:00Z", "state": "INSYNC", "offset_ms": 0.42, "uncertainty_ms": 1.9, "source": "ntp.ntsc.ac.cn"}]))))]
/// `GET /admin/v1/time/history`: the clock after each of the last polls of this instance (about
/// a day at the default poll; kept in memory), for offset and uncertainty over time.
async fn admin_time_history(State(s): State<Arc<AppState>>) -> Json<Vec<medsign_tsa::clock::ClockPoint>> {
    Json(s.tsa.clock.history())
}

#[utoipa::path(get, path = "/admin/v1/timestamps", tag = "admin", security(("bearer" = [])), params(medsign_tsa::tsa::ListQuery),
    responses((status = 200, body = Object, example = json!({"items": [{"serial": "0000019AC4F2E1A07C21B3D400000000", "profile": "sm2", "hash_alg": "sm3", "imprint_hex": "66c7…", "gen_time": "2026-11-27T08:00:00.123456Z", "policy": "0.4.0.2023.1.1", "accuracy_us": 2150, "requester": "tsa"}], "total": 1})), (status = 400, body = ErrorBody)))]
/// `GET /admin/v1/timestamps?from=&to=&imprint=&page=&page_size=`: every issuance, for audit (R6).
async fn list_timestamps(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    StrictQuery(q): StrictQuery<medsign_tsa::tsa::ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (items, total) = medsign_tsa::tsa::list(&s.db, &q).await?;
    Ok(Json(serde_json::json!({"items": items, "total": total})))
}

/// Its routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(tsa_default))
        .routes(routes!(tsa_profile))
        .routes(routes!(create_timestamp))
        .routes(routes!(verify_timestamp))
}

/// Its `/admin/v1` routes (the admin scope is required by the caller).
pub(crate) fn admin_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(admin_time))
        .routes(routes!(admin_time_history))
        .routes(routes!(list_timestamps))
}
