//! The first promise through the built binary, with real processes and real files: nothing
//! encrypted becomes undecryptable. A key file replaced by one that lacks a loaded version is
//! refused while serving (healthz, log and metric name it) and, after a restart on the older
//! file, Decrypt names the lost version and the fix; concurrent `keys rotate` runs never lose a
//! reported version; a truncated key file is refused; `keys init --force` keeps a backup.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;
#[path = "support/tonic_v2.rs"]
mod tonic_v2;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{BIN, Plugin, TempDir, init_keys, run};
use tonic_v2::Client;

const WAIT: Duration = Duration::from_secs(20);

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Replaces `path` with `bytes` the way `cp` + `mv` would (a new inode, mode 0600).
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("incoming");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn keys(args: &[&str], key_file: &Path) -> String {
    let mut full = vec!["keys"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--key-file", key_file.to_str().unwrap()]);
    let out = run(&full);
    assert!(out.status.success(), "keys {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn serve(key_file: &Path, sock: &Path, extra: &[&str]) -> Plugin {
    let listen = format!("unix://{}", sock.display());
    let mut args = vec![
        "--listen",
        listen.as_str(),
        "--key-file",
        key_file.to_str().unwrap(),
        "--status-refresh",
        "0.2",
    ];
    args.extend_from_slice(extra);
    Plugin::start(&args)
}

fn probe(sock: &Path) -> (Option<i32>, String) {
    let out = run(&["probe", "--listen", &format!("unix://{}", sock.display())]);
    (out.status.code(), text(&out))
}

/// GET `path` from the metrics responder at `addr` (HTTP/1.0, whole body).

#[test]
fn a_reload_that_drops_a_version_is_refused_while_serving_and_named_after_a_restart() {
    let dir = TempDir::new("drop-version");
    let key_file = init_keys(&dir);
    let older = std::fs::read(&key_file).unwrap();
    keys(&["rotate"], &key_file);
    let newer = std::fs::read(&key_file).unwrap();
    let sock = dir.join("kms.sock");
    let listen = format!("unix://{}", sock.display());
    // Started by hand: the metrics line comes after "listening", which `serve` waits for.
    let plugin = Plugin::start_bin(
        BIN,
        &[
            "serve",
            "--listen",
            &listen,
            "--key-file",
            key_file.to_str().unwrap(),
            "--status-refresh",
            "0.2",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ],
    );
    let metrics_line = plugin.wait_log("serving metrics", WAIT);
    let addr = support::metrics_addr(&metrics_line);
    support::wait_healthy(&format!("unix://{}", sock.display()));
    let mut client = Client::connect(&sock);
    let v2_key_id = client.status().key_id;
    assert!(v2_key_id.starts_with("local:default:v2:"), "{v2_key_id}");
    let secret = client.encrypt(b"written under v2").unwrap();
    assert_eq!(secret.key_id, v2_key_id);

    // An operator restores the older backup while the plugin runs: refused, keys kept.
    replace_file(&key_file, &older);
    let line = plugin.wait_log("key file refused", WAIT);
    assert!(line.contains("default v2"), "{line}");
    assert!(line.contains(key_file.to_str().unwrap()), "{line}");
    plugin.wait_log("cause=\"remote kms error: key_version_missing\"", WAIT);
    let status = client.status();
    // healthz names the file and the version (the bounded cause is in the log line above).
    assert!(
        status
            .healthz
            .starts_with("remote kms error: key_version_missing: key file ")
            && status.healthz.contains(key_file.to_str().unwrap())
            && status.healthz.contains("default v2"),
        "{}",
        status.healthz
    );
    assert_eq!(
        status.key_id, v2_key_id,
        "the plugin keeps the version it loaded"
    );
    let (code, out) = probe(&sock);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("key_version_missing"), "{out}");
    // Still serving: new data under v2, old data still opens.
    let more = client.encrypt(b"more").unwrap();
    assert_eq!(more.key_id, v2_key_id);
    assert_eq!(client.decrypt(&secret).unwrap(), b"written under v2");
    let scrape = support::http_get(&addr, "/metrics");
    let refused = scrape
        .lines()
        .find(|l| l.starts_with("kms_plugin_key_file_refused{"))
        .unwrap_or_else(|| panic!("no refusal metric:\n{scrape}"));
    assert!(refused.ends_with(" 1"), "{refused}");
    assert!(refused.contains("versions=\"default v2\""), "{refused}");
    assert!(refused.contains(key_file.to_str().unwrap()), "{refused}");
    assert!(scrape.contains("kms_plugin_keyring_versions 2"), "{scrape}");

    // A restart on the older file: Decrypt of v2 data names the version and the fix.
    drop(client);
    assert_eq!(plugin.terminate(), 0);
    let plugin = serve(&key_file, &sock, &[]);
    let mut client = Client::connect(&sock);
    let err = client.decrypt(&secret).unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("default v2"), "{}", err.message());
    assert!(
        err.message().contains("restore the newer key file"),
        "{}",
        err.message()
    );
    // ...and so does healthz, until a Decrypt under it succeeds.
    let healthz = client.status().healthz;
    assert!(
        healthz.starts_with("key version missing: key file ") && healthz.contains("default v2"),
        "{healthz}"
    );

    // Restoring the newer file heals it without a restart.
    replace_file(&key_file, &newer);
    assert_eq!(client.decrypt(&secret).unwrap(), b"written under v2");
    assert_eq!(client.decrypt(&more).unwrap(), b"more");
    assert_eq!(client.status().healthz, "ok");
    drop(client);
    assert_eq!(plugin.terminate(), 0);
}

#[test]
fn concurrent_rotations_never_lose_a_reported_version() {
    let dir = TempDir::new("concurrent-rotate");
    let key_file = init_keys(&dir);
    let runs: Vec<_> = (0..12)
        .map(|_| {
            Command::new(BIN)
                .args(["keys", "rotate", "--key-file", key_file.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut reported = Vec::new();
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let key_id = stdout
            .split_whitespace()
            .find(|w| w.starts_with("local:default:v"))
            .unwrap_or_else(|| panic!("no key id reported: {stdout}"))
            .trim_end_matches(';')
            .to_string();
        reported.push(key_id);
    }
    let mut unique = reported.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        12,
        "two rotations reported one version: {reported:?}"
    );
    let list = keys(&["list"], &key_file);
    assert_eq!(list.lines().count(), 13, "{list}");
    for key_id in &reported {
        assert!(
            list.contains(key_id.as_str()),
            "{key_id} missing from:\n{list}"
        );
    }
    assert!(list.contains("default v13 "), "{list}");
    let lock = dir.join("keyring.lock");
    let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn a_truncated_key_file_is_refused_at_start_by_keys_and_while_serving() {
    let dir = TempDir::new("truncated");
    let key_file = init_keys(&dir);
    keys(&["rotate"], &key_file);
    let whole = std::fs::read(&key_file).unwrap();
    let cut = &whole[..whole.len() * 2 / 3];
    let sock = dir.join("kms.sock");

    // Cut while serving: refused, the plugin keeps serving its keys.
    let plugin = serve(&key_file, &sock, &[]);
    support::wait_healthy(&format!("unix://{}", sock.display()));
    let mut client = Client::connect(&sock);
    let secret = client.encrypt(b"before the cut").unwrap();
    replace_file(&key_file, cut);
    let line = plugin.wait_log("key file refused", WAIT);
    assert!(line.contains("truncated"), "{line}");
    assert_eq!(client.decrypt(&secret).unwrap(), b"before the cut");
    assert!(client.encrypt(b"after").is_ok());
    drop(client);
    assert_eq!(plugin.terminate(), 0);

    // At start and for `keys`: refused with the cause and the fix; nothing written.
    let out = run(&["serve", "--key-file", key_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
    assert!(text(&out).contains("restore"), "{}", text(&out));
    let out = run(&["keys", "rotate", "--key-file", key_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
    assert_eq!(std::fs::read(&key_file).unwrap(), cut, "nothing written");
}

#[test]
fn init_force_keeps_the_previous_file_as_a_backup() {
    let dir = TempDir::new("init-force");
    let key_file = init_keys(&dir);
    let before = std::fs::read(&key_file).unwrap();
    let out = keys(&["init", "--force"], &key_file);
    let backup = out
        .split_whitespace()
        .find(|w| w.contains(".bak-"))
        .unwrap_or_else(|| panic!("no backup named: {out}"));
    let backup = Path::new(backup);
    assert_eq!(std::fs::read(backup).unwrap(), before);
    let mode = std::fs::metadata(backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_ne!(std::fs::read(&key_file).unwrap(), before);
    // A second --force in the same second gets its own backup.
    let again = keys(&["init", "--force"], &key_file);
    assert!(again.contains(".bak-"), "{again}");
    let backups = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".bak-")
        })
        .count();
    assert_eq!(backups, 2);
}

/// Encrypts through each plugin and decrypts through the other, then decrypts everything
/// written so far through both: no Decrypt may fail at any step.
fn cross_check(
    step: &str,
    a: &mut Client,
    b: &mut Client,
    written: &mut Vec<(Vec<u8>, kms_plugin_proto::v2::EncryptResponse)>,
) {
    for (from, plain) in [
        ("a", format!("{step} via a")),
        ("b", format!("{step} via b")),
    ] {
        let writer = if from == "a" { &mut *a } else { &mut *b };
        let enc = writer
            .encrypt(plain.as_bytes())
            .unwrap_or_else(|e| panic!("{step}: Encrypt through {from}: {e:?}"));
        written.push((plain.into_bytes(), enc));
    }
    for (plain, enc) in written.iter() {
        for (name, reader) in [("a", &mut *a), ("b", &mut *b)] {
            let got = reader.decrypt(enc).unwrap_or_else(|e| {
                panic!(
                    "{step}: Decrypt through {name} of data under {}: {e:?}",
                    enc.key_id
                )
            });
            assert_eq!(&got, plain, "{step}");
        }
    }
}

fn fingerprint(key_file: &Path) -> String {
    let status = keys(&["status"], key_file);
    status
        .split_whitespace()
        .find(|w| w.starts_with("kr1:"))
        .unwrap_or_else(|| panic!("no fingerprint: {status}"))
        .to_string()
}

#[test]
fn staged_rotation_across_two_hosts_never_fails_a_decrypt() {
    let dir = TempDir::new("staged");
    let file_a = init_keys(&dir);
    let file_b = dir.join("host-b-keyring");
    replace_file(&file_b, &std::fs::read(&file_a).unwrap());
    let (sock_a, sock_b) = (dir.join("a.sock"), dir.join("b.sock"));
    let plugin_a = serve(&file_a, &sock_a, &[]);
    let plugin_b = serve(&file_b, &sock_b, &[]);
    support::wait_healthy(&format!("unix://{}", sock_a.display()));
    support::wait_healthy(&format!("unix://{}", sock_b.display()));
    let (mut a, mut b) = (Client::connect(&sock_a), Client::connect(&sock_b));
    let mut written = Vec::new();
    cross_check("start", &mut a, &mut b, &mut written);
    let v1 = a.status().key_id;
    assert_eq!(b.status().key_id, v1, "same file, same key id");

    // 1. Stage on host A: A can decrypt v2 but still encrypts under v1.
    let out = keys(&["stage"], &file_a);
    assert!(out.contains("staged default"), "{out}");
    plugin_a.wait_log("key file reloaded", WAIT);
    assert_eq!(a.status().key_id, v1, "a staged version is not current");
    cross_check("staged on a", &mut a, &mut b, &mut written);
    let listed = keys(&["list"], &file_a);
    assert!(
        listed.contains("default v2 ") && listed.contains(" staged"),
        "{listed}"
    );

    // 2. Copy A's file to host B.
    replace_file(&file_b, &std::fs::read(&file_a).unwrap());
    plugin_b.wait_log("key file reloaded", WAIT);
    assert_eq!(fingerprint(&file_a), fingerprint(&file_b));
    cross_check("copied to b", &mut a, &mut b, &mut written);

    // 3. Promote on A: A encrypts under v2, which B already decrypts.
    let out = keys(&["promote"], &file_a);
    assert!(out.contains("promoted default v2"), "{out}");
    plugin_a.wait_log("remote key id changed", WAIT);
    let v2 = a.status().key_id;
    assert!(v2.starts_with("local:default:v2:"), "{v2}");
    assert_ne!(
        fingerprint(&file_a),
        fingerprint(&file_b),
        "hosts differ until B promotes"
    );
    cross_check("promoted on a", &mut a, &mut b, &mut written);
    assert!(written.iter().any(|(_, e)| e.key_id == v2));

    // 4. Promote on B: both encrypt under v2; the files are identical again.
    keys(&["promote"], &file_b);
    plugin_b.wait_log("remote key id changed", WAIT);
    assert_eq!(b.status().key_id, v2);
    cross_check("promoted on b", &mut a, &mut b, &mut written);
    assert_eq!(fingerprint(&file_a), fingerprint(&file_b));
    assert_eq!(
        std::fs::read(&file_a).unwrap(),
        std::fs::read(&file_b).unwrap()
    );
    let again = keys(&["promote"], &file_b);
    assert!(again.contains("already current"), "{again}");

    // probe prints the fingerprint of the host's key file next to the plugin's answer, and,
    // with no health warning (the local provider has none), nothing else.
    let listen_a = format!("unix://{}", sock_a.display());
    let out = run(&[
        "probe",
        "--listen",
        &listen_a,
        "--key-file",
        file_a.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).starts_with("ok version=")
            && text(&out).ends_with(&format!(" keyring={}\n", fingerprint(&file_a)))
            && text(&out).lines().count() == 1,
        "{}",
        text(&out)
    );
    drop((a, b));
    assert_eq!(plugin_a.terminate(), 0);
    assert_eq!(plugin_b.terminate(), 0);
}

#[test]
fn a_format_1_key_file_is_served_and_upgraded_by_the_next_write() {
    let dir = TempDir::new("format-1");
    let key_file = dir.join("keyring");
    let v1_text = "kms-plugin-keyring v1\n\
                   key default 1 AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk=\n";
    replace_file(&key_file, v1_text.as_bytes());
    let sock = dir.join("kms.sock");
    let plugin = serve(&key_file, &sock, &[]);
    support::wait_healthy(&format!("unix://{}", sock.display()));
    let mut client = Client::connect(&sock);
    let old = client.encrypt(b"under a format-1 file").unwrap();
    assert!(
        old.key_id.starts_with("local:default:v1:"),
        "{}",
        old.key_id
    );

    // The first write upgrades the file; the running plugin accepts it (nothing lost).
    keys(&["rotate"], &key_file);
    let written = String::from_utf8(std::fs::read(&key_file).unwrap()).unwrap();
    assert!(written.starts_with("kms-plugin-keyring v2\n"), "{written}");
    assert!(written.contains("AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk="));
    assert!(written.lines().last().unwrap().starts_with("end 2 sha256:"));
    // The reload, then (after it, so not the start-up one) the new key id.
    plugin.wait_log("key file reloaded", WAIT);
    plugin.wait_log("remote key id changed", WAIT);
    let new = client.encrypt(b"under format 2").unwrap();
    assert!(
        new.key_id.starts_with("local:default:v2:"),
        "{}",
        new.key_id
    );
    assert_eq!(client.decrypt(&old).unwrap(), b"under a format-1 file");
    assert_eq!(client.decrypt(&new).unwrap(), b"under format 2");
    drop(client);
    assert_eq!(plugin.terminate(), 0);
}

#[test]
fn a_keys_command_waits_for_another_holding_the_lock_and_says_so() {
    use std::io::BufRead;
    let dir = TempDir::new("lock-wait");
    let key_file = init_keys(&dir);
    // Another `keys` command (played by this test) holds the write lock.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("keyring.lock"))
        .unwrap();
    #[allow(clippy::incompatible_msrv)] // the pinned toolchain (1.95) has File::lock
    lock.lock().unwrap();
    let mut child = Command::new(BIN)
        .args(["keys", "rotate", "--key-file", key_file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("waiting for") && line.contains("keyring.lock"),
        "{line}"
    );
    // Nothing written while the other holds the lock.
    assert_eq!(keys(&["list"], &key_file).lines().count(), 1);
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("default:v2"));
    assert_eq!(keys(&["list"], &key_file).lines().count(), 2);
}
