//! Handlers for documents (issue #6): PDF templates (R1.8), seal and handwriting images (R1.6,
//! R7.4.4), and QR tickets of scan-mode signers (R7.4.6, R7.4.8).

use crate::extract::StrictQuery;
use crate::{
    ApiError,
    error::ErrorBody,
    extract::{Caller, Phone, StrictJson},
    extract::{Scoped, scope},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use medsign_directory::images;
use medsign_signing::{scan, templates, tickets};
use medsign_store::Error;
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

fn png(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], bytes).into_response()
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, Error> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| Error::Invalid(format!("{field} 不是 base64 / {field} is not base64")))
}

/// Body of `POST /api/v1/documents/from-template`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromTemplate {
    /// template id
    template_id: String,
    /// version (default: the latest)
    version: Option<i64>,
    /// field values
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

#[utoipa::path(post, path = "/api/v1/documents/from-template", tag = "documents", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = FromTemplate, example = json!({"template_id": "outpatient-prescription", "data": {"hospital": "某县人民医院", "department": "内科", "outpatient_no": "MZ20261127001", "patient_name": "王小明", "gender": "男", "age": "45岁", "diagnosis": "上呼吸道感染", "items": [{"drug": "阿莫西林胶囊 0.25g×24粒", "dosage": "0.5g", "usage": "口服 每日三次", "quantity": "2盒"}]}})),
    responses((status = 200, description = "the PDF; headers X-Template-Id and X-Template-Version", content_type = "application/pdf", body = Vec<u8>, example = json!("(binary)")),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "缺少必填字段 / missing required field 'patient_name'", "request_id": "…"})),
        (status = 404, body = ErrorBody)))]
/// `POST /api/v1/documents/from-template` (R1.8): render a PDF (Chinese text in the shipped font,
/// signature boxes as empty signature fields).
pub async fn from_template(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::Sign>,
    StrictJson(body): StrictJson<FromTemplate>,
) -> Result<Response, ApiError> {
    let (pdf, info) = templates::render(&s.db, &body.template_id, body.version, &body.data).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::HeaderName::from_static("x-template-id"), info.id),
            (header::HeaderName::from_static("x-template-version"), info.version.to_string()),
        ],
        pdf,
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/templates", tag = "documents", security(("bearer" = []), ("hmac_sm3" = [])),
    responses((status = 200, body = Vec<templates::TemplateInfo>, example = json!([{"id": "outpatient-prescription", "version": 1, "name": "门诊处方笺", "enabled": true, "fields": [{"name": "patient_name", "type": "text", "required": true}], "signature_boxes": [{"name": "doctor", "page": 1, "rect": [48, 85, 200, 130]}], "created_by": "medsign", "created_at": "…"}]))))]
/// `GET /api/v1/templates`: the latest version of every template, with fields and signature boxes.
pub async fn list_templates(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::Sign>,
) -> Result<Json<Vec<templates::TemplateInfo>>, ApiError> {
    Ok(Json(templates::list(&s.db).await?))
}

/// `?version=` of a template.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// a version (default: the latest)
    version: Option<i64>,
}

#[utoipa::path(get, path = "/admin/v1/templates/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "lab-report"), VersionQuery),
    responses((status = 200, body = Object, example = json!({"info": {"id": "lab-report", "version": 1, "name": "检验报告单"}, "definition": {"name": "检验报告单", "page": {"width": 595, "height": 842}, "fields": []}})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "模板 X 不存在 / no template X", "request_id": "…"}))))]
/// `GET /admin/v1/templates/{id}[?version=]`: a version with its full definition.
pub async fn get_template(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    Path(id): Path<String>,
    StrictQuery(q): StrictQuery<VersionQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (info, t) = templates::get(&s.db, &id, q.version).await?;
    Ok(Json(serde_json::json!({"info": info, "definition": t})))
}

#[utoipa::path(put, path = "/admin/v1/templates/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "discharge-summary")),
    request_body(content = Object, example = json!({"name": "出院小结", "page": {"width": 595, "height": 842}, "decorations": [{"type": "text", "text": "出院小结", "x": 297.5, "y": 800, "size": 16, "align": "center"}], "fields": [{"name": "patient_name", "type": "text", "rect": [60, 750, 200, 770], "required": true}, {"name": "doctor", "type": "signature", "rect": [400, 60, 540, 110]}]})),
    responses((status = 200, body = templates::TemplateInfo, example = json!({"id": "discharge-summary", "version": 1, "name": "出院小结", "enabled": true})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "字段 x 的位置超出页面 / field x: rect … is not inside the page", "request_id": "…"}))))]
/// `PUT /admin/v1/templates/{id}`: save a definition as the next version (version 1 for a new id).
pub async fn save_template(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(def): StrictJson<serde_json::Value>,
) -> Result<Json<templates::TemplateInfo>, ApiError> {
    Ok(Json(templates::save(&s.db, &caller.ctx, &id, &def).await?))
}

/// Body of `POST /admin/v1/templates/preview`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplatePreview {
    /// a template definition (as `PUT /admin/v1/templates/{id}` takes), saved or not
    #[schema(value_type = Object)]
    definition: serde_json::Value,
    /// sample field values
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

#[utoipa::path(post, path = "/admin/v1/templates/preview", tag = "admin", security(("bearer" = [])),
    request_body(content = TemplatePreview, example = json!({"definition": {"name": "出院小结", "page": {"width": 595, "height": 842}, "fields": [{"name": "patient_name", "type": "text", "rect": [60, 750, 200, 770]}]}, "data": {"patient_name": "王小明"}})),
    responses((status = 200, description = "the PDF as it would render; nothing is saved", content_type = "application/pdf", body = Vec<u8>, example = json!("(binary)")),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "缺少必填字段 / missing required field 'patient_name'", "request_id": "…"})),
        (status = 429, body = ErrorBody, example = json!({"code": "too_many_requests", "message": "预览排队中，请稍后再试 / previews are busy; try again in a moment", "request_id": "…"}))))]
/// `POST /admin/v1/templates/preview`: render an edited definition with sample data before it is
/// saved as a version (the console's template editor).
pub async fn preview_template(
    _caller: Caller,
    StrictJson(body): StrictJson<TemplatePreview>,
) -> Result<Response, ApiError> {
    let pdf = preview_limited(body.definition, body.data).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

/// Previews run two at a time: rendering is bounded per request (Template::check), and this keeps
/// a few people clicking "preview" from taking the cores signing needs.
static PREVIEWS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Render a preview on a blocking thread, or refuse at once (429) when two are rendering.
async fn preview_limited(definition: serde_json::Value, data: serde_json::Value) -> Result<Vec<u8>, Error> {
    let _permit = PREVIEWS.try_acquire().map_err(|_| {
        Error::TooManyRequests("预览排队中，请稍后再试 / previews are busy; try again in a moment".into())
    })?;
    tokio::task::spawn_blocking(move || templates::preview(&definition, &data))
        .await
        .map_err(|e| Error::internal_from("template preview", e))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_third_preview_while_two_render_is_refused_at_once() {
        let def = serde_json::json!({"name": "x", "page": {"width": 595, "height": 842},
            "fields": [{"name": "m", "type": "multiline", "rect": [0, 0, 595, 842]}]});
        let data = serde_json::json!({"m": "检验"});
        // two previews rendering (their permits held): the third is a 429, not a queue
        let held = PREVIEWS.try_acquire_many(2).unwrap();
        let e = preview_limited(def.clone(), data.clone()).await.unwrap_err();
        assert!(matches!(&e, Error::TooManyRequests(m) if m.contains("previews are busy")), "{e}");
        drop(held);
        assert!(preview_limited(def, data).await.unwrap().starts_with(b"%PDF-"));
    }
}

#[utoipa::path(get, path = "/admin/v1/templates", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<templates::TemplateInfo>, example = json!([{"id": "lab-report", "version": 1, "name": "检验报告单", "enabled": true}]))))]
/// `GET /admin/v1/templates`: every template's latest version.
pub async fn admin_list_templates(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
) -> Result<Json<Vec<templates::TemplateInfo>>, ApiError> {
    Ok(Json(templates::list(&s.db).await?))
}

async fn template_enabled(
    s: &AppState,
    caller: &Caller,
    id: &str,
    on: bool,
) -> Result<Json<templates::TemplateInfo>, ApiError> {
    Ok(Json(templates::set_enabled(&s.db, &caller.ctx, id, on).await?))
}

#[utoipa::path(post, path = "/admin/v1/templates/{id}/disable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "lab-report")),
    responses((status = 200, body = templates::TemplateInfo, example = json!({"id": "lab-report", "version": 1, "enabled": false})), (status = 404, body = ErrorBody)))]
/// `POST /admin/v1/templates/{id}/disable`: no new documents from it.
pub async fn disable_template(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<templates::TemplateInfo>, ApiError> {
    template_enabled(&s, &caller, &id, false).await
}

#[utoipa::path(post, path = "/admin/v1/templates/{id}/enable", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, example = "lab-report")),
    responses((status = 200, body = templates::TemplateInfo, example = json!({"id": "lab-report", "version": 1, "enabled": true})), (status = 404, body = ErrorBody)))]
/// `POST /admin/v1/templates/{id}/enable`.
pub async fn enable_template(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<templates::TemplateInfo>, ApiError> {
    template_enabled(&s, &caller, &id, true).await
}

/// Body of `PUT /admin/v1/seals/{seal}/image`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealImage {
    /// a PNG (base64); its white background becomes transparent and it is trimmed to the ink.
    /// Absent: generate the round red seal from the names again.
    image_base64: Option<String>,
}

#[utoipa::path(put, path = "/admin/v1/seals/{seal}/image", tag = "admin", security(("bearer" = [])),
    params(("seal" = String, Path, description = "`hospital` or a department code", example = "hospital")),
    request_body(content = SealImage, example = json!({"image_base64": "iVBORw0KGgo…"})),
    responses((status = 200, body = images::ImageInfo, example = json!({"owner": "seal:hospital", "source": "uploaded", "sm3": "66c7…", "size": [260, 260], "updated_by": "app:app_1a2b", "updated_at": "…"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "图片无法读取（须为 PNG）/ the image cannot be read (PNG expected)", "request_id": "…"})),
        (status = 404, body = ErrorBody)))]
/// `PUT /admin/v1/seals/{seal}/image` (R1.6): upload the seal's image, or regenerate it.
pub async fn put_seal_image(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(seal): Path<String>,
    StrictJson(body): StrictJson<SealImage>,
) -> Result<Json<images::ImageInfo>, ApiError> {
    let info = match body.image_base64 {
        Some(b) => {
            let bytes = b64("image_base64", &b)?;
            images::upload_seal(&s.db, &caller.ctx, &s.organization, &seal, &bytes).await
        }
        None => images::generate_seal(&s.db, &caller.ctx, &s.organization, &seal).await,
    };
    Ok(Json(info?))
}

#[utoipa::path(get, path = "/admin/v1/seals/{seal}/image.png", tag = "admin", security(("bearer" = [])),
    params(("seal" = String, Path, example = "hospital")),
    responses((status = 200, description = "transparent PNG", content_type = "image/png", body = Vec<u8>, example = json!("(binary)")), (status = 404, body = ErrorBody)))]
/// `GET /admin/v1/seals/{seal}/image.png`: the seal image signatures show (generated on first use).
pub async fn get_seal_image(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(seal): Path<String>,
) -> Result<Response, ApiError> {
    Ok(png(images::seal_image(&s.db, &caller.ctx, &s.organization, &seal).await?))
}

/// Body of `POST /api/v1/users/{employee_no}/handwriting`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Handwriting {
    /// the handwritten signature, PNG (base64): a scan on white paper or a transparent capture
    image_base64: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/users/{employee_no}/handwriting", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    request_body(content = Handwriting, example = json!({"image_base64": "iVBORw0KGgo…"})),
    responses((status = 201, body = images::ImageInfo, example = json!({"owner": "user:1001", "source": "uploaded", "sm3": "66c7…", "size": [412, 160], "updated_by": "app:app_1a2b", "updated_at": "…"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "图片是空白的 / the image is blank", "request_id": "…"})),
        (status = 404, body = ErrorBody)))]
/// `POST /api/v1/users/{employee_no}/handwriting` (R7.4.4): store the staff member's handwritten
/// signature, shown in their visible PDF signatures. Capture on the phone (a ticket instead of an
/// image) arrives with the mobile app.
pub async fn post_handwriting(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    Path(no): Path<String>,
    StrictJson(body): StrictJson<Handwriting>,
) -> Result<Response, ApiError> {
    let Some(b) = body.image_base64 else {
        return Err(Error::Invalid(
            "请提供 image_base64；手机端采集（二维码）随移动端提供 / give image_base64 (capture on the phone comes with the mobile app)"
                .into(),
        )
        .into());
    };
    let bytes = b64("image_base64", &b)?;
    let info = images::set_handwriting(&s.db, &s.kek, &caller.ctx, &no, &bytes, false).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(post, path = "/mobile/v1/handwriting", tag = "mobile", security(("device" = [])),
    request_body(content = Handwriting, example = json!({"image_base64": "iVBORw0KGgo…"})),
    responses((status = 201, body = images::ImageInfo, example = json!({"owner": "user:1001", "source": "uploaded", "sm3": "66c7…", "size": [412, 160], "updated_by": "user:1001", "updated_at": "…"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "图片是空白的 / the image is blank", "request_id": "…"}))))]
/// `POST /mobile/v1/handwriting` (R2.3, R7.4.4): the signature the user drew on the phone's pad
/// (transparent PNG; trimmed and normalised like an upload), shown in their visible signatures.
/// Needs the doctor's approval of `handwriting|<SM3 of the PNG>` (PIN or fingerprint).
pub async fn post_own_handwriting(
    State(s): State<Arc<AppState>>,
    phone: Phone,
    StrictJson(body): StrictJson<Handwriting>,
) -> Result<Response, ApiError> {
    let b = body.image_base64.ok_or_else(|| Error::Invalid("请提供 image_base64 / give image_base64".into()))?;
    let bytes = b64("image_base64", &b)?;
    // the doctor approves this very image (PIN or fingerprint): a session token alone cannot
    // change the signature their PDFs show, nor tell a HIS the doctor drew it
    let approved = hex::encode(medsign_crypto::hash::sm3(&bytes));
    let digest = medsign_phone::approvals::digest(medsign_phone::approvals::Purpose::Handwriting, &approved);
    let target = format!("user:{}", phone.session.employee_no);
    medsign_phone::approvals::consume(&s.db, &phone.ctx, &phone.session, &digest, "handwriting.set", &target).await?;
    let info = images::set_handwriting(&s.db, &s.kek, &phone.ctx, &phone.session.employee_no, &bytes, true).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(get, path = "/api/v1/users/{employee_no}/handwriting.png", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 200, description = "transparent PNG", content_type = "image/png", body = Vec<u8>, example = json!("(binary)")),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "用户 1001 还没有手写签名 / user 1001 has no handwriting yet", "request_id": "…"}))))]
/// `GET /api/v1/users/{employee_no}/handwriting.png`.
pub async fn get_handwriting(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::UsersRead>,
    Path(no): Path<String>,
) -> Result<Response, ApiError> {
    match images::get(&s.db, &format!("user:{no}")).await? {
        Some((bytes, _)) => Ok(png(bytes)),
        None => Err(Error::NotFound(format!("用户 {no} 还没有手写签名 / user {no} has no handwriting yet")).into()),
    }
}

/// Body of `POST /api/v1/sign-flows/{flow_id}/tickets`.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// lifetime, 60–1800 s (default 300)
    ttl_seconds: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/sign-flows/{flow_id}/tickets", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("flow_id" = String, Path, example = "sf_9c1b7d4e5a603f2a")),
    request_body(content = TicketRequest, example = json!({"ttl_seconds": 300})),
    responses((status = 201, body = tickets::TicketView, example = json!({"ticket_id": "tk_5e0c…", "signer_index": 1, "expires_at": "2026-11-27T08:05:00Z", "deep_link": "https://sign.hospital.example/m/#/sign?t=tk_5e0c…", "qr_png_base64": "iVBORw0KGgo…", "qr_svg": "<svg …>"})),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "流程状态为 completed，无需扫码 / the flow is completed: nothing to scan", "request_id": "…"}))))]
/// `POST /api/v1/sign-flows/{flow_id}/tickets` (R7.4.6, R7.4.8): a fresh QR ticket for the scan
/// signer whose turn it is; the previous ticket stops working.
pub async fn renew_ticket(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let req: TicketRequest = if body.iter().all(|b| b.is_ascii_whitespace()) {
        TicketRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|x| Error::Invalid(format!("请求体无效 / invalid body: {x}")))?
    };
    let ttl = req.ttl_seconds;
    let t = scan::renew(&s.db, &caller.ctx, &caller.app.app_id, &id, ttl).await?;
    Ok((StatusCode::CREATED, Json(tickets::view(&s.app_url, &t)?)).into_response())
}

/// A flow with the QR of its open ticket (when a scan signer's turn is waiting).
pub async fn with_ticket(
    s: &AppState,
    mut f: medsign_signing::flows::FlowView,
) -> medsign_store::Result<medsign_signing::flows::FlowView> {
    if f.state == medsign_signing::model::FlowState::Signing
        && let Some(t) = tickets::current(&s.db, &f.id).await?
    {
        f.ticket = Some(tickets::view(&s.app_url, &t)?);
    }
    Ok(f)
}

#[utoipa::path(get, path = "/api/v1/sign-tickets/{ticket_id}/events", tag = "sign-flows",
    params(("ticket_id" = String, Path, example = "tk_5f0c2d…")),
    responses((status = 200, content_type = "text/event-stream", body = String, example = json!("event: state\ndata: {\"state\":\"waiting\",\"flow_state\":\"signing\"}\n\nevent: state\ndata: {\"state\":\"signed\",\"flow_state\":\"completed\"}\n\n")),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "二维码 X 不存在 / no ticket X", "request_id": "…"}))))]
/// `GET /api/v1/sign-tickets/{ticket_id}/events` (SSE; R2.6, R3.4): what became of a sign QR —
/// `waiting`, `scanned`, `signed` (with the flow's state), `superseded`, `expired`, `revoked`,
/// `failed`. No token (the ticket id is the capability); the signed document needs the system's.
pub async fn ticket_events(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let state = |t: &scan::TicketStatus| (serde_json::json!(t), t.is_final());
    let first = scan::status(&s.db, &id).await?;
    Ok(crate::events::state_events(state(&first), move || {
        let (st, id) = (s.clone(), id.clone());
        async move { scan::status(&st.db, &id).await.ok().map(|t| state(&t)) }
    }))
}

/// Its routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(renew_ticket))
        .routes(routes!(from_template))
        .routes(routes!(list_templates))
        .routes(routes!(post_own_handwriting))
        .routes(routes!(ticket_events))
        .routes(routes!(post_handwriting))
        .routes(routes!(get_handwriting))
}

/// Its `/admin/v1` routes (the admin scope is required by the caller).
pub(crate) fn admin_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(put_seal_image))
        .routes(routes!(get_seal_image))
        .routes(routes!(admin_list_templates))
        .routes(routes!(preview_template))
        .routes(routes!(get_template, save_template))
        .routes(routes!(enable_template))
        .routes(routes!(disable_template))
}
