//! The local key hierarchy's state machine: the current local KEK, its rotation, a bounded
//! cache of unwrapped local KEKs, the remote KEK's status, and every remote operation in
//! flight (single-flight unwraps, deadlines, late and duplicate replies).
//!
//! The keystore never blocks: it asks its owner for remote work through [`Effect`]s and tells
//! the KMS service what changed through [`Outcome`]s. Invariants:
//! - The key id Status advertises ([`Keystore::advertised_key_id`]) is always the remote key id
//!   of the installed current local KEK, the same one Encrypt returns (docs/protocol.md §4).
//!   A new remote key id is adopted only once a local KEK wrapped under it is installed.
//! - At most one Status and one Wrap are in flight; at most one Unwrap per wrapped blob.
//! - Every remote operation has a deadline; past it the keystore gives up (and says so).

mod cache;
mod missing;
mod ops;
mod verdict;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::KmsConfig;
use crate::effect::{Effect, OpId, RemoteError, RemoteErrorKind, RemoteOp, RemoteReply};
use crate::error::UsageError;
use crate::event::{Event, RotationReason};
use crate::health::{self, Health};
use crate::rng::Rng;
use crate::secret::Secret32;
use crate::time::Timestamp;
use cache::KekCache;
use missing::MissingVersions;
use ops::{NotPending, Purpose, RemoteOps};

/// SHA-256 digest of a wrapped local KEK (`envelope::wrapped_kek_digest`).
pub(crate) type Digest = [u8; 32];

/// Largest wrapped-KEK blob accepted from the remote (it must fit a v2 annotation and a v1
/// ciphertext with room to spare).
pub(crate) const MAX_WRAPPED_LEN: usize = 4096;
/// Largest remote key id accepted (the apiserver's `KeyIDMaxSize`, docs/protocol.md §4).
pub(crate) const MAX_KEY_ID_LEN: usize = 1024;

/// The installed local KEK that Encrypt uses.
pub struct LocalKek {
    kek: Secret32,
    wrapped: Vec<u8>,
    digest: Digest,
    key_id: String,
    created_at: Timestamp,
    uses: u64,
}

impl LocalKek {
    /// The local KEK itself.
    pub fn kek(&self) -> &Secret32 {
        &self.kek
    }
    /// The remote-wrapped blob (non-secret; goes into annotations / v1 ciphertexts).
    pub fn wrapped(&self) -> &[u8] {
        &self.wrapped
    }
    /// Digest of [`LocalKek::wrapped`].
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    /// The remote key id it is wrapped under.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// Encryptions done under it so far.
    pub fn uses(&self) -> u64 {
        self.uses
    }
}

/// Something the KMS service must react to (parked requests may now be answerable).
pub enum Outcome {
    /// Whether Encrypt can proceed changed (a KEK was installed, or a wrap/status failed).
    EncryptReadinessChanged,
    /// An unwrap finished: the KEK for `digest` (also inserted in the cache).
    Unwrapped {
        /// The wrapped blob's digest.
        digest: Digest,
        /// The unwrapped local KEK.
        kek: Secret32,
    },
    /// An unwrap failed or timed out.
    UnwrapFailed {
        /// The wrapped blob's digest.
        digest: Digest,
        /// Why.
        kind: RemoteErrorKind,
        /// The remote's operator-facing detail (no secrets; empty for a timeout).
        detail: String,
    },
}

/// Whether Encrypt can use a local KEK right now.
pub enum EncryptReadiness {
    /// Yes.
    Ready,
    /// Not yet, but a remote operation under way may fix that: park the request.
    Wait,
    /// No, and nothing under way will change it soon: fail with this cause.
    Unavailable(&'static str),
}

/// Result of looking a wrapped KEK up locally for Decrypt.
pub enum DecryptLookup<'a> {
    /// The unwrapped KEK is at hand.
    Hit(&'a Secret32),
    /// Known under a different remote key id than the request names.
    KeyMismatch,
    /// Needs a remote unwrap.
    Miss,
}

/// Why an unwrap could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnwrapRefused {
    /// `max_in_flight_remote` operations are outstanding.
    TooManyInFlight,
}

/// What a pending remote operation is for.
/// What the keystore knows of the remote KEK's status.
struct RemoteStatus {
    /// Key id from the last successful Status (not advertised until a KEK is wrapped under it).
    key_id: Option<String>,
    last_success: Option<Timestamp>,
    /// Set when the last Status attempt failed.
    last_error: Option<RemoteErrorKind>,
    /// healthz naming what is gone when the last Status failed with `key_version_missing`
    /// (`<cause>: <the remote's detail>`, bounded); empty otherwise.
    missing_named: String,
    failures: u32,
    next_at: Timestamp,
    in_flight: Option<OpId>,
}

/// The local-KEK wrap (rotation) machine.
enum WrapState {
    /// No wrap in flight; a new one may start at `retry_at`.
    Idle {
        retry_at: Timestamp,
        failures: u32,
        last_error: Option<RemoteErrorKind>,
    },
    /// A wrap is in flight; `failures` counts the consecutive failed attempts before it.
    AwaitingWrap { failures: u32 },
}

/// See the module docs.
pub struct Keystore {
    cfg: KmsConfig,
    rng: Rng,
    current: Option<LocalKek>,
    cache: KekCache,
    remote: RemoteStatus,
    wrap: WrapState,
    ops: RemoteOps,
    unwrap_flights: BTreeMap<Digest, OpId>,
    health: Health,
    missing: MissingVersions,
    last_now: Timestamp,
    effects: VecDeque<Effect>,
    events: VecDeque<Event>,
    outcomes: VecDeque<Outcome>,
}

impl Keystore {
    /// A keystore with no local KEK; the first remote Status is issued at once.
    pub fn new(cfg: &KmsConfig, rng_seed: [u8; 32], now: Timestamp) -> Self {
        let mut ks = Self {
            cfg: cfg.clone(),
            rng: Rng::from_seed(rng_seed),
            current: None,
            cache: KekCache::new(cfg.unwrap_cache_capacity),
            remote: RemoteStatus {
                key_id: None,
                last_success: None,
                last_error: None,
                missing_named: String::new(),
                failures: 0,
                next_at: now,
                in_flight: None,
            },
            wrap: WrapState::Idle {
                retry_at: now,
                failures: 0,
                last_error: None,
            },
            ops: RemoteOps::new(),
            unwrap_flights: BTreeMap::new(),
            health: Health::failing(health::AWAITING_STATUS),
            missing: MissingVersions::new(cfg.missing_versions_remembered),
            last_now: now,
            effects: VecDeque::new(),
            events: VecDeque::new(),
            outcomes: VecDeque::new(),
        };
        ks.handle_timeout(now);
        ks
    }

    /// The key id v2 Status reports: the current local KEK's remote key id, or `""` before the
    /// first KEK is installed (healthz is then not `ok`).
    pub fn advertised_key_id(&self) -> &str {
        self.current.as_ref().map_or("", |c| c.key_id.as_str())
    }

    /// Distinct remote key versions remembered as missing (an unwrap under them answered
    /// `key_version_missing` and none has succeeded since).
    pub fn missing_versions(&self) -> usize {
        self.missing.len()
    }

    /// The installed local KEK, if any.
    pub fn current(&self) -> Option<&LocalKek> {
        self.current.as_ref()
    }

    /// Number of unwrapped KEKs in the cache.
    pub fn cached_keks(&self) -> usize {
        self.cache.len()
    }

    /// Remote operations outstanding.
    pub fn remote_in_flight(&self) -> usize {
        self.ops.len()
    }

    /// Whether Encrypt can proceed now; may start a rotation as a side effect.
    pub fn encrypt_readiness(&mut self, now: Timestamp) -> EncryptReadiness {
        self.observe(now);
        self.maybe_rotate(now);
        let ready = if self.current.as_ref().is_some_and(|c| self.usable(c, now)) {
            EncryptReadiness::Ready
        } else if matches!(self.wrap, WrapState::AwaitingWrap { .. })
            || (self.remote.in_flight.is_some() && self.remote.last_success.is_none())
        {
            EncryptReadiness::Wait
        } else {
            EncryptReadiness::Unavailable(self.unavailable_cause(now))
        };
        self.refresh_health(now);
        ready
    }

    /// Takes one use of the current local KEK for an encryption. Call only right after
    /// [`Keystore::encrypt_readiness`] returned `Ready`; returns the KEK and the RNG.
    pub fn take_encrypt_use(&mut self, now: Timestamp) -> Option<(&LocalKek, &mut Rng)> {
        let cur = self.current.as_mut()?;
        cur.uses = cur.uses.saturating_add(1);
        let needs_rotation = cur.uses >= self.cfg.suggested_uses;
        if needs_rotation {
            self.maybe_rotate(now);
        }
        let cur = self.current.as_ref()?;
        Some((cur, &mut self.rng))
    }

    /// `envelope::wrapped_kek_digest(wrapped)`, without hashing when `wrapped` is the current
    /// local KEK's own blob (the steady state of Decrypt): equal bytes have the equal digest.
    /// The wrapped blob is public (it is stored in etcd), so comparing it is not a secret
    /// comparison.
    pub fn wrapped_digest(&self, wrapped: &[u8]) -> Digest {
        match &self.current {
            Some(cur) if cur.wrapped == wrapped => cur.digest,
            _ => crate::envelope::wrapped_kek_digest(wrapped),
        }
    }

    /// Looks up the unwrapped KEK for `digest` (wrapped under `key_id`) without remote work.
    pub fn decrypt_lookup(&mut self, digest: &Digest, key_id: &str) -> DecryptLookup<'_> {
        if let Some(cur) = &self.current
            && &cur.digest == digest
        {
            return if cur.key_id == key_id {
                DecryptLookup::Hit(&cur.kek)
            } else {
                DecryptLookup::KeyMismatch
            };
        }
        match self.cache.get(digest, key_id) {
            Some(Ok(kek)) => DecryptLookup::Hit(kek),
            Some(Err(())) => DecryptLookup::KeyMismatch,
            None => DecryptLookup::Miss,
        }
    }

    /// Starts (or joins) the single remote unwrap of `wrapped`. Returns its op id and whether
    /// an unwrap was already in flight (joined).
    pub fn start_unwrap(
        &mut self,
        key_id: &str,
        wrapped: &[u8],
        digest: Digest,
        now: Timestamp,
    ) -> Result<(OpId, bool), UnwrapRefused> {
        self.observe(now);
        if let Some(&id) = self.unwrap_flights.get(&digest) {
            self.events.push_back(Event::UnwrapJoined { id });
            return Ok((id, true));
        }
        if self.ops.len() >= self.cfg.max_in_flight_remote {
            return Err(UnwrapRefused::TooManyInFlight);
        }
        let op = RemoteOp::Unwrap {
            key_id: String::from(key_id),
            wrapped: wrapped.to_vec(),
        };
        let purpose = Purpose::Unwrap {
            digest,
            key_id: String::from(key_id),
        };
        let id = self.issue(op, purpose, now);
        self.unwrap_flights.insert(digest, id);
        Ok((id, false))
    }

    /// The answer to the remote operation `id`. Late replies (the keystore gave up on `id`)
    /// are dropped with an event; unknown or repeated ids are a [`UsageError`].
    pub fn handle_remote(
        &mut self,
        id: OpId,
        result: Result<RemoteReply, RemoteError>,
        now: Timestamp,
    ) -> Result<(), UsageError> {
        self.observe(now);
        let op = match self.ops.complete(id) {
            Ok(op) => op,
            Err(NotPending::Late) => {
                self.events.push_back(Event::LateRemoteReplyDropped { id });
                return Ok(());
            }
            Err(NotPending::Misuse(e)) => return Err(e),
        };
        let kind = op.kind();
        self.events.push_back(Event::RemoteCompleted {
            id,
            op: kind,
            error: result.as_ref().err().map(|e| e.kind),
            latency: now.saturating_duration_since(op.started),
        });
        let mut misuse = Ok(());
        match (op.purpose, result) {
            (Purpose::Status, Ok(RemoteReply::Status { key_id })) => {
                self.status_succeeded(key_id, now);
            }
            (
                Purpose::Wrap {
                    key_id,
                    kek,
                    reason,
                },
                Ok(RemoteReply::Wrapped { wrapped }),
            ) => {
                self.wrap_succeeded(key_id, kek, wrapped, reason, now);
            }
            (Purpose::Unwrap { digest, key_id }, Ok(RemoteReply::Unwrapped { kek })) => {
                self.unwrap_flights.remove(&digest);
                self.missing.restored(&key_id);
                self.cache.insert(digest, key_id, kek.duplicate());
                self.outcomes.push_back(Outcome::Unwrapped { digest, kek });
            }
            (purpose, Err(e)) => self.op_failed(&purpose, e.kind, &e.detail, now),
            (purpose, Ok(_)) => {
                misuse = Err(UsageError::MismatchedRemoteReply(id));
                self.op_failed(&purpose, RemoteErrorKind::Other, "", now);
            }
        }
        self.maybe_rotate(now);
        self.refresh_health(now);
        misuse
    }

    /// Fires due timers: the periodic remote Status, remote deadlines, rotation retries and
    /// health changes. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.observe(now);
        for (id, op) in self.ops.expire(now) {
            self.events.push_back(Event::RemoteAbandoned {
                id,
                op: op.kind(),
                timed_out: true,
            });
            self.effects.push_back(Effect::CancelRemote { id });
            self.op_failed(&op.purpose, RemoteErrorKind::Timeout, "", now);
        }
        if self.remote.in_flight.is_none() && self.remote.next_at <= now {
            if self.ops.len() < self.cfg.max_in_flight_remote {
                let id = self.issue(RemoteOp::Status, Purpose::Status, now);
                self.remote.in_flight = Some(id);
            } else {
                self.remote.next_at = now.saturating_add(self.cfg.retry_backoff.initial);
            }
        }
        self.maybe_rotate(now);
        self.refresh_health(now);
    }

    /// The earliest time [`Keystore::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        if self.remote.in_flight.is_none() {
            consider(self.remote.next_at);
        }
        for deadline in self.ops.deadlines() {
            consider(deadline);
        }
        // Edge-triggered timers: only those still ahead of the last `now` (else they would fire
        // forever).
        let later = |t: Timestamp| (t > self.last_now).then_some(t);
        if let WrapState::Idle { retry_at, .. } = self.wrap
            && let Some(t) = later(retry_at)
        {
            consider(t);
        }
        if let Some(last) = self.remote.last_success
            && let Some(t) = later(last.saturating_add(self.cfg.status_staleness))
        {
            consider(t);
        }
        if let Some(cur) = &self.current {
            for age in [self.cfg.suggested_age, self.cfg.max_age] {
                if let Some(t) = later(cur.created_at.saturating_add(age)) {
                    consider(t);
                }
            }
        }
        next
    }

    /// The next effect for the driver.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next outcome for the KMS service.
    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        self.outcomes.pop_front()
    }

    // --- internals ---------------------------------------------------------------------------

    fn observe(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
    }

    fn issue(&mut self, op: RemoteOp, purpose: Purpose, now: Timestamp) -> OpId {
        let deadline = now.saturating_add(self.cfg.remote_timeout);
        let kind = op.kind();
        let id = self.ops.start(purpose, now, deadline);
        self.effects.push_back(Effect::Remote { id, op, deadline });
        self.events.push_back(Event::RemoteStarted { id, op: kind });
        id
    }

    fn usable(&self, cur: &LocalKek, now: Timestamp) -> bool {
        cur.uses < self.cfg.max_uses
            && now.saturating_duration_since(cur.created_at) < self.cfg.max_age
    }

    fn status_succeeded(&mut self, key_id: String, now: Timestamp) {
        self.remote.in_flight = None;
        if key_id.is_empty() || key_id.len() > MAX_KEY_ID_LEN {
            self.status_failed(RemoteErrorKind::Corrupt, "", now);
            return;
        }
        self.remote.key_id = Some(key_id);
        self.remote.last_success = Some(now);
        self.remote.last_error = None;
        self.remote.missing_named.clear();
        self.remote.failures = 0;
        self.remote.next_at = now.saturating_add(self.cfg.status_refresh_interval);
        self.outcomes.push_back(Outcome::EncryptReadinessChanged);
    }

    fn status_failed(&mut self, kind: RemoteErrorKind, detail: &str, now: Timestamp) {
        self.remote.in_flight = None;
        self.remote.last_error = Some(kind);
        self.remote.missing_named.clear();
        if kind == RemoteErrorKind::KeyVersionMissing && !detail.is_empty() {
            self.remote.missing_named = alloc::format!(
                "{}: {}",
                health::remote_cause(kind),
                missing::truncate(detail, missing::MAX_DETAIL)
            );
        }
        self.remote.failures = self.remote.failures.saturating_add(1);
        let delay = self
            .cfg
            .retry_backoff
            .delay(self.remote.failures)
            .min(self.cfg.status_refresh_interval);
        self.remote.next_at = now.saturating_add(delay);
        self.outcomes.push_back(Outcome::EncryptReadinessChanged);
    }

    fn wrap_succeeded(
        &mut self,
        key_id: String,
        kek: Secret32,
        wrapped: Vec<u8>,
        reason: RotationReason,
        now: Timestamp,
    ) {
        if wrapped.is_empty() || wrapped.len() > MAX_WRAPPED_LEN {
            self.wrap_failed(RemoteErrorKind::Corrupt, now);
            return;
        }
        self.wrap = WrapState::Idle {
            retry_at: now,
            failures: 0,
            last_error: None,
        };
        // Install only a KEK under the key id the remote currently names (or the first one);
        // a stale wrap is discarded and `maybe_rotate` wraps again under the newer key id.
        let wanted = self.remote.key_id.as_deref() == Some(key_id.as_str());
        if !wanted && self.current.is_some() {
            return;
        }
        let digest = crate::envelope::wrapped_kek_digest(&wrapped);
        let new = LocalKek {
            kek,
            wrapped,
            digest,
            key_id,
            created_at: now,
            uses: 0,
        };
        let key_changed = self.current.as_ref().is_none_or(|c| c.key_id != new.key_id);
        if key_changed {
            self.events.push_back(Event::KeyIdChanged {
                key_id: new.key_id.clone(),
            });
        }
        if let Some(old) = self.current.replace(new) {
            // Ciphertexts under the previous local KEK stay decryptable without a remote call.
            self.cache.insert(old.digest, old.key_id, old.kek);
        }
        self.events.push_back(Event::LocalKekRotated { reason });
        self.outcomes.push_back(Outcome::EncryptReadinessChanged);
    }

    fn wrap_failed(&mut self, kind: RemoteErrorKind, now: Timestamp) {
        let failures = match self.wrap {
            WrapState::Idle { failures, .. } | WrapState::AwaitingWrap { failures, .. } => failures,
        }
        .saturating_add(1);
        self.wrap = WrapState::Idle {
            retry_at: now.saturating_add(self.cfg.retry_backoff.delay(failures)),
            failures,
            last_error: Some(kind),
        };
        self.outcomes.push_back(Outcome::EncryptReadinessChanged);
    }

    fn op_failed(
        &mut self,
        purpose: &Purpose,
        kind: RemoteErrorKind,
        detail: &str,
        now: Timestamp,
    ) {
        match purpose {
            Purpose::Status => self.status_failed(kind, detail, now),
            Purpose::Wrap { .. } => self.wrap_failed(kind, now),
            Purpose::Unwrap { digest, key_id } => {
                self.unwrap_flights.remove(digest);
                if kind == RemoteErrorKind::KeyVersionMissing {
                    self.missing.record(key_id, detail);
                }
                self.outcomes.push_back(Outcome::UnwrapFailed {
                    digest: *digest,
                    kind,
                    detail: String::from(detail),
                });
            }
        }
    }

    /// Why a rotation is due now, if one is.
    fn rotation_reason(&self, now: Timestamp) -> Option<RotationReason> {
        let target = self.remote.key_id.as_deref()?;
        match &self.current {
            None => Some(RotationReason::Initial),
            Some(c) if c.key_id != target => Some(RotationReason::RemoteKeyChanged),
            Some(c) if c.uses >= self.cfg.suggested_uses => Some(RotationReason::Usage),
            Some(c) if now.saturating_duration_since(c.created_at) >= self.cfg.suggested_age => {
                Some(RotationReason::Age)
            }
            Some(_) => None,
        }
    }

    /// Starts wrapping a fresh local KEK under the remote's current key id when one is due,
    /// none is in flight, and the retry backoff allows.
    fn maybe_rotate(&mut self, now: Timestamp) {
        let WrapState::Idle {
            retry_at, failures, ..
        } = self.wrap
        else {
            return;
        };
        let Some(reason) = self.rotation_reason(now) else {
            return;
        };
        if now < retry_at || self.ops.len() >= self.cfg.max_in_flight_remote {
            return;
        }
        let Some(key_id) = self.remote.key_id.clone() else {
            return;
        };
        let kek = self.rng.secret32();
        let op = RemoteOp::Wrap {
            key_id: key_id.clone(),
            kek: kek.duplicate(),
        };
        self.issue(
            op,
            Purpose::Wrap {
                key_id,
                kek,
                reason,
            },
            now,
        );
        // Carry the failure count so the backoff keeps growing across failed attempts.
        self.wrap = WrapState::AwaitingWrap { failures };
    }
}
