//! Requests waiting for a remote operation, each with a deadline by which it is answered.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use super::work::Work;
use crate::ids::ConnId;
use crate::ids::Method;
use crate::keystore::Digest;
use crate::rpc::StreamId;
use crate::time::Timestamp;

/// Who asked, and when: enough to route the answer and report it.
pub(crate) struct RequestCtx {
    pub(crate) conn: ConnId,
    pub(crate) stream: StreamId,
    pub(crate) method: Method,
    pub(crate) received: Timestamp,
    /// The v2 request uid (non-secret), for log correlation.
    pub(crate) uid: Option<String>,
}

/// What a parked request waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// A usable local KEK (a status or wrap in flight).
    Kek,
    /// The single-flight unwrap of this wrapped KEK.
    Unwrap(Digest),
}

/// One parked request.
pub(crate) struct ParkedRequest {
    pub(crate) ctx: RequestCtx,
    pub(crate) work: Work,
    pub(crate) waiting: Waiting,
    /// When it is answered at the latest.
    pub(crate) deadline: Timestamp,
    /// Whether `deadline` comes from the client's `grpc-timeout` (-> DEADLINE_EXCEEDED) rather
    /// than the remote timeout (-> UNAVAILABLE).
    pub(crate) client_deadline: bool,
}

type Key = (ConnId, StreamId);

/// Parked requests by `(conn, stream)`, with a deadline index.
#[derive(Default)]
pub(crate) struct ParkedSet {
    by_key: BTreeMap<Key, ParkedRequest>,
    by_deadline: BTreeSet<(Timestamp, ConnId, StreamId)>,
    /// Request octets held by the parked requests ([`Work::held_bytes`]).
    bytes: usize,
}

impl ParkedSet {
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Request octets the parked requests hold.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn insert(&mut self, p: ParkedRequest) {
        let key = (p.ctx.conn, p.ctx.stream);
        self.by_deadline.insert((p.deadline, key.0, key.1));
        self.bytes += p.work.held_bytes();
        if let Some(old) = self.by_key.insert(key, p) {
            self.by_deadline.remove(&(old.deadline, key.0, key.1));
            self.bytes -= old.work.held_bytes();
        }
    }

    pub(crate) fn remove(&mut self, conn: ConnId, stream: StreamId) -> Option<ParkedRequest> {
        let p = self.by_key.remove(&(conn, stream))?;
        self.by_deadline.remove(&(p.deadline, conn, stream));
        self.bytes -= p.work.held_bytes();
        Some(p)
    }

    /// Removes every request of `conn`.
    pub(crate) fn remove_conn(&mut self, conn: ConnId) -> Vec<ParkedRequest> {
        let streams: Vec<StreamId> = self
            .by_key
            .range((conn, 0)..=(conn, StreamId::MAX))
            .map(|(k, _)| k.1)
            .collect();
        streams
            .into_iter()
            .filter_map(|s| self.remove(conn, s))
            .collect()
    }

    /// Removes every request waiting for `waiting`, oldest deadline first.
    pub(crate) fn take_waiting(&mut self, waiting: Waiting) -> Vec<ParkedRequest> {
        let keys: Vec<(Timestamp, ConnId, StreamId)> = self
            .by_deadline
            .iter()
            .filter(|(_, c, s)| {
                self.by_key
                    .get(&(*c, *s))
                    .is_some_and(|p| p.waiting == waiting)
            })
            .copied()
            .collect();
        keys.into_iter()
            .filter_map(|(_, c, s)| self.remove(c, s))
            .collect()
    }

    /// Removes every request whose deadline is at or before `now`.
    pub(crate) fn take_expired(&mut self, now: Timestamp) -> Vec<ParkedRequest> {
        let keys: Vec<(Timestamp, ConnId, StreamId)> = self
            .by_deadline
            .iter()
            .take_while(|(t, _, _)| *t <= now)
            .copied()
            .collect();
        keys.into_iter()
            .filter_map(|(_, c, s)| self.remove(c, s))
            .collect()
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.by_deadline.first().map(|(t, _, _)| *t)
    }
}
