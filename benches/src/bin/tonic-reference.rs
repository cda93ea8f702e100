//! The tonic reference server for the end-to-end benchmark: KMS v2 and v1beta1 over a Unix
//! socket, built the way other Rust KMS plugins are (tonic 0.14 + tokio multi-thread runtime,
//! prost 0.14), doing the same AES-256-GCM + HKDF work per request as kms-plugin
//! (`kms_plugin_benches::tonic_ref`).
//!
//! Usage: `tonic-reference --socket PATH`. Like every h2/tonic server it resets requests whose
//! `:authority` is not a valid URI authority, so clients must send `localhost` (docs/protocol.md §2).

// Benchmarks do IO, read clocks and spawn threads (clippy.toml bans them in the core only).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;

fn socket_arg() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--socket"), Some(path)) => Ok(PathBuf::from(path)),
        _ => Err("usage: tonic-reference --socket PATH".into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let socket = socket_arg()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    kms_plugin_benches::tonic_ref::serve(&socket, async move {
        term.recv().await;
    })
    .await
}
