//! The keystore's remote operations in flight: what each one is for, its deadline, and the
//! bounded memory of abandoned ids that tells a late reply from a duplicate or unknown one.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use super::Digest;
use crate::effect::{OpId, RemoteOpKind};
use crate::error::UsageError;
use crate::event::RotationReason;
use crate::secret::Secret32;
use crate::time::Timestamp;

/// Abandoned operation ids remembered so that their late replies are told from duplicates.
const ABANDONED_MEMORY: usize = 1024;

/// What a remote operation was issued for (and what its reply completes).
pub(super) enum Purpose {
    Status,
    Wrap {
        key_id: String,
        kek: Secret32,
        reason: RotationReason,
    },
    Unwrap {
        digest: Digest,
        key_id: String,
    },
}

/// One remote operation in flight.
pub(super) struct PendingOp {
    pub(super) purpose: Purpose,
    pub(super) started: Timestamp,
    pub(super) deadline: Timestamp,
}

impl PendingOp {
    /// The operation's kind, for events.
    pub(super) fn kind(&self) -> RemoteOpKind {
        match self.purpose {
            Purpose::Status => RemoteOpKind::Status,
            Purpose::Wrap { .. } => RemoteOpKind::Wrap,
            Purpose::Unwrap { .. } => RemoteOpKind::Unwrap,
        }
    }
}

/// A reply's id matched no operation in flight.
pub(super) enum NotPending {
    /// The keystore gave up on it (deadline): the reply is late and is dropped.
    Late,
    /// A repeated or never-issued id: the driver broke its contract.
    Misuse(UsageError),
}

/// Operations in flight by id. Ids are issued in increasing order and never reused; an
/// abandoned id is remembered (the last [`ABANDONED_MEMORY`] of them) until its late reply
/// comes.
pub(super) struct RemoteOps {
    pending: BTreeMap<OpId, PendingOp>,
    abandoned: BTreeSet<OpId>,
    abandoned_order: VecDeque<OpId>,
    next: u64,
}

impl RemoteOps {
    pub(super) fn new() -> Self {
        Self {
            pending: BTreeMap::new(),
            abandoned: BTreeSet::new(),
            abandoned_order: VecDeque::new(),
            next: 0,
        }
    }

    /// Operations in flight.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// The deadlines of the operations in flight.
    pub(super) fn deadlines(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.pending.values().map(|op| op.deadline)
    }

    /// Records a new operation for `purpose` and returns its fresh id.
    pub(super) fn start(&mut self, purpose: Purpose, now: Timestamp, deadline: Timestamp) -> OpId {
        let id = OpId(self.next);
        self.next += 1;
        let op = PendingOp {
            purpose,
            started: now,
            deadline,
        };
        self.pending.insert(id, op);
        id
    }

    /// The operation `id` answers, which is no longer in flight; or why there is none.
    pub(super) fn complete(&mut self, id: OpId) -> Result<PendingOp, NotPending> {
        if let Some(op) = self.pending.remove(&id) {
            return Ok(op);
        }
        if self.abandoned.remove(&id) {
            self.abandoned_order.retain(|x| *x != id);
            return Err(NotPending::Late);
        }
        Err(NotPending::Misuse(if id.0 < self.next {
            UsageError::DuplicateRemoteReply(id)
        } else {
            UsageError::UnknownRemoteOp(id)
        }))
    }

    /// Gives up on every operation whose deadline is at or before `now`, in id order, and
    /// remembers their ids as abandoned.
    pub(super) fn expire(&mut self, now: Timestamp) -> Vec<(OpId, PendingOp)> {
        let due: Vec<OpId> = self
            .pending
            .iter()
            .filter(|(_, op)| op.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut expired = Vec::with_capacity(due.len());
        for id in due {
            if let Some(op) = self.pending.remove(&id) {
                self.remember_abandoned(id);
                expired.push((id, op));
            }
        }
        expired
    }

    fn remember_abandoned(&mut self, id: OpId) {
        if self.abandoned.insert(id) {
            self.abandoned_order.push_back(id);
        }
        while self.abandoned_order.len() > ABANDONED_MEMORY {
            if let Some(old) = self.abandoned_order.pop_front() {
                self.abandoned.remove(&old);
            }
        }
    }
}
