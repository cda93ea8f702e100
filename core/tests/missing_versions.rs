//! Deterministic simulations of a remote key version that disappears (a Vault version trimmed
//! by `min_decryption_version`, an HSM key deleted): the Decrypt error and v2 Status healthz
//! name it, Encrypt and rotation go on, and healthz is `ok` again once an unwrap under that
//! version succeeds.

mod common;

use core::time::Duration;

use common::{REMOTE_SEED, config, decrypt, encrypt, seed, started, status};
use kms_plugin_core::effect::{RemoteErrorKind, RemoteOpKind};
use kms_plugin_core::event::Event;
use kms_plugin_core::rpc::Code;
use kms_plugin_testkit::fake_remote::FakeRemote;
use kms_plugin_testkit::kms_messages as msg;
use kms_plugin_testkit::service_sim::ServiceSim;

/// Ciphertexts of distinct seeds made by another plugin over the same remote key (version 1),
/// so that the plugin under test must unwrap each one remotely.
fn foreign_ciphertexts(n: u32) -> Vec<kms_plugin_proto::v2::EncryptResponse> {
    let mut other = ServiceSim::new(&config(), [99; 32], FakeRemote::new(REMOTE_SEED));
    other.drive();
    (0..n).map(|i| encrypt(&mut other, &seed(i))).collect()
}

/// Drives until Status advertises `key_id` (bounded).
fn wait_for_key_id(sim: &mut ServiceSim, key_id: &str) {
    for _ in 0..100 {
        if status(sim).key_id == key_id {
            return;
        }
        sim.advance(Duration::from_millis(500));
    }
    panic!("Status never advertised {key_id}");
}

#[test]
fn a_trimmed_version_is_named_in_healthz_until_an_unwrap_under_it_succeeds() {
    let old = foreign_ciphertexts(3);
    let v1 = old[0].key_id.clone();
    let mut sim = started(&config());
    assert_eq!(status(&mut sim).healthz, "ok");
    // The remote rotates to v2, then v1 is trimmed.
    let v2 = sim.driver.remote.rotate();
    wait_for_key_id(&mut sim, &v2);
    sim.driver.remote.remove_version(&v1);

    let r = decrypt(&mut sim, &old[0]);
    assert_eq!(r.code, Code::FailedPrecondition);
    assert!(
        r.message.contains(&format!("fake key version {v1}")),
        "{}",
        r.message
    );
    let s = status(&mut sim);
    assert_eq!(
        s.healthz,
        format!("key version missing: fake key version {v1} was removed; restore it")
    );
    // Writes go on under v2 with the same key id (the apiserver coasts and still rotates).
    assert_eq!(s.key_id, v2);
    let fresh = encrypt(&mut sim, &seed(100));
    assert_eq!(fresh.key_id, v2);
    assert_eq!(
        msg::decode_v2_plaintext(&decrypt(&mut sim, &fresh)),
        seed(100)
    );
    assert_eq!(sim.service.keystore().missing_versions(), 1);
    let unhealthy = sim.events.iter().any(|e| {
        matches!(e, Event::HealthChanged { healthy: false, cause } if *cause == "key version missing")
    });
    assert!(unhealthy, "the machine-readable cause is bounded");

    // A second blob under the same version: still one version remembered. Time passes and
    // Status keeps succeeding: the version stays named (nothing but an unwrap clears it).
    assert_eq!(decrypt(&mut sim, &old[1]).code, Code::FailedPrecondition);
    sim.advance(Duration::from_secs(120));
    assert_eq!(sim.service.keystore().missing_versions(), 1);
    assert!(
        status(&mut sim)
            .healthz
            .starts_with("key version missing: ")
    );

    // A remote outage is reported first; once it heals the missing version is named again.
    sim.driver.remote.set_down(RemoteErrorKind::Unavailable);
    sim.advance(Duration::from_secs(11));
    assert_eq!(
        status(&mut sim).healthz,
        "remote kms unreachable: unavailable"
    );
    sim.driver.remote.set_up();
    sim.advance(Duration::from_secs(31));
    assert!(
        status(&mut sim)
            .healthz
            .starts_with("key version missing: ")
    );

    // The operator restores v1: the next unwrap under it succeeds and healthz is ok again.
    sim.driver.remote.restore_version(&v1);
    assert_eq!(
        msg::decode_v2_plaintext(&decrypt(&mut sim, &old[0])),
        seed(0)
    );
    let s = status(&mut sim);
    assert_eq!(s.healthz, "ok");
    assert_eq!(s.key_id, v2);
    assert_eq!(sim.service.keystore().missing_versions(), 0);
    assert_eq!(
        msg::decode_v2_plaintext(&decrypt(&mut sim, &old[2])),
        seed(2)
    );
}

#[test]
fn other_unwrap_failures_are_not_remembered_and_the_cap_bounds_what_is() {
    let old = foreign_ciphertexts(1);
    let mut cfg = config();
    cfg.missing_versions_remembered = 1;
    cfg.unwrap_cache_capacity = 1;
    let mut sim = started(&cfg);
    // Transient and opaque failures leave healthz alone.
    for kind in [RemoteErrorKind::Unavailable, RemoteErrorKind::Corrupt] {
        sim.driver
            .remote
            .set_failing(RemoteOpKind::Unwrap, Some(kind));
        assert_ne!(decrypt(&mut sim, &old[0]).code, Code::Ok);
        assert_eq!(status(&mut sim).healthz, "ok", "{kind:?}");
    }
    sim.driver.remote.set_failing(RemoteOpKind::Unwrap, None);

    // The plugin's own data under v1 and v2; two remote rotations later neither local KEK is
    // at hand any more (the cache holds one), so their Decrypts need the remote.
    let v1 = status(&mut sim).key_id;
    let under_v1 = encrypt(&mut sim, &seed(1));
    let v2 = sim.driver.remote.rotate();
    wait_for_key_id(&mut sim, &v2);
    let under_v2 = encrypt(&mut sim, &seed(2));
    for _ in 0..2 {
        let next = sim.driver.remote.rotate();
        wait_for_key_id(&mut sim, &next);
    }
    sim.driver.remote.remove_version(&v1);
    sim.driver.remote.remove_version(&v2);
    assert_eq!(decrypt(&mut sim, &under_v1).code, Code::FailedPrecondition);
    assert!(status(&mut sim).healthz.contains(&v1));
    assert_eq!(decrypt(&mut sim, &under_v2).code, Code::FailedPrecondition);
    // With a cap of one, only the most recent is remembered (and named).
    let healthz = status(&mut sim).healthz;
    assert!(healthz.contains(&v2) && !healthz.contains(&v1), "{healthz}");
    assert_eq!(sim.service.keystore().missing_versions(), 1);
    sim.driver.remote.restore_version(&v2);
    assert_eq!(
        msg::decode_v2_plaintext(&decrypt(&mut sim, &under_v2)),
        seed(2)
    );
    assert_eq!(status(&mut sim).healthz, "ok");

    // A restart forgets: a fresh plugin starts with nothing remembered.
    assert_eq!(started(&cfg).service.keystore().missing_versions(), 0);
}

#[test]
fn a_status_that_finds_its_key_gone_names_it_in_healthz_until_status_succeeds() {
    let mut sim = started(&config());
    // E.g. an HSM key Status reported was deleted, or a key file without a loaded version.
    sim.driver.remote.set_failing(
        RemoteOpKind::Status,
        Some(RemoteErrorKind::KeyVersionMissing),
    );
    sim.advance(Duration::from_secs(11));
    assert_eq!(
        status(&mut sim).healthz,
        "remote kms error: key_version_missing: injected failure"
    );
    // Other Status failures keep their bounded cause.
    sim.driver
        .remote
        .set_failing(RemoteOpKind::Status, Some(RemoteErrorKind::Auth));
    sim.advance(Duration::from_secs(31));
    assert_eq!(status(&mut sim).healthz, "remote kms error: auth");
    sim.driver.remote.set_failing(RemoteOpKind::Status, None);
    sim.advance(Duration::from_secs(31));
    assert_eq!(status(&mut sim).healthz, "ok");
}

/// The whole plugin: the probes' snapshot names the version and the metrics gauge counts it.
#[test]
fn the_status_snapshot_and_metrics_report_a_missing_version() {
    use kms_plugin_core::config::Config;
    use kms_plugin_core::metrics::Metrics;
    use kms_plugin_testkit::client::RequestOptions;
    use kms_plugin_testkit::sim::Sim;

    let opts = RequestOptions::apiserver("localhost", Duration::from_secs(3));
    let gauge = |sim: &Sim| {
        let mut metrics = Metrics::new("fake");
        metrics.observe(&sim.plugin, sim.now);
        let mut text = String::new();
        metrics.render(&mut text);
        let line = text
            .lines()
            .find(|l| l.starts_with("kms_plugin_remote_key_versions_missing{"))
            .map(String::from);
        line.unwrap_or_else(|| panic!("no gauge sample:\n{text}"))
    };
    let mut other = Sim::new(Config::default(), [8; 32], FakeRemote::new(REMOTE_SEED));
    other.drive();
    let oc = other.connect();
    let foreign = other.call(oc, msg::V2_ENCRYPT, &msg::v2_encrypt(&seed(1), "u"), &opts);
    let foreign = msg::decode_v2_encrypt(&foreign.to_rpc());

    let mut sim = Sim::new(Config::default(), [7; 32], FakeRemote::new(REMOTE_SEED));
    sim.drive();
    let c = sim.connect();
    assert_eq!(
        gauge(&sim),
        "kms_plugin_remote_key_versions_missing{provider=\"fake\"} 0"
    );
    sim.driver.remote.remove_version(&foreign.key_id);
    let r = sim.call(c, msg::V2_DECRYPT, &msg::v2_decrypt(&foreign, "u"), &opts);
    assert_eq!(r.to_rpc().code, Code::FailedPrecondition);
    let snap = sim.plugin.status_snapshot(sim.now);
    assert!(!snap.healthy);
    assert!(snap.healthz.contains(&foreign.key_id), "{}", snap.healthz);
    assert_eq!(
        gauge(&sim),
        "kms_plugin_remote_key_versions_missing{provider=\"fake\"} 1"
    );

    sim.driver.remote.restore_version(&foreign.key_id);
    let r = sim.call(c, msg::V2_DECRYPT, &msg::v2_decrypt(&foreign, "u"), &opts);
    assert_eq!(msg::decode_v2_plaintext(&r.to_rpc()), seed(1));
    assert_eq!(sim.plugin.status_snapshot(sim.now).healthz, "ok");
    assert_eq!(
        gauge(&sim),
        "kms_plugin_remote_key_versions_missing{provider=\"fake\"} 0"
    );
}
