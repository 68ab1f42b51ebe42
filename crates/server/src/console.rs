//! The console's own API (issue #18): people log in (`/console/v1`), administrators manage them
//! (`/admin/v1/people`), and the console's pages are served at `/admin/` (embedded, like the H5
//! app). What a logged-in person then does goes through the same `/admin/v1` and `/api/v1` routes
//! as an integration app, as `person:<username>` with their role's rights
//! ([`crate::extract::Caller`], `routes::require_admin`).

use crate::{
    ApiError,
    error::ErrorBody,
    extract::{CONSOLE_COOKIE, Caller, StrictJson, Visitor, console_cookie, cookie_value},
    state::AppState,
};
use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use medsign_directory::people::{self, NewPerson, Person};
use medsign_store::Error;
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::{router::OpenApiRouter, routes};

#[utoipa::path(get, path = "/console/v1/state", tag = "console",
    responses((status = 200, body = Object, example = json!({"organization": "某县人民医院", "has_people": true, "me": null}))))]
/// `GET /console/v1/state`: whether anyone can log in yet (if not, the console asks for the
/// bootstrap token to create the first administrator), and who is logged in (`me`, or null).
pub async fn state(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let n = people::count(&s.db).await?;
    let me = match console_cookie(&headers) {
        Some(token) => people::session(&s.db, &token).await.ok(),
        None => None,
    };
    Ok(Json(serde_json::json!({"organization": s.organization, "has_people": n > 0, "me": me})).into_response())
}

/// Body of `POST /console/v1/login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// login name
    username: String,
    /// password
    password: String,
    /// the authenticator app's current 6-digit code
    code: String,
}

/// The console's session cookie.
fn cookie(s: &AppState, value: &str, max_age: i64) -> HeaderValue {
    cookie_at(s, CONSOLE_COOKIE, "/", value, max_age)
}

/// An HttpOnly, SameSite=Strict cookie (Secure when the public URL is https).
fn cookie_at(s: &AppState, name: &str, path: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if s.public_url.starts_with("https://") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"))
        .expect("cookie text is ASCII")
}

#[utoipa::path(post, path = "/console/v1/login", tag = "console",
    request_body(content = Login, example = json!({"username": "wang.it", "password": "…", "code": "287082"})),
    responses((status = 200, body = Person, description = "logged in; the session is the HttpOnly cookie medsign_console",
            example = json!({"username": "wang.it", "display_name": "王工", "role": "administrator", "disabled": false, "locked_until": null, "created_by": "app:app_1a2b", "created_at": "…", "last_login_at": "…"})),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "用户名、密码或动态码不正确 / wrong username, password or code", "request_id": "…"})),
        (status = 429, body = ErrorBody)))]
/// `POST /console/v1/login`: password and TOTP code; five wrong in a row lock the account for 15
/// minutes; a code logs in once.
pub async fn login(
    State(s): State<Arc<AppState>>,
    v: Visitor,
    StrictJson(body): StrictJson<Login>,
) -> Result<Response, ApiError> {
    if body.username.len() > 64 || body.password.len() > 600 || body.code.len() > 16 {
        return Err(Error::Invalid("字段过长 / a field is too long".into()).into());
    }
    s.limits.take("console-login", crate::ratelimit::AUTH, &v.ctx.ip)?;
    s.limits.take("console-login-user", crate::ratelimit::AUTH, body.username.trim())?;
    let (token, p) =
        people::login(&s.db, &s.kek, &s.auth, &v.ctx, body.username.trim(), &body.password, &body.code).await?;
    let mut r = Json(p).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie(&s, &token, people::SESSION_HOURS * 3600));
    Ok(r)
}

/// The owner of the console's login tickets (not an app: no token can read them).
const CONSOLE_TICKETS: &str = "console";
/// The cookie that ties a QR login to the browser that asked for it.
const QR_COOKIE: &str = "medsign_console_qr";

#[utoipa::path(post, path = "/console/v1/qr-login", tag = "console",
    responses((status = 201, body = Object, description = "a login QR for the medsign phone app; the browser gets the HttpOnly cookie medsign_console_qr that collects the session",
            example = json!({"ticket_id": "lt_5f0c…", "state": "waiting", "expires_at": "2026-12-04T08:02:00Z", "deep_link": "https://medsign.example/m/#/login?t=lt_5f0c…", "qr_png_base64": "iVBORw0…"})),
        (status = 429, body = ErrorBody)))]
/// `POST /console/v1/qr-login`: log in by scanning with the medsign phone app of the staff member
/// an administrator linked to one's console account (the phone confirms with PIN or fingerprint
/// and co-signs the login). Then `POST /console/v1/qr-login/{ticket_id}` until it is confirmed.
pub async fn qr_login(State(s): State<Arc<AppState>>, v: Visitor) -> Result<Response, ApiError> {
    s.limits.take("console-login", crate::ratelimit::AUTH, &v.ctx.ip)?;
    // nobody logged in yet asks for these: at most a few waiting at once, whoever asks
    // (a cheap refusal before a ticket is made; qr_login_started holds the cap under its lock)
    if people::qr_logins_waiting(&s.db).await? >= people::MAX_WAITING_QR_LOGINS {
        return Err(people::too_many_qr_logins().into());
    }
    let t = medsign_phone::logins::create(
        &s.db,
        &v.ctx,
        &s.app_url,
        CONSOLE_TICKETS,
        "医签管理控制台 / medsign console",
        None,
        Some(120),
    )
    .await?;
    let secret = zeroize::Zeroizing::new(hex::encode(medsign_crypto::rng::bytes::<32>().map_err(Error::from)?));
    people::qr_login_started(&s.db, &t.ticket_id, &secret).await?;
    let body = serde_json::json!({"ticket_id": t.ticket_id, "state": t.state, "expires_at": t.expires_at,
        "deep_link": t.deep_link, "qr_png_base64": t.qr_png_base64});
    let mut r = (StatusCode::CREATED, Json(body)).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie_at(&s, QR_COOKIE, "/console/v1/qr-login", &secret, 300));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[utoipa::path(post, path = "/console/v1/qr-login/{ticket_id}", tag = "console",
    params(("ticket_id" = String, Path, example = "lt_5f0c2d…")),
    responses((status = 200, body = Object, description = "`waiting` | `scanned` | `refused` | `expired`; or `confirmed` with the person, the session cookie set",
            example = json!({"state": "confirmed", "me": {"username": "wang.it", "display_name": "王工", "role": "administrator"}})),
        (status = 403, body = ErrorBody, example = json!({"code": "forbidden", "message": "此工号没有可用的控制台账号… / this staff member has no usable console account…", "request_id": "…"})),
        (status = 404, body = ErrorBody)))]
/// `POST /console/v1/qr-login/{ticket_id}`: where the QR login stands; once the phone confirmed,
/// the session — only for the browser that asked (its cookie), once.
pub async fn qr_login_poll(
    State(s): State<Arc<AppState>>,
    v: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || Error::NotFound(format!("登录票据 {id} 不存在 / no login ticket {id}"));
    let secret = cookie_value(&headers, QR_COOKIE).filter(|c| c.len() == 64).ok_or_else(not_found)?;
    if id.len() > 64 || !people::qr_login_asked_by(&s.db, &id, &secret).await? {
        return Err(not_found().into());
    }
    let t = medsign_phone::logins::get(&s.db, Some(CONSOLE_TICKETS), &id).await?;
    let Some(no) = t.employee_no.as_deref().filter(|_| t.state == "confirmed") else {
        return Ok(Json(serde_json::json!({"state": t.state})).into_response());
    };
    let device = medsign_phone::logins::scanned_by(&s.db, &id).await?.unwrap_or_default();
    let (token, p) = people::qr_login_finish(&s.db, &v.ctx, &id, &secret, no, &device).await?;
    let mut r = Json(serde_json::json!({"state": "confirmed", "me": p})).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie(&s, &token, people::SESSION_HOURS * 3600));
    Ok(r)
}

#[utoipa::path(get, path = "/admin/v1/settings", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Object, example = json!({"settings": [{"key": "server.public_url", "env": "MEDSIGN_SERVER_PUBLIC_URL", "value": "https://sign.hospital.example", "secret": false}], "changed_by": "medsign.toml or the environment, then a restart"}))))]
/// `GET /admin/v1/settings`: the configuration in effect (read-only; secrets only say that they
/// are set, a database URL comes without its password).
pub async fn settings(State(s): State<Arc<AppState>>, _c: Caller) -> Result<Response, ApiError> {
    Ok(Json(serde_json::json!({"settings": s.settings,
        "changed_by": "在 medsign.toml 或环境变量中修改，然后重启 / change medsign.toml or the environment, then restart (docs/configuration.md)"}))
    .into_response())
}

/// Body of `PUT /admin/v1/people/{username}/staff`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffLink {
    /// the staff member whose phone may log this person in; null unlinks
    employee_no: Option<String>,
}

#[utoipa::path(put, path = "/admin/v1/people/{username}/staff", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, example = "wang.it")),
    request_body(content = StaffLink, example = json!({"employee_no": "1001"})),
    responses((status = 200, body = Person), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "工号 1001 已关联控制台账号 li.ops / staff member 1001 already logs in as li.ops", "request_id": "…"}))))]
/// `PUT /admin/v1/people/{username}/staff`: link the person to a staff member, whose medsign
/// phone app may then log them in by scanning (or unlink with null).
pub async fn link_staff(
    State(s): State<Arc<AppState>>,
    c: Caller,
    Path(username): Path<String>,
    StrictJson(body): StrictJson<StaffLink>,
) -> Result<Response, ApiError> {
    let no = body.employee_no.as_deref().map(str::trim).filter(|n| !n.is_empty());
    Ok(Json(people::link_staff(&s.db, &c.ctx, &username, no).await?).into_response())
}

#[utoipa::path(post, path = "/console/v1/logout", tag = "console",
    responses((status = 204, description = "the session has ended")))]
/// `POST /console/v1/logout`.
pub async fn logout(State(s): State<Arc<AppState>>, v: Visitor, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = console_cookie(&headers)
        && let Ok(p) = people::session(&s.db, &token).await
    {
        let ctx = medsign_store::audit::Context { actor: format!("person:{}", p.username), ..v.ctx };
        people::logout(&s.db, &ctx, &token).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie(&s, "", 0));
    Ok(r)
}

#[utoipa::path(get, path = "/console/v1/me", tag = "console",
    responses((status = 200, body = Person), (status = 401, body = ErrorBody)))]
/// `GET /console/v1/me`: who is logged in.
pub async fn me(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = console_cookie(&headers).ok_or_else(|| Error::Unauthorized("请登录 / please log in".into()))?;
    Ok(Json(people::session(&s.db, &token).await?).into_response())
}

#[utoipa::path(get, path = "/admin/v1/people", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<Person>)))]
/// `GET /admin/v1/people`: who can log in to the console.
pub async fn list_people(State(s): State<Arc<AppState>>, _c: Caller) -> Result<Response, ApiError> {
    Ok(Json(people::list(&s.db).await?).into_response())
}

#[utoipa::path(post, path = "/admin/v1/people", tag = "admin", security(("bearer" = [])),
    request_body(content = NewPerson, examples(
        ("invite" = (value = json!({"username": "li.ops", "display_name": "李工", "role": "operator"}))),
        ("first administrator (bootstrap token)" = (value = json!({"username": "wang.it", "display_name": "王工", "role": "administrator", "password": "至少十个字符的密码"}))))),
    responses((status = 201, body = Object, description = "an invitation (invite_code, once), or for the first administrator the TOTP secret (once) with its QR code",
            example = json!({"person": {"username": "li.ops", "display_name": "李工", "role": "operator", "invited": true}, "invite_code": "9f1c…", "expires_at": "2026-11-30T08:00:00Z"})),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
/// `POST /admin/v1/people`: invite a person to the console — they set their own password and TOTP
/// with the one-time code (`POST /console/v1/enrol`, the console's `#/enrol` page). With a
/// `password`, from the bootstrap token while there is no enabled administrator: the first
/// administrator, whose TOTP secret is shown once.
pub async fn create_person(
    State(s): State<Arc<AppState>>,
    c: Caller,
    StrictJson(body): StrictJson<NewPerson>,
) -> Result<Response, ApiError> {
    if body.password.is_none() {
        // people are invited by an administrator of the console, not by a token
        if c.role != Some(people::Role::Administrator) {
            return Err(Error::Forbidden(
                "只有控制台管理员可以邀请 / only an administrator of the console invites people".into(),
            )
            .into());
        }
        return Ok((StatusCode::CREATED, Json(people::invite(&s.db, &c.ctx, &body).await?)).into_response());
    }
    if c.role.is_some() {
        return Err(Error::Invalid(
            "受邀者自己设置密码：请不带 password 邀请 / the invited person sets their own password: invite without one"
                .into(),
        )
        .into());
    }
    enrolled(people::create_first(&s.db, &s.kek, &c.ctx, &s.organization, &body).await?)
}

/// An enrolment's answer: the TOTP secret, its link and its QR code (PNG, base64), shown once.
fn enrolled(e: people::Enrolled) -> Result<Response, ApiError> {
    let (qr_png_base64, _) = medsign_signing::tickets::qr(&e.otpauth_uri)?;
    let mut v = serde_json::to_value(&e).map_err(|err| Error::internal_from("console::enrolled", err))?;
    v["qr_png_base64"] = qr_png_base64.into();
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// Body of `POST /console/v1/enrol`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrol {
    /// login name
    username: String,
    /// the invitation's one-time code
    code: String,
    /// the password the person chooses (10–128 characters)
    password: String,
}

#[utoipa::path(post, path = "/console/v1/enrol", tag = "console",
    request_body(content = Enrol, example = json!({"username": "li.ops", "code": "9f1c…", "password": "我自己选的密码"})),
    responses((status = 201, body = Object, example = json!({"person": {"username": "li.ops"}, "totp_secret": "JBSW…", "otpauth_uri": "otpauth://totp/…", "qr_png_base64": "iVBORw0KGgo…"})),
        (status = 401, body = ErrorBody, example = json!({"code": "unauthorized", "message": "邀请码无效或已过期 / the invitation code is not valid or has expired", "request_id": "…"}))))]
/// `POST /console/v1/enrol`: an invited person sets their password with the one-time code and
/// gets their TOTP secret (shown once).
pub async fn enrol(
    State(s): State<Arc<AppState>>,
    v: Visitor,
    StrictJson(body): StrictJson<Enrol>,
) -> Result<Response, ApiError> {
    if body.username.len() > 64 || body.code.len() > 64 || body.password.len() > 600 {
        return Err(Error::Invalid("字段过长 / a field is too long".into()).into());
    }
    s.limits.take("console-login", crate::ratelimit::AUTH, &v.ctx.ip)?;
    let e =
        people::enrol(&s.db, &s.kek, &v.ctx, &s.organization, body.username.trim(), &body.code, &body.password).await?;
    enrolled(e)
}

#[utoipa::path(post, path = "/admin/v1/people/{username}/reset", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, example = "li.ops")),
    responses((status = 201, body = people::Invited), (status = 404, body = ErrorBody)))]
/// `POST /admin/v1/people/{username}/reset`: a lost phone, a forgotten password or a lock-out —
/// the person's password, TOTP and sessions end, and a new invitation lets them set both again.
/// By an administrator of the console, or — the way back when the only administrator is locked
/// out — an admin-scope app (the bootstrap token, or one made with `medsign app create` on the
/// host); audited either way.
pub async fn reset_person(
    State(s): State<Arc<AppState>>,
    c: Caller,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(people::reset(&s.db, &c.ctx, &username).await?)).into_response())
}

#[utoipa::path(post, path = "/admin/v1/people/{username}/disable", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, example = "li.ops")),
    responses((status = 200, body = Person), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, example = json!({"code": "conflict", "message": "不能停用最后一位管理员 / the last enabled administrator cannot be disabled", "request_id": "…"}))))]
/// `POST /admin/v1/people/{username}/disable`: no more logins; their sessions end.
pub async fn disable_person(
    State(s): State<Arc<AppState>>,
    c: Caller,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(people::set_disabled(&s.db, &c.ctx, &username, true).await?).into_response())
}

#[utoipa::path(post, path = "/admin/v1/people/{username}/enable", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path, example = "li.ops")),
    responses((status = 200, body = Person), (status = 404, body = ErrorBody)))]
/// `POST /admin/v1/people/{username}/enable`.
pub async fn enable_person(
    State(s): State<Arc<AppState>>,
    c: Caller,
    Path(username): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(people::set_disabled(&s.db, &c.ctx, &username, false).await?).into_response())
}

/// The public console routes (login, state).
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(state))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(enrol))
        .routes(routes!(qr_login))
        .routes(routes!(qr_login_poll))
}

/// Its `/admin/v1` routes.
pub(crate) fn admin_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list_people, create_person))
        .routes(routes!(disable_person))
        .routes(routes!(enable_person))
        .routes(routes!(reset_person))
        .routes(routes!(link_staff))
        .routes(routes!(settings))
}

/// What a console role may do on `/admin/v1` (administrators: everything). Operators: all but
/// apps, people, the trust list, CA channels and CA profiles (which they may read), and custody.
/// Auditors: read the logs, users, departments, time and webhook deliveries.
pub(crate) fn role_allows(role: people::Role, method: &axum::http::Method, path: &str) -> Result<(), Error> {
    use people::Role;
    let read = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    let under = |prefixes: &[&str]| {
        prefixes.iter().any(|p| {
            path == *p
                || path.starts_with(&format!("{p}/"))
                || path.starts_with(&format!("{p}."))
                || path.starts_with(&format!("{p}?"))
        })
    };
    let ok = match role {
        Role::Administrator => true,
        Role::Operator => {
            !under(&["/admin/v1/apps", "/admin/v1/people"])
                && !path.ends_with("/custody")
                && (read || !under(&["/admin/v1/trust", "/admin/v1/ca-channels", "/admin/v1/ca"]))
        }
        Role::Auditor => {
            read && under(&[
                "/admin/v1/audit",
                "/admin/v1/users",
                "/admin/v1/departments",
                "/admin/v1/time",
                "/admin/v1/timestamps",
                "/admin/v1/webhooks",
                "/admin/v1/sign-flows",
                "/admin/v1/stats",
                "/admin/v1/batches",
                "/admin/v1/devices",
            ])
        }
    };
    match ok {
        true => Ok(()),
        false => Err(Error::Forbidden(format!(
            "您的角色（{}）不能执行此操作 / your role ({}) cannot do this",
            role.as_str(),
            role.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;
    use people::Role;

    #[test]
    fn roles_reach_what_they_should() {
        let (get, post, del) = (Method::GET, Method::POST, Method::DELETE);
        for (role, method, path, ok) in [
            (Role::Administrator, &post, "/admin/v1/apps", true),
            (Role::Operator, &post, "/admin/v1/departments", true),
            (Role::Operator, &get, "/admin/v1/audit.csv", true),
            (Role::Operator, &get, "/admin/v1/apps", false),
            (Role::Operator, &post, "/admin/v1/people", false),
            (Role::Operator, &get, "/admin/v1/ca-channels", true),
            (Role::Operator, &post, "/admin/v1/ca-channels/ch_1/activate", false),
            (Role::Operator, &del, "/admin/v1/trust/ab", false),
            (Role::Operator, &post, "/admin/v1/users/1001/custody", false),
            (Role::Operator, &get, "/admin/v1/ca/profile", true),
            (Role::Auditor, &get, "/admin/v1/audit", true),
            (Role::Auditor, &get, "/admin/v1/audit.csv", true),
            (Role::Auditor, &get, "/admin/v1/audit/verify", true),
            (Role::Auditor, &get, "/admin/v1/auditx", false),
            (Role::Auditor, &post, "/admin/v1/departments", false),
            (Role::Auditor, &get, "/admin/v1/apps", false),
            (Role::Auditor, &get, "/admin/v1/templates", false),
            (Role::Auditor, &get, "/admin/v1/sign-flows?state=failed", true),
            (Role::Auditor, &get, "/admin/v1/stats", true),
            (Role::Auditor, &get, "/admin/v1/batches?limit=5", true),
            (Role::Operator, &get, "/admin/v1/ca/revocation", true),
            (Role::Auditor, &get, "/admin/v1/ca/revocation", false),
            (Role::Auditor, &get, "/admin/v1/time/history", true),
            (Role::Auditor, &post, "/admin/v1/webhooks/wh_1/retry", false),
            (Role::Operator, &post, "/admin/v1/webhooks/wh_1/retry", true),
            (Role::Operator, &post, "/admin/v1/apps/app_1/rotate", false),
        ] {
            assert_eq!(role_allows(role, method, path).is_ok(), ok, "{role:?} {method} {path}");
        }
    }
}
