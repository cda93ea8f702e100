//! kube-apiserver `EncryptionConfiguration` files: [`render`] one for the running plugin, and
//! [`check`] one the way kube-apiserver validates it (docs/protocol.md §7), before a restart finds out.
//!
//! Pure functions: no IO, no environment. Contract for the CLI:
//! - `kms-plugin encryption-config --api v2|v1 --name N [--listen E] [--timeout T]` prints
//!   `render(api, N, E, T)` (E defaults to the plugin's default endpoint, T to 3 s). `render`
//!   never fails and never validates; the command runs `check(&text, Some(E))` on its own output
//!   and refuses (exit 2, printing the findings) when any finding is an [`Severity::Error`], e.g.
//!   a v2 name containing `:` or a zero timeout.
//! - `kms-plugin check-config FILE [--listen E]` reads FILE and prints every finding of
//!   `check(text, Some(E))`, one per line via [`Finding`]'s `Display`
//!   (`error: resources[0].providers[0].kms.name: ...`). Exit 1 when any is an error, 0
//!   otherwise (warnings alone pass). Pass `None` as the endpoint to skip the "is this where the
//!   plugin listens" check.
//! - `kms-plugin check-config --previous OLD FILE` adds [`compare`]`(old, text)`: warnings for
//!   changes that would leave data stored under OLD unreadable.
//!
//! Findings never quote secret material: the `secret` of aescbc/aesgcm/secretbox keys is only
//! checked for presence.

mod checker;
mod compare;
mod duration;
mod endpoint;
mod kms;
mod render;

use std::fmt;

use yaml_rust2::YamlLoader;

pub use compare::compare;
pub use duration::parse_go_duration;
pub use render::render;

use checker::Checker;

/// The KMS API a provider entry speaks (`kms.apiVersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    /// KMS v1 (`v1beta1` gRPC); deprecated, needs `--feature-gates=KMSv1=true` from kube 1.29.
    V1,
    /// KMS v2 (GA since kube 1.29).
    V2,
}

/// How bad a [`Finding`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// kube-apiserver refuses the file, or the plugin cannot be reached with it.
    Error,
    /// Accepted, but probably not what the operator wants (e.g. `identity` first, KMS v1).
    Warning,
}

/// One problem in an EncryptionConfiguration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Field path as kube-apiserver prints it, e.g. `resources[0].providers[1].kms.name`;
    /// `<document>` for the file as a whole.
    pub path: String,
    /// One line: the problem and the fix.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.path, self.message)
    }
}

/// Whether any finding is an [`Severity::Error`].
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The `apiVersion` an EncryptionConfiguration must have.
pub const CONFIG_API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The `kind` an EncryptionConfiguration must have.
pub const CONFIG_KIND: &str = "EncryptionConfiguration";

/// The provider kinds of one `providers` element.
const PROVIDER_KINDS: &[&str] = &["kms", "aescbc", "aesgcm", "secretbox", "identity"];
/// The fields of a `kms` provider (v1 types, strict decoding).
const KMS_FIELDS: &[&str] = &["apiVersion", "name", "endpoint", "cachesize", "timeout"];

/// Validates `yaml` as kube-apiserver validates `--encryption-provider-config` (strict decoding
/// plus `validation_encryption.go`), adding warnings for valid but risky choices. When
/// `expected_endpoint` is given (where this plugin listens, e.g. `unix:///tmp/kms.sock`), at
/// least one KMS provider must point at it. Returns the findings in document order; empty means
/// clean.
pub fn check(yaml: &str, expected_endpoint: Option<&str>) -> Vec<Finding> {
    let mut c = Checker::default();
    let docs = match YamlLoader::load_from_str(yaml) {
        Ok(docs) => docs,
        Err(e) => {
            c.error("<document>", format!("not valid YAML: {e}; fix the syntax"));
            return c.findings;
        }
    };
    match docs.as_slice() {
        [] => c.error(
            "<document>",
            "the file is empty; generate one with `kms-plugin encryption-config`",
        ),
        [doc] => c.document(doc),
        [doc, ..] => {
            c.error(
                "<document>",
                "more than one YAML document (`---`); kube-apiserver reads exactly one EncryptionConfiguration per file",
            );
            c.document(doc);
        }
    }
    if let Some(expected) = expected_endpoint {
        c.endpoint_matches(expected);
    }
    c.findings
}
