//! Requests that stall: a body that stops arriving ends after the server's request
//! timeout (an error the handler answers, and the connection closes), so that a
//! half-sent request cannot hold a connection and a task for ever. Headers that do
//! not arrive in time are hyper's header read timeout, set in the accept loop
//! (`lib.rs`).

use crate::state::Shared;
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
    let idle = Idle {
        inner: body.into_data_stream(),
        sleep: Box::pin(tokio::time::sleep(after)),
        after,
    };
    next.run(Request::from_parts(parts, Body::from_stream(idle))).await
}

/// A body stream that fails when no data arrives for `after`.
struct Idle {
    inner: axum::body::BodyDataStream,
    sleep: Pin<Box<tokio::time::Sleep>>,
    after: Duration,
}

impl Stream for Idle {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(item) => {
                let next = tokio::time::Instant::now() + this.after;
                this.sleep.as_mut().reset(next);
                Poll::Ready(item)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the request body stopped arriving (nothing for {} s): send it again",
                        this.after.as_secs_f64()
                    ),
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
