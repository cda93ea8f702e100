//! The runtime-level tests every binary must pass, run by runtime-blocking/tests/runtime_parity.rs
//! against `kms-plugin serve` and by runtime-smol/tests/runtime_parity.rs against `kms-plugin-smol`:
//! socket mode, stale socket reclaim, a live key rotation picked up without restart, SIGTERM
//! drain and unlink, `--shutdown-grace` for a request in flight (grace.rs), and abuse (a peer
//! that never reads while flooding PINGs or requests, half-open connections beyond the table,
//! rapid reset) with bounded RSS while a well-behaved client is answered throughout. Waits are bounded and on conditions.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use kms_plugin_core::h2::PREFACE;
use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::rpc::Code;
use kms_plugin_core::secret::Secret32;
use kms_plugin_testkit::client::{ClientResponse, RequestOptions, TestClient};
use kms_plugin_testkit::kms_messages as msg;

/// What [`Bin::start`] returns: the plugin, its socket and key file, and their directory.
pub use crate::support::Served;
use crate::support::{Plugin, TempDir, new_keyring, random_key, write_keyring};

pub mod grace;

/// A binary under test: its path and the arguments before the serve flags.
#[derive(Clone, Copy)]
pub struct Bin {
    pub path: &'static str,
    pub serve: &'static [&'static str],
}

impl Bin {
    fn start_in(&self, dir: TempDir, extra: &[&str]) -> Served {
        let keys = dir.join("keyring");
        if !keys.exists() {
            new_keyring(&keys);
        }
        let sock = dir.join("kms.sock");
        let listen = format!("unix://{}", sock.display());
        let mut args: Vec<&str> = self.serve.to_vec();
        if !extra.contains(&"--listen") {
            args.extend_from_slice(&["--listen", &listen]);
        }
        args.extend_from_slice(&["--key-file", keys.to_str().unwrap()]);
        args.extend_from_slice(&["--log-format", "text", "--log-level", "debug"]);
        args.extend_from_slice(extra);
        let plugin = Plugin::start_bin(self.path, &args);
        Served {
            plugin,
            sock,
            listen,
            keys,
            dir,
        }
    }

    pub fn start(&self, tag: &str, extra: &[&str]) -> Served {
        self.start_in(TempDir::new(tag), extra)
    }
}

/// A well-behaved client on its own connection.
pub struct Client {
    sock: UnixStream,
    client: TestClient,
}

impl Client {
    pub fn connect(path: &Path) -> Self {
        let mut sock = UnixStream::connect(path).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut client = TestClient::new();
        sock.write_all(&client.handshake()).unwrap();
        Self { sock, client }
    }

    /// One call, answered within the read timeout or panics.
    pub fn call(&mut self, path: &str, message: &[u8]) -> ClientResponse {
        let opts = RequestOptions::apiserver("localhost", Duration::from_secs(5));
        let (stream, bytes) = self.client.unary(path, message, &opts);
        self.sock.write_all(&bytes).unwrap();
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(r) = self.client.take_response(stream) {
                return r;
            }
            let n = self.sock.read(&mut buf).expect("an answer in time");
            assert!(n > 0, "the plugin closed a well-behaved connection");
            self.client.receive(&buf[..n]);
            if self.client.has_output() {
                self.sock.write_all(&self.client.pending_output()).unwrap();
            }
        }
    }

    /// v2 Status: (healthz, key id).
    pub fn status(&mut self) -> (String, String) {
        let r = self.call(msg::V2_STATUS, &msg::v2_status()).to_rpc();
        assert_eq!(r.code, Code::Ok, "{}", r.message);
        let s = msg::decode_status(&r);
        (s.healthz, s.key_id)
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn socket_mode(bin: Bin) {
    let served = bin.start("parity-mode", &[]);
    assert_eq!(mode(&served.sock), 0o600, "the default mode");
    drop(served);
    let served = bin.start("parity-mode-660", &["--socket-mode", "0660"]);
    assert_eq!(mode(&served.sock), 0o660);
    Client::connect(&served.sock).status();
}

pub fn stale_socket_is_reclaimed(bin: Bin) {
    let dir = TempDir::new("parity-stale");
    drop(UnixListener::bind(dir.join("kms.sock")).unwrap()); // the file stays, nobody listens
    let served = bin.start_in(dir, &[]);
    Client::connect(&served.sock).status();
}

pub fn keys_rotate_is_picked_up_live(bin: Bin) {
    let served = bin.start("parity-rotate", &["--status-refresh", "0.2"]);
    let mut client = Client::connect(&served.sock);
    let (_, before) = client.status();
    let mut keyring = Keyring::parse(&std::fs::read(&served.keys).unwrap()).unwrap();
    keyring
        .add_key("default", Secret32::from_bytes(random_key()))
        .unwrap();
    let rotated = keyring.current_key_id("default").unwrap();
    assert_ne!(rotated, before);
    write_keyring(&served.keys, &keyring);
    let hash = kms_plugin_core::metrics::hash_key_id(&rotated);
    served
        .plugin
        .wait_log(&format!("key_id_hash={hash}"), Duration::from_secs(20));
    assert_eq!(client.status().1, rotated, "Status reports the new key id");
    let enc = client.call(msg::V2_ENCRYPT, &msg::v2_encrypt(b"after rotation", "u"));
    assert_eq!(msg::decode_v2_encrypt(&enc.to_rpc()).key_id, rotated);
}

pub fn sigterm_drains_and_unlinks(bin: Bin) {
    let served = bin.start("parity-sigterm", &[]);
    let mut client = Client::connect(&served.sock);
    client.status();
    let sock = served.sock.clone();
    assert_eq!(served.plugin.terminate(), 0, "clean exit on SIGTERM");
    assert!(!sock.exists(), "socket unlinked");
    // The client saw GOAWAY then EOF, not a reset.
    let mut rest = Vec::new();
    let _ = client.sock.read_to_end(&mut rest);
    client.client.receive(&rest);
    assert_eq!(
        client.client.goaway().map(|g| g.1),
        Some(0),
        "GOAWAY(NO_ERROR)"
    );
}

/// On an abstract socket (no file mode to protect it) only root and our own uid may connect:
/// a peer running as `nobody` is closed before a byte is read, and the refusal is logged.
pub fn peer_gate_refuses_other_uids(bin: Bin) {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root || std::env::var_os("CI").is_none(),
        "CI runs the tests as root"
    );
    if !root {
        return; // a second uid needs root
    }
    let dir = TempDir::new("parity-gate");
    let name = format!(
        "kms-parity-gate-{}",
        dir.0.file_name().unwrap().to_string_lossy()
    );
    let listen = format!("unix:///@{name}");
    // The client is this test binary again, as uid 65534 (see `peer_gate_client`). The build
    // directory may sit where that uid cannot reach (e.g. under /root), so it runs a
    // world-executable hard link (or, across filesystems, a copy) in the test's directory.
    let client = dir.join("gate-client");
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = std::env::current_exe().unwrap();
    if std::fs::hard_link(&exe, &client).is_err() {
        std::fs::copy(&exe, &client).unwrap();
    }
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
    let served = bin.start_in(dir, &["--listen", &listen]);
    // A copied client can be briefly "busy" (ETXTBSY) while a child that another test thread
    // forked still holds the copy's descriptor before its own exec; that ends within microseconds.
    let run_client = || {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&client)
            .args([
                "--exact",
                "peer_gate_client",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(GATE_CLIENT, &name)
            .output()
            .expect("run setpriv (util-linux)")
    };
    let mut out = run_client();
    for _ in 0..1000 {
        if !String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            break;
        }
        std::thread::yield_now();
        out = run_client();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("gate client: closed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    served
        .plugin
        .wait_log("refused a connection from a uid", Duration::from_secs(20));
}

/// Names the abstract socket `peer_gate_client` connects to (unset: it does nothing).
const GATE_CLIENT: &str = "KMS_PARITY_GATE_CLIENT";

/// The refused peer of [`peer_gate_refuses_other_uids`], run in a child process: connects,
/// sends the HTTP/2 preface and says whether the plugin closed the connection.
pub fn peer_gate_client() {
    use std::os::linux::net::SocketAddrExt;
    let Some(name) = std::env::var_os(GATE_CLIENT) else {
        return;
    };
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_encoded_bytes()).unwrap();
    let mut s = UnixStream::connect_addr(&addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let mut buf = [0u8; 64];
    let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    println!(
        "gate client: {}",
        if closed { "closed" } else { "answered" }
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Writes `next()` chunks to `sock` until the peer stops reading (a write waits past the
/// timeout or fails) or `cap` octets went out; returns the octets written.
fn write_until_blocked(
    sock: &mut UnixStream,
    cap: usize,
    mut next: impl FnMut() -> Vec<u8>,
) -> usize {
    sock.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut written = 0;
    while written < cap {
        let chunk = next();
        match sock.write(&chunk) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => break,
        }
    }
    written
}

fn pings(count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 17);
    for i in 0..count {
        out.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&(i as u64).to_be_bytes());
    }
    out
}

/// Abuse from four kinds of peers; the well-behaved client is answered after each, and the
/// plugin's RSS stays far below the pod limit.
pub fn abuse_keeps_rss_bounded_and_a_good_client_answered(bin: Bin) {
    const CAP: usize = 64 << 20;
    let served = bin.start("parity-abuse", &[]);
    let pid = served.plugin.pid();
    let mut good = Client::connect(&served.sock);
    good.status();
    let baseline = rss_kib(pid);
    let mut peak = baseline;
    let mut check = |good: &mut Client, what: &str| {
        let (healthz, _) = good.status();
        assert_eq!(healthz, "ok", "after {what}");
        peak = peak.max(rss_kib(pid));
    };

    // 1. A PING flood from a peer that never reads: the plugin stops reading it.
    let mut flood = UnixStream::connect(&served.sock).unwrap();
    flood.write_all(&TestClient::new().handshake()).unwrap();
    let sent = write_until_blocked(&mut flood, CAP, || pings(4096));
    assert!(
        sent < CAP,
        "the plugin kept reading a peer that never reads ({sent} octets)"
    );
    eprintln!(
        "{}: PING flood stopped being read after {sent} octets",
        bin.path
    );
    check(&mut good, "a PING flood");

    // 2. A request flood from a peer that never reads.
    let mut flood2 = UnixStream::connect(&served.sock).unwrap();
    let mut k = TestClient::new();
    flood2.write_all(&k.handshake()).unwrap();
    let opts = RequestOptions::apiserver("localhost", Duration::from_secs(5));
    let status = msg::v2_status();
    let sent = write_until_blocked(&mut flood2, CAP, || {
        let mut batch = Vec::new();
        for _ in 0..64 {
            batch.extend(k.unary(msg::V2_STATUS, &status, &opts).1);
        }
        batch
    });
    assert!(
        sent < CAP,
        "a request flood was read without bound ({sent} octets)"
    );
    eprintln!(
        "{}: request flood stopped being read after {sent} octets",
        bin.path
    );
    check(&mut good, "a request flood");

    // 3. More half-open connections than the table holds: new clients still get in.
    let half_open: Vec<UnixStream> = (0..300)
        .filter_map(|_| {
            let mut s = UnixStream::connect(&served.sock).ok()?;
            s.write_all(&PREFACE[..16]).ok()?;
            Some(s)
        })
        .collect();
    assert!(half_open.len() > 256, "{} connected", half_open.len());
    let mut newcomer = Client::connect(&served.sock);
    newcomer.status();
    check(&mut good, "300 half-open connections");
    drop(half_open);

    // 4. Rapid reset (CVE-2023-44487): HEADERS + RST_STREAM, again and again.
    let mut reset = UnixStream::connect(&served.sock).unwrap();
    let mut k = TestClient::new();
    reset.write_all(&k.handshake()).unwrap();
    let _ = write_until_blocked(&mut reset, 8 << 20, || {
        let mut batch = Vec::new();
        for _ in 0..64 {
            let (id, bytes) = k.unary(msg::V2_STATUS, &status, &opts);
            batch.extend(bytes);
            batch.extend(k.cancel(id, 8));
        }
        batch
    });
    check(&mut good, "a rapid-reset flood");

    let grown = peak.saturating_sub(baseline);
    eprintln!("{}: RSS baseline {baseline} KiB, peak {peak} KiB", bin.path);
    assert!(
        grown < 48 * 1024,
        "RSS grew by {grown} KiB (baseline {baseline} KiB, peak {peak} KiB)"
    );
    drop((flood, flood2, reset));
    assert_eq!(served.plugin.terminate(), 0);
}

/// Seconds since `start`, for messages.
pub fn since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Every parity test as a `#[test]` against `$bin` (a [`Bin`]).
#[macro_export]
macro_rules! parity_tests {
    ($bin:expr) => {
        #[test]
        fn socket_mode() {
            parity::socket_mode($bin);
        }
        #[test]
        fn stale_socket_is_reclaimed() {
            parity::stale_socket_is_reclaimed($bin);
        }
        #[test]
        fn keys_rotate_is_picked_up_live() {
            parity::keys_rotate_is_picked_up_live($bin);
        }
        #[test]
        fn sigterm_drains_and_unlinks() {
            parity::sigterm_drains_and_unlinks($bin);
        }
        #[test]
        fn peer_gate_refuses_other_uids() {
            parity::peer_gate_refuses_other_uids($bin);
        }
        #[test]
        fn peer_gate_client() {
            parity::peer_gate_client();
        }
        #[test]
        fn shutdown_grace_answers_a_request_in_flight() {
            parity::grace::shutdown_grace_answers_a_request_in_flight($bin);
        }
        #[test]
        fn shutdown_grace_bounds_a_request_that_never_completes() {
            parity::grace::shutdown_grace_bounds_a_request_that_never_completes($bin);
        }
        #[test]
        fn abuse_keeps_rss_bounded_and_a_good_client_answered() {
            parity::abuse_keeps_rss_bounded_and_a_good_client_answered($bin);
        }
    };
}
