//! Domain errors. Each maps to one HTTP status in the server and one exit code in the CLI; the
//! message is Chinese first, then English.

/// Domain errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that breaks a rule (bad ID-card number, unknown department, …): HTTP 400/422.
    #[error("{0}")]
    Invalid(String),
    /// Several rows of a batch are invalid; nothing was written: HTTP 422 with the list.
    #[error("{} 行数据有误，未写入任何数据 / {} rows are invalid; nothing was written", .0.len(), .0.len())]
    InvalidRows(Vec<RowError>),
    /// Not found: HTTP 404.
    #[error("{0}")]
    NotFound(String),
    /// Already exists / conflicts with stored state: HTTP 409.
    #[error("{0}")]
    Conflict(String),
    /// Missing or wrong credentials: HTTP 401.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed: HTTP 403.
    #[error("{0}")]
    Forbidden(String),
    /// Storage failure: HTTP 503 (the database is unreachable) — never shown in detail.
    #[error("数据库错误 / database error: {0}")]
    Db(#[source] sqlx::Error),
    /// Configuration or start-up problem (CLI exit 2).
    #[error("{0}")]
    Config(String),
    /// A failure of ours, not of the request: stored data that does not read back, a certificate
    /// or signature that cannot be built, a step that cannot fail but did. HTTP 500 `internal`;
    /// the client sees only that, the log gets `context` and the whole source chain.
    #[error("{context}")]
    Internal {
        /// what was being done (`stored share`, `issuing CA`, `module::function`)
        context: String,
        /// the cause, kept for the log
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Crypto failure.
    #[error(transparent)]
    Crypto(#[from] medsign_crypto::Error),
    /// Too many attempts in a short time (PIN, scans): HTTP 429.
    #[error("{0}")]
    TooManyRequests(String),
    /// An upstream service (a CA channel, the time source) cannot serve now: HTTP 503.
    #[error("{0}")]
    Unavailable(String),
    /// A refusal a front end acts on, with its own machine code ([`CODES`]); the status is that
    /// of `kind`, the message is for people.
    #[error("{message}")]
    Coded {
        /// which refusal (and so which HTTP status)
        kind: Refusal,
        /// the machine code, one of [`CODES`]
        code: &'static str,
        /// Chinese, then English
        message: String,
    },
}

/// The kinds of refusal a [`Error::Coded`] can be (each one HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400
    Invalid,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 409
    Conflict,
}

/// The specific machine codes, with what a front end should do. Front ends switch on these, never
/// on message text; the generic codes of the other variants (`invalid_request`, `not_found`, …)
/// remain for everything else.
pub const CODES: &[(&str, &str)] = &[
    ("session_invalid", "401: the device session is unknown, expired or unbound — activate the phone again"),
    ("realname_required", "409: the hospital requires the real-name check before the certificate — run it, then retry"),
    ("wx_code_required", "400: WeChat face verification needs a wx.login code — run it in the mini program"),
    (
        "wecom_required",
        "403: this hospital binds phones only inside WeCom with the staff member's own account — bind there",
    ),
    (
        "wecom_mismatch",
        "403: the WeCom login given is not the staff member being bound — bind with your own WeCom account",
    ),
    (
        "idempotency_in_progress",
        "409: an earlier request with this Idempotency-Key is still running, or ran on an instance that stopped (taken over after 120 s) — retry the same request later",
    ),
    (
        "approval_required",
        "403: using the phone's key needs a fresh PIN or fingerprint approval bound to this request — ask the doctor for it, then retry",
    ),
    (
        "e2e_required",
        "403: through the DMZ gateway the phone API is spoken only inside the end-to-end channel (POST /mobile/v1/sealed) — update the app",
    ),
    ("e2e_invalid", "400: the sealed message is malformed or cannot be opened with the server's channel key"),
    (
        "e2e_key_changed",
        "409: the request was sealed to a channel key the server no longer has — read GET /mobile/v1/channel again: after a rotation its history leads from the pinned key to the new one; otherwise stop and ask the hospital's IT",
    ),
    (
        "channel_rotation_raced",
        "409: another rotation of the channel key ran at the same time — check the channel's generation, then rotate again if still needed",
    ),
    (
        "e2e_stale",
        "400 (inside the sealed answer): the phone's clock is more than 5 minutes off — seal the call again with the answer's time_ms as the server's clock",
    ),
    (
        "e2e_replay",
        "409: this sealed message was received before (something on the way sent it again) — the call may have been carried out; check before repeating it",
    ),
    (
        "rekey_needs_activation",
        "409: this phone already has (or had) a key; a new key needs a new activation code from the hospital",
    ),
    (
        "csr_required",
        "409: the active CA certifies only the key's own request: the phone renews through POST /mobile/v1/certificate/csr",
    ),
    (
        "certificate_pending",
        "409: the phone's key has no certificate yet: the active CA certifies it only from the request phone and server sign together (POST /mobile/v1/certificate/csr)",
    ),
];

impl Error {
    /// An [`Error::Internal`] without a further cause (e.g. `stored round is corrupt`).
    pub fn internal(context: impl Into<String>) -> Self {
        Error::Internal { context: context.into(), source: None }
    }

    /// An [`Error::Internal`] caused by `source`, which is kept (not flattened into text).
    pub fn internal_from(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Internal { context: context.into(), source: Some(source.into()) }
    }

    /// A refusal with a specific code from [`CODES`].
    pub fn coded(kind: Refusal, code: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(CODES.iter().any(|(c, _)| *c == code), "unlisted error code {code}");
        Error::Coded { kind, code, message: message.into() }
    }
}

impl From<sqlx::Error> for Error {
    /// A storage failure — except text PostgreSQL cannot hold (a NUL character, SQLSTATE 22021,
    /// or one the encoding lacks, 22P05), which is the caller's input: a 400 on every backend
    /// instead of a 503 on PostgreSQL only (SQLite stores it).
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(d) = &e
            && matches!(d.code().as_deref(), Some("22021" | "22P05"))
        {
            return Error::Invalid(
                "文本中含有数据库不能保存的字符（如 NUL）/ the text contains a character that cannot be stored (such as NUL)"
                    .into(),
            );
        }
        Error::Db(e)
    }
}

impl Error {
    /// Stable machine code for the JSON envelope.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid_request",
            Error::InvalidRows(_) => "invalid_rows",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::Db(_) => "database_unavailable",
            Error::Config(_) => "configuration",
            Error::Internal { .. } => "internal",
            Error::Crypto(_) => "crypto",
            Error::Unavailable(_) => "unavailable",
            Error::TooManyRequests(_) => "too_many_requests",
            Error::Coded { code, .. } => code,
        }
    }
}

/// One invalid row of a batch: its index (from 0), the field and the reason.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// position in the batch, from 0
    pub row: usize,
    /// field name
    pub field: String,
    /// reason (Chinese / English)
    pub message: String,
}

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl From<rusqlite::Error> for Error {
    /// A storage failure on the direct SQLite connection ([`crate::db::Direct`]): what the pool's
    /// failures are, a 503 whose detail goes only to the log.
    fn from(e: rusqlite::Error) -> Self {
        Error::Db(sqlx::Error::Io(std::io::Error::other(e)))
    }
}

impl From<medsign_config::config::Error> for Error {
    fn from(e: medsign_config::config::Error) -> Self {
        Error::Config(e.0)
    }
}
