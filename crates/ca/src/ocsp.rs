//! The OCSP responder of the built-in CAs (issue #4; RFC 6960, RFC 5019 profile): every answer is
//! signed by the hierarchy's delegated responder certificate; statuses come from the database on
//! every request (so every node of a cluster answers the same); signed answers to requests
//! without a nonce are reused for up to a tenth of their validity while the status is unchanged,
//! which is what makes GET answers cacheable and the responder fast.

use crate::{ca::BuiltinCas, certs};
use chrono::{DateTime, Duration, Utc};
use medsign_pki::ocsp::{self, ResponseStatus, SingleAnswer, Status};
use medsign_store::db::Db;
use std::{collections::HashMap, sync::Mutex};

/// Most cached answers kept; the cache is emptied when it grows past this.
const CACHE_MAX: usize = 100_000;

/// A DER OCSPResponse with what HTTP caching needs.
#[derive(Debug, Clone)]
pub struct Answer {
    /// the OCSPResponse
    pub der: Vec<u8>,
    /// thisUpdate of the answers (successful responses)
    pub this_update: Option<DateTime<Utc>>,
    /// nextUpdate
    pub next_update: Option<DateTime<Utc>>,
    /// no nonce: the same request gets the same bytes (RFC 5019 § 6)
    pub cacheable: bool,
}

impl Answer {
    fn error(s: ResponseStatus) -> Self {
        Self { der: ocsp::error_response(s), this_update: None, next_update: None, cacheable: false }
    }
}

struct Cached {
    fingerprint: String,
    answer: Answer,
}

/// The responder: the CAs, how long answers are valid, and the cache.
pub struct Responder {
    cas: BuiltinCas,
    validity: Duration,
    cache: Mutex<HashMap<Vec<u8>, Cached>>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").field("validity", &self.validity).finish_non_exhaustive()
    }
}

impl Responder {
    /// A responder for `cas` whose answers are valid `validity_minutes`.
    pub fn new(cas: BuiltinCas, validity_minutes: u64) -> Self {
        Self {
            cas,
            validity: Duration::minutes(validity_minutes.clamp(1, 7 * 24 * 60) as i64),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Answer one DER OCSPRequest. Garbage gets `malformedRequest`, a request about certificates
    /// of another CA `unauthorized` (RFC 6960 § 2.3), a database failure `tryLater`.
    pub async fn respond(&self, db: &Db, request: &[u8]) -> Answer {
        let req = match ocsp::parse_request(request) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return Answer::error(ResponseStatus::MalformedRequest);
            }
        };
        // the hierarchy of the first certificate we know decides the responder
        let Some(h) =
            [&self.cas.sm2, &self.cas.rsa].into_iter().find(|h| req.cert_ids.iter().any(|id| id.issued_by(&h.issuing)))
        else {
            return Answer::error(ResponseStatus::Unauthorized);
        };
        let mut statuses = Vec::with_capacity(req.cert_ids.len());
        for id in &req.cert_ids {
            let st = if id.issued_by(&h.issuing) {
                match certs::status_of(db, h, &id.serial_hex()).await {
                    Ok(None) => Status::Unknown,
                    Ok(Some(None)) => Status::Good,
                    Ok(Some(Some(r))) => Status::Revoked { time: r.time, reason: r.reason },
                    Err(e) => {
                        tracing::warn!(error = %e, "OCSP status lookup failed");
                        return Answer::error(ResponseStatus::TryLater);
                    }
                }
            } else {
                Status::Unknown
            };
            statuses.push(st);
        }
        let fingerprint = format!("{statuses:?}");
        let now = Utc::now();
        if req.nonce.is_none()
            && let Some(c) = self.cache.lock().expect("cache lock").get(request)
            && c.fingerprint == fingerprint
            && c.answer.this_update.is_some_and(|t| now - t < self.validity / 10)
        {
            return c.answer.clone();
        }
        let next = now + self.validity;
        let answers: Vec<SingleAnswer> = req
            .cert_ids
            .iter()
            .zip(&statuses)
            .map(|(id, st)| SingleAnswer { cert_id: id.clone(), status: *st, this_update: now, next_update: next })
            .collect();
        let der = match ocsp::build_response(&h.ocsp, h.ocsp_key.as_ref(), now, &answers, req.nonce.as_ref()) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "OCSP signing failed");
                return Answer::error(ResponseStatus::InternalError);
            }
        };
        let answer = Answer { der, this_update: Some(now), next_update: Some(next), cacheable: req.nonce.is_none() };
        if answer.cacheable {
            let mut c = self.cache.lock().expect("cache lock");
            if c.len() >= CACHE_MAX {
                c.clear();
            }
            c.insert(request.to_vec(), Cached { fingerprint, answer: answer.clone() });
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::Issuer;
    use medsign_crypto::{KeyAlg, PrivateKey, signer::KeySigner, wrap::Kek};
    use medsign_pki::{cert::Cert, csr, name::parse_dn, ocsp::CertId, x509_cert::ext::pkix::CrlReason};
    use medsign_store::audit::Context;
    use medsign_testkit::{
        db::backends,
        hospital::{add_staff, staff},
    };

    /// A certificate signed by `issuer` that the database does not know.
    fn leaf_not_recorded(issuer: &Cert, key: &dyn medsign_crypto::Signer) -> Cert {
        let k = PrivateKey::generate(KeyAlg::Sm2).unwrap().public_key();
        let now = Utc::now();
        let t = medsign_pki::cert::CertTemplate::new(
            parse_dn("CN=forged").unwrap(),
            k,
            medsign_pki::cert::Profile::Signer,
            now,
            now + Duration::days(1),
        );
        medsign_pki::cert::issue(&t, Some(issuer), key).unwrap()
    }

    #[tokio::test]
    async fn good_hold_revoked_unknown_and_garbage() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = crate::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let issuer =
                Issuer {
                    cas: &cas, organization: "某县人民医院", public_url: "http://127.0.0.1:7080", channels: None
                };
            add_staff(&db, &kek, &[staff("1001", "张三")]).await;
            let responder = Responder::new(cas.clone(), 60);
            for alg in [KeyAlg::Sm2, KeyAlg::Rsa2048] {
                let key = KeySigner::new(PrivateKey::generate(alg).unwrap());
                let req = csr::build(&parse_dn("CN=x").unwrap(), &key).unwrap();
                let rec = certs::issue_for_user(&db, &kek, issuer, &ctx, "1001", &req).await.unwrap();
                let cert = Cert::load_all(rec.certificate_pem.as_bytes()).unwrap().remove(0);
                let h = if alg == KeyAlg::Sm2 { &cas.sm2 } else { &cas.rsa };
                let id = CertId::new(&cert, &h.issuing, None).unwrap();
                let (id, responder, db) = (&id, &responder, &db);
                let ask = |nonce: bool| {
                    let (der, n) = ocsp::build_request(std::slice::from_ref(id), nonce).unwrap();
                    async move {
                        let a = responder.respond(db, &der).await;
                        let r = ocsp::parse_response(&a.der).unwrap();
                        let signer = r.verify(&h.issuing).unwrap();
                        assert_eq!(signer.serial(), h.ocsp.serial());
                        assert_eq!(r.nonce, n);
                        assert_eq!(a.cacheable, !nonce);
                        r.find(id).unwrap().status
                    }
                };
                assert_eq!(ask(true).await, Status::Good);
                assert_eq!(ask(false).await, Status::Good);
                // the cache never hides a change of status
                certs::hold(db, &cas, &ctx, &rec.serial).await.unwrap();
                assert!(matches!(ask(false).await, Status::Revoked { reason: Some(CrlReason::CertificateHold), .. }));
                certs::release(db, &cas, &ctx, &rec.serial).await.unwrap();
                assert_eq!(ask(false).await, Status::Good);
                certs::revoke(db, &cas, None, &ctx, &rec.serial, "key_compromise").await.unwrap();
                assert!(matches!(ask(true).await, Status::Revoked { reason: Some(CrlReason::KeyCompromise), .. }));
                // a serial this CA never issued is unknown
                let other = leaf_not_recorded(&h.issuing, h.issuing_key.as_ref());
                let unknown = CertId::new(&other, &h.issuing, Some(medsign_crypto::HashAlg::Sha256)).unwrap();
                let (der, _) = ocsp::build_request(std::slice::from_ref(&unknown), false).unwrap();
                let r = ocsp::parse_response(&responder.respond(db, &der).await.der).unwrap();
                assert_eq!(r.find(&unknown).unwrap().status, Status::Unknown);
            }
            // a foreign CA → unauthorized; garbage → malformedRequest
            let fk = KeySigner::new(PrivateKey::generate(KeyAlg::Sm2).unwrap());
            let now = Utc::now();
            let t = medsign_pki::cert::CertTemplate::new(
                parse_dn("CN=另一家CA").unwrap(),
                medsign_crypto::Signer::public_key(&fk).clone(),
                medsign_pki::cert::Profile::Ca { path_len: Some(0) },
                now,
                now + Duration::days(1),
            );
            let fca = medsign_pki::cert::issue(&t, None, &fk).unwrap();
            let id = CertId::new(&leaf_not_recorded(&fca, &fk), &fca, None).unwrap();
            let (der, _) = ocsp::build_request(&[id], false).unwrap();
            assert_eq!(ocsp::parse_response(&responder.respond(&db, &der).await.der).unwrap().status, 6);
            assert_eq!(ocsp::parse_response(&responder.respond(&db, b"garbage").await.der).unwrap().status, 1);
        }
    }
}
