//! The command line of the built binary: help on every command, `--version` and `version
//! --output json`, environment variables for flags, exit code 2 naming the flag on misuse,
//! shell completions, and the socket-mode guard.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use support::{Plugin, TempDir, init_keys, run};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(support::BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kms-plugin")
}

const COMMANDS: &[&[&str]] = &[
    &[],
    &["serve"],
    &["keys"],
    &["keys", "init"],
    &["keys", "rotate"],
    &["keys", "stage"],
    &["keys", "promote"],
    &["keys", "list"],
    &["keys", "status"],
    &["probe"],
    &["encryption-config"],
    &["check-config"],
    &["version"],
    &["completions"],
];

#[test]
fn every_command_has_short_and_long_help() {
    for command in COMMANDS {
        for flag in ["-h", "--help"] {
            let mut args = command.to_vec();
            args.push(flag);
            let out = run(&args);
            let help = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{args:?}: {}",
                text(&out.stderr)
            );
            assert!(help.contains("Usage: kms-plugin"), "{args:?}: {help}");
            if let Some(last) = command.last() {
                assert!(help.contains(&format!("{last} ")), "{args:?}: {help}");
            }
        }
    }
    // `help` as a command, too.
    let out = run(&["help", "serve"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("--listen <ENDPOINT>"));
    // Serve's help documents the environment variable of each flag.
    let help = text(&run(&["serve", "--help"]).stdout);
    for var in [
        "KMS_PLUGIN_LISTEN",
        "KMS_PLUGIN_KEY_FILE",
        "KMS_PLUGIN_SOCKET_MODE",
        "KMS_PLUGIN_SHUTDOWN_GRACE",
    ] {
        assert!(help.contains(var), "{var}: {help}");
    }
}

#[test]
fn version_flag_and_json_agree_on_version_commit_and_providers() {
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let line = text(&out.stdout);
    let out = run(&["version", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = json["version"].as_str().unwrap();
    let commit = json["commit"].as_str().unwrap();
    let providers: Vec<&str> = json["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert!(!commit.is_empty());
    assert!(
        line.starts_with(&format!("kms-plugin {version} ")),
        "{line}"
    );
    assert!(line.contains(&format!("commit {commit}")), "{line}");
    assert!(
        line.contains(&format!("providers: {}", providers.join(", "))),
        "{line}"
    );
    assert_eq!(providers[0], "local");
    assert_eq!(providers.contains(&"vault"), cfg!(feature = "vault"));
    assert_eq!(providers.contains(&"pkcs11"), cfg!(feature = "pkcs11"));
    // Built from this checkout (unless the build was told the commit explicitly). build.rs's
    // variables reach this test's compilation too, so it knows where the commit came from.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Ok(head) = head
        && head.status.success()
        && env!("KMS_PLUGIN_GIT_COMMIT_SOURCE") == "git"
    {
        assert_eq!(commit, text(&head.stdout).trim());
    }
    // `version` without flags prints the --version line; `-V` too, on any command.
    assert_eq!(text(&run(&["version"]).stdout), line);
    let facts = line.strip_prefix("kms-plugin").unwrap();
    assert!(text(&run(&["probe", "-V"]).stdout).ends_with(facts));
}

#[test]
fn misuse_exits_2_with_one_line_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bogus"], "unknown flag --bogus for `serve`"),
        (&["serve", "--lisen", "x"], "did you mean --listen?"),
        (&["probe", "--timeout", "-1"], "--timeout"),
        (&["probe", "--timeout"], "--timeout needs a value"),
        (&["serve", "--log-level", "loud"], "--log-level \"loud\""),
        (&["keys", "init"], "--key-file"),
        (
            &["keys"],
            "`keys` needs a subcommand: init, rotate, stage, promote, list, status",
        ),
        (&["frobnicate"], "unknown command \"frobnicate\""),
        (&["version", "--output", "xml"], "--output"),
        (&["completions", "tcsh"], "tcsh"),
        (
            &["serve", "--listen", "unix:///a", "--listen", "unix:///b"],
            "--listen",
        ),
        (
            &["probe", "--socket-mode", "0600"],
            "it is a flag of `serve`",
        ),
        (&["serve", "--allow-uid", "root"], "--allow-uid \"root\""),
    ];
    for (args, needle) in cases {
        let out = run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn flags_may_come_before_the_command_as_before() {
    let dir = TempDir::new("cli-order");
    let key_file = dir.join("keyring");
    let path = key_file.to_str().unwrap();
    let out = run(&["--key-file", path, "keys", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&[&format!("--key-file={path}"), "keys", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("default v1"));
    let out = run(&["--api", "v1", "encryption-config"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("apiVersion: v1"));
    // Flags alone still mean serve.
    let out = run(&["--bogus"]);
    assert!(text(&out.stderr).contains("for `serve`"));
}

#[test]
fn flags_come_from_kms_plugin_environment_variables() {
    // A value in the environment is used...
    let out = run_env(&["encryption-config"], &[("KMS_PLUGIN_API", "v1")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("apiVersion: v1"));
    let out = run_env(
        &["encryption-config"],
        &[("KMS_PLUGIN_LISTEN", "unix:///run/kms-plugin/kms.sock")],
    );
    assert!(text(&out.stdout).contains("\"unix:///run/kms-plugin/kms.sock\""));
    // ...the command line wins over it...
    let out = run_env(
        &["encryption-config", "--api", "v2"],
        &[("KMS_PLUGIN_API", "v1")],
    );
    assert!(text(&out.stdout).contains("apiVersion: v2"));
    // ...and a bad one is named.
    let out = run_env(&["probe"], &[("KMS_PLUGIN_TIMEOUT", "soon")]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--timeout") && err.contains("KMS_PLUGIN_TIMEOUT"),
        "{err}"
    );
    // Serve reads its flags from the environment too.
    let dir = TempDir::new("cli-env");
    let key_file = init_keys(&dir);
    let sock = dir.join("env.sock");
    let listen = format!("unix://{}", sock.display());
    let mut cmd = Command::new(support::BIN);
    cmd.env("KMS_PLUGIN_LISTEN", &listen)
        .env("KMS_PLUGIN_KEY_FILE", &key_file)
        .env("KMS_PLUGIN_SOCKET_MODE", "0640")
        .env("KMS_PLUGIN_LOG_FORMAT", "text");
    let plugin = Plugin::spawn(&mut cmd, &["listening", " healthy"]);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let probe = run_env(&["probe"], &[("KMS_PLUGIN_LISTEN", &listen)]);
    assert_eq!(probe.status.code(), Some(0), "{}", text(&probe.stdout));
    assert_eq!(plugin.terminate(), 0);
}

#[test]
fn kms_key_id_still_names_the_key() {
    let dir = TempDir::new("cli-key-id");
    let key_file = dir.join("keyring");
    let path = key_file.to_str().unwrap();
    let out = run_env(
        &["keys", "init", "--key-file", path],
        &[("KMS_KEY_ID", "from-env")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let list = text(&run(&["keys", "list", "--key-file", path]).stdout);
    assert!(list.contains("from-env v1 local:from-env:v1:"), "{list}");
}

#[test]
fn completions_are_generated_for_common_shells() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = text(&out.stdout);
        assert!(script.contains("kms-plugin"), "{shell}");
        assert!(script.contains("encryption-config"), "{shell}");
        assert!(script.contains("socket-mode"), "{shell}");
    }
}

#[test]
fn a_socket_mode_open_to_others_needs_force() {
    let dir = TempDir::new("cli-mode");
    let key_file = init_keys(&dir);
    let sock = dir.join("wide.sock");
    let listen = format!("unix://{}", sock.display());
    let key = key_file.to_str().unwrap();
    for mode in ["0666", "0604", "0662"] {
        let out = run(&[
            "serve",
            "--listen",
            &listen,
            "--key-file",
            key,
            "--socket-mode",
            mode,
        ]);
        assert_eq!(out.status.code(), Some(2), "{mode}");
        let err = text(&out.stderr);
        assert!(
            err.contains("--socket-mode") && err.contains("--force-socket-mode"),
            "{err}"
        );
        assert!(!sock.exists());
    }
    let plugin = Plugin::start(&[
        "--listen",
        &listen,
        "--key-file",
        key,
        "--socket-mode",
        "0666",
        "--force-socket-mode",
    ]);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    assert_eq!(plugin.terminate(), 0);
}

/// A SIGTERM at any moment of start-up never leaves the socket behind: the handlers are
/// installed before the socket is bound, so a signal that arrives after the bind takes the
/// orderly path (drain, unlink) instead of killing the process with the socket in place. The
/// signal is sent right after spawning, so it lands somewhere in start-up (before the handlers:
/// the process dies before binding; after them: it stops in order).
#[test]
fn sigterm_during_start_up_leaves_no_socket() {
    let dir = TempDir::new("cli-early-term");
    let key_file = init_keys(&dir);
    for round in 0..10 {
        let sock = dir.join(&format!("early-{round}.sock"));
        let mut child = Command::new(support::BIN)
            .args([
                "serve",
                "--listen",
                &format!("unix://{}", sock.display()),
                "--key-file",
                key_file.to_str().unwrap(),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert!(
            !sock.exists(),
            "round {round}: socket left behind after {status:?}"
        );
    }
}
