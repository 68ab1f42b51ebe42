//! Handlers of signing flows (issue #6; R7.4.5–R7.4.8): flows, their files and verification,
//! batches, server custody, webhooks.

use crate::extract::StrictQuery;
use crate::extract::{idempotent, owner};
use crate::{
    ApiError,
    error::ErrorBody,
    extract::{Caller, StrictJson},
    extract::{Scoped, scope},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

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
    let rec = medsign_signing::flows::authorize_custody(
        &s.db,
        &s.kek,
        s.issuer(),
        &caller.ctx,
        &no,
        &body.reason,
        body.alg.as_deref().unwrap_or("sm2"),
    )
    .await?;
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
    medsign_signing::flows::revoke_custody(&s.db, &caller.ctx, &no).await?;
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
    _caller: Caller,
    StrictQuery(q): StrictQuery<WebhookQuery>,
) -> Result<Json<Vec<medsign_signing::flows::Delivery>>, ApiError> {
    Ok(Json(medsign_signing::flows::deliveries(&s.db, q.flow_id.as_deref()).await?))
}

#[utoipa::path(post, path = "/admin/v1/webhooks/{delivery_id}/retry", tag = "admin", security(("bearer" = [])),
    params(("delivery_id" = String, Path, example = "wh_3f2a9c1b7d4e5a60")),
    responses((status = 200, body = medsign_signing::flows::Delivery), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "推送 wh_… 状态为 delivered，只能重试失败的推送 / only a failed delivery can be retried (delivered)", "request_id": "…"}))))]
/// `POST /admin/v1/webhooks/{delivery_id}/retry`: send a failed delivery once more, now.
async fn retry_webhook(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_signing::flows::Delivery>, ApiError> {
    Ok(Json(medsign_signing::flows::retry_delivery(&s.db, &caller.ctx, &id).await?))
}

/// `?days=` of `GET /admin/v1/stats`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    /// how many days back, today included (1–90, default 14)
    days: Option<u32>,
}

#[utoipa::path(get, path = "/admin/v1/stats", tag = "admin", security(("bearer" = [])), params(StatsQuery),
    responses((status = 200, body = medsign_signing::flows::Activity, example = json!({"days": [{"day": "2026-12-04", "flows": 812, "completed": 790, "signatures": 1544}], "pending_flows": 12, "webhooks_pending": 0, "webhooks_failed": 1, "batch_queue": 0})),
        (status = 400, body = ErrorBody)))]
/// `GET /admin/v1/stats[?days=14]`: flows and signatures per day (China Standard Time) and the
/// queues now — the console's dashboard.
async fn stats(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    StrictQuery(q): StrictQuery<StatsQuery>,
) -> Result<Json<medsign_signing::flows::Activity>, ApiError> {
    Ok(Json(medsign_signing::flows::activity(&s.db, q.days.unwrap_or(14)).await?))
}

#[utoipa::path(get, path = "/admin/v1/sign-flows", tag = "admin", security(("bearer" = [])), params(medsign_signing::flows::FlowQuery),
    responses((status = 200, body = medsign_signing::flows::FlowPage, example = json!({"items": [{"id": "sf_9c1b7d4e5a603f2a", "doc_no": "QM-20261127-7K3F9Q2A", "kind": "data", "title": "门诊处方 No.2026-000123", "state": "completed", "app_id": "app_1a2b3c4d5e6f7a8b", "signers": 2, "signed": 2, "created_at": "2026-11-27T08:00:00.000Z", "updated_at": "2026-11-27T08:00:01.000Z"}], "page": 1, "page_size": 50, "total": 1})),
        (status = 400, body = ErrorBody)))]
/// `GET /admin/v1/sign-flows?q=&state=&app_id=&signer=&from=&to=&page=&page_size=`: every app's
/// flows, newest first (the console's search).
async fn search_flows(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    StrictQuery(q): StrictQuery<medsign_signing::flows::FlowQuery>,
) -> Result<Json<medsign_signing::flows::FlowPage>, ApiError> {
    Ok(Json(medsign_signing::flows::search(&s.db, &q).await?))
}

#[utoipa::path(get, path = "/admin/v1/sign-flows/{flow_id}", tag = "admin", security(("bearer" = [])),
    params(("flow_id" = String, Path, example = "sf_9c1b7d4e5a603f2a")),
    responses((status = 200, body = Object, example = json!({"flow": {"id": "sf_9c1b7d4e5a603f2a", "doc_no": "QM-20261127-7K3F9Q2A", "state": "completed", "signers": []}, "events": [{"seq": 41, "at": "…", "action": "flow.create", "actor": "app:app_1a2b3c4d5e6f7a8b", "target": "flow:sf_9c1b7d4e5a603f2a", "outcome": "ok"}], "webhooks": []})),
        (status = 404, body = ErrorBody)))]
/// `GET /admin/v1/sign-flows/{flow_id}`: a flow of any app with its timeline — the audit events
/// the evidence report is built from (creation, scans, approvals, signatures, revocation) — and
/// its webhook deliveries.
async fn flow_timeline(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let f = medsign_signing::flows::get(&s.db, None, &id).await?;
    let events = medsign_signing::evidence::flow_events(&s.db, &f).await?;
    let webhooks = medsign_signing::flows::deliveries(&s.db, Some(&id)).await?;
    Ok(Json(serde_json::json!({"flow": f, "events": events, "webhooks": webhooks})))
}

#[utoipa::path(post, path = "/api/v1/sign-flows", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe creation")),
    request_body(content = medsign_signing::flows::NewFlow, example = json!({"kind": "data", "title": "门诊处方 No.2026-000123", "content_json": {"patient": "李某", "rx": [{"drug": "阿莫西林胶囊", "dose": "0.5g", "freq": "tid"}]}, "signers": [{"employee_no": "1001", "mode": "auto"}, {"seal": "hospital"}], "alg": "sm2", "callback_url": "https://his.example/medsign/callback"})),
    responses((status = 201, body = medsign_signing::flows::FlowView, example = json!({"id": "sf_9c1b7d4e5a603f2a", "doc_no": "QM-20261127-7K3F9Q2A", "kind": "data", "title": "门诊处方 No.2026-000123", "state": "completed", "alg": "sm2", "detached": true, "content_sm3": "66c7…", "timestamp_mode": "required", "timestamp_pending": false, "signers": [{"index": 0, "kind": "staff", "ref": "1001", "mode": "auto", "state": "signed", "cert_serial": "2BE1…", "signed_at": "…", "timestamp_at": "…"}]})),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "授权 gr_… 的密钥不在本服务器内存中：本实例在授权之后启动时，一分钟内会收到；若所有实例都已重启，请在手机上重新授权 / the key of grant gr_… is not held by this server: an instance started after the grant receives it within a minute; if every instance has restarted since, grant again from the phone", "request_id": "…"})),
        (status = 503, body = ErrorBody, example = json!({"code": "unavailable", "message": "时间戳服务不可用，流程失败，未发布签名 / the TSA cannot issue; …", "request_id": "…"}))))]
/// `POST /api/v1/sign-flows` (R7.4.5–R7.4.8): a flow, signed at once by its auto signers up to the
/// first scan signer, whose QR ticket the response carries. JSON, or multipart/form-data with a
/// part `flow` (the same JSON) and a part `file` (the PDF).
async fn create_flow(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let (nf, hash) = flow_body(&headers, body).await?;
    let st = s.clone();
    let app_id = caller.app.app_id.clone();
    let ctx = caller.ctx.clone();
    let (key, request_hash) = (caller.idempotency_key.clone(), hash.clone());
    idempotent(&s, &caller, "POST /api/v1/sign-flows", &hash, || async move {
        let max = st.max_body_bytes.min(8 << 20);
        let retry = key.as_deref().map(|k| (k, request_hash.as_str()));
        let f = medsign_signing::flows::create_once(&st.signing(), &ctx, &app_id, &nf, max, retry).await?;
        let f = crate::documents::with_ticket(&st, f).await?;
        Ok((StatusCode::CREATED, serde_json::to_value(f).unwrap_or_default()))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/sign-flows/{flow_id}", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("flow_id" = String, Path, description = "the flow id, or its document number (QM-…)", example = "sf_9c1b7d4e5a603f2a")),
    responses((status = 200, body = medsign_signing::flows::FlowView, example = json!({"id": "sf_9c1b7d4e5a603f2a", "doc_no": "QM-20261127-7K3F9Q2A", "state": "completed", "signers": []})), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "签署流程 X 不存在 / no signing flow X", "request_id": "…"}))))]
/// `GET /api/v1/sign-flows/{flow_id}` (R7.4.9): status per flow and per signer; the flow's id or
/// its document number (`QM-…`).
async fn get_flow(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    Path(id): Path<String>,
) -> Result<Json<medsign_signing::flows::FlowView>, ApiError> {
    let id = medsign_signing::flows::resolve(&s.db, owner(&caller), &id).await?;
    let f = medsign_signing::flows::get(&s.db, owner(&caller), &id).await?;
    Ok(Json(crate::documents::with_ticket(&s, f).await?))
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
    params(("flow_id" = String, Path, description = "the flow id, or its document number (QM-…)", example = "sf_9c1b7d4e5a603f2a")),
    request_body(content = FlowRevokeRequest, example = json!({"reason": "开错患者 / wrong patient"})),
    responses((status = 200, body = medsign_signing::flows::FlowView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "流程 QM-… 状态为 completed，不能撤销 / only unfinished flows can be revoked", "request_id": "…"}))))]
/// `POST /api/v1/sign-flows/{flow_id}/revoke` (R7.4.10), by the flow's id or its document number.
async fn revoke_flow(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<FlowRevokeRequest>,
) -> Result<Json<medsign_signing::flows::FlowView>, ApiError> {
    let id = medsign_signing::flows::resolve(&s.db, owner(&caller), &id).await?;
    Ok(Json(medsign_signing::flows::revoke(&s.db, &caller.ctx, owner(&caller), &id, &body.reason).await?))
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
    params(("flow_id" = String, Path, description = "the flow id, or its document number (QM-…)", example = "sf_9c1b7d4e5a603f2a"), FileQuery),
    responses((status = 200, description = "data flows (?signature=p7s): the CMS SignedData (DER); file flows: the signed PDF", content_type = "application/pdf", body = Vec<u8>, example = json!("(binary)")),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "流程 QM-… 尚未完成 / the flow is not completed", "request_id": "…"}))))]
/// `GET /api/v1/sign-flows/{flow_id}/file[?signature=p7s]` (R7.4.13): the signed PDF, or a data
/// flow's CMS — by the flow's id or its document number (`QM-…`).
async fn flow_file(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    Path(id): Path<String>,
    StrictQuery(q): StrictQuery<FileQuery>,
) -> Result<Response, ApiError> {
    let id = medsign_signing::flows::resolve(&s.db, owner(&caller), &id).await?;
    let (ctype, name, bytes) =
        medsign_signing::flows::download(&s.db, owner(&caller), &id, q.signature.as_deref()).await?;
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
    _caller: Scoped<scope::VerifyOrSign>,
    StrictJson(body): StrictJson<VerifyDataRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use base64::Engine;
    let sig = if body.signature.contains("-----BEGIN") {
        body.signature.clone().into_bytes()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(body.signature.trim())
            .map_err(|_| medsign_store::Error::Invalid("signature 不是 base64 / signature is not base64".into()))?
    };
    let data = match &body.data {
        Some(d) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .map_err(|_| medsign_store::Error::Invalid("data 不是 base64 / data is not base64".into()))?,
        ),
        None => None,
    };
    let rep = medsign_signing::flows::verify_data(&s.db, &s.cas, &sig, data.as_deref()).await?;
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
    caller: Scoped<scope::Sign>,
    StrictJson(body): StrictJson<BatchRequest>,
) -> Result<Response, ApiError> {
    let b = medsign_signing::batches::create(&s.db, &caller.ctx, &caller.app.app_id, &body.items).await?;
    Ok((StatusCode::ACCEPTED, Json(b)).into_response())
}

#[utoipa::path(get, path = "/api/v1/batches/{batch_id}", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("batch_id" = String, Path, example = "bj_3f2a9c1b7d4e5a60")),
    responses((status = 200, body = medsign_signing::batches::BatchView, example = json!({"id": "bj_3f2a9c1b7d4e5a60", "state": "running", "total": 1000, "done": 412, "failed": 0, "pending": 588, "items": [{"index": 0, "state": "done", "flow_id": "sf_9c1b7d4e5a603f2a", "error": null}]})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "批次 X 不存在 / no batch X", "request_id": "…"}))))]
/// `GET /api/v1/batches/{batch_id}`: progress per batch and per item.
async fn get_batch(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    Path(id): Path<String>,
) -> Result<Json<medsign_signing::batches::BatchView>, ApiError> {
    Ok(Json(medsign_signing::batches::get(&s.db, owner(&caller), &id).await?))
}

/// Query of `GET /admin/v1/batches`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct BatchListQuery {
    /// newest first, 1–200 (default 50)
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/batches", tag = "admin", security(("bearer" = [])), params(BatchListQuery),
    responses((status = 200, body = Vec<medsign_signing::batches::BatchSummary>, example = json!([{"id": "bj_3f2a9c1b7d4e5a60", "app_id": "app_1a2b", "created_at": "2026-12-04T08:00:00.000Z", "state": "running", "total": 1000, "done": 412, "failed": 0, "pending": 588}])),
        (status = 400, body = ErrorBody)))]
/// `GET /admin/v1/batches[?limit=]`: every app's batches, newest first, with their progress.
async fn list_batches(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    StrictQuery(q): StrictQuery<BatchListQuery>,
) -> Result<Json<Vec<medsign_signing::batches::BatchSummary>>, ApiError> {
    Ok(Json(medsign_signing::batches::list(&s.db, None, q.limit.unwrap_or(50)).await?))
}

#[utoipa::path(get, path = "/admin/v1/batches/{batch_id}", tag = "admin", security(("bearer" = [])),
    params(("batch_id" = String, Path, example = "bj_3f2a9c1b7d4e5a60")),
    responses((status = 200, body = medsign_signing::batches::BatchView), (status = 404, body = ErrorBody)))]
/// `GET /admin/v1/batches/{batch_id}`: any app's batch, item by item.
async fn admin_get_batch(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<medsign_signing::batches::BatchView>, ApiError> {
    Ok(Json(medsign_signing::batches::get(&s.db, None, &id).await?))
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
    responses((status = 200, body = Object, example = json!({"indication": "TOTAL_PASSED", "signatures": [{"field": "medsign-1-staff", "kind": "signature", "sub_filter": "ETSI.CAdES.detached", "revision": 2, "byte_range": [0, 1234, 5678, 910], "whole_file": false, "unsigned_updates_after": 0, "covers": "第 2 个修订版本，其后仅有允许的修改（SIGNATURE_ADDED）/ revision 2 and allowed changes after it (SIGNATURE_ADDED)", "certification": 2, "changes": [{"allowed": true, "code": "SIGNATURE_ADDED", "object": "14 0 R", "page": null, "detail": "新增签名 / a signature added"}], "indication": "TOTAL_PASSED", "sub_indication": null, "reason": null, "report": {"signers": [{"subject": "CN=张三,…", "timestamp": {"time": "…"}}]}, "timestamp": null}], "revisions": [{"start": 0, "end": 1200, "xref": "table", "complete": true, "signatures": []}], "problems": [], "dss": null})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "该 PDF 没有签名 / the PDF has no signatures", "request_id": "…"}))))]
/// `POST /api/v1/verify/file` (R7.4.12): every signature and document timestamp of a PDF — the
/// revision it signs, integrity, every change after it judged against the DocMDP level, trust,
/// revocation (also from the file's DSS), timestamp.
async fn verify_file(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::VerifyOrSign>,
    StrictJson(body): StrictJson<VerifyFileRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    use base64::Engine;
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(body.file.trim())
        .map_err(|_| medsign_store::Error::Invalid("file 不是 base64 / file is not base64".into()))?;
    let rep = medsign_signing::flows::verify_file(&s.db, &s.cas, &pdf).await?;
    Ok(Json(serde_json::to_value(rep).unwrap_or_default()))
}

/// Its routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_flow))
        .routes(routes!(get_flow))
        .routes(routes!(revoke_flow))
        .routes(routes!(flow_file))
        .routes(routes!(verify_data))
        .routes(routes!(verify_file))
        .routes(routes!(create_batch))
        .routes(routes!(get_batch))
}

/// Its `/admin/v1` routes (the admin scope is required by the caller).
pub(crate) fn admin_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(authorize_custody, revoke_custody))
        .routes(routes!(list_webhooks))
        .routes(routes!(retry_webhook))
        .routes(routes!(search_flows))
        .routes(routes!(flow_timeline))
        .routes(routes!(stats))
        .routes(routes!(list_batches))
        .routes(routes!(admin_get_batch))
}
