//! Server-sent events for PC pages waiting on a phone (issue #7): a `state` event whenever the
//! watched object's state changes, ending after a final one. Polls storage (250 ms), so it works the
//! same whichever node the phone reached.

use axum::response::{
    IntoResponse, Response,
    sse::{Event, KeepAlive, Sse},
};
use std::{future::Future, time::Duration};

/// Stream `state` events: `first` now, then whatever `fetch` returns when it differs from the last
/// one sent; `(value, final)`; the stream ends after a final value or when `fetch` fails.
pub fn state_events<F, Fut>(first: (serde_json::Value, bool), fetch: F) -> Response
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<(serde_json::Value, bool)>> + Send,
{
    let stream =
        futures_util::stream::unfold((Some(first), None::<serde_json::Value>, false), move |(next, last, done)| {
            let fetch = fetch.clone();
            async move {
                if done {
                    return None;
                }
                let mut current = next;
                loop {
                    let (v, fin) = match current.take() {
                        Some(x) => x,
                        None => {
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            fetch().await?
                        }
                    };
                    if last.as_ref() != Some(&v) {
                        let ev = Event::default().event("state").data(v.to_string());
                        return Some((Ok::<_, std::convert::Infallible>(ev), (None, Some(v), fin)));
                    }
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
