//! The end-to-end channel's keys (issue #17 item 3, docs/gateway.md): the SM2 keys the servers
//! open phones' sealed calls with, one generation after another.
//!
//! Generation 1 is the custody key `mobile-channel`, made at the first start; `medsign channel
//! rotate` makes generation `g + 1` (custody key `mobile-channel.<g + 1>`) and has generation `g`
//! endorse it ([`e2e::endorse`]), so a phone that pinned an older key follows the endorsements to
//! the new one ([`e2e::follow`]) instead of stopping. The servers keep opening calls under the
//! previous key as well, so a phone that has not read the channel since is not refused. With
//! `--compromised` the new key has no endorsement and the old one is withdrawn at once: whoever
//! holds the old key (and it is assumed someone does) cannot lead phones to a key of theirs, and
//! every phone must be activated again.
//!
//! What is published is public: the keys' points and the endorsements. Everything the servers
//! load is checked against the custody keys (wrapped under the KEK): a database writer without the
//! KEK can withhold a rotation, not substitute a key.

use medsign_crypto::{
    KeyAlg, PrivateKey,
    e2e::{self, Step},
    sm2::{Sm2PublicKey, Sm2SecretKey, Sm2Signature},
    wrap::Kek,
};
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    custody,
    db::Db,
};
use sqlx::Row;

/// The custody key of generation 1.
pub const KEY_NAME: &str = "mobile-channel";
/// How many keys of the succession are published (oldest dropped): a phone pinned to a key
/// further back must be activated again.
pub const HISTORY_MAX: usize = 16;

/// How often a running server looks for a rotated key while it answers `GET /mobile/v1/channel`
/// (one indexed read): how long after a rotation every instance publishes the new key.
pub const REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// A key the servers open sealed calls with.
pub struct Held {
    /// its generation
    pub generation: u32,
    /// the key
    pub key: Sm2SecretKey,
}

/// The channel's keys as the servers hold them.
pub struct Keys {
    /// the newest generation: the key phones are told to use
    pub generation: u32,
    /// the keys calls are still opened with, newest first (the newest and the one before it)
    pub accepted: Vec<Held>,
    /// the published succession, oldest first, ending with the newest key: from the last key made
    /// without an endorsement, at most [`HISTORY_MAX`]
    pub steps: Vec<Step>,
}

fn key_name(generation: u32) -> String {
    if generation == 1 { KEY_NAME.to_string() } else { format!("{KEY_NAME}.{generation}") }
}

fn corrupt(what: &str) -> Error {
    Error::Config(format!("通道密钥记录损坏 / the channel key records are corrupt: {what}"))
}

/// The custody key of a generation, checked against the point its record publishes.
async fn held(db: &Db, kek: &Kek, generation: u32, published: &str) -> Result<Sm2SecretKey> {
    let PrivateKey::Sm2(key) = custody::ensure_key(db, kek, &key_name(generation), KeyAlg::Sm2).await? else {
        return Err(corrupt("not an SM2 key"));
    };
    if hex::encode(key.public_key().to_sec1_uncompressed()) != published {
        return Err(corrupt(&format!("generation {generation} is not its custody key")));
    }
    Ok(key)
}

/// Record generation 1 (the key of the first start) when nothing is recorded yet; idempotent.
async fn ensure_first(db: &Db, kek: &Kek) -> Result<()> {
    if newest(db).await?.is_some() {
        return Ok(());
    }
    let PrivateKey::Sm2(key) = custody::ensure_key(db, kek, KEY_NAME, KeyAlg::Sm2).await? else {
        return Err(corrupt("not an SM2 key"));
    };
    let _w = db.write_lock.lock().await;
    sqlx::query(
        "INSERT INTO channel_keys (generation, key_name, public_key, endorsement, accepted, created_at) \
         VALUES (1, $1, $2, NULL, 1, $3) ON CONFLICT (generation) DO NOTHING",
    )
    .bind(KEY_NAME)
    .bind(hex::encode(key.public_key().to_sec1_uncompressed()))
    .bind(medsign_store::now_text())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The newest generation recorded (one indexed read: what instances poll to notice a rotation).
pub async fn newest(db: &Db) -> Result<Option<u32>> {
    let g: Option<i64> = sqlx::query_scalar("SELECT MAX(generation) FROM channel_keys").fetch_one(&db.pool).await?;
    g.map(|g| u32::try_from(g).map_err(|_| corrupt("generation out of range"))).transpose()
}

/// The keys, making generation 1 on a database that has none (at start, under the provisioning
/// lock).
pub async fn open(db: &Db, kek: &Kek) -> Result<Keys> {
    ensure_first(db, kek).await?;
    load(db, kek).await
}

/// The keys as recorded.
pub async fn load(db: &Db, kek: &Kek) -> Result<Keys> {
    let rows =
        sqlx::query("SELECT generation, public_key, endorsement, accepted FROM channel_keys ORDER BY generation")
            .fetch_all(&db.pool)
            .await?;
    let mut steps = Vec::with_capacity(rows.len());
    let mut accepted = Vec::new();
    for r in &rows {
        let generation =
            u32::try_from(r.try_get::<i64, _>("generation")?).map_err(|_| corrupt("generation out of range"))?;
        let point: String = r.try_get("public_key")?;
        let key = hex::decode(&point)
            .ok()
            .and_then(|b| Sm2PublicKey::from_sec1(&b).ok())
            .ok_or_else(|| corrupt("a public key is not an SM2 point"))?;
        let endorsement = match r.try_get::<Option<String>, _>("endorsement")? {
            Some(h) => Some(
                hex::decode(&h)
                    .ok()
                    .and_then(|b| Sm2Signature::from_raw(&b).ok())
                    .ok_or_else(|| corrupt("an endorsement is not an SM2 signature"))?,
            ),
            None => None,
        };
        if r.try_get::<i64, _>("accepted")? != 0 {
            accepted.push(Held { generation, key: held(db, kek, generation, &point).await? });
        }
        steps.push(Step { generation, key, endorsement });
    }
    let Some(last) = steps.last() else {
        return Err(corrupt("no channel key is recorded"));
    };
    let generation = last.generation;
    if accepted.last().map(|h| h.generation) != Some(generation) {
        return Err(corrupt("the newest key is not accepted"));
    }
    accepted.reverse();
    let from = steps.iter().rposition(|s| s.endorsement.is_none()).unwrap_or(0);
    let from = from.max(steps.len().saturating_sub(HISTORY_MAX));
    steps.drain(..from);
    Ok(Keys { generation, accepted, steps })
}

/// What [`rotate`] made.
pub struct Rotated {
    /// the new key's generation
    pub generation: u32,
    /// `SM3` of its point, hex: what phones pin from now on
    pub fingerprint: String,
}

/// Make the next channel key. Unless `compromised`, the newest key endorses it and stays accepted
/// beside it (the one before is withdrawn); with `compromised`, no endorsement, and only the new
/// key is accepted. Running servers take it up within [`REFRESH`]. Two rotations
/// at once: one fails (the generation is the record's key).
pub async fn rotate(db: &Db, kek: &Kek, ctx: &Context, compromised: bool) -> Result<Rotated> {
    ensure_first(db, kek).await?;
    let g = newest(db).await?.ok_or_else(|| corrupt("no channel key is recorded"))?;
    let point: String = sqlx::query_scalar("SELECT public_key FROM channel_keys WHERE generation = $1")
        .bind(i64::from(g))
        .fetch_one(&db.pool)
        .await?;
    let previous = held(db, kek, g, &point).await?;
    let next_gen = g.checked_add(1).ok_or_else(|| corrupt("generation out of range"))?;
    let PrivateKey::Sm2(next) = custody::ensure_key(db, kek, &key_name(next_gen), KeyAlg::Sm2).await? else {
        return Err(corrupt("not an SM2 key"));
    };
    let endorsement = if compromised {
        None
    } else {
        Some(hex::encode(e2e::endorse(&previous, next_gen, next.public_key())?.to_raw()))
    };
    let fingerprint = hex::encode(e2e::fingerprint(next.public_key()));
    {
        let _w = db.write_lock.lock().await;
        let mut tx = db.pool.begin().await?;
        let made = sqlx::query(
            "INSERT INTO channel_keys (generation, key_name, public_key, endorsement, accepted, created_at) \
             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (generation) DO NOTHING",
        )
        .bind(i64::from(next_gen))
        .bind(key_name(next_gen))
        .bind(hex::encode(next.public_key().to_sec1_uncompressed()))
        .bind(endorsement.as_deref())
        .bind(medsign_store::now_text())
        .execute(&mut *tx)
        .await?;
        if made.rows_affected() == 0 {
            return Err(Error::coded(
                medsign_store::error::Refusal::Conflict,
                "channel_rotation_raced",
                "另一次通道密钥更换同时进行，请确认后再试 / another rotation of the channel key ran at the same time; check and try again",
            ));
        }
        // the newest key before this one stays accepted unless it was compromised
        let keep_from = if compromised { next_gen } else { g };
        sqlx::query("UPDATE channel_keys SET accepted = 0 WHERE generation < $1 AND accepted <> 0")
            .bind(i64::from(keep_from))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let ev = audit::Event {
        kind: Kind::Admin,
        action: "channel.rotate",
        target: "channel",
        outcome: "ok",
        details: serde_json::json!({"generation": next_gen, "fingerprint": fingerprint, "compromised": compromised}),
    };
    audit::record(db, ctx, &ev).await?;
    Ok(Rotated { generation: next_gen, fingerprint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotations_chain_the_keys_and_a_compromise_breaks_the_chain() {
        for (_dir, db) in medsign_testkit::db::backends().await {
            rotations_on(&db).await;
        }
    }

    async fn rotations_on(db: &Db) {
        let dir = tempfile::tempdir().unwrap();
        let (kek, _) = custody::load_kek(dir.path(), None).unwrap();
        let first = open(db, &kek).await.unwrap();
        assert_eq!((first.generation, first.accepted.len(), first.steps.len()), (1, 1, 1));
        let again = open(db, &kek).await.unwrap();
        assert_eq!(again.steps[0].key, first.steps[0].key, "the first key is made once");
        let pin = e2e::fingerprint(&first.steps[0].key);

        let r2 = rotate(db, &kek, &Context::cli(), false).await.unwrap();
        let k = load(db, &kek).await.unwrap();
        assert_eq!((k.generation, r2.generation), (2, 2));
        assert_eq!(k.accepted.iter().map(|h| h.generation).collect::<Vec<_>>(), [2, 1], "the previous key still opens");
        assert_eq!(hex::encode(e2e::fingerprint(k.accepted[0].key.public_key())), r2.fingerprint);
        e2e::follow(&pin, &k.steps).unwrap();

        rotate(db, &kek, &Context::cli(), false).await.unwrap();
        let k = load(db, &kek).await.unwrap();
        assert_eq!(k.accepted.iter().map(|h| h.generation).collect::<Vec<_>>(), [3, 2], "generation 1 withdrawn");
        e2e::follow(&pin, &k.steps).unwrap();

        rotate(db, &kek, &Context::cli(), true).await.unwrap();
        let k = load(db, &kek).await.unwrap();
        assert_eq!(k.accepted.iter().map(|h| h.generation).collect::<Vec<_>>(), [4], "nothing older opens");
        assert_eq!(k.steps.iter().map(|s| s.generation).collect::<Vec<_>>(), [4], "nothing older is published");
        assert!(e2e::follow(&pin, &k.steps).is_err());

        // a record whose point is not its custody key is refused on loading
        sqlx::query("UPDATE channel_keys SET public_key = $1 WHERE generation = 4")
            .bind(hex::encode(Sm2SecretKey::generate().unwrap().public_key().to_sec1_uncompressed()))
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(load(db, &kek).await.is_err());
        assert!(rotate(db, &kek, &Context::cli(), false).await.is_err());
    }
}
