//! KMIP provider: a symmetric key on a KMIP server (enterprise KMS, HSM appliance), reached
//! over TLS with a client certificate (mutual TLS, rustls), optionally with a Username and
//! Password credential.
//!
//! The messages, key selection, key ids, blobs and error mapping are the core's
//! (`kms_plugin_core::kek::kmip`); this file moves bytes over one TLS connection per call,
//! bounded by the call's deadline (connect, handshake, every read and write), and maps
//! transport failures to [`RemoteErrorKind`]s. The certificate, key and CA files are re-read
//! when they change, so a renewed client certificate needs no restart.
//!
//! - Status: Locate the key by name (`KMS_KEY_ID`; if no key has that name, `KMS_KEY_ID` is
//!   taken as a Unique Identifier), Get Attributes of each match, pick the current one (the
//!   core's `choose_current`), then probe a wrap: Encrypt 32 random bytes and Decrypt them
//!   back. So Status is `ok` only while a wrap works.
//! - The wrap mode is AES-GCM, or, when the server refuses GCM for the key, NIST AES key wrap
//!   (RFC 3394), then AES key wrap with padding (RFC 5649); `--kmip-mode` pins one. A server
//!   that can do none is a [`ProbeOutcome::Refused`] at start-up (a clear start-up error).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use kms_plugin_core::kek::kmip::{
    self, Credential, KeyAttributes, Operation, WrapMode, WrappedBlob, key,
};
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use zeroize::Zeroizing;

use super::KekProvider;
use super::secret_file::{FileStamp, SecretFile};

/// Configuration of a [`KmipProvider`].
pub struct KmipConfig {
    /// `host:port` of the KMIP server (`--kmip-addr`; port 5696 if left out).
    pub addr: String,
    /// The key's Name attribute or Unique Identifier (`KMS_KEY_ID`).
    pub key: String,
    /// PEM client certificate chain (`--kmip-client-cert`).
    pub client_cert: PathBuf,
    /// PEM private key of the client certificate (`--kmip-client-key`).
    pub client_key: PathBuf,
    /// PEM CA certificates that sign the server's certificate (`--ca-file`).
    pub ca_file: PathBuf,
    /// Username (`KMS_USER_ID`) and password file (`--kmip-password-file`) of an optional
    /// Username and Password credential.
    pub credential: Option<(String, PathBuf)>,
    /// A pinned wrap mode (`--kmip-mode`); `None` probes GCM, then the key wraps.
    pub mode: Option<WrapMode>,
}

/// The default KMIP port (IANA).
pub const DEFAULT_PORT: u16 = 5696;

/// What the start-up probe found.
pub enum ProbeOutcome {
    /// The key wraps and unwraps; its key id.
    Ready(String),
    /// The server cannot wrap with the key in any allowed mode (a start-up error).
    Refused(String),
    /// Anything else (server down, wrong credentials, key missing): the plugin starts and
    /// reports the cause in its health until it recovers.
    NotReady(RemoteError),
}

/// The PEM files of the TLS configuration.
struct TlsFiles {
    client_cert: PathBuf,
    client_key: PathBuf,
    ca_file: PathBuf,
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

/// A KMIP server's key as a [`KekProvider`] (blocking, thread-safe).
pub struct KmipProvider {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls_files: TlsFiles,
    /// Rebuilt when a file changes (a renewed client certificate needs no restart).
    tls: Mutex<TlsState>,
    key: String,
    username: Option<String>,
    password: Option<SecretFile>,
    pinned: Option<WrapMode>,
    /// The mode that last worked for a unique identifier.
    mode: Mutex<Option<(String, WrapMode)>>,
    /// Key ids Status reported (data may be wrapped under them), at most [`MAX_SEEN_KEYS`]:
    /// if one's key disappears, Status says so (`KeyVersionMissing`) instead of moving on.
    seen: Mutex<Vec<String>>,
}

/// Key ids remembered by [`KmipProvider`] to detect a destroyed key.
const MAX_SEEN_KEYS: usize = 64;

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
struct Session {
    stream: StreamOwned<ClientConnection, TcpStream>,
    deadline: Instant,
}

fn timeout(op: Operation) -> RemoteError {
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

/// An Item Not Found answer to Encrypt or Decrypt under a key id: that key is gone.
fn gone_if_not_found(key_id: &str, e: RemoteError) -> RemoteError {
    if e.kind == RemoteErrorKind::NotFound {
        key::key_gone(key_id, &e.detail)
    } else {
        e
    }
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
    fn call(&mut self, op: Operation, request: &[u8]) -> Result<Zeroizing<Vec<u8>>, RemoteError> {
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

impl KmipProvider {
    /// Validates `config` and loads the certificates and key (errors name the flag and file).
    /// Does no network IO: the plugin must start while the server is down.
    pub fn new(config: KmipConfig) -> Result<Self, String> {
        kmip::check_identifier(&config.key).map_err(|e| format!("KMS_KEY_ID: {e}"))?;
        let (host, port) = split_addr(&config.addr)?;
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| format!("--kmip-addr {:?}: invalid host name", config.addr))?;
        let tls_files = TlsFiles {
            client_cert: config.client_cert,
            client_key: config.client_key,
            ca_file: config.ca_file,
        };
        let stamps = tls_files.stamps();
        let tls = tls_config(&tls_files)?;
        let (username, password) = match config.credential {
            Some((user, file)) => {
                if user.is_empty() || user.len() > kmip::MAX_NAME_LEN {
                    return Err(format!(
                        "KMS_USER_ID (the KMIP username) must be 1..={} bytes",
                        kmip::MAX_NAME_LEN
                    ));
                }
                (Some(user), Some(SecretFile::new(file, "KMIP password")))
            }
            None => (None, None),
        };
        Ok(Self {
            host,
            port,
            server_name,
            tls_files,
            tls: Mutex::new(TlsState {
                stamps,
                config: Arc::new(tls),
            }),
            key: config.key,
            username,
            password,
            pinned: config.mode,
            mode: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
        })
    }

    /// The credential for this call (the password file is re-read when it changes).
    fn credential(&self) -> Result<Option<Credential>, RemoteError> {
        let (Some(user), Some(file)) = (&self.username, &self.password) else {
            return Ok(None);
        };
        let (_, password) = file.read()?;
        Credential::new(user, Zeroizing::new(String::from(password.as_str())))
            .map(Some)
            .map_err(|e| RemoteError::new(RemoteErrorKind::Auth, e))
    }

    /// The TLS configuration, rebuilt first if a certificate, key or CA file changed since it
    /// was built. A change that does not load (a renewal caught half-written: the new
    /// certificate beside the old key) keeps the previous configuration until the files
    /// settle; the next call tries again.
    fn tls(&self) -> Arc<ClientConfig> {
        let now = self.tls_files.stamps();
        let mut state = self.tls.lock().unwrap_or_else(PoisonError::into_inner);
        if now.is_some() && now != state.stamps {
            if let Ok(config) = tls_config(&self.tls_files) {
                state.config = Arc::new(config);
                state.stamps = now;
            }
        }
        Arc::clone(&state.config)
    }

    fn connect(&self, op: Operation, deadline: Instant) -> Result<Session, RemoteError> {
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
                    let conn = ClientConnection::new(self.tls(), self.server_name.clone())
                        .map_err(|e| {
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

    /// The current key's attributes (see the module docs), and those of every key the name
    /// resolved to.
    fn current_key(
        &self,
        session: &mut Session,
        credential: Option<&Credential>,
    ) -> Result<(KeyAttributes, Vec<KeyAttributes>), RemoteError> {
        let request = kmip::locate_request(credential, &self.key)?;
        let uids = kmip::parse_locate(&session.call(Operation::Locate, &request)?)?;
        if uids.is_empty() {
            // No key with that name: KMS_KEY_ID may be a Unique Identifier.
            let attrs = Self::attributes(session, credential, &self.key).map_err(|e| {
                if e.kind == RemoteErrorKind::NotFound {
                    RemoteError::new(
                        RemoteErrorKind::NotFound,
                        format!(
                            "kmip: no key has the name or unique identifier {:?}",
                            self.key
                        ),
                    )
                } else {
                    e
                }
            })?;
            if let Some(problem) = attrs.unusable() {
                return Err(RemoteError::new(
                    RemoteErrorKind::NotFound,
                    format!("kmip: {problem}"),
                ));
            }
            return Ok((attrs.clone(), vec![attrs]));
        }
        let mut candidates = Vec::with_capacity(uids.len());
        for uid in &uids {
            candidates.push(Self::attributes(session, credential, uid)?);
        }
        let current = key::choose_current(&self.key, candidates.clone())?;
        Ok((current, candidates))
    }

    /// Fails with `KeyVersionMissing` if the key of a key id Status reported before is gone
    /// (keys that left the name are looked up by unique identifier).
    fn check_seen(
        &self,
        session: &mut Session,
        credential: Option<&Credential>,
        known: &[KeyAttributes],
    ) -> Result<(), RemoteError> {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for key_id in &seen {
            let uid = key::uid_of(key_id)?;
            let looked_up;
            let attrs = match known.iter().find(|k| k.uid == uid) {
                Some(k) => Some(k),
                None => match Self::attributes(session, credential, uid) {
                    Ok(a) => {
                        looked_up = a;
                        Some(&looked_up)
                    }
                    Err(e) if e.kind == RemoteErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                },
            };
            key::check_still_present(key_id, attrs)?;
        }
        Ok(())
    }

    fn attributes(
        session: &mut Session,
        credential: Option<&Credential>,
        uid: &str,
    ) -> Result<KeyAttributes, RemoteError> {
        let request = kmip::get_attributes_request(credential, uid)?;
        kmip::parse_attributes(&session.call(Operation::GetAttributes, &request)?)
    }

    fn encrypt(
        session: &mut Session,
        credential: Option<&Credential>,
        key_id: &str,
        mode: WrapMode,
        kek: &Secret32,
    ) -> Result<Vec<u8>, RemoteError> {
        let uid = key::uid_of(key_id)?;
        let request = kmip::encrypt_request(credential, uid, mode, kek, &key::gcm_aad(key_id))?;
        kmip::parse_encrypt(&session.call(Operation::Encrypt, &request)?, mode)
            .map_err(|e| gone_if_not_found(key_id, e))
    }

    fn decrypt(
        session: &mut Session,
        credential: Option<&Credential>,
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<Secret32, RemoteError> {
        let uid = key::uid_of(key_id)?;
        let blob = WrappedBlob::parse(wrapped)?;
        let request = kmip::decrypt_request(credential, uid, &blob, &key::gcm_aad(key_id))?;
        kmip::parse_decrypt(&session.call(Operation::Decrypt, &request)?)
            .map_err(|e| gone_if_not_found(key_id, e))
    }

    /// The modes to try for `uid`, in order: the pinned one, or the one that last worked
    /// first, then the others.
    fn modes_for(&self, uid: &str) -> Vec<WrapMode> {
        if let Some(m) = self.pinned {
            return vec![m];
        }
        let known = self
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(u, _)| u == uid)
            .map(|(_, m)| *m);
        let mut modes = Vec::with_capacity(3);
        modes.extend(known);
        modes.extend(WrapMode::PROBE_ORDER.iter().filter(|m| Some(**m) != known));
        modes
    }

    /// Wraps `kek` in the first mode the server accepts for the key; remembers that mode. A
    /// refusal of every mode (`Other`: Invalid Field, Feature Not Supported, ...) is one
    /// `Other` error naming the modes tried.
    fn wrap_in_session(
        &self,
        session: &mut Session,
        credential: Option<&Credential>,
        key_id: &str,
        kek: &Secret32,
    ) -> Result<(WrapMode, Vec<u8>), RemoteError> {
        let uid = key::uid_of(key_id)?;
        let modes = self.modes_for(uid);
        let mut refusals = Vec::new();
        for mode in &modes {
            match Self::encrypt(session, credential, key_id, *mode, kek) {
                Ok(blob) => {
                    *self.mode.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some((uid.to_owned(), *mode));
                    return Ok((*mode, blob));
                }
                Err(e) if e.kind == RemoteErrorKind::Other => {
                    refusals.push(format!("{}: {}", mode.name(), e.detail));
                }
                Err(e) => return Err(e),
            }
        }
        Err(RemoteError::new(
            RemoteErrorKind::Other,
            format!(
                "kmip: the server cannot wrap with key {uid:?} in {}: {}",
                if self.pinned.is_some() {
                    "the mode set by --kmip-mode"
                } else {
                    "AES-GCM or AES key wrap"
                },
                refusals.join("; ")
            ),
        ))
    }

    /// One Status: the current key, and a wrap + unwrap of random bytes under it.
    fn check(&self, deadline: Instant) -> Result<String, RemoteError> {
        let credential = self.credential()?;
        let mut session = self.connect(Operation::Locate, deadline)?;
        let (attrs, known) = self.current_key(&mut session, credential.as_ref())?;
        self.check_seen(&mut session, credential.as_ref(), &known)?;
        let key_id = attrs.key_id();
        let mut probe = [0u8; 32];
        getrandom::getrandom(&mut probe).map_err(|e| {
            RemoteError::new(RemoteErrorKind::Other, format!("kmip: no randomness: {e}"))
        })?;
        let probe = Secret32::from_bytes(probe);
        let (mode, blob) =
            self.wrap_in_session(&mut session, credential.as_ref(), &key_id, &probe)?;
        let back = Self::decrypt(&mut session, credential.as_ref(), &key_id, &blob)?;
        if back.expose() != probe.expose() {
            return Err(RemoteError::new(
                RemoteErrorKind::Corrupt,
                format!(
                    "kmip: a {} round trip under {key_id} returned other bytes",
                    mode.name()
                ),
            ));
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if !seen.contains(&key_id) && seen.len() < MAX_SEEN_KEYS {
            seen.push(key_id.clone());
        }
        Ok(key_id)
    }

    /// Status at start-up, sorting a refusal of every wrap mode (which no waiting fixes) from
    /// the conditions the plugin outlives.
    pub fn probe_at_start(&self, deadline: Instant) -> ProbeOutcome {
        match self.check(deadline) {
            Ok(key_id) => ProbeOutcome::Ready(key_id),
            Err(e) if e.kind == RemoteErrorKind::Other && e.detail.contains("cannot wrap") => {
                ProbeOutcome::Refused(e.detail)
            }
            Err(e) => ProbeOutcome::NotReady(e),
        }
    }
}

impl KekProvider for KmipProvider {
    fn name(&self) -> &'static str {
        "kmip"
    }

    fn status(&self, deadline: Instant) -> Result<String, RemoteError> {
        self.check(deadline)
    }

    fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let credential = self.credential()?;
        let mut session = self.connect(Operation::Encrypt, deadline)?;
        self.wrap_in_session(&mut session, credential.as_ref(), key_id, kek)
            .map(|(_, blob)| blob)
    }

    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        deadline: Instant,
    ) -> Result<Secret32, RemoteError> {
        key::uid_of(key_id)?;
        WrappedBlob::parse(wrapped)?;
        let credential = self.credential()?;
        let mut session = self.connect(Operation::Decrypt, deadline)?;
        Self::decrypt(&mut session, credential.as_ref(), key_id, wrapped)
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
