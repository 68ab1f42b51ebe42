//! # medsign-ca
//!
//! medsign certificate authority: hierarchies, certificates and their lifecycle, CRL, OCSP, CA channels.

#![forbid(unsafe_code)]

pub mod ca;
pub mod certs;
pub mod channels;
pub mod egress;
#[cfg(any(test, feature = "fake"))]
pub mod est_fake;
pub mod ocsp;
pub mod trust;
