//! A bounded memory of recently closed streams (RFC 9113 §5.1 "closed"): frames on a stream
//! we reset must be ignored, while frames after the peer's END_STREAM or RST_STREAM are
//! STREAM_CLOSED errors. Older closed streams are forgotten (the memory is capped).

use alloc::collections::VecDeque;

use crate::rpc::StreamId;

/// How many closed streams are remembered.
const CAPACITY: usize = 64;

/// Who closed a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClosedBy {
    /// We sent RST_STREAM: the peer may still have frames in flight, which are ignored.
    UsWithReset,
    /// Normal completion or the peer's RST_STREAM: further frames are STREAM_CLOSED.
    Other,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct ClosedStreams {
    recent: VecDeque<(StreamId, ClosedBy)>,
}

impl ClosedStreams {
    /// Records that `id` closed; the oldest record goes when the memory is full.
    pub(crate) fn insert(&mut self, id: StreamId, by: ClosedBy) {
        if let Some(entry) = self.recent.iter_mut().find(|(s, _)| *s == id) {
            entry.1 = by;
            return;
        }
        if self.recent.len() >= CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back((id, by));
    }

    /// How `id` closed, if it is remembered.
    pub(crate) fn find(&self, id: StreamId) -> Option<ClosedBy> {
        self.recent
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, by)| *by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_latest_and_forgets_the_oldest() {
        let mut c = ClosedStreams::default();
        c.insert(1, ClosedBy::Other);
        c.insert(1, ClosedBy::UsWithReset);
        assert_eq!(c.find(1), Some(ClosedBy::UsWithReset));
        for id in 0..CAPACITY as u32 {
            c.insert(3 + 2 * id, ClosedBy::Other);
        }
        assert_eq!(c.find(1), None);
        assert_eq!(c.find(3), Some(ClosedBy::Other));
        assert_eq!(c.recent.len(), CAPACITY);
    }
}
