//! The smol driver: one `Plugin` behind a mutex (never held across an `.await`), a task per
//! connection reading and a task writing, a timer task, and a task per remote operation.
//!
//! Remote calls are tasks kept by [`OpId`]: `Effect::CancelRemote` drops the task, which
//! cancels the provider's future (dropping a future is how async cancellation works); a
//! deadline bounds every call.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use kms_plugin_core::{
    Config, ConnId, Effect, OpId, Plugin, RemoteError, RemoteErrorKind, Timestamp,
};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Executor, Task};
use zeroize::Zeroize;

use crate::observe::log::EventLogger;
use crate::observe::metrics_server::{self, Limits, Probe};
use crate::provider::{self, AsyncKekProvider};
use kms_plugin_core::metrics::Metrics;
use std::net::TcpListener;

/// What [`serve`] needs besides the listener.
pub struct ServeOptions {
    /// The core's configuration.
    pub config: Config,
    /// The remote KEK.
    pub provider: Arc<dyn AsyncKekProvider>,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

struct State {
    plugin: Plugin,
    origin: Instant,
    writers: HashMap<ConnId, Sender<Vec<u8>>>,
    ops: HashMap<OpId, Task<()>>,
    finished_ops: Vec<OpId>,
    timer_target: Option<Timestamp>,
    stopping: bool,
    /// Fed every event; gauges refreshed after each drain with events and at scrape time.
    metrics: Metrics,
    logger: Option<EventLogger>,
}

struct Shared {
    state: Mutex<State>,
    executor: Arc<Executor<'static>>,
    provider: Arc<dyn AsyncKekProvider>,
    timer_wake: Sender<()>,
    drained: Sender<()>,
}

impl State {
    fn now(&self) -> Timestamp {
        let nanos = self.origin.elapsed().as_nanos();
        Timestamp::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn instant(&self, t: Timestamp) -> Instant {
        self.origin + Duration::from_nanos(t.as_nanos())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loop contract: drain transmit, effects, events; then re-arm the timer if needed.
    fn drain(self: &Arc<Self>, st: &mut State) {
        for id in st.finished_ops.drain(..) {
            st.ops.remove(&id);
        }
        let mut buf = Vec::new();
        while let Some(conn) = st.plugin.poll_transmit(&mut buf) {
            if let Some(tx) = st.writers.get(&conn) {
                let _ = tx.try_send(std::mem::take(&mut buf));
            }
            buf.zeroize();
            buf.clear();
        }
        while let Some(effect) = st.plugin.poll_effect() {
            match effect {
                Effect::Remote { id, op, deadline } => {
                    let (shared, at) = (self.clone(), st.instant(deadline));
                    let task = self.executor.spawn(async move {
                        let call = provider::execute(&*shared.provider, &op);
                        let timeout = async {
                            Timer::at(at).await;
                            Err(RemoteError::new(
                                RemoteErrorKind::Timeout,
                                "remote call exceeded its deadline",
                            ))
                        };
                        let result = call.or(timeout).await;
                        let mut st = shared.lock();
                        let now = st.now();
                        let _ = st.plugin.handle_remote(id, result, now);
                        st.finished_ops.push(id);
                        shared.drain(&mut st);
                    });
                    st.ops.insert(id, task);
                }
                Effect::CancelRemote { id } => {
                    st.ops.remove(&id); // dropping the task cancels the call
                }
                Effect::Close { conn } => {
                    st.writers.remove(&conn); // the writer task ends and closes the socket
                }
            }
        }
        let mut any_event = false;
        while let Some(event) = st.plugin.poll_event() {
            if let Some(logger) = &st.logger {
                logger.event(&event);
            }
            st.metrics.record(&event);
            any_event = true;
        }
        if any_event {
            let now = st.now();
            let State {
                plugin, metrics, ..
            } = st;
            metrics.observe(plugin, now);
        }
        let next = st.plugin.poll_timeout();
        if next.is_some() && (st.timer_target.is_none() || next < st.timer_target) {
            st.timer_target = next;
            let _ = self.timer_wake.try_send(());
        }
        if st.stopping && st.plugin.is_drained() {
            let _ = self.drained.try_send(());
        }
    }
}

/// Serves KMS on `listener` until `shutdown` completes, then drains gracefully (GOAWAY,
/// in-flight requests finish within `shutdown_grace`) and returns. Runs its tasks on
/// `executor`, which the caller drives (e.g. `smol::block_on(executor.run(...))`).
pub async fn serve(
    executor: Arc<Executor<'static>>,
    listener: Async<UnixListener>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    serve_observed(executor, listener, options, Observer::default(), shutdown).await
}

/// Logging and the metrics endpoint for [`serve_observed`]; the default does neither.
#[derive(Default)]
pub struct Observer {
    /// Where core events are logged (none: not logged).
    pub logger: Option<EventLogger>,
    /// Where `/metrics`, `/livez` and `/readyz` are served (see
    /// [`metrics_server::bind`]; none: not served).
    pub metrics_listener: Option<Async<TcpListener>>,
    /// Bounds of the metrics responder.
    pub metrics_limits: Limits,
}

/// [`serve`] with core events logged and counted, and the metrics endpoint served while KMS
/// is (it stops when this returns).
pub async fn serve_observed(
    executor: Arc<Executor<'static>>,
    listener: Async<UnixListener>,
    options: ServeOptions,
    observer: Observer,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let origin = Instant::now();
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| format!("OS random generator failed: {e}"))?;
    let plugin = Plugin::new(options.config, seed, Timestamp::ZERO)
        .map_err(|e| format!("invalid configuration: {e}"))?;
    seed.zeroize();
    let (timer_wake, timer_rx) = smol::channel::bounded(1);
    let (drained, drained_rx) = smol::channel::bounded(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            plugin,
            origin,
            writers: HashMap::new(),
            ops: HashMap::new(),
            finished_ops: Vec::new(),
            timer_target: None,
            stopping: false,
            metrics: Metrics::new(options.provider.name()),
            logger: observer.logger,
        }),
        executor: executor.clone(),
        provider: options.provider,
        timer_wake,
        drained,
    });
    shared.drain(&mut shared.lock());
    let timer = executor.spawn(timer_loop(shared.clone(), timer_rx));
    let metrics_task = observer.metrics_listener.map(|l| {
        let probe: Arc<dyn Probe> = Arc::new(SharedProbe(shared.clone()));
        executor.spawn(metrics_server::serve(l, probe, observer.metrics_limits))
    });

    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (tx, rx) = smol::channel::unbounded::<Vec<u8>>();
            let conn = {
                let mut st = shared.lock();
                let now = st.now();
                let conn = st.plugin.handle_accept(now);
                st.writers.insert(conn, tx);
                shared.drain(&mut st);
                conn
            };
            let Ok(reader) = stream.get_ref().try_clone().and_then(Async::new) else {
                continue;
            };
            executor.spawn(write_loop(stream, rx)).detach();
            executor
                .spawn(read_loop(shared.clone(), reader, conn))
                .detach();
        }
    };
    accept.or(shutdown).await;

    {
        let mut st = shared.lock();
        st.stopping = true;
        let now = st.now();
        st.plugin.handle_shutdown(now);
        shared.drain(&mut st);
    }
    let _ = drained_rx
        .recv()
        .or(async {
            Timer::after(options.shutdown_grace).await;
            Ok(())
        })
        .await;
    shared.lock().writers.clear();
    drop(timer);
    drop(metrics_task);
    Ok(())
}

/// The metrics and readiness of a running [`serve_observed`].
struct SharedProbe(Arc<Shared>);

impl Probe for SharedProbe {
    fn render_metrics(&self, out: &mut String) {
        let mut st = self.0.lock();
        let now = st.now();
        let State {
            plugin, metrics, ..
        } = &mut *st;
        metrics.observe(plugin, now);
        metrics.render(out);
    }

    fn readiness(&self) -> Result<(), String> {
        let st = self.0.lock();
        let snap = st.plugin.status_snapshot(st.now());
        if snap.shutting_down {
            Err("shutting down".into())
        } else if snap.healthy {
            Ok(())
        } else {
            Err(snap.healthz.into())
        }
    }
}

async fn read_loop(shared: Arc<Shared>, mut stream: Async<UnixStream>, conn: ConnId) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        let mut st = shared.lock();
        let now = st.now();
        if n == 0 || !st.writers.contains_key(&conn) {
            let _ = st.plugin.handle_eof(conn, now);
            shared.drain(&mut st);
            return;
        }
        let _ = st.plugin.handle_bytes(conn, &buf[..n], now);
        shared.drain(&mut st);
        drop(st);
        buf[..n].zeroize();
    }
}

async fn write_loop(mut stream: Async<UnixStream>, rx: Receiver<Vec<u8>>) {
    while let Ok(mut bytes) = rx.recv().await {
        let ok = stream.write_all(&bytes).await.is_ok();
        bytes.zeroize();
        if !ok {
            break;
        }
    }
    let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
}

async fn timer_loop(shared: Arc<Shared>, wake: Receiver<()>) {
    loop {
        let target = {
            let mut st = shared.lock();
            let now = st.now();
            if st.plugin.poll_timeout().is_some_and(|t| t <= now) {
                st.plugin.handle_timeout(now);
                st.timer_target = None;
                shared.drain(&mut st);
            }
            let next = st.plugin.poll_timeout();
            st.timer_target = next;
            next.map(|t| st.instant(t))
        };
        let sleep = async {
            match target {
                Some(at) => {
                    Timer::at(at).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let woke = async {
            let _ = wake.recv().await;
        };
        sleep.or(woke).await;
    }
}
