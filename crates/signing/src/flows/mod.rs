//! Signing flows (issue #6). A hospital system creates a flow with the content and an ordered
//! list of signers — staff whose key the hospital holds in server custody under a per-user
//! authorization record, organisation seals (hospital, departments), or staff who sign on their
//! phone by scanning a QR ticket — and medsign signs in order. `data` flows produce one CMS
//! SignedData (RFC 5652; signingTime, signingCertificateV2) with every signer, each signature
//! timestamped by the built-in TSA (unsigned attribute, R6.7). `file` flows sign a PDF (given, or
//! rendered from a versioned template): one incremental update per signer (PAdES B-T), visible in
//! a template's signature box, a rectangle or next to a keyword, showing the handwriting or seal
//! image; earlier signatures untouched. States: `pending → signing → completed`, or `revoked` /
//! `expired` / `failed`; a scan signer's turn leaves the flow in `signing` with an open ticket
//! ([`crate::tickets`]). Every state change is POSTed to the app's callback URL, signed with the
//! app's HMAC-SM3 key (deliveries persisted and retried with backoff).
//!
//! Timestamps: `timestamp: "required"` (default) — when the TSA cannot issue, the flow fails and
//! nothing is released without its timestamp; `"later"` — the signatures are released at once,
//! the flow is marked `timestamp_pending`, and [`complete_pending_timestamps`] (run every minute
//! by `medsign serve`) adds the tokens when the clock is back in sync.

use crate::{
    model::{Custody, FlowKind, FlowState, PadesLevel, SignerKind, SignerMode, SignerState, TimestampMode, column},
    seams::{BoxFuture, GrantSigners},
};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use medsign_ca::{
    ca::BuiltinCas,
    certs::{self, CertRecord, Issuer},
};
use medsign_crypto::{KeyAlg, Signer, signer::KeySigner, wrap::Kek};
use medsign_directory::users;
use medsign_pki::{
    cert::Cert,
    cms::{self, CmsSigner, Parsed, SignOptions},
    csr,
    name::parse_dn,
    tsp::MessageImprint,
};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    custody,
    db::Db,
};
use medsign_tsa::tsa::Tsa;
use serde::{Deserialize, Serialize};
use sqlx::Row;

mod format;
mod keys;
mod ltv;
#[cfg(test)]
mod ltv_tests;
#[cfg(test)]
pub(crate) mod tests;
mod verify;
mod webhooks;

pub use format::*;
pub use keys::*;
pub use ltv::*;
pub use verify::*;
pub use webhooks::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A signer of a new flow: a staff member (`employee_no`) or a seal (`seal`: `hospital` or a
/// department code).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSigner {
    /// staff member
    pub employee_no: Option<String>,
    /// `hospital` or a department code
    pub seal: Option<String>,
    /// `auto` (server custody) or `scan` (the signer scans a QR ticket with the phone; staff only)
    #[serde(default = "auto")]
    pub mode: String,
    /// PDF flows: where the visible signature goes (absent: invisible)
    pub placement: Option<PlacementIn>,
    /// PDF flows: sign in this signature field placed in advance (a template's signature box)
    pub field: Option<String>,
}

/// A visible signature's place: a page (from 1) and rectangle in PDF points, or a box of `size`
/// right after a `keyword` printed on the page (e.g. "医师签名：").
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementIn {
    /// page, from 1 (with a keyword: only look there)
    pub page: Option<u32>,
    /// [x1, y1, x2, y2], points from the lower-left corner
    pub rect: Option<[f64; 4]>,
    /// anchor on this text: the box starts after it, centred on its line
    pub keyword: Option<String>,
    /// with a keyword: [width, height] of the box (default [120, 50])
    pub size: Option<[f64; 2]>,
    /// with a keyword: [dx, dy] moving the box (default [4, 0])
    pub offset: Option<[f64; 2]>,
}

impl PlacementIn {
    /// Where on `pdf` this places the signature.
    fn resolve(&self, pdf: &[u8]) -> Result<medsign_pdf::Placement> {
        match (&self.rect, &self.keyword) {
            (Some(rect), None) if self.size.is_none() && self.offset.is_none() => {
                Ok(medsign_pdf::Placement { page: self.page.unwrap_or(1), rect: *rect })
            }
            (None, Some(k)) => {
                let found = medsign_pdf::find_text(pdf, k, self.page)
                    .map_err(|e| Error::Invalid(e.to_string()))?
                    .ok_or_else(|| {
                        Error::Invalid(format!("文档中找不到关键字“{k}” / the keyword '{k}' is not in the document"))
                    })?;
                let [w, h] = self.size.unwrap_or([120.0, 50.0]);
                let [dx, dy] = self.offset.unwrap_or([4.0, 0.0]);
                if !(w > 0.0 && h > 0.0) {
                    return Err(Error::Invalid("size 须为正数 / size must be positive".into()));
                }
                let x1 = found.rect[2] + dx;
                let y1 = (found.rect[1] + found.rect[3]) / 2.0 - h / 2.0 + dy;
                Ok(medsign_pdf::Placement { page: found.page, rect: [x1, y1, x1 + w, y1 + h] })
            }
            _ => Err(Error::Invalid(
                "placement 须为 {page, rect} 或 {keyword, size?, offset?, page?} / placement is {page, rect} or {keyword, size?, offset?, page?}".into(),
            )),
        }
    }
}

fn auto() -> String {
    "auto".into()
}

fn yes() -> bool {
    true
}

/// `POST /api/v1/sign-flows`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFlow {
    /// `data` (`file` arrives with PDF signing)
    pub kind: String,
    /// what it is, e.g. 门诊处方 No.123
    pub title: String,
    /// the content as text (UTF-8)
    pub content: Option<String>,
    /// or as base64 bytes
    pub content_base64: Option<String>,
    /// or as JSON (signed as compact JSON with keys sorted)
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub content_json: Option<serde_json::Value>,
    /// leave the content out of the signature (default true)
    #[serde(default = "yes")]
    pub detached: bool,
    /// in signing order
    pub signers: Vec<NewSigner>,
    /// `sm2` (default) | `rsa`
    pub alg: Option<String>,
    /// state changes are POSTed here
    pub callback_url: Option<String>,
    /// default 1440 (one day)
    pub expires_in_minutes: Option<u32>,
    /// `required` (default) | `later`
    pub timestamp: Option<String>,
    /// PDF flows: the first signer certifies the document (DocMDP permissions 1, 2 or 3)
    pub certify: Option<u8>,
    /// PDF flows: render the document from this template (instead of content_base64) …
    pub template_id: Option<String>,
    /// … this version of it (default: the latest) …
    pub template_version: Option<i64>,
    /// … with this data
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<serde_json::Value>,
    /// lifetime of scan signers' QR tickets, 60–1800 s (default 300)
    pub ticket_ttl_seconds: Option<u32>,
    /// PDF flows: `B-T` (signature timestamps), `B-LT` (plus certificates, OCSP answers and CRLs
    /// in the document's DSS, for verification years later without the hospital's OCSP) or
    /// `B-LTA` (plus a document timestamp, renewed before the TSA certificate expires); default:
    /// the hospital's `[sign] pades_level` (B-T unless set)
    #[cfg_attr(feature = "openapi", schema(value_type = Option<PadesLevel>, example = "B-LTA"))]
    pub pades_level: Option<String>,
}

/// A signer as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct SignerView {
    /// position, from 0
    pub index: i64,
    /// `staff` | `seal`
    pub kind: SignerKind,
    /// employee number or seal name
    #[serde(rename = "ref")]
    pub subject_ref: String,
    /// `auto` | `scan`
    pub mode: SignerMode,
    /// `pending` | `signed` | `failed`
    pub state: SignerState,
    /// how the key that signed was held: `server` (custody), `two-party` (phone + server) or
    /// `grant` (two-party, the phone's half run under the user's session grant)
    pub custody: Option<Custody>,
    /// the session grant a `grant` signature was made under
    pub grant_id: Option<String>,
    /// certificate used
    pub cert_serial: Option<String>,
    /// when
    pub signed_at: Option<String>,
    /// genTime of its signature timestamp
    pub timestamp_at: Option<String>,
    /// what went wrong
    pub error: Option<String>,
}

/// A flow as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct FlowView {
    /// id
    pub id: String,
    /// human-readable document number, e.g. QM-20261127-7K3F9Q2A
    pub doc_no: String,
    /// `data` | `file`
    pub kind: FlowKind,
    /// title
    pub title: String,
    /// `pending` | `signing` | `completed` | `revoked` | `expired` | `failed`
    pub state: FlowState,
    /// `sm2` | `rsa`
    pub alg: String,
    /// content not embedded
    pub detached: bool,
    /// SM3 of the content, hex
    pub content_sm3: String,
    /// `required` | `later`
    pub timestamp_mode: TimestampMode,
    /// signatures released, timestamps to follow
    pub timestamp_pending: bool,
    /// callback
    pub callback_url: Option<String>,
    /// expiry
    pub expires_at: String,
    /// revocation reason
    pub reason: Option<String>,
    /// failure
    pub error: Option<String>,
    /// created
    pub created_at: String,
    /// last change
    pub updated_at: String,
    /// the signers
    pub signers: Vec<SignerView>,
    /// template the document was rendered from
    pub template_id: Option<String>,
    /// its version
    pub template_version: Option<i64>,
    /// PDF flows: the PAdES level of the result (`B-T` | `B-LT` | `B-LTA`)
    pub pades_level: Option<PadesLevel>,
    /// the open QR ticket of the scan signer whose turn it is (for the app that owns the flow)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<crate::tickets::TicketView>,
}

fn new_doc_no() -> Result<String> {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let r = medsign_crypto::rng::bytes::<8>()?;
    let tail: String = r.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect();
    Ok(format!("QM-{}-{tail}", Utc::now().format("%Y%m%d")))
}

/// [`create`] for an API client's request with an `Idempotency-Key` (`retry`: the key and the
/// request's hash): the flow carries them in its unique `request_key`, so an attempt that made the
/// flow and then died with its instance, before its answer was kept, is found by the retry that
/// takes its reservation over — never made a second time.
pub async fn create_once(
    sg: &Signing<'_>,
    ctx: &Context,
    app_id: &str,
    nf: &NewFlow,
    max_bytes: usize,
    retry: Option<(&str, &str)>,
) -> Result<FlowView> {
    let Some((key, hash)) = retry else { return create(sg, ctx, app_id, nf, max_bytes).await };
    let request_key = format!("api:{app_id}:{key}:{hash}");
    match reusable(sg.db, &request_key, medsign_store::idempotency::KEEP_SECS).await? {
        Some(id) => {
            reopen_scan_turn(sg.db, ctx, &id).await?;
            get(sg.db, Some(app_id), &id).await
        }
        None => create_keyed(sg, ctx, app_id, nf, max_bytes, Some(&request_key)).await,
    }
}

/// A retry is answered with an earlier attempt's flow: if that attempt's instance died between
/// committing the flow and opening its scan signer's ticket (two transactions), open it now, so
/// the system can show the QR (the chaos run met it).
async fn reopen_scan_turn(db: &Db, ctx: &Context, id: &str) -> Result<()> {
    if crate::tickets::current(db, id).await?.is_some() {
        return Ok(());
    }
    let turn = sqlx::query(
        "SELECT s.idx, s.mode, f.ticket_ttl FROM flow_signers s JOIN sign_flows f ON f.id = s.flow_id \
         WHERE s.flow_id = $1 AND f.state = 'signing' AND s.state = 'pending' ORDER BY s.idx LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?;
    let Some(r) = turn.filter(|r| r.try_get::<String, _>("mode").is_ok_and(|m| m == "scan")) else {
        return Ok(());
    };
    let ttl = u32::try_from(r.try_get::<i64, _>("ticket_ttl")?).unwrap_or(crate::tickets::DEFAULT_TTL_SECONDS);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    crate::tickets::open(&mut tx, ctx, id, r.try_get("idx")?, ttl).await?;
    tx.commit().await?;
    Ok(())
}

/// The flow an earlier attempt with `request_key` (unique among flows) made that a retry should
/// answer with: one not failed, made within `keep_secs`, and not an automatic signing cut off by
/// a crash (it is failed here: nothing of it was released). A flow that does not qualify gives
/// its key up, so the retry makes a new one.
async fn reusable(db: &Db, request_key: &str, keep_secs: i64) -> Result<Option<String>> {
    let Some(r) = sqlx::query("SELECT id, state, created_at FROM sign_flows WHERE request_key = $1")
        .bind(request_key)
        .fetch_optional(&db.pool)
        .await?
    else {
        return Ok(None);
    };
    let (id, state, created): (String, String, String) =
        (r.try_get("id")?, r.try_get("state")?, r.try_get("created_at")?);
    // waiting for a server-side (automatic) signer while no request runs: cut off by a crash
    let next_mode: Option<String> = sqlx::query_scalar(
        "SELECT mode FROM flow_signers WHERE flow_id = $1 AND state = 'pending' ORDER BY idx LIMIT 1",
    )
    .bind(&id)
    .fetch_optional(&db.pool)
    .await?;
    let interrupted = state == "signing" && next_mode.is_some_and(|m| m != "scan");
    let since = (Utc::now() - Duration::seconds(keep_secs)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if state != "failed" && !interrupted && created >= since {
        return Ok(Some(id));
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    if interrupted {
        sqlx::query("UPDATE sign_flows SET state = 'failed', error = $1 WHERE id = $2 AND state = 'signing'")
            .bind("中断后重试 / interrupted; retried under a new flow")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE sign_flows SET request_key = $1 WHERE id = $2")
        .bind(format!("{request_key}#superseded:{id}"))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(None)
}

/// Create a data flow and run its (auto) signers. `max_bytes` limits the content.
pub async fn create(s: &Signing<'_>, ctx: &Context, app_id: &str, nf: &NewFlow, max_bytes: usize) -> Result<FlowView> {
    create_keyed(s, ctx, app_id, nf, max_bytes, None).await
}

/// What a flow needs to sign: storage, keys, the CAs, the TSA and the grant seam — borrowed for
/// one call (the server holds the owned parts).
#[derive(Clone, Copy)]
pub struct Signing<'a> {
    /// storage
    pub db: &'a Db,
    /// key-encryption key of server-held keys
    pub kek: &'a Kek,
    /// the built-in CAs
    pub cas: &'a BuiltinCas,
    /// the hospital's name (seal certificates)
    pub organization: &'a str,
    /// the timestamp authority
    pub tsa: &'a Tsa,
    /// session grants of the phone context (R3.5)
    pub grants: &'a dyn GrantSigners,
    /// the PAdES level of PDF flows that do not name one (`[sign] pades_level`)
    pub pades_level: PadesLevel,
}

pub async fn create_keyed(
    sg: &Signing<'_>,
    ctx: &Context,
    app_id: &str,
    nf: &NewFlow,
    max_bytes: usize,
    request_key: Option<&str>,
) -> Result<FlowView> {
    let id = create_flow(sg, ctx, app_id, nf, max_bytes, request_key).await?;
    get(sg.db, None, &id).await
}

/// [`create_keyed`] without reading the flow back: its id (the batch queue needs no more).
pub(crate) async fn create_flow(
    sg: &Signing<'_>,
    ctx: &Context,
    app_id: &str,
    nf: &NewFlow,
    max_bytes: usize,
    request_key: Option<&str>,
) -> Result<String> {
    let plan = plan(sg, ctx, app_id, nf, max_bytes).await?;
    if plan.ready.len() == plan.refs.len() {
        return create_signed(sg, ctx, app_id, nf, &plan, request_key).await;
    }
    let id = persist(sg.db, ctx, app_id, nf, &plan, request_key, Written::Signing).await?;
    // the request may be dropped from here on (the client or a load balancer gave up, the server
    // stops): the flow is then failed rather than left in `signing` (nothing was released)
    let mut abandoned = FailIfDropped { db: sg.db.clone(), ctx: ctx.clone(), id: Some(id.clone()) };
    let (der, ts_times, pending) = match sign_first(sg, app_id, nf, &plan).await {
        Ok(s) => (s.doc, s.times, s.pending),
        Err(e) => {
            abandoned.id = None;
            return Err(signing_failed(sg.db, ctx, &id, e).await?);
        }
    };
    let signed = signed_by(&plan);
    let step = Step { der: &der, pending, ts_times: &ts_times, signed: &signed };
    let recorded = record(sg.db, ctx, &id, &step, plan.refs.len() as i64, plan.ticket_ttl, request_key).await;
    abandoned.id = None;
    if let Err(e) = recorded {
        // the flow was committed as `signing`: never leave it there (its signatures were not released)
        let msg = unrecorded_message(&e);
        if let Err(e2) = fail(sg.db, ctx, &id, &msg).await {
            tracing::error!(flow = %id, error = %e2, "a flow whose recording failed could not be marked failed");
        }
        return Err(e);
    }
    Ok(id)
}

/// A flow whose signers all sign now (seals, staff in server custody): signed first, then written
/// once — the flow and its signers as signed, the audit entries, the completion event and, for a
/// batch item, the item — in one transaction: one turn of the write lock instead of two, and no
/// flow left in `signing` by a crash (nothing was written). A signing failure is written as a
/// failed flow in one transaction too, and so is a signature that could not be recorded (it is
/// never released). A reused request key, or a batch item reclaimed meanwhile, is refused by the
/// write (409); the signature made meanwhile is never released either.
async fn create_signed(
    sg: &Signing<'_>,
    ctx: &Context,
    app_id: &str,
    nf: &NewFlow,
    plan: &Plan,
    request_key: Option<&str>,
) -> Result<String> {
    let failed = |msg: String| async move {
        match persist(sg.db, ctx, app_id, nf, plan, request_key, Written::Failed(&msg)).await {
            Ok(id) => Some(id),
            Err(w) => {
                tracing::error!(error = %w, failure = %msg, "a flow whose signing failed could not be written as failed");
                None
            }
        }
    };
    match sign_all(sg, app_id, nf, plan).await {
        Ok(s) => {
            let signed = signed_by(plan);
            let step = Step { der: &s.doc, pending: s.pending, ts_times: &s.times, signed: &signed };
            match persist(sg.db, ctx, app_id, nf, plan, request_key, Written::Signed(&step)).await {
                Err(e) if !matches!(e, Error::Conflict(_)) => {
                    failed(unrecorded_message(&e)).await;
                    Err(e)
                }
                written => written,
            }
        }
        Err(e) => {
            let msg = failure_message(&e);
            let id = failed(msg.clone()).await;
            Err(failure_answer(e, &msg, id.as_deref()))
        }
    }
}

/// What [`persist`] writes: a flow about to be signed, one every signer signed already
/// ([`create_signed`]), or one whose signing failed (its error).
#[derive(Clone, Copy)]
enum Written<'a> {
    Signing,
    Signed(&'a Step<'a>),
    Failed(&'a str),
}

/// Sign with every signer of `plan` (all ready now); the PDF then gets what its PAdES level adds
/// (DSS, document timestamp).
async fn sign_all(sg: &Signing<'_>, app_id: &str, nf: &NewFlow, plan: &Plan) -> Result<Signature> {
    let mut s = sign_first(sg, app_id, nf, plan).await?;
    if let Some(level) = plan.pades {
        s.doc = augment(sg, level, &plan.alg, app_id, s.doc).await?;
    }
    Ok(s)
}

/// The signers of `plan` that signed now.
fn signed_by(plan: &Plan) -> Vec<Signed> {
    plan.ready
        .iter()
        .enumerate()
        .map(|(i, r)| Signed {
            idx: i as i64,
            kind: plan.refs[i].0,
            subject_ref: plan.refs[i].1.clone(),
            serial: r.cert.serial_hex(),
            custody: r.custody.clone(),
        })
        .collect()
}

/// Fail flow `id` whose signing failed with `e`; the error to answer with.
async fn signing_failed(db: &Db, ctx: &Context, id: &str, e: Error) -> Result<Error> {
    let msg = failure_message(&e);
    fail(db, ctx, id, &msg).await?;
    Ok(failure_answer(e, &msg, Some(id)))
}

/// What a flow whose signing failed with `e` records as its error.
fn failure_message(e: &Error) -> String {
    if matches!(e, Error::Unavailable(_)) {
        format!(
            "时间戳服务不可用，流程失败，未发布签名 / the TSA cannot issue; the flow failed and no signature was released: {e}"
        )
    } else {
        format!("签署失败 / signing failed: {e}")
    }
}

/// What a flow whose signatures could not be recorded (`e`) records as its error.
fn unrecorded_message(e: &Error) -> String {
    format!("无法记录签名，流程失败 / the signatures could not be recorded; the flow failed: {e}")
}

/// The error a request whose signing failed with `e` is answered with (503 names the flow).
fn failure_answer(e: Error, msg: &str, id: Option<&str>) -> Error {
    match (&e, id) {
        (Error::Unavailable(_), Some(id)) => Error::Unavailable(format!("{msg} (flow {id})")),
        (Error::Unavailable(_), None) => Error::Unavailable(msg.to_string()),
        _ => e,
    }
}

/// Fails a flow still in `signing` when the request creating it is dropped before its signatures
/// were recorded (a task spawned from `drop`; only `signing`, so a flow whose recording did commit
/// as `pending` or `completed` is never touched).
struct FailIfDropped {
    db: Db,
    ctx: Context,
    id: Option<String>,
}

impl Drop for FailIfDropped {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let (db, ctx) = (self.db.clone(), self.ctx.clone());
        rt.spawn(async move {
            let msg = "请求中断，流程失败，未发布签名 / the request was interrupted; the flow failed and no signature was released";
            if let Err(e) = fail_from(&db, &ctx, &id, msg, "('signing')").await {
                tracing::error!(flow = %id, error = %e, "an interrupted flow could not be marked failed");
            }
        });
    }
}

/// A flow checked and its signers resolved, before anything is written: bad input is a 4xx, never a
/// failed flow.
struct Plan {
    /// when the request was planned: the flow's creation time, before any signature
    created: DateTime<Utc>,
    kind: FlowKind,
    title: String,
    content: Vec<u8>,
    /// the template the PDF was rendered from
    template: Option<crate::templates::TemplateInfo>,
    /// each signer's resolved visible-signature place (PDF)
    placements: Vec<Option<medsign_pdf::Placement>>,
    ticket_ttl: u32,
    alg: String,
    ts_mode: TimestampMode,
    /// PDF flows: the PAdES level
    pades: Option<PadesLevel>,
    minutes: u32,
    /// the auto signers before the first scan signer, ready to sign now
    ready: Vec<Ready>,
    /// every signer, in order
    refs: Vec<(SignerKind, String)>,
}

/// Check `nf` and resolve every signer (step 1 of creating a flow).
async fn plan(sg: &Signing<'_>, ctx: &Context, app_id: &str, nf: &NewFlow, max_bytes: usize) -> Result<Plan> {
    let Signing { db, kek, organization, .. } = *sg;
    let created = Utc::now();
    let kind: FlowKind = nf.kind.parse().map_err(|_| {
        Error::Invalid(format!("kind 须为 data 或 file / kind must be data or file, got '{}'", nf.kind))
    })?;
    let format = format_of(kind);
    let title = nf.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(Error::Invalid("title 须为 1–200 个字符 / title must be 1-200 characters".into()));
    }
    let mut template = None;
    let content: Vec<u8> = match (&nf.content, &nf.content_base64, &nf.content_json) {
        _ if nf.template_id.is_some() || nf.data.is_some() => {
            let (Some(tid), Some(data), None, None, None, FlowKind::File) =
                (&nf.template_id, &nf.data, &nf.content, &nf.content_base64, &nf.content_json, kind)
            else {
                return Err(Error::Invalid(
                    "模板须同时给出 template_id 与 data，且不再给 content*（kind=file）/ a template needs template_id and data, no content*, kind file".into(),
                ));
            };
            let (pdf, info) = crate::templates::render(db, tid, nf.template_version, data).await?;
            template = Some(info);
            pdf
        }
        (Some(t), None, None) => t.as_bytes().to_vec(),
        (None, Some(b), None) => {
            B64.decode(b.trim()).map_err(|_| Error::Invalid("content_base64 不是 base64 / is not base64".into()))?
        }
        (None, None, Some(j)) => serde_json::to_vec(j).map_err(|e| Error::Invalid(e.to_string()))?,
        _ => {
            return Err(Error::Invalid(
                "须且只能提供 content、content_base64、content_json 之一 / give exactly one of content, content_base64, content_json".into(),
            ));
        }
    };
    if content.is_empty() || content.len() > max_bytes {
        return Err(Error::Invalid(format!("内容须为 1–{max_bytes} 字节 / content must be 1-{max_bytes} bytes")));
    }
    let placements = format.validate(&content, nf, template.is_some())?;
    let pades = level_of(kind, nf.pades_level.as_deref(), sg.pades_level)?;
    let ticket_ttl = crate::tickets::ttl(nf.ticket_ttl_seconds)?;
    let alg = nf.alg.clone().unwrap_or_else(|| "sm2".into());
    key_alg(&alg)?;
    let ts_mode = match nf.timestamp.as_deref() {
        None => TimestampMode::Required,
        Some(t) => t.parse().map_err(|_| {
            Error::Invalid("timestamp 须为 required 或 later / timestamp must be required or later".into())
        })?,
    };
    if let Some(u) = &nf.callback_url {
        check_callback_url(u)?;
    }
    let minutes = nf.expires_in_minutes.unwrap_or(1440);
    if !(1..=60 * 24 * 30).contains(&minutes) {
        return Err(Error::Invalid("expires_in_minutes 须为 1–43200 / must be 1-43200".into()));
    }
    if nf.signers.is_empty() || nf.signers.len() > 20 {
        return Err(Error::Invalid("须有 1–20 个签署人 / 1-20 signers".into()));
    }
    // Auto signers before the first scan signer sign now; the rest wait for the phone.
    let is_pdf = kind == FlowKind::File;
    let mut ready = Vec::new();
    let mut refs = Vec::new();
    let mut waiting = false;
    for (i, s) in nf.signers.iter().enumerate() {
        let mode: SignerMode = s.mode.parse().map_err(|_| {
            Error::Invalid(format!(
                "签署人 #{i}：mode 须为 auto 或 scan / signer #{i}: mode must be auto or scan, got '{}'",
                s.mode
            ))
        })?;
        match (&s.employee_no, &s.seal, mode) {
            (Some(no), None, SignerMode::Scan) => {
                if alg != "sm2" {
                    return Err(Error::Invalid(format!(
                        "签署人 #{i}：扫码签署使用手机上的 SM2 协同密钥，alg 须为 sm2 / signer #{i}: scan signers sign with the phone's two-party SM2 key; alg must be sm2"
                    )));
                }
                active_user(db, kek, no).await?;
                waiting = true;
                refs.push((SignerKind::Staff, no.clone()));
            }
            (None, Some(_), SignerMode::Scan) => {
                return Err(Error::Invalid(format!(
                    "签署人 #{i}：印章由服务器签署，不能扫码 / signer #{i}: seals sign on the server (auto), not by scanning"
                )));
            }
            (Some(no), None, SignerMode::Auto) => {
                let r = staff_ready(sg, no, &alg, is_pdf, app_id).await?;
                if !waiting {
                    ready.push(r);
                }
                refs.push((SignerKind::Staff, no.clone()));
            }
            (None, Some(seal), SignerMode::Auto) => {
                let r = seal_ready(db, kek, sg.cas, organization, ctx, seal, &alg, is_pdf).await?;
                if !waiting {
                    ready.push(r);
                }
                refs.push((SignerKind::Seal, seal.clone()));
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "签署人 #{i} 须给出 employee_no 或 seal 之一 / signer #{i}: give employee_no or seal"
                )));
            }
        }
    }
    Ok(Plan {
        created,
        kind,
        title: title.to_string(),
        content,
        template,
        placements,
        ticket_ttl,
        alg,
        ts_mode,
        pades,
        minutes,
        ready,
        refs,
    })
}

/// The fence of a batch item's flow, checked in the transaction that creates it: the flow of
/// request key `batch:{job}:{idx}:{n}` is created only while the item is still at attempt `n+1`.
/// A worker that ran past `batch_reclaim_seconds` and was reclaimed (the reclaimer moved the
/// attempt on before signing) creates nothing, so one item never has two completed flows. The
/// item's row is locked until the flow is committed (PostgreSQL), so a reclaimer that moves the
/// attempt on then finds this flow and takes it over or fails it; on SQLite writers take turns.
/// Other request keys pass.
pub(crate) async fn batch_fence(db: &Db, tx: &mut sqlx::AnyConnection, request_key: &str) -> Result<()> {
    let Some((job, idx, n)) = batch_item(request_key) else { return Ok(()) };
    let lock = if db.backend == medsign_store::db::Backend::Postgres { " FOR UPDATE" } else { "" };
    let attempt: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT attempt FROM batch_items WHERE job_id = $1 AND idx = $2{lock}"
    )))
    .bind(job)
    .bind(idx)
    .fetch_optional(&mut *tx)
    .await?;
    if attempt != Some(n + 1) {
        return Err(Error::Conflict(format!(
            "批量条目 {job}#{idx} 已由另一工作者接手，本次尝试不再签署 / batch item {job}#{idx} was reclaimed by another worker; this attempt signs nothing"
        )));
    }
    Ok(())
}

/// The batch item whose attempt a request key `batch:{job}:{idx}:{n}` is: `(job, idx, n)`.
fn batch_item(request_key: &str) -> Option<(&str, i64, i64)> {
    let rest = request_key.strip_prefix("batch:")?;
    let mut parts = rest.rsplitn(3, ':');
    let (n, idx, job) = (parts.next()?, parts.next()?, parts.next()?);
    Some((job, idx.parse().ok()?, n.parse().ok()?))
}

/// A batch item's flow is recorded: the item is `done` in the same transaction, so the item and
/// its flow never disagree after a crash, and the queue spends no extra write on it. Only while
/// the item is still at this attempt and running — else the flow is not recorded at all (409,
/// and its caller fails it): a worker that reclaimed the item meanwhile signs it under the next
/// attempt, and one item never has two completed flows.
async fn batch_done(tx: &mut sqlx::AnyConnection, request_key: &str, flow_id: &str) -> Result<()> {
    let Some((job, idx, n)) = batch_item(request_key) else { return Ok(()) };
    let done = sqlx::query(
        "UPDATE batch_items SET state = 'done', flow_id = $1, error = NULL \
         WHERE job_id = $2 AND idx = $3 AND attempt = $4 AND state = 'running'",
    )
    .bind(flow_id)
    .bind(job)
    .bind(idx)
    .bind(n + 1)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(Error::Conflict(format!(
            "批量条目 {job}#{idx} 已由另一工作者接手，本次签署不予记录 / batch item {job}#{idx} was reclaimed by another worker; this attempt's signature is not recorded"
        )));
    }
    Ok(())
}

/// Write the flow and its signers, audited (step 2); returns the flow's id. A flow every signer
/// signed already ([`create_signed`]) is written completed, its signers signed, with their audit
/// entries and the completion event; a failed one with its error and `flow.fail` — each in the
/// same transaction. Its creation time is the request's ([`Plan::created`]), before any signature.
async fn persist(
    db: &Db,
    ctx: &Context,
    app_id: &str,
    nf: &NewFlow,
    plan: &Plan,
    request_key: Option<&str>,
    written: Written<'_>,
) -> Result<String> {
    let id = format!("sf_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let doc_no = new_doc_no()?;
    let now = medsign_store::now_text();
    let created = plan.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let expires =
        (plan.created + Duration::minutes(plan.minutes as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let content_sm3 = hex::encode(medsign_crypto::hash::sm3(&plan.content));
    let done = match written {
        Written::Signed(step) => Some(step),
        _ => None,
    };
    let times = done.map(|d| stamps_of(d.ts_times, d.signed).0).unwrap_or_default();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    match (request_key, done) {
        (Some(key), None) => batch_fence(db, &mut tx, key).await?,
        (Some(key), Some(_)) => batch_done(&mut tx, key, &id).await?,
        (None, _) => {}
    }
    let (state, error) = match written {
        Written::Signing => ("signing", None),
        Written::Signed(_) => ("completed", None),
        Written::Failed(msg) => ("failed", Some(msg)),
    };
    sqlx::query(
        "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, \
         timestamp_mode, ts_pending, callback_url, expires_at, created_at, updated_at, request_key, template_id, template_version, certify, ticket_ttl, pades_level, signature_b64, error) \
         VALUES ($1, $2, $3, $13, $4, $20, $5, $6, $7, $8, $9, $21, $10, $11, $12, $24, $14, $15, $16, $17, $18, $19, $22, $23)",
    )
    .bind(&id)
    .bind(&doc_no)
    .bind(app_id)
    .bind(&plan.title)
    .bind(&plan.alg)
    .bind((nf.detached || plan.kind == FlowKind::File) as i64)
    .bind(B64.encode(&plan.content))
    .bind(&content_sm3)
    .bind(plan.ts_mode.as_str())
    .bind(&nf.callback_url)
    .bind(&expires)
    .bind(&created)
    .bind(plan.kind.as_str())
    .bind(request_key)
    .bind(plan.template.as_ref().map(|t| t.id.clone()))
    .bind(plan.template.as_ref().map(|t| t.version))
    .bind(nf.certify.map(i64::from))
    .bind(i64::from(plan.ticket_ttl))
    .bind(plan.pades.map(|l| l.as_str()))
    .bind(state)
    .bind(done.is_some_and(|d| d.pending) as i64)
    .bind(done.filter(|d| !d.der.is_empty()).map(|d| B64.encode(d.der)))
    .bind(error)
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() && request_key.is_some() => {
            Error::Conflict(format!("请求键 {} 已用过 / request key already used", request_key.unwrap_or_default()))
        }
        other => Error::Db(other),
    })?;
    for (i, (kind, r)) in plan.refs.iter().enumerate() {
        let at = done.and_then(|d| d.signed.iter().position(|s| s.idx == i as i64).map(|p| (&d.signed[p], times[p])));
        let signed = at.map(|(s, _)| s);
        sqlx::query(
            "INSERT INTO flow_signers (flow_id, idx, kind, subject_ref, mode, state, field, placement, cert_serial, signed_at, timestamp_at, custody, grant_id) \
             VALUES ($1, $2, $3, $4, $5, $8, $6, $7, $9, $10, $11, $12, $13)",
        )
        .bind(&id)
        .bind(i as i64)
        .bind(kind.as_str())
        .bind(r)
        .bind(&nf.signers[i].mode)
        .bind(&nf.signers[i].field)
        .bind(plan.placements[i].map(|p| serde_json::json!([p.page, p.rect]).to_string()))
        .bind(if signed.is_some() { "signed" } else { "pending" })
        .bind(signed.map(|s| s.serial.clone()))
        .bind(signed.map(|_| now.clone()))
        .bind(at.and_then(|(_, t)| t).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .bind(signed.map(|s| custody_of(s).to_string()))
        .bind(signed.and_then(grant_of))
        .execute(&mut *tx)
        .await?;
    }
    audit::ok(
        &mut tx,
        ctx,
        Kind::Signing,
        "flow.create",
        &format!("flow:{id}"),
        serde_json::json!({"doc_no": doc_no, "title": plan.title, "signers": plan.refs.iter().map(|(k, r)| format!("{k}:{r}")).collect::<Vec<_>>(), "content_sm3": content_sm3}),
    )
    .await?;
    match written {
        Written::Signing => {}
        Written::Signed(d) => {
            for s in d.signed {
                audit_signed(&mut tx, ctx, &id, s).await?;
            }
            enqueue_event(&mut tx, &id, "flow.completed").await?;
        }
        Written::Failed(msg) => audit_failed(&mut tx, ctx, &id, msg).await?,
    }
    tx.commit().await?;
    Ok(id)
}

/// Each signer's token time, found by certificate (not by position), and the tokens no signer of
/// `signed` took (for signers who signed before).
fn stamps_of<'a>(ts_times: &'a [Stamp], signed: &[Signed]) -> (Vec<Option<DateTime<Utc>>>, Vec<&'a Stamp>) {
    let mut unused: Vec<&Stamp> = ts_times.iter().collect();
    let times = signed
        .iter()
        .map(|s| unused.iter().position(|(serial, _)| *serial == s.serial).map(|i| unused.remove(i).1))
        .collect();
    (times, unused)
}

/// How a signer's key was held, as `flow_signers.custody` keeps it.
fn custody_of(s: &Signed) -> &str {
    s.custody.get("custody").and_then(|c| c.as_str()).unwrap_or("server")
}

/// The session grant a phone signer's step used, if any (`flow_signers.grant_id`).
fn grant_of(s: &Signed) -> Option<&str> {
    s.custody.get("grant").and_then(|c| c.as_str())
}

/// The audit entry of one signature (`seal.use` or `flow.sign`), with its custody details.
async fn audit_signed(tx: &mut sqlx::AnyConnection, ctx: &Context, id: &str, s: &Signed) -> Result<()> {
    let mut details = serde_json::json!({"signer": format!("{}:{}", s.kind, s.subject_ref), "certificate": s.serial});
    if let (Some(d), Some(c)) = (details.as_object_mut(), s.custody.as_object()) {
        d.extend(c.clone());
    }
    let action = match s.kind {
        SignerKind::Seal => "seal.use",
        SignerKind::Staff => "flow.sign",
    };
    audit::ok(tx, ctx, Kind::Signing, action, &format!("flow:{id}"), details).await?;
    Ok(())
}

/// Sign with the signers that are ready now (step 3), in the flow's format.
async fn sign_first(sg: &Signing<'_>, app_id: &str, nf: &NewFlow, plan: &Plan) -> Result<Signature> {
    if plan.ready.is_empty() {
        return Ok(Signature { doc: Vec::new(), times: vec![], pending: false });
    }
    let specs: Vec<PdfSpec> = (0..plan.ready.len())
        .map(|i| PdfSpec {
            field: nf.signers[i].field.clone(),
            placement: plan.placements[i],
            certify: if i == 0 { nf.certify } else { None },
        })
        .collect();
    let kinds: Vec<SignerKind> = plan.refs.iter().map(|r| r.0).collect();
    format_of(plan.kind)
        .sign(
            sg.tsa,
            SignJob {
                content: &plan.content,
                so_far: None,
                ready: &plan.ready,
                kinds: &kinds,
                specs: &specs,
                title: &plan.title,
                alg: &plan.alg,
                app_id,
                detached: nf.detached,
                ts_mode: plan.ts_mode,
            },
        )
        .await
}

/// What a signing step made, for [`record`].
pub struct Step<'a> {
    /// the signature (CMS) or the PDF so far; empty when nobody signed yet
    pub der: &'a [u8],
    /// a `later` timestamp is still to come
    pub pending: bool,
    /// the tokens' times, by certificate serial
    pub ts_times: &'a [Stamp],
    /// the signers who signed in this step
    pub signed: &'a [Signed],
}

/// One signature a flow step made.
pub struct Signed {
    /// signer index
    pub idx: i64,
    /// `staff` | `seal`
    pub kind: SignerKind,
    /// employee number or seal
    pub subject_ref: String,
    /// certificate serial
    pub serial: String,
    /// how the key was held, for the audit entry (`{"custody": "server"}` or two-party details)
    pub custody: serde_json::Value,
}

/// Write a flow's progress in one transaction: the signature or PDF so far, the signers who signed
/// (audited), and what comes next — completion (`flow.completed`), the next scan signer's ticket
/// (`flow.waiting_scan`), or nothing when an auto signer is still to sign (the caller fails the
/// flow) — and, for a batch item's flow (`request_key`), the item done. Refused with 409 when the
/// flow or a signer changed meanwhile (revoked, signed twice).
pub async fn record(
    db: &Db,
    ctx: &Context,
    id: &str,
    step: &Step<'_>,
    total: i64,
    ticket_ttl: u32,
    request_key: Option<&str>,
) -> Result<()> {
    let Step { der, pending, ts_times, signed } = *step;
    let now = medsign_store::now_text();
    let next = signed.iter().map(|s| s.idx + 1).max().unwrap_or(0);
    let complete = next == total;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // a batch item's row first, as `persist` takes it (then the audit lock): one lock order
    if let Some(key) = request_key {
        batch_done(&mut tx, key, id).await?;
    }
    let changed =
        || Error::Conflict("流程状态刚被修改（已撤销或已签署）/ the flow changed meanwhile (revoked or signed)".into());
    let done = sqlx::query(
        "UPDATE sign_flows SET state = $5, signature_b64 = $1, ts_pending = $2, updated_at = $3 WHERE id = $4 AND state = 'signing'",
    )
    .bind((!der.is_empty()).then(|| B64.encode(der)))
    .bind(pending as i64)
    .bind(&now)
    .bind(id)
    .bind(if complete { "completed" } else { "signing" })
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(changed());
    }
    // each signer gets the time of its own token, found by certificate (not by position)
    let (times, unused) = stamps_of(ts_times, signed);
    for (s, ts) in signed.iter().zip(times) {
        let done = sqlx::query(
            "UPDATE flow_signers SET state = 'signed', cert_serial = $1, signed_at = $2, timestamp_at = $3, custody = $6, grant_id = $7 \
             WHERE flow_id = $4 AND idx = $5 AND state = 'pending'",
        )
        .bind(&s.serial)
        .bind(&now)
        .bind(ts.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .bind(id)
        .bind(s.idx)
        .bind(custody_of(s))
        .bind(grant_of(s))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(changed());
        }
        audit_signed(&mut tx, ctx, id, s).await?;
    }
    // tokens this step added for signers who signed before (a `later` data flow's pending
    // timestamps, stamped together with the phone's signature)
    for (serial, t) in unused {
        sqlx::query(
            "UPDATE flow_signers SET timestamp_at = $1 WHERE flow_id = $2 AND cert_serial = $3 AND state = 'signed' AND timestamp_at IS NULL",
        )
        .bind(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .bind(id)
        .bind(serial)
        .execute(&mut *tx)
        .await?;
    }
    // the turn has moved on: tickets of earlier turns stop working
    sqlx::query("UPDATE sign_tickets SET used_at = $1 WHERE flow_id = $2 AND used_at IS NULL AND signer_idx < $3")
        .bind(format!("signed {now}"))
        .bind(id)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    if complete {
        enqueue_event(&mut tx, id, "flow.completed").await?;
    } else {
        let mode: String = sqlx::query_scalar("SELECT mode FROM flow_signers WHERE flow_id = $1 AND idx = $2")
            .bind(id)
            .bind(next)
            .fetch_one(&mut *tx)
            .await?;
        if mode == "scan" {
            crate::tickets::open(&mut tx, ctx, id, next, ticket_ttl).await?;
            enqueue_event(&mut tx, id, "flow.waiting_scan").await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub async fn fail(db: &Db, ctx: &Context, id: &str, msg: &str) -> Result<()> {
    fail_from(db, ctx, id, msg, "('signing', 'pending')").await
}

/// [`fail`] a flow only while it is in one of `states` (an SQL list of literals).
async fn fail_from(db: &Db, ctx: &Context, id: &str, msg: &str, states: &'static str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // a flow that ended (completed, revoked, expired, failed) stays as it ended
    let ended = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE sign_flows SET state = 'failed', error = $1, updated_at = $2 WHERE id = $3 AND state IN {states}"
    )))
    .bind(msg)
    .bind(medsign_store::now_text())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() == 0 {
        return Ok(());
    }
    audit_failed(&mut tx, ctx, id, msg).await?;
    tx.commit().await?;
    Ok(())
}

/// A flow failed: its audit entry (`flow.fail`, with the error) and the `flow.failed` event.
async fn audit_failed(tx: &mut sqlx::AnyConnection, ctx: &Context, id: &str, msg: &str) -> Result<()> {
    let target = format!("flow:{id}");
    let ev = audit::Event {
        kind: Kind::Signing,
        action: "flow.fail",
        target: &target,
        outcome: "failed:flow",
        details: serde_json::json!({"error": msg}),
    };
    audit::append(tx, ctx, &ev).await?;
    enqueue_event(tx, id, "flow.failed").await
}

/// A flow's stored facts that signing after its creation needs.
pub struct Stored {
    pub id: String,
    pub app_id: String,
    pub kind: FlowKind,
    pub title: String,
    pub state: FlowState,
    pub alg: String,
    pub detached: bool,
    pub content: Vec<u8>,
    pub content_sm3: String,
    pub doc_no: String,
    /// the signature (data) or signed PDF so far
    pub so_far: Option<Vec<u8>>,
    pub ts_mode: TimestampMode,
    /// PDF flows: the PAdES level (NULL before issue #16: B-T)
    pub pades_level: Option<PadesLevel>,
    pub ticket_ttl: u32,
    pub template_id: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    /// in order
    pub signers: Vec<StoredSigner>,
}

/// A signer as stored.
pub struct StoredSigner {
    pub idx: i64,
    pub kind: SignerKind,
    pub subject_ref: String,
    pub mode: SignerMode,
    pub state: SignerState,
    pub spec: PdfSpec,
}

impl Stored {
    /// The signer whose turn it is.
    pub fn turn(&self) -> Option<&StoredSigner> {
        self.signers.iter().find(|s| s.state == SignerState::Pending)
    }
}

/// Load a flow with its content and signers.
pub async fn stored(db: &Db, id: &str) -> Result<Stored> {
    let r = sqlx::query("SELECT * FROM sign_flows WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("签署流程 {id} 不存在 / no signing flow {id}")))?;
    let certify: Option<i64> = r.try_get("certify")?;
    let certify = certify.and_then(|c| u8::try_from(c).ok());
    let rows =
        sqlx::query("SELECT * FROM flow_signers WHERE flow_id = $1 ORDER BY idx").bind(id).fetch_all(&db.pool).await?;
    let mut signers = Vec::new();
    for s in rows {
        let idx: i64 = s.try_get("idx")?;
        let placement: Option<String> = s.try_get("placement")?;
        let placement = match placement {
            Some(p) => {
                let (page, rect): (u32, [f64; 4]) =
                    serde_json::from_str(&p).map_err(|e| Error::internal_from("stored placement", e))?;
                Some(medsign_pdf::Placement { page, rect })
            }
            None => None,
        };
        signers.push(StoredSigner {
            idx,
            kind: column("kind", s.try_get("kind")?)?,
            subject_ref: s.try_get("subject_ref")?,
            mode: column("mode", s.try_get("mode")?)?,
            state: column("state", s.try_get("state")?)?,
            spec: PdfSpec { field: s.try_get("field")?, placement, certify: if idx == 0 { certify } else { None } },
        });
    }
    let so_far: Option<String> = r.try_get("signature_b64")?;
    let ttl: Option<i64> = r.try_get("ticket_ttl")?;
    Ok(Stored {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        kind: column("kind", r.try_get("kind")?)?,
        title: r.try_get("title")?,
        state: column("state", r.try_get("state")?)?,
        alg: r.try_get("alg")?,
        detached: r.try_get::<i64, _>("detached")? != 0,
        content: B64
            .decode(r.try_get::<String, _>("content_b64")?)
            .map_err(|_| Error::internal("stored content is corrupt"))?,
        content_sm3: r.try_get("content_sm3")?,
        doc_no: r.try_get("doc_no")?,
        so_far: match so_far {
            Some(b) => Some(B64.decode(b).map_err(|_| Error::internal("stored signature is corrupt"))?),
            None => None,
        },
        ts_mode: column("timestamp_mode", r.try_get("timestamp_mode")?)?,
        pades_level: r.try_get::<Option<String>, _>("pades_level")?.map(|l| column("pades_level", l)).transpose()?,
        ticket_ttl: ttl.and_then(|t| u32::try_from(t).ok()).unwrap_or(crate::tickets::DEFAULT_TTL_SECONDS),
        template_id: r.try_get("template_id")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        signers,
    })
}

/// Sign the auto signers from index `from` up to the next scan signer (or the end) over `doc` (the
/// CMS or PDF so far, which already holds the phone's signature). Returns the new document, what
/// was signed, the timestamp times and whether timestamps are pending.
pub async fn sign_following(
    sg: &Signing<'_>,
    ctx: &Context,
    f: &Stored,
    from: i64,
    doc: Vec<u8>,
) -> Result<(Vec<u8>, Vec<Signed>, Vec<Stamp>, bool)> {
    let Signing { db, kek, cas, organization, tsa, .. } = *sg;
    let is_pdf = f.kind == FlowKind::File;
    let mut ready = Vec::new();
    let mut who = Vec::new();
    for s in f.signers.iter().filter(|s| s.idx >= from).take_while(|s| s.mode == SignerMode::Auto) {
        let r = match s.kind {
            SignerKind::Seal => seal_ready(db, kek, cas, organization, ctx, &s.subject_ref, &f.alg, is_pdf).await?,
            SignerKind::Staff => staff_ready(sg, &s.subject_ref, &f.alg, is_pdf, &f.app_id).await?,
        };
        ready.push(r);
        who.push(s);
    }
    // everyone has signed after this step: the PDF gets what its PAdES level adds
    let complete = from + who.len() as i64 == f.signers.len() as i64;
    let level = f.pades_level.filter(|_| complete && is_pdf);
    if ready.is_empty() {
        let doc = match level {
            Some(l) => augment(sg, l, &f.alg, &f.app_id, doc).await?,
            None => doc,
        };
        return Ok((doc, vec![], vec![], false));
    }
    let kinds: Vec<SignerKind> = who.iter().map(|s| s.kind).collect();
    let specs: Vec<PdfSpec> = who.iter().map(|s| s.spec.clone()).collect();
    let Signature { doc: out, times, pending } = format_of(f.kind)
        .sign(
            tsa,
            SignJob {
                content: &f.content,
                so_far: Some(&doc),
                ready: &ready,
                kinds: &kinds,
                specs: &specs,
                title: &f.title,
                alg: &f.alg,
                app_id: &f.app_id,
                detached: f.detached,
                ts_mode: f.ts_mode,
            },
        )
        .await?;
    let out = match level {
        Some(l) => augment(sg, l, &f.alg, &f.app_id, out).await?,
        None => out,
    };
    let signed = who
        .iter()
        .zip(&ready)
        .map(|(s, r)| Signed {
            idx: s.idx,
            kind: s.kind,
            subject_ref: s.subject_ref.clone(),
            serial: r.cert.serial_hex(),
            custody: r.custody.clone(),
        })
        .collect();
    Ok((out, signed, times, pending))
}

/// Close unfinished flows whose expiry has passed (run every minute): state `expired`, an audit
/// entry and the `flow.expired` webhook each. Returns how many.
pub async fn expire_due(db: &Db) -> Result<usize> {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM sign_flows WHERE state IN ('pending', 'signing') AND expires_at < $1 ORDER BY expires_at LIMIT 200",
    )
    .bind(&now)
    .fetch_all(&db.pool)
    .await?;
    let mut n = 0;
    for id in due {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE sign_flows SET state = 'expired', updated_at = $1 WHERE id = $2 AND state IN ('pending', 'signing')",
        )
        .bind(medsign_store::now_text())
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            audit::ok(
                &mut tx,
                &Context::cli(),
                Kind::Signing,
                "flow.expire",
                &format!("flow:{id}"),
                serde_json::json!({}),
            )
            .await?;
            enqueue_event(&mut tx, &id, "flow.expired").await?;
            n += 1;
        }
        tx.commit().await?;
    }
    Ok(n)
}

/// The flow id behind `key`: a flow id as it is, or a document number (`QM-…`, R7.4.13: "download
/// a signed file by its number") of a flow `app_id` owns (None: any). Another app's number is not
/// found, as its id would be.
pub async fn resolve(db: &Db, app_id: Option<&str>, key: &str) -> Result<String> {
    if !key.starts_with("QM-") {
        return Ok(key.to_string());
    }
    sqlx::query_scalar("SELECT id FROM sign_flows WHERE doc_no = $1 AND ($2 IS NULL OR app_id = $2)")
        .bind(key)
        .bind(app_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("签署流程 {key} 不存在 / no signing flow {key}")))
}

/// A flow, seen by `app_id` (None: no owner check — admin).
pub async fn get(db: &Db, app_id: Option<&str>, id: &str) -> Result<FlowView> {
    let not_found = || Error::NotFound(format!("签署流程 {id} 不存在 / no signing flow {id}"));
    let r = sqlx::query("SELECT * FROM sign_flows WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(not_found)?;
    let owner: String = r.try_get("app_id")?;
    medsign_store::check_owner(app_id, &owner, not_found)?;
    let mut state: FlowState = column("state", r.try_get("state")?)?;
    let expires: String = r.try_get("expires_at")?;
    if !state.is_final() && DateTime::parse_from_rfc3339(&expires).is_ok_and(|t| t.with_timezone(&Utc) < Utc::now()) {
        state = FlowState::Expired;
    }
    let signers = sqlx::query("SELECT * FROM flow_signers WHERE flow_id = $1 ORDER BY idx")
        .bind(id)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|s| {
            Ok(SignerView {
                index: s.try_get("idx")?,
                kind: column("kind", s.try_get("kind")?)?,
                subject_ref: s.try_get("subject_ref")?,
                mode: column("mode", s.try_get("mode")?)?,
                state: column("state", s.try_get("state")?)?,
                custody: s.try_get::<Option<String>, _>("custody")?.map(|c| column("custody", c)).transpose()?,
                grant_id: s.try_get("grant_id")?,
                cert_serial: s.try_get("cert_serial")?,
                signed_at: s.try_get("signed_at")?,
                timestamp_at: s.try_get("timestamp_at")?,
                error: s.try_get("error")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FlowView {
        id: r.try_get("id")?,
        doc_no: r.try_get("doc_no")?,
        kind: column("kind", r.try_get("kind")?)?,
        title: r.try_get("title")?,
        state,
        alg: r.try_get("alg")?,
        detached: r.try_get::<i64, _>("detached")? != 0,
        content_sm3: r.try_get("content_sm3")?,
        timestamp_mode: column("timestamp_mode", r.try_get("timestamp_mode")?)?,
        timestamp_pending: r.try_get::<i64, _>("ts_pending")? != 0,
        callback_url: r.try_get("callback_url")?,
        expires_at: expires,
        reason: r.try_get("reason")?,
        error: r.try_get("error")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        signers,
        template_id: r.try_get("template_id")?,
        template_version: r.try_get("template_version")?,
        pades_level: r.try_get::<Option<String>, _>("pades_level")?.map(|l| column("pades_level", l)).transpose()?,
        ticket: None,
    })
}

/// What the console searches flows by (`GET /admin/v1/sign-flows`); every filter optional.
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowQuery {
    /// part of the document number or title, or the flow id
    pub q: Option<String>,
    /// `pending` | `signing` | `completed` | `revoked` | `expired` | `failed`
    pub state: Option<String>,
    /// the app that started it
    pub app_id: Option<String>,
    /// a staff signer's employee number
    pub signer: Option<String>,
    /// created at or after (RFC 3339)
    pub from: Option<String>,
    /// created before (RFC 3339)
    pub to: Option<String>,
    /// page, from 1
    pub page: Option<i64>,
    /// page size, 1–200 (default 50)
    pub page_size: Option<i64>,
}

/// A flow in a list: enough to find it; [`get`] has the rest.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct FlowSummary {
    /// id
    pub id: String,
    /// document number
    pub doc_no: String,
    /// `data` | `file`
    pub kind: FlowKind,
    /// title
    pub title: String,
    /// state (`expired` once past its expiry unfinished)
    pub state: FlowState,
    /// the app that started it
    pub app_id: String,
    /// signers in all
    pub signers: i64,
    /// signers who have signed
    pub signed: i64,
    /// created
    pub created_at: String,
    /// last change
    pub updated_at: String,
}

/// A page of [`FlowSummary`], newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct FlowPage {
    /// this page
    pub items: Vec<FlowSummary>,
    /// page number
    pub page: i64,
    /// page size
    pub page_size: i64,
    /// matching flows in all
    pub total: i64,
}

/// Flows matching `q` (no owner check: the console's administrators see every app's flows).
pub async fn search(db: &Db, q: &FlowQuery) -> Result<FlowPage> {
    let (page_size, offset) = medsign_store::paging(q.page, q.page_size, 50, 200)?;
    let (from, to) = (
        medsign_store::instant_param(q.from.as_deref(), "from")?,
        medsign_store::instant_param(q.to.as_deref(), "to")?,
    );
    // `expired` is a stored state once swept, and an unfinished flow past its expiry before that
    let state = q.state.as_deref().filter(|s| !s.is_empty());
    if let Some(st) = state {
        st.parse::<FlowState>().map_err(|_| {
            Error::Invalid(format!(
                "未知状态 '{st}' / unknown state (pending, signing, completed, revoked, expired, failed)"
            ))
        })?;
    }
    let now = medsign_store::now_text();
    let pattern = medsign_store::contains_pattern(q.q.as_deref());
    let exact = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    // LOWER on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not
    let filter = "($1 IS NULL OR LOWER(f.doc_no) LIKE LOWER($1) ESCAPE '\\' OR LOWER(f.title) LIKE LOWER($1) ESCAPE '\\' OR f.id = $2) \
                  AND ($3 IS NULL OR f.app_id = $3) \
                  AND ($4 IS NULL OR EXISTS (SELECT 1 FROM flow_signers s WHERE s.flow_id = f.id AND s.kind = 'staff' AND s.subject_ref = $4)) \
                  AND ($5 IS NULL OR f.created_at >= $5) AND ($6 IS NULL OR f.created_at < $6) \
                  AND ($7 IS NULL \
                       OR ($7 = 'expired' AND (f.state = 'expired' OR (f.state IN ('pending', 'signing') AND f.expires_at < $8))) \
                       OR ($7 IN ('pending', 'signing') AND f.state = $7 AND f.expires_at >= $8) \
                       OR ($7 NOT IN ('expired', 'pending', 'signing') AND f.state = $7))";
    let app = q.app_id.as_deref().filter(|s| !s.is_empty());
    let signer = q.signer.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let total: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM sign_flows f WHERE {filter}")))
            .bind(&pattern)
            .bind(exact)
            .bind(app)
            .bind(signer)
            .bind(&from)
            .bind(&to)
            .bind(state)
            .bind(&now)
            .fetch_one(&db.pool)
            .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT f.id, f.doc_no, f.kind, f.title, f.state, f.app_id, f.expires_at, f.created_at, f.updated_at, \
         (SELECT COUNT(*) FROM flow_signers s WHERE s.flow_id = f.id) AS signers, \
         (SELECT COUNT(*) FROM flow_signers s WHERE s.flow_id = f.id AND s.state = 'signed') AS signed \
         FROM sign_flows f WHERE {filter} ORDER BY f.created_at DESC, f.id LIMIT $9 OFFSET $10"
    )))
    .bind(&pattern)
    .bind(exact)
    .bind(app)
    .bind(signer)
    .bind(&from)
    .bind(&to)
    .bind(state)
    .bind(&now)
    .bind(page_size)
    .bind(offset)
    .fetch_all(&db.pool)
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            let mut state: FlowState = column("state", r.try_get("state")?)?;
            let expires: String = r.try_get("expires_at")?;
            if !state.is_final() && expires < now {
                state = FlowState::Expired;
            }
            Ok(FlowSummary {
                id: r.try_get("id")?,
                doc_no: r.try_get("doc_no")?,
                kind: column("kind", r.try_get("kind")?)?,
                title: r.try_get("title")?,
                state,
                app_id: r.try_get("app_id")?,
                signers: r.try_get("signers")?,
                signed: r.try_get("signed")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(FlowPage { items, page: q.page.unwrap_or(1), page_size, total })
}

/// One day of the dashboard's history (days as the hospital counts them: China Standard Time).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayActivity {
    /// `YYYY-MM-DD`, UTC+8
    pub day: String,
    /// flows started that day
    pub flows: i64,
    /// of those, completed
    pub completed: i64,
    /// signatures and seals made that day (each signer of a flow once)
    pub signatures: i64,
}

/// What the console's dashboard shows: the last days, and what is waiting now (scan-to-login
/// confirmations, co-signed as one-signer flows, are not signatures of documents: left out).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Activity {
    /// oldest first, today last
    pub days: Vec<DayActivity>,
    /// flows waiting for a signer (not past their expiry)
    pub pending_flows: i64,
    /// webhook deliveries waiting to be sent (or retried)
    pub webhooks_pending: i64,
    /// webhook deliveries given up
    pub webhooks_failed: i64,
    /// batch items queued or running
    pub batch_queue: i64,
}

/// The last `days` days (1–90, today included) and the queues' depth. Counted per UTC hour in
/// the database (indexed ranges), folded into China Standard Time days here.
pub async fn activity(db: &Db, days: u32) -> Result<Activity> {
    if !(1..=90).contains(&days) {
        return Err(Error::Invalid("days 须在 1–90 之间 / days must be 1-90".into()));
    }
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let today = Utc::now().with_timezone(&cst).date_naive();
    let first = today - Duration::days(days as i64 - 1);
    let from = first.and_hms_opt(0, 0, 0).expect("midnight").and_local_timezone(cst).single().expect("fixed offset");
    let from = from.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut out: Vec<DayActivity> = (0..days)
        .map(|i| DayActivity {
            day: (first + Duration::days(i as i64)).format("%Y-%m-%d").to_string(),
            flows: 0,
            completed: 0,
            signatures: 0,
        })
        .collect();
    // the local day of a UTC hour key `YYYY-MM-DDTHH`
    let slot = |hour: &str| -> Option<usize> {
        let t = chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00"), "%Y-%m-%dT%H:%M").ok()?;
        let local = t.and_utc().with_timezone(&cst).date_naive();
        usize::try_from((local - first).num_days()).ok().filter(|i| *i < days as usize)
    };
    let flows = sqlx::query(
        "SELECT substr(created_at, 1, 13) AS h, COUNT(*) AS n, SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END) AS done \
         FROM sign_flows WHERE created_at >= $1 \
         AND NOT EXISTS (SELECT 1 FROM login_tickets l WHERE l.flow_id = sign_flows.id) GROUP BY substr(created_at, 1, 13)",
    )
    .bind(&from)
    .fetch_all(&db.pool)
    .await?;
    for r in &flows {
        if let Some(i) = slot(&r.try_get::<String, _>("h")?) {
            out[i].flows += r.try_get::<i64, _>("n")?;
            out[i].completed += r.try_get::<Option<i64>, _>("done")?.unwrap_or(0);
        }
    }
    let signed = sqlx::query(
        "SELECT substr(signed_at, 1, 13) AS h, COUNT(*) AS n FROM flow_signers \
         WHERE signed_at >= $1 AND state = 'signed' \
         AND NOT EXISTS (SELECT 1 FROM login_tickets l WHERE l.flow_id = flow_signers.flow_id) GROUP BY substr(signed_at, 1, 13)",
    )
    .bind(&from)
    .fetch_all(&db.pool)
    .await?;
    for r in &signed {
        if let Some(i) = slot(&r.try_get::<String, _>("h")?) {
            out[i].signatures += r.try_get::<i64, _>("n")?;
        }
    }
    let now = medsign_store::now_text();
    let pending_flows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sign_flows WHERE state IN ('pending', 'signing') AND expires_at >= $1 \
         AND NOT EXISTS (SELECT 1 FROM login_tickets l WHERE l.flow_id = sign_flows.id)",
    )
    .bind(&now)
    .fetch_one(&db.pool)
    .await?;
    let count = |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&db.pool).await };
    Ok(Activity {
        days: out,
        pending_flows,
        webhooks_pending: count("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'").await?,
        webhooks_failed: count("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'failed'").await?,
        batch_queue: count("SELECT COUNT(*) FROM batch_items WHERE state IN ('queued', 'running')").await?,
    })
}

/// Revoke a flow that has not completed (R7.4.10).
pub async fn revoke(db: &Db, ctx: &Context, app_id: Option<&str>, id: &str, reason: &str) -> Result<FlowView> {
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::Invalid("须说明撤销原因（1–500 字）/ give the reason (1-500 characters)".into()));
    }
    let f = get(db, app_id, id).await?;
    if f.state.is_final() {
        return Err(Error::Conflict(format!(
            "流程 {} 状态为 {}，不能撤销（只能撤销未完成的流程）/ flow is {}; only unfinished flows can be revoked",
            f.doc_no, f.state, f.state
        )));
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let done = sqlx::query(
        "UPDATE sign_flows SET state = 'revoked', reason = $1, updated_at = $2 WHERE id = $3 AND state IN ('pending', 'signing')",
    )
    .bind(reason.trim())
    .bind(medsign_store::now_text())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(Error::Conflict("流程状态刚被修改 / the flow changed state concurrently".into()));
    }
    audit::ok(
        &mut tx,
        ctx,
        Kind::Signing,
        "flow.revoke",
        &format!("flow:{id}"),
        serde_json::json!({"reason": reason.trim()}),
    )
    .await?;
    enqueue_event(&mut tx, id, "flow.revoked").await?;
    tx.commit().await?;
    drop(_w);
    get(db, app_id, id).await
}

/// The result of a completed flow (R7.4.13): the CMS signature (DER) of a data flow, or the
/// signed PDF of a file flow.
pub async fn signature_bytes(db: &Db, app_id: Option<&str>, id: &str) -> Result<Vec<u8>> {
    result_of(db, &get(db, app_id, id).await?).await
}

async fn result_of(db: &Db, f: &FlowView) -> Result<Vec<u8>> {
    if f.state != FlowState::Completed {
        return Err(Error::Conflict(format!(
            "流程 {} 尚未完成（{}）/ the flow is not completed ({})",
            f.doc_no, f.state, f.state
        )));
    }
    let sig: Option<String> = sqlx::query_scalar("SELECT signature_b64 FROM sign_flows WHERE id = $1")
        .bind(&f.id)
        .fetch_one(&db.pool)
        .await?;
    B64.decode(sig.unwrap_or_default()).map_err(|_| Error::internal("stored signature is corrupt"))
}

// ---- webhooks -----------------------------------------------------------------------------
