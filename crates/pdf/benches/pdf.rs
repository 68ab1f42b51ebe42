//! Criterion benchmarks of the PDF work behind each signing flow (issue #6: 1,000 one-page PDFs
//! with a visible seal and a timestamp in < 10 s; the end-to-end run is bench/flows.sh).

use criterion::{Criterion, criterion_group, criterion_main};
use medsign_pdf::{Appearance, Placement, SignOptions, appearance_pdf, prepare, round_seal_png, template::Template};
use std::hint::black_box;

fn pdf(c: &mut Criterion) {
    let lab = Template::from_json(medsign_pdf::template::builtin()[1].1).unwrap();
    let data = serde_json::json!({
        "hospital": "某某县人民医院", "patient_name": "李华", "gender": "女", "age": "32岁", "patient_id": "ZY0001",
        "sample_no": "S-1024", "department": "内科", "specimen": "血清",
        "items": [{"code": "ALT", "name": "丙氨酸氨基转移酶", "result": "56", "flag": "↑", "unit": "U/L", "reference": "7–40"},
                  {"code": "GLU", "name": "葡萄糖", "result": "5.1", "unit": "mmol/L", "reference": "3.9–6.1"}]
    });
    c.bench_function("template/lab-report render", |b| b.iter(|| lab.render(black_box(&data)).unwrap()));
    c.bench_function("seal/round seal png 260px", |b| {
        b.iter(|| round_seal_png(black_box("某某县人民医院"), None, 260).unwrap())
    });
    let seal = round_seal_png("某某县人民医院", None, 260).unwrap();
    let look = Appearance {
        image: Some(seal),
        lines: vec![
            "某某县人民医院（电子签章）".into(),
            "签署时间 2026-11-27 20:30:00 (UTC+8)".into(),
            "证书 0A1B2C".into(),
        ],
    };
    c.bench_function("appearance/seal 100x100", |b| b.iter(|| appearance_pdf(black_box(&look), 100.0, 100.0).unwrap()));
    let report = lab.render(&data).unwrap();
    let opts = SignOptions {
        field_name: "lab_seal".into(),
        appearance: look.clone(),
        reserve: 16 * 1024,
        ..Default::default()
    };
    c.bench_function("prepare/lab report, seal in its field", |b| {
        b.iter(|| prepare(black_box(&report), &opts).unwrap().covered())
    });
    let blank = medsign_pdf::blank_pdf(595, 842);
    let placed = SignOptions {
        placement: Some(Placement { page: 1, rect: [40.0, 60.0, 200.0, 130.0] }),
        appearance: look,
        reserve: 16 * 1024,
        ..Default::default()
    };
    c.bench_function("prepare/blank page, placed seal", |b| {
        b.iter(|| prepare(black_box(&blank), &placed).unwrap().covered())
    });
}

criterion_group!(benches, pdf);
criterion_main!(benches);
