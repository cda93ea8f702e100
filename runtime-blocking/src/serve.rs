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
//! (in order, under the lock) on that connection's [`ConnWriter`], and the returned [`Flush`]
//! writes them after the lock is released, holding only that connection's write lock. A peer
//! that stops reading stalls only the threads writing to it (bounded by a 5 s write timeout,
//! after which its connection is shut down), never the other connections.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use kms_plugin_core::effect::RemoteOp;
use kms_plugin_core::metrics::Metrics;
use kms_plugin_core::{Config, ConnId, Effect, OpId, Plugin, Timestamp};
use zeroize::Zeroize;

use crate::clock::Clock;
use crate::endpoint::Endpoint;
use crate::log::Logger;
use crate::observe::log::log_event;
use crate::observe::metrics_server::Probe;
use crate::provider::{self, KekProvider};
use crate::socket::BoundSocket;
use crate::socket::peer::PeerGate;

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

struct Job {
    id: OpId,
    op: RemoteOp,
    deadline: Timestamp,
}

/// Capacity of a fresh output buffer: a batch of responses to one read fits without growing.
const OUT_BUFFER_BYTES: usize = 16 * 1024;
/// Buffers kept for reuse, at most (beyond it written buffers are freed).
const POOLED_BUFFERS: usize = 64;
/// Buffers that grew beyond this (a burst) are freed after writing instead of kept.
const MAX_POOLED_CAPACITY: usize = 256 * 1024;

/// Output buffers handed back after writing, for the next drain. Every drain gives the core an
/// empty buffer that already has capacity, so responses are not copied through a chain of
/// growing reallocations (each freeing a copy of response bytes), and written buffers are not
/// freed and allocated again per batch. Buffers are zeroed (whole capacity) before they are
/// pooled or freed: responses may carry plaintext.
struct BufferPool(Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    fn get(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(OUT_BUFFER_BYTES))
    }

    fn put(&self, mut buf: Vec<u8>) {
        buf.zeroize(); // whole capacity, and clears
        if buf.capacity() <= MAX_POOLED_CAPACITY {
            let mut pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < POOLED_BUFFERS {
                pool.push(buf);
            }
        }
    }
}

/// One connection's outgoing side: chunks queued in drain order, written by whichever thread
/// holds `stream` (FIFO, so order is kept whoever writes). `None` in the queue = shut down.
struct ConnWriter {
    queue: Mutex<VecDeque<Option<Vec<u8>>>>,
    stream: Mutex<UnixStream>,
    /// Where written chunks go.
    pool: Arc<BufferPool>,
}

impl ConnWriter {
    fn new(stream: UnixStream, pool: Arc<BufferPool>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            stream: Mutex::new(stream),
            pool,
        })
    }

    fn push(&self, chunk: Option<Vec<u8>>) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(chunk);
    }

    /// Writes everything queued so far (and anything queued while writing).
    fn flush(&self) {
        let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            match next {
                None => return,
                Some(Some(chunk)) => {
                    if stream.write_all(&chunk).is_err() {
                        let _ = stream.shutdown(Shutdown::Both);
                    }
                    self.pool.put(chunk);
                }
                // Half-close: the peer reads everything we sent, then EOF; its own late
                // writes (a WINDOW_UPDATE, a SETTINGS ACK) do not fail with EPIPE while it
                // still has our last responses to read. The reader thread lingers.
                Some(None) => {
                    let _ = stream.shutdown(Shutdown::Write);
                }
            }
        }
    }
}

/// Connections with queued bytes; written when dropped, which callers do after releasing the
/// plugin lock (`let f = shared.drain(&mut st); drop(st); drop(f);`).
#[must_use]
struct Flush(Vec<Arc<ConnWriter>>);

impl Drop for Flush {
    fn drop(&mut self) {
        for writer in self.0.drain(..) {
            writer.flush();
        }
    }
}

struct State {
    plugin: Plugin,
    writers: HashMap<ConnId, Arc<ConnWriter>>,
    out: Vec<u8>,
    /// The deadline the timer thread currently sleeps until (`None`: indefinitely).
    timer_target: Option<Timestamp>,
    stopping: bool,
    finished: bool,
    /// Connection threads still running (lingering after close included).
    open_sockets: usize,
    /// Fed every event; gauges refreshed after each drain and at scrape time.
    metrics: Metrics,
}

struct Shared {
    state: Mutex<State>,
    timer_cv: Condvar,
    drained_cv: Condvar,
    clock: Clock,
    jobs: Mutex<Option<Sender<Job>>>,
    logger: Logger,
    /// Output buffers for drains; filled by the writers.
    pool: Arc<BufferPool>,
    /// The provider, for its own metric families.
    provider: Arc<dyn KekProvider>,
    /// Who may connect; checked on every accept.
    gate: PeerGate,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The loop contract: drain transmit, effects, events, then look at the next deadline.
    fn drain(&self, st: &mut State) -> Flush {
        let State {
            plugin,
            writers,
            out,
            metrics,
            ..
        } = st;
        let mut flush = Flush(Vec::new());
        while let Some(conn) = plugin.poll_transmit(out) {
            if let Some(writer) = writers.get(&conn) {
                writer.push(Some(std::mem::replace(out, self.pool.get())));
                if !flush.0.iter().any(|w| Arc::ptr_eq(w, writer)) {
                    flush.0.push(writer.clone());
                }
            } else {
                out.as_mut_slice().zeroize();
                out.clear();
            }
        }
        while let Some(effect) = plugin.poll_effect() {
            match effect {
                Effect::Remote { id, op, deadline } => {
                    let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(tx) = jobs.as_ref() {
                        let _ = tx.send(Job { id, op, deadline });
                    }
                }
                // The worker finishes the call; the core drops the late answer.
                Effect::CancelRemote { .. } => {}
                Effect::Close { conn } => {
                    // After the bytes queued before it (GOAWAY, last responses).
                    if let Some(writer) = writers.remove(&conn) {
                        writer.push(None);
                        flush.0.push(writer);
                    }
                }
            }
        }
        let mut any_event = false;
        while let Some(event) = plugin.poll_event() {
            log_event(&self.logger, &event);
            metrics.record(&event);
            any_event = true;
        }
        if any_event {
            metrics.observe(plugin, self.clock.now());
        }
        let next = plugin.poll_timeout();
        let earlier = match (next, st.timer_target) {
            (Some(n), Some(t)) => n < t,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            st.timer_target = next;
            self.timer_cv.notify_one();
        }
        if st.stopping && st.plugin.is_drained() {
            self.drained_cv.notify_all();
        }
        flush
    }

    /// A connection thread is done with its socket.
    fn socket_closed(&self) {
        let mut st = self.lock();
        st.open_sockets -= 1;
        if st.stopping {
            self.drained_cv.notify_all();
        }
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
        let clock = Clock::new();
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| format!("OS random generator failed: {e}"))?;
        let plugin = Plugin::new(options.config, seed, clock.now())
            .map_err(|e| format!("invalid configuration: {e}"))?;
        seed.zeroize();
        let (tx, rx) = mpsc::channel::<Job>();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                plugin,
                writers: HashMap::new(),
                out: Vec::with_capacity(OUT_BUFFER_BYTES),
                timer_target: None,
                stopping: false,
                finished: false,
                open_sockets: 0,
                metrics: Metrics::new(options.provider.name()),
            }),
            timer_cv: Condvar::new(),
            drained_cv: Condvar::new(),
            clock,
            jobs: Mutex::new(Some(tx)),
            logger: options.logger,
            pool: Arc::new(BufferPool(Mutex::new(Vec::new()))),
            provider: options.provider.clone(),
            gate: PeerGate::new(&options.endpoint, options.allow_uids.as_deref()),
        });
        let flush = shared.drain(&mut shared.lock());
        drop(flush); // no connection exists yet: nothing to write

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
        let allowed_uids = shared.gate.allowed().map_or_else(
            || "any the socket mode lets in".to_string(),
            |uids| {
                uids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            },
        );
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
        Arc::new(ServerProbe(self.shared.clone()))
    }

    /// Begins a graceful shutdown: stop accepting, GOAWAY every connection.
    pub fn shutdown(&self) {
        let mut st = self.shared.lock();
        if st.stopping {
            return;
        }
        st.stopping = true;
        st.plugin.handle_shutdown(self.shared.clock.now());
        let flush = self.shared.drain(&mut st);
        drop(st);
        drop(flush);
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
    /// connection and unlinks the socket.
    pub fn wait(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let deadline = Instant::now() + self.grace;
        let mut st = self.shared.lock();
        while !st.plugin.is_drained() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.shared
                    .logger
                    .warn("shutdown grace period over; closing connections", &[]);
                break;
            }
            st = self
                .shared
                .drained_cv
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.finished = true;
        let writers: Vec<Arc<ConnWriter>> = st.writers.drain().map(|(_, w)| w).collect();
        drop(st);
        for writer in writers {
            writer.push(None);
            writer.flush();
        }
        // Every socket is half-closed now: give clients until the linger deadline to read
        // their last responses and hang up, so exiting does not cut them off.
        let linger = Instant::now() + LINGER;
        let mut st = self.shared.lock();
        while st.open_sockets > 0 {
            let left = linger.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = self
                .shared
                .drained_cv
                .wait_timeout(st, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(st);
        self.shared.timer_cv.notify_all();
        *self
            .shared
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
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
        if shared.lock().stopping {
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
        let conn = {
            let mut st = shared.lock();
            st.open_sockets += 1;
            let conn = st.plugin.handle_accept(shared.clock.now());
            st.writers
                .insert(conn, ConnWriter::new(writer, shared.pool.clone()));
            let flush = shared.drain(&mut st);
            drop(st);
            drop(flush);
            conn
        };
        let shared2 = shared.clone();
        if spawn("kms-conn", move || connection_loop(&shared2, stream, conn)).is_err() {
            let mut st = shared.lock();
            let _ = st.plugin.handle_eof(conn, shared.clock.now());
            let flush = shared.drain(&mut st);
            drop(st);
            drop(flush);
            shared.socket_closed();
        }
    }
}

fn connection_loop(shared: &Shared, stream: UnixStream, conn: ConnId) {
    read_connection(shared, stream, conn);
    shared.socket_closed();
}

fn read_connection(shared: &Shared, mut stream: UnixStream, conn: ConnId) {
    // Wakes an idle reader every LINGER: once we closed the connection and the peer stayed
    // silent that long, the thread ends (a blocked read is not woken by our half-close).
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.lock().writers.contains_key(&conn) {
                    continue;
                }
                return;
            }
            Err(_) => 0,
        };
        let mut st = shared.lock();
        let now = shared.clock.now();
        let alive = st.writers.contains_key(&conn);
        if n == 0 || !alive {
            let _ = st.plugin.handle_eof(conn, now);
            let flush = shared.drain(&mut st);
            drop(st);
            drop(flush);
            if n > 0 {
                linger(&mut stream, &mut buf);
            }
            return;
        }
        let _ = st.plugin.handle_bytes(conn, &buf[..n], now);
        let flush = shared.drain(&mut st);
        drop(st);
        drop(flush);
        buf[..n].zeroize();
    }
}

/// How long a closed connection's socket is still read (and the input dropped) so the peer
/// can read our last bytes and hang up first; also what shutdown waits for that at most.
const LINGER: Duration = Duration::from_secs(2);

/// Reads and drops whatever the peer still sends after we half-closed, until it hangs up or
/// [`LINGER`] is over.
fn linger(stream: &mut UnixStream, buf: &mut [u8]) {
    let deadline = Instant::now() + LINGER;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf[..n].zeroize(),
        }
    }
}

fn timer_loop(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.finished {
            return;
        }
        let now = shared.clock.now();
        match st.plugin.poll_timeout() {
            Some(t) if t <= now => {
                st.plugin.handle_timeout(now);
                st.timer_target = None;
                let flush = shared.drain(&mut st);
                drop(st);
                drop(flush);
                st = shared.lock();
            }
            Some(t) => {
                st.timer_target = Some(t);
                let wait = shared
                    .clock
                    .instant(t)
                    .saturating_duration_since(Instant::now());
                st = shared
                    .timer_cv
                    .wait_timeout(st, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            None => {
                st.timer_target = None;
                st = shared
                    .timer_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

fn remote_worker(shared: &Shared, jobs: &Mutex<Receiver<Job>>, provider: &dyn KekProvider) {
    loop {
        let job = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        let deadline = shared.clock.instant(job.deadline);
        let result = provider::execute(provider, &job.op, deadline);
        let mut st = shared.lock();
        if let Err(e) = st.plugin.handle_remote(job.id, result, shared.clock.now()) {
            shared
                .logger
                .error("remote reply rejected by the core", &[("error", &e)]);
        }
        let flush = shared.drain(&mut st);
        drop(st);
        drop(flush);
    }
}

/// The metrics and readiness of a running server (see [`Server::probe`]).
struct ServerProbe(Arc<Shared>);

impl Probe for ServerProbe {
    fn render_metrics(&self, out: &mut String) {
        let mut st = self.0.lock();
        let State {
            plugin, metrics, ..
        } = &mut *st;
        metrics.observe(plugin, self.0.clock.now());
        metrics.render(out);
        drop(st);
        self.0.provider.render_metrics(out);
        self.0.gate.render_metrics(out);
    }

    fn readiness(&self) -> Result<(), String> {
        let st = self.0.lock();
        let snap = st.plugin.status_snapshot(self.0.clock.now());
        if snap.shutting_down {
            Err("shutting down".into())
        } else if snap.healthy {
            Ok(())
        } else {
            Err(snap.healthz.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled(pool: &BufferPool) -> usize {
        pool.0.lock().unwrap().len()
    }

    #[test]
    fn buffer_pool_hands_out_empty_buffers_with_capacity_and_stays_bounded() {
        let pool = BufferPool(Mutex::new(Vec::new()));
        let fresh = pool.get();
        assert!(fresh.is_empty() && fresh.capacity() >= OUT_BUFFER_BYTES);

        let mut written = pool.get();
        written.extend_from_slice(b"response bytes");
        let cap = written.capacity();
        pool.put(written);
        let reused = pool.get();
        assert!(reused.is_empty(), "a pooled buffer comes back cleared");
        assert_eq!(reused.capacity(), cap, "and keeps its allocation");

        // A burst-sized buffer is freed, not kept.
        pool.put(Vec::with_capacity(MAX_POOLED_CAPACITY + 1));
        assert_eq!(pooled(&pool), 0);
        // At most POOLED_BUFFERS are kept.
        for _ in 0..POOLED_BUFFERS + 10 {
            pool.put(Vec::with_capacity(64));
        }
        assert_eq!(pooled(&pool), POOLED_BUFFERS);
    }
}
