//! `TransportConfig::validate` accepts the defaults and rejects values outside the
//! protocol's ranges (RFC 9113 §6.5.2, §6.9.1) or inconsistent caps.

use kms_plugin_core::TransportConfig;

#[test]
fn defaults_are_valid_and_documented_values() {
    let c = TransportConfig::default();
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.max_frame_size, 16_384);
    assert_eq!(c.max_concurrent_streams, 100);
    assert_eq!(c.max_header_list_size, 16 << 10);
    assert_eq!(c.header_table_size, 4096);
    assert_eq!(c.max_message_size, 4 << 20);
    assert_eq!(c.settings_timeout, core::time::Duration::from_secs(10));
}

#[test]
fn out_of_range_values_are_rejected() {
    let bad: Vec<(&str, TransportConfig)> = vec![
        (
            "frame 16383",
            TransportConfig {
                max_frame_size: 16_383,
                ..Default::default()
            },
        ),
        (
            "frame 2^24",
            TransportConfig {
                max_frame_size: 1 << 24,
                ..Default::default()
            },
        ),
        (
            "window 0",
            TransportConfig {
                initial_window_size: 0,
                ..Default::default()
            },
        ),
        (
            "window 2^31",
            TransportConfig {
                initial_window_size: 1 << 31,
                ..Default::default()
            },
        ),
        (
            "conn window",
            TransportConfig {
                connection_window_size: 65_534,
                ..Default::default()
            },
        ),
        (
            "streams 0",
            TransportConfig {
                max_concurrent_streams: 0,
                ..Default::default()
            },
        ),
        (
            "header list",
            TransportConfig {
                max_header_list_size: 1023,
                ..Default::default()
            },
        ),
        (
            "message 0",
            TransportConfig {
                max_message_size: 0,
                ..Default::default()
            },
        ),
        (
            "buffered < message + prefix",
            TransportConfig {
                max_message_size: 100,
                max_buffered_bytes: 104,
                ..Default::default()
            },
        ),
        (
            "output",
            TransportConfig {
                max_pending_output: 1000,
                ..Default::default()
            },
        ),
    ];
    for (what, c) in bad {
        let err = c.validate().expect_err(what);
        assert!(err.starts_with("transport."), "{what}: {err}");
    }
    let edge = TransportConfig {
        max_frame_size: (1 << 24) - 1,
        initial_window_size: (1 << 31) - 1,
        connection_window_size: (1 << 31) - 1,
        max_message_size: 100,
        max_buffered_bytes: 105,
        ..Default::default()
    };
    assert_eq!(edge.validate(), Ok(()));
}
