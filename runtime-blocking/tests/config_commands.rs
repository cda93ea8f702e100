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
