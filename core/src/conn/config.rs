//! Limits and timers of one HTTP/2 connection.

use core::time::Duration;

use crate::h2::frame::{MAX_MAX_FRAME_SIZE, MAX_WINDOW, MIN_MAX_FRAME_SIZE};

/// Every cap and timer of one connection; validated once by `Config::validate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Our SETTINGS_MAX_FRAME_SIZE: larger frames are a FRAME_SIZE_ERROR detected from the
    /// 9-octet head, before any payload is buffered (RFC 9113 §4.2).
    pub max_frame_size: u32,
    /// Our SETTINGS_INITIAL_WINDOW_SIZE: the receive window of each stream (§6.9.2).
    pub initial_window_size: u32,
    /// The connection receive window we open right after our SETTINGS (the RFC default is
    /// 65,535, §6.9.2); replenished as DATA is consumed.
    pub connection_window_size: u32,
    /// Our SETTINGS_MAX_CONCURRENT_STREAMS; more are refused with REFUSED_STREAM (§5.1.2).
    pub max_concurrent_streams: u32,
    /// Our SETTINGS_MAX_HEADER_LIST_SIZE (octets as counted by §6.5.2); larger requests get
    /// RESOURCE_EXHAUSTED. Compressed header blocks above twice this are a connection error.
    pub max_header_list_size: u32,
    /// Our SETTINGS_HEADER_TABLE_SIZE: the HPACK dynamic table the peer may use (RFC 7541).
    pub header_table_size: u32,
    /// CONTINUATION frames allowed in one header block (CONTINUATION flood protection).
    pub max_continuation_frames: u32,
    /// The largest gRPC message accepted (4 MiB, like grpc-go); larger: RESOURCE_EXHAUSTED.
    pub max_message_size: u32,
    /// Request body octets (gRPC prefixes included) buffered on one connection across all
    /// streams; at least `max_message_size + 5`. Beyond it the stream that overflowed gets
    /// RESOURCE_EXHAUSTED.
    pub max_buffered_bytes: usize,
    /// Output octets queued for the socket above which `wants_read` turns false.
    pub max_pending_output: usize,
    /// How long our SETTINGS may stay unacknowledged (§6.5.3 SETTINGS_TIMEOUT).
    pub settings_timeout: Duration,
    /// How long the client has to send its preface and first SETTINGS (§3.4).
    pub handshake_timeout: Duration,
    /// RST_STREAM frames tolerated from the peer per `reset_window` (rapid-reset protection,
    /// CVE-2023-44487); more: GOAWAY(ENHANCE_YOUR_CALM).
    pub max_resets_per_window: u32,
    /// The window for `max_resets_per_window`.
    pub reset_window: Duration,
    /// How long a graceful shutdown waits for in-flight streams before closing.
    pub shutdown_grace: Duration,
    /// An open connection with no stream that receives nothing for this long is closed with
    /// GOAWAY(NO_ERROR) (§6.8; gRPC clients reconnect on their next call).
    pub idle_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_frame_size: MIN_MAX_FRAME_SIZE,
            initial_window_size: 1 << 20,
            connection_window_size: 8 << 20,
            max_concurrent_streams: 100,
            max_header_list_size: 16 << 10,
            header_table_size: 4096,
            max_continuation_frames: 32,
            max_message_size: 4 << 20,
            max_buffered_bytes: 8 << 20,
            max_pending_output: 1 << 20,
            settings_timeout: Duration::from_secs(10),
            // A local client sends its preface right after connecting; a short handshake
            // timeout frees the slots of half-open connections quickly.
            handshake_timeout: Duration::from_secs(3),
            max_resets_per_window: 200,
            reset_window: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            // kube-apiserver calls Status at least every minute on its connection.
            idle_timeout: Duration::from_secs(300),
        }
    }
}

impl TransportConfig {
    /// Checks every value against the protocol's ranges.
    pub fn validate(&self) -> Result<(), &'static str> {
        let checks: [(bool, &'static str); 9] = [
            (
                (MIN_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&self.max_frame_size),
                "transport.max_frame_size must be 16384..=16777215 (RFC 9113 §6.5.2)",
            ),
            (
                self.initial_window_size <= MAX_WINDOW && self.initial_window_size > 0,
                "transport.initial_window_size must be 1..=2^31-1",
            ),
            (
                (65_535..=MAX_WINDOW).contains(&self.connection_window_size),
                "transport.connection_window_size must be 65535..=2^31-1",
            ),
            (
                self.max_concurrent_streams > 0,
                "transport.max_concurrent_streams must be > 0",
            ),
            (
                self.max_header_list_size >= 1024,
                "transport.max_header_list_size must be >= 1024",
            ),
            (
                self.max_message_size > 0,
                "transport.max_message_size must be > 0",
            ),
            (
                // One largest message plus its 5-octet gRPC prefix must fit.
                self.max_buffered_bytes >= self.max_message_size as usize + 5,
                "transport.max_buffered_bytes must be >= max_message_size + 5",
            ),
            (
                self.max_pending_output >= 16 << 10,
                "transport.max_pending_output must be >= 16 KiB",
            ),
            (
                !self.idle_timeout.is_zero(),
                "transport.idle_timeout must be positive",
            ),
        ];
        checks
            .iter()
            .find(|(ok, _)| !ok)
            .map_or(Ok(()), |(_, msg)| Err(msg))
    }
}
