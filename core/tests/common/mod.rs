//! Shared set-up for the KMS simulation tests.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

use core::time::Duration;

use kms_plugin_core::config::KmsConfig;
use kms_plugin_testkit::fake_remote::FakeRemote;
use kms_plugin_testkit::kms_messages as msg;
use kms_plugin_testkit::service_sim::ServiceSim;

/// Seeds used by the tests (fixed: runs are reproducible).
pub const PLUGIN_SEED: [u8; 32] = [7; 32];
pub const REMOTE_SEED: [u8; 32] = [42; 32];

/// The grpc-timeout the apiserver uses by default (docs/protocol.md §2).
pub const APISERVER_TIMEOUT: Duration = Duration::from_secs(3);

pub fn config() -> KmsConfig {
    KmsConfig::default()
}

/// A service simulation that has completed its start-up (status + first wrap).
pub fn started(cfg: &KmsConfig) -> ServiceSim {
    let mut sim = ServiceSim::new(cfg, PLUGIN_SEED, FakeRemote::new(REMOTE_SEED));
    sim.drive();
    sim
}

/// v2 Status, checked against the apiserver's rules.
pub fn status(sim: &mut ServiceSim) -> kms_plugin_proto::v2::StatusResponse {
    let r = sim.call(msg::V2_STATUS, msg::v2_status(), Some(APISERVER_TIMEOUT));
    msg::decode_status(&r)
}

/// v2 Encrypt of `seed`, checked against the apiserver's rules.
pub fn encrypt(sim: &mut ServiceSim, seed: &[u8]) -> kms_plugin_proto::v2::EncryptResponse {
    let r = sim.call(
        msg::V2_ENCRYPT,
        msg::v2_encrypt(seed, "uid-enc"),
        Some(APISERVER_TIMEOUT),
    );
    msg::decode_v2_encrypt(&r)
}

/// v2 Decrypt; returns the raw response.
pub fn decrypt(
    sim: &mut ServiceSim,
    enc: &kms_plugin_proto::v2::EncryptResponse,
) -> kms_plugin_core::rpc::Response {
    sim.call(
        msg::V2_DECRYPT,
        msg::v2_decrypt(enc, "uid-dec"),
        Some(APISERVER_TIMEOUT),
    )
}

/// A distinct 32-byte seed per `i`.
pub fn seed(i: u32) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&i.to_le_bytes());
    s[4..8].copy_from_slice(&(i ^ 0xdead_beef).to_be_bytes());
    s
}
