//! Requests that stall: a body that stops arriving ends after the server's request
//! timeout, and one that keeps arriving too slowly (a byte now and then, never idle
//! that long) ends once it averages under [`MIN_BODY_RATE`] after the server's
//! `body_grace` (an error the handler answers, and the connection closes), so that a
//! half-sent request cannot hold a connection and a task for ever. Headers that do
//! not arrive in time are hyper's header read timeout, set in the accept loop
//! (`lib.rs`), which also bounds how many connections are served at once.

use crate::state::Shared;
use crate::MIN_BODY_RATE;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The middleware: a request with a body gets it wrapped in [`Idle`].
pub async fn body_timeout(State(st): State<Shared>, req: Request, next: Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    if !has_body {
        return next.run(req).await;
    }
    let after = st.cfg.request_timeout;
    let (parts, body) = req.into_parts();
    let grace = st.cfg.body_grace;
    let started = tokio::time::Instant::now();
    let idle = Idle {
        inner: body.into_data_stream(),
        sleep: Box::pin(tokio::time::sleep(after)),
        after,
        started,
        received: 0,
        pace: Box::pin(tokio::time::sleep_until(started + grace)),
        grace,
    };
    next.run(Request::from_parts(parts, Body::from_stream(idle))).await
}

/// A body stream that fails when no data arrives for `after`, or when, after
/// `grace`, fewer than [`MIN_BODY_RATE`] bytes a second have arrived on average.
struct Idle {
    inner: axum::body::BodyDataStream,
    sleep: Pin<Box<tokio::time::Sleep>>,
    after: Duration,
    started: tokio::time::Instant,
    /// Bytes so far.
    received: u64,
    /// Fires when the average would fall under the rate: at `started + grace`, or
    /// later, when `received` bytes are enough for longer.
    pace: Pin<Box<tokio::time::Sleep>>,
    grace: Duration,
}

impl Idle {
    /// When the body, holding what it has so far, falls under the rate.
    fn too_slow_at(&self) -> tokio::time::Instant {
        let earned = Duration::from_secs_f64(self.received as f64 / MIN_BODY_RATE as f64);
        self.started + self.grace.max(earned)
    }
}

fn timed_out(message: String) -> axum::Error {
    axum::Error::new(std::io::Error::new(std::io::ErrorKind::TimedOut, message))
}

impl Stream for Idle {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(item) => {
                let next = tokio::time::Instant::now() + this.after;
                this.sleep.as_mut().reset(next);
                if let Some(Ok(chunk)) = &item {
                    this.received += chunk.len() as u64;
                    let at = this.too_slow_at();
                    this.pace.as_mut().reset(at);
                }
                Poll::Ready(item)
            }
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(timed_out(format!(
                        "the request body stopped arriving (nothing for {} s): send it again",
                        this.after.as_secs_f64()
                    )))));
                }
                if this.pace.as_mut().poll(cx).is_ready() {
                    let took = this.started.elapsed().as_secs_f64();
                    return Poll::Ready(Some(Err(timed_out(format!(
                        "the request body arrives too slowly ({} bytes in {took:.0} s, under {} KiB/s once {} s have passed): send it again over a faster connection",
                        this.received,
                        MIN_BODY_RATE / 1024,
                        this.grace.as_secs_f64()
                    )))));
                }
                Poll::Pending
            }
        }
    }
}
