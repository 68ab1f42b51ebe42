//! A test driver, not a server: the real server half of two-party SM2 (`medsign_crypto::twoparty`)
//! behind JSON lines on stdin/stdout, so the node:test tests of the WebAssembly wrapper
//! (web/wasm/test) can run the whole protocol before the mobile API carries it over HTTP.
//!
//! In:  {"op":"keygen","context":"…","request":{…}}  |  {"op":"sign","e":"hex","request":{…}}
//!      {"op":"pin","verifier":"hex"}  |  {"op":"unlock","verifier":"hex"}
//! Out: {"response":{…}} or {"error":"…"}; one line each. `verify` checks a DER signature hex.
//! `pin` / `unlock` stand in for the server's PIN verifier check (`/mobile/v1/pin`, `/unlock`):
//! they keep one verifier and one unlock secret, without counting.

use medsign_crypto::twoparty::{SeenQ1Memory, ServerKeyGen, ServerKeyShare};
use std::io::{BufRead, Write};

fn main() {
    let mut share: Option<ServerKeyShare> = None;
    let mut seen = SeenQ1Memory::default();
    let mut pin: Option<(String, String)> = None;
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = writeln!(out, "{}", serde_json::json!({"error": e.to_string()}));
                continue;
            }
        };
        let answer = (|| -> Result<serde_json::Value, String> {
            match v["op"].as_str() {
                Some("keygen") => {
                    let req = serde_json::from_value(v["request"].clone()).map_err(|e| e.to_string())?;
                    let ctx = v["context"].as_str().unwrap_or_default();
                    let (s, resp) = ServerKeyGen::respond(&req, ctx.as_bytes()).map_err(|e| e.to_string())?;
                    share = Some(s);
                    Ok(serde_json::json!({"response": resp}))
                }
                Some("sign") => {
                    let s = share.as_ref().ok_or("no key yet")?;
                    let req = serde_json::from_value(v["request"].clone()).map_err(|e| e.to_string())?;
                    let e: [u8; 32] = hex::decode(v["e"].as_str().unwrap_or_default())
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or("e: 32 bytes hex")?;
                    let resp = s.sign(&req, &e, &mut seen).map_err(|e| e.to_string())?;
                    Ok(serde_json::json!({"response": resp}))
                }
                Some("pin") => {
                    let secret = hex::encode(medsign_crypto::rng::bytes::<32>().map_err(|e| e.to_string())?);
                    pin = Some((v["verifier"].as_str().unwrap_or_default().to_string(), secret.clone()));
                    Ok(serde_json::json!({"response": {"unlock_secret": secret}}))
                }
                Some("unlock") => match &pin {
                    Some((verifier, secret)) if v["verifier"].as_str() == Some(verifier.as_str()) => {
                        Ok(serde_json::json!({"response": {"unlock_secret": secret}}))
                    }
                    Some(_) => Err("wrong PIN".into()),
                    None => Err("no PIN set".into()),
                },
                Some("verify") => {
                    let s = share.as_ref().ok_or("no key yet")?;
                    let e: [u8; 32] = hex::decode(v["e"].as_str().unwrap_or_default())
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or("e: 32 bytes hex")?;
                    let der = hex::decode(v["signature"].as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
                    let sig = medsign_crypto::sm2::Sm2Signature::from_der(&der).map_err(|e| e.to_string())?;
                    let ok = s.public_key().verify_prehash(&e, &sig).is_ok();
                    Ok(serde_json::json!({"valid": ok}))
                }
                _ => Err("op: keygen | sign | verify | pin | unlock".into()),
            }
        })();
        let line = match answer {
            Ok(v) => v,
            Err(e) => serde_json::json!({"error": e}),
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
