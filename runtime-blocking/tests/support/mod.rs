//! Shared helpers for the runtime's end-to-end tests (runtime-blocking's and, by `#[path]`,
//! runtime-smol's): temp dirs, keyring files, a plugin process whose readiness is read from its
//! own "listening" log line, and the Python grpcio client.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use kms_plugin_core::keyring::Keyring;
use kms_plugin_core::secret::Secret32;

pub const BIN: &str = match option_env!("CARGO_BIN_EXE_kms-plugin") {
    Some(bin) => bin,
    None => "kms-plugin",
};

/// A fresh private directory under the system temp dir (removed on drop).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let mut seed = [0u8; 8];
        getrandom::getrandom(&mut seed).unwrap();
        let dir = std::env::temp_dir().join(format!("kms-{tag}-{:016x}", u64::from_le_bytes(seed)));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run kms-plugin")
}

pub fn init_keys(dir: &TempDir) -> PathBuf {
    let key_file = dir.join("keyring");
    let out = run(&["keys", "init", "--key-file", key_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    key_file
}

/// 32 fresh random bytes (a key).
pub fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).unwrap();
    key
}

/// Writes `keyring` to `path` (0600) by rename, the way `keys rotate` replaces the file: a
/// reader never sees a partial file.
pub fn write_keyring(path: &Path, keyring: &Keyring) {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap();
    f.write_all(&keyring.serialize()).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes a keyring holding one random key named "default" to `path` (0600) without running a
/// binary (the smol runtime's has no `keys init`); returns the key.
pub fn new_keyring(path: &Path) -> [u8; 32] {
    let key = random_key();
    let mut keyring = Keyring::new();
    keyring
        .add_key("default", Secret32::from_bytes(key))
        .unwrap();
    write_keyring(path, &keyring);
    key
}

/// [`new_keyring`] at `dir/keyring`; returns that path.
pub fn key_file(dir: &TempDir) -> PathBuf {
    let path = dir.join("keyring");
    new_keyring(&path);
    path
}

/// Every stderr line of a child process, kept in order (none is ever dropped), with a
/// condition variable to wait on. Waiting never consumes lines: log lines written by different
/// threads of the plugin come in no fixed order (a provider's first health line may come before
/// or after "listening"), so a wait that discarded the lines it skipped could lose the very line
/// a later wait is for.
#[derive(Clone, Default)]
pub struct LogTail(std::sync::Arc<(Mutex<TailState>, Condvar)>);

#[derive(Default)]
struct TailState {
    lines: Vec<String>,
    closed: bool,
}

impl LogTail {
    /// Follows `stream` on a thread of its own until EOF.
    pub fn follow(stream: impl std::io::Read + Send + 'static) -> Self {
        let tail = Self::default();
        let shared = tail.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                shared.0.lock().unwrap().lines.push(line);
                shared.1.notify_all();
            }
            shared.0.lock().unwrap().closed = true;
            shared.1.notify_all();
        });
        tail
    }

    /// Waits (bounded) for the first line at index `from` or later containing `needle`;
    /// returns its index and text, or panics with every line seen.
    pub fn wait(&self, from: usize, needle: &str, timeout: Duration) -> (usize, String) {
        let deadline = Instant::now() + timeout;
        let mut st = self.0.0.lock().unwrap();
        loop {
            if let Some(i) = (from..st.lines.len()).find(|&i| st.lines[i].contains(needle)) {
                return (i, st.lines[i].clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !st.closed,
                "no log line with {needle:?} within {timeout:?} (after line {from}; stream closed: {}); saw:\n{}",
                st.closed,
                st.lines.join("\n")
            );
            st = self.0.1.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.0.lock().unwrap().lines.clone()
    }
}

/// A running `kms-plugin serve`; killed on drop.
pub struct Plugin {
    pub child: Option<Child>,
    pub log: LogTail,
    /// Where the next [`Plugin::wait_log`] starts looking: just after the line the previous
    /// one returned.
    cursor: std::cell::Cell<usize>,
}

impl Plugin {
    /// Starts `serve` with `args` and waits (bounded) for its "listening" log line.
    pub fn start(args: &[&str]) -> Self {
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--log-format", "text", "--log-level", "debug"]);
        Self::spawn(Command::new(BIN).args(&full), &["listening", " healthy"])
    }

    /// Starts `bin` with `args` and waits (bounded) for its "listening" log line.
    pub fn start_bin(bin: &str, args: &[&str]) -> Self {
        Self::spawn(Command::new(bin).args(args), &["listening"])
    }

    /// Spawns `cmd` with its stderr followed and waits (bounded) for log lines containing each
    /// of `ready` (in any order). For `serve`, " healthy" marks the first local KEK as wrapped
    /// (the text line is "<ts> info  healthy"; "unhealthy" has no space before "healthy").
    /// This wait does not move the cursor: the first [`Plugin::wait_log`] still sees every
    /// line since the start, whatever order the plugin's threads wrote them in.
    pub fn spawn(cmd: &mut Command, ready: &[&str]) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kms-plugin");
        let log = LogTail::follow(child.stderr.take().unwrap());
        let plugin = Self {
            child: Some(child),
            log,
            cursor: std::cell::Cell::new(0),
        };
        for needle in ready {
            plugin.log.wait(0, needle, Duration::from_secs(20));
        }
        plugin
    }

    /// Waits (bounded) for the next log line containing `needle`: the first one after the line
    /// the previous `wait_log` returned (from the process start for the first call), so each
    /// wait observes an event later than the one before. Panics with every line seen.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let (i, line) = self.log.wait(self.cursor.get(), needle, timeout);
        self.cursor.set(i + 1);
        line
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status code.
    pub fn terminate(mut self) -> i32 {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let mut child = self.child.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(status)) => status.code().unwrap_or(-1),
            other => panic!("plugin did not exit within 20 s of SIGTERM: {other:?}"),
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The path socket `dir/<name>` and its `--listen` address (`unix://` and the path).
pub fn unix_socket(dir: &TempDir, name: &str) -> (PathBuf, String) {
    let sock = dir.join(name);
    let listen = format!("unix://{}", sock.display());
    (sock, listen)
}

/// A plugin serving a fresh keyring from a fresh directory, listening on a path socket in it.
/// Fields drop in declaration order: the plugin is killed before its directory is removed.
pub struct Served {
    pub plugin: Plugin,
    /// The socket path; `listen` is its `unix://` address.
    pub sock: PathBuf,
    pub listen: String,
    /// The keyring file.
    pub keys: PathBuf,
    pub dir: TempDir,
}

impl Served {
    /// [`Plugin::start`] (`kms-plugin serve`, ready once listening and healthy) in a fresh
    /// directory tagged `tag`, on a keyring from [`init_keys`] and the socket `kms.sock`, with
    /// `extra` flags after `--listen` and `--key-file`.
    pub fn serve(tag: &str, extra: &[&str]) -> Self {
        Self::serve_at(tag, "kms.sock", extra)
    }

    /// [`Served::serve`] on the socket `sock` (a path relative to the fresh directory).
    pub fn serve_at(tag: &str, sock: &str, extra: &[&str]) -> Self {
        let dir = TempDir::new(tag);
        let keys = init_keys(&dir);
        Self::start_with(dir, keys, sock, Plugin::start, extra)
    }

    /// [`Plugin::start_bin`] (`bin`, ready once listening) in a fresh directory tagged `tag`,
    /// on a keyring from [`key_file`] and the socket `kms.sock`, with `extra` flags after
    /// `--listen` and `--key-file`.
    pub fn start_bin(bin: &str, tag: &str, extra: &[&str]) -> Self {
        let dir = TempDir::new(tag);
        let keys = key_file(&dir);
        Self::start_with(
            dir,
            keys,
            "kms.sock",
            |args| Plugin::start_bin(bin, args),
            extra,
        )
    }

    fn start_with(
        dir: TempDir,
        keys: PathBuf,
        sock: &str,
        start: impl FnOnce(&[&str]) -> Plugin,
        extra: &[&str],
    ) -> Self {
        let (sock, listen) = unix_socket(&dir, sock);
        let mut args = vec!["--listen", &listen, "--key-file", keys.to_str().unwrap()];
        args.extend_from_slice(extra);
        let plugin = start(&args);
        Self {
            plugin,
            sock,
            listen,
            keys,
            dir,
        }
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The venv's python with grpcio; created by `.ci/setup-python.sh` (run here if missing, under
/// a lock, so plain `cargo test` works on a fresh machine).
pub fn python() -> PathBuf {
    let root = workspace();
    let py = root.join("target/test-venv/bin/python");
    let ready = || {
        Command::new(&py)
            .args(["-c", "import grpc, grpc_tools"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready() {
        std::fs::create_dir_all(root.join("target")).unwrap();
        let lock = std::fs::File::create(root.join("target/.test-venv.lock")).unwrap();
        #[allow(clippy::incompatible_msrv)] // the pinned toolchain (1.95) has File::lock
        lock.lock().unwrap();
        if !ready() {
            let status = Command::new("bash")
                .arg(root.join(".ci/setup-python.sh"))
                .status()
                .expect("run .ci/setup-python.sh");
            assert!(
                status.success(),
                ".ci/setup-python.sh failed: the grpcio client tests need it"
            );
        }
    }
    py
}

/// Runs the Python grpcio client; returns (success, stdout + stderr).
pub fn grpcio(target: &str, authority: &str, mode: &[&str]) -> (bool, String) {
    let root = workspace();
    let out = Command::new("timeout")
        .arg("120")
        .arg(python())
        .arg(root.join("runtime-blocking/tests/support/kms_client.py"))
        .arg(root.join("proto/proto"))
        .arg(target)
        .arg(authority)
        .args(mode)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// [`grpcio`] on the abstract socket `name` with the authority grpc-go sends for it (`@name`).
pub fn grpcio_abstract(name: &str, mode: &[&str]) -> (bool, String) {
    grpcio(&format!("unix-abstract:{name}"), &format!("@{name}"), mode)
}

/// Percent-encodes a socket path the way grpc-go's `encodeAuthority` does (docs/protocol.md §2).
pub fn grpc_go_authority(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_str().unwrap().bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Waits (bounded, 20 s) until `kms-plugin probe` reports healthy: "listening" comes before the
/// first remote Status has answered, so healthz may not be `ok` yet right after start.
pub fn wait_healthy(listen: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(&["probe", "--listen", listen, "--timeout", "2"]);
        if out.status.code() == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "plugin not healthy within 20 s: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The address in a `serving metrics addr=...` log line (`--metrics-addr 127.0.0.1:0`).
pub fn metrics_addr(line: &str) -> String {
    line.split("addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no addr= in {line:?}"))
        .trim_matches('"')
        .to_string()
}

/// One HTTP/1.0 GET (bounded by a 20 s read timeout): the whole response, head and body.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
