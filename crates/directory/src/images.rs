//! Seal and handwriting images (R1.6, R7.4.4) used by visible PDF signatures. A seal without an
//! uploaded image gets the familiar round red seal generated from the organisation's name (and the
//! department's, straight below the star); an upload replaces it. Images are normalised (transparent
//! PNG trimmed to its ink) and every change is audited with the image's SM3.

use base64::Engine;
use medsign_store::{
    Error, Result,
    audit::{self, Context, Kind},
    db::Db,
};
use serde::Serialize;
use sqlx::Row;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Pixel size of generated seals (about 160 dpi for a 42 mm seal).
pub const SEAL_PX: u32 = 260;

/// An image's record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    /// `seal:hospital`, `seal:dept:<code>`, `user:<employee_no>`
    pub owner: String,
    /// `generated` | `uploaded`
    pub source: String,
    /// SM3 of the PNG, hex
    pub sm3: String,
    /// width, height in pixels
    pub size: [u32; 2],
    /// who changed it last
    pub updated_by: String,
    /// when
    pub updated_at: String,
}

/// The owner key of a seal (`hospital` or a department code).
pub fn seal_owner(seal: &str) -> String {
    if seal == "hospital" { "seal:hospital".into() } else { format!("seal:dept:{seal}") }
}

fn pdf_err(e: medsign_pdf::Error) -> Error {
    Error::Invalid(e.to_string())
}

/// Store `png` (already normalised) for `owner`, audited; `captured_by` is the staff member who
/// drew it on their own phone (their open handwriting tasks are done in the same transaction).
async fn put(
    db: &Db,
    ctx: &Context,
    owner: &str,
    png: &[u8],
    source: &str,
    captured_by: Option<&str>,
) -> Result<ImageInfo> {
    let sm3 = hex::encode(medsign_crypto::hash::sm3(png));
    let now = medsign_store::now_text();
    let _w = db.write_lock.lock().await;
    let mut tx = db.pool.begin().await?;
    // one upsert: two instances setting (or generating) the same image do not collide
    sqlx::query(
        "INSERT INTO images (owner, png_b64, source, sm3, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (owner) DO UPDATE SET png_b64 = excluded.png_b64, source = excluded.source, sm3 = excluded.sm3, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(owner)
    .bind(B64.encode(png))
    .bind(source)
    .bind(&sm3)
    .bind(&ctx.actor)
    .bind(&now)
    .execute(&mut *tx)
    .await?;
    audit::ok(&mut tx, ctx, Kind::Admin, "image.set", owner, serde_json::json!({"source": source, "sm3": sm3})).await?;
    if let Some(no) = captured_by {
        let result = serde_json::json!({"sm3": sm3, "image": format!("/api/v1/users/{no}/handwriting.png")});
        crate::tasks::complete(&mut tx, no, crate::tasks::TaskKind::Handwriting, result).await?;
    }
    tx.commit().await?;
    let (w, h) = medsign_pdf::image_size(png).map_err(pdf_err)?;
    Ok(ImageInfo {
        owner: owner.into(),
        source: source.into(),
        sm3,
        size: [w, h],
        updated_by: ctx.actor.clone(),
        updated_at: now,
    })
}

/// The stored PNG of `owner` and its record.
pub async fn get(db: &Db, owner: &str) -> Result<Option<(Vec<u8>, ImageInfo)>> {
    let Some(r) = sqlx::query("SELECT * FROM images WHERE owner = $1").bind(owner).fetch_optional(&db.pool).await?
    else {
        return Ok(None);
    };
    let png = B64.decode(r.try_get::<String, _>("png_b64")?).map_err(|e| Error::internal_from("images::get", e))?;
    let (w, h) = medsign_pdf::image_size(&png).map_err(pdf_err)?;
    let info = ImageInfo {
        owner: owner.into(),
        source: r.try_get("source")?,
        sm3: r.try_get("sm3")?,
        size: [w, h],
        updated_by: r.try_get("updated_by")?,
        updated_at: r.try_get("updated_at")?,
    };
    Ok(Some((png, info)))
}

/// The seal's rim text and bottom line: the organisation, and the department's name.
async fn seal_text(db: &Db, organization: &str, seal: &str) -> Result<(String, Option<String>)> {
    if seal == "hospital" {
        return Ok((organization.to_string(), None));
    }
    let dep = crate::departments::list(db)
        .await?
        .into_iter()
        .find(|d| d.code == seal)
        .ok_or_else(|| Error::NotFound(format!("科室 {seal} 不存在 / no department {seal}")))?;
    Ok((organization.to_string(), Some(dep.name)))
}

/// Generate (again) the round red seal of `seal` from the names, replacing any image.
pub async fn generate_seal(db: &Db, ctx: &Context, organization: &str, seal: &str) -> Result<ImageInfo> {
    let (rim, bottom) = seal_text(db, organization, seal).await?;
    let png = medsign_pdf::round_seal_png(&rim, bottom.as_deref(), SEAL_PX).map_err(pdf_err)?;
    put(db, ctx, &seal_owner(seal), &png, "generated", None).await
}

/// Upload a seal image (PNG; normalised to transparent and trimmed).
pub async fn upload_seal(db: &Db, ctx: &Context, organization: &str, seal: &str, png: &[u8]) -> Result<ImageInfo> {
    seal_text(db, organization, seal).await?; // the seal must exist
    let png = medsign_pdf::normalize_image(png).map_err(pdf_err)?;
    put(db, ctx, &seal_owner(seal), &png, "uploaded", None).await
}

/// The seal's image: stored, or generated and stored on first use.
pub async fn seal_image(db: &Db, ctx: &Context, organization: &str, seal: &str) -> Result<Vec<u8>> {
    if let Some((png, _)) = get(db, &seal_owner(seal)).await? {
        return Ok(png);
    }
    generate_seal(db, ctx, organization, seal).await?;
    Ok(get(db, &seal_owner(seal)).await?.map(|(p, _)| p).unwrap_or_default())
}

/// Store a staff member's handwritten signature (PNG; normalised).
pub async fn set_handwriting(
    db: &Db,
    kek: &medsign_crypto::wrap::Kek,
    ctx: &Context,
    employee_no: &str,
    png: &[u8],
    on_phone: bool,
) -> Result<ImageInfo> {
    crate::users::get(db, kek, employee_no).await?;
    let png = medsign_pdf::normalize_image(png).map_err(pdf_err)?;
    put(db, ctx, &format!("user:{employee_no}"), &png, "uploaded", on_phone.then_some(employee_no)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn seals_are_generated_once_and_uploads_replace_them() {
        for (_d, db) in medsign_testkit::db::backends().await {
            let ctx = Context::cli();
            let png = seal_image(&db, &ctx, "测试县人民医院", "hospital").await.unwrap();
            let (again, info) = get(&db, "seal:hospital").await.unwrap().unwrap();
            assert_eq!(png, again, "stored on first use, not regenerated");
            assert_eq!(info.source, "generated");
            assert_eq!(info.size, [SEAL_PX, SEAL_PX]);
            // an upload replaces it, normalised
            let mut img = image::RgbaImage::from_pixel(64, 64, image::Rgba([255, 255, 255, 255]));
            for x in 10..50 {
                img.put_pixel(x, 20, image::Rgba([200, 0, 0, 255]));
            }
            let mut c = std::io::Cursor::new(Vec::new());
            img.write_to(&mut c, image::ImageFormat::Png).unwrap();
            let info = upload_seal(&db, &ctx, "x", "hospital", c.get_ref()).await.unwrap();
            assert_eq!((info.source.as_str(), info.size), ("uploaded", [40, 1]));
            assert_ne!(seal_image(&db, &ctx, "x", "hospital").await.unwrap(), png);
            // unknown department, garbage
            assert!(matches!(generate_seal(&db, &ctx, "x", "nope").await, Err(Error::NotFound(_))));
            assert!(matches!(upload_seal(&db, &ctx, "x", "hospital", b"GIF89a").await, Err(Error::Invalid(_))));
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'image.set'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            assert_eq!(n, 2);
        }
    }
}
