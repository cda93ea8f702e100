//! The blocking driver: one `Plugin` behind a mutex, a reader thread per connection, a timer
//! thread, and a small pool of workers for remote KEK calls.
//!
//! A connection's thread reads, locks, feeds the bytes and drains every output (writing each
//! connection's bytes to its socket) before unlocking: a request answered from cache costs no
//! thread hop. Provider calls run on workers and never hold the lock. The timer thread sleeps
//! on a condvar until the core's `poll_timeout`, and is woken only when a drain produces an
//! earlier deadline.
//!
//! Socket writes never happen under the plugin lock: a drain queues each connection's bytes
//! (in order, under the lock) on that connection's `ConnWriter`, and the returned `Flush`
//! writes them after the lock is released, holding only that connection's write lock. A peer
//! that stops reading stalls only the threads writing to it (bounded by a 5 s write timeout,
//! after which its connection is shut down), never the other connections.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use kms_plugin_core::{Config, ConnId, OpId, RemoteOp};

use crate::driver::{Drained, Driver, DriverProbe};
use crate::endpoint::Endpoint;
use crate::log::Logger;
use crate::observe::metrics_server::Probe;
use crate::provider::KekProvider;
use crate::socket::BoundSocket;
use crate::socket::peer::PeerGate;

mod reader;
mod workers;
mod writer;

pub use reader::LINGER;
use reader::connection_loop;
use workers::{remote_worker, timer_loop};
use writer::{BufferPool, ConnWriter, Flush, OUT_BUFFER_BYTES, Outputs};

/// Everything `serve` needs.
pub struct ServeOptions {
    /// Where to listen.
    pub endpoint: Endpoint,
    /// Mode of a path socket (e.g. 0o600).
    pub socket_mode: u32,
    /// The core's configuration.
    pub config: Config,
    /// The remote KEK.
    pub provider: Arc<dyn KekProvider>,
    /// Where logs go.
    pub logger: Logger,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Threads executing remote KEK calls.
    pub remote_workers: usize,
    /// `--allow-uid`: the peer uids allowed to connect (`None`: the default of
    /// [`PeerGate::new`]).
    pub allow_uids: Option<Vec<u32>>,
}

pub(super) struct Job {
    id: OpId,
    op: RemoteOp,
    deadline: Instant,
}

pub(super) struct State {
    driver: Driver,
    writers: HashMap<ConnId, Arc<ConnWriter>>,
    out: Vec<u8>,
    finished: bool,
    /// Connection threads still running (lingering after close included).
    open_sockets: usize,
}

pub(super) struct Shared {
    state: Mutex<State>,
    timer_cv: Condvar,
    drained_cv: Condvar,
    jobs: Mutex<Option<Sender<Job>>>,
    logger: Logger,
    /// Output buffers for drains; filled by the writers.
    pool: Arc<BufferPool>,
    /// The provider, for its own metric families.
    provider: Arc<dyn KekProvider>,
    /// Who may connect; checked on every accept.
    gate: Arc<PeerGate>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loop contract ([`Driver::drain`]); the returned `Flush` writes after unlocking.
    fn drain(&self, st: &mut State) -> Flush {
        let State {
            driver,
            writers,
            out,
            ..
        } = st;
        let mut outputs = Outputs {
            writers,
            shared: self,
            flush: Flush(Vec::new()),
        };
        let Drained {
            wake_timer,
            shutdown_done,
        } = driver.drain(out, &mut outputs);
        if wake_timer {
            self.timer_cv.notify_one();
        }
        if shutdown_done {
            self.drained_cv.notify_all();
        }
        outputs.flush
    }

    /// Runs `f` on the plugin under the lock, drains, and writes after unlocking.
    fn with(&self, f: impl FnOnce(&mut State)) {
        let mut st = self.lock();
        f(&mut st);
        let flush = self.drain(&mut st);
        drop(st);
        drop(flush);
    }

    /// A connection thread is done with its socket.
    fn socket_closed(&self) {
        let mut st = self.lock();
        st.open_sockets -= 1;
        if st.driver.stopping() {
            self.drained_cv.notify_all();
        }
    }

    /// Waits on `drained_cv` until `done` or `deadline`; whether `done` became true.
    fn wait_until(&self, deadline: Instant, done: impl Fn(&State) -> bool) -> bool {
        let mut st = self.lock();
        while !done(&st) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .drained_cv
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// A running server; dropping it does not stop it — call [`Server::shutdown`] then
/// [`Server::wait`].
pub struct Server {
    shared: Arc<Shared>,
    socket: Arc<BoundSocket>,
    endpoint: Endpoint,
    accept: Option<thread::JoinHandle<()>>,
    grace: Duration,
}

impl Server {
    /// Binds the socket and starts serving. Errors are one operator-facing line.
    pub fn start(options: ServeOptions) -> Result<Self, String> {
        let socket = Arc::new(BoundSocket::bind(&options.endpoint, options.socket_mode)?);
        let driver = Driver::new(options.config, &*options.provider, Some(options.logger))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                driver,
                writers: HashMap::new(),
                out: Vec::with_capacity(OUT_BUFFER_BYTES),
                finished: false,
                open_sockets: 0,
            }),
            timer_cv: Condvar::new(),
            drained_cv: Condvar::new(),
            jobs: Mutex::new(Some(tx)),
            logger: options.logger,
            pool: Arc::new(BufferPool(Mutex::new(Vec::new()))),
            provider: options.provider.clone(),
            gate: Arc::new(PeerGate::new(
                &options.endpoint,
                options.allow_uids.as_deref(),
            )),
        });
        shared.with(|_| {}); // the first Status effect; no connection exists yet

        let rx = Arc::new(Mutex::new(rx));
        for i in 0..options.remote_workers.max(1) {
            let (shared, rx, provider) = (shared.clone(), rx.clone(), options.provider.clone());
            spawn(&format!("kms-remote-{i}"), move || {
                remote_worker(&shared, &rx, &*provider);
            })?;
        }
        {
            let shared = shared.clone();
            spawn("kms-timer", move || timer_loop(&shared))?;
        }
        let accept = {
            let (shared, socket) = (shared.clone(), socket.clone());
            spawn("kms-accept", move || accept_loop(&shared, &socket))?
        };
        let allowed_uids = shared.gate.allowed_text();
        shared.logger.info(
            "listening",
            &[
                ("endpoint", &options.endpoint),
                ("provider", &options.provider.name()),
                ("allowed_uids", &allowed_uids),
            ],
        );
        Ok(Self {
            shared,
            socket,
            endpoint: options.endpoint,
            accept: Some(accept),
            grace: options.shutdown_grace,
        })
    }

    /// What the `/metrics`, `/livez` and `/readyz` responder serves for this server.
    pub fn probe(&self) -> Arc<dyn Probe> {
        let provider = self.shared.provider.clone();
        let gate = Some(self.shared.gate.clone());
        DriverProbe::probe(self.shared.clone(), provider, gate, |shared, f| {
            f(&mut shared.lock().driver);
        })
    }

    /// Begins a graceful shutdown: stop accepting, GOAWAY every connection.
    pub fn shutdown(&self) {
        let mut began = false;
        self.shared.with(|st| began = st.driver.begin_shutdown());
        if !began {
            return;
        }
        self.shared.logger.info("shutting down", &[]);
        // Wake the accept loop with a connection to ourselves.
        let _ = match &self.endpoint {
            Endpoint::Path(p) => UnixStream::connect(p),
            Endpoint::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name)
                    .and_then(|a| UnixStream::connect_addr(&a))
            }
        };
    }

    /// Waits until in-flight requests are answered (at most the grace period), closes every
    /// connection, waits (at most [`LINGER`]) for clients to read their last bytes and hang
    /// up, and unlinks the socket.
    pub fn wait(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let shared = &self.shared;
        if !shared.wait_until(Instant::now() + self.grace, |st| {
            st.driver.plugin.is_drained()
        }) {
            shared
                .logger
                .warn("shutdown grace period over; closing connections", &[]);
        }
        let mut st = shared.lock();
        st.finished = true;
        let writers: Vec<Arc<ConnWriter>> = st.writers.drain().map(|(_, w)| w).collect();
        drop(st);
        for writer in writers {
            writer.push(None);
            writer.flush();
        }
        shared.wait_until(Instant::now() + LINGER, |st| st.open_sockets == 0);
        shared.timer_cv.notify_all();
        *shared.jobs.lock().unwrap_or_else(PoisonError::into_inner) = None;
        drop(self.socket); // unlinks the socket file once the accept thread's clone is gone
        self.shared.logger.info("stopped", &[]);
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<thread::JoinHandle<()>, String> {
    thread::Builder::new()
        .name(name.to_string())
        .stack_size(128 * 1024)
        .spawn(f)
        .map_err(|e| format!("cannot start thread {name}: {e}"))
}

fn accept_loop(shared: &Arc<Shared>, socket: &BoundSocket) {
    for stream in socket.listener().incoming() {
        if shared.lock().driver.stopping() {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                shared.logger.warn("accept failed", &[("error", &e)]);
                // EMFILE and friends: back off briefly instead of spinning.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        // Before a byte is read: a refused peer's connection is just closed.
        if let Err(refusal) = shared.gate.admit(&stream) {
            shared
                .gate
                .log_refusal(&shared.logger, refusal, Instant::now());
            continue;
        }
        let Ok(writer) = stream.try_clone() else {
            continue;
        };
        let _ = writer.set_write_timeout(Some(Duration::from_secs(5)));
        let mut conn = None;
        shared.with(|st| {
            st.open_sockets += 1;
            let id = st.driver.plugin.handle_accept(st.driver.now());
            st.writers
                .insert(id, ConnWriter::new(writer, shared.pool.clone()));
            conn = Some(id);
        });
        let Some(conn) = conn else { continue };
        let shared2 = shared.clone();
        if spawn("kms-conn", move || connection_loop(&shared2, stream, conn)).is_err() {
            shared.with(|st| {
                let now = st.driver.now();
                let _ = st.driver.plugin.handle_eof(conn, now);
            });
            shared.socket_closed();
        }
    }
}
