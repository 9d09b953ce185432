//! Requests answered before their body was read to the end (a 401 or 403 before the body, a 413
//! for a declared length over the route's limit or at the body limit) have the rest of the body
//! read and discarded before the answer goes out, over HTTP/2 and HTTP/1.1.
//!
//! Enters: every request, with the handler's response. Leaves: the same response, sent after the
//! unread rest of the request body has arrived. Without this, hyper answers and then, over HTTP/2,
//! resets the stream while the client is still sending (RST_STREAM: curl 7.88 reports "Stream error
//! in the HTTP/2 framing layer" instead of the answer) or, over HTTP/1.1, closes the connection
//! under it (reqwest reports "error writing a body to connection: Broken pipe" instead of the 401
//! or 413: `tests/tenant_route_auth.rs`, `early_answers_to_large_bodies_reach_http1_clients`). The
//! discard is bounded by [`DRAIN_MAX_BYTES`] and [`DRAIN_TIMEOUT`]; past either, the answer goes
//! out and the stream is reset (the connection closed) as before.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// At most this many unread body bytes are discarded to let an answer arrive whole.
pub const DRAIN_MAX_BYTES: u64 = 128 * 1024 * 1024;

/// The discard gives up after this long.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The request body, shared between the handler (which reads what it needs) and [`drain`] (which
/// discards the rest afterwards).
struct SharedBody(Arc<Mutex<Option<Body>>>);

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let Ok(mut guard) = self.0.lock() else {
            return Poll::Ready(None);
        };
        match guard.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .map_or(true, |g| g.as_ref().is_none_or(Body::is_end_stream))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(Body::size_hint))
            .unwrap_or_default()
    }
}

/// The middleware (see the module doc).
pub async fn drain(req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let shared = Arc::new(Mutex::new(Some(body)));
    let response = next
        .run(Request::from_parts(
            parts,
            Body::new(SharedBody(Arc::clone(&shared))),
        ))
        .await;
    let rest = shared.lock().ok().and_then(|mut g| g.take());
    if let Some(mut body) = rest.filter(|b| !b.is_end_stream()) {
        let discarded = tokio::time::timeout(DRAIN_TIMEOUT, discard(&mut body)).await;
        if !matches!(discarded, Ok(true)) {
            tracing::info!(
                status = response.status().as_u16(),
                "Request body too long to discard; the stream is reset (the connection closed) after the answer."
            );
        }
    }
    response
}

/// Reads and drops frames until the body ends (true) or [`DRAIN_MAX_BYTES`] were seen (false).
async fn discard(body: &mut Body) -> bool {
    let mut seen = 0u64;
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                seen = seen.saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
                if seen > DRAIN_MAX_BYTES {
                    return false;
                }
            }
        }
    }
}
