//! Server-side batch signing and sealing (issue #6, R1): one call with up to 1,000 flows, run by a
//! durable queue in the database. Crash-safe and resumable: items are claimed with a
//! compare-and-set, an item left `running` by a crashed process is reclaimed after
//! `sign.batch_reclaim_seconds` (30), and every attempt creates its flow under the unique request key
//! `batch:<job>:<index>:<attempt>` — so a retry first looks at the previous attempt's flow: if it
//! completed, the item is done (nothing is signed twice); if it never finished, no signature was
//! released and the next attempt signs.

use crate::flows::{self, NewFlow, Signing};
use chrono::{Duration, Utc};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::Serialize;
use sqlx::Row;
use std::sync::atomic::{AtomicI64, Ordering};

/// Most flows in one batch.
pub const MAX_ITEMS: usize = 1000;

/// A batch as the API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct BatchView {
    /// id
    pub id: String,
    /// `queued` | `running` | `completed` (every item done or failed)
    pub state: String,
    /// items
    pub total: i64,
    /// signed
    pub done: i64,
    /// could not be signed (see items)
    pub failed: i64,
    /// waiting or in progress
    pub pending: i64,
    /// per item: index, state, flow id, error
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub items: Vec<serde_json::Value>,
}

/// Queue a batch of flows (validated one by one when they run; the shape is checked now).
pub async fn create(db: &Db, ctx: &Context, app_id: &str, items: &[serde_json::Value]) -> Result<BatchView> {
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(Error::Invalid(format!("一批须有 1–{MAX_ITEMS} 个文档 / a batch holds 1-{MAX_ITEMS} documents")));
    }
    for (i, it) in items.iter().enumerate() {
        serde_json::from_value::<NewFlow>(it.clone())
            .map_err(|e| Error::Invalid(format!("第 {i} 项不是合法的签署流程 / item {i} is not a valid flow: {e}")))?;
    }
    let id = format!("bj_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    sqlx::query("INSERT INTO batch_jobs (id, app_id, total, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(app_id)
        .bind(items.len() as i64)
        .bind(medsign_store::now_text())
        .execute(&mut *tx)
        .await?;
    for (i, it) in items.iter().enumerate() {
        sqlx::query("INSERT INTO batch_items (job_id, idx, spec, state, attempt) VALUES ($1, $2, $3, 'queued', 0)")
            .bind(&id)
            .bind(i as i64)
            .bind(it.to_string())
            .execute(&mut *tx)
            .await?;
    }
    audit::ok(
        &mut tx,
        ctx,
        Kind::Signing,
        "batch.create",
        &format!("batch:{id}"),
        serde_json::json!({"items": items.len()}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    get(db, Some(app_id), &id).await
}

/// A batch with its progress.
pub async fn get(db: &Db, app_id: Option<&str>, id: &str) -> Result<BatchView> {
    let not_found = || Error::NotFound(format!("批次 {id} 不存在 / no batch {id}"));
    let job = sqlx::query("SELECT app_id, total FROM batch_jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or_else(not_found)?;
    let owner: String = job.try_get("app_id")?;
    medsign_store::check_owner(app_id, &owner, not_found)?;
    let rows = sqlx::query("SELECT idx, state, flow_id, error FROM batch_items WHERE job_id = $1 ORDER BY idx")
        .bind(id)
        .fetch_all(&db.pool)
        .await?;
    let (mut done, mut failed, mut pending, mut running) = (0, 0, 0, 0);
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let state: String = r.try_get("state")?;
        match state.as_str() {
            "done" => done += 1,
            "failed" => failed += 1,
            "running" => {
                running += 1;
                pending += 1
            }
            _ => pending += 1,
        }
        items.push(serde_json::json!({
            "index": r.try_get::<i64, _>("idx")?,
            "state": state,
            "flow_id": r.try_get::<Option<String>, _>("flow_id")?,
            "error": r.try_get::<Option<String>, _>("error")?,
        }));
    }
    let state = state_of(pending, running, done + failed);
    Ok(BatchView { id: id.into(), state: state.into(), total: job.try_get("total")?, done, failed, pending, items })
}

/// A batch's state from its items' counts.
fn state_of(pending: i64, running: i64, finished: i64) -> &'static str {
    if pending == 0 {
        "completed"
    } else if running > 0 || finished > 0 {
        "running"
    } else {
        "queued"
    }
}

/// A batch in the list: its progress, without the items.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct BatchSummary {
    /// id
    pub id: String,
    /// the app that queued it
    pub app_id: String,
    /// RFC 3339
    pub created_at: String,
    /// `queued` | `running` | `completed`
    pub state: String,
    /// items
    pub total: i64,
    /// signed
    pub done: i64,
    /// could not be signed
    pub failed: i64,
    /// waiting or in progress
    pub pending: i64,
}

/// Most batches in one list.
pub const MAX_LIST: i64 = 200;

/// The newest `limit` batches (1–[`MAX_LIST`]) of `app_id` (every app's for `None`), with their
/// progress, counted in one query over those batches' items only.
pub async fn list(db: &Db, app_id: Option<&str>, limit: i64) -> Result<Vec<BatchSummary>> {
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(Error::Invalid(format!("limit 须为 1–{MAX_LIST} / limit must be 1-{MAX_LIST}")));
    }
    let rows = sqlx::query(
        "SELECT j.id, j.app_id, j.created_at, j.total, \
                SUM(CASE WHEN i.state = 'done' THEN 1 ELSE 0 END) AS done, \
                SUM(CASE WHEN i.state = 'failed' THEN 1 ELSE 0 END) AS failed, \
                SUM(CASE WHEN i.state = 'running' THEN 1 ELSE 0 END) AS running \
         FROM (SELECT id, app_id, created_at, total FROM batch_jobs WHERE ($1 IS NULL OR app_id = $1) \
               ORDER BY created_at DESC, id LIMIT $2) j \
         JOIN batch_items i ON i.job_id = j.id \
         GROUP BY j.id, j.app_id, j.created_at, j.total \
         ORDER BY j.created_at DESC, j.id",
    )
    .bind(app_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let (total, done, failed, running): (i64, i64, i64, i64) =
                (r.try_get("total")?, r.try_get("done")?, r.try_get("failed")?, r.try_get("running")?);
            let pending = total - done - failed;
            Ok(BatchSummary {
                id: r.try_get("id")?,
                app_id: r.try_get("app_id")?,
                created_at: r.try_get("created_at")?,
                state: state_of(pending, running, done + failed).into(),
                total,
                done,
                failed,
                pending,
            })
        })
        .collect()
}

/// An item a worker claimed.
struct Claimed {
    job: String,
    idx: i64,
    spec: String,
    /// the attempt this claim runs: its flow's request key is `batch:<job>:<idx>:<attempt>`, and
    /// the item's row now reads `attempt + 1` (each claim moves it on, so it names the claim)
    attempt: i64,
    app: String,
}

/// Claim the next item — one running but abandoned, else the first queued — and move its
/// attempt on, in one statement under the write lock: the claim and the new attempt are one
/// change, so a worker that stalls after its claim can never share a request key with the next
/// one, and an earlier worker still running (reclaimed) can no longer create its flow
/// (`flows::batch_fence`). Each look is a walk of the `(state, job_id, idx)` index, not a sort of
/// the queue; abandoned items are looked for first at most once a second in this process, and
/// whenever nothing is queued. On PostgreSQL the instances of a cluster skip the rows another is
/// claiming (`SKIP LOCKED`) instead of queueing behind it; the condition is checked again on the
/// row taken.
async fn claim(db: &Db, reclaim_seconds: u64) -> Result<Option<Claimed>> {
    static ABANDONED_LOOKED: AtomicI64 = AtomicI64::new(0);
    let now = Utc::now();
    let stale = (now - Duration::seconds(reclaim_seconds as i64)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let skip = if db.backend == medsign_store::db::Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let at = medsign_store::now_text();
    let last = ABANDONED_LOOKED.load(Ordering::Relaxed);
    let due = now.timestamp_millis() - last >= 1000
        && ABANDONED_LOOKED
            .compare_exchange(last, now.timestamp_millis(), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
    let abandoned = ("state = 'running' AND claimed_at < $2", Some(&stale));
    let queued = ("state = 'queued'", None);
    let looks = if due { [abandoned, queued] } else { [queued, abandoned] };
    let _w = db.write_lock.lock().await;
    for (which, stale) in looks {
        let sql = format!(
            "UPDATE batch_items SET state = 'running', claimed_at = $1, attempt = attempt + 1 \
             WHERE (job_id, idx) = (SELECT job_id, idx FROM batch_items WHERE {which} ORDER BY job_id, idx LIMIT 1{skip}) \
               AND {which} \
             RETURNING job_id, idx, attempt, spec, (SELECT app_id FROM batch_jobs WHERE id = batch_items.job_id) AS app_id"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&at);
        if let Some(stale) = stale {
            q = q.bind(stale);
        }
        let taken = q.fetch_optional(&db.pool).await?;
        if let Some(r) = taken {
            return Ok(Some(Claimed {
                job: r.try_get("job_id")?,
                idx: r.try_get("idx")?,
                spec: r.try_get("spec")?,
                attempt: r.try_get::<i64, _>("attempt")? - 1,
                app: r.try_get("app_id")?,
            }));
        }
    }
    Ok(None)
}

/// Store an item's result — unless a worker on this or another instance reclaimed it meanwhile
/// (this one ran past `batch_reclaim_seconds`): then the item is that worker's, and a late
/// `failed` never overwrites its `done`. The claim is named by its attempt, as everywhere.
async fn finish_item(db: &Db, c: &Claimed, state: &str, flow_id: Option<&str>, error: Option<&str>) -> Result<()> {
    let _w = db.write_lock.lock().await;
    let stored = sqlx::query(
        "UPDATE batch_items SET state = $1, flow_id = $2, error = $3 \
         WHERE job_id = $4 AND idx = $5 AND state = 'running' AND attempt = $6",
    )
    .bind(state)
    .bind(flow_id)
    .bind(error)
    .bind(&c.job)
    .bind(c.idx)
    .bind(c.attempt + 1)
    .execute(&db.pool)
    .await?;
    if stored.rows_affected() == 0 {
        tracing::warn!(job = %c.job, idx = c.idx, state, "batch item was reclaimed by another worker; its result is kept");
    }
    Ok(())
}

/// Run one item if there is one; `Ok(false)` when the queue is empty.
pub async fn run_one(sg: &Signing<'_>, max_bytes: usize, reclaim_seconds: u64) -> Result<bool> {
    let db = sg.db;
    let Some(c) = claim(db, reclaim_seconds).await? else { return Ok(false) };
    let (job, idx, attempt) = (c.job.clone(), c.idx, c.attempt);
    // what did an earlier attempt leave?
    if attempt > 0 {
        let key = format!("batch:{job}:{idx}:{}", attempt - 1);
        let prev = sqlx::query("SELECT id, state FROM sign_flows WHERE request_key = $1")
            .bind(&key)
            .fetch_optional(&db.pool)
            .await?;
        if let Some(r) = prev {
            let (fid, st): (String, String) = (r.try_get("id")?, r.try_get("state")?);
            if st == "completed" {
                finish_item(db, &c, "done", Some(&fid), None).await?;
                return Ok(true);
            }
            if st == "signing" {
                // interrupted before anything was released: close it, sign under the next key
                let _w = db.write_lock.lock().await;
                sqlx::query("UPDATE sign_flows SET state = 'failed', error = $1 WHERE id = $2 AND state = 'signing'")
                    .bind("中断后重试 / interrupted; retried under a new flow")
                    .bind(&fid)
                    .execute(&db.pool)
                    .await?;
            }
        }
    }
    let ctx = Context {
        actor: format!("app:{}", c.app),
        ip: "local".into(),
        user_agent: "medsign-batch".into(),
        request_id: format!("{job}:{idx}"),
    };
    let key = format!("batch:{job}:{idx}:{attempt}");
    let result = match serde_json::from_str::<NewFlow>(&c.spec) {
        Ok(nf) => flows::create_flow(sg, &ctx, &c.app, &nf, max_bytes, Some(&key)).await,
        Err(e) => Err(Error::Invalid(e.to_string())),
    };
    match result {
        // the item was marked done with its flow, in the transaction that recorded the flow
        Ok(_) => {}
        Err(Error::Unavailable(m)) => {
            // the TSA or a CA channel is down: back to the queue, retried later
            tracing::warn!(job = %job, idx, error = %m, "batch item postponed");
            let _w = db.write_lock.lock().await;
            sqlx::query(
                "UPDATE batch_items SET state = 'queued', claimed_at = NULL \
                 WHERE job_id = $1 AND idx = $2 AND state = 'running' AND attempt = $3",
            )
            .bind(&job)
            .bind(idx)
            .bind(attempt + 1)
            .execute(&db.pool)
            .await?;
            return Ok(false);
        }
        Err(e) => finish_item(db, &c, "failed", None, Some(&e.to_string())).await?,
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seams::NoGrants;
    use medsign_testkit::{
        db::backends,
        hospital::{ORG, World, world},
    };

    fn signing<'a>(
        db: &'a Db,
        kek: &'a medsign_crypto::wrap::Kek,
        cas: &'a medsign_ca::ca::BuiltinCas,
        tsa: &'a medsign_tsa::tsa::Tsa,
    ) -> Signing<'a> {
        Signing { db, kek, cas, organization: ORG, tsa, grants: &NoGrants, pades_level: Default::default() }
    }

    async fn drain(s: Signing<'_>) {
        while run_one(&s, 1 << 20, 30).await.unwrap() {}
    }

    /// Two instances on one PostgreSQL database (each with its own process lock, as two servers
    /// have; on SQLite two sets of workers of one instance), three workers each, racing for one
    /// queue: every item is signed exactly once — one completed flow per item, no attempt wasted
    /// on a lost race (no failed flow), nothing left running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_instances_racing_for_the_queue_sign_every_item_exactly_once() {
        for (_d, db) in backends().await {
            let World { kek, ctx, cas, tsa } = world(&db).await;
            let items: Vec<_> = (0..24)
                .map(|i| serde_json::json!({"kind": "data", "title": format!("检验报告 {i}"), "content": format!("WBC {i}"), "signers": [{"seal": "hospital"}]}))
                .collect();
            let b = create(&db, &ctx, "app_x", &items).await.unwrap();
            // a second instance has its own process lock; SQLite is one instance's database, so
            // there the second set of workers shares it
            let write_lock = match db.backend {
                medsign_store::db::Backend::Postgres => Default::default(),
                medsign_store::db::Backend::Sqlite => db.write_lock.clone(),
            };
            let other = Db { pool: db.pool.clone(), backend: db.backend, write_lock, direct: db.direct.clone() };
            let (a, o) = (signing(&db, &kek, &cas, &tsa), signing(&other, &kek, &cas, &tsa));
            tokio::join!(drain(a), drain(a), drain(a), drain(o), drain(o), drain(o));
            let v = get(&db, Some("app_x"), &b.id).await.unwrap();
            assert_eq!((v.state.as_str(), v.done, v.failed), ("completed", 24, 0), "{v:?}");
            let per_item: Vec<(String, i64)> =
                sqlx::query_as("SELECT state, COUNT(*) FROM sign_flows WHERE request_key LIKE $1 GROUP BY state")
                    .bind(format!("batch:{}:%", b.id))
                    .fetch_all(&db.pool)
                    .await
                    .unwrap();
            assert_eq!(per_item, [("completed".to_string(), 24)], "one completed flow per item, none failed");
            let flows: std::collections::HashSet<_> = v.items.iter().map(|i| i["flow_id"].as_str().unwrap()).collect();
            assert_eq!(flows.len(), 24, "each item names its own flow");
        }
    }

    #[tokio::test]
    async fn queue_runs_fails_precisely_and_recovers_an_interrupted_item() {
        for (_d, db) in backends().await {
            let World { kek, ctx, cas, tsa } = world(&db).await;
            let item = |seal: &str| serde_json::json!({"kind": "data", "title": "检验报告", "content": "WBC 6.1", "signers": [{"seal": seal}]});
            assert!(create(&db, &ctx, "app_x", &[]).await.is_err());
            assert!(create(&db, &ctx, "app_x", &[serde_json::json!({"kind": 1})]).await.is_err());
            let b = create(&db, &ctx, "app_x", &[item("hospital"), item("NOPE"), item("hospital")]).await.unwrap();
            assert_eq!((b.state.as_str(), b.pending), ("queued", 3));
            assert!(matches!(get(&db, Some("app_other"), &b.id).await, Err(Error::NotFound(_))));
            // the list counts as `get` does; an app sees only its own; the size is bounded
            let other = create(&db, &ctx, "app_y", &[item("hospital")]).await.unwrap();
            let all = list(&db, None, 10).await.unwrap();
            assert_eq!(
                all.iter().map(|x| x.id.as_str()).collect::<std::collections::HashSet<_>>(),
                [b.id.as_str(), other.id.as_str()].into()
            );
            let mine = list(&db, Some("app_x"), 10).await.unwrap();
            assert_eq!(mine.len(), 1);
            assert_eq!((mine[0].state.as_str(), mine[0].total, mine[0].pending, mine[0].done), ("queued", 3, 3, 0));
            assert!(matches!(list(&db, None, 0).await, Err(Error::Invalid(_))));
            assert!(matches!(list(&db, None, MAX_LIST + 1).await, Err(Error::Invalid(_))));
            // item 2 was being signed by a process that died: a flow stuck in `signing` under attempt 0
            sqlx::query("UPDATE batch_items SET state = 'running', claimed_at = '2000-01-01T00:00:00.000Z', attempt = 1 WHERE job_id = $1 AND idx = 2")
                .bind(&b.id)
                .execute(&db.pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, timestamp_mode, ts_pending, expires_at, created_at, updated_at, request_key) \
                 VALUES ('sf_stuck', 'QM-STUCK', 'app_x', 'data', 't', 'signing', 'sm2', 1, '', '', 'required', 0, '2099-01-01T00:00:00Z', 'x', 'x', $1)",
            )
            .bind(format!("batch:{}:2:0", b.id))
            .execute(&db.pool)
            .await
            .unwrap();
            let sg = signing(&db, &kek, &cas, &tsa);
            while run_one(&sg, 1 << 20, 30).await.unwrap() {}
            let v = get(&db, Some("app_x"), &b.id).await.unwrap();
            assert_eq!((v.state.as_str(), v.done, v.failed), ("completed", 2, 1), "{v:?}");
            assert!(v.items[1]["error"].as_str().unwrap().contains("NOPE"), "{v:?}");
            assert_ne!(v.items[2]["flow_id"], "sf_stuck");
            let l = list(&db, Some("app_x"), 10).await.unwrap().remove(0);
            assert_eq!(
                (l.state.as_str(), l.done, l.failed, l.pending),
                (v.state.as_str(), v.done, v.failed, v.pending)
            );
            let stuck: String = sqlx::query_scalar("SELECT state FROM sign_flows WHERE id = 'sf_stuck'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(stuck, "failed");
            // the same request key twice: refused, nothing signed
            let nf: NewFlow = serde_json::from_value(item("hospital")).unwrap();
            let key = format!("batch:{}:0:0", b.id);
            let e = flows::create_keyed(&Signing { organization: "x", ..sg }, &ctx, "app_x", &nf, 1 << 20, Some(&key))
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            // a worker that ran past the reclaim: another moved item 1 on to attempt 5 meanwhile,
            // so the late worker's flow (key attempt 0) is not created and nothing is signed
            sqlx::query("UPDATE batch_items SET attempt = 5 WHERE job_id = $1 AND idx = 1")
                .bind(&b.id)
                .execute(&db.pool)
                .await
                .unwrap();
            let late = format!("batch:{}:1:0", b.id);
            let e = flows::create_keyed(&sg, &ctx, "app_x", &nf, 1 << 20, Some(&late)).await.unwrap_err();
            assert!(matches!(&e, Error::Conflict(m) if m.contains("reclaimed")), "{e}");
            let made: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sign_flows WHERE request_key = $1")
                .bind(&late)
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(made, 0, "the late worker created no flow");
            // a worker reclaimed between creating its flow and recording the signature: the
            // signature is not recorded (the flow stays as it was, for its caller to fail), and
            // the item stays the reclaimer's
            let stalled = format!("batch:{}:1:4", b.id);
            sqlx::query(
                "INSERT INTO sign_flows (id, doc_no, app_id, kind, title, state, alg, detached, content_b64, content_sm3, timestamp_mode, ts_pending, expires_at, created_at, updated_at, request_key) \
                 VALUES ('sf_stalled', 'QM-STALLED', 'app_x', 'data', 't', 'signing', 'sm2', 1, '', '', 'required', 0, '2099-01-01T00:00:00Z', 'x', 'x', $1)",
            )
            .bind(&stalled)
            .execute(&db.pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO flow_signers (flow_id, idx, kind, subject_ref, mode, state) VALUES ('sf_stalled', 0, 'seal', 'hospital', 'auto', 'pending')")
                .execute(&db.pool)
                .await
                .unwrap();
            sqlx::query("UPDATE batch_items SET state = 'running', attempt = 6 WHERE job_id = $1 AND idx = 1")
                .bind(&b.id)
                .execute(&db.pool)
                .await
                .unwrap();
            let signed = [flows::Signed {
                idx: 0,
                kind: crate::model::SignerKind::Seal,
                subject_ref: "hospital".into(),
                serial: "01".into(),
                custody: serde_json::json!({"custody": "server"}),
            }];
            let step = flows::Step { der: b"sig", pending: false, ts_times: &[], signed: &signed };
            let e = flows::record(&db, &ctx, "sf_stalled", &step, 1, 60, Some(&stalled)).await.unwrap_err();
            assert!(matches!(&e, Error::Conflict(m) if m.contains("reclaimed")), "{e}");
            let (state, item): (String, String) = sqlx::query_as(
                "SELECT f.state, i.state FROM sign_flows f, batch_items i WHERE f.id = 'sf_stalled' AND i.job_id = $1 AND i.idx = 1",
            )
            .bind(&b.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!((state.as_str(), item.as_str()), ("signing", "running"), "nothing of the late step was kept");
            // at its own attempt, the same step records the flow and the item together
            sqlx::query("UPDATE batch_items SET attempt = 5 WHERE job_id = $1 AND idx = 1")
                .bind(&b.id)
                .execute(&db.pool)
                .await
                .unwrap();
            flows::record(&db, &ctx, "sf_stalled", &step, 1, 60, Some(&stalled)).await.unwrap();
            let (state, item, flow): (String, String, String) = sqlx::query_as(
                "SELECT f.state, i.state, i.flow_id FROM sign_flows f, batch_items i WHERE f.id = 'sf_stalled' AND i.job_id = $1 AND i.idx = 1",
            )
            .bind(&b.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert_eq!((state.as_str(), item.as_str(), flow.as_str()), ("completed", "done", "sf_stalled"));
        }
    }
}
