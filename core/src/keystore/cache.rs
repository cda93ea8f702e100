//! A bounded LRU cache of unwrapped local KEKs, keyed by the wrapped blob's digest.

use alloc::collections::BTreeMap;
use alloc::string::String;

use super::Digest;
use crate::secret::Secret32;

/// One cached unwrapped local KEK.
struct Entry {
    /// The remote key the blob was wrapped under (a request naming another key misses).
    key_id: String,
    kek: Secret32,
    /// Recency tick; the key of this entry in `order`.
    tick: u64,
}

/// LRU map `digest -> (key_id, KEK)` holding at most `capacity` entries.
pub(crate) struct KekCache {
    entries: BTreeMap<Digest, Entry>,
    /// `tick -> digest`, oldest first; same size as `entries`.
    order: BTreeMap<u64, Digest>,
    next_tick: u64,
    capacity: usize,
}

impl KekCache {
    /// An empty cache; `capacity >= 1` (checked by `KmsConfig::validate`).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_tick: 0,
            capacity: capacity.max(1),
        }
    }

    /// Number of cached KEKs.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Looks `digest` up and marks it most recently used. `Err(())` when it is cached under a
    /// different remote key id than `key_id` (the request is inconsistent).
    pub(crate) fn get(&mut self, digest: &Digest, key_id: &str) -> Option<Result<&Secret32, ()>> {
        let tick = self.next_tick;
        let entry = self.entries.get_mut(digest)?;
        if entry.key_id != key_id {
            return Some(Err(()));
        }
        self.order.remove(&entry.tick);
        entry.tick = tick;
        self.order.insert(tick, *digest);
        self.next_tick += 1;
        Some(Ok(&entry.kek))
    }

    /// Inserts (or refreshes) an entry, evicting the least recently used beyond capacity.
    pub(crate) fn insert(&mut self, digest: Digest, key_id: String, kek: Secret32) {
        let tick = self.next_tick;
        self.next_tick += 1;
        if let Some(old) = self.entries.insert(digest, Entry { key_id, kek, tick }) {
            self.order.remove(&old.tick);
        }
        self.order.insert(tick, digest);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(b: u8) -> Secret32 {
        Secret32::from_bytes([b; 32])
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = KekCache::new(2);
        c.insert([1; 32], "k".into(), kek(1));
        c.insert([2; 32], "k".into(), kek(2));
        assert!(c.get(&[1; 32], "k").is_some());
        c.insert([3; 32], "k".into(), kek(3));
        assert_eq!(c.len(), 2);
        assert!(c.get(&[2; 32], "k").is_none());
        assert_eq!(c.get(&[1; 32], "k").unwrap().unwrap().expose(), &[1; 32]);
        assert_eq!(c.get(&[3; 32], "k").unwrap().unwrap().expose(), &[3; 32]);
    }

    #[test]
    fn key_id_mismatch_is_reported() {
        let mut c = KekCache::new(4);
        c.insert([1; 32], "a".into(), kek(1));
        assert!(matches!(c.get(&[1; 32], "b"), Some(Err(()))));
        c.insert([1; 32], "a".into(), kek(9));
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&[1; 32], "a").unwrap().unwrap().expose(), &[9; 32]);
    }
}
