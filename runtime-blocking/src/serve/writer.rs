//! Each connection's outgoing side in the blocking server: chunks queued in drain order under
//! the plugin lock, written after it is released by whichever thread holds the socket, and
//! output buffers recycled between drains.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use kms_plugin_core::{ConnId, OpId, RemoteOp};
use zeroize::Zeroize;

use super::{Job, Shared};
use crate::driver::Sink;

/// Capacity of a fresh output buffer: a batch of responses to one read fits without growing.
pub(super) const OUT_BUFFER_BYTES: usize = 16 * 1024;
/// Buffers kept for reuse, at most (beyond it written buffers are freed).
const POOLED_BUFFERS: usize = 64;
/// Buffers that grew beyond this (a burst) are freed after writing instead of kept.
const MAX_POOLED_CAPACITY: usize = 256 * 1024;

/// Output buffers handed back after writing, for the next drain. Every drain gives the core an
/// empty buffer that already has capacity, so responses are not copied through a chain of
/// growing reallocations (each freeing a copy of response bytes), and written buffers are not
/// freed and allocated again per batch. Buffers are zeroed (whole capacity) before they are
/// pooled or freed: responses may carry plaintext.
pub(super) struct BufferPool(pub(super) Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    pub(super) fn get(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(OUT_BUFFER_BYTES))
    }

    pub(super) fn put(&self, mut buf: Vec<u8>) {
        buf.zeroize(); // whole capacity, and clears
        if buf.capacity() <= MAX_POOLED_CAPACITY {
            let mut pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < POOLED_BUFFERS {
                pool.push(buf);
            }
        }
    }
}

/// One connection's outgoing side: chunks queued in drain order, written by whichever thread
/// holds `stream` (FIFO, so order is kept whoever writes). `None` in the queue = shut down.
pub(super) struct ConnWriter {
    queue: Mutex<VecDeque<Option<Vec<u8>>>>,
    stream: Mutex<UnixStream>,
    /// Where written chunks go.
    pool: Arc<BufferPool>,
}

impl ConnWriter {
    pub(super) fn new(stream: UnixStream, pool: Arc<BufferPool>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            stream: Mutex::new(stream),
            pool,
        })
    }

    pub(super) fn push(&self, chunk: Option<Vec<u8>>) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(chunk);
    }

    /// Writes everything queued so far (and anything queued while writing).
    pub(super) fn flush(&self) {
        let mut stream = self.stream.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            match next {
                None => return,
                Some(Some(chunk)) => {
                    if stream.write_all(&chunk).is_err() {
                        let _ = stream.shutdown(Shutdown::Both);
                    }
                    self.pool.put(chunk);
                }
                // Half-close: the peer reads everything we sent, then EOF; its own late
                // writes (a WINDOW_UPDATE, a SETTINGS ACK) do not fail with EPIPE while it
                // still has our last responses to read. The reader thread lingers.
                Some(None) => {
                    let _ = stream.shutdown(Shutdown::Write);
                }
            }
        }
    }
}

/// Connections with queued bytes; written when dropped, which callers do after releasing the
/// plugin lock (`let f = shared.drain(&mut st); drop(st); drop(f);`).
#[must_use]
pub(super) struct Flush(pub(super) Vec<Arc<ConnWriter>>);

impl Drop for Flush {
    fn drop(&mut self) {
        for writer in self.0.drain(..) {
            writer.flush();
        }
    }
}

/// The blocking server's IO for a drain: bytes to connection writers (written once the lock
/// is released), remote calls to the worker pool.
pub(super) struct Outputs<'a> {
    pub(super) writers: &'a mut HashMap<ConnId, Arc<ConnWriter>>,
    pub(super) shared: &'a Shared,
    pub(super) flush: Flush,
}

impl Sink for Outputs<'_> {
    fn transmit(&mut self, conn: ConnId, bytes: &mut Vec<u8>) {
        if let Some(writer) = self.writers.get(&conn) {
            writer.push(Some(std::mem::replace(bytes, self.shared.pool.get())));
            if !self.flush.0.iter().any(|w| Arc::ptr_eq(w, writer)) {
                self.flush.0.push(writer.clone());
            }
        }
    }

    fn remote(&mut self, id: OpId, op: RemoteOp, deadline: Instant) {
        let jobs = self
            .shared
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = jobs.as_ref() {
            let _ = tx.send(Job { id, op, deadline });
        }
    }

    // The worker finishes the call; the core drops the late answer.
    fn cancel(&mut self, _id: OpId) {}

    fn close(&mut self, conn: ConnId) {
        // After the bytes queued before it (GOAWAY, last responses).
        if let Some(writer) = self.writers.remove(&conn) {
            writer.push(None);
            self.flush.0.push(writer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled(pool: &BufferPool) -> usize {
        pool.0.lock().unwrap().len()
    }

    #[test]
    fn buffer_pool_hands_out_empty_buffers_with_capacity_and_stays_bounded() {
        let pool = BufferPool(Mutex::new(Vec::new()));
        let fresh = pool.get();
        assert!(fresh.is_empty() && fresh.capacity() >= OUT_BUFFER_BYTES);

        let mut written = pool.get();
        written.extend_from_slice(b"response bytes");
        let cap = written.capacity();
        pool.put(written);
        let reused = pool.get();
        assert!(reused.is_empty(), "a pooled buffer comes back cleared");
        assert_eq!(reused.capacity(), cap, "and keeps its allocation");

        // A burst-sized buffer is freed, not kept.
        pool.put(Vec::with_capacity(MAX_POOLED_CAPACITY + 1));
        assert_eq!(pooled(&pool), 0);
        // At most POOLED_BUFFERS are kept.
        for _ in 0..POOLED_BUFFERS + 10 {
            pool.put(Vec::with_capacity(64));
        }
        assert_eq!(pooled(&pool), POOLED_BUFFERS);
    }
}
