//! Criterion benchmarks of the crypto core (issue #2 performance targets; the side-by-side run
//! against OpenSSL is bench/crypto-vs-openssl.sh).

use criterion::{Criterion, criterion_group, criterion_main};
use medsign_crypto::{
    KeyAlg, PrivateKey,
    sm2::DEFAULT_ID,
    twoparty::{ClientKeyGen, SeenQ1Memory, ServerKeyGen},
};
use std::hint::black_box;

fn signers(c: &mut Criterion) {
    let msg = [0x5au8; 32];
    for alg in [KeyAlg::Sm2, KeyAlg::P256, KeyAlg::Rsa2048] {
        let key = PrivateKey::generate(alg).unwrap();
        let pubk = key.public_key();
        let scheme = pubk.default_scheme();
        let digest = match pubk.as_sm2() {
            Some(k) => k.e(DEFAULT_ID, &msg).unwrap().to_vec(),
            None => msg.to_vec(),
        };
        let sig = key.sign_digest(scheme, &digest).unwrap();
        c.bench_function(&format!("{}/sign", alg.name()), |b| {
            b.iter(|| key.sign_digest(scheme, black_box(&digest)).unwrap())
        });
        c.bench_function(&format!("{}/verify", alg.name()), |b| {
            b.iter(|| pubk.verify_digest(scheme, black_box(&digest), black_box(&sig)).unwrap())
        });
    }
}

fn two_party(c: &mut Criterion) {
    let (cl, req) = ClientKeyGen::start(b"bench").unwrap();
    let (server, resp) = ServerKeyGen::respond(&req, b"bench").unwrap();
    let client = cl.finish(&resp).unwrap();
    let e = client.public_key().e(DEFAULT_ID, b"bench").unwrap();
    let mut seen = SeenQ1Memory::default();
    c.bench_function("sm2-2p/full-signature", |b| {
        b.iter(|| {
            let (sess, r) = client.begin_sign(&e).unwrap();
            sess.finish(&server.sign(&r, &e, &mut seen).unwrap()).unwrap()
        })
    });
    let mut seen = SeenQ1Memory::default();
    let reqs: Vec<_> = (0..4096).map(|_| client.begin_sign(&e).unwrap().1).collect();
    let mut i = 0;
    c.bench_function("sm2-2p/server-half", |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            if i == 0 {
                seen = SeenQ1Memory::default();
            }
            server.sign(&reqs[i], &e, &mut seen).unwrap()
        })
    });
    c.bench_function("sm2-2p/keygen", |b| {
        b.iter(|| {
            let (cl, req) = ClientKeyGen::start(b"bench").unwrap();
            let (_s, resp) = ServerKeyGen::respond(&req, b"bench").unwrap();
            cl.finish(&resp).unwrap()
        })
    });
}

criterion_group!(benches, signers, two_party);
criterion_main!(benches);
