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

/// The whole plugin's `Config` and `KmsConfig`: defaults, rejected values, retry backoff.
mod plugin_config {
    use core::time::Duration;

    use kms_plugin_core::config::*;

    #[test]
    fn defaults_are_valid_and_match_the_reference_limits() {
        let c = KmsConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.suggested_uses, 1 << 21);
        assert_eq!(c.max_uses, (1 << 22) - 1);
        assert_eq!(c.max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(c.unwrap_cache_capacity, 1000);
        assert_eq!(c.status_version.as_str(), "v2");
        assert_eq!(StatusVersion::V2Beta1.as_str(), "v2beta1");
    }

    #[test]
    fn inconsistent_values_are_rejected() {
        let bad: [fn(&mut KmsConfig); 7] = [
            |c| c.remote_timeout = Duration::ZERO,
            |c| c.suggested_uses = c.max_uses + 1,
            |c| c.suggested_age = c.max_age + Duration::from_secs(1),
            |c| c.unwrap_cache_capacity = 0,
            |c| c.missing_versions_remembered = 0,
            |c| c.status_staleness = c.status_refresh_interval / 2,
            |c| c.max_in_flight_remote = 2,
        ];
        for f in bad {
            let mut c = KmsConfig::default();
            f(&mut c);
            assert!(c.validate().is_err());
        }
    }

    #[test]
    fn plugin_config_checks_every_part() {
        assert_eq!(Config::default().validate(), Ok(()));
        let c = Config {
            max_connections: 0,
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.transport.max_frame_size = 1;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.kms.max_uses = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        };
        assert_eq!(b.delay(1), Duration::from_millis(500));
        assert_eq!(b.delay(2), Duration::from_secs(1));
        assert_eq!(b.delay(8), Duration::from_secs(30));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
    }
}
