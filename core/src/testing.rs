//! The bridge for `kms-plugin-testkit` (core/testkit/): the few crate-private items its
//! harness drives directly, re-exported as they are. No logic lives here.
//!
//! Only with the `testing` feature, which only the testkit, tests, fuzz targets and
//! benchmarks enable: a production build has no path to these layers.

/// One server-side HTTP/2 connection alone, for the transport's conformance tests, the
/// `h2_frames` fuzz target and the benchmarks.
pub use crate::conn::Connection;
/// The KMS services alone, without the transport, for the testkit's `service_sim` and the
/// benchmarks.
pub use crate::kms::KmsService;
/// kube-apiserver's checks of Status and Encrypt answers, which the testkit asserts on every
/// answer it decodes.
pub use crate::kms::apiserver_rules::{
    RuleViolation, check_encrypt_response, check_status_response,
};
