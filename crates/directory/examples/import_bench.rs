//! Import of N users from an XLSX workbook into a fresh SQLite database, timed (issue #3 target:
//! 10,000 users < 5 s). `cargo run --release -p medsign-directory --example import_bench -- 10000`
use medsign_directory::{import, users};
use medsign_store::{audit::Context, db::Db};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["工号", "姓名", "科室", "职称", "手机", "身份证号", "角色"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for i in 0..n {
        let r = i + 1;
        ws.write_string(r, 0, format!("E{i:06}")).unwrap();
        ws.write_string(r, 1, format!("医生{i}")).unwrap();
        ws.write_string(r, 2, format!("D{:02}", i % 40)).unwrap();
        ws.write_string(r, 3, "主治医师").unwrap();
        ws.write_string(r, 4, "13800000000").unwrap();
        ws.write_string(r, 5, "11010519491231002X").unwrap();
        ws.write_string(r, 6, if i % 3 == 0 { "护士" } else { "医生" }).unwrap();
    }
    let bytes = wb.save_to_buffer().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display())).await.unwrap();
    let kek = medsign_crypto::wrap::Kek::generate().unwrap();
    let deps: Vec<_> = (0..40)
        .map(|i| medsign_directory::departments::NewDepartment {
            code: format!("D{i:02}"),
            name: format!("科室{i}"),
            parent_code: None,
        })
        .collect();
    medsign_directory::departments::create_many(&db, &Context::cli(), &deps).await.unwrap();
    let t = Instant::now();
    let parsed = import::parse(&bytes).unwrap();
    let t_parse = t.elapsed();
    let made = users::create_many(&db, &kek, &Context::cli(), &parsed.users).await.unwrap();
    let total = t.elapsed();
    println!(
        "imported {} users from a {} KB XLSX: parse {:.2} s, total {:.2} s",
        made.len(),
        bytes.len() / 1024,
        t_parse.as_secs_f64(),
        total.as_secs_f64()
    );
}
