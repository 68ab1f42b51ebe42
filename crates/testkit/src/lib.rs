//! # medsign-testkit
//!
//! What the tests of several medsign crates share (a dev-dependency only, never published):
//! every storage test on both databases ([`db`]), a clock synchronised to a fake SNTP server
//! ([`clock`]), and a hospital to test in — its CAs, its TSA, staff and integration apps
//! ([`hospital`]).
//!
//! A crate this one depends on (store, directory, ca, tsa) may use it only for what does not
//! involve its own types: its unit tests are a second copy of the crate, so the `Db` of
//! [`db::backends`] fits any crate above `medsign-store`, but a `BuiltinCas` from
//! [`hospital::World`] fits only the crates above `medsign-tsa`. `medsign-store` itself keeps
//! private helpers for its own tests.

#![forbid(unsafe_code)]

pub mod clock;
pub mod db;
pub mod hospital;
