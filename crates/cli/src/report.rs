//! Human and JSON reports for `medsign verify`.

use medsign_pki::{
    cert::Cert,
    cms::{Check, CmsReport, Indication, OidStyle},
    path::{PathError, ValidPath},
    time::display_cst,
};

fn mark(c: &Check) -> String {
    format!("{} {}", if c.ok { "✓" } else { "✗" }, c.detail)
}

/// Print a CMS report; returns the exit code.
pub fn print_cms(r: &CmsReport, json: bool) -> i32 {
    if json {
        println!("{}", serde_json::to_string_pretty(r).expect("report serialises"));
    } else {
        println!("验证结果 / Result: {}", r.indication.label());
        println!(
            "格式 / Format: CMS SignedData ({}), {}",
            match r.oid_style {
                OidStyle::Rfc5652 => "RFC 5652",
                OidStyle::Gmt0010 => "GM/T 0010",
            },
            if r.detached { "分离式 / detached" } else { "含原文 / attached" }
        );
        for (i, s) in r.signers.iter().enumerate() {
            println!("签名者 #{} / Signer #{}", i + 1, i + 1);
            println!(
                "  证书 / Certificate: {} (序列号 / serial {})",
                s.subject.as_deref().unwrap_or("?"),
                s.serial.as_deref().unwrap_or("?")
            );
            if let Some(a) = &s.algorithm {
                match &s.sm2_id {
                    Some(id) => println!("  算法 / Algorithm: {a} (SM2 ID \"{id}\")"),
                    None => println!("  算法 / Algorithm: {a}"),
                }
            }
            if let Some(t) = s.signing_time {
                println!("  声明的签名时间 / Claimed signing time: {}", display_cst(t));
            }
            println!("  完整性 / Integrity: {}", mark(&s.integrity));
            println!("  证书链 / Chain (at {}): {}", display_cst(s.validated_at), mark(&s.chain));
            println!("  吊销状态 / Revocation: {}", mark(&s.revocation));
            match &s.timestamp {
                Some(t) => {
                    println!(
                        "  时间戳 / Timestamp: {} — {}; {}",
                        t.time.map(display_cst).unwrap_or_else(|| "?".into()),
                        mark(&t.integrity),
                        mark(&t.chain)
                    );
                }
                None => println!("  时间戳 / Timestamp: 无 / none"),
            }
            println!(
                "  结论 / Indication: {}{}",
                s.indication.label(),
                s.sub_indication.as_deref().map(|x| format!(" ({x})")).unwrap_or_default()
            );
        }
    }
    if r.indication == Indication::TotalPassed { 0 } else { 1 }
}

/// Print a certificate path report; returns the exit code.
pub fn print_cert(leaf: &Cert, r: &Result<ValidPath, PathError>, json: bool) -> i32 {
    if json {
        let v = serde_json::json!({
            "kind": "certificate",
            "subject": leaf.subject_display(),
            "issuer": leaf.issuer_display(),
            "serial": leaf.serial_hex(),
            "not_before": leaf.not_before(),
            "not_after": leaf.not_after(),
            "valid": r.is_ok(),
            "chain": r.as_ref().ok().map(|p| p.chain.iter().map(Cert::subject_display).collect::<Vec<_>>()),
            "error": r.as_ref().err().map(|e| serde_json::json!({"index": e.index, "subject": e.subject, "reason": e.reason.explain()})),
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!("证书 / Certificate: {}", leaf.subject_display());
        println!("  签发者 / Issuer: {}", leaf.issuer_display());
        println!("  序列号 / Serial: {}", leaf.serial_hex());
        println!("  有效期 / Validity: {} — {}", display_cst(leaf.not_before()), display_cst(leaf.not_after()));
        match r {
            Ok(p) => {
                println!("验证结果 / Result: 有效 / VALID");
                println!(
                    "  证书链 / Chain: {}",
                    p.chain.iter().map(Cert::subject_display).collect::<Vec<_>>().join(" → ")
                );
            }
            Err(e) => println!("验证结果 / Result: 无效 / INVALID — {e}"),
        }
    }
    if r.is_ok() { 0 } else { 1 }
}
