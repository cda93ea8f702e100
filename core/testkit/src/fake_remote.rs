//! A fake remote KEK for simulations: a real [`Keyring`] behind knobs for latency, failures,
//! outages and silence, counting every call.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::format;
use alloc::string::String;
use core::time::Duration;

use kms_plugin_core::effect::{RemoteError, RemoteErrorKind, RemoteOp, RemoteOpKind, RemoteReply};
use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::rng::Rng;

/// The keyring key name the fake remote uses.
pub const KEY_NAME: &str = Keyring::DEFAULT_KEY_NAME;

/// How many operations of each kind the fake remote received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteCalls {
    /// `RemoteOp::Status`.
    pub status: u64,
    /// `RemoteOp::Wrap`.
    pub wrap: u64,
    /// `RemoteOp::Unwrap`.
    pub unwrap: u64,
}

/// A remote KEK backed by a [`Keyring`]: Status names the keyring's current key; Wrap and
/// Unwrap use the named key (nonces from a fixed-seed RNG, so runs are reproducible).
pub struct FakeRemote {
    keyring: Keyring,
    rng: Rng,
    /// Delay between an effect and its reply (virtual time).
    pub latency: Duration,
    /// Failures to return for the next operations, in order.
    fail_next: VecDeque<RemoteErrorKind>,
    /// While `Some`, every operation fails with this kind.
    down: Option<RemoteErrorKind>,
    /// While `Some((op, err))`, every operation of kind `op` fails with `err`.
    failing: Option<(RemoteOpKind, RemoteErrorKind)>,
    /// Key ids whose version was removed (like a Vault version trimmed by
    /// `min_decryption_version`): Unwrap under them fails with `KeyVersionMissing`.
    removed: BTreeSet<String>,
    /// While true, operations are swallowed without any reply.
    pub never_reply: bool,
    /// Calls received so far.
    pub calls: RemoteCalls,
}

impl FakeRemote {
    /// A remote whose keyring holds one key derived from `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        let mut rng = Rng::from_seed(seed);
        let mut keyring = Keyring::new();
        keyring
            .add_key(KEY_NAME, rng.secret32())
            .expect("a fresh keyring takes a key");
        Self::with_keyring(keyring, seed)
    }

    /// A remote over an existing keyring (e.g. one shared by two simulated plugins).
    pub fn with_keyring(keyring: Keyring, nonce_seed: [u8; 32]) -> Self {
        let mut seed = nonce_seed;
        seed[31] ^= 0x5a;
        Self {
            keyring,
            rng: Rng::from_seed(seed),
            latency: Duration::from_millis(20),
            fail_next: VecDeque::new(),
            down: None,
            failing: None,
            removed: BTreeSet::new(),
            never_reply: false,
            calls: RemoteCalls::default(),
        }
    }

    /// The keyring (e.g. to build a second remote over the same keys).
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The key id Status reports now.
    pub fn current_key_id(&self) -> String {
        self.keyring.current_key_id(KEY_NAME).unwrap_or_default()
    }

    /// Adds a key version; Status reports it from now on.
    pub fn rotate(&mut self) -> String {
        let key = self.rng.secret32();
        self.keyring
            .add_key(KEY_NAME, key)
            .expect("the keyring takes another version");
        self.current_key_id()
    }

    /// The next `n` operations fail with `kind`.
    pub fn fail_next(&mut self, n: usize, kind: RemoteErrorKind) {
        self.fail_next.extend(core::iter::repeat_n(kind, n));
    }

    /// Every operation fails with `kind` until [`FakeRemote::set_up`].
    pub fn set_down(&mut self, kind: RemoteErrorKind) {
        self.down = Some(kind);
    }

    /// Ends an outage started by [`FakeRemote::set_down`].
    pub fn set_up(&mut self) {
        self.down = None;
    }

    /// Every operation of kind `op` fails with `err` (or, with `None`, stops failing).
    pub fn set_failing(&mut self, op: RemoteOpKind, err: Option<RemoteErrorKind>) {
        self.failing = err.map(|e| (op, e));
    }

    /// Unwrap under `key_id` fails with `KeyVersionMissing` (naming it) until
    /// [`FakeRemote::restore_version`].
    pub fn remove_version(&mut self, key_id: &str) {
        self.removed.insert(String::from(key_id));
    }

    /// Undoes [`FakeRemote::remove_version`].
    pub fn restore_version(&mut self, key_id: &str) {
        self.removed.remove(key_id);
    }

    /// Performs `op`; `None` means the remote never answers.
    pub fn answer(&mut self, op: &RemoteOp) -> Option<Result<RemoteReply, RemoteError>> {
        match op {
            RemoteOp::Status => self.calls.status += 1,
            RemoteOp::Wrap { .. } => self.calls.wrap += 1,
            RemoteOp::Unwrap { .. } => self.calls.unwrap += 1,
        }
        if self.never_reply {
            return None;
        }
        let targeted = self
            .failing
            .and_then(|(kind, err)| (kind == op.kind()).then_some(err));
        if let Some(kind) = self
            .down
            .or(targeted)
            .or_else(|| self.fail_next.pop_front())
        {
            return Some(Err(RemoteError::new(kind, "injected failure")));
        }
        Some(match op {
            RemoteOp::Status => match self.keyring.current_key_id(KEY_NAME) {
                Some(key_id) => Ok(RemoteReply::Status { key_id }),
                None => Err(RemoteError::new(RemoteErrorKind::NotFound, "no key")),
            },
            RemoteOp::Wrap { key_id, kek } => {
                let nonce: [u8; 12] = {
                    let mut n = [0u8; 12];
                    self.rng.fill(&mut n);
                    n
                };
                self.keyring
                    .wrap(key_id, kek, nonce)
                    .map(|wrapped| RemoteReply::Wrapped { wrapped })
            }
            RemoteOp::Unwrap { key_id, .. } if self.removed.contains(key_id) => {
                Err(RemoteError::new(
                    RemoteErrorKind::KeyVersionMissing,
                    format!("fake key version {key_id} was removed; restore it"),
                ))
            }
            RemoteOp::Unwrap { key_id, wrapped } => self
                .keyring
                .unwrap(key_id, wrapped)
                .map(|kek| RemoteReply::Unwrapped { kek }),
        })
    }
}
