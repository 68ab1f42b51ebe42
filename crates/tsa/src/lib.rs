//! # medsign-tsa
//!
//! medsign time: the SNTP clock and the RFC 3161 timestamp authority.

// `deny`, not `forbid`: the reviewed `kernel` module reads adjtimex(2) (docs/security.md)
#![deny(unsafe_code)]

pub mod clock;
pub mod kernel;
pub mod tsa;
