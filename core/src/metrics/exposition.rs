//! Prometheus text exposition format 0.0.4 writers: `# HELP`/`# TYPE` lines, escaped label
//! values, and histograms with fixed bucket bounds.
//!
//! Reference: Prometheus "Exposition formats", text-based format (version 0.0.4): label values
//! escape `\`, `"` and newline; HELP text escapes `\` and newline; a histogram is a run of
//! `_bucket{le="..."}` samples with non-decreasing cumulative counts ending in `le="+Inf"`,
//! then `_sum` and `_count` (equal to the `+Inf` bucket).

use alloc::string::String;
use core::fmt::Write as _;
use core::time::Duration;

/// Metric family types used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic count.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Cumulative buckets + sum + count.
    Histogram,
}

impl Kind {
    const fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// Writes the `# HELP` and `# TYPE` lines of family `name`.
pub fn header(out: &mut String, name: &str, kind: Kind, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind.name());
    out.push('\n');
}

/// Appends `value` escaped as a label value (without the quotes).
pub fn push_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes `name{k="v",...} value\n` (no braces when `labels` is empty).
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    sample_name_labels(out, name, "", labels, None);
    let _ = writeln!(out, " {value}");
}

/// Writes a sample whose value is a duration in seconds (nanosecond precision, no float
/// rounding: `1.500000000`).
pub fn sample_seconds(out: &mut String, name: &str, labels: &[(&str, &str)], value: Duration) {
    sample_name_labels(out, name, "", labels, None);
    let _ = writeln!(out, " {}.{:09}", value.as_secs(), value.subsec_nanos());
}

fn sample_name_labels(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
) {
    out.push_str(name);
    out.push_str(suffix);
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        push_label_value(out, v);
        out.push('"');
    }
    out.push('}');
}

/// Upper bounds (inclusive) of a histogram's finite buckets, as (nanoseconds, `le` text).
/// Strictly increasing; `+Inf` is implied.
pub type Bounds = &'static [(u64, &'static str)];

/// Latency buckets for gRPC requests: 0.5 ms .. 10 s.
pub const GRPC_LATENCY_BOUNDS: Bounds = &[
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
];

/// Latency buckets for remote KEK operations: 1 ms .. 30 s.
pub const REMOTE_LATENCY_BOUNDS: Bounds = &[
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
    (30_000_000_000, "30"),
];

/// A latency histogram with fixed bounds. Counts saturate instead of wrapping.
#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: Bounds,
    /// Non-cumulative count per finite bucket; observations above every bound only count in
    /// `count`.
    buckets: alloc::vec::Vec<u64>,
    sum: Duration,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            buckets: alloc::vec![0; bounds.len()],
            sum: Duration::ZERO,
            count: 0,
        }
    }

    /// Records one observation.
    pub fn observe(&mut self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        if let Some(i) = self.bounds.iter().position(|(b, _)| nanos <= *b)
            && let Some(slot) = self.buckets.get_mut(i)
        {
            *slot = slot.saturating_add(1);
        }
        self.sum = self.sum.saturating_add(value);
        self.count = self.count.saturating_add(1);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples of one label set.
    pub fn render(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0u64;
        for ((_, le), n) in self.bounds.iter().zip(&self.buckets) {
            cumulative = cumulative.saturating_add(*n);
            sample_name_labels(out, name, "_bucket", labels, Some(le));
            let _ = writeln!(out, " {cumulative}");
        }
        sample_name_labels(out, name, "_bucket", labels, Some("+Inf"));
        let _ = writeln!(out, " {}", self.count);
        sample_name_labels(out, name, "_sum", labels, None);
        let _ = writeln!(
            out,
            " {}.{:09}",
            self.sum.as_secs(),
            self.sum.subsec_nanos()
        );
        sample_name_labels(out, name, "_count", labels, None);
        let _ = writeln!(out, " {}", self.count);
    }
}
