//! A two-party key's own certification request (issue #17 item 5): phone and server sign the
//! key's PKCS#10 together, with the same protocol as a document, so a CA that certifies only a
//! request signed by the key (EST, RFC 7030 — e.g. a licensed third-party CA) can certify a key
//! that no one holds whole.
//!
//! ```text
//! phone                                           server
//! POST certificate/csr                     ──►    CertificationRequestInfo: the staff subject, the
//!                                          ◄──    key's own public key, no attributes (kept per key)
//! check: its own key, version 1, no attributes;
//! e = SM3(Z ‖ info) computed on the phone;
//! POST certificate/csr/answer {request}    ──►    e the same? (a renewal also takes a PIN or
//!                                          ◄──    fingerprint approval); its half, Q1 recorded
//! s; verify (r, s) with its key
//! POST certificate/csr/finish {signature}  ──►    assemble, verify as any CSR, issue through the
//!                                          ◄──    CA channels (EST simpleenroll / simplereenroll)
//! ```
//!
//! The phone computes `e` itself from a structure it checked, so the server half cannot pass a
//! document's digest off as a certification request. Without the phone's share there is no
//! valid request: a stolen session token gets nothing issued. The request is kept per key until a
//! certificate is issued; a new request replaces it, so a signature over an older one no longer
//! assembles into a valid request.

use crate::{approvals, cosign, mobile::Session};
use medsign_ca::certs::{self, CertRecord, Issuer};
use medsign_crypto::{
    PublicKey, SignatureScheme,
    sm2::{DEFAULT_ID, Sm2PublicKey, Sm2Signature},
    twoparty::{SignRequest, SignResponse},
    wrap::Kek,
};
use medsign_pki::{alg::Sm2IdPolicy, csr};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::Serialize;
use sqlx::Row;

/// Answer of `POST /mobile/v1/certificate/csr`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// the key
    pub key_id: String,
    /// the request's signed part (CertificationRequestInfo, DER, hex): what the phone checks and
    /// signs (`KeyShare.beginCertRequest`)
    pub info: String,
    /// its subject (RFC 4514), to show the doctor
    pub subject: String,
    /// a renewal of the key's current certificate (then the answer needs an approval of
    /// `renew|<serial>`)
    pub renewal: Option<String>,
}

struct Key {
    id: String,
    public: Sm2PublicKey,
    serial: Option<String>,
    info: Option<Vec<u8>>,
}

async fn key(db: &Db, s: &Session) -> Result<Key> {
    let r = cosign::live_key_row(db, s, "id, public_key, cert_serial, csr_info").await?;
    let public: Option<String> = r.try_get("public_key")?;
    let public = public
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| Sm2PublicKey::from_sec1(&b).ok())
        .ok_or_else(|| Error::internal("a two-party key's public key is corrupt"))?;
    let info: Option<String> = r.try_get("csr_info")?;
    Ok(Key {
        id: r.try_get("id")?,
        public,
        serial: r.try_get("cert_serial")?,
        info: info.map(|h| hex::decode(h).map_err(|_| Error::internal("a stored request is corrupt"))).transpose()?,
    })
}

fn no_request() -> Error {
    Error::Conflict("请先取得证书请求（POST /mobile/v1/certificate/csr）/ get the certification request first".into())
}

/// Make (or make again) the certification request of this phone's key: the hospital's staff
/// subject and the joint public key. For a key with a certificate it is a renewal.
pub async fn request(db: &Db, kek: &Kek, issuer: Issuer<'_>, s: &Session) -> Result<Request> {
    let k = key(db, s).await?;
    let (dn, subject) = certs::staff_subject(db, kek, issuer.organization, &s.employee_no).await?;
    let info = csr::request_info(&subject, &PublicKey::Sm2(k.public))
        .map_err(|e| Error::internal_from("certify::request", e))?;
    let _w = db.write_lock.lock().await;
    let kept = sqlx::query(
        "UPDATE split_keys SET csr_info = $1, csr_r = NULL, updated_at = $2 WHERE id = $3 AND status = 'active'",
    )
    .bind(hex::encode(&info))
    .bind(medsign_store::now_text())
    .bind(&k.id)
    .execute(&db.pool)
    .await?;
    if kept.rows_affected() != 1 {
        return Err(Error::Conflict("签名密钥已失效 / the signing key is no longer active".into()));
    }
    Ok(Request { key_id: k.id, info: hex::encode(info), subject: dn, renewal: k.serial })
}

/// The server half of the request's signature. The phone's message must be for `e` of the kept
/// request; a renewal first takes the doctor's approval (PIN or fingerprint) of `renew|<serial>`.
pub async fn answer(db: &Db, kek: &Kek, ctx: &Context, s: &Session, req: &SignRequest) -> Result<SignResponse> {
    let k = key(db, s).await?;
    let info = k.info.ok_or_else(no_request)?;
    let target = format!("user:{}", s.employee_no);
    let e = k.public.e(DEFAULT_ID, &info)?;
    let share = cosign::server_share(db, kek, &k.id).await?;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // the approval is taken in the answer's transaction: a refused message leaves it unspent
    if let Some(serial) = &k.serial
        && !approvals::take(&mut tx, s, &approvals::digest(approvals::Purpose::Renew, serial)).await?
    {
        tx.rollback().await?;
        drop(_w);
        return Err(approvals::refusal(db, ctx, s, "certificate.request", &target).await);
    }
    match cosign::server_half(&mut tx, &k.id, &share, req, &e).await? {
        Ok(response) => {
            // only a signature completing this answer finishes the request (its r is this r)
            let kept =
                sqlx::query("UPDATE split_keys SET csr_r = $1 WHERE id = $2 AND status = 'active' AND csr_info = $3")
                    .bind(response.r.to_ascii_lowercase())
                    .bind(&k.id)
                    .bind(hex::encode(&info))
                    .execute(&mut *tx)
                    .await?;
            if kept.rows_affected() != 1 {
                return Err(Error::Conflict(
                    "证书请求已更换，请重新开始 / the request changed meanwhile: start again".into(),
                ));
            }
            tx.commit().await?;
            Ok(response)
        }
        Err(refused) => {
            tx.rollback().await?;
            drop(_w);
            Err(audit::refused(db, ctx, Kind::Admin, "certificate.request", &target, refused).await)
        }
    }
}

/// Assemble the request with the phone's signature (DER, hex), check it like any request, and
/// have it certified through the CA channels: a first certificate for a new key, or a renewal
/// (the old certificate is revoked as superseded).
pub async fn finish(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    s: &Session,
    signature_hex: &str,
) -> Result<CertRecord> {
    let k = key(db, s).await?;
    let info = k.info.ok_or_else(no_request)?;
    let bad = |why: &str| Error::Invalid(format!("证书请求的签名无效 / the request's signature is not valid: {why}"));
    let signature = hex::decode(signature_hex).map_err(|_| bad("not hex"))?;
    if signature.len() > 80 {
        return Err(bad("too long for an SM2 signature"));
    }
    let der = csr::assemble(&info, SignatureScheme::Sm2Sm3, &signature).map_err(|e| bad(&e.to_string()))?;
    let checked = csr::parse(&der, Sm2IdPolicy::Standard).map_err(|e| bad(&e.to_string()))?;
    if checked.public_key != PublicKey::Sm2(k.public) {
        return Err(Error::internal("an assembled request holds another key"));
    }
    // the signature must complete the server half's last answer for this request — an older
    // signature over the same bytes (they repeat: same subject, same key) is no approval — and
    // it is claimed before the CA is asked, so one request is enrolled once, on any instance
    let r = hex::encode(&Sm2Signature::from_der(&signature).map_err(|e| bad(&e.to_string()))?.to_raw()[..32]);
    let claimed = {
        let _w = db.write_lock.lock().await;
        sqlx::query(
            "UPDATE split_keys SET csr_info = NULL, csr_r = NULL, updated_at = $1 \
             WHERE id = $2 AND status = 'active' AND csr_info = $3 AND csr_r = $4",
        )
        .bind(medsign_store::now_text())
        .bind(&k.id)
        .bind(hex::encode(&info))
        .bind(&r)
        .execute(&db.pool)
        .await?
        .rows_affected()
            == 1
    };
    if !claimed {
        return Err(Error::Conflict(
            "此签名不是本次证书请求的应答，请重新申请 / this signature does not complete the current request: start again".into(),
        ));
    }
    let rec = match &k.serial {
        Some(serial) => {
            let pem = medsign_crypto::keys::pem_encode("CERTIFICATE REQUEST", &der);
            certs::renew(db, kek, issuer, ctx, serial, Some(&pem)).await?
        }
        None => {
            let rec = certs::issue_for_two_party(
                db,
                kek,
                issuer,
                ctx,
                &s.employee_no,
                &checked.public_key,
                Some(&der),
                Some(&k.id),
            )
            .await?;
            audit::record(
                db,
                ctx,
                &audit::Event {
                    kind: Kind::Admin,
                    action: "key.two_party.certify",
                    target: &format!("user:{}", s.employee_no),
                    outcome: if rec.status == "active" { "ok" } else { "failed:key_destroyed" },
                    details: serde_json::json!({"key": k.id, "certificate": rec.serial, "channel": rec.channel}),
                },
            )
            .await?;
            rec
        }
    };
    if rec.status != "active" {
        return Err(Error::Conflict(
            "签名密钥已失效（手机已解绑）/ the signing key is no longer active (phone unbound)".into(),
        ));
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{approvals::tests::approve, cosign, mobile};
    use medsign_ca::{
        channels::{self, ChannelConfig, Channels, NewChannel},
        est_fake::EstFake,
    };
    use medsign_crypto::twoparty::ClientKeyGen;
    use medsign_testkit::{
        db::backends,
        hospital::{ORG, add_staff, staff},
    };
    use std::sync::atomic::Ordering;

    async fn split_key(db: &Db, s: &Session) -> (Option<String>, Option<String>) {
        let r = sqlx::query("SELECT cert_serial, csr_info FROM split_keys WHERE device_id = $1 AND status = 'active'")
            .bind(&s.device_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (r.try_get("cert_serial").unwrap(), r.try_get("csr_info").unwrap())
    }

    /// With an EST CA active (the FAKE EST server), a phone's new key gets no certificate until
    /// phone and server have signed its own PKCS#10; then the outside CA certifies it, and renews
    /// it the same way with the doctor's approval. Nothing else gets a request certified.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outside_ca_certifies_a_split_key_from_its_own_request() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = medsign_ca::ca::ensure(&db, &kek, ORG).await.unwrap();
            let chans = Channels::default();
            let issuer = Issuer { cas: &cas, organization: ORG, public_url: "http://x", channels: Some(&chans) };
            add_staff(&db, &kek, &[staff("2001", "王医生")]).await;
            let (fake, url) = EstFake::start().await;
            let est = channels::create(
                &db,
                &kek,
                &ctx,
                &NewChannel {
                    name: "省 CA (EST)".into(),
                    kind: "est".into(),
                    priority: 10,
                    config: ChannelConfig { url, username: Some(fake.user.clone()), ..Default::default() },
                    secret: Some(fake.password.clone()),
                },
            )
            .await
            .unwrap();
            channels::activate(&db, &ctx, &est.id).await.unwrap();

            let a = mobile::activation_code(&db, &kek, &ctx, "2001").await.unwrap();
            let s = mobile::activate(&db, &cas, &ctx, "2001", &a.code, "iPhone").await.unwrap();
            let st = mobile::keygen_start(&db, &s).await.unwrap();
            let (kg, req) = ClientKeyGen::start(st.context.as_bytes()).unwrap();
            let done = mobile::keygen_finish(&db, &kek, issuer, &ctx, &s, &st.key_id, &req).await.unwrap();
            assert!(done.csr_required && done.certificate.is_none(), "not certified without its own request");
            let share = kg.finish(&done.response).unwrap();
            let e = cosign::active_key(&db, &s).await.err().unwrap();
            assert!(e.to_string().contains("certificate request"), "{e}");
            assert_eq!(fake.enrolled.load(Ordering::SeqCst), 0);

            // before a request there is nothing to answer or finish
            let (_, early) = share.begin_sign(&[1u8; 32]).unwrap();
            assert!(matches!(answer(&db, &kek, &ctx, &s, &early).await, Err(Error::Conflict(_))));
            assert!(matches!(finish(&db, &kek, issuer, &ctx, &s, "3044").await, Err(Error::Conflict(_))));
            // the server half answers only for the request's own digest, not a document's
            let r = request(&db, &kek, issuer, &s).await.unwrap();
            assert!(r.subject.starts_with("CN=王医生,") && r.renewal.is_none(), "{r:?}");
            let (_, doc) = share.begin_sign_message(DEFAULT_ID, "门诊处方 No.1".as_bytes()).unwrap();
            assert!(matches!(answer(&db, &kek, &ctx, &s, &doc).await, Err(Error::Invalid(_))));
            // a stolen session token without the phone's share: a signature by any other key
            // is no request
            let thief = medsign_crypto::PrivateKey::generate(medsign_crypto::KeyAlg::Sm2).unwrap();
            let forged = thief.sign(SignatureScheme::Sm2Sm3, &hex::decode(&r.info).unwrap(), Some(DEFAULT_ID)).unwrap();
            let e = finish(&db, &kek, issuer, &ctx, &s, &hex::encode(forged)).await.err().unwrap();
            assert!(matches!(e, Error::Invalid(_)), "{e}");
            for junk in ["zz", "", &"30".repeat(200)] {
                assert!(matches!(finish(&db, &kek, issuer, &ctx, &s, junk).await, Err(Error::Invalid(_))));
            }
            assert_eq!(fake.enrolled.load(Ordering::SeqCst), 0, "nothing reached the CA");

            // phone and server sign it: the outside CA certifies the joint key, once, whichever of
            // two finishes sent at once (to two instances) gets there first
            let r = request(&db, &kek, issuer, &s).await.unwrap();
            let (session, req) = share.begin_sign_message(DEFAULT_ID, &hex::decode(&r.info).unwrap()).unwrap();
            let resp = answer(&db, &kek, &ctx, &s, &req).await.unwrap();
            let first_sig = hex::encode(session.finish(&resp).unwrap().to_der());
            let (a, b) = tokio::join!(
                finish(&db, &kek, issuer, &ctx, &s, &first_sig),
                finish(&db, &kek, issuer, &ctx, &s, &first_sig)
            );
            let (rec, lost) = match (a, b) {
                (Ok(rec), Err(e)) | (Err(e), Ok(rec)) => (rec, e),
                other => panic!("exactly one finish: {other:?}"),
            };
            assert!(matches!(lost, Error::Conflict(_)), "{lost}");
            assert_eq!((rec.channel.as_str(), fake.enrolled.load(Ordering::SeqCst)), (est.id.as_str(), 1));
            let cert = rec.cert().unwrap();
            cert.verify_signed_by(&fake.ca, Sm2IdPolicy::Standard).unwrap();
            assert_eq!(cert.public_key().unwrap(), &PublicKey::Sm2(*share.public_key()));
            assert!(rec.subject.contains("王医生"), "{}", rec.subject);
            assert_eq!(split_key(&db, &s).await, (Some(rec.serial.clone()), None));
            assert_eq!(cosign::active_key(&db, &s).await.unwrap().id, st.key_id, "the key signs now");

            // a replayed message is refused (the same request again has the same digest)
            let r2 = request(&db, &kek, issuer, &s).await.unwrap();
            assert_eq!(r2.renewal.as_deref(), Some(rec.serial.as_str()));
            let (session, again) = share.begin_sign_message(DEFAULT_ID, &hex::decode(&r2.info).unwrap()).unwrap();
            // a renewal needs the doctor's approval of exactly this certificate
            mobile::set_pin(&db, &kek, &ctx, &s, crate::approvals::tests::PIN, None).await.unwrap();
            approve(&db, &kek, &s, &approvals::digest(approvals::Purpose::Renew, "another serial")).await;
            let e = answer(&db, &kek, &ctx, &s, &again).await.err().unwrap();
            assert_eq!(e.code(), "approval_required", "{e}");
            approve(&db, &kek, &s, &approvals::digest(approvals::Purpose::Renew, &rec.serial)).await;
            // a refused message does not spend the doctor's approval
            let (_, doc) = share.begin_sign_message(DEFAULT_ID, "出院小结".as_bytes()).unwrap();
            assert!(matches!(answer(&db, &kek, &ctx, &s, &doc).await, Err(Error::Invalid(_))));
            let resp = answer(&db, &kek, &ctx, &s, &again).await.unwrap();
            approve(&db, &kek, &s, &approvals::digest(approvals::Purpose::Renew, &rec.serial)).await;
            let e = answer(&db, &kek, &ctx, &s, &again).await.err().unwrap();
            assert!(e.to_string().contains("replayed"), "{e}");
            let sig = session.finish(&resp).unwrap();
            let renewed = finish(&db, &kek, issuer, &ctx, &s, &hex::encode(sig.to_der())).await.unwrap();
            assert_ne!(renewed.serial, rec.serial);
            assert_eq!((renewed.channel.as_str(), fake.enrolled.load(Ordering::SeqCst)), (est.id.as_str(), 2));
            assert_eq!(certs::get(&db, &rec.serial).await.unwrap().status, "revoked");
            assert_eq!(split_key(&db, &s).await, (Some(renewed.serial.clone()), None));
            // the request is spent: the same signature cannot be finished again …
            let e = finish(&db, &kek, issuer, &ctx, &s, &hex::encode(sig.to_der())).await.err().unwrap();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            // … not even after the same request is made again (its bytes repeat): a stolen
            // session token replaying an old signature renews nothing without the doctor
            for old in [hex::encode(sig.to_der()), first_sig.clone()] {
                request(&db, &kek, issuer, &s).await.unwrap();
                let e = finish(&db, &kek, issuer, &ctx, &s, &old).await.err().unwrap();
                assert!(e.to_string().contains("does not complete the current request"), "{e}");
            }
            assert_eq!(fake.enrolled.load(Ordering::SeqCst), 2, "nothing more reached the CA");
            assert_eq!(certs::get(&db, &renewed.serial).await.unwrap().status, "active");
            // the old renewal endpoint would fall through to another CA: refused
            approve(&db, &kek, &s, &approvals::digest(approvals::Purpose::Renew, &renewed.serial)).await;
            let e = cosign::renew_certificate(&db, &kek, issuer, &ctx, &s).await.err().unwrap();
            assert_eq!(e.code(), "csr_required", "{e}");
            // unbinding revokes the outside CA's certificate here (EST cannot be told: audited)
            mobile::unbind(&db, &cas, &ctx, &s).await.unwrap();
            assert_eq!(certs::get(&db, &renewed.serial).await.unwrap().status, "revoked");
            let told: Vec<String> =
                sqlx::query_scalar("SELECT target FROM audit_log WHERE action = 'certificate.revoke.not_propagated'")
                    .fetch_all(&db.pool)
                    .await
                    .unwrap();
            assert_eq!(told, vec![format!("certificate:{}", renewed.serial)]);
        }
    }
}
