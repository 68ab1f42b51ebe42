//! `/mobile/v1` (issue #7): binding a phone and two-party key generation; activation codes for
//! HIS and admins on `/api/v1`.

use crate::extract::StrictQuery;
use crate::{
    ApiError,
    error::ErrorBody,
    extract::{Caller, Phone, StrictJson, Visitor},
    extract::{Scoped, scope},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medsign_directory::apps::Scope;
use medsign_phone::{cosign, grants, mobile, soter};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

#[utoipa::path(post, path = "/api/v1/users/{employee_no}/activation-codes", tag = "mobile", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 201, body = mobile::Activation, example = json!({"code": "7K3F-9Q2A-XM4P", "employee_no": "1001", "expires_at": "2026-11-30T08:00:00Z", "channel_fingerprint": "3f2a9c1b7d4e5a60…", "link": "https://medsign.example/m/#/activate?no=1001&code=7K3F-9Q2A-XM4P&k=3f2a9c1b7d4e5a60…", "qr_png_base64": "iVBORw0KGgo…"})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "用户 X 不存在 / no user X", "request_id": "…"}))))]
/// `POST /api/v1/users/{employee_no}/activation-codes` (R3.1): a one-time code (72 h) the staff
/// member types into the phone to bind it; earlier unused codes stop working.
pub async fn activation_code(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    Path(no): Path<String>,
) -> Result<Response, ApiError> {
    let a = mobile::activation_code(&s.db, &s.kek, &caller.ctx, &no)
        .await?
        .with_link(&s.app_url, &s.channel.fingerprint(&s.db, &s.kek).await);
    // a one-time secret: no cache keeps it
    Ok((StatusCode::CREATED, [(axum::http::header::CACHE_CONTROL, "no-store")], Json(a)).into_response())
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
    /// inside WeCom (企业微信): a fresh `wx.qy.login` code of the employee's own WeCom account
    /// (its user ID must be the staff number); required when the hospital sets
    /// `realname.wecom_required`
    wecom_code: Option<String>,
}

#[utoipa::path(post, path = "/mobile/v1/activate", tag = "mobile",
    request_body(content = ActivateRequest, example = json!({"employee_no": "1001", "code": "7K3F-9Q2A-XM4P", "device_name": "iPhone 15"})),
    responses((status = 201, body = mobile::Session, example = json!({"token": "mt_…", "device_id": "dev_3f2a9c1b7d4e5a60", "employee_no": "1001", "expires_at": "2026-12-27T08:00:00Z"})),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "激活码无效（expired）/ the activation code is not valid (expired)", "request_id": "…"})),
        (status = 403, body = ErrorBody, example = json!({"code": "wecom_mismatch", "message": "企业微信账号不是该工号本人 / the WeCom account is not this staff member's", "request_id": "…"}))))]
/// `POST /mobile/v1/activate`: bind this phone (the previous one is unbound and its keys destroyed).
pub async fn activate(
    State(s): State<Arc<AppState>>,
    v: Visitor,
    StrictJson(body): StrictJson<ActivateRequest>,
) -> Result<Response, ApiError> {
    s.limits.take("activate", crate::ratelimit::PIN, &v.ctx.ip)?;
    let ctx = medsign_store::audit::Context { actor: format!("user:{}", body.employee_no), ..v.ctx.clone() };
    let wecom = (s.wecom.as_deref(), s.wecom_required);
    medsign_phone::realname::wecom_binding(&s.db, &ctx, wecom, &body.employee_no, body.wecom_code.as_deref()).await?;
    let session = mobile::activate(&s.db, s.revoker(), &ctx, &body.employee_no, &body.code, &body.device_name).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/keys", tag = "mobile", security(("device" = [])),
    responses((status = 201, body = mobile::KeyGenStart, example = json!({"key_id": "sk_3f2a9c1b7d4e5a60", "context": "medsign/keygen/v1|user=1001|device=dev_…|key=sk_…"})),
        (status = 401, body = ErrorBody)))]
/// `POST /mobile/v1/keys`: start a two-party key generation (the phone then runs `new KeyGen(context)`).
pub async fn keygen_start(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    let start = mobile::keygen_start(&s.db, &phone.session).await?;
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
    responses((status = 201, body = mobile::KeyGenDone, example = json!({"response": {"version": 1, "p2": "04…", "proof": {}, "public_key": "04…"}, "certificate": {"serial": "2BE1…", "alg": "sm2", "status": "active"}, "csr_required": false})),
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
    medsign_phone::realname::require(&s.db, s.realname.as_ref(), &phone.session.employee_no).await?;
    let done =
        mobile::keygen_finish(&s.db, &s.kek, s.issuer(), &phone.ctx, &phone.session, &key_id, &body.request).await?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

/// Answer of `GET /mobile/v1/pending`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PendingList {
    /// documents waiting for this user's signature, oldest first
    items: Vec<cosign::Summary>,
}

#[utoipa::path(get, path = "/mobile/v1/pending", tag = "mobile", security(("device" = [])),
    responses((status = 200, body = PendingList, example = json!({"items": [{"flow_id": "sf_9c1b7d4e5a603f2a", "doc_no": "QM-20261127-7K3F9Q2A", "title": "门诊处方笺 王小明", "kind": "file", "template_id": "outpatient-prescription", "content_sm3": "…", "bytes": 48211, "pages": 1, "signer_index": 0, "signers": 2, "app_id": "app_…", "created_at": "2026-11-27T08:00:00Z", "expires_at": "2026-11-28T08:00:00Z"}]})),
        (status = 401, body = ErrorBody)))]
/// `GET /mobile/v1/pending` (R3.6): the documents waiting for this phone's user.
pub async fn pending(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    let items = cosign::pending(&s.db, &phone.session).await?;
    Ok(Json(PendingList { items }).into_response())
}

/// Body of `POST /mobile/v1/sign-rounds`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// 1–200 documents: a scanned ticket, or flows of the pending list
    targets: Vec<cosign::Target>,
}

/// Answer of `POST /mobile/v1/sign-rounds`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Rounds {
    /// one per target, in order
    rounds: Vec<cosign::Round>,
}

#[utoipa::path(post, path = "/mobile/v1/sign-rounds", tag = "mobile", security(("device" = [])),
    request_body(content = StartBody, example = json!({"targets": [{"ticket": "tk_5f0c2d…"}]})),
    responses((status = 201, body = Rounds, example = json!({"rounds": [{"round_id": "sr_…", "e": "9a3c…", "key_id": "sk_…", "cert_serial": "2BE1…", "expires_at": "2026-11-27T08:05:00Z", "summary": {"title": "门诊处方笺 王小明", "kind": "file", "pages": 1}}]})),
        (status = 403, body = ErrorBody, example = json!({"code": "forbidden", "message": "文档 QM-… 不需要您签署 / document QM-… is not for you to sign", "request_id": "…"})),
        (status = 409, body = ErrorBody)))]
/// `POST /mobile/v1/sign-rounds` (R3.4, R3.6): prepare what will be signed and return, per
/// document, the summary to show and `e` for the phone's half.
pub async fn start_rounds(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(body): StrictJson<StartBody>,
) -> Result<Response, ApiError> {
    s.limits.take("scan", crate::ratelimit::SCAN, &phone.session.device_id)?;
    let rounds = cosign::start(&s.db, &s.kek, &phone.ctx, &phone.session, &body.targets).await?;
    Ok((StatusCode::CREATED, Json(Rounds { rounds })).into_response())
}

#[utoipa::path(get, path = "/mobile/v1/sign-rounds/{round_id}/view", tag = "mobile", security(("device" = [])),
    params(("round_id" = String, Path, example = "sr_3f2a9c1b7d4e5a60")),
    responses((status = 200, body = cosign::View, example = json!({"round_id": "sr_…", "flow_id": "sf_…", "kind": "data", "text": "血常规：WBC 6.2×10^9/L …", "pages": null, "truncated": false})),
        (status = 403, body = ErrorBody, example = json!({"code": "forbidden", "message": "本院设置为签署前只显示摘要 / this hospital shows only the summary before signing", "request_id": "…"})),
        (status = 404, body = ErrorBody)))]
/// `GET /mobile/v1/sign-rounds/{round_id}/view` (R2.4): the document of an open round as text —
/// a data flow's content, a PDF's text page by page — for the doctor to read before signing.
/// Refused when the hospital set `sign.phone_view = "summary"`.
pub async fn round_view(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    Path(round_id): Path<String>,
) -> Result<Response, ApiError> {
    if !s.phone_view {
        return Err(medsign_store::Error::Forbidden(
            "本院设置为签署前只显示摘要 / this hospital shows only the summary before signing".into(),
        )
        .into());
    }
    s.limits.take("scan", crate::ratelimit::SCAN, &phone.session.device_id)?;
    Ok(Json(cosign::view(&s.db, &phone.session, &round_id).await?).into_response())
}

/// Body of `POST /mobile/v1/sign-rounds/answers`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// the phone's messages (`SignSession.request`), one per round
    answers: Vec<cosign::Answer>,
}

/// Answer of `POST /mobile/v1/sign-rounds/answers`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Responses {
    /// the server half's answers, in order (pass each to `SignSession.finish`)
    #[schema(value_type = Vec<Object>)]
    responses: Vec<medsign_crypto::twoparty::SignResponse>,
}

#[utoipa::path(post, path = "/mobile/v1/sign-rounds/answers", tag = "mobile", security(("device" = [])),
    request_body(content = AnswerBody, example = json!({"answers": [{"round_id": "sr_…", "request": {"version": 1, "e": "9a3c…", "q1": "02…"}}]})),
    responses((status = 200, body = Responses, example = json!({"responses": [{"version": 1, "r": "…", "s2": "…", "s3": "…"}]})),
        (status = 403, body = ErrorBody, example = json!({"code": "approval_required", "message": "此操作须在手机上输入 PIN 或验证指纹确认 / this needs a fresh approval on the phone (PIN or fingerprint)", "request_id": "…"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "签署消息重复（Q1 已用过）/ the signing message was used before (replayed Q1)", "request_id": "…"})),
        (status = 409, body = ErrorBody)))]
/// `POST /mobile/v1/sign-rounds/answers`: the server's half of the two-party signatures.
pub async fn answer_rounds(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(body): StrictJson<AnswerBody>,
) -> Result<Response, ApiError> {
    let responses = cosign::answer(&s.db, &s.kek, &phone.ctx, &phone.session, &body.answers).await?;
    Ok(Json(Responses { responses }).into_response())
}

/// Body of `POST /mobile/v1/sign-rounds/signatures`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishBody {
    /// the signatures the phone released, one per round
    signatures: Vec<cosign::Finish>,
}

/// Answer of `POST /mobile/v1/sign-rounds/signatures`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Outcomes {
    /// per document, in order
    results: Vec<cosign::Outcome>,
}

#[utoipa::path(post, path = "/mobile/v1/sign-rounds/signatures", tag = "mobile", security(("device" = [])),
    request_body(content = FinishBody, example = json!({"signatures": [{"round_id": "sr_…", "signature": "3045…"}]})),
    responses((status = 200, body = Outcomes, example = json!({"results": [{"round_id": "sr_…", "flow_id": "sf_…", "state": "completed", "error": null}]})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "签名无效（与签署内容不符）/ the signature does not verify for this round", "request_id": "…"}))))]
/// `POST /mobile/v1/sign-rounds/signatures`: record the signatures, timestamp them and move each
/// flow on (a batch reports per document).
pub async fn finish_rounds(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(body): StrictJson<FinishBody>,
) -> Result<Response, ApiError> {
    let results =
        cosign::finish(&s.signing(), &medsign_phone::logins::LoginEvents, &phone.ctx, &phone.session, &body.signatures)
            .await?;
    Ok(Json(Outcomes { results }).into_response())
}

/// A business system a user can grant (an app allowed to start signings).
#[derive(Serialize, utoipa::ToSchema)]
pub struct System {
    /// app id
    app_id: String,
    /// its name, e.g. HIS 门诊医生站
    name: String,
}

/// Answer of `GET /mobile/v1/systems`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Systems {
    /// enabled apps with the `sign` scope
    items: Vec<System>,
    /// the longest grant this hospital allows (hours, `[sign] grant_max_hours`)
    grant_max_hours: u32,
}

#[utoipa::path(get, path = "/mobile/v1/systems", tag = "mobile", security(("device" = [])),
    responses((status = 200, body = Systems, example = json!({"items": [{"app_id": "app_3f2a9c1b", "name": "HIS 门诊医生站"}], "grant_max_hours": 12})), (status = 401, body = ErrorBody)))]
/// `GET /mobile/v1/systems`: the business systems a session grant can name.
pub async fn systems(State(s): State<Arc<AppState>>, _phone: Phone) -> Result<Response, ApiError> {
    let apps = medsign_directory::apps::list(&s.db).await?;
    let items = apps
        .into_iter()
        .filter(|a| !a.disabled && (a.scopes.contains(&Scope::Sign) || a.scopes.contains(&Scope::Admin)))
        .map(|a| System { app_id: a.app_id, name: a.name })
        .collect();
    Ok(Json(Systems { items, grant_max_hours: s.grant_max_hours }).into_response())
}

/// Body of `POST /mobile/v1/grants`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    /// the business system
    app_id: String,
    /// 1 to the hospital's limit (`grant_max_hours` of `GET /mobile/v1/systems`; at most 12)
    hours: u32,
    /// most signatures under it (default: no limit)
    max_count: Option<u32>,
}

#[utoipa::path(post, path = "/mobile/v1/grants", tag = "mobile", security(("device" = [])),
    request_body(content = NewGrant, example = json!({"app_id": "app_3f2a9c1b", "hours": 4, "max_count": 200})),
    responses((status = 201, body = grants::GrantStart, example = json!({"grant_id": "gr_…", "public_key": "04…", "context": "medsign/grant/v1|grant=gr_…|user=1001|app=app_…|key=sk_…", "app_id": "app_3f2a9c1b", "app_name": "HIS", "hours": 4})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "授权时长须为 1–12 小时 / hours must be 1-12", "request_id": "…"}))))]
/// `POST /mobile/v1/grants` (R3.5): start a session grant; the phone then seals its share to the
/// returned key (`KeyShare.sealTo(public_key, context)`) and sends it to `…/{grant_id}/share`.
pub async fn start_grant(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(b): StrictJson<NewGrant>,
) -> Result<Response, ApiError> {
    let w = grants::Window { hours: b.hours, max_hours: s.grant_max_hours, max_count: b.max_count };
    let g = grants::start(&s.db, &s.kek, &phone.session, &b.app_id, w).await?;
    Ok((StatusCode::CREATED, Json(g)).into_response())
}

/// Body of `POST /mobile/v1/grants/{grant_id}/share`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealedShare {
    /// the phone's share sealed to the grant key, hex
    sealed: String,
}

#[utoipa::path(post, path = "/mobile/v1/grants/{grant_id}/share", tag = "mobile", security(("device" = [])),
    params(("grant_id" = String, Path, example = "gr_3f2a9c1b7d4e5a60c1d2e3f4")),
    request_body(content = SealedShare, example = json!({"sealed": "04…"})),
    responses((status = 200, body = grants::GrantView, example = json!({"grant_id": "gr_…", "app_id": "app_3f2a9c1b", "state": "active", "hours": 4, "max_count": 200, "used_count": 0, "expires_at": "2026-11-27T12:00:00Z", "created_at": "2026-11-27T08:00:00.000Z", "ended_at": null})),
        (status = 403, body = ErrorBody, example = json!({"code": "approval_required", "message": "此操作须在手机上输入 PIN 或验证指纹确认 / this needs a fresh approval on the phone (PIN or fingerprint)", "request_id": "…"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "授权密钥份额无效 / the sealed share is not valid for this grant", "request_id": "…"}))))]
/// `POST /mobile/v1/grants/{grant_id}/share`: the sealed share; the grant is active from now.
pub async fn grant_share(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    Path(id): Path<String>,
    StrictJson(b): StrictJson<SealedShare>,
) -> Result<Response, ApiError> {
    let v = grants::activate(&s.db, &phone.ctx, &phone.session, &id, &b.sealed).await?;
    Ok(Json(v).into_response())
}

/// Answer of `GET /mobile/v1/grants`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GrantList {
    /// newest first
    items: Vec<grants::GrantView>,
}

#[utoipa::path(get, path = "/mobile/v1/grants", tag = "mobile", security(("device" = [])),
    responses((status = 200, body = GrantList, example = json!({"items": [{"grant_id": "gr_…", "app_id": "app_3f2a9c1b", "state": "active", "hours": 4, "used_count": 12, "expires_at": "2026-11-27T12:00:00Z"}]}))))]
/// `GET /mobile/v1/grants`: this user's session grants.
pub async fn list_grants(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    let items = grants::list(&s.db, &phone.session).await?;
    Ok(Json(GrantList { items }).into_response())
}

#[utoipa::path(delete, path = "/mobile/v1/grants/{grant_id}", tag = "mobile", security(("device" = [])),
    params(("grant_id" = String, Path, example = "gr_3f2a9c1b7d4e5a60c1d2e3f4")),
    responses((status = 200, body = grants::GrantView, example = json!({"grant_id": "gr_…", "state": "cancelled", "ended_at": "2026-11-27T09:30:00.000Z"})),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "授权 gr_… 状态为 expired / grant gr_… is expired", "request_id": "…"}))))]
/// `DELETE /mobile/v1/grants/{grant_id}`: cancel; the grant key and the sealed share are erased.
pub async fn cancel_grant(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let v = grants::cancel(&s.db, &phone.ctx, &phone.session, &id).await?;
    Ok(Json(v).into_response())
}

/// Body of `POST /mobile/v1/pin`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPin {
    /// the new PIN's verifier (`PinKey.create(pin, deviceSecret).verifier`), hex
    verifier: String,
    /// when changing: the current PIN's verifier
    current_verifier: Option<String>,
}

#[utoipa::path(post, path = "/mobile/v1/pin", tag = "mobile", security(("device" = [])),
    request_body(content = SetPin, example = json!({"verifier": "5b1f…", "current_verifier": "9e07…"})),
    responses((status = 200, body = mobile::Unlock, example = json!({"unlock_secret": "c0ff…", "previous_unlock_secret": "77aa…", "pin_expires_at": "2027-05-26T08:00:00Z"})),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "PIN 错误，还可尝试 4 次 / wrong PIN, 4 attempts left", "request_id": "…"})),
        (status = 403, body = ErrorBody, example = json!({"code": "forbidden", "message": "PIN 已锁定（连续错误 5 次），请联系管理员获取新的激活码 / the PIN is locked after 5 wrong attempts; ask for a new activation code", "request_id": "…"}))))]
/// `POST /mobile/v1/pin` (R3.9): set the PIN (its verifier; the PIN never leaves the phone) or
/// change it (with the current one); returns the unlock secret the share is wrapped with.
pub async fn set_pin(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(b): StrictJson<SetPin>,
) -> Result<Response, ApiError> {
    s.limits.take("pin", crate::ratelimit::PIN, &phone.session.device_id)?;
    let u =
        mobile::set_pin(&s.db, &s.kek, &phone.ctx, &phone.session, &b.verifier, b.current_verifier.as_deref()).await?;
    Ok(Json(u).into_response())
}

/// Body of `POST /mobile/v1/unlock`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockBody {
    /// the entered PIN's verifier (`PinKey.forWrapped(stored, pin, deviceSecret).verifier`), hex
    verifier: String,
    /// what the PIN approves: SM3 (hex) of `medsign-approve-v1|<sign|grant|renew>|<what>` — the
    /// rounds' `e` values joined by `,`, the grant's `context`, or the certificate serial; the
    /// approval is for this device, used once, within 5 minutes
    approve: String,
}

#[utoipa::path(post, path = "/mobile/v1/unlock", tag = "mobile", security(("device" = [])),
    request_body(content = UnlockBody, example = json!({"verifier": "5b1f…", "approve": "8d2e…"})),
    responses((status = 200, body = mobile::Unlock, example = json!({"unlock_secret": "c0ff…", "pin_expires_at": "2027-05-26T08:00:00Z"})),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "PIN 错误，还可尝试 4 次 / wrong PIN, 4 attempts left", "request_id": "…"})),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "PIN 已超过 180 天，请修改 PIN / the PIN is older than 180 days: change it", "request_id": "…"}))))]
/// `POST /mobile/v1/unlock` (R3.9): check the entered PIN (counted; locks after 5 wrong in a row),
/// release the unlock secret without which the phone cannot open its share, and approve once what
/// `approve` names (signing these digests, this grant, renewing this certificate).
pub async fn unlock(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(b): StrictJson<UnlockBody>,
) -> Result<Response, ApiError> {
    s.limits.take("pin", crate::ratelimit::PIN, &phone.session.device_id)?;
    let u =
        medsign_phone::approvals::unlock(&s.db, &s.kek, &phone.ctx, &phone.session, &b.verifier, &b.approve).await?;
    Ok(Json(u).into_response())
}

/// Query of `GET /mobile/v1/records`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// 1–200 of each kind (default 50)
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/mobile/v1/records", tag = "mobile", security(("device" = [])), params(RecordsQuery),
    responses((status = 200, body = mobile::Records, example = json!({"signatures": [{"flow_id": "sf_…", "doc_no": "QM-20261127-7K3F9Q2A", "title": "门诊处方笺 王小明", "kind": "file", "signed_at": "2026-11-27T08:00:31.204Z", "custody": "two-party", "grant_id": null, "cert_serial": "2BE1…", "flow_state": "completed"}], "logins": [{"at": "2026-11-27T08:00:30.118Z", "action": "pin.verify", "outcome": "ok", "ip": "10.0.8.31", "details": {"device": "dev_…"}}]})),
        (status = 400, body = ErrorBody)))]
/// `GET /mobile/v1/records` (R3.7): the user's own signing and login history, newest first.
pub async fn records(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictQuery(q): StrictQuery<RecordsQuery>,
) -> Result<Response, ApiError> {
    let r = mobile::records(&s.db, &phone.session, q.limit.unwrap_or(50)).await?;
    Ok(Json(r).into_response())
}

#[utoipa::path(delete, path = "/mobile/v1/device", tag = "mobile", security(("device" = [])),
    responses((status = 204, description = "unbound"),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "设备会话无效，请重新激活 / the device session is not valid; activate again", "request_id": "…"}))))]
/// `DELETE /mobile/v1/device`: unbind this phone — the session ends, the PIN verifier, session
/// grants and the server's key share are erased, the certificate is revoked.
pub async fn unbind(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    mobile::unbind(&s.db, s.revoker(), &phone.ctx, &phone.session).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/api/v1/users/{employee_no}/devices", tag = "mobile", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 200, body = Vec<mobile::DeviceView>, example = json!([{"device_id": "dev_3f2a9c1b7d4e5a60", "employee_no": "1001", "name": "iPhone 15", "status": "active", "bound_at": "2026-12-01T08:00:00.000Z", "unbound_at": null, "pin": true, "pin_locked": false, "fingerprint": true, "key": "active", "cert_serial": "17082D61263DD5AA0EC7A9796CB302A4"}])),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "用户 X 不存在 / no user X", "request_id": "…"}))))]
/// `GET /api/v1/users/{employee_no}/devices` (scope `users:read`): the staff member's phone and
/// former phones, newest first — states only (PIN set or locked, fingerprint, key, certificate).
pub async fn user_devices(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::UsersRead>,
    Path(no): Path<String>,
) -> Result<Json<Vec<mobile::DeviceView>>, ApiError> {
    // an unknown staff number is a 404, not an empty list
    medsign_directory::users::get(&s.db, &s.kek, &no).await?;
    Ok(Json(mobile::devices(&s.db, Some(&no)).await?))
}

#[utoipa::path(get, path = "/admin/v1/devices", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<mobile::DeviceView>)))]
/// `GET /admin/v1/devices`: every bound phone (the console's users page shows each one's state).
pub async fn all_devices(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
) -> Result<Json<Vec<mobile::DeviceView>>, ApiError> {
    Ok(Json(mobile::devices(&s.db, None).await?))
}

#[utoipa::path(delete, path = "/api/v1/users/{employee_no}/devices", tag = "mobile", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 204, description = "unbound: the phone's session, PIN, fingerprint, grants and key share end; the certificate is revoked"),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "1001 没有已绑定的手机 / 1001 has no bound phone", "request_id": "…"}))))]
/// `DELETE /api/v1/users/{employee_no}/devices` (scope `users:write`): the hospital unbinds a lost
/// or stolen phone at once (a new activation code binds the next one).
pub async fn unbind_user(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    Path(no): Path<String>,
) -> Result<Response, ApiError> {
    mobile::unbind_by_hospital(&s.db, s.revoker(), &caller.ctx, &no).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn face_verifier(s: &AppState) -> Result<&medsign_phone::realname::FaceVerifier, medsign_store::Error> {
    s.realname.as_ref().ok_or_else(|| {
        medsign_store::Error::Conflict(
            "本院未配置在线实名认证（身份在发放激活码时当面核验）/ no online real-name check is configured (identity is checked in person with the activation code)".into(),
        )
    })
}

/// Body of `POST /mobile/v1/realname`.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RealnameStart {
    /// the mini program's `wx.login` code (wechat)
    wx_code: Option<String>,
}

#[utoipa::path(post, path = "/mobile/v1/realname", tag = "mobile", security(("device" = [])),
    request_body(content = Option<RealnameStart>, description = "optional: only the wechat provider needs a body (wx_code)", example = json!({"wx_code": "0a3Xk…"})),
    responses((status = 201, body = medsign_phone::realname::Started, example = json!({"check_id": "rn_…", "provider": "wechat", "verify_id": "…", "demo": false, "expires_at": "2026-11-27T09:00:00Z"})),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "人员档案中没有身份证号，请联系信息科登记 / no ID-card number on record: ask the IT department", "request_id": "…"}))))]
/// `POST /mobile/v1/realname` (R2.2, R3.2, R7.4.3): start a face verification of the phone's user
/// against the register (WeChat: then `wx.requestFacialVerify({verifyId})` in the mini program).
pub async fn realname_start(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    body: Option<StrictJson<RealnameStart>>,
) -> Result<Response, ApiError> {
    let b = body.map(|StrictJson(b)| b).unwrap_or_default();
    let fv = face_verifier(&s)?;
    let st = medsign_phone::realname::start(&s.db, &s.kek, fv, &phone.session, b.wx_code.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(st)).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/realname/{check_id}", tag = "mobile", security(("device" = [])),
    params(("check_id" = String, Path, example = "rn_3f2a9c1b7d4e5a60c1d2e3f4")),
    responses((status = 200, body = medsign_phone::realname::Outcome, example = json!({"check_id": "rn_…", "state": "verified", "realname_status": "verified", "demo": false})),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "实名核验 rn_… 已有结果 / check rn_… is finished", "request_id": "…"}))))]
/// `POST /mobile/v1/realname/{check_id}`: after the face check on the phone, ask the provider
/// how it ended; a pass is recorded on the user (a dev-provider pass as `verified-demo`).
pub async fn realname_finish(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let fv = face_verifier(&s)?;
    let out = medsign_phone::realname::finish(&s.db, &s.kek, fv, &phone.ctx, &phone.session, &id).await?;
    Ok(Json(out).into_response())
}

#[utoipa::path(get, path = "/api/v1/users/{employee_no}/realname", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 200, body = Object, example = json!({"employee_no": "1001", "realname_status": "verified", "provider": "wechat"})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "工号 X 的用户不存在 / no user with employee_no X", "request_id": "…"}))))]
/// `GET /api/v1/users/{employee_no}/realname` (R7.4.3): the staff member's real-name status
/// (`none`, `verified`, or `verified-demo` from the demo provider) and the configured provider.
pub async fn realname_status(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::UsersRead>,
    Path(no): Path<String>,
) -> Result<Response, ApiError> {
    let u = medsign_directory::users::get(&s.db, &s.kek, &no).await?;
    let provider = s.realname.as_ref().map_or("none", |f| f.name());
    Ok(Json(
        serde_json::json!({"employee_no": u.employee_no, "realname_status": u.realname_status, "provider": provider}),
    )
    .into_response())
}

/// Body of `POST /api/v1/users/{employee_no}/realname` and `…/handwriting-requests`.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// `user_task.done` is POSTed here (signed like flow webhooks) when the doctor has done it
    callback_url: Option<String>,
    /// to be done within, minutes: 1–10080 (default 1440)
    expires_in_minutes: Option<u32>,
}

async fn ask_phone(
    s: &AppState,
    caller: &crate::extract::Caller,
    no: &str,
    kind: medsign_directory::tasks::TaskKind,
    body: Option<StrictJson<TaskRequest>>,
) -> Result<Response, ApiError> {
    let b = body.map(|StrictJson(b)| b).unwrap_or_default();
    if kind == medsign_directory::tasks::TaskKind::Realname && s.realname.is_none() {
        return Err(medsign_store::Error::Conflict(
            "本院未配置实名认证提供方，手机无法完成实名认证 / no real-name provider is configured: the phone could not do the check".into(),
        )
        .into());
    }
    if let Some(u) = &b.callback_url {
        medsign_signing::flows::check_callback_url(u)?;
    }
    s.limits.take("user-task", crate::ratelimit::SCAN, &caller.app.app_id)?;
    let (task, new) = medsign_directory::tasks::create(
        &s.db,
        &caller.ctx,
        &caller.app.app_id,
        no,
        kind,
        b.callback_url.as_deref(),
        b.expires_in_minutes,
    )
    .await?;
    Ok((if new { StatusCode::CREATED } else { StatusCode::OK }, Json(task)).into_response())
}

#[utoipa::path(post, path = "/api/v1/users/{employee_no}/realname", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    request_body(content = Option<TaskRequest>, description = "optional", example = json!({"callback_url": "https://his.hospital.example/medsign/events", "expires_in_minutes": 1440})),
    responses((status = 201, body = medsign_directory::tasks::Task, example = json!({"task_id": "ut_3f2a9c1b7d4e5a60", "kind": "realname", "employee_no": "1001", "state": "pending", "app_id": "app_1a2b", "system": "HIS", "created_at": "2026-11-27T08:00:00.000Z", "expires_at": "2026-11-28T08:00:00Z", "done_at": null, "result": null})),
        (status = 200, description = "this app's pending task of this kind for this doctor, unchanged", body = medsign_directory::tasks::Task),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "callback_url 须为 http(s) 地址 / callback_url must be an http(s) URL: ftp://x", "request_id": "…"})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "工号 9999 的用户不存在 / no user with employee_no 9999", "request_id": "…"}))))]
/// `POST /api/v1/users/{employee_no}/realname` (R7.4.3): ask the doctor's phone for the real-name
/// check; the phone lists it (`GET /mobile/v1/tasks`), a passed check completes it
/// (`user_task.done` webhook; `GET /api/v1/user-tasks/{task_id}`).
pub async fn realname_request(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    Path(no): Path<String>,
    body: Option<StrictJson<TaskRequest>>,
) -> Result<Response, ApiError> {
    ask_phone(&s, &caller, &no, medsign_directory::tasks::TaskKind::Realname, body).await
}

#[utoipa::path(post, path = "/api/v1/users/{employee_no}/handwriting-requests", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    request_body(content = Option<TaskRequest>, description = "optional", example = json!({"callback_url": "https://his.hospital.example/medsign/events"})),
    responses((status = 201, body = medsign_directory::tasks::Task, example = json!({"task_id": "ut_9c1b7d4e5a603f2a", "kind": "handwriting", "employee_no": "1001", "state": "pending", "app_id": "app_1a2b", "system": "HIS", "created_at": "2026-11-27T08:00:00.000Z", "expires_at": "2026-11-28T08:00:00Z", "done_at": null, "result": null})),
        (status = 200, description = "this app's pending task of this kind for this doctor, unchanged", body = medsign_directory::tasks::Task),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
/// `POST /api/v1/users/{employee_no}/handwriting-requests` (R7.4.4): ask the doctor's phone for
/// the handwritten signature; drawing it on the phone's pad completes the task.
pub async fn handwriting_request(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    Path(no): Path<String>,
    body: Option<StrictJson<TaskRequest>>,
) -> Result<Response, ApiError> {
    ask_phone(&s, &caller, &no, medsign_directory::tasks::TaskKind::Handwriting, body).await
}

#[utoipa::path(get, path = "/api/v1/user-tasks/{task_id}", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("task_id" = String, Path, example = "ut_3f2a9c1b7d4e5a60")),
    responses((status = 200, body = medsign_directory::tasks::Task, example = json!({"task_id": "ut_3f2a9c1b7d4e5a60", "kind": "realname", "employee_no": "1001", "state": "done", "app_id": "app_1a2b", "system": "HIS", "created_at": "2026-11-27T08:00:00.000Z", "expires_at": "2026-11-28T08:00:00Z", "done_at": "2026-11-27T08:03:12.201Z", "result": {"realname_status": "verified", "provider": "wechat"}})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "任务 ut_x 不存在 / no task ut_x", "request_id": "…"}))))]
/// `GET /api/v1/user-tasks/{task_id}`: a task this app asked for (`pending`, `done`, `expired`).
pub async fn user_task(
    State(s): State<Arc<AppState>>,
    caller: crate::extract::Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // the app that asked may read it back, whichever of the users scopes it holds
    if !caller.app.allows(Scope::UsersRead) {
        caller.app.require(Scope::UsersWrite)?;
    }
    Ok(Json(medsign_directory::tasks::get(&s.db, crate::extract::owner(&caller), &id).await?).into_response())
}

/// Answer of `GET /mobile/v1/tasks`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskList {
    /// what hospital systems asked of this phone's user and is not done yet, oldest first
    tasks: Vec<medsign_directory::tasks::Task>,
}

#[utoipa::path(get, path = "/mobile/v1/tasks", tag = "mobile", security(("device" = [])),
    responses((status = 200, body = TaskList, example = json!({"tasks": [{"task_id": "ut_9c1b7d4e5a603f2a", "kind": "handwriting", "employee_no": "1001", "state": "pending", "app_id": "app_1a2b", "system": "HIS", "created_at": "2026-11-27T08:00:00.000Z", "expires_at": "2026-11-28T08:00:00Z", "done_at": null, "result": null}]})),
        (status = 401, body = ErrorBody)))]
/// `GET /mobile/v1/tasks` (R7.4.3, R7.4.4): the real-name checks and handwritten signatures hospital
/// systems asked this phone's user for.
pub async fn tasks(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    let tasks = medsign_directory::tasks::pending(&s.db, &phone.session.employee_no).await?;
    Ok(Json(TaskList { tasks }).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/certificate/renew", tag = "mobile", security(("device" = [])),
    responses((status = 201, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1…", "alg": "sm2", "status": "active", "not_after": "2027-11-27T08:00:00Z"})),
        (status = 403, body = ErrorBody, example = json!({"code": "approval_required", "message": "此操作须在手机上输入 PIN 或验证指纹确认 / this needs a fresh approval on the phone (PIN or fingerprint)", "request_id": "…"})),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "此手机尚未生成签名密钥，请先完成开通 / this phone has no signing key yet: enrol first", "request_id": "…"}))))]
/// `POST /mobile/v1/certificate/renew` (R5.5): renew this phone's certificate online — same
/// two-party key, new validity; the old certificate is revoked as superseded.
pub async fn renew_certificate(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    let rec = cosign::renew_certificate(&s.db, &s.kek, s.issuer(), &phone.ctx, &phone.session).await?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/certificate/csr", tag = "mobile", security(("device" = [])),
    responses((status = 201, body = medsign_phone::certify::Request, example = json!({"key_id": "sk_3f2a9c1b7d4e5a60", "info": "3081…", "subject": "CN=王医生,OU=内科,O=某县人民医院,C=CN,SERIALNUMBER=5A1C…", "renewal": null})),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "此手机尚未生成签名密钥，请先完成开通 / this phone has no signing key yet: enrol first", "request_id": "…"}))))]
/// `POST /mobile/v1/certificate/csr` (issue #17): the certification request of this phone's
/// two-party key, for phone and server to sign together — how an outside CA (EST) certifies the
/// key, first or on renewal.
pub async fn csr_request(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    let r = medsign_phone::certify::request(&s.db, &s.kek, s.issuer(), &phone.session).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

/// Body of `POST /mobile/v1/certificate/csr/answer`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrAnswerBody {
    /// the phone's message (`SignSession.request` of `KeyShare.beginCertRequest`)
    #[schema(value_type = Object)]
    request: medsign_crypto::twoparty::SignRequest,
}

#[utoipa::path(post, path = "/mobile/v1/certificate/csr/answer", tag = "mobile", security(("device" = [])),
    request_body(content = CsrAnswerBody, example = json!({"request": {"version": 1, "e": "9a3c…", "q1": "04…"}})),
    responses((status = 200, body = Object, example = json!({"version": 1, "r": "…", "s2": "…", "s3": "…"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "签署消息无效 / the signing message is not valid: e is not the authorised digest", "request_id": "…"})),
        (status = 403, body = ErrorBody, example = json!({"code": "approval_required", "message": "此操作须在手机上输入 PIN 或验证指纹确认 / this needs a fresh approval on the phone (PIN or fingerprint)", "request_id": "…"})),
        (status = 409, body = ErrorBody)))]
/// `POST /mobile/v1/certificate/csr/answer`: the server's half of the request's signature (a
/// renewal needs an approval of `renew|<serial>` first).
pub async fn csr_answer(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(body): StrictJson<CsrAnswerBody>,
) -> Result<Response, ApiError> {
    // a key without a certificate answers without an approval: bound how often
    s.limits.take("csr", crate::ratelimit::PIN, &phone.session.device_id)?;
    let r = medsign_phone::certify::answer(&s.db, &s.kek, &phone.ctx, &phone.session, &body.request).await?;
    Ok(Json(r).into_response())
}

/// Body of `POST /mobile/v1/certificate/csr/finish`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CsrFinishBody {
    /// the request's signature (DER, hex) the phone released after checking it
    signature: String,
}

#[utoipa::path(post, path = "/mobile/v1/certificate/csr/finish", tag = "mobile", security(("device" = [])),
    request_body(content = CsrFinishBody, example = json!({"signature": "3045…"})),
    responses((status = 201, body = medsign_ca::certs::CertRecord, example = json!({"serial": "2BE1…", "alg": "sm2", "status": "active", "channel": "ch_3f2a9c1b7d4e", "not_after": "2027-11-27T08:00:00Z"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "证书请求的签名无效 / the request's signature is not valid: …", "request_id": "…"})),
        (status = 409, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
/// `POST /mobile/v1/certificate/csr/finish`: the signed request goes to the active CA channel;
/// the certificate it issues is this phone's from now on.
pub async fn csr_finish(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(body): StrictJson<CsrFinishBody>,
) -> Result<Response, ApiError> {
    let rec =
        medsign_phone::certify::finish(&s.db, &s.kek, s.issuer(), &phone.ctx, &phone.session, &body.signature).await?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

fn soter_client(s: &AppState) -> Result<&medsign_phone::realname::Wechat, medsign_store::Error> {
    s.soter.as_deref().ok_or_else(|| {
        medsign_store::Error::Conflict(
            "本院未配置微信小程序，无法使用指纹验证，请用 PIN / fingerprint approval needs the WeChat mini program, which is not configured: use the PIN".into(),
        )
    })
}

#[utoipa::path(get, path = "/mobile/v1/soter", tag = "mobile", security(("device" = [])),
    responses((status = 200, body = soter::Status, example = json!({"available": true, "enabled": true, "enabled_at": "2026-11-27T08:00:00.000Z"}))))]
/// `GET /mobile/v1/soter` (R3.9): whether this phone approves with its fingerprint, and whether
/// the server can verify fingerprints at all (a WeChat mini program is configured).
pub async fn soter_status(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    let st = soter::status(&s.db, &phone.session, s.soter.is_some()).await?;
    Ok(Json(st).into_response())
}

/// Body of `POST /mobile/v1/soter/challenges`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SoterChallengeBody {
    /// `enrol` (switch fingerprint approval on) or `unlock` (approve instead of the PIN)
    purpose: soter::Purpose,
    /// SM3 (hex) of what is approved, e.g. of the sign rounds' digests; recorded in the audit log
    approve: Option<String>,
}

#[utoipa::path(post, path = "/mobile/v1/soter/challenges", tag = "mobile", security(("device" = [])),
    request_body(content = SoterChallengeBody, example = json!({"purpose": "unlock", "approve": "66c7f0f4…"})),
    responses((status = 201, body = soter::Challenge, example = json!({"challenge": "medsign-soter-v1:unlock:9f2c…:66c7f0f4…", "expires_at": "2026-11-27T08:05:00Z"})),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "本机尚未开通指纹验证，请先用 PIN 开通 / fingerprint approval is not on for this phone: enrol it with the PIN", "request_id": "…"}))))]
/// `POST /mobile/v1/soter/challenges`: a one-time challenge (5 minutes) for
/// `wx.startSoterAuthentication({requestAuthModes: ['fingerPrint'], challenge})`.
pub async fn soter_challenge(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(b): StrictJson<SoterChallengeBody>,
) -> Result<Response, ApiError> {
    soter_client(&s)?;
    // issuing a challenge guesses nothing: the scan budget; results are counted as PIN entries
    s.limits.take("soter-challenge", crate::ratelimit::SCAN, &phone.session.device_id)?;
    let c = soter::challenge(&s.db, &phone.session, b.purpose, b.approve.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/soter", tag = "mobile", security(("device" = [])),
    request_body(content = soter::EnrolRequest, example = json!({"current_verifier": "9e07…", "wx_code": "0a3Xk…", "json_string": "{\"raw\":\"medsign-soter-v1:enrol:…\",\"cpu_id\":\"…\"}", "json_signature": "MEUC…"})),
    responses((status = 201, body = soter::Enrolled, example = json!({"fingerprint_secret": "5a1e…", "unlock_secret": "c0ff…", "enabled_at": "2026-11-27T08:00:00.000Z"})),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "微信未确认此次指纹验证 / WeChat did not confirm this fingerprint", "request_id": "…"}))))]
/// `POST /mobile/v1/soter` (R3.9): switch fingerprint approval on for this phone, with the PIN
/// and a verified fingerprint; returns the secret its fingerprint copy of the share is wrapped under.
pub async fn soter_enrol(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(b): StrictJson<soter::EnrolRequest>,
) -> Result<Response, ApiError> {
    let wx = soter_client(&s)?;
    s.limits.take("pin", crate::ratelimit::PIN, &phone.session.device_id)?;
    let out = soter::enrol(&s.db, &s.kek, wx, &phone.ctx, &phone.session, &b).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/soter/unlock", tag = "mobile", security(("device" = [])),
    request_body(content = soter::Answer, example = json!({"json_string": "{\"raw\":\"medsign-soter-v1:unlock:…\",\"cpu_id\":\"…\"}", "json_signature": "MEUC…"})),
    responses((status = 200, body = mobile::Unlock, example = json!({"unlock_secret": "5a1e…", "pin_expires_at": "2027-05-26T08:00:00Z"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "指纹验证的挑战无效、已使用或已过期，请重试 / the fingerprint challenge is unknown, used or expired; try again", "request_id": "…"})),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "微信未确认此次指纹验证，还可尝试 4 次 / WeChat did not confirm this fingerprint, 4 attempts left", "request_id": "…"})),
        (status = 403, body = ErrorBody, example = json!({"code": "forbidden", "message": "指纹验证连续 5 次未通过，已关闭，请用 PIN / fingerprint approval failed 5 times and is off: use the PIN", "request_id": "…"}))))]
/// `POST /mobile/v1/soter/unlock` (R3.9): approve with the fingerprint instead of the PIN; releases
/// the fingerprint secret (as `unlock_secret`) that opens the phone's fingerprint copy of its share.
pub async fn soter_unlock(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(b): StrictJson<soter::Answer>,
) -> Result<Response, ApiError> {
    let wx = soter_client(&s)?;
    s.limits.take("pin", crate::ratelimit::PIN, &phone.session.device_id)?;
    let u = soter::unlock(&s.db, &s.kek, wx, &phone.ctx, &phone.session, &b).await?;
    Ok(Json(u).into_response())
}

#[utoipa::path(delete, path = "/mobile/v1/soter", tag = "mobile", security(("device" = [])),
    responses((status = 204, description = "fingerprint approval is off; its secret is erased")))]
/// `DELETE /mobile/v1/soter`: switch fingerprint approval off for this phone (the PIN stays).
pub async fn soter_disable(State(s): State<Arc<AppState>>, phone: Phone) -> Result<Response, ApiError> {
    soter::disable(&s.db, &phone.ctx, &phone.session).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Its routes, each registered with its OpenAPI operation.
/// Its `/admin/v1` routes (the admin scope is required by the caller).
pub(crate) fn admin_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(all_devices))
}

pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(activation_code))
        .routes(routes!(user_devices, unbind_user))
        .routes(routes!(activate))
        .routes(routes!(keygen_start))
        .routes(routes!(keygen_finish))
        .routes(routes!(pending))
        .routes(routes!(systems))
        .routes(routes!(set_pin))
        .routes(routes!(renew_certificate))
        .routes(routes!(csr_request))
        .routes(routes!(csr_answer))
        .routes(routes!(csr_finish))
        .routes(routes!(realname_start))
        .routes(routes!(realname_finish))
        .routes(routes!(realname_status, realname_request))
        .routes(routes!(handwriting_request))
        .routes(routes!(user_task))
        .routes(routes!(tasks))
        .routes(routes!(unlock))
        .routes(routes!(soter_status, soter_enrol, soter_disable))
        .routes(routes!(soter_challenge))
        .routes(routes!(soter_unlock))
        .routes(routes!(records))
        .routes(routes!(unbind))
        .routes(routes!(start_grant, list_grants))
        .routes(routes!(cancel_grant))
        .routes(routes!(grant_share))
        .routes(routes!(start_rounds))
        .routes(routes!(answer_rounds))
        .routes(routes!(finish_rounds))
        .routes(routes!(round_view))
        .routes(routes!(crate::e2e::channel))
        .routes(routes!(crate::e2e::sealed))
}
