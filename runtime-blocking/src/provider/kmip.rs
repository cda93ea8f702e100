//! KMIP provider: a symmetric key on a KMIP server (enterprise KMS, HSM appliance), reached
//! over TLS with a client certificate (mutual TLS, rustls), optionally with a Username and
//! Password credential.
//!
//! The messages, key selection, key ids, blobs and error mapping are the core's
//! (`kms_plugin_core::kek::kmip`); `transport` moves bytes over one TLS connection per call,
//! bounded by the call's deadline, and re-reads the certificate, key and CA files when they
//! change; this file runs the provider's steps over it.
//!
//! - Status: Locate the key by name (`KMS_KEY_ID`; if no key has that name, `KMS_KEY_ID` is
//!   taken as a Unique Identifier), Get Attributes of each match, pick the current one (the
//!   core's `choose_current`), then probe a wrap: Encrypt 32 random bytes and Decrypt them
//!   back. So Status is `ok` only while a wrap works.
//! - The wrap mode is AES-GCM, or, when the server refuses GCM for the key, NIST AES key wrap
//!   (RFC 3394), then AES key wrap with padding (RFC 5649); `--kmip-mode` pins one. A server
//!   that can do none is a [`ProbeOutcome::Refused`] at start-up (a clear start-up error).

mod transport;

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use kms_plugin_core::kek::kmip::{
    self, Credential, KeyAttributes, Operation, WrapMode, WrappedBlob, key,
};
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};
use zeroize::Zeroizing;

use super::KekProvider;
use super::secret_file::SecretFile;
pub use transport::DEFAULT_PORT;
use transport::{Server, Session, TlsFiles};

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

/// A KMIP server's key as a [`KekProvider`] (blocking, thread-safe).
pub struct KmipProvider {
    server: Server,
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

/// Why a Status or wrap failed.
enum Failure {
    /// The server refused every allowed wrap mode for the key (no waiting fixes that).
    NoMode(RemoteError),
    /// Anything else.
    Remote(RemoteError),
}

impl From<RemoteError> for Failure {
    fn from(e: RemoteError) -> Self {
        Self::Remote(e)
    }
}

impl Failure {
    fn into_remote(self) -> RemoteError {
        match self {
            Self::NoMode(e) | Self::Remote(e) => e,
        }
    }
}

/// Key ids remembered by [`KmipProvider`] to detect a destroyed key.
const MAX_SEEN_KEYS: usize = 64;

/// An Item Not Found answer to Encrypt or Decrypt under a key id: that key is gone.
fn gone_if_not_found(key_id: &str, e: RemoteError) -> RemoteError {
    if e.kind == RemoteErrorKind::NotFound {
        key::key_gone(key_id, &e.detail)
    } else {
        e
    }
}

impl KmipProvider {
    /// Validates `config` and loads the certificates and key (errors name the flag and file).
    /// Does no network IO: the plugin must start while the server is down.
    pub fn new(config: KmipConfig) -> Result<Self, String> {
        kmip::check_identifier(&config.key).map_err(|e| format!("KMS_KEY_ID: {e}"))?;
        let server = Server::new(
            &config.addr,
            TlsFiles {
                client_cert: config.client_cert,
                client_key: config.client_key,
                ca_file: config.ca_file,
            },
        )?;
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
            server,
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
    /// refusal of every mode (`Other`: Invalid Field, Feature Not Supported, ...) is
    /// [`Failure::NoMode`], one `Other` error naming the modes tried.
    fn wrap_in_session(
        &self,
        session: &mut Session,
        credential: Option<&Credential>,
        key_id: &str,
        kek: &Secret32,
    ) -> Result<(WrapMode, Vec<u8>), Failure> {
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
                Err(e) => return Err(Failure::Remote(e)),
            }
        }
        Err(Failure::NoMode(RemoteError::new(
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
        )))
    }

    /// One Status: the current key, and a wrap + unwrap of random bytes under it.
    fn check(&self, deadline: Instant) -> Result<String, Failure> {
        let credential = self.credential()?;
        let mut session = self.server.connect(Operation::Locate, deadline)?;
        let (attrs, known) = self.current_key(&mut session, credential.as_ref())?;
        self.check_seen(&mut session, credential.as_ref(), &known)?;
        let key_id = attrs.key_id();
        let mut probe = [0u8; 32];
        getrandom::getrandom(&mut probe).map_err(|e| {
            Failure::Remote(RemoteError::new(
                RemoteErrorKind::Other,
                format!("kmip: no randomness: {e}"),
            ))
        })?;
        let probe = Secret32::from_bytes(probe);
        let (mode, blob) =
            self.wrap_in_session(&mut session, credential.as_ref(), &key_id, &probe)?;
        let back = Self::decrypt(&mut session, credential.as_ref(), &key_id, &blob)?;
        if back.expose() != probe.expose() {
            return Err(Failure::Remote(RemoteError::new(
                RemoteErrorKind::Corrupt,
                format!(
                    "kmip: a {} round trip under {key_id} returned other bytes",
                    mode.name()
                ),
            )));
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
            Err(Failure::NoMode(e)) => ProbeOutcome::Refused(e.detail),
            Err(Failure::Remote(e)) => ProbeOutcome::NotReady(e),
        }
    }
}

impl KekProvider for KmipProvider {
    fn name(&self) -> &'static str {
        "kmip"
    }

    fn status(&self, deadline: Instant) -> Result<String, RemoteError> {
        self.check(deadline).map_err(Failure::into_remote)
    }

    fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let credential = self.credential()?;
        let mut session = self.server.connect(Operation::Encrypt, deadline)?;
        self.wrap_in_session(&mut session, credential.as_ref(), key_id, kek)
            .map(|(_, blob)| blob)
            .map_err(Failure::into_remote)
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
        let mut session = self.server.connect(Operation::Decrypt, deadline)?;
        Self::decrypt(&mut session, credential.as_ref(), key_id, wrapped)
    }
}
