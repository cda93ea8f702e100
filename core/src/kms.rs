//! The KMS v1beta1 and v2 services over decoded requests: dispatch by `:path`, the v2
//! Status/Encrypt/Decrypt and v1 Version/Encrypt/Decrypt handlers, and the set of requests
//! parked on a remote operation.
//!
//! [`KmsService`] takes complete [`rpc::Request`](crate::rpc::Request)s and yields
//! [`Answer`]s, at once or after a remote operation (a *parked* request). Every parked request
//! has a deadline (the earlier of its `grpc-timeout` minus headroom and the remote timeout) by
//! which it is answered: never a hang.
//!
//! # Secrets
//!
//! Request plaintext (v2 Encrypt seeds, v1 DEKs) is copied out of the decoded prost message
//! into a [`SecretBytes`](crate::secret::SecretBytes) at once and the decoded `Bytes` is
//! wiped in place ([`wipe`]); a v1 Encrypt read in place (`request_view`) seals straight from
//! the request buffer. Decrypt opens the ciphertext straight into its zeroizing response
//! buffer ([`plaintext_response`]). Residual risk: prost's own temporaries and any `Bytes`
//! that cannot be reclaimed uniquely are freed without zeroization; the request buffer itself
//! is a `SecretBytes` owned by the transport.

pub mod apiserver_rules;
mod parked;
mod request_view;
mod v1;
mod v2;

use alloc::borrow::Cow;
use alloc::collections::VecDeque;
use alloc::string::String;

use bytes::Bytes;

use crate::config::KmsConfig;
use crate::effect::{Effect, RemoteError, RemoteErrorKind, RemoteReply};
use crate::envelope;
use crate::error::UsageError;
use crate::event::Event;
pub use crate::ids::Method;
use crate::ids::{ConnId, OpId};
use crate::keystore::{self, DecryptLookup, EncryptReadiness, Keystore, Outcome};
use crate::rpc::{Code, Request, Response, StreamId};
use crate::secret::Secret32;
use crate::time::{Timestamp, earliest};
use parked::{ParkedRequest, ParkedSet, RequestCtx, Waiting, Work};
use request_view::{DecryptView, V1EncryptView};

/// The answer to one request, to be sent on `conn`'s `stream`.
pub struct Answer {
    /// The connection the request came on.
    pub conn: ConnId,
    /// Its stream.
    pub stream: StreamId,
    /// The gRPC response.
    pub response: Response,
}

/// The message every crypto failure gets (opaque: no oracle, docs/threat-model.md).
pub(crate) const DECRYPTION_FAILED: &str = "decryption failed";

/// The KMS v1beta1 + v2 services with their keystore. See the module docs.
pub struct KmsService {
    cfg: KmsConfig,
    keystore: Keystore,
    parked: ParkedSet,
    answers: VecDeque<Answer>,
    events: VecDeque<Event>,
}

impl KmsService {
    /// A service with an empty keystore; the first remote Status effect is queued at once.
    pub fn new(cfg: &KmsConfig, rng_seed: [u8; 32], now: Timestamp) -> Self {
        Self {
            cfg: cfg.clone(),
            keystore: Keystore::new(cfg, rng_seed, now),
            parked: ParkedSet::default(),
            answers: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The keystore (for status snapshots and tests).
    pub fn keystore(&self) -> &Keystore {
        &self.keystore
    }

    /// Requests currently parked on a remote operation.
    pub fn parked_requests(&self) -> usize {
        self.parked.len()
    }

    /// Request octets held by requests waiting for a remote operation.
    pub fn parked_bytes(&self) -> usize {
        self.parked.bytes()
    }

    /// Handles one complete request from `conn`. The answer comes out of
    /// [`KmsService::poll_answer`], now or later.
    pub fn handle_request(&mut self, conn: ConnId, req: Request, now: Timestamp) {
        let method = Method::from_path(&req.path);
        let mut ctx = RequestCtx {
            conn,
            stream: req.stream,
            method,
            received: req.received,
            uid: None,
        };
        let msg = req.message.expose();
        let work = match method {
            Method::Unknown => {
                // gRPC: an unknown method is UNIMPLEMENTED (grpc doc/statuscodes.md).
                let resp = Response::error(Code::Unimplemented, "unknown method");
                return self.finish(ctx, resp, now, false);
            }
            Method::V2Status => {
                let resp = v2::status(msg, &self.cfg, &self.keystore, now);
                return self.finish(ctx, resp, now, false);
            }
            Method::V1Version => {
                let resp = v1::version(msg, &self.cfg);
                return self.finish(ctx, resp, now, false);
            }
            Method::V2Encrypt => v2::decode_encrypt(msg).map(|(w, uid)| {
                ctx.uid = Some(uid);
                w
            }),
            Method::V2Decrypt => match DecryptView::parse(msg) {
                Some(view) => {
                    ctx.uid = Some(String::from(view.uid));
                    self.decrypt_view(&view)
                }
                None => v2::decode_decrypt(msg).map(|(w, uid)| {
                    ctx.uid = Some(uid);
                    w
                }),
            },
            Method::V1Encrypt => match V1EncryptView::parse(msg) {
                Some(view) => self.encrypt_v1_view(&view, now),
                None => v1::decode_encrypt(msg),
            },
            Method::V1Decrypt => v1::decode_decrypt(msg),
        };
        let req_deadline = req.deadline;
        drop(req);
        match work {
            Ok(work) => {
                let deadline = self.park_deadline(req_deadline, now);
                self.run(ctx, work, deadline, false, now);
            }
            Err(resp) => self.finish(ctx, resp, now, false),
        }
        self.process_outcomes(now);
    }

    /// v2 Decrypt of a request read in place ([`DecryptView`], the apiserver's shape). With
    /// its local KEK cached (the steady state) the answer comes back at once, as `Err` like
    /// every answer given now, having allocated nothing but its own buffer; otherwise the
    /// owned [`Work`] to run or park.
    fn decrypt_view(&mut self, view: &DecryptView<'_>) -> Result<Work, Response> {
        let wrapped = v2::check_decrypt(view.key_id, view.ciphertext, view.annotations())?;
        let digest = self.keystore.wrapped_digest(wrapped);
        if let DecryptLookup::Hit(kek) = self.keystore.decrypt_lookup(&digest, view.key_id) {
            return Err(v2::decrypt(kek, view.ciphertext, view.key_id, &digest));
        }
        Ok(Work::V2Decrypt {
            ciphertext: Bytes::copy_from_slice(view.ciphertext),
            key_id: String::from(view.key_id),
            wrapped: Bytes::copy_from_slice(wrapped),
            digest,
        })
    }

    /// v1 Encrypt of a request read in place ([`V1EncryptView`]). With a usable local KEK
    /// (the steady state) it is sealed straight from the request buffer and the answer comes
    /// back at once, as `Err` like every answer given now; otherwise the owned [`Work`] (the
    /// plaintext copied into a zeroizing buffer) to run or park.
    fn encrypt_v1_view(
        &mut self,
        view: &V1EncryptView<'_>,
        now: Timestamp,
    ) -> Result<Work, Response> {
        v1::check_version(view.version)?;
        if matches!(
            self.keystore.encrypt_readiness(now),
            EncryptReadiness::Ready
        ) && let Some((cur, rng)) = self.keystore.take_encrypt_use(now)
        {
            return Err(v1::encrypt(cur, rng, view.plain));
        }
        Ok(Work::V1Encrypt {
            plaintext: crate::secret::SecretBytes::copy_from(view.plain),
        })
    }

    /// The client cancelled `stream` (RST_STREAM) before its answer: forget it. A remote
    /// unwrap it waited for keeps running and fills the cache for the retry.
    pub fn handle_cancel(&mut self, conn: ConnId, stream: StreamId) {
        if let Some(p) = self.parked.remove(conn, stream) {
            self.events.push_back(Event::RequestAbandoned {
                conn,
                method: p.ctx.method,
            });
        }
    }

    /// `conn` is gone: forget its parked requests.
    pub fn handle_conn_closed(&mut self, conn: ConnId) {
        for p in self.parked.remove_conn(conn) {
            self.events.push_back(Event::RequestAbandoned {
                conn,
                method: p.ctx.method,
            });
        }
        self.answers.retain(|a| a.conn != conn);
    }

    /// The result of a remote operation (see [`Keystore::handle_remote`]).
    pub fn handle_remote(
        &mut self,
        id: OpId,
        result: Result<RemoteReply, RemoteError>,
        now: Timestamp,
    ) -> Result<(), UsageError> {
        let r = self.keystore.handle_remote(id, result, now);
        self.process_outcomes(now);
        r
    }

    /// Fires due timers: keystore timers, then parked-request deadlines.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.keystore.handle_timeout(now);
        self.process_outcomes(now);
        for p in self.parked.take_expired(now) {
            let resp = if p.client_deadline {
                Response::error(
                    Code::DeadlineExceeded,
                    "deadline reached while waiting for the remote kms",
                )
            } else {
                Response::error(Code::Unavailable, "remote kms did not answer in time")
            };
            self.finish(p.ctx, resp, now, true);
        }
    }

    /// The next answer to send.
    pub fn poll_answer(&mut self) -> Option<Answer> {
        self.answers.pop_front()
    }

    /// The next effect for the driver.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.keystore.poll_effect()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events
            .pop_front()
            .or_else(|| self.keystore.poll_event())
    }

    /// The earliest time [`KmsService::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        earliest(self.keystore.poll_timeout(), self.parked.next_deadline())
    }

    // --- internals ---------------------------------------------------------------------------

    /// The time by which a request parked now must be answered, and whether that is the
    /// client's own deadline (minus headroom) rather than the remote timeout.
    fn park_deadline(&self, client: Option<Timestamp>, now: Timestamp) -> (Timestamp, bool) {
        let by_remote = now.saturating_add(self.cfg.remote_timeout);
        let Some(d) = client else {
            return (by_remote, false);
        };
        let remaining = d.saturating_duration_since(now);
        let headroom = self.cfg.deadline_headroom.min(remaining / 10);
        let by_client = d.saturating_sub(headroom);
        if by_client < by_remote {
            (by_client, true)
        } else {
            (by_remote, false)
        }
    }

    fn finish(&mut self, ctx: RequestCtx, response: Response, now: Timestamp, parked: bool) {
        self.events.push_back(Event::RequestCompleted {
            conn: ctx.conn,
            method: ctx.method,
            code: response.code,
            latency: now.saturating_duration_since(ctx.received),
            parked,
            uid: ctx.uid,
        });
        self.answers.push_back(Answer {
            conn: ctx.conn,
            stream: ctx.stream,
            response,
        });
    }

    fn park(
        &mut self,
        ctx: RequestCtx,
        work: Work,
        waiting: Waiting,
        deadline: Timestamp,
        client_deadline: bool,
        now: Timestamp,
    ) {
        if deadline <= now {
            let resp = Response::error(
                Code::DeadlineExceeded,
                "deadline too close to wait for the remote kms",
            );
            return self.finish(ctx, resp, now, false);
        }
        if self.parked.len() >= self.cfg.max_parked_requests {
            return self.refuse_parked_limit(ctx, now);
        }
        self.parked.insert(ParkedRequest {
            ctx,
            work,
            waiting,
            deadline,
            client_deadline,
        });
    }

    fn refuse_parked_limit(&mut self, ctx: RequestCtx, now: Timestamp) {
        self.events
            .push_back(Event::ParkedLimitReached { conn: ctx.conn });
        let resp = Response::error(
            Code::ResourceExhausted,
            "too many requests waiting for the remote kms",
        );
        self.finish(ctx, resp, now, false);
    }

    /// Does `work` now if its key material is at hand, else parks it.
    fn run(
        &mut self,
        ctx: RequestCtx,
        work: Work,
        (deadline, client_deadline): (Timestamp, bool),
        was_parked: bool,
        now: Timestamp,
    ) {
        match &work {
            Work::V2Encrypt { .. } | Work::V1Encrypt { .. } => {
                match self.keystore.encrypt_readiness(now) {
                    EncryptReadiness::Ready => {
                        let Some((cur, rng)) = self.keystore.take_encrypt_use(now) else {
                            let resp =
                                Response::error(Code::Unavailable, keystore::health::NO_LOCAL_KEK);
                            return self.finish(ctx, resp, now, was_parked);
                        };
                        let resp = match &work {
                            Work::V2Encrypt { plaintext } => v2::encrypt(cur, rng, plaintext),
                            Work::V1Encrypt { plaintext } => {
                                v1::encrypt(cur, rng, plaintext.expose())
                            }
                            _ => Response::error(Code::Internal, "internal error"),
                        };
                        self.finish(ctx, resp, now, was_parked);
                    }
                    EncryptReadiness::Wait => {
                        self.park(ctx, work, Waiting::Kek, deadline, client_deadline, now);
                    }
                    EncryptReadiness::Unavailable(cause) => {
                        let resp = Response::error(Code::Unavailable, cause);
                        self.finish(ctx, resp, now, was_parked);
                    }
                }
            }
            Work::V2Decrypt {
                key_id,
                wrapped,
                digest,
                ..
            }
            | Work::V1Decrypt {
                key_id,
                wrapped,
                digest,
                ..
            } => {
                let resp = match self.keystore.decrypt_lookup(digest, key_id) {
                    DecryptLookup::Hit(kek) => Some(open_work(kek, &work)),
                    DecryptLookup::KeyMismatch => {
                        Some(Response::error(Code::InvalidArgument, DECRYPTION_FAILED))
                    }
                    DecryptLookup::Miss => None,
                };
                if let Some(resp) = resp {
                    return self.finish(ctx, resp, now, false);
                }
                if self.parked.len() >= self.cfg.max_parked_requests {
                    // Refuse before starting remote work nobody could wait for.
                    return self.refuse_parked_limit(ctx, now);
                }
                let digest = *digest;
                let key_id = key_id.clone();
                let wrapped = wrapped.clone();
                match self
                    .keystore
                    .start_unwrap(&key_id, &wrapped[..], digest, now)
                {
                    Ok(_) => {
                        self.park(
                            ctx,
                            work,
                            Waiting::Unwrap(digest),
                            deadline,
                            client_deadline,
                            now,
                        );
                    }
                    Err(keystore::UnwrapRefused::TooManyInFlight) => {
                        let resp = Response::error(
                            Code::Unavailable,
                            "too many remote kms operations in flight",
                        );
                        self.finish(ctx, resp, now, false);
                    }
                }
            }
        }
    }

    fn process_outcomes(&mut self, now: Timestamp) {
        while let Some(outcome) = self.keystore.poll_outcome() {
            match outcome {
                Outcome::EncryptReadinessChanged => {
                    for p in self.parked.take_waiting(Waiting::Kek) {
                        self.run(p.ctx, p.work, (p.deadline, p.client_deadline), true, now);
                    }
                }
                Outcome::Unwrapped { digest, kek } => {
                    for p in self.parked.take_waiting(Waiting::Unwrap(digest)) {
                        let resp = open_work(&kek, &p.work);
                        self.finish(p.ctx, resp, now, true);
                    }
                }
                Outcome::UnwrapFailed {
                    digest,
                    kind,
                    detail,
                } => {
                    for p in self.parked.take_waiting(Waiting::Unwrap(digest)) {
                        self.finish(p.ctx, unwrap_failure(kind, &detail), now, true);
                    }
                }
            }
        }
    }
}

/// Opens a decrypt request's ciphertext with its unwrapped local KEK.
fn open_work(kek: &Secret32, work: &Work) -> Response {
    match work {
        Work::V2Decrypt {
            ciphertext,
            key_id,
            digest,
            ..
        } => v2::decrypt(kek, ciphertext, key_id, digest),
        Work::V1Decrypt { cipher, digest, .. } => v1::decrypt(kek, cipher, digest),
        Work::V2Encrypt { .. } | Work::V1Encrypt { .. } => {
            Response::error(Code::Internal, "internal error")
        }
    }
}

/// The longest remote detail copied into a Decrypt error message.
const MAX_ERROR_DETAIL: usize = 512;

/// The answer to a Decrypt whose remote unwrap failed: transient failures are UNAVAILABLE
/// (the apiserver retries); a blob the remote cannot open is the opaque decryption failure; a
/// key version that is gone is FAILED_PRECONDITION with the remote's detail, which names the
/// version and the fix (it holds no secrets: `RemoteError::detail`'s contract).
fn unwrap_failure(kind: RemoteErrorKind, detail: &str) -> Response {
    let cause: Cow<'static, str> = Cow::Borrowed(keystore::health::remote_cause(kind));
    match kind {
        RemoteErrorKind::Corrupt => Response::error(Code::InvalidArgument, DECRYPTION_FAILED),
        RemoteErrorKind::KeyVersionMissing if !detail.is_empty() => {
            let mut end = detail.len().min(MAX_ERROR_DETAIL);
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            let detail = detail.get(..end).unwrap_or_default();
            Response::error(
                Code::FailedPrecondition,
                Cow::Owned(alloc::format!("{cause}: {detail}")),
            )
        }
        k if k.is_transient() => Response::error(Code::Unavailable, cause),
        _ => Response::error(Code::FailedPrecondition, cause),
    }
}

/// gRPC: a request message that does not decode is INVALID_ARGUMENT.
pub(crate) fn malformed() -> Response {
    Response::error(Code::InvalidArgument, "malformed request message")
}

/// Best-effort wipe of a decoded plaintext field. prost decodes `bytes` fields into a fresh,
/// uniquely owned `Bytes`, which is turned back into a mutable buffer and zeroized. (Should
/// the buffer be shared, it cannot be wiped; `bytes::Bytes` does not zeroize on drop, which is
/// the residual risk documented in `docs`.)
pub(crate) fn wipe(b: Bytes) {
    if let Ok(mut m) = b.try_into_mut() {
        zeroize::Zeroize::zeroize(m.as_mut());
    }
}

/// Appends protobuf field `field` (wire type 2, length-delimited) holding `value`; proto3
/// omits empty fields.
pub(crate) fn put_bytes_field(out: &mut alloc::vec::Vec<u8>, field: u8, value: &[u8]) {
    if value.is_empty() {
        return;
    }
    put_field_head(out, field, value.len());
    out.extend_from_slice(value);
}

/// Appends the tag (wire type 2) and varint length of a length-delimited field `field` whose
/// `len` bytes the caller appends next.
pub(crate) fn put_field_head(out: &mut alloc::vec::Vec<u8>, field: u8, len: usize) {
    out.push((field << 3) | 2);
    let mut len = len as u64;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
}

/// A response message whose only field is `bytes plaintext = 1` (v2 `DecryptResponse` and v1
/// `DecryptResponse.plain` share this shape), with the `plain_len` plaintext bytes written by
/// `open` straight into the zeroizing response buffer: one allocation, and the plaintext never
/// sits anywhere else. `open` must append exactly `plain_len` bytes, or fail.
pub(crate) fn plaintext_response(
    plain_len: usize,
    open: impl FnOnce(&mut alloc::vec::Vec<u8>) -> Result<(), envelope::OpenError>,
) -> Result<crate::secret::SecretBytes, envelope::OpenError> {
    let mut out = zeroize::Zeroizing::new(alloc::vec::Vec::with_capacity(plain_len + 11));
    if plain_len > 0 {
        put_field_head(&mut out, 1, plain_len);
    }
    let head = out.len();
    open(&mut out)?;
    if out.len() - head != plain_len {
        return Err(envelope::OpenError);
    }
    Ok(crate::secret::SecretBytes::new(core::mem::take(&mut *out)))
}
