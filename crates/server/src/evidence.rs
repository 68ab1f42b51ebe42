//! Evidence reports (R1.3, issue #16 § 5): a sealed, timestamped PDF report of a flow or of an
//! uploaded signed PDF / CMS (`medsign_signing::evidence`).

use crate::extract::owner;
use crate::{
    ApiError,
    error::ErrorBody,
    extract::{Scoped, StrictJson, scope},
    state::AppState,
};
use axum::{
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

fn pdf_response(r: medsign_signing::evidence::Report) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", r.file_name);
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::HeaderName::from_static("x-medsign-indication"),
                serde_json::to_value(r.indication)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ),
        ],
        r.pdf,
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/sign-flows/{flow_id}/evidence.pdf", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("flow_id" = String, Path, example = "sf_9c1b7d4e5a603f2a")),
    responses((status = 200, description = "the evidence report: verdict, document hashes, every signature, the flow's audit events with the chain proof; sealed (RSA hospital seal, certification signature) and timestamped", content_type = "application/pdf", body = Vec<u8>, example = json!("(binary)")),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "签署流程 X 不存在 / no signing flow X", "request_id": "…"})),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "流程 QM-… 尚未完成 / the flow is not completed", "request_id": "…"})),
        (status = 503, body = ErrorBody, example = json!({"code": "unavailable", "message": "时间戳服务不可用 / the TSA cannot issue", "request_id": "…"}))))]
/// `GET /api/v1/sign-flows/{flow_id}/evidence.pdf` (R1.3): the evidence report of a completed flow
/// (audited as `evidence.report`).
async fn flow_evidence(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::Sign>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = medsign_signing::evidence::for_flow(&s.signing(), &caller.ctx, owner(&caller), &id, &s.public_url).await?;
    Ok(pdf_response(r))
}

/// Body of `POST /api/v1/evidence`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EvidenceRequest {
    /// a signed PDF, or a CMS/PKCS#7 signature (DER or PEM), base64
    file: String,
    /// the signed content of a detached CMS, base64
    data: Option<String>,
    /// what the document is, shown in the report (default: "上传的文件 / uploaded file")
    name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/evidence", tag = "sign-flows", security(("bearer" = []), ("hmac_sm3" = [])),
    request_body(content = EvidenceRequest, example = json!({"file": "JVBERi0xLjcK…", "name": "门诊处方笺 MZ20261127009"})),
    responses((status = 200, description = "the evidence report of the uploaded document, sealed and timestamped", content_type = "application/pdf", body = Vec<u8>, example = json!("(binary)")),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "文件既不是 PDF，也不是 CMS/PKCS#7 签名 / the file is neither a PDF nor a CMS/PKCS#7 signature", "request_id": "…"})),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)))]
/// `POST /api/v1/evidence` (R1.3): the evidence report of any signed PDF, or of a CMS signature
/// (with `data` when detached). Audited as `evidence.report`.
async fn upload_evidence(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::VerifyOrSign>,
    StrictJson(body): StrictJson<EvidenceRequest>,
) -> Result<Response, ApiError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let file = match body.file.trim() {
        pem if pem.starts_with("-----BEGIN") => pem.as_bytes().to_vec(),
        t => {
            b64.decode(t).map_err(|_| medsign_store::Error::Invalid("file 不是 base64 / file is not base64".into()))?
        }
    };
    let data = match &body.data {
        Some(d) => Some(
            b64.decode(d.trim())
                .map_err(|_| medsign_store::Error::Invalid("data 不是 base64 / data is not base64".into()))?,
        ),
        None => None,
    };
    let r = medsign_signing::evidence::for_upload(
        &s.signing(),
        &caller.ctx,
        &file,
        data.as_deref(),
        body.name.as_deref(),
        &s.public_url,
    )
    .await?;
    Ok(pdf_response(r))
}

/// Its routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(flow_evidence)).routes(routes!(upload_evidence))
}
