//! Handlers of the audit log (R1.7): query, CSV export, chain verification.

use crate::extract::StrictQuery;
use crate::{ApiError, error::ErrorBody, extract::Caller, state::AppState};
use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use medsign_directory::apps::Scope;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The log is read by admin apps, and by the people of the console whose role reaches it
/// (`routes::require_admin` checked the role by path already).
fn may_read(caller: &Caller) -> Result<(), ApiError> {
    match caller.role {
        Some(_) => Ok(()),
        None => Ok(caller.app.require(Scope::Admin)?),
    }
}

/// `GET /admin/v1/audit?kind=&actor=&action=&target=&from=&to=&page=&page_size=` (R1.7).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "admin", security(("bearer" = [])), params(medsign_store::audit::Filter),
    responses((status = 200, body = Object, example = json!({"items": [{"seq": 1, "at": "2026-11-27T08:00:00.000Z", "kind": "admin", "actor": "system", "action": "app.create", "target": "app:app_1a2b", "outcome": "ok", "ip": "local", "user_agent": "medsign-serve", "request_id": "bootstrap", "details": "{}", "prev_hash": "00…", "hash": "2a68…"}], "total": 1, "page": 1, "page_size": 100})),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit_query(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictQuery(f): StrictQuery<medsign_store::audit::Filter>,
) -> Result<Json<serde_json::Value>, ApiError> {
    may_read(&caller)?;
    let (items, total) = medsign_store::audit::query(&s.db, &f).await?;
    Ok(Json(
        serde_json::json!({"items": items, "total": total, "page": f.page.unwrap_or(1), "page_size": f.page_size.unwrap_or(100)}),
    ))
}

/// Entries per database read of an export.
const EXPORT_CHUNK: i64 = 1000;

/// Exports stream two at a time: each is cheap per chunk, but a whole log read many times over at
/// once would take the database connections signing needs.
static EXPORTS: std::sync::LazyLock<Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| Arc::new(tokio::sync::Semaphore::new(2)));

/// A place among the exports running, or a 429.
fn export_permit() -> Result<tokio::sync::OwnedSemaphorePermit, medsign_store::Error> {
    EXPORTS.clone().try_acquire_owned().map_err(|_| {
        medsign_store::Error::TooManyRequests(
            "已有两个日志导出在进行，请稍后再试 / two exports are running: try again shortly".into(),
        )
    })
}

/// `GET /admin/v1/audit.csv` with the same filters, not paged: every matching entry up to the
/// newest one when the export began, oldest first (chain order), as CSV (UTF-8 with BOM) streamed a
/// thousand entries at a time — an archive of a month or of the whole log holds one chunk in memory.
#[utoipa::path(get, path = "/admin/v1/audit.csv", tag = "admin", security(("bearer" = [])), params(medsign_store::audit::ExportFilter),
    responses((status = 200, description = "CSV export (UTF-8 with BOM), every matching entry oldest first", content_type = "text/csv", example = json!("seq,at,kind,actor,action,target,outcome,ip,user_agent,request_id,details,hash")),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "查询参数有误 / invalid query: unknown field `page`", "request_id": "…"})),
        (status = 429, body = ErrorBody, example = json!({"code": "too_many_requests", "message": "已有两个日志导出在进行，请稍后再试 / two exports are running: try again shortly", "request_id": "…"}))))]
async fn audit_csv(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictQuery(e): StrictQuery<medsign_store::audit::ExportFilter>,
) -> Result<Response, ApiError> {
    may_read(&caller)?;
    let f = medsign_store::audit::Filter::from(e);
    let permit = export_permit()?;
    // the filter is checked before the answer starts: a bad one is a 400, not a broken download
    use medsign_store::audit::{CSV_HEADER, chunk_after, csv_rows, head_seq};
    let upto = head_seq(&s.db).await?;
    let first = chunk_after(&s.db, &f, 0, upto, EXPORT_CHUNK).await?;
    // a short chunk is the last one
    let after = |chunk: &[medsign_store::audit::Entry]| {
        chunk.last().map(|e| e.seq).filter(|_| chunk.len() as i64 == EXPORT_CHUNK)
    };
    // the permit travels with the stream: the export counts until its last chunk is sent or the
    // client hangs up
    let start = (Some(format!("{CSV_HEADER}{}", csv_rows(&first))), after(&first), permit);
    let db = s.db.clone();
    let body = futures_util::stream::unfold(start, move |(ready, cursor, permit)| {
        let (db, f) = (db.clone(), f.clone());
        async move {
            if let Some(text) = ready {
                return Some((Ok(text), (None, cursor, permit)));
            }
            match chunk_after(&db, &f, cursor?, upto, EXPORT_CHUNK).await {
                Ok(chunk) if chunk.is_empty() => None,
                Ok(chunk) => {
                    let next = after(&chunk);
                    Some((Ok(csv_rows(&chunk)), (None, next, permit)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit export stopped");
                    Some((Err(e), (None, None, permit)))
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_third_export_while_two_stream_is_refused() {
        let (a, b) = (super::export_permit().unwrap(), super::export_permit().unwrap());
        let e = super::export_permit().unwrap_err();
        assert!(matches!(&e, medsign_store::Error::TooManyRequests(m) if m.contains("two exports")), "{e}");
        drop(a);
        let c = super::export_permit().unwrap();
        drop((b, c));
    }
}
