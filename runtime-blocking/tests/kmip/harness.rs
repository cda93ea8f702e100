//! A real PyKMIP server for the KMIP provider's tests, with certificates generated at test
//! time (rcgen): a CA, the server's certificate for 127.0.0.1, the plugin's client
//! certificate (CN `kms-plugin`, the identity that owns the keys), a client certificate of
//! another CA (refused at the TLS handshake) and one of the right CA for another identity
//! (which sees none of the keys).
//!
//! PyKMIP comes from `.ci/setup-pykmip.sh` (venv `target/pykmip-venv`, or `KMS_PYKMIP_VENV`).
//! The server and the admin client are Python processes that exit when their stdin closes,
//! so none outlives its test; readiness is the server's own `port N` line (bounded wait).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Bound of every wait on a Python process.
const WAIT: Duration = Duration::from_secs(60);

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("KMS_PYKMIP_VENV").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pykmip-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "PyKMIP is not installed at {}: run .ci/setup-pykmip.sh",
        venv.display()
    );
    python
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kmip")
        .join(name)
}

/// The test PKI, written as PEM files into a directory.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// `ca.pem`, `server.pem`/`server.key`, `client.pem`/`client.key` (CN kms-plugin),
    /// `other.pem`/`other.key` (CN someone-else, same CA), `rogue.pem`/`rogue.key` (another CA).
    pub fn generate(dir: &Path) -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair,
        };
        let ca_for = |cn: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, cn);
            CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
        };
        let ca = ca_for("kms-plugin kmip test CA");
        let rogue_ca = ca_for("rogue CA");
        let write = |name: &str, pem: String| std::fs::write(dir.join(name), pem).unwrap();
        write("ca.pem", ca.pem());
        let leaf = |issuer: &CertifiedIssuer<'_, KeyPair>,
                    sans: Vec<String>,
                    cn: &str,
                    usage: ExtendedKeyUsagePurpose,
                    name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, issuer).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        };
        leaf(
            &ca,
            vec!["127.0.0.1".into()],
            "127.0.0.1",
            ExtendedKeyUsagePurpose::ServerAuth,
            "server",
        );
        leaf(
            &ca,
            vec![],
            "kms-plugin",
            ExtendedKeyUsagePurpose::ClientAuth,
            "client",
        );
        leaf(
            &ca,
            vec![],
            "someone-else",
            ExtendedKeyUsagePurpose::ClientAuth,
            "other",
        );
        leaf(
            &rogue_ca,
            vec![],
            "kms-plugin",
            ExtendedKeyUsagePurpose::ClientAuth,
            "rogue",
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Reads lines of a child's stdout on a thread, for bounded waits.
fn line_reader(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running PyKMIP server (killed on drop); its keys live in `DIR/pykmip.db`, so a
/// restarted server has the same keys.
pub struct PyKmip {
    dir: PathBuf,
    child: Option<Child>,
    pub port: u16,
    /// Extra arguments of `pykmip_server.py` (`no-gcm`).
    extra: Vec<String>,
}

impl PyKmip {
    /// Starts the server on a free port.
    pub fn start(pki: &Pki) -> Self {
        Self::start_with(pki, &[])
    }

    /// Starts the server with extra arguments (`no-gcm`: refuses AES-GCM, does key wrap).
    pub fn start_with(pki: &Pki, extra: &[&str]) -> Self {
        let mut server = Self {
            dir: pki.dir.clone(),
            child: None,
            port: 0,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut child = Command::new(venv_python())
            .arg("-W")
            .arg("ignore")
            .arg(script("pykmip_server.py"))
            .arg(&self.dir)
            .arg(self.port.to_string())
            .args(&self.extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PyKMIP server");
        let lines = line_reader(child.stdout.take().unwrap());
        let line = lines.recv_timeout(WAIT).unwrap_or_else(|_| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            let _ = child.kill();
            panic!("PyKMIP server did not start; its log:\n{log}")
        });
        let port = line
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected PyKMIP server line {line:?}"));
        self.port = port;
        self.child = Some(child);
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits for it to exit (the port is then closed).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PyKmip {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A KMIP admin client (PyKMIP's), owning keys as the plugin's identity.
pub struct Admin {
    /// The server's log, quoted when a command fails.
    server_log: PathBuf,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Admin {
    pub fn new(pki: &Pki, server: &PyKmip) -> Self {
        let mut child = Command::new(venv_python())
            .arg("-W")
            .arg("ignore")
            .arg(script("kmip_admin.py"))
            .arg(&pki.dir)
            .arg(server.port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PyKMIP admin client");
        let stdin = child.stdin.take().unwrap();
        let lines = line_reader(child.stdout.take().unwrap());
        Self {
            server_log: pki.dir.join("server.log"),
            child,
            stdin,
            lines,
        }
    }

    /// Runs one admin command; panics on its failure.
    pub fn run(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        let line = self
            .lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("admin command {command:?} did not answer"));
        match line.strip_prefix("ok") {
            Some(result) => result.trim().to_owned(),
            None => panic!(
                "admin command {command:?}: {line}\nserver log:\n{}",
                std::fs::read_to_string(&self.server_log).unwrap_or_default()
            ),
        }
    }

    /// Creates an Active AES-256 key named `name`; returns its unique identifier.
    pub fn create(&mut self, name: &str) -> String {
        self.run(&format!("create {name}"))
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
