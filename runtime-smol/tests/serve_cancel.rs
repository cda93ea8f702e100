//! The smol driver as a library: a remote call that outlives the core's deadline is cancelled by
//! dropping its future (the provider sees the drop), and `serve` returns once its shutdown
//! future completes.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use async_io::Async;
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{Config, RemoteError};
use kms_plugin_smol::provider::{AsyncKekProvider, BoxFuture};
use kms_plugin_smol::serve::{ServeOptions, serve};

/// Sends on the channel when dropped: proves the pending provider future was dropped.
struct DropSignal(mpsc::Sender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("status future dropped");
    }
}

/// A provider whose `status` never answers.
struct Hanging(mpsc::Sender<&'static str>);

impl AsyncKekProvider for Hanging {
    fn name(&self) -> &'static str {
        "hanging"
    }

    fn status(&self) -> BoxFuture<'_, Result<String, RemoteError>> {
        let guard = DropSignal(self.0.clone());
        Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            unreachable!("pending never completes")
        })
    }

    fn wrap<'a>(
        &'a self,
        _key_id: &'a str,
        _kek: &'a Secret32,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        Box::pin(std::future::pending())
    }

    fn unwrap<'a>(
        &'a self,
        _key_id: &'a str,
        _wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Secret32, RemoteError>> {
        Box::pin(std::future::pending())
    }
}

#[test]
fn a_remote_call_past_its_deadline_is_dropped_and_serve_stops_on_shutdown() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("kms-smol-cancel-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = Async::new(UnixListener::bind_addr(&addr).unwrap()).unwrap();

    let (dropped_tx, dropped_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let (done_tx, done_rx) = mpsc::channel();
    let mut config = Config::default();
    config.kms.remote_timeout = Duration::from_millis(100);
    let options = ServeOptions {
        config,
        provider: Arc::new(Hanging(dropped_tx)),
        shutdown_grace: Duration::from_millis(200),
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

    // The core's start-up Status times out after remote_timeout; its future must be dropped.
    assert_eq!(
        dropped_rx.recv_timeout(Duration::from_secs(20)),
        Ok("status future dropped")
    );

    stop_tx.send_blocking(()).unwrap();
    let result = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("serve returns after shutdown");
    assert_eq!(result, Ok(()));
}
