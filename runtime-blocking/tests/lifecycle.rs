//! Socket lifecycle, signals, probe and CLI errors of the `kms-plugin` binary, end to end.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

use support::{Plugin, Served, TempDir, init_keys, run, wait_healthy};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn socket_is_created_with_mode_0600_and_removed_after_sigterm() {
    let served = Served::serve_at("sigterm", "sub/dir/kms.sock", &[]);
    let (sock, listen) = (&served.sock, &served.listen);
    let mode = std::fs::metadata(sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    wait_healthy(listen);
    assert_eq!(served.plugin.terminate(), 0);
    assert!(!sock.exists(), "socket must be unlinked on exit");
    let probe = run(&["probe", "--listen", listen]);
    assert_eq!(probe.status.code(), Some(1));
}

#[test]
fn stale_socket_is_reclaimed() {
    let dir = TempDir::new("stale");
    let key_file = init_keys(&dir);
    let sock = dir.join("kms.sock");
    drop(UnixListener::bind(&sock).unwrap()); // leaves a socket file nobody answers on
    assert!(sock.exists());
    let listen = format!("unix://{}", sock.display());
    let _plugin = Plugin::start(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    wait_healthy(&listen);
}

#[test]
fn live_listener_symlink_and_regular_file_are_refused() {
    let dir = TempDir::new("refuse");
    let key_file = init_keys(&dir);
    let key = key_file.to_str().unwrap();

    let live = dir.join("live.sock");
    let _listener = UnixListener::bind(&live).unwrap();
    let out = run(&[
        "serve",
        "--listen",
        &format!("unix://{}", live.display()),
        "--key-file",
        key,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("another process is listening"),
        "{}",
        stderr(&out)
    );
    assert!(live.exists());

    let link = dir.join("link.sock");
    std::os::unix::fs::symlink(&live, &link).unwrap();
    let out = run(&[
        "serve",
        "--listen",
        &format!("unix://{}", link.display()),
        "--key-file",
        key,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));

    let file = dir.join("file.sock");
    std::fs::write(&file, b"not a socket").unwrap();
    let out = run(&[
        "serve",
        "--listen",
        &format!("unix://{}", file.display()),
        "--key-file",
        key,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a socket"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"not a socket");
}

#[test]
fn keys_init_rotate_list() {
    let dir = TempDir::new("keys");
    let key_file = dir.join("keyring");
    let path = key_file.to_str().unwrap();
    assert!(run(&["keys", "init", "--key-file", path]).status.success());
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let before = std::fs::read(&key_file).unwrap();
    let again = run(&["keys", "init", "--key-file", path]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        before,
        "nothing overwritten"
    );
    assert!(
        run(&["keys", "rotate", "--key-file", path])
            .status
            .success()
    );
    let list = run(&["keys", "list", "--key-file", path]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().nth(1).unwrap().ends_with("current"), "{text}");
    assert!(text.contains("default v1 local:default:v1:"));
    // Never key bytes: the listing has only names, versions and key ids.
    let keyring = String::from_utf8_lossy(&std::fs::read(&key_file).unwrap()).into_owned();
    for token in keyring.split_whitespace().filter(|t| t.len() >= 40) {
        assert!(!text.contains(token));
    }
}

#[test]
fn bad_input_gives_one_clear_line_and_exit_2() {
    let dir = TempDir::new("errors");
    let missing = dir.join("missing");
    #[cfg_attr(all(feature = "vault", feature = "pkcs11"), allow(unused_mut))]
    let mut cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["serve".into(), "--bogus".into()],
            "unknown flag --bogus",
        ),
        (
            vec![
                "serve".into(),
                "--listen".into(),
                "tcp://127.0.0.1:1".into(),
            ],
            "only unix sockets",
        ),
        (
            vec!["serve".into(), "--status-version".into(), "v3".into()],
            "--status-version",
        ),
        (
            vec![
                "serve".into(),
                "--key-file".into(),
                missing.display().to_string(),
            ],
            "keys init",
        ),
        (
            vec!["serve".into(), "--socket-mode".into(), "999".into()],
            "--socket-mode",
        ),
        (
            vec!["keys".into(), "frobnicate".into()],
            "unknown keys subcommand",
        ),
        (vec!["probe".into(), "--force".into()], "does not apply"),
    ];
    // A provider this build leaves out names the cargo feature that adds it.
    #[cfg(not(feature = "vault"))]
    cases.push((
        vec!["serve".into(), "--provider".into(), "vault".into()],
        "--features vault",
    ));
    #[cfg(not(feature = "pkcs11"))]
    cases.push((
        vec!["serve".into(), "--provider".into(), "pkcs11".into()],
        "--features pkcs11",
    ));
    for (args, needle) in cases {
        let out = std::process::Command::new(support::BIN)
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err}"
        );
    }

    let key_file = init_keys(&dir);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["serve", "--key-file", key_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));

    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&key_file, b"garbage\n").unwrap();
    let out = run(&["serve", "--key-file", key_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

#[test]
fn probe_follows_health_when_the_key_file_breaks_and_is_restored() {
    let served = Served::serve("probe-health", &["--status-refresh", "0.2"]);
    let (plugin, listen, key_file) = (served.plugin, &served.listen, &served.keys);
    let good = std::fs::read(key_file).unwrap();
    let timeout = std::time::Duration::from_secs(20);
    wait_healthy(listen);

    // A corrupt key file: the next status refresh fails, healthz turns unhealthy. (Each wait
    // looks only after the line the previous one returned, so the "healthy" awaited below is
    // the recovery, not a start-up line.)
    std::fs::write(key_file, b"garbage\n").unwrap();
    plugin.wait_log(
        "warn  unhealthy cause=\"remote kms error: corrupt\"",
        timeout,
    );
    let probe = run(&["probe", "--listen", listen]);
    assert_eq!(
        probe.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&probe.stdout)
    );
    assert!(String::from_utf8_lossy(&probe.stdout).starts_with("unhealthy"));

    // Restored: healthy again without a restart.
    std::fs::write(key_file, &good).unwrap();
    plugin.wait_log("info  healthy", timeout);
    assert_eq!(run(&["probe", "--listen", listen]).status.code(), Some(0));
    assert_eq!(plugin.terminate(), 0);
}
