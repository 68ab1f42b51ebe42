//! Seams: what the signing context needs from the contexts above it, as traits they implement and
//! the server wires. Signing never names the phone context; the phone implements these.
//!
//! - [`GrantSigners`]: an `auto` signer without server custody may still sign with the doctor's
//!   two-party key while the doctor's session grant to the business system is active (R3.5). The
//!   grant, its key material and how the phone's half is run belong to the phone context.
//! - [`FlowEvents`]: when a flow completes, contexts that started it for their own purpose (the
//!   scan-to-login assertion) learn of it.
//!
//! Both have a `None…` implementation for callers with no phone context (the CLI, tests).

use medsign_crypto::{Signer, wrap::Kek};
use medsign_pki::cert::Cert;
use medsign_store::{Result, audit::Context, db::Db};
use std::{future::Future, pin::Pin};

/// A boxed future that can cross threads (axum handlers need `Send`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A doctor's two-party key usable under a session grant, as one [`Signer`].
pub struct GrantedKey {
    /// signs once per call with the two-party key (d is never formed)
    pub signer: Box<dyn Signer>,
    /// the grant it signs under
    pub grant_id: String,
    /// the two-party key
    pub key_id: String,
    /// the key's current certificate
    pub cert: Cert,
}

/// Where `auto` signers find a doctor's session grant.
///
/// Contract: `Ok(None)` when there is no usable grant (none, expired, used up, certificate not
/// active) — the flow then fails with a clear error; `Ok(Some(_))` counts one use of the grant;
/// `Err` for storage or key failures, and a `Conflict` when an active grant's key is held by
/// another instance (the one that started it) or was lost in a restart.
pub trait GrantSigners: Send + Sync {
    /// The signer of `employee_no`'s active grant to `app_id`, if any; counts one use.
    fn signer<'a>(
        &'a self,
        db: &'a Db,
        kek: &'a Kek,
        employee_no: &'a str,
        app_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<GrantedKey>>>;
}

/// Told when a flow reaches a final state.
///
/// Contract: called after the flow's state is committed; an `Err` is reported to the caller but
/// does not undo the flow.
pub trait FlowEvents: Send + Sync {
    /// Flow `flow_id` has completed (every signer signed).
    fn completed<'a>(&'a self, db: &'a Db, ctx: &'a Context, flow_id: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// No session grants: every `auto` signer needs server custody.
pub struct NoGrants;

impl GrantSigners for NoGrants {
    fn signer<'a>(
        &'a self,
        _: &'a Db,
        _: &'a Kek,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<GrantedKey>>> {
        Box::pin(async { Ok(None) })
    }
}

/// Nobody listens to flow events.
pub struct NoEvents;

impl FlowEvents for NoEvents {
    fn completed<'a>(&'a self, _: &'a Db, _: &'a Context, _: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}
