//! One request stream's data and buffers (its state machine is the stream table's).

use alloc::borrow::Cow;
use alloc::vec::Vec;

use zeroize::{Zeroize, Zeroizing};

use super::flow::StreamWindows;
use crate::grpc::PREFIX_LEN;
use crate::health::HealthWarning;
use crate::secret::SecretBytes;
use crate::time::Timestamp;

/// The states a client-initiated stream passes through on our side (§5.1). Idle and closed
/// streams are not stored: idle ones do not exist yet, closed ones are forgotten (but for a
/// bounded memory of who closed them). Transitions: `StreamTable::transition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamState {
    /// "open": request HEADERS seen, request body still arriving.
    ReceivingRequest,
    /// "half-closed (remote)": request complete and handed to the service; we owe a response.
    AwaitingResponse,
    /// "half-closed (remote)": response queued, flow-controlled DATA and trailers being sent.
    SendingResponse,
}

/// Per-stream data.
pub(crate) struct Stream {
    /// Changed only by `StreamTable::transition`.
    pub(crate) state: StreamState,
    pub(crate) windows: StreamWindows,
    pub(crate) path: Cow<'static, str>,
    pub(crate) deadline: Option<Timestamp>,
    /// The request's `content-length`, if sent.
    pub(crate) content_length: Option<u64>,
    /// Request body (gRPC prefix + message) received so far. May hold plaintext.
    pub(crate) body: Zeroizing<Vec<u8>>,
    /// The response message being sent (OK responses); zeroized when dropped.
    pub(crate) response: Option<SecretBytes>,
    /// The response's 5-octet gRPC prefix, sent before `response`.
    pub(crate) prefix: [u8; 5],
    /// Octets of prefix + message already sent as DATA.
    pub(crate) out_pos: usize,
    /// The response's warning trailer, sent after `grpc-status` (OK responses).
    pub(crate) warning: Option<HealthWarning>,
}

impl Stream {
    pub(crate) fn new(
        windows: StreamWindows,
        path: Cow<'static, str>,
        deadline: Option<Timestamp>,
    ) -> Self {
        Self {
            state: StreamState::ReceivingRequest,
            windows,
            path,
            deadline,
            content_length: None,
            body: Zeroizing::new(Vec::new()),
            response: None,
            prefix: [0; 5],
            out_pos: 0,
            warning: None,
        }
    }
}

/// Appends `data` to a request body that may hold plaintext, never leaving a copy behind.
///
/// `Vec`'s own growth would free the old allocation without wiping it. Here growth moves the
/// bytes into a new allocation and wipes the old one first. Once the 5-byte gRPC prefix is
/// known the new capacity is exactly prefix + declared length (capped by `limit`) when that
/// is within a few times what arrived, so a request whose first DATA frame carries the prefix
/// allocates once; otherwise capacity doubles (a declared length alone never reserves memory
/// the peer has not sent).
pub(crate) fn append_wiping(body: &mut Zeroizing<Vec<u8>>, data: &[u8], limit: usize) {
    let needed = body.len() + data.len();
    if needed > body.capacity() {
        let mut prefix = [0u8; PREFIX_LEN];
        for (dst, src) in prefix.iter_mut().zip(body.iter().chain(data)) {
            *dst = *src;
        }
        let declared = (needed >= PREFIX_LEN).then(|| {
            PREFIX_LEN + u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize
        });
        let doubled = needed.max(body.capacity().saturating_mul(2));
        let cap = match declared {
            Some(total) if total <= limit && total <= doubled.saturating_mul(2).max(16 << 10) => {
                total.max(needed)
            }
            _ => doubled.min(limit.max(needed)),
        };
        let mut grown = Vec::with_capacity(cap);
        grown.extend_from_slice(body);
        body.zeroize();
        **body = grown;
    }
    body.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_wiping_sizes_exactly_once_the_prefix_is_known() {
        let mut body = Zeroizing::new(Vec::new());
        append_wiping(&mut body, &[0, 0, 0, 0, 100], 1 << 20);
        assert_eq!(body.capacity(), 105);
        for _ in 0..100 {
            append_wiping(&mut body, &[7], 1 << 20);
        }
        assert_eq!((body.len(), body.capacity()), (105, 105));
    }

    #[test]
    fn append_wiping_never_reserves_far_beyond_what_arrived() {
        // Declares 4 MiB, sends 10 octets: capacity stays small.
        let mut body = Zeroizing::new(Vec::new());
        append_wiping(&mut body, &[0, 0, 0x40, 0, 0, 1, 2, 3, 4, 5], 5 + (4 << 20));
        assert!(body.capacity() <= 16 << 10, "{}", body.capacity());
        let chunk = [9u8; 1000];
        for _ in 0..1000 {
            append_wiping(&mut body, &chunk, 5 + (4 << 20));
            assert!(body.capacity() <= (2 * body.len()).max(64 << 10));
        }
        assert_eq!(body.len(), 10 + 1_000_000);
        assert!(body[10..].iter().all(|&b| b == 9));
        assert_eq!(&body[..10], &[0, 0, 0x40, 0, 0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn append_wiping_without_complete_prefix() {
        let mut body = Zeroizing::new(Vec::new());
        for b in [0u8, 0, 0, 0, 3, 1, 2, 3] {
            append_wiping(&mut body, &[b], 100);
        }
        assert_eq!(&body[..], &[0, 0, 0, 0, 3, 1, 2, 3]);
        assert!(body.capacity() <= 100);
    }
}
