//! One error type for the crypto core; every variant has a meaning a caller can act on.

/// Errors of the crypto core. Messages are English (the CLI and the server add Chinese).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// Key material could not be parsed or is not acceptable.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// The signature bytes are not a well-formed encoding for this scheme.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The requested combination of key and algorithm is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A message of the two-party protocol was rejected (bad proof, invalid point, replay, ...).
    #[error("two-party protocol: {0}")]
    Protocol(String),
    /// Unwrapping failed: wrong key or PIN, or the wrapped blob was altered.
    #[error("unwrap failed: wrong key or tampered data")]
    Unwrap,
    /// Malformed input that is not a key or signature (wrong length, bad encoding).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The operating system's random number generator failed.
    #[error("random number generator failed")]
    Rng,
}

/// Result with the crypto core's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
