//! One connection of the smol runtime: its queued output and the task that writes it and
//! reads the peer, in that order (backpressure), then half-closes and lingers.

use std::collections::VecDeque;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_io::{Async, Timer};
use kms_plugin_blocking::serve::LINGER;
use kms_plugin_core::ConnId;
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt as _;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroize;

use super::Shared;

/// One connection's queued output and the doorbell that wakes its task.
pub(super) struct Outbox {
    pub(super) queue: Mutex<(VecDeque<Vec<u8>>, bool)>,
    pub(super) bell: Sender<()>,
}

impl Outbox {
    pub(super) fn push(&self, chunk: Option<Vec<u8>>) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        match chunk {
            Some(c) => q.0.push_back(c),
            None => q.1 = true,
        }
        drop(q);
        let _ = self.bell.try_send(());
    }

    /// The next chunk, or whether the connection is closed once everything is written.
    fn pop(&self) -> Result<Vec<u8>, bool> {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.0.pop_front().ok_or(q.1)
    }
}

/// How long writing one chunk may wait for the peer to read (as the blocking runtime's
/// socket write timeout).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What woke a connection task.
enum Wake {
    Read(usize),
    Output,
}

/// One connection: write what is queued, then wait for input (if the core wants it) or for
/// more output; after the core closes it, half-close and linger.
pub(super) async fn connection(
    shared: Arc<Shared>,
    stream: Async<UnixStream>,
    conn: ConnId,
    outbox: Arc<Outbox>,
    rung: Receiver<()>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    // What the core said after the last bytes it was fed (before the drain that queued their
    // output, which is written first anyway).
    let mut wants_read = true;
    let closed = loop {
        let closed = loop {
            match outbox.pop() {
                Ok(mut chunk) => {
                    // A peer that reads nothing for WRITE_TIMEOUT loses its connection.
                    let ok = async { (&stream).write_all(&chunk).await.is_ok() }
                        .or(async {
                            Timer::after(WRITE_TIMEOUT).await;
                            false
                        })
                        .await;
                    chunk.zeroize();
                    if !ok {
                        break Some(false);
                    }
                }
                Err(true) => break Some(true),
                Err(false) => break None,
            }
        };
        if let Some(clean) = closed {
            break clean;
        }
        if !wants_read {
            // Everything queued is written: ask again (false now only for a closed one).
            wants_read = shared.lock().driver.plugin.wants_read(conn);
        }
        let output = async {
            let _ = rung.recv().await;
            Wake::Output
        };
        let wake = if wants_read {
            async { Wake::Read((&stream).read(&mut buf).await.unwrap_or(0)) }
                .or(output)
                .await
        } else {
            output.await
        };
        if let Wake::Read(n) = wake {
            wants_read = shared.with(|st| {
                let now = st.driver.now();
                let _ = if n == 0 {
                    st.driver.plugin.handle_eof(conn, now)
                } else {
                    st.driver.plugin.handle_bytes(conn, &buf[..n], now)
                };
                st.driver.plugin.wants_read(conn)
            });
            buf[..n].zeroize();
        }
    };
    if closed {
        let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
        let linger = async {
            while matches!((&stream).read(&mut buf).await, Ok(n) if n > 0) {
                buf.zeroize();
            }
        };
        linger
            .or(async {
                Timer::after(LINGER).await;
            })
            .await;
    } else {
        let _ = stream.get_ref().shutdown(std::net::Shutdown::Both);
        shared.with(|st| {
            let now = st.driver.now();
            let _ = st.driver.plugin.handle_eof(conn, now);
        });
    }
    drop(stream);
    shared.lock().open_sockets -= 1;
    let _ = shared.progress.try_send(());
}
