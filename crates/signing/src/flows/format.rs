//! The document formats a flow signs: CMS SignedData for `data` flows, PAdES incremental updates
//! for `file` flows, and their RFC 3161 timestamps (also the ones added later).

use super::*;

/// One CMS with every signer over `content`, timestamped (or marked pending when `later`).
pub(super) async fn sign_data(
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
    .map_err(|e| Error::Config(format!("signing failed: {e}")))
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
pub async fn add_timestamps(tsa: &Tsa, parsed: &mut Parsed, alg: &str, requester: &str) -> Result<Vec<DateTime<Utc>>> {
    Ok(stamp_signers(tsa, parsed, alg, requester).await?.into_iter().map(|(_, t)| t).collect())
}

/// Timestamp every unstamped signer; returns each one's certificate serial (upper-case hex) and
/// the time of its token, in the order they were stamped.
pub(super) async fn stamp_signers(
    tsa: &Tsa,
    parsed: &mut Parsed,
    alg: &str,
    requester: &str,
) -> Result<Vec<(String, DateTime<Utc>)>> {
    let mut times = Vec::new();
    // the SET OF signers re-sorts when attributes change: look for the next unstamped one each time
    while let Some(i) = (0..parsed.signer_infos().len()).find(|&i| !parsed.has_timestamp(i)) {
        let serial = parsed.signer_serial_hex(i).unwrap_or_default();
        let h = parsed.digest_of(i).map_err(|e| Error::Config(e.to_string()))?;
        let imprint = MessageImprint::of(h, &parsed.signature_value(i).map_err(|e| Error::Config(e.to_string()))?);
        let nonce = medsign_pki::der::asn1::Int::new(&[0x01, medsign_crypto::rng::bytes::<4>()?[0]])
            .map_err(|e| Error::Config(e.to_string()))?;
        let t = tsa.stamp(Some(alg), &imprint, Some(&nonce), true, None, requester).await?;
        parsed.add_timestamp(i, &t.token).map_err(|e| Error::Config(e.to_string()))?;
        times.push((serial, t.time));
    }
    Ok(times)
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
        let attempt = async {
            let der = B64.decode(sig).map_err(|_| Error::Config("stored signature is corrupt".into()))?;
            let mut parsed = Parsed::from_bytes(&der).map_err(|e| Error::Config(e.to_string()))?;
            let stamped = stamp_signers(tsa, &mut parsed, &alg, &app).await?;
            Ok::<_, Error>((parsed.to_der().map_err(|e| Error::Config(e.to_string()))?, stamped))
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
        sqlx::query("UPDATE sign_flows SET signature_b64 = $1, ts_pending = 0, updated_at = $2 WHERE id = $3 AND ts_pending = 1")
            .bind(B64.encode(&out))
            .bind(medsign_store::now_text())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
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
