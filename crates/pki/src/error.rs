//! Errors of the PKI layer.

/// Errors of the PKI layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed DER/PEM or a structure that breaks its specification.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// what was being parsed
        what: &'static str,
        /// why it failed
        detail: String,
    },
    /// Input is well-formed but not acceptable (wrong key type, missing field, …).
    #[error("{0}")]
    Invalid(String),
    /// From the crypto core.
    #[error(transparent)]
    Crypto(#[from] medsign_crypto::Error),
}

impl Error {
    /// A [`Error::Malformed`] from any displayable cause.
    pub fn malformed(what: &'static str, detail: impl core::fmt::Display) -> Self {
        Error::Malformed { what, detail: detail.to_string() }
    }
}

/// Result with the PKI [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
