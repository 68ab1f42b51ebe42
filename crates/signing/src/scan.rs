//! The scan turn of a flow as the hospital system sees it: renew the QR ticket of the current scan
//! signer, and where a ticket stands. Reads flows and tickets; neither reads this module.

use crate::{
    flows,
    model::{FlowState, SignerMode, SignerState},
    tickets::{Ticket, open, row, ttl},
};
use medsign_store::{Error, Result, audit::Context, db::Db, is_past};
use serde::Serialize;
use sqlx::Row;

/// A fresh ticket for the flow's current scan signer (the old one stops working).
pub async fn renew(db: &Db, ctx: &Context, app_id: &str, flow_id: &str, ttl_seconds: Option<u32>) -> Result<Ticket> {
    let ttl_seconds = ttl(ttl_seconds)?;
    let flow = flows::get(db, Some(app_id), flow_id).await?;
    if flow.state != FlowState::Signing {
        return Err(Error::Conflict(format!(
            "流程状态为 {}，无需扫码 / the flow is {}: nothing to scan",
            flow.state, flow.state
        )));
    }
    let signer = flow
        .signers
        .iter()
        .find(|s| s.state == SignerState::Pending)
        .ok_or_else(|| Error::Conflict("没有待签署的签署人 / no signer is pending".into()))?;
    if signer.mode != SignerMode::Scan {
        return Err(Error::Conflict(format!(
            "当前签署人 #{} 不是扫码签署 / the current signer #{} does not sign by scanning",
            signer.index, signer.index
        )));
    }
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let t = open(&mut tx, ctx, flow_id, signer.index, ttl_seconds).await?;
    tx.commit().await?;
    Ok(t)
}

/// Where a sign ticket stands, for the PC page that shows its QR (no secrets: the ticket id is the
/// capability): `waiting` (not scanned), `scanned` (a phone is signing), `signed` (the signer has
/// signed; `flow_state` tells whether the flow completed), `superseded` (a newer ticket replaced
/// it), `expired`, or the flow's end (`revoked`, `failed`, `expired`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TicketStatus {
    /// see above
    pub state: String,
    /// the flow's state
    pub flow_state: String,
}

impl TicketStatus {
    /// No further change will come.
    pub fn is_final(&self) -> bool {
        self.state != "waiting" && self.state != "scanned"
    }
}

/// The status of sign ticket `id` (unknown: not found).
pub async fn status(db: &Db, id: &str) -> Result<TicketStatus> {
    let r = sqlx::query("SELECT * FROM sign_tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(|| Error::NotFound(format!("二维码 {id} 不存在 / no ticket {id}")))?;
    let (t, used) = (row(&r)?, r.try_get::<Option<String>, _>("used_at")?);
    let flow = flows::get(db, None, &t.flow_id).await?;
    let signed = flow.signers.iter().any(|s| s.index == t.signer_index && s.state == SignerState::Signed);
    let state = if signed {
        "signed"
    } else if matches!(flow.state, FlowState::Revoked | FlowState::Failed | FlowState::Expired) {
        flow.state.as_str()
    } else {
        match used.as_deref() {
            Some(u) if u.starts_with("superseded") => "superseded",
            Some(_) => "scanned",
            None if is_past(&t.expires_at) => "expired",
            None => "waiting",
        }
    };
    Ok(TicketStatus { state: state.to_string(), flow_state: flow.state.to_string() })
}
