//! kube-apiserver's own validation of plugin responses, re-implemented independently of the
//! code that builds them, so debug assertions and tests can check every Encrypt and Status
//! answer against the rules the real client applies (docs/protocol.md §4).

/// `KeyIDMaxSize` (docs/protocol.md §4).
pub(crate) const KEY_ID_MAX_SIZE: usize = 1024;
/// `encryptedDEKSourceMaxSize` (docs/protocol.md §4).
pub(crate) const CIPHERTEXT_MAX_SIZE: usize = 1024;
/// `annotationsMaxSize` (docs/protocol.md §4).
pub(crate) const ANNOTATIONS_MAX_SIZE: usize = 32 * 1024;

/// Which rule a response broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleViolation {
    /// `ValidateKeyID`: empty.
    KeyIdEmpty,
    /// `ValidateKeyID`: longer than 1024 bytes.
    KeyIdTooLong,
    /// "encrypted DEK source is empty".
    CiphertextEmpty,
    /// Ciphertext longer than 1024 bytes.
    CiphertextTooLong,
    /// An annotation key failed `IsFullyQualifiedDomainName`.
    AnnotationKeyNotFqdn,
    /// Σ len(key)+len(value) > 32 KiB.
    AnnotationsTooLarge,
    /// `version` is neither `v2` nor `v2beta1`.
    BadVersion,
    /// healthz is `ok` but the key id is invalid.
    HealthyWithoutKeyId,
}

/// `ValidateKeyID`: non-empty, at most 1024 bytes (docs/protocol.md §4).
pub(crate) fn check_key_id(key_id: &str) -> Result<(), RuleViolation> {
    if key_id.is_empty() {
        Err(RuleViolation::KeyIdEmpty)
    } else if key_id.len() > KEY_ID_MAX_SIZE {
        Err(RuleViolation::KeyIdTooLong)
    } else {
        Ok(())
    }
}

/// apimachinery `IsFullyQualifiedDomainName` (docs/protocol.md §4 "FQDN rule"): one trailing dot
/// stripped; a DNS-1123 subdomain of at most 253 chars with at least two labels of at most 63
/// chars, each `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
pub(crate) fn is_fqdn(key: &str) -> bool {
    let name = key.strip_suffix('.').unwrap_or(key);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let mut labels = 0usize;
    for label in name.split('.') {
        labels += 1;
        let b = label.as_bytes();
        let (Some(first), Some(last)) = (b.first(), b.last()) else {
            return false;
        };
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.len() > 63
            || !alnum(first)
            || !alnum(last)
            || !b.iter().all(|c| alnum(c) || *c == b'-')
        {
            return false;
        }
    }
    labels >= 2
}

/// `ValidateEncryptedObject` on an EncryptResponse (docs/protocol.md §4 step 2).
pub fn check_encrypt_response<'a>(
    ciphertext: &[u8],
    key_id: &str,
    annotations: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<(), RuleViolation> {
    if ciphertext.is_empty() {
        return Err(RuleViolation::CiphertextEmpty);
    }
    if ciphertext.len() > CIPHERTEXT_MAX_SIZE {
        return Err(RuleViolation::CiphertextTooLong);
    }
    check_key_id(key_id)?;
    let mut total = 0usize;
    for (k, v) in annotations {
        if !is_fqdn(k) {
            return Err(RuleViolation::AnnotationKeyNotFqdn);
        }
        total = total.saturating_add(k.len()).saturating_add(v.len());
    }
    if total > ANNOTATIONS_MAX_SIZE {
        return Err(RuleViolation::AnnotationsTooLarge);
    }
    Ok(())
}

/// The Status checks of `isKMSv2ProviderHealthyAndMaybeRotateDEK` that concern the plugin's
/// own consistency (docs/protocol.md §4): version `v2`/`v2beta1`; a healthy answer carries a valid
/// key id; a key id, when present, is at most 1024 bytes.
pub fn check_status_response(
    version: &str,
    healthz: &str,
    key_id: &str,
) -> Result<(), RuleViolation> {
    if version != "v2" && version != "v2beta1" {
        return Err(RuleViolation::BadVersion);
    }
    if healthz == "ok" && check_key_id(key_id).is_err() {
        return Err(RuleViolation::HealthyWithoutKeyId);
    }
    if key_id.len() > KEY_ID_MAX_SIZE {
        return Err(RuleViolation::KeyIdTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_examples_from_spec() {
        for good in [
            "version.encryption.remote.io",
            "encrypted-kek.reference.encryption.k8s.io",
            "local-kek.kms.kubernetes.io",
            "a.b",
            "a.b.",
        ] {
            assert!(is_fqdn(good), "{good}");
        }
        for bad in [
            "kms.example.io/remote-kms-auditid",
            "kms.kubernetes.io/local-kek",
            "kmsv2:local-kek",
            "single",
            "Upper.case.io",
            "under_score.io",
            "-lead.io",
            "trail-.io",
            "a..b",
            "",
            ".",
        ] {
            assert!(!is_fqdn(bad), "{bad}");
        }
        let long_label = alloc::format!("{}.io", "a".repeat(64));
        assert!(!is_fqdn(&long_label));
    }

    #[test]
    fn encrypt_response_limits() {
        let ann: [(&str, &[u8]); 1] = [("a.b", b"x")];
        assert_eq!(check_encrypt_response(b"c", "k", ann), Ok(()));
        assert_eq!(
            check_encrypt_response(b"", "k", ann),
            Err(RuleViolation::CiphertextEmpty)
        );
        assert_eq!(
            check_encrypt_response(&[0; 1025], "k", ann),
            Err(RuleViolation::CiphertextTooLong)
        );
        assert_eq!(
            check_encrypt_response(b"c", "", ann),
            Err(RuleViolation::KeyIdEmpty)
        );
        let big = alloc::vec![0u8; 32 * 1024];
        assert_eq!(
            check_encrypt_response(b"c", "k", [("a.b", &b"x"[..]), ("big.value", &big)]),
            Err(RuleViolation::AnnotationsTooLarge)
        );
    }

    #[test]
    fn status_rules() {
        assert_eq!(check_status_response("v2", "ok", "k"), Ok(()));
        assert_eq!(check_status_response("v2beta1", "down", ""), Ok(()));
        assert_eq!(
            check_status_response("v2", "ok", ""),
            Err(RuleViolation::HealthyWithoutKeyId)
        );
        assert_eq!(
            check_status_response("v1", "ok", "k"),
            Err(RuleViolation::BadVersion)
        );
    }
}
