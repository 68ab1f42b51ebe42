//! Long-term validation of PDF flows (issue #16): when a `file` flow's last signature is made, its
//! PAdES level decides what is added before the result is stored — B-T nothing; B-LT a DSS with
//! every certificate of every signature and of its timestamps, an OCSP answer from the built-in
//! responder for each certificate the built-in CAs issued, the issuing CAs' current CRLs and the
//! roots' CRLs; B-LTA also a document timestamp from the built-in TSA. The result verifies years
//! later without reaching the hospital's OCSP responder.
//!
//! [`archive_timestamps`] (run hourly by `medsign serve`) keeps B-LTA documents verifiable after
//! the TSA certificate of their newest document timestamp ends: within `[sign]
//! archive_timestamp_days` of that end, and once the TSA has a later certificate, it appends the
//! validation data of that timestamp and a new document timestamp (an archive timestamp). Two
//! instances never re-stamp the same document: a lease is taken with a conditional update, and the
//! result is stored only under that lease.

use super::*;
use crate::model::PadesLevel;
use medsign_ca::ca::Hierarchy;
use medsign_crypto::HashAlg;
use medsign_pdf::ltv::{self as pdf_ltv, SignatureData, ValidationData};
use medsign_pki::{
    der::Encode,
    ocsp::{self, CertId, SingleAnswer, Status},
};
use std::collections::HashMap;

/// Bytes reserved for a document timestamp token (with the TSA's certificates).
const DOC_TS_RESERVE: usize = 16 * 1024;
/// How long the OCSP answers put into a DSS say they are good for (their nextUpdate).
const OCSP_VALIDITY_HOURS: i64 = 24;
/// The stored CRL is signed again when older than this.
const CRL_REFRESH_HOURS: u64 = 6;
/// An archive lease older than this belongs to a crashed job and is taken over.
const LEASE_MINUTES: i64 = 10;

/// The PAdES level a new flow asks for: none for data flows; for PDF flows the flow's
/// `pades_level`, else the hospital's default. A level that is not B-T, B-LT or B-LTA, or one
/// given for a data flow, is a 400.
pub fn level_of(kind: FlowKind, asked: Option<&str>, default: PadesLevel) -> Result<Option<PadesLevel>> {
    match (kind, asked) {
        (FlowKind::Data, None) => Ok(None),
        (FlowKind::Data, Some(_)) => {
            Err(Error::Invalid("pades_level 只用于 PDF 流程 / pades_level is for PDF flows (kind file)".into()))
        }
        (FlowKind::File, None) => Ok(Some(default)),
        (FlowKind::File, Some(l)) => l.parse().map(Some).map_err(|_| {
            Error::Invalid(format!(
                "pades_level 须为 B-T、B-LT 或 B-LTA / pades_level must be B-T, B-LT or B-LTA, got '{}'",
                l.chars().take(40).collect::<String>()
            ))
        }),
    }
}

fn internal(what: &'static str) -> impl Fn(medsign_pdf::Error) -> Error {
    move |e| Error::internal_from(what, e)
}

/// The certificates a signature value carries: those of the CMS and of the timestamp tokens in
/// its signer infos (a document timestamp is a token itself).
fn certs_in(der: &[u8], depth: u8) -> Vec<Cert> {
    let Ok(p) = Parsed::from_bytes(der) else { return vec![] };
    let mut out = p.certificates();
    if depth == 0 {
        return out;
    }
    for si in p.signer_infos() {
        for a in si.unsigned_attrs.iter().flat_map(|s| s.iter()) {
            if a.oid == medsign_pki::oid::ATTR_TIMESTAMP_TOKEN {
                for v in a.values.iter() {
                    if let Ok(d) = v.to_der() {
                        out.extend(certs_in(&d, depth - 1));
                    }
                }
            }
        }
    }
    out
}

/// The signer's certificate of a timestamp token (its first signer, by serial).
fn token_signer(token: &[u8]) -> Option<Cert> {
    let p = Parsed::from_bytes(token).ok()?;
    let serial = p.signer_serial_hex(0)?;
    p.certificates().into_iter().find(|c| c.serial_hex() == serial)
}

/// Gathers validation data from the built-in CAs, each CRL and OCSP answer made once per run.
struct Collector<'a> {
    db: &'a Db,
    cas: &'a BuiltinCas,
    now: DateTime<Utc>,
    ocsp: HashMap<Vec<u8>, Option<Vec<u8>>>,
    crls: HashMap<&'static str, Vec<u8>>,
    root_crls: HashMap<&'static str, Vec<u8>>,
}

impl<'a> Collector<'a> {
    fn new(db: &'a Db, cas: &'a BuiltinCas) -> Self {
        Self { db, cas, now: Utc::now(), ocsp: HashMap::new(), crls: HashMap::new(), root_crls: HashMap::new() }
    }

    fn hierarchy_of(&self, c: &Cert) -> Option<&'a Hierarchy> {
        let cas = self.cas;
        [&cas.sm2, &cas.rsa].into_iter().find(|h| {
            c.der() == h.root.der()
                || c.der() == h.issuing.der()
                || (c.issuer() == h.issuing.subject()
                    && c.authority_key_id().is_none_or(|k| Some(k) == h.issuing.subject_key_id()))
        })
    }

    /// An OCSP answer about `c` from `h`'s responder, when the CA knows the certificate.
    async fn ocsp_for(&mut self, h: &Hierarchy, c: &Cert) -> Result<Option<Vec<u8>>> {
        if let Some(a) = self.ocsp.get(c.der()) {
            return Ok(a.clone());
        }
        let status = match certs::status_of(self.db, h, &c.serial_hex()).await? {
            None => None,
            Some(None) => Some(Status::Good),
            Some(Some(r)) => Some(Status::Revoked { time: r.time, reason: r.reason }),
        };
        let answer = match status {
            None => None,
            Some(status) => {
                let id = CertId::new(c, &h.issuing, None).map_err(|e| Error::internal_from("ltv OCSP", e))?;
                let a = SingleAnswer {
                    cert_id: id,
                    status,
                    this_update: self.now,
                    next_update: self.now + Duration::hours(OCSP_VALIDITY_HOURS),
                };
                Some(
                    ocsp::build_response(&h.ocsp, h.ocsp_key.as_ref(), self.now, &[a], None)
                        .map_err(|e| Error::internal_from("ltv OCSP", e))?,
                )
            }
        };
        self.ocsp.insert(c.der().to_vec(), answer.clone());
        Ok(answer)
    }

    /// Everything a verifier needs for `certs` and their chains.
    async fn data_for(&mut self, certs: &[Cert]) -> Result<ValidationData> {
        let mut v = ValidationData::default();
        fn push(list: &mut Vec<Vec<u8>>, der: &[u8]) {
            if !list.iter().any(|d| d == der) {
                list.push(der.to_vec());
            }
        }
        for c in certs {
            push(&mut v.certs, c.der());
            let Some(h) = self.hierarchy_of(c) else { continue };
            push(&mut v.certs, h.root.der());
            if c.der() == h.root.der() {
                continue;
            }
            push(&mut v.certs, h.issuing.der());
            if !self.root_crls.contains_key(h.name) {
                self.root_crls.insert(h.name, h.root_crl()?);
            }
            push(&mut v.crls, &self.root_crls[h.name]);
            if c.der() == h.issuing.der() || c.der() == h.ocsp.der() {
                continue; // the root's CRL covers the issuing CA; the responder is ocsp-nocheck
            }
            if !self.crls.contains_key(h.name) {
                self.crls.insert(h.name, certs::crl(self.db, h, CRL_REFRESH_HOURS).await?);
            }
            push(&mut v.crls, &self.crls[h.name]);
            if let Some(a) = self.ocsp_for(h, c).await? {
                push(&mut v.ocsps, &a);
                push(&mut v.certs, h.ocsp.der());
            }
        }
        Ok(v)
    }
}

/// Bring a PDF whose signatures are all made to `level`: B-T as it is; B-LT with the DSS; B-LTA
/// also with a document timestamp by the TSA profile `alg`.
pub async fn augment(sg: &Signing<'_>, level: PadesLevel, alg: &str, app_id: &str, pdf: Vec<u8>) -> Result<Vec<u8>> {
    if level == PadesLevel::BT {
        return Ok(pdf);
    }
    let mut c = Collector::new(sg.db, sg.cas);
    let mut per = Vec::new();
    for der in pdf_ltv::signature_ders(&pdf).map_err(internal("ltv::augment"))? {
        let data = c.data_for(&certs_in(&der, 1)).await?;
        per.push(SignatureData { signature: der, data });
    }
    // B-LTA: the chain of the TSA that stamps the document next, so it verifies from the DSS too
    let shared = match (level, sg.tsa.profile(Some(alg))) {
        (PadesLevel::BLta, Some(p)) => {
            let mut chain = vec![p.cert.clone()];
            chain.extend(p.chain.iter().cloned());
            c.data_for(&chain).await?
        }
        _ => ValidationData::default(),
    };
    let pdf = pdf_ltv::add_dss(&pdf, &shared, &per).map_err(internal("ltv::augment"))?;
    match level {
        PadesLevel::BLta => document_timestamp(sg.tsa, &pdf, alg, app_id).await,
        _ => Ok(pdf),
    }
}

/// Append a document timestamp over the whole of `pdf`.
async fn document_timestamp(tsa: &Tsa, pdf: &[u8], alg: &str, requester: &str) -> Result<Vec<u8>> {
    let n = pdf_ltv::signature_ders(pdf).map_err(internal("ltv::document_timestamp"))?.len() + 1;
    let p = pdf_ltv::prepare_doc_timestamp(pdf, &format!("medsign-{n}-timestamp"), DOC_TS_RESERVE)
        .map_err(internal("ltv::document_timestamp"))?;
    let h = if alg == "sm2" { HashAlg::Sm3 } else { HashAlg::Sha256 };
    let imprint = MessageImprint::of(h, &p.covered());
    let nonce = medsign_pki::der::asn1::Int::new(&[0x01, medsign_crypto::rng::bytes::<4>()?[0]])
        .map_err(|e| Error::internal_from("ltv::document_timestamp", e))?;
    let t = tsa.stamp(Some(alg), &imprint, Some(&nonce), true, None, requester).await?;
    p.finish(&t.token).map_err(internal("ltv::document_timestamp"))
}

/// When the TSA certificate of `pdf`'s newest document timestamp ends.
pub fn archive_due(pdf: &[u8]) -> Result<Option<DateTime<Utc>>> {
    let token = pdf_ltv::newest_document_timestamp(pdf).map_err(internal("ltv::archive_due"))?;
    Ok(token.as_deref().and_then(token_signer).map(|c| c.not_after()))
}

/// Re-stamp the B-LTA documents whose newest document timestamp's TSA certificate ends before
/// `now` + `window_days` (see the module). Returns how many were re-stamped.
pub async fn archive_timestamps(sg: &Signing<'_>, window_days: u32, now: DateTime<Utc>) -> Result<usize> {
    let db = sg.db;
    let threshold = medsign_store::secs_text(now + Duration::days(i64::from(window_days)));
    let rows = sqlx::query(
        "SELECT id, alg, app_id, archive_due_at FROM sign_flows WHERE state = 'completed' AND pades_level = 'B-LTA' \
         AND (archive_due_at IS NULL OR archive_due_at < $1) ORDER BY archive_due_at LIMIT 50",
    )
    .bind(&threshold)
    .fetch_all(&db.pool)
    .await?;
    let mut done = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        let alg: String = r.try_get("alg")?;
        let app: String = r.try_get("app_id")?;
        let stored_due: Option<String> = r.try_get("archive_due_at")?;
        let sig: Option<String> = sqlx::query_scalar("SELECT signature_b64 FROM sign_flows WHERE id = $1")
            .bind(&id)
            .fetch_one(&db.pool)
            .await?;
        let pdf = B64.decode(sig.unwrap_or_default()).map_err(|_| Error::internal("stored signature is corrupt"))?;
        let Some(due) = archive_due(&pdf)? else {
            tracing::warn!(flow = %id, "B-LTA document without a document timestamp");
            continue;
        };
        let due_text = medsign_store::secs_text(due);
        if stored_due.as_deref() != Some(due_text.as_str()) {
            // first seen (or stored before this column was kept): remember when it is due
            let _w = db.write_lock.lock().await;
            sqlx::query(
                "UPDATE sign_flows SET archive_due_at = $1 WHERE id = $2 AND COALESCE(archive_due_at, '') = $3",
            )
            .bind(&due_text)
            .bind(&id)
            .bind(stored_due.clone().unwrap_or_default())
            .execute(&db.pool)
            .await?;
        }
        if due_text >= threshold {
            continue;
        }
        let Some(current) = sg.tsa.profile(Some(&alg)).map(|p| p.cert.clone()) else { continue };
        if current.not_after() <= due {
            tracing::warn!(flow = %id, tsa = %current.serial_hex(), "archive timestamp due, but the TSA certificate has not been renewed yet");
            continue;
        }
        // the lease: only one instance re-stamps this version of the document
        let lease = format!("{} {}", medsign_store::now_text(), uuid::Uuid::new_v4().simple());
        let stale = medsign_store::secs_text(Utc::now() - Duration::minutes(LEASE_MINUTES));
        let taken = {
            let _w = db.write_lock.lock().await;
            sqlx::query(
                "UPDATE sign_flows SET archive_lease = $1 WHERE id = $2 AND archive_due_at = $3 \
                 AND (archive_lease IS NULL OR archive_lease < $4)",
            )
            .bind(&lease)
            .bind(&id)
            .bind(&due_text)
            .bind(&stale)
            .execute(&db.pool)
            .await?
            .rows_affected()
        };
        if taken != 1 {
            continue;
        }
        let stamped = async {
            let token = pdf_ltv::newest_document_timestamp(&pdf).map_err(internal("ltv::archive"))?.unwrap_or_default();
            let mut c = Collector::new(db, sg.cas);
            let data = c.data_for(&certs_in(&token, 0)).await?;
            let mut chain = vec![current.clone()];
            chain.extend(sg.tsa.profile(Some(&alg)).map(|p| p.chain.clone()).unwrap_or_default());
            let shared = c.data_for(&chain).await?;
            let with_dss = pdf_ltv::add_dss(&pdf, &shared, &[SignatureData { signature: token, data }])
                .map_err(internal("ltv::archive"))?;
            let out = document_timestamp(sg.tsa, &with_dss, &alg, &app).await?;
            let next = archive_due(&out)?.ok_or_else(|| Error::internal("archive timestamp not found"))?;
            Ok::<_, Error>((out, next))
        };
        let (out, next) = match stamped.await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(flow = %id, error = %e, "archive timestamp failed; retried next time");
                let _w = db.write_lock.lock().await;
                sqlx::query("UPDATE sign_flows SET archive_lease = NULL WHERE id = $1 AND archive_lease = $2")
                    .bind(&id)
                    .bind(&lease)
                    .execute(&db.pool)
                    .await?;
                continue;
            }
        };
        let next_text = medsign_store::secs_text(next);
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let stored = sqlx::query(
            "UPDATE sign_flows SET signature_b64 = $1, archive_due_at = $2, archive_lease = NULL, updated_at = $3 \
             WHERE id = $4 AND archive_lease = $5 AND archive_due_at = $6",
        )
        .bind(B64.encode(&out))
        .bind(&next_text)
        .bind(medsign_store::now_text())
        .bind(&id)
        .bind(&lease)
        .bind(&due_text)
        .execute(&mut *tx)
        .await?;
        if stored.rows_affected() != 1 {
            continue; // the lease was taken over (this run took too long): the other one stores
        }
        audit::ok(
            &mut tx,
            &Context::cli(),
            Kind::Signing,
            "flow.archive_timestamp",
            &format!("flow:{id}"),
            serde_json::json!({"tsa_certificate": current.serial_hex(), "previous_due": due_text, "next_due": next_text, "sm3": hex::encode(medsign_crypto::hash::sm3(&out))}),
        )
        .await?;
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}
