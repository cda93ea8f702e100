//! Backpressure in the loop contract (crate docs, `Plugin::wants_read`): a driver that reads a
//! connection only once the bytes it holds for it are written, and while `wants_read` is true,
//! keeps a peer that floods PINGs and never reads bounded, while another connection is served
//! throughout; and the core bounds its own queue when a driver ignores `wants_read`.

use std::collections::VecDeque;

use kms_plugin_core::config::Config;
use kms_plugin_core::event::Event;
use kms_plugin_core::plugin::{ConnId, Plugin};
use kms_plugin_core::time::Timestamp;
use kms_plugin_testkit::client::TestClient;

/// What one read hands the core, like the runtimes' 16 KiB read buffers.
const READ: usize = 16 * 1024;
/// What the simulated socket buffers towards the client before a write would block.
const SOCKET: usize = 208 * 1024;

/// `count` PING frames (RFC 9113 §6.7), each answered by an 17-octet PING ACK.
fn pings(count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 17);
    for i in 0..count {
        out.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&(i as u64).to_be_bytes());
    }
    out
}

/// One connection as a contract-obeying driver sees it.
struct Peer {
    conn: ConnId,
    /// Client bytes not yet read by the driver.
    to_server: VecDeque<u8>,
    /// Bytes the driver took from `poll_transmit` and has not written yet.
    unwritten: VecDeque<u8>,
    /// Bytes written to the socket that the client has not read.
    in_socket: usize,
    /// Whether the client reads what arrives.
    reads: bool,
    client: TestClient,
    fed: usize,
    most_held: usize,
}

impl Peer {
    fn new(plugin: &mut Plugin, reads: bool) -> Self {
        let conn = plugin.handle_accept(Timestamp::ZERO);
        let mut client = TestClient::new();
        let to_server = client.handshake().into();
        Self {
            conn,
            to_server,
            unwritten: VecDeque::new(),
            in_socket: 0,
            reads,
            client,
            fed: 0,
            most_held: 0,
        }
    }

    /// Writes what the socket takes; the client reads if it does.
    fn write(&mut self) {
        let room = SOCKET - self.in_socket;
        let n = room.min(self.unwritten.len());
        let chunk: Vec<u8> = self.unwritten.drain(..n).collect();
        self.in_socket += n;
        if self.reads {
            self.client.receive(&chunk);
            self.in_socket = 0;
        }
        self.most_held = self.most_held.max(self.unwritten.len() + self.in_socket);
    }

    /// Reads one buffer into the core, if the contract allows it now.
    fn read(&mut self, plugin: &mut Plugin) {
        if !self.unwritten.is_empty() || !plugin.wants_read(self.conn) {
            return;
        }
        let n = READ.min(self.to_server.len());
        let chunk: Vec<u8> = self.to_server.drain(..n).collect();
        if !chunk.is_empty() {
            plugin
                .handle_bytes(self.conn, &chunk, Timestamp::ZERO)
                .unwrap();
            self.fed += n;
        }
    }
}

fn drain(plugin: &mut Plugin, peers: &mut [&mut Peer]) {
    let mut buf = Vec::new();
    while let Some(conn) = plugin.poll_transmit(&mut buf) {
        if let Some(p) = peers.iter_mut().find(|p| p.conn == conn) {
            p.unwritten.extend(buf.drain(..));
        }
        buf.clear();
    }
    while plugin.poll_effect().is_some() {}
    while plugin.poll_event().is_some() {}
}

#[test]
fn a_driver_stops_reading_a_connection_whose_output_is_not_draining() {
    let mut plugin = Plugin::new(Config::default(), [1; 32], Timestamp::ZERO).unwrap();
    let mut flood = Peer::new(&mut plugin, false);
    let mut good = Peer::new(&mut plugin, true);
    // 64 MiB of PINGs: without backpressure, 64 MiB of ACKs would pile up.
    let flood_bytes = pings(4 * 1024 * 1024);
    flood.to_server.extend(flood_bytes.iter());
    for round in 0..2_000u64 {
        good.to_server.extend(pings(1));
        let acks_before = good.client.ping_acks.len();
        flood.read(&mut plugin);
        good.read(&mut plugin);
        drain(&mut plugin, &mut [&mut flood, &mut good]);
        flood.write();
        good.write();
        assert!(
            good.client.ping_acks.len() > acks_before || round == 0,
            "the well-behaved connection is answered in round {round}"
        );
    }
    assert!(
        flood.fed < SOCKET + 2 * READ,
        "the flooding peer stopped being read: {} octets read",
        flood.fed
    );
    assert!(
        flood.most_held <= SOCKET + 2 * READ,
        "its output stayed bounded: at most {} octets held",
        flood.most_held
    );
    assert!(plugin.wants_read(flood.conn), "only paused, not closed");
}

#[test]
fn the_core_bounds_its_queue_when_a_driver_ignores_wants_read() {
    let config = Config::default();
    let cap = config.transport.max_pending_output;
    let mut plugin = Plugin::new(config, [2; 32], Timestamp::ZERO).unwrap();
    let conn = plugin.handle_accept(Timestamp::ZERO);
    plugin
        .handle_bytes(conn, &TestClient::new().handshake(), Timestamp::ZERO)
        .unwrap();
    let chunk = pings(READ / 17);
    let mut calls = 0;
    while plugin.wants_read(conn) {
        plugin.handle_bytes(conn, &chunk, Timestamp::ZERO).unwrap();
        calls += 1;
        assert!(calls < 1_000, "wants_read turns false under a full queue");
    }
    // Fed anyway (the driver broke the contract): the connection ends, the queue stops growing.
    for _ in 0..100 {
        plugin.handle_bytes(conn, &chunk, Timestamp::ZERO).unwrap();
    }
    let mut queued = Vec::new();
    assert_eq!(plugin.poll_transmit(&mut queued), Some(conn));
    assert!(
        queued.len() <= cap + chunk.len() + 64,
        "{} octets queued for a {cap}-octet cap",
        queued.len()
    );
    assert_eq!(
        &queued[queued.len() - 17..][..4],
        &[0, 0, 8, 0x7],
        "ends in GOAWAY"
    );
    assert_eq!(
        u32::from_be_bytes(queued[queued.len() - 4..].try_into().unwrap()),
        0xb
    );
    let mut closed = false;
    while let Some(event) = plugin.poll_event() {
        closed |= matches!(event, Event::ConnectionClosed { conn: c } if c == conn);
    }
    while plugin.poll_transmit(&mut queued).is_some() {}
    while let Some(event) = plugin.poll_event() {
        closed |= matches!(event, Event::ConnectionClosed { conn: c } if c == conn);
    }
    assert!(closed, "the connection is closed");
    assert!(!plugin.wants_read(conn));
}
