#![no_main]
//! CRLs: parse and read every entry.
use libfuzzer_sys::fuzz_target;
use medsign_pki::crl::Crl;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Crl::from_bytes(data) {
        let _ = (c.this_update(), c.next_update(), c.number(), c.entries());
        let _ = c.find(&[1, 2, 3]);
    }
});
