//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4): requests by method,
//! route and status, request-duration histograms by route, and the database pool.

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{Arc, Mutex},
    time::Instant,
};

/// Histogram bucket bounds, seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        *self.requests.lock().expect("metrics").entry((method.to_string(), route.to_string(), status)).or_default() +=
            1;
        let mut d = self.durations.lock().expect("metrics");
        let h = d.entry(route.to_string()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Middleware (route layer): time and count every matched request.
pub async fn track(State(s): State<Arc<crate::AppState>>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    s.metrics.observe(&method, &route, resp.status().as_u16(), start.elapsed().as_secs_f64());
    resp
}

/// `GET /metrics`.
pub async fn render(State(s): State<Arc<crate::AppState>>) -> Response {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP medsign_build_info medsign version\n# TYPE medsign_build_info gauge");
    let _ = writeln!(out, "medsign_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(
        out,
        "# HELP medsign_http_requests_total HTTP requests by method, route and status\n# TYPE medsign_http_requests_total counter"
    );
    for ((m, r, st), n) in s.metrics.requests.lock().expect("metrics").iter() {
        let _ = writeln!(
            out,
            "medsign_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{st}\"}} {n}",
            label(m),
            label(r)
        );
    }
    let _ = writeln!(
        out,
        "# HELP medsign_http_request_duration_seconds request duration by route\n# TYPE medsign_http_request_duration_seconds histogram"
    );
    for (r, h) in s.metrics.durations.lock().expect("metrics").iter() {
        let r = label(r);
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "medsign_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {}",
                h.counts[i]
            );
        }
        let _ = writeln!(out, "medsign_http_request_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "medsign_http_request_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
        let _ = writeln!(out, "medsign_http_request_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
    }
    let clock = s.tsa.clock.status();
    let _ = writeln!(out, "# HELP medsign_clock_state TSA clock state (1 = current)\n# TYPE medsign_clock_state gauge");
    for st in ["INSYNC", "SOON_OUT_OF_SYNC", "OUT_OF_SYNC", "UNKNOWN"] {
        let _ = writeln!(out, "medsign_clock_state{{state=\"{st}\"}} {}", u8::from(clock.state.name() == st));
    }
    if let (Some(o), Some(u)) = (clock.offset_ms, clock.uncertainty_ms) {
        let _ = writeln!(
            out,
            "# HELP medsign_clock_offset_seconds offset of the system clock from the time source\n# TYPE medsign_clock_offset_seconds gauge"
        );
        let _ = writeln!(out, "medsign_clock_offset_seconds {}", o / 1000.0);
        let _ = writeln!(
            out,
            "# HELP medsign_clock_uncertainty_seconds error bound of the clock now\n# TYPE medsign_clock_uncertainty_seconds gauge"
        );
        let _ = writeln!(out, "medsign_clock_uncertainty_seconds {}", u / 1000.0);
    }
    let pool = &s.db.pool;
    let _ = writeln!(
        out,
        "# HELP medsign_db_pool_connections database pool connections\n# TYPE medsign_db_pool_connections gauge"
    );
    let _ = writeln!(out, "medsign_db_pool_connections{{state=\"open\"}} {}", pool.size());
    let _ = writeln!(out, "medsign_db_pool_connections{{state=\"idle\"}} {}", pool.num_idle());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
