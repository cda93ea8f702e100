//! Example binary of the smol runtime: `kms-plugin-smol --listen unix:///path|unix:///@name
//! --key-file FILE [--key-name NAME] [--metrics-addr [IP:]PORT] [--log-format json|text]
//! [--log-level LEVEL]`. The static production binary is `kms-plugin` (blocking
//! runtime); this one shows how to embed the plugin in an async application.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use kms_plugin_smol::observe::log::{EventLogger, Level, LogFormat};
use kms_plugin_smol::observe::metrics_server;
use kms_plugin_smol::provider::local::LocalKeyring;
use kms_plugin_smol::serve::{Observer, ServeOptions, serve_observed};

fn main() {
    if let Err(e) = run() {
        eprintln!("kms-plugin-smol: error: {e}");
        std::process::exit(2);
    }
}

fn bind(listen: &str) -> Result<UnixListener, String> {
    let path = listen
        .strip_prefix("unix://")
        .ok_or_else(|| format!("--listen {listen:?}: use unix:///path or unix:///@name"))?;
    if let Some(name) = path.strip_prefix("/@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| e.to_string())?;
        return UnixListener::bind_addr(&addr).map_err(|e| format!("--listen {listen}: {e}"));
    }
    reclaim_stale(path)?;
    UnixListener::bind(path).map_err(|e| format!("--listen {listen}: {e}"))
}

/// Removes a leftover socket file nothing answers on (connect: ECONNREFUSED); refuses a live
/// listener, a symlink or any other file instead of deleting it.
fn reclaim_stale(path: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(()); // nothing there
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "--listen: {path} exists and is not a socket; remove it or choose another path"
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(format!(
            "--listen: another process is listening on {path}; stop it or choose another path"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|e| format!("--listen: cannot remove the stale socket {path}: {e}")),
        Err(e) => Err(format!("--listen: cannot check {path}: {e}")),
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let listen = get("--listen").unwrap_or_else(|| "unix:///tmp/kms.sock".into());
    let key_file = get("--key-file").ok_or("--key-file FILE is required")?;
    let key_name = get("--key-name").unwrap_or_else(|| "default".into());
    let format = get("--log-format").map_or(Ok(LogFormat::Json), |v| {
        LogFormat::parse(&v).ok_or(format!("--log-format {v:?}: use json or text"))
    })?;
    let level = get("--log-level").map_or(Ok(Level::Info), |v| {
        Level::parse(&v).ok_or(format!("--log-level {v:?}: use error, warn, info or debug"))
    })?;
    let logger = EventLogger::stderr(format, level);
    let metrics_listener = match get("--metrics-addr") {
        Some(v) => {
            let addr = metrics_server::parse_addr(&v)?;
            let l = metrics_server::bind(addr)
                .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))?;
            let bound = l.get_ref().local_addr().map_err(|e| e.to_string())?;
            logger.log(Level::Info, "serving metrics", &[("addr", &bound)]);
            if !metrics_server::is_loopback(&bound) {
                logger.log(
                    Level::Warn,
                    "metrics served on a non-loopback address; /metrics and /readyz are reachable from the network",
                    &[("addr", &bound)],
                );
            }
            Some(l)
        }
        None => None,
    };
    let provider = LocalKeyring::open(std::path::Path::new(&key_file), &key_name)?;
    let listener = bind(&listen)?;
    let listener = Async::new(listener).map_err(|e| e.to_string())?;

    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = stop_tx.send_blocking(());
        }
    });

    let executor = Arc::new(smol::Executor::new());
    let options = ServeOptions {
        config: kms_plugin_core::Config::default(),
        provider: Arc::new(provider),
        shutdown_grace: Duration::from_secs(5),
    };
    logger.log(Level::Info, "listening", &[("endpoint", &listen)]);
    let observer = Observer {
        logger: Some(logger),
        metrics_listener,
        metrics_limits: metrics_server::Limits::default(),
    };
    let shutdown = async move {
        let _ = stop_rx.recv().await;
    };
    let result = smol::block_on(executor.run(serve_observed(
        executor.clone(),
        listener,
        options,
        observer,
        shutdown,
    )));
    if !listen.contains("/@") {
        let _ = std::fs::remove_file(listen.trim_start_matches("unix://"));
    }
    result
}
