//! # medsign-crypto — 密码核心 (crypto core)
//!
//! The algorithms every medsign signature, certificate and timestamp stands on (R1.5, R5.2, R6.5):
//!
//! * [`sm2`] — SM2 digital signatures (GB/T 32918, GM/T 0003) with SM3 and the distinguishing ID
//!   (default `1234567812345678`, GM/T 0009), signing a message or a precomputed `e = SM3(Z_A‖M)`.
//! * [`keys`] — one [`keys::PrivateKey`] / [`keys::PublicKey`] over SM2, ECDSA P-256 and RSA
//!   2048/3072/4096 (PKCS#1 v1.5 and PSS), with PKCS#8 / SPKI / SEC1 import and export.
//!   RSA and P-256 run on `aws-lc-rs` (assembly, as fast as OpenSSL); SM2 on the RustCrypto
//!   curve arithmetic.
//! * [`signer`] — the [`signer::Signer`] seam: PDF, CMS, CA and TSA code ask a signer for a
//!   signature and never hold a key, so server-custody keys, two-party keys and remote signers plug
//!   in the same way.
//! * [`twoparty`] — SM2 two-party (协同签名) key generation and signing: the phone
//!   holds `d1`, the server `d2`, and the full key `d` never exists (R3.8, R5.4).
//! * [`wrap`] — keys at rest: SM4-GCM key wrapping and PIN-derived wrapping keys (Argon2id).
//! * [`seal`] and [`e2e`] — SM2 key agreement + SM4-GCM: a secret sealed to a key, and the phone ↔
//!   server end-to-end channel through the DMZ gateway.
//!
//! No I/O happens here. Every secret is zeroized when dropped.
//!
//! Feature `native` (default): [`keys`], [`signer`] and SHA-1 need `aws-lc-rs`, which does not
//! build for WebAssembly; the phone's half (`medsign-wasm`) uses the crate without it — SM2/SM3/SM4,
//! two-party signing and wrapping are pure Rust.

#![forbid(unsafe_code)]

pub mod api;
pub mod e2e;
pub mod error;
pub mod hash;
#[cfg(feature = "native")]
pub mod keys;
pub mod rng;
pub mod seal;
#[cfg(feature = "native")]
pub mod signer;
pub mod sm2;
pub mod twoparty;
pub mod wrap;

pub use error::{Error, Result};
pub use hash::HashAlg;
#[cfg(feature = "native")]
pub use keys::{KeyAlg, PrivateKey, PublicKey};
#[cfg(feature = "native")]
pub use signer::{SignatureScheme, Signer};
