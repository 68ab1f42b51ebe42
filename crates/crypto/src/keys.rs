//! Keys: one [`PrivateKey`] / [`PublicKey`] over SM2, ECDSA P-256 and RSA, with PKCS#8, SPKI
//! and SEC1 encodings (PEM or DER), and passphrase-encrypted PKCS#8 (PBES2).
//!
//! RSA and P-256 operations run on `aws-lc-rs` (pure-Rust RSA signed at ~0.1× OpenSSL when measured);
//! SM2 runs on [`crate::sm2`]. Private key bytes live in [`Zeroizing`] buffers.

use crate::{
    Error, Result,
    signer::SignatureScheme,
    sm2::{DEFAULT_ID, Sm2PublicKey, Sm2SecretKey, Sm2Signature},
};
use aws_lc_rs::{
    encoding::AsDer,
    rsa::KeySize,
    signature::{self as lc, KeyPair as _},
};
use der::{
    Decode, Encode,
    asn1::{BitString, ObjectIdentifier as Oid, OctetString},
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

/// Object identifiers of key algorithms and curves.
pub mod oid {
    use der::asn1::ObjectIdentifier as Oid;
    /// rsaEncryption (RFC 8017)
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// id-ecPublicKey (RFC 5480)
    pub const EC_PUBLIC_KEY: Oid = crate::sm2::EC_PUBLIC_KEY;
    /// secp256r1 / prime256v1 (RFC 5480)
    pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
    /// SM2 curve / sm2 (GM/T 0006: 1.2.156.10197.1.301)
    pub const SM2: Oid = crate::sm2::CURVE;
}

/// A key algorithm and size, as the CLI and the APIs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyAlg {
    /// SM2 on the recommended 256-bit curve.
    Sm2,
    /// ECDSA on NIST P-256.
    P256,
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
}

impl KeyAlg {
    /// CLI name.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::Sm2 => "sm2",
            KeyAlg::P256 => "p256",
            KeyAlg::Rsa2048 => "rsa2048",
            KeyAlg::Rsa3072 => "rsa3072",
            KeyAlg::Rsa4096 => "rsa4096",
        }
    }

    /// Parse a CLI name.
    pub fn from_name(s: &str) -> Option<Self> {
        [KeyAlg::Sm2, KeyAlg::P256, KeyAlg::Rsa2048, KeyAlg::Rsa3072, KeyAlg::Rsa4096]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }
}

/// A private key. Cloning is cheap for RSA/P-256 (reference-counted in aws-lc) and copies the
/// scalar for SM2; every copy is zeroized on drop.
pub enum PrivateKey {
    /// SM2
    Sm2(Sm2SecretKey),
    /// ECDSA P-256
    P256 {
        /// aws-lc key pair
        key: lc::EcdsaKeyPair,
        /// PKCS#8 encoding (kept for export)
        pkcs8: Zeroizing<Vec<u8>>,
    },
    /// RSA
    Rsa {
        /// aws-lc key pair
        key: lc::RsaKeyPair,
        /// PKCS#8 encoding (kept for export)
        pkcs8: Zeroizing<Vec<u8>>,
    },
}

impl core::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PrivateKey({})", self.describe())
    }
}

fn lc_err<E: core::fmt::Debug>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::InvalidKey(format!("{what}: {e:?}"))
}

impl PrivateKey {
    /// Generate a fresh key.
    pub fn generate(alg: KeyAlg) -> Result<Self> {
        match alg {
            KeyAlg::Sm2 => Ok(PrivateKey::Sm2(Sm2SecretKey::generate()?)),
            KeyAlg::P256 => {
                let doc = lc::EcdsaKeyPair::generate_pkcs8(
                    &lc::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &aws_lc_rs::rand::SystemRandom::new(),
                )
                .map_err(|_| Error::Rng)?;
                Self::from_pkcs8_der(doc.as_ref())
            }
            KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => {
                let size = match alg {
                    KeyAlg::Rsa2048 => KeySize::Rsa2048,
                    KeyAlg::Rsa3072 => KeySize::Rsa3072,
                    _ => KeySize::Rsa4096,
                };
                let kp = lc::RsaKeyPair::generate(size).map_err(|_| Error::Rng)?;
                let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).map_err(lc_err("RSA PKCS#8 export"))?;
                Self::from_pkcs8_der(der.as_ref())
            }
        }
    }

    /// The algorithm family and size, e.g. `sm2`, `rsa2048`.
    pub fn alg(&self) -> KeyAlg {
        self.public_key().alg()
    }

    fn describe(&self) -> &'static str {
        match self {
            PrivateKey::Sm2(_) => "SM2",
            PrivateKey::P256 { .. } => "ECDSA P-256",
            PrivateKey::Rsa { .. } => "RSA",
        }
    }

    /// Parse PKCS#8 `PrivateKeyInfo` DER (unencrypted). SM2 keys may be labelled
    /// `id-ecPublicKey` + curve `sm2` (OpenSSL) or with the `sm2` OID as algorithm.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let pki = pkcs8::PrivateKeyInfoRef::from_der(der)
            .map_err(|e| Error::InvalidKey(format!("not a PKCS#8 private key: {e}")))?;
        let alg = pki.algorithm.oid;
        let param = pki.algorithm.parameters.and_then(|p| p.decode_as::<Oid>().ok());
        let inner = pki.private_key.as_bytes();
        match (alg, param) {
            (oid::RSA_ENCRYPTION, _) => {
                let key = lc::RsaKeyPair::from_pkcs8(der).map_err(lc_err("RSA key rejected"))?;
                Ok(PrivateKey::Rsa { key, pkcs8: Zeroizing::new(der.to_vec()) })
            }
            (oid::EC_PUBLIC_KEY, Some(oid::SECP256R1)) => {
                let key = lc::EcdsaKeyPair::from_pkcs8(&lc::ECDSA_P256_SHA256_ASN1_SIGNING, der)
                    .map_err(lc_err("P-256 key rejected"))?;
                Ok(PrivateKey::P256 { key, pkcs8: Zeroizing::new(der.to_vec()) })
            }
            (oid::EC_PUBLIC_KEY, Some(oid::SM2)) | (oid::SM2, _) => Self::sm2_from_sec1(inner),
            (oid::EC_PUBLIC_KEY, other) => Err(Error::Unsupported(format!(
                "EC curve {} (supported: SM2, P-256)",
                other.map(|o| o.to_string()).unwrap_or_else(|| "missing".into())
            ))),
            (other, _) => Err(Error::Unsupported(format!("key algorithm {other}"))),
        }
    }

    fn sm2_from_sec1(sec1_der: &[u8]) -> Result<Self> {
        let ec =
            sec1::EcPrivateKey::from_der(sec1_der).map_err(|e| Error::InvalidKey(format!("SEC1 ECPrivateKey: {e}")))?;
        if let Some(sec1::EcParameters::NamedCurve(c)) = ec.parameters
            && c != oid::SM2
        {
            return Err(Error::InvalidKey(format!("SEC1 key is on curve {c}, not SM2")));
        }
        let mut d = [0u8; 32];
        let n = ec.private_key.len();
        if n > 32 {
            return Err(Error::InvalidKey("SM2 private key longer than 32 bytes".into()));
        }
        d[32 - n..].copy_from_slice(ec.private_key);
        let key = Sm2SecretKey::from_bytes(&d);
        zeroize::Zeroize::zeroize(&mut d);
        let key = key?;
        if let Some(pubk) = ec.public_key
            && Sm2PublicKey::from_sec1(pubk)? != *key.public_key()
        {
            return Err(Error::InvalidKey("SEC1 public key does not match the private key".into()));
        }
        Ok(PrivateKey::Sm2(key))
    }

    /// PKCS#8 `PrivateKeyInfo` DER. SM2 is written as OpenSSL writes it: `id-ecPublicKey` with
    /// the `sm2` curve, and a SEC1 `ECPrivateKey` carrying the public key.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        match self {
            PrivateKey::Sm2(k) => {
                let d = k.to_bytes();
                let public = k.public_key().to_sec1_uncompressed();
                let ec = sec1::EcPrivateKey { private_key: d.as_ref(), parameters: None, public_key: Some(&public) };
                let inner = Zeroizing::new(ec.to_der().map_err(|e| Error::InvalidKey(e.to_string()))?);
                let octets = OctetString::new(inner.as_slice()).map_err(|e| Error::InvalidKey(e.to_string()))?;
                let pki = pkcs8::PrivateKeyInfoOwned::new(ec_alg_id(oid::SM2), octets);
                Ok(Zeroizing::new(pki.to_der().map_err(|e| Error::InvalidKey(e.to_string()))?))
            }
            PrivateKey::P256 { pkcs8, .. } | PrivateKey::Rsa { pkcs8, .. } => Ok(pkcs8.clone()),
        }
    }

    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>> {
        let der = self.to_pkcs8_der()?;
        Ok(Zeroizing::new(pem_encode("PRIVATE KEY", &der)))
    }

    /// Encrypted PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`): PBES2 with
    /// PBKDF2-HMAC-SHA256 (600,000 iterations) and AES-256-CBC — the scheme OpenSSL, Java and
    /// Windows all read.
    pub fn to_encrypted_pkcs8_pem(&self, passphrase: &[u8]) -> Result<Zeroizing<String>> {
        let der = self.to_pkcs8_der()?;
        let pki = pkcs8::PrivateKeyInfoRef::from_der(&der).map_err(|e| Error::InvalidKey(e.to_string()))?;
        let salt = crate::rng::bytes::<16>()?;
        let iv = crate::rng::bytes::<16>()?;
        let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(600_000, &salt, iv)
            .map_err(|e| Error::InvalidKey(e.to_string()))?;
        let doc = pki
            .encrypt_with_params(params, passphrase)
            .map_err(|e| Error::InvalidKey(format!("encryption failed: {e}")))?;
        Ok(Zeroizing::new(pem_encode("ENCRYPTED PRIVATE KEY", doc.as_bytes())))
    }

    /// Parse a PEM private key: `PRIVATE KEY` (PKCS#8), `ENCRYPTED PRIVATE KEY` (needs
    /// `passphrase`), `EC PRIVATE KEY` (SEC1: SM2 or P-256) or `RSA PRIVATE KEY` (PKCS#1).
    pub fn from_pem(pem: &str, passphrase: Option<&[u8]>) -> Result<Self> {
        let (label, der) = pem_decode(pem)?;
        let der = Zeroizing::new(der);
        match label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            "ENCRYPTED PRIVATE KEY" => {
                let pass = passphrase
                    .ok_or_else(|| Error::InvalidKey("the key is encrypted: a passphrase is required".into()))?;
                let enc = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der)
                    .map_err(|e| Error::InvalidKey(format!("encrypted PKCS#8: {e}")))?;
                let plain = enc
                    .decrypt(pass)
                    .map_err(|_| Error::InvalidKey("wrong passphrase or corrupt encrypted key".into()))?;
                Self::from_pkcs8_der(plain.as_bytes())
            }
            "EC PRIVATE KEY" => {
                let ec = sec1::EcPrivateKey::from_der(&der)
                    .map_err(|e| Error::InvalidKey(format!("SEC1 ECPrivateKey: {e}")))?;
                match ec.parameters {
                    Some(sec1::EcParameters::NamedCurve(oid::SECP256R1)) => {
                        let key = lc::EcdsaKeyPair::from_private_key_der(&lc::ECDSA_P256_SHA256_ASN1_SIGNING, &der)
                            .map_err(lc_err("P-256 key rejected"))?;
                        let pkcs8 = key.to_pkcs8v1().map_err(lc_err("P-256 PKCS#8 export"))?;
                        Self::from_pkcs8_der(pkcs8.as_ref())
                    }
                    Some(sec1::EcParameters::NamedCurve(oid::SM2)) | None => Self::sm2_from_sec1(&der),
                    Some(sec1::EcParameters::NamedCurve(c)) => {
                        Err(Error::Unsupported(format!("EC curve {c} (supported: SM2, P-256)")))
                    }
                }
            }
            "RSA PRIVATE KEY" => {
                let key = lc::RsaKeyPair::from_der(&der).map_err(lc_err("RSA key rejected"))?;
                let pkcs8 =
                    AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key).map_err(lc_err("RSA PKCS#8 export"))?;
                Self::from_pkcs8_der(pkcs8.as_ref())
            }
            other => Err(Error::InvalidKey(format!("PEM block '{other}' is not a private key"))),
        }
    }

    /// Read a private key from PEM or DER (PKCS#8) bytes.
    pub fn from_bytes(bytes: &[u8], passphrase: Option<&[u8]>) -> Result<Self> {
        if let Ok(text) = core::str::from_utf8(bytes)
            && text.contains("-----BEGIN")
        {
            return Self::from_pem(text, passphrase);
        }
        Self::from_pkcs8_der(bytes)
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Sm2(k) => PublicKey::Sm2(*k.public_key()),
            PrivateKey::P256 { key, .. } => {
                let spki = key.public_key().as_der().expect("P-256 SPKI export");
                PublicKey::from_spki_der(spki.as_ref()).expect("own P-256 key")
            }
            PrivateKey::Rsa { key, .. } => {
                let spki = key.public_key().as_der().expect("RSA SPKI export");
                PublicKey::from_spki_der(spki.as_ref()).expect("own RSA key")
            }
        }
    }

    /// The schemes this key can sign with; the first is the default.
    pub fn schemes(&self) -> &'static [SignatureScheme] {
        self.public_key().schemes()
    }

    /// Sign `msg` with `scheme`. SM2 uses `sm2_id` (None = the default ID) and returns DER;
    /// ECDSA returns DER; RSA returns the modulus-sized signature.
    pub fn sign(&self, scheme: SignatureScheme, msg: &[u8], sm2_id: Option<&[u8]>) -> Result<Vec<u8>> {
        match (self, scheme) {
            (PrivateKey::Sm2(k), SignatureScheme::Sm2Sm3) => Ok(k.sign(sm2_id.unwrap_or(DEFAULT_ID), msg)?.to_der()),
            _ => self.sign_digest(scheme, &scheme.hash().digest(msg)),
        }
    }

    /// Sign a precomputed digest: for SM2 the 32-byte `e = SM3(Z_A ‖ M)`, for ECDSA/RSA the
    /// SHA-256 of the message.
    pub fn sign_digest(&self, scheme: SignatureScheme, digest: &[u8]) -> Result<Vec<u8>> {
        if digest.len() != 32 {
            return Err(Error::InvalidInput(format!("digest must be 32 bytes, got {}", digest.len())));
        }
        match (self, scheme) {
            (PrivateKey::Sm2(k), SignatureScheme::Sm2Sm3) => {
                Ok(k.sign_prehash(digest.try_into().expect("32 bytes"))?.to_der())
            }
            (PrivateKey::P256 { key, .. }, SignatureScheme::EcdsaP256Sha256) => {
                let d = import_sha256(digest)?;
                Ok(key
                    .sign_digest(&d)
                    .map_err(|_| Error::Unsupported("ECDSA signing failed".into()))?
                    .as_ref()
                    .to_vec())
            }
            (PrivateKey::Rsa { key, .. }, SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPssSha256) => {
                let d = import_sha256(digest)?;
                let enc: &'static dyn lc::RsaEncoding =
                    if scheme == SignatureScheme::RsaPssSha256 { &lc::RSA_PSS_SHA256 } else { &lc::RSA_PKCS1_SHA256 };
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign_digest(enc, &d, &mut sig).map_err(|_| Error::Unsupported("RSA signing failed".into()))?;
                Ok(sig)
            }
            _ => Err(Error::Unsupported(format!("a {} key cannot sign with {}", self.describe(), scheme.name()))),
        }
    }
}

fn import_sha256(digest: &[u8]) -> Result<aws_lc_rs::digest::Digest> {
    aws_lc_rs::digest::Digest::import_less_safe(digest, &aws_lc_rs::digest::SHA256)
        .map_err(|_| Error::InvalidInput("SHA-256 digest must be 32 bytes".into()))
}

fn ec_alg_id(curve: Oid) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: oid::EC_PUBLIC_KEY, parameters: Some(der::Any::from(&curve)) }
}

/// A public key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PublicKey {
    /// SM2
    Sm2(Sm2PublicKey),
    /// ECDSA P-256: the SubjectPublicKeyInfo DER
    P256 {
        /// SPKI DER
        spki: Vec<u8>,
        /// the key parsed for verification, on first use
        parsed: ParsedKey,
    },
    /// RSA: the SubjectPublicKeyInfo DER and the modulus size
    Rsa {
        /// SPKI DER
        spki: Vec<u8>,
        /// modulus length in bits
        bits: usize,
        /// the key parsed for verification, on first use
        parsed: ParsedKey,
    },
}

/// A P-256 or RSA key as aws-lc parsed it for verification (one per scheme: PKCS#1 v1.5, PSS),
/// made on first use and shared by the key's clones. Parsing the key again for every
/// verification cost about 8 % of an RSA-2048 verification (docs/BENCHMARKS.md, issue #20).
/// Not part of the key's identity: equality and `Debug` ignore it. Each parsed key remembers the
/// SPKI it came from and serves no other: a `PublicKey` built with another key's `ParsedKey`
/// still verifies with its own SPKI.
#[derive(Clone, Default)]
pub struct ParsedKey(std::sync::Arc<[std::sync::OnceLock<Parsed>; 2]>);

/// The SPKI a key was parsed from, and the parsed key.
type Parsed = (Box<[u8]>, lc::ParsedPublicKey);

impl ParsedKey {
    /// Run `f` with `spki` parsed for `scheme`: the key parsed before if it came from the same
    /// SPKI, else parsed now (and kept, if it is the first).
    fn with<T>(&self, scheme: SignatureScheme, spki: &[u8], f: impl FnOnce(&lc::ParsedPublicKey) -> T) -> Result<T> {
        let (slot, alg): (usize, &'static dyn lc::VerificationAlgorithm) = match scheme {
            SignatureScheme::EcdsaP256Sha256 => (0, &lc::ECDSA_P256_SHA256_ASN1),
            SignatureScheme::RsaPkcs1Sha256 => (0, &lc::RSA_PKCS1_2048_8192_SHA256),
            SignatureScheme::RsaPssSha256 => (1, &lc::RSA_PSS_2048_8192_SHA256),
            other => return Err(Error::Unsupported(format!("{} is not verified by aws-lc", other.name()))),
        };
        if let Some((from, key)) = self.0[slot].get()
            && **from == *spki
        {
            return Ok(f(key));
        }
        let parsed = SubjectPublicKeyInfoRef::from_der(spki).map_err(|_| Error::InvalidKey("SPKI".into()))?;
        let bits = parsed.subject_public_key.as_bytes().ok_or_else(|| Error::InvalidKey("SPKI".into()))?;
        let mut fresh =
            Some(lc::ParsedPublicKey::new(alg, bits).map_err(|_| Error::InvalidKey("public key rejected".into()))?);
        // kept if the slot is empty; two threads may parse at once, the first to finish is kept
        let (from, kept) = self.0[slot].get_or_init(|| (spki.into(), fresh.take().expect("taken once")));
        Ok(match fresh {
            None => f(kept),                       // ours was kept
            Some(_) if **from == *spki => f(kept), // another thread's, of the same SPKI
            Some(key) => f(&key),                  // the slot holds another SPKI's key
        })
    }

    /// A cache whose P-256 slot holds `key`, already parsed from `spki` (when the key was checked).
    fn p256(spki: &[u8], key: lc::ParsedPublicKey) -> Self {
        let cache = ParsedKey::default();
        let _ = cache.0[0].set((spki.into(), key));
        cache
    }
}

// aws-lc's parsed key names its algorithm through a `&'static dyn` trait object, which is not
// `RefUnwindSafe`; a panic cannot leave this cache half-written (a `OnceLock` holds a complete
// value or none), so a `PublicKey` stays usable across `catch_unwind`, as before the cache.
impl std::panic::UnwindSafe for ParsedKey {}
impl std::panic::RefUnwindSafe for ParsedKey {}

impl PartialEq for ParsedKey {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ParsedKey {}

impl core::fmt::Debug for ParsedKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ParsedKey")
    }
}

/// ```text
/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
/// ```
/// [RFC 8017 § A.1.1]
#[derive(der::Sequence)]
struct RsaPublicKeyDer<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

impl PublicKey {
    /// Parse a SubjectPublicKeyInfo (X.509) DER.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| Error::InvalidKey(format!("not a SubjectPublicKeyInfo: {e}")))?;
        Self::from_spki(&spki)
    }

    /// From a parsed SubjectPublicKeyInfo.
    pub fn from_spki(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<Self> {
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::InvalidKey("public key BIT STRING has unused bits".into()))?;
        let param = spki.algorithm.parameters.and_then(|p| p.decode_as::<Oid>().ok());
        match (spki.algorithm.oid, param) {
            (oid::EC_PUBLIC_KEY, Some(oid::SM2)) | (oid::SM2, _) => Ok(PublicKey::Sm2(Sm2PublicKey::from_sec1(bits)?)),
            (oid::EC_PUBLIC_KEY, Some(oid::SECP256R1)) => {
                // validate the point now, so a bad key fails at load rather than at verify; the
                // parsed key is the one verification uses
                let key = lc::ParsedPublicKey::new(&lc::ECDSA_P256_SHA256_ASN1, bits)
                    .map_err(lc_err("P-256 public key rejected"))?;
                let der = spki.to_der().map_err(|e| Error::InvalidKey(e.to_string()))?;
                Ok(PublicKey::P256 { parsed: ParsedKey::p256(&der, key), spki: der })
            }
            (oid::RSA_ENCRYPTION, _) => {
                let k = RsaPublicKeyDer::from_der(bits).map_err(|e| Error::InvalidKey(format!("RSAPublicKey: {e}")))?;
                let m = k.modulus.as_bytes();
                let nbits = m.len() * 8 - m.first().map_or(8, |b| b.leading_zeros() as usize);
                if !(2048..=8192).contains(&nbits) {
                    return Err(Error::Unsupported(format!("RSA modulus of {nbits} bits (2048-8192 supported)")));
                }
                Ok(PublicKey::Rsa {
                    spki: spki.to_der().map_err(|e| Error::InvalidKey(e.to_string()))?,
                    bits: nbits,
                    parsed: ParsedKey::default(),
                })
            }
            (oid::EC_PUBLIC_KEY, other) => Err(Error::Unsupported(format!(
                "EC curve {} (supported: SM2, P-256)",
                other.map(|o| o.to_string()).unwrap_or_else(|| "missing".into())
            ))),
            (other, _) => Err(Error::Unsupported(format!("public key algorithm {other}"))),
        }
    }

    /// From a bare SEC1 point (`04‖x‖y` or compressed) of an SM2 or P-256 key, as phones and
    /// HSMs often send them.
    pub fn from_sec1_point(alg: KeyAlg, point: &[u8]) -> Result<Self> {
        let curve = match alg {
            KeyAlg::Sm2 => return Ok(PublicKey::Sm2(Sm2PublicKey::from_sec1(point)?)),
            KeyAlg::P256 => oid::SECP256R1,
            other => return Err(Error::Unsupported(format!("{} keys are not SEC1 points", other.name()))),
        };
        let spki = SubjectPublicKeyInfoOwned {
            algorithm: ec_alg_id(curve),
            subject_public_key: BitString::from_bytes(point).map_err(|e| Error::InvalidKey(e.to_string()))?,
        };
        Self::from_spki_der(&spki.to_der().map_err(|e| Error::InvalidKey(e.to_string()))?)
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki_der(&self) -> Vec<u8> {
        match self {
            PublicKey::Sm2(k) => k.to_spki_der(),
            PublicKey::P256 { spki, .. } | PublicKey::Rsa { spki, .. } => spki.clone(),
        }
    }

    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// Parse `PUBLIC KEY` PEM or SPKI DER.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if let Ok(text) = core::str::from_utf8(bytes)
            && text.contains("-----BEGIN")
        {
            let (label, der) = pem_decode(text)?;
            if label != "PUBLIC KEY" {
                return Err(Error::InvalidKey(format!("PEM block '{label}' is not a public key")));
            }
            return Self::from_spki_der(&der);
        }
        Self::from_spki_der(bytes)
    }

    /// The algorithm family and size.
    pub fn alg(&self) -> KeyAlg {
        match self {
            PublicKey::Sm2(_) => KeyAlg::Sm2,
            PublicKey::P256 { .. } => KeyAlg::P256,
            PublicKey::Rsa { bits, .. } => match bits {
                0..=2048 => KeyAlg::Rsa2048,
                2049..=3072 => KeyAlg::Rsa3072,
                _ => KeyAlg::Rsa4096,
            },
        }
    }

    /// The schemes this key verifies; the first is the default for signing.
    pub fn schemes(&self) -> &'static [SignatureScheme] {
        match self {
            PublicKey::Sm2(_) => &[SignatureScheme::Sm2Sm3],
            PublicKey::P256 { .. } => &[SignatureScheme::EcdsaP256Sha256],
            PublicKey::Rsa { .. } => &[SignatureScheme::RsaPkcs1Sha256, SignatureScheme::RsaPssSha256],
        }
    }

    /// The default signature scheme for this key.
    pub fn default_scheme(&self) -> SignatureScheme {
        self.schemes()[0]
    }

    /// The SM2 key, if this is one.
    pub fn as_sm2(&self) -> Option<&Sm2PublicKey> {
        match self {
            PublicKey::Sm2(k) => Some(k),
            _ => None,
        }
    }

    /// The raw key bytes inside the SPKI BIT STRING (for key identifiers, RFC 5280 § 4.2.1.2).
    pub fn subject_public_key_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Sm2(k) => k.to_sec1_uncompressed(),
            PublicKey::P256 { spki, .. } | PublicKey::Rsa { spki, .. } => SubjectPublicKeyInfoRef::from_der(spki)
                .ok()
                .and_then(|s| s.subject_public_key.as_bytes().map(<[u8]>::to_vec))
                .unwrap_or_default(),
        }
    }

    /// Verify `sig` over `msg`. SM2 takes DER or raw `r‖s` and the ID (None = default).
    pub fn verify(&self, scheme: SignatureScheme, msg: &[u8], sig: &[u8], sm2_id: Option<&[u8]>) -> Result<()> {
        match (self, scheme) {
            (PublicKey::Sm2(k), SignatureScheme::Sm2Sm3) => {
                k.verify_prehash(&k.e(sm2_id.unwrap_or(DEFAULT_ID), msg)?, &parse_sm2_sig(sig)?)
            }
            _ => self.verify_digest(scheme, &scheme.hash().digest(msg), sig),
        }
    }

    /// Verify `sig` over a precomputed digest (SM2: `e`).
    pub fn verify_digest(&self, scheme: SignatureScheme, digest: &[u8], sig: &[u8]) -> Result<()> {
        if digest.len() != 32 {
            return Err(Error::InvalidInput(format!("digest must be 32 bytes, got {}", digest.len())));
        }
        let lc_verify = |parsed: &ParsedKey, spki: &[u8]| -> Result<()> {
            let digest = import_sha256(digest)?;
            parsed.with(scheme, spki, |k| k.verify_digest_sig(&digest, sig))?.map_err(|_| Error::BadSignature)
        };
        match (self, scheme) {
            (PublicKey::Sm2(k), SignatureScheme::Sm2Sm3) => {
                k.verify_prehash(digest.try_into().expect("32 bytes"), &parse_sm2_sig(sig)?)
            }
            (PublicKey::P256 { spki, parsed }, SignatureScheme::EcdsaP256Sha256)
            | (PublicKey::Rsa { spki, parsed, .. }, SignatureScheme::RsaPkcs1Sha256 | SignatureScheme::RsaPssSha256) => {
                lc_verify(parsed, spki)
            }
            _ => Err(Error::Unsupported(format!("a {} key cannot verify {}", self.alg().name(), scheme.name()))),
        }
    }
}

/// SM2 signatures arrive as DER (X.509, CMS) or raw `r‖s` (some GM tools); accept both.
fn parse_sm2_sig(sig: &[u8]) -> Result<Sm2Signature> {
    if sig.len() == 64 && sig[0] != 0x30 {
        Sm2Signature::from_raw(sig)
    } else {
        Sm2Signature::from_der(sig).or_else(|e| if sig.len() == 64 { Sm2Signature::from_raw(sig) } else { Err(e) })
    }
}

/// Encode DER as PEM with `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).expect("PEM label is valid")
}

/// Decode the first PEM block of `text`: (label, DER).
pub fn pem_decode(text: &str) -> Result<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN").ok_or_else(|| Error::InvalidInput("no PEM block found".into()))?;
    let rest = &text[start..];
    let end_marker = rest.find("-----END").ok_or_else(|| Error::InvalidInput("PEM block is not terminated".into()))?;
    let tail = &rest[end_marker..];
    let end = tail[5..].find("-----").map(|i| end_marker + 5 + i + 5).unwrap_or(rest.len());
    let block = &rest[..end];
    let (label, der) =
        der::pem::decode_vec(block.as_bytes()).map_err(|e| Error::InvalidInput(format!("malformed PEM: {e}")))?;
    Ok((label.to_string(), der))
}

/// All PEM blocks of `text`: (label, DER) in order.
pub fn pem_decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN") {
        let block = &rest[start..];
        let end_marker =
            block.find("-----END").ok_or_else(|| Error::InvalidInput("PEM block is not terminated".into()))?;
        let tail = &block[end_marker + 8..];
        let close = tail.find("-----").ok_or_else(|| Error::InvalidInput("PEM END line is malformed".into()))?;
        let len = end_marker + 8 + close + 5;
        out.push(pem_decode(&block[..len])?);
        rest = &block[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_algs() -> [KeyAlg; 3] {
        [KeyAlg::Sm2, KeyAlg::P256, KeyAlg::Rsa2048]
    }

    #[test]
    fn generate_sign_verify_every_scheme() {
        for alg in all_algs() {
            let key = PrivateKey::generate(alg).unwrap();
            assert_eq!(key.alg(), alg);
            let pubk = key.public_key();
            for &scheme in key.schemes() {
                let sig = key.sign(scheme, b"data", None).unwrap();
                pubk.verify(scheme, b"data", &sig, None).unwrap();
                assert_eq!(pubk.verify(scheme, b"datA", &sig, None), Err(Error::BadSignature), "{alg:?} {scheme:?}");
                let mut bad = sig.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert!(pubk.verify(scheme, b"data", &bad, None).is_err());
            }
        }
    }

    #[test]
    fn a_parsed_key_keeps_each_scheme_apart_in_every_clone() {
        let key = PrivateKey::generate(KeyAlg::Rsa2048).unwrap();
        let sigs: Vec<_> = key.schemes().iter().map(|&s| (s, key.sign(s, b"data", None).unwrap())).collect();
        // PKCS#1 parsed first, then PSS first
        for order in [[0, 1], [1, 0]] {
            let pubk = key.public_key();
            for _ in 0..2 {
                for &i in &order {
                    let (scheme, sig) = &sigs[i];
                    pubk.clone().verify(*scheme, b"data", sig, None).unwrap();
                }
            }
            // the key parsed for one scheme does not verify the other's signature
            assert_eq!(pubk.verify(SignatureScheme::RsaPssSha256, b"data", &sigs[0].1, None), Err(Error::BadSignature));
            assert_eq!(
                pubk.verify(SignatureScheme::RsaPkcs1Sha256, b"data", &sigs[1].1, None),
                Err(Error::BadSignature)
            );
        }
    }

    #[test]
    fn a_public_key_crosses_catch_unwind() {
        fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
        unwind_safe::<PublicKey>();
    }

    #[test]
    fn a_parsed_key_serves_only_the_spki_it_came_from() {
        let scheme = SignatureScheme::RsaPkcs1Sha256;
        let (a, b) = (PrivateKey::generate(KeyAlg::Rsa2048).unwrap(), PrivateKey::generate(KeyAlg::Rsa2048).unwrap());
        let (sig_a, sig_b) = (a.sign(scheme, b"data", None).unwrap(), b.sign(scheme, b"data", None).unwrap());
        let pa = a.public_key();
        pa.verify(scheme, b"data", &sig_a, None).unwrap(); // A's key is parsed and kept
        let (PublicKey::Rsa { parsed, .. }, PublicKey::Rsa { spki, bits, .. }) = (&pa, b.public_key()) else {
            unreachable!()
        };
        // B's SPKI with A's parsed key: verifies as B, never as A
        let mixed = PublicKey::Rsa { spki, bits, parsed: parsed.clone() };
        assert_eq!(mixed.verify(scheme, b"data", &sig_a, None), Err(Error::BadSignature));
        mixed.verify(scheme, b"data", &sig_b, None).unwrap();
        pa.verify(scheme, b"data", &sig_a, None).unwrap();
    }

    #[test]
    fn pkcs8_pem_and_spki_round_trip() {
        for alg in all_algs() {
            let key = PrivateKey::generate(alg).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            let back = PrivateKey::from_pem(&pem, None).unwrap();
            assert_eq!(back.public_key(), key.public_key());
            let spki = key.public_key().to_pem();
            assert_eq!(PublicKey::from_bytes(spki.as_bytes()).unwrap(), key.public_key());
            assert_eq!(
                PrivateKey::from_bytes(&key.to_pkcs8_der().unwrap(), None).unwrap().public_key(),
                key.public_key()
            );
        }
    }

    #[test]
    fn encrypted_pkcs8_needs_the_right_passphrase() {
        let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        let pem = key.to_encrypted_pkcs8_pem(b"correct horse").unwrap();
        assert!(pem.contains("ENCRYPTED PRIVATE KEY"));
        assert_eq!(PrivateKey::from_pem(&pem, Some(b"correct horse")).unwrap().public_key(), key.public_key());
        assert!(matches!(PrivateKey::from_pem(&pem, Some(b"wrong")), Err(Error::InvalidKey(_))));
        assert!(matches!(PrivateKey::from_pem(&pem, None), Err(Error::InvalidKey(_))));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            &b""[..],
            b"hello",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            &[0x30, 0x82, 0xff, 0xff],
        ] {
            assert!(PrivateKey::from_bytes(junk, None).is_err());
            assert!(PublicKey::from_bytes(junk).is_err());
        }
        let key = PrivateKey::generate(KeyAlg::Sm2).unwrap();
        assert!(key.sign(SignatureScheme::RsaPkcs1Sha256, b"x", None).is_err());
        assert!(key.sign_digest(SignatureScheme::Sm2Sm3, b"short").is_err());
    }

    #[test]
    fn sec1_points_round_trip() {
        for alg in [KeyAlg::Sm2, KeyAlg::P256] {
            let k = PrivateKey::generate(alg).unwrap().public_key();
            let point = k.subject_public_key_bytes();
            assert_eq!(point.len(), 65);
            assert_eq!(PublicKey::from_sec1_point(alg, &point).unwrap(), k);
            let mut bad = point.clone();
            bad[40] ^= 1;
            assert!(PublicKey::from_sec1_point(alg, &bad).is_err(), "off-curve point accepted for {alg:?}");
        }
        assert!(PublicKey::from_sec1_point(KeyAlg::Rsa2048, &[4u8; 65]).is_err());
    }

    #[test]
    fn pem_decode_all_reads_chains() {
        let a = PrivateKey::generate(KeyAlg::Sm2).unwrap().public_key().to_pem();
        let b = PrivateKey::generate(KeyAlg::P256).unwrap().public_key().to_pem();
        let blocks = pem_decode_all(&format!("junk\n{a}\n{b}")).unwrap();
        assert_eq!(blocks.len(), 2);
        assert!(blocks.iter().all(|(l, _)| l == "PUBLIC KEY"));
    }
}
