//! [`TransportConfig`]: every cap and timer of one HTTP/2 connection.

use core::time::Duration;

use crate::h2::{DEFAULT_WINDOW, MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_MAX_FRAME_SIZE};

/// Limits and timers of one server-side HTTP/2 connection. Validate with
/// [`TransportConfig::validate`] before use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// SETTINGS_MAX_FRAME_SIZE we advertise (RFC 9113 §6.5.2): the largest frame payload we
    /// accept. A larger declared length is a FRAME_SIZE_ERROR as soon as the 9-octet header
    /// arrives (§4.2), so input buffering never exceeds 9 + this. Default 16,384.
    pub max_frame_size: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE we advertise (§6.5.2, §6.9.2): each stream's receive
    /// window. At least 65,535. Default 1 MiB.
    pub initial_window_size: u32,
    /// The connection receive window; we send a connection WINDOW_UPDATE right after our
    /// SETTINGS to raise it from 65,535 (§6.9.2). At least 65,535. Default 4 MiB.
    pub connection_window_size: u32,
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise; more open streams are refused with
    /// RST_STREAM(REFUSED_STREAM) (§5.1.2). Default 100.
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise (§6.5.2): decoded name + value + 32 per
    /// field. A larger request is answered with HTTP 431 (§10.5.1). Default 16 KiB.
    pub max_header_list_size: u32,
    /// SETTINGS_HEADER_TABLE_SIZE we advertise (HPACK dynamic table, RFC 7541 §4.2).
    /// Default 4,096.
    pub header_table_size: u32,
    /// Most CONTINUATION frames after one HEADERS frame; more is GOAWAY(ENHANCE_YOUR_CALM)
    /// (CONTINUATION flood, CVE-2024-27316). Default 32.
    pub max_continuation_frames: u32,
    /// Largest compressed header block we buffer across HEADERS + CONTINUATION (§10.5.1);
    /// more is GOAWAY(ENHANCE_YOUR_CALM) since the block cannot be decoded. Default 32 KiB.
    pub max_header_block_size: u32,
    /// Largest gRPC message we accept; larger is RESOURCE_EXHAUSTED, decided from the 5-byte
    /// prefix before buffering. Default 4 MiB (as grpc-go).
    pub max_message_size: u32,
    /// Most request-body bytes held per connection across streams (reserved from the
    /// declared message length). Beyond it the request gets RESOURCE_EXHAUSTED.
    /// Default 16 MiB.
    pub max_buffered_bytes: usize,
    /// Bytes of output queued before [`Connection::wants_read`](super::Connection::wants_read)
    /// turns false (backpressure). Default 1 MiB.
    pub max_pending_output: usize,
    /// How long the peer has to acknowledge our SETTINGS (§6.5.3: SETTINGS_TIMEOUT).
    /// Default 10 s.
    pub settings_timeout: Duration,
    /// How long the client has to send its preface and first SETTINGS (§3.4). Default 10 s.
    pub handshake_timeout: Duration,
    /// Most RST_STREAMs the peer may send per [`Self::reset_window`] before GOAWAY
    /// (ENHANCE_YOUR_CALM) (rapid reset, CVE-2023-44487). Default 200.
    pub max_resets_per_window: u32,
    /// The rapid-reset counting window. Default 30 s.
    pub reset_window: Duration,
    /// How long a graceful shutdown waits for in-flight streams before closing. Default 5 s.
    pub shutdown_grace: Duration,
    /// Most events queued for `poll_event`; later ones are dropped. Default 256.
    pub max_queued_events: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_frame_size: 16_384,
            initial_window_size: 1 << 20,
            connection_window_size: 4 << 20,
            max_concurrent_streams: 100,
            max_header_list_size: 16 << 10,
            header_table_size: 4096,
            max_continuation_frames: 32,
            max_header_block_size: 32 << 10,
            max_message_size: 4 << 20,
            max_buffered_bytes: 16 << 20,
            max_pending_output: 1 << 20,
            settings_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_resets_per_window: 200,
            reset_window: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            max_queued_events: 256,
        }
    }
}

impl TransportConfig {
    /// Checks every field against the RFC ranges and basic sanity.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&self.max_frame_size) {
            return Err("max_frame_size must be within 16384..=16777215 (RFC 9113 §6.5.2)");
        }
        if !(DEFAULT_WINDOW..=MAX_WINDOW).contains(&self.initial_window_size) {
            return Err("initial_window_size must be within 65535..=2^31-1");
        }
        if !(DEFAULT_WINDOW..=MAX_WINDOW).contains(&self.connection_window_size) {
            return Err("connection_window_size must be within 65535..=2^31-1");
        }
        if self.max_concurrent_streams == 0 {
            return Err("max_concurrent_streams must be positive");
        }
        if self.max_header_list_size < 1024 {
            return Err("max_header_list_size must be at least 1024");
        }
        if self.max_header_block_size < 1024 {
            return Err("max_header_block_size must be at least 1024");
        }
        if self.max_message_size == 0 || self.max_buffered_bytes < self.max_message_size as usize {
            return Err(
                "max_buffered_bytes must be at least max_message_size, which must be positive",
            );
        }
        if self.max_pending_output < 64 << 10 {
            return Err("max_pending_output must be at least 64 KiB");
        }
        if self.settings_timeout.is_zero()
            || self.handshake_timeout.is_zero()
            || self.reset_window.is_zero()
        {
            return Err("timeouts must be positive");
        }
        if self.max_queued_events == 0 {
            return Err("max_queued_events must be positive");
        }
        Ok(())
    }
}
