//! What every runtime does around one [`Plugin`], whatever its threads or tasks: the loop
//! contract's drain (transmit, effects, events, next deadline), events turned into log lines
//! and metrics, timers, readiness and the metrics page. The blocking server and the smol
//! runtime each keep a [`Driver`] behind their lock and supply only the IO, as a [`Sink`].
//!
//! Backpressure (the core's loop contract): a runtime hands each connection's bytes to a
//! writer of that connection and does not read from it again until those bytes are written
//! and [`Plugin::wants_read`] is true. Reading is what makes a peer's frames produce output
//! (PING and SETTINGS acknowledgements, answers), so a peer that never reads stops being
//! read, and what is queued for it stays bounded.

use std::sync::Arc;
use std::time::Instant;

use kms_plugin_core::ConnEvent;
use kms_plugin_core::health::HealthWarning;
use kms_plugin_core::metrics::Metrics;
use kms_plugin_core::{Config, ConnId, Effect, Event, OpId, Plugin, RemoteOp, Timestamp};
use zeroize::Zeroize;

use crate::clock::Clock;
use crate::log::Logger;
use crate::observe::log::log_event;
use crate::observe::metrics_server::Probe;
use crate::provider::KekProvider;
use crate::socket::peer::PeerGate;

/// Where a drain hands the core's outputs. Called with the runtime's lock held: no blocking
/// IO here, only queueing.
pub trait Sink {
    /// Bytes for `conn`, in order. Take them (e.g. `std::mem::take`) to keep them; what is
    /// left in `bytes` is wiped.
    fn transmit(&mut self, conn: ConnId, bytes: &mut Vec<u8>);
    /// Start remote operation `id`; it must be answered (`Plugin::handle_remote`) by
    /// `deadline` or the core gives up on it.
    fn remote(&mut self, id: OpId, op: RemoteOp, deadline: Instant);
    /// The core gave up on remote operation `id`; its late answer will be dropped.
    fn cancel(&mut self, id: OpId);
    /// `conn` is finished: close it after the bytes already handed over.
    fn close(&mut self, conn: ConnId);
}

/// What the runtime must do after a drain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// The core's next deadline moved earlier than what the timer waits for: wake it.
    pub wake_timer: bool,
    /// Shutdown was requested and every connection is closed.
    pub shutdown_done: bool,
}

/// One [`Plugin`] with its clock, metrics and logger.
pub struct Driver {
    /// The core.
    pub plugin: Plugin,
    /// The clock the core is fed with.
    pub clock: Clock,
    metrics: Metrics,
    logger: Option<Logger>,
    /// The deadline the timer currently waits for (`None`: indefinitely).
    timer_target: Option<Timestamp>,
    stopping: bool,
    flood: FloodLog,
    /// The provider's [`KekProvider::health_warning`], logged again whenever the core
    /// reports becoming healthy (the plugin also sends it with every v2 Status answer).
    health_warning: Option<&'static str>,
}

/// Rate limit for the log lines a flood can cause one per frame (refused streams, stream
/// errors, resets, refused connections): the first of each [`FLOOD_WINDOW`] is logged, the
/// rest only counted, and one line then says how many were not logged. Metrics count every
/// one (`kms_plugin_transport_events_total`, `kms_plugin_connections_refused_total`).
#[derive(Default)]
struct FloodLog {
    window_start: Option<Instant>,
    suppressed: u64,
}

/// The window of [`FloodLog`].
const FLOOD_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);

impl FloodLog {
    /// Whether `event` is one a peer can cause once per frame.
    fn is_floodable(event: &Event) -> bool {
        matches!(
            event,
            Event::ConnectionRefused { .. }
                | Event::Transport {
                    event: ConnEvent::ProtocolError {
                        stream: Some(_),
                        ..
                    } | ConnEvent::RequestRejected { .. }
                        | ConnEvent::StreamReset { .. },
                    ..
                }
        )
    }

    /// Whether to log a floodable event now; counts it otherwise.
    fn admit(&mut self, now: Instant, logger: Logger) -> bool {
        self.flush(now, logger);
        if self.window_start.is_none() {
            self.window_start = Some(now);
            return true;
        }
        self.suppressed += 1;
        false
    }

    /// Ends a window that is over: one line with the count of what it did not log.
    fn flush(&mut self, now: Instant, logger: Logger) {
        let Some(start) = self.window_start else {
            return;
        };
        if now.saturating_duration_since(start) < FLOOD_WINDOW {
            return;
        }
        if self.suppressed > 0 {
            logger.warn(
                "similar stream and connection events not logged (a peer may be flooding; see kms_plugin_transport_events_total)",
                &[("count", &self.suppressed), ("seconds", &FLOOD_WINDOW.as_secs())],
            );
        }
        *self = Self::default();
    }
}

impl Driver {
    /// A plugin seeded from the OS random generator, for `provider` (its name labels the
    /// metrics; its health warning, if any, goes with every v2 Status answer). Errors are one
    /// operator-facing line.
    pub fn new(
        config: Config,
        provider: &dyn KekProvider,
        logger: Option<Logger>,
    ) -> Result<Self, String> {
        let clock = Clock::new();
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| format!("OS random generator failed: {e}"))?;
        let plugin = Plugin::new(config, seed, clock.now());
        seed.zeroize();
        let mut plugin = plugin.map_err(|e| format!("invalid configuration: {e}"))?;
        // v2 Status answers carry it as a trailer, for `kms-plugin probe` to print.
        plugin.set_health_warning(provider.health_warning().and_then(HealthWarning::new));
        Ok(Self {
            plugin,
            clock,
            metrics: Metrics::new(provider.name()),
            logger,
            timer_target: None,
            stopping: false,
            flood: FloodLog::default(),
            health_warning: provider.health_warning(),
        })
    }

    /// The current time as the core sees it.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The logger, if any.
    pub fn logger(&self) -> Option<&Logger> {
        self.logger.as_ref()
    }

    /// The loop contract, run after every `handle_*`: hands transmit and effects to `sink`,
    /// logs and counts events, and checks the next deadline. `out` is a scratch buffer.
    pub fn drain(&mut self, out: &mut Vec<u8>, sink: &mut impl Sink) -> Drained {
        while let Some(conn) = self.plugin.poll_transmit(out) {
            sink.transmit(conn, out);
            if !out.is_empty() {
                out.as_mut_slice().zeroize();
                out.clear();
            }
        }
        while let Some(effect) = self.plugin.poll_effect() {
            match effect {
                Effect::Remote { id, op, deadline } => {
                    sink.remote(id, op, self.clock.instant(deadline));
                }
                Effect::CancelRemote { id } => sink.cancel(id),
                Effect::Close { conn } => sink.close(conn),
            }
        }
        let mut any_event = false;
        while let Some(event) = self.plugin.poll_event() {
            if let Some(logger) = &self.logger {
                if !FloodLog::is_floodable(&event) || self.flood.admit(Instant::now(), *logger) {
                    log_event(logger, &event);
                }
                // "healthy" must not read as "all is well" while the warning holds.
                if let (Event::HealthChanged { healthy: true, .. }, Some(warning)) =
                    (&event, self.health_warning)
                {
                    logger.warn("health warning", &[("warning", &warning)]);
                }
            }
            self.metrics.record(&event);
            any_event = true;
        }
        if any_event {
            self.metrics.observe(&self.plugin, self.clock.now());
        }
        if let Some(logger) = &self.logger
            && self.flood.window_start.is_some()
        {
            self.flood.flush(Instant::now(), *logger);
        }
        let next = self.plugin.poll_timeout();
        let wake_timer = next.is_some_and(|n| self.timer_target.is_none_or(|t| n < t));
        if wake_timer {
            self.timer_target = next;
        }
        Drained {
            wake_timer,
            shutdown_done: self.stopping && self.plugin.is_drained(),
        }
    }

    /// Fires the core's timers if one is due; whether it did (then drain).
    pub fn fire_timers(&mut self) -> bool {
        let now = self.clock.now();
        let due = self.plugin.poll_timeout().is_some_and(|t| t <= now);
        if due {
            self.plugin.handle_timeout(now);
        }
        due
    }

    /// The deadline the timer must wait for now (`None`: until a drain wakes it), recorded so
    /// that drains know when an earlier one needs a wake-up.
    pub fn arm_timer(&mut self) -> Option<Instant> {
        self.timer_target = self.plugin.poll_timeout();
        self.timer_target.map(|t| self.clock.instant(t))
    }

    /// Begins graceful shutdown (once): GOAWAY everywhere, new connections refused.
    pub fn begin_shutdown(&mut self) -> bool {
        if self.stopping {
            return false;
        }
        self.stopping = true;
        self.plugin.handle_shutdown(self.clock.now());
        true
    }

    /// Whether shutdown was requested.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// Appends the Prometheus text exposition, gauges refreshed now.
    pub fn render_metrics(&mut self, out: &mut String) {
        self.metrics.observe(&self.plugin, self.clock.now());
        self.metrics.render(out);
    }

    /// `/readyz`: ready when healthz is `ok` and no shutdown has begun; else the cause.
    pub fn readiness(&self) -> Result<(), String> {
        let snap = self.plugin.status_snapshot(self.clock.now());
        if snap.shutting_down {
            Err("shutting down".into())
        } else if snap.healthy {
            Ok(())
        } else {
            Err(snap.healthz.into())
        }
    }
}

/// Runs a function on the driver inside `T` under the runtime's lock.
pub type LockDriver<T> = fn(&T, &mut dyn FnMut(&mut Driver));

/// The `/metrics` and `/readyz` view of a runtime's [`Driver`], its provider and its peer
/// gate.
pub struct DriverProbe<T> {
    shared: Arc<T>,
    provider: Arc<dyn KekProvider>,
    gate: Option<Arc<PeerGate>>,
    lock: LockDriver<T>,
}

impl<T: Send + Sync + 'static> DriverProbe<T> {
    /// The probe of `shared`, whose driver `lock` reaches, and of `provider`'s and `gate`'s
    /// own families.
    pub fn probe(
        shared: Arc<T>,
        provider: Arc<dyn KekProvider>,
        gate: Option<Arc<PeerGate>>,
        lock: LockDriver<T>,
    ) -> Arc<dyn Probe> {
        Arc::new(Self {
            shared,
            provider,
            gate,
            lock,
        })
    }
}

impl<T: Send + Sync + 'static> Probe for DriverProbe<T> {
    fn render_metrics(&self, out: &mut String) {
        (self.lock)(&self.shared, &mut |driver| driver.render_metrics(out));
        // Outside the runtime's lock.
        self.provider.render_metrics(out);
        if let Some(gate) = &self.gate {
            gate.render_metrics(out);
        }
    }

    fn readiness(&self) -> Result<(), String> {
        let mut ready = Err(String::new());
        (self.lock)(&self.shared, &mut |driver| ready = driver.readiness());
        ready
    }

    fn health_warning(&self) -> Option<&'static str> {
        self.provider.health_warning()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Level, LogFormat};
    use kms_plugin_core::rpc::Code;

    #[test]
    fn a_flood_of_refused_streams_logs_one_line_per_window_and_a_count() {
        let logger = Logger::new(LogFormat::Text, Level::Error); // prints nothing here
        let rejected = Event::Transport {
            conn: ConnId(1),
            event: ConnEvent::RequestRejected {
                stream: 1,
                code: Code::ResourceExhausted,
            },
        };
        assert!(FloodLog::is_floodable(&rejected));
        assert!(!FloodLog::is_floodable(&Event::ShutdownStarted));
        let mut flood = FloodLog::default();
        let t0 = Instant::now();
        assert!(flood.admit(t0, logger), "the first is logged");
        for _ in 0..1_863 {
            assert!(!flood.admit(t0, logger));
        }
        assert_eq!(flood.suppressed, 1_863);
        flood.flush(t0 + FLOOD_WINDOW / 2, logger);
        assert_eq!(flood.suppressed, 1_863, "the window is not over yet");
        // The window ends: one summary line, then the next event is logged again.
        assert!(flood.admit(t0 + FLOOD_WINDOW, logger));
        assert_eq!(flood.suppressed, 0);
    }
}
