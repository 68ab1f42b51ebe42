//! `/mobile/v1` (issue #7): binding a phone and two-party key generation; activation codes for
//! HIS and admins on `/api/v1`.

use crate::{
    ApiError,
    extract::{Caller, Phone, StrictJson, Visitor},
    routes::{AppState, ErrorBody},
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medsign_core::{apps::Scope, mobile};
use serde::Deserialize;
use std::sync::Arc;

use crate::error::with_request_id as err;

#[utoipa::path(post, path = "/api/v1/users/{employee_no}/activation-codes", tag = "mobile", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 201, body = mobile::Activation, example = json!({"code": "7K3F-9Q2A-XM4P", "employee_no": "1001", "expires_at": "2026-11-30T08:00:00Z"})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "用户 X 不存在 / no user X", "request_id": "…"}))))]
/// `POST /api/v1/users/{employee_no}/activation-codes` (R3.1): a one-time code (72 h) the staff
/// member types into the phone to bind it; earlier unused codes stop working.
pub async fn activation_code(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(no): Path<String>,
) -> Result<Response, ApiError> {
    let e = err(&caller.ctx.request_id);
    caller.app.require(Scope::UsersWrite).map_err(&e)?;
    let a = mobile::activation_code(&s.db, &s.kek, &caller.ctx, &no).await.map_err(&e)?;
    Ok((StatusCode::CREATED, Json(a)).into_response())
}

/// Body of `POST /mobile/v1/activate`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// 工号
    employee_no: String,
    /// the activation code
    code: String,
    /// shown in the user's device list, e.g. "iPhone 15"
    device_name: String,
}

#[utoipa::path(post, path = "/mobile/v1/activate", tag = "mobile",
    request_body(content = ActivateRequest, example = json!({"employee_no": "1001", "code": "7K3F-9Q2A-XM4P", "device_name": "iPhone 15"})),
    responses((status = 201, body = mobile::Session, example = json!({"token": "mt_…", "device_id": "dev_3f2a9c1b7d4e5a60", "employee_no": "1001", "expires_at": "2026-12-27T08:00:00Z"})),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "激活码无效（expired）/ the activation code is not valid (expired)", "request_id": "…"}))))]
/// `POST /mobile/v1/activate`: bind this phone (the previous one is unbound and its keys destroyed).
pub async fn activate(
    State(s): State<Arc<AppState>>,
    v: Visitor,
    StrictJson(body): StrictJson<ActivateRequest>,
) -> Result<Response, ApiError> {
    let e = err(&v.ctx.request_id);
    let ctx = medsign_core::audit::Context { actor: format!("user:{}", body.employee_no), ..v.ctx.clone() };
    let session =
        mobile::activate(&s.db, &s.cas, &ctx, &body.employee_no, &body.code, &body.device_name).await.map_err(&e)?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/keys", tag = "mobile", security(("device" = [])),
    responses((status = 201, body = mobile::KeyGenStart, example = json!({"key_id": "sk_3f2a9c1b7d4e5a60", "context": "medsign/keygen/v1|user=1001|device=dev_…|key=sk_…"})),
        (status = 401, body = ErrorBody)))]
/// `POST /mobile/v1/keys`: start a two-party key generation (the phone then runs `new KeyGen(context)`).
pub async fn keygen_start(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    let start = mobile::keygen_start(&s.db, &phone.session).await.map_err(err(&phone.ctx.request_id))?;
    Ok((StatusCode::CREATED, Json(start)).into_response())
}

/// Body of `POST /mobile/v1/keys/{key_id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyGenBody {
    /// the phone's first message (`KeyGen.request`)
    #[schema(value_type = Object)]
    request: medsign_crypto::twoparty::KeyGenRequest,
}

#[utoipa::path(post, path = "/mobile/v1/keys/{key_id}", tag = "mobile", security(("device" = [])),
    params(("key_id" = String, Path, example = "sk_3f2a9c1b7d4e5a60")),
    request_body(content = KeyGenBody, example = json!({"request": {"version": 1, "p1": "04…", "proof": {"t": "04…", "z": "…"}}})),
    responses((status = 201, body = mobile::KeyGenDone, example = json!({"response": {"version": 1, "p2": "04…", "proof": {}, "public_key": "04…"}, "certificate": {"serial": "2BE1…", "alg": "sm2", "status": "active"}})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "密钥生成请求无效 / invalid key generation request: proof does not verify", "request_id": "…"})),
        (status = 409, body = ErrorBody)))]
/// `POST /mobile/v1/keys/{key_id}`: the server's half of key generation and the certificate of the
/// joint key, issued through the active CA channel.
pub async fn keygen_finish(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    Path(key_id): Path<String>,
    StrictJson(body): StrictJson<KeyGenBody>,
) -> Result<Response, ApiError> {
    let done = mobile::keygen_finish(&s.db, &s.kek, s.issuer(), &phone.ctx, &phone.session, &key_id, &body.request)
        .await
        .map_err(err(&phone.ctx.request_id))?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}
