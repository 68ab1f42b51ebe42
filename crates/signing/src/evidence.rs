//! Evidence reports (R1.3; issue #16 § 5): one PDF a judge can read — Chinese first, English
//! second — that says whether a signed document is valid and why:
//!
//! - page 1: the verdict (有效 / 无效 / 无法确定 with the DSS-style indication), the document (name,
//!   number, SM3 and SHA-256, size, pages) and a QR code to the online verification;
//! - every signature as the verifier reported it ([`crate::flows::verify_file`]'s `FileReport`, or
//!   [`crate::flows::verify_data`]'s `CmsReport`): signer, certificate chain, revocation,
//!   timestamp, coverage, indication. The reports are rendered from their JSON form, so a field the
//!   verifier adds later (coverage, modification findings, …) is printed without a change here —
//!   with a proper label when [`label`] knows it;
//! - for a flow, its events from the audit log (creation, tickets and scans, real-name check,
//!   approvals by PIN or fingerprint, session grants, devices, signatures and seals, with address
//!   and time), each with its sequence number and SM3 hash, and the proof that they are in the
//!   hash chain: each entry recomputed, the whole chain walked from entry 1 to the head, and the
//!   signed anchor that covers them;
//! - thumbnails of the signed PDF's pages (embedded as vector forms, not rasterised).
//!
//! The report is sealed with the hospital's **RSA** organisation seal ([`SEAL_ALG`]; the
//! certificate the flows' `{"seal": "hospital"}` signers use, issued by the built-in RSA CA) as a
//! certification signature (DocMDP P=1: any later change breaks it) with an RFC 3161 signature
//! timestamp from the built-in TSA — RSA so that any PDF reader and pyHanko can check the report
//! itself. Generating a report is audited (`evidence.report`, with the report's SM3).

use crate::flows::{self, FileReport, FlowView, Signing};
use crate::model::{FlowKind, FlowState, SignerKind};
use chrono::{DateTime, Utc};
use medsign_ca::certs;
use medsign_crypto::hash::{sha256, sm3};
use medsign_pdf::report::{Layout, Op, ink};
use medsign_pki::cms::{self, Indication, Parsed};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Entry, Kind},
    db::Db,
};
use serde_json::Value;
use sqlx::Row;

/// The algorithm of the seal on reports: RSA, which every PDF reader and pyHanko can check.
pub const SEAL_ALG: &str = "rsa";
/// The online verification page the QR code points to, under the server's public URL.
pub const VERIFY_PATH: &str = "/verify";
/// The largest document (PDF or CMS, and a CMS's content) a report is made for.
pub const MAX_INPUT_BYTES: usize = 32 << 20;
/// Pages shown as thumbnails (the rest are listed with their sizes).
pub const MAX_THUMBNAILS: usize = 24;
/// Audit entries listed for one flow.
pub const MAX_EVENTS: usize = 400;

/// A sealed report.
#[derive(Debug, Clone)]
pub struct Report {
    /// the sealed PDF
    pub pdf: Vec<u8>,
    /// a file name for it
    pub file_name: String,
    /// the verdict on the document
    pub indication: Indication,
}

/// What the verifier said about the document.
#[derive(Debug, Clone)]
pub enum Verified {
    /// a signed PDF
    File(FileReport),
    /// a CMS signature (over `content` when given)
    Data(cms::CmsReport),
}

impl Verified {
    /// The overall indication.
    pub fn indication(&self) -> Indication {
        match self {
            Verified::File(r) => r.indication,
            Verified::Data(r) => r.indication,
        }
    }
}

/// Everything a report shows, gathered before anything is drawn.
#[derive(Debug, Clone)]
pub struct Subject {
    /// what the document is (a flow's title, an upload's name)
    pub title: String,
    /// the flow, for a flow's report
    pub flow: Option<FlowView>,
    /// the signed PDF, or the CMS
    pub file: Vec<u8>,
    /// the CMS's content, when known
    pub content: Option<Vec<u8>>,
    /// the verification
    pub verified: Verified,
    /// the flow's audit entries, in order
    pub events: Vec<Entry>,
    /// the proof that they are in the audit chain
    pub proof: Option<Proof>,
    /// where the QR code points
    pub verify_url: String,
    /// when the report is made
    pub at: DateTime<Utc>,
    /// the sealing certificate's subject (for the closing statement)
    pub sealed_by: String,
}

/// Whether the audit entries of a report are in the hash chain.
#[derive(Debug, Clone)]
pub struct Proof {
    /// the chain walked from entry 1 to the head
    pub chain: audit::ChainReport,
    /// the first signed anchor covering the last listed entry
    pub anchor: Option<audit::Anchor>,
    /// entries whose stored hash is not what their fields give
    pub mismatched: Vec<i64>,
}

/// The report of a completed flow (`app_id` None: no owner check). An unknown flow, or one of
/// another app, is `NotFound`; a flow not completed is `Conflict`.
pub async fn for_flow(
    sg: &Signing<'_>,
    ctx: &Context,
    app_id: Option<&str>,
    id: &str,
    public_url: &str,
) -> Result<Report> {
    let db = sg.db;
    let f = flows::get(db, app_id, id).await?;
    if f.state != FlowState::Completed {
        return Err(Error::Conflict(format!(
            "流程 {} 尚未完成（{}），还没有可出具报告的签署结果 / the flow is not completed ({}): nothing signed to report on",
            f.doc_no, f.state, f.state
        )));
    }
    let file = flows::signature_bytes(db, app_id, id).await?;
    let (verified, content) = match f.kind {
        FlowKind::File => (Verified::File(flows::verify_file(db, sg.cas, &file).await?), None),
        FlowKind::Data => {
            let content = flows::stored(db, id).await?.content;
            let rep = flows::verify_data(db, sg.cas, &file, f.detached.then_some(content.as_slice())).await?;
            (Verified::Data(rep), Some(content))
        }
    };
    let events = flow_events(db, &f).await?;
    let proof = Some(proof(db, &events).await?);
    let sealed_by = seal_subject(sg, ctx).await?;
    let subject = Subject {
        title: f.title.clone(),
        verify_url: verify_url(public_url, &file, Some(&f.doc_no)),
        flow: Some(f),
        file,
        content,
        verified,
        events,
        proof,
        at: Utc::now(),
        sealed_by,
    };
    finish(sg, ctx, subject, &format!("flow:{id}")).await
}

/// The report of an uploaded signed PDF, or a CMS signature (with its content when detached).
/// Bad input is `Invalid`.
pub async fn for_upload(
    sg: &Signing<'_>,
    ctx: &Context,
    file: &[u8],
    content: Option<&[u8]>,
    name: Option<&str>,
    public_url: &str,
) -> Result<Report> {
    if file.is_empty() {
        return Err(Error::Invalid("文件为空 / the file is empty".into()));
    }
    if file.len() > MAX_INPUT_BYTES || content.is_some_and(|c| c.len() > MAX_INPUT_BYTES) {
        return Err(Error::Invalid(format!(
            "文件超过 {} MB / the file exceeds {} MB",
            MAX_INPUT_BYTES >> 20,
            MAX_INPUT_BYTES >> 20
        )));
    }
    let name = name.map(str::trim).filter(|n| !n.is_empty()).map(|n| n.chars().take(200).collect::<String>());
    let (verified, content) = if file.starts_with(b"%PDF-") {
        if content.is_some() {
            return Err(Error::Invalid(
                "PDF 自带签名内容，不需要 data / a PDF carries what it signs: leave out data".into(),
            ));
        }
        (Verified::File(flows::verify_file(sg.db, sg.cas, file).await?), None)
    } else {
        let parsed = Parsed::from_bytes(file).map_err(|_| {
            Error::Invalid(
                "文件既不是 PDF，也不是 CMS/PKCS#7 签名（DER 或 PEM）/ the file is neither a PDF nor a CMS/PKCS#7 signature (DER or PEM)"
                    .into(),
            )
        })?;
        let embedded = parsed.content().ok().flatten();
        if embedded.is_none() && content.is_none() {
            return Err(Error::Invalid(
                "分离式签名须同时上传原文（data）/ a detached signature needs its content (data)".into(),
            ));
        }
        let rep = flows::verify_data(sg.db, sg.cas, file, content).await?;
        (Verified::Data(rep), content.map(<[u8]>::to_vec).or(embedded))
    };
    let sealed_by = seal_subject(sg, ctx).await?;
    let subject = Subject {
        title: name.unwrap_or_else(|| "上传的文件 / uploaded file".into()),
        verify_url: verify_url(public_url, file, None),
        flow: None,
        file: file.to_vec(),
        content,
        verified,
        events: vec![],
        proof: None,
        at: Utc::now(),
        sealed_by,
    };
    finish(sg, ctx, subject, "evidence:upload").await
}

/// `{public_url}/verify?sm3=…[&doc=…]`: the online verification of the document.
pub fn verify_url(public_url: &str, file: &[u8], doc_no: Option<&str>) -> String {
    let mut u = format!("{}{VERIFY_PATH}?sm3={}", public_url.trim_end_matches('/'), hex::encode(sm3(file)));
    if let Some(d) = doc_no {
        let safe: String = d.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        u.push_str(&format!("&doc={safe}"));
    }
    u
}

async fn seal_subject(sg: &Signing<'_>, ctx: &Context) -> Result<String> {
    let (cert, _) = certs::seal_signer(sg.db, sg.kek, sg.cas, sg.organization, ctx, None, SEAL_ALG).await?;
    Ok(cert.subject_display())
}

/// Lay out, draw, seal, audit.
async fn finish(sg: &Signing<'_>, ctx: &Context, s: Subject, target: &str) -> Result<Report> {
    let layout = layout(&s);
    let title = format!("电子签名验证报告 / Evidence report — {}", s.title);
    let footer = format!("medsign 电子签名验证报告 / evidence report · {}", medsign_pki::time::display_cst(s.at));
    let pdf = draw(&layout, &title, &footer, &s)?;
    let sealed = seal(sg, ctx, &pdf, &s.title).await?;
    let indication = s.verified.indication();
    let details = serde_json::json!({
        "document_sm3": hex::encode(sm3(&s.file)),
        "report_sm3": hex::encode(sm3(&sealed)),
        "indication": indication,
        "events": s.events.len(),
    });
    audit::record(
        sg.db,
        ctx,
        &audit::Event { kind: Kind::Signing, action: "evidence.report", target, outcome: "ok", details },
    )
    .await?;
    let stem = s.flow.as_ref().map_or_else(|| "evidence".to_string(), |f| f.doc_no.clone());
    Ok(Report { pdf: sealed, file_name: format!("{stem}-evidence.pdf"), indication })
}

/// Draw with thumbnails of the PDF's pages; without them when the PDF cannot be embedded (a
/// newer PDF version, a structure the embedder refuses — or panics on: the input may be
/// anyone's upload).
fn draw(layout: &Layout, title: &str, footer: &str, s: &Subject) -> Result<Vec<u8>> {
    let has_thumbs = layout.pages().iter().flatten().any(|o| matches!(o, Op::Thumb { .. }));
    if has_thumbs && matches!(s.verified, Verified::File(_)) {
        let file = s.file.clone();
        let l = layout.clone();
        let (t, f) = (title.to_string(), footer.to_string());
        if let Ok(Ok(pdf)) = std::panic::catch_unwind(move || l.finish(&t, &f, Some(&file))) {
            return Ok(pdf);
        }
        tracing::warn!("evidence report: the document's pages could not be embedded as thumbnails");
    }
    let mut plain = layout.clone();
    plain.drop_thumbnails();
    plain.finish(title, footer, None).map_err(|e| Error::internal_from("evidence::draw", e))
}

/// Sign the report with the hospital's RSA seal: a certification signature (no changes allowed)
/// with a signature timestamp.
async fn seal(sg: &Signing<'_>, ctx: &Context, pdf: &[u8], title: &str) -> Result<Vec<u8>> {
    let (cert, key) = certs::seal_signer(sg.db, sg.kek, sg.cas, sg.organization, ctx, None, SEAL_ALG).await?;
    let opts = medsign_pdf::SignOptions {
        field_name: "medsign-evidence-seal".into(),
        placement: None,
        appearance: Default::default(),
        name: Some(cert.subject_display()),
        reason: Some(format!("电子签名验证报告 / evidence report: {}", title.chars().take(100).collect::<String>())),
        time: Utc::now(),
        reserve: 24 * 1024,
        certify: Some(1),
    };
    let prepared = medsign_pdf::prepare(pdf, &opts).map_err(|e| Error::internal_from("evidence::seal", e))?;
    let der = flows::pades_cms(&prepared.covered(), &key, &cert, std::slice::from_ref(&sg.cas.rsa.issuing))?;
    let mut parsed = Parsed::from_bytes(&der).map_err(|e| Error::internal_from("evidence::seal", e))?;
    flows::add_timestamps(sg.tsa, &mut parsed, SEAL_ALG, "evidence").await?;
    prepared
        .finish(&parsed.to_der().map_err(|e| Error::internal_from("evidence::seal", e))?)
        .map_err(|e| Error::internal_from("evidence::seal", e))
}

// ---- the flow's events ----------------------------------------------------------------------

async fn entries(db: &Db, f: audit::Filter) -> Result<Vec<Entry>> {
    Ok(audit::query(db, &f).await?.0)
}

fn by_target(target: String, size: i64) -> audit::Filter {
    audit::Filter { target: Some(target), page_size: Some(size), ..Default::default() }
}

fn details(e: &Entry) -> Value {
    serde_json::from_str(&e.details).unwrap_or(Value::Null)
}

/// An instant one second after `t` (RFC 3339), for an inclusive upper bound.
fn just_after(t: &str) -> Option<String> {
    let t = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc) + chrono::Duration::seconds(1);
    Some(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// What the audit log holds about a flow: its own entries (creation, tickets, phone co-signing,
/// signatures and seals, revocation …), its tickets' scans, and for each staff signer the
/// real-name check, the approval (PIN or fingerprint), session grant, device activation and
/// key enrolment that led to the signature. In chain order.
pub async fn flow_events(db: &Db, f: &FlowView) -> Result<Vec<Entry>> {
    let mut out = entries(db, by_target(format!("flow:{}", f.id), MAX_EVENTS as i64)).await?;
    let tickets = sqlx::query("SELECT id FROM sign_tickets WHERE flow_id = $1").bind(&f.id).fetch_all(&db.pool).await?;
    for t in tickets.iter().take(20) {
        let id: String = t.try_get("id")?;
        // the target keeps the id's first 11 characters: keep the scans of this flow (or refused)
        let scans = entries(db, by_target(format!("ticket:{}", id.chars().take(11).collect::<String>()), 20)).await?;
        out.extend(scans.into_iter().filter(|e| {
            let d = details(e);
            d["flow"] == f.id.as_str() || d["flow"].is_null()
        }));
    }
    let signs: Vec<Value> = out.iter().filter(|e| e.action == "flow.sign").map(details).collect();
    for s in f.signers.iter().filter(|s| s.kind == SignerKind::Staff) {
        let Some(signed_at) = s.signed_at.as_deref() else { continue };
        let to = just_after(signed_at);
        let user = format!("user:{}", s.subject_ref);
        let signer = format!("staff:{}", s.subject_ref);
        let d = signs.iter().find(|d| d["signer"] == signer.as_str()).cloned().unwrap_or(Value::Null);
        let of = |action: &str, from: Option<String>, size: i64| audit::Filter {
            target: Some(user.clone()),
            action: Some(action.into()),
            from,
            to: to.clone(),
            page_size: Some(size),
            ..Default::default()
        };
        // the latest real-name check before the signature
        if let Some(e) = entries(db, of("realname.verify", None, 5)).await?.into_iter().find(|e| e.outcome == "ok") {
            out.push(e);
        }
        // approvals on the phone between the flow's creation and the signature: the one used is
        // the last that passed; refused attempts in between are shown too
        if d["custody"] == "two-party" || d["custody"] == "grant" {
            let mut approvals = Vec::new();
            for a in ["pin.verify", "soter.unlock"] {
                approvals.extend(entries(db, of(a, Some(f.created_at.clone()), 20)).await?);
            }
            approvals.sort_by_key(|e| e.seq);
            if let Some(last_ok) = approvals.iter().rposition(|e| e.outcome == "ok") {
                out.extend(approvals.into_iter().take(last_ok + 1).rev().take(10));
            }
        }
        // the session grant it signed under, the device and the key
        if let Some(g) = d["grant"].as_str().or(s.grant_id.as_deref()) {
            let found = entries(db, of("grant.create", None, 200)).await?;
            out.extend(found.into_iter().filter(|e| details(e)["grant"] == g).take(1));
        }
        if let Some(dev) = d["device"].as_str() {
            let found = entries(db, of("device.activate", None, 50)).await?;
            out.extend(found.into_iter().filter(|e| details(e)["device"] == dev).take(1));
        }
        if let Some(k) = d["key"].as_str() {
            let found = entries(db, of("key.two_party.generate", None, 50)).await?;
            out.extend(found.into_iter().filter(|e| details(e)["key"] == k).take(1));
        }
    }
    out.sort_by_key(|e| e.seq);
    out.dedup_by_key(|e| e.seq);
    out.truncate(MAX_EVENTS);
    Ok(out)
}

/// The proof for `events`: each recomputed, the chain walked to its head, and the first signed
/// anchor at or after the last of them.
pub async fn proof(db: &Db, events: &[Entry]) -> Result<Proof> {
    let chain = audit::verify_chain(db).await?;
    let mismatched = events.iter().filter(|e| e.compute_hash() != e.hash).map(|e| e.seq).collect();
    let last = events.iter().map(|e| e.seq).max().unwrap_or(0);
    let anchor = sqlx::query("SELECT * FROM audit_anchors WHERE seq >= $1 ORDER BY id LIMIT 1")
        .bind(last)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| {
            Ok::<_, Error>(audit::Anchor {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                seq: r.try_get("seq")?,
                head_hash: r.try_get("head_hash")?,
                signature: r.try_get("signature")?,
                prev: r.try_get("prev")?,
            })
        })
        .transpose()?;
    Ok(Proof { chain, anchor, mismatched })
}

// ---- rendering ------------------------------------------------------------------------------

/// Chinese / English label of an indication.
pub fn verdict(i: Indication) -> (&'static str, &'static str, [u8; 3]) {
    match i {
        Indication::TotalPassed => ("有效", "VALID — TOTAL_PASSED", ink::GREEN),
        Indication::TotalFailed => ("无效", "INVALID — TOTAL_FAILED", ink::RED),
        Indication::Indeterminate => ("无法确定", "INDETERMINATE", ink::AMBER),
    }
}

/// The label of a field of the verifier's reports (Chinese / English); unknown keys are shown
/// as they are, so fields added later are printed before anyone names them here.
pub fn label(key: &str) -> String {
    let known = match key {
        "field" => "签名域 / field",
        "sub_filter" => "签名格式 / SubFilter",
        "whole_file" => "覆盖整个文件 / covers the whole file",
        "unsigned_updates_after" => "签名后的非签名更新 / unsigned updates after it",
        "indication" => "结论 / indication",
        "sub_indication" => "子结论 / sub-indication",
        "covers" | "coverage" => "覆盖范围 / what it covers",
        "modifications" | "changes" | "findings" => "签名后的修改 / modifications after signing",
        "revision" => "修订版本 / revision",
        "docmdp" | "certification" | "certify" => "认证级别 / certification (DocMDP)",
        "subject" => "签署人 / signer",
        "serial" => "证书序列号 / certificate serial",
        "algorithm" => "签名算法 / algorithm",
        "sm2_id" => "SM2 用户标识 / SM2 ID",
        "signing_time" => "声明的签署时间 / claimed signing time",
        "integrity" => "完整性 / integrity",
        "chain" => "证书链 / certificate chain",
        "revocation" => "吊销状态 / revocation",
        "validated_at" => "验证时点 / validated at",
        "timestamp" => "签名时间戳 / signature timestamp",
        "time" => "时间 / time",
        "accuracy_us" => "精度（微秒）/ accuracy (µs)",
        "tsa" => "时间戳机构 / TSA",
        "oid_style" => "OID 风格 / OID style",
        "content_type" => "内容类型 / content type",
        "detached" => "分离式 / detached",
        "object" => "对象 / object",
        "page" => "页 / page",
        "kind" => "类别 / kind",
        "reason" => "原因 / reason",
        "allowed" => "允许 / allowed",
        "byte_range" => "签名字节范围 / ByteRange",
        "problems" => "文件问题 / problems of the file",
        "revisions" => "修订版本列表 / revisions",
        "dss" => "长期验证数据 / long-term validation data (DSS)",
        "end" => "结束位置 / ends at byte",
        "start" => "起始位置 / starts at byte",
        "xref" => "交叉引用 / xref",
        "complete" => "以 %%EOF 结束 / ends with %%EOF",
        "signatures" => "签名 / signatures",
        "certs" => "证书 / certificates",
        "crls" => "CRL",
        "ocsps" => "OCSP 响应 / OCSP responses",
        "vri" => "VRI 条目 / VRI entries",
        _ => return key.to_string(),
    };
    known.to_string()
}

/// A JSON value of a report as one line of text (objects `{ok, detail}` as passed / failed).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::Bool(true) => "是 / yes".into(),
        Value::Bool(false) => "否 / no".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => match s.as_str() {
            "TOTAL_PASSED" | "TOTAL_FAILED" | "INDETERMINATE" => {
                let (zh, en, _) = verdict(match s.as_str() {
                    "TOTAL_PASSED" => Indication::TotalPassed,
                    "TOTAL_FAILED" => Indication::TotalFailed,
                    _ => Indication::Indeterminate,
                });
                format!("{zh} / {en}")
            }
            _ => match DateTime::parse_from_rfc3339(s) {
                Ok(t) => format!("{}（{s}）", medsign_pki::time::display_cst(t.with_timezone(&Utc))),
                Err(_) => s.clone(),
            },
        },
        Value::Object(o) if o.get("ok").is_some_and(Value::is_boolean) => {
            let ok = o["ok"].as_bool().unwrap_or(false);
            let detail = o.get("detail").and_then(Value::as_str).unwrap_or("");
            format!("{}：{detail}", if ok { "通过 / passed" } else { "未通过 / failed" })
        }
        Value::Object(o) => o
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{}: {}", label(k), describe(v)))
            .collect::<Vec<_>>()
            .join("；"),
        Value::Array(a) if a.is_empty() => "无 / none".into(),
        Value::Array(a) => a.iter().map(describe).collect::<Vec<_>>().join("\n"),
    }
}

fn color_of(v: &Value) -> [u8; 3] {
    match v {
        Value::Object(o) if o.get("ok") == Some(&Value::Bool(false)) => ink::RED,
        Value::String(s) if s == "TOTAL_FAILED" => ink::RED,
        Value::String(s) if s == "INDETERMINATE" => ink::AMBER,
        Value::String(s) if s == "TOTAL_PASSED" => ink::GREEN,
        _ => ink::TEXT,
    }
}

/// Print the fields of `obj`: `first` in that order, then every other non-null field except
/// `skip` (nested reports shown elsewhere).
fn fields(l: &mut Layout, obj: &Value, first: &[&str], skip: &[&str]) {
    let Some(o) = obj.as_object() else { return };
    let rest = o.keys().filter(|k| !first.contains(&k.as_str()) && !skip.contains(&k.as_str()));
    for k in first.iter().copied().filter(|k| o.contains_key(*k)).chain(rest.map(String::as_str).collect::<Vec<_>>()) {
        let v = &o[k];
        if v.is_null() {
            continue;
        }
        l.field_colored(&label(k), &describe(v), color_of(v));
    }
}

const SIGNER_FIRST: &[&str] =
    &["subject", "serial", "algorithm", "sm2_id", "indication", "sub_indication", "integrity", "chain", "revocation"];

fn signer(l: &mut Layout, s: &Value, certs: &[medsign_pki::cert::Cert]) {
    fields(l, s, SIGNER_FIRST, &["timestamp", "signing_time", "validated_at"]);
    if let Some(t) = s.get("timestamp").filter(|t| !t.is_null()) {
        fields(l, t, &["time", "tsa", "accuracy_us", "integrity", "chain"], &[]);
    } else {
        l.field_colored(&label("timestamp"), "无 / none", ink::AMBER);
    }
    for k in ["signing_time", "validated_at"] {
        if let Some(v) = s.get(k).filter(|v| !v.is_null()) {
            l.field(&label(k), &describe(v));
        }
    }
    // the certificates the signature carries, from the signer's up
    let serial = s.get("serial").and_then(Value::as_str).unwrap_or("");
    let mut chain: Vec<&medsign_pki::cert::Cert> = Vec::new();
    let mut next = certs.iter().find(|c| c.serial_hex().eq_ignore_ascii_case(serial));
    while let Some(c) = next {
        if chain.len() > 8 || chain.iter().any(|x| x.der() == c.der()) {
            break;
        }
        chain.push(c);
        next = certs.iter().find(|i| i.subject() == c.issuer() && i.der() != c.der());
    }
    for (i, c) in chain.iter().enumerate() {
        l.field(
            &format!("证书 {} / certificate {}", i + 1, i + 1),
            &format!(
                "{}\n颁发者 / issuer: {}\n序列号 / serial: {}\n有效期 / valid: {} — {}\nSM3 指纹 / fingerprint: {}",
                c.subject_display(),
                c.issuer_display(),
                c.serial_hex(),
                c.not_before().format("%Y-%m-%d"),
                c.not_after().format("%Y-%m-%d"),
                c.fingerprint_sm3()
            ),
        );
    }
}

/// The certificates in a CMS (empty when it cannot be read).
fn certs_of(cms_der: &[u8]) -> Vec<medsign_pki::cert::Cert> {
    Parsed::from_bytes(cms_der).map(|p| p.certificates()).unwrap_or_default()
}

/// Chinese / English name of an audit action.
pub fn action_label(action: &str) -> String {
    let zh = match action {
        "flow.create" => "创建签署流程 / flow created",
        "flow.sign" => "签署 / signed",
        "seal.use" => "加盖电子印章 / seal applied",
        "ticket.open" => "生成扫码签署二维码 / QR ticket issued",
        "ticket.redeem" => "扫码 / ticket scanned",
        "flow.cosign.start" => "手机开始协同签名 / phone started co-signing",
        "flow.cosign.answer" => "手机协同签名应答 / co-signing answered",
        "flow.cosign.finish" => "手机协同签名完成 / co-signing finished",
        "pin.verify" => "PIN 验证（批准）/ PIN approval",
        "soter.unlock" => "指纹验证（批准）/ fingerprint approval",
        "realname.verify" => "实名认证 / real-name check",
        "grant.create" => "会话授权 / session grant",
        "grant.cancel" => "取消会话授权 / grant cancelled",
        "device.activate" => "手机激活 / phone activated",
        "key.two_party.generate" => "协同签名密钥生成 / two-party key enrolled",
        "flow.revoke" => "撤销 / revoked",
        "flow.expire" => "过期 / expired",
        "flow.fail" => "失败 / failed",
        "evidence.report" => "出具证据报告 / evidence report",
        _ => return action.to_string(),
    };
    zh.to_string()
}

fn event(l: &mut Layout, e: &Entry) {
    let at = DateTime::parse_from_rfc3339(&e.at)
        .map(|t| medsign_pki::time::display_cst(t.with_timezone(&Utc)))
        .unwrap_or_else(|_| e.at.clone());
    let outcome = if e.outcome == "ok" { "成功 / ok".to_string() } else { format!("未成功 / {}", e.outcome) };
    l.need(60.0);
    l.text_in(0.0, Layout::width(), &format!("#{}  {}  {}", e.seq, action_label(&e.action), at), 9.5, ink::HEAD);
    l.field("操作者 / actor", &e.actor);
    l.field_colored("结果 / outcome", &outcome, if e.outcome == "ok" { ink::TEXT } else { ink::AMBER });
    l.field("对象 / target", &e.target);
    let d = details(e);
    if d.as_object().is_some_and(|o| !o.is_empty()) {
        l.field("详情 / details", &describe(&d));
    }
    l.field("地址与终端 / address, client", &format!("{}  {}", e.ip, e.user_agent));
    l.field("哈希 / hash (SM3)", &format!("{}\n前一条 / previous: {}", e.hash, e.prev_hash));
    l.gap(4.0);
}

/// Lay the report out (pure: everything was gathered before).
pub fn layout(s: &Subject) -> Layout {
    let mut l = Layout::new();
    let qr_side = 104.0;
    let text_w = Layout::width() - qr_side - 14.0;
    let top = l.y();
    if let Ok(code) = qrcode::QrCode::with_error_correction_level(s.verify_url.as_bytes(), qrcode::EcLevel::M) {
        let n = code.width();
        let modules: Vec<bool> = code.to_colors().iter().map(|c| *c == qrcode::Color::Dark).collect();
        l.qr_at(medsign_pdf::report::A4.0 - medsign_pdf::report::MARGIN - qr_side, top, qr_side, &modules, n);
    }
    l.text_in(0.0, text_w, "电子签名验证报告", 20.0, ink::HEAD);
    l.text_in(0.0, text_w, "Electronic signature evidence report", 11.0, ink::MUTED);
    l.gap(4.0);
    l.text_in(0.0, text_w, &s.title, 11.0, ink::TEXT);
    l.text_in(0.0, text_w, &format!("出具时间 / issued: {}", medsign_pki::time::display_cst(s.at)), 8.5, ink::MUTED);
    l.gap(8.0);
    let ind = s.verified.indication();
    let (zh, en, color) = verdict(ind);
    let n_sigs = match &s.verified {
        Verified::File(r) => r.signatures.len(),
        Verified::Data(r) => r.signers.len(),
    };
    let why = match ind {
        Indication::TotalPassed => format!(
            "{n_sigs} 个签名全部验证通过：内容未被改动，签署人证书可信且未吊销，带可信时间戳 / all {n_sigs} signatures verify: content unchanged, signer certificates trusted and not revoked, trusted timestamps"
        ),
        Indication::TotalFailed => "至少一个签名无效，或文件在签名后被修改（见各签名）/ at least one signature is invalid, or the file was changed after signing (see each signature)".into(),
        Indication::Indeterminate => "签名完整，但无法确认信任（证书链、吊销或时间戳）（见各签名）/ signatures intact, but trust could not be established (chain, revocation or timestamp; see each signature)".into(),
    };
    l.banner(&format!("验证结论：{zh}"), &format!("Verdict: {en}\n{why}"), color, text_w);
    // the QR code's caption under it, right column
    let cap_y = top + qr_side + 10.0;
    l.place(Op::Text {
        x: medsign_pdf::report::A4.0 - medsign_pdf::report::MARGIN - qr_side,
        y: cap_y,
        size: 6.5,
        text: "扫码在线验证 / scan to verify online".into(),
        color: ink::MUTED,
    });
    if l.y() < cap_y + 8.0 {
        l.gap(cap_y + 8.0 - l.y());
    }
    if let Some(p) = &s.proof
        && (p.chain.broken.is_some() || !p.mismatched.is_empty())
    {
        l.paragraph(
            "警告：审计链验证未通过，下列事件记录的可信度受影响（见“审计链证明”）/ Warning: the audit chain does not verify; the events below are affected (see the proof)",
            9.5,
            ink::RED,
        );
    }

    // the document
    l.heading("文档 / Document");
    if let Some(f) = &s.flow {
        l.field("文档编号 / document no.", &f.doc_no);
        l.field("标题 / title", &f.title);
        l.field("签署流程 / signing flow", &format!("{}（{}，{}）", f.id, f.state, f.alg));
        l.field("创建时间 / created", &describe(&Value::String(f.created_at.clone())));
        if let Some(t) = &f.template_id {
            l.field("模板 / template", &format!("{t} v{}", f.template_version.unwrap_or_default()));
        }
        l.field("原文 SM3 / content SM3", &f.content_sm3);
    } else {
        l.field("名称 / name", &s.title);
    }
    let what = match s.verified {
        Verified::File(_) => "签署后的 PDF / the signed PDF",
        Verified::Data(_) => "CMS 签名（PKCS#7）/ the CMS signature",
    };
    l.field("验证的文件 / file verified", what);
    l.field("SM3", &hex::encode(sm3(&s.file)));
    l.field("SHA-256", &hex::encode(sha256(&s.file)));
    l.field("大小 / size", &format!("{} 字节 / bytes", s.file.len()));
    let sizes = match s.verified {
        Verified::File(_) => medsign_pdf::report::page_sizes(&s.file).unwrap_or_default(),
        Verified::Data(_) => vec![],
    };
    if !sizes.is_empty() {
        l.field("页数 / pages", &sizes.len().to_string());
    }
    if let Some(c) = &s.content {
        l.field("原文 SM3 / content SM3", &hex::encode(sm3(c)));
        l.field("原文 SHA-256 / content SHA-256", &hex::encode(sha256(c)));
        l.field("原文大小 / content size", &format!("{} 字节 / bytes", c.len()));
        if let Ok(text) = std::str::from_utf8(c) {
            let shown: String = text.chars().take(600).collect();
            let more = if shown.len() < text.len() { "…" } else { "" };
            l.field("原文 / content", &format!("{shown}{more}"));
        }
    }
    l.field("在线验证 / online verification", &s.verify_url);

    // the signers as the flow recorded them
    if let Some(f) = &s.flow {
        l.heading("签署人 / Signers (flow record)");
        for sv in &f.signers {
            let mut v = format!("{}:{} · {} · {}", sv.kind, sv.subject_ref, sv.mode, sv.state);
            if let Some(c) = &sv.custody {
                v.push_str(&format!(" · 密钥 / key: {c}"));
            }
            if let Some(g) = &sv.grant_id {
                v.push_str(&format!(" · 授权 / grant: {g}"));
            }
            if let Some(c) = &sv.cert_serial {
                v.push_str(&format!("\n证书 / certificate: {c}"));
            }
            if let Some(t) = &sv.signed_at {
                v.push_str(&format!("\n签署 / signed: {}", describe(&Value::String(t.clone()))));
            }
            if let Some(t) = &sv.timestamp_at {
                v.push_str(&format!("\n时间戳 / timestamp: {}", describe(&Value::String(t.clone()))));
            }
            l.field(&format!("第 {} 位 / #{}", sv.index + 1, sv.index + 1), &v);
        }
    }

    // every signature, as the verifier reported it
    match &s.verified {
        Verified::File(r) => {
            let found = medsign_pdf::signatures(&s.file).unwrap_or_default();
            let v = serde_json::to_value(r).unwrap_or(Value::Null);
            let sigs = v["signatures"].as_array().cloned().unwrap_or_default();
            for (i, sig) in sigs.iter().enumerate() {
                l.heading(&format!("签名 {} / Signature {} of {}", i + 1, i + 1, sigs.len()));
                fields(
                    &mut l,
                    sig,
                    &[
                        "field",
                        "kind",
                        "indication",
                        "sub_indication",
                        "reason",
                        "revision",
                        "covers",
                        "changes",
                        "certification",
                        "sub_filter",
                        "whole_file",
                    ],
                    &["report"],
                );
                let name = sig["field"].as_str().unwrap_or("");
                let certs = found.iter().find(|f| f.field == name).map(|f| certs_of(&f.cms)).unwrap_or_default();
                let rep = &sig["report"];
                fields(&mut l, rep, &["content_type", "oid_style"], &["signers", "indication", "detached"]);
                for sg in rep["signers"].as_array().into_iter().flatten() {
                    signer(&mut l, sg, &certs);
                }
            }
            l.heading("文件结构 / Structure of the file");
            fields(&mut l, &v, &["problems", "revisions", "dss"], &["signatures", "indication"]);
        }
        Verified::Data(r) => {
            let certs = certs_of(&s.file);
            let v = serde_json::to_value(r).unwrap_or(Value::Null);
            let sigs = v["signers"].as_array().cloned().unwrap_or_default();
            l.heading("CMS 签名 / CMS signature");
            fields(&mut l, &v, &["indication", "content_type", "detached", "oid_style"], &["signers"]);
            for (i, sg) in sigs.iter().enumerate() {
                l.heading(&format!("签名 {} / Signature {} of {}", i + 1, i + 1, sigs.len()));
                signer(&mut l, sg, &certs);
            }
        }
    }

    // the flow's events and the proof that they are in the audit chain
    if s.flow.is_some() {
        l.heading("流程事件（审计日志）/ Events of the flow (audit log)");
        l.paragraph(
            "以下记录取自平台的审计日志（只追加，SM3 哈希链）：创建、扫码、实名认证、手机批准（PIN 或指纹）、会话授权、设备、签署与盖章，含地址与时间（北京时间）。/ From the platform's append-only, SM3-hash-chained audit log: creation, scans, real-name check, approvals on the phone (PIN or fingerprint), grants, devices, signatures and seals, with address and time (UTC+8).",
            8.5,
            ink::MUTED,
        );
        l.gap(4.0);
        if s.events.is_empty() {
            l.paragraph("没有记录 / no entries", 9.0, ink::AMBER);
        }
        for e in &s.events {
            event(&mut l, e);
        }
        if let Some(p) = &s.proof {
            proof_section(&mut l, p, &s.events);
        }
    }

    // the pages
    if !sizes.is_empty() {
        l.heading("页面 / Pages");
        let shown = sizes.len().min(MAX_THUMBNAILS);
        l.paragraph(
            &format!(
                "签署后文件各页内容的缩略图（矢量嵌入，不含签名外观控件）；共 {} 页{}。/ Thumbnails of the signed file's page content (embedded as vectors; signature widgets not drawn); {} pages{}.",
                sizes.len(),
                if shown < sizes.len() { format!("，前 {shown} 页如下") } else { String::new() },
                sizes.len(),
                if shown < sizes.len() { format!(", the first {shown} shown") } else { String::new() },
            ),
            8.5,
            ink::MUTED,
        );
        l.gap(4.0);
        l.thumbnails(&sizes[..shown], 4);
        if shown < sizes.len() {
            let rest: Vec<String> = sizes[shown..]
                .iter()
                .enumerate()
                .map(|(i, (w, h))| format!("第 {} 页 / p. {}: {w:.0}×{h:.0} pt", shown + i + 1, shown + i + 1))
                .collect();
            l.paragraph(&rest.join("；"), 8.0, ink::MUTED);
        }
    }

    // how this report is sealed
    l.heading("本报告 / This report");
    l.paragraph(
        &format!(
            "本报告由 medsign 根据上述验证结果自动生成，并由“{}”（RSA 机构印章证书）以认证签名签署（不允许任何修改），附内置时间戳服务的 RFC 3161 签名时间戳；任何 PDF 阅读器或 pyHanko 可验证。出具记录见审计日志 evidence.report（含本报告的 SM3）。/ Generated by medsign from the verification above, signed by “{}” (RSA organisation seal certificate) as a certification signature (no changes allowed) with an RFC 3161 signature timestamp from the built-in TSA; any PDF reader or pyHanko can check it. Its issue is recorded in the audit log (evidence.report, with the report's SM3).",
            s.sealed_by, s.sealed_by
        ),
        8.5,
        ink::TEXT,
    );
    l
}

fn proof_section(l: &mut Layout, p: &Proof, events: &[Entry]) {
    l.heading("审计链证明 / Proof that the events are in the audit chain");
    let first = events.iter().map(|e| e.seq).min().unwrap_or(0);
    let last = events.iter().map(|e| e.seq).max().unwrap_or(0);
    match &p.chain.broken {
        None => l.field_colored(
            "哈希链 / hash chain",
            &format!(
                "通过：从第 1 条到第 {} 条（头哈希 {}）逐条重算并衔接，上列第 {first}–{last} 条均在其中，自每一条起到链头均验证通过；已核对 {} 个签名锚点。/ Passed: entries 1 to {} re-hashed and linked (head {}); the entries above ({first}–{last}) are in it and the chain verifies from each of them to the head; {} signed anchors checked.",
                p.chain.entries, p.chain.head, p.chain.anchors, p.chain.entries, p.chain.head, p.chain.anchors
            ),
            ink::GREEN,
        ),
        Some((seq, why)) => l.field_colored(
            "哈希链 / hash chain",
            &format!("未通过：第 {seq} 条 —— {why} / FAILED at entry {seq}: {why}"),
            ink::RED,
        ),
    }
    if p.mismatched.is_empty() {
        l.field_colored(
            "逐条重算 / each entry",
            &format!(
                "上列 {} 条记录的哈希均与其内容相符 / the hash of each of the {} entries above matches its fields",
                events.len(),
                events.len()
            ),
            ink::GREEN,
        );
    } else {
        let list = p.mismatched.iter().map(|s| format!("#{s}")).collect::<Vec<_>>().join(", ");
        l.field_colored("逐条重算 / each entry", &format!("哈希不符 / hash mismatch: {list}"), ink::RED);
    }
    match &p.anchor {
        Some(a) => l.field(
            "签名锚点 / signed anchor",
            &format!(
                "第 {} 个锚点，{}，覆盖到第 {} 条（哈希 {}），由平台密钥签名（SM2）：{}\n/ anchor {} at {} covers entry {} (hash {}), signed by the platform key (SM2): {}",
                a.id,
                describe(&Value::String(a.at.clone())),
                a.seq,
                a.head_hash,
                a.signature,
                a.id,
                a.at,
                a.seq,
                a.head_hash,
                a.signature
            ),
        ),
        None => l.field_colored(
            "签名锚点 / signed anchor",
            "尚无覆盖这些记录的锚点（锚点定期写入，之后可复核）/ no anchor covers these entries yet (anchors are written periodically; recheck later)",
            ink::AMBER,
        ),
    }
    l.field(
        "如何复核 / how to recheck",
        "hash = SM3(\"medsign/audit/v1\" ‖ prev_hash ‖ 每个字段的 4 字节大端长度与内容 / each field as 4-byte big-endian length + bytes: seq(8 字节), at, kind, actor, action, target, outcome, ip, user_agent, request_id, details)；每条的 prev_hash 等于前一条的 hash。用 `medsign audit verify` 或 GET /admin/v1/audit/verify 复核整条链，锚点可与见证文件（audit.witness_file）比对。/ Each prev_hash is the hash before it; recheck the whole chain with `medsign audit verify` or GET /admin/v1/audit/verify, and the anchors against the witness file.",
    );
}

#[cfg(test)]
mod tests;
