//! The HTTP listener of `metrics_listen`: `GET /metrics` answers the
//! server's metrics as OpenMetrics text, `GET /healthz` answers 200 while
//! the server accepts connections and 503 once it drains.
//!
//! It speaks plain HTTP/1.1 through hyper and is meant for a local or
//! private address (the default `metrics_listen` is empty: no listener).
//! Its connections are bounded in number ([`MAX_CONNECTIONS`]) and in time
//! ([`CONNECTION_LIFETIME`]), so a scraper that never leaves cannot hold
//! the listener.
//!
//! What the series are is [`crate::metrics`]'s; when the server drains is
//! [`crate::live`]'s.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::live::LiveConnections;
use crate::metrics::Metrics;

/// Connections served at once; past this many, new ones wait in the
/// kernel's backlog.
pub const MAX_CONNECTIONS: usize = 16;
/// The longest one connection is served, keep-alive included.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// What `/metrics` answers with.
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `/metrics` and `/healthz` on `listener` until the task is
/// aborted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, live: Arc<LiveConnections>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, most likely: wait a little rather
                // than spin on the same error.
                tracing::warn!(%error, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, live) = (Arc::clone(&metrics), Arc::clone(&live));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer(&request, &metrics, &live);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // Past its lifetime the connection is dropped, which closes it.
            let served = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            if let Ok(Err(error)) = served {
                tracing::debug!(%error, "metrics connection failed");
            }
            drop(slot);
        });
    }
}

/// The answer to one request.
fn answer<Body>(
    request: &Request<Body>,
    metrics: &Metrics,
    live: &LiveConnections,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/metrics" | "/healthz") {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /healthz\n",
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path == "/metrics" {
        let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS_TEXT));
        return response;
    }
    if live.is_draining() {
        plain(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        plain(StatusCode::OK, "ok\n")
    }
}

/// A plain-text answer.
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::ServerClose;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    #[test]
    fn health_follows_the_drain() {
        let (metrics, live) = (Metrics::new(), LiveConnections::default());
        let health = answer(&request(Method::GET, "/healthz"), &metrics, &live);
        assert_eq!(health.status(), StatusCode::OK);
        live.begin_drain(ServerClose {
            code: 4,
            reason: "stopping",
        });
        let health = answer(&request(Method::GET, "/healthz"), &metrics, &live);
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn metrics_are_openmetrics_text_and_other_requests_are_refused() {
        let (metrics, live) = (Metrics::new(), LiveConnections::default());
        let scraped = answer(&request(Method::GET, "/metrics"), &metrics, &live);
        assert_eq!(scraped.status(), StatusCode::OK);
        assert_eq!(scraped.headers()[CONTENT_TYPE], OPENMETRICS_TEXT);
        let posted = answer(&request(Method::POST, "/metrics"), &metrics, &live);
        assert_eq!(posted.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(posted.headers()[ALLOW], "GET, HEAD");
        let elsewhere = answer(&request(Method::GET, "/"), &metrics, &live);
        assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    }
}
