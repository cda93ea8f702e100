//! The driver's health warning (`Plugin::set_health_warning`) travels as the extra trailer
//! `kms-plugin-warning` on v2 Status answers only, bounded and printable; without one, the
//! answer's header blocks are exactly what they always were (virtual clock, fixed seeds).

use core::time::Duration;

use kms_plugin_core::config::Config;
use kms_plugin_core::health::{HealthWarning, MAX_WARNING_LEN, WARNING_TRAILER};
use kms_plugin_testkit::client::{ClientResponse, RequestOptions};
use kms_plugin_testkit::fake_remote::FakeRemote;
use kms_plugin_testkit::kms_messages as msg;
use kms_plugin_testkit::sim::Sim;

const INSECURE: &str = "vault reached over plain http (--vault-insecure-http)";

fn started() -> (Sim, usize) {
    let mut sim = Sim::new(Config::default(), [7; 32], FakeRemote::new([42; 32]));
    sim.drive();
    let c = sim.connect();
    (sim, c)
}

fn opts() -> RequestOptions {
    RequestOptions::apiserver("localhost", Duration::from_secs(3))
}

fn status(sim: &mut Sim, c: usize) -> ClientResponse {
    let r = sim.call(c, msg::V2_STATUS, &msg::v2_status(), &opts());
    let status = msg::decode_status(&r.to_rpc());
    assert_eq!(status.healthz, "ok", "the warning never changes healthz");
    r
}

/// Every header field of a response (both blocks), as (name, value) pairs.
fn fields(r: &ClientResponse) -> Vec<(&str, &str)> {
    r.headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

const PLAIN: [(&str, &str); 3] = [
    (":status", "200"),
    ("content-type", "application/grpc"),
    ("grpc-status", "0"),
];

#[test]
fn status_carries_the_warning_trailer_only_while_one_is_set() {
    let (mut sim, c) = started();
    let before = status(&mut sim, c);
    assert_eq!(fields(&before), PLAIN, "no warning: no extra field");
    assert_eq!(before.header_blocks, 2);

    sim.plugin.set_health_warning(HealthWarning::new(INSECURE));
    let warned = status(&mut sim, c);
    let mut expected = PLAIN.to_vec();
    expected.push((WARNING_TRAILER, INSECURE));
    assert_eq!(
        fields(&warned),
        expected,
        "in the trailers, after grpc-status"
    );
    assert_eq!(warned.header_blocks, 2);
    assert_eq!(
        warned.message, before.message,
        "the StatusResponse is unchanged"
    );

    // Only Status carries it.
    let enc = sim.call(
        c,
        msg::V2_ENCRYPT,
        &msg::v2_encrypt(b"seed", "uid-1"),
        &opts(),
    );
    assert_eq!(enc.grpc_status, Some(0));
    assert!(!fields(&enc).iter().any(|(n, _)| *n == WARNING_TRAILER));
    let version = sim.call(c, msg::V1_VERSION, &msg::v1_version(), &opts());
    assert_eq!(version.grpc_status, Some(0));
    assert!(!fields(&version).iter().any(|(n, _)| *n == WARNING_TRAILER));

    sim.plugin.set_health_warning(None);
    let after = status(&mut sim, c);
    assert_eq!(fields(&after), PLAIN);
}

#[test]
fn a_bad_or_oversized_warning_is_sent_bounded_and_printable() {
    let (mut sim, c) = started();
    let hostile = format!(
        " \u{1b}[31mred\r\nx-injected: 1\u{0}\u{7f}caf\u{e9} {} ",
        "y".repeat(4 * MAX_WARNING_LEN)
    );
    sim.plugin.set_health_warning(HealthWarning::new(&hostile));
    let r = status(&mut sim, c);
    let warnings: Vec<&str> = fields(&r)
        .into_iter()
        .filter(|(n, _)| *n == WARNING_TRAILER)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", fields(&r));
    let w = warnings[0];
    assert_eq!(w.len(), MAX_WARNING_LEN);
    assert!(w.starts_with("[31mredx-injected: 1caf y"), "{w}");
    assert!(w.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{w:?}");
    assert!(!fields(&r).iter().any(|(n, _)| *n == "x-injected"));

    // Nothing printable left: no warning at all, so no trailer.
    assert_eq!(HealthWarning::new("\r\n\t\u{1b}\u{e9} "), None);
    sim.plugin
        .set_health_warning(HealthWarning::new("\r\n\t\u{1b}\u{e9} "));
    assert_eq!(fields(&status(&mut sim, c)), PLAIN);
}
