//! A hospital to test in: its name, key-encryption key, CAs and TSA; its staff and integration
//! apps.

use medsign_ca::{ca::BuiltinCas, certs::Issuer};
use medsign_crypto::wrap::Kek;
use medsign_directory::{
    apps::{self, App, Scope},
    users::{self, NewUser, Role},
};
use medsign_store::{audit::Context, db::Db};
use medsign_tsa::tsa::Tsa;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The hospital of the tests (`O=` of its certificates).
pub const ORG: &str = "某县人民医院";

/// What the signing tests need: a KEK, the CAs, a TSA on a synchronised test clock.
pub struct World {
    /// a fresh key-encryption key
    pub kek: Kek,
    /// the actor of the audit records (the CLI)
    pub ctx: Context,
    /// the built-in SM2 and RSA hierarchies of [`ORG`]
    pub cas: BuiltinCas,
    /// the TSA, on a [`crate::clock::synchronised`] clock
    pub tsa: Arc<Tsa>,
}

/// A [`World`] in `db`: a new KEK, the CAs and the TSA (created, or loaded when `db` has them).
pub async fn world(db: &Db) -> World {
    let kek = Kek::generate().unwrap();
    let cas = medsign_ca::ca::ensure(db, &kek, ORG).await.unwrap();
    let clock = Arc::new(crate::clock::synchronised().await);
    let tsa = Tsa::start(db, &kek, &cas, ORG, &Default::default(), clock).await.unwrap();
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
