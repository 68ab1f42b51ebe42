#![no_main]
//! Keys, signatures and two-party messages from untrusted bytes (the server half answers a
//! fuzzed signing request with a fixed share).
use libfuzzer_sys::fuzz_target;
use medsign_crypto::{
    PrivateKey, PublicKey,
    sm2::Sm2Signature,
    twoparty::{ClientKeyGen, KeyGenRequest, SeenQ1Memory, ServerKeyGen, ServerKeyShare, SignRequest},
};
use std::sync::OnceLock;

fn server() -> &'static ServerKeyShare {
    static S: OnceLock<ServerKeyShare> = OnceLock::new();
    S.get_or_init(|| {
        let (_c, req) = ClientKeyGen::start(b"fuzz").unwrap();
        ServerKeyGen::respond(&req, b"fuzz").unwrap().0
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = PrivateKey::from_bytes(data, Some(b"pass"));
    let _ = PublicKey::from_bytes(data);
    let _ = Sm2Signature::from_der(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(req) = serde_json::from_str::<SignRequest>(s) {
            let e = [7u8; 32];
            let _ = server().sign(&req, &e, &mut SeenQ1Memory::default());
        }
        if let Ok(req) = serde_json::from_str::<KeyGenRequest>(s) {
            let _ = ServerKeyGen::respond(&req, b"fuzz");
        }
    }
});
