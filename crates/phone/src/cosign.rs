//! Phones co-sign scan-mode signers (issue #7; R2.6, R3.4, R3.6, R7.4.6, R7.4.8;
//! custody mode 1). Three one-time steps, each taking up to [`MAX_BATCH`] documents so a doctor's
//! pending list signs with one PIN entry and three requests:
//!
//! 1. [`start`] — the phone names flows (a scanned ticket, or entries of its [`pending`] list). For
//!    each, the server checks that the signer whose turn it is is this phone's user, prepares exactly
//!    what will be signed — the CMS signed attributes of a data flow at a fixed signing time, or the
//!    PAdES incremental update of a PDF showing the user's handwriting — and opens a round: the
//!    summary the phone shows (title, kind, digest, pages; never the document) and
//!    `e = SM3(Z_A ‖ signed bytes)`.
//! 2. [`answer`] — the phone's `Q1` for that `e`; the server half answers once per round and never
//!    twice for one `Q1` (remembered in `twoparty_q1`).
//! 3. [`finish`] — the phone's signature, checked against the joint public key; the server builds
//!    the same CMS (or PDF) around it, timestamps it, records it, and signs the auto signers that
//!    follow (or opens the next scan signer's ticket).
//!
//! Neither side ever holds the whole key. Refusals (another user's flow, a tampered or replayed
//! round message, a signature that does not verify) are audited.

use crate::mobile::Session;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use medsign_crypto::{
    PublicKey, Signer,
    signer::SignatureScheme,
    sm2::{Sm2PublicKey, Sm2Signature},
    twoparty::{SeenQ1, ServerKeyShare, SignRequest, SignResponse},
    wrap::Kek,
};
use medsign_pki::{
    cert::Cert,
    cms::{self, Parsed},
};
use medsign_signing::flows::{self, FlowView, Signed};
use medsign_signing::{
    flows::Signing,
    model::{FlowKind, FlowState, SignerKind, SignerMode, TimestampMode},
    seams::FlowEvents,
};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
    error::Refusal,
};
use medsign_store::{is_past, now_text, secs_text};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::sync::Mutex;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Most documents in one request (a doctor's batch, R3.6).
pub const MAX_BATCH: usize = 200;
/// How long a round waits for the phone.
pub const ROUND_SECONDS: i64 = 300;

/// The signing seam for a signature made elsewhere: records what it was asked to sign, and answers
/// with the phone's signature (or a placeholder while only the signed bytes are wanted).
struct Deferred {
    public: PublicKey,
    signature: Option<Vec<u8>>,
    asked: Mutex<Option<Vec<u8>>>,
}

impl Deferred {
    fn new(key: Sm2PublicKey, signature: Option<Vec<u8>>) -> Self {
        Self { public: PublicKey::Sm2(key), signature, asked: Mutex::new(None) }
    }

    fn asked(&self) -> Result<Vec<u8>> {
        self.asked
            .lock()
            .map_err(|_| Error::internal("signing seam poisoned"))?
            .clone()
            .ok_or_else(|| Error::internal("nothing was signed"))
    }
}

impl Signer for Deferred {
    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::Sm2Sm3
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> medsign_crypto::Result<Vec<u8>> {
        if let Ok(mut a) = self.asked.lock() {
            *a = Some(msg.to_vec());
        }
        Ok(self.signature.clone().unwrap_or_else(|| vec![0; 72]))
    }
}

/// What the phone shows before the user confirms (never the document itself).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// flow id
    pub flow_id: String,
    /// document number
    pub doc_no: String,
    /// title, e.g. 门诊处方笺 王小明
    pub title: String,
    /// `data` | `file`
    pub kind: FlowKind,
    /// the template a PDF was rendered from
    pub template_id: Option<String>,
    /// SM3 of the content, hex
    pub content_sm3: String,
    /// size of the content
    pub bytes: usize,
    /// pages of a PDF
    pub pages: Option<usize>,
    /// this signer's position, from 0
    pub signer_index: i64,
    /// how many sign
    pub signers: usize,
    /// which system asked (app id)
    pub app_id: String,
    /// RFC 3339
    pub created_at: String,
    /// RFC 3339
    pub expires_at: String,
}

fn summary(f: &flows::Stored, idx: i64) -> Summary {
    let pages =
        (f.kind == FlowKind::File).then(|| medsign_pdf::load(&f.content).map(|d| d.get_pages().len()).ok()).flatten();
    Summary {
        flow_id: f.id.clone(),
        doc_no: f.doc_no.clone(),
        title: f.title.clone(),
        kind: f.kind,
        template_id: f.template_id.clone(),
        content_sm3: f.content_sm3.clone(),
        bytes: f.content.len(),
        pages,
        signer_index: idx,
        signers: f.signers.len(),
        app_id: f.app_id.clone(),
        created_at: f.created_at.clone(),
        expires_at: f.expires_at.clone(),
    }
}

/// The flows waiting for this phone's user to sign (their turn, scan mode, not expired).
pub async fn pending(db: &Db, s: &Session) -> Result<Vec<Summary>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT f.id FROM sign_flows f JOIN flow_signers s ON s.flow_id = f.id \
         WHERE f.state = 'signing' AND f.expires_at > $2 AND s.kind = 'staff' AND s.subject_ref = $1 \
         AND s.mode = 'scan' AND s.state = 'pending' \
         AND s.idx = (SELECT MIN(p.idx) FROM flow_signers p WHERE p.flow_id = f.id AND p.state = 'pending') \
         ORDER BY f.created_at, f.id LIMIT 500",
    )
    .bind(&s.employee_no)
    .bind(medsign_store::now_text())
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let f = flows::stored(db, &id).await?;
        if let Some(t) = f.turn().filter(|_| !is_past(&f.expires_at)) {
            out.push(summary(&f, t.idx));
        }
    }
    Ok(out)
}

/// Which document a round is for: a scanned QR ticket, or a flow from the pending list.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// the ticket id from the QR code
    pub ticket: Option<String>,
    /// or a flow of the pending list
    pub flow_id: Option<String>,
}

/// A round the phone answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// round id (one-time)
    pub round_id: String,
    /// what the phone signs: SM3(Z_A ‖ signed bytes), hex — pass to `KeyShare.beginSign`
    pub e: String,
    /// the two-party key
    pub key_id: String,
    /// the certificate that will verify it
    pub cert_serial: String,
    /// RFC 3339
    pub expires_at: String,
    /// what to show the user
    pub summary: Summary,
}

async fn refuse(db: &Db, ctx: &Context, action: &str, target: &str, e: Error) -> Error {
    audit::refused(db, ctx, Kind::Signing, action, target, e).await
}

/// The phone's active two-party key and its certificate.
pub(crate) struct ActiveKey {
    pub(crate) id: String,
    cert: Cert,
    serial: String,
    public: Sm2PublicKey,
}

/// A key whose certificate waits for the phone's own certification request (an outside CA).
pub(crate) fn certificate_pending() -> Error {
    Error::coded(
        Refusal::Conflict,
        "certificate_pending",
        "签名证书尚未签发，请在手机上完成证书申请 / the signing certificate is not issued yet: finish the certificate request on the phone",
    )
}

/// The row of the session's live two-party key (`columns` of `split_keys`), or a 409 asking to
/// enrol first.
pub(crate) async fn live_key_row(db: &Db, s: &Session, columns: &str) -> Result<sqlx::any::AnyRow> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM split_keys WHERE device_id = $1 AND employee_no = $2 AND status = 'active'"
    )))
    .bind(&s.device_id)
    .bind(&s.employee_no)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| {
        Error::Conflict("此手机尚未生成签名密钥，请先完成开通 / this phone has no signing key yet: enrol first".into())
    })
}

pub(crate) async fn active_key(db: &Db, s: &Session) -> Result<ActiveKey> {
    let r = live_key_row(db, s, "id, cert_serial").await?;
    let serial: String = r.try_get::<Option<String>, _>("cert_serial")?.ok_or_else(certificate_pending)?;
    let rec = medsign_ca::certs::get(db, &serial).await?;
    if rec.status != "active" {
        return Err(Error::Conflict(format!(
            "签名证书 {serial} 状态为 {}，请重新开通 / the signing certificate is {}; enrol again",
            rec.status, rec.status
        )));
    }
    let cert = rec.cert()?;
    let public = match cert.public_key().map_err(|e| Error::internal_from("cosign::active_key", e))? {
        PublicKey::Sm2(p) => *p,
        _ => return Err(Error::internal("a two-party certificate must hold an SM2 key")),
    };
    Ok(ActiveKey { id: r.try_get("id")?, cert, serial, public })
}

/// Open rounds for `targets` (1–[`MAX_BATCH`]); all or nothing is refused up front for a foreign
/// or finished flow.
pub async fn start(db: &Db, kek: &Kek, ctx: &Context, s: &Session, targets: &[Target]) -> Result<Vec<Round>> {
    if targets.is_empty() || targets.len() > MAX_BATCH {
        return Err(Error::Invalid(format!("一次可签 1–{MAX_BATCH} 份 / sign 1-{MAX_BATCH} documents at a time")));
    }
    // the key and the visible signature are loaded once, after the first document is found to be
    // this user's (a foreign flow is a 403 even for a phone without a key)
    let mut signer: Option<(ActiveKey, String)> = None;
    let mut image = None;
    let mut rounds = Vec::with_capacity(targets.len());
    for t in targets {
        let (flow_id, ticket) = match (&t.ticket, &t.flow_id) {
            (Some(tk), None) => {
                let flow = medsign_signing::tickets::peek(db, tk).await?.map(|t| t.flow_id);
                (flow.unwrap_or_default(), Some(tk.as_str()))
            }
            (None, Some(f)) => (f.clone(), None),
            _ => return Err(Error::Invalid("每项须给出 ticket 或 flow_id 之一 / give ticket or flow_id".into())),
        };
        let target = format!("flow:{flow_id}");
        let f = match turn_of(db, s, &flow_id, ticket.is_some()).await {
            Ok(f) => f,
            Err(e @ Error::Forbidden(_)) => return Err(refuse(db, ctx, "flow.cosign.start", &target, e).await),
            Err(e) => return Err(e),
        };
        if signer.is_none() {
            let key = active_key(db, s).await?;
            let user = flows::active_user(db, kek, &s.employee_no).await?;
            signer = Some((key, flows::staff_display(&user)));
        }
        let (key, display) = signer.as_ref().expect("loaded above");
        if let Some(tk) = ticket {
            let redeemed = medsign_signing::tickets::redeem(db, ctx, tk).await?;
            if redeemed.flow_id != f.id {
                return Err(Error::Invalid("二维码与流程不符 / the ticket is for another flow".into()));
            }
        }
        let idx = f.turn().map(|t| t.idx).unwrap_or_default();
        let now = Utc::now();
        let signing_time = secs_text(now);
        let seam = Deferred::new(key.public, None);
        let mut prepared = None;
        if f.kind == FlowKind::File {
            if image.is_none() {
                image = Some(
                    medsign_directory::images::get(db, &format!("user:{}", s.employee_no)).await?.map(|(png, _)| png),
                );
            }
            let doc = f.so_far.as_deref().unwrap_or(&f.content);
            let n = medsign_pdf::signatures(doc).map_err(|e| Error::Invalid(e.to_string()))?.len() + 1;
            let spec = &f.signers[idx as usize].spec;
            let opts = flows::pdf_options(spec, n, "staff", display, image.clone().flatten(), &key.cert, &f.title, now);
            let p = medsign_pdf::prepare(doc, &opts).map_err(|e| Error::Invalid(e.to_string()))?;
            flows::pades_cms(&p.covered(), &seam, &key.cert, &[])?;
            prepared = Some(p.into_parts());
        } else {
            data_cms(&f, &seam, &key.cert, &signing_time)?;
        }
        let e = key.public.e(medsign_crypto::sm2::DEFAULT_ID, &seam.asked()?)?;
        let round_id = format!("sr_{}", hex::encode(medsign_crypto::rng::bytes::<16>()?));
        let expires = secs_text(now + Duration::seconds(ROUND_SECONDS));
        {
            let _w = db.write_lock.lock().await;
            sqlx::query(
                "INSERT INTO sign_rounds (id, flow_id, signer_idx, employee_no, device_id, key_id, cert_serial, e_hex, state, \
                 signing_time, prepared_b64, hole_start, hole_end, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11, $12, $13, $14)",
            )
            .bind(&round_id)
            .bind(&f.id)
            .bind(idx)
            .bind(&s.employee_no)
            .bind(&s.device_id)
            .bind(&key.id)
            .bind(&key.serial)
            .bind(hex::encode(e))
            .bind(&signing_time)
            .bind(prepared.as_ref().map(|(b, _)| B64.encode(b)))
            .bind(prepared.as_ref().map(|(_, h)| h.0 as i64))
            .bind(prepared.as_ref().map(|(_, h)| h.1 as i64))
            .bind(&expires)
            .bind(medsign_store::now_text())
            .execute(&db.pool)
            .await?;
        }
        rounds.push(Round {
            round_id,
            e: hex::encode(e),
            key_id: key.id.clone(),
            cert_serial: key.serial.clone(),
            expires_at: expires,
            summary: summary(&f, idx),
        });
    }
    Ok(rounds)
}

/// The data flow's CMS for this signer (one signer; merged into the flow's signature later).
fn data_cms(f: &flows::Stored, seam: &Deferred, cert: &Cert, signing_time: &str) -> Result<Vec<u8>> {
    let t = DateTime::parse_from_rfc3339(signing_time)
        .map_err(|e| Error::internal_from("stored signing time", e))?
        .with_timezone(&Utc);
    cms::sign(
        &f.content,
        &[cms::CmsSigner { signer: seam, cert, chain: &[] }],
        &cms::SignOptions { detached: f.detached, signing_time: Some(t), ..Default::default() },
    )
    .map_err(|e| Error::internal_from("signing failed", e))
}

/// The flow `id` if it is this phone's user's turn to sign by scanning; otherwise 403 (another
/// user's flow) or 409 (finished, revoked, expired, not a scan turn).
async fn turn_of(db: &Db, s: &Session, id: &str, by_ticket: bool) -> Result<flows::Stored> {
    let f = match flows::stored(db, id).await {
        Ok(f) => f,
        Err(Error::NotFound(_)) if by_ticket => {
            return Err(Error::Invalid("二维码无效（unknown）/ the QR ticket is not valid (unknown)".into()));
        }
        Err(e) => return Err(e),
    };
    let turn = f.turn();
    let mine = turn.is_some_and(|t| t.kind == SignerKind::Staff && t.subject_ref == s.employee_no);
    let anyone_mine = f.signers.iter().any(|t| t.kind == SignerKind::Staff && t.subject_ref == s.employee_no);
    if !anyone_mine {
        return Err(Error::Forbidden(format!(
            "文档 {} 不需要您签署 / document {} is not for you to sign",
            f.doc_no, f.doc_no
        )));
    }
    if f.state != FlowState::Signing || is_past(&f.expires_at) {
        let state = if f.state == FlowState::Signing { FlowState::Expired } else { f.state };
        return Err(Error::Conflict(format!(
            "文档 {} 状态为 {state}，不能签署 / document {} is {state}: nothing to sign",
            f.doc_no, f.doc_no
        )));
    }
    match turn {
        Some(t) if mine && t.mode == SignerMode::Scan => Ok(f),
        _ => Err(Error::Conflict(format!(
            "文档 {} 现在不轮到您签署 / it is not your turn to sign document {}",
            f.doc_no, f.doc_no
        ))),
    }
}

/// A round as stored.
struct RoundRow {
    id: String,
    flow_id: String,
    signer_idx: i64,
    key_id: String,
    cert_serial: String,
    e: [u8; 32],
    state: String,
    signing_time: String,
    prepared: Option<(Vec<u8>, (usize, usize))>,
    /// the server share of its key (wrapped), while the key is active
    share_wrapped: Option<String>,
}

/// The most of a data flow's content the phone is shown (bytes of UTF-8 text).
pub const VIEW_TEXT_MAX: usize = 256 << 10;
/// The most pages of a PDF the phone is shown, and characters of each.
pub const VIEW_PAGES: usize = 20;
/// See [`VIEW_PAGES`].
pub const VIEW_PAGE_CHARS: usize = 8_000;

/// What the doctor reads before signing (R2.4): the document as text, made on the server from
/// exactly what the round signs. Carried only inside the end-to-end channel when the phone is
/// behind a gateway (docs/gateway.md).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// the round
    pub round_id: String,
    /// its flow
    pub flow_id: String,
    /// `data` | `file`
    pub kind: FlowKind,
    /// a data flow's content as sent (text or JSON), when it is UTF-8 text within
    /// [`VIEW_TEXT_MAX`] — its SM3 is the summary's `content_sm3`, which the phone checks
    pub text: Option<String>,
    /// a PDF's text page by page, as it stands before this signature
    pub pages: Option<Vec<String>>,
    /// something is left out (pages or characters over the caps, content that is not text)
    pub truncated: bool,
}

/// A round of this device that is still open (not answered), without its prepared PDF.
async fn open_round(db: &Db, s: &Session, id: &str) -> Result<RoundRow> {
    let r = round(db, s, id, false).await?;
    if r.state != "open" {
        return Err(Error::Conflict(format!("签署轮次 {} 已应答 / signing round {} was answered already", r.id, r.id)));
    }
    Ok(r)
}

/// The view of an open round of this device.
pub async fn view(db: &Db, s: &Session, round_id: &str) -> Result<View> {
    let r = open_round(db, s, round_id).await?;
    let f = flows::stored(db, &r.flow_id).await?;
    let (text, pages, truncated) = match f.kind {
        FlowKind::File => {
            let doc = f.so_far.as_deref().unwrap_or(&f.content);
            let (pages, cut) =
                medsign_pdf::page_texts(doc, VIEW_PAGES, VIEW_PAGE_CHARS).map_err(|e| Error::Invalid(e.to_string()))?;
            (None, Some(pages), cut)
        }
        _ => {
            let text = std::str::from_utf8(&f.content).ok().filter(|t| t.len() <= VIEW_TEXT_MAX);
            (text.map(str::to_string), None, text.is_none())
        }
    };
    Ok(View { round_id: r.id, flow_id: r.flow_id, kind: f.kind, text, pages, truncated })
}

/// A round's columns as stored, read by name from either connection.
struct StoredRound {
    id: String,
    flow_id: String,
    signer_idx: i64,
    key_id: String,
    cert_serial: String,
    e_hex: String,
    state: String,
    signing_time: String,
    expires_at: String,
    prepared_b64: Option<String>,
    /// the prepared PDF's hole for the signature (`NULL` without a PDF)
    hole_start: Option<i64>,
    hole_end: Option<i64>,
    share_wrapped: Option<String>,
}

/// A [`StoredRound`] from `row`, each column read with `row.$get(name)?` (`try_get` for sqlx,
/// `get` for rusqlite): one list of columns for both.
macro_rules! stored_round {
    ($row:expr, $get:ident) => {
        StoredRound {
            id: $row.$get("id")?,
            flow_id: $row.$get("flow_id")?,
            signer_idx: $row.$get("signer_idx")?,
            key_id: $row.$get("key_id")?,
            cert_serial: $row.$get("cert_serial")?,
            e_hex: $row.$get("e_hex")?,
            state: $row.$get("state")?,
            signing_time: $row.$get("signing_time")?,
            expires_at: $row.$get("expires_at")?,
            prepared_b64: $row.$get("prepared_b64")?,
            hole_start: $row.$get("hole_start")?,
            hole_end: $row.$get("hole_end")?,
            share_wrapped: $row.$get("share_wrapped")?,
        }
    };
}

/// The lookup of a round of a device (`$1`, `$2`), the same row either way: without `prepared`
/// the stored PDF is not read at all, since every column it reads is in the index
/// `sign_rounds_lookup` (the PDF's overflow pages lie before `expires_at` in the row).
fn round_sql(prepared: bool) -> String {
    let cols = if prepared {
        "r.*"
    } else {
        "r.id, r.flow_id, r.signer_idx, r.key_id, r.cert_serial, r.e_hex, r.state, r.signing_time, r.expires_at, \
         NULL AS prepared_b64, 0 AS hole_start, 0 AS hole_end"
    };
    format!(
        "SELECT {cols}, k.share_wrapped FROM sign_rounds r \
         LEFT JOIN split_keys k ON k.id = r.key_id AND k.status = 'active' WHERE r.id = $1 AND r.device_id = $2"
    )
}

/// A round of this device; the prepared PDF only when `prepared` (the answer step does not need
/// it), the key's wrapped share joined in.
async fn round(db: &Db, s: &Session, id: &str, prepared: bool) -> Result<RoundRow> {
    let gone = || Error::NotFound(format!("签署轮次 {id} 不存在 / no signing round {id}"));
    let sql = round_sql(prepared);
    // an answer's lookup (no PDF) on SQLite in a file: on this thread when the reader is free
    let direct = db.direct.as_ref().filter(|_| !prepared).and_then(|d| {
        d.try_read(|c| {
            use medsign_store::rusqlite::OptionalExtension;
            c.prepare_cached(&sql)?.query_row([id, &s.device_id], |r| Ok(stored_round!(r, get))).optional()
        })
    });
    let r = match direct {
        Some(read) => read?,
        None => match sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(&s.device_id).fetch_optional(&db.pool).await?
        {
            Some(r) => Some(stored_round!(r, try_get)),
            None => None,
        },
    }
    .ok_or_else(gone)?;
    if is_past(&r.expires_at) {
        return Err(Error::Invalid(format!(
            "签署轮次 {id} 已过期，请重新扫码 / signing round {id} expired; scan again"
        )));
    }
    let corrupt = || Error::internal("stored round is corrupt");
    let e: [u8; 32] = hex::decode(&r.e_hex).ok().and_then(|v| v.try_into().ok()).ok_or_else(corrupt)?;
    let prepared = match r.prepared_b64 {
        Some(b) => {
            let hole = r.hole_start.zip(r.hole_end).ok_or_else(corrupt)?;
            Some((B64.decode(b).map_err(|_| corrupt())?, (hole.0 as usize, hole.1 as usize)))
        }
        None => None,
    };
    Ok(RoundRow {
        id: r.id,
        flow_id: r.flow_id,
        signer_idx: r.signer_idx,
        key_id: r.key_id,
        cert_serial: r.cert_serial,
        e,
        state: r.state,
        signing_time: r.signing_time,
        prepared,
        share_wrapped: r.share_wrapped,
    })
}

/// Renew the certificate of this phone's two-party key online (R5.5): same key, new validity; the
/// old certificate is revoked as superseded. Needs an approval of [`crate::approvals::Purpose::Renew`]
/// for the current certificate's serial.
pub async fn renew_certificate(
    db: &Db,
    kek: &Kek,
    issuer: medsign_ca::certs::Issuer<'_>,
    ctx: &Context,
    s: &Session,
) -> Result<medsign_ca::certs::CertRecord> {
    let serial: Option<String> = sqlx::query_scalar(
        "SELECT cert_serial FROM split_keys WHERE device_id = $1 AND employee_no = $2 AND status = 'active'",
    )
    .bind(&s.device_id)
    .bind(&s.employee_no)
    .fetch_optional(&db.pool)
    .await?
    .flatten();
    let serial = serial.ok_or_else(|| {
        Error::Conflict("此手机尚未生成签名密钥，请先完成开通 / this phone has no signing key yet: enrol first".into())
    })?;
    if medsign_ca::certs::needs_request(db, issuer).await? {
        // the active CA certifies only the key's own request: renewing here would fall through
        // to another CA (or fail) — the phone renews with /mobile/v1/certificate/csr
        return Err(Error::coded(
            Refusal::Conflict,
            "csr_required",
            "本院 CA 只凭密钥自己的证书请求签发，请在手机上重新申请证书 / the hospital's CA certifies only the key's own request: renew through /mobile/v1/certificate/csr",
        ));
    }
    let digest = crate::approvals::digest(crate::approvals::Purpose::Renew, &serial);
    crate::approvals::consume(db, ctx, s, &digest, "certificate.renew", &format!("user:{}", s.employee_no)).await?;
    medsign_ca::certs::renew(db, kek, issuer, ctx, &serial, None).await
}

/// Expired rounds, found through the index `sign_rounds_expiry` (never by reading every row).
const SWEEP_ROUNDS: &str = "DELETE FROM sign_rounds WHERE expires_at < $1";

/// Forget rounds past their expiry, with any prepared document they still hold (run every minute
/// by `medsign serve`); returns how many.
pub async fn sweep(db: &Db) -> Result<usize> {
    let now = secs_text(Utc::now());
    let _w = db.write_lock.lock().await;
    let done = sqlx::query(SWEEP_ROUNDS).bind(now).execute(&db.pool).await?;
    drop(_w);
    Ok(done.rows_affected() as usize + crate::approvals::sweep(db).await? + medsign_directory::tasks::sweep(db).await?)
}

/// One answer of the server half.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// the round
    pub round_id: String,
    /// the phone's message (`SignSession.request`)
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub request: SignRequest,
}

/// Remembers the Q1 the protocol saw, so the database can refuse a repeated one.
#[derive(Default)]
struct CaptureQ1(Option<Vec<u8>>);

impl SeenQ1 for CaptureQ1 {
    fn first_use(&mut self, q1: &[u8]) -> bool {
        self.0 = Some(q1.to_vec());
        true
    }
}

/// The server half's answers, in order. A round answers once; a `Q1` seen before (for this key)
/// is a replay; a request for another `e` or with a bad point is a tampered message.
pub async fn answer(db: &Db, kek: &Kek, ctx: &Context, s: &Session, answers: &[Answer]) -> Result<Vec<SignResponse>> {
    if answers.is_empty() || answers.len() > MAX_BATCH {
        return Err(Error::Invalid(format!("一次可签 1–{MAX_BATCH} 份 / sign 1-{MAX_BATCH} documents at a time")));
    }
    let mut rows = Vec::with_capacity(answers.len());
    for a in answers {
        rows.push(open_round(db, s, &a.round_id).await?);
    }
    // the doctor's approval of exactly these digests, in this order (PIN or fingerprint, once)
    // is taken in the first answer's transaction, so nothing is stored without it
    let digest = crate::approvals::sign_digest(&rows.iter().map(|r| hex::encode(r.e)).collect::<Vec<_>>());
    let mut approval = Some(digest);
    let mut shares: Vec<(String, ServerKeyShare)> = Vec::new();
    let mut out = Vec::with_capacity(answers.len());
    for (a, r) in answers.iter().zip(rows) {
        let target = format!("flow:{}", r.flow_id);
        if !shares.iter().any(|(k, _)| k == &r.key_id) {
            shares.push((r.key_id.clone(), open_share(kek, &r.key_id, r.share_wrapped.clone())?));
        }
        let share = &shares.iter().find(|(k, _)| k == &r.key_id).expect("loaded above").1;
        let approval = approval.take();
        let _w = db.write_lock.lock().await;
        let kept = match &db.direct {
            // SQLite in a file: the whole transaction on this thread (no hand-off per statement)
            Some(direct) => direct.transact(&_w, |tx| answer_directly(tx, s, approval.as_deref(), share, a, &r))?,
            None => answer_pooled(db, s, approval.as_deref(), share, a, &r).await?,
        };
        drop(_w);
        match kept {
            Ok(response) => out.push(response),
            Err(Unanswered::NoApproval) => {
                return Err(crate::approvals::refusal(db, ctx, s, "flow.cosign.answer", &target).await);
            }
            // nothing of this answer is kept (nor the approval, if it was the first)
            Err(Unanswered::Refused(refused)) => {
                return Err(refuse(db, ctx, "flow.cosign.answer", &target, refused).await);
            }
            Err(Unanswered::AnsweredAlready) => {
                return Err(Error::Conflict("签署轮次已应答 / the signing round was answered already".into()));
            }
        }
    }
    Ok(out)
}

/// Why an answer was not given; its transaction is rolled back.
enum Unanswered {
    /// no approval of these digests (PIN or fingerprint) to take
    NoApproval,
    /// the phone's message is refused (not for `e`, a bad point, a replayed `Q1`)
    Refused(Error),
    /// another request answered the round first
    AnsweredAlready,
}

/// One answer's transaction through the pool (PostgreSQL, SQLite in memory): the approval (for
/// the first answer of a batch), then the server half with its `Q1` recorded, then the round.
async fn answer_pooled(
    db: &Db,
    s: &Session,
    approval: Option<&str>,
    share: &ServerKeyShare,
    a: &Answer,
    r: &RoundRow,
) -> Result<std::result::Result<SignResponse, Unanswered>> {
    let mut tx = db.pool.begin().await?;
    if let Some(digest) = approval
        && !crate::approvals::take(&mut tx, s, digest).await?
    {
        tx.rollback().await?;
        return Ok(Err(Unanswered::NoApproval));
    }
    let response = match server_half(&mut tx, &r.key_id, share, &a.request, &r.e).await? {
        Ok(x) => x,
        Err(refused) => {
            tx.rollback().await?;
            return Ok(Err(Unanswered::Refused(refused)));
        }
    };
    let done = sqlx::query(ROUND_ANSWERED).bind(&r.id).execute(&mut *tx).await?;
    if done.rows_affected() != 1 {
        return Ok(Err(Unanswered::AnsweredAlready));
    }
    tx.commit().await?;
    Ok(Ok(response))
}

/// [`answer_pooled`] on the SQLite file's own connection, in the transaction of
/// [`medsign_store::db::Direct::transact`] (which rolls back on the inner error).
fn answer_directly(
    tx: &medsign_store::rusqlite::Transaction<'_>,
    s: &Session,
    approval: Option<&str>,
    share: &ServerKeyShare,
    a: &Answer,
    r: &RoundRow,
) -> medsign_store::rusqlite::Result<std::result::Result<SignResponse, Unanswered>> {
    if let Some(digest) = approval
        && !crate::approvals::take_directly(tx, s, digest)?
    {
        return Ok(Err(Unanswered::NoApproval));
    }
    let (response, q1) = match sign_half(share, &a.request, &r.e) {
        Ok(x) => x,
        Err(refused) => return Ok(Err(Unanswered::Refused(refused))),
    };
    let seen =
        tx.prepare_cached(Q1_SEEN)?.execute(medsign_store::rusqlite::params![r.key_id, hex::encode(q1), now_text()]);
    match seen {
        Ok(_) => {}
        Err(e) if medsign_store::db::is_unique_violation(&e) => return Ok(Err(Unanswered::Refused(replayed()))),
        Err(e) => return Err(e),
    }
    if tx.prepare_cached(ROUND_ANSWERED)?.execute([&r.id])? != 1 {
        return Ok(Err(Unanswered::AnsweredAlready));
    }
    Ok(Ok(response))
}

const ROUND_ANSWERED: &str = "UPDATE sign_rounds SET state = 'answered' WHERE id = $1 AND state = 'open'";
const Q1_SEEN: &str = "INSERT INTO twoparty_q1 (key_id, q1, created_at) VALUES ($1, $2, $3)";

fn replayed() -> Error {
    Error::Invalid("签署消息重复（Q1 已用过）/ the signing message was used before (replayed Q1)".into())
}

/// The server half's answer to `req` for the authorised digest `e`, and the `Q1` it saw; the
/// error is a refusal of the message (not for `e`, or a bad point).
fn sign_half(
    share: &ServerKeyShare,
    req: &SignRequest,
    e: &[u8; 32],
) -> std::result::Result<(SignResponse, Vec<u8>), Error> {
    let mut q1 = CaptureQ1::default();
    match share.sign(req, e, &mut q1) {
        Ok(x) => Ok((x, q1.0.unwrap_or_default())),
        Err(e) => Err(Error::Invalid(format!("签署消息无效 / the signing message is not valid: {e}"))),
    }
}

/// The server half's answer to `req` for the authorised digest `e`, its `Q1` recorded on `conn`
/// (the caller's transaction). The inner error is a refusal of the message: not for `e`, a bad
/// point, or a `Q1` this key has answered before (a replay).
pub(crate) async fn server_half(
    conn: &mut sqlx::AnyConnection,
    key_id: &str,
    share: &ServerKeyShare,
    req: &SignRequest,
    e: &[u8; 32],
) -> Result<std::result::Result<SignResponse, Error>> {
    let (response, q1) = match sign_half(share, req, e) {
        Ok(x) => x,
        Err(refused) => return Ok(Err(refused)),
    };
    let seen = sqlx::query(Q1_SEEN).bind(key_id).bind(hex::encode(q1)).bind(now_text()).execute(&mut *conn).await;
    match seen {
        Ok(_) => Ok(Ok(response)),
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Ok(Err(replayed())),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn server_share(db: &Db, kek: &Kek, key_id: &str) -> Result<ServerKeyShare> {
    let wrapped: Option<String> =
        sqlx::query_scalar("SELECT share_wrapped FROM split_keys WHERE id = $1 AND status = 'active'")
            .bind(key_id)
            .fetch_optional(&db.pool)
            .await?
            .flatten();
    open_share(kek, key_id, wrapped)
}

/// Unwrap a server share kept under the KEK (`None`: the key is no longer active).
fn open_share(kek: &Kek, key_id: &str, wrapped: Option<String>) -> Result<ServerKeyShare> {
    let wrapped = wrapped.ok_or_else(|| {
        Error::Conflict("签名密钥已失效（手机已解绑或重新开通）/ the signing key is no longer active (phone unbound or re-enrolled)".into())
    })?;
    let bytes =
        kek.unwrap(&hex::decode(wrapped).map_err(|_| Error::internal("stored share is corrupt"))?, key_id.as_bytes())?;
    Ok(ServerKeyShare::from_bytes(&bytes)?)
}

/// The phone's final signature for a round.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finish {
    /// the round
    pub round_id: String,
    /// the signature (DER, hex) the phone released after checking it
    pub signature: String,
}

/// The outcome for one document.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// the round
    pub round_id: String,
    /// the flow
    pub flow_id: String,
    /// its state now (`completed`, `signing` for the next signer, `failed`)
    pub state: Option<FlowState>,
    /// what went wrong for this document (the others are not affected)
    pub error: Option<String>,
}

/// Record the phone's signatures; each document stands alone (one refused does not stop the rest).
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    sg: &Signing<'_>,
    events: &dyn FlowEvents,
    ctx: &Context,
    s: &Session,
    items: &[Finish],
) -> Result<Vec<Outcome>> {
    let db = sg.db;
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(Error::Invalid(format!("一次可签 1–{MAX_BATCH} 份 / sign 1-{MAX_BATCH} documents at a time")));
    }
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let r = round(db, s, &it.round_id, true).await?;
        let target = format!("flow:{}", r.flow_id);
        let result = match finish_one(sg, events, ctx, s, &r, &it.signature).await {
            Ok(v) => Ok(v),
            Err(e @ Error::Invalid(_)) => Err(refuse(db, ctx, "flow.cosign.finish", &target, e).await),
            Err(e) => Err(e),
        };
        out.push(match result {
            Ok(v) => Outcome { round_id: r.id, flow_id: r.flow_id, state: Some(v.state), error: None },
            Err(e) if items.len() == 1 => return Err(e),
            Err(e @ Error::Db(_)) => return Err(e),
            Err(e) => Outcome { round_id: r.id, flow_id: r.flow_id, state: None, error: Some(e.to_string()) },
        });
    }
    Ok(out)
}

async fn finish_one(
    sg: &Signing<'_>,
    events: &dyn FlowEvents,
    ctx: &Context,
    s: &Session,
    r: &RoundRow,
    signature_hex: &str,
) -> Result<FlowView> {
    let Signing { db, tsa, .. } = *sg;
    if r.state != "answered" {
        return Err(Error::Conflict(format!(
            "签署轮次 {} 状态为 {}（须先应答且只能完成一次）/ signing round {} is {} (answer first; finish once)",
            r.id, r.state, r.id, r.state
        )));
    }
    let rec = medsign_ca::certs::get(db, &r.cert_serial).await?;
    let cert = rec.cert()?;
    let PublicKey::Sm2(public) = cert.public_key().map_err(|e| Error::internal_from("cosign::finish_one", e))? else {
        return Err(Error::internal("a two-party certificate must hold an SM2 key"));
    };
    let bad = || Error::Invalid("签名无效（与签署内容不符）/ the signature does not verify for this round".into());
    let der = hex::decode(signature_hex.trim()).map_err(|_| bad())?;
    let sig = Sm2Signature::from_der(&der).map_err(|_| bad())?;
    public.verify_prehash(&r.e, &sig).map_err(|_| bad())?;
    let f = flows::stored(db, &r.flow_id).await?;
    if f.state != FlowState::Signing || is_past(&f.expires_at) {
        let state = if f.state == FlowState::Signing { FlowState::Expired } else { f.state };
        return Err(Error::Conflict(format!(
            "文档 {} 状态为 {state}，签名未被采用 / document {} is {state}: the signature was not used",
            f.doc_no, f.doc_no
        )));
    }
    let seam = Deferred::new(*public, Some(der));
    let mut times = Vec::new();
    let mut pending = false;
    let doc = match &r.prepared {
        Some((bytes, hole)) => {
            let p = medsign_pdf::Prepared::from_parts(bytes.clone(), *hole)
                .map_err(|e| Error::internal_from("cosign::finish_one", e))?;
            let cms = flows::pades_cms(&p.covered(), &seam, &cert, &[])?;
            same_bytes(&seam, public, &r.e)?;
            let mut parsed = Parsed::from_bytes(&cms).map_err(|e| Error::internal_from("cosign::finish_one", e))?;
            times.extend(flows::add_timestamps(tsa, &mut parsed, &f.alg, &f.app_id).await?);
            p.finish(&parsed.to_der().map_err(|e| Error::internal_from("cosign::finish_one", e))?)
                .map_err(|e| Error::internal_from("cosign::finish_one", e))?
        }
        None => {
            let mine = data_cms(&f, &seam, &cert, &r.signing_time)?;
            same_bytes(&seam, public, &r.e)?;
            let mine = Parsed::from_bytes(&mine).map_err(|e| Error::internal_from("cosign::finish_one", e))?;
            let mut all = match &f.so_far {
                Some(d) => {
                    let mut p = Parsed::from_bytes(d).map_err(|e| Error::internal_from("cosign::finish_one", e))?;
                    p.merge(&mine).map_err(|e| Error::internal_from("cosign::finish_one", e))?;
                    p
                }
                None => mine,
            };
            match flows::add_timestamps(tsa, &mut all, &f.alg, &f.app_id).await {
                Ok(t) => times.extend(t),
                Err(e) if f.ts_mode == TimestampMode::Later => {
                    tracing::warn!(error = %e, "timestamp deferred");
                    pending = true;
                }
                Err(e) => return Err(e),
            }
            all.to_der().map_err(|e| Error::internal_from("cosign::finish_one", e))?
        }
    };
    let phone = Signed {
        idx: r.signer_idx,
        kind: SignerKind::Staff,
        subject_ref: s.employee_no.clone(),
        serial: r.cert_serial.clone(),
        custody: serde_json::json!({"custody": "two-party", "key": r.key_id, "device": s.device_id, "round": r.id}),
    };
    let total = f.signers.len() as i64;
    let next = flows::sign_following(sg, ctx, &f, r.signer_idx + 1, doc.clone()).await;
    let failed = match next {
        Ok((all, mut signed, more_times, more_pending)) => {
            signed.insert(0, phone);
            times.extend(more_times);
            let step = flows::Step { der: &all, pending: pending || more_pending, ts_times: &times, signed: &signed };
            flows::record(db, ctx, &f.id, &step, total, f.ticket_ttl, None).await?;
            None
        }
        Err(e) => {
            // the phone's signature is kept; the flow fails at the auto signer that could not sign
            let step = flows::Step { der: &doc, pending, ts_times: &times, signed: &[phone] };
            flows::record(db, ctx, &f.id, &step, total, f.ticket_ttl, None).await?;
            Some(e)
        }
    };
    sqlx::query("UPDATE sign_rounds SET state = 'done', prepared_b64 = NULL WHERE id = $1")
        .bind(&r.id)
        .execute(&db.pool)
        .await?;
    if let Some(e) = failed {
        flows::fail(db, ctx, &f.id, &format!("签署失败 / signing failed: {e}")).await?;
    }
    let v = flows::get(db, None, &f.id).await?;
    if v.state == FlowState::Completed {
        events.completed(db, ctx, &f.id).await?;
    }
    Ok(v)
}

/// The rebuilt document asked for exactly the bytes the round's `e` was computed over.
fn same_bytes(seam: &Deferred, public: &Sm2PublicKey, e: &[u8; 32]) -> Result<()> {
    let again = public.e(medsign_crypto::sm2::DEFAULT_ID, &seam.asked()?)?;
    if &again != e {
        return Err(Error::internal("the rebuilt signature input differs from the round's"));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::approvals::tests::{approve, approve_rounds};
    use crate::mobile;
    use medsign_ca::ca::BuiltinCas;
    use medsign_crypto::twoparty::{ClientKeyGen, ClientKeyShare};
    use medsign_directory::users::NewUser;
    use medsign_pki::cms::Indication;
    use medsign_signing::flows::{NewFlow, create};
    use medsign_testkit::{
        db::backends,
        hospital::{ORG, World, add_staff, issuer, sign_app, staff, world},
    };

    /// A bound phone with an enrolled two-party key (the phone half runs natively here; the wasm
    /// build of the same code is tested under Node).
    pub(crate) async fn phone(db: &Db, kek: &Kek, cas: &BuiltinCas, no: &str) -> (Session, ClientKeyShare) {
        let ctx = Context::cli();
        let a = mobile::activation_code(db, kek, &ctx, no).await.unwrap();
        let s = mobile::activate(db, cas, &ctx, no, &a.code, "iPhone").await.unwrap();
        let st = mobile::keygen_start(db, &s).await.unwrap();
        let (kg, req) = ClientKeyGen::start(st.context.as_bytes()).unwrap();
        let done = mobile::keygen_finish(db, kek, issuer(cas), &ctx, &s, &st.key_id, &req).await.unwrap();
        mobile::set_pin(db, kek, &ctx, &s, crate::approvals::tests::PIN, None).await.unwrap();
        (s, kg.finish(&done.response).unwrap())
    }

    pub(crate) fn e_of(r: &Round) -> [u8; 32] {
        hex::decode(&r.e).unwrap().try_into().unwrap()
    }

    /// `flows::record` writes a step only while the flow is still signing and each signer still
    /// pending: a second write for the same signer, or one after a revocation, is refused and the
    /// whole step rolls back (the flow keeps what it had).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_is_recorded_only_over_the_state_it_was_prepared_for() {
        for (_d, db) in backends().await {
            let World { kek, ctx, cas, tsa } = world(&db).await;
            let (app, _) = sign_app(&db, &kek, "HIS").await;
            add_staff(&db, &kek, &[staff("2301", "郑医生")]).await;
            let _phone = phone(&db, &kek, &cas, "2301").await;
            let nf: NewFlow =
                serde_json::from_value(serde_json::json!({"kind": "data", "title": "会诊记录", "content": "x",
                "signers": [{"employee_no": "2301", "mode": "scan"}, {"employee_no": "2301", "mode": "scan"}]}))
                .unwrap();
            let sg = Signing {
                db: &db,
                kek: &kek,
                cas: &cas,
                organization: ORG,
                tsa: &tsa,
                grants: &crate::grants::Grants,
                pades_level: Default::default(),
            };
            let f = flows::create(&sg, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
            let step = |idx: i64| flows::Signed {
                idx,
                kind: SignerKind::Staff,
                subject_ref: "2301".into(),
                serial: "01".into(),
                custody: serde_json::json!({"custody": "two-party"}),
            };
            let record_step = |der: &'static [u8], signer: flows::Signed| {
                let (db, ctx, id) = (db.clone(), ctx.clone(), f.id.clone());
                async move {
                    let step = flows::Step { der, pending: false, ts_times: &[], signed: &[signer] };
                    flows::record(&db, &ctx, &id, &step, 2, 60, None).await
                }
            };
            let stored = |db: Db, id: String| async move {
                let r = sqlx::query("SELECT signature_b64, state FROM sign_flows WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
                (r.try_get::<Option<String>, _>(0).unwrap(), r.try_get::<String, _>(1).unwrap())
            };
            record_step(b"first", step(0)).await.unwrap();
            let after_first = stored(db.clone(), f.id.clone()).await;
            assert_eq!(after_first.1, "signing");
            // the same signer again: the flow row would match, the signer row does not → all rolled back
            let e = record_step(b"again", step(0)).await.unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            assert_eq!(stored(db.clone(), f.id.clone()).await, after_first, "nothing of the refused step stayed");
            // revoked meanwhile: the next signer's step is refused, the signer stays pending
            flows::revoke(&db, &ctx, Some(&app.app_id), &f.id, "作废").await.unwrap();
            let e = record_step(b"late", step(1)).await.unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            let v = flows::get(&db, None, &f.id).await.unwrap();
            assert_eq!((v.state.as_str(), v.signers[1].state.as_str()), ("revoked", "pending"));
        }
    }

    /// What the co-signing tests share: a [`World`], the app HIS, the doctors 2001 (`me`) and 2002
    /// (`other`), each with a bound phone and its half of a two-party key.
    struct Ward {
        w: World,
        app: medsign_directory::apps::App,
        me: Session,
        share: ClientKeyShare,
        other: Session,
        other_share: ClientKeyShare,
    }

    async fn ward(db: &Db) -> Ward {
        let w = world(db).await;
        let (app, _) = sign_app(db, &w.kek, "HIS").await;
        let u = |no: &str| NewUser { title: Some("主治医师".into()), ..staff(no, &format!("医生{no}")) };
        add_staff(db, &w.kek, &[u("2001"), u("2002")]).await;
        let (me, share) = phone(db, &w.kek, &w.cas, "2001").await;
        let (other, other_share) = phone(db, &w.kek, &w.cas, "2002").await;
        Ward { w, app, me, share, other, other_share }
    }

    /// How `w` signs (with the phone context's grants).
    fn signing<'a>(db: &'a Db, w: &'a World) -> Signing<'a> {
        Signing {
            db,
            kek: &w.kek,
            cas: &w.cas,
            organization: ORG,
            tsa: &w.tsa,
            grants: &crate::grants::Grants,
            pades_level: Default::default(),
        }
    }

    /// A flow of the app HIS made from `v` (a `NewFlow` in JSON).
    async fn flow(db: &Db, x: &Ward, v: serde_json::Value) -> FlowView {
        let nf = serde_json::from_value::<NewFlow>(v).unwrap();
        create(&signing(db, &x.w), &x.w.ctx, &x.app.app_id, &nf, 1 << 22).await.unwrap()
    }

    /// The PDF the tests scan: the doctor signs visibly, then the hospital seal follows automatically.
    async fn pdf_flow(db: &Db, x: &Ward) -> (Vec<u8>, FlowView) {
        let pdf = medsign_pdf::blank_pdf(595, 842);
        let f = flow(db, x, serde_json::json!({"kind": "file", "title": "检查报告 王小明", "content_base64": B64.encode(&pdf),
            "signers": [{"employee_no": "2001", "mode": "scan", "placement": {"page": 1, "rect": [350, 60, 550, 130]}}, {"seal": "hospital"}]}))
        .await;
        (pdf, f)
    }

    /// A data flow whose only signer is 2001, by scanning.
    async fn scan_flow(db: &Db, x: &Ward, title: &str, content: &str) -> FlowView {
        flow(
            db,
            x,
            serde_json::json!({"kind": "data", "title": title, "content": content,
            "signers": [{"employee_no": "2001", "mode": "scan"}]}),
        )
        .await
    }

    /// The round 2001's phone opens on flow `id` (from its pending list).
    async fn round_of(db: &Db, x: &Ward, id: &str) -> Round {
        let t = Target { ticket: None, flow_id: Some(id.into()) };
        start(db, &x.w.kek, &x.w.ctx, &x.me, &[t]).await.unwrap().remove(0)
    }

    /// 2001 approves `rounds` with the PIN, the phone answers them (one request) and signs:
    /// what it sends to finish them.
    async fn answered(db: &Db, x: &Ward, rounds: &[Round]) -> Vec<Finish> {
        let mut sessions = Vec::new();
        let mut answers = Vec::new();
        for r in rounds {
            let (s, req) = x.share.begin_sign(&e_of(r)).unwrap();
            sessions.push(s);
            answers.push(Answer { round_id: r.round_id.clone(), request: req });
        }
        approve_rounds(db, &x.w.kek, &x.me, &rounds.iter().collect::<Vec<_>>()).await;
        let resps = answer(db, &x.w.kek, &x.w.ctx, &x.me, &answers).await.unwrap();
        sessions
            .into_iter()
            .zip(&resps)
            .zip(rounds)
            .map(|((s, resp), r)| Finish {
                round_id: r.round_id.clone(),
                signature: hex::encode(s.finish(resp).unwrap().to_der()),
            })
            .collect()
    }

    async fn finished(db: &Db, x: &Ward, fins: &[Finish]) -> Result<Vec<Outcome>> {
        finish(&signing(db, &x.w), &crate::logins::LoginEvents, &x.w.ctx, &x.me, fins).await
    }

    /// Audited refusals of co-signing steps.
    async fn refused(db: &Db) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'flow.cosign.%' AND outcome = 'refused'")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    }

    /// The smoke scenario: a PDF flow waits for the doctor's scan; the phone opens the round
    /// (a summary of the document, never the document), the doctor approves it, the phone answers
    /// and signs; the hospital seal follows and both signatures are timestamped and verify.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_phone_co_signs_a_scanned_pdf_and_the_seal_follows() {
        for (_d, db) in backends().await {
            let x = ward(&db).await;
            let (pdf, f) = pdf_flow(&db, &x).await;
            assert_eq!(f.state, FlowState::Signing);
            let ticket = medsign_signing::tickets::current(&db, &f.id).await.unwrap().unwrap().id;
            let st = |s: &str, f: &str| medsign_signing::scan::TicketStatus { state: s.into(), flow_state: f.into() };
            assert_eq!(medsign_signing::scan::status(&db, &ticket).await.unwrap(), st("waiting", "signing"));
            let t = Target { ticket: Some(ticket.clone()), flow_id: None };
            let rounds = start(&db, &x.w.kek, &x.w.ctx, &x.me, &[t]).await.unwrap();
            assert_eq!(rounds.len(), 1);
            assert_eq!(medsign_signing::scan::status(&db, &ticket).await.unwrap(), st("scanned", "signing"));
            let r = &rounds[0];
            assert_eq!((r.summary.pages, r.summary.signer_index, r.summary.kind.as_str()), (Some(1), 0, "file"));
            assert_eq!(r.summary.content_sm3, hex::encode(medsign_crypto::hash::sm3(&pdf)));
            let fins = answered(&db, &x, &rounds).await;
            let out = finished(&db, &x, &fins).await.unwrap();
            assert_eq!(out[0].state.map(|s| s.as_str()), Some("completed"), "{out:?}");
            assert_eq!(medsign_signing::scan::status(&db, &ticket).await.unwrap(), st("signed", "completed"));
            let signed = flows::signature_bytes(&db, Some(&x.app.app_id), &f.id).await.unwrap();
            let rep = flows::verify_file(&db, &x.w.cas, &signed).await.unwrap();
            assert_eq!(rep.signatures.len(), 2);
            assert_eq!(rep.indication, Indication::TotalPassed, "{rep:#?}");
            let v = flows::get(&db, None, &f.id).await.unwrap();
            assert!(v.signers.iter().all(|s| s.timestamp_at.is_some()), "{:?}", v.signers);
            let custody: Vec<Option<&str>> = v.signers.iter().map(|s| s.custody.map(|c| c.as_str())).collect();
            assert_eq!(custody, [Some("two-party"), Some("server")]);
        }
    }

    /// Another doctor's phone scanning a ticket is refused (403, audited) and the ticket still
    /// works for its doctor, once; an unknown ticket has no status.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scan_ticket_opens_one_round_for_its_own_doctor_only() {
        for (_d, db) in backends().await {
            let x = ward(&db).await;
            let (kek, ctx) = (&x.w.kek, &x.w.ctx);
            let (_, f) = pdf_flow(&db, &x).await;
            let ticket = medsign_signing::tickets::current(&db, &f.id).await.unwrap().unwrap().id;
            assert!(matches!(medsign_signing::scan::status(&db, "tk_nope").await, Err(Error::NotFound(_))));
            let t = Target { ticket: Some(ticket), flow_id: None };
            let e = start(&db, kek, ctx, &x.other, std::slice::from_ref(&t)).await.unwrap_err();
            assert!(matches!(e, Error::Forbidden(_)), "{e}");
            assert_eq!(start(&db, kek, ctx, &x.me, std::slice::from_ref(&t)).await.unwrap().len(), 1);
            assert!(matches!(start(&db, kek, ctx, &x.me, &[t]).await, Err(Error::Invalid(_))));
            assert_eq!(refused(&db).await, 1, "the foreign start (not the second use of the ticket)");
        }
    }

    /// The device session alone answers nothing (issue #15), nor does an approval of other
    /// digests; the doctor's approval of the round's digest does, once. A message for another `e`
    /// (tampered) is refused without using the approval up; another phone cannot answer the round;
    /// a `Q1` replayed in a new round is refused (the server never answers one `Q1` twice).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_answer_needs_the_doctors_approval_of_its_round_and_is_never_replayed() {
        for (_d, db) in backends().await {
            let x = ward(&db).await;
            let (kek, ctx, me) = (&x.w.kek, &x.w.ctx, &x.me);
            let (_, f) = pdf_flow(&db, &x).await;
            let r = round_of(&db, &x, &f.id).await;
            let (_s, req0) = x.share.begin_sign(&e_of(&r)).unwrap();
            let unapproved = Answer { round_id: r.round_id.clone(), request: req0 };
            let e = answer(&db, kek, ctx, me, std::slice::from_ref(&unapproved)).await.unwrap_err();
            assert_eq!(e.code(), "approval_required", "{e}");
            approve(&db, kek, me, &crate::approvals::sign_digest(&["00".repeat(32)])).await;
            let e = answer(&db, kek, ctx, me, std::slice::from_ref(&unapproved)).await.unwrap_err();
            assert_eq!(e.code(), "approval_required", "{e}");
            // tampered: refused, the round stays open, and the doctor's approval is not used up by
            // it (whoever holds the session cannot spend it)
            approve_rounds(&db, kek, me, &[&r]).await;
            let (_s, wrong) = x.share.begin_sign(&[7u8; 32]).unwrap();
            let bad = Answer { round_id: r.round_id.clone(), request: wrong };
            assert!(matches!(answer(&db, kek, ctx, me, &[bad]).await, Err(Error::Invalid(_))));
            let (_s, req) = x.other_share.begin_sign(&e_of(&r)).unwrap();
            let foreign = Answer { round_id: r.round_id.clone(), request: req };
            assert!(matches!(answer(&db, kek, ctx, &x.other, &[foreign]).await, Err(Error::NotFound(_))));
            let (_session, req) = x.share.begin_sign(&e_of(&r)).unwrap();
            let a = Answer { round_id: r.round_id.clone(), request: req };
            answer(&db, kek, ctx, me, std::slice::from_ref(&a)).await.unwrap();
            assert!(matches!(answer(&db, kek, ctx, me, std::slice::from_ref(&a)).await, Err(Error::Conflict(_))));
            // the same Q1 in a new round, approved
            let d = flow(
                &db,
                &x,
                serde_json::json!({"kind": "data", "title": "医嘱", "content": "NS 250ml ivgtt",
                "signers": [{"seal": "hospital"}, {"employee_no": "2001", "mode": "scan"}]}),
            )
            .await;
            let r2 = round_of(&db, &x, &d.id).await;
            let mut replay = a.clone();
            replay.round_id = r2.round_id.clone();
            approve_rounds(&db, kek, me, &[&r2]).await;
            let got = answer(&db, kek, ctx, me, &[replay]).await;
            assert!(matches!(got, Err(Error::Invalid(_))), "{got:?}");
            // the same Q1 in a message for the new round's own digest: only the record of every
            // Q1 this key answered stops it, refused and audited as a replay (not a storage error)
            let (_s, mut fresh) = x.share.begin_sign(&e_of(&r2)).unwrap();
            fresh.q1 = a.request.q1.clone();
            let got = answer(&db, kek, ctx, me, &[Answer { round_id: r2.round_id.clone(), request: fresh }]).await;
            assert!(matches!(&got, Err(Error::Invalid(m)) if m.contains("Q1")), "{got:?}");
            assert_eq!(refused(&db).await, 5, "two unapproved answers, the tampered one, the two replays");
        }
    }

    /// An answer's lookup of its round reads an index alone, never the row, in which the prepared
    /// PDF lies before the columns it needs (SQLite: reaching them walked the PDF's overflow pages,
    /// on the request's thread since it reads through `Direct::try_read`). The finish step, which
    /// needs the PDF, reads the row. The sweep finds expired rounds through an index too.
    #[tokio::test]
    async fn an_answers_round_lookup_reads_an_index_and_not_the_prepared_pdf() {
        let (_d, db) = medsign_testkit::db::temp_db().await;
        let plan = |sql: String, params: &[&str]| medsign_testkit::db::query_plan(&db, &sql, params);
        let answer = plan(round_sql(false), &["sr_x", "dev_x"]);
        assert!(answer.contains("USING COVERING INDEX sign_rounds_lookup"), "{answer}");
        let finish = plan(round_sql(true), &["sr_x", "dev_x"]);
        assert!(finish.contains("sign_rounds") && !finish.contains("COVERING INDEX sign_rounds"), "{finish}");
        // nor does the sweep read every row (under the write lock, every minute): only those it deletes
        let sweep = plan(SWEEP_ROUNDS.into(), &["2026-01-01T00:00:00Z"]);
        assert!(sweep.contains("INDEX sign_rounds_expiry (expires_at<?)"), "{sweep}");
    }

    /// A signature that does not verify under the joint key is refused (audited) and the round
    /// stays answerable by the right one; a round finishes once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_signature_that_does_not_verify_is_refused_and_a_round_finishes_once() {
        for (_d, db) in backends().await {
            let x = ward(&db).await;
            let (_, f) = pdf_flow(&db, &x).await;
            let r = round_of(&db, &x, &f.id).await;
            let ok = answered(&db, &x, std::slice::from_ref(&r)).await.remove(0);
            let junk = Finish { round_id: r.round_id.clone(), signature: hex::encode([0x30, 0x06, 2, 1, 1, 2, 1, 1]) };
            assert!(matches!(finished(&db, &x, &[junk]).await, Err(Error::Invalid(_))));
            let out = finished(&db, &x, std::slice::from_ref(&ok)).await.unwrap();
            assert_eq!(out[0].state.map(|s| s.as_str()), Some("completed"), "{out:?}");
            assert!(matches!(finished(&db, &x, &[ok]).await, Err(Error::Conflict(_))));
            assert_eq!(refused(&db).await, 1, "the junk signature (not the second finish)");
        }
    }

    /// A data flow: the phone's signature joins the seal's in one CMS; both are timestamped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_phones_signature_joins_the_seals_in_one_timestamped_cms() {
        for (_d, db) in backends().await {
            let x = ward(&db).await;
            let d = flow(
                &db,
                &x,
                serde_json::json!({"kind": "data", "title": "医嘱", "content": "NS 250ml ivgtt",
                "signers": [{"seal": "hospital"}, {"employee_no": "2001", "mode": "scan"}]}),
            )
            .await;
            let r = round_of(&db, &x, &d.id).await;
            let fins = answered(&db, &x, &[r]).await;
            let out = finished(&db, &x, &fins).await.unwrap();
            assert_eq!(out[0].state.map(|s| s.as_str()), Some("completed"));
            let cms_der = flows::signature_bytes(&db, Some(&x.app.app_id), &d.id).await.unwrap();
            let rep = flows::verify_data(&db, &x.w.cas, &cms_der, Some(b"NS 250ml ivgtt")).await.unwrap();
            assert!(rep.is_valid(), "{rep:#?}");
            assert_eq!(rep.signers.len(), 2);
            assert!(rep.signers.iter().all(|s| s.timestamp.as_ref().is_some_and(|t| t.ok())));
        }
    }

    /// A batch from the pending list: one approval, three requests for five documents; a document
    /// revoked meanwhile and one with a bad signature fail alone (the bad one audited and still
    /// pending).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_from_the_pending_list_takes_one_approval_and_fails_document_by_document() {
        for (_d, db) in backends().await {
            let x = ward(&db).await;
            let mut ids = Vec::new();
            for i in 0..5 {
                ids.push(scan_flow(&db, &x, &format!("检验报告 {i}"), &format!("WBC {i}")).await.id);
            }
            // oldest first; flows made in the same millisecond may come in either order
            let mut listed: Vec<String> = pending(&db, &x.me).await.unwrap().into_iter().map(|s| s.flow_id).collect();
            listed.sort();
            let mut want = ids.clone();
            want.sort();
            assert_eq!(listed, want);
            assert!(pending(&db, &x.other).await.unwrap().is_empty());
            let targets: Vec<Target> =
                ids.iter().map(|id| Target { ticket: None, flow_id: Some(id.clone()) }).collect();
            let rounds = start(&db, &x.w.kek, &x.w.ctx, &x.me, &targets).await.unwrap();
            let mut fins = answered(&db, &x, &rounds).await;
            flows::revoke(&db, &x.w.ctx, Some(&x.app.app_id), &ids[2], "开错了").await.unwrap();
            fins[4].signature = fins[3].signature.clone();
            let out = finished(&db, &x, &fins).await.unwrap();
            let states: Vec<Option<&str>> = out.iter().map(|o| o.state.map(|s| s.as_str())).collect();
            assert_eq!(states, [Some("completed"), Some("completed"), None, Some("completed"), None], "{out:?}");
            assert!(out[2].error.as_deref().unwrap().contains("is revoked"), "{out:?}");
            assert!(out[4].error.as_deref().unwrap().contains("does not verify"), "{out:?}");
            assert_eq!(pending(&db, &x.me).await.unwrap().len(), 1, "the one with the bad signature is still pending");
            assert_eq!(refused(&db).await, 1, "the bad signature (not the revoked document)");
        }
    }

    /// Nothing to sign is refused without an audited refusal: a finished flow, an unknown flow, no
    /// flow. Expired rounds (and the documents they prepared) are swept, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nothing_to_sign_is_refused_and_expired_rounds_are_swept() {
        for (_d, db) in backends().await {
            let x = ward(&db).await;
            let (kek, ctx, me) = (&x.w.kek, &x.w.ctx, &x.me);
            let done = scan_flow(&db, &x, "检验报告", "WBC 6.1").await;
            let fins = answered(&db, &x, &[round_of(&db, &x, &done.id).await]).await;
            finished(&db, &x, &fins).await.unwrap();
            let done = Target { ticket: None, flow_id: Some(done.id) };
            assert!(matches!(start(&db, kek, ctx, me, &[done]).await, Err(Error::Conflict(_))));
            let nope = Target { ticket: None, flow_id: Some("sf_nope".into()) };
            assert!(matches!(start(&db, kek, ctx, me, &[nope]).await, Err(Error::NotFound(_))));
            assert!(matches!(start(&db, kek, ctx, me, &[]).await, Err(Error::Invalid(_))));
            assert_eq!(refused(&db).await, 0);
            let open = scan_flow(&db, &x, "检验报告", "WBC 7.2").await;
            round_of(&db, &x, &open.id).await;
            sqlx::query("UPDATE sign_rounds SET expires_at = '2020-01-01T00:00:00Z' WHERE flow_id = $1")
                .bind(&open.id)
                .execute(&db.pool)
                .await
                .unwrap();
            assert_eq!(sweep(&db).await.unwrap(), 1);
            assert_eq!(sweep(&db).await.unwrap(), 0);
        }
    }
}
