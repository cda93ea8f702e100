//! The plugin's Prometheus metrics (pure; the runtimes serve them) and the shared log-line
//! formatter for [`Event`]s.
//!
//! A [`Metrics`] registry is fed every [`Event`] by [`Metrics::record`] and, before rendering
//! (and ideally after each drain), the gauges by [`Metrics::observe`]; [`Metrics::render`]
//! writes Prometheus text exposition format 0.0.4. Every label value comes from a bounded set
//! (methods, gRPC codes, remote operation kinds, error kinds, rotation reasons, the provider
//! name fixed at construction); connection ids, operation ids and request uids are never
//! labels, and the only key-dependent label is the hashed key id of `kms_plugin_key_id_info`.
//!
//! [`log`] turns the same events into JSON or text log lines for both runtimes.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::event::Event;
use crate::ids::Method;
use crate::plugin::Plugin;
use crate::rpc::Code;
use crate::time::Timestamp;

pub mod addr;
pub mod exposition;
mod labels;
pub mod log;

pub use labels::{
    CODES, METHODS, REMOTE_ERRORS, REMOTE_OPS, ROTATION_REASONS, TRANSPORT_KINDS, hash_key_id,
};
use labels::{error_index, error_name, method_index, op_index, reason_index, transport_index};

use exposition::{GRPC_LATENCY_BOUNDS, Histogram, Kind, REMOTE_LATENCY_BOUNDS, header, sample};

/// Gauges read from the plugin by [`Metrics::observe`].
#[derive(Clone, Debug, Default)]
struct Gauges {
    observed: bool,
    healthy: bool,
    shutting_down: bool,
    connections: usize,
    parked: usize,
    cached_keks: usize,
    remote_in_flight: usize,
    /// Distinct remote key versions remembered as missing (healthz names the latest).
    missing_versions: usize,
    /// Hashed advertised key id (`None` before the first local KEK).
    key_id_hash: Option<String>,
    /// The key id the hash was computed from, to rehash only on change (non-secret).
    key_id: String,
    status_age: Option<Duration>,
    kek_uses: Option<u64>,
    kek_age: Option<Duration>,
    /// Digest of the current local KEK's wrapped blob and when `observe` first saw it.
    kek_seen: Option<([u8; 32], Timestamp)>,
}

/// The plugin's metrics registry. All storage is fixed-size (bounded label sets), so memory
/// does not grow with traffic.
#[derive(Clone, Debug)]
pub struct Metrics {
    provider: &'static str,
    grpc_requests: [[u64; 17]; 7],
    grpc_latency: Vec<Histogram>,
    requests_abandoned: [u64; 7],
    parked_limit_reached: u64,
    remote_ops: [[u64; 9]; 3],
    remote_latency: Vec<Histogram>,
    /// `[op][0 = timeout, 1 = cancelled]`.
    remote_abandoned: [[u64; 2]; 3],
    late_replies_dropped: u64,
    unwrap_cache_hits: u64,
    unwrap_cache_misses: u64,
    single_flight_joins: u64,
    conns_accepted: u64,
    conns_refused: u64,
    conns_closed: u64,
    transport_events: [u64; 5],
    /// `[kind 0 | 2 | 3][HTTP/2 error code 0..=14]`.
    http2_errors: [[u64; 15]; 5],
    key_id_changes: u64,
    kek_rotations: [u64; 4],
    health_changes: u64,
    gauges: Gauges,
}

impl Metrics {
    /// An empty registry. `provider` (e.g. `local`, `vault`, `pkcs11`) labels the remote
    /// operation families; anything but `[a-z0-9_]{1,32}` is replaced by `other` so the label
    /// stays bounded and clean.
    pub fn new(provider: &'static str) -> Self {
        let clean = !provider.is_empty()
            && provider.len() <= 32
            && provider
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        Self {
            provider: if clean { provider } else { "other" },
            grpc_requests: [[0; 17]; 7],
            grpc_latency: METHODS
                .iter()
                .map(|_| Histogram::new(GRPC_LATENCY_BOUNDS))
                .collect(),
            requests_abandoned: [0; 7],
            parked_limit_reached: 0,
            remote_ops: [[0; 9]; 3],
            remote_latency: REMOTE_OPS
                .iter()
                .map(|_| Histogram::new(REMOTE_LATENCY_BOUNDS))
                .collect(),
            remote_abandoned: [[0; 2]; 3],
            late_replies_dropped: 0,
            unwrap_cache_hits: 0,
            unwrap_cache_misses: 0,
            single_flight_joins: 0,
            conns_accepted: 0,
            conns_refused: 0,
            conns_closed: 0,
            transport_events: [0; 5],
            http2_errors: [[0; 15]; 5],
            key_id_changes: 0,
            kek_rotations: [0; 4],
            health_changes: 0,
            gauges: Gauges::default(),
        }
    }

    /// Counts one event. Never allocates.
    ///
    /// Unwrap-cache hits and misses are derived from completed Decrypts (the core has no
    /// dedicated event): a Decrypt that had to wait for a remote unwrap (`parked`) is a miss; one
    /// answered `OK` without waiting is a hit.
    pub fn record(&mut self, event: &Event) {
        fn bump(c: &mut u64) {
            *c = c.saturating_add(1);
        }
        match event {
            Event::ConnectionAccepted { .. } => bump(&mut self.conns_accepted),
            Event::ConnectionRefused { .. } => bump(&mut self.conns_refused),
            Event::ConnectionClosed { .. } => bump(&mut self.conns_closed),
            Event::Transport { event, .. } => {
                let (kind, code) = transport_index(event);
                bump(&mut self.transport_events[kind]);
                if let Some(code) = code {
                    bump(&mut self.http2_errors[kind][code]);
                }
            }
            Event::RequestCompleted {
                method,
                code,
                latency,
                parked,
                ..
            } => {
                let m = method_index(*method);
                if let Some(row) = self.grpc_requests.get_mut(m)
                    && let Some(c) = row.get_mut(usize::from(code.as_u8()))
                {
                    bump(c);
                }
                if let Some(h) = self.grpc_latency.get_mut(m) {
                    h.observe(*latency);
                }
                if matches!(method, Method::V1Decrypt | Method::V2Decrypt) {
                    if *parked {
                        bump(&mut self.unwrap_cache_misses);
                    } else if *code == Code::Ok {
                        bump(&mut self.unwrap_cache_hits);
                    }
                }
            }
            Event::RequestAbandoned { method, .. } => {
                bump(&mut self.requests_abandoned[method_index(*method)]);
            }
            Event::RemoteCompleted {
                op, error, latency, ..
            } => {
                bump(&mut self.remote_ops[op_index(*op)][error_index(*error)]);
                if let Some(h) = self.remote_latency.get_mut(op_index(*op)) {
                    h.observe(*latency);
                }
            }
            Event::RemoteAbandoned { op, timed_out, .. } => {
                bump(&mut self.remote_abandoned[op_index(*op)][usize::from(!*timed_out)]);
            }
            Event::LateRemoteReplyDropped { .. } => bump(&mut self.late_replies_dropped),
            Event::UnwrapJoined { .. } => bump(&mut self.single_flight_joins),
            Event::KeyIdChanged { .. } => bump(&mut self.key_id_changes),
            Event::LocalKekRotated { reason } => {
                bump(&mut self.kek_rotations[reason_index(*reason)]);
            }
            Event::HealthChanged { .. } => bump(&mut self.health_changes),
            Event::ParkedLimitReached { .. } => bump(&mut self.parked_limit_reached),
            Event::RemoteStarted { .. } | Event::ShutdownStarted => {}
        }
    }

    /// Reads the gauges from `plugin` at `now`: health, open connections, parked requests,
    /// cache size, the advertised key id (hashed), the Status cache age and the local KEK's
    /// uses and age. Call it before [`Metrics::render`] and after each drain: the local KEK age
    /// is measured from the first `observe` that sees a new KEK.
    pub fn observe(&mut self, plugin: &Plugin, now: Timestamp) {
        let snap = plugin.status_snapshot(now);
        let ks = plugin.kms().keystore();
        let g = &mut self.gauges;
        g.observed = true;
        g.healthy = snap.healthy;
        g.shutting_down = snap.shutting_down;
        g.connections = snap.connections;
        g.parked = snap.parked_requests;
        g.cached_keks = snap.cached_keks;
        g.remote_in_flight = snap.remote_in_flight;
        g.missing_versions = ks.missing_versions();
        if snap.key_id.is_empty() {
            g.key_id_hash = None;
            g.key_id.clear();
        } else if g.key_id != snap.key_id || g.key_id_hash.is_none() {
            g.key_id_hash = Some(hash_key_id(snap.key_id));
            g.key_id.clear();
            g.key_id.push_str(snap.key_id);
        }
        g.status_age = ks.status_age(now);
        if let Some(kek) = ks.current() {
            let seen_at = match g.kek_seen {
                Some((digest, at)) if digest == *kek.digest() => at,
                _ => {
                    g.kek_seen = Some((*kek.digest(), now));
                    now
                }
            };
            g.kek_uses = Some(kek.uses());
            g.kek_age = Some(now.saturating_duration_since(seen_at));
        } else {
            g.kek_seen = None;
            g.kek_uses = None;
            g.kek_age = None;
        }
    }

    /// Whether healthz was `ok` at the last [`Metrics::observe`] (false before any).
    pub fn healthy(&self) -> bool {
        self.gauges.observed && self.gauges.healthy
    }

    /// Appends the whole registry in Prometheus text exposition format 0.0.4. Families are
    /// always present (HELP/TYPE); gauges that need [`Metrics::observe`] have no sample until
    /// it ran, and optional values (key id, Status age, local KEK) have none until known.
    pub fn render(&self, out: &mut String) {
        self.render_grpc(out);
        self.render_remote(out);
        self.render_cache_and_connections(out);
        self.render_keys_and_health(out);
    }

    fn render_grpc(&self, out: &mut String) {
        let name = "kms_plugin_grpc_requests_total";
        header(
            out,
            name,
            Kind::Counter,
            "gRPC requests answered, by method and status code.",
        );
        for (m, row) in METHODS.iter().zip(&self.grpc_requests) {
            for (code, n) in CODES.iter().zip(row) {
                if *n > 0 || *code == Code::Ok {
                    sample(
                        out,
                        name,
                        &[("method", m.name()), ("code", code.name())],
                        *n,
                    );
                }
            }
        }
        let name = "kms_plugin_grpc_request_duration_seconds";
        header(
            out,
            name,
            Kind::Histogram,
            "Time from a request's last byte to its answer, by method.",
        );
        for (m, h) in METHODS.iter().zip(&self.grpc_latency) {
            h.render(out, name, &[("method", m.name())]);
        }
        let name = "kms_plugin_grpc_requests_abandoned_total";
        header(
            out,
            name,
            Kind::Counter,
            "Requests dropped because the client cancelled or disconnected, by method.",
        );
        for (m, n) in METHODS.iter().zip(&self.requests_abandoned) {
            sample(out, name, &[("method", m.name())], *n);
        }
        let name = "kms_plugin_parked_limit_reached_total";
        header(
            out,
            name,
            Kind::Counter,
            "Requests refused because too many were waiting for remote operations.",
        );
        sample(out, name, &[], self.parked_limit_reached);
        let name = "kms_plugin_parked_requests";
        header(
            out,
            name,
            Kind::Gauge,
            "Requests waiting for a remote operation.",
        );
        if self.gauges.observed {
            sample(out, name, &[], self.gauges.parked as u64);
        }
    }

    fn render_remote(&self, out: &mut String) {
        let p = self.provider;
        let name = "kms_plugin_remote_operations_total";
        header(
            out,
            name,
            Kind::Counter,
            "Remote KEK operations answered in time, by provider, operation and error class (none = success).",
        );
        for (op, row) in REMOTE_OPS.iter().zip(&self.remote_ops) {
            for (i, n) in row.iter().enumerate() {
                if *n > 0 || i == 0 {
                    let labels = [("provider", p), ("op", op.name()), ("error", error_name(i))];
                    sample(out, name, &labels, *n);
                }
            }
        }
        let name = "kms_plugin_remote_operation_duration_seconds";
        header(
            out,
            name,
            Kind::Histogram,
            "Remote KEK operation latency (answered in time), by provider and operation.",
        );
        for (op, h) in REMOTE_OPS.iter().zip(&self.remote_latency) {
            h.render(out, name, &[("provider", p), ("op", op.name())]);
        }
        let name = "kms_plugin_remote_operations_abandoned_total";
        header(
            out,
            name,
            Kind::Counter,
            "Remote operations given up on, by provider, operation and reason (timeout or cancelled).",
        );
        for (op, row) in REMOTE_OPS.iter().zip(&self.remote_abandoned) {
            for (reason, n) in ["timeout", "cancelled"].iter().zip(row) {
                let labels = [("provider", p), ("op", op.name()), ("reason", reason)];
                sample(out, name, &labels, *n);
            }
        }
        let name = "kms_plugin_remote_late_replies_dropped_total";
        header(
            out,
            name,
            Kind::Counter,
            "Remote replies that arrived after the plugin had given up on them.",
        );
        sample(out, name, &[], self.late_replies_dropped);
        let name = "kms_plugin_remote_operations_in_flight";
        header(out, name, Kind::Gauge, "Remote operations outstanding.");
        if self.gauges.observed {
            sample(out, name, &[], self.gauges.remote_in_flight as u64);
        }
        let name = "kms_plugin_remote_key_versions_missing";
        header(
            out,
            name,
            Kind::Gauge,
            "Remote key versions an unwrap found missing (error key_version_missing) with no successful unwrap under them since; healthz names the latest.",
        );
        if self.gauges.observed {
            sample(
                out,
                name,
                &[("provider", p)],
                self.gauges.missing_versions as u64,
            );
        }
    }

    fn render_cache_and_connections(&self, out: &mut String) {
        let counters: [(&str, &str, u64); 6] = [
            (
                "kms_plugin_unwrap_cache_hits_total",
                "Decrypts answered OK from an already unwrapped local KEK.",
                self.unwrap_cache_hits,
            ),
            (
                "kms_plugin_unwrap_cache_misses_total",
                "Decrypts that had to wait for a remote unwrap.",
                self.unwrap_cache_misses,
            ),
            (
                "kms_plugin_unwrap_single_flight_joins_total",
                "Decrypts that joined an unwrap already in flight for the same wrapped KEK.",
                self.single_flight_joins,
            ),
            (
                "kms_plugin_connections_accepted_total",
                "Connections accepted.",
                self.conns_accepted,
            ),
            (
                "kms_plugin_connections_refused_total",
                "Connections refused (connection limit reached or shutting down).",
                self.conns_refused,
            ),
            (
                "kms_plugin_connections_closed_total",
                "Connections closed.",
                self.conns_closed,
            ),
        ];
        for (name, help, n) in counters {
            header(out, name, Kind::Counter, help);
            sample(out, name, &[], n);
        }
        let name = "kms_plugin_transport_events_total";
        header(
            out,
            name,
            Kind::Counter,
            "HTTP/2 transport events by kind: protocol errors we detected, requests the transport answered itself, peer GOAWAYs, peer stream resets, connection closes.",
        );
        for (kind, n) in TRANSPORT_KINDS.iter().zip(&self.transport_events) {
            sample(out, name, &[("kind", kind)], *n);
        }
        let name = "kms_plugin_http2_errors_total";
        header(
            out,
            name,
            Kind::Counter,
            "HTTP/2 error codes (RFC 9113 section 7) of protocol errors we sent, peer GOAWAYs and peer stream resets.",
        );
        for (kind, row) in TRANSPORT_KINDS.iter().zip(&self.http2_errors) {
            for (code, n) in row.iter().enumerate() {
                if *n > 0 {
                    let reason = crate::h2::reason::Reason(code as u32).name();
                    sample(out, name, &[("kind", kind), ("reason", reason)], *n);
                }
            }
        }
        let g = &self.gauges;
        for (name, help, v) in [
            (
                "kms_plugin_unwrap_cache_size",
                "Unwrapped local KEKs cached.",
                g.cached_keks,
            ),
            (
                "kms_plugin_connections_open",
                "Open connections.",
                g.connections,
            ),
        ] {
            header(out, name, Kind::Gauge, help);
            if g.observed {
                sample(out, name, &[], v as u64);
            }
        }
    }

    fn render_keys_and_health(&self, out: &mut String) {
        let g = &self.gauges;
        let name = "kms_plugin_key_id_info";
        header(
            out,
            name,
            Kind::Gauge,
            "The key id v2 Status advertises, hashed (sha256:<first 16 hex digits>); always 1.",
        );
        if let Some(hash) = &g.key_id_hash {
            sample(out, name, &[("key_id_hash", hash)], 1);
        }
        let name = "kms_plugin_key_id_changes_total";
        header(out, name, Kind::Counter, "Changes of the remote key id.");
        sample(out, name, &[], self.key_id_changes);
        let name = "kms_plugin_local_kek_rotations_total";
        header(out, name, Kind::Counter, "Local KEKs generated, by reason.");
        for (r, n) in ROTATION_REASONS.iter().zip(&self.kek_rotations) {
            sample(out, name, &[("reason", r.name())], *n);
        }
        let name = "kms_plugin_local_kek_age_seconds";
        header(out, name, Kind::Gauge, "Age of the current local KEK.");
        if let Some(age) = g.kek_age {
            exposition::sample_seconds(out, name, &[], age);
        }
        let name = "kms_plugin_local_kek_uses";
        header(
            out,
            name,
            Kind::Gauge,
            "Encryptions done under the current local KEK.",
        );
        if let Some(uses) = g.kek_uses {
            sample(out, name, &[], uses);
        }
        let name = "kms_plugin_status_age_seconds";
        header(
            out,
            name,
            Kind::Gauge,
            "Time since the last successful remote KEK status.",
        );
        if let Some(age) = g.status_age {
            exposition::sample_seconds(out, name, &[], age);
        }
        let name = "kms_plugin_health_changes_total";
        header(out, name, Kind::Counter, "Changes of healthz.");
        sample(out, name, &[], self.health_changes);
        let name = "kms_plugin_healthz";
        header(
            out,
            name,
            Kind::Gauge,
            "1 when healthz is ok (Encrypt and Decrypt would work now), else 0.",
        );
        if g.observed {
            sample(out, name, &[], u64::from(g.healthy));
        }
        let name = "kms_plugin_shutting_down";
        header(
            out,
            name,
            Kind::Gauge,
            "1 once graceful shutdown has begun.",
        );
        if g.observed {
            sample(out, name, &[], u64::from(g.shutting_down));
        }
    }
}
