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

/// Entries per database read of an export.
const EXPORT_CHUNK: i64 = 1000;

/// `GET /admin/v1/audit.csv` with the same filters: every matching entry, oldest first (chain
/// order), as CSV (UTF-8 with BOM) streamed a thousand entries at a time — an archive of a month
/// or of the whole log needs no paging and holds only one chunk in memory.
#[utoipa::path(get, path = "/admin/v1/audit.csv", tag = "admin", security(("bearer" = [])), params(medsign_store::audit::Filter),
    responses((status = 200, description = "CSV export (UTF-8 with BOM), every matching entry oldest first", content_type = "text/csv", example = json!("seq,at,kind,actor,action,target,outcome,ip,user_agent,request_id,details,hash")),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "导出包含全部匹配记录，不分页 / the export holds every matching entry: no page or page_size", "request_id": "…"}))))]
async fn audit_csv(State(s): State<Arc<AppState>>, caller: Caller, q: AuditQuery) -> Result<Response, ApiError> {
    let f = audit_filter(&caller, q)?;
    if f.page.is_some() || f.page_size.is_some() {
        return Err(ApiError::invalid(
            "导出包含全部匹配记录，不分页 / the export holds every matching entry: no page or page_size",
        ));
    }
    // the filter is checked before the answer starts: a bad one is a 400, not a broken download
    use medsign_store::audit::{CSV_HEADER, chunk_after, csv_rows};
    let first = chunk_after(&s.db, &f, 0, EXPORT_CHUNK).await?;
    // a short chunk is the last one
    let after = |chunk: &[medsign_store::audit::Entry]| {
        chunk.last().map(|e| e.seq).filter(|_| chunk.len() as i64 == EXPORT_CHUNK)
    };
    let start = (Some(format!("{CSV_HEADER}{}", csv_rows(&first))), after(&first));
    let db = s.db.clone();
    let body = futures_util::stream::unfold(start, move |(ready, cursor)| {
        let (db, f) = (db.clone(), f.clone());
        async move {
            if let Some(text) = ready {
                return Some((Ok(text), (None, cursor)));
            }
            match chunk_after(&db, &f, cursor?, EXPORT_CHUNK).await {
                Ok(chunk) => Some((Ok(csv_rows(&chunk)), (None, after(&chunk)))).filter(|_| !chunk.is_empty()),
                Err(e) => {
                    tracing::warn!(error = %e, "audit export stopped");
                    Some((Err(e), (None, None)))
                }
            }
        }
    });
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"medsign-audit.csv\""),
        ],
        axum::body::Body::from_stream(body),
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
