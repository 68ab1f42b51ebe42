//! Keys at rest (custody modes: docs/architecture.md "Keys and custody"): SM4-GCM key wrapping and PIN-derived keys.
//!
//! **Construction.** SM4 in GCM mode (the AEAD of RFC 8998 and GB/T 36624), 96-bit random nonce,
//! 128-bit tag, with the caller's *associated data* bound in (e.g. `"d1|user=42|key=7"`), so a
//! wrapped blob moved to another user or key slot fails to unwrap. Blob layout:
//! `0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)`.
//!
//! Why GCM rather than the key-wrap mode of RFC 3394: we wrap variable-length material (PKCS#8,
//! key shares with metadata), we want associated data, and SM4-GCM is the standard AEAD of the
//! national suite. A random 96-bit nonce is safe far beyond the number of keys a KEK ever wraps
//! (NIST SP 800-38D: 2³² invocations per key).
//!
//! **PIN keys** ([`PinKey`]): the phone derives `a = HMAC-SM3(device_secret, "medsign/pin-kek/v2" ‖
//! Argon2id(PIN, salt))`. From `a` come a *verifier* `HMAC-SM3(a, "medsign/pin-verifier/v2")`, which
//! the server stores and compares (counting failures, locking after too many), and — only with the
//! per-device *unlock secret* the server releases after a matching verifier — the wrapping key of the
//! share `d1`: `HMAC-SM3(a, "medsign/share-kek/v2" ‖ unlock_secret)[..16]`. So a stolen phone cannot
//! try PINs offline (each try needs the server, which counts), the server cannot search PINs either
//! (the verifier also needs the device secret, which never leaves the phone), and neither the PIN,
//! the device secret nor the server's secret alone opens `d1`.
//!
//! **Fingerprint keys** ([`biometric_kek`]): where the phone approves with its fingerprint (WeChat
//! SOTER), it keeps a second wrapping of `d1` under `HMAC-SM3(device_secret, "medsign/soter-kek/v1" ‖
//! fingerprint_secret)[..16]`. The server releases that per-device fingerprint secret only for a SOTER
//! result over its one-time challenge that WeChat verified for the device enrolled — so, as with
//! the PIN, neither the phone's storage nor the server alone opens `d1`.

use crate::{Error, Result, rng};
use aes_gcm::aead::{Aead, KeyInit, Payload, consts::U12};
use zeroize::Zeroizing;

/// Format version byte of wrapped blobs.
pub const WRAP_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

type Sm4Gcm = aes_gcm::AesGcm<sm4::Sm4, U12>;

/// A 128-bit key-encryption key. Zeroized on drop.
#[derive(Clone)]
pub struct Kek(Zeroizing<[u8; 16]>);

impl core::fmt::Debug for Kek {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Kek(…)")
    }
}

impl Kek {
    /// A fresh random KEK.
    pub fn generate() -> Result<Self> {
        Ok(Self(Zeroizing::new(rng::bytes::<16>()?)))
    }

    /// From 16 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let arr: [u8; 16] =
            b.try_into().map_err(|_| Error::InvalidKey(format!("KEK must be 16 bytes, got {}", b.len())))?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// The key bytes (for storing in a 0600 key file or an HSM).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    fn cipher(&self) -> Sm4Gcm {
        Sm4Gcm::new_from_slice(self.0.as_ref()).expect("16-byte key")
    }

    /// Encrypt and authenticate `plaintext`, binding `aad`.
    pub fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let nonce = rng::bytes::<NONCE_LEN>()?;
        let ct = self
            .cipher()
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad })
            .map_err(|_| Error::InvalidInput("plaintext too long for SM4-GCM".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Check and decrypt a blob made by [`Kek::wrap`] with the same `aad`.
    pub fn unwrap(&self, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if blob.len() < 1 + NONCE_LEN + TAG_LEN || blob[0] != WRAP_VERSION {
            return Err(Error::Unwrap);
        }
        let nonce: [u8; NONCE_LEN] = blob[1..1 + NONCE_LEN].try_into().expect("length checked");
        self.cipher()
            .decrypt(&nonce.into(), Payload { msg: &blob[1 + NONCE_LEN..], aad })
            .map(Zeroizing::new)
            .map_err(|_| Error::Unwrap)
    }
}

/// Argon2id cost parameters and salt for a PIN-derived key; stored next to the wrapped blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinKdfParams {
    /// memory in KiB
    pub m_cost_kib: u32,
    /// iterations
    pub t_cost: u32,
    /// lanes
    pub p_cost: u32,
    /// 16-byte random salt, hex
    pub salt: String,
}

impl PinKdfParams {
    /// Defaults that a mid-range phone runs in well under a second in WebAssembly:
    /// 19 MiB, 2 passes, 1 lane (OWASP's Argon2id minimum), fresh salt.
    pub fn generate() -> Result<Self> {
        Ok(Self { m_cost_kib: 19 * 1024, t_cost: 2, p_cost: 1, salt: hex::encode(rng::bytes::<16>()?) })
    }
}

/// The phone's PIN-derived secret `a` (see the module docs). Zeroized on drop.
pub struct PinKey(Zeroizing<[u8; 32]>);

impl PinKey {
    /// `a` from the PIN and the device secret (Argon2id with `params`).
    pub fn derive(pin: &[u8], device_secret: &[u8], params: &PinKdfParams) -> Result<Self> {
        if device_secret.len() < 16 {
            return Err(Error::InvalidInput("device secret must be at least 16 bytes".into()));
        }
        let salt = hex::decode(&params.salt).map_err(|_| Error::InvalidInput("PIN salt is not hex".into()))?;
        let p = argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
            .map_err(|e| Error::InvalidInput(format!("Argon2 parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
        let mut stretched = Zeroizing::new([0u8; 32]);
        a.hash_password_into(pin, &salt, stretched.as_mut())
            .map_err(|e| Error::InvalidInput(format!("Argon2: {e}")))?;
        Ok(Self(Zeroizing::new(crate::hash::hmac_sm3(device_secret, &[b"medsign/pin-kek/v2", stretched.as_ref()]))))
    }

    /// What the server stores and compares to count PIN attempts.
    pub fn verifier(&self) -> [u8; 32] {
        crate::hash::hmac_sm3(self.0.as_ref(), &[b"medsign/pin-verifier/v2"])
    }

    /// The share's wrapping key, given the unlock secret the server released.
    pub fn kek(&self, unlock_secret: &[u8]) -> Result<Kek> {
        if unlock_secret.len() < 16 {
            return Err(Error::InvalidInput("unlock secret must be at least 16 bytes".into()));
        }
        let mac = Zeroizing::new(crate::hash::hmac_sm3(self.0.as_ref(), &[b"medsign/share-kek/v2", unlock_secret]));
        Kek::from_bytes(&mac[..16])
    }
}

/// The wrapping key of the fingerprint copy of a share (see the module docs): from the device
/// secret and the fingerprint secret the server releases after a verified SOTER approval.
pub fn biometric_kek(device_secret: &[u8], fingerprint_secret: &[u8]) -> Result<Kek> {
    if device_secret.len() < 16 || fingerprint_secret.len() < 16 {
        return Err(Error::InvalidInput("device and fingerprint secrets must be at least 16 bytes".into()));
    }
    let mac = Zeroizing::new(crate::hash::hmac_sm3(device_secret, &[b"medsign/soter-kek/v1", fingerprint_secret]));
    Kek::from_bytes(&mac[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8998 appendix A.1 (SM4-GCM) — proves the GCM construction over SM4 is the standard one.
    #[test]
    fn sm4_gcm_rfc8998_vector() {
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let iv: [u8; 12] = hex::decode("00001234567800000000ABCD").unwrap().try_into().unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let pt = hex::decode(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD\
             EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        let out = Sm4Gcm::new_from_slice(&key).unwrap().encrypt(&iv.into(), Payload { msg: &pt, aad: &aad }).unwrap();
        assert_eq!(
            hex::encode_upper(&out),
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735\
             D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D\
             83DE3541E4C2B58177E065A9BF7B62EC"
        );
    }

    #[test]
    fn wrap_round_trip_and_tamper_detection() {
        let kek = Kek::generate().unwrap();
        let blob = kek.wrap(b"secret share", b"user=1").unwrap();
        assert_eq!(kek.unwrap(&blob, b"user=1").unwrap().as_slice(), b"secret share");
        assert_eq!(kek.unwrap(&blob, b"user=2"), Err(Error::Unwrap), "AAD not bound");
        let mut t = blob.clone();
        t[20] ^= 1;
        assert_eq!(kek.unwrap(&t, b"user=1"), Err(Error::Unwrap));
        assert_eq!(Kek::generate().unwrap().unwrap(&blob, b"user=1"), Err(Error::Unwrap));
        assert_eq!(kek.unwrap(&blob[..10], b"user=1"), Err(Error::Unwrap));
        assert_ne!(kek.wrap(b"secret share", b"user=1").unwrap(), blob, "nonce reused");
    }

    #[test]
    fn pin_kek_needs_pin_device_secret_and_the_servers_unlock_secret() {
        let params =
            PinKdfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1, salt: "00112233445566778899aabbccddeeff".into() };
        let (dev, unlock) = ([7u8; 32], [9u8; 32]);
        let k = PinKey::derive(b"135790", &dev, &params).unwrap();
        let blob = k.kek(&unlock).unwrap().wrap(b"d1", b"").unwrap();
        let open = |pin: &[u8], dev: &[u8], unlock: &[u8]| {
            PinKey::derive(pin, dev, &params).unwrap().kek(unlock).unwrap().unwrap(&blob, b"").is_ok()
        };
        assert!(open(b"135790", &dev, &unlock));
        assert!(!open(b"135791", &dev, &unlock), "wrong PIN");
        assert!(!open(b"135790", &[8u8; 32], &unlock), "other device");
        assert!(!open(b"135790", &dev, &[1u8; 32]), "without the server's secret");
        // the verifier depends on PIN and device, never on the server's secret
        let v = k.verifier();
        assert_eq!(PinKey::derive(b"135790", &dev, &params).unwrap().verifier(), v);
        assert_ne!(PinKey::derive(b"135791", &dev, &params).unwrap().verifier(), v);
        assert_ne!(PinKey::derive(b"135790", &[8u8; 32], &params).unwrap().verifier(), v);
        assert!(PinKey::derive(b"135790", &[1u8; 4], &params).is_err());
        assert!(k.kek(&[1u8; 4]).is_err());
    }

    #[test]
    fn fingerprint_kek_needs_the_device_secret_and_the_servers_fingerprint_secret() {
        let (dev, fp) = ([7u8; 32], [5u8; 32]);
        let blob = biometric_kek(&dev, &fp).unwrap().wrap(b"d1", b"").unwrap();
        let open = |dev: &[u8], fp: &[u8]| biometric_kek(dev, fp).unwrap().unwrap(&blob, b"").is_ok();
        assert!(open(&dev, &fp));
        assert!(!open(&[8u8; 32], &fp), "other device");
        assert!(!open(&dev, &[9u8; 32]), "without the server's fingerprint secret");
        // not the PIN path's key for the same secrets
        let params =
            PinKdfParams { m_cost_kib: 64, t_cost: 1, p_cost: 1, salt: "00112233445566778899aabbccddeeff".into() };
        let pin = PinKey::derive(b"135790", &dev, &params).unwrap().kek(&fp).unwrap();
        assert!(pin.unwrap(&blob, b"").is_err());
        assert!(biometric_kek(&dev, &[1u8; 4]).is_err() && biometric_kek(&[1u8; 4], &fp).is_err());
    }
}
