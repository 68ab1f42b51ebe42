//! # medsign-pki — PKI formats (证书、吊销列表、签名消息、时间戳)
//!
//! X.509 v3 certificates (build, parse, path validation), CRL v2, CMS / PKCS#7 SignedData
//! (RFC 5652, with the GM/T 0010 / GB/T 35275 OIDs for SM2), and the RFC 3161 / RFC 5816
//! timestamp types. Every structure defined here quotes its ASN.1 and cites its RFC;
//! every parser turns malformed input into an error, never a panic.
//!
//! Keys are never held here: signing goes through [`medsign_crypto::Signer`].

#![forbid(unsafe_code)]

pub mod alg;
pub mod cert;
pub mod cms;
pub mod crl;
pub mod csr;
pub mod error;
pub mod name;
pub mod ocsp;
pub mod oid;
pub mod path;
pub mod time;
pub(crate) mod tlv;
pub mod tsp;

pub use error::{Error, Result};

/// Re-exports of the ASN.1 crates whose types appear in this crate's API.
pub use {cms as cms_types, der, spki, x509_cert};
