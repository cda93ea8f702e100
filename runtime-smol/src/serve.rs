//! The smol driver: the shared [`Driver`] behind a mutex (never held across an `.await`), one
//! task per connection, a timer task, and a task per remote operation.
//!
//! Backpressure (the core's loop contract): a connection's task writes every byte queued for
//! it before it reads again, and reads only while `Plugin::wants_read` is true. A peer that
//! does not read its answers (a PING or request flood) is therefore not read either, and what
//! is queued for it stays bounded by the output of one read plus the answers already in
//! flight for it, never by what the peer sends.
//!
//! Remote calls run the blocking [`KekProvider`] on smol's thread pool (`smol::unblock`),
//! bounded by the core's deadline, which every provider honours; `Effect::CancelRemote` drops
//! the task (the late answer is never fed back).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use kms_plugin_blocking::driver::{Driver, DriverProbe, Sink};
use kms_plugin_blocking::log::Logger;
use kms_plugin_blocking::observe::metrics_server::Limits;
use kms_plugin_blocking::provider::{self, KekProvider};
use kms_plugin_blocking::serve::LINGER;
use kms_plugin_blocking::socket::peer::PeerGate;
use kms_plugin_core::{Config, ConnId, OpId, RemoteOp};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt as _;
use smol::{Executor, Task};

use crate::observe::metrics_server;

mod conn;

use conn::{Outbox, connection};

/// What [`serve`] needs besides the listener.
pub struct ServeOptions {
    /// The core's configuration.
    pub config: Config,
    /// The remote KEK (any blocking provider of the std layer, or your own).
    pub provider: Arc<dyn KekProvider>,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Who may connect (`SO_PEERCRED`, checked before a byte is read); `None`: anyone the
    /// socket file's mode lets in.
    pub peer_gate: Option<Arc<PeerGate>>,
}

struct State {
    driver: Driver,
    outboxes: HashMap<ConnId, Arc<Outbox>>,
    ops: HashMap<OpId, Task<()>>,
    out: Vec<u8>,
    /// Connection tasks still running (lingering after close included).
    open_sockets: usize,
}

struct Shared {
    state: Mutex<State>,
    executor: Arc<Executor<'static>>,
    provider: Arc<dyn KekProvider>,
    timer_wake: Sender<()>,
    /// Rung when shutdown is drained or a connection task ends.
    progress: Sender<()>,
}

/// The smol runtime's IO for a drain.
struct Outputs<'a> {
    shared: &'a Arc<Shared>,
    outboxes: &'a mut HashMap<ConnId, Arc<Outbox>>,
    ops: &'a mut HashMap<OpId, Task<()>>,
}

impl Sink for Outputs<'_> {
    fn transmit(&mut self, conn: ConnId, bytes: &mut Vec<u8>) {
        if let Some(outbox) = self.outboxes.get(&conn) {
            outbox.push(Some(std::mem::take(bytes)));
        }
    }

    fn remote(&mut self, id: OpId, op: RemoteOp, deadline: Instant) {
        let shared = self.shared.clone();
        let provider = shared.provider.clone();
        let task = self.shared.executor.spawn(async move {
            let result = smol::unblock(move || provider::execute(&*provider, &op, deadline)).await;
            shared.with(|st| {
                // Detached, not dropped: dropping its own handle would cancel this task.
                if let Some(task) = st.ops.remove(&id) {
                    task.detach();
                }
                let now = st.driver.now();
                let _ = st.driver.plugin.handle_remote(id, result, now);
            });
        });
        self.ops.insert(id, task);
    }

    fn cancel(&mut self, id: OpId) {
        self.ops.remove(&id);
    }

    fn close(&mut self, conn: ConnId) {
        if let Some(outbox) = self.outboxes.remove(&conn) {
            outbox.push(None);
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` under the lock, then the loop contract's drain.
    fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.lock();
        let r = f(&mut st);
        let State {
            driver,
            outboxes,
            ops,
            out,
            ..
        } = &mut *st;
        let mut outputs = Outputs {
            shared: self,
            outboxes,
            ops,
        };
        let drained = driver.drain(out, &mut outputs);
        if drained.wake_timer {
            let _ = self.timer_wake.try_send(());
        }
        if drained.shutdown_done {
            let _ = self.progress.try_send(());
        }
        r
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
    /// Where core events and runtime messages are logged (none: not logged).
    pub logger: Option<Logger>,
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
    let logger = observer.logger;
    let driver = Driver::new(options.config, &*options.provider, logger)?;
    let (timer_wake, timer_rx) = smol::channel::bounded(1);
    let (progress, progress_rx) = smol::channel::bounded(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            driver,
            outboxes: HashMap::new(),
            ops: HashMap::new(),
            out: Vec::new(),
            open_sockets: 0,
        }),
        executor: executor.clone(),
        provider: options.provider,
        timer_wake,
        progress,
    });
    shared.with(|_| {}); // the first Status effect
    let timer = executor.spawn(timer_loop(shared.clone(), timer_rx));
    let metrics_task = observer.metrics_listener.map(|l| {
        let provider = shared.provider.clone();
        let gate = options.peer_gate.clone();
        let probe = DriverProbe::probe(shared.clone(), provider, gate, |shared, f| {
            f(&mut shared.lock().driver);
        });
        executor.spawn(metrics_server::serve(l, probe, observer.metrics_limits))
    });

    let accept = async {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if let Some(logger) = &logger {
                        logger.warn("accept failed", &[("error", &e)]);
                    }
                    // EMFILE and friends: back off briefly instead of spinning.
                    Timer::after(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Before a byte is read: a refused peer's connection is just closed.
            if let Some(gate) = &options.peer_gate
                && let Err(refusal) = gate.admit(stream.get_ref())
            {
                if let Some(logger) = &logger {
                    gate.log_refusal(logger, refusal, Instant::now());
                }
                continue;
            }
            let (bell, rung) = smol::channel::bounded(1);
            let outbox = Arc::new(Outbox {
                queue: Mutex::new((VecDeque::new(), false)),
                bell,
            });
            let conn = shared.with(|st| {
                st.open_sockets += 1;
                let conn = st.driver.plugin.handle_accept(st.driver.now());
                st.outboxes.insert(conn, outbox.clone());
                conn
            });
            executor
                .spawn(connection(shared.clone(), stream, conn, outbox, rung))
                .detach();
        }
    };
    accept.or(shutdown).await;

    shared.with(|st| st.driver.begin_shutdown());
    let grace = Instant::now() + options.shutdown_grace;
    wait_until(&shared, &progress_rx, grace, |st| {
        st.driver.plugin.is_drained()
    })
    .await;
    for (_, outbox) in shared.lock().outboxes.drain() {
        outbox.push(None);
    }
    // Every socket is half-closed: clients read their last bytes and hang up (bounded).
    let linger = Instant::now() + LINGER;
    wait_until(&shared, &progress_rx, linger, |st| st.open_sockets == 0).await;
    drop(timer);
    drop(metrics_task);
    Ok(())
}

/// Waits until `done` holds or `deadline` passes, re-checking whenever `progress` rings.
async fn wait_until(
    shared: &Shared,
    progress: &Receiver<()>,
    deadline: Instant,
    done: impl Fn(&State) -> bool,
) {
    while !done(&shared.lock()) {
        let rung = async { progress.recv().await.is_ok() };
        let expired = async {
            Timer::at(deadline).await;
            false
        };
        if !rung.or(expired).await {
            return;
        }
    }
}

async fn timer_loop(shared: Arc<Shared>, wake: Receiver<()>) {
    loop {
        shared.with(|st| st.driver.fire_timers());
        // A drain that moves the deadline earlier after this rings `wake`, which keeps the
        // ring until received.
        let at = shared.lock().driver.arm_timer();
        let sleep = async {
            match at {
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
