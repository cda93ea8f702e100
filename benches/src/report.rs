//! Summaries of load runs and the Markdown tables the end-to-end benchmark prints.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation
)]

use std::fmt::Write as _;
use std::time::Duration;

use crate::h2load::ConnStats;

/// One (server, scenario, concurrency) measurement.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Completed requests per second in the measurement window.
    pub rps: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Server CPU time (user + system) per completed request, microseconds.
    pub cpu_us_per_req: f64,
    /// Server CPU utilisation over the window (1.0 = one core busy).
    pub cpu_util: f64,
    /// Failed requests (any cause).
    pub errors: u64,
    /// Average bytes the server sent per response.
    pub resp_bytes: f64,
    /// Connection failures, if any.
    pub failures: Vec<String>,
}

/// Merges per-connection stats of a run over `window` with the server's CPU time over it.
pub fn summarize(conns: Vec<ConnStats>, window: Duration, server_cpu: Duration) -> Measured {
    let mut lat: Vec<u64> = Vec::new();
    let mut m = Measured::default();
    let (mut bytes, mut resp) = (0u64, 0u64);
    for c in conns {
        lat.extend_from_slice(&c.latencies_ns);
        m.errors += c.errors;
        bytes += c.bytes_in;
        resp += c.responses_in_window;
        m.failures.extend(c.failure);
    }
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * q) as usize).min(lat.len() - 1);
        lat[i] as f64 / 1000.0
    };
    let n = lat.len() as f64;
    m.rps = n / window.as_secs_f64();
    m.p50_us = pct(0.50);
    m.p99_us = pct(0.99);
    m.cpu_us_per_req = if n > 0.0 {
        server_cpu.as_secs_f64() * 1e6 / n
    } else {
        f64::NAN
    };
    m.cpu_util = server_cpu.as_secs_f64() / window.as_secs_f64();
    m.resp_bytes = if resp > 0 {
        bytes as f64 / resp as f64
    } else {
        0.0
    };
    m
}

/// `a / b` formatted as a ratio (`-` when either side is missing).
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

/// Process-level facts of one server.
#[derive(Debug, Clone, Default)]
pub struct ProcessFacts {
    /// RSS once listening, before any connection, KiB.
    pub idle_rss_kib: Option<u64>,
    /// RSS after all load runs, KiB.
    pub loaded_rss_kib: Option<u64>,
    /// Median exec-to-connectable time, microseconds.
    pub start_us_median: Option<f64>,
    /// Fastest exec-to-connectable time, microseconds.
    pub start_us_min: Option<f64>,
    /// Binary size in bytes.
    pub binary_bytes: Option<u64>,
    /// Whether the binary is statically linked.
    pub static_elf: Option<bool>,
}

/// Renders the per-measurement table.
pub fn results_table(rows: &[(String, String, Measured)]) -> String {
    let mut s = String::new();
    s.push_str(
        "| scenario | server | req/s | p50 µs | p99 µs | server CPU µs/req | server CPU util | errors |\n",
    );
    s.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (scenario, server, m) in rows {
        let _ = writeln!(
            s,
            "| {scenario} | {server} | {:.0} | {:.1} | {:.1} | {:.2} | {:.0}% | {} |",
            m.rps,
            m.p50_us,
            m.p99_us,
            m.cpu_us_per_req,
            m.cpu_util * 100.0,
            m.errors
        );
    }
    s
}

/// Renders the process facts table.
pub fn process_table(rows: &[(String, ProcessFacts)]) -> String {
    let kib = |v: Option<u64>| v.map_or("-".into(), |k| format!("{:.2} MiB", k as f64 / 1024.0));
    let mut s = String::new();
    s.push_str("| server | idle RSS | RSS after load | exec→listening median (min) | binary size | static |\n");
    s.push_str("|---|---:|---:|---:|---:|---|\n");
    for (name, f) in rows {
        let start = match (f.start_us_median, f.start_us_min) {
            (Some(med), Some(min)) => format!("{:.2} ms ({:.2} ms)", med / 1000.0, min / 1000.0),
            _ => "-".into(),
        };
        let size = f
            .binary_bytes
            .map_or("-".into(), |b| format!("{:.2} MiB", b as f64 / 1_048_576.0));
        let stat = f
            .static_elf
            .map_or("-", |s| if s { "yes" } else { "no (dynamic)" });
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {start} | {size} | {stat} |",
            kib(f.idle_rss_kib),
            kib(f.loaded_rss_kib)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarize_percentiles_and_cpu() {
        let c = ConnStats {
            latencies_ns: (1..=100).map(|i| i * 1000).collect(),
            errors: 2,
            bytes_in: 1000,
            responses_in_window: 10,
            failure: None,
        };
        let m = summarize(vec![c], Duration::from_secs(2), Duration::from_millis(100));
        assert!((m.rps - 50.0).abs() < 1e-9);
        assert!((m.p50_us - 51.0).abs() < 1e-9);
        assert!((m.p99_us - 100.0).abs() < 1e-9);
        assert!((m.cpu_us_per_req - 1000.0).abs() < 1e-9);
        assert!((m.resp_bytes - 100.0).abs() < 1e-9);
        assert_eq!(m.errors, 2);
    }

    #[test]
    fn ratio_handles_missing() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25x");
        assert_eq!(ratio(None, Some(4.0)), "-");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "-");
    }
}
