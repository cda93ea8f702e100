//! The process-wide memory budget (`Config`): request octets buffered across all connections
//! are capped, idle connections time out, and a full connection table still admits new
//! clients by closing a half-open or idle connection (refusing only when all are busy).

use core::time::Duration;

use kms_plugin_core::config::Config;
use kms_plugin_core::event::Event;
use kms_plugin_core::h2::PREFACE;
use kms_plugin_core::plugin::{ConnId, Plugin};
use kms_plugin_core::rpc::Code;
use kms_plugin_core::time::Timestamp;
use kms_plugin_testkit::client::{RequestOptions, TestClient};

struct Bench {
    plugin: Plugin,
    now: Timestamp,
    closed: Vec<ConnId>,
    refused: Vec<ConnId>,
}

impl Bench {
    fn new(config: Config) -> Self {
        Self {
            plugin: Plugin::new(config, [3; 32], Timestamp::ZERO).unwrap(),
            now: Timestamp::ZERO,
            closed: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// Everything the core queued, per connection, in order.
    fn drain(&mut self) -> Vec<(ConnId, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while let Some(conn) = self.plugin.poll_transmit(&mut buf) {
            out.push((conn, core::mem::take(&mut buf)));
        }
        while self.plugin.poll_effect().is_some() {}
        while let Some(e) = self.plugin.poll_event() {
            match e {
                Event::ConnectionClosed { conn } => self.closed.push(conn),
                Event::ConnectionRefused { conn } => self.refused.push(conn),
                _ => {}
            }
        }
        out
    }

    fn accept(&mut self) -> ConnId {
        let c = self.plugin.handle_accept(self.now);
        self.drain();
        c
    }

    /// A connection with a finished handshake and its client.
    fn open(&mut self) -> (ConnId, TestClient) {
        let conn = self.plugin.handle_accept(self.now);
        let mut client = TestClient::new();
        for (c, out) in self.drain() {
            if c == conn {
                client.receive(&out); // our SETTINGS
            }
        }
        let hello = client.handshake();
        self.feed(conn, &mut client, &hello);
        let ack = client.pending_output(); // acknowledges our SETTINGS
        self.feed(conn, &mut client, &ack);
        (conn, client)
    }

    fn feed(&mut self, conn: ConnId, client: &mut TestClient, bytes: &[u8]) {
        self.plugin.handle_bytes(conn, bytes, self.now).unwrap();
        for (c, out) in self.drain() {
            if c == conn {
                client.receive(&out);
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(by);
        self.plugin.handle_timeout(self.now);
        self.drain();
    }
}

/// `streams` v2 Encrypt requests, each with HEADERS and `per_stream` octets of body (the
/// gRPC prefix announces more) and no END_STREAM: bodies that stay buffered. Returns the
/// stream ids and the bytes.
fn partial_requests(
    client: &mut TestClient,
    streams: usize,
    per_stream: usize,
) -> (Vec<u32>, Vec<u8>) {
    let opts = RequestOptions::default();
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for _ in 0..streams {
        let id = client.allocate_stream();
        let block = client.request_block("/v2.KeyManagementService/Encrypt", &opts);
        out.extend_from_slice(&client.headers_frames(id, &block, false, &opts));
        let mut body = vec![0u8; per_stream];
        body[1..5].copy_from_slice(&(per_stream as u32 + 100).to_be_bytes());
        for chunk in body.chunks(16 * 1024) {
            out.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&[0, 0]); // DATA, no flags
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(chunk);
        }
        ids.push(id);
    }
    (ids, out)
}

#[test]
fn request_octets_buffered_across_connections_are_capped() {
    let config = Config {
        max_buffered_total: 6 << 20,
        ..Config::default()
    };
    let mut b = Bench::new(config);
    let (c1, mut k1) = b.open();
    let (c2, mut k2) = b.open();
    let (_, bytes) = partial_requests(&mut k1, 4, 1_000_000);
    b.feed(c1, &mut k1, &bytes);
    assert_eq!(b.plugin.buffered_total(), 4_000_000);
    // Three more bodies on another connection would take the process past 6 MiB: the
    // stream that crosses the budget is refused, the others stay.
    let (ids, bytes) = partial_requests(&mut k2, 3, 1_000_000);
    b.feed(c2, &mut k2, &bytes);
    let refused = k2
        .take_response(ids[2])
        .expect("an answer on the third stream");
    assert_eq!(refused.grpc_status, Some(Code::ResourceExhausted.as_u8()));
    assert!(k2.take_response(ids[0]).is_none() && k2.take_response(ids[1]).is_none());
    assert!(b.plugin.buffered_total() <= 6 << 20);
    // The connections stay; the total shrinks when one closes.
    assert!(b.closed.is_empty());
    b.plugin.handle_eof(c1, b.now).unwrap();
    b.drain();
    assert_eq!(b.plugin.buffered_total(), 2_000_000);
}

#[test]
fn idle_connections_time_out_with_goaway_busy_ones_do_not() {
    let config = Config::default();
    let idle = config.transport.idle_timeout;
    let mut b = Bench::new(config);
    let (quiet, _) = b.open();
    let (busy, mut kb) = b.open();
    let (_, bytes) = partial_requests(&mut kb, 1, 10);
    b.feed(busy, &mut kb, &bytes);
    b.advance(idle.checked_sub(Duration::from_secs(1)).unwrap());
    assert!(b.closed.is_empty());
    b.advance(Duration::from_secs(2));
    assert_eq!(b.closed, vec![quiet], "only the connection with no stream");
}

#[test]
fn a_full_table_evicts_half_open_then_idle_connections_and_refuses_only_when_all_are_busy() {
    let config = Config {
        max_connections: 3,
        ..Config::default()
    };
    let mut b = Bench::new(config);
    let (busy1, mut k1) = b.open();
    let (_, bytes) = partial_requests(&mut k1, 1, 10);
    b.feed(busy1, &mut k1, &bytes);
    let half_open = b.accept(); // sends half its preface, then nothing
    b.plugin
        .handle_bytes(half_open, &PREFACE[..16], b.now)
        .unwrap();
    b.drain();
    b.advance(Duration::from_millis(10));
    let (idle, _) = b.open();
    assert!(b.closed.is_empty());

    // Full: the half-open connection makes room first, though the idle one is newer.
    let (busy2, mut k2) = b.open();
    assert_eq!(b.closed, vec![half_open]);
    // Full again: the idle one makes room.
    let (busy3, mut k3) = b.open();
    assert_eq!(b.closed, vec![half_open, idle]);
    assert!(b.refused.is_empty());
    // Every connection busy: a new one is refused, the busy ones stay.
    let (_, bytes) = partial_requests(&mut k2, 1, 10);
    b.feed(busy2, &mut k2, &bytes);
    let (_, bytes) = partial_requests(&mut k3, 1, 10);
    b.feed(busy3, &mut k3, &bytes);
    let refused = b.accept();
    assert_eq!(b.refused, vec![refused]);
    assert_eq!(b.closed, vec![half_open, idle]);
}

#[test]
fn parked_requests_count_against_the_budget() {
    use kms_plugin_testkit::kms_messages as msg;
    // The start-up Status is never answered: no local KEK yet, so every Encrypt parks.
    let config = Config {
        max_buffered_total: (4 << 20) + 5,
        ..Config::default()
    };
    let mut b = Bench::new(config);
    let (conn, mut client) = b.open();
    let opts = RequestOptions::default();
    let mut streams = Vec::new();
    for i in 0..5u8 {
        let message = msg::v2_encrypt(&vec![i; 900_000], "big");
        let (stream, bytes) = client.unary("/v2.KeyManagementService/Encrypt", &message, &opts);
        b.feed(conn, &mut client, &bytes);
        streams.push(stream);
    }
    assert_eq!(b.plugin.status_snapshot(b.now).parked_requests, 4);
    assert!(b.plugin.parked_bytes() >= 4 * 900_000);
    for &s in &streams[..4] {
        assert!(client.take_response(s).is_none(), "parked, not answered");
    }
    let refused = client
        .take_response(streams[4])
        .expect("the fifth is answered");
    assert_eq!(refused.grpc_status, Some(Code::ResourceExhausted.as_u8()));
    // The connection ends: its parked requests go, and so do their octets.
    b.plugin.handle_eof(conn, b.now).unwrap();
    b.drain();
    assert_eq!(b.plugin.parked_bytes(), 0);
}
