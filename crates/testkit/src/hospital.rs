//! A hospital to test in: its name, key-encryption key, CAs and TSA; its staff and integration
//! apps.

use medsign_ca::{ca::BuiltinCas, certs::Issuer};
use medsign_crypto::wrap::Kek;
use medsign_directory::{
    apps::{self, App, Scope},
    users::{self, NewUser, Role},
};
use medsign_store::{audit::Context, db::Db};
use medsign_tsa::{clock::Clock, tsa::Tsa};
use sqlx::Row;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The hospital of the tests (`O=` of its certificates).
pub const ORG: &str = "某县人民医院";

/// What the signing tests need: a KEK, the CAs, a TSA on a synchronised test clock.
pub struct World {
    /// the key-encryption key (the same in every World of a test process)
    pub kek: Kek,
    /// the actor of the audit records (the CLI)
    pub ctx: Context,
    /// the built-in SM2 and RSA hierarchies of [`ORG`]
    pub cas: BuiltinCas,
    /// the TSA, on a [`crate::clock::synchronised`] clock (one for the process)
    pub tsa: Arc<Tsa>,
}

/// The server keys of a hospital's CAs and TSA (roots, issuing CAs, OCSP responders, TSA units),
/// made once per test process under one KEK: generating them (RSA above all) was most of what a
/// [`World`] cost. Each World still has its own database, certificates and records; only these
/// keys are the same.
struct Keys {
    /// the bytes of the KEK every World of the process gets
    kek: [u8; 16],
    /// the `server_keys` rows: name, alg, wrapped_key, public_key, created_at
    rows: Vec<[String; 5]>,
}

async fn keys() -> &'static Keys {
    static KEYS: tokio::sync::OnceCell<Keys> = tokio::sync::OnceCell::const_new();
    KEYS.get_or_init(|| async {
        let (_dir, db) = crate::db::temp_db().await;
        let kek = Kek::generate().unwrap();
        let cas = medsign_ca::ca::ensure(&db, &kek, ORG).await.unwrap();
        Tsa::start(&db, &kek, &cas, ORG, &Default::default(), Arc::new(Clock::new(&Default::default()))).await.unwrap();
        let rows = sqlx::query("SELECT name, alg, wrapped_key, public_key, created_at FROM server_keys")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| std::array::from_fn(|i| r.try_get::<String, _>(i).unwrap()))
            .collect();
        Keys { kek: *kek.as_bytes(), rows }
    })
    .await
}

/// A [`World`] in `db`: the process's KEK and the keys of its CAs and TSA, with the CAs and the
/// TSA made from them (or loaded when `db` has them).
pub async fn world(db: &Db) -> World {
    let keys = keys().await;
    let kek = Kek::from_bytes(&keys.kek).unwrap();
    for row in &keys.rows {
        let insert = "INSERT INTO server_keys (name, alg, wrapped_key, public_key, created_at) \
                      VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
        row.iter().fold(sqlx::query(insert), |q, v| q.bind(v)).execute(&db.pool).await.unwrap();
    }
    let cas = medsign_ca::ca::ensure(db, &kek, ORG).await.unwrap();
    // one clock for the process: polling one takes 150 ms, nothing in a World polls it again, and
    // its sample stays good for the default holdover (15 min), longer than a test process runs
    static CLOCK: tokio::sync::OnceCell<Arc<Clock>> = tokio::sync::OnceCell::const_new();
    let clock = CLOCK.get_or_init(|| async { Arc::new(crate::clock::synchronised().await) }).await;
    let tsa = Tsa::start(db, &kek, &cas, ORG, &Default::default(), clock.clone()).await.unwrap();
    World { kek, ctx: Context::cli(), cas, tsa }
}

/// What issuance needs to know: `cas`, [`ORG`], a placeholder public URL, no CA channel.
pub fn issuer(cas: &BuiltinCas) -> Issuer<'_> {
    Issuer { cas, organization: ORG, public_url: "http://x", channels: None }
}

/// A doctor with an employee number and a name, nothing else; other fields with
/// `NewUser { title: Some(…), ..staff(no, name) }`.
pub fn staff(employee_no: &str, name: &str) -> NewUser {
    NewUser {
        employee_no: employee_no.into(),
        name: name.into(),
        department: None,
        title: None,
        phone: None,
        id_card: None,
        role: Role::Doctor,
    }
}

/// Add `users` to the directory in one batch (audited as the CLI).
pub async fn add_staff(db: &Db, kek: &Kek, users: &[NewUser]) {
    users::create_many(db, kek, &Context::cli(), users).await.unwrap();
}

/// An integration app called `name` with the `sign` scope: the app and its token (`app_id.secret`).
pub async fn sign_app(db: &Db, kek: &Kek, name: &str) -> (App, Zeroizing<String>) {
    apps::create(db, kek, &Context::cli(), name, &[Scope::Sign]).await.unwrap()
}
