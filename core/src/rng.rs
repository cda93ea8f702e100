//! The core's only source of randomness: a ChaCha20 CSPRNG seeded by the driver.
//!
//! The core never reads entropy itself (charter rule 1): the runtime passes 32 bytes from the
//! operating system's entropy source to `Plugin::new`, and everything random the core needs
//! (local KEKs, HKDF `info`, AES-GCM nonces, key-file wrap nonces) is drawn from one [`Rng`].
//! Tests pass a fixed seed and get the same bytes every run.
//!
//! [`Rng`] deliberately implements neither `Clone` nor `Debug`: a copied generator would
//! repeat its output (nonce reuse), and its state is as sensitive as the keys it produces.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::secret::Secret32;

/// A seeded cryptographically secure generator (ChaCha20, 20 rounds; `rand_chacha` 0.3).
///
/// Guarantees: the output stream is a pure function of the seed, so a fixed seed gives
/// reproducible tests; with a uniformly random seed the output is indistinguishable from
/// random. There is no `Clone` (two copies would emit the same nonces).
pub struct Rng {
    inner: ChaCha20Rng,
}

impl Rng {
    /// Creates a generator from a 32-byte seed. Production seeds come from the OS; tests use
    /// fixed values.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            inner: ChaCha20Rng::from_seed(seed),
        }
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.inner.fill_bytes(out);
    }

    /// Draws a fresh 32-byte secret (a local KEK).
    pub fn secret32(&mut self) -> Secret32 {
        let mut bytes = [0u8; 32];
        self.inner.fill_bytes(&mut bytes);
        let key = Secret32::from_bytes(bytes);
        // `from_bytes` took a copy; wipe the stack one.
        zeroize::Zeroize::zeroize(&mut bytes);
        key
    }

    /// Draws a random `u64` (jitter, identifiers).
    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Draws `N` random bytes (nonces, HKDF `info`).
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        self.inner.fill_bytes(&mut out);
        out
    }

    /// Derives an independent generator (e.g. one per subsystem) by drawing a fresh seed.
    /// The child's stream does not overlap the parent's for any practical purpose.
    #[must_use]
    pub fn fork(&mut self) -> Self {
        let mut seed = self.array::<32>();
        let child = Self::from_seed(seed);
        zeroize::Zeroize::zeroize(&mut seed);
        child
    }
}
