//! Drives one [`Connection`] against a [`TestClient`] in memory, with a closure standing in
//! for the services, so transport tests need no KMS code. Time is virtual.
//!
//! Two ways to drive it: [`Harness::pump`] moves bytes both ways and answers requests (the
//! client acknowledges SETTINGS, answers PING and returns flow-control credit), while
//! [`Harness::feed`] delivers hand-built frames and only reads the server's answer, for tests
//! that play a raw peer byte by byte.

use alloc::vec::Vec;
use core::time::Duration;

use crate::client::{ClientResponse, RequestOptions, TestClient};
use kms_plugin_core::config::TransportConfig;
use kms_plugin_core::event::ConnEvent;
use kms_plugin_core::rpc::{Request, Response, StreamId};
use kms_plugin_core::secret::SecretBytes;
use kms_plugin_core::testing::Connection;
use kms_plugin_core::time::Timestamp;

/// A service stand-in: answer now (`Some`) or park the request (`None`, see
/// [`Harness::parked`]).
pub type Handler<'a> = dyn FnMut(&Request) -> Option<Response> + 'a;

/// Echoes the request message back with status OK.
pub fn echo(req: &Request) -> Option<Response> {
    Some(Response::ok(SecretBytes::copy_from(req.message.expose())))
}

/// Parks every request.
pub fn park(_req: &Request) -> Option<Response> {
    None
}

/// One connection, one client, a virtual clock and everything observed.
pub struct Harness {
    /// The server side under test.
    pub conn: Connection,
    /// The client side.
    pub client: TestClient,
    /// The virtual clock.
    pub now: Timestamp,
    /// Client-to-server bytes are fed in chunks of this many octets (1 works).
    pub feed_chunk: usize,
    /// Every connection event so far.
    pub events: Vec<ConnEvent>,
    /// Every stream reported by `poll_cancelled` so far.
    pub cancelled: Vec<StreamId>,
    /// Requests the handler parked, in arrival order.
    pub parked: Vec<Request>,
    /// Every octet the server sent, in order.
    pub transcript: Vec<u8>,
    /// The largest `in_flight()` seen.
    pub max_in_flight: usize,
}

impl Harness {
    /// A fresh connection at time zero; nothing exchanged yet.
    pub fn new(config: &TransportConfig) -> Self {
        Self {
            conn: Connection::new(config, Timestamp::ZERO),
            client: TestClient::new(),
            now: Timestamp::ZERO,
            feed_chunk: usize::MAX,
            events: Vec::new(),
            cancelled: Vec::new(),
            parked: Vec::new(),
            transcript: Vec::new(),
            max_in_flight: 0,
        }
    }

    /// A connection whose preface and SETTINGS exchange is complete.
    pub fn connected(config: &TransportConfig) -> Self {
        let mut h = Self::new(config);
        let hs = h.client.handshake();
        h.send(&hs);
        h.pump(&mut echo);
        h
    }

    /// A connection whose handshake is complete, for raw-peer tests: the client returns no
    /// flow-control credit by itself and the handshake's frames are forgotten.
    pub fn raw_connected(config: &TransportConfig) -> Self {
        let mut h = Self::connected(config);
        h.client.auto_window_update = false;
        h.client.frames.clear();
        h
    }

    /// Delivers hand-built `bytes` and reads what the server answers ([`Harness::drain`]);
    /// nothing the client owes is sent back.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.send(bytes);
        self.drain();
    }

    /// [`Harness::feed`], one octet per call.
    pub fn feed_bytewise(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.conn.handle_bytes(core::slice::from_ref(b), self.now);
        }
        self.drain();
    }

    /// Parks every request, collects events and cancellations, and hands the server's output
    /// to the client (which parses and checks it); sends nothing back.
    pub fn drain(&mut self) {
        while let Some(req) = self.conn.poll_request() {
            self.max_in_flight = self.max_in_flight.max(self.conn.in_flight());
            self.parked.push(req);
        }
        self.collect();
        let buf = self.take_server_output();
        self.client.receive(&buf);
    }

    /// DATA payload octets the server sent on `stream` (padding included).
    pub fn data(&self, stream: StreamId) -> Vec<u8> {
        self.client
            .frames
            .iter()
            .filter(|f| f.kind == 0x0 && f.stream == stream)
            .flat_map(|f| f.payload.iter().copied())
            .collect()
    }

    /// Whether the server ended `stream` (HEADERS or DATA with END_STREAM).
    pub fn ended(&self, stream: StreamId) -> bool {
        self.client
            .frames
            .iter()
            .any(|f| f.kind <= 0x1 && f.stream == stream && f.flags & 0x1 != 0)
    }

    /// The error code of the server's RST_STREAM on `stream`, if any.
    pub fn rst(&self, stream: StreamId) -> Option<u32> {
        self.client
            .frames
            .iter()
            .find(|f| f.kind == 0x3 && f.stream == stream)
            .and_then(|f| f.payload.first_chunk::<4>())
            .map(|c| u32::from_be_bytes(*c))
    }

    /// The error code of the server's last GOAWAY, if any.
    pub fn goaway_code(&self) -> Option<u32> {
        self.client.goaway().map(|(_, code)| code)
    }

    /// Feeds client bytes to the server in `feed_chunk`-sized pieces.
    pub fn send(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(self.feed_chunk.max(1)) {
            self.conn.handle_bytes(chunk, self.now);
        }
    }

    /// Takes the server's output without handing it to the client.
    pub fn take_server_output(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.conn.poll_transmit(&mut buf);
        self.transcript.extend_from_slice(&buf);
        buf
    }

    /// Moves bytes both ways and answers requests with `handler` until nothing moves.
    pub fn pump(&mut self, handler: &mut Handler<'_>) {
        for _ in 0..100_000 {
            let mut moved = false;
            let buf = self.take_server_output();
            if !buf.is_empty() {
                self.client.receive(&buf);
                moved = true;
            }
            while let Some(req) = self.conn.poll_request() {
                moved = true;
                self.max_in_flight = self.max_in_flight.max(self.conn.in_flight());
                match handler(&req) {
                    Some(resp) => self.conn.respond(req.stream, resp, self.now),
                    None => self.parked.push(req),
                }
            }
            self.collect();
            let out = self.client.pending_output();
            if !out.is_empty() && !self.conn.is_closed() {
                self.send(&out);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("harness pump did not settle");
    }

    /// Drains events and cancellations into `events` / `cancelled`.
    pub fn collect(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            self.events.push(e);
        }
        while let Some(c) = self.conn.poll_cancelled() {
            self.cancelled.push(c);
        }
    }

    /// Answers a parked request.
    pub fn respond(&mut self, stream: StreamId, response: Response) {
        self.parked.retain(|r| r.stream != stream);
        self.conn.respond(stream, response, self.now);
    }

    /// One unary call answered by `handler`; `None` if the stream did not finish.
    pub fn call(
        &mut self,
        path: &str,
        message: &[u8],
        opts: &RequestOptions,
        handler: &mut Handler<'_>,
    ) -> Option<ClientResponse> {
        let (id, bytes) = self.client.unary(path, message, opts);
        self.send(&bytes);
        self.pump(handler);
        self.client.take_response(id)
    }

    /// Moves the clock forward and fires the connection's timers.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(by);
        self.conn.handle_timeout(self.now);
        self.collect();
    }

    /// Whether any event is a connection-level protocol error with `reason`.
    pub fn saw_connection_error(&self, reason: kms_plugin_core::h2::Reason) -> bool {
        self.events.iter().any(|e| {
            matches!(e, ConnEvent::ProtocolError { stream: None, reason: r, .. } if *r == reason)
        })
    }
}
