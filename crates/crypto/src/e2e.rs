//! The phone ↔ server end-to-end channel (issue #17 item 3, docs/gateway.md): what a phone sends
//! through the DMZ gateway is readable only by the hospital's servers, and their answer only by
//! that phone — the gateway sees the envelope, its size and its time.
//!
//! Every request is its own exchange with the server's channel key `P` (an SM2 key the servers
//! share; the phone pins `SM3(P)`): an ephemeral key `k`, `C1 = [k]G`, the shared point
//! `S = [k]P`, and two SM4-GCM keys `SM3(label ‖ x_S ‖ y_S ‖ C1 ‖ P)[..16]` with different
//! labels, one per direction. A request is `C1 ‖ SM4-GCM(k_req, plaintext)`; its answer is
//! `SM4-GCM(k_resp, plaintext)`, which only the holder of `k` (the phone that asked) can open,
//! and which cannot be taken for the answer to another request (another `k`, another key).
//! Nothing is kept between requests, so any server instance behind any gateway can answer, and a
//! key is never used for more than one message in each direction (no nonce bookkeeping).
//!
//! Replays are the server's business: the plaintext carries the phone's time, and the server
//! keeps `SM3(C1)` for the window it accepts ([`request_id`]).
//!
//! The channel key can be replaced without making every phone activate again: each new key
//! (generation `g`) is endorsed by the key before it, an SM2 signature over
//! `"medsign/e2e/v1/succession" ‖ g (4 bytes, big-endian) ‖ the new point` ([`endorse`]). A phone
//! that pinned an older key [`follow`]s the endorsements to the current one and pins that; a key
//! made without an endorsement (the old one was compromised) breaks the chain, and phones pinned
//! before it stop until they are activated again.

use crate::{
    Error, Result,
    seal::derive,
    sm2::{DEFAULT_ID, Sm2PublicKey, Sm2SecretKey, Sm2Signature},
    wrap::Kek,
};
use zeroize::Zeroizing;

const REQUEST: &[u8] = b"medsign/e2e/v1/request";
const RESPONSE: &[u8] = b"medsign/e2e/v1/response";
/// Associated data of both directions: the protocol and its version.
const AAD: &[u8] = b"medsign/e2e/v1";
const C1_LEN: usize = 65;
/// What an endorsement of the next channel key signs, before the generation and the point.
const SUCCESSION: &[u8] = b"medsign/e2e/v1/succession";

/// The fingerprint a phone pins: `SM3` of the channel key's uncompressed point.
pub fn fingerprint(key: &Sm2PublicKey) -> [u8; 32] {
    crate::hash::sm3(&key.to_sec1_uncompressed())
}

/// What identifies a request for replay checks: `SM3(C1)` (a fresh point per request).
pub fn request_id(blob: &[u8]) -> Result<[u8; 32]> {
    if blob.len() <= C1_LEN {
        return Err(Error::InvalidInput("端到端报文过短 / end-to-end message too short".into()));
    }
    Ok(crate::hash::sm3(&blob[..C1_LEN]))
}

fn succession_message(generation: u32, next: &Sm2PublicKey) -> Vec<u8> {
    [SUCCESSION, &generation.to_be_bytes(), &next.to_sec1_uncompressed()].concat()
}

/// The key `previous` endorses `next` as the channel key of `generation`.
pub fn endorse(previous: &Sm2SecretKey, generation: u32, next: &Sm2PublicKey) -> Result<Sm2Signature> {
    previous.sign(DEFAULT_ID, &succession_message(generation, next))
}

/// One channel key in the succession a server publishes, oldest first.
pub struct Step {
    /// 1 for the first key, one more for each after it
    pub generation: u32,
    /// the key
    pub key: Sm2PublicKey,
    /// the previous generation's signature over this key ([`endorse`]); `None` for a first key or
    /// one made after a compromise
    pub endorsement: Option<Sm2Signature>,
}

/// Whether a phone that pinned `pinned` may move to the last key of `steps`: the pinned key is
/// among them and every key after it is endorsed by the one before, generation after generation.
pub fn follow(pinned: &[u8; 32], steps: &[Step]) -> Result<()> {
    let unknown = || {
        Error::InvalidInput("钉住的通道密钥不在密钥更替记录中 / the pinned channel key is not in the succession".into())
    };
    let start = steps.iter().position(|s| fingerprint(&s.key) == *pinned).ok_or_else(unknown)?;
    for pair in steps[start..].windows(2) {
        let (before, next) = (&pair[0], &pair[1]);
        if before.generation.checked_add(1) != Some(next.generation) {
            return Err(Error::InvalidInput(
                "通道密钥的代数不连续 / the channel keys' generations are not consecutive".into(),
            ));
        }
        let Some(sig) = &next.endorsement else {
            return Err(Error::InvalidInput(
                "通道密钥更替链已中断（旧密钥作废）/ the succession is broken (the old key was withdrawn)".into(),
            ));
        };
        before.key.verify(DEFAULT_ID, &succession_message(next.generation, &next.key), sig)?;
    }
    Ok(())
}

/// The phone's side of one exchange: opens the answer to the request it sealed.
pub struct Opener {
    response: Kek,
}

/// Seal a request to the channel key `to`; keep the [`Opener`] for its answer.
pub fn seal_request(to: &Sm2PublicKey, plaintext: &[u8]) -> Result<(Vec<u8>, Opener)> {
    let eph = Sm2SecretKey::generate()?;
    let c1 = eph.public_key().to_sec1_uncompressed();
    let shared = eph.agree(to)?;
    let request = derive(REQUEST, &shared, &c1, to)?;
    let response = derive(RESPONSE, &shared, &c1, to)?;
    let mut blob = c1;
    blob.extend_from_slice(&request.wrap(plaintext, AAD)?);
    Ok((blob, Opener { response }))
}

impl Opener {
    /// Open the server's answer (fails for any other answer, or one changed on the way).
    pub fn open(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.response.unwrap(blob, AAD)
    }
}

/// The server's side of one exchange: seals the answer for the phone that asked.
pub struct Responder {
    response: Kek,
}

/// Open a request sealed to `key`; the [`Responder`] seals its answer.
pub fn open_request(key: &Sm2SecretKey, blob: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Responder)> {
    request_id(blob)?;
    let c1 = &blob[..C1_LEN];
    let shared = key.agree(&Sm2PublicKey::from_sec1(c1)?)?;
    let request = derive(REQUEST, &shared, c1, key.public_key())?;
    let response = derive(RESPONSE, &shared, c1, key.public_key())?;
    let plaintext = request.unwrap(&blob[C1_LEN..], AAD)?;
    Ok((plaintext, Responder { response }))
}

impl Responder {
    /// Seal the answer.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.response.wrap(plaintext, AAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_and_its_answer_open_only_at_the_two_ends() {
        let server = Sm2SecretKey::generate().unwrap();
        let (blob, opener) = seal_request(server.public_key(), b"{\"path\":\"/mobile/v1/pending\"}").unwrap();
        let (pt, responder) = open_request(&server, &blob).unwrap();
        assert_eq!(pt.as_slice(), b"{\"path\":\"/mobile/v1/pending\"}");
        let answer = responder.seal(b"{\"status\":200}").unwrap();
        assert_eq!(opener.open(&answer).unwrap().as_slice(), b"{\"status\":200}");

        // a gateway with its own key learns nothing, and cannot answer in the server's name
        let gateway = Sm2SecretKey::generate().unwrap();
        assert!(open_request(&gateway, &blob).is_err());
        let (_, forged) = {
            let (b, _) = seal_request(gateway.public_key(), b"x").unwrap();
            open_request(&gateway, &b).unwrap()
        };
        assert!(opener.open(&forged.seal(b"{\"status\":200}").unwrap()).is_err(), "an answer from another exchange");
        // the answer to another request of the same phone is not this one's
        let (blob2, opener2) = seal_request(server.public_key(), b"second").unwrap();
        let (_, responder2) = open_request(&server, &blob2).unwrap();
        assert!(opener.open(&responder2.seal(b"other").unwrap()).is_err());
        assert!(opener2.open(&answer).is_err());
        // the request's own key cannot open the answer (one key per direction)
        assert!(open_request(&server, &[&blob[..65], &answer[..]].concat()).is_err());
        // any bit changed on the way is refused
        for i in [0, 30, 64, 65, 80, blob.len() - 1] {
            let mut t = blob.clone();
            t[i] ^= 1;
            assert!(open_request(&server, &t).is_err(), "byte {i}");
        }
        let mut a = answer.clone();
        a[3] ^= 0x80;
        assert!(opener.open(&a).is_err());
        assert!(open_request(&server, &blob[..65]).is_err());
        assert!(open_request(&server, &[]).is_err());
        // every request is a fresh point: replays are recognised by it
        let (again, _) = seal_request(server.public_key(), b"{\"path\":\"/mobile/v1/pending\"}").unwrap();
        assert_ne!(request_id(&blob).unwrap(), request_id(&again).unwrap());
        assert_eq!(request_id(&blob).unwrap(), crate::hash::sm3(&blob[..65]));
        assert_eq!(fingerprint(server.public_key()), crate::hash::sm3(&server.public_key().to_sec1_uncompressed()));
    }

    #[test]
    fn a_pinned_key_leads_only_along_endorsements() {
        let keys: Vec<_> = (0..4).map(|_| Sm2SecretKey::generate().unwrap()).collect();
        let step = |g: u32, endorsed: bool| Step {
            generation: g,
            key: *keys[g as usize - 1].public_key(),
            endorsement: endorsed
                .then(|| endorse(&keys[g as usize - 2], g, keys[g as usize - 1].public_key()).unwrap()),
        };
        let chain = vec![step(1, false), step(2, true), step(3, true)];
        let fp = |i: usize| fingerprint(keys[i].public_key());
        for i in 0..3 {
            follow(&fp(i), &chain).unwrap();
        }
        assert!(follow(&fp(3), &chain).is_err(), "a key not in the chain");
        // an endorsement by another key, for another generation, or of another point
        let mut forged = vec![step(1, false), step(2, true), step(3, true)];
        forged[2].endorsement = Some(endorse(&keys[3], 3, keys[2].public_key()).unwrap());
        assert!(follow(&fp(0), &forged).is_err());
        assert!(follow(&fp(2), &forged).is_ok(), "from the last key nothing is followed");
        forged[2].endorsement = Some(endorse(&keys[1], 4, keys[2].public_key()).unwrap());
        assert!(follow(&fp(1), &forged).is_err());
        forged[2].endorsement = Some(endorse(&keys[1], 3, keys[3].public_key()).unwrap());
        assert!(follow(&fp(1), &forged).is_err());
        // a gap in the generations, and a key made after a compromise, stop the phone
        let gap = vec![step(1, false), step(3, true)];
        assert!(follow(&fp(0), &gap).is_err());
        let broken = vec![step(1, false), step(2, false), step(3, true)];
        assert!(follow(&fp(0), &broken).is_err());
        follow(&fp(1), &broken).unwrap();
    }
}
