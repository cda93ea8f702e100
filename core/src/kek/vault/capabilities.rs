//! Status honesty: does the token may actually encrypt and decrypt with the key?
//!
//! Reading the key proves the token is valid and the key exists, but a token whose policy only
//! grants `read` would report a healthy Status and then fail every wrap. So Status also asks
//! Vault `POST /v1/sys/capabilities-self` `{"paths": ["<mount>/encrypt/<key>",
//! "<mount>/decrypt/<key>"]}` (allowed by Vault's and OpenBao's `default` policy) and reports
//! `Permission` when a path's capabilities positively lack `update` (or `root`). Anything it
//! cannot interpret (an error status, a token without the default policy, an unexpected
//! shape) leaves the verdict to the key read and the wraps themselves: this check can only
//! turn a false `ok` into an error, never make a working setup fail.

use alloc::format;
use alloc::vec::Vec;

use serde_json::Value;

use super::{TransitOp, TransitTarget, truncate};
use crate::effect::{RemoteError, RemoteErrorKind};

/// Body of the capabilities request for the key's encrypt and decrypt paths.
pub fn capabilities_body(target: &TransitTarget) -> Vec<u8> {
    // Mount and key are validated to `[A-Za-z0-9_.-/]`: nothing needs JSON escaping.
    format!(
        r#"{{"paths":["{}","{}"]}}"#,
        target.policy_path("encrypt"),
        target.policy_path("decrypt")
    )
    .into_bytes()
}

/// Checks the capabilities answer (see the module docs): `Err(Permission)` only when a path's
/// capability list is present and grants neither `update` nor `root`.
pub fn check_capabilities(
    target: &TransitTarget,
    status: u16,
    body: &[u8],
) -> Result<(), RemoteError> {
    let Ok(v) = super::parse_ok(TransitOp::Capabilities, status, body) else {
        return Ok(());
    };
    for verb in ["encrypt", "decrypt"] {
        let path = target.policy_path(verb);
        let caps = v
            .get(&path)
            .or_else(|| v.get("data").and_then(|d| d.get(&path)))
            .and_then(Value::as_array);
        let Some(caps) = caps else { continue };
        let names: Vec<&str> = caps.iter().filter_map(Value::as_str).collect();
        if !names.iter().any(|c| matches!(*c, "update" | "root")) {
            return Err(RemoteError::new(
                RemoteErrorKind::Permission,
                format!(
                    "token may not update {path} (capabilities: {}); the policy needs \
                     capabilities = [\"update\"] there",
                    truncate(&names.join(", "))
                ),
            ));
        }
    }
    Ok(())
}
