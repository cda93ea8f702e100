//! Deterministic simulation harness: a [`Plugin`], a virtual clock, a fixed RNG seed, one
//! [`TestClient`] per connection and a [`FakeRemote`] KEK (quinn's `Pair::drive`, str0m's
//! `progress`): bytes flow both ways, remote effects complete after their latency on the
//! virtual clock, timers fire, and the loop contract is followed after every input.
//!
//! ```
//! use kms_plugin_core::config::Config;
//! use kms_plugin_testkit::client::RequestOptions;
//! use kms_plugin_testkit::fake_remote::FakeRemote;
//! use kms_plugin_testkit::sim::Sim;
//!
//! let mut sim = Sim::new(Config::default(), [7; 32], FakeRemote::new([42; 32]));
//! sim.drive(); // start-up: remote Status, then the first local KEK wrap
//! let c = sim.connect();
//! let r = sim.call(c, "/v2.KeyManagementService/Status", &[], &RequestOptions::default());
//! assert_eq!(r.grpc_status, Some(0));
//! ```

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use crate::client::{ClientResponse, RequestOptions, TestClient};
use crate::fake_remote::FakeRemote;
use crate::remote_driver::RemoteDriver;
use kms_plugin_core::config::Config;
use kms_plugin_core::effect::Effect;
use kms_plugin_core::error::UsageError;
use kms_plugin_core::event::Event;
use kms_plugin_core::health::{HealthWarning, WARNING_TRAILER};
use kms_plugin_core::ids::ConnId;
use kms_plugin_core::plugin::Plugin;
use kms_plugin_core::rpc::{Code, Response};
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_core::time::{Timestamp, earliest};

/// One simulated client connection.
pub struct SimConn {
    /// The plugin's id for it.
    pub conn: ConnId,
    /// The client end.
    pub client: TestClient,
    /// Set once the plugin asked for the socket to be closed.
    pub closed: bool,
}

/// See the module docs.
pub struct Sim {
    /// The plugin under test.
    pub plugin: Plugin,
    /// Virtual time.
    pub now: Timestamp,
    /// The fake remote and its scheduled replies.
    pub driver: RemoteDriver,
    /// Client connections, by index.
    pub clients: Vec<SimConn>,
    /// Every event, in order.
    pub events: Vec<Event>,
    /// `Effect::Close`s, in order.
    pub closes: Vec<ConnId>,
    /// `handle_remote` usage errors (provoked on purpose by a test).
    pub usage_errors: Vec<UsageError>,
    /// When each (client, stream) finished.
    pub answered_at: BTreeMap<(usize, u32), Timestamp>,
    scratch: Vec<u8>,
}

impl Sim {
    /// A simulation starting at `t = 1 s`.
    pub fn new(config: Config, seed: [u8; 32], remote: FakeRemote) -> Self {
        let now = Timestamp::from_millis(1000);
        let plugin = Plugin::new(config, seed, now).expect("valid config");
        let mut sim = Self {
            plugin,
            now,
            driver: RemoteDriver::new(remote),
            clients: Vec::new(),
            events: Vec::new(),
            closes: Vec::new(),
            usage_errors: Vec::new(),
            answered_at: BTreeMap::new(),
            scratch: Vec::new(),
        };
        sim.step();
        sim
    }

    /// Opens a connection; returns the client index.
    pub fn connect(&mut self) -> usize {
        let conn = self.plugin.handle_accept(self.now);
        self.clients.push(SimConn {
            conn,
            client: TestClient::connecting(),
            closed: false,
        });
        self.step();
        self.clients.len() - 1
    }

    /// Queues a unary call on client `c`; returns its stream id.
    pub fn send(&mut self, c: usize, path: &str, message: &[u8], opts: &RequestOptions) -> u32 {
        let client = &mut self.clients[c].client;
        let (stream, bytes) = client.unary(path, message, opts);
        client.send_raw(&bytes);
        self.step();
        stream
    }

    /// The finished response of `stream` on client `c`, once.
    pub fn take(&mut self, c: usize, stream: u32) -> Option<ClientResponse> {
        self.clients[c].client.take_response(stream)
    }

    /// Sends, drives until quiescent, and returns the response.
    pub fn call(
        &mut self,
        c: usize,
        path: &str,
        message: &[u8],
        opts: &RequestOptions,
    ) -> ClientResponse {
        let s = self.send(c, path, message, opts);
        self.drive();
        self.take(c, s).expect("call was not answered")
    }

    /// The client closes its side of connection `c` (EOF to the plugin).
    pub fn disconnect(&mut self, c: usize) {
        let conn = self.clients[c].conn;
        self.clients[c].closed = true;
        if let Err(e) = self.plugin.handle_eof(conn, self.now) {
            self.usage_errors.push(e);
        }
        self.step();
    }

    /// Runs the loop contract at the current time until nothing moves.
    pub fn step(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step_once() {
                return;
            }
        }
        panic!(
            "the plugin keeps asking for work at {:?} (timer spin?)",
            self.now
        );
    }

    fn step_once(&mut self) -> bool {
        let mut progressed = false;
        for i in 0..self.clients.len() {
            if self.clients[i].closed || !self.clients[i].client.has_output() {
                continue;
            }
            let bytes = self.clients[i].client.pending_output();
            let conn = self.clients[i].conn;
            if let Err(e) = self.plugin.handle_bytes(conn, &bytes, self.now) {
                self.usage_errors.push(e);
            }
            progressed = true;
        }
        loop {
            self.scratch.clear();
            let Some(conn) = self.plugin.poll_transmit(&mut self.scratch) else {
                break;
            };
            progressed = true;
            if let Some(i) = self.clients.iter().position(|c| c.conn == conn) {
                let client = &mut self.clients[i].client;
                let before: Vec<u32> = client.finished_streams();
                client.receive(&self.scratch);
                assert!(
                    client.protocol_errors.is_empty(),
                    "the plugin broke RFC 9113 on client {i}: {:?}",
                    client.protocol_errors
                );
                for s in client.finished_streams() {
                    if !before.contains(&s) {
                        self.answered_at.entry((i, s)).or_insert(self.now);
                    }
                }
            }
        }
        while let Some(effect) = self.plugin.poll_effect() {
            progressed = true;
            match effect {
                Effect::Remote { id, op, .. } => self.driver.start(id, &op, self.now),
                Effect::CancelRemote { id } => self.driver.cancelled.push(id),
                Effect::Close { conn } => {
                    self.closes.push(conn);
                    if let Some(c) = self.clients.iter_mut().find(|c| c.conn == conn) {
                        c.closed = true;
                    }
                }
            }
        }
        while let Some(ev) = self.plugin.poll_event() {
            self.events.push(ev);
        }
        if let Some((id, result)) = self.driver.pop_due(self.now) {
            if let Err(e) = self.plugin.handle_remote(id, result, self.now) {
                self.usage_errors.push(e);
            }
            progressed = true;
        }
        if self.plugin.poll_timeout().is_some_and(|t| t <= self.now) {
            self.plugin.handle_timeout(self.now);
            progressed = true;
        }
        progressed
    }

    /// Whether a client call, a remote reply, a parked request or a remote op is pending.
    fn busy(&self) -> bool {
        let snap = self.plugin.status_snapshot(self.now);
        !self.driver.is_idle()
            || snap.parked_requests > 0
            || snap.remote_in_flight > 0
            || self
                .clients
                .iter()
                .any(|c| !c.closed && c.client.outstanding() > 0)
    }

    /// Runs until no call, reply, parked request or remote op is pending, jumping the clock to
    /// each next reply or deadline (background timers alone do not keep it going).
    pub fn drive(&mut self) {
        for _ in 0..1_000_000 {
            self.step();
            if !self.busy() {
                return;
            }
            match earliest(self.driver.next_due(), self.plugin.poll_timeout()) {
                Some(t) => self.now = self.now.max(t),
                None => return,
            }
        }
        panic!("simulation did not settle");
    }

    /// Advances virtual time by `d`, processing everything due on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now.saturating_add(d);
        for _ in 0..1_000_000 {
            self.step();
            match earliest(self.driver.next_due(), self.plugin.poll_timeout()) {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => {
                    self.now = end;
                    self.step();
                    return;
                }
            }
        }
        panic!("simulation did not settle");
    }
}

/// The gRPC code for a numeric `grpc-status`.
pub fn code_from_u8(v: u8) -> Option<Code> {
    use Code::{
        Aborted, AlreadyExists, Cancelled, DataLoss, DeadlineExceeded, FailedPrecondition,
        Internal, InvalidArgument, NotFound, Ok, OutOfRange, PermissionDenied, ResourceExhausted,
        Unauthenticated, Unavailable, Unimplemented, Unknown,
    };
    [
        Ok,
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    ]
    .get(usize::from(v))
    .copied()
}

impl ClientResponse {
    /// As an [`rpc::Response`](Response), to reuse the `kms_messages` decoders. Panics if the
    /// stream was reset or carried no `grpc-status` (a transport bug).
    pub fn to_rpc(&self) -> Response {
        assert_eq!(self.reset, None, "stream was reset");
        assert_eq!(self.http_status, Some(200));
        let code = self
            .grpc_status
            .and_then(code_from_u8)
            .expect("grpc-status present and valid");
        Response {
            code,
            message: alloc::borrow::Cow::Owned(self.grpc_message.clone().unwrap_or_default()),
            body: self.message.as_deref().map(SecretBytes::copy_from),
            warning: self
                .headers
                .iter()
                .find(|(name, _)| name == WARNING_TRAILER)
                .and_then(|(_, value)| HealthWarning::new(value)),
        }
    }
}
