//! Handlers of the audit log (R1.7): query, CSV export, chain verification.

use crate::{ApiError, error::ErrorBody, extract::Caller, state::AppState};
use axum::{
    Json,
    extract::{Query, State},
    response::{IntoResponse, Response},
};
use medsign_directory::apps::Scope;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

type AuditQuery = Result<Query<medsign_store::audit::Filter>, axum::extract::rejection::QueryRejection>;

/// The log is read by admin apps, and by the people of the console whose role reaches it
/// (`routes::require_admin` checked the role by path already).
fn may_read(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Some(_) => Ok(()),
        None => Ok(caller.app.require(Scope::Admin)?),
    }
}

fn audit_filter(caller: &Caller, q: AuditQuery) -> Result<medsign_store::audit::Filter, ApiError> {
    may_read(caller)?;
    let Query(f) = q.map_err(|e| medsign_store::Error::Invalid(format!("查询参数有误 / invalid query: {e}")))?;
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
    let (items, total) = medsign_store::audit::query(&s.db, &f).await?;
    Ok(Json(
        serde_json::json!({"items": items, "total": total, "page": f.page.unwrap_or(1), "page_size": f.page_size.unwrap_or(100)}),
    ))
}

/// `GET /admin/v1/audit.csv` with the same filters: a CSV export (UTF-8 with BOM).
#[utoipa::path(get, path = "/admin/v1/audit.csv", tag = "admin", security(("bearer" = [])), params(medsign_store::audit::Filter),
    responses((status = 200, description = "CSV export (UTF-8 with BOM)", content_type = "text/csv", example = json!("seq,at,kind,actor,action,target,outcome,ip,user_agent,request_id,details,hash"))))]
async fn audit_csv(State(s): State<Arc<AppState>>, caller: Caller, q: AuditQuery) -> Result<Response, ApiError> {
    let f = audit_filter(&caller, q)?;
    let (items, _) = medsign_store::audit::query(&s.db, &f).await?;
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
    may_read(&caller)?;
    Ok(Json(medsign_store::audit::verify_chain(&s.db).await?))
}

/// Its `/admin/v1` routes (the admin scope is required by the caller).
pub(crate) fn admin_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(audit_query)).routes(routes!(audit_csv)).routes(routes!(audit_verify))
}
