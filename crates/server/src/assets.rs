//! Static front ends compiled into the binary (no front-end build step to run; assets
//! embedded). `/sdk/medsign.js` is the PC page SDK, `/demo/his` a demo hospital page (says so). `/m/` is the doctor's H5 app (issue #7): `web/mobile`, the phone-half wrapper
//! `web/wasm/medsign-phone.js` and the WebAssembly module in `web/wasm/pkg` — committed, built
//! reproducibly by `scripts/build-wasm` (paths remapped) and checked for drift by `scripts/test`,
//! so `cargo run -- serve` needs no wasm toolchain.

use axum::{
    extract::Path,
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};

/// (path under /m/, content type, bytes)
const MOBILE: &[(&str, &str, &[u8])] = &[
    ("index.html", "text/html; charset=utf-8", include_bytes!("../../../web/mobile/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/api.js")),
    ("core.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/core.js")),
    ("links.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/links.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/dom.js")),
    ("pages/common.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/pages/common.js")),
    ("pages/enrol.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/pages/enrol.js")),
    ("pages/home.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/pages/home.js")),
    ("pages/sign.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/pages/sign.js")),
    ("pages/pending.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/pages/pending.js")),
    ("pages/grants.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/pages/grants.js")),
    ("pages/records.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/pages/records.js")),
    ("pages/settings.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/mobile/pages/settings.js")),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../../web/mobile/app.css")),
    ("medsign-phone.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/wasm/medsign-phone.js")),
    ("pkg/medsign_wasm.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/wasm/pkg/medsign_wasm.js")),
    ("pkg/medsign_wasm_bg.wasm", "application/wasm", include_bytes!("../../../web/wasm/pkg/medsign_wasm_bg.wasm")),
];

/// The PC page SDK (`/sdk/…`) and the demo HIS page (`/demo/…`, labelled as a demo on the page).
const PC: &[(&str, &str, &[u8])] = &[
    ("sdk/medsign.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/sdk/medsign.js")),
    ("sdk/medsign.d.ts", "text/plain; charset=utf-8", include_bytes!("../../../web/sdk/medsign.d.ts")),
    ("demo/his", "text/html; charset=utf-8", include_bytes!("../../../web/demo/his.html")),
    ("demo/his.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/demo/his.js")),
    ("demo/his.css", "text/css; charset=utf-8", include_bytes!("../../../web/demo/his.css")),
];

/// The console (`/admin/`, issue #18): `web/admin`.
const CONSOLE: &[(&str, &str, &[u8])] = &[
    ("admin/", "text/html; charset=utf-8", include_bytes!("../../../web/admin/index.html")),
    ("admin/console.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/admin/console.js")),
    ("admin/pages.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/admin/pages.js")),
    ("admin/ui.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/admin/ui.js")),
    ("admin/flows.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/admin/flows.js")),
    ("admin/editor.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/admin/editor.js")),
    ("admin/console.css", "text/css; charset=utf-8", include_bytes!("../../../web/admin/console.css")),
];

/// `GET /admin/`, `/admin/console.js`, …: the console's files.
pub async fn console_file(uri: axum::http::Uri) -> Response {
    serve(CONSOLE, uri.path().trim_start_matches('/'))
}

/// `GET /admin` → `/admin/`.
pub async fn console_root() -> Redirect {
    Redirect::permanent("/admin/")
}

/// The page an evidence report's verification link opens (`/verify?sm3=…`): it hashes the file the
/// holder picks in the browser and compares it with the link's digest; nothing is uploaded.
const VERIFY: &[(&str, &str, &[u8])] = &[
    ("verify", "text/html; charset=utf-8", include_bytes!("../../../web/verify/index.html")),
    ("verify/verify.js", "text/javascript; charset=utf-8", include_bytes!("../../../web/verify/verify.js")),
    ("verify/verify.css", "text/css; charset=utf-8", include_bytes!("../../../web/verify/verify.css")),
];

use crate::http::CSP;

fn serve(table: &'static [(&'static str, &'static str, &'static [u8])], path: &str) -> Response {
    match table.iter().find(|(p, _, _)| *p == path) {
        Some((_, ctype, bytes)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "未找到 / not found").into_response(),
    }
}

/// `GET /sdk/{*path}` and `GET /demo/{*path}`: the PC SDK and the demo HIS page.
pub async fn pc_file(uri: axum::http::Uri) -> Response {
    serve(PC, uri.path().trim_start_matches('/'))
}

/// `GET /verify` and `GET /verify/{*path}`: the file check of evidence reports' links.
pub async fn verify_file(uri: axum::http::Uri) -> Response {
    serve(VERIFY, uri.path().trim_start_matches('/'))
}

/// `GET /`: what this server is, with links to the API docs, the phone app (at `public_url`), the
/// file check, readiness and the CA certificates — in Chinese first, with English.
pub async fn home(axum::extract::State(s): axum::extract::State<std::sync::Arc<crate::AppState>>) -> Response {
    let esc = |v: &str| {
        v.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
    };
    let page = std::str::from_utf8(include_bytes!("../../../web/home/index.html"))
        .expect("the landing page is UTF-8")
        .replace("{{ORGANIZATION}}", &esc(&s.organization))
        .replace("{{PHONE_URL}}", &esc(&s.app_url))
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], page).into_response()
}

/// `GET /favicon.svg` (and `/favicon.ico`, which browsers ask for by themselves): the icon.
pub async fn favicon() -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "max-age=86400")],
        include_bytes!("../../../web/home/favicon.svg").as_slice(),
    )
        .into_response()
}

/// `GET /m` → `/m/`.
pub async fn mobile_root() -> Redirect {
    Redirect::permanent("/m/")
}

/// `GET /m/`: the H5 app.
pub async fn mobile_index() -> Response {
    serve(MOBILE, "index.html")
}

/// `GET /m/{*path}`: its files.
pub async fn mobile_file(Path(path): Path<String>) -> Response {
    serve(MOBILE, &path)
}

/// The H5 app's files for an origin of its own (`medsign h5 export`, docs/gateway.md): every file
/// of `/m/` (path, bytes), `index.html` naming the gateway at `api` (`<meta name="medsign-api">`)
/// and carrying the content security policy the server sends, widened to connect to that gateway
/// and nowhere else. `api` must be an `http(s)://` URL without quotes, `<`, `>`, `?` or `#`
/// ([`medsign_config::config::web_url`]); `None` otherwise.
pub fn mobile_export(api: &str) -> Option<Vec<(&'static str, Vec<u8>)>> {
    if !medsign_config::config::web_url(api, true) {
        return None;
    }
    let api = format!("{}/", api.trim_end_matches('/'));
    let rest = api.split_once("://")?.1;
    let origin = &api[..api.len() - rest.len() + rest.find('/').unwrap_or(rest.len())];
    let csp = CSP
        .replace("connect-src 'self'", &format!("connect-src 'self' {origin}"))
        .replace("; frame-ancestors 'none'", "");
    let head = format!(
        "<meta charset=\"utf-8\">\n<meta name=\"medsign-api\" content=\"{api}\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">"
    );
    let files = MOBILE
        .iter()
        .map(|(path, _, bytes)| {
            let bytes = if *path == "index.html" {
                String::from_utf8_lossy(bytes).replacen("<meta charset=\"utf-8\">", &head, 1).into_bytes()
            } else {
                bytes.to_vec()
            };
            (*path, bytes)
        })
        .collect();
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exported_app_names_its_gateway_and_connects_nowhere_else() {
        let files = mobile_export("https://gw.hospital.example").unwrap();
        assert_eq!(files.len(), MOBILE.len());
        let index = String::from_utf8(files.iter().find(|(p, _)| *p == "index.html").unwrap().1.clone()).unwrap();
        assert!(index.contains(r#"<meta name="medsign-api" content="https://gw.hospital.example/">"#), "{index}");
        assert!(index.contains("connect-src 'self' https://gw.hospital.example;"), "{index}");
        assert!(!index.contains("frame-ancestors"), "ignored in a meta policy: left out");
        let with_path = mobile_export("https://hospital.example/gw/").unwrap();
        let index = String::from_utf8(with_path.iter().find(|(p, _)| *p == "index.html").unwrap().1.clone()).unwrap();
        assert!(
            index.contains("connect-src 'self' https://hospital.example;")
                && index.contains("content=\"https://hospital.example/gw/\"")
        );
        for bad in [
            "gw.example",
            "https://gw.example/\"><script>",
            "https://gw.example/?x",
            "javascript:alert(1)",
            "https://",
            "https://gw.example&Tab;*",
            "http://gw.example",
        ] {
            assert!(mobile_export(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_app_and_its_module_are_embedded() {
        assert!(MOBILE.iter().all(|(_, _, b)| !b.is_empty()));
        let wasm = MOBILE.iter().find(|(p, _, _)| p.ends_with(".wasm")).unwrap().2;
        assert_eq!(&wasm[..4], b"\0asm");
        let r = serve(MOBILE, "app.js");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("wasm-unsafe-eval"));
        assert_eq!(serve(MOBILE, "../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(serve(PC, "demo/his").status(), StatusCode::OK);
        let demo = PC.iter().find(|(p, _, _)| *p == "demo/his").unwrap().2;
        assert!(std::str::from_utf8(demo).unwrap().contains("演示页面"), "the demo says it is one");
        assert_eq!(serve(PC, "sdk/medsign.d.ts").status(), StatusCode::OK);
        assert_eq!(serve(VERIFY, "verify").status(), StatusCode::OK);
        assert_eq!(serve(VERIFY, "verify/../verify").status(), StatusCode::NOT_FOUND);
    }
}
