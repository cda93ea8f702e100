//! Prometheus text rendering of the plugin's metrics (pure; served by the runtimes).
