//! Who may connect: the peer's uid (`SO_PEERCRED`, taken by the kernel at `connect(2)`, so
//! the peer cannot forge it) checked on every accepted connection.
//!
//! A path socket is already guarded by its file mode and directory; an abstract socket
//! (`unix:///@name`) has no permissions at all, so any process in the network namespace could
//! connect. Hence the default: on an abstract socket only root and the plugin's own uid;
//! on a path socket every uid the file mode lets in. `--allow-uid` replaces the default with
//! an explicit list (the plugin's own uid stays allowed: its probes run as it).
//!
//! A refused peer's connection is closed before a byte is read; refusals are counted
//! (`kms_plugin_peer_refused_total`) and logged at most once per [`LOG_INTERVAL`], with the
//! number left unlogged since.

use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kms_plugin_core::metrics::exposition::{Kind, header, sample};

use crate::endpoint::Endpoint;
use crate::log::Logger;

/// At most one "refused" log line per this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The uid of this process.
pub fn own_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The uids allowed to connect to one listener.
#[derive(Debug)]
pub struct PeerGate {
    /// `None`: every uid (the socket file's mode decides).
    allowed: Option<Vec<u32>>,
    refused: AtomicU64,
    /// When the last refusal was logged, and how many were not logged since.
    log_state: Mutex<(Option<Instant>, u64)>,
}

/// A connection the gate refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The peer's uid, `None` when the kernel could not tell.
    pub uid: Option<u32>,
    /// The peer's pid at connect time, when known.
    pub pid: Option<i32>,
}

impl PeerGate {
    /// The gate for `endpoint`: `allow_uids` when given (plus our own uid), else root and our
    /// own uid on an abstract socket and everyone on a path socket.
    pub fn new(endpoint: &Endpoint, allow_uids: Option<&[u32]>) -> Self {
        let own = own_uid();
        let allowed = match (allow_uids, endpoint) {
            (Some(list), _) => Some(list.iter().copied().chain([own]).collect()),
            (None, Endpoint::Abstract(_)) => Some([0, own].into()),
            (None, Endpoint::Path(_)) => None,
        };
        let allowed = allowed.map(|mut uids: Vec<u32>| {
            uids.sort_unstable();
            uids.dedup();
            uids
        });
        Self {
            allowed,
            refused: AtomicU64::new(0),
            log_state: Mutex::new((None, 0)),
        }
    }

    /// The uids allowed, `None` for all; for the start-up log line.
    pub fn allowed(&self) -> Option<&[u32]> {
        self.allowed.as_deref()
    }

    /// The allowed uids as the start-up log line shows them (`0,1000`, or that any uid the
    /// socket file's mode lets in may connect).
    pub fn allowed_text(&self) -> String {
        self.allowed().map_or_else(
            || "any the socket mode lets in".to_string(),
            |uids| {
                uids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            },
        )
    }

    /// Whether `stream`'s peer may talk to us. A peer whose credentials cannot be read is
    /// refused whenever a list applies.
    pub fn admit(&self, stream: &UnixStream) -> Result<(), Refusal> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        match rustix::net::sockopt::socket_peercred(stream) {
            Ok(cred) if allowed.contains(&cred.uid.as_raw()) => Ok(()),
            Ok(cred) => Err(self.count(Refusal {
                uid: Some(cred.uid.as_raw()),
                pid: Some(cred.pid.as_raw_nonzero().get()),
            })),
            Err(_) => Err(self.count(Refusal {
                uid: None,
                pid: None,
            })),
        }
    }

    fn count(&self, refusal: Refusal) -> Refusal {
        self.refused.fetch_add(1, Ordering::Relaxed);
        refusal
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Logs `refusal` unless another was logged less than [`LOG_INTERVAL`] before `now`.
    pub fn log_refusal(&self, logger: &Logger, refusal: Refusal, now: Instant) {
        let mut st = self
            .log_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (last, suppressed) = &mut *st;
        if last.is_some_and(|t| now.saturating_duration_since(t) < LOG_INTERVAL) {
            *suppressed += 1;
            return;
        }
        let unlogged = std::mem::take(suppressed);
        *last = Some(now);
        drop(st);
        let uid = refusal
            .uid
            .map_or_else(|| "unknown".to_string(), |u| u.to_string());
        let pid = refusal
            .pid
            .map_or_else(|| "unknown".to_string(), |p| p.to_string());
        logger.warn(
            "refused a connection from a uid not allowed by --allow-uid",
            &[
                ("peer_uid", &uid),
                ("peer_pid", &pid),
                ("refused_unlogged_since_last", &unlogged),
            ],
        );
    }

    /// The `kms_plugin_peer_refused_total` family.
    pub fn render_metrics(&self, out: &mut String) {
        header(
            out,
            "kms_plugin_peer_refused_total",
            Kind::Counter,
            "Connections closed unread because the peer's uid (SO_PEERCRED) is not allowed (--allow-uid).",
        );
        sample(out, "kms_plugin_peer_refused_total", &[], self.refused());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_depend_on_the_socket_kind() {
        let own = own_uid();
        let abs = PeerGate::new(&Endpoint::Abstract(b"x".to_vec()), None);
        let mut expected = vec![0, own];
        expected.dedup();
        assert_eq!(abs.allowed(), Some(&expected[..]));
        let path = PeerGate::new(&Endpoint::Path("/run/x.sock".into()), None);
        assert_eq!(path.allowed(), None);
        let listed = PeerGate::new(&Endpoint::Path("/run/x.sock".into()), Some(&[1000]));
        let mut expected = vec![1000, own];
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(listed.allowed(), Some(&expected[..]));
    }

    #[test]
    fn our_own_connection_is_admitted_and_a_list_without_us_would_refuse() {
        let (a, _b) = UnixStream::pair().unwrap();
        let gate = PeerGate::new(&Endpoint::Abstract(b"x".to_vec()), None);
        assert_eq!(gate.admit(&a), Ok(()));
        let strict = PeerGate {
            allowed: Some(vec![own_uid().wrapping_add(1)]),
            refused: AtomicU64::new(0),
            log_state: Mutex::new((None, 0)),
        };
        let refusal = strict.admit(&a).unwrap_err();
        assert_eq!(refusal.uid, Some(own_uid()));
        assert_eq!(strict.refused(), 1);
        let mut text = String::new();
        strict.render_metrics(&mut text);
        assert!(text.contains("kms_plugin_peer_refused_total 1"), "{text}");
    }
}
