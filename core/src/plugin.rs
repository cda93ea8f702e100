//! The entry type: one [`Plugin`] per listening socket.
//!
//! A `Plugin` owns every connection's HTTP/2 state machine (`Connection`) and the KMS
//! services (`KmsService`). Drivers feed it accepted connections, bytes, EOFs, remote
//! replies and timer expiries, and after **every** `handle_*` call drain, in this order,
//! `poll_transmit` until `None`, `poll_effect` until `None`, `poll_event` until `None`, then
//! ask `poll_timeout` for the next deadline (the crate-level loop contract), and read a
//! connection only while [`Plugin::wants_read`] says so and its earlier output is written
//! (backpressure). Time passed in must never go backwards. Protocol trouble from peers never returns `Err`: it becomes
//! GOAWAY / RST_STREAM / a gRPC status plus an [`Event`]. `Err(UsageError)` means the driver
//! broke the contract.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::config::{Config, ConfigError};
use crate::conn::Connection;
use crate::effect::{Effect, RemoteError, RemoteReply};
pub use crate::error::UsageError;
use crate::event::Event;
use crate::health::HealthWarning;
pub use crate::ids::ConnId;
use crate::ids::OpId;
use crate::kms::KmsService;
use crate::time::{Timestamp, earliest};

/// A cheap, non-secret summary for the runtimes' probes and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusSnapshot<'a> {
    /// Whether healthz is `ok`.
    pub healthy: bool,
    /// healthz as v2 Status reports it (`ok` or a short cause, which names a missing remote
    /// key version).
    pub healthz: &'a str,
    /// The key id v2 Status reports (`""` before the first local KEK).
    pub key_id: &'a str,
    /// Open connections.
    pub connections: usize,
    /// Requests waiting for a remote operation.
    pub parked_requests: usize,
    /// Unwrapped local KEKs cached.
    pub cached_keks: usize,
    /// Remote operations outstanding.
    pub remote_in_flight: usize,
    /// Whether graceful shutdown has begun.
    pub shutting_down: bool,
}

/// The sans-IO KMS plugin. See the module docs for the loop contract.
pub struct Plugin {
    config: Config,
    kms: KmsService,
    /// Open connections (removed once closed and flushed).
    conns: BTreeMap<ConnId, Connection>,
    next_conn: u64,
    /// Where `poll_transmit` resumes its round-robin scan.
    transmit_cursor: u64,
    /// Connections closed and flushed, awaiting their `Effect::Close`.
    to_close: VecDeque<ConnId>,
    events: VecDeque<Event>,
    shutting_down: bool,
}

impl Plugin {
    /// Validates `config` and builds a plugin. `rng_seed` must come from a CSPRNG (it seeds
    /// every local KEK, nonce and HKDF info). The first remote Status effect is queued at once.
    pub fn new(config: Config, rng_seed: [u8; 32], now: Timestamp) -> Result<Self, ConfigError> {
        config.validate()?;
        let kms = KmsService::new(&config.kms, rng_seed, now);
        Ok(Self {
            config,
            kms,
            conns: BTreeMap::new(),
            next_conn: 0,
            transmit_cursor: 0,
            to_close: VecDeque::new(),
            events: VecDeque::new(),
            shutting_down: false,
        })
    }

    /// A connection was accepted. Beyond `max_connections` (or during shutdown) it is closed at
    /// once: its `Effect::Close` follows without any bytes.
    pub fn handle_accept(&mut self, now: Timestamp) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let full =
            self.conns.values().filter(|c| !c.is_closed()).count() >= self.config.max_connections;
        if self.shutting_down || (full && !self.evict_one(now)) {
            self.events.push_back(Event::ConnectionRefused { conn: id });
            self.to_close.push_back(id);
            return id;
        }
        let conn = Connection::new(&self.config.transport, now);
        self.conns.insert(id, conn);
        self.events
            .push_back(Event::ConnectionAccepted { conn: id });
        id
    }

    /// Bytes read from `conn`'s socket. Bytes for a connection already closed are ignored.
    pub fn handle_bytes(
        &mut self,
        conn: ConnId,
        bytes: &[u8],
        now: Timestamp,
    ) -> Result<(), UsageError> {
        // Request octets buffered on the other connections, summed when needed (a few connections in practice, `max_connections` at most) rather
        // than kept as a running total that a path forgetting to update it would skew.
        let others: usize = self
            .conns
            .iter()
            .filter(|(id, _)| **id != conn)
            .map(|(_, c)| c.buffered_request_bytes())
            .sum();
        // Parked requests hold request data too: they share the budget.
        let budget = self
            .config
            .max_buffered_total
            .saturating_sub(self.kms.parked_bytes());
        let Some(c) = self.conn_mut(conn)? else {
            return Ok(());
        };
        c.set_buffer_allowance(budget.saturating_sub(others));
        c.handle_bytes(bytes, now);
        self.pump(conn, now);
        Ok(())
    }

    /// `conn`'s peer closed its write side (read returned 0).
    pub fn handle_eof(&mut self, conn: ConnId, now: Timestamp) -> Result<(), UsageError> {
        let Some(c) = self.conn_mut(conn)? else {
            return Ok(());
        };
        c.handle_eof(now);
        self.pump(conn, now);
        Ok(())
    }

    /// The result of the remote operation `id`. Replies for operations the core already gave
    /// up on are dropped with [`Event::LateRemoteReplyDropped`]; unknown or repeated ids are a
    /// [`UsageError`].
    pub fn handle_remote(
        &mut self,
        id: OpId,
        result: Result<RemoteReply, RemoteError>,
        now: Timestamp,
    ) -> Result<(), UsageError> {
        let r = self.kms.handle_remote(id, result, now);
        self.route_answers(now);
        r
    }

    /// Fires every timer due at `now`; spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let due: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(c) = self.conns.get_mut(&id) {
                c.handle_timeout(now);
            }
            self.pump(id, now);
        }
        self.kms.handle_timeout(now);
        self.route_answers(now);
    }

    /// Begins graceful shutdown: GOAWAY on every connection, in-flight requests still finish,
    /// new connections are refused. Poll [`Plugin::is_drained`] to know when to exit.
    pub fn handle_shutdown(&mut self, now: Timestamp) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.events.push_back(Event::ShutdownStarted);
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.start_shutdown(now);
            }
            self.pump(id, now);
        }
    }

    /// Whether the driver may read from `conn` now (false: backpressure, or closed).
    ///
    /// Backpressure is part of the loop contract: a driver reads a connection only while this
    /// is true **and** every byte `poll_transmit` gave it for that connection has been
    /// written to the socket. Reading is what makes a peer's frames produce output (PING and
    /// SETTINGS acknowledgements, RST_STREAM, answers), so a peer that stops reading stops
    /// being read, and its output stays bounded by `transport.max_pending_output` plus what
    /// one read produces. The core enforces its side: it turns false once that many octets
    /// wait for `poll_transmit`, and input fed anyway ends the connection with
    /// GOAWAY(ENHANCE_YOUR_CALM) instead of growing the queue.
    pub fn wants_read(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(Connection::wants_read)
    }

    /// Appends one connection's pending bytes to `buf` and returns it; `None` when no
    /// connection has anything to send. Connections found closed and flushed are queued for
    /// `Effect::Close`.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<ConnId> {
        // Round-robin from the cursor, visiting each connection at most once, no allocation.
        for _ in 0..self.conns.len() {
            let id = self
                .conns
                .range(ConnId(self.transmit_cursor)..)
                .next()
                .or_else(|| self.conns.iter().next())
                .map(|(id, _)| *id)?;
            self.transmit_cursor = id.0 + 1;
            let c = self.conns.get_mut(&id)?;
            if c.poll_transmit(buf) {
                return Some(id);
            }
            if c.is_closed() {
                self.conns.remove(&id);
                self.kms.handle_conn_closed(id);
                self.to_close.push_back(id);
                self.events.push_back(Event::ConnectionClosed { conn: id });
            }
        }
        None
    }

    /// The next effect: remote operations (and their cancellations), then closes.
    #[must_use]
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.kms
            .poll_effect()
            .or_else(|| self.to_close.pop_front().map(|conn| Effect::Close { conn }))
    }

    /// The next observability event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front().or_else(|| self.kms.poll_event())
    }

    /// The earliest deadline at which [`Plugin::handle_timeout`] must be called; `None` = idle.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.conns
            .values()
            .map(Connection::poll_timeout)
            .fold(self.kms.poll_timeout(), earliest)
    }

    /// Whether shutdown has finished: it was requested and every connection is closed.
    pub fn is_drained(&self) -> bool {
        self.shutting_down && self.conns.is_empty() && self.to_close.is_empty()
    }

    /// Health, key id and gauges for probes and metrics (no secrets).
    pub fn status_snapshot(&self, now: Timestamp) -> StatusSnapshot<'_> {
        let ks = self.kms.keystore();
        StatusSnapshot {
            healthy: ks.health_at(now).ok,
            healthz: ks.healthz_at(now),
            key_id: ks.advertised_key_id(),
            connections: self.conns.len(),
            parked_requests: self.kms.parked_requests(),
            cached_keks: ks.cached_keks(),
            remote_in_flight: ks.remote_in_flight(),
            shutting_down: self.shutting_down,
        }
    }

    /// Sets the operator-facing warning that every v2 Status answered from now on carries as
    /// the extra gRPC trailer `kms-plugin-warning: <text>` ([`crate::health::WARNING_TRAILER`];
    /// `None`, the default, sends none, and the answer is byte for byte what it was without).
    ///
    /// The warning never touches healthz, which stays exactly `ok` when healthy (kube-apiserver
    /// treats anything else as unhealthy), nor any other answer. gRPC allows custom metadata in
    /// trailers, and grpc-go (kube-apiserver's client) and other gRPC clients ignore trailers
    /// they do not know; `kms-plugin probe` prints it. The text is bounded printable ASCII
    /// ([`HealthWarning`]), always a valid HTTP/2 field value.
    pub fn set_health_warning(&mut self, warning: Option<HealthWarning>) {
        self.kms.set_health_warning(warning);
    }

    /// The KMS service (read-only, for the metrics' gauges).
    pub(crate) fn kms(&self) -> &KmsService {
        &self.kms
    }

    /// Request octets buffered across every connection now.
    pub fn buffered_total(&self) -> usize {
        self.conns
            .values()
            .map(Connection::buffered_request_bytes)
            .sum()
    }

    /// Request octets held by requests parked on a remote operation now (they count against
    /// `max_buffered_total` too).
    pub fn parked_bytes(&self) -> usize {
        self.kms.parked_bytes()
    }

    // --- internals ---------------------------------------------------------------------------

    /// Makes room in a full connection table: closes the oldest connection still in its
    /// handshake, else the one idle longest. False when every connection is busy.
    fn evict_one(&mut self, now: Timestamp) -> bool {
        let handshaking = self
            .conns
            .iter()
            .find(|(_, c)| c.is_handshaking())
            .map(|(id, _)| *id);
        let victim = handshaking.or_else(|| {
            self.conns
                .iter()
                .filter_map(|(id, c)| c.idle_since().map(|t| (t, *id)))
                .min()
                .map(|(_, id)| id)
        });
        let Some(victim) = victim else {
            return false;
        };
        if let Some(c) = self.conns.get_mut(&victim) {
            c.evict();
        }
        self.pump(victim, now);
        true
    }

    /// The open connection `id`; `Ok(None)` if it was accepted but is closed now.
    fn conn_mut(&mut self, id: ConnId) -> Result<Option<&mut Connection>, UsageError> {
        if id.0 >= self.next_conn {
            return Err(UsageError::UnknownConnection(id));
        }
        Ok(self.conns.get_mut(&id))
    }

    /// Moves everything a connection produced into the services, and answers back out.
    fn pump(&mut self, id: ConnId, now: Timestamp) {
        while let Some(c) = self.conns.get_mut(&id) {
            if let Some(stream) = c.poll_cancelled() {
                self.kms.handle_cancel(id, stream);
                continue;
            }
            if let Some(ev) = c.poll_event() {
                self.events.push_back(Event::Transport {
                    conn: id,
                    event: ev,
                });
                continue;
            }
            let Some(req) = c.poll_request() else {
                break;
            };
            self.kms.handle_request(id, req, now);
            self.route_answers(now);
        }
        self.route_answers(now);
    }

    /// Hands every ready answer to its connection (answers for closed ones are dropped).
    fn route_answers(&mut self, now: Timestamp) {
        while let Some(a) = self.kms.poll_answer() {
            if let Some(c) = self.conns.get_mut(&a.conn) {
                c.respond(a.stream, a.response, now);
            }
        }
    }
}
