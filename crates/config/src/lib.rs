//! # medsign-config
//!
//! medsign configuration: medsign.toml and MEDSIGN_* variables, validated once at start.

#![forbid(unsafe_code)]

pub mod config;
