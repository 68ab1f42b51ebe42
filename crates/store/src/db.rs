//! The database: SQLite by default (a file in the data directory, WAL), PostgreSQL for clusters
//! (R4.7), through sqlx's `Any` driver and one portable schema (only TEXT and BIGINT columns,
//! `$n` placeholders, which SQLite also accepts). Migrations are embedded in the binary and applied
//! in order at start-up, each in its own transaction. On SQLite in a file, writers on a thread of
//! their own may use a second connection synchronously ([`Direct`], rusqlite on the same SQLite).

use crate::{Error, Result};
use sqlx::{AnyPool, Row, any::AnyPoolOptions};
use std::{fs::File, path::Path};

/// Embedded migrations: (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "hmac", include_str!("../migrations/0002_hmac.sql")),
    (3, "idempotency", include_str!("../migrations/0003_idempotency.sql")),
    (4, "audit_anchors", include_str!("../migrations/0004_audit_anchors.sql")),
    (5, "ca", include_str!("../migrations/0005_ca.sql")),
    (6, "certificates", include_str!("../migrations/0006_certificates.sql")),
    (7, "crl_ocsp", include_str!("../migrations/0007_crl_ocsp.sql")),
    (8, "ca_channels", include_str!("../migrations/0008_ca_channels.sql")),
    (9, "timestamps", include_str!("../migrations/0009_timestamps.sql")),
    (10, "profile_version", include_str!("../migrations/0010_profile_version.sql")),
    (11, "sign_flows", include_str!("../migrations/0011_sign_flows.sql")),
    (12, "batches", include_str!("../migrations/0012_batches.sql")),
    (13, "documents", include_str!("../migrations/0013_documents.sql")),
    (14, "mobile", include_str!("../migrations/0014_mobile.sql")),
    (15, "cosign", include_str!("../migrations/0015_cosign.sql")),
    (16, "logins", include_str!("../migrations/0016_logins.sql")),
    (17, "grants", include_str!("../migrations/0017_grants.sql")),
    (18, "pins", include_str!("../migrations/0018_pins.sql")),
    (19, "realname", include_str!("../migrations/0019_realname.sql")),
    (20, "soter", include_str!("../migrations/0020_soter.sql")),
    (21, "approvals", include_str!("../migrations/0021_approvals.sql")),
    (22, "grant_keys_in_memory", include_str!("../migrations/0022_grant_keys_in_memory.sql")),
    (23, "anchor_chain", include_str!("../migrations/0023_anchor_chain.sql")),
    (24, "ltv", include_str!("../migrations/0024_ltv.sql")),
    (25, "job_leases", include_str!("../migrations/0025_job_leases.sql")),
    (26, "trust_list", include_str!("../migrations/0026_trust_list.sql")),
    (27, "split_key_requests", include_str!("../migrations/0027_split_key_requests.sql")),
    (28, "user_tasks", include_str!("../migrations/0028_user_tasks.sql")),
    (29, "console_people", include_str!("../migrations/0029_console_people.sql")),
    (30, "flow_search", include_str!("../migrations/0030_flow_search.sql")),
    (31, "console_phone_login", include_str!("../migrations/0031_console_phone_login.sql")),
    (32, "batch_list", include_str!("../migrations/0032_batch_list.sql")),
    (33, "grant_instances", include_str!("../migrations/0033_grant_instances.sql")),
    (34, "channel_keys", include_str!("../migrations/0034_channel_keys.sql")),
    (35, "round_lookup", include_str!("../migrations/0035_round_lookup.sql")),
    (36, "round_expiry", include_str!("../migrations/0036_round_expiry.sql")),
];

/// The PostgreSQL advisory lock key migrations are applied under ("medsign" in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x006d_6564_7369_676e;

/// The PostgreSQL advisory lock instances provision shared state under ("provisio"): the
/// platform key, the CA hierarchy, the TSA certificates, the bootstrap app. Instances that start
/// together on one database take turns; the second finds the first's work instead of making its own.
pub const PROVISIONING_LOCK: i64 = 0x7072_6f76_6973_696f;

/// An advisory lock key for `name` in namespace `ns`: the first 8 bytes of SM3(ns ‖ 0 ‖ name),
/// the same on every instance.
pub fn lock_key(ns: &str, name: &str) -> i64 {
    let d = medsign_crypto::hash::sm3_parts(&[ns.as_bytes(), &[0], name.as_bytes()]);
    let mut head = [0u8; 8];
    head.copy_from_slice(&d[..8]);
    i64::from_be_bytes(head)
}

/// The guard of [`Db::exclusive`].
pub struct Exclusive {
    tx: Option<sqlx::Transaction<'static, sqlx::Any>>,
}

impl Exclusive {
    /// Unlock (the lock's transaction ends).
    pub async fn release(mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        Ok(())
    }
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// embedded SQLite
    Sqlite,
    /// PostgreSQL
    Postgres,
}

/// A connection pool, its backend, and the in-process writer lock (SQLite takes one writer at a
/// time; serialising our own writers avoids SQLITE_BUSY and keeps the audit chain linear).
#[derive(Clone)]
pub struct Db {
    /// the pool
    pub pool: AnyPool,
    /// the backend
    pub backend: Backend,
    /// held by every writing transaction
    pub write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// SQLite in a file: a connection of its own for writers on a thread of their own
    /// ([`Direct`]); `None` on PostgreSQL, in memory, and for a URL with options of its own
    pub direct: Option<std::sync::Arc<Direct>>,
}

/// The pragmas of every SQLite connection. secure_delete FAST: erased values are overwritten with
/// zeros in the pages that are written anyway. The secrets (server shares, grant material) are a
/// few hundred bytes, always inside a b-tree page, so they never survive in the file; only whole
/// freed overflow pages (e.g. a finished round's prepared PDF) are left as they were, which ON
/// would rewrite at twice the I/O of a signing batch. wal_autocheckpoint: `medsign serve` copies
/// the log into the database in the background ([`Db::checkpoint`]), so a request's commit does
/// not pay for it; a commit checkpoints only if the log has grown past 40 MB meanwhile.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
    PRAGMA secure_delete = FAST; PRAGMA wal_autocheckpoint = 10000; PRAGMA foreign_keys = ON;";

/// A SQLite connection used synchronously on the caller's thread, beside the pool. Every
/// statement through sqlx is handed to the connection's own thread and its answer handed back:
/// two thread switches per statement, which a writer of one small INSERT per batch (the TSA's
/// record of each token, issue #20) waits for on every request. A writer on a thread of its own
/// ([`std::thread`], never a Tokio worker: a commit can wait for a checkpoint) writes here
/// without them, holding [`Db::write_lock`] as every other writer does ([`Direct::write`]
/// takes it).
pub struct Direct {
    conn: std::sync::Mutex<rusqlite::Connection>,
    /// a second connection for short reads on a request's own thread ([`Direct::try_read`])
    reader: std::sync::Mutex<rusqlite::Connection>,
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Direct {
    /// Only for a plain file URL (`sqlite://path`, with `mode=rw` or `mode=rwc` at most): the
    /// pool honours other options (`vfs=`, `immutable=`, `mode=ro`, …) that a connection opened
    /// by path would not, and two connections that disagree on locking corrupt a database.
    fn plain(url: &str) -> bool {
        url.split_once('?').is_none_or(|(_, q)| q.split('&').all(|o| matches!(o, "" | "mode=rw" | "mode=rwc")))
    }

    fn open(path: &Path, write_lock: std::sync::Arc<tokio::sync::Mutex<()>>) -> Result<Direct> {
        use rusqlite::OpenFlags;
        // the file exists (the pool opened it first): never create it, so never with another mode
        let open = |flags: OpenFlags| {
            rusqlite::Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .and_then(|c| c.execute_batch(SQLITE_PRAGMAS).map(|_| c))
                .map_err(|e| {
                    Error::Config(format!("无法打开数据库文件 {} / cannot open the database file: {e}", path.display()))
                })
        };
        Ok(Direct {
            conn: std::sync::Mutex::new(open(OpenFlags::SQLITE_OPEN_READ_WRITE)?),
            // a read that would wait (only SQLite's recovery of the log after a crash makes one)
            // gives way to the pool at once instead of holding a Tokio worker
            reader: std::sync::Mutex::new(open(OpenFlags::SQLITE_OPEN_READ_ONLY).and_then(|c| {
                c.busy_timeout(std::time::Duration::ZERO).map(|_| c).map_err(|e| Error::Config(e.to_string()))
            })?),
            write_lock,
        })
    }

    /// Under [`Db::write_lock`], run `f` in one transaction that takes the write lock of the file
    /// at its start (`BEGIN IMMEDIATE`), and commit it if `f` returns `Ok`. Blocks the thread:
    /// call it from a thread of its own, never from a Tokio task.
    pub fn write<R>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<R>) -> Result<R> {
        let _w = self.write_lock.blocking_lock();
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    }

    /// One transaction (`BEGIN IMMEDIATE`) for a writer that holds [`Db::write_lock`] already
    /// (`_held`), inside a Tokio task: committed when `f` returns `Ok(Ok(_))`, rolled back when it
    /// returns `Ok(Err(_))` (a refusal that must keep nothing) or fails. Runs through
    /// [`blocking`]: no statement is handed to another thread and back, which is where a request
    /// of a few short statements spent its time on a busy machine (issue #20: the phone's server
    /// half).
    pub fn transact<R, E>(
        &self,
        _held: &tokio::sync::MutexGuard<'_, ()>,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<std::result::Result<R, E>>,
    ) -> Result<std::result::Result<R, E>> {
        debug_assert!(
            std::ptr::eq(tokio::sync::MutexGuard::mutex(_held), &*self.write_lock),
            "the guard held is the database's write lock"
        );
        blocking(|| {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            match f(&tx)? {
                Ok(r) => tx.commit().map(|_| Ok(r)),
                Err(e) => tx.rollback().map(|_| Err(e)),
            }
            .map_err(Error::from)
        })
    }

    /// A short read on the calling thread, through the reader connection, read-only, outside any
    /// write: `None` when another task is reading on it at this moment, or SQLite would have it
    /// wait, and the caller asks the pool instead. A read in the write-ahead log never waits for
    /// a writer, so it holds a Tokio worker for the lookup's few tens of microseconds, where the
    /// pool would hand the statement to its connection's thread and back (issue #20: each hand-off
    /// on a shared machine is a chance to wait for a core). Only for lookups that an index answers
    /// and that read no large value: a column stored after one in a row is reached through every
    /// overflow page of it.
    pub fn try_read<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>) -> Option<Result<R>> {
        let conn = match self.reader.try_lock() {
            Ok(c) => c,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        match f(&conn) {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DatabaseBusy => None,
            read => Some(read.map_err(Error::from)),
        }
    }
}

/// Whether a statement on [`Direct`] failed on a unique key: a `UNIQUE` constraint or a primary
/// key (SQLite names the two apart; sqlx's `is_unique_violation` takes either, and so does this).
pub fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.extended_code, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY))
}

/// Run `f`, which blocks the thread for a moment, from a Tokio task: on the multi-thread runtime
/// the worker first hands its other tasks to another (`block_in_place`), so none of them waits; on
/// a current-thread runtime (tests) `f` simply runs.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The SQLite write-ahead log as a checkpoint found it: `frames` in the log, `copied` of them
/// into the database file (when that is all of them and no reader holds the log, the next
/// commit starts it again from its beginning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalState {
    /// frames in the log (-1 when the database is not in WAL mode)
    pub frames: i64,
    /// frames copied into the database file
    pub copied: i64,
}

impl Db {
    /// Connect and migrate.
    pub async fn open(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Config(format!(
                "不支持的数据库地址 '{}'（应以 sqlite:// 或 postgres:// 开头）/ unsupported database URL (use sqlite:// or postgres://)",
                redact(url)
            )));
        };
        let file = match backend {
            Backend::Sqlite => create_private_db_file(url)?,
            Backend::Postgres => None,
        };
        let mut opts = AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 8 } else { 16 });
        if backend == Backend::Sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql(SQLITE_PRAGMAS).execute(conn).await?;
                    Ok(())
                })
            });
        }
        if backend == Backend::Postgres {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    // the audit append reads the chain's head after taking its lock, which needs each
                    // statement to see what committed before it: READ COMMITTED, whatever the
                    // server's default (`audit::append`)
                    // and a transaction holding an exclusive key (`Db::exclusive`) sits idle while its
                    // holder works: a server-wide idle timeout must not end it and free the key
                    sqlx::raw_sql(
                        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                         SET idle_in_transaction_session_timeout = 0;",
                    )
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(url).await.map_err(|e| {
            Error::Config(format!("无法连接数据库 {} / cannot connect to the database: {e}", redact(url)))
        })?;
        if backend == Backend::Sqlite {
            // WAL: readers never wait for the writer; persistent in the file
            sqlx::raw_sql("PRAGMA journal_mode = WAL;").execute(&pool).await?;
        }
        let write_lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let direct = match file {
            Some(f) if Direct::plain(url) => Some(std::sync::Arc::new(Direct::open(&f, write_lock.clone())?)),
            _ => None,
        };
        let db = Db { pool, backend, write_lock, direct };
        db.migrate().await?;
        Ok(db)
    }

    /// Apply the embedded migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        let _w = self.write_lock.lock().await;
        // several instances may start at once on one PostgreSQL database: one migrates, the others
        // wait on a session-level advisory lock and then find the work done
        let mut conn = self.pool.acquire().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
        }
        let result = Self::apply_migrations(&mut conn).await;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
        }
        result
    }

    async fn apply_migrations(conn: &mut sqlx::AnyConnection) -> Result<()> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(*version)
                .bind(*name)
                .bind(crate::now_text())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, name, "migration applied");
        }
        Ok(())
    }

    /// Hold `key` exclusively among all instances until [`Exclusive::release`] (or the guard's
    /// drop): a PostgreSQL transaction-level advisory lock in a transaction of its own, so work
    /// made of several transactions (load, issue, store, record a certificate) runs on one instance
    /// at a time, and a guard dropped on an error path rolls back and unlocks. On SQLite it does
    /// nothing: the data directory lock makes this process the database's only one, and callers
    /// serialise their own tasks.
    pub async fn exclusive(&self, key: i64) -> Result<Exclusive> {
        if self.backend != Backend::Postgres {
            return Ok(Exclusive { tx: None });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut *tx).await?;
        Ok(Exclusive { tx: Some(tx) })
    }

    /// Take (or keep) the lease of the job `name` for `ttl`, for `holder` (one id per process).
    /// True when this instance is to run the job now: the lease was free, had run out, or was
    /// already this holder's. One conditional update, correct on any number of instances.
    pub async fn lease(&self, name: &str, holder: &str, ttl: chrono::Duration) -> Result<bool> {
        let now = chrono::Utc::now();
        let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let _w = self.write_lock.lock().await;
        sqlx::query("INSERT INTO job_leases (name, holder, until) VALUES ($1, '', '') ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .execute(&self.pool)
            .await?;
        let taken = sqlx::query(
            "UPDATE job_leases SET holder = $1, until = $2 WHERE name = $3 AND (until < $4 OR holder = $1)",
        )
        .bind(holder)
        .bind(fmt(now + ttl))
        .bind(name)
        .bind(fmt(now))
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    /// Serialise a transaction with every other one taking the same `key`, on any instance: a
    /// PostgreSQL transaction-level advisory lock (released at commit or rollback). SQLite runs
    /// one writer at a time already, so there it does nothing.
    pub async fn serialise(&self, tx: &mut sqlx::AnyConnection, key: i64) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(key).execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// On SQLite, copy what the write-ahead log holds into the database file without waiting for
    /// readers or writers (a passive checkpoint), and say how long the log is. `medsign serve`
    /// runs it off the requests' path ([`Db::checkpoint_pause`]); a commit that finds the log
    /// fully copied starts it again from its beginning. Without it, the commit that crossed the
    /// autocheckpoint's size copied and synced the whole log itself while every other writer
    /// waited. On PostgreSQL this is a no-op (`frames` 0).
    pub async fn checkpoint(&self) -> Result<WalState> {
        if self.backend != Backend::Sqlite {
            return Ok(WalState::default());
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&self.pool).await?;
        Ok(WalState { frames: row.try_get(1)?, copied: row.try_get(2)? })
    }

    /// How long the background checkpointer waits after a checkpoint that found the log at
    /// `now`, when the one before found it at `before` and it had waited `last`. While commits
    /// keep coming, every 10 ms; while nothing is written, twice as long each time up to a second,
    /// so that a pause of a few milliseconds in a burst of writes does not leave a second of them
    /// to a request's commit.
    /// Under a sustained load of timestamp tokens (docs/BENCHMARKS.md, issue #20) commits never
    /// pause long enough for the log to start again, and it grows to the autocheckpoint's 10,000
    /// pages; the commit that crosses that size copies and syncs whatever the background has not,
    /// while every writer waits. With a checkpoint once a second that was about 35 ms on a
    /// virtual disk, twice a second; every 100 ms, 10–15 ms once the TSA's recorder commits
    /// every few tokens ([`Direct`]: 200 MB of log a second); every 10 ms, about 2 ms.
    pub fn checkpoint_pause(before: WalState, now: WalState, last: std::time::Duration) -> std::time::Duration {
        let quick = std::time::Duration::from_millis(10);
        if now == before && now.copied >= now.frames {
            (last * 2).clamp(quick, std::time::Duration::from_secs(1))
        } else {
            quick
        }
    }

    /// On SQLite, write a consistent copy of the whole database to `out` while it stays in use
    /// (`VACUUM INTO`: one read transaction, so the copy is the database as of one moment, with
    /// the write-ahead log's committed pages in it and free pages dropped). `out` must not exist;
    /// it is created empty with mode 0600 first, since the copy holds the wrapped keys and the
    /// encrypted personal data. On PostgreSQL use `pg_dump` (docs/cluster.md): an error says so.
    pub async fn backup_to(&self, out: &std::path::Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(Error::Invalid(
                "PostgreSQL 请用 pg_dump -Fc 备份（见 docs/cluster.md）/ back PostgreSQL up with pg_dump -Fc (docs/cluster.md)"
                    .into(),
            ));
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(out).map_err(|e| {
            Error::Invalid(format!("无法创建备份文件 {} / cannot create the backup file: {e}", out.display()))
        })?;
        let path = out.to_str().ok_or_else(|| {
            Error::Invalid(format!("备份路径须为 UTF-8 / the backup path must be UTF-8: {}", out.display()))
        })?;
        if let Err(e) = sqlx::query("VACUUM INTO $1").bind(path).execute(&self.pool).await {
            let _ = std::fs::remove_file(out);
            return Err(e.into());
        }
        Ok(())
    }

    /// After erasing a secret: on SQLite, copy the write-ahead log into the database file and
    /// truncate it, so the erased value survives in neither file (with `secure_delete` the freed
    /// space is zeroed). A checkpoint that readers hold back is retried by the next erase; on
    /// PostgreSQL this is a no-op (dead row versions go with autovacuum — see docs/security.md).
    pub async fn erase_checkpoint(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await?;
            let busy: i64 = row.try_get(0)?;
            if busy != 0 {
                tracing::warn!("the write-ahead log could not be truncated after an erasure; the next erasure retries");
            }
        }
        Ok(())
    }

    /// Whether the database answers and every migration is applied (`/readyz`).
    pub async fn ready(&self) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM schema_migrations").fetch_one(&self.pool).await?;
        let n: i64 = row.try_get("n")?;
        Ok(n as usize == MIGRATIONS.len())
    }
}

/// A URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Create `dir` (and missing parents) readable by the medsign user only (0700 on Unix); a
/// directory that already exists is left as it is (its mode is the operator's choice).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Create the SQLite file of `url` with mode 0600 before SQLite does (it would use 0644 under
/// the usual umask). SQLite gives the `-wal`, `-shm` and `-journal` files the mode of the
/// database file, so they are 0600 too. An existing file, or an in-memory database, is left alone.
/// The file's path, `None` in memory.
fn create_private_db_file(url: &str) -> Result<Option<std::path::PathBuf>> {
    use std::str::FromStr;
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("数据库地址无效 {} / invalid database URL: {e}", redact(url))))?;
    let path = opts.get_filename().to_path_buf();
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    if path.exists() || !url.contains("mode=rwc") {
        return Ok(Some(path));
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(&path) {
        Ok(_) => Ok(Some(path)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Some(path)),
        Err(e) => {
            Err(Error::Config(format!("无法创建数据库文件 {} / cannot create the database file: {e}", path.display())))
        }
    }
}

/// An exclusive lock on the data directory: a second `medsign serve` on the same directory
/// refuses to start. Released when dropped (or when the process dies).
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Create the directory if needed (0700, [`create_private_dir`]) and take the lock.
    pub fn acquire(dir: &Path) -> Result<Self> {
        create_private_dir(dir).map_err(|e| {
            Error::Config(format!("无法创建数据目录 {} / cannot create the data directory: {e}", dir.display()))
        })?;
        let path = dir.join("medsign.lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| {
            Error::Config(format!("无法打开锁文件 {} / cannot open the lock file: {e}", path.display()))
        })?;
        file.try_lock().map_err(|_| {
            Error::Config(format!(
                "数据目录 {} 正被另一个 medsign 进程使用 / the data directory is in use by another medsign process",
                dir.display()
            ))
        })?;
        Ok(Self { _file: file })
    }
}

/// The tests of this crate, and their helpers (the crates above have the same in
/// `medsign-testkit`, which this crate's tests cannot use: it depends on this crate).
#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every backend the tests can reach: SQLite always; PostgreSQL when
    /// `MEDSIGN_TEST_POSTGRES_URL` is set (scripts/test starts a server and sets it; CI must).
    pub(crate) async fn backends() -> Vec<(Option<tempfile::TempDir>, Db)> {
        let (d, db) = temp_db().await;
        let mut v = vec![(Some(d), db)];
        match std::env::var("MEDSIGN_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()).ok_or(()) {
            Ok(url) => v.push((None, pg_db(&url).await)),
            Err(_) => {
                assert!(std::env::var("CI").is_err(), "CI must test PostgreSQL: run scripts/test");
                eprintln!("note: PostgreSQL not tested (MEDSIGN_TEST_POSTGRES_URL unset; scripts/test sets it)");
            }
        }
        v
    }

    /// A fresh PostgreSQL database on the server of `admin_url`.
    async fn pg_db(admin_url: &str) -> Db {
        Db::open(&pg_url(admin_url).await).await.unwrap()
    }

    /// The URL of a fresh, empty PostgreSQL database on the server of `admin_url`.
    async fn pg_url(admin_url: &str) -> String {
        sqlx::any::install_default_drivers();
        let name = format!("medsign_t_{}", uuid::Uuid::new_v4().simple());
        let admin = AnyPool::connect(admin_url).await.expect("PostgreSQL reachable");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        let base = &admin_url[..admin_url.rfind('/').expect("URL has a database")];
        format!("{base}/{name}")
    }

    /// A fresh SQLite database in a temporary directory.
    pub(crate) async fn temp_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::open(&url).await.unwrap();
        (dir, db)
    }

    /// Text with a NUL is the caller's input, not a storage failure: PostgreSQL refuses it
    /// (SQLSTATE 22021), which becomes a 400; SQLite stores it.
    #[tokio::test]
    async fn text_the_database_cannot_hold_is_invalid_input_not_an_outage() {
        for (_d, db) in backends().await {
            let r: Result<String, crate::Error> =
                sqlx::query_scalar("SELECT $1").bind("a\u{0}b").fetch_one(&db.pool).await.map_err(Into::into);
            match db.backend {
                Backend::Postgres => assert!(matches!(r, Err(crate::Error::Invalid(_))), "{r:?}"),
                Backend::Sqlite => assert_eq!(r.unwrap(), "a\u{0}b"),
            }
        }
    }

    /// Two instances starting at once on one fresh PostgreSQL database both come up; each
    /// migration is applied once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_starting_together_migrate_once() {
        let Some(admin_url) = std::env::var("MEDSIGN_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
            assert!(std::env::var("CI").is_err(), "CI must test PostgreSQL: run scripts/test");
            return;
        };
        sqlx::any::install_default_drivers();
        for _ in 0..3 {
            let name = format!("medsign_t_{}", uuid::Uuid::new_v4().simple());
            let admin = AnyPool::connect(&admin_url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
            let url = format!("{}/{name}", &admin_url[..admin_url.rfind('/').unwrap()]);
            let (a, b, c) = tokio::join!(Db::open(&url), Db::open(&url), Db::open(&url));
            let (a, _b, _c) = (a.unwrap(), b.unwrap(), c.unwrap());
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations").fetch_one(&a.pool).await.unwrap();
            assert_eq!(n as usize, MIGRATIONS.len());
            assert!(a.ready().await.unwrap());
        }
    }

    /// A fresh PostgreSQL database and two `Db` handles on it (two pools, two process locks):
    /// what two `medsign serve` instances are to each other. None when PostgreSQL is not set up.
    async fn two_instances() -> Option<(Db, Db)> {
        let Some(admin_url) = std::env::var("MEDSIGN_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) else {
            assert!(std::env::var("CI").is_err(), "CI must test PostgreSQL: run scripts/test");
            return None;
        };
        let url = pg_url(&admin_url).await;
        Some((Db::open(&url).await.unwrap(), Db::open(&url).await.unwrap()))
    }

    /// Issue #17: two instances appending to the audit chain at once, 200 transactions each with
    /// a business write: none fails, the chain is gap-free and verifies. (Without the audit lock
    /// both read the same head: `duplicate key … audit_log_pkey`.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_instances_append_to_one_audit_chain() {
        let Some((a, b)) = two_instances().await else { return };
        let mut tasks = Vec::new();
        for i in 0..200 {
            let db = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let ctx = crate::audit::Context {
                    actor: "system".into(),
                    ip: "local".into(),
                    user_agent: "test".into(),
                    request_id: format!("cluster-{i}"),
                };
                let _w = db.write_lock.lock().await;
                let mut tx = db.pool.begin().await?;
                sqlx::query("INSERT INTO job_leases (name, holder, until) VALUES ($1, 'x', 'y')")
                    .bind(format!("row-{i}"))
                    .execute(&mut *tx)
                    .await?;
                let target = format!("row-{i}");
                crate::audit::ok(
                    &mut tx,
                    &ctx,
                    crate::audit::Kind::Admin,
                    "test.write",
                    &target,
                    serde_json::json!({}),
                )
                .await?;
                tx.commit().await?;
                Ok::<_, Error>(())
            }));
        }
        let mut failed = Vec::new();
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                failed.push(e.to_string());
            }
        }
        assert!(failed.is_empty(), "{} of 200 failed, e.g. {:?}", failed.len(), failed.first());
        let r = crate::audit::verify_chain(&a).await.unwrap();
        assert_eq!((r.entries, r.broken), (200, None));
    }

    /// A job lease goes to one instance of several asking at once, stays with it while it renews,
    /// and passes on only when it has run out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_job_lease_has_one_holder() {
        let mut dbs = Vec::new();
        for (_d, db) in backends().await {
            dbs.push((_d, db.clone(), db));
            // (one SQLite instance asks as two holders: the same rules)
        }
        if let Some((a, b)) = two_instances().await {
            dbs.push((None, a, b));
        }
        for (_d, a, b) in dbs {
            let day = chrono::Duration::hours(23);
            let (x, y) = tokio::join!(a.lease("job", "a", day), b.lease("job", "b", day));
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!(x ^ y, "exactly one instance holds it ({x}, {y})");
            let (winner, loser, wdb, ldb) = if x { ("a", "b", &a, &b) } else { ("b", "a", &b, &a) };
            assert!(wdb.lease("job", winner, day).await.unwrap(), "the holder renews");
            assert!(!ldb.lease("job", loser, day).await.unwrap(), "the other waits");
            // the holder dies: once its lease has run out, the other takes it
            sqlx::query("UPDATE job_leases SET until = '2000-01-01T00:00:00.000Z' WHERE name = 'job'")
                .execute(&wdb.pool)
                .await
                .unwrap();
            assert!(ldb.lease("job", loser, day).await.unwrap());
            assert!(!wdb.lease("job", winner, day).await.unwrap());
        }
    }

    /// `exclusive` keeps a key to one holder at a time across instances; a guard dropped without
    /// release (an error path) frees it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_exclusive_key_has_one_holder_at_a_time() {
        let Some((a, b)) = two_instances().await else { return };
        let key = lock_key("test", "x");
        assert_ne!(key, lock_key("test", "y"));
        let first = a.exclusive(key).await.unwrap();
        let waiting = tokio::spawn(async move { b.exclusive(key).await.map(|g| (g, std::time::Instant::now())) });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "the second instance waits while the first holds it");
        drop(first);
        let (second, _) =
            tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await.unwrap().unwrap().unwrap();
        second.release().await.unwrap();
        a.exclusive(key).await.unwrap().release().await.unwrap();
    }

    #[tokio::test]
    async fn every_backend_migrates_and_is_ready() {
        for (_d, db) in backends().await {
            assert!(db.ready().await.unwrap(), "{:?}", db.backend);
            db.migrate().await.unwrap();
        }
    }

    #[tokio::test]
    async fn migrations_apply_once_and_ready() {
        let (dir, db) = temp_db().await;
        assert!(db.ready().await.unwrap());
        db.migrate().await.unwrap(); // idempotent
        drop(db);
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        assert!(Db::open(&url).await.unwrap().ready().await.unwrap(), "reopen keeps everything");
    }

    /// Commits stay in the write-ahead log (none of 1,100 one-page commits makes a request copy
    /// it, as the default 1,000-page autocheckpoint would) until `checkpoint` copies them; the
    /// next commit starts the log again, and the checkpointer's pace follows what it finds.
    #[tokio::test]
    async fn commits_reach_the_database_file_at_the_background_checkpoint() {
        let (dir, db) = temp_db().await;
        db.checkpoint().await.unwrap();
        for v in 0..1100 {
            sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'x', 'y')")
                .bind(10_000 + v as i64)
                .execute(&db.pool)
                .await
                .unwrap();
        }
        // what the database file alone holds (a copy without its log)
        let in_file = |n: &str| {
            let copy = dir.path().join(n);
            std::fs::copy(dir.path().join("t.db"), &copy).unwrap();
            async move {
                let c = Db::open(&format!("sqlite://{}?mode=rwc", copy.display())).await.unwrap();
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations WHERE version >= 10000")
                    .fetch_one(&c.pool)
                    .await
                    .unwrap();
                n
            }
        };
        assert_eq!(in_file("before.db").await, 0, "a commit checkpointed on the request path");
        let after = db.checkpoint().await.unwrap();
        assert_eq!(in_file("after.db").await, 1100);
        assert!(after.frames >= 1100 && after.copied == after.frames, "{after:?}");
        // nothing written since: the same log, and the checkpointer slows down to once a second
        let idle = db.checkpoint().await.unwrap();
        assert_eq!(idle, after);
        let ms = std::time::Duration::from_millis;
        // nothing written: twice as long each time, up to a second
        assert_eq!(Db::checkpoint_pause(after, idle, ms(10)), ms(20));
        assert_eq!(Db::checkpoint_pause(after, idle, ms(640)), ms(1000));
        assert_eq!(Db::checkpoint_pause(after, idle, ms(1000)), ms(1000));
        // one commit starts the log again from its beginning: checkpoints come quickly again
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'x', 'y')")
            .execute(&db.pool)
            .await
            .unwrap();
        let busy = db.checkpoint().await.unwrap();
        assert!(busy.frames >= 1 && busy.frames < after.frames && busy.copied == busy.frames, "{busy:?}");
        assert_eq!(Db::checkpoint_pause(idle, busy, ms(1000)), ms(10));
        // a log left partly copied (a reader held it) keeps the quick pace though it looks the same
        let held = WalState { frames: 40, copied: 12 };
        assert_eq!(Db::checkpoint_pause(held, held, ms(160)), ms(10));
    }

    /// A database in a file of a temporary directory, and its direct connection.
    async fn file_db() -> (tempfile::TempDir, Db, std::sync::Arc<Direct>) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display())).await.unwrap();
        let direct = db.direct.clone().expect("a database file has a direct connection");
        (dir, db, direct)
    }

    /// The job leases `holder` has, as the pool reads them.
    async fn leases_of(db: &Db, holder: &str) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM job_leases WHERE holder = $1")
            .bind(holder)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn direct_writes_commit_whole_or_not_at_all() {
        let (dir, db, direct) = file_db().await;
        let count = || leases_of(&db, "direct");
        let insert = "INSERT INTO job_leases (name, holder, until) VALUES (?1, 'direct', '')";
        // the second row breaks the key: the first is not left behind
        let d = direct.clone();
        let failed = tokio::task::spawn_blocking(move || {
            d.write(|tx| {
                tx.execute(insert, ["a"])?;
                tx.execute(insert, ["a"])
            })
        })
        .await
        .unwrap();
        assert!(matches!(failed, Err(Error::Db(_))), "{failed:?}");
        assert_eq!(count().await, 0);
        // a whole write is what the pool reads next
        let d = direct.clone();
        tokio::task::spawn_blocking(move || {
            d.write(|tx| {
                tx.execute(insert, ["a"])?;
                tx.execute(insert, ["b"])
            })
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(count().await, 2);
        // it opens the pool's file, never creates one (whose mode would be SQLite's, not 0600)
        let missing = dir.path().join("missing.db");
        assert!(matches!(Direct::open(&missing, db.write_lock.clone()), Err(Error::Config(_))));
        assert!(!missing.exists());
        // in memory a second connection would be another database: none
        assert!(Db::open("sqlite::memory:").await.unwrap().direct.is_none());
        // nor for options that a connection opened by its path would not share with the pool
        for (url, plain) in [
            ("sqlite:///d/medsign.db?mode=rwc", true),
            ("sqlite:///d/medsign.db", true),
            ("sqlite:///d/medsign.db?mode=ro", false),
            ("sqlite:///d/medsign.db?mode=rwc&vfs=unix-excl", false),
            ("sqlite:///d/medsign.db?immutable=1", false),
        ] {
            assert_eq!(Direct::plain(url), plain, "{url}");
        }
    }

    /// A writer inside a Tokio task (the phone's server half): a refusal keeps none of what the
    /// transaction wrote, a failure neither, an answer all of it; on the multi-thread runtime the
    /// worker's other tasks go on meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_in_a_task_keeps_an_answer_and_nothing_of_a_refusal() {
        let (_dir, db, direct) = file_db().await;
        let count = || leases_of(&db, "task");
        let insert = "INSERT INTO job_leases (name, holder, until) VALUES (?1, 'task', '')";
        let ticking = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        });
        let w = db.write_lock.lock().await;
        let refused = direct
            .transact(&w, |tx| {
                tx.execute(insert, ["a"])?;
                Ok(Err::<(), _>("refused"))
            })
            .unwrap();
        assert_eq!(refused, Err("refused"));
        let failed = direct.transact(&w, |tx| {
            tx.execute(insert, ["b"])?;
            tx.execute(insert, ["b"]).map(|_| Ok::<(), ()>(()))
        });
        assert!(matches!(failed, Err(Error::Db(_))), "{failed:?}");
        // a repeated primary key is a unique violation, as sqlx calls it; another failure is not
        let repeat = direct.transact(&w, |tx| {
            tx.execute(insert, ["c0"])?;
            Ok(tx.execute(insert, ["c0"]).map_err(|e| is_unique_violation(&e)))
        });
        assert_eq!(repeat.unwrap(), Err(true));
        let other = direct.transact(&w, |tx| {
            Ok(tx.execute("INSERT INTO no_such_table VALUES (1)", []).map_err(|e| is_unique_violation(&e)))
        });
        assert_eq!(other.unwrap(), Err(false));
        let kept = direct.transact(&w, |tx| tx.execute(insert, ["c"]).map(Ok::<usize, ()>)).unwrap();
        assert_eq!(kept, Ok(1));
        drop(w);
        assert_eq!(count().await, 1);
        ticking.await.unwrap();
    }

    /// A read on the reader connection sees what is committed and nothing a writer has not
    /// committed yet, never waits for that writer, cannot write, gives way (`None`) while another
    /// read holds it, and holds nothing once its lookup is done (a checkpoint can empty the log).
    #[tokio::test]
    async fn a_direct_read_sees_commits_only_and_writes_nothing() {
        let (dir, db, direct) = file_db().await;
        let holders = |c: &rusqlite::Connection| -> rusqlite::Result<Vec<String>> {
            c.prepare("SELECT name FROM job_leases WHERE holder = 'read' ORDER BY name")?
                .query_map([], |r| r.get(0))?
                .collect()
        };
        let insert = "INSERT INTO job_leases (name, holder, until) VALUES (?1, 'read', '')";
        let w = db.write_lock.lock().await;
        direct.transact(&w, |tx| tx.execute(insert, ["a"]).map(Ok::<_, ()>)).unwrap().unwrap();
        let seen = direct
            .transact(&w, |tx| {
                tx.execute(insert, ["b"])?;
                // the writer's transaction is open: the read neither waits for it nor sees its row
                let during = direct.try_read(holders).expect("the reader is free").unwrap();
                // a second read while the first holds the reader gives way to the pool
                let nested = direct.try_read(|_| Ok(direct.try_read(|_| Ok(())).is_none())).unwrap().unwrap();
                Ok(Ok::<_, ()>((during, nested)))
            })
            .unwrap()
            .unwrap();
        drop(w);
        assert_eq!(seen, (vec!["a".to_string()], true));
        assert_eq!(direct.try_read(holders).unwrap().unwrap(), ["a", "b"]);
        let wrote = direct.try_read(|c| Ok(c.execute(insert, ["c"]).map_err(|e| e.sqlite_error_code()))).unwrap();
        assert_eq!(wrote.unwrap(), Err(Some(rusqlite::ErrorCode::ReadOnly)), "the reader is read-only");
        // no read transaction outlives its lookup (cached statements are reset): a checkpoint
        // that must wait for every reader empties the log at once
        let cached = "SELECT count(*) FROM job_leases WHERE holder = 'read'";
        let read = direct.try_read(|c| c.prepare_cached(cached)?.query_row([], |r| r.get::<_, i64>(0)));
        assert_eq!(read.unwrap().unwrap(), 2);
        // (from a connection of its own that waits for nothing; the pool's connections may hold
        // a read of their own until their next statement, which `erase_checkpoint` allows for)
        let other = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        other.busy_timeout(std::time::Duration::ZERO).unwrap();
        let truncate = || -> (i64, i64) {
            other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap()
        };
        // a read under way holds the log: the checkpoint is busy
        let held = direct.try_read(|c| {
            let mut st = c.prepare("SELECT name FROM job_leases")?;
            let mut rows = st.query([])?;
            rows.next()?;
            Ok(truncate())
        });
        assert_eq!(held.unwrap().unwrap().0, 1, "busy while a read is under way");
        assert_eq!(truncate(), (0, 0), "not busy, and the log emptied");
    }

    #[tokio::test]
    async fn bad_urls_and_second_instance_are_refused() {
        assert!(matches!(Db::open("mysql://x").await, Err(Error::Config(_))));
        assert_eq!(redact("postgres://me:secret@h/db"), "postgres://me:***@h/db");
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let second = DataDirLock::acquire(dir.path());
        assert!(second.is_err(), "second lock taken");
        drop(first);
        assert!(DataDirLock::acquire(dir.path()).is_ok());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_data_directory_and_database_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("var/medsign");
        let _lock = DataDirLock::acquire(&data).unwrap();
        assert_eq!(mode(&data), 0o700, "the data directory");
        let db_file = data.join("medsign.db");
        let db = Db::open(&format!("sqlite://{}?mode=rwc", db_file.display())).await.unwrap();
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'x', 'y')")
            .execute(&db.pool)
            .await
            .unwrap();
        for f in ["medsign.db", "medsign.db-wal", "medsign.db-shm"] {
            let p = data.join(f);
            assert!(p.exists(), "{f} (WAL mode)");
            assert_eq!(mode(&p), 0o600, "{f}");
        }
        // a directory that exists keeps the mode the operator gave it
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o750)).unwrap();
        create_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o750);
        // in-memory databases need no file
        assert!(Db::open("sqlite::memory:").await.is_ok());
    }
}
