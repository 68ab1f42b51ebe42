//! # medsign-core — 业务核心 (the domain)
//!
//! Storage (SQLite by default, PostgreSQL for clusters) behind one portable schema, integration
//! apps and their secrets, the hash-chained audit log (R1.7), key custody for server-held keys,
//! staff users (R1.4, R7.4.1, R7.4.2) and configuration. No HTTP here (DESIGN.md).

#![forbid(unsafe_code)]

pub mod apps;
pub mod audit;
pub mod ca;
pub mod certs;
pub mod config;
pub mod custody;
pub mod db;
pub mod departments;
pub mod error;
pub mod idempotency;
pub mod import;
pub mod users;

pub use error::{Error, Result, RowError};

/// Now, as RFC 3339 UTC with milliseconds (the form every instant is stored in).
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
