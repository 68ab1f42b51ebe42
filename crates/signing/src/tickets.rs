//! QR tickets of scan-mode signers (R7.4.6, R7.4.8). A `scan` signer's
//! turn opens a ticket: one-time, short-lived (`ticket_ttl_seconds`, default 300), bound to the
//! flow and the signer. The PC page shows it as a QR code whose content is a deep link into the
//! mobile app (`<public_url>/m/#/sign?t=<ticket>`); the phone redeems it exactly once. A new
//! ticket for the same turn supersedes the old one. The id is 128 random bits (it is the secret).

use base64::Engine;
use chrono::{Duration, Utc};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use medsign_store::{is_past, secs_text};
use serde::Serialize;
use sqlx::Row;

/// Default lifetime of a ticket.
pub const DEFAULT_TTL_SECONDS: u32 = 300;

/// A ticket as the integration API shows it, with its QR code.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct TicketView {
    /// ticket id (one-time)
    pub ticket_id: String,
    /// the signer whose turn it is, from 0
    pub signer_index: i64,
    /// RFC 3339
    pub expires_at: String,
    /// what the QR code holds: the mobile app's sign page for this ticket
    pub deep_link: String,
    /// the QR code as PNG, base64
    pub qr_png_base64: String,
    /// the QR code as SVG
    pub qr_svg: String,
}

/// A ticket row.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// id
    pub id: String,
    /// flow
    pub flow_id: String,
    /// signer index
    pub signer_index: i64,
    /// expiry
    pub expires_at: String,
}

/// Check a requested lifetime (60–1800 s).
pub fn ttl(seconds: Option<u32>) -> Result<u32> {
    let s = seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !(60..=1800).contains(&s) {
        return Err(Error::Invalid("ticket_ttl_seconds 须为 60–1800 / must be 60-1800".into()));
    }
    Ok(s)
}

/// Open a ticket for signer `idx` of `flow_id` inside a transaction, superseding open ones; audited.
pub(crate) async fn open(
    conn: &mut sqlx::AnyConnection,
    ctx: &Context,
    flow_id: &str,
    idx: i64,
    ttl_seconds: u32,
) -> Result<Ticket> {
    let now = medsign_store::now_text();
    sqlx::query("UPDATE sign_tickets SET used_at = $1 WHERE flow_id = $2 AND used_at IS NULL")
        .bind(format!("superseded {now}"))
        .bind(flow_id)
        .execute(&mut *conn)
        .await?;
    let id = format!("tk_{}", hex::encode(medsign_crypto::rng::bytes::<16>()?));
    let expires = secs_text(Utc::now() + Duration::seconds(ttl_seconds.into()));
    sqlx::query(
        "INSERT INTO sign_tickets (id, flow_id, signer_idx, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(flow_id)
    .bind(idx)
    .bind(&expires)
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    audit::ok(
        conn,
        ctx,
        Kind::Signing,
        "ticket.open",
        &format!("flow:{flow_id}"),
        serde_json::json!({"signer": idx, "expires_at": expires}),
    )
    .await?;
    Ok(Ticket { id, flow_id: flow_id.into(), signer_index: idx, expires_at: expires })
}

/// The open (unused, unexpired) ticket of a flow.
pub async fn current(db: &Db, flow_id: &str) -> Result<Option<Ticket>> {
    let rows =
        sqlx::query("SELECT * FROM sign_tickets WHERE flow_id = $1 AND used_at IS NULL ORDER BY created_at DESC")
            .bind(flow_id)
            .fetch_all(&db.pool)
            .await?;
    for r in rows {
        let t = row(&r)?;
        if !is_past(&t.expires_at) {
            return Ok(Some(t));
        }
    }
    Ok(None)
}

pub(crate) fn row(r: &sqlx::any::AnyRow) -> Result<Ticket> {
    Ok(Ticket {
        id: r.try_get("id")?,
        flow_id: r.try_get("flow_id")?,
        signer_index: r.try_get("signer_idx")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// A ticket by id, used or not, without redeeming it (to check whose it is first).
pub async fn peek(db: &Db, ticket_id: &str) -> Result<Option<Ticket>> {
    let r = sqlx::query("SELECT * FROM sign_tickets WHERE id = $1").bind(ticket_id).fetch_optional(&db.pool).await?;
    r.as_ref().map(row).transpose()
}

/// Redeem a ticket (the phone scanned it): exactly once, before it expires. Replays, expired,
/// superseded and unknown tickets are refused, and every refusal is audited.
pub async fn redeem(db: &Db, ctx: &Context, ticket_id: &str) -> Result<Ticket> {
    let r = sqlx::query("SELECT * FROM sign_tickets WHERE id = $1").bind(ticket_id).fetch_optional(&db.pool).await?;
    let refuse = |why: &str| -> Error {
        Error::Invalid(format!("二维码无效（{why}）/ the QR ticket is not valid ({why})"))
    };
    let outcome = match &r {
        None => Err(refuse("unknown")),
        Some(r) => {
            let t = row(r)?;
            let used: Option<String> = r.try_get("used_at")?;
            if used.is_some() {
                Err(refuse("already used"))
            } else if is_past(&t.expires_at) {
                Err(refuse("expired"))
            } else {
                Ok(t)
            }
        }
    };
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let outcome = match outcome {
        Ok(t) => {
            // compare-and-set: of two phones scanning at once, one wins
            let done = sqlx::query("UPDATE sign_tickets SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(medsign_store::now_text())
                .bind(&t.id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 { Ok(t) } else { Err(refuse("already used")) }
        }
        e => e,
    };
    let target = format!("ticket:{}", &ticket_id.chars().take(11).collect::<String>());
    let ev = audit::Event {
        kind: Kind::Signing,
        action: "ticket.redeem",
        target: &target,
        outcome: if outcome.is_ok() { "ok" } else { "refused" },
        details: serde_json::json!({"flow": outcome.as_ref().ok().map(|t| t.flow_id.clone()), "error": outcome.as_ref().err().map(|e| e.to_string())}),
    };
    audit::append(&mut tx, ctx, &ev).await?;
    tx.commit().await?;
    outcome
}

/// The deep link a ticket's QR code holds: into the H5 app at `app_base` (ending in `/`:
/// `server.app_url`, or `<public_url>/m/`).
pub fn deep_link(app_base: &str, ticket_id: &str) -> String {
    format!("{app_base}#/sign?t={ticket_id}")
}

/// A QR code of `content` as PNG (base64) and SVG, sized for a PC screen.
pub fn qr(content: &str) -> Result<(String, String)> {
    let code = qrcode::QrCode::with_error_correction_level(content.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| Error::internal_from("QR", e))?;
    let img = code.render::<image::Luma<u8>>().min_dimensions(240, 240).build();
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).map_err(|e| Error::internal_from("tickets::qr", e))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).build();
    Ok((base64::engine::general_purpose::STANDARD.encode(png.into_inner()), svg))
}

/// The API view of a ticket, with its QR code as PNG and SVG (links into the app at `app_base`).
pub fn view(app_base: &str, t: &Ticket) -> Result<TicketView> {
    let link = deep_link(app_base, &t.id);
    let (qr_png_base64, qr_svg) = qr(&link)?;
    Ok(TicketView {
        ticket_id: t.id.clone(),
        signer_index: t.signer_index,
        expires_at: t.expires_at.clone(),
        deep_link: link,
        qr_png_base64,
        qr_svg,
    })
}
