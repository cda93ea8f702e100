//! The raw Unix-socket floor server of the end-to-end benchmark (see `floor` in the library).
//!
//! Usage: `floor-echo --socket PATH`.

// Benchmarks do IO, read clocks and spawn threads (clippy.toml bans them in the core only).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::net::UnixListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some("--socket"), Some(path)) = (args.next().as_deref(), args.next()) else {
        return Err("usage: floor-echo --socket PATH".into());
    };
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    kms_plugin_benches::floor::serve(&listener)?;
    Ok(())
}
