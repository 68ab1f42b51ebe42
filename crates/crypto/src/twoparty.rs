//! SM2 two-party signing (协同签名), custody mode 1 (docs/architecture.md): one key split between the phone and the server (R3.8, R5.4).
//!
//! The phone (client) holds `d1`, the server `d2`; the signing key `d` satisfies
//! `(1 + d)⁻¹ = d1·d2`, so `P = [(d1·d2)⁻¹]G − G`. Neither party ever holds `d`: no type in this
//! module has a field for it.
//!
//! ```text
//! key generation                                   signing (e = SM3(Z_A ‖ M), computed by both)
//! client: d1, P1 = [d1⁻¹]G, π1 = PoK(d1⁻¹)  ──►    client: k1, Q1 = [k1]G                   ──► (e, Q1)
//! server: check π1; d2, P2 = [d2⁻¹]G, π2,          server: e authorised? Q1 fresh & valid?
//!         P = [d2⁻¹]P1 − G                ◄──              k2, k3; (x1, _) = [k3]Q1 + [k2]G
//! client: check π2; P = [d1⁻¹]P2 − G ≟ P                   r = e + x1; s2 = d2·k3; s3 = d2·(r + k2) ◄──
//!                                                  client: s = d1·k1·s2 + d1·s3 − r; verify (r, s) with P
//! ```
//! Why it is an SM2 signature: with `k = k1·k3 + k2`, `s = d1·d2·(k + r) − r = (1 + d)⁻¹(k + r) − r`.
//!
//! The proofs of knowledge (Schnorr, Fiat–Shamir over SM3, bound to a caller context such as the
//! user and key id) stop a party from choosing its point as a function of the other's (a
//! rogue-key attack that would let it fix `P`). Every received point is checked to be on the
//! curve and not the identity; every scalar to be in range; the server refuses a `Q1` it has seen
//! before (a repeated `Q1` with a fresh `k2, k3` gives linear equations in `d2`'s nonces only, but
//! a replayed request is never legitimate and refusing it is cheap), and the client verifies the
//! final signature before releasing it, so a faulty or malicious server cannot make the phone
//! emit a bad or leaky signature.
//!
//! Messages are versioned, serde-serialisable structs with hex fields: they travel as JSON over
//! HTTP and through the DMZ gateway.

use crate::{
    Error, Result,
    hash::sm3_parts,
    sm2::{Sm2PrecomputedKey, Sm2PublicKey, Sm2Signature, arith, e_to_scalar, random_scalar, scalar_from_bytes},
};
use elliptic_curve::{PrimeField, ops::Reduce};
use serde::{Deserialize, Serialize};
use sm2::{FieldBytes, NonZeroScalar, Scalar};
use std::{collections::HashSet, sync::OnceLock};
use zeroize::{Zeroize, Zeroizing};

/// Protocol version carried in every message.
pub const VERSION: u16 = 1;

fn protocol(msg: impl Into<String>) -> Error {
    Error::Protocol(msg.into())
}

fn check_version(v: u16) -> Result<()> {
    if v == VERSION {
        Ok(())
    } else {
        Err(protocol(format!("unsupported protocol version {v} (this side speaks {VERSION})")))
    }
}

/// Points travel uncompressed: the receiver then only checks the curve equation instead of
/// computing a square root.
fn point_hex(p: &Sm2PublicKey) -> String {
    hex::encode(p.to_sec1_uncompressed())
}

/// A computed point as a key; the identity (probability ≈ 2⁻²⁵⁶) is a protocol error.
fn public(j: &arith::Jac) -> Result<Sm2PublicKey> {
    arith::to_public(j).map_err(|_| protocol("point is the identity"))
}

/// Parse a received point: valid hex, on the curve, not the identity.
fn parse_point(h: &str, what: &str) -> Result<Sm2PublicKey> {
    let b = hex::decode(h).map_err(|_| protocol(format!("{what}: not hex")))?;
    Sm2PublicKey::from_sec1(&b).map_err(|_| protocol(format!("{what}: not a valid curve point")))
}

/// Parse a received scalar: 32 bytes hex, in `[1, n−1]`.
fn parse_scalar(h: &str, what: &str) -> Result<NonZeroScalar> {
    let b = Zeroizing::new(hex::decode(h).map_err(|_| protocol(format!("{what}: not hex")))?);
    scalar_from_bytes(&b).map_err(|_| protocol(format!("{what}: scalar out of range")))
}

fn scalar_hex(s: &Scalar) -> String {
    hex::encode(s.to_repr())
}

fn parse_e(h: &str) -> Result<[u8; 32]> {
    let b = hex::decode(h).map_err(|_| protocol("e: not hex"))?;
    b.try_into().map_err(|_| protocol("e: must be 32 bytes"))
}

/// A Schnorr proof of knowledge of `x` for `X = [x]G`, made non-interactive with SM3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// `T = [t]G`, compressed SEC1, hex.
    pub commitment: String,
    /// `z = t + c·x mod n`, hex.
    pub response: String,
}

fn challenge(label: &[u8], x: &Sm2PublicKey, t: &Sm2PublicKey, context: &[u8]) -> Result<Scalar> {
    let xb = x.to_sec1_compressed();
    let tb = t.to_sec1_compressed();
    let h = sm3_parts(&[
        b"medsign/2p-sm2/pok/v1",
        &(label.len() as u32).to_be_bytes(),
        label,
        &xb,
        &tb,
        &(context.len() as u32).to_be_bytes(),
        context,
    ]);
    Ok(<Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(h)))
}

impl Proof {
    fn prove(x: &Scalar, big_x: &Sm2PublicKey, label: &[u8], context: &[u8]) -> Result<Self> {
        let mut t = random_scalar()?;
        let big_t = public(&arith::mul_g(&t))?;
        let c = challenge(label, big_x, &big_t, context)?;
        let z = *t + c * x;
        t.zeroize();
        Ok(Self { commitment: point_hex(&big_t), response: scalar_hex(&z) })
    }

    fn verify(&self, big_x: &Sm2PublicKey, label: &[u8], context: &[u8]) -> Result<()> {
        let big_t = parse_point(&self.commitment, "proof commitment")?;
        let z = parse_scalar(&self.response, "proof response")?;
        let c = challenge(label, big_x, &big_t, context)?;
        // [z]G − [c]X ≟ T
        if arith::to_public(&arith::mul_g_plus_vartime(&z, big_x, &(-c))).ok() == Some(big_t) {
            Ok(())
        } else {
            Err(protocol("proof of knowledge does not verify"))
        }
    }
}

const LABEL_P1: &[u8] = b"client P1 = [d1^-1]G";
const LABEL_P2: &[u8] = b"server P2 = [d2^-1]G";

/// Client → server: the phone's key-generation message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGenRequest {
    /// protocol version
    pub version: u16,
    /// `P1 = [d1⁻¹]G`, compressed, hex
    pub p1: String,
    /// proof of knowledge of `d1⁻¹`
    pub proof: Proof,
}

/// Server → client: the server's key-generation answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyGenResponse {
    /// protocol version
    pub version: u16,
    /// `P2 = [d2⁻¹]G`, compressed, hex
    pub p2: String,
    /// proof of knowledge of `d2⁻¹`
    pub proof: Proof,
    /// the joint public key `P`, uncompressed SEC1, hex
    pub public_key: String,
}

/// Client → server: first signing round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRequest {
    /// protocol version
    pub version: u16,
    /// `e = SM3(Z_A ‖ M)`, hex (the server checks it against the signing it authorised)
    pub e: String,
    /// `Q1 = [k1]G`, compressed, hex
    pub q1: String,
}

/// Server → client: second signing round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignResponse {
    /// protocol version
    pub version: u16,
    /// `r`, hex
    pub r: String,
    /// `s2 = d2·k3`, hex
    pub s2: String,
    /// `s3 = d2·(r + k2)`, hex
    pub s3: String,
}

/// The client's state between [`ClientKeyGen::start`] and [`ClientKeyGen::finish`].
pub struct ClientKeyGen {
    d1: NonZeroScalar,
    p1: Sm2PublicKey,
    context: Vec<u8>,
}

impl Drop for ClientKeyGen {
    fn drop(&mut self) {
        self.d1.zeroize();
    }
}

impl ClientKeyGen {
    /// Pick `d1` and make the first message. `context` binds the proofs to this enrolment
    /// (e.g. `user=…|key=…`); both sides must use the same bytes.
    pub fn start(context: &[u8]) -> Result<(Self, KeyGenRequest)> {
        let d1 = random_scalar()?;
        let mut x1 = Option::<Scalar>::from(d1.invert()).expect("non-zero");
        let p1 = public(&arith::mul_g(&x1))?;
        let proof = Proof::prove(&x1, &p1, LABEL_P1, context);
        x1.zeroize();
        let req = KeyGenRequest { version: VERSION, p1: point_hex(&p1), proof: proof? };
        Ok((Self { d1, p1, context: context.to_vec() }, req))
    }

    /// Check the server's answer and derive the joint public key.
    pub fn finish(self, resp: &KeyGenResponse) -> Result<ClientKeyShare> {
        check_version(resp.version)?;
        let p2 = parse_point(&resp.p2, "P2")?;
        if p2 == self.p1 {
            return Err(protocol("P2 equals P1"));
        }
        resp.proof.verify(&p2, LABEL_P2, &self.context)?;
        let x1 = Zeroizing::new(Option::<Scalar>::from(self.d1.invert()).expect("non-zero"));
        let p = arith::sub_g(&arith::mul(&p2, &x1));
        let public = arith::to_public(&p).map_err(|_| protocol("joint public key is the identity"))?;
        let claimed = hex::decode(&resp.public_key).map_err(|_| protocol("public_key: not hex"))?;
        if Sm2PublicKey::from_sec1(&claimed).ok() != Some(public) {
            return Err(protocol("the server's public key differs from the one derived here"));
        }
        Ok(ClientKeyShare { d1: self.d1, public, verifier: OnceLock::new() })
    }
}

/// The server's side of key generation.
pub struct ServerKeyGen;

impl ServerKeyGen {
    /// Check the client's proof, pick `d2`, answer, and keep the server share.
    pub fn respond(req: &KeyGenRequest, context: &[u8]) -> Result<(ServerKeyShare, KeyGenResponse)> {
        check_version(req.version)?;
        let p1 = parse_point(&req.p1, "P1")?;
        req.proof.verify(&p1, LABEL_P1, context)?;
        let d2 = random_scalar()?;
        let x2 = Zeroizing::new(Option::<Scalar>::from(d2.invert()).expect("non-zero"));
        let p2 = public(&arith::mul_g(&x2))?;
        let proof = Proof::prove(&x2, &p2, LABEL_P2, context)?;
        let p = arith::sub_g(&arith::mul(&p1, &x2));
        let public = arith::to_public(&p).map_err(|_| protocol("joint public key is the identity"))?;
        let resp = KeyGenResponse {
            version: VERSION,
            p2: point_hex(&p2),
            proof,
            public_key: hex::encode(public.to_sec1_uncompressed()),
        };
        Ok((ServerKeyShare { d2, public }, resp))
    }
}

/// Serialised share layout: `version(1) ‖ scalar(32) ‖ P uncompressed(65)`.
const SHARE_LEN: usize = 1 + 32 + 65;

fn share_to_bytes(s: &NonZeroScalar, p: &Sm2PublicKey) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(SHARE_LEN));
    out.push(VERSION as u8);
    out.extend_from_slice(&s.to_repr());
    out.extend_from_slice(&p.to_sec1_uncompressed());
    out
}

fn share_from_bytes(b: &[u8]) -> Result<(NonZeroScalar, Sm2PublicKey)> {
    if b.len() != SHARE_LEN || b[0] != VERSION as u8 {
        return Err(Error::InvalidKey("not a serialised key share".into()));
    }
    let s = scalar_from_bytes(&b[1..33]).map_err(|_| Error::InvalidKey("key share scalar out of range".into()))?;
    Ok((s, Sm2PublicKey::from_sec1(&b[33..])?))
}

/// The phone's share `d1` and the joint public key. Zeroized on drop.
pub struct ClientKeyShare {
    d1: NonZeroScalar,
    public: Sm2PublicKey,
    /// comb table of `P`, built at the first signature (the client checks every signature)
    verifier: OnceLock<Sm2PrecomputedKey>,
}

impl Drop for ClientKeyShare {
    fn drop(&mut self) {
        self.d1.zeroize();
    }
}

impl ClientKeyShare {
    /// The joint public key `P` (goes into the certificate).
    pub fn public_key(&self) -> &Sm2PublicKey {
        &self.public
    }

    /// Serialise for wrapping (see [`crate::wrap`]); never store the result unwrapped.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        share_to_bytes(&self.d1, &self.public)
    }

    /// Inverse of [`ClientKeyShare::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let (d1, public) = share_from_bytes(b)?;
        Ok(Self { d1, public, verifier: OnceLock::new() })
    }

    /// Start signing `e = SM3(Z_A ‖ M)`.
    pub fn begin_sign(&self, e: &[u8; 32]) -> Result<(ClientSignSession<&Self>, SignRequest)> {
        ClientSignSession::start(self, e)
    }

    /// Start signing message `msg` with distinguishing ID `id` (computes `e`).
    pub fn begin_sign_message(&self, id: &[u8], msg: &[u8]) -> Result<(ClientSignSession<&Self>, SignRequest)> {
        self.begin_sign(&self.public.e(id, msg)?)
    }
}

/// The client's state between its two signing steps (holds the nonce `k1`; single use). `S` is
/// how it holds the share: borrowed (`&ClientKeyShare`) or shared (`Rc`/`Arc`, e.g. across the
/// two calls the WebAssembly wrapper receives from JavaScript).
pub struct ClientSignSession<S: std::borrow::Borrow<ClientKeyShare>> {
    share: S,
    k1: NonZeroScalar,
    e: [u8; 32],
}

impl<S: std::borrow::Borrow<ClientKeyShare>> Drop for ClientSignSession<S> {
    fn drop(&mut self) {
        self.k1.zeroize();
    }
}

impl<S: std::borrow::Borrow<ClientKeyShare>> ClientSignSession<S> {
    /// Pick the nonce `k1` and make the request for `e`.
    pub fn start(share: S, e: &[u8; 32]) -> Result<(Self, SignRequest)> {
        let k1 = random_scalar()?;
        let q1 = public(&arith::mul_g(&k1))?;
        let req = SignRequest { version: VERSION, e: hex::encode(e), q1: point_hex(&q1) };
        Ok((ClientSignSession { share, k1, e: *e }, req))
    }

    /// Combine the server's answer into `(r, s)` and verify it against `P` before releasing it.
    pub fn finish(self, resp: &SignResponse) -> Result<Sm2Signature> {
        check_version(resp.version)?;
        let r = parse_scalar(&resp.r, "r")?;
        let s2 = parse_scalar(&resp.s2, "s2")?;
        let s3 = parse_scalar(&resp.s3, "s3")?;
        let share = self.share.borrow();
        let d1 = *share.d1;
        let s = d1 * *self.k1 * *s2 + d1 * *s3 - *r;
        let sig = Sm2Signature::from_scalars(*r, s).map_err(|_| protocol("combined s is zero"))?;
        share
            .verifier
            .get_or_init(|| Sm2PrecomputedKey::new(&share.public))
            .verify_prehash(&self.e, &sig)
            .map_err(|_| protocol("the server's answer does not give a valid signature"))?;
        Ok(sig)
    }
}

/// Where the server remembers which `Q1` values it has answered (the protocol refuses a repeated
/// `Q1`). The server keeps this in its database; [`SeenQ1Memory`] serves tests and single
/// processes.
pub trait SeenQ1 {
    /// Record `q1` (compressed SEC1); `false` if it was seen before.
    fn first_use(&mut self, q1: &[u8]) -> bool;
}

/// In-memory [`SeenQ1`].
#[derive(Default, Debug)]
pub struct SeenQ1Memory(HashSet<Vec<u8>>);

impl SeenQ1 for SeenQ1Memory {
    fn first_use(&mut self, q1: &[u8]) -> bool {
        self.0.insert(q1.to_vec())
    }
}

/// The server's share `d2` and the joint public key. Zeroized on drop.
pub struct ServerKeyShare {
    d2: NonZeroScalar,
    public: Sm2PublicKey,
}

impl Drop for ServerKeyShare {
    fn drop(&mut self) {
        self.d2.zeroize();
    }
}

impl ServerKeyShare {
    /// The joint public key `P`.
    pub fn public_key(&self) -> &Sm2PublicKey {
        &self.public
    }

    /// Serialise for wrapping under the server's KEK.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        share_to_bytes(&self.d2, &self.public)
    }

    /// Inverse of [`ServerKeyShare::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let (d2, public) = share_from_bytes(b)?;
        Ok(Self { d2, public })
    }

    /// Answer a signing request for the `e` that the server has authorised (a pending signing
    /// of this user). Refuses another `e`, an invalid or repeated `Q1`.
    pub fn sign(&self, req: &SignRequest, authorised_e: &[u8; 32], seen: &mut dyn SeenQ1) -> Result<SignResponse> {
        check_version(req.version)?;
        let e = parse_e(&req.e)?;
        if !crate::hash::ct_eq(&e, authorised_e) {
            return Err(protocol("e does not match the authorised signing"));
        }
        let q1 = parse_point(&req.q1, "Q1")?;
        let q1_bytes = q1.to_sec1_compressed();
        if !seen.first_use(&q1_bytes) {
            return Err(protocol("Q1 was used before (replay)"));
        }
        let e = e_to_scalar(&e);
        loop {
            let (mut k2, blind) = crate::sm2::nonce_and_blind()?;
            let mut k3 = random_scalar()?;
            let point = arith::add(&arith::mul(&q1, &k3), &arith::mul_g(&k2));
            let Some(x1) = arith::x_mod_n(&point, &blind) else {
                continue;
            };
            let r = e + x1;
            if bool::from(r.is_zero()) {
                continue;
            }
            let s2 = *self.d2 * *k3;
            let s3 = *self.d2 * (r + *k2);
            k2.zeroize();
            k3.zeroize();
            return Ok(SignResponse { version: VERSION, r: scalar_hex(&r), s2: scalar_hex(&s2), s3: scalar_hex(&s3) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm2::DEFAULT_ID;
    use signature::Verifier;

    fn keygen(ctx: &[u8]) -> (ClientKeyShare, ServerKeyShare) {
        let (c, req) = ClientKeyGen::start(ctx).unwrap();
        // messages travel as JSON
        let req: KeyGenRequest = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        let (s, resp) = ServerKeyGen::respond(&req, ctx).unwrap();
        let resp: KeyGenResponse = serde_json::from_str(&serde_json::to_string(&resp).unwrap()).unwrap();
        let c = c.finish(&resp).unwrap();
        assert_eq!(c.public_key(), s.public_key());
        (c, s)
    }

    fn sign(c: &ClientKeyShare, s: &ServerKeyShare, seen: &mut SeenQ1Memory, msg: &[u8]) -> Sm2Signature {
        let (sess, req) = c.begin_sign_message(DEFAULT_ID, msg).unwrap();
        let e = c.public_key().e(DEFAULT_ID, msg).unwrap();
        let resp = s.sign(&req, &e, seen).unwrap();
        sess.finish(&resp).unwrap()
    }

    /// Issue #2: 1,000 random two-party signatures (10 keys × 100 messages) verify with the
    /// ordinary SM2 verifier — ours and, independently, the RustCrypto `sm2` crate's.
    #[test]
    fn thousand_two_party_signatures_verify_with_ordinary_verifiers() {
        let mut seen = SeenQ1Memory::default();
        for k in 0..10 {
            let (c, s) = keygen(format!("user={k}").as_bytes());
            let vk =
                sm2::dsa::VerifyingKey::from_sec1_bytes("1234567812345678", &c.public_key().to_sec1_uncompressed())
                    .unwrap();
            for i in 0..100 {
                let msg = format!("处方 #{k}-{i}");
                let sig = sign(&c, &s, &mut seen, msg.as_bytes());
                c.public_key().verify(DEFAULT_ID, msg.as_bytes(), &sig).unwrap();
                vk.verify(msg.as_bytes(), &sm2::dsa::Signature::from_slice(&sig.to_raw()).unwrap()).unwrap();
            }
        }
    }

    #[test]
    fn forged_proofs_are_rejected() {
        let (_c, mut req) = ClientKeyGen::start(b"ctx").unwrap();
        // wrong context
        assert!(ServerKeyGen::respond(&req, b"other").is_err());
        // a rogue P1 with a proof copied from another key
        let (_c2, req2) = ClientKeyGen::start(b"ctx").unwrap();
        let mut rogue = req.clone();
        rogue.proof = req2.proof.clone();
        assert!(matches!(ServerKeyGen::respond(&rogue, b"ctx"), Err(Error::Protocol(_))));
        // tampered response scalar
        let mut z = hex::decode(&req.proof.response).unwrap();
        z[31] ^= 1;
        req.proof.response = hex::encode(z);
        assert!(ServerKeyGen::respond(&req, b"ctx").is_err());

        // the client rejects a server proof that does not match P2
        let (c, req) = ClientKeyGen::start(b"ctx").unwrap();
        let (_s, mut resp) = ServerKeyGen::respond(&req, b"ctx").unwrap();
        let (_c3, other) = ClientKeyGen::start(b"ctx").unwrap();
        resp.p2 = other.p1;
        assert!(matches!(c.finish(&resp), Err(Error::Protocol(_))));
    }

    #[test]
    fn client_rejects_a_public_key_it_did_not_derive() {
        let (c, req) = ClientKeyGen::start(b"ctx").unwrap();
        let (_s, mut resp) = ServerKeyGen::respond(&req, b"ctx").unwrap();
        let other = crate::sm2::Sm2SecretKey::generate().unwrap();
        resp.public_key = hex::encode(other.public_key().to_sec1_uncompressed());
        assert!(matches!(c.finish(&resp), Err(Error::Protocol(_))));
    }

    #[test]
    fn off_curve_and_identity_points_are_rejected() {
        let (c, s) = keygen(b"ctx");
        let mut seen = SeenQ1Memory::default();
        let e = c.public_key().e(DEFAULT_ID, b"m").unwrap();
        let (_sess, req) = c.begin_sign(&e).unwrap();
        // flip a byte of x: (almost surely) not on the curve
        let mut bad = req.clone();
        let mut q = hex::decode(&bad.q1).unwrap();
        q[10] ^= 0x55;
        bad.q1 = hex::encode(&q);
        // may by chance land on the curve (≈1/2); try a few until it does not
        let mut rejected = s.sign(&bad, &e, &mut seen).is_err();
        for i in 0..8u8 {
            if rejected {
                break;
            }
            q[11] ^= i + 1;
            bad.q1 = hex::encode(&q);
            rejected = s.sign(&bad, &e, &mut seen).is_err();
        }
        assert!(rejected);
        for junk in ["00", "", "zz", &"04".repeat(65)] {
            let mut j = req.clone();
            j.q1 = junk.to_string();
            assert!(matches!(s.sign(&j, &e, &mut seen), Err(Error::Protocol(_))), "{junk}");
        }
        let (k, r) = ClientKeyGen::start(b"ctx").unwrap();
        let mut r2 = r.clone();
        r2.p1 = "00".into();
        assert!(ServerKeyGen::respond(&r2, b"ctx").is_err());
        drop(k);
    }

    #[test]
    fn reused_q1_and_unauthorised_e_are_rejected() {
        let (c, s) = keygen(b"ctx");
        let mut seen = SeenQ1Memory::default();
        let e = c.public_key().e(DEFAULT_ID, b"m").unwrap();
        let (_sess, req) = c.begin_sign(&e).unwrap();
        let other_e = c.public_key().e(DEFAULT_ID, b"other").unwrap();
        assert!(matches!(s.sign(&req, &other_e, &mut seen), Err(Error::Protocol(_))));
        s.sign(&req, &e, &mut seen).unwrap();
        assert!(matches!(s.sign(&req, &e, &mut seen), Err(Error::Protocol(m)) if m.contains("replay")));
    }

    #[test]
    fn tampered_round_messages_are_rejected_by_the_client() {
        let (c, s) = keygen(b"ctx");
        let mut seen = SeenQ1Memory::default();
        let e = c.public_key().e(DEFAULT_ID, b"m").unwrap();
        for field in 0..3 {
            let (sess, req) = c.begin_sign(&e).unwrap();
            let mut resp = s.sign(&req, &e, &mut seen).unwrap();
            let target = match field {
                0 => &mut resp.r,
                1 => &mut resp.s2,
                _ => &mut resp.s3,
            };
            let mut b = hex::decode(&*target).unwrap();
            b[31] ^= 1;
            *target = hex::encode(b);
            assert!(matches!(sess.finish(&resp), Err(Error::Protocol(_))), "field {field}");
        }
        let (sess, req) = c.begin_sign(&e).unwrap();
        let mut resp = s.sign(&req, &e, &mut seen).unwrap();
        resp.version = 9;
        assert!(sess.finish(&resp).is_err());
        let mut req2 = c.begin_sign(&e).unwrap().1;
        req2.version = 0;
        assert!(s.sign(&req2, &e, &mut seen).is_err());
    }

    #[test]
    fn a_share_for_another_key_cannot_sign() {
        let (c1, _s1) = keygen(b"a");
        let (_c2, s2) = keygen(b"b");
        let mut seen = SeenQ1Memory::default();
        let e = c1.public_key().e(DEFAULT_ID, b"m").unwrap();
        let (sess, req) = c1.begin_sign(&e).unwrap();
        let resp = s2.sign(&req, &e, &mut seen).unwrap();
        assert!(sess.finish(&resp).is_err());
    }

    #[test]
    fn shares_round_trip_through_bytes_and_wrapping() {
        let (c, s) = keygen(b"ctx");
        let kek = crate::wrap::Kek::generate().unwrap();
        let blob = kek.wrap(&c.to_bytes(), b"d1").unwrap();
        let c2 = ClientKeyShare::from_bytes(&kek.unwrap(&blob, b"d1").unwrap()).unwrap();
        let s2 = ServerKeyShare::from_bytes(&s.to_bytes()).unwrap();
        let mut seen = SeenQ1Memory::default();
        let sig = sign(&c2, &s2, &mut seen, b"m");
        c.public_key().verify(DEFAULT_ID, b"m", &sig).unwrap();
        assert!(ClientKeyShare::from_bytes(&[1u8; 10]).is_err());
        assert!(ServerKeyShare::from_bytes(&[0u8; SHARE_LEN]).is_err());
    }
}
