//! The whole `Plugin` driven through real HTTP/2 bytes: KMS v1 + v2 on one socket, the
//! `:authority` forms kube-apiserver sends, deadlines, cancellation, disconnects, limits and
//! graceful shutdown (virtual clock, fixed seeds).

use core::time::Duration;

use kms_plugin_core::config::Config;
use kms_plugin_core::event::Event;
use kms_plugin_core::plugin::{ConnId, UsageError};
use kms_plugin_core::rpc::Code;
use kms_plugin_proto::v1beta1;
use kms_plugin_testkit::client::{ClientResponse, RequestOptions};
use kms_plugin_testkit::fake_remote::FakeRemote;
use kms_plugin_testkit::kms_messages as msg;
use kms_plugin_testkit::sim::Sim;

const REMOTE_SEED: [u8; 32] = [42; 32];

fn started(config: Config) -> Sim {
    let mut sim = Sim::new(config, [7; 32], FakeRemote::new(REMOTE_SEED));
    sim.drive();
    sim
}

fn opts(authority: &str) -> RequestOptions {
    RequestOptions::apiserver(authority, Duration::from_secs(3))
}

fn seed(i: u32) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&i.to_le_bytes());
    s
}

fn ok(r: &ClientResponse) -> kms_plugin_core::rpc::Response {
    let r = r.to_rpc();
    assert_eq!(r.code, Code::Ok, "{}", r.message);
    r
}

/// The `:authority` values real clients send (docs/protocol.md §2): kube ≥ 1.32 v2, grpc-go ≥ 1.58 on a
/// path socket, an abstract socket, and old grpc-go's raw path.
const AUTHORITIES: [&str; 4] = [
    "localhost",
    "%2Fvar%2Frun%2Fkms-provider.sock",
    "@kms-foo",
    "/var/run/kms-provider.sock",
];

#[test]
fn v2_and_v1_round_trips_over_http2_with_every_authority_form() {
    let mut sim = started(Config::default());
    let c = sim.connect();
    for (i, authority) in AUTHORITIES.iter().enumerate() {
        let call_opts = opts(authority);
        let st = msg::decode_status(&ok(&sim.call(
            c,
            msg::V2_STATUS,
            &msg::v2_status(),
            &call_opts,
        )));
        assert_eq!(st.healthz, "ok");
        assert_eq!(st.version, "v2");
        let plain = seed(i as u32);
        let r = sim.call(
            c,
            msg::V2_ENCRYPT,
            &msg::v2_encrypt(&plain, "uid-1"),
            &call_opts,
        );
        let enc = msg::decode_v2_encrypt(&ok(&r));
        assert_eq!(enc.key_id, st.key_id);
        let r = sim.call(
            c,
            msg::V2_DECRYPT,
            &msg::v2_decrypt(&enc, "uid-2"),
            &call_opts,
        );
        assert_eq!(msg::decode_v2_plaintext(&ok(&r)), plain);

        let v: v1beta1::VersionResponse = msg::decode_ok(&ok(&sim.call(
            c,
            msg::V1_VERSION,
            &msg::v1_version(),
            &call_opts,
        )));
        assert_eq!(v.version, "v1beta1");
        let r = sim.call(c, msg::V1_ENCRYPT, &msg::v1_encrypt(b"ping"), &call_opts);
        let cipher = msg::decode_v1_cipher(&ok(&r));
        let r = sim.call(c, msg::V1_DECRYPT, &msg::v1_decrypt(&cipher), &call_opts);
        assert_eq!(msg::decode_v1_plain(&ok(&r)), b"ping");
    }
    assert!(sim.usage_errors.is_empty());
}

#[test]
fn unknown_method_and_malformed_message_get_grpc_errors() {
    let mut sim = started(Config::default());
    let c = sim.connect();
    let o = opts("localhost");
    let r = sim
        .call(c, "/v2.KeyManagementService/Nope", &[], &o)
        .to_rpc();
    assert_eq!(r.code, Code::Unimplemented);
    let r = sim.call(c, msg::V2_DECRYPT, &[0x0a, 0x7f], &o).to_rpc();
    assert_eq!(r.code, Code::InvalidArgument);
    // The connection is still usable.
    ok(&sim.call(c, msg::V2_STATUS, &msg::v2_status(), &o));
}

#[test]
fn many_concurrent_cold_decrypts_over_many_connections_cost_one_unwrap() {
    // Ciphertexts from another plugin instance sharing the keyring.
    let mut other = started(Config::default());
    let oc = other.connect();
    let o = opts("localhost");
    let encs: Vec<_> = (0..400)
        .map(|i| {
            let r = other.call(oc, msg::V2_ENCRYPT, &msg::v2_encrypt(&seed(i), "u"), &o);
            msg::decode_v2_encrypt(&ok(&r))
        })
        .collect();
    let mut sim = Sim::new(Config::default(), [8; 32], FakeRemote::new(REMOTE_SEED));
    sim.drive();
    sim.driver.remote.latency = Duration::from_millis(80);
    let conns: Vec<usize> = (0..8).map(|_| sim.connect()).collect();
    let calls: Vec<(usize, u32, u32)> = encs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let c = conns[i % conns.len()];
            (
                c,
                sim.send(c, msg::V2_DECRYPT, &msg::v2_decrypt(e, "u"), &o),
                i as u32,
            )
        })
        .collect();
    sim.drive();
    for (c, s, i) in calls {
        let r = sim.take(c, s).expect("answered");
        assert_eq!(msg::decode_v2_plaintext(&ok(&r)), seed(i));
    }
    assert_eq!(sim.driver.remote.calls.unwrap, 1);
}

#[test]
fn silent_remote_answers_every_call_before_its_grpc_timeout() {
    let mut other = started(Config::default());
    let oc = other.connect();
    let o = opts("localhost");
    let encs: Vec<_> = (0..3)
        .map(|i| {
            let r = other.call(oc, msg::V2_ENCRYPT, &msg::v2_encrypt(&seed(i), "u"), &o);
            msg::decode_v2_encrypt(&ok(&r))
        })
        .collect();
    let mut config = Config::default();
    config.kms.remote_timeout = Duration::from_secs(60);
    let mut sim = Sim::new(config, [9; 32], FakeRemote::new(REMOTE_SEED));
    sim.drive();
    sim.driver.remote.never_reply = true;
    let c = sim.connect();
    let t0 = sim.now;
    let timeouts = [1000u64, 3000, 5000];
    let streams: Vec<_> = encs
        .iter()
        .zip(timeouts)
        .map(|(e, t)| {
            let o = RequestOptions::apiserver("localhost", Duration::from_millis(t));
            (
                sim.send(c, msg::V2_DECRYPT, &msg::v2_decrypt(e, "u"), &o),
                t,
            )
        })
        .collect();
    sim.drive();
    for (s, t) in streams {
        let at = sim.answered_at[&(c, s)];
        assert!(
            at < t0.saturating_add(Duration::from_millis(t)),
            "{at:?} vs {t} ms"
        );
        let r = sim.take(c, s).expect("answered").to_rpc();
        assert_eq!(r.code, Code::DeadlineExceeded);
    }
}

#[test]
fn cancelled_call_is_dropped_from_the_parked_set() {
    let mut other = started(Config::default());
    let oc = other.connect();
    let o = opts("localhost");
    let r = other.call(oc, msg::V2_ENCRYPT, &msg::v2_encrypt(&seed(1), "u"), &o);
    let enc = msg::decode_v2_encrypt(&ok(&r));
    let mut sim = Sim::new(Config::default(), [9; 32], FakeRemote::new(REMOTE_SEED));
    sim.drive();
    sim.driver.remote.latency = Duration::from_secs(1);
    let c = sim.connect();
    let s = sim.send(c, msg::V2_DECRYPT, &msg::v2_decrypt(&enc, "u"), &o);
    assert_eq!(sim.plugin.status_snapshot(sim.now).parked_requests, 1);
    let rst = sim.clients[c].client.cancel(s, 0x8); // CANCEL
    sim.clients[c].client.send_raw(&rst);
    sim.step();
    assert_eq!(sim.plugin.status_snapshot(sim.now).parked_requests, 0);
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, Event::RequestAbandoned { .. }))
    );
    sim.drive();
    // The unwrap still landed in the cache: the retry is local.
    let r = sim.call(c, msg::V2_DECRYPT, &msg::v2_decrypt(&enc, "u"), &o);
    assert_eq!(msg::decode_v2_plaintext(&ok(&r)), seed(1));
    assert_eq!(sim.driver.remote.calls.unwrap, 1);
}

#[test]
fn disconnect_closes_the_connection_and_drops_its_parked_calls() {
    let mut other = started(Config::default());
    let oc = other.connect();
    let o = opts("localhost");
    let r = other.call(oc, msg::V2_ENCRYPT, &msg::v2_encrypt(&seed(1), "u"), &o);
    let enc = msg::decode_v2_encrypt(&ok(&r));
    let mut sim = Sim::new(Config::default(), [9; 32], FakeRemote::new(REMOTE_SEED));
    sim.drive();
    sim.driver.remote.latency = Duration::from_secs(1);
    let c = sim.connect();
    sim.send(c, msg::V2_DECRYPT, &msg::v2_decrypt(&enc, "u"), &o);
    sim.disconnect(c);
    sim.drive();
    let conn = sim.clients[c].conn;
    assert!(sim.closes.contains(&conn), "{:?}", sim.closes);
    assert_eq!(sim.plugin.status_snapshot(sim.now).connections, 0);
    assert_eq!(sim.plugin.status_snapshot(sim.now).parked_requests, 0);
    // Bytes for the closed connection are ignored; an id never handed out is misuse.
    assert_eq!(sim.plugin.handle_bytes(conn, b"x", sim.now), Ok(()));
    assert_eq!(
        sim.plugin.handle_bytes(ConnId(1_000), b"x", sim.now),
        Err(UsageError::UnknownConnection(ConnId(1_000)))
    );
}

#[test]
fn a_full_connection_table_makes_room_by_closing_the_longest_idle_connection() {
    let mut sim = started(Config {
        max_connections: 2,
        ..Config::default()
    });
    let a = sim.connect();
    sim.now = sim.now.saturating_add(Duration::from_secs(1));
    let b = sim.connect();
    ok(&sim.call(b, msg::V2_STATUS, &msg::v2_status(), &opts("localhost")));
    let c = sim.connect();
    assert!(sim.clients[a].closed, "a was idle longest");
    assert!(!sim.clients[b].closed && !sim.clients[c].closed);
    assert!(
        !sim.events
            .iter()
            .any(|e| matches!(e, Event::ConnectionRefused { .. }))
    );
    ok(&sim.call(c, msg::V2_STATUS, &msg::v2_status(), &opts("localhost")));
}

#[test]
fn graceful_shutdown_finishes_in_flight_calls_then_drains() {
    let mut other = started(Config::default());
    let oc = other.connect();
    let o = opts("localhost");
    let r = other.call(oc, msg::V2_ENCRYPT, &msg::v2_encrypt(&seed(1), "u"), &o);
    let enc = msg::decode_v2_encrypt(&ok(&r));
    let mut sim = Sim::new(Config::default(), [9; 32], FakeRemote::new(REMOTE_SEED));
    sim.drive();
    sim.driver.remote.latency = Duration::from_millis(500);
    let c = sim.connect();
    let s = sim.send(c, msg::V2_DECRYPT, &msg::v2_decrypt(&enc, "u"), &o);
    sim.plugin.handle_shutdown(sim.now);
    sim.step();
    assert!(sim.clients[c].client.goaway().is_some(), "GOAWAY sent");
    assert!(!sim.plugin.is_drained());
    sim.drive();
    let r = sim.take(c, s).expect("in-flight call finished");
    assert_eq!(msg::decode_v2_plaintext(&ok(&r)), seed(1));
    // New connections are refused while shutting down.
    let late = sim.connect();
    assert!(sim.clients[late].closed);
    sim.disconnect(c);
    sim.advance(Duration::from_secs(10));
    assert!(
        sim.plugin.is_drained(),
        "{:?}",
        sim.plugin.status_snapshot(sim.now)
    );
}

#[test]
fn status_snapshot_reports_health_and_key_id() {
    let mut sim = Sim::new(Config::default(), [7; 32], FakeRemote::new(REMOTE_SEED));
    let before = sim.plugin.status_snapshot(sim.now);
    assert!(!before.healthy);
    assert_eq!(before.key_id, "");
    sim.drive();
    let key = sim.driver.remote.current_key_id();
    let after = sim.plugin.status_snapshot(sim.now);
    assert!(after.healthy);
    assert_eq!(after.healthz, "ok");
    assert_eq!(after.key_id, key);
}

#[test]
fn protocol_errors_surface_as_typed_transport_events_and_close_the_connection() {
    use kms_plugin_core::ConnEvent;
    let mut sim = started(Config::default());
    let c = sim.connect();
    ok(&sim.call(c, msg::V2_STATUS, &msg::v2_status(), &opts("localhost")));
    // WINDOW_UPDATE with a zero increment on stream 0: a connection error of type
    // PROTOCOL_ERROR (RFC 9113 §6.9).
    sim.clients[c]
        .client
        .send_raw(&[0, 0, 4, 0x8, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    sim.drive();
    let conn = sim.clients[c].conn;
    assert!(sim.clients[c].client.goaway().is_some());
    assert!(sim.closes.contains(&conn));
    assert!(sim.events.iter().any(|e| matches!(
        e,
        Event::Transport { conn: x, event: ConnEvent::ProtocolError { stream: None, .. } } if *x == conn
    )));
    assert!(sim.events.contains(&Event::ConnectionClosed { conn }));
    // Other connections are unaffected.
    let d = sim.connect();
    ok(&sim.call(d, msg::V2_STATUS, &msg::v2_status(), &opts("localhost")));
}
