//! Cross-check our SM2 keys and signatures against the RustCrypto `sm2` crate on many random
//! keys: `cargo run --release -p medsign-crypto --example stress -- 100000`.
use medsign_crypto::sm2::{DEFAULT_ID, Sm2SecretKey};
use signature::Verifier;
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(100000);
    let mut bad = 0;
    for i in 0..n {
        let key = Sm2SecretKey::generate().unwrap();
        let msg = (i as u64).to_be_bytes();
        let sig = key.sign(DEFAULT_ID, &msg).unwrap();
        let vk = sm2::dsa::VerifyingKey::from_sec1_bytes("1234567812345678", &key.public_key().to_sec1_uncompressed())
            .unwrap();
        let ok_theirs = vk.verify(&msg, &sm2::dsa::Signature::from_slice(&sig.to_raw()).unwrap()).is_ok();
        let ok_ours = key.public_key().verify(DEFAULT_ID, &msg, &sig).is_ok();
        // and the public key itself against the crate's derivation
        let theirs_pk = sm2::SecretKey::from_slice(key.to_bytes().as_ref()).unwrap().public_key();
        let pk_ok = theirs_pk.to_sec1_bytes().as_ref() == key.public_key().to_sec1_uncompressed().as_slice();
        if !ok_theirs || !ok_ours || !pk_ok {
            bad += 1;
            println!(
                "MISMATCH i={i} theirs={ok_theirs} ours={ok_ours} pk={pk_ok} d={}",
                hex::encode(key.to_bytes().as_ref())
            );
        }
    }
    println!("{n} runs, {bad} bad");
}
