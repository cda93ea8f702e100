//! `/metrics`, `/livez` and `/readyz` over HTTP/1.1 with hyper 1 (server, http1) on async-io.
//!
//! Adapter: `smol-hyper` (already this crate's dependency for the Vault client) supplies
//! `FuturesIo` (hyper's `rt::Read`/`rt::Write` over futures-io, which `Async<TcpStream>`
//! implements) and `SmolTimer` (hyper's `rt::Timer` over `async_io::Timer`, needed for the
//! header read timeout). Writing those two adapters ourselves would duplicate it line for line.
//!
//! Bounded: at most [`Limits::max_connections`] connections at once (beyond it a connection
//! gets a fixed `503` and is closed), the request head at most [`Limits::max_request_bytes`]
//! (hyper answers `431` beyond), the head must arrive within [`Limits::read_timeout`],
//! one request per connection (no keep-alive, so an idle client cannot hold a slot), and the
//! response write within [`Limits::write_timeout`]. `/livez` is `200 ok` whenever the process
//! answers (never tied to the remote KMS); `/readyz` is `200 ok` when healthz is `ok`, else
//! `503` with the cause.

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use async_io::{Async, Timer};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt as _, AsyncWriteExt as _};
use smol::lock::Semaphore;
use smol_hyper::rt::{FuturesIo, SmolTimer};

use kms_plugin_blocking::observe::metrics_server::readyz;
pub use kms_plugin_blocking::observe::metrics_server::{
    DEFAULT_PORT, Limits, Probe, is_loopback, parse_addr,
};

const TEXT: &str = "text/plain; charset=utf-8";
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n";

/// Binds `addr` (port 0 picks a free port) without serving yet; pass the listener to
/// [`serve`].
pub fn bind(addr: SocketAddr) -> io::Result<Async<TcpListener>> {
    Async::<TcpListener>::bind(addr)
}

/// Serves `probe` on `listener` until the returned future is dropped (which also drops every
/// connection in progress) or accepting fails fatally. Connections run on an executor owned
/// by this future, so it can be spawned on any executor or driven by `block_on`.
pub async fn serve(
    listener: Async<TcpListener>,
    probe: Arc<dyn Probe>,
    limits: Limits,
) -> io::Result<()> {
    let ex = smol::Executor::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    ex.run(async {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) if is_transient(&e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    Timer::after(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(slot) = slots.try_acquire_arc() else {
                ex.spawn(refuse(stream)).detach();
                continue;
            };
            let probe = probe.clone();
            ex.spawn(async move {
                let _slot = slot;
                // The whole connection is bounded, not only its head.
                serve_connection(stream, probe, limits)
                    .or(async {
                        Timer::after(limits.read_timeout + limits.write_timeout).await;
                    })
                    .await;
            })
            .detach();
        }
    })
    .await
}

fn is_transient(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::PermissionDenied
    )
}

/// Answers `503` without reading the request, then drains what the client sent (bounded by
/// one second) so the close is a FIN, not a reset that could destroy the answer in flight.
async fn refuse(mut stream: Async<TcpStream>) {
    let _ = async {
        stream.write_all(BUSY).await?;
        stream.get_ref().shutdown(std::net::Shutdown::Write)?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    }
    .or(async {
        Timer::after(Duration::from_secs(1)).await;
        Ok(())
    })
    .await;
}

async fn serve_connection(stream: Async<TcpStream>, probe: Arc<dyn Probe>, limits: Limits) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let response = route(&*probe, &req);
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(SmolTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(limits.max_request_bytes.max(8192))
        .keep_alive(false)
        .serve_connection(FuturesIo::new(stream), service)
        .await;
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The answer to one request (hyper omits the body of `HEAD` answers itself).
fn route(probe: &dyn Probe, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET or HEAD only\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let mut body = String::with_capacity(32 * 1024);
            probe.render_metrics(&mut body);
            text(StatusCode::OK, METRICS_TYPE, body)
        }
        "/livez" => text(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => {
            let (status, body) = readyz(probe);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            text(status, TEXT, body)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; try /metrics, /livez or /readyz\n",
        ),
    }
}
