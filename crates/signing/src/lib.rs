//! # medsign-signing
//!
//! medsign signing: flows (CMS, PAdES), tickets, batches, templates, webhooks, verification.

#![forbid(unsafe_code)]

pub mod batches;
pub mod evidence;
pub mod flows;
pub mod model;
pub mod scan;
pub mod seams;
pub mod templates;
pub mod tickets;
