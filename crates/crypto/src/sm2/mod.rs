//! SM2 digital signatures (GB/T 32918.2, GM/T 0003.2) with SM3 and a distinguishing ID.
//!
//! ```text
//! Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A)        (GB/T 32918.2 § 5.5)
//! e   = SM3(Z_A ‖ M)
//! sign:   k ∈ [1, n−1], (x1, y1) = [k]G, r = (e + x1) mod n, s = (1 + d)⁻¹ · (k + r) − r mod n
//! verify: t = r + s, (x1', y1') = [s]G + [t]P_A, r ≟ (e + x1') mod n
//! ```
//! `(1 + d)⁻¹ (k − r·d) = (1 + d)⁻¹ (k + r) − r`: the second form lets a key cache `(1 + d)⁻¹`
//! once instead of inverting per signature (the same identity the two-party protocol uses).
//!
//! The curve arithmetic is the RustCrypto `sm2` crate's; the scalar multiplications go through
//! [`arith`] so that a faster backend can replace them in one place.

use crate::{Error, Result, hash::sm3_parts, rng};
use elliptic_curve::{PrimeField, ops::Reduce, sec1::ToSec1Point};
use sm2::{FieldBytes, NonZeroScalar, Scalar};
use zeroize::Zeroize;

/// The default distinguishing ID of GM/T 0009-2012 § 10: `1234567812345678`.
pub const DEFAULT_ID: &[u8] = b"1234567812345678";

/// id-ecPublicKey (RFC 5480), the algorithm of an SM2 SubjectPublicKeyInfo.
pub const EC_PUBLIC_KEY: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// The SM2 curve (GM/T 0006: 1.2.156.10197.1.301), its parameters.
pub const CURVE: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");

/// Curve coefficient a of the SM2 recommended curve (GB/T 32918.5).
const A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
/// Curve coefficient b.
const B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
/// Base point x.
const GX: [u8; 32] = hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
/// Base point y.
const GY: [u8; 32] = hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nib(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("not hex"),
    }
}

mod fast;
mod field;
mod safegcd;

/// Scalar multiplications used by SM2 and the two-party protocol, on the faster Jacobian
/// arithmetic of [`fast`]. One place, so the protocol code never touches coordinates.
pub(crate) mod arith {
    use super::{Sm2PublicKey, fast};
    use crate::{Error, Result};
    use elliptic_curve::ops::Reduce;
    use sm2::{AffinePoint, FieldBytes, Scalar};

    pub(crate) use fast::{CombTable, Jac};

    fn aff(p: &Sm2PublicKey) -> fast::Aff {
        fast::Aff::from_point(p.point.as_affine()).expect("public keys are not the identity")
    }

    /// `[k]G`, constant time in `k`.
    pub fn mul_g(k: &Scalar) -> Jac {
        fast::mul_g(k)
    }

    /// `[k]P`, constant time in `k`.
    pub fn mul(p: &Sm2PublicKey, k: &Scalar) -> Jac {
        fast::mul(&aff(p), k)
    }

    /// `a + b` for secret-dependent points (caller ensures `a ≠ ±b` but for negligible chance;
    /// the two-party client verifies the final signature, so such a fluke cannot go unnoticed).
    pub fn add(a: &Jac, b: &Jac) -> Jac {
        a.add_ct(b)
    }

    /// `P − G`.
    pub fn sub_g(p: &Jac) -> Jac {
        let minus_g = fast::Aff::from_point(&AffinePoint::GENERATOR).expect("G").neg();
        p.add_ct(&Jac::from(minus_g))
    }

    /// `[a]G + [b]P` for public scalars (verification, proofs).
    pub fn mul_g_plus_vartime(a: &Scalar, p: &Sm2PublicKey, b: &Scalar) -> Jac {
        fast::g_table().mul_vartime(a).add_vartime(&fast::mul_vartime(&aff(p), b))
    }

    /// `[a]G + [b]P` with a precomputed table for `P`.
    pub fn mul_g_plus_table(a: &Scalar, table: &CombTable, b: &Scalar) -> Jac {
        fast::g_table().mul_vartime(a).add_vartime(&table.mul_vartime(b))
    }

    /// A comb table for `P` (≈ 1 ms and 88 KB; worth it for a key that verifies many signatures).
    pub fn table(p: &Sm2PublicKey) -> CombTable {
        CombTable::new(&aff(p))
    }

    /// The point as a public key; the identity is an error.
    pub fn to_public(j: &Jac) -> Result<Sm2PublicKey> {
        let a = j.to_affine().ok_or_else(|| Error::InvalidKey("point is the identity".into()))?;
        Sm2PublicKey::from_affine(&a.to_point())
    }

    /// The affine x of a point, reduced mod n; `None` for the identity.
    /// The inversion is blinded by `blind`: 32 fresh random bytes from the caller, who wipes them.
    pub fn x_mod_n(j: &Jac, blind: &[u8; 32]) -> Option<Scalar> {
        j.affine_x(blind).map(|x| <Scalar as Reduce<FieldBytes>>::reduce(&x.to_repr()))
    }
}

/// A uniformly random non-zero scalar from the OS CSPRNG (rejection sampling; n ≈ 2²⁵⁶ − 2²²⁴,
/// so a draw is rejected with probability ≈ 2⁻³²).
pub fn random_scalar() -> Result<NonZeroScalar> {
    loop {
        if let Some(s) = scalar_from(&mut rng::bytes::<32>()?) {
            return Ok(s);
        }
    }
}

/// A signing nonce and the blinding factor of its point's inversion, from one draw of the OS
/// CSPRNG (one system call per signature instead of two).
pub(crate) fn nonce_and_blind() -> Result<(NonZeroScalar, zeroize::Zeroizing<[u8; 32]>)> {
    loop {
        let mut b = rng::bytes::<64>()?;
        let (k, blind) = b.split_at_mut(32);
        let k = scalar_from(k.try_into().expect("32 bytes"));
        let blind = zeroize::Zeroizing::new(<[u8; 32]>::try_from(&*blind).expect("32 bytes"));
        b.zeroize();
        if let Some(k) = k {
            return Ok((k, blind));
        }
    }
}

/// The scalar these 32 random bytes encode, when it is in `[1, n−1]`; the bytes are wiped.
fn scalar_from(b: &mut [u8; 32]) -> Option<NonZeroScalar> {
    let s = NonZeroScalar::from_repr(FieldBytes::from(*b));
    b.zeroize();
    Option::from(s)
}

/// Parse a 32-byte big-endian scalar in `[1, n−1]`.
pub fn scalar_from_bytes(b: &[u8]) -> Result<NonZeroScalar> {
    if b.len() != 32 {
        return Err(Error::InvalidInput(format!("scalar must be 32 bytes, got {}", b.len())));
    }
    Option::from(NonZeroScalar::from_repr(FieldBytes::try_from(b).expect("32 bytes")))
        .ok_or_else(|| Error::InvalidInput("scalar out of range [1, n-1]".into()))
}

/// `e` as a scalar (reduced mod n, as the standard prescribes).
pub fn e_to_scalar(e: &[u8; 32]) -> Scalar {
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*e))
}

/// An SM2 public key: a validated point on the curve, not the identity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Sm2PublicKey {
    point: sm2::PublicKey,
}

impl Sm2PublicKey {
    /// From SEC1 bytes (compressed `02/03‖x` or uncompressed `04‖x‖y`). Rejects points not on the
    /// curve and the identity.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self> {
        sm2::PublicKey::from_sec1_bytes(bytes)
            .map(|point| Self { point })
            .map_err(|_| Error::InvalidKey("not a valid SM2 point (SEC1)".into()))
    }

    /// From an affine point; rejects the identity.
    pub(crate) fn from_affine(p: &sm2::AffinePoint) -> Result<Self> {
        sm2::PublicKey::from_affine(*p)
            .map(|point| Self { point })
            .map_err(|_| Error::InvalidKey("SM2 public key is the identity".into()))
    }

    /// Uncompressed SEC1 encoding `04‖x‖y` (65 bytes), as used in SubjectPublicKeyInfo.
    pub fn to_sec1_uncompressed(&self) -> Vec<u8> {
        self.point.as_affine().to_sec1_point(false).as_bytes().to_vec()
    }

    /// SubjectPublicKeyInfo DER: id-ecPublicKey with the SM2 curve (RFC 5480, GM/T 0015) and the
    /// uncompressed point — what certificates and certification requests carry.
    pub fn to_spki_der(&self) -> Vec<u8> {
        use der::Encode;
        spki::SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned { oid: EC_PUBLIC_KEY, parameters: Some(der::Any::from(&CURVE)) },
            subject_public_key: der::asn1::BitString::from_bytes(&self.to_sec1_uncompressed()).expect("bit string"),
        }
        .to_der()
        .expect("SPKI encoding")
    }

    /// Compressed SEC1 encoding (33 bytes), as used in protocol messages.
    pub fn to_sec1_compressed(&self) -> Vec<u8> {
        self.point.as_affine().to_sec1_point(true).as_bytes().to_vec()
    }

    /// `Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A)`. IDs longer than 8191 bytes
    /// cannot be encoded (ENTL is 16 bits of *bit* length).
    pub fn z_a(&self, id: &[u8]) -> Result<[u8; 32]> {
        let entl =
            u16::try_from(id.len() * 8).map_err(|_| Error::InvalidInput("SM2 ID longer than 8191 bytes".into()))?;
        let xy = self.to_sec1_uncompressed();
        Ok(sm3_parts(&[&entl.to_be_bytes(), id, &A, &B, &GX, &GY, &xy[1..33], &xy[33..65]]))
    }

    /// `e = SM3(Z_A ‖ M)`: the value actually signed.
    pub fn e(&self, id: &[u8], msg: &[u8]) -> Result<[u8; 32]> {
        Ok(sm3_parts(&[&self.z_a(id)?, msg]))
    }

    /// Verify `sig` over a precomputed `e`.
    pub fn verify_prehash(&self, e: &[u8; 32], sig: &Sm2Signature) -> Result<()> {
        verify_with(e, sig, |s, t| arith::mul_g_plus_vartime(s, self, t))
    }

    /// Verify `sig` over message `msg` with distinguishing ID `id`.
    pub fn verify(&self, id: &[u8], msg: &[u8], sig: &Sm2Signature) -> Result<()> {
        self.verify_prehash(&self.e(id, msg)?, sig)
    }
}

/// GB/T 32918.2 § 7.1 B5–B7 with `[s]G + [t]P_A` supplied by `combine`.
fn verify_with(e: &[u8; 32], sig: &Sm2Signature, combine: impl Fn(&Scalar, &Scalar) -> arith::Jac) -> Result<()> {
    // B5: t = (r + s) mod n, t ≠ 0
    let t = sig.r + sig.s;
    if bool::from(t.is_zero()) {
        return Err(Error::BadSignature);
    }
    // B6: (x1, y1) = [s]G + [t]P_A, not the identity;
    // B7: r ≟ (e + x1) mod n, i.e. x1 ≡ r − e (mod n), checked without inverting Z
    if combine(&sig.s, &t).x_matches_mod_n(&(sig.r - e_to_scalar(e))) { Ok(()) } else { Err(Error::BadSignature) }
}

/// An SM2 public key with a precomputed comb table: verification ≈ 2.5× faster, for keys that
/// verify many signatures (the two-party client checks every signature it helps make).
pub struct Sm2PrecomputedKey {
    key: Sm2PublicKey,
    table: arith::CombTable,
}

impl Sm2PrecomputedKey {
    /// Build the table (≈ 1 ms, 88 KB).
    pub fn new(key: &Sm2PublicKey) -> Self {
        Self { key: *key, table: arith::table(key) }
    }

    /// The key.
    pub fn key(&self) -> &Sm2PublicKey {
        &self.key
    }

    /// Verify `sig` over a precomputed `e`.
    pub fn verify_prehash(&self, e: &[u8; 32], sig: &Sm2Signature) -> Result<()> {
        verify_with(e, sig, |s, t| arith::mul_g_plus_table(s, &self.table, t))
    }
}

/// An SM2 private key `d` with its public key and `(1 + d)⁻¹` cached. Zeroized on drop.
#[derive(Clone)]
pub struct Sm2SecretKey {
    d: NonZeroScalar,
    d1_inv: Scalar,
    public: Sm2PublicKey,
}

impl Drop for Sm2SecretKey {
    fn drop(&mut self) {
        self.d.zeroize();
        self.d1_inv.zeroize();
    }
}

impl core::fmt::Debug for Sm2SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sm2SecretKey").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Sm2SecretKey {
    /// A fresh key from the OS CSPRNG. `d = n − 1` is excluded (then `1 + d ≡ 0`).
    pub fn generate() -> Result<Self> {
        loop {
            if let Ok(k) = Self::from_scalar(random_scalar()?) {
                return Ok(k);
            }
        }
    }

    /// From the scalar `d ∈ [1, n−2]`.
    pub fn from_scalar(d: NonZeroScalar) -> Result<Self> {
        let d1_inv = Option::<Scalar>::from((*d + Scalar::ONE).invert())
            .ok_or_else(|| Error::InvalidKey("SM2 private key d = n-1 is not allowed".into()))?;
        let public = arith::to_public(&arith::mul_g(&d))?;
        Ok(Self { d, d1_inv, public })
    }

    /// From 32 big-endian bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        Self::from_scalar(scalar_from_bytes(b).map_err(|e| Error::InvalidKey(e.to_string()))?)
    }

    /// The secret scalar as 32 big-endian bytes (for encoding only; zeroize after use).
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.d.to_repr().into())
    }

    /// The public key `[d]G`.
    pub fn public_key(&self) -> &Sm2PublicKey {
        &self.public
    }

    /// Key agreement: the point `[d]P` as `x‖y` (64 bytes), for sealing (see [`crate::seal`]).
    pub fn agree(&self, peer: &Sm2PublicKey) -> Result<zeroize::Zeroizing<[u8; 64]>> {
        let shared = arith::to_public(&arith::mul(peer, &self.d))?;
        let xy = zeroize::Zeroizing::new(shared.to_sec1_uncompressed());
        let mut out = zeroize::Zeroizing::new([0u8; 64]);
        out.copy_from_slice(&xy[1..65]);
        Ok(out)
    }

    /// Sign a precomputed `e = SM3(Z_A ‖ M)` with a fresh random `k`.
    ///
    /// `k` is drawn from the OS when the signature is made, never ahead: a pool of precomputed
    /// nonces sharing one inversion signed 1.3× faster, but a virtual machine restored from a
    /// snapshot (or two clones of one) would sign again with the nonces it held, and two
    /// signatures with one `k` give `d` away; the kernel reseeds its generator on such a restore
    /// (vmgenid), a pool in this process cannot know (issue #20, docs/BENCHMARKS.md).
    pub fn sign_prehash(&self, e: &[u8; 32]) -> Result<Sm2Signature> {
        let e = e_to_scalar(e);
        loop {
            let (mut k, blind) = nonce_and_blind()?;
            let Some(x1) = arith::x_mod_n(&arith::mul_g(&k), &blind) else {
                continue; // k ≠ 0, so never: [k]G is not the identity
            };
            let r = e + x1;
            // A5: retry if r = 0 or r + k = n
            if bool::from(r.is_zero() | (r + *k).is_zero()) {
                k.zeroize();
                continue;
            }
            // A6: s = (1 + d)⁻¹ (k + r) − r
            let s = self.d1_inv * (*k + r) - r;
            k.zeroize();
            if bool::from(s.is_zero()) {
                continue;
            }
            return Ok(Sm2Signature { r, s });
        }
    }

    /// Sign `msg` with distinguishing ID `id`.
    pub fn sign(&self, id: &[u8], msg: &[u8]) -> Result<Sm2Signature> {
        self.sign_prehash(&self.public.e(id, msg)?)
    }
}

/// An SM2 signature `(r, s)`, both in `[1, n−1]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Sm2Signature {
    r: Scalar,
    s: Scalar,
}

/// ```text
/// SM2Signature ::= SEQUENCE { R INTEGER, S INTEGER }
/// ```
/// [GM/T 0009-2012 § 7.3]
#[derive(der::Sequence)]
struct Sm2SignatureDer<'a> {
    r: der::asn1::UintRef<'a>,
    s: der::asn1::UintRef<'a>,
}

impl Sm2Signature {
    /// From scalars; both must be non-zero.
    pub fn from_scalars(r: Scalar, s: Scalar) -> Result<Self> {
        if bool::from(r.is_zero() | s.is_zero()) {
            return Err(Error::MalformedSignature("SM2 r or s is zero".into()));
        }
        Ok(Self { r, s })
    }

    /// `r`.
    pub fn r(&self) -> &Scalar {
        &self.r
    }

    /// `s`.
    pub fn s(&self) -> &Scalar {
        &self.s
    }

    /// From raw `r ‖ s` (64 bytes).
    pub fn from_raw(b: &[u8]) -> Result<Self> {
        if b.len() != 64 {
            return Err(Error::MalformedSignature(format!("raw SM2 signature must be 64 bytes, got {}", b.len())));
        }
        let r = scalar_from_bytes(&b[..32]).map_err(|e| Error::MalformedSignature(e.to_string()))?;
        let s = scalar_from_bytes(&b[32..]).map_err(|e| Error::MalformedSignature(e.to_string()))?;
        Ok(Self { r: *r, s: *s })
    }

    /// Raw `r ‖ s` (64 bytes).
    pub fn to_raw(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r.to_repr());
        out[32..].copy_from_slice(&self.s.to_repr());
        out
    }

    /// DER `SEQUENCE { r INTEGER, s INTEGER }`, as X.509 and CMS carry it.
    pub fn to_der(&self) -> Vec<u8> {
        use der::Encode;
        let raw = self.to_raw();
        Sm2SignatureDer {
            r: der::asn1::UintRef::new(&raw[..32]).expect("32 bytes"),
            s: der::asn1::UintRef::new(&raw[32..]).expect("32 bytes"),
        }
        .to_der()
        .expect("encoding two integers cannot fail")
    }

    /// From DER; strict (no trailing data, minimal integers, values in `[1, n−1]`).
    pub fn from_der(b: &[u8]) -> Result<Self> {
        use der::Decode;
        let d =
            Sm2SignatureDer::from_der(b).map_err(|e| Error::MalformedSignature(format!("SM2 signature DER: {e}")))?;
        let mut raw = [0u8; 64];
        for (i, v) in [d.r.as_bytes(), d.s.as_bytes()].into_iter().enumerate() {
            if v.len() > 32 {
                return Err(Error::MalformedSignature("SM2 integer longer than 32 bytes".into()));
            }
            raw[32 * i + 32 - v.len()..32 * (i + 1)].copy_from_slice(v);
        }
        Self::from_raw(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signature::{Verifier, hazmat::PrehashVerifier};

    #[test]
    fn sign_verify_and_cross_check_with_rustcrypto_sm2() {
        let key = Sm2SecretKey::generate().unwrap();
        let msg = b"\xe5\xa4\x84\xe6\x96\xb9 prescription #1";
        let sig = key.sign(DEFAULT_ID, msg).unwrap();
        key.public_key().verify(DEFAULT_ID, msg, &sig).unwrap();
        // The `sm2` crate computes Z_A itself: agreement proves our curve constants and Z_A.
        let vk = sm2::dsa::VerifyingKey::from_sec1_bytes(
            core::str::from_utf8(DEFAULT_ID).unwrap(),
            &key.public_key().to_sec1_uncompressed(),
        )
        .unwrap();
        let theirs = sm2::dsa::Signature::from_slice(&sig.to_raw()).unwrap();
        vk.verify(msg, &theirs).unwrap();
        vk.verify_prehash(&key.public_key().e(DEFAULT_ID, msg).unwrap(), &theirs).unwrap();
    }

    #[test]
    fn rejects_wrong_message_id_and_key() {
        let key = Sm2SecretKey::generate().unwrap();
        let sig = key.sign(DEFAULT_ID, b"m").unwrap();
        let pk = key.public_key();
        assert_eq!(pk.verify(DEFAULT_ID, b"n", &sig), Err(Error::BadSignature));
        assert_eq!(pk.verify(b"", b"m", &sig), Err(Error::BadSignature));
        let other = Sm2SecretKey::generate().unwrap();
        assert_eq!(other.public_key().verify(DEFAULT_ID, b"m", &sig), Err(Error::BadSignature));
    }

    #[test]
    fn der_and_raw_round_trip_and_reject_garbage() {
        let key = Sm2SecretKey::generate().unwrap();
        for _ in 0..50 {
            let sig = key.sign(b"id", b"x").unwrap();
            assert_eq!(Sm2Signature::from_der(&sig.to_der()).unwrap(), sig);
            assert_eq!(Sm2Signature::from_raw(&sig.to_raw()).unwrap(), sig);
        }
        assert!(Sm2Signature::from_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(Sm2Signature::from_der(b"").is_err());
        assert!(Sm2Signature::from_raw(&[0u8; 64]).is_err());
        assert!(Sm2Signature::from_raw(&[0xffu8; 64]).is_err()); // ≥ n
        let mut der = key.sign(b"id", b"x").unwrap().to_der();
        der.push(0);
        assert!(Sm2Signature::from_der(&der).is_err(), "trailing data accepted");
    }

    /// GB/T 32918.2 uses its own test curve; for the recommended curve we check against the
    /// key pair of GM/T 0003.5 appendix / GB/T 32918.5 via the known public key of d.
    #[test]
    fn public_key_from_known_private_key() {
        // Private key and public key of the GM/T 0003.5 example (recommended curve).
        let d = hex::decode("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8").unwrap();
        let key = Sm2SecretKey::from_bytes(&d).unwrap();
        let pk = hex::encode_upper(key.public_key().to_sec1_uncompressed());
        assert_eq!(
            pk,
            "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020\
             CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
        );
    }

    #[test]
    fn rejects_invalid_points_and_scalars() {
        assert!(Sm2PublicKey::from_sec1(&[0x04; 65]).is_err());
        assert!(Sm2PublicKey::from_sec1(&[0x00]).is_err());
        assert!(Sm2PublicKey::from_sec1(b"").is_err());
        assert!(Sm2SecretKey::from_bytes(&[0u8; 32]).is_err());
        assert!(Sm2SecretKey::from_bytes(&[1u8; 31]).is_err());
        // d = n − 1 makes 1 + d ≡ 0: refused.
        let n_minus_1 = hex::decode("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122").unwrap();
        assert!(Sm2SecretKey::from_bytes(&n_minus_1).is_err());
    }
}
