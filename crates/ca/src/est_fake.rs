//! FAKE EST server for tests — written from RFC 7030, not a real CA: `GET cacerts`,
//! `POST simpleenroll` / `simplereenroll` (base64 PKCS#10 in, base64 certs-only PKCS#7 out),
//! HTTP Basic authentication, a CRL at `/ca.crl`, and a switch that makes it fail like a CA that
//! is down.

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use chrono::{Duration, Utc};
use medsign_crypto::{KeyAlg, PrivateKey, Signer, signer::KeySigner};
use medsign_pki::{
    alg::Sm2IdPolicy,
    cert::{Cert, CertTemplate, Profile, issue},
    cms, csr,
    name::parse_dn,
};
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

/// The fake's state.
pub struct EstFake {
    /// its CA certificate
    pub ca: Cert,
    key: KeySigner,
    /// answer 503 to everything
    pub down: AtomicBool,
    /// certificates issued
    pub enrolled: AtomicUsize,
    /// Basic credentials it accepts
    pub user: String,
    /// …
    pub password: String,
    /// where it publishes its (empty) CRL, `http://127.0.0.1:PORT/ca.crl`
    pub crl_url: String,
}

impl EstFake {
    /// Start on a free loopback port; returns the state and `http://127.0.0.1:PORT/.well-known/est`.
    pub async fn start() -> (Arc<EstFake>, String) {
        let key = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
        let now = Utc::now();
        let t = CertTemplate::new(
            parse_dn("CN=FAKE EST CA (tests only),O=medsign tests,C=CN").unwrap(),
            key.public_key().clone(),
            Profile::Ca { path_len: Some(0) },
            now - Duration::hours(1),
            now + Duration::days(30),
        );
        let ca = issue(&t, None, &key).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = Arc::new(EstFake {
            ca,
            key,
            down: AtomicBool::new(false),
            enrolled: AtomicUsize::new(0),
            user: "hospital-01".into(),
            password: "est-secret".into(),
            crl_url: format!("http://{addr}/ca.crl"),
        });
        let app = Router::new()
            .route("/.well-known/est/cacerts", get(cacerts))
            .route("/.well-known/est/simpleenroll", post(enroll))
            .route("/.well-known/est/simplereenroll", post(enroll))
            .route("/ca.crl", get(crl))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, format!("http://{addr}/.well-known/est"))
    }
}

fn pkcs7(der: &[u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/pkcs7-mime; smime-type=certs-only"),
            (header::HeaderName::from_static("content-transfer-encoding"), "base64"),
        ],
        base64::engine::general_purpose::STANDARD.encode(der),
    )
        .into_response()
}

async fn cacerts(State(f): State<Arc<EstFake>>) -> Response {
    if f.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    pkcs7(&cms::certs_only(std::slice::from_ref(&f.ca)).unwrap())
}

/// A CRL with nothing revoked, valid for a day.
async fn crl(State(f): State<Arc<EstFake>>) -> Response {
    let now = Utc::now();
    let der =
        medsign_pki::crl::build(&f.ca, &f.key, now - Duration::minutes(1), now + Duration::days(1), 1, &[]).unwrap();
    ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response()
}

async fn enroll(State(f): State<Arc<EstFake>>, headers: HeaderMap, body: Bytes) -> Response {
    if f.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let expected =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", f.user, f.password)));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Basic realm=\"est\"")]).into_response();
    }
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some("application/pkcs10") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected application/pkcs10").into_response();
    }
    let clean: Vec<u8> = body.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(clean) else {
        return (StatusCode::BAD_REQUEST, "body is not base64").into_response();
    };
    let req = match csr::parse(&der, Sm2IdPolicy::AllowEmpty) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad CSR: {e}")).into_response(),
    };
    let now = Utc::now();
    let t = CertTemplate::new(req.subject, req.public_key, Profile::Signer, now, now + Duration::days(365));
    let cert = issue(&t, Some(&f.ca), &f.key).unwrap();
    f.enrolled.fetch_add(1, Ordering::SeqCst);
    pkcs7(&cms::certs_only(&[cert, f.ca.clone()]).unwrap())
}
