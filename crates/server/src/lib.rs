//! # medsign-server — HTTP
//!
//! axum routes for `/api/v1` (integration, R7), health, and the JSON error envelope
//! `{code, message, request_id}` (docs/architecture.md, "Errors and the envelope"). Handlers extract, call one domain
//! function, and return; every error maps to HTTP in one place ([`ApiError`]).

#![forbid(unsafe_code)]

pub mod assets;
mod audit;
mod console;
mod directory;
mod documents;
mod e2e;
mod error;
mod events;
mod evidence;
mod extract;
mod flows;
pub mod http;
mod logins;
mod metrics;
mod mobile;
mod pki;
mod ratelimit;
mod routes;
pub mod services;
mod state;
mod tsa;

pub use e2e::ChannelKey;
pub use error::ApiError;
pub use metrics::Metrics;
pub use routes::{ApiDoc, router, tunnel_router};
pub use state::AppState;
