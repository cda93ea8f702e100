//! Flow control (RFC 9113 §5.2, §6.9): the connection's windows both ways and each stream's.
//!
//! Receive windows are ours: DATA beyond them is a FLOW_CONTROL_ERROR, and they are reopened
//! with WINDOW_UPDATE once half used. Send windows are the peer's: our DATA never exceeds the
//! smaller of the connection's and the stream's.

use crate::h2::frame::{DEFAULT_WINDOW, MAX_WINDOW};

/// The window was exceeded or overflowed (FLOW_CONTROL_ERROR, §6.9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowError;

/// One stream's windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamWindows {
    /// Ours, for the request's DATA (may not go below zero, §6.9.1).
    recv: i64,
    /// The peer's, for our DATA (may go negative after a SETTINGS change, §6.9.2).
    send: i64,
}

impl StreamWindows {
    /// Windows starting at our and the peer's SETTINGS_INITIAL_WINDOW_SIZE.
    pub(crate) fn new(recv: u32, send: u32) -> Self {
        Self {
            recv: i64::from(recv),
            send: i64::from(send),
        }
    }

    /// `len` octets of DATA (padding included, §6.9.1) arrived on the stream.
    pub(crate) fn receive(&mut self, len: u32) -> Result<(), WindowError> {
        self.recv -= i64::from(len);
        if self.recv < 0 {
            return Err(WindowError);
        }
        Ok(())
    }

    /// Once half of `initial` is used, reopens the window: the WINDOW_UPDATE increment to send
    /// (§6.9: keep it open while the request keeps coming).
    pub(crate) fn replenish(&mut self, initial: u32) -> Option<u32> {
        let initial = i64::from(initial);
        if self.recv > initial / 2 {
            return None;
        }
        let increment = u32::try_from(initial - self.recv).unwrap_or(MAX_WINDOW);
        self.recv = initial;
        Some(increment)
    }

    /// The peer's WINDOW_UPDATE (§6.9.1: never above 2^31-1) or SETTINGS_INITIAL_WINDOW_SIZE
    /// change (§6.9.2, may be negative).
    pub(crate) fn grow_send(&mut self, delta: i64) -> Result<(), WindowError> {
        self.send += delta;
        if self.send > i64::from(MAX_WINDOW) {
            return Err(WindowError);
        }
        Ok(())
    }
}

/// The connection's windows (§6.9.1): the same pair as a stream's, ours reopened up to
/// `recv_target`.
pub(crate) struct ConnWindows {
    windows: StreamWindows,
    recv_target: u32,
}

impl ConnWindows {
    /// Our receive window starts at `recv` (announced with WINDOW_UPDATE right after our
    /// SETTINGS), the peer's at the RFC default.
    pub(crate) fn new(recv: u32) -> Self {
        Self {
            windows: StreamWindows::new(recv, DEFAULT_WINDOW),
            recv_target: recv,
        }
    }

    /// `len` octets of DATA arrived. `Ok(Some(increment))`: send a connection WINDOW_UPDATE.
    pub(crate) fn receive(&mut self, len: u32) -> Result<Option<u32>, WindowError> {
        self.windows.receive(len)?;
        Ok(self.windows.replenish(self.recv_target))
    }

    /// The peer's connection WINDOW_UPDATE.
    pub(crate) fn grow_send(&mut self, increment: i64) -> Result<(), WindowError> {
        self.windows.grow_send(increment)
    }

    /// How many octets of DATA (at most `want`) may be sent on `stream` now.
    pub(crate) fn sendable(&self, stream: &StreamWindows, want: usize) -> usize {
        let window = self.windows.send.min(stream.send);
        want.min(usize::try_from(window).unwrap_or(0))
    }

    /// `n` octets of DATA were sent on `stream` (at most what `sendable` allowed).
    pub(crate) fn sent(&mut self, stream: &mut StreamWindows, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.windows.send -= n;
        stream.send -= n;
    }
}
