//! The integration API's message authentication, shared by the server that checks it and every
//! client that makes it (`medsign-client`, the guide's Python and Java, `web/sdk`): an app's
//! request-signing key derived from its secret, the HMAC-SM3 over a request, and the signature
//! on a webhook. docs/integration.md describes the same bytes.

use crate::hash;

/// The request-signing key an app derives from its secret: HMAC-SM3(secret, "medsign/api-hmac/v1").
pub fn request_key(secret: &str) -> [u8; 32] {
    hash::hmac_sm3(secret.as_bytes(), &[b"medsign/api-hmac/v1"])
}

/// `X-Signature` of a request: hex HMAC-SM3 over
/// `method "\n" path "\n" query "\n" timestamp "\n" nonce "\n" hex(SM3(body))`.
pub fn sign_request(
    key: &[u8; 32],
    method: &str,
    path: &str,
    query: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    let body_hash = hex::encode(hash::sm3(body));
    let text = format!("{method}\n{path}\n{query}\n{timestamp}\n{nonce}\n{body_hash}");
    hex::encode(hash::hmac_sm3(key, &[text.as_bytes()]))
}

/// `X-Medsign-Signature` of a webhook: hex HMAC-SM3 over `timestamp "\n" body` with the app's
/// request-signing key.
pub fn webhook_signature(key: &[u8], timestamp: &str, body: &str) -> String {
    hex::encode(hash::hmac_sm3(key, &[timestamp.as_bytes(), b"\n", body.as_bytes()]))
}

/// Is `signature` (hex, any case) the webhook signature of `timestamp` and `body`? Compared in
/// constant time.
pub fn webhook_is_signed(key: &[u8], timestamp: &str, body: &str, signature: &str) -> bool {
    hash::ct_eq(webhook_signature(key, timestamp, body).as_bytes(), signature.trim().to_ascii_lowercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed vectors: the guide's Python and Java examples compute the same bytes.
    #[test]
    fn the_macs_are_the_documented_bytes() {
        let key = request_key("secret");
        let expect = hash::hmac_sm3(b"secret", &[b"medsign/api-hmac/v1"]);
        assert_eq!(key, expect);
        let sig = sign_request(&key, "POST", "/api/v1/users", "", "1700000000", "n-1", b"{}");
        let text = format!("POST\n/api/v1/users\n\n1700000000\nn-1\n{}", hex::encode(hash::sm3(b"{}")));
        assert_eq!(sig, hex::encode(hash::hmac_sm3(&key, &[text.as_bytes()])));
        let w = webhook_signature(&key, "1700000000", "{\"a\":1}");
        assert!(webhook_is_signed(&key, "1700000000", "{\"a\":1}", &w.to_uppercase()));
        assert!(!webhook_is_signed(&key, "1700000001", "{\"a\":1}", &w));
        assert!(!webhook_is_signed(&key, "1700000000", "{\"a\":2}", &w));
    }
}
