//! The smol runtime shares the std layer's `Driver`, so its v2 Status answers carry the
//! provider's health warning as the `kms-plugin-warning` trailer too, and `probe` prints it.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Async;
use kms_plugin_blocking::endpoint::Endpoint;
use kms_plugin_blocking::probe::{self, Check};
use kms_plugin_blocking::provider::KekProvider;
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{Config, RemoteError, RemoteErrorKind};
use kms_plugin_smol::serve::{ServeOptions, serve};

const WARNING: &str = "test provider reached over plain http";

/// A provider that is down (every call fails at once) and has a health warning.
struct DownWithWarning;

fn down() -> RemoteError {
    RemoteError::new(RemoteErrorKind::Unavailable, "down")
}

impl KekProvider for DownWithWarning {
    fn name(&self) -> &'static str {
        "down"
    }

    fn status(&self, _: Instant) -> Result<String, RemoteError> {
        Err(down())
    }

    fn wrap(&self, _: &str, _: &Secret32, _: Instant) -> Result<Vec<u8>, RemoteError> {
        Err(down())
    }

    fn unwrap(&self, _: &str, _: &[u8], _: Instant) -> Result<Secret32, RemoteError> {
        Err(down())
    }

    fn health_warning(&self) -> Option<&'static str> {
        Some(WARNING)
    }
}

#[test]
fn probe_prints_the_provider_health_warning_from_the_smol_runtime() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("kms-smol-warning-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = Async::new(UnixListener::bind_addr(&addr).unwrap()).unwrap();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let options = ServeOptions {
        config: Config::default(),
        provider: Arc::new(DownWithWarning),
        shutdown_grace: Duration::from_millis(200),
        peer_gate: None,
    };
    std::thread::spawn(move || {
        let executor = Arc::new(smol::Executor::new());
        let shutdown = async move {
            let _ = stop_rx.recv().await;
        };
        let result =
            smol::block_on(executor.run(serve(executor.clone(), listener, options, shutdown)));
        let _ = done_tx.send(result);
    });

    // The socket is bound already: Status is answered (unhealthy, the provider being down)
    // with the warning, which never changes either verdict.
    let endpoint = Endpoint::Abstract(name.into_bytes());
    let timeout = Duration::from_secs(10);
    let (code, out) = probe::run(&endpoint, timeout, Check::Liveness, None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(code, 0, "{out}");
    assert!(lines[0].starts_with("live version=v2 "), "{out}");
    assert_eq!(lines[1..], [format!("warning: {WARNING}")], "{out}");
    let (code, out) = probe::run(&endpoint, timeout, Check::Readiness, None);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(code, 1, "{out}");
    assert!(lines[0].starts_with("unhealthy: "), "{out}");
    assert_eq!(lines[1..], [format!("warning: {WARNING}")], "{out}");

    stop_tx.send_blocking(()).unwrap();
    let result = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("serve returns after shutdown");
    assert_eq!(result, Ok(()));
}
