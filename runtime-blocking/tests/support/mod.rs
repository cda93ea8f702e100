//! Shared helpers for the runtime's end-to-end tests: temp dirs, a plugin process whose
//! readiness is read from its own "listening" log line, and the Python grpcio client.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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

/// A running `kms-plugin serve`; killed on drop.
pub struct Plugin {
    pub child: Option<Child>,
    pub log: mpsc::Receiver<String>,
}

impl Plugin {
    /// Starts `serve` with `args` and waits (bounded) for its "listening" log line.
    pub fn start(args: &[&str]) -> Self {
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--log-format", "text", "--log-level", "debug"]);
        Self::spawn(BIN, &full, &["listening", " healthy"])
    }

    /// Starts `bin` with `args` and waits (bounded) for its "listening" log line.
    pub fn start_bin(bin: &str, args: &[&str]) -> Self {
        Self::spawn(bin, args, &["listening"])
    }

    /// Starts `bin` and waits (bounded) for log lines containing each of `ready` (in any
    /// order). For `serve`, " healthy" marks the first local KEK as wrapped (the text line is
    /// "<ts> info  healthy"; "unhealthy" has no space before "healthy").
    fn spawn(bin: &str, args: &[&str], ready: &[&str]) -> Self {
        let mut command = Command::new(bin);
        command.args(args);
        Self::start_command(command, ready)
    }

    /// Starts a prepared `command` (its own arguments and environment) and waits (bounded)
    /// for log lines containing each of `ready`, in any order.
    pub fn start_command(mut command: Command, ready: &[&str]) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kms-plugin");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let plugin = Self {
            child: Some(child),
            log: rx,
        };
        plugin.wait_logs(ready, Duration::from_secs(20));
        plugin
    }

    /// Waits (bounded) for a log line containing `needle`; panics with the lines seen.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!(
                    "no log line with {needle:?} within {timeout:?} ({e:?}); saw:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// Waits (bounded) until every needle has appeared in some log line, in any order.
    pub fn wait_logs(&self, needles: &[&str], timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let mut missing: Vec<&str> = needles.to_vec();
        let mut seen = Vec::new();
        while !missing.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    missing.retain(|n| !line.contains(n));
                    seen.push(line);
                }
                Err(e) => panic!(
                    "no log lines with {missing:?} within {timeout:?} ({e:?}); saw:\n{}",
                    seen.join("\n")
                ),
            }
        }
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

/// Percent-encodes a socket path the way grpc-go's `encodeAuthority` does (spec §1.3).
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
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(&["probe", "--listen", listen, "--timeout", "2"]);
        if out.status.code() == Some(0) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "plugin not healthy within 20 s: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
