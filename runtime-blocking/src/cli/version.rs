//! What this build is: version, git commit, providers compiled in, target (baked in by
//! `build.rs`). `--version` prints [`LINE`]; `kms-plugin version --output json` prints
//! [`json`] with the same facts.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from, or "unknown" (build outside git).
pub const COMMIT: &str = env!("KMS_PLUGIN_GIT_COMMIT");
/// The providers compiled in, comma-separated (`local` always; `vault`, `pkcs11`, `kmip` by feature).
pub const PROVIDERS: &str = env!("KMS_PLUGIN_PROVIDERS");
/// The Rust target triple the binary was built for.
pub const TARGET: &str = env!("KMS_PLUGIN_TARGET");
/// `<version> (commit <id>; providers: local, ...; target <triple>)`, as `--version` prints it
/// after the program name.
pub const LINE: &str = env!("KMS_PLUGIN_VERSION_LINE");

/// The same facts as one JSON object (no escaping needed: build.rs keeps every value to
/// `[A-Za-z0-9._+-]`).
pub fn json() -> String {
    let providers: Vec<String> = PROVIDERS.split(',').map(|p| format!("\"{p}\"")).collect();
    format!(
        "{{\"name\":\"kms-plugin\",\"version\":\"{VERSION}\",\"commit\":\"{COMMIT}\",\"providers\":[{}],\"target\":\"{TARGET}\"}}",
        providers.join(",")
    )
}
