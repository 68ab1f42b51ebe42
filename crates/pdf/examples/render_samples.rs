//! Writes sample renderings to a directory (for eyes and for docs): `cargo run -p medsign-pdf --example render_samples -- DIR`.
use medsign_pdf::{Appearance, SignOptions, prepare, round_seal_png, template::Template};

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "target/samples".into());
    std::fs::create_dir_all(&dir).unwrap();
    let seal = round_seal_png("某某县人民医院电子签章", Some("门诊专用"), 300).unwrap();
    std::fs::write(format!("{dir}/seal.png"), &seal).unwrap();
    let t = Template::from_json(medsign_pdf::template::builtin()[0].1).unwrap();
    let data = serde_json::json!({
        "hospital": "某某县人民医院", "category": "普通", "fee_type": "医保", "department": "内科",
        "outpatient_no": "MZ20261127001", "patient_name": "王小明", "gender": "男", "age": "45岁",
        "diagnosis": "上呼吸道感染；高血压病 2 级",
        "items": [{"drug": "阿莫西林胶囊 0.25g×24粒", "dosage": "0.5g", "usage": "口服 每日三次", "quantity": "2盒"}],
        "amount": "¥56.80"
    });
    let pdf = t.render(&data).unwrap();
    let opts = SignOptions {
        field_name: "doctor".into(),
        appearance: Appearance {
            image: Some(seal),
            lines: vec!["张三 主治医师".into(), "2026-11-27 20:30:00".into(), "证书 0A1B2C".into()],
        },
        reserve: 64,
        ..Default::default()
    };
    let signed = prepare(&pdf, &opts).unwrap().finish(&[1]).unwrap();
    let seal_opts = SignOptions {
        field_name: "hospital_seal".into(),
        appearance: Appearance {
            image: Some(round_seal_png("某某县人民医院", None, 260).unwrap()),
            lines: vec![
                "某某县人民医院（电子签章）".into(),
                "2026-11-27 20:30:00 (UTC+8)".into(),
                "证书 0A1B2C".into(),
            ],
        },
        reserve: 64,
        ..Default::default()
    };
    let signed = prepare(&signed, &seal_opts).unwrap().finish(&[1]).unwrap();
    std::fs::write(format!("{dir}/prescription.pdf"), signed).unwrap();
    let t = Template::from_json(medsign_pdf::template::builtin()[1].1).unwrap();
    let data = serde_json::json!({
        "hospital": "某某县人民医院", "patient_name": "李华", "gender": "女", "age": "32岁", "patient_id": "ZY0001",
        "sample_no": "S-1024", "department": "内科", "bed_no": "12", "specimen": "血清", "diagnosis": "体检",
        "items": [{"code": "ALT", "name": "丙氨酸氨基转移酶", "result": "56", "flag": "↑", "unit": "U/L", "reference": "7–40"},
                  {"code": "GLU", "name": "葡萄糖", "result": "5.1", "flag": "", "unit": "mmol/L", "reference": "3.9–6.1"}],
        "remarks": "标本无溶血。", "collected_at": "2026-11-27 08:10", "received_at": "2026-11-27 08:40"
    });
    std::fs::write(format!("{dir}/lab-report.pdf"), t.render(&data).unwrap()).unwrap();
}
