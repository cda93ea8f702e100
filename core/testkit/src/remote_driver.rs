//! Executes `Effect::Remote`s against a [`FakeRemote`] on a virtual clock: each reply is
//! scheduled `latency` after its effect and delivered in time order.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::fake_remote::FakeRemote;
use kms_plugin_core::effect::{OpId, RemoteError, RemoteOp, RemoteReply};
use kms_plugin_core::time::Timestamp;

/// A scheduled reply.
type Reply = (OpId, Result<RemoteReply, RemoteError>);

/// The fake remote plus the replies it owes, ordered by delivery time.
pub struct RemoteDriver {
    /// The fake remote (knobs and call counts).
    pub remote: FakeRemote,
    scheduled: BTreeMap<(Timestamp, u64), Reply>,
    seq: u64,
    /// Ops the core cancelled (their replies are still delivered, to exercise late replies).
    pub cancelled: Vec<OpId>,
    /// Every op id issued, in order.
    pub issued: Vec<OpId>,
}

impl RemoteDriver {
    /// A driver over `remote`.
    pub fn new(remote: FakeRemote) -> Self {
        Self {
            remote,
            scheduled: BTreeMap::new(),
            seq: 0,
            cancelled: Vec::new(),
            issued: Vec::new(),
        }
    }

    /// Runs `op` on the fake remote and schedules its reply (unless it never replies).
    pub fn start(&mut self, id: OpId, op: &RemoteOp, now: Timestamp) {
        self.issued.push(id);
        if let Some(result) = self.remote.answer(op) {
            let at = now.saturating_add(self.remote.latency);
            self.scheduled.insert((at, self.seq), (id, result));
            self.seq += 1;
        }
    }

    /// When the next reply is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.scheduled.first_key_value().map(|((t, _), _)| *t)
    }

    /// Whether replies are still owed.
    pub fn is_idle(&self) -> bool {
        self.scheduled.is_empty()
    }

    /// The next reply due at or before `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<Reply> {
        let (&(t, seq), _) = self.scheduled.first_key_value()?;
        if t > now {
            return None;
        }
        self.scheduled.remove(&(t, seq))
    }
}
