//! Handlers of the directory: staff users (R1.4, R7.4.1, R7.4.2) and their import, departments, and
//! integration apps.

use crate::extract::StrictQuery;
use crate::extract::idempotent;
use crate::{
    ApiError,
    error::ErrorBody,
    extract::{Caller, StrictJson},
    extract::{Scoped, scope},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medsign_directory::users::{self, NewUser, User};
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

/// `POST /api/v1/users` (R7.4.1): one object or an array (≤ 10,000), all or nothing.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "retry-safe creation")),
    request_body(content = Vec<NewUser>, description = "one user object or an array of up to 10,000 (all or nothing)",
        example = json!([{"employee_no": "1001", "name": "张三", "department": "XNK", "title": "主治医师", "id_card": "11010519491231002X", "role": "doctor"}])),
    responses(
        (status = 201, description = "created: the user (single object sent) or {\"users\": [...]}", body = User,
            example = json!({"employee_no": "1001", "name": "张三", "department": "XNK", "title": "主治医师", "phone": null, "id_card_masked": "110105**********2X", "role": "doctor", "status": "active", "realname_status": "none", "certificate": null, "signature_image": null, "created_at": "2026-11-27T08:00:00.000Z", "updated_at": "2026-11-27T08:00:00.000Z"})),
        (status = 400, description = "malformed JSON or unknown field", body = ErrorBody),
        (status = 409, description = "Idempotency-Key reused with another request, or its first attempt is still running (retry shortly)", body = ErrorBody),
        (status = 422, description = "invalid rows; nothing written", body = ErrorBody,
            example = json!({"code": "invalid_rows", "message": "1 行数据有误，未写入任何数据 / 1 rows are invalid; nothing was written", "request_id": "5f0c…", "errors": [{"row": 0, "field": "id_card", "message": "身份证号无效 / invalid ID-card number"}]})),
    ))]
async fn create_users(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    StrictJson(body): StrictJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    // parse after authentication, so an unauthenticated caller learns nothing about the schema
    let body_text = body.to_string();
    let parsed: OneOrMany = match &body {
        serde_json::Value::Array(_) => serde_json::from_value::<Vec<NewUser>>(body).map(OneOrMany::Many),
        _ => serde_json::from_value::<NewUser>(body).map(|u| OneOrMany::One(Box::new(u))),
    }
    .map_err(|e| ApiError::invalid(format!("用户数据有误 / invalid user data: {e}")))?;
    let (list, single) = match parsed {
        OneOrMany::Many(v) => (v, false),
        OneOrMany::One(u) => (vec![*u], true),
    };
    let request_hash = hex::encode(medsign_crypto::hash::sm3(body_text.as_bytes()));
    idempotent(&s, &caller, "POST /api/v1/users", &request_hash, || async {
        let made = users::create_many(&s.db, &s.kek, &caller.ctx, &list).await?;
        let body = if single {
            serde_json::to_value(&made[0])
        } else {
            serde_json::to_value(serde_json::json!({"users": made}))
        }
        .unwrap_or_default();
        Ok((StatusCode::CREATED, body))
    })
    .await
}

/// `POST /api/v1/users/import` (R1.4, R7.4.1): multipart field `file`, CSV (UTF-8 or GBK) or
/// XLSX; all or nothing, errors by spreadsheet line.
/// `?dry_run=true` of `POST /api/v1/users/import`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ImportQuery {
    /// check every row and show what would be imported, writing nothing
    dry_run: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/users/import", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])), params(ImportQuery),
    request_body(content_type = "multipart/form-data", content = Object, description = "field `file`: CSV (UTF-8 or GBK) or XLSX with columns 工号,姓名,科室,职称,手机,身份证号,角色",
        example = json!({"file": "工号,姓名,科室\n1001,张三,XNK"})),
    responses(
        (status = 201, description = "imported", body = Object, example = json!({"imported": 700, "ignored_columns": ["备注"]})),
        (status = 200, description = "`?dry_run=true`: what would be imported (nothing written)", body = Object, example = json!({"would_import": 2, "ignored_columns": [], "rows": [{"line": 2, "employee_no": "1001", "name": "张三", "department": "XNK", "title": "主治医师", "role": "staff", "phone": true, "id_card": false}]})),
        (status = 400, description = "unreadable file", body = ErrorBody),
        (status = 422, description = "bad lines (spreadsheet line numbers); nothing written", body = ErrorBody)))]
async fn import_users(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    StrictQuery(q): StrictQuery<ImportQuery>,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let invalid = |m: String| medsign_store::Error::Invalid(m);
    let mut multipart = multipart.map_err(|e| {
        invalid(format!(
            "须以 multipart/form-data 上传，字段名 file / upload as multipart/form-data with a field named file: {e}"
        ))
    })?;
    let mut file = None;
    while let Some(field) =
        multipart.next_field().await.map_err(|e| invalid(format!("上传内容无法读取 / unreadable upload: {e}")))?
    {
        if field.name() == Some("file") {
            file =
                Some(field.bytes().await.map_err(|e| invalid(format!("上传内容无法读取 / unreadable upload: {e}")))?);
        }
    }
    let bytes = file.ok_or_else(|| invalid("缺少字段 file / the form has no field named file".into()))?;
    let parsed = medsign_directory::import::parse(&bytes)?;
    if q.dry_run.unwrap_or(false) {
        // the preview: every check, errors by spreadsheet line, nothing written; who and what, but
        // not the phone numbers and ID card numbers themselves (only whether there is one)
        users::check_import(&s.db, &parsed.users)
            .await
            .map_err(|e| medsign_directory::import::to_lines(e, &parsed.lines))?;
        let rows: Vec<serde_json::Value> = parsed
            .users
            .iter()
            .zip(&parsed.lines)
            .map(|(u, line)| {
                serde_json::json!({"line": line, "employee_no": u.employee_no, "name": u.name.trim(), "department": u.department,
                    "title": u.title, "role": u.role, "phone": u.phone.is_some(), "id_card": u.id_card.is_some()})
            })
            .collect();
        let body =
            serde_json::json!({"would_import": rows.len(), "ignored_columns": parsed.ignored_columns, "rows": rows});
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let request_hash = hex::encode(medsign_crypto::hash::sm3(&bytes));
    idempotent(&s, &caller, "POST /api/v1/users/import", &request_hash, || async {
        let made = users::create_many(&s.db, &s.kek, &caller.ctx, &parsed.users)
            .await
            .map_err(|e| medsign_directory::import::to_lines(e, &parsed.lines))?;
        Ok((
            StatusCode::CREATED,
            serde_json::json!({"imported": made.len(), "ignored_columns": parsed.ignored_columns}),
        ))
    })
    .await
}

/// `GET /api/v1/users/import/template.csv`: the import template (UTF-8 with BOM).
#[utoipa::path(get, path = "/api/v1/users/import/template.csv", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "CSV template (UTF-8 with BOM)", content_type = "text/csv", example = json!("工号,姓名,科室,职称,手机,身份证号,角色"))))]
async fn import_template(_caller: Scoped<scope::UsersRead>) -> Result<Response, ApiError> {
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"medsign-users-template.csv\""),
        ],
        medsign_directory::import::TEMPLATE_CSV,
    )
        .into_response())
}

/// `POST /admin/v1/departments`: one department or an array (parents first), all or nothing.
#[utoipa::path(post, path = "/admin/v1/departments", tag = "admin", security(("bearer" = [])),
    request_body(content = Vec<medsign_directory::departments::NewDepartment>, example = json!([{"code": "NK", "name": "内科"}, {"code": "XNK", "name": "心内科", "parent_code": "NK"}])),
    responses((status = 201, body = Object, example = json!({"departments": [{"code": "NK", "name": "内科", "parent_code": null}]})), (status = 422, body = ErrorBody)))]
async fn create_departments(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    use medsign_directory::departments::{self, NewDepartment};
    let list: Vec<NewDepartment> = match body {
        serde_json::Value::Array(_) => serde_json::from_value(body),
        other => serde_json::from_value::<NewDepartment>(other).map(|d| vec![d]),
    }
    .map_err(|e| medsign_store::Error::Invalid(format!("科室数据有误 / invalid department data: {e}")))?;
    let made = departments::create_many(&s.db, &caller.ctx, &list).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"departments": made}))).into_response())
}

/// `GET /admin/v1/departments`: all departments (flat, with parent codes).
#[utoipa::path(get, path = "/admin/v1/departments", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Object, example = json!({"departments": [{"code": "XNK", "name": "心内科", "parent_code": "NK"}]}))))]
async fn list_departments(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = medsign_directory::departments::list(&s.db).await?;
    Ok(Json(serde_json::json!({"departments": list})))
}

/// Body of `POST /admin/v1/apps`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApp {
    /// display name
    name: String,
    /// scopes; empty = every scope but admin
    #[serde(default)]
    scopes: Vec<String>,
}

#[utoipa::path(post, path = "/admin/v1/apps", tag = "admin", security(("bearer" = [])),
    request_body(content = NewApp, example = json!({"name": "HIS 门诊", "scopes": ["users:read", "users:write"]})),
    responses((status = 201, body = Object, description = "the token is shown only in this answer",
        example = json!({"app_id": "app_1a2b3c4d5e6f7a8b", "name": "HIS 门诊", "scopes": ["users:read", "users:write"], "token": "app_1a2b3c4d5e6f7a8b.9f…"})),
        (status = 400, body = ErrorBody)))]
/// `POST /admin/v1/apps`: create an integration app; the token is in this answer only.
async fn create_app(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    StrictJson(body): StrictJson<NewApp>,
) -> Result<Response, ApiError> {
    let scopes = medsign_directory::apps::Scope::parse_list(&body.scopes.join(","))?;
    let (app, token) = medsign_directory::apps::create(&s.db, &s.kek, &caller.ctx, &body.name, &scopes).await?;
    let out =
        serde_json::json!({"app_id": app.app_id, "name": app.name, "scopes": app.scopes, "token": token.as_str()});
    Ok((StatusCode::CREATED, [(axum::http::header::CACHE_CONTROL, "no-store")], Json(out)).into_response())
}

#[utoipa::path(get, path = "/admin/v1/apps", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Object, example = json!({"apps": [{"app_id": "app_1a2b3c4d5e6f7a8b", "name": "HIS 门诊", "scopes": ["users:read"], "disabled": false, "created_at": "2026-11-27T08:00:00.000Z"}]}))))]
/// `GET /admin/v1/apps`: every app (never a secret).
async fn list_apps(State(s): State<Arc<AppState>>, _caller: Caller) -> Result<Json<serde_json::Value>, ApiError> {
    let apps = medsign_directory::apps::list(&s.db).await?;
    Ok(Json(serde_json::json!({"apps": apps})))
}

async fn set_app_disabled(s: &AppState, caller: &Caller, app_id: &str, disabled: bool) -> Result<StatusCode, ApiError> {
    medsign_directory::apps::set_disabled(&s.db, &s.auth, &caller.ctx, app_id, disabled).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/apps/{app_id}/disable", tag = "admin", security(("bearer" = [])),
    params(("app_id" = String, Path, example = "app_1a2b3c4d5e6f7a8b")),
    responses((status = 204, description = "disabled: its tokens stop working at once"), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "应用 app_x 不存在 / no app app_x", "request_id": "…"}))))]
/// `POST /admin/v1/apps/{app_id}/disable`.
async fn disable_app(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_app_disabled(&s, &caller, &id, true).await
}

#[utoipa::path(post, path = "/admin/v1/apps/{app_id}/enable", tag = "admin", security(("bearer" = [])),
    params(("app_id" = String, Path, example = "app_1a2b3c4d5e6f7a8b")),
    responses((status = 204, description = "enabled"), (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "应用 app_x 不存在 / no app app_x", "request_id": "…"}))))]
/// `POST /admin/v1/apps/{app_id}/enable`.
async fn enable_app(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    set_app_disabled(&s, &caller, &id, false).await
}

#[utoipa::path(post, path = "/admin/v1/apps/{app_id}/rotate", tag = "admin", security(("bearer" = [])),
    params(("app_id" = String, Path, example = "app_1a2b3c4d5e6f7a8b")),
    responses((status = 200, body = Object, example = json!({"app_id": "app_1a2b3c4d5e6f7a8b", "token": "app_1a2b3c4d5e6f7a8b.9f86d081884c7d65…"})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "应用 app_x 不存在 / no app app_x", "request_id": "…"}))))]
/// `POST /admin/v1/apps/{app_id}/rotate`: a new secret, shown once; the old one stops at once.
async fn rotate_app(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let token = medsign_directory::apps::rotate(&s.db, &s.kek, &s.auth, &caller.ctx, &id).await?;
    let body = Json(serde_json::json!({"app_id": id, "token": token.as_str()}));
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], body).into_response())
}

/// `GET /api/v1/users?department=&q=&page=&page_size=` (R7.4.2).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])), params(users::ListQuery),
    responses((status = 200, body = users::Page, example = json!({"items": [], "page": 1, "page_size": 50, "total": 0})),
        (status = 400, body = ErrorBody)))]
async fn list_users(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::UsersRead>,
    StrictQuery(q): StrictQuery<users::ListQuery>,
) -> Result<Json<users::Page>, ApiError> {
    Ok(Json(users::list(&s.db, &s.kek, &q).await?))
}

/// `PATCH /api/v1/users/{employee_no}` (R1.4): edit, disable (`"status": "disabled"`), enable.
#[utoipa::path(patch, path = "/api/v1/users/{employee_no}", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    request_body(content = users::UserPatch, example = json!({"title": "主任医师", "status": "disabled"})),
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_user(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    Path(no): Path<String>,
    StrictJson(patch): StrictJson<users::UserPatch>,
) -> Result<Json<users::User>, ApiError> {
    Ok(Json(users::update(&s.db, &s.kek, &caller.ctx, &no, &patch).await?))
}

/// `DELETE /api/v1/users/{employee_no}` (R1.4): soft delete, kept for the audit trail.
#[utoipa::path(delete, path = "/api/v1/users/{employee_no}", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001")),
    responses((status = 204, description = "deleted (soft; kept for the audit trail)"), (status = 404, body = ErrorBody)))]
async fn delete_user(
    State(s): State<Arc<AppState>>,
    caller: Scoped<scope::UsersWrite>,
    Path(no): Path<String>,
) -> Result<StatusCode, ApiError> {
    users::delete(&s.db, &s.kek, &caller.ctx, &no).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users/{employee_no}` (R7.4.2).
/// Query of `GET /api/v1/users/{employee_no}` (other parameters, e.g. a cache-buster, are ignored).
#[derive(Deserialize, utoipa::IntoParams)]
struct UserQuery {
    /// `base64`: also the handwritten signature itself (`signature_image_base64`, PNG)
    image: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users/{employee_no}", tag = "users", security(("bearer" = []), ("hmac_sm3" = [])),
    params(("employee_no" = String, Path, example = "1001"), UserQuery),
    responses((status = 200, body = User, example = json!({"employee_no": "1001", "name": "张三", "department": "XNK", "title": "主治医师", "phone": null, "id_card_masked": "110105**********2X", "role": "doctor", "status": "active", "realname_status": "verified",
            "certificate": {"serial": "2BE1…", "alg": "sm2", "status": "active", "issuer": "CN=某县人民医院 SM2 签发 CA,O=某县人民医院,C=CN", "subject": "CN=张三,OU=XNK,O=某县人民医院,C=CN,SERIALNUMBER=5A1C…", "not_before": "2026-11-27T07:55:00Z", "not_after": "2027-11-27T07:55:00Z", "channel": "builtin", "key": "phone", "valid_now": true, "certificate_pem": "-----BEGIN CERTIFICATE-----\n…"},
            "signature_image": "/api/v1/users/1001/handwriting.png", "signature_image_base64": "iVBORw0KGgo…", "created_at": "2026-11-27T08:00:00.000Z", "updated_at": "2026-11-27T08:00:00.000Z"})),
        (status = 400, body = ErrorBody, example = json!({"code": "invalid_request", "message": "image 只能是 base64 / image must be base64", "request_id": "a6df…"})),
        (status = 404, body = ErrorBody, example = json!({"code": "not_found", "message": "工号 9999 的用户不存在 / no user with employee_no 9999", "request_id": "a6df…"}))))]
/// `GET /api/v1/users/{employee_no}` (R7.4.2): basic information, real-name state, the signing
/// certificate (serial, issuer, validity, state, PEM; which key it certifies: the phone's
/// two-party key or a server-held one) and the handwritten signature (link; with `?image=base64`
/// also the PNG).
async fn get_user(
    State(s): State<Arc<AppState>>,
    _caller: Scoped<scope::UsersRead>,
    Path(no): Path<String>,
    StrictQuery(q): StrictQuery<UserQuery>,
) -> Result<Json<users::User>, ApiError> {
    let with_image = match q.image.as_deref() {
        None => false,
        Some("base64") => true,
        Some(_) => {
            return Err(medsign_store::Error::Invalid("image 只能是 base64 / image must be base64".into()).into());
        }
    };
    let mut u = users::get(&s.db, &s.kek, &no).await?;
    u.certificate = certificate_summary(&s, &no).await?;
    if let Some((png, _)) = medsign_directory::images::get(&s.db, &format!("user:{no}")).await? {
        u.signature_image = Some(format!("/api/v1/users/{no}/handwriting.png"));
        if with_image {
            use base64::Engine;
            u.signature_image_base64 = Some(base64::engine::general_purpose::STANDARD.encode(png));
        }
    }
    Ok(Json(u))
}

/// The staff member's signing certificate as the HIS sees it: the newest active one within its
/// validity (SM2 before RSA), else one on hold, else the newest of all (so an expired or revoked
/// state shows), or none. `valid_now` says whether it can sign now.
async fn certificate_summary(s: &AppState, no: &str) -> Result<Option<serde_json::Value>, ApiError> {
    use medsign_ca::certs;
    let q = certs::ListQuery {
        employee_no: Some(no.into()),
        profile: Some("signer".into()),
        page_size: Some(20),
        ..Default::default()
    };
    let (list, _) = certs::list(&s.db, &q).await?;
    let now = medsign_store::now_text();
    let usable = |c: &&certs::CertRecord| c.status == "active" && c.not_before <= now && now < c.not_after;
    let pick = list
        .iter()
        .find(|c| usable(c) && c.alg == "sm2")
        .or_else(|| list.iter().find(usable))
        .or_else(|| list.iter().find(|c| c.status == "on_hold"))
        .or(list.first());
    let Some(c) = pick else { return Ok(None) };
    let cert = c.cert()?;
    let key = certs::key_holder(&s.db, c).await?;
    Ok(Some(serde_json::json!({
        "serial": c.serial,
        "alg": c.alg,
        "status": c.status,
        "reason": c.reason,
        "revoked_at": c.revoked_at,
        "issuer": cert.issuer_display(),
        "subject": c.subject,
        "not_before": c.not_before,
        "not_after": c.not_after,
        "channel": c.channel,
        "key": key,
        "valid_now": usable(&c),
        "certificate_pem": c.certificate_pem,
    })))
}

/// Its routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_users, list_users))
        .routes(routes!(import_users))
        .routes(routes!(import_template))
        .routes(routes!(get_user, update_user, delete_user))
}

/// Its `/admin/v1` routes (the admin scope is required by the caller).
pub(crate) fn admin_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(create_departments, list_departments))
        .routes(routes!(create_app, list_apps))
        .routes(routes!(disable_app))
        .routes(routes!(enable_app))
        .routes(routes!(rotate_app))
}

/// The users routes again under `/admin/v1`, for the console (documented once, under `/api/v1`).
pub(crate) fn users_mirror() -> axum::Router<Arc<AppState>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/users", post(create_users).get(list_users))
        .route("/users/import", post(import_users))
        .route("/users/import/template.csv", get(import_template))
        .route("/users/{employee_no}", get(get_user).patch(update_user).delete(delete_user))
}

/// One user or an array of users.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<NewUser>),
    One(Box<NewUser>),
}
