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

/// How long after a rotation the servers go on naming the previous key to phones while they
/// already open calls under the new one: every instance that serves a request looks for the new
/// key within [`REFRESH`], so by then none refuses a phone that moved to it (after a compromise
/// the new key is named at once — the old one opens nothing).
pub const ADVERTISE_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// A key the servers open sealed calls with.
pub struct Held {
    /// its generation
    pub generation: u32,
    /// the key
    pub key: Sm2SecretKey,
}

/// The channel's keys as the servers hold them.
pub struct Keys {
    /// the newest generation
    pub generation: u32,
    /// when the newest key was made (the database's record)
    pub made_at: chrono::DateTime<chrono::Utc>,
    /// the keys calls are still opened with, newest first: the newest, and the one before it
    /// unless the newest was made after a compromise
    pub accepted: Vec<Held>,
    /// the published succession, oldest first, ending with the newest key: from the last key made
    /// without an endorsement, at most [`HISTORY_MAX`], every endorsement checked
    pub steps: Vec<Step>,
}

/// Which of the accepted keys (newest first, `accepted` of them) phones are told to use: the
/// previous key until [`ADVERTISE_AFTER`] has passed since this instance first held the newest
/// (`held_for`), then the newest — timed by each instance's own clock, so that hosts whose clocks
/// differ still wait; a rotation more than a minute old by the database's record (`made_at`, at
/// `now`) is not waited for again after a restart.
pub fn advertised(
    made_at: chrono::DateTime<chrono::Utc>,
    held_for: std::time::Duration,
    accepted: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> usize {
    let recent = now < made_at + chrono::Duration::minutes(1);
    usize::from(recent && held_for < ADVERTISE_AFTER && accepted > 1)
}

fn key_name(generation: u32) -> String {
    if generation == 1 { KEY_NAME.to_string() } else { format!("{KEY_NAME}.{generation}") }
}

fn corrupt(what: &str) -> Error {
    Error::Config(format!("通道密钥记录损坏 / the channel key records are corrupt: {what}"))
}

/// The custody key of a generation (never made here), checked against the point its record
/// publishes.
async fn held(db: &Db, kek: &Kek, generation: u32, published: &str) -> Result<Sm2SecretKey> {
    let PrivateKey::Sm2(key) = custody::existing_key(db, kek, &key_name(generation)).await? else {
        return Err(corrupt("不是 SM2 密钥 / not an SM2 key"));
    };
    if hex::encode(key.public_key().to_sec1_uncompressed()) != published {
        return Err(corrupt(&format!(
            "第 {generation} 代不是其托管密钥 / generation {generation} is not its custody key"
        )));
    }
    Ok(key)
}

/// Record generation 1 (the key of the first start) when nothing is recorded yet; idempotent.
async fn ensure_first(db: &Db, kek: &Kek) -> Result<()> {
    if newest(db).await?.is_some() {
        return Ok(());
    }
    let PrivateKey::Sm2(key) = custody::ensure_key(db, kek, KEY_NAME, KeyAlg::Sm2).await? else {
        return Err(corrupt("不是 SM2 密钥 / not an SM2 key"));
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
    g.map(|g| u32::try_from(g).map_err(|_| corrupt("代数超出范围 / generation out of range"))).transpose()
}

/// The keys, making generation 1 on a database that has none (at start, under the provisioning
/// lock).
pub async fn open(db: &Db, kek: &Kek) -> Result<Keys> {
    ensure_first(db, kek).await?;
    load(db, kek).await
}

/// The keys as recorded: the newest [`HISTORY_MAX`], each endorsement checked against the key
/// before it, and only the newest (and the one before it, unless the newest ended the chain)
/// accepted — a database writer without the KEK can hold a rotation back, not slip a key in.
pub async fn load(db: &Db, kek: &Kek) -> Result<Keys> {
    let mut rows = sqlx::query(
        "SELECT generation, public_key, endorsement, accepted, created_at FROM channel_keys \
         ORDER BY generation DESC LIMIT $1",
    )
    .bind(HISTORY_MAX as i64)
    .fetch_all(&db.pool)
    .await?;
    rows.reverse();
    let mut steps: Vec<Step> = Vec::with_capacity(rows.len());
    let mut points = Vec::with_capacity(rows.len());
    let mut flags = Vec::with_capacity(rows.len());
    for r in &rows {
        let generation = u32::try_from(r.try_get::<i64, _>("generation")?)
            .map_err(|_| corrupt("代数超出范围 / generation out of range"))?;
        let point: String = r.try_get("public_key")?;
        let key = hex::decode(&point)
            .ok()
            .and_then(|b| Sm2PublicKey::from_sec1(&b).ok())
            .ok_or_else(|| corrupt("公钥不是 SM2 点 / a public key is not an SM2 point"))?;
        let endorsement = match r.try_get::<Option<String>, _>("endorsement")? {
            Some(h) => Some(
                hex::decode(&h)
                    .ok()
                    .and_then(|b| Sm2Signature::from_raw(&b).ok())
                    .ok_or_else(|| corrupt("背书不是 SM2 签名 / an endorsement is not an SM2 signature"))?,
            ),
            None => None,
        };
        if let (Some(before), Some(sig)) = (steps.last(), &endorsement) {
            let one = Step { generation, key, endorsement: Some(*sig) };
            let pair = [Step { generation: before.generation, key: before.key, endorsement: None }, one];
            e2e::follow(&e2e::fingerprint(&before.key), &pair).map_err(|_| {
                corrupt(&format!(
                    "第 {generation} 代的背书不成立 / the endorsement of generation {generation} does not hold"
                ))
            })?;
        } else if let Some(before) = steps.last()
            && before.generation.checked_add(1) != Some(generation)
        {
            return Err(corrupt("代数不连续 / the generations are not consecutive"));
        }
        points.push(point);
        flags.push(r.try_get::<i64, _>("accepted")? != 0);
        steps.push(Step { generation, key, endorsement });
    }
    let (Some(last), Some(r)) = (steps.last(), rows.last()) else {
        return Err(corrupt("没有通道密钥 / no channel key is recorded"));
    };
    let generation = last.generation;
    let made_at = chrono::DateTime::parse_from_rfc3339(&r.try_get::<String, _>("created_at")?)
        .map_err(|_| corrupt("时间无效 / a time is not valid"))?
        .with_timezone(&chrono::Utc);
    // the newest, and the one before it while the newest continues the chain
    let n = steps.len();
    let may = |i: usize| i + 1 == n || (i + 2 == n && last.endorsement.is_some());
    if !flags[n - 1] || flags.iter().enumerate().any(|(i, a)| *a && !may(i)) {
        return Err(corrupt("接受的密钥不对 / the accepted keys are not the newest"));
    }
    let mut accepted = Vec::with_capacity(2);
    for i in (0..n).rev().filter(|i| flags[*i]) {
        accepted
            .push(Held { generation: steps[i].generation, key: held(db, kek, steps[i].generation, &points[i]).await? });
    }
    let from = steps.iter().rposition(|s| s.endorsement.is_none()).unwrap_or(0);
    steps.drain(..from);
    Ok(Keys { generation, made_at, accepted, steps })
}

/// What [`rotate`] made.
pub struct Rotated {
    /// the new key's generation
    pub generation: u32,
    /// phone sessions ended (after a compromise)
    pub sessions_ended: u64,
    /// `SM3` of its point, hex: what phones pin from now on
    pub fingerprint: String,
}

/// Make the next channel key. Unless `compromised`, the newest key endorses it and stays accepted
/// beside it (the one before is withdrawn); with `compromised`, no endorsement, only the new key
/// is accepted, and every phone's session ends. Running servers take it up within [`REFRESH`]. Two rotations
/// at once: one fails (the generation is the record's key).
pub async fn rotate(db: &Db, kek: &Kek, ctx: &Context, compromised: bool) -> Result<Rotated> {
    ensure_first(db, kek).await?;
    let g = newest(db).await?.ok_or_else(|| corrupt("没有通道密钥 / no channel key is recorded"))?;
    let point: String = sqlx::query_scalar("SELECT public_key FROM channel_keys WHERE generation = $1")
        .bind(i64::from(g))
        .fetch_one(&db.pool)
        .await?;
    let previous = held(db, kek, g, &point).await?;
    let next_gen = g.checked_add(1).ok_or_else(|| corrupt("代数超出范围 / generation out of range"))?;
    let PrivateKey::Sm2(next) = custody::ensure_key(db, kek, &key_name(next_gen), KeyAlg::Sm2).await? else {
        return Err(corrupt("不是 SM2 密钥 / not an SM2 key"));
    };
    let endorsement = if compromised {
        None
    } else {
        Some(hex::encode(e2e::endorse(&previous, next_gen, next.public_key())?.to_raw()))
    };
    let fingerprint = hex::encode(e2e::fingerprint(next.public_key()));
    let mut ended = 0;
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
        // whoever holds a compromised key may have opened recorded calls and read the phones'
        // session tokens: none of them is good any more (every phone is activated again anyway)
        if compromised {
            ended = sqlx::query("DELETE FROM mobile_sessions").execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
    }
    let ev = audit::Event {
        kind: Kind::Admin,
        action: "channel.rotate",
        target: "channel",
        outcome: "ok",
        details: serde_json::json!({"generation": next_gen, "fingerprint": fingerprint, "compromised": compromised, "sessions_ended": ended}),
    };
    audit::record(db, ctx, &ev).await?;
    Ok(Rotated { generation: next_gen, fingerprint, sessions_ended: ended })
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
        let (now, s) = (chrono::Utc::now(), std::time::Duration::from_secs);
        assert_eq!(advertised(k.made_at, s(0), 2, now), 1, "the previous key is named for a while");
        assert_eq!(advertised(k.made_at, s(6), 2, now), 0);
        assert_eq!(advertised(k.made_at, s(0), 2, now + chrono::Duration::minutes(2)), 0, "an old rotation");
        assert_eq!(advertised(k.made_at, s(0), 1, now), 0, "after a compromise at once");
        e2e::follow(&pin, &k.steps).unwrap();

        rotate(db, &kek, &Context::cli(), false).await.unwrap();
        let k = load(db, &kek).await.unwrap();
        assert_eq!(k.accepted.iter().map(|h| h.generation).collect::<Vec<_>>(), [3, 2], "generation 1 withdrawn");
        e2e::follow(&pin, &k.steps).unwrap();

        let ended = rotate(db, &kek, &Context::cli(), true).await.unwrap().sessions_ended;
        assert_eq!(ended, 0, "no phone is bound here");
        let k = load(db, &kek).await.unwrap();
        assert_eq!(k.accepted.iter().map(|h| h.generation).collect::<Vec<_>>(), [4], "nothing older opens");
        assert_eq!(k.steps.iter().map(|s| s.generation).collect::<Vec<_>>(), [4], "nothing older is published");
        assert!(e2e::follow(&pin, &k.steps).is_err());

        // what a database writer without the KEK might try, refused on loading: an older key
        // accepted again, an endorsement of another point, a point that is not its custody key
        let sql = |q: &'static str| sqlx::query(q);
        sql("UPDATE channel_keys SET accepted = 1 WHERE generation = 3").execute(&db.pool).await.unwrap();
        assert!(load(db, &kek).await.is_err(), "a withdrawn key accepted again");
        sql("UPDATE channel_keys SET accepted = 0 WHERE generation = 3").execute(&db.pool).await.unwrap();
        load(db, &kek).await.unwrap();
        let e2: String = sqlx::query_scalar("SELECT endorsement FROM channel_keys WHERE generation = 2")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE channel_keys SET endorsement = $1 WHERE generation = 3")
            .bind(&e2)
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(load(db, &kek).await.is_err(), "an endorsement that does not hold");
        sqlx::query("UPDATE channel_keys SET public_key = $1 WHERE generation = 4")
            .bind(hex::encode(Sm2SecretKey::generate().unwrap().public_key().to_sec1_uncompressed()))
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(load(db, &kek).await.is_err());
        assert!(rotate(db, &kek, &Context::cli(), false).await.is_err());
    }
}
