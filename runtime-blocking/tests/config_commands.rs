//! `kms-plugin encryption-config` and `kms-plugin check-config`, end to end against the binary:
//! exit codes (0 clean / warnings, 1 findings with errors, 2 bad usage), output streams, and
//! that a rendered config passes its own check.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use support::{TempDir, run};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn rendered_v2_config_passes_check_config_for_the_same_endpoint() {
    let dir = TempDir::new("render-v2");
    let out = run(&[
        "encryption-config",
        "--listen",
        "unix:///run/kms/kms.sock",
        "--name",
        "prod-kms",
        "--timeout",
        "1.5",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("apiVersion: v2"), "{yaml}");
    assert!(yaml.contains("\"unix:///run/kms/kms.sock\""), "{yaml}");
    assert!(yaml.contains("\"prod-kms\""), "{yaml}");
    assert!(yaml.contains("timeout: 1500ms"), "{yaml}");
    let file = dir.join("encryption-config.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let file = file.to_str().unwrap();

    let out = run(&["check-config", file, "--listen", "unix:///run/kms/kms.sock"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout).trim(), format!("ok: {file}"));

    // Without --listen the endpoint is not compared.
    let out = run(&["check-config", file]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // Another endpoint: the plugin would not be reached, exit 1 with the finding on stdout.
    let out = run(&["check-config", file, "--listen", "unix:///tmp/other.sock"]);
    assert_eq!(out.status.code(), Some(1));
    let findings = text(&out.stdout);
    assert!(findings.starts_with("error: "), "{findings}");
    assert!(findings.contains("unix:///tmp/other.sock"), "{findings}");
}

#[test]
fn rendered_v1_config_passes_with_a_deprecation_warning_only() {
    let dir = TempDir::new("render-v1");
    let out = run(&["encryption-config", "--api", "v1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("apiVersion: v1"), "{yaml}");
    assert!(
        yaml.contains("\"unix:///tmp/kms.sock\""),
        "default endpoint: {yaml}"
    );
    let file = dir.join("v1.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = run(&[
        "check-config",
        file.to_str().unwrap(),
        "--listen",
        "unix:///tmp/kms.sock",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let findings = text(&out.stdout);
    assert!(!findings.contains("error:"), "{findings}");
    assert!(
        findings.contains("warning:"),
        "KMS v1 is deprecated: {findings}"
    );
}

#[test]
fn invalid_rendered_config_is_refused_with_exit_2_and_nothing_on_stdout() {
    let out = run(&["encryption-config", "--name", "a:b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("kms.name"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn config_command_usage_errors_are_one_line_with_exit_2() {
    let dir = TempDir::new("config-errors");
    let missing = dir.join("missing.yaml");
    let not_utf8 = dir.join("binary.yaml");
    std::fs::write(&not_utf8, [0xff, 0xfe, 0x00]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["check-config"], "`check-config` needs <FILE>"),
        (
            vec!["check-config", missing.to_str().unwrap()],
            "cannot read",
        ),
        (
            vec!["check-config", not_utf8.to_str().unwrap()],
            "not UTF-8",
        ),
        (
            vec!["check-config", "x.yaml", "--listen", "tcp://1.2.3.4:5"],
            "only unix sockets",
        ),
        (
            vec!["check-config", "a.yaml", "b.yaml"],
            "unexpected argument",
        ),
        (vec!["encryption-config", "--api", "v3"], "--api"),
        (vec!["encryption-config", "--timeout", "0"], "--timeout"),
        (
            vec!["encryption-config", "--key-file", "k"],
            "does not apply",
        ),
        (
            vec!["check-config", "x.yaml", "--api", "v2"],
            "does not apply",
        ),
    ];
    for (args, needle) in cases {
        let out = run(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        // `unexpected argument` appends the usage text; every other error is one line.
        if needle != "unexpected argument" {
            assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        }
    }
}

#[test]
fn check_config_reports_a_damaged_file_with_exit_1() {
    let dir = TempDir::new("config-damaged");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: Wrong\n",
    )
    .unwrap();
    let out = run(&["check-config", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("error: "),
        "{}",
        text(&out.stdout)
    );
}

/// An EncryptionConfiguration for `secrets` with the given provider entries (YAML list items).
fn config(providers: &[&str]) -> String {
    let mut text = String::from(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n      - secrets\n    providers:\n",
    );
    for p in providers {
        text.push_str(p);
    }
    text
}

const KEY4C: &str = "      - kms:\n          apiVersion: v2\n          name: key4c-kms-plugin\n          endpoint: unix:///tmp/kms.sock\n          timeout: 3s\n";
const NEW: &str = "      - kms:\n          apiVersion: v2\n          name: kms-plugin\n          endpoint: unix:///run/kms-plugin/kms.sock\n          timeout: 3s\n";
const KEY4C_NAME_NEW_SOCKET: &str = "      - kms:\n          apiVersion: v2\n          name: key4c-kms-plugin\n          endpoint: unix:///run/kms-plugin/kms.sock\n          timeout: 3s\n";
const AESCBC: &str = "      - aescbc:\n          keys:\n            - name: key1\n              secret: a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=\n";
const AESCBC_OTHER: &str = "      - aescbc:\n          keys:\n            - name: key1\n              secret: enp6enp6enp6enp6enp6enp6enp6enp6enp6enp6eno=\n";
const IDENTITY: &str = "      - identity: {}\n";

/// `check-config --previous OLD NEW` through the binary: (exit code, stdout).
fn compare(dir: &TempDir, old: &str, new: &str) -> (Option<i32>, String) {
    let (o, n) = (dir.join("old.yaml"), dir.join("new.yaml"));
    std::fs::write(&o, old).unwrap();
    std::fs::write(&n, new).unwrap();
    let out = run(&[
        "check-config",
        "--previous",
        o.to_str().unwrap(),
        n.to_str().unwrap(),
    ]);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    (out.status.code(), text(&out.stdout))
}

#[test]
fn check_config_previous_accepts_each_safe_migration_step() {
    let dir = TempDir::new("compare-safe");
    let steps = [
        config(&[KEY4C]),
        config(&[KEY4C, NEW]), // phase A: the new reader added second
        config(&[NEW, KEY4C]), // phase B: the new provider writes
    ];
    for pair in steps.windows(2) {
        let (code, out) = compare(&dir, &pair[0], &pair[1]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.starts_with("ok: "), "no warning expected: {out}");
    }
    // From aescbc: the kms provider first, the old keys kept as readers: nothing lost.
    let (code, out) = compare(&dir, &config(&[AESCBC]), &config(&[NEW, AESCBC]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ok: "), "{out}");
}

#[test]
fn check_config_previous_warns_when_old_data_would_become_unreadable() {
    let dir = TempDir::new("compare-unsafe");
    let cases: &[(String, String, &[&str])] = &[
        // Reusing the Key4C name for the new plugin's socket.
        (
            config(&[KEY4C]),
            config(&[KEY4C_NAME_NEW_SOCKET]),
            &[
                "\"key4c-kms-plugin\" now points at unix:///run/kms-plugin/kms.sock",
                "was unix:///tmp/kms.sock",
                "k8s:enc:kms:v2:key4c-kms-plugin:",
            ],
        ),
        // Dropping the only provider that reads the old values.
        (
            config(&[NEW, KEY4C]),
            config(&[NEW]),
            &[
                "kms provider \"key4c-kms-plugin\"",
                "no longer in the list",
                "k8s:enc:kms:v2:key4c-kms-plugin:",
            ],
        ),
        // Switching the provider straight over, without a reader for the old data.
        (
            config(&[KEY4C]),
            config(&[NEW]),
            &["k8s:enc:kms:v2:key4c-kms-plugin:"],
        ),
        // From aescbc and identity: the old keys and plaintext need their readers.
        (
            config(&[AESCBC, IDENTITY]),
            config(&[NEW]),
            &["aescbc key \"key1\"", "k8s:enc:aescbc:v1:key1:", "plaintext"],
        ),
        (
            config(&[AESCBC]),
            config(&[NEW, AESCBC_OTHER]),
            &["other key material"],
        ),
        // The resource no longer encrypted at all.
        (
            config(&[NEW]),
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n      - configmaps\n    providers:\n".to_string() + NEW,
            &["resources[secrets]", "no longer listed"],
        ),
        // KMS v1 to v2 under the same name: the v1 values lose their reader.
        (
            config(&[&KEY4C.replace("apiVersion: v2", "apiVersion: v1")]),
            config(&[KEY4C]),
            &["k8s:enc:kms:v1:key4c-kms-plugin:"],
        ),
    ];
    for (old, new, needles) in cases {
        let (code, out) = compare(&dir, old, new);
        assert_eq!(code, Some(0), "warnings do not fail: {out}");
        assert!(out.contains("warning: "), "{new}\n{out}");
        for needle in *needles {
            assert!(out.contains(needle), "{needle:?} in {out}");
        }
        // Key material is compared, never shown.
        assert!(
            !out.contains("c2VjcmV0") && !out.contains("dGhpcyBp"),
            "{out}"
        );
    }
}

#[test]
fn check_config_previous_usage_errors() {
    let dir = TempDir::new("compare-errors");
    let new = dir.join("new.yaml");
    std::fs::write(&new, config(&[NEW])).unwrap();
    let missing = dir.join("missing.yaml");
    let out = run(&[
        "check-config",
        new.to_str().unwrap(),
        "--previous",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--previous") && err.contains("missing.yaml"),
        "{err}"
    );
    // An unreadable previous configuration is an error finding (exit 1), not silence.
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, "resources: [").unwrap();
    let out = run(&[
        "check-config",
        new.to_str().unwrap(),
        "--previous",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("error: <previous>"),
        "{}",
        text(&out.stdout)
    );
}
