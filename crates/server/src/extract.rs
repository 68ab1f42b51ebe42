//! Extractors: the request context (request id, client, app) and strict JSON bodies.

use crate::{ApiError, state::AppState};
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use medsign_directory::apps::App;
use medsign_directory::apps::Scope;
use medsign_store::{Error, audit::Context};
use serde::de::DeserializeOwned;
use std::{net::SocketAddr, sync::Arc};

/// The request id set by the middleware.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn request_id(parts: &Parts) -> String {
    parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default()
}

/// An app authenticated by a request signature (set by the signing middleware).
#[derive(Clone, Debug)]
pub struct SignedApp(pub App);

/// An authenticated app and the audit context of this request.
pub struct Caller {
    /// the app
    pub app: App,
    /// audit context (actor, ip, user agent, request id)
    pub ctx: Context,
    /// the `Idempotency-Key` header, when sent
    pub idempotency_key: Option<String>,
    /// a person logged in to the console (then `app` is `person:<username>` with the role's
    /// scopes), rather than an integration app
    pub role: Option<medsign_directory::people::Role>,
}

/// The console's session cookie.
pub const CONSOLE_COOKIE: &str = "medsign_console";

/// The console session cookie's value, if the request carries one.
pub(crate) fn console_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie_value(headers, CONSOLE_COOKIE)
}

/// The value of cookie `name`, if the request carries one.
pub(crate) fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// What a console role may do on `/api/v1` (its routes check scopes): administrators everything,
/// operators the day-to-day scopes, auditors reading. `/admin/v1` is gated by path in
/// `routes::require_admin`.
fn role_scopes(role: medsign_directory::people::Role) -> Vec<Scope> {
    use medsign_directory::people::Role;
    match role {
        Role::Administrator => vec![Scope::Admin],
        // not `sign`: starting flows signs with custody keys and seals; that is for systems
        Role::Operator => vec![Scope::UsersRead, Scope::UsersWrite, Scope::Certs, Scope::Verify, Scope::Timestamps],
        Role::Auditor => vec![Scope::UsersRead, Scope::Verify],
    }
}

/// A person of the console, from the session cookie: the app they act as, and their role. A
/// request that changes anything must also carry `X-Medsign-Console: 1`, which a page of another
/// site cannot send without a CORS preflight this server never answers (with the `SameSite=Strict`
/// cookie: no cross-site request forgery).
async fn console_person(
    parts: &Parts,
    state: &AppState,
    cookie: &str,
) -> Result<(App, medsign_directory::people::Role), ApiError> {
    let p = medsign_directory::people::session(&state.db, cookie).await?;
    let safe = matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD);
    if !safe && parts.headers.get("x-medsign-console").and_then(|v| v.to_str().ok()) != Some("1") {
        return Err(Error::Forbidden(
            "控制台请求须带 X-Medsign-Console: 1 / console requests need X-Medsign-Console: 1".into(),
        )
        .into());
    }
    Ok((App { app_id: format!("person:{}", p.username), name: p.display_name, scopes: role_scopes(p.role) }, p.role))
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let mut role = None;
        let cookie = match parts.headers.contains_key(header::AUTHORIZATION) {
            true => None,
            false => console_cookie(&parts.headers),
        };
        let app = match (parts.extensions.get::<SignedApp>(), cookie) {
            (Some(SignedApp(app)), _) => app.clone(),
            (None, Some(cookie)) => {
                let (app, r) = console_person(parts, state, &cookie).await?;
                role = Some(r);
                app
            }
            (None, None) => {
                let auth = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                let token = auth.strip_prefix("Bearer ").ok_or_else(|| {
                    Error::Unauthorized(
                        "缺少应用凭据：请使用 Authorization: Bearer <app_id>.<secret> 或 HMAC-SM3 请求签名 / missing credentials: send Authorization: Bearer <app_id>.<secret> or sign the request (HMAC-SM3)".into(),
                    )
                })?;
                let (ip, user_agent) = client(parts, &state.trusted_proxies);
                match state.auth.remembered(&state.db, token.trim()).await? {
                    Some(app) => app,
                    None => {
                        // an unremembered token costs an Argon2 check: bounded per address and
                        // per app id before the work, failures audited
                        let app_id = token.trim().split('.').next().unwrap_or("").chars().take(64).collect::<String>();
                        state.limits.take("auth", crate::ratelimit::AUTH, &ip)?;
                        state.limits.take("auth-app", crate::ratelimit::AUTH, &app_id)?;
                        match state.auth.check(&state.db, token.trim()).await {
                            Ok(app) => app,
                            Err(e) => {
                                let ctx = Context {
                                    actor: "anonymous".into(),
                                    ip,
                                    user_agent,
                                    request_id: request_id(parts),
                                };
                                let target = format!("app:{app_id}");
                                let e = medsign_store::audit::refused(
                                    &state.db,
                                    &ctx,
                                    medsign_store::audit::Kind::Login,
                                    "app.authenticate",
                                    &target,
                                    e,
                                )
                                .await;
                                return Err(e.into());
                            }
                        }
                    }
                }
            }
        };
        let (ip, user_agent) = client(parts, &state.trusted_proxies);
        let idempotency_key = parts.headers.get("idempotency-key").map(|v| v.to_str().unwrap_or("\u{1}").to_string());
        if let Some(k) = &idempotency_key {
            medsign_store::idempotency::validate_key(k)?;
        }
        let actor = match role {
            Some(_) => app.app_id.clone(),
            None => format!("app:{}", app.app_id),
        };
        let ctx = Context { actor, ip, user_agent, request_id: request_id(parts) };
        Ok(Caller { app, ctx, idempotency_key, role })
    }
}

/// The client's address and user agent (for audit contexts and per-address limits). The address
/// is the connection's peer, unless the peer is a configured trusted proxy: then the last address
/// in `X-Forwarded-For` that is not itself a trusted proxy (the one the proxy saw). The header is
/// ignored from anyone else, so a client cannot choose the address it is limited and audited by.
pub(crate) fn client(parts: &Parts, trusted: &[std::net::IpAddr]) -> (String, String) {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let ip =
        peer.map(|p| medsign_gateway::front::client_ip(p, &parts.headers, trusted).to_string()).unwrap_or_default();
    let user_agent =
        parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("").chars().take(256).collect();
    (ip, user_agent)
}

/// A caller without credentials yet (a phone activating): only the audit context.
pub struct Visitor {
    /// audit context (`actor` = `anonymous`)
    pub ctx: Context,
}

impl FromRequestParts<Arc<AppState>> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let (ip, user_agent) = client(parts, &state.trusted_proxies);
        Ok(Visitor { ctx: Context { actor: "anonymous".into(), ip, user_agent, request_id: request_id(parts) } })
    }
}

/// A bound phone (`Authorization: Bearer <device session token>`) on `/mobile/v1`.
pub struct Phone {
    /// the device session
    pub session: medsign_phone::mobile::Session,
    /// audit context (`actor` = `user:<employee_no>`)
    pub ctx: Context,
}

impl FromRequestParts<Arc<AppState>> for Phone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let auth = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let token = auth.strip_prefix("Bearer ").ok_or_else(|| {
            Error::coded(
                medsign_store::error::Refusal::Unauthorized,
                "session_invalid",
                "缺少设备会话：请先激活 / missing device session: activate the phone first",
            )
        })?;
        let session = medsign_phone::mobile::session(&state.db, token.trim()).await?;
        let (ip, user_agent) = client(parts, &state.trusted_proxies);
        let ctx =
            Context { actor: format!("user:{}", session.employee_no), ip, user_agent, request_id: request_id(parts) };
        Ok(Phone { session, ctx })
    }
}

/// A query string parsed strictly (each query type refuses unknown fields), a bad one answered 400
/// in the envelope with what is wrong — the one place the handlers' queries are read.
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for StrictQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| StrictQuery(q))
            .map_err(|e| Error::Invalid(format!("查询参数有误 / invalid query: {e}")).into())
    }
}

/// A JSON body parsed strictly (unknown fields refused), with errors in the envelope that say
/// where the JSON is wrong.
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for StrictJson<T> {
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, axum::response::Response> {
        use axum::response::IntoResponse;
        let fail = |msg: String| ApiError::from(Error::Invalid(msg));
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            let msg = "请求体须为 JSON（Content-Type: application/json）/ the body must be JSON (Content-Type: application/json)";
            return Err(crate::error::envelope(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                msg,
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                crate::error::envelope(e.status(), "payload_too_large", "请求体过大 / the request body is too large")
            } else {
                fail(format!("请求体无法读取 / the body is unreadable: {e}")).into_response()
            }
        })?;
        serde_json::from_slice(&bytes).map(StrictJson).map_err(|e| {
            fail(format!(
                "JSON 有误（第 {} 行第 {} 列）/ invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column(),
                e.line(),
                e.column()
            ))
            .into_response()
        })
    }
}

/// An optional JSON body: an empty one (`Content-Length: 0`, or neither length nor type) is `None`; anything else must be valid
/// JSON as for [`StrictJson`].
impl<T: DeserializeOwned> axum::extract::OptionalFromRequest<Arc<AppState>> for StrictJson<T> {
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Option<Self>, axum::response::Response> {
        let length = req.headers().get(header::CONTENT_LENGTH).map(|v| v.as_bytes() == b"0");
        let empty = length.unwrap_or(req.headers().get(header::CONTENT_TYPE).is_none());
        if empty {
            return Ok(None);
        }
        <Self as FromRequest<Arc<AppState>>>::from_request(req, state).await.map(Some)
    }
}

/// Run a creating call once per `Idempotency-Key`: a retry with the same key and request gets
/// the stored answer (with `Idempotent-Replayed: true`), a different request with the same key a
/// 409, and so does a retry while the first attempt still runs (on any instance); a failed
/// attempt frees the key. Without the header the call just runs.
pub(crate) async fn idempotent<F, Fut>(
    s: &AppState,
    caller: &Caller,
    route: &str,
    request_hash: &str,
    run: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = medsign_store::Result<(StatusCode, serde_json::Value)>>,
{
    use medsign_store::idempotency::{self, Lookup};
    let Some(key) = &caller.idempotency_key else {
        let (status, body) = run().await?;
        return Ok((status, Json(body)).into_response());
    };
    let scoped = hex::encode(medsign_crypto::hash::sm3_parts(&[route.as_bytes(), b"\n", request_hash.as_bytes()]));
    let app = &caller.app.app_id;
    let attempt = match idempotency::reserve(&s.db, app, key, &scoped).await? {
        Lookup::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            return Ok((status, [("idempotent-replayed", "true")], Json(body)).into_response());
        }
        Lookup::New { attempt } => attempt,
    };
    let (status, body) = match run().await {
        Ok(answer) => answer,
        Err(e) => {
            // no answer to keep: a retry with this key runs again
            if let Err(e2) = idempotency::release(&s.db, app, key, &attempt).await {
                tracing::warn!(error = %e2, "an Idempotency-Key reservation could not be released");
            }
            return Err(e.into());
        }
    };
    idempotency::store(&s.db, app, key, &attempt, status.as_u16(), &body.to_string()).await?;
    Ok((status, Json(body)).into_response())
}

pub(crate) fn owner(caller: &Caller) -> Option<&str> {
    // an admin app (or administrator) sees every flow and task; other apps only their own
    if caller.app.allows(Scope::Admin) { None } else { Some(caller.app.app_id.as_str()) }
}

/// Scopes as types, for [`Scoped`]: `Scoped<scope::Sign>` is an app that may start signings.
pub mod scope {
    use medsign_directory::apps::{App, Scope};

    /// A scope requirement known when the handler is written.
    pub trait Required {
        /// Whether `app` may make this call (403 otherwise).
        fn check(app: &App) -> medsign_store::Result<()>;
    }

    macro_rules! one_scope {
        ($($name:ident),+) => {$(
            #[doc = concat!("The `", stringify!($name), "` scope.")]
            pub struct $name;
            impl Required for $name {
                fn check(app: &App) -> medsign_store::Result<()> {
                    app.require(Scope::$name)
                }
            }
        )+};
    }
    one_scope!(UsersRead, UsersWrite, Certs, Sign, Timestamps, CaEnroll);

    /// Verifying is allowed to apps that verify or that sign.
    pub struct VerifyOrSign;
    impl Required for VerifyOrSign {
        fn check(app: &App) -> medsign_store::Result<()> {
            app.require(Scope::Verify).or_else(|_| app.require(Scope::Sign))
        }
    }

    /// Changing a certificate's status: apps that manage certificates, or registration
    /// authorities (for their own; `medsign_ca::certs::authorize_change` decides per certificate).
    pub struct CertsOrCaEnroll;
    impl Required for CertsOrCaEnroll {
        fn check(app: &App) -> medsign_store::Result<()> {
            app.require(Scope::Certs).or_else(|_| app.require(Scope::CaEnroll))
        }
    }

    /// Checking a timestamp is allowed to apps that timestamp or that verify.
    pub struct TimestampsOrVerify;
    impl Required for TimestampsOrVerify {
        fn check(app: &App) -> medsign_store::Result<()> {
            app.require(Scope::Timestamps).or_else(|_| app.require(Scope::Verify))
        }
    }
}

/// An authenticated app that holds scope `S`, checked as the request's parts are read — before any
/// body or query is parsed, so a caller without the scope gets 403 and learns nothing about the
/// body's schema. Dereferences to the [`Caller`].
pub struct Scoped<S>(Caller, std::marker::PhantomData<S>);

impl<S> std::ops::Deref for Scoped<S> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<S: scope::Required> FromRequestParts<Arc<AppState>> for Scoped<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        S::check(&caller.app)?;
        Ok(Scoped(caller, std::marker::PhantomData))
    }
}
