//! The audit log (R1.7): append-only, and every entry carries `hash = SM3(prev_hash ‖ canonical
//! encoding of the entry)`, written in the same transaction as the change it records. Editing,
//! deleting or inserting a row breaks the chain at that row; `medsign audit verify` finds it.
//! (Signed, timestamped anchors of the chain head — which also catch truncation — come with the
//! TSA issue.)

use crate::{Result, db::Db};
use medsign_crypto::hash::sm3_parts;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What kind of event (R1.7: login, signing, data maintenance; plus administration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// logins and scan-to-login
    Login,
    /// signatures and sign flows
    Signing,
    /// changes to users, departments, certificates, templates
    DataMaintenance,
    /// configuration, apps, keys
    Admin,
}

impl Kind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::Signing => "signing",
            Kind::DataMaintenance => "data_maintenance",
            Kind::Admin => "admin",
        }
    }
}

/// Who did it and from where (filled by the server from the request).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `app:<id>`, `user:<employee_no>`, `cli`, `system`
    pub actor: String,
    /// client address
    pub ip: String,
    /// client user agent
    pub user_agent: String,
    /// request id
    pub request_id: String,
}

impl Context {
    /// A context for command-line actions.
    pub fn cli() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Context {
            actor: format!("cli:{user}"),
            ip: "local".into(),
            user_agent: "medsign-cli".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// kind
    pub kind: Kind,
    /// e.g. `user.create`
    pub action: &'a str,
    /// e.g. `user:1001`
    pub target: &'a str,
    /// `ok` or `failed:<code>`
    pub outcome: &'a str,
    /// free-form details (no secrets)
    pub details: serde_json::Value,
}

/// The stored row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// position in the chain, from 1
    pub seq: i64,
    /// instant, RFC 3339 UTC
    pub at: String,
    /// kind
    pub kind: String,
    /// actor
    pub actor: String,
    /// action
    pub action: String,
    /// target
    pub target: String,
    /// outcome
    pub outcome: String,
    /// client address
    pub ip: String,
    /// user agent
    pub user_agent: String,
    /// request id
    pub request_id: String,
    /// details (JSON text)
    pub details: String,
    /// hash of the previous entry (hex)
    pub prev_hash: String,
    /// this entry's hash (hex)
    pub hash: String,
}

impl Entry {
    /// `SM3(prev_hash ‖ len‖field ‖ …)`: every field length-prefixed, so no two different
    /// entries encode alike.
    pub fn compute_hash(&self) -> String {
        let prev = hex::decode(&self.prev_hash).unwrap_or_default();
        let seq = self.seq.to_be_bytes();
        let fields: [&[u8]; 11] = [
            &seq,
            self.at.as_bytes(),
            self.kind.as_bytes(),
            self.actor.as_bytes(),
            self.action.as_bytes(),
            self.target.as_bytes(),
            self.outcome.as_bytes(),
            self.ip.as_bytes(),
            self.user_agent.as_bytes(),
            self.request_id.as_bytes(),
            self.details.as_bytes(),
        ];
        let lens: Vec<[u8; 4]> = fields.iter().map(|f| (f.len() as u32).to_be_bytes()).collect();
        let mut parts: Vec<&[u8]> = vec![b"medsign/audit/v1", &prev];
        for (l, f) in lens.iter().zip(fields.iter()) {
            parts.push(l);
            parts.push(f);
        }
        hex::encode(sm3_parts(&parts))
    }
}

fn entry_from_row(r: &sqlx::any::AnyRow) -> Result<Entry> {
    Ok(Entry {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        kind: r.try_get("kind")?,
        actor: r.try_get("actor")?,
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        outcome: r.try_get("outcome")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        request_id: r.try_get("request_id")?,
        details: r.try_get("details")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// Append an event inside the caller's transaction (hold `Db::write_lock` around it). Returns
/// the stored entry.
pub async fn append(conn: &mut AnyConnection, ctx: &Context, ev: &Event<'_>) -> Result<Entry> {
    let head =
        sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *conn).await?;
    let (seq, prev_hash) = match head {
        Some(r) => (r.try_get::<i64, _>("seq")? + 1, r.try_get::<String, _>("hash")?),
        None => (1, GENESIS.to_string()),
    };
    let mut e = Entry {
        seq,
        at: crate::now_text(),
        kind: ev.kind.as_str().into(),
        actor: ctx.actor.clone(),
        action: ev.action.into(),
        target: ev.target.into(),
        outcome: ev.outcome.into(),
        ip: ctx.ip.clone(),
        user_agent: ctx.user_agent.clone(),
        request_id: ctx.request_id.clone(),
        details: ev.details.to_string(),
        prev_hash,
        hash: String::new(),
    };
    e.hash = e.compute_hash();
    sqlx::query(
        "INSERT INTO audit_log (seq, at, kind, actor, action, target, outcome, ip, user_agent, request_id, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(e.seq)
    .bind(&e.at)
    .bind(&e.kind)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.outcome)
    .bind(&e.ip)
    .bind(&e.user_agent)
    .bind(&e.request_id)
    .bind(&e.details)
    .bind(&e.prev_hash)
    .bind(&e.hash)
    .execute(&mut *conn)
    .await?;
    Ok(e)
}

/// Record one event in its own transaction (for events with no other change, e.g. a failed login).
pub async fn record(db: &Db, ctx: &Context, ev: &Event<'_>) -> Result<Entry> {
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    let e = append(&mut tx, ctx, ev).await?;
    tx.commit().await?;
    Ok(e)
}

/// Result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// entries checked
    pub entries: i64,
    /// hash of the last entry
    pub head: String,
    /// the first broken link: (seq, reason)
    pub broken: Option<(i64, String)>,
}

/// Walk the whole chain in order and name the first broken link.
pub async fn verify_chain(db: &Db) -> Result<ChainReport> {
    let mut prev = GENESIS.to_string();
    let mut expect = 1i64;
    let mut last = 0i64;
    loop {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1000")
            .bind(last)
            .fetch_all(&db.pool)
            .await?;
        if rows.is_empty() {
            return Ok(ChainReport { entries: expect - 1, head: prev, broken: None });
        }
        for r in &rows {
            let e = entry_from_row(r)?;
            let fail =
                |why: String| Ok(ChainReport { entries: expect - 1, head: prev.clone(), broken: Some((e.seq, why)) });
            if e.seq != expect {
                return fail(format!("缺少第 {expect} 条记录 / entry {expect} is missing (found {})", e.seq));
            }
            if e.prev_hash != prev {
                return fail("与前一条记录的哈希不衔接 / prev_hash does not match the previous entry".into());
            }
            if e.compute_hash() != e.hash {
                return fail("记录内容被改动 / the entry was altered (hash mismatch)".into());
            }
            prev = e.hash.clone();
            expect += 1;
            last = e.seq;
        }
    }
}

/// The newest entries (for tests and the admin API).
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<Entry>> {
    let rows =
        sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT $1").bind(limit).fetch_all(&db.pool).await?;
    rows.iter().map(entry_from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::backends;

    #[tokio::test]
    async fn chain_verifies_and_any_edit_breaks_it_at_that_row() {
        for (_d, db) in backends().await {
            let ctx = Context { actor: "app:test".into(), ..Default::default() };
            for i in 0..25 {
                let target = format!("user:{i}");
                record(
                    &db,
                    &ctx,
                    &Event {
                        kind: Kind::DataMaintenance,
                        action: "user.create",
                        target: &target,
                        outcome: "ok",
                        details: serde_json::json!({"i": i}),
                    },
                )
                .await
                .unwrap();
            }
            let r = verify_chain(&db).await.unwrap();
            assert_eq!((r.entries, r.broken.clone()), (25, None));
            // edit row 13
            sqlx::query("UPDATE audit_log SET target = 'user:999' WHERE seq = 13").execute(&db.pool).await.unwrap();
            let r = verify_chain(&db).await.unwrap();
            assert_eq!(r.broken.as_ref().unwrap().0, 13);
            assert_eq!(r.entries, 12);
            // restore it, delete row 20
            sqlx::query("UPDATE audit_log SET target = 'user:12' WHERE seq = 13").execute(&db.pool).await.unwrap();
            assert_eq!(verify_chain(&db).await.unwrap().broken, None);
            sqlx::query("DELETE FROM audit_log WHERE seq = 20").execute(&db.pool).await.unwrap();
            assert_eq!(verify_chain(&db).await.unwrap().broken.unwrap().0, 21);
        }
    }
}
