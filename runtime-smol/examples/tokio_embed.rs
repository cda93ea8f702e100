//! Drives the sans-IO core from tokio, a runtime this project does not ship (tokio is only a
//! dev-dependency): the whole driver is the loop contract of `kms_plugin_core` (feed, then
//! drain transmit / effects / events / next deadline) and its backpressure rule (write what is
//! queued for a connection before reading it again, and read only while `wants_read`).
//! The remote KMS is the core's in-memory `FakeRemote`; a real one would do IO in the spawned
//! task. `cargo run -p kms-plugin-smol --example tokio_embed -- /tmp/kms-tokio.sock`; tested by
//! `runtime-smol/tests/tokio_embed.rs` with a tonic client.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, dead_code)]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kms_plugin_core::{Config, ConnId, Effect, Plugin, Timestamp};
use kms_plugin_testkit::fake_remote::FakeRemote;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;

/// One connection's unwritten output (`true`: close after it) and the bell of its task.
#[derive(Default)]
struct Outbox {
    queue: Mutex<(VecDeque<Vec<u8>>, bool)>,
    bell: Notify,
}

struct State {
    plugin: Plugin,
    origin: Instant,
    outboxes: HashMap<ConnId, Arc<Outbox>>,
}

impl State {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.origin.elapsed().as_nanos() as u64)
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    remote: Arc<Mutex<FakeRemote>>,
    /// Rung after every drain: the timer re-arms, shutdown re-checks.
    drained: Arc<Notify>,
}

impl Shared {
    /// Runs `f` on the plugin with the current time, then the loop contract's drain.
    fn with<R>(&self, f: impl FnOnce(&mut Plugin, Timestamp) -> R) -> R {
        self.with_state(|st, now| f(&mut st.plugin, now))
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut State, Timestamp) -> R) -> R {
        let mut st = self.state.lock().unwrap();
        let now = st.now();
        let r = f(&mut st, now);
        self.drain(&mut st);
        r
    }

    /// The loop contract, after every `handle_*`: transmit, effects, events, (next deadline:
    /// the timer task reads it when woken).
    fn drain(&self, st: &mut State) {
        let mut buf = Vec::new();
        while let Some(conn) = st.plugin.poll_transmit(&mut buf) {
            if let Some(outbox) = st.outboxes.get(&conn) {
                outbox
                    .queue
                    .lock()
                    .unwrap()
                    .0
                    .push_back(std::mem::take(&mut buf));
                outbox.bell.notify_one();
            }
            buf.clear();
        }
        while let Some(effect) = st.plugin.poll_effect() {
            match effect {
                Effect::Remote { id, op, .. } => {
                    let shared = self.clone();
                    tokio::spawn(async move {
                        let reply = shared.remote.lock().unwrap().answer(&op);
                        if let Some(reply) = reply {
                            let mut st = shared.state.lock().unwrap();
                            let now = st.now();
                            let _ = st.plugin.handle_remote(id, reply, now);
                            shared.drain(&mut st);
                        }
                    });
                }
                Effect::CancelRemote { .. } => {} // the core drops the late answer
                Effect::Close { conn } => {
                    if let Some(outbox) = st.outboxes.remove(&conn) {
                        outbox.queue.lock().unwrap().1 = true;
                        outbox.bell.notify_one();
                    }
                }
            }
        }
        while st.plugin.poll_event().is_some() {} // a real embedder logs and counts these
        self.drained.notify_waiters();
    }

    /// Unless `check` (under the lock) is `None`, waits for the next drain or the deadline it
    /// gives. Never misses a drain that happens after the check.
    async fn wait(&self, check: impl Fn(&Plugin) -> Option<Option<Timestamp>>) {
        let woken = self.drained.notified(); // notify_waiters reaches it from now on
        let (next, origin) = {
            let st = self.state.lock().unwrap();
            (check(&st.plugin), st.origin)
        };
        match next {
            None => {}
            Some(None) => woken.await,
            Some(Some(t)) => {
                let at = origin + Duration::from_nanos(t.as_nanos());
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = woken => {}
                }
            }
        }
    }
}

/// Serves KMS v1 and v2 on `listener` until `shutdown` completes, then drains gracefully.
pub(crate) async fn serve(listener: UnixListener, shutdown: impl Future<Output = ()>) {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).unwrap();
    let plugin = Plugin::new(Config::default(), seed, Timestamp::ZERO).unwrap();
    getrandom::getrandom(&mut seed).unwrap();
    let shared = Shared {
        state: Arc::new(Mutex::new(State {
            plugin,
            origin: Instant::now(),
            outboxes: HashMap::new(),
        })),
        remote: Arc::new(Mutex::new(FakeRemote::new(seed))),
        drained: Arc::new(Notify::new()),
    };
    shared.with(|_, _| ()); // the first remote Status
    let timer = tokio::spawn(timers(shared.clone()));
    let accept = async {
        while let Ok((stream, _)) = listener.accept().await {
            let outbox = Arc::new(Outbox::default());
            // The outbox exists before the drain, which may already close the connection.
            let conn = shared.with_state(|st, now| {
                let conn = st.plugin.handle_accept(now);
                st.outboxes.insert(conn, outbox.clone());
                conn
            });
            tokio::spawn(connection(shared.clone(), stream, conn, outbox));
        }
    };
    tokio::select! { () = accept => {}, () = shutdown => {} }
    shared.with(Plugin::handle_shutdown);
    while !shared.state.lock().unwrap().plugin.is_drained() {
        shared.wait(|p| (!p.is_drained()).then_some(None)).await;
    }
    timer.abort();
}

/// Fires the core's timers when due: sleeps until `poll_timeout`, re-armed after each drain.
async fn timers(shared: Shared) {
    loop {
        shared.wait(|p| Some(p.poll_timeout())).await;
        shared.with(|p, now| {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
            }
        });
    }
}

/// One connection: write everything queued, then wait for input (only while the core wants
/// it) or more output. Never reads while its own output is unwritten: backpressure.
async fn connection(shared: Shared, stream: UnixStream, conn: ConnId, outbox: Arc<Outbox>) {
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = vec![0u8; 16 * 1024];
    let mut wants_read = true;
    loop {
        loop {
            let next = {
                let mut q = outbox.queue.lock().unwrap();
                q.0.pop_front().ok_or(q.1)
            };
            match next {
                Ok(chunk) if wr.write_all(&chunk).await.is_ok() => {}
                Ok(_) => {
                    shared.with(|p, now| p.handle_eof(conn, now).ok());
                    return;
                }
                Err(true) => return, // closed by the core, everything written
                Err(false) => break,
            }
        }
        tokio::select! {
            n = rd.read(&mut buf), if wants_read => {
                let n = n.unwrap_or(0);
                wants_read = shared.with(|p, now| {
                    let _ = if n == 0 { p.handle_eof(conn, now) } else { p.handle_bytes(conn, &buf[..n], now) };
                    p.wants_read(conn)
                });
                buf[..n].fill(0);
            }
            () = outbox.bell.notified() => {
                wants_read = shared.with(|p, _| p.wants_read(conn));
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/kms-tokio.sock".into());
    let listener = UnixListener::bind(&path).expect("bind the socket");
    println!("serving KMS on unix://{path}; Ctrl-C stops");
    serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    let _ = std::fs::remove_file(&path);
}
