//! Flow events to the app's callback URL: queued in the flow's transaction, signed with the app's
//! HMAC-SM3 key, delivered and retried with backoff.

use super::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Host names of cloud instance metadata services (they answer with credentials).
const METADATA_HOSTS: &[&str] =
    &["metadata.google.internal", "metadata.goog", "metadata", "instance-data", "metadata.tencentyun.com"];

/// Whether a webhook may not go to `ip`: link-local addresses (169.254.0.0/16, fe80::/10, where
/// AWS, Azure, GCP, Huawei and Tencent serve instance metadata) and the other metadata addresses
/// (fd00:ec2::254 of AWS, 100.100.100.200 of Alibaba Cloud). Loopback and private networks stay
/// allowed: the HIS usually lives on the hospital LAN.
pub fn forbidden_webhook_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_webhook_ip(IpAddr::V4(v4));
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

fn forbidden(what: &str) -> Error {
    Error::Invalid(format!(
        "callback_url 不能指向链路本地或云元数据地址（{what}）/ callback_url must not point at a link-local or cloud \
         metadata address ({what})"
    ))
}

/// Check a `callback_url` when a flow is created, and again before each delivery: http(s), at
/// most 2000 characters, and not a link-local or metadata host ([`forbidden_webhook_ip`]). Names
/// are checked again after resolution by [`webhook_client`]'s resolver.
pub fn check_callback_url(u: &str) -> Result<()> {
    let bad = || Error::Invalid(format!("callback_url 须为 http(s) 地址 / callback_url must be an http(s) URL: {u}"));
    if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2000 || u.contains(char::is_whitespace) {
        return Err(bad());
    }
    let url = reqwest::Url::parse(u).map_err(|_| bad())?;
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
    // the URL parser has already normalised IPv4 forms (decimal, hex, octal) to dotted quads
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) if forbidden_webhook_ip(ip) => Err(forbidden(host)),
        Ok(_) => Ok(()),
        Err(_) if METADATA_HOSTS.contains(&host.trim_end_matches('.').to_lowercase().as_str()) => Err(forbidden(host)),
        Err(_) => Ok(()),
    }
}

/// The system resolver, with the addresses webhooks may not reach taken out (a name that
/// resolves only to them fails), so a DNS answer cannot lead a delivery to instance metadata.
pub(super) struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok: Vec<SocketAddr> = all.iter().copied().filter(|a| !forbidden_webhook_ip(a.ip())).collect();
            if ok.is_empty() {
                return Err(Box::new(forbidden(&host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client webhooks are delivered with: short timeouts, redirects not followed (a 3xx is
/// a failed attempt, so a callback cannot bounce a signed delivery to another host), and names
/// resolved through a guard against link-local and metadata addresses.
pub fn webhook_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(GuardedResolver))
        .build()
        .unwrap_or_default()
}

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
    let payload =
        serde_json::json!({"flow_id": flow_id, "doc_no": doc_no, "state": state, "at": medsign_store::now_text()});
    medsign_store::webhook::enqueue(tx, &app, flow_id, event, &url, payload).await?;
    Ok(())
}

/// The signature header value of a webhook ([`medsign_crypto::api::webhook_signature`]).
pub use medsign_crypto::api::webhook_signature;

/// Most delivery attempts before a webhook is given up.
pub const WEBHOOK_MAX_ATTEMPTS: i64 = 10;

/// How long a claimed delivery belongs to the instance sending it: longer than the client's
/// connect and request timeouts together, so a claim outlives any send it covers.
const CLAIM_SECONDS: i64 = 60;

/// Deliver the webhooks that are due (run every couple of seconds) with `client` (made by
/// [`webhook_client`]); returns how many were delivered. Failures are retried with exponential
/// backoff (10 s · 2ⁿ, at most an hour); a URL [`check_callback_url`] refuses is not contacted.
pub async fn deliver_due(db: &Db, kek: &Kek, client: &reqwest::Client) -> Result<usize> {
    let now = medsign_store::now_text();
    let rows = sqlx::query(
        "SELECT id, app_id, event, url, payload, attempts, next_at FROM webhook_deliveries WHERE state = 'pending' AND next_at <= $1 ORDER BY next_at LIMIT 20",
    )
    .bind(&now)
    .fetch_all(&db.pool)
    .await?;
    let mut delivered = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        // every instance runs this job (issue #17): a delivery is sent by the one that claims it,
        // by moving its `next_at` past the send's timeout from the value it read (compare-and-set);
        // an instance that dies while sending leaves a claim that runs out and is taken again
        let due: String = r.try_get("next_at")?;
        let lease =
            (Utc::now() + Duration::seconds(CLAIM_SECONDS)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let claimed = {
            let _w = db.write_lock.lock().await;
            sqlx::query(
                "UPDATE webhook_deliveries SET next_at = $1 WHERE id = $2 AND state = 'pending' AND next_at = $3",
            )
            .bind(&lease)
            .bind(&id)
            .bind(&due)
            .execute(&db.pool)
            .await?
        };
        if claimed.rows_affected() != 1 {
            continue;
        }
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
        if let Err(e) = check_callback_url(&url) {
            // stored before the check existed, or edited: never contacted
            let _w = db.write_lock.lock().await;
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'failed', attempts = $1, last_error = $2 WHERE id = $3 AND next_at = $4",
            )
            .bind(attempts)
            .bind(e.to_string())
            .bind(&id)
            .bind(&lease)
                .execute(&db.pool)
                .await?;
            continue;
        }
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
            Err(e) => {
                // the resolver's refusal is a source of the request error: keep the whole chain
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg = format!("{msg}: {s}");
                    src = s.source();
                }
                (false, None, Some(msg))
            }
        };
        let _w = db.write_lock.lock().await;
        if ok {
            sqlx::query(
                "UPDATE webhook_deliveries SET state = 'delivered', attempts = $1, last_status = $2, last_error = NULL, delivered_at = $3 WHERE id = $4 AND next_at = $5",
            )
            .bind(attempts)
            .bind(status)
            .bind(medsign_store::now_text())
            .bind(&id)
            .bind(&lease)
            .execute(&db.pool)
            .await?;
            delivered += 1;
        } else {
            let backoff = Duration::seconds((10i64 << (attempts - 1).min(9)).min(3600));
            let state = if attempts >= WEBHOOK_MAX_ATTEMPTS { "failed" } else { "pending" };
            sqlx::query(
                "UPDATE webhook_deliveries SET state = $1, attempts = $2, last_status = $3, last_error = $4, next_at = $5 WHERE id = $6 AND next_at = $7",
            )
            .bind(state)
            .bind(attempts)
            .bind(status)
            .bind(err.or_else(|| status.map(|s| format!("HTTP {s}"))))
            .bind((Utc::now() + backoff).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .bind(&id)
            .bind(&lease)
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
    /// the flow, or the user task (`ut_…`) it reports
    pub flow_id: String,
    /// `flow.completed` | `flow.revoked` | `flow.failed` | `flow.timestamped` | `user_task.done`
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
    deliveries_where(db, "($1 IS NULL OR flow_id = $1)", flow_id).await
}

async fn deliveries_where(db: &Db, filter: &'static str, arg: Option<&str>) -> Result<Vec<Delivery>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM webhook_deliveries WHERE {filter} ORDER BY created_at DESC, id LIMIT 500"
    )))
    .bind(arg)
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

/// Send a failed delivery once more (the console's "retry"; audited): it is due now, and a
/// failure of this attempt leaves it failed again. Only a `failed` delivery can be retried, so
/// a retry never sends an event twice at once.
pub async fn retry_delivery(db: &Db, ctx: &Context, id: &str) -> Result<Delivery> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let n =
        sqlx::query("UPDATE webhook_deliveries SET state = 'pending', next_at = $1 WHERE id = $2 AND state = 'failed'")
            .bind(medsign_store::now_text())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    if n.rows_affected() == 0 {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.rollback().await?;
        return Err(match state {
            None => Error::NotFound(format!("推送 {id} 不存在 / no webhook delivery {id}")),
            Some(s) => Error::Conflict(format!(
                "推送 {id} 状态为 {s}，只能重试失败的推送 / only a failed delivery can be retried ({s})"
            )),
        });
    }
    audit::ok(&mut tx, ctx, Kind::Admin, "webhook.retry", &format!("webhook:{id}"), serde_json::json!({})).await?;
    tx.commit().await?;
    deliveries_where(db, "id = $1", Some(id)).await?.pop().ok_or_else(|| Error::NotFound(id.to_string()))
}
