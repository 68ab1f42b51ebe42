//! # medsign-phone
//!
//! medsign phone: devices, activation, PIN and fingerprint, two-party signing rounds, grants, scan-to-login, real-name.

#![forbid(unsafe_code)]

pub mod approvals;
pub mod certify;
pub mod channel;
pub mod cosign;
pub mod grants;
pub mod logins;
pub mod mobile;
pub mod realname;
pub mod soter;
