//! The KMS v1beta1 and v2 services over decoded requests: dispatch by `:path`, the v2
//! Status/Encrypt/Decrypt and v1 Version/Encrypt/Decrypt handlers, and the set of requests
//! parked on a remote operation.
//!
//! [`KmsService`] takes complete [`rpc::Request`](crate::rpc::Request)s and yields
//! [`Answer`]s, at once or after a remote operation (a *parked* request). Every parked request
//! has a deadline (the earlier of its `grpc-timeout` minus headroom and the remote timeout) by
//! which it is answered: never a hang.
//!
//! # One path per method
//!
//! Every request message is decoded with prost (`v1`, `v2`) into a `Step`: an answer now
//! (Status, Version, anything refused), or key-dependent `Work` that [`KmsService`] runs at
//! once when its KEK is at hand (the steady state) or parks until it is. Running and the
//! answers are the same code either way (`work`); responses are written by hand (`wire`).
//!
//! # Secrets
//!
//! Request plaintext (v2 Encrypt seeds, v1 DEKs) is copied out of the decoded prost message
//! into a [`SecretBytes`](crate::secret::SecretBytes) at once and the decoded `Bytes` is
//! wiped in place. Decrypt opens the ciphertext straight into its zeroizing response buffer.
//! Residual risk: prost's own temporaries and any `Bytes` that cannot be reclaimed uniquely
//! are freed without zeroization; the request buffer itself is a `SecretBytes` owned by the
//! transport.

pub(crate) mod apiserver_rules;
mod parked;
mod v1;
mod v2;
mod wire;
mod work;

use alloc::borrow::Cow;
use alloc::collections::VecDeque;

use crate::config::KmsConfig;
use crate::effect::{Effect, RemoteError, RemoteErrorKind, RemoteReply};
use crate::error::UsageError;
use crate::event::Event;
use crate::health::HealthWarning;
use crate::ids::{ConnId, Method, OpId};
use crate::keystore::{self, DecryptLookup, EncryptReadiness, Keystore, Outcome};
use crate::rpc::{Code, Request, Response, StreamId};
use crate::secret::SecretBytes;
use crate::time::{Timestamp, earliest};
use parked::{ParkedRequest, ParkedSet, RequestCtx, Waiting};
use work::Work;

/// The answer to one request, to be sent on `conn`'s `stream`.
pub struct Answer {
    /// The connection the request came on.
    pub conn: ConnId,
    /// Its stream.
    pub stream: StreamId,
    /// The gRPC response.
    pub response: Response,
}

/// What a decoded request needs next.
enum Step {
    /// Its answer, now: Status, Version, and every refused request.
    Answer(Response),
    /// Key-dependent work: done now if its KEK is at hand, else parked until it is.
    Run(Work),
}

impl Step {
    /// A decoded request's work, or the answer that refuses it.
    fn of(decoded: Result<Work, Response>) -> Self {
        decoded.map_or_else(Self::Answer, Self::Run)
    }
}

/// The KMS v1beta1 + v2 services with their keystore. See the module docs.
pub struct KmsService {
    cfg: KmsConfig,
    keystore: Keystore,
    parked: ParkedSet,
    answers: VecDeque<Answer>,
    events: VecDeque<Event>,
    /// Sent with every v2 Status answer ([`KmsService::set_health_warning`]).
    health_warning: Option<HealthWarning>,
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
            health_warning: None,
        }
    }

    /// Every v2 Status answered from now on carries `warning` as its extra trailer (`None`:
    /// none, the default). Health and healthz are unaffected.
    pub fn set_health_warning(&mut self, warning: Option<HealthWarning>) {
        self.health_warning = warning;
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
        let (deadline, msg) = (req.deadline, req.message);
        let ks = &self.keystore;
        let digest = |wrapped: &[u8]| ks.wrapped_digest(wrapped);
        let uid = &mut ctx.uid;
        // Encrypt and Decrypt requests move into `Bytes`, which prost decodes in place. An
        // Encrypt wipes it once its plaintext is copied out; a Decrypt request holds nothing
        // secret (ciphertext, key id, wrapped KEK: all stored in etcd).
        let step = match method {
            // gRPC: an unknown method is UNIMPLEMENTED (grpc doc/statuscodes.md).
            Method::Unknown => Step::Answer(Response::error(Code::Unimplemented, "unknown method")),
            Method::V2Status => {
                let warning = self.health_warning.as_ref();
                Step::Answer(v2::status(msg.expose(), &self.cfg, ks, warning, now))
            }
            Method::V1Version => Step::Answer(v1::version(msg.expose(), &self.cfg)),
            Method::V2Encrypt => {
                Step::of(v2::decode_encrypt(in_place(msg), uid).map(Work::Encrypt))
            }
            Method::V1Encrypt => Step::of(v1::decode_encrypt(in_place(msg)).map(Work::Encrypt)),
            Method::V2Decrypt => {
                Step::of(v2::decode_decrypt(in_place(msg), digest, uid).map(Work::Decrypt))
            }
            Method::V1Decrypt => {
                Step::of(v1::decode_decrypt(in_place(msg), digest).map(Work::Decrypt))
            }
        };
        match step {
            Step::Answer(resp) => self.finish(ctx, resp, now, false),
            Step::Run(work) => {
                let deadline = self.park_deadline(deadline, now);
                self.run(ctx, work, deadline, false, now);
                self.process_outcomes(now);
            }
        }
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

    /// The result of a remote operation (see `Keystore::handle_remote`).
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
        match work {
            Work::Encrypt(w) => match self.keystore.encrypt_readiness(now) {
                EncryptReadiness::Ready => {
                    let resp = match self.keystore.take_encrypt_use(now) {
                        Some((cur, rng)) => w.seal(cur, rng),
                        None => Response::error(Code::Unavailable, crate::health::NO_LOCAL_KEK),
                    };
                    self.finish(ctx, resp, now, was_parked);
                }
                EncryptReadiness::Wait => {
                    let work = Work::Encrypt(w);
                    self.park(ctx, work, Waiting::Kek, deadline, client_deadline, now);
                }
                EncryptReadiness::Unavailable(cause) => {
                    let resp = Response::error(Code::Unavailable, cause);
                    self.finish(ctx, resp, now, was_parked);
                }
            },
            Work::Decrypt(w) => {
                let resp = match self.keystore.decrypt_lookup(&w.digest, &w.key_id) {
                    DecryptLookup::Hit(kek) => w.open(kek),
                    DecryptLookup::KeyMismatch => wire::decryption_failed(),
                    DecryptLookup::Miss => {
                        return self.unwrap_and_park(ctx, w, deadline, client_deadline, now);
                    }
                };
                self.finish(ctx, resp, now, false);
            }
        }
    }

    /// Starts (or joins) the remote unwrap a Decrypt needs and parks it until then.
    fn unwrap_and_park(
        &mut self,
        ctx: RequestCtx,
        w: work::DecryptWork,
        deadline: Timestamp,
        client_deadline: bool,
        now: Timestamp,
    ) {
        if self.parked.len() >= self.cfg.max_parked_requests {
            // Refuse before starting remote work nobody could wait for.
            return self.refuse_parked_limit(ctx, now);
        }
        match self
            .keystore
            .start_unwrap(&w.key_id, &w.wrapped, w.digest, now)
        {
            Ok(_) => {
                let waiting = Waiting::Unwrap(w.digest);
                let work = Work::Decrypt(w);
                self.park(ctx, work, waiting, deadline, client_deadline, now);
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
                        // Only Decrypts wait for an unwrap.
                        if let Work::Decrypt(w) = &p.work {
                            self.finish(p.ctx, w.open(&kek), now, true);
                        }
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

/// A request buffer as `Bytes` (no copy) for prost to decode in place. `Bytes` does not wipe
/// on drop: the caller wipes it (`wire::wipe`) if it held a secret.
fn in_place(message: SecretBytes) -> bytes::Bytes {
    bytes::Bytes::from(core::mem::take(&mut *message.into_zeroizing()))
}

/// The longest remote detail copied into a Decrypt error message.
const MAX_ERROR_DETAIL: usize = 512;

/// The answer to a Decrypt whose remote unwrap failed: transient failures are UNAVAILABLE
/// (the apiserver retries); a blob the remote cannot open is the opaque decryption failure; a
/// key version that is gone is FAILED_PRECONDITION with the remote's detail, which names the
/// version and the fix (it holds no secrets: `RemoteError::detail`'s contract).
fn unwrap_failure(kind: RemoteErrorKind, detail: &str) -> Response {
    let cause: Cow<'static, str> = Cow::Borrowed(crate::health::remote_cause(kind));
    match kind {
        RemoteErrorKind::Corrupt => wire::decryption_failed(),
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
