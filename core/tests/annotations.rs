//! Annotation keys and limits, table-driven against APIMACHINERY `IsFullyQualifiedDomainName`
//! (docs/protocol.md §4) and the 32 KiB budget.

use kms_plugin_core::annotations::{
    AnnotationError, FORMAT_KEY, MAX_TOTAL_BYTES, WRAPPED_KEK_KEY, is_valid_key, validate,
};

#[test]
fn key_validation_table() {
    let label63 = "a".repeat(63);
    let label64 = "a".repeat(64);
    let ok63 = format!("{label63}.example.com");
    let bad64 = format!("{label64}.example.com");
    // 253 characters: four labels of 63 plus three dots (252) ... build exactly.
    let name253 = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(name253.len(), 253);
    let name254 = format!("{name253}e");
    assert_eq!(name254.len(), 254);
    let name253_dot = format!("{name253}.");
    let cases: &[(&str, bool)] = &[
        // Examples from the Kubernetes KMS documentation and KEP (the `/` ones are invalid).
        ("version.encryption.remote.io", true),
        ("encrypted-kek.reference.encryption.k8s.io", true),
        ("local-kek.kms.kubernetes.io", true),
        ("kms.example.io/remote-kms-auditid", false),
        ("kms.kubernetes.io/local-kek", false),
        ("kmsv2:local-kek", false),
        // Ours.
        (WRAPPED_KEK_KEY, true),
        (FORMAT_KEY, true),
        // Case, characters.
        ("Upper.example.com", false),
        ("upper.Example.com", false),
        ("a_b.example.com", false),
        ("a b.example.com", false),
        ("a:b.example.com", false),
        ("ä.example.com", false),
        ("1.2", true),
        ("0a.b9", true),
        ("a-b.c-d", true),
        ("a--b.cd", true),
        ("-a.example.com", false),
        ("a-.example.com", false),
        ("a.-b", false),
        ("a.b-", false),
        // Labels.
        ("single", false),
        ("single.", false),
        ("", false),
        (".", false),
        ("a..b", false),
        (".a.b", false),
        ("a.b..", false),
        (&ok63, true),
        (&bad64, false),
        // Trailing dot: exactly one is stripped.
        ("example.com.", true),
        ("example.com..", false),
        // Length: 253 is the limit, measured after stripping the trailing dot.
        (&name253, true),
        (&name254, false),
        (&name253_dot, true),
    ];
    for (key, valid) in cases {
        assert_eq!(is_valid_key(key), *valid, "{key:?}");
    }
}

#[test]
fn validate_checks_keys_and_total_size() {
    let ok: [(&str, &[u8]); 2] = [(WRAPPED_KEK_KEY, b"blob"), (FORMAT_KEY, b"1")];
    assert_eq!(validate(ok.into_iter()), Ok(()));
    assert_eq!(validate(std::iter::empty()), Ok(()));
    let bad: [(&str, &[u8]); 2] = [
        (WRAPPED_KEK_KEY, b"blob"),
        ("kms.kubernetes.io/local-kek", b"x"),
    ];
    assert_eq!(validate(bad.into_iter()), Err(AnnotationError::InvalidKey));

    // Exactly 32 KiB of key + value is accepted, one byte more is not.
    let key = "a.b";
    let value = vec![0u8; MAX_TOTAL_BYTES - key.len()];
    assert_eq!(validate([(key, &value[..])].into_iter()), Ok(()));
    let value = vec![0u8; MAX_TOTAL_BYTES - key.len() + 1];
    assert_eq!(
        validate([(key, &value[..])].into_iter()),
        Err(AnnotationError::TooLarge)
    );
    // Spread over several entries, keys count too.
    let half = vec![0u8; MAX_TOTAL_BYTES / 2];
    assert_eq!(
        validate([("a.b", &half[..]), ("c.d", &half[..])].into_iter()),
        Err(AnnotationError::TooLarge)
    );
    // A bad key after the budget is exceeded is still reported as a bad key.
    let big = vec![0u8; MAX_TOTAL_BYTES + 1];
    assert_eq!(
        validate([("a.b", &big[..]), ("BAD", &b""[..])].into_iter()),
        Err(AnnotationError::InvalidKey)
    );
    assert!(!AnnotationError::TooLarge.to_string().is_empty());
}

/// A reference implementation of the Go rule (regex spelled out as a tiny state machine over
/// the whole name), compared with `is_valid_key` on generated names.
fn reference(name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    // IsDNS1123Subdomain: len <= 253 and the regex.
    if name.len() > 253 {
        return false;
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let regex_ok = name.split('.').all(|label| {
        let chars: Vec<char> = label.chars().collect();
        !chars.is_empty()
            && alnum(chars[0])
            && alnum(chars[chars.len() - 1])
            && chars.iter().all(|c| alnum(*c) || *c == '-')
    });
    if !regex_ok {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2 && labels.iter().all(|l| l.len() <= 63)
}

#[test]
fn matches_reference_on_generated_names() {
    let alphabet = ['a', 'z', '0', '9', '-', '.', 'A', '_', '/'];
    let mut state = 0x1234_5678_9abc_def0u64;
    for _ in 0..50_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 12) as usize;
        let mut s = state;
        let name: String = (0..len)
            .map(|_| {
                let c = alphabet[(s % alphabet.len() as u64) as usize];
                s /= alphabet.len() as u64;
                c
            })
            .collect();
        assert_eq!(is_valid_key(&name), reference(&name), "{name:?}");
    }
}
