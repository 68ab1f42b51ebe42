//! One error type for every route, mapped to a status and the JSON envelope.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medsign_store::{Error, error::Refusal};

/// The JSON error envelope (docs/architecture.md), for the API documentation.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// stable machine code. Generic: `invalid_request` (400), `invalid_rows` (422), `unauthorized`
    /// (401), `forbidden` (403), `not_found` (404), `conflict` (409), `too_many_requests` (429),
    /// `database_unavailable` / `unavailable` (503), `internal` (500). Specific, for front ends to
    /// act on: `session_invalid` (401: activate the phone again), `realname_required` (409: run the
    /// real-name check, then retry), `wx_code_required` (400: run it in the mini program),
    /// `wecom_required` / `wecom_mismatch` (403: bind inside WeCom with your own account).
    code: String,
    /// Chinese, then English
    message: String,
    /// also in the `X-Request-Id` header
    request_id: String,
    /// per-row errors (`invalid_rows` only)
    errors: Option<Vec<medsign_store::RowError>>,
}

/// A failed request: the domain error. Its envelope carries the id of the request being served,
/// read from the request-id middleware's task-local when the response is made, so a handler never
/// attaches one: a plain `?` on a [`medsign_store::Result`] is the whole error handling.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError(error)
    }
}

impl ApiError {
    /// An invalid request with a message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into()).into()
    }

    fn status(&self) -> StatusCode {
        match &self.0 {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::InvalidRows(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Db(_) | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Config(_) | Error::Crypto(_) | Error::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Coded { kind, .. } => match kind {
                Refusal::Invalid => StatusCode::BAD_REQUEST,
                Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
                Refusal::Forbidden => StatusCode::FORBIDDEN,
                Refusal::NotFound => StatusCode::NOT_FOUND,
                Refusal::Conflict => StatusCode::CONFLICT,
            },
        }
    }
}

tokio::task_local! {
    /// The id of the request being served, set by the request-id middleware around the whole
    /// handling of a request, so that every error envelope carries the id of the `X-Request-Id`
    /// header however it was made (a plain `?`, an extractor's rejection, a middleware).
    static REQUEST_ID: String;
}

/// Run `f` as the handling of request `id` (the request-id middleware).
pub(crate) async fn with_request_scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id of the request being served: the `X-Request-Id` of its answer. Outside a request (a
/// handler called bare, in a test) there is none, and the envelope says so with
/// [`NO_REQUEST_ID`] rather than inventing one.
pub(crate) fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| NO_REQUEST_ID.to_string())
}

/// The `request_id` of an envelope made outside a request scope.
pub(crate) const NO_REQUEST_ID: &str = "";

/// The envelope for errors that are not domain errors (body too large, wrong media type,
/// unknown route, not ready).
pub fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    let request_id = request_id();
    (status, Json(serde_json::json!({"code": code, "message": message, "request_id": request_id}))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = request_id();
        let message = match &self.0 {
            // never leak database internals
            Error::Db(e) => {
                tracing::error!(error = %e, request_id = %request_id, "database error");
                "数据库暂时不可用，请稍后重试 / the database is temporarily unavailable, please retry".to_string()
            }
            e if status == StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %chain(e), request_id = %request_id, "internal error");
                "服务器内部错误 / internal server error".to_string()
            }
            other => other.to_string(),
        };
        // a failure of ours is `internal` to the client, whatever the domain called it
        let code = if status == StatusCode::INTERNAL_SERVER_ERROR { "internal" } else { self.0.code() };
        let mut body = serde_json::json!({"code": code, "message": message, "request_id": request_id});
        if let Error::InvalidRows(rows) = &self.0 {
            body["errors"] = serde_json::to_value(rows).unwrap_or_default();
        }
        (status, Json(body)).into_response()
    }
}

/// An error with its sources, outermost first (`a: b: c`), for the log.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> serde_json::Value {
        let b = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn an_envelope_carries_the_id_of_the_request_scope_it_is_made_in() {
        let refused = || ApiError::from(Error::NotFound("no user 9 / 没有".into())).into_response();
        let too_large = || envelope(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "too large");
        let (a, b) = with_request_scope("his-42".into(), async { (refused(), too_large()) }).await;
        assert_eq!(a.status(), StatusCode::NOT_FOUND);
        assert_eq!(body(a).await["request_id"], "his-42");
        assert_eq!(body(b).await["request_id"], "his-42");
        // a bare handler, outside any request: no id, never one made up or left over from another
        let v = body(refused()).await;
        assert_eq!((v["code"].as_str(), v["request_id"].as_str()), (Some("not_found"), Some(NO_REQUEST_ID)));
        assert_eq!(body(too_large()).await["request_id"], NO_REQUEST_ID);
    }

    /// A failure of ours answers 500 `internal` and tells the client nothing of it; the log line
    /// gets the context and every cause, outermost first.
    #[tokio::test]
    async fn an_internal_error_is_internal_to_the_client_and_whole_in_the_log() {
        let cause = std::io::Error::other("disk says no");
        let e = Error::internal_from("stored share", cause);
        assert_eq!(chain(&e), "stored share: disk says no");
        let r = ApiError::from(e).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let v = body(r).await;
        assert_eq!(v["code"], "internal");
        assert!(!v["message"].as_str().unwrap().contains("share"), "{v}");
        assert_eq!(Error::internal("stored round is corrupt").code(), "internal");
    }
}
