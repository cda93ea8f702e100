//! `encryption_config::check` against the classic EncryptionConfiguration mistakes, the shipped
//! `deploy/encryption-config.*.yaml` examples, and `render` output.

use std::time::Duration;

use kms_plugin_blocking::encryption_config::{
    ApiVersion, Finding, Severity, check, has_errors, render,
};

const SOCKET: &str = "unix:///tmp/kms.sock";
/// Where the shipped manifests put the socket (a directory only the plugin and root can write).
const SHIPPED_SOCKET: &str = "unix:///run/kms-plugin/kms.sock";

/// A valid v2 config with `kms_body` (indented 10 spaces) as the kms provider's fields.
fn v2_with(kms_body: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - kms:
{kms_body}      - identity: {{}}
"
    )
}

fn errors(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect()
}

/// Asserts that `f`'s message contains `text`, showing the finding if not.
#[track_caller]
fn assert_says(f: &Finding, text: &str) {
    assert!(f.message.contains(text), "{f}");
}

/// Asserts exactly one error, at `path`, whose message contains every one of `words`.
#[track_caller]
fn one_error(yaml: &str, path: &str, words: &[&str]) {
    let findings = check(yaml, Some(SOCKET));
    let errs = errors(&findings);
    assert_eq!(
        errs.len(),
        1,
        "expected one error at {path}, got {findings:#?}"
    );
    let e = errs[0];
    assert_eq!(e.path, path, "{e}");
    for w in words {
        assert!(e.message.contains(w), "{e:?} lacks {w:?}");
    }
    assert!(!e.message.contains('\n'), "one line: {e:?}");
}

#[test]
fn a_correct_v2_config_is_clean() {
    let yaml = v2_with(
        "          apiVersion: v2\n          name: kms-plugin\n          endpoint: unix:///tmp/kms.sock\n          timeout: 3s\n",
    );
    assert_eq!(check(&yaml, Some(SOCKET)), vec![]);
    assert_eq!(check(&yaml, None), vec![]);
}

#[test]
fn kms_null_by_wrong_indentation() {
    // `name:` and `endpoint:` line up with `kms:`, so kms is null and they are provider fields.
    let yaml = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - kms:
        apiVersion: v2
        name: kms-plugin
        endpoint: unix:///tmp/kms.sock
      - identity: {}
";
    let findings = check(yaml, Some(SOCKET));
    let null = findings
        .iter()
        .find(|f| f.path == "resources[0].providers[0].kms")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(null.severity, Severity::Error);
    assert!(null.message.contains("null"), "{null}");
    assert!(null.message.contains("not indented under it"), "{null}");
    assert!(null.message.contains("indent"), "{null}");
    for field in ["name", "endpoint"] {
        let path = format!("resources[0].providers[0].{field}");
        let f = findings
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path}: {findings:#?}"));
        assert_eq!(f.severity, Severity::Error);
        assert!(f.message.contains("belongs under `kms:`"), "{f}");
    }
}

#[test]
fn kms_with_no_fields_at_all() {
    let yaml = v2_with("");
    let findings = check(&yaml, None);
    assert!(
        findings
            .iter()
            .any(|f| f.path == "resources[0].providers[0].kms"
                && f.message.contains("it has no fields")),
        "{findings:#?}"
    );
}

#[test]
fn v2_name_with_colon() {
    one_error(
        &v2_with(
            "          apiVersion: v2\n          name: kms:plugin\n          endpoint: unix:///tmp/kms.sock\n",
        ),
        "resources[0].providers[0].kms.name",
        &["invalid KMS provider name kms:plugin, must not contain ':'"],
    );
}

#[test]
fn v1_name_with_colon_is_allowed() {
    let yaml = v2_with(
        "          apiVersion: v1\n          name: kms:plugin\n          endpoint: unix:///tmp/kms.sock\n",
    );
    let findings = check(&yaml, Some(SOCKET));
    assert!(!has_errors(&findings), "{findings:#?}");
    // ...but v1 is flagged as deprecated.
    assert!(
        findings.iter().any(|f| f.severity == Severity::Warning
            && f.path == "resources[0].providers[0].kms.apiVersion"
            && f.message.contains("KMSv1=true")),
        "{findings:#?}"
    );
}

#[test]
fn missing_api_version_defaults_to_v1_with_a_warning() {
    let yaml = v2_with("          name: p\n          endpoint: unix:///tmp/kms.sock\n");
    let findings = check(&yaml, Some(SOCKET));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert_says(&findings[0], "defaults to v1");
}

#[test]
fn unsupported_kms_api_version() {
    one_error(
        &v2_with(
            "          apiVersion: v2beta1\n          name: p\n          endpoint: unix:///tmp/kms.sock\n",
        ),
        "resources[0].providers[0].kms.apiVersion",
        &["only v1 and v2 are supported", "apiVersion: v2"],
    );
}

#[test]
fn cachesize_on_v2() {
    one_error(
        &v2_with(
            "          apiVersion: v2\n          name: p\n          endpoint: unix:///tmp/kms.sock\n          cachesize: 1000\n",
        ),
        "resources[0].providers[0].kms.cachesize",
        &["cachesize is not supported in v2", "remove it"],
    );
}

#[test]
fn cachesize_zero_on_v1() {
    one_error(
        &v2_with(
            "          apiVersion: v1\n          name: p\n          endpoint: unix:///tmp/kms.sock\n          cachesize: 0\n",
        ),
        "resources[0].providers[0].kms.cachesize",
        &["positive value, or negative to disable"],
    );
    // Negative disables the cache: fine.
    let yaml = v2_with(
        "          apiVersion: v1\n          name: p\n          endpoint: unix:///tmp/kms.sock\n          cachesize: -1\n",
    );
    assert!(!has_errors(&check(&yaml, Some(SOCKET))));
}

#[test]
fn key_id_field_is_unknown() {
    one_error(
        &v2_with(
            "          apiVersion: v2\n          name: p\n          endpoint: unix:///tmp/kms.sock\n          keyID: my-key\n",
        ),
        "resources[0].providers[0].kms.keyID",
        &["unknown field `keyID`", "strictly", "Status", "remove"],
    );
}

#[test]
fn unknown_top_level_and_entry_fields() {
    let yaml = v2_with(
        "          apiVersion: v2\n          name: p\n          endpoint: unix:///tmp/kms.sock\n",
    )
    .replace(
        "kind: EncryptionConfiguration\n",
        "kind: EncryptionConfiguration\nmetadata: {}\n",
    );
    one_error(
        &yaml,
        "metadata",
        &["unknown field `metadata`", "apiVersion, kind, resources"],
    );
}

#[test]
fn tcp_endpoint() {
    one_error(
        &v2_with(
            "          apiVersion: v2\n          name: p\n          endpoint: tcp://127.0.0.1:8080\n",
        ),
        "resources[0].providers[0].kms.endpoint",
        &["unsupported scheme \"tcp\" for KMS provider, only unix is supported"],
    );
}

#[test]
fn endpoint_without_scheme() {
    let findings = check(
        &v2_with(
            "          apiVersion: v2\n          name: p\n          endpoint: /tmp/kms.sock\n",
        ),
        None,
    );
    let errs = errors(&findings);
    assert_eq!(errs.len(), 1, "{findings:#?}");
    assert_says(errs[0], "unix:///tmp/kms.sock");
}

#[test]
fn two_slash_endpoint_is_a_warning_naming_the_real_socket() {
    let findings = check(
        &v2_with(
            "          apiVersion: v2\n          name: p\n          endpoint: unix://tmp/kms.sock\n",
        ),
        None,
    );
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert_says(&findings[0], "`/kms.sock`");
    assert_says(&findings[0], "unix:///tmp/kms.sock");
    // And it does not match a plugin listening on /tmp/kms.sock.
    assert!(has_errors(&check(
        &v2_with(
            "          apiVersion: v2\n          name: p\n          endpoint: unix://tmp/kms.sock\n"
        ),
        Some(SOCKET),
    )));
}

#[test]
fn missing_endpoint() {
    one_error(
        &v2_with("          apiVersion: v2\n          name: p\n"),
        "resources[0].providers[0].kms.endpoint",
        &["endpoint is a mandatory field for a kms"],
    );
}

#[test]
fn missing_name() {
    one_error(
        &v2_with("          apiVersion: v2\n          endpoint: unix:///tmp/kms.sock\n"),
        "resources[0].providers[0].kms.name",
        &["name is a mandatory field for a provider"],
    );
}

#[test]
fn timeout_zero_and_unparseable() {
    let with_timeout = |t: &str| {
        v2_with(&format!(
            "          apiVersion: v2\n          name: p\n          endpoint: unix:///tmp/kms.sock\n          timeout: {t}\n"
        ))
    };
    let path = "resources[0].providers[0].kms.timeout";
    one_error(
        &with_timeout("0s"),
        path,
        &["timeout should be a positive value", "3s"],
    );
    one_error(
        &with_timeout("-1s"),
        path,
        &["timeout should be a positive value"],
    );
    one_error(
        &with_timeout("3sec"),
        path,
        &["time: unknown unit \"sec\"", "Go duration"],
    );
    one_error(&with_timeout("\"3\""), path, &["missing unit"]);
    // An unquoted number is not a string: metav1.Duration refuses it.
    one_error(&with_timeout("3"), path, &["an integer", "timeout: 3s"]);
    for ok in ["3s", "500ms", "1m30s", "\"2s\""] {
        assert!(!has_errors(&check(&with_timeout(ok), Some(SOCKET))), "{ok}");
    }
}

#[test]
fn duplicate_names() {
    let yaml = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms: {apiVersion: v2, name: kms-plugin, endpoint: 'unix:///tmp/kms.sock'}
  - resources: [configmaps]
    providers:
      - kms: {apiVersion: v2, name: kms-plugin, endpoint: 'unix:///tmp/kms.sock'}
";
    one_error(
        yaml,
        "resources[1].providers[0].kms.name",
        &["duplicate KMS provider name kms-plugin, names must be unique"],
    );
    // v1 after v1: only refused with automatic reload, so a warning.
    let v1 = yaml.replace("apiVersion: v2", "apiVersion: v1");
    let findings = check(&v1, Some(SOCKET));
    assert!(!has_errors(&findings), "{findings:#?}");
    assert!(
        findings
            .iter()
            .any(|f| f.path == "resources[1].providers[0].kms.name"
                && f.severity == Severity::Warning
                && f.message.contains("automatic-reload"))
    );
}

#[test]
fn endpoint_must_match_where_the_plugin_listens() {
    let yaml = v2_with(
        "          apiVersion: v2\n          name: p\n          endpoint: unix:///var/run/other.sock\n",
    );
    one_error(
        &yaml,
        "resources[0].providers[0].kms.endpoint",
        &["unix:///tmp/kms.sock", "--listen"],
    );
    assert!(!has_errors(&check(&yaml, None)));
    // Equivalent spellings match.
    let one_slash = v2_with(
        "          apiVersion: v2\n          name: p\n          endpoint: unix:/tmp/kms.sock\n",
    );
    assert!(!has_errors(&check(&one_slash, Some(SOCKET))));
    // Abstract sockets compare by name.
    let abs = v2_with(
        "          apiVersion: v2\n          name: p\n          endpoint: unix:///@kms-plugin\n",
    );
    assert_eq!(check(&abs, Some("unix:///@kms-plugin")), vec![]);
    assert!(has_errors(&check(&abs, Some("unix:///@other"))));
    assert!(has_errors(&check(&abs, Some("unix:///kms-plugin"))));
}

#[test]
fn a_second_plugin_elsewhere_is_fine_when_one_matches() {
    let yaml = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms: {apiVersion: v2, name: new, endpoint: 'unix:///tmp/kms.sock'}
      - kms: {apiVersion: v2, name: old, endpoint: 'unix:///tmp/old.sock'}
      - identity: {}
";
    assert_eq!(check(yaml, Some(SOCKET)), vec![]);
}

#[test]
fn identity_first_and_identity_null() {
    let yaml = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - identity: {}
      - kms: {apiVersion: v2, name: p, endpoint: 'unix:///tmp/kms.sock'}
";
    let findings = check(yaml, Some(SOCKET));
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert_eq!(findings[0].path, "resources[0].providers[0].identity");
    assert!(findings[0].message.contains("unencrypted"));

    let null = yaml.replace("- identity: {}", "- identity:");
    one_error(
        &null,
        "resources[0].providers[0].identity",
        &["identity: {}"],
    );
}

#[test]
fn two_providers_in_one_element_and_none() {
    let yaml = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms: {apiVersion: v2, name: p, endpoint: 'unix:///tmp/kms.sock'}
        identity: {}
";
    one_error(
        yaml,
        "resources[0].providers[0]",
        &["more than one provider", "separate list items"],
    );
    let none = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - {}
";
    let findings = check(none, None);
    assert!(findings.iter().any(|f| {
        f.path == "resources[0].providers[0]"
            && f.message
                .contains("does not contain any of the expected providers")
    }));
}

#[test]
fn wrong_header_empty_and_broken_documents() {
    let yaml = v2_with(
        "          apiVersion: v2\n          name: p\n          endpoint: unix:///tmp/kms.sock\n",
    )
    .replace("apiserver.config.k8s.io/v1", "v1")
    .replace("kind: EncryptionConfiguration", "kind: EncryptionConfig");
    let findings = check(&yaml, None);
    let paths: Vec<&str> = errors(&findings).iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["apiVersion", "kind"], "{findings:#?}");

    assert!(has_errors(&check("", None)));
    assert!(has_errors(&check("[1, 2", None)));
    assert!(has_errors(&check("- a\n- b\n", None)));
    assert!(has_errors(&check(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n",
        None
    )));
    // Duplicate keys are refused by the YAML layer.
    let dup = v2_with(
        "          apiVersion: v2\n          name: p\n          name: q\n          endpoint: unix:///tmp/kms.sock\n",
    );
    assert!(has_errors(&check(&dup, None)));
}

#[test]
fn local_key_providers_never_echo_secrets() {
    let yaml = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms: {apiVersion: v2, name: p, endpoint: 'unix:///tmp/kms.sock'}
      - aescbc:
          keys:
            - name: key1
              secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
              extra: TOP-SECRET-VALUE
            - name: key2
            - name: key3
              secret: P@ssword-TOP-SECRET
            - name: key4
              secret: cGFzc3dvcmQK
      - secretbox:
          keys:
            - name: key5
              secret: MDEyMzQ1Njc4OWFiY2RlZg==
";
    let findings = check(yaml, None);
    let paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "resources[0].providers[1].aescbc.keys[0].extra",
            "resources[0].providers[1].aescbc.keys[1].secret",
            "resources[0].providers[1].aescbc.keys[2].secret",
            "resources[0].providers[1].aescbc.keys[3].secret",
            "resources[0].providers[2].secretbox.keys[0].secret",
        ],
        "{findings:#?}"
    );
    for f in &findings {
        let shown = f.to_string();
        assert!(
            !shown.contains("TOP-SECRET") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
    }
}

#[test]
fn no_kms_provider_is_a_warning() {
    let yaml = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm: {keys: [{name: k, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]}
";
    let findings = check(yaml, None);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(findings[0].message.contains("no kms provider"));
}

#[test]
fn display_is_one_line_with_severity_and_path() {
    let f = &check(
        &v2_with("          apiVersion: v2\n          name: p\n"),
        None,
    )[0];
    assert_eq!(
        f.to_string(),
        format!(
            "error: resources[0].providers[0].kms.endpoint: {}",
            f.message
        )
    );
}

fn deploy(name: &str) -> String {
    let path = format!("{}/../deploy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn shipped_examples_have_no_errors() {
    let v2 = check(&deploy("encryption-config.v2.yaml"), Some(SHIPPED_SOCKET));
    assert_eq!(v2, vec![], "v2 example");
    let v1 = check(&deploy("encryption-config.v1.yaml"), Some(SHIPPED_SOCKET));
    assert!(!has_errors(&v1), "{v1:#?}");
    // The only remark on v1 is that it is deprecated.
    assert_eq!(v1.len(), 1, "{v1:#?}");
    assert!(v1[0].message.contains("deprecated"));
}

#[test]
fn rendered_configs_pass_check() {
    let v2 = render(ApiVersion::V2, "kms-plugin", SOCKET, Duration::from_secs(3));
    assert_eq!(check(&v2, Some(SOCKET)), vec![], "{v2}");
    assert!(
        v2.contains("apiVersion: v2\n") && v2.contains("timeout: 3s\n"),
        "{v2}"
    );
    assert!(!v2.contains("cachesize"), "{v2}");

    let v1 = render(
        ApiVersion::V1,
        "kms-plugin-v1",
        SOCKET,
        Duration::from_millis(1500),
    );
    let findings = check(&v1, Some(SOCKET));
    assert!(!has_errors(&findings), "{findings:#?}\n{v1}");
    assert!(
        v1.contains("cachesize: 1000\n") && v1.contains("timeout: 1500ms\n"),
        "{v1}"
    );

    // The shipped v2 example is exactly what the generator writes, modulo comments.
    let strip = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| l.replace('"', ""))
            .collect()
    };
    let shipped_v2 = render(
        ApiVersion::V2,
        "kms-plugin",
        SHIPPED_SOCKET,
        Duration::from_secs(3),
    );
    assert_eq!(
        strip(&shipped_v2),
        strip(&deploy("encryption-config.v2.yaml"))
    );
    let v1_3s = render(
        ApiVersion::V1,
        "kms-plugin-v1",
        SHIPPED_SOCKET,
        Duration::from_secs(3),
    );
    assert_eq!(strip(&v1_3s), strip(&deploy("encryption-config.v1.yaml")));

    // Odd inputs are quoted, not injected; bad ones are caught by check.
    let odd = render(
        ApiVersion::V2,
        "a\"b\\c #d\n",
        "unix:///@x y",
        Duration::from_secs(1),
    );
    let findings = check(&odd, Some("unix:///@x y"));
    assert!(!has_errors(&findings), "{findings:#?}\n{odd}");
    let bad = render(ApiVersion::V2, "a:b", SOCKET, Duration::ZERO);
    let paths: Vec<String> = errors(&check(&bad, Some(SOCKET)))
        .iter()
        .map(|f| f.path.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "resources[0].providers[0].kms.name",
            "resources[0].providers[0].kms.timeout"
        ]
    );
}

#[test]
fn damaged_files_never_panic() {
    let text = deploy("encryption-config.v2.yaml");
    // Every prefix (cut mid-line, mid-token, mid-character boundary)...
    for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        let _ = check(&text[..end], Some(SOCKET));
    }
    // ...every single-line deletion, and every line re-indented by one space.
    let lines: Vec<&str> = text.lines().collect();
    for i in 0..lines.len() {
        let mut without = lines.clone();
        without.remove(i);
        let _ = check(&without.join("\n"), Some(SOCKET));
        let mut shifted: Vec<String> = lines.iter().map(|l| (*l).to_string()).collect();
        shifted[i].insert(0, ' ');
        let _ = check(&shifted.join("\n"), Some(SOCKET));
    }
    // Deep nesting and odd scalars.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(has_errors(&check(&deep, None)));
    for odd in [
        "~",
        "null",
        "42",
        "\"x\"",
        "{}",
        "*a",
        "&a x",
        "!!binary aGk=",
        "? a",
    ] {
        assert!(has_errors(&check(odd, None)), "{odd}");
    }
}

#[test]
fn render_output_is_stable() {
    let v2 = render(ApiVersion::V2, "kms-plugin", SOCKET, Duration::from_secs(3));
    let expected = r#"# kube-apiserver --encryption-provider-config, generated by `kms-plugin encryption-config`.
# Check edits with `kms-plugin check-config FILE`.
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      # The first provider encrypts every write; the others are only tried on reads.
      - kms:
          apiVersion: v2
          # Stored values start with `k8s:enc:kms:v2:<name>:`: never rename a provider in use.
          name: "kms-plugin"
          # Where the plugin listens (kms-plugin serve --listen).
          endpoint: "unix:///tmp/kms.sock"
          timeout: 3s
      # Reads Secrets stored before encryption was enabled. Remove it once every Secret
      # has been rewritten: kubectl get secrets -A -o json | kubectl replace -f -
      - identity: {}
"#;
    assert_eq!(v2, expected);

    // Timeouts are written in the largest exact unit, each a valid Go duration.
    for (d, text) in [
        (Duration::from_secs(90), "90s"),
        (Duration::from_millis(2500), "2500ms"),
        (Duration::from_micros(1500), "1500us"),
        (Duration::from_nanos(7), "7ns"),
    ] {
        let yaml = render(ApiVersion::V2, "p", SOCKET, d);
        assert!(yaml.contains(&format!("timeout: {text}\n")), "{yaml}");
        assert_eq!(check(&yaml, Some(SOCKET)), vec![], "{text}");
    }
}
