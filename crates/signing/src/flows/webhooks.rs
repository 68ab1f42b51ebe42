//! Flow events to the app's callback URL: queued in the flow's transaction, signed with the app's
//! HMAC-SM3 key, delivered and retried with backoff.

use super::*;

pub(super) async fn enqueue_event(tx: &mut sqlx::AnyConnection, flow_id: &str, event: &str) -> Result<()> {
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
    let payload = serde_json::json!({"id": id, "event": event, "flow_id": flow_id, "doc_no": doc_no, "state": state, "at": medsign_store::now_text()});
    let now = medsign_store::now_text();
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
    let now = medsign_store::now_text();
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
        let sig = match medsign_directory::apps::hmac_key_of(db, kek, &app).await {
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
            .bind(medsign_store::now_text())
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
