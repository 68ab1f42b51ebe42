#![no_main]
//! CMS SignedData: parse and run the whole verifier (attached and detached).
use libfuzzer_sys::fuzz_target;
use medsign_pki::cms::{self, VerifyOptions};

fuzz_target!(|data: &[u8]| {
    let opts = VerifyOptions::default();
    let _ = cms::verify(data, None, &opts);
    let _ = cms::verify(data, Some(b"content"), &opts);
});
