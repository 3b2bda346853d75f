//! `GET /metrics` over HTTP/1.1 (hyper), on the agent's runtime.
//!
//! A tick publishes a snapshot while scrapes come (else it marks the last
//! one stale, and the next scrape asks the agent for a fresh one: an agent
//! nobody scrapes copies nothing out of its model). The first scrape of a
//! snapshot encodes the exposition on tokio's blocking pool and every other
//! scrape of it shares the same bytes. So a scrape costs at most one
//! encoding per tick whatever the number of clients, the agent's own thread
//! only moves bytes, and a slow or large scrape cannot delay a sampling tick.
//! A client that stops reading is let go after [`WRITE_TIMEOUT`].
use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OnceCell, Semaphore, mpsc, oneshot, watch},
};

use super::{Snapshot, exposition, write_deadline::WriteDeadline};

/// Where `--metrics-addr` listens when given without an address.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9688";

/// Connections served at once; more wait in the listen backlog. Each costs
/// a descriptor and its socket buffers, not a copy of the exposition.
/// Set well above the handful of scrapers a node has, so a few stalled
/// clients leave room for the real ones.
pub const MAX_CONNECTIONS: usize = 64;

/// A client that sends no request head within this is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that reads nothing of its answer for this long is dropped.
/// Prometheus reads as fast as it can; its default scrape timeout is 10 s.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// One tick's snapshot and, once a scrape asked for it, its exposition.
pub struct Published {
    snapshot: Arc<Snapshot>,
    exposition: OnceCell<Bytes>,
    /// A tick passed since it was taken: a scrape asks for a fresh one.
    stale: AtomicBool,
}

impl Published {
    pub fn new(snapshot: Snapshot) -> Arc<Published> {
        Arc::new(Published {
            snapshot: Arc::new(snapshot),
            exposition: OnceCell::new(),
            stale: AtomicBool::new(false),
        })
    }

    pub fn mark_stale(&self) {
        self.stale.store(true, Ordering::Relaxed);
    }

    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// The exposition, encoded by the first scrape that asks; scrapes of the
    /// same tick that arrive meanwhile wait for that one encoding.
    async fn exposition(&self) -> Result<Bytes, tokio::task::JoinError> {
        self.exposition
            .get_or_try_init(|| {
                let snapshot = self.snapshot.clone();
                async move {
                    tokio::task::spawn_blocking(move || Bytes::from(exposition::encode(snapshot)))
                        .await
                }
            })
            .await
            .cloned()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// The whole answer to a scrape the agent has no descriptor for.
const OUT_OF_FDS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    Content-Type: text/plain; charset=utf-8\r\nContent-Length: 58\r\nConnection: close\r\n\r\n\
    the dsh agent is out of file descriptors; try again later\n";

/// Where scrapes find the agent's snapshots.
#[derive(Clone)]
pub struct Snapshots {
    pub published: watch::Receiver<Arc<Published>>,
    /// Set by every scrape: while it is, each tick publishes a snapshot.
    pub wanted: Arc<AtomicBool>,
    /// Asks the agent for a snapshot now (the published one is stale); the
    /// agent answers once it has published it.
    pub refresh: mpsc::Sender<oneshot::Sender<()>>,
}

impl Snapshots {
    /// The newest snapshot, taken now if the published one is stale.
    async fn current(&self) -> Arc<Published> {
        self.wanted.store(true, Ordering::Relaxed);
        let published = self.published.borrow().clone();
        if !published.is_stale() {
            return published;
        }
        let (tx, rx) = oneshot::channel();
        // An agent shutting down answers no more: the stale one will do.
        if self.refresh.send(tx).await.is_ok() {
            let _ = rx.await;
        }
        self.published.borrow().clone()
    }
}

/// Serves scrapes until the task is dropped.
pub async fn serve(listener: TcpListener, snapshots: Snapshots) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut spare = crate::fds::Spare::new();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                let refuse = |stream: &TcpStream| {
                    let _ = stream.try_write(OUT_OF_FDS);
                };
                crate::fds::after_failed_accept(
                    &e,
                    "metrics",
                    &mut spare,
                    || listener.accept(),
                    refuse,
                )
                .await;
                continue;
            }
        };
        let snapshots = snapshots.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, snapshots.clone()));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(
                    TokioIo::new(WriteDeadline::new(stream, WRITE_TIMEOUT)),
                    service,
                );
            if let Err(e) = conn.await {
                log::debug!("metrics: connection: {e}");
            }
            drop(permit);
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    snapshots: Snapshots,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, content_type: &str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        if let Ok(v) = header::HeaderValue::from_str(content_type) {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        Ok(r)
    };
    let text = "text/plain; charset=utf-8";
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            text,
            Bytes::from_static(b"only GET\n"),
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let published = snapshots.current().await;
            match published.exposition().await {
                Ok(body) => reply(StatusCode::OK, exposition::CONTENT_TYPE, body),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    text,
                    format!("encoding failed: {e}\n").into(),
                ),
            }
        }
        "/" => reply(
            StatusCode::OK,
            text,
            Bytes::from_static(b"dsh agent: Prometheus metrics at /metrics\n"),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            text,
            Bytes::from_static(b"not found; metrics are at /metrics\n"),
        ),
    }
}
