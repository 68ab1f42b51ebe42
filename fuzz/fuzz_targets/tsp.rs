#![no_main]
//! RFC 3161 request, response and TSTInfo decoding.
use libfuzzer_sys::fuzz_target;
use medsign_pki::tsp::{TimeStampReq, TimeStampResp, TstInfo, decode};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<TimeStampReq>("req", data);
    let _ = decode::<TimeStampResp>("resp", data);
    if let Ok(t) = decode::<TstInfo>("tst", data) {
        let _ = t.accuracy.map(|a| a.to_micros());
    }
});
