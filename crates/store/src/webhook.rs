//! The webhook outbox: an event for an app's callback URL is queued in the same transaction as
//! the change it reports, so it is sent exactly when that change is kept (and after a crash, still
//! sent). Delivery, signing and retries: `medsign_signing::flows::webhooks::deliver_due`.

use crate::Result;
use sqlx::AnyConnection;

/// Queue `event` about `subject` (a signing flow's or a user task's id) for `url`. `payload` (a
/// JSON object) gets the delivery's `id` and the `event`; returns the id (`X-Medsign-Delivery`).
pub async fn enqueue(
    conn: &mut AnyConnection,
    app_id: &str,
    subject: &str,
    event: &str,
    url: &str,
    mut payload: serde_json::Value,
) -> Result<String> {
    let id = format!("wh_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    if let Some(o) = payload.as_object_mut() {
        o.insert("id".into(), id.clone().into());
        o.insert("event".into(), event.into());
    }
    let now = crate::now_text();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, app_id, flow_id, event, url, payload, state, attempts, next_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7)",
    )
    .bind(&id)
    .bind(app_id)
    .bind(subject)
    .bind(event)
    .bind(url)
    .bind(payload.to_string())
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}
