//! The document formats a flow signs: CMS SignedData for `data` flows, PAdES incremental updates
//! for `file` flows, and their RFC 3161 timestamps (also the ones added later).

use super::*;
use medsign_pdf::Placement;

/// A document format a flow signs — the seam behind which CMS (`data`) and PAdES (`file`) sit; a new
/// kind (OFD) is one more implementation and one more [`FlowKind`] variant, and the compiler lists
/// the `match` in [`format_of`].
///
/// Contract: `validate` runs before anything is written and answers bad input with
/// `Error::Invalid` (a 400); `sign` adds the ready signers' signatures with their timestamps to the
/// document so far — a TSA that cannot issue is `Error::Unavailable`, unless the flow allows
/// timestamps `later`, when the signatures are returned with `pending` set.
pub trait DocumentFormat: Send + Sync {
    /// Check the content and the signers' format-specific fields (`field`, `placement`, `certify`,
    /// `timestamp`) when a flow is created; returns each signer's resolved visible-signature place.
    fn validate(&self, content: &[u8], nf: &NewFlow, from_template: bool) -> Result<Vec<Option<Placement>>>;
    /// Sign for the ready signers of `job`, over the document so far.
    fn sign<'a>(&'a self, tsa: &'a Tsa, job: SignJob<'a>) -> BoxFuture<'a, Result<Signature>>;
    /// The media type and file extension of the signed result, and whether it is downloaded as the
    /// signature alone (`?signature=p7s`) or as the signed document.
    fn media_type(&self) -> (&'static str, &'static str, bool);
}

/// What one signing step of a flow needs.
pub struct SignJob<'a> {
    /// the flow's content (the data, or the PDF as given)
    pub content: &'a [u8],
    /// the signature or signed document so far (none: nobody has signed yet)
    pub so_far: Option<&'a [u8]>,
    /// the signers, with their keys
    pub(super) ready: &'a [Ready],
    /// who they are
    pub kinds: &'a [SignerKind],
    /// where their PDF signatures go
    pub specs: &'a [PdfSpec],
    /// the flow's title (a PDF signature's reason)
    pub title: &'a str,
    /// `sm2` | `rsa`
    pub alg: &'a str,
    /// who asks for the timestamps
    pub app_id: &'a str,
    /// CMS: leave the content out
    pub detached: bool,
    /// when timestamps must be there
    pub ts_mode: TimestampMode,
}

/// The result of a signing step.
pub struct Signature {
    /// the new signature (data) or signed document (PDF)
    pub doc: Vec<u8>,
    /// each new timestamp token's time, by signer
    pub times: Vec<Stamp>,
    /// signatures released, timestamps to follow
    pub pending: bool,
}

/// The format of a flow kind.
pub fn format_of(kind: FlowKind) -> &'static dyn DocumentFormat {
    match kind {
        FlowKind::Data => &Cms,
        FlowKind::File => &Pades,
    }
}

/// `data` flows: one CMS SignedData (RFC 5652) with every signer as a parallel SignerInfo.
pub struct Cms;

impl DocumentFormat for Cms {
    fn validate(&self, _content: &[u8], nf: &NewFlow, _from_template: bool) -> Result<Vec<Option<Placement>>> {
        if nf.certify.is_some() {
            return Err(Error::Invalid("certify 只用于 PDF 流程 / certify is for PDF flows".into()));
        }
        if nf.signers.iter().any(|s| s.placement.is_some() || s.field.is_some()) {
            return Err(Error::Invalid(
                "placement 与 field 只用于 PDF 流程 / placement and field are for PDF flows".into(),
            ));
        }
        Ok(vec![None; nf.signers.len()])
    }

    fn sign<'a>(&'a self, tsa: &'a Tsa, job: SignJob<'a>) -> BoxFuture<'a, Result<Signature>> {
        Box::pin(async move {
            let (theirs, times, pending) =
                sign_data(tsa, job.content, job.ready, job.detached, job.alg, job.app_id, job.ts_mode).await?;
            let doc = match job.so_far {
                None => theirs,
                Some(so_far) => {
                    // a later step (after a phone's turn): the new signers join the CMS so far
                    let mut merged =
                        Parsed::from_bytes(so_far).map_err(|e| Error::internal_from("flows::format::sign", e))?;
                    merged
                        .merge(
                            &Parsed::from_bytes(&theirs).map_err(|e| Error::internal_from("flows::format::sign", e))?,
                        )
                        .map_err(|e| Error::internal_from("flows::format::sign", e))?;
                    merged.to_der().map_err(|e| Error::internal_from("flows::format::sign", e))?
                }
            };
            Ok(Signature { doc, times, pending })
        })
    }

    fn media_type(&self) -> (&'static str, &'static str, bool) {
        ("application/pkcs7-signature", "p7s", true)
    }
}

/// `file` flows: one PAdES B-T incremental update per signer, visible where placed.
pub struct Pades;

impl DocumentFormat for Pades {
    fn validate(&self, content: &[u8], nf: &NewFlow, from_template: bool) -> Result<Vec<Option<Placement>>> {
        if nf.content_base64.is_none() && !from_template {
            return Err(Error::Invalid("PDF 须放在 content_base64 中 / a PDF goes in content_base64".into()));
        }
        medsign_pdf::load(content).map_err(|e| Error::Invalid(e.to_string()))?;
        if nf.timestamp.as_deref() == Some(TimestampMode::Later.as_str()) {
            return Err(Error::Invalid(
                "PDF 流程的时间戳须当场加上（timestamp=required）/ PDF flows timestamp at once (timestamp=required)"
                    .into(),
            ));
        }
        let fields = medsign_pdf::empty_signature_fields(content).map_err(|e| Error::Invalid(e.to_string()))?;
        let mut placements = vec![None; nf.signers.len()];
        for (i, s) in nf.signers.iter().enumerate() {
            if let Some(p) = &s.placement {
                placements[i] = Some(p.resolve(content).map_err(|e| match e {
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
        Ok(placements)
    }

    fn sign<'a>(&'a self, tsa: &'a Tsa, job: SignJob<'a>) -> BoxFuture<'a, Result<Signature>> {
        Box::pin(async move {
            let kinds: Vec<&str> = job.kinds.iter().map(|k| k.as_str()).collect();
            let pdf = job.so_far.unwrap_or(job.content);
            let (doc, times) = sign_pdf(tsa, pdf, job.ready, &kinds, job.specs, job.title, job.alg, job.app_id).await?;
            Ok(Signature { doc, times, pending: false })
        })
    }

    fn media_type(&self) -> (&'static str, &'static str, bool) {
        ("application/pdf", "pdf", false)
    }
}

/// One CMS with every signer over `content`, timestamped (or marked pending when `later`).
pub(super) async fn sign_data(
    tsa: &Tsa,
    content: &[u8],
    ready: &[Ready],
    detached: bool,
    alg: &str,
    app_id: &str,
    ts_mode: TimestampMode,
) -> Result<(Vec<u8>, Vec<Stamp>, bool)> {
    let signers: Vec<CmsSigner<'_>> =
        ready.iter().map(|r| CmsSigner { signer: r.key.as_ref(), cert: &r.cert, chain: &r.chain }).collect();
    let der = cms::sign(content, &signers, &SignOptions { detached, ..Default::default() })
        .map_err(|e| Error::internal_from("signing failed", e))?;
    let mut parsed = Parsed::from_bytes(&der).map_err(|e| Error::internal_from("flows::format::sign_data", e))?;
    match add_timestamps(tsa, &mut parsed, alg, app_id).await {
        Ok(times) => {
            Ok((parsed.to_der().map_err(|e| Error::internal_from("flows::format::sign_data", e))?, times, false))
        }
        Err(e) if ts_mode == TimestampMode::Later => {
            tracing::warn!(error = %e, "timestamp deferred");
            Ok((der, vec![], true))
        }
        Err(e) => Err(e),
    }
}

/// Where and how one signer's PDF signature goes (kept with the signer: a phone signs later).
#[derive(Debug, Clone, Default)]
pub struct PdfSpec {
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
pub fn pdf_options(
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
pub fn pades_cms(covered: &[u8], signer: &dyn Signer, cert: &Cert, chain: &[Cert]) -> Result<Vec<u8>> {
    cms::sign(
        covered,
        &[CmsSigner { signer, cert, chain }],
        &SignOptions { detached: true, omit_signing_time: true, ..Default::default() },
    )
    .map_err(|e| Error::internal_from("signing failed", e))
}

/// One PAdES B-T signature per signer, each an incremental update over the previous result.
#[allow(clippy::too_many_arguments)]
pub(super) async fn sign_pdf(
    tsa: &Tsa,
    pdf: &[u8],
    ready: &[Ready],
    kinds: &[&str],
    specs: &[PdfSpec],
    title: &str,
    alg: &str,
    app_id: &str,
) -> Result<(Vec<u8>, Vec<Stamp>)> {
    let mut doc = pdf.to_vec();
    let mut times = Vec::new();
    let existing = medsign_pdf::signatures(pdf).map_err(|e| Error::Invalid(e.to_string()))?.len();
    for (i, r) in ready.iter().enumerate() {
        let opts =
            pdf_options(&specs[i], existing + i + 1, kinds[i], &r.display, r.image.clone(), &r.cert, title, Utc::now());
        let prepared = medsign_pdf::prepare(&doc, &opts).map_err(|e| Error::Invalid(e.to_string()))?;
        let der = pades_cms(&prepared.covered(), r.key.as_ref(), &r.cert, &r.chain)?;
        let mut parsed = Parsed::from_bytes(&der).map_err(|e| Error::internal_from("flows::format::sign_pdf", e))?;
        times.extend(add_timestamps(tsa, &mut parsed, alg, app_id).await?);
        doc = prepared
            .finish(&parsed.to_der().map_err(|e| Error::internal_from("flows::format::sign_pdf", e))?)
            .map_err(|e| Error::internal_from("flows::format::sign_pdf", e))?;
    }
    Ok((doc, times))
}

/// A timestamp token's genTime, with the certificate serial (upper-case hex) of the signer it
/// stamps: the SET OF signers re-sorts as attributes change, so position says nothing.
pub type Stamp = (String, DateTime<Utc>);

/// Timestamp every unstamped signer; returns a [`Stamp`] per token, in the order they were made.
pub async fn add_timestamps(tsa: &Tsa, parsed: &mut Parsed, alg: &str, requester: &str) -> Result<Vec<Stamp>> {
    let mut times = Vec::new();
    // the SET OF signers re-sorts when attributes change: look for the next unstamped one each time
    while let Some(i) = (0..parsed.signer_infos().len()).find(|&i| !parsed.has_timestamp(i)) {
        let serial = parsed.signer_serial_hex(i).unwrap_or_default();
        let h = parsed.digest_of(i).map_err(|e| Error::internal_from("flows::format::add_timestamps", e))?;
        let imprint = MessageImprint::of(
            h,
            &parsed.signature_value(i).map_err(|e| Error::internal_from("flows::format::add_timestamps", e))?,
        );
        let nonce = medsign_pki::der::asn1::Int::new(&[0x01, medsign_crypto::rng::bytes::<4>()?[0]])
            .map_err(|e| Error::internal_from("flows::format::add_timestamps", e))?;
        let t = tsa.stamp(Some(alg), &imprint, Some(&nonce), true, None, requester).await?;
        parsed.add_timestamp(i, &t.token).map_err(|e| Error::internal_from("flows::format::add_timestamps", e))?;
        times.push((serial, t.time));
    }
    Ok(times)
}

/// Add the timestamps of flows signed with `timestamp: "later"` (run every minute); returns how
/// many flows were completed.
pub async fn complete_pending_timestamps(db: &Db, tsa: &Tsa) -> Result<usize> {
    let rows =
        sqlx::query("SELECT id, alg, app_id, signature_b64, updated_at FROM sign_flows WHERE ts_pending = 1 LIMIT 50")
            .fetch_all(&db.pool)
            .await?;
    let mut done = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        let alg: String = r.try_get("alg")?;
        let app: String = r.try_get("app_id")?;
        let sig: Option<String> = r.try_get("signature_b64")?;
        // the version stamped: a signer recorded meanwhile (a phone, a cosign) makes it stale
        let read_at: String = r.try_get("updated_at")?;
        let attempt = async {
            let sig = sig.ok_or_else(|| Error::internal("no stored signature"))?;
            let der = B64.decode(sig).map_err(|_| Error::internal("stored signature is corrupt"))?;
            let mut parsed = Parsed::from_bytes(&der)
                .map_err(|e| Error::internal_from("flows::format::complete_pending_timestamps", e))?;
            let stamped = add_timestamps(tsa, &mut parsed, &alg, &app).await?;
            Ok::<_, Error>((
                parsed.to_der().map_err(|e| Error::internal_from("flows::format::complete_pending_timestamps", e))?,
                stamped,
            ))
        };
        let (out, stamped) = match attempt.await {
            Ok(t) => t,
            Err(Error::Unavailable(_)) => break, // still out of sync: try again next time
            Err(e) => {
                // this flow cannot be stamped (its stored signature is unreadable, say): set it
                // aside (ts_pending = 2: still shown as pending, no longer retried) and go on
                tracing::error!(flow = %id, error = %e, "pending timestamp failed");
                let _w = db.write_lock.lock().await;
                sqlx::query("UPDATE sign_flows SET ts_pending = 2, error = $1, updated_at = $2 WHERE id = $3 AND ts_pending = 1")
                    .bind(format!("补加时间戳失败 / adding the pending timestamp failed: {e}"))
                    .bind(medsign_store::now_text())
                    .bind(&id)
                    .execute(&db.pool)
                    .await?;
                continue;
            }
        };
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let won = sqlx::query(
            "UPDATE sign_flows SET signature_b64 = $1, ts_pending = 0, updated_at = $2 \
             WHERE id = $3 AND ts_pending = 1 AND updated_at = $4",
        )
        .bind(B64.encode(&out))
        .bind(medsign_store::now_text())
        .bind(&id)
        .bind(&read_at)
        .execute(&mut *tx)
        .await?;
        if won.rows_affected() != 1 {
            // another instance stamped it first (issue #17), or a signer was recorded meanwhile: the
            // stored version stays; a still-pending flow is stamped again next time
            tx.rollback().await?;
            continue;
        }
        // each signer gets the time of its own token (the SET OF re-sorts: match by certificate)
        for (serial, time) in &stamped {
            sqlx::query("UPDATE flow_signers SET timestamp_at = $1 WHERE flow_id = $2 AND cert_serial = $3")
                .bind(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .bind(&id)
                .bind(serial)
                .execute(&mut *tx)
                .await?;
        }
        enqueue_event(&mut tx, &id, "flow.timestamped").await?;
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}
