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

use crate::{
    Error, Result,
    seal::derive,
    sm2::{Sm2PublicKey, Sm2SecretKey},
    wrap::Kek,
};
use zeroize::Zeroizing;

const REQUEST: &[u8] = b"medsign/e2e/v1/request";
const RESPONSE: &[u8] = b"medsign/e2e/v1/response";
/// Associated data of both directions: the protocol and its version.
const AAD: &[u8] = b"medsign/e2e/v1";
const C1_LEN: usize = 65;

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
}
