//! Single-thread throughput of medsign's signers, in the shape of `openssl speed`:
//! `cargo run --release -p medsign-crypto --example speed [-- SECONDS]`.
//! Prints `name sign/s verify/s` lines; bench/crypto-vs-openssl.sh pairs them with OpenSSL's.

use medsign_crypto::{
    KeyAlg, PrivateKey,
    sm2::DEFAULT_ID,
    twoparty::{ClientKeyGen, SeenQ1Memory, ServerKeyGen},
};
use std::time::{Duration, Instant};

fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    // warm up, then count whole iterations for `secs`
    for _ in 0..50 {
        f();
    }
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while start.elapsed() < limit {
        for _ in 0..20 {
            f();
        }
        n += 20;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let msg = [0x5au8; 32];
    for alg in [KeyAlg::Sm2, KeyAlg::P256, KeyAlg::Rsa2048] {
        let key = PrivateKey::generate(alg).unwrap();
        let scheme = key.public_key().default_scheme();
        let pubk = key.public_key();
        // sign and verify a 32-byte digest, as `openssl speed` does
        let digest = if alg == KeyAlg::Sm2 {
            pubk.as_sm2().unwrap().e(DEFAULT_ID, &msg).unwrap().to_vec()
        } else {
            msg.to_vec()
        };
        let sig = key.sign_digest(scheme, &digest).unwrap();
        let s = rate(secs, || {
            std::hint::black_box(key.sign_digest(scheme, &digest).unwrap());
        });
        let v = rate(secs, || {
            pubk.verify_digest(scheme, &digest, std::hint::black_box(&sig)).unwrap();
        });
        println!("{} {:.0} {:.0}", alg.name(), s, v);
    }
    // the RustCrypto `sm2` crate on the same digest: the baseline our own arithmetic replaces
    {
        use signature::hazmat::{PrehashSigner, PrehashVerifier};
        let sk = sm2::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let signer = sm2::dsa::SigningKey::new("1234567812345678", &sk).unwrap();
        let vk = signer.verifying_key().clone();
        let sig: sm2::dsa::Signature = signer.sign_prehash(&msg).unwrap();
        let s = rate(secs, || {
            std::hint::black_box(PrehashSigner::<sm2::dsa::Signature>::sign_prehash(&signer, &msg).unwrap());
        });
        let v = rate(secs, || vk.verify_prehash(&msg, std::hint::black_box(&sig)).unwrap());
        println!("sm2-crate {s:.0} {v:.0}");
    }
    // two-party: both halves in one process, a full signature per iteration
    let (c, req) = ClientKeyGen::start(b"bench").unwrap();
    let (server, resp) = ServerKeyGen::respond(&req, b"bench").unwrap();
    let client = c.finish(&resp).unwrap();
    let e = client.public_key().e(DEFAULT_ID, &msg).unwrap();
    let mut seen = SeenQ1Memory::default();
    let t = rate(secs, || {
        let (sess, r) = client.begin_sign(&e).unwrap();
        let resp = server.sign(&r, &e, &mut seen).unwrap();
        std::hint::black_box(sess.finish(&resp).unwrap());
    });
    // the server half alone, on requests prepared beforehand
    let reqs: Vec<_> = (0..2048).map(|_| client.begin_sign(&e).unwrap().1).collect();
    let mut seen2 = SeenQ1Memory::default();
    let mut i = 0;
    let server_half = rate(secs, || {
        i = (i + 1) % reqs.len();
        if i == 0 {
            seen2 = SeenQ1Memory::default();
        }
        std::hint::black_box(server.sign(&reqs[i], &e, &mut seen2).unwrap());
    });
    println!("sm2-2p {t:.0} 0");
    println!("sm2-2p-server-half {server_half:.0} 0");
}
