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
    Error, Result,
    audit::{self, Context, Kind},
    ca::BuiltinCas,
    certs::{self, CertRecord, Issuer},
    custody,
    db::Db,
    tsa::Tsa,
    users,
};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use medsign_crypto::{KeyAlg, Signer, signer::KeySigner, wrap::Kek};
use medsign_pki::{
    cert::Cert,
    cms::{self, CmsSigner, Parsed, SignOptions},
    csr,
    name::parse_dn,
    tsp::MessageImprint,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn key_alg(alg: &str) -> Result<KeyAlg> {
    match alg {
        "sm2" => Ok(KeyAlg::Sm2),
        "rsa" => Ok(KeyAlg::Rsa2048),
        other => Err(Error::Invalid(format!("alg 须为 sm2 或 rsa / alg must be sm2 or rsa, got '{other}'"))),
    }
}

fn staff_key_name(employee_no: &str, alg: &str) -> String {
    format!("staff-{employee_no}-{alg}")
}

/// Authorize server custody of `employee_no`'s signing key for `alg` (hospital policy, R3.8):
/// the key is generated and wrapped under the KEK, certified through the CA channels (with a CSR
/// the server makes, so EST works too), and the authorization is recorded and audited. A user
/// who already holds an active certificate for another key of that algorithm must have it revoked
/// first.
pub async fn authorize_custody(
    db: &Db,
    kek: &Kek,
    issuer: Issuer<'_>,
    ctx: &Context,
    employee_no: &str,
    reason: &str,
    alg: &str,
) -> Result<CertRecord> {
    let ka = key_alg(alg)?;
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::Invalid("须说明授权依据（1–500 字）/ give the reason (1-500 characters)".into()));
    }
    let user = users::get(db, kek, employee_no).await?;
    if user.status != "active" {
        return Err(Error::Invalid(format!("用户 {employee_no} 已停用 / user {employee_no} is disabled")));
    }
    let key = KeySigner::new(custody::ensure_key(db, kek, &staff_key_name(employee_no, alg), ka).await?);
    let family = alg; // key_alg() above accepted only sm2 | rsa, the certificate families
    let active = active_certs(db, employee_no, family).await?;
    let rec = match active.into_iter().next() {
        Some(c) => {
            let cert =
                Cert::load_all(c.certificate_pem.as_bytes()).map_err(|e| Error::Config(e.to_string()))?.remove(0);
            if cert.public_key().ok() != Some(key.public_key()) {
                return Err(Error::Conflict(format!(
                    "用户已有另一把密钥的 {family} 证书 {}，请先吊销 / the user holds a {family} certificate {} for another key; revoke it first",
                    c.serial, c.serial
                )));
            }
            c
        }
        None => {
            let req =
                csr::build(&parse_dn("CN=medsign server custody").map_err(|e| Error::Config(e.to_string()))?, &key)
                    .map_err(|e| Error::Config(e.to_string()))?;
            certs::issue_for_user(db, kek, issuer, ctx, employee_no, &req).await?
        }
    };
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("DELETE FROM staff_custody WHERE employee_no = $1").bind(employee_no).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO staff_custody (employee_no, granted_by, reason, created_at) VALUES ($1, $2, $3, $4)")
        .bind(employee_no)
        .bind(&ctx.actor)
        .bind(reason.trim())
        .bind(crate::now_text())
        .execute(&mut *tx)
        .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::Admin,
        "custody.authorize",
        &format!("user:{employee_no}"),
        serde_json::json!({"alg": alg, "reason": reason.trim(), "certificate": rec.serial}),
    )
    .await?;
    tx.commit().await?;
    Ok(rec)
}

/// The active certificates of `employee_no` for a key family.
async fn active_certs(db: &Db, employee_no: &str, family: &str) -> Result<Vec<CertRecord>> {
    let q = certs::ListQuery {
        employee_no: Some(employee_no.into()),
        status: Some("active".into()),
        alg: Some(family.into()),
        ..Default::default()
    };
    Ok(certs::list(db, &q).await?.0)
}

/// End server custody for `employee_no`: auto flows naming them are refused from now on.
pub async fn revoke_custody(db: &Db, ctx: &Context, employee_no: &str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let done = sqlx::query("UPDATE staff_custody SET revoked_at = $1 WHERE employee_no = $2 AND revoked_at IS NULL")
        .bind(crate::now_text())
        .bind(employee_no)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("{employee_no} 没有有效的托管授权 / no active custody authorization")));
    }
    audit::ok(&mut tx, ctx, Kind::Admin, "custody.revoke", &format!("user:{employee_no}"), serde_json::json!({}))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A signer ready to sign: key, certificate, chain.
struct Ready {
    key: Box<dyn Signer>,
    /// how the key is held, for the record (`{"custody": "server"}`, or the grant it signs under)
    custody: serde_json::Value,
    cert: Cert,
    chain: Vec<Cert>,
    /// who signs, as the visible signature shows it
    display: String,
    /// handwriting or seal image (PNG) for the visible signature
    image: Option<Vec<u8>>,
}

/// How a visible signature names a staff member: name and title.
pub(crate) fn staff_display(user: &users::User) -> String {
    match &user.title {
        Some(t) if !t.is_empty() => format!("{} {t}", user.name),
        _ => user.name.clone(),
    }
}

/// A staff signer who exists and is active.
pub(crate) async fn active_user(db: &Db, kek: &Kek, employee_no: &str) -> Result<users::User> {
    let user = users::get(db, kek, employee_no)
        .await
        .map_err(|_| Error::Invalid(format!("签署人 {employee_no} 不存在 / unknown signer {employee_no}")))?;
    if user.status != "active" {
        return Err(Error::Invalid(format!("签署人 {employee_no} 已停用 / signer {employee_no} is disabled")));
    }
    Ok(user)
}

/// A staff signer's key and certificate — the server-custody key under the hospital's
/// authorization, or else the user's two-party key under an active session grant to `app_id`
/// (R3.5); with `pdf`, also the handwriting a visible signature shows (data flows never read it).
async fn staff_ready(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    employee_no: &str,
    alg: &str,
    pdf: bool,
    app_id: &str,
) -> Result<Ready> {
    let user = active_user(db, kek, employee_no).await?;
    let image = match pdf {
        true => crate::images::get(db, &format!("user:{employee_no}")).await?.map(|(png, _)| png),
        false => None,
    };
    let granted: Option<String> =
        sqlx::query_scalar("SELECT employee_no FROM staff_custody WHERE employee_no = $1 AND revoked_at IS NULL")
            .bind(employee_no)
            .fetch_optional(&db.pool)
            .await?;
    if granted.is_none() {
        let grant = match alg {
            "sm2" => crate::grants::signer(db, kek, employee_no, app_id).await?,
            _ => None,
        };
        let Some(g) = grant else {
            return Err(Error::Invalid(format!(
                "签署人 {employee_no} 既未授权服务器托管签名，也没有对本系统有效的会话授权（auto 模式需要其一）/ signer {employee_no} has neither a server-custody authorization nor an active session grant for this system (auto mode needs one)"
            )));
        };
        let custody = serde_json::json!({"custody": "grant", "grant": g.grant_id, "key": g.key_id});
        let cert = g.cert.clone();
        return Ok(Ready {
            key: Box::new(g),
            custody,
            cert,
            chain: vec![cas.sm2.issuing.clone()],
            display: staff_display(&user),
            image,
        });
    }
    let key = KeySigner::new(custody::ensure_key(db, kek, &staff_key_name(employee_no, alg), key_alg(alg)?).await?);
    let family = alg; // key_alg() above accepted only sm2 | rsa, the certificate families
    let active = active_certs(db, employee_no, family).await?;
    let cert = active
        .iter()
        .filter_map(|c| Cert::load_all(c.certificate_pem.as_bytes()).ok()?.into_iter().next())
        .find(|c| c.public_key().ok() == Some(key.public_key()))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "签署人 {employee_no} 没有与托管密钥对应的有效 {family} 证书 / signer {employee_no} has no active {family} certificate for the custody key"
            ))
        })?;
    let h = if alg == "sm2" { &cas.sm2 } else { &cas.rsa };
    Ok(Ready {
        key: Box::new(key),
        custody: serde_json::json!({"custody": "server"}),
        cert,
        chain: vec![h.issuing.clone()],
        display: staff_display(&user),
        image,
    })
}

#[allow(clippy::too_many_arguments)]
async fn seal_ready(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    organization: &str,
    ctx: &Context,
    seal: &str,
    alg: &str,
    pdf: bool,
) -> Result<Ready> {
    let department = (seal != "hospital").then_some(seal);
    // one custody read: the certificate and its key together
    let (cert, key) =
        certs::seal_signer(db, kek, cas, organization, ctx, department, alg).await.map_err(|e| match e {
            Error::NotFound(m) => Error::Invalid(m),
            other => other,
        })?;
    let h = if alg == "sm2" { &cas.sm2 } else { &cas.rsa };
    let image = match pdf {
        true => Some(crate::images::seal_image(db, ctx, organization, seal).await?),
        false => None,
    };
    let display = format!("{}（电子签章）", medsign_pki::name::common_name_or_dn(cert.subject()));
    Ok(Ready {
        key: Box::new(key),
        custody: serde_json::json!({"custody": "server"}),
        cert,
        chain: vec![h.issuing.clone()],
        display,
        image,
    })
}

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
}

/// A signer as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct SignerView {
    /// position, from 0
    pub index: i64,
    /// `staff` | `seal`
    pub kind: String,
    /// employee number or seal name
    #[serde(rename = "ref")]
    pub subject_ref: String,
    /// `auto` | `scan`
    pub mode: String,
    /// `pending` | `signed` | `failed`
    pub state: String,
    /// how the key that signed was held: `server` (custody), `two-party` (phone + server) or
    /// `grant` (two-party, the phone's half run under the user's session grant)
    pub custody: Option<String>,
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
    /// `data`
    pub kind: String,
    /// title
    pub title: String,
    /// `pending` | `signing` | `completed` | `revoked` | `expired` | `failed`
    pub state: String,
    /// `sm2` | `rsa`
    pub alg: String,
    /// content not embedded
    pub detached: bool,
    /// SM3 of the content, hex
    pub content_sm3: String,
    /// `required` | `later`
    pub timestamp_mode: String,
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

fn check_url(u: &str) -> Result<()> {
    if (u.starts_with("https://") || u.starts_with("http://")) && u.len() <= 2000 && !u.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(Error::Invalid(format!("callback_url 须为 http(s) 地址 / callback_url must be an http(s) URL: {u}")))
    }
}

/// Create a data flow and run its (auto) signers. `max_bytes` limits the content.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    organization: &str,
    tsa: &Tsa,
    ctx: &Context,
    app_id: &str,
    nf: &NewFlow,
    max_bytes: usize,
) -> Result<FlowView> {
    create_keyed(db, kek, cas, organization, tsa, ctx, app_id, nf, max_bytes, None).await
}

/// [`create`] under a request key that is unique among flows (batch items): a second creation
/// with the same key is `Error::Conflict` and signs nothing.
#[allow(clippy::too_many_arguments)]
pub async fn create_keyed(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    organization: &str,
    tsa: &Tsa,
    ctx: &Context,
    app_id: &str,
    nf: &NewFlow,
    max_bytes: usize,
    request_key: Option<&str>,
) -> Result<FlowView> {
    let is_pdf = match nf.kind.as_str() {
        "data" => false,
        "file" => true,
        other => {
            return Err(Error::Invalid(format!("kind 须为 data 或 file / kind must be data or file, got '{other}'")));
        }
    };
    let title = nf.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(Error::Invalid("title 须为 1–200 个字符 / title must be 1-200 characters".into()));
    }
    let mut template = None;
    let mut placements = vec![None; nf.signers.len()];
    let content: Vec<u8> = match (&nf.content, &nf.content_base64, &nf.content_json) {
        _ if nf.template_id.is_some() || nf.data.is_some() => {
            let (Some(tid), Some(data), None, None, None, true) =
                (&nf.template_id, &nf.data, &nf.content, &nf.content_base64, &nf.content_json, is_pdf)
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
    if is_pdf {
        if nf.content_base64.is_none() && template.is_none() {
            return Err(Error::Invalid("PDF 须放在 content_base64 中 / a PDF goes in content_base64".into()));
        }
        medsign_pdf::load(&content).map_err(|e| Error::Invalid(e.to_string()))?;
        if nf.timestamp.as_deref() == Some("later") {
            return Err(Error::Invalid(
                "PDF 流程的时间戳须当场加上（timestamp=required）/ PDF flows timestamp at once (timestamp=required)"
                    .into(),
            ));
        }
        let fields = medsign_pdf::empty_signature_fields(&content).map_err(|e| Error::Invalid(e.to_string()))?;
        for (i, s) in nf.signers.iter().enumerate() {
            if let Some(p) = &s.placement {
                placements[i] = Some(p.resolve(&content).map_err(|e| match e {
                    Error::Invalid(m) => Error::Invalid(format!("签署人 #{i} / signer #{i}: {m}")),
                    other => other,
                })?);
            }
            match (&s.field, &s.placement) {
                (Some(_), Some(_)) => {
                    return Err(Error::Invalid(format!(
                        "签署人 #{i}：field 与 placement 只能给一个 / signer #{i}: give field or placement, not both"
                    )));
                }
                (Some(f), None) if !fields.contains(f) => {
                    return Err(Error::Invalid(format!(
                        "签署人 #{i}：文档中没有空的签名域 {f}（可用：{}）/ signer #{i}: the document has no empty signature field '{f}' (available: {})",
                        fields.join(", "),
                        fields.join(", ")
                    )));
                }
                _ => {}
            }
        }
        if nf.certify.is_some() && nf.signers.iter().skip(1).any(|s| s.placement.is_some()) {
            return Err(Error::Invalid(
                "认证签名之后的签名须为不可见签名（可见签名需要模板中预置的签名域）/ after a certification signature, later signatures must be invisible (visible ones need fields placed in a template)".into(),
            ));
        }
    } else if nf.certify.is_some() {
        return Err(Error::Invalid("certify 只用于 PDF 流程 / certify is for PDF flows".into()));
    } else if nf.signers.iter().any(|s| s.placement.is_some() || s.field.is_some()) {
        return Err(Error::Invalid(
            "placement 与 field 只用于 PDF 流程 / placement and field are for PDF flows".into(),
        ));
    }
    let ticket_ttl = crate::tickets::ttl(nf.ticket_ttl_seconds)?;
    let alg = nf.alg.clone().unwrap_or_else(|| "sm2".into());
    key_alg(&alg)?;
    let ts_mode = nf.timestamp.clone().unwrap_or_else(|| "required".into());
    if ts_mode != "required" && ts_mode != "later" {
        return Err(Error::Invalid("timestamp 须为 required 或 later / timestamp must be required or later".into()));
    }
    if let Some(u) = &nf.callback_url {
        check_url(u)?;
    }
    let minutes = nf.expires_in_minutes.unwrap_or(1440);
    if !(1..=60 * 24 * 30).contains(&minutes) {
        return Err(Error::Invalid("expires_in_minutes 须为 1–43200 / must be 1-43200".into()));
    }
    if nf.signers.is_empty() || nf.signers.len() > 20 {
        return Err(Error::Invalid("须有 1–20 个签署人 / 1-20 signers".into()));
    }
    // resolve every signer before anything is written: bad signers are a 4xx, not a failed flow.
    // Auto signers before the first scan signer sign now; the rest wait for the phone (mobile issue).
    let mut ready = Vec::new();
    let mut refs = Vec::new();
    let mut waiting = false;
    for (i, s) in nf.signers.iter().enumerate() {
        if s.mode != "auto" && s.mode != "scan" {
            return Err(Error::Invalid(format!(
                "签署人 #{i}：mode 须为 auto 或 scan / signer #{i}: mode must be auto or scan, got '{}'",
                s.mode
            )));
        }
        match (&s.employee_no, &s.seal) {
            (Some(no), None) if s.mode == "scan" => {
                if alg != "sm2" {
                    return Err(Error::Invalid(format!(
                        "签署人 #{i}：扫码签署使用手机上的 SM2 协同密钥，alg 须为 sm2 / signer #{i}: scan signers sign with the phone's two-party SM2 key; alg must be sm2"
                    )));
                }
                active_user(db, kek, no).await?;
                waiting = true;
                refs.push(("staff", no.clone()));
            }
            (None, Some(_)) if s.mode == "scan" => {
                return Err(Error::Invalid(format!(
                    "签署人 #{i}：印章由服务器签署，不能扫码 / signer #{i}: seals sign on the server (auto), not by scanning"
                )));
            }
            (Some(no), None) => {
                let r = staff_ready(db, kek, cas, no, &alg, is_pdf, app_id).await?;
                if !waiting {
                    ready.push(r);
                }
                refs.push(("staff", no.clone()));
            }
            (None, Some(seal)) => {
                let r = seal_ready(db, kek, cas, organization, ctx, seal, &alg, is_pdf).await?;
                if !waiting {
                    ready.push(r);
                }
                refs.push(("seal", seal.clone()));
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "签署人 #{i} 须给出 employee_no 或 seal 之一 / signer #{i}: give employee_no or seal"
                )));
            }
        }
    }
    let id = format!("sf_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let doc_no = new_doc_no()?;
    let now = crate::now_text();
    let expires = (Utc::now() + Duration::minutes(minutes as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, \
             timestamp_mode, ts_pending, callback_url, expires_at, created_at, updated_at, request_key, template_id, template_version, certify, ticket_ttl) \
             VALUES ($1, $2, $3, $13, $4, 'signing', $5, $6, $7, $8, $9, 0, $10, $11, $12, $12, $14, $15, $16, $17, $18)",
        )
        .bind(&id)
        .bind(&doc_no)
        .bind(app_id)
        .bind(title)
        .bind(&alg)
        .bind((nf.detached || is_pdf) as i64)
        .bind(B64.encode(&content))
        .bind(hex::encode(medsign_crypto::hash::sm3(&content)))
        .bind(&ts_mode)
        .bind(&nf.callback_url)
        .bind(&expires)
        .bind(&now)
        .bind(&nf.kind)
        .bind(request_key)
        .bind(template.as_ref().map(|t| t.id.clone()))
        .bind(template.as_ref().map(|t| t.version))
        .bind(nf.certify.map(i64::from))
        .bind(i64::from(ticket_ttl))
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() && request_key.is_some() => {
                Error::Conflict(format!("请求键 {} 已用过 / request key already used", request_key.unwrap_or_default()))
            }
            other => Error::Db(other),
        })?;
        for (i, (kind, r)) in refs.iter().enumerate() {
            sqlx::query(
                "INSERT INTO flow_signers (flow_id, idx, kind, subject_ref, mode, state, field, placement) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)",
            )
            .bind(&id)
            .bind(i as i64)
            .bind(kind)
            .bind(r)
            .bind(&nf.signers[i].mode)
            .bind(&nf.signers[i].field)
            .bind(placements[i].map(|p| serde_json::json!([p.page, p.rect]).to_string()))
            .execute(&mut *tx)
            .await?;
        }
        audit::ok(
            &mut tx,
            ctx,
            Kind::Signing,
            "flow.create",
            &format!("flow:{id}"),
            serde_json::json!({"doc_no": doc_no, "title": title, "signers": refs.iter().map(|(k, r)| format!("{k}:{r}")).collect::<Vec<_>>(), "content_sm3": hex::encode(medsign_crypto::hash::sm3(&content))}),
        )
        .await?;
        tx.commit().await?;
    }
    let signed = if ready.is_empty() {
        Ok((Vec::new(), vec![], false))
    } else if is_pdf {
        let specs: Vec<PdfSpec> = (0..ready.len())
            .map(|i| PdfSpec {
                field: nf.signers[i].field.clone(),
                placement: placements[i],
                certify: if i == 0 { nf.certify } else { None },
            })
            .collect();
        let kinds: Vec<&str> = refs.iter().map(|r| r.0).collect();
        sign_pdf(tsa, &content, &ready, &kinds, &specs, title, &alg, app_id).await.map(|(d, t)| (d, t, false))
    } else {
        sign_data(tsa, &content, &ready, nf.detached, &alg, app_id, &ts_mode).await
    };
    let (der, ts_times, pending) = match signed {
        Ok(x) => x,
        Err(e) => {
            let unavailable = matches!(e, Error::Unavailable(_));
            let msg = if unavailable {
                format!(
                    "时间戳服务不可用，流程失败，未发布签名 / the TSA cannot issue; the flow failed and no signature was released: {e}"
                )
            } else {
                format!("签署失败 / signing failed: {e}")
            };
            fail(db, ctx, &id, &msg).await?;
            return Err(if unavailable { Error::Unavailable(format!("{msg} (flow {id})")) } else { e });
        }
    };
    let signed: Vec<Signed> = ready
        .iter()
        .enumerate()
        .map(|(i, r)| Signed {
            idx: i as i64,
            kind: refs[i].0.into(),
            subject_ref: refs[i].1.clone(),
            serial: r.cert.serial_hex(),
            custody: r.custody.clone(),
        })
        .collect();
    record(db, ctx, &id, &der, pending, &ts_times, &signed, refs.len() as i64, ticket_ttl).await?;
    get(db, None, &id).await
}

/// One signature a flow step made.
pub(crate) struct Signed {
    /// signer index
    pub idx: i64,
    /// `staff` | `seal`
    pub kind: String,
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
/// flow). Refused with 409 when the flow or a signer changed meanwhile (revoked, signed twice).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record(
    db: &Db,
    ctx: &Context,
    id: &str,
    der: &[u8],
    pending: bool,
    ts_times: &[DateTime<Utc>],
    signed: &[Signed],
    total: i64,
    ticket_ttl: u32,
) -> Result<()> {
    let now = crate::now_text();
    let next = signed.iter().map(|s| s.idx + 1).max().unwrap_or(0);
    let complete = next == total;
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
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
    for (k, s) in signed.iter().enumerate() {
        let ts = ts_times.get(k).or(ts_times.first());
        let done = sqlx::query(
            "UPDATE flow_signers SET state = 'signed', cert_serial = $1, signed_at = $2, timestamp_at = $3, custody = $6, grant_id = $7 \
             WHERE flow_id = $4 AND idx = $5 AND state = 'pending'",
        )
        .bind(&s.serial)
        .bind(&now)
        .bind(ts.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .bind(id)
        .bind(s.idx)
        .bind(s.custody.get("custody").and_then(|c| c.as_str()).unwrap_or("server"))
        .bind(s.custody.get("grant").and_then(|c| c.as_str()))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(changed());
        }
        let mut details =
            serde_json::json!({"signer": format!("{}:{}", s.kind, s.subject_ref), "certificate": s.serial});
        if let (Some(d), Some(c)) = (details.as_object_mut(), s.custody.as_object()) {
            d.extend(c.clone());
        }
        audit::ok(
            &mut tx,
            ctx,
            Kind::Signing,
            if s.kind == "seal" { "seal.use" } else { "flow.sign" },
            &format!("flow:{id}"),
            details,
        )
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

/// One CMS with every signer over `content`, timestamped (or marked pending when `later`).
async fn sign_data(
    tsa: &Tsa,
    content: &[u8],
    ready: &[Ready],
    detached: bool,
    alg: &str,
    app_id: &str,
    ts_mode: &str,
) -> Result<(Vec<u8>, Vec<DateTime<Utc>>, bool)> {
    let signers: Vec<CmsSigner<'_>> =
        ready.iter().map(|r| CmsSigner { signer: r.key.as_ref(), cert: &r.cert, chain: &r.chain }).collect();
    let der = cms::sign(content, &signers, &SignOptions { detached, ..Default::default() })
        .map_err(|e| Error::Config(format!("signing failed: {e}")))?;
    let mut parsed = Parsed::from_bytes(&der).map_err(|e| Error::Config(e.to_string()))?;
    match add_timestamps(tsa, &mut parsed, alg, app_id).await {
        Ok(times) => Ok((parsed.to_der().map_err(|e| Error::Config(e.to_string()))?, times, false)),
        Err(e) if ts_mode == "later" => {
            tracing::warn!(error = %e, "timestamp deferred");
            Ok((der, vec![], true))
        }
        Err(e) => Err(e),
    }
}

/// Where and how one signer's PDF signature goes (kept with the signer: a phone signs later).
#[derive(Debug, Clone, Default)]
pub(crate) struct PdfSpec {
    /// a signature field placed in advance
    pub field: Option<String>,
    /// or a visible rectangle
    pub placement: Option<medsign_pdf::Placement>,
    /// the first signer certifies (DocMDP P)
    pub certify: Option<u8>,
}

/// The PDF signature options of one signer: its field (placed in advance, or `medsign-<n>-<kind>`
/// where `n` counts the document's signatures with this one), appearance (image; name, time in
/// UTC+8, certificate serial) and dictionary entries.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pdf_options(
    spec: &PdfSpec,
    n: usize,
    kind: &str,
    display: &str,
    image: Option<Vec<u8>>,
    cert: &Cert,
    title: &str,
    now: DateTime<Utc>,
) -> medsign_pdf::SignOptions {
    medsign_pdf::SignOptions {
        field_name: spec.field.clone().unwrap_or_else(|| format!("medsign-{n}-{kind}")),
        placement: spec.placement,
        appearance: medsign_pdf::Appearance {
            image,
            lines: vec![
                display.to_string(),
                format!("签署时间 {}", medsign_pki::time::display_cst(now)),
                format!("证书 {}", cert.serial_hex()),
            ],
        },
        name: Some(cert.subject_display()),
        reason: Some(title.to_string()),
        time: now,
        reserve: 24 * 1024,
        certify: spec.certify,
    }
}

/// The detached CMS of a PAdES signature over a prepared document's covered bytes (no
/// signingTime attribute: the time is /M and the timestamp).
pub(crate) fn pades_cms(covered: &[u8], signer: &dyn Signer, cert: &Cert, chain: &[Cert]) -> Result<Vec<u8>> {
    cms::sign(
        covered,
        &[CmsSigner { signer, cert, chain }],
        &SignOptions { detached: true, omit_signing_time: true, ..Default::default() },
    )
    .map_err(|e| Error::Config(format!("signing failed: {e}")))
}

/// One PAdES B-T signature per signer, each an incremental update over the previous result.
#[allow(clippy::too_many_arguments)]
async fn sign_pdf(
    tsa: &Tsa,
    pdf: &[u8],
    ready: &[Ready],
    kinds: &[&str],
    specs: &[PdfSpec],
    title: &str,
    alg: &str,
    app_id: &str,
) -> Result<(Vec<u8>, Vec<DateTime<Utc>>)> {
    let mut doc = pdf.to_vec();
    let mut times = Vec::new();
    let existing = medsign_pdf::signatures(pdf).map_err(|e| Error::Invalid(e.to_string()))?.len();
    for (i, r) in ready.iter().enumerate() {
        let opts =
            pdf_options(&specs[i], existing + i + 1, kinds[i], &r.display, r.image.clone(), &r.cert, title, Utc::now());
        let prepared = medsign_pdf::prepare(&doc, &opts).map_err(|e| Error::Invalid(e.to_string()))?;
        let der = pades_cms(&prepared.covered(), r.key.as_ref(), &r.cert, &r.chain)?;
        let mut parsed = Parsed::from_bytes(&der).map_err(|e| Error::Config(e.to_string()))?;
        times.extend(add_timestamps(tsa, &mut parsed, alg, app_id).await?);
        doc = prepared
            .finish(&parsed.to_der().map_err(|e| Error::Config(e.to_string()))?)
            .map_err(|e| Error::Config(e.to_string()))?;
    }
    Ok((doc, times))
}

/// Timestamp every signer that has none; returns the genTimes.
pub(crate) async fn add_timestamps(
    tsa: &Tsa,
    parsed: &mut Parsed,
    alg: &str,
    requester: &str,
) -> Result<Vec<DateTime<Utc>>> {
    let mut times = Vec::new();
    // the SET OF signers re-sorts when attributes change: look for the next unstamped one each time
    while let Some(i) = (0..parsed.signer_infos().len()).find(|&i| !parsed.has_timestamp(i)) {
        let h = parsed.digest_of(i).map_err(|e| Error::Config(e.to_string()))?;
        let imprint = MessageImprint::of(h, &parsed.signature_value(i).map_err(|e| Error::Config(e.to_string()))?);
        let nonce = medsign_pki::der::asn1::Int::new(&[0x01, medsign_crypto::rng::bytes::<4>()?[0]])
            .map_err(|e| Error::Config(e.to_string()))?;
        let t = tsa.stamp(Some(alg), &imprint, Some(&nonce), true, None, requester).await?;
        parsed.add_timestamp(i, &t.token).map_err(|e| Error::Config(e.to_string()))?;
        times.push(t.time);
    }
    Ok(times)
}

pub(crate) async fn fail(db: &Db, ctx: &Context, id: &str, msg: &str) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("UPDATE sign_flows SET state = 'failed', error = $1, updated_at = $2 WHERE id = $3")
        .bind(msg)
        .bind(crate::now_text())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let target = format!("flow:{id}");
    let ev = audit::Event {
        kind: Kind::Signing,
        action: "flow.fail",
        target: &target,
        outcome: "failed:flow",
        details: serde_json::json!({"error": msg}),
    };
    audit::append(&mut tx, ctx, &ev).await?;
    enqueue_event(&mut tx, id, "flow.failed").await?;
    tx.commit().await?;
    Ok(())
}

/// A flow's stored facts that signing after its creation needs.
pub(crate) struct Stored {
    pub id: String,
    pub app_id: String,
    pub kind: String,
    pub title: String,
    pub state: String,
    pub alg: String,
    pub detached: bool,
    pub content: Vec<u8>,
    pub content_sm3: String,
    pub doc_no: String,
    /// the signature (data) or signed PDF so far
    pub so_far: Option<Vec<u8>>,
    pub ts_mode: String,
    pub ticket_ttl: u32,
    pub template_id: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    /// in order
    pub signers: Vec<StoredSigner>,
}

/// A signer as stored.
pub(crate) struct StoredSigner {
    pub idx: i64,
    pub kind: String,
    pub subject_ref: String,
    pub mode: String,
    pub state: String,
    pub spec: PdfSpec,
}

impl Stored {
    /// The signer whose turn it is.
    pub fn turn(&self) -> Option<&StoredSigner> {
        self.signers.iter().find(|s| s.state == "pending")
    }
}

/// Load a flow with its content and signers.
pub(crate) async fn stored(db: &Db, id: &str) -> Result<Stored> {
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
                    serde_json::from_str(&p).map_err(|e| Error::Config(format!("stored placement: {e}")))?;
                Some(medsign_pdf::Placement { page, rect })
            }
            None => None,
        };
        signers.push(StoredSigner {
            idx,
            kind: s.try_get("kind")?,
            subject_ref: s.try_get("subject_ref")?,
            mode: s.try_get("mode")?,
            state: s.try_get("state")?,
            spec: PdfSpec { field: s.try_get("field")?, placement, certify: if idx == 0 { certify } else { None } },
        });
    }
    let so_far: Option<String> = r.try_get("signature_b64")?;
    let ttl: Option<i64> = r.try_get("ticket_ttl")?;
    Ok(Stored {
        id: r.try_get("id")?,
        app_id: r.try_get("app_id")?,
        kind: r.try_get("kind")?,
        title: r.try_get("title")?,
        state: r.try_get("state")?,
        alg: r.try_get("alg")?,
        detached: r.try_get::<i64, _>("detached")? != 0,
        content: B64
            .decode(r.try_get::<String, _>("content_b64")?)
            .map_err(|_| Error::Config("stored content is corrupt".into()))?,
        content_sm3: r.try_get("content_sm3")?,
        doc_no: r.try_get("doc_no")?,
        so_far: match so_far {
            Some(b) => Some(B64.decode(b).map_err(|_| Error::Config("stored signature is corrupt".into()))?),
            None => None,
        },
        ts_mode: r.try_get("timestamp_mode")?,
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
#[allow(clippy::too_many_arguments)]
pub(crate) async fn sign_following(
    db: &Db,
    kek: &Kek,
    cas: &BuiltinCas,
    organization: &str,
    tsa: &Tsa,
    ctx: &Context,
    f: &Stored,
    from: i64,
    doc: Vec<u8>,
) -> Result<(Vec<u8>, Vec<Signed>, Vec<DateTime<Utc>>, bool)> {
    let is_pdf = f.kind == "file";
    let mut ready = Vec::new();
    let mut who = Vec::new();
    for s in f.signers.iter().filter(|s| s.idx >= from).take_while(|s| s.mode == "auto") {
        let r = match s.kind.as_str() {
            "seal" => seal_ready(db, kek, cas, organization, ctx, &s.subject_ref, &f.alg, is_pdf).await?,
            _ => staff_ready(db, kek, cas, &s.subject_ref, &f.alg, is_pdf, &f.app_id).await?,
        };
        ready.push(r);
        who.push(s);
    }
    if ready.is_empty() {
        return Ok((doc, vec![], vec![], false));
    }
    let (out, times, pending) = if is_pdf {
        let kinds: Vec<&str> = who.iter().map(|s| s.kind.as_str()).collect();
        let specs: Vec<PdfSpec> = who.iter().map(|s| s.spec.clone()).collect();
        let (d, t) = sign_pdf(tsa, &doc, &ready, &kinds, &specs, &f.title, &f.alg, &f.app_id).await?;
        (d, t, false)
    } else {
        let (theirs, t, pending) =
            sign_data(tsa, &f.content, &ready, f.detached, &f.alg, &f.app_id, &f.ts_mode).await?;
        let mut merged = Parsed::from_bytes(&doc).map_err(|e| Error::Config(e.to_string()))?;
        merged
            .merge(&Parsed::from_bytes(&theirs).map_err(|e| Error::Config(e.to_string()))?)
            .map_err(|e| Error::Config(e.to_string()))?;
        (merged.to_der().map_err(|e| Error::Config(e.to_string()))?, t, pending)
    };
    let signed = who
        .iter()
        .zip(&ready)
        .map(|(s, r)| Signed {
            idx: s.idx,
            kind: s.kind.clone(),
            subject_ref: s.subject_ref.clone(),
            serial: r.cert.serial_hex(),
            custody: r.custody.clone(),
        })
        .collect();
    Ok((out, signed, times, pending))
}

/// Add the timestamps of flows signed with `timestamp: "later"` (run every minute); returns how
/// many flows were completed.
pub async fn complete_pending_timestamps(db: &Db, tsa: &Tsa) -> Result<usize> {
    let rows = sqlx::query("SELECT id, alg, app_id, signature_b64 FROM sign_flows WHERE ts_pending = 1 LIMIT 50")
        .fetch_all(&db.pool)
        .await?;
    let mut done = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        let alg: String = r.try_get("alg")?;
        let app: String = r.try_get("app_id")?;
        let sig: String = r.try_get("signature_b64")?;
        let der = B64.decode(sig).map_err(|_| Error::Config("stored signature is corrupt".into()))?;
        let mut parsed = Parsed::from_bytes(&der).map_err(|e| Error::Config(e.to_string()))?;
        let times = match add_timestamps(tsa, &mut parsed, &alg, &app).await {
            Ok(t) => t,
            Err(Error::Unavailable(_)) => break, // still out of sync: try again next time
            Err(e) => return Err(e),
        };
        let out = parsed.to_der().map_err(|e| Error::Config(e.to_string()))?;
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        sqlx::query("UPDATE sign_flows SET signature_b64 = $1, ts_pending = 0, updated_at = $2 WHERE id = $3 AND ts_pending = 1")
            .bind(B64.encode(&out))
            .bind(crate::now_text())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE flow_signers SET timestamp_at = $1 WHERE flow_id = $2")
            .bind(times.first().map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        enqueue_event(&mut tx, &id, "flow.timestamped").await?;
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
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
        .bind(crate::now_text())
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

/// A flow, seen by `app_id` (None: no owner check — admin).
pub async fn get(db: &Db, app_id: Option<&str>, id: &str) -> Result<FlowView> {
    let not_found = || Error::NotFound(format!("签署流程 {id} 不存在 / no signing flow {id}"));
    let r = sqlx::query("SELECT * FROM sign_flows WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(not_found)?;
    let owner: String = r.try_get("app_id")?;
    crate::check_owner(app_id, &owner, not_found)?;
    let mut state: String = r.try_get("state")?;
    let expires: String = r.try_get("expires_at")?;
    if (state == "pending" || state == "signing")
        && DateTime::parse_from_rfc3339(&expires).is_ok_and(|t| t.with_timezone(&Utc) < Utc::now())
    {
        state = "expired".into();
    }
    let signers = sqlx::query("SELECT * FROM flow_signers WHERE flow_id = $1 ORDER BY idx")
        .bind(id)
        .fetch_all(&db.pool)
        .await?
        .iter()
        .map(|s| {
            Ok(SignerView {
                index: s.try_get("idx")?,
                kind: s.try_get("kind")?,
                subject_ref: s.try_get("subject_ref")?,
                mode: s.try_get("mode")?,
                state: s.try_get("state")?,
                custody: s.try_get("custody")?,
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
        kind: r.try_get("kind")?,
        title: r.try_get("title")?,
        state,
        alg: r.try_get("alg")?,
        detached: r.try_get::<i64, _>("detached")? != 0,
        content_sm3: r.try_get("content_sm3")?,
        timestamp_mode: r.try_get("timestamp_mode")?,
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
        ticket: None,
    })
}

/// Revoke a flow that has not completed (R7.4.10).
pub async fn revoke(db: &Db, ctx: &Context, app_id: Option<&str>, id: &str, reason: &str) -> Result<FlowView> {
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::Invalid("须说明撤销原因（1–500 字）/ give the reason (1-500 characters)".into()));
    }
    let f = get(db, app_id, id).await?;
    if f.state != "pending" && f.state != "signing" {
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
    .bind(crate::now_text())
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
    if f.state != "completed" {
        return Err(Error::Conflict(format!(
            "流程 {} 尚未完成（{}）/ the flow is not completed ({})",
            f.doc_no, f.state, f.state
        )));
    }
    let sig: Option<String> = sqlx::query_scalar("SELECT signature_b64 FROM sign_flows WHERE id = $1")
        .bind(&f.id)
        .fetch_one(&db.pool)
        .await?;
    B64.decode(sig.unwrap_or_default()).map_err(|_| Error::Config("stored signature is corrupt".into()))
}

async fn verify_options(db: &Db, cas: &BuiltinCas) -> Result<cms::VerifyOptions> {
    let mut crls = Vec::new();
    for h in [&cas.sm2, &cas.rsa] {
        if let Ok(c) = medsign_pki::crl::Crl::from_bytes(&certs::crl(db, h, 6).await?) {
            crls.push(c);
        }
    }
    Ok(cms::VerifyOptions {
        trust: vec![cas.sm2.root.clone(), cas.rsa.root.clone()],
        extra_certs: vec![cas.sm2.issuing.clone(), cas.rsa.issuing.clone()],
        crls,
        ..Default::default()
    })
}

/// One signature of a verified PDF.
#[derive(Debug, Clone, Serialize)]
pub struct FileSignature {
    /// field name
    pub field: String,
    /// `/SubFilter`
    pub sub_filter: String,
    /// covers the whole file as it is
    pub whole_file: bool,
    /// updates after it that are not later signatures (anything > 0 is a modification)
    pub unsigned_updates_after: usize,
    /// `TOTAL_PASSED` | `INDETERMINATE` | `TOTAL_FAILED`
    pub indication: cms::Indication,
    /// why, when not passed
    pub sub_indication: Option<String>,
    /// the CMS verification (integrity, signer, chain, revocation, timestamp)
    pub report: cms::CmsReport,
}

/// What `POST /api/v1/verify/file` answers.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// worst of the signatures
    pub indication: cms::Indication,
    /// per signature, in signing order
    pub signatures: Vec<FileSignature>,
}

/// Verify every signature of a PDF (R7.4.12): the CMS over its byte range, coverage, and whether
/// the file was changed after it other than by later signatures.
pub async fn verify_file(db: &Db, cas: &BuiltinCas, pdf: &[u8]) -> Result<FileReport> {
    let found = medsign_pdf::signatures(pdf).map_err(|e| Error::Invalid(e.to_string()))?;
    if found.is_empty() {
        return Err(Error::Invalid("该 PDF 没有签名 / the PDF has no signatures".into()));
    }
    let opts = verify_options(db, cas).await?;
    let mut out = Vec::new();
    for s in found {
        let report = cms::verify(&s.cms, Some(&s.covered), &opts).map_err(|e| {
            Error::Invalid(format!("签名 {} 无法解析 / signature {} unreadable: {e}", s.field, s.field))
        })?;
        let (indication, sub) = if s.unsigned_updates_after > 0 {
            (
                cms::Indication::TotalFailed,
                Some("签名后文件被修改 / the file was modified after this signature".to_string()),
            )
        } else {
            (report.indication, None)
        };
        out.push(FileSignature {
            field: s.field,
            sub_filter: s.sub_filter,
            whole_file: s.whole_file,
            unsigned_updates_after: s.unsigned_updates_after,
            indication,
            sub_indication: sub,
            report,
        });
    }
    let worst = if out.iter().any(|s| s.indication == cms::Indication::TotalFailed) {
        cms::Indication::TotalFailed
    } else if out.iter().any(|s| s.indication == cms::Indication::Indeterminate) {
        cms::Indication::Indeterminate
    } else {
        cms::Indication::TotalPassed
    };
    Ok(FileReport { indication: worst, signatures: out })
}

/// What `GET …/file` returns for a flow: the signed PDF of a file flow (no `signature` query), or
/// the CMS of a data flow (`signature=p7s`): (content type, file name, bytes).
pub async fn download(
    db: &Db,
    app_id: Option<&str>,
    id: &str,
    signature: Option<&str>,
) -> Result<(&'static str, String, Vec<u8>)> {
    let f = get(db, app_id, id).await?;
    let (ctype, ext) = match (f.kind.as_str(), signature) {
        ("data", Some("p7s")) => ("application/pkcs7-signature", "p7s"),
        ("file", None) => ("application/pdf", "pdf"),
        ("data", _) => {
            return Err(Error::Invalid(
                "数据签署流程请用 ?signature=p7s 下载签名 / data flows: download the signature with ?signature=p7s"
                    .into(),
            ));
        }
        _ => {
            return Err(Error::Invalid(
                "PDF 流程直接下载签署后的 PDF（不带 signature 参数）/ file flows: download the signed PDF without ?signature"
                    .into(),
            ));
        }
    };
    Ok((ctype, format!("{}.{ext}", f.doc_no), result_of(db, &f).await?))
}

/// Verify a CMS signature (R7.4.11) against the built-in roots, with the CAs' current CRLs.
pub async fn verify_data(db: &Db, cas: &BuiltinCas, signature: &[u8], data: Option<&[u8]>) -> Result<cms::CmsReport> {
    let opts = verify_options(db, cas).await?;
    cms::verify(signature, data, &opts)
        .map_err(|e| Error::Invalid(format!("签名无法解析 / the signature cannot be read: {e}")))
}

// ---- webhooks -----------------------------------------------------------------------------

async fn enqueue_event(tx: &mut sqlx::AnyConnection, flow_id: &str, event: &str) -> Result<()> {
    let r = sqlx::query("SELECT app_id, callback_url, doc_no, state FROM sign_flows WHERE id = $1")
        .bind(flow_id)
        .fetch_one(&mut *tx)
        .await?;
    let url: Option<String> = r.try_get("callback_url")?;
    let Some(url) = url else { return Ok(()) };
    let app: String = r.try_get("app_id")?;
    let doc_no: String = r.try_get("doc_no")?;
    let state: String = r.try_get("state")?;
    let id = format!("wh_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let payload = serde_json::json!({"id": id, "event": event, "flow_id": flow_id, "doc_no": doc_no, "state": state, "at": crate::now_text()});
    let now = crate::now_text();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, app_id, flow_id, event, url, payload, state, attempts, next_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(&id)
    .bind(&app)
    .bind(flow_id)
    .bind(event)
    .bind(&url)
    .bind(payload.to_string())
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The signature header value of a webhook: hex HMAC-SM3 over `timestamp "\n" body` with the
/// app's request-signing key (`apps::hmac_key` of its secret).
pub fn webhook_signature(key: &[u8], timestamp: &str, body: &str) -> String {
    hex::encode(medsign_crypto::hash::hmac_sm3(key, &[timestamp.as_bytes(), b"\n", body.as_bytes()]))
}

/// Most delivery attempts before a webhook is given up.
pub const WEBHOOK_MAX_ATTEMPTS: i64 = 10;

/// Deliver the webhooks that are due (run every couple of seconds); returns how many were
/// delivered. Failures are retried with exponential backoff (10 s · 2ⁿ, at most an hour).
pub async fn deliver_due(db: &Db, kek: &Kek, client: &reqwest::Client) -> Result<usize> {
    let now = crate::now_text();
    let rows = sqlx::query(
        "SELECT id, app_id, event, url, payload, attempts FROM webhook_deliveries WHERE state = 'pending' AND next_at <= $1 ORDER BY next_at LIMIT 20",
    )
    .bind(&now)
    .fetch_all(&db.pool)
    .await?;
    let mut delivered = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        let app: String = r.try_get("app_id")?;
        let event: String = r.try_get("event")?;
        let url: String = r.try_get("url")?;
        let payload: String = r.try_get("payload")?;
        let attempts: i64 = r.try_get::<i64, _>("attempts")? + 1;
        let ts = Utc::now().timestamp().to_string();
        let sig = match crate::apps::hmac_key_of(db, kek, &app).await {
            Ok(k) => webhook_signature(k.as_slice(), &ts, &payload),
            Err(e) => {
                tracing::warn!(delivery = %id, error = %e, "webhook without a key");
                String::new()
            }
        };
        let result = client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("X-Medsign-Event", &event)
            .header("X-Medsign-Delivery", &id)
            .header("X-Medsign-Timestamp", &ts)
            .header("X-Medsign-Signature", &sig)
            .body(payload.clone())
            .send()
            .await;
        let (ok, status, err) = match result {
            Ok(resp) => (resp.status().is_success(), Some(resp.status().as_u16() as i64), None),
            Err(e) => (false, None, Some(e.to_string())),
        };
        let _w = db.write_lock.lock().await;
        if ok {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'delivered', attempts = $1, last_status = $2, last_error = NULL, delivered_at = $3 WHERE id = $4",
            )
            .bind(attempts)
            .bind(status)
            .bind(crate::now_text())
            .bind(&id)
            .execute(&db.pool)
            .await?;
            delivered += 1;
        } else {
            let backoff = Duration::seconds((10i64 << (attempts - 1).min(9)).min(3600));
            let state = if attempts >= WEBHOOK_MAX_ATTEMPTS { "failed" } else { "pending" };
            sqlx::query(
                "UPDATE webhook_deliveries SET state = $1, attempts = $2, last_status = $3, last_error = $4, next_at = $5 WHERE id = $6",
            )
            .bind(state)
            .bind(attempts)
            .bind(status)
            .bind(err.or_else(|| status.map(|s| format!("HTTP {s}"))))
            .bind((Utc::now() + backoff).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .bind(&id)
            .execute(&db.pool)
            .await?;
        }
    }
    Ok(delivered)
}

/// A webhook delivery as the admin API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// id (also `X-Medsign-Delivery`)
    pub id: String,
    /// app
    pub app_id: String,
    /// flow
    pub flow_id: String,
    /// `flow.completed` | `flow.revoked` | `flow.failed` | `flow.timestamped`
    pub event: String,
    /// where
    pub url: String,
    /// `pending` | `delivered` | `failed`
    pub state: String,
    /// attempts so far
    pub attempts: i64,
    /// last HTTP status
    pub last_status: Option<i64>,
    /// last error
    pub last_error: Option<String>,
    /// next attempt
    pub next_at: String,
    /// delivered
    pub delivered_at: Option<String>,
}

/// Deliveries, newest first (optionally of one flow).
pub async fn deliveries(db: &Db, flow_id: Option<&str>) -> Result<Vec<Delivery>> {
    let rows = sqlx::query(
        "SELECT * FROM webhook_deliveries WHERE ($1 IS NULL OR flow_id = $1) ORDER BY created_at DESC, id LIMIT 500",
    )
    .bind(flow_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Delivery {
                id: r.try_get("id")?,
                app_id: r.try_get("app_id")?,
                flow_id: r.try_get("flow_id")?,
                event: r.try_get("event")?,
                url: r.try_get("url")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
                next_at: r.try_get("next_at")?,
                delivered_at: r.try_get("delivered_at")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::Clock, db::tests::backends};
    use std::sync::{Arc, Mutex};

    /// A local HTTP receiver for webhooks (tests only): records (headers, body); answers 500 to
    /// the first `fail_first` requests.
    async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
                let seen = seen.clone();
                let calls = calls.clone();
                async move {
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < fail_first {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    seen.lock().unwrap().push((h, body));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (format!("http://{addr}/hook"), got)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_flows_end_to_end_in_core() {
        for (_d, db) in backends().await {
            let kek = Kek::generate().unwrap();
            let ctx = Context::cli();
            let cas = crate::ca::ensure(&db, &kek, "某县人民医院").await.unwrap();
            let issuer =
                Issuer { cas: &cas, organization: "某县人民医院", public_url: "http://x", channels: None };
            let tsa = Tsa::start(
                &db,
                &kek,
                &cas,
                "某县人民医院",
                &Default::default(),
                Arc::new(Clock::synchronised_for_tests()),
            )
            .await
            .unwrap();
            let (app, token) = crate::apps::create(&db, &kek, &ctx, "HIS", &[crate::apps::Scope::Sign]).await.unwrap();
            let u = |no: &str| users::NewUser {
                employee_no: no.into(),
                name: format!("医生{no}"),
                department: None,
                title: None,
                phone: None,
                id_card: None,
                role: users::Role::Doctor,
            };
            users::create_many(&db, &kek, &ctx, &[u("1001"), u("1002")]).await.unwrap();
            // custody: authorized for 1001 only
            assert!(authorize_custody(&db, &kek, issuer, &ctx, "1001", "", "sm2").await.is_err());
            let c = authorize_custody(&db, &kek, issuer, &ctx, "1001", "院长办公会决议 2026-11", "sm2").await.unwrap();
            assert_eq!(c.employee_no, "1001");
            authorize_custody(&db, &kek, issuer, &ctx, "1001", "again: same key, same certificate", "sm2")
                .await
                .unwrap();
            authorize_custody(&db, &kek, issuer, &ctx, "1001", "RSA too", "rsa").await.unwrap();
            let (url, got) = receiver(1).await;
            let flow = |signers: serde_json::Value, extra: serde_json::Value| {
                let mut v = serde_json::json!({"kind": "data", "title": "门诊处方 No.1", "content": "Rp: 阿莫西林 0.5g tid", "signers": signers, "callback_url": url});
                v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
                serde_json::from_value::<NewFlow>(v).unwrap()
            };
            let nf = flow(serde_json::json!([{"employee_no": "1001"}, {"seal": "hospital"}]), serde_json::json!({}));
            let f = create(&db, &kek, &cas, "某县人民医院", &tsa, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
            assert_eq!(f.state, "completed");
            assert!(f.doc_no.starts_with("QM-"), "{}", f.doc_no);
            assert!(f.signers.iter().all(|s| s.state == "signed" && s.timestamp_at.is_some()), "{:?}", f.signers);
            let sig = signature_bytes(&db, Some(&app.app_id), &f.id).await.unwrap();
            let rep = verify_data(&db, &cas, &sig, Some("Rp: 阿莫西林 0.5g tid".as_bytes())).await.unwrap();
            assert!(rep.is_valid(), "{rep:?}");
            assert_eq!(rep.signers.len(), 2);
            assert!(rep.signers.iter().all(|s| s.timestamp.as_ref().is_some_and(|t| t.ok())), "{rep:?}");
            let tampered = verify_data(&db, &cas, &sig, Some(b"Rp: something else")).await.unwrap();
            assert!(!tampered.is_valid());
            // RSA, attached, JSON content
            let nf = flow(
                serde_json::json!([{"employee_no": "1001"}]),
                serde_json::json!({"alg": "rsa", "detached": false, "content": null, "content_json": {"b": 1, "a": [1, 2]}}),
            );
            let f2 = create(&db, &kek, &cas, "某县人民医院", &tsa, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
            let sig2 = signature_bytes(&db, Some(&app.app_id), &f2.id).await.unwrap();
            let rep2 = verify_data(&db, &cas, &sig2, None).await.unwrap();
            assert!(rep2.is_valid(), "{rep2:?}");
            // not the owner: not found; completed: no revoke
            assert!(matches!(get(&db, Some("app_other"), &f.id).await, Err(Error::NotFound(_))));
            assert!(matches!(
                revoke(&db, &ctx, Some(&app.app_id), &f.id, "wrong patient").await,
                Err(Error::Conflict(_))
            ));
            // bad input: unauthorized staff, unknown seal, scan mode, PDF, empty content, two contents
            for (signers, extra) in [
                (serde_json::json!([{"employee_no": "1002"}]), serde_json::json!({})),
                (serde_json::json!([{"employee_no": "9999"}]), serde_json::json!({})),
                (serde_json::json!([{"seal": "NOPE"}]), serde_json::json!({})),
                (serde_json::json!([{"seal": "hospital", "mode": "scan"}]), serde_json::json!({})),
                (serde_json::json!([{"employee_no": "1001", "mode": "wave"}]), serde_json::json!({})),
                (serde_json::json!([{"employee_no": "NOPE", "mode": "scan"}]), serde_json::json!({})),
                (
                    serde_json::json!([{"employee_no": "1001", "mode": "scan"}]),
                    serde_json::json!({"ticket_ttl_seconds": 5}),
                ),
                (serde_json::json!([{"employee_no": "1001", "field": "doctor"}]), serde_json::json!({})),
                (serde_json::json!([{"employee_no": "1001", "seal": "hospital"}]), serde_json::json!({})),
                (serde_json::json!([]), serde_json::json!({})),
                (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"kind": "file"})),
                (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"content": ""})),
                (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"content_base64": "AA=="})),
                (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"alg": "dsa"})),
                (serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({"callback_url": "ftp://x"})),
            ] {
                let nf = flow(signers.clone(), extra.clone());
                let e =
                    create(&db, &kek, &cas, "某县人民医院", &tsa, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap_err();
                assert!(matches!(e, Error::Invalid(_)), "{signers} {extra}: {e}");
            }
            // scan mode (R7.4.6): the seal signs now, the doctor's turn waits with a one-time QR ticket
            let nf = flow(
                serde_json::json!([{"seal": "hospital"}, {"employee_no": "1001", "mode": "scan"}]),
                serde_json::json!({}),
            );
            let w = create(&db, &kek, &cas, "某县人民医院", &tsa, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
            assert_eq!(w.state, "signing");
            assert_eq!(
                w.signers.iter().map(|s| (s.mode.as_str(), s.state.as_str())).collect::<Vec<_>>(),
                [("auto", "signed"), ("scan", "pending")]
            );
            let t = crate::tickets::current(&db, &w.id).await.unwrap().expect("an open ticket");
            assert_eq!(t.signer_index, 1);
            let v = crate::tickets::view("https://sign.example.org/", &t).unwrap();
            assert_eq!(v.deep_link, format!("https://sign.example.org/m/#/sign?t={}", t.id));
            assert!(v.qr_svg.contains("<svg") && !v.qr_png_base64.is_empty());
            // a renewal supersedes it; the new one redeems once, then never again
            let t2 = crate::tickets::renew(&db, &ctx, &app.app_id, &w.id, Some(120)).await.unwrap();
            let e = crate::tickets::redeem(&db, &ctx, &t.id).await.unwrap_err();
            assert!(e.to_string().contains("already used"), "{e}");
            assert_eq!(crate::tickets::redeem(&db, &ctx, &t2.id).await.unwrap().flow_id, w.id);
            assert!(crate::tickets::redeem(&db, &ctx, &t2.id).await.unwrap_err().to_string().contains("already used"));
            assert!(crate::tickets::redeem(&db, &ctx, "tk_nope").await.unwrap_err().to_string().contains("unknown"));
            // an expired ticket is refused
            let t3 = crate::tickets::renew(&db, &ctx, &app.app_id, &w.id, None).await.unwrap();
            sqlx::query("UPDATE sign_tickets SET expires_at = '2000-01-01T00:00:00Z' WHERE id = $1")
                .bind(&t3.id)
                .execute(&db.pool)
                .await
                .unwrap();
            assert!(crate::tickets::redeem(&db, &ctx, &t3.id).await.unwrap_err().to_string().contains("expired"));
            // another app cannot renew it; a completed flow has nothing to scan
            assert!(matches!(crate::tickets::renew(&db, &ctx, "other", &w.id, None).await, Err(Error::NotFound(_))));
            assert!(matches!(
                crate::tickets::renew(&db, &ctx, &app.app_id, &f.id, None).await,
                Err(Error::Conflict(_))
            ));
            let refused: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'ticket.redeem' AND outcome = 'refused'",
            )
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!(refused, 4);

            // custody revoked → refused
            revoke_custody(&db, &ctx, "1001").await.unwrap();
            let nf = flow(serde_json::json!([{"employee_no": "1001"}]), serde_json::json!({}));
            assert!(create(&db, &kek, &cas, "某县人民医院", &tsa, &ctx, &app.app_id, &nf, 1 << 20).await.is_err());
            assert!(matches!(revoke_custody(&db, &ctx, "1001").await, Err(Error::NotFound(_))));

            // the TSA out of sync: `required` fails the flow (503), `later` releases and stamps later
            let cold = Tsa::start(&db, &kek, &cas, "x", &Default::default(), Arc::new(Clock::new(&Default::default())))
                .await
                .unwrap();
            let nf = flow(serde_json::json!([{"seal": "hospital"}]), serde_json::json!({}));
            let e = create(&db, &kek, &cas, "某县人民医院", &cold, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap_err();
            assert!(matches!(e, Error::Unavailable(_)), "{e}");
            let nf = flow(serde_json::json!([{"seal": "hospital"}]), serde_json::json!({"timestamp": "later"}));
            let f3 = create(&db, &kek, &cas, "某县人民医院", &cold, &ctx, &app.app_id, &nf, 1 << 20).await.unwrap();
            assert!(f3.timestamp_pending && f3.state == "completed");
            assert_eq!(complete_pending_timestamps(&db, &cold).await.unwrap(), 0);
            assert_eq!(complete_pending_timestamps(&db, &tsa).await.unwrap(), 1);
            let f3 = get(&db, None, &f3.id).await.unwrap();
            assert!(!f3.timestamp_pending && f3.signers[0].timestamp_at.is_some());
            let rep3 = verify_data(
                &db,
                &cas,
                &signature_bytes(&db, None, &f3.id).await.unwrap(),
                Some("Rp: 阿莫西林 0.5g tid".as_bytes()),
            )
            .await
            .unwrap();
            assert!(rep3.is_valid() && rep3.signers[0].timestamp.is_some(), "{rep3:?}");

            // an unfinished flow past its expiry is closed, with its webhook
            sqlx::query(
                "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, timestamp_mode, ts_pending, callback_url, expires_at, created_at, updated_at) \
                 VALUES ('sf_old', 'QM-OLD', $1, 'data', 't', 'signing', 'sm2', 1, '', '', 'required', 0, $2, '2020-01-01T00:00:00Z', 'x', 'x')",
            )
            .bind(&app.app_id)
            .bind(&url)
            .execute(&db.pool)
            .await
            .unwrap();
            assert_eq!(get(&db, None, "sf_old").await.unwrap().state, "expired", "computed on read");
            assert_eq!(expire_due(&db).await.unwrap(), 1);
            assert_eq!(expire_due(&db).await.unwrap(), 0);
            assert!(matches!(revoke(&db, &ctx, None, "sf_old", "late").await, Err(Error::Conflict(_))));

            // webhooks: the first attempt fails (500) and is retried later; all signed with the app key
            let client = reqwest::Client::new();
            deliver_due(&db, &kek, &client).await.unwrap();
            let ds = deliveries(&db, None).await.unwrap();
            assert!(ds.iter().any(|d| d.attempts == 1 && d.state == "pending" && d.last_status == Some(500)), "{ds:?}");
            sqlx::query("UPDATE webhook_deliveries SET next_at = '1970-01-01T00:00:00.000Z' WHERE state = 'pending'")
                .execute(&db.pool)
                .await
                .unwrap();
            deliver_due(&db, &kek, &client).await.unwrap();
            let ds = deliveries(&db, None).await.unwrap();
            assert!(ds.iter().all(|d| d.state == "delivered"), "{ds:?}");
            let events: Vec<String> = ds.iter().map(|d| d.event.clone()).collect();
            for e in ["flow.completed", "flow.failed", "flow.timestamped", "flow.expired"] {
                assert!(events.contains(&e.to_string()), "{events:?}");
            }
            let key = crate::apps::hmac_key(token.split_once('.').unwrap().1);
            for (h, body) in got.lock().unwrap().iter() {
                let ts = h["x-medsign-timestamp"].to_str().unwrap();
                assert_eq!(h["x-medsign-signature"].to_str().unwrap(), webhook_signature(&key, ts, body));
            }
        }
    }
}
