//! The accept loop: HTTP/1.1 connections with the limits a public server needs
//! (docs/API.md, "Connections and timeouts"). `axum::serve` has none of them: a client
//! that sends half a header, half a body or nothing at all would hold its socket (and a
//! file descriptor) for ever, until the process ran out of them.
//!
//! - a whole request header within `header_read_timeout_secs`, also while a keep-alive
//!   connection idles between requests (hyper's header-read timer);
//! - a whole body within `body_read_timeout_secs` of its header (`edge::body_deadline`);
//! - at most `max_connections` at once: beyond it a new connection is closed at once,
//!   so the process never reaches its open-file limit and keeps accepting.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::config::ServerConfig;

/// Open files kept free of connections: the database, models, snapshots, logs.
const RESERVED_FDS: u64 = 256;

/// The connection cap: the configured one, or what the open-file limit allows (raised
/// to its hard limit first, as servers commonly do).
pub fn connection_cap(cfg: &ServerConfig) -> usize {
    let nofile = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-file limit");
            1024
        }
    };
    let from_fds = nofile.saturating_sub(RESERVED_FDS).max(16) as usize;
    match cfg.max_connections {
        0 => from_fds,
        n if n > from_fds => {
            tracing::warn!(
                max_connections = n,
                open_file_limit = nofile,
                "max_connections is above what the open-file limit allows; using {from_fds}"
            );
            from_fds
        }
        n => n,
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting and gives
/// open connections up to `grace` to finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cfg: &ServerConfig,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let cap = connection_cap(cfg);
    let slots = Arc::new(Semaphore::new(cap));
    let header_timeout = Duration::from_secs_f64(cfg.header_read_timeout_secs.max(0.1));
    let body_timeout = Duration::from_secs_f64(cfg.body_read_timeout_secs.max(0.1));
    tracing::info!(max_connections = cap, header_read_timeout = ?header_timeout, "accepting connections");
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the cap should
                    // keep this from happening.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("dupify_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(|b| axum::body::Body::new(Deadline::new(b, body_timeout)));
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            metrics::gauge!("dupify_connections_open").increment(1.0);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            metrics::gauge!("dupify_connections_open").decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("shutdown grace period over; dropping remaining connections");
        }
    }
    Ok(())
}

/// A request body that must arrive whole before a deadline set when its header did
/// (a per-frame timeout would let a client drip one byte a minute for ever).
struct Deadline {
    inner: Incoming,
    /// `None` once the body has ended (or when it had none).
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        let sleep = (!inner.is_end_stream()).then(|| Box::pin(tokio::time::sleep(timeout)));
        Deadline { inner, sleep }
    }
}

/// The body did not arrive in time.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

impl http_body::Body for Deadline {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if frame.is_none() {
                this.sleep = None;
            }
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let expired = this
            .sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready());
        if expired {
            this.sleep = None;
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
