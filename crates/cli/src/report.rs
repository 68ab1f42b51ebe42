//! Human and JSON reports for `medsign verify`.

use medsign_pdf::verify::PdfReport;
use medsign_pki::{
    cert::Cert,
    cms::{Check, CmsReport, Indication, OidStyle, SignerReport, TimestampReport},
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
            print_signer(s, "  ");
        }
    }
    if r.indication == Indication::TotalPassed { 0 } else { 1 }
}

fn print_timestamp_line(t: &TimestampReport, indent: &str) {
    println!(
        "{indent}时间戳 / Timestamp: {} — {}; {}",
        t.time.map(display_cst).unwrap_or_else(|| "?".into()),
        mark(&t.integrity),
        mark(&t.chain)
    );
}

fn print_signer(s: &SignerReport, indent: &str) {
    println!(
        "{indent}证书 / Certificate: {} (序列号 / serial {})",
        s.subject.as_deref().unwrap_or("?"),
        s.serial.as_deref().unwrap_or("?")
    );
    if let Some(a) = &s.algorithm {
        match &s.sm2_id {
            Some(id) => println!("{indent}算法 / Algorithm: {a} (SM2 ID \"{id}\")"),
            None => println!("{indent}算法 / Algorithm: {a}"),
        }
    }
    if let Some(t) = s.signing_time {
        println!("{indent}声明的签名时间 / Claimed signing time: {}", display_cst(t));
    }
    println!("{indent}完整性 / Integrity: {}", mark(&s.integrity));
    println!("{indent}证书链 / Chain (at {}): {}", display_cst(s.validated_at), mark(&s.chain));
    println!("{indent}吊销状态 / Revocation: {}", mark(&s.revocation));
    match &s.timestamp {
        Some(t) => print_timestamp_line(t, indent),
        None => println!("{indent}时间戳 / Timestamp: 无 / none"),
    }
    println!(
        "{indent}结论 / Indication: {}{}",
        s.indication.label(),
        s.sub_indication.as_deref().map(|x| format!(" ({x})")).unwrap_or_default()
    );
}

/// Print a PDF report; returns the exit code.
pub fn print_pdf(r: &PdfReport, json: bool) -> i32 {
    if json {
        println!("{}", serde_json::to_string_pretty(r).expect("report serialises"));
    } else {
        println!("验证结果 / Result: {}", r.indication.label());
        println!(
            "文件 / File: PDF，{} 个修订版本 / {} revisions{}",
            r.revisions.len(),
            r.revisions.len(),
            r.dss
                .as_ref()
                .map(|d| format!(
                    "；长期验证数据 / LTV data: {} 证书 / certs, {} CRL, {} OCSP",
                    d.certs, d.crls, d.ocsps
                ))
                .unwrap_or_default()
        );
        for p in &r.problems {
            println!("  ✗ {p}");
        }
        for (i, s) in r.signatures.iter().enumerate() {
            let kind = if s.kind == "document_timestamp" {
                "文档时间戳 / Document timestamp"
            } else {
                "签名 / Signature"
            };
            println!("{kind} #{} «{}» ({})", i + 1, s.field, s.sub_filter);
            println!("  覆盖范围 / Covers: {}", s.covers);
            if let Some(p) = s.certification {
                println!("  认证签名 / Certification: DocMDP P={p}");
            }
            if let Some(rep) = &s.report {
                for si in &rep.signers {
                    print_signer(si, "  ");
                }
            }
            if let Some(t) = &s.timestamp {
                print_timestamp_line(t, "  ");
            }
            for c in &s.changes {
                let page = c.page.map(|p| format!("，第 {p} 页 / page {p}")).unwrap_or_default();
                println!(
                    "  {} 其后修改 / Later change: {} {}{page} — {}",
                    if c.allowed { "✓" } else { "✗" },
                    c.code,
                    c.object,
                    c.detail
                );
            }
            println!(
                "  结论 / Indication: {}{}",
                s.indication.label(),
                s.sub_indication.as_deref().map(|x| format!(" ({x})")).unwrap_or_default()
            );
            if let Some(why) = &s.reason {
                println!("  原因 / Reason: {why}");
            }
        }
    }
    if r.indication == Indication::TotalPassed { 0 } else { 1 }
}

/// Print a timestamp token's report (`imprint_checked`: the stamped data was given); returns
/// the exit code.
pub fn print_timestamp(t: &TimestampReport, imprint_checked: bool, json: bool) -> i32 {
    let ok = t.ok() && imprint_checked;
    if json {
        let v = serde_json::json!({"kind": "timestamp", "valid": ok, "imprint_checked": imprint_checked, "report": t});
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        println!(
            "验证结果 / Result: {}",
            if ok {
                "有效 / VALID"
            } else if t.ok() {
                "未核对被盖的数据（用 --content）/ stamped data not checked (give --content)"
            } else {
                "无效 / INVALID"
            }
        );
        print_timestamp_line(t, "  ");
        if let Some(tsa) = &t.tsa {
            println!("  时间戳服务 / TSA: {tsa}");
        }
    }
    if ok { 0 } else { 1 }
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
