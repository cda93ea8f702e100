//! The smol driver as a library: a remote call runs on the blocking pool with the core's
//! deadline, a provider that hangs until that deadline never holds up the event loop, and
//! `serve` returns once its shutdown future completes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Async;
use kms_plugin_blocking::provider::KekProvider;
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{Config, RemoteError, RemoteErrorKind};
use kms_plugin_smol::serve::{ServeOptions, serve};

/// A provider whose calls answer nothing before their deadline; reports each deadline.
struct Hanging(Mutex<mpsc::Sender<Instant>>);

impl Hanging {
    fn hang(&self, deadline: Instant) -> RemoteError {
        let _ = self.0.lock().unwrap().send(deadline);
        // Blocks this pool thread only, until the deadline the core gave (bounded).
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        RemoteError::new(RemoteErrorKind::Timeout, "hanging provider")
    }
}

impl KekProvider for Hanging {
    fn name(&self) -> &'static str {
        "hanging"
    }

    fn status(&self, deadline: Instant) -> Result<String, RemoteError> {
        Err(self.hang(deadline))
    }

    fn wrap(&self, _: &str, _: &Secret32, deadline: Instant) -> Result<Vec<u8>, RemoteError> {
        Err(self.hang(deadline))
    }

    fn unwrap(&self, _: &str, _: &[u8], deadline: Instant) -> Result<Secret32, RemoteError> {
        Err(self.hang(deadline))
    }
}

#[test]
fn a_remote_call_gets_the_core_deadline_and_serve_stops_on_shutdown() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("kms-smol-cancel-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = Async::new(UnixListener::bind_addr(&addr).unwrap()).unwrap();

    let (deadline_tx, deadline_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let (done_tx, done_rx) = mpsc::channel();
    let mut config = Config::default();
    config.kms.remote_timeout = Duration::from_millis(100);
    let options = ServeOptions {
        config,
        provider: Arc::new(Hanging(Mutex::new(deadline_tx))),
        shutdown_grace: Duration::from_millis(200),
        peer_gate: None,
    };
    let started = Instant::now();
    std::thread::spawn(move || {
        let executor = Arc::new(smol::Executor::new());
        let shutdown = async move {
            let _ = stop_rx.recv().await;
        };
        let result =
            smol::block_on(executor.run(serve(executor.clone(), listener, options, shutdown)));
        let _ = done_tx.send(result);
    });

    // The start-up Status is bounded by the core's remote_timeout.
    let deadline = deadline_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the start-up Status reaches the provider");
    assert!(
        deadline <= Instant::now() + Duration::from_millis(100),
        "the provider gets the core's deadline ({:?} after start)",
        deadline - started
    );

    stop_tx.send_blocking(()).unwrap();
    let result = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("serve returns after shutdown");
    assert_eq!(result, Ok(()));
}
