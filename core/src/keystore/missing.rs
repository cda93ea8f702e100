//! Remote key versions the remote said are gone: an unwrap answered `KeyVersionMissing` (a
//! Vault version trimmed by `min_decryption_version`, an HSM or KMIP key deleted, a local key
//! file without the version). Data wrapped under such a version cannot be decrypted until the
//! operator restores it, so healthz names it (see `MissingVersions::healthz`) until an
//! unwrap under that same remote key id succeeds again, or the plugin restarts.
//!
//! Bounded: at most `KmsConfig::missing_versions_remembered` distinct key ids (the most recent
//! failures), each with a truncated, non-secret detail; the healthz text is rendered once per
//! change so Status still allocates nothing but its answer.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;

use crate::health::KEY_VERSION_MISSING;

/// Longest remote detail kept per missing version (bytes, cut at a char boundary).
pub(super) const MAX_DETAIL: usize = 384;
/// Longest key id quoted when the remote gave no detail.
const MAX_QUOTED_KEY_ID: usize = 128;

struct Missing {
    key_id: String,
    detail: String,
}

/// The remote key versions reported missing, most recent last (see the module docs).
pub(super) struct MissingVersions {
    cap: usize,
    entries: VecDeque<Missing>,
    healthz: String,
}

impl MissingVersions {
    /// Remembers at most `cap` distinct key ids (at least one).
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            entries: VecDeque::new(),
            healthz: String::new(),
        }
    }

    /// Records that an unwrap under `key_id` failed because its version is gone, with the
    /// remote's non-secret `detail`. A key id already recorded moves to the most recent place
    /// with the new detail; beyond the cap the oldest is forgotten. Returns whether the key id
    /// was new.
    pub(super) fn record(&mut self, key_id: &str, detail: &str) -> bool {
        let known = self.forget(key_id);
        self.entries.push_back(Missing {
            key_id: String::from(key_id),
            detail: String::from(truncate(detail, MAX_DETAIL)),
        });
        while self.entries.len() > self.cap {
            self.entries.pop_front();
        }
        self.render();
        !known
    }

    /// An unwrap under `key_id` succeeded: its version is back. Returns whether it was recorded.
    pub(super) fn restored(&mut self, key_id: &str) -> bool {
        let known = self.forget(key_id);
        if known {
            self.render();
        }
        known
    }

    /// Number of distinct key ids recorded.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is recorded.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The healthz text naming the most recent missing version
    /// (`key version missing: <detail>[ (and N more)]`), or `""` when none is recorded.
    pub(super) fn healthz(&self) -> &str {
        &self.healthz
    }

    fn forget(&mut self, key_id: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|m| m.key_id != key_id);
        self.entries.len() != before
    }

    fn render(&mut self) {
        self.healthz.clear();
        let Some(last) = self.entries.back() else {
            return;
        };
        let what = if last.detail.is_empty() {
            format!(
                "remote key id {:?}",
                truncate(&last.key_id, MAX_QUOTED_KEY_ID)
            )
        } else {
            last.detail.clone()
        };
        let more = self.entries.len() - 1;
        self.healthz = if more == 0 {
            format!("{KEY_VERSION_MISSING}: {what}")
        } else {
            format!("{KEY_VERSION_MISSING}: {what} (and {more} more)")
        };
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_latest_counts_the_rest_and_forgets_the_oldest_beyond_the_cap() {
        let mut m = MissingVersions::new(2);
        assert_eq!(m.healthz(), "");
        assert!(m.record("k1", "v1 trimmed"));
        assert_eq!(m.healthz(), "key version missing: v1 trimmed");
        assert!(m.record("k2", ""));
        assert_eq!(
            m.healthz(),
            "key version missing: remote key id \"k2\" (and 1 more)"
        );
        assert!(!m.record("k1", "v1 still trimmed"), "known key id moves");
        assert_eq!(
            m.healthz(),
            "key version missing: v1 still trimmed (and 1 more)"
        );
        assert!(m.record("k3", "v3"), "k2 is forgotten beyond the cap");
        assert_eq!(m.len(), 2);
        assert!(!m.restored("k2"));
        assert!(m.restored("k3"));
        assert_eq!(m.healthz(), "key version missing: v1 still trimmed");
        assert!(m.restored("k1"));
        assert!(m.is_empty());
        assert_eq!(m.healthz(), "");
    }

    #[test]
    fn long_details_are_cut_at_a_char_boundary() {
        let mut m = MissingVersions::new(1);
        let detail = "é".repeat(MAX_DETAIL);
        m.record("k", &detail);
        let text = m.healthz().strip_prefix("key version missing: ").unwrap();
        assert!(text.len() <= MAX_DETAIL && text.len() >= MAX_DETAIL - 1);
        assert!(text.chars().all(|c| c == 'é'));
    }
}
