//! The KMIP provider's transport: TLS with a client certificate (rustls, ring) over one TCP
//! connection per provider call, every connect, handshake, read and write bounded by the
//! call's deadline, and transport failures mapped to [`RemoteErrorKind`]s. The certificate,
//! key and CA files are re-read when they change.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use kms_plugin_core::kek::kmip::{self, Operation};
use kms_plugin_core::{RemoteError, RemoteErrorKind};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use zeroize::Zeroizing;

use super::super::secret_file::FileStamp;

/// The default KMIP port (IANA).
pub const DEFAULT_PORT: u16 = 5696;

/// The PEM files of the TLS configuration.
pub(super) struct TlsFiles {
    pub(super) client_cert: PathBuf,
    pub(super) client_key: PathBuf,
    pub(super) ca_file: PathBuf,
}

/// The TLS configuration and the versions of the files it was built from.
struct TlsState {
    stamps: Option<[FileStamp; 3]>,
    config: Arc<ClientConfig>,
}

impl TlsFiles {
    /// The files' current versions (`None` while one cannot be read).
    fn stamps(&self) -> Option<[FileStamp; 3]> {
        let stamp = |p: &PathBuf| std::fs::metadata(p).ok().map(|m| FileStamp::of(&m));
        Some([
            stamp(&self.client_cert)?,
            stamp(&self.client_key)?,
            stamp(&self.ca_file)?,
        ])
    }
}

/// The KMIP server: its address, name and the TLS configuration to reach it.
pub(super) struct Server {
    host: String,
    port: u16,
    /// The name the server's certificate must carry (the host of `--kmip-addr`).
    tls_name: ServerName<'static>,
    files: TlsFiles,
    /// Rebuilt when a file changes (a renewed client certificate needs no restart).
    state: Mutex<TlsState>,
}

impl Server {
    /// Checks `addr` and loads the TLS files (errors name the flag and the file).
    pub(super) fn new(addr: &str, files: TlsFiles) -> Result<Self, String> {
        let (host, port) = split_addr(addr)?;
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| format!("--kmip-addr {addr:?}: invalid host name"))?;
        let stamps = files.stamps();
        let config = Arc::new(tls_config(&files)?);
        Ok(Self {
            host,
            port,
            tls_name: server_name,
            files,
            state: Mutex::new(TlsState { stamps, config }),
        })
    }

    /// The TLS configuration, rebuilt first if a certificate, key or CA file changed since it
    /// was built. A change that does not load (a renewal caught half-written: the new
    /// certificate beside the old key) keeps the previous configuration until the files
    /// settle; the next call tries again.
    fn tls(&self) -> Arc<ClientConfig> {
        let now = self.files.stamps();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.is_some() && now != state.stamps {
            if let Ok(config) = tls_config(&self.files) {
                state.config = Arc::new(config);
                state.stamps = now;
            }
        }
        Arc::clone(&state.config)
    }

    pub(super) fn connect(&self, op: Operation, deadline: Instant) -> Result<Session, RemoteError> {
        let unavailable = |what: String| {
            RemoteError::new(
                RemoteErrorKind::Unavailable,
                format!("kmip {}: {what}", op.name()),
            )
        };
        let addrs: Vec<_> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| unavailable(format!("resolving {}: {e}", self.host)))?
            .collect();
        let mut last = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout(op));
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(sock) => {
                    let _ = sock.set_nodelay(true);
                    let conn =
                        ClientConnection::new(self.tls(), self.tls_name.clone()).map_err(|e| {
                            RemoteError::new(
                                RemoteErrorKind::Other,
                                format!("kmip: TLS setup: {e}"),
                            )
                        })?;
                    return Ok(Session {
                        stream: StreamOwned::new(conn, sock),
                        deadline,
                    });
                }
                Err(e) => last = Some(io_error(op, &e, deadline)),
            }
        }
        Err(last.unwrap_or_else(|| unavailable(format!("{} resolves to no address", self.host))))
    }
}

fn read_pem(path: &PathBuf, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

fn tls_config(config: &TlsFiles) -> Result<ClientConfig, String> {
    let ca = read_pem(&config.ca_file, "--ca-file")?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| format!("--ca-file {}: {e}", config.ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("--ca-file {}: {e}", config.ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "--ca-file {}: no certificates",
            config.ca_file.display()
        ));
    }
    let pem = read_pem(&config.client_cert, "--kmip-client-cert")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--kmip-client-cert {}: {e}", config.client_cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--kmip-client-cert {}: no certificates",
            config.client_cert.display()
        ));
    }
    let key_pem = Zeroizing::new(read_pem(&config.client_key, "--kmip-client-key")?);
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "--kmip-client-key {}: no usable private key ({e})",
            config.client_key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            format!(
                "--kmip-client-cert / --kmip-client-key: {e} (does the key belong to the certificate?)"
            )
        })
}

/// Splits `host[:port]` / `[v6][:port]`.
fn split_addr(addr: &str) -> Result<(String, u16), String> {
    let bad = || format!("--kmip-addr {addr:?} must be host[:port] (port 1..=65535)");
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match addr.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (addr, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        None => DEFAULT_PORT,
    };
    if host.is_empty() || addr.contains('/') || addr.contains('@') {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// One TLS connection to the server, used for one provider call.
pub(super) struct Session {
    stream: StreamOwned<ClientConnection, TcpStream>,
    deadline: Instant,
}

pub(super) fn timeout(op: Operation) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Timeout,
        format!("kmip {}: deadline exceeded", op.name()),
    )
}

/// Maps an IO error of the TLS stream: deadline -> Timeout; the server refusing our
/// certificate -> Auth; our refusing the server's certificate -> Other; the rest (refused,
/// reset, closed) -> Unavailable.
fn io_error(op: Operation, e: &std::io::Error, deadline: Instant) -> RemoteError {
    let label = op.name();
    if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) || Instant::now() >= deadline
    {
        return RemoteError::new(RemoteErrorKind::Timeout, format!("kmip {label}: {e}"));
    }
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let kind = match tls {
        Some(rustls::Error::AlertReceived(alert)) => {
            use rustls::AlertDescription as A;
            match alert {
                A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired => RemoteErrorKind::Auth,
                _ => RemoteErrorKind::Other,
            }
        }
        Some(_) => RemoteErrorKind::Other,
        None => RemoteErrorKind::Unavailable,
    };
    let what = match kind {
        RemoteErrorKind::Auth => "the server refused the client certificate",
        RemoteErrorKind::Other => "TLS failed",
        _ => "connection failed",
    };
    RemoteError::new(kind, format!("kmip {label}: {what}: {e}"))
}

impl Session {
    fn remaining(&self, op: Operation) -> Result<std::time::Duration, RemoteError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timeout(op));
        }
        Ok(left)
    }

    fn arm(&mut self, op: Operation) -> Result<(), RemoteError> {
        let left = self.remaining(op)?;
        let sock = self.stream.get_ref();
        sock.set_read_timeout(Some(left))
            .and_then(|()| sock.set_write_timeout(Some(left)))
            .map_err(|e| io_error(op, &e, self.deadline))
    }

    /// Sends `request` and returns the whole response message (wiped on drop).
    pub(super) fn call(
        &mut self,
        op: Operation,
        request: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
        let deadline = self.deadline;
        self.arm(op)?;
        self.stream
            .write_all(request)
            .and_then(|()| self.stream.flush())
            .map_err(|e| io_error(op, &e, deadline))?;
        let mut header = [0u8; 8];
        self.arm(op)?;
        self.stream
            .read_exact(&mut header)
            .map_err(|e| io_error(op, &e, deadline))?;
        let len = kmip::response_body_len(op, &header)?;
        let mut message = Zeroizing::new(vec![0u8; 8 + len]);
        message[..8].copy_from_slice(&header);
        let mut filled = 8;
        while filled < message.len() {
            self.arm(op)?;
            match self.stream.read(&mut message[filled..]) {
                Ok(0) => {
                    return Err(RemoteError::new(
                        RemoteErrorKind::Unavailable,
                        format!("kmip {}: connection closed mid-response", op.name()),
                    ));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(op, &e, deadline)),
            }
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::split_addr;

    #[test]
    fn addresses_take_the_default_port_and_refuse_urls() {
        assert_eq!(
            split_addr("kmip.example").unwrap(),
            ("kmip.example".into(), 5696)
        );
        assert_eq!(
            split_addr("10.0.0.1:5697").unwrap(),
            ("10.0.0.1".into(), 5697)
        );
        assert_eq!(split_addr("[::1]:5697").unwrap(), ("::1".into(), 5697));
        assert_eq!(split_addr("[::1]").unwrap(), ("::1".into(), 5696));
        for bad in ["", ":5696", "h:0", "h:x", "https://h:5696", "u@h"] {
            assert!(split_addr(bad).is_err(), "{bad}");
        }
    }
}
