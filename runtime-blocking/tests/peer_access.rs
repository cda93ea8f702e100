//! Who may connect, through the built binary: the SO_PEERCRED gate with two real uids (the
//! test runs as root; a second client runs as `nobody` via `setpriv`), refusals logged
//! rate-limited and counted in /metrics, the socket-directory warning, and the random
//! temporary bind directory.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use support::{BIN, Plugin, TempDir, init_keys};

const WAIT: Duration = Duration::from_secs(20);
const NOBODY: &str = "65534";

/// Whether a second uid can be used; CI runs as root, so there it must.
fn running_as_root() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root || std::env::var_os("CI").is_none(),
        "CI runs the tests as root"
    );
    root
}

/// The binary where uid 65534 can run it: the build directory may sit where that uid cannot
/// reach (e.g. under /root), so a world-executable hard link (or, across filesystems, a copy)
/// in the test's directory, made world-readable.
fn binary_for_nobody(dir: &TempDir) -> PathBuf {
    let bin = dir.join("kms-plugin-for-nobody");
    if !bin.exists() {
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        if std::fs::hard_link(BIN, &bin).is_err() {
            std::fs::copy(BIN, &bin).unwrap();
        }
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

/// `kms-plugin probe` as uid/gid 65534 (`setpriv`, util-linux).
fn probe_as_nobody(dir: &TempDir, listen: &str) -> Output {
    let bin = binary_for_nobody(dir);
    // A copied binary can be briefly "busy" (ETXTBSY) while a child another test thread forked
    // still holds the copy's descriptor before its own exec; that ends within microseconds.
    for _ in 0..1000 {
        let out = Command::new("setpriv")
            .args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
            ])
            .arg(&bin)
            .args(["probe", "--listen", listen, "--timeout", "5"])
            .output()
            .expect("run setpriv (util-linux)");
        if String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            std::thread::yield_now();
            continue;
        }
        // 0 or 1 are the probe's answers; anything else means it did not run at all.
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "the probe did not run as {NOBODY}: {out:?}"
        );
        return out;
    }
    panic!("{} stayed busy", bin.display());
}

fn probe_as_root(listen: &str) -> Output {
    support::run(&["probe", "--listen", listen, "--timeout", "5"])
}

fn abstract_endpoint(tag: &str) -> String {
    let mut seed = [0u8; 8];
    getrandom::getrandom(&mut seed).unwrap();
    format!("unix:///@kms-{tag}-{:016x}", u64::from_le_bytes(seed))
}

fn start(dir: &TempDir, listen: &str, extra: &[&str]) -> (Plugin, String) {
    let key_file = init_keys(dir);
    let mut args = vec![
        "serve",
        "--listen",
        listen,
        "--key-file",
        key_file.to_str().unwrap(),
        "--metrics-addr",
        "127.0.0.1:0",
        "--log-format",
        "text",
    ];
    args.extend_from_slice(extra);
    let plugin = Plugin::spawn(
        Command::new(BIN).args(&args),
        &["listening", " healthy", "serving metrics"],
    );
    let line = plugin.wait_log("serving metrics", WAIT);
    let addr = support::metrics_addr(&line);
    (plugin, addr)
}

fn refused_total(addr: &str) -> u64 {
    let scrape = support::http_get(addr, "/metrics");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix("kms_plugin_peer_refused_total "))
        .unwrap_or_else(|| panic!("no refused counter in:\n{scrape}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn abstract_socket_admits_root_and_refuses_another_uid_by_default() {
    if !running_as_root() {
        eprintln!("skipped: needs root to run a second uid");
        return;
    }
    let dir = TempDir::new("peer-default");
    let listen = abstract_endpoint("peer");
    let (plugin, addr) = start(&dir, &listen, &[]);
    let (_, listening) = plugin.log.wait(0, "listening", WAIT);
    assert!(
        listening.contains("allowed_uids=0"),
        "root only: {listening}"
    );

    let root = probe_as_root(&listen);
    assert_eq!(root.status.code(), Some(0), "{root:?}");
    assert_eq!(refused_total(&addr), 0);

    // Two refusals in a row: both counted, one logged (rate limit), the uid named.
    for _ in 0..2 {
        let other = probe_as_nobody(&dir, &listen);
        assert_eq!(
            other.status.code(),
            Some(1),
            "nobody must not get a Status: {other:?}"
        );
        assert!(
            String::from_utf8_lossy(&other.stdout).starts_with("unhealthy"),
            "{other:?}"
        );
    }
    assert_eq!(refused_total(&addr), 2);
    let line = plugin.wait_log("refused a connection", WAIT);
    assert!(line.contains(&format!("peer_uid={NOBODY}")), "{line}");
    // Root still gets in.
    assert_eq!(probe_as_root(&listen).status.code(), Some(0));

    let log = plugin.log.clone();
    assert_eq!(plugin.terminate(), 0);
    log.wait(0, "stopped", WAIT);
    let refusals = log
        .lines()
        .iter()
        .filter(|l| l.contains("refused a connection"))
        .count();
    assert_eq!(refusals, 1, "rate-limited: {:#?}", log.lines());
}

#[test]
fn allow_uid_lets_the_listed_uid_in() {
    if !running_as_root() {
        eprintln!("skipped: needs root to run a second uid");
        return;
    }
    let dir = TempDir::new("peer-allow");
    let listen = abstract_endpoint("allow");
    let (plugin, addr) = start(&dir, &listen, &["--allow-uid", NOBODY]);
    let other = probe_as_nobody(&dir, &listen);
    assert_eq!(other.status.code(), Some(0), "{other:?}");
    // The plugin's own uid (root here) stays allowed: its probes run as it.
    assert_eq!(probe_as_root(&listen).status.code(), Some(0));
    assert_eq!(refused_total(&addr), 0);
    assert_eq!(plugin.terminate(), 0);
}

#[test]
fn allow_uid_applies_to_path_sockets_too() {
    if !running_as_root() {
        eprintln!("skipped: needs root to run a second uid");
        return;
    }
    let dir = TempDir::new("peer-path");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.join("kms.sock");
    let listen = format!("unix://{}", sock.display());
    // 0666 (forced) lets anyone open the file; the uid list still keeps nobody out.
    let (plugin, addr) = start(
        &dir,
        &listen,
        &[
            "--socket-mode",
            "0666",
            "--force-socket-mode",
            "--allow-uid",
            "0",
        ],
    );
    let other = probe_as_nobody(&dir, &listen);
    assert_eq!(other.status.code(), Some(1), "{other:?}");
    assert_eq!(refused_total(&addr), 1);
    assert_eq!(probe_as_root(&listen).status.code(), Some(0));
    assert_eq!(plugin.terminate(), 0);
}

#[test]
fn serve_warns_about_a_socket_directory_others_can_write() {
    let dir = TempDir::new("peer-dir");
    let key_file = init_keys(&dir);
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o750)).unwrap();

    let listen = format!("unix://{}", shared.join("kms.sock").display());
    let plugin = Plugin::start(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    let line = plugin.wait_log("writable by other users", WAIT);
    assert!(line.contains("warn"), "{line}");
    assert!(line.contains("1777, sticky"), "{line}");
    assert!(line.contains("/run/kms-plugin"), "{line}");
    let log = plugin.log.clone();
    assert_eq!(plugin.terminate(), 0);
    log.wait(0, "stopped", WAIT);

    let listen = format!("unix://{}", private.join("kms.sock").display());
    let plugin = Plugin::start(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    let log = plugin.log.clone();
    assert_eq!(plugin.terminate(), 0);
    log.wait(0, "stopped", WAIT);
    assert!(
        !log.lines()
            .iter()
            .any(|l| l.contains("writable by other users")),
        "{:#?}",
        log.lines()
    );
    // Nothing is left behind in the directory but nothing either at a predictable bind path.
    let leftovers: Vec<_> = std::fs::read_dir(&private)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_planted_directory_at_the_old_bind_path_does_not_matter() {
    // The bind directory used to be `.kms-plugin-bind-<pid>`: predictable, so another user
    // could plant it. Its name is random now; whatever is planted is left alone.
    let dir = TempDir::new("peer-bind");
    let key_file = init_keys(&dir);
    for pid in 1..=64 {
        std::fs::create_dir(dir.join(&format!(".kms-plugin-bind-{pid}"))).unwrap();
    }
    let listen = format!("unix://{}", dir.join("kms.sock").display());
    let plugin = Plugin::start(&[
        "--listen",
        &listen,
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(plugin.terminate(), 0);
    for pid in 1..=64 {
        assert!(dir.join(&format!(".kms-plugin-bind-{pid}")).is_dir());
    }
    let random: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kms-plugin-bind-") && n.len() == ".kms-plugin-bind-".len() + 16)
        .collect();
    assert!(
        random.is_empty(),
        "the bind directory is removed: {random:?}"
    );
}
