//! Both databases: every storage test runs on SQLite and, when a server is there, PostgreSQL.

use medsign_store::db::Db;
use sqlx::AnyPool;

/// Every backend the tests can reach: SQLite always; PostgreSQL when
/// `MEDSIGN_TEST_POSTGRES_URL` is set (scripts/test starts a server and sets it; CI must).
pub async fn backends() -> Vec<(Option<tempfile::TempDir>, Db)> {
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
pub async fn pg_db(admin_url: &str) -> Db {
    sqlx::any::install_default_drivers();
    let name = format!("medsign_t_{}", uuid::Uuid::new_v4().simple());
    let admin = AnyPool::connect(admin_url).await.expect("PostgreSQL reachable");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    let base = &admin_url[..admin_url.rfind('/').expect("URL has a database")];
    Db::open(&format!("{base}/{name}")).await.unwrap()
}

/// A fresh SQLite database in a temporary directory.
pub async fn temp_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = Db::open(&url).await.unwrap();
    (dir, db)
}

/// SQLite's plan of `sql` with `params` (the details of `EXPLAIN QUERY PLAN`, joined by "; "),
/// read through the database file's reader connection: what a test checks to show that a
/// statement searches an index instead of reading every row.
pub fn query_plan(db: &Db, sql: &str, params: &[&str]) -> String {
    let read = db.direct.as_ref().expect("a database file").try_read(|c| {
        c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map(medsign_store::rusqlite::params_from_iter(params), |r| r.get::<_, String>(3))?
            .collect::<Result<Vec<_>, _>>()
    });
    read.expect("the reader is free").unwrap().join("; ")
}
