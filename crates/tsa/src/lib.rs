//! # medsign-tsa
//!
//! medsign time: the SNTP clock and the RFC 3161 timestamp authority.

#![forbid(unsafe_code)]

pub mod clock;
pub mod tsa;
