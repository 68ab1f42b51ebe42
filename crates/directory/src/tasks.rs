//! Tasks a hospital system gives a doctor's phone (R7.4.3, R7.4.4): do the real-name check, draw
//! the handwritten signature. The HIS asks (`POST /api/v1/users/{employee_no}/realname`,
//! `…/handwriting-requests`); the doctor's bound phone lists what is asked of it
//! (`GET /mobile/v1/tasks`); doing the thing — a passed check, a signature drawn on the phone —
//! completes every pending task of that kind for the doctor, in the same transaction, and queues
//! a `user_task.done` webhook to each asking app's `callback_url` (the outbox, so a crash loses
//! neither).
//!
//! One pending task per app, doctor and kind: asking again returns the one already waiting. A task
//! not done by its `expires_at` (default one day, at most seven) reads as `expired`.

use chrono::{Duration, Utc};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// What a task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    /// the real-name check (face verification in the mini program)
    Realname,
    /// the handwritten signature, drawn on the phone
    Handwriting,
}

impl TaskKind {
    /// Stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Realname => "realname",
            TaskKind::Handwriting => "handwriting",
        }
    }
}

/// A task as the HIS and the phone see it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// id
    pub task_id: String,
    /// `realname` | `handwriting`
    pub kind: String,
    /// the doctor
    pub employee_no: String,
    /// `pending` | `done` | `expired`
    pub state: String,
    /// the asking app
    pub app_id: String,
    /// its name, as the phone shows it
    pub system: String,
    /// created
    pub created_at: String,
    /// to be done by
    pub expires_at: String,
    /// done
    pub done_at: Option<String>,
    /// what was done: `{"realname_status": …}` or `{"sm3": …}` of the signature image
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub result: Option<serde_json::Value>,
}

const COLUMNS: &str = "t.id, t.kind, t.employee_no, t.state, t.app_id, COALESCE(a.name, t.app_id) AS system, \
                       t.created_at, t.expires_at, t.done_at, t.result";

fn task(r: &sqlx::any::AnyRow) -> Result<Task> {
    let expires_at: String = r.try_get("expires_at")?;
    let mut state: String = r.try_get("state")?;
    if state == "pending" && medsign_store::is_past(&expires_at) {
        state = "expired".into();
    }
    let result: Option<String> = r.try_get("result")?;
    Ok(Task {
        task_id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        employee_no: r.try_get("employee_no")?,
        state,
        app_id: r.try_get("app_id")?,
        system: r.try_get("system")?,
        created_at: r.try_get("created_at")?,
        expires_at,
        done_at: r.try_get("done_at")?,
        result: result.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// Longest a task may wait, minutes (seven days).
pub const MAX_MINUTES: u32 = 7 * 24 * 60;

/// Ask `employee_no`'s phone for `kind` on behalf of `app_id`; the callback URL must already be
/// checked (`check_callback_url`). Returns the task and whether it is new (`false`: the app's
/// pending task of that kind for that doctor, unchanged).
pub async fn create(
    db: &Db,
    ctx: &Context,
    app_id: &str,
    employee_no: &str,
    kind: TaskKind,
    callback_url: Option<&str>,
    minutes: Option<u32>,
) -> Result<(Task, bool)> {
    let minutes = minutes.unwrap_or(24 * 60);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(Error::Invalid(format!(
            "expires_in_minutes 须为 1–{MAX_MINUTES} / expires_in_minutes must be 1-{MAX_MINUTES}"
        )));
    }
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM users WHERE employee_no = $1")
        .bind(employee_no)
        .fetch_optional(&db.pool)
        .await?;
    match status.as_deref() {
        None => {
            return Err(Error::NotFound(format!(
                "工号 {employee_no} 的用户不存在 / no user with employee_no {employee_no}"
            )));
        }
        Some("active") => {}
        Some(_) => return Err(Error::Invalid(format!("用户 {employee_no} 已停用 / user {employee_no} is disabled"))),
    }
    let id = format!("ut_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let now = medsign_store::now_text();
    let expires = (Utc::now() + Duration::minutes(minutes.into())).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // one pending task per app, doctor and kind, on every instance
    db.serialise(
        &mut tx,
        medsign_store::db::lock_key("user_task", &format!("{app_id}|{employee_no}|{}", kind.as_str())),
    )
    .await?;
    let waiting: Option<String> = sqlx::query_scalar(
        "SELECT id FROM user_tasks WHERE app_id = $1 AND employee_no = $2 AND kind = $3 AND state = 'pending' AND expires_at > $4",
    )
    .bind(app_id)
    .bind(employee_no)
    .bind(kind.as_str())
    .bind(medsign_store::secs_text(Utc::now()))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(existing) = waiting {
        // asked again: the same task, told back at the URL given now
        if callback_url.is_some() {
            sqlx::query("UPDATE user_tasks SET callback_url = $1 WHERE id = $2")
                .bind(callback_url)
                .bind(&existing)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        drop(_w);
        return Ok((get(db, None, &existing).await?, false));
    }
    sqlx::query(
        "INSERT INTO user_tasks (id, employee_no, kind, state, app_id, callback_url, created_at, expires_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(employee_no)
    .bind(kind.as_str())
    .bind(app_id)
    .bind(callback_url)
    .bind(&now)
    .bind(&expires)
    .execute(&mut *tx)
    .await?;
    audit::ok(
        &mut tx,
        ctx,
        Kind::DataMaintenance,
        "user_task.create",
        &format!("user:{employee_no}"),
        serde_json::json!({"task": id, "kind": kind.as_str()}),
    )
    .await?;
    tx.commit().await?;
    drop(_w);
    Ok((get(db, None, &id).await?, true))
}

/// One task; with `app_id`, only that app's (another app's task is "not found").
pub async fn get(db: &Db, app_id: Option<&str>, task_id: &str) -> Result<Task> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM user_tasks t LEFT JOIN apps a ON a.app_id = t.app_id \
         WHERE t.id = $1 AND ($2 IS NULL OR t.app_id = $2)"
    )))
    .bind(task_id)
    .bind(app_id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("任务 {task_id} 不存在 / no task {task_id}")))?;
    task(&r)
}

/// What is asked of `employee_no` and still open, oldest first (at most 50).
pub async fn pending(db: &Db, employee_no: &str) -> Result<Vec<Task>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM user_tasks t LEFT JOIN apps a ON a.app_id = t.app_id \
         WHERE t.employee_no = $1 AND t.state = 'pending' AND t.expires_at > $2 ORDER BY t.created_at LIMIT 50"
    )))
    .bind(employee_no)
    .bind(medsign_store::secs_text(Utc::now()))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(task).collect()
}

/// Forget tasks that ended (done or expired) more than 30 days ago (run every minute by
/// `medsign serve`); returns how many.
pub async fn sweep(db: &Db) -> Result<usize> {
    let before = medsign_store::secs_text(Utc::now() - Duration::days(30));
    let _w = db.write_lock.lock().await;
    let gone = sqlx::query("DELETE FROM user_tasks WHERE expires_at < $1 OR done_at < $1")
        .bind(before)
        .execute(&db.pool)
        .await?;
    Ok(gone.rows_affected() as usize)
}

/// Complete every open task of `kind` for `employee_no` in the caller's transaction (the one that
/// records what was done), queueing each asking app's webhook. Returns how many.
pub async fn complete(
    conn: &mut AnyConnection,
    employee_no: &str,
    kind: TaskKind,
    result: serde_json::Value,
) -> Result<usize> {
    let now = medsign_store::now_text();
    let rows = sqlx::query(
        "SELECT id, app_id, callback_url FROM user_tasks \
         WHERE employee_no = $1 AND kind = $2 AND state = 'pending' AND expires_at > $3",
    )
    .bind(employee_no)
    .bind(kind.as_str())
    .bind(medsign_store::secs_text(Utc::now()))
    .fetch_all(&mut *conn)
    .await?;
    let mut done = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        let changed = sqlx::query(
            "UPDATE user_tasks SET state = 'done', done_at = $1, result = $2 WHERE id = $3 AND state = 'pending'",
        )
        .bind(&now)
        .bind(result.to_string())
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        if changed.rows_affected() != 1 {
            continue;
        }
        done += 1;
        let url: Option<String> = r.try_get("callback_url")?;
        if let Some(url) = url {
            let app: String = r.try_get("app_id")?;
            let payload = serde_json::json!({"task_id": id, "kind": kind.as_str(), "employee_no": employee_no,
                "state": "done", "result": result, "at": now});
            medsign_store::webhook::enqueue(conn, &app, &id, "user_task.done", &url, payload).await?;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsign_testkit::{
        db::backends,
        hospital::{add_staff, staff},
    };

    async fn webhooks(db: &Db) -> Vec<(String, String)> {
        sqlx::query("SELECT flow_id, event FROM webhook_deliveries ORDER BY created_at")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get("flow_id").unwrap(), r.try_get("event").unwrap()))
            .collect()
    }

    /// One pending task per app, doctor and kind even when asked at once; doing the thing
    /// completes each asking app's task once, with its webhook in the same transaction; an
    /// expired task is not completed and reads as expired.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn asked_once_done_once_with_a_webhook_each() {
        for (_d, db) in backends().await {
            let kek = medsign_crypto::wrap::Kek::generate().unwrap();
            let ctx = Context::cli();
            add_staff(&db, &kek, &[staff("1001", "张三")]).await;
            let hook = Some("http://127.0.0.1:9/hook");
            let asks = (0..8).map(|_| create(&db, &ctx, "app_his", "1001", TaskKind::Realname, hook, None));
            // polled together: they race for the lock as parallel HTTP requests would
            let made: Vec<(Task, bool)> =
                futures_util::future::join_all(asks).await.into_iter().map(Result::unwrap).collect();
            assert_eq!(made.iter().filter(|(_, new)| *new).count(), 1, "{made:?}");
            assert!(made.iter().all(|(t, _)| t.task_id == made[0].0.task_id));
            let (other, _) = create(&db, &ctx, "app_emr", "1001", TaskKind::Realname, None, Some(1)).await.unwrap();
            let (hw, _) = create(&db, &ctx, "app_his", "1001", TaskKind::Handwriting, hook, None).await.unwrap();
            assert!(matches!(
                create(&db, &ctx, "app_his", "9999", TaskKind::Realname, None, None).await,
                Err(Error::NotFound(_))
            ));
            assert!(matches!(
                create(&db, &ctx, "app_his", "1001", TaskKind::Realname, None, Some(0)).await,
                Err(Error::Invalid(_))
            ));
            assert_eq!(pending(&db, "1001").await.unwrap().len(), 3);
            // the EMR's task has run out
            sqlx::query("UPDATE user_tasks SET expires_at = '2000-01-01T00:00:00Z' WHERE id = $1")
                .bind(&other.task_id)
                .execute(&db.pool)
                .await
                .unwrap();
            assert_eq!(get(&db, None, &other.task_id).await.unwrap().state, "expired");
            let mut tx = db.pool.begin().await.unwrap();
            let n = complete(&mut tx, "1001", TaskKind::Realname, serde_json::json!({"realname_status": "verified"}))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(n, 1);
            let done = get(&db, Some("app_his"), &made[0].0.task_id).await.unwrap();
            assert_eq!(
                (done.state.as_str(), done.result.unwrap()["realname_status"].as_str()),
                ("done", Some("verified"))
            );
            assert_eq!(get(&db, None, &other.task_id).await.unwrap().state, "expired");
            assert_eq!(get(&db, None, &hw.task_id).await.unwrap().state, "pending");
            assert_eq!(webhooks(&db).await, vec![(made[0].0.task_id.clone(), "user_task.done".to_string())]);
            assert!(matches!(get(&db, Some("app_emr"), &made[0].0.task_id).await, Err(Error::NotFound(_))));
            // done once: completing again changes nothing; a rolled-back completion leaves it open
            let mut tx = db.pool.begin().await.unwrap();
            assert_eq!(complete(&mut tx, "1001", TaskKind::Realname, serde_json::json!({})).await.unwrap(), 0);
            assert_eq!(complete(&mut tx, "1001", TaskKind::Handwriting, serde_json::json!({})).await.unwrap(), 1);
            tx.rollback().await.unwrap();
            assert_eq!(get(&db, None, &hw.task_id).await.unwrap().state, "pending");
            assert_eq!(webhooks(&db).await.len(), 1);
        }
    }
}
