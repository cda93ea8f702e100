//! Every limit and interval of the core, validated once in `Plugin::new`.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

pub use crate::conn::TransportConfig;

/// The plugin's configuration: transport limits, KMS service behaviour and the connection cap.
#[derive(Clone, Debug)]
pub struct Config {
    /// HTTP/2 + gRPC limits of one connection.
    pub transport: TransportConfig,
    /// KMS service, key hierarchy and remote KEK behaviour.
    pub kms: KmsConfig,
    /// Open connections at most. When the table is full, a new connection takes the place of
    /// the oldest one still in its handshake, else of the one idle longest; with every
    /// connection busy it is closed at once (with an event).
    pub max_connections: usize,
    /// Request octets held at most: bodies buffered across all connections (each connection
    /// also has `transport.max_buffered_bytes`) plus requests parked for a remote operation
    /// (`kms.max_parked_requests` bounds their count). The stream that goes beyond gets
    /// RESOURCE_EXHAUSTED.
    pub max_buffered_total: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            transport: TransportConfig::default(),
            kms: KmsConfig::default(),
            max_connections: 256,
            // With the default caches (unwrap cache, parked requests) and about 40 KiB of
            // fixed state per connection, this keeps the process well inside the shipped
            // static pod's 128 MiB limit (docs/performance.md, "Memory").
            max_buffered_total: 32 << 20,
        }
    }
}

impl Config {
    /// Checks every limit; `Plugin::new` calls this once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::new("max_connections must be at least 1"));
        }
        if self.max_buffered_total < self.transport.max_message_size as usize + 5 {
            return Err(ConfigError::new(
                "max_buffered_total must be >= transport.max_message_size + 5",
            ));
        }
        self.transport.validate().map_err(ConfigError::new)?;
        self.kms.validate()
    }
}

/// The `version` string `v2.Status` reports; constant for the process lifetime
/// (docs/protocol.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StatusVersion {
    /// `"v2"`: kube-apiserver 1.29 and later (the default).
    #[default]
    V2,
    /// `"v2beta1"`: also accepted by 1.27 and 1.28 (and still by 1.29+).
    V2Beta1,
}

impl StatusVersion {
    /// The exact string sent in `StatusResponse.version`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::V2Beta1 => "v2beta1",
        }
    }
}

/// Exponential backoff for failed remote Status / Wrap operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Backoff {
    /// Delay after `failures` consecutive failures (1 = first failure): doubling, capped.
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// KMS service, local key hierarchy and remote KEK settings.
#[derive(Clone, Debug)]
pub struct KmsConfig {
    /// `StatusResponse.version`.
    pub status_version: StatusVersion,
    /// `VersionResponse.runtime_name` (v1; not checked by the apiserver, docs/protocol.md §6).
    pub runtime_name: String,
    /// `VersionResponse.runtime_version` (v1; "semver-compatible", docs/protocol.md §6).
    pub runtime_version: String,
    /// How long the core waits for one remote operation before giving up on it.
    pub remote_timeout: Duration,
    /// Parked requests are answered at least this long before their `grpc-timeout` deadline
    /// (capped at a tenth of the time the request had left), so the caller sees our
    /// DEADLINE_EXCEEDED / UNAVAILABLE rather than its own timeout.
    pub deadline_headroom: Duration,
    /// Period of the remote `Status` effect (never issued in a request path).
    pub status_refresh_interval: Duration,
    /// healthz is not `ok` when the last successful remote status is older than this.
    pub status_staleness: Duration,
    /// Encryptions under one local KEK after which a fresh one is wrapped in the background
    /// (as the KMS reference plugin's `keySuggestedUsage = 1 << 21`).
    pub suggested_uses: u64,
    /// Hard cap on encryptions under one local KEK (reference `keyMaxUsage = 1<<22 - 1`).
    pub max_uses: u64,
    /// Age after which a fresh local KEK is wrapped in the background.
    pub suggested_age: Duration,
    /// Age after which a local KEK is no longer used to encrypt (reference `keyMaxAge`, 7 days).
    pub max_age: Duration,
    /// Unwrapped local KEKs kept (LRU), keyed by the wrapped blob's digest.
    pub unwrap_cache_capacity: usize,
    /// Distinct remote key versions remembered as missing (an unwrap answered
    /// `key_version_missing`); healthz names the most recent until an unwrap under it succeeds.
    pub missing_versions_remembered: usize,
    /// Requests waiting for a remote operation; beyond this RESOURCE_EXHAUSTED.
    pub max_parked_requests: usize,
    /// Remote operations outstanding at once; beyond this new unwraps are refused (UNAVAILABLE).
    pub max_in_flight_remote: usize,
    /// Retry delays after a failed remote Status or Wrap.
    pub retry_backoff: Backoff,
}

impl Default for KmsConfig {
    fn default() -> Self {
        Self {
            status_version: StatusVersion::V2,
            runtime_name: String::from("kms-plugin"),
            runtime_version: String::from("0.1.0"),
            remote_timeout: Duration::from_secs(2),
            deadline_headroom: Duration::from_millis(250),
            status_refresh_interval: Duration::from_secs(10),
            status_staleness: Duration::from_secs(60),
            suggested_uses: 1 << 21,
            max_uses: (1 << 22) - 1,
            suggested_age: Duration::from_secs(6 * 24 * 3600),
            max_age: Duration::from_secs(7 * 24 * 3600),
            unwrap_cache_capacity: 1000,
            missing_versions_remembered: 4,
            max_parked_requests: 4096,
            max_in_flight_remote: 64,
            retry_backoff: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
            },
        }
    }
}

impl KmsConfig {
    /// Checks the KMS settings for consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(bool, &'static str); 13] = [
            (
                self.remote_timeout.is_zero(),
                "remote_timeout must be positive",
            ),
            (
                self.status_refresh_interval.is_zero(),
                "status_refresh_interval must be positive",
            ),
            (
                self.status_staleness < self.status_refresh_interval,
                "status_staleness must be at least status_refresh_interval",
            ),
            (self.max_uses == 0, "max_uses must be positive"),
            (
                self.suggested_uses == 0 || self.suggested_uses > self.max_uses,
                "suggested_uses must be in 1..=max_uses",
            ),
            (self.max_age.is_zero(), "max_age must be positive"),
            (
                self.suggested_age.is_zero() || self.suggested_age > self.max_age,
                "suggested_age must be in (0, max_age]",
            ),
            (
                self.unwrap_cache_capacity == 0,
                "unwrap_cache_capacity must be at least 1",
            ),
            (
                self.missing_versions_remembered == 0,
                "missing_versions_remembered must be at least 1",
            ),
            (
                self.max_parked_requests == 0,
                "max_parked_requests must be at least 1",
            ),
            (
                self.max_in_flight_remote < 3,
                "max_in_flight_remote must be at least 3 (status, wrap, one unwrap)",
            ),
            (
                self.retry_backoff.initial.is_zero()
                    || self.retry_backoff.max < self.retry_backoff.initial,
                "retry_backoff must satisfy 0 < initial <= max",
            ),
            (
                self.runtime_name.is_empty() || self.runtime_version.is_empty(),
                "runtime_name and runtime_version must be non-empty",
            ),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(ConfigError::new(why)),
            None => Ok(()),
        }
    }
}

/// A configuration value out of range; `reason` names the field and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// What is wrong.
    pub reason: &'static str,
}

impl ConfigError {
    /// An error with `reason`.
    pub const fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.reason)
    }
}

impl core::error::Error for ConfigError {}
