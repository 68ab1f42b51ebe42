//! The error envelope on every route: the real `medsign serve` is asked every path and method its
//! OpenAPI document lists — without credentials, with the bootstrap token and a broken body, and
//! with unknown ids — and every error answer must be the JSON envelope whose `request_id` is the
//! `X-Request-Id` header of the same answer (a plain `?` in a handler, an extractor's rejection and
//! a middleware's refusal alike). A 500 must say `internal`, never `configuration`.

mod common;
use common::*;

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `{param}` segments replaced by ids that exist nowhere.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let j = rest[i..].find('}').map_or(rest.len(), |j| i + j + 1);
        out.push_str("nope-0000");
        rest = &rest[j..];
    }
    out + rest
}

#[test]
fn every_error_body_carries_the_request_id_of_its_header() {
    let d = Dir::new();
    let s = Server::start(&d, &[]);
    let token = s.token().expect("bootstrap token");
    let (st, _, spec) = s.req("GET", "/api/openapi.json", None, None, b"");
    assert_eq!(st, 200);
    let mut checked = 0;
    let mut routes = 0;
    for (path, ops) in spec["paths"].as_object().expect("paths") {
        for method in ops.as_object().unwrap().keys() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            routes += 1;
            let m = method.to_uppercase();
            let p = concrete(path);
            let tries: [(Option<&str>, &[u8]); 3] =
                [(None, b""), (Some(token.as_str()), b"{\"broken\": "), (Some(token.as_str()), b"[]")];
            for (tok, body) in tries {
                let (st, head, b) = s.raw(&m, &p, tok, Some("application/json"), body);
                if st < 400 {
                    continue;
                }
                let id = header(&head, "x-request-id").unwrap_or_else(|| panic!("{m} {p}: no X-Request-Id\n{head}"));
                let ctype = header(&head, "content-type").unwrap_or("");
                if ctype.starts_with("application/timestamp-reply") || ctype.starts_with("application/ocsp-response") {
                    continue; // the protocol's own error answer (RFC 3161 / RFC 6960)
                }
                let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_else(|_| {
                    panic!("{m} {p} → {st}: not the JSON envelope: {}", String::from_utf8_lossy(&b))
                });
                assert_eq!(v["request_id"].as_str(), Some(id), "{m} {p} → {st}: {v}");
                assert!(v["code"].as_str().is_some_and(|c| !c.is_empty()), "{m} {p}: {v}");
                assert!(v["message"].as_str().is_some_and(|c| !c.is_empty()), "{m} {p}: {v}");
                assert_ne!(v["code"], "configuration", "{m} {p}: an internal error is `internal`");
                if st == 500 {
                    assert_eq!(v["code"], "internal", "{m} {p}: {v}");
                }
                checked += 1;
            }
        }
    }
    assert!(routes > 80, "the OpenAPI document lists {routes} operations");
    assert!(checked > routes, "{checked} error answers checked over {routes} operations");

    // a specific code a front end acts on: an unknown device session
    let (st, _, v) = s.req("GET", "/mobile/v1/records", Some("mt_nope"), None, b"");
    assert_eq!((st, v["code"].as_str()), (401, Some("session_invalid")), "{v}");
    let (st, _, v) = s.req("GET", "/mobile/v1/records", None, None, b"");
    assert_eq!((st, v["code"].as_str()), (401, Some("session_invalid")), "{v}");

    // a handler's own `?` (an unknown CA family) and an unknown route
    for p in ["/pki/crl?ca=x", "/no/such/route"] {
        let (st, head, v) = s.req("GET", p, None, None, b"");
        assert!(st >= 400, "{p}");
        assert_eq!(v["request_id"].as_str(), header(&head, "x-request-id"), "{p}: {v}");
        assert!(!v["request_id"].as_str().unwrap_or("").is_empty(), "{p}: {v}");
    }
    s.stop();
}

#[test]
fn a_sane_request_id_from_the_client_is_kept_in_header_and_body() {
    let d = Dir::new();
    let s = Server::start(&d, &[]);
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    use std::io::{Read, Write};
    write!(c, "GET /api/v1/users/9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: his-trace-42\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert_eq!(header(head, "x-request-id"), Some("his-trace-42"));
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["request_id"], "his-trace-42");
    s.stop();
}

#[test]
fn a_caller_without_the_scope_is_refused_before_its_body_is_read() {
    let d = Dir::new();
    let s = Server::start(&d, &[]);
    let admin = s.token().expect("bootstrap token");
    let (st, v) = s.json("POST", "/admin/v1/apps", Some(&admin), r#"{"name":"LIS","scopes":["users:read"]}"#);
    assert_eq!(st, 201, "{v}");
    let lis = v["token"].as_str().unwrap().to_string();
    // a broken body to routes of scopes this app does not hold: 403, not 400 (the schema stays
    // private to those allowed to call)
    for (m, p) in [
        ("POST", "/api/v1/sign-flows/sf_x/revoke"),
        ("POST", "/api/v1/certificates/00/revoke"),
        ("POST", "/api/v1/timestamps"),
        ("POST", "/api/v1/verify/data"),
        ("POST", "/api/v1/users"),
    ] {
        let (st, _, v) = s.req(m, p, Some(&lis), Some("application/json"), b"{\"broken\": ");
        assert_eq!((st, v["code"].as_str()), (403, Some("forbidden")), "{m} {p}: {v}");
    }
    // with the scope, the same broken body is a 400
    let (st, _, v) = s.req("POST", "/api/v1/users", Some(&admin), Some("application/json"), b"{\"broken\": ");
    assert_eq!(st, 400, "{v}");
    s.stop();
}
