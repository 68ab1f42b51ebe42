#![no_main]
//! Certificates and PKCS#10 requests: parse, read every field, validate against itself.
use libfuzzer_sys::fuzz_target;
use medsign_pki::{alg::Sm2IdPolicy, cert::Cert, csr, path};

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = Cert::load_all(data) {
        for c in &certs {
            let _ = (c.subject_display(), c.issuer_display(), c.serial_hex(), c.not_before(), c.not_after());
            let _ = (c.basic_constraints(), c.key_usage(), c.ext_key_usage(), c.subject_key_id(), c.authority_key_id());
            let _ = c.verify_signed_by(c, Sm2IdPolicy::AllowEmpty);
        }
        let _ = path::validate(&certs[0], &certs, &certs, &path::PathOptions::at(chrono::Utc::now()));
    }
    let _ = csr::parse(data, Sm2IdPolicy::AllowEmpty);
});
