//! PKCS#11 HSM provider (cargo feature `pkcs11`; dynamic builds only): wraps the local KEK
//! with an AES key that never leaves the token, using CKM_AES_GCM.
//!
//! - Token: the slot whose token label is `--pkcs11-token-label`; key: the AES secret key(s)
//!   labelled `KMS_KEY_ID`. With several keys of that label, the one with the greatest
//!   `CKA_ID` is current (rotation = add a key with the same label and a greater id); older
//!   ones still unwrap, because a key id names one key.
//! - Key id: `pkcs11:<key label>:<hex16>`, hex16 = SHA-256 over (key label, CKA_ID,
//!   CKA_CHECK_VALUE) truncated to 8 bytes: non-secret and stable. It names the key, not the
//!   token: hosts holding the same key material (a replicated or network HSM) under other
//!   token labels or serials agree on it and can unwrap each other's blobs (AAD = key id);
//!   re-created key material changes the check value and so the key id.
//! - Blob: `0x01 | IV (12, from the token's RNG) | AES-GCM(KEK) with tag (48)`, AAD = key id.
//! - Sessions: a small pool of logged-in sessions is reused; a session the token reports as
//!   gone is dropped and the next call logs in again.
//! - PIN failures (`CKR_PIN_INCORRECT`, `CKR_PIN_LOCKED`, ...) are `Auth` and *latched*: no
//!   further login is attempted with the same PIN (the core's periodic Status must not lock
//!   the token out) until the PIN file changes.
//! - PKCS#11 calls cannot be interrupted: the deadline is checked before each call, and a
//!   local token answers in well under a millisecond.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::KekProvider;
use super::secret_file::{FileStamp, SecretFile, check_secret};

/// Default module path (Debian's SoftHSM2).
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Blob format version byte.
const BLOB_V1: u8 = 1;
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;
/// Length of a wrapped 32-byte KEK: version, IV, ciphertext, tag.
pub const BLOB_LEN: usize = 1 + IV_LEN + 32 + 16;

/// Where the user PIN comes from.
pub enum PinSource {
    /// A fixed PIN (`KMS_USER_ID`); never from the command line.
    Value(Zeroizing<String>),
    /// A PIN file (`--pin-file`), re-read when it changes.
    File(PathBuf),
}

/// Configuration of a [`Pkcs11Provider`].
pub struct Pkcs11Config {
    /// The PKCS#11 module (`--pkcs11-module`, default [`DEFAULT_MODULE`]).
    pub module: PathBuf,
    /// Label of the token to use (`--pkcs11-token-label`).
    pub token_label: String,
    /// Label of the AES key (`KMS_KEY_ID`).
    pub key_label: String,
    /// The user PIN.
    pub pin: PinSource,
    /// Idle sessions kept for reuse (at least 1).
    pub max_idle_sessions: usize,
}

enum PinReader {
    Value(Zeroizing<String>),
    File(SecretFile),
}

/// Identifies which PIN a login failure was for, so the latch lifts when the PIN changes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PinVersion {
    Fixed,
    File(FileStamp),
}

impl PinReader {
    fn read(&self) -> Result<(PinVersion, Arc<Zeroizing<String>>), RemoteError> {
        match self {
            Self::Value(v) => {
                check_secret(v, "PKCS#11 PIN", "KMS_USER_ID")?;
                Ok((PinVersion::Fixed, Arc::new(v.clone())))
            }
            Self::File(f) => f.read().map(|(stamp, pin)| (PinVersion::File(stamp), pin)),
        }
    }
}

/// The token as last seen: slot, refused PIN, idle sessions.
#[derive(Default)]
struct TokenState {
    slot: Option<Slot>,
    /// A login refused for this PIN version, with its error (see module docs).
    pin_refused: Option<(PinVersion, RemoteError)>,
    idle: Vec<Session>,
}

/// A PKCS#11 HSM as a [`KekProvider`] (blocking, thread-safe).
pub struct Pkcs11Provider {
    ctx: Pkcs11,
    token_label: String,
    key_label: String,
    pin: PinReader,
    max_idle: usize,
    state: Mutex<TokenState>,
    /// Key ids `status` reported (the keys this process wraps under), at most
    /// [`MAX_SEEN_KEYS`]: if one disappears from the token, data wrapped under it no longer
    /// decrypts, and `status` says so (`KeyVersionMissing`) instead of moving on quietly.
    seen: Mutex<Vec<String>>,
}

/// Key ids remembered by [`Pkcs11Provider`] to detect a deleted key.
const MAX_SEEN_KEYS: usize = 64;

fn err(kind: RemoteErrorKind, detail: impl Into<String>) -> RemoteError {
    RemoteError::new(kind, detail)
}

/// Maps a PKCS#11 failure in `what` to a kind (see docs/providers.md).
fn map_error(what: &str, e: &CkError) -> RemoteError {
    let kind = match e {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::PinIncorrect
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::PinExpired
            | RvError::PinLocked
            | RvError::UserPinNotInitialized => RemoteErrorKind::Auth,
            RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid => RemoteErrorKind::NotFound,
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => {
                RemoteErrorKind::Corrupt
            }
            RvError::KeyFunctionNotPermitted => RemoteErrorKind::Permission,
            RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SessionClosed
            | RvError::SessionCount
            | RvError::SessionHandleInvalid
            | RvError::UserNotLoggedIn
            | RvError::GeneralError => RemoteErrorKind::Unavailable,
            _ => RemoteErrorKind::Other,
        },
        _ => RemoteErrorKind::Other,
    };
    err(kind, format!("pkcs11 {what}: {e}"))
}

/// Whether `e` means the session (or the login behind it) is no longer usable.
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionClosed
                | RvError::SessionHandleInvalid
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::DeviceError,
            _
        )
    )
}

fn check_deadline(deadline: Instant, what: &str) -> Result<(), RemoteError> {
    if Instant::now() >= deadline {
        return Err(err(
            RemoteErrorKind::Timeout,
            format!("pkcs11 {what}: deadline exceeded"),
        ));
    }
    Ok(())
}

/// A pooled session, returned to the pool when the operation succeeds.
struct Lease<'a> {
    provider: &'a Pkcs11Provider,
    session: Option<Session>,
}

impl Lease<'_> {
    fn session(&self) -> &Session {
        // Invariant: `session` is Some until `release` or drop.
        self.session.as_ref().expect("lease holds a session")
    }

    /// Handles a failed call: a lost session is discarded and the login forgotten.
    fn fail(mut self, what: &str, e: &CkError) -> RemoteError {
        if session_lost(e) {
            self.session = None;
            let mut state = self.provider.lock();
            state.idle.clear();
            state.slot = None;
        }
        map_error(what, e)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let mut state = self.provider.lock();
            if state.idle.len() < self.provider.max_idle {
                state.idle.push(session);
            }
        }
    }
}

struct KeyFacts {
    handle: ObjectHandle,
    id: Vec<u8>,
    key_id: String,
}

impl Pkcs11Provider {
    /// Loads and initialises the module. Does not open a session or log in (the plugin must
    /// start while the token is absent or the PIN is wrong).
    pub fn new(config: Pkcs11Config) -> Result<Self, String> {
        if config.token_label.is_empty() || config.token_label.len() > 32 {
            return Err("--pkcs11-token-label must be 1..=32 bytes".into());
        }
        if config.key_label.is_empty()
            || config.key_label.len() > 256
            || !config.key_label.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(
                "KMS_KEY_ID (the PKCS#11 key label) must be 1..=256 printable ASCII bytes".into(),
            );
        }
        let ctx = Pkcs11::new(&config.module)
            .map_err(|e| format!("--pkcs11-module {}: {e}", config.module.display()))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(format!(
                    "--pkcs11-module {}: C_Initialize: {e}",
                    config.module.display()
                ));
            }
        }
        Ok(Self {
            ctx,
            token_label: config.token_label,
            key_label: config.key_label,
            pin: match config.pin {
                PinSource::Value(v) => PinReader::Value(v),
                PinSource::File(path) => PinReader::File(SecretFile::new(path, "PKCS#11 PIN")),
            },
            max_idle: config.max_idle_sessions.max(1),
            state: Mutex::new(TokenState::default()),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, TokenState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions currently idle in the pool (for tests and metrics).
    pub fn idle_sessions(&self) -> usize {
        self.lock().idle.len()
    }

    fn find_slot(&self) -> Result<Slot, RemoteError> {
        let slots = self
            .ctx
            .get_slots_with_token()
            .map_err(|e| map_error("list slots", &e))?;
        for slot in slots {
            let Ok(info) = self.ctx.get_token_info(slot) else {
                continue;
            };
            if info.label().trim_end() == self.token_label {
                return Ok(slot);
            }
        }
        Err(err(
            RemoteErrorKind::Unavailable,
            format!("pkcs11: no token labelled {:?}", self.token_label),
        ))
    }

    /// A logged-in session from the pool, or a new one. The login state is checked on every
    /// lease (it is per application and token, and is lost when the token is re-inserted or
    /// another user of the module logs out) and restored with the current PIN. The state lock
    /// is held throughout, so concurrent callers never make two login attempts with a bad PIN.
    fn lease(&self, deadline: Instant) -> Result<Lease<'_>, RemoteError> {
        check_deadline(deadline, "open session")?;
        let (version, pin) = self.pin.read()?;
        let mut state = self.lock();
        if let Some((refused, e)) = &state.pin_refused {
            if *refused == version {
                return Err(err(
                    e.kind,
                    format!("{} (login not retried until the PIN changes)", e.detail),
                ));
            }
            state.pin_refused = None;
        }
        let session = if let Some(session) = state.idle.pop() {
            session
        } else {
            let slot = if let Some(slot) = state.slot {
                slot
            } else {
                let found = self.find_slot()?;
                state.slot = Some(found);
                found
            };
            self.ctx
                .open_ro_session(slot)
                .map_err(|e| map_error("open session", &e))?
        };
        let logged_in = match session.get_session_info() {
            Ok(info) => matches!(
                info.session_state(),
                SessionState::RoUser | SessionState::RwUser
            ),
            Err(e) => {
                // The session is gone: forget the pool and the slot, let the caller retry.
                state.idle.clear();
                state.slot = None;
                return Err(map_error("session info", &e));
            }
        };
        if !logged_in {
            check_deadline(deadline, "login")?;
            let auth_pin = AuthPin::from(pin.as_str().to_owned());
            match session.login(UserType::User, Some(&auth_pin)) {
                Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(e) => {
                    let mapped = map_error("login", &e);
                    if mapped.kind == RemoteErrorKind::Auth {
                        state.pin_refused = Some((version, mapped.clone()));
                    }
                    return Err(mapped);
                }
            }
        }
        Ok(Lease {
            provider: self,
            session: Some(session),
        })
    }

    /// The key id of the key labelled `label` with `CKA_ID` `id` and `CKA_CHECK_VALUE`
    /// `check` (empty when the token does not provide them).
    pub fn key_id_for(label: &str, id: &[u8], check: &[u8]) -> String {
        let mut h = Sha256::new();
        for part in [label.as_bytes(), id, check] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let digest = h.finalize();
        let hex = digest.iter().take(8).fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        format!("pkcs11:{label}:{hex}")
    }

    /// Every AES secret key labelled `label`, with its key id.
    fn keys(lease: &Lease<'_>, label: &str) -> Result<Vec<KeyFacts>, CkError> {
        let session = lease.session();
        let handles = session.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(label.as_bytes().to_vec()),
        ])?;
        let mut keys = Vec::with_capacity(handles.len());
        for handle in handles {
            let attrs =
                session.get_attributes(handle, &[AttributeType::Id, AttributeType::CheckValue])?;
            let mut id = Vec::new();
            let mut check = Vec::new();
            for attr in attrs {
                match attr {
                    Attribute::Id(v) => id = v,
                    Attribute::CheckValue(v) => check = v,
                    _ => {}
                }
            }
            let key_id = Self::key_id_for(label, &id, &check);
            keys.push(KeyFacts { handle, id, key_id });
        }
        Ok(keys)
    }

    /// Finds the key `key_id` names (its label is inside the key id).
    fn key_for(
        &self,
        lease: &Lease<'_>,
        key_id: &str,
    ) -> Result<Result<ObjectHandle, RemoteError>, CkError> {
        let label = key_id
            .strip_prefix("pkcs11:")
            .and_then(|rest| rest.rsplit_once(':'))
            .map(|(label, _)| label);
        let Some(label) = label else {
            return Ok(Err(err(
                RemoteErrorKind::NotFound,
                format!("key id {key_id:?} is not a pkcs11 key id"),
            )));
        };
        let found = Self::keys(lease, label)?
            .into_iter()
            .find(|k| k.key_id == key_id)
            .map(|k| k.handle);
        Ok(found.ok_or_else(|| {
            err(
                RemoteErrorKind::KeyVersionMissing,
                format!(
                    "pkcs11: no key on token {:?} matches key id {key_id:?}: the HSM key that \
                     wrapped this data was deleted or replaced; restore it from the HSM's backup",
                    self.token_label
                ),
            )
        }))
    }
}

impl KekProvider for Pkcs11Provider {
    fn name(&self) -> &'static str {
        "pkcs11"
    }

    fn status(&self, deadline: Instant) -> Result<String, RemoteError> {
        let lease = self.lease(deadline)?;
        check_deadline(deadline, "find key")?;
        let keys = match Self::keys(&lease, &self.key_label) {
            Ok(keys) => keys,
            Err(e) => return Err(lease.fail("find key", &e)),
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gone) = seen
            .iter()
            .find(|id| !keys.iter().any(|k| &k.key_id == *id))
        {
            return Err(err(
                RemoteErrorKind::KeyVersionMissing,
                format!(
                    "pkcs11: key {gone:?} (label {:?}) is gone from token {:?}: data wrapped \
                     under it no longer decrypts; restore the key from the HSM's backup",
                    self.key_label, self.token_label
                ),
            ));
        }
        let current = keys
            .into_iter()
            .max_by(|a, b| a.id.cmp(&b.id))
            .map(|k| k.key_id)
            .ok_or_else(|| {
                err(
                    RemoteErrorKind::NotFound,
                    format!(
                        "pkcs11: no AES key labelled {:?} on token {:?}",
                        self.key_label, self.token_label
                    ),
                )
            })?;
        if !seen.contains(&current) && seen.len() < MAX_SEEN_KEYS {
            seen.push(current.clone());
        }
        Ok(current)
    }

    fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let lease = self.lease(deadline)?;
        check_deadline(deadline, "wrap")?;
        let key = match self.key_for(&lease, key_id) {
            Ok(found) => found?,
            Err(e) => return Err(lease.fail("find key", &e)),
        };
        let mut iv = [0u8; IV_LEN];
        if let Err(e) = lease.session().generate_random_slice(&mut iv) {
            return Err(lease.fail("generate IV", &e));
        }
        let sealed =
            GcmParams::new(&mut iv, key_id.as_bytes(), TAG_BITS.into()).and_then(|params| {
                lease
                    .session()
                    .encrypt(&Mechanism::AesGcm(params), key, kek.expose())
            });
        let sealed = match sealed {
            Ok(s) => s,
            Err(e) => return Err(lease.fail("encrypt", &e)),
        };
        if sealed.len() != 32 + 16 {
            return Err(err(
                RemoteErrorKind::Corrupt,
                format!("pkcs11 encrypt: unexpected output length {}", sealed.len()),
            ));
        }
        let mut blob = Vec::with_capacity(BLOB_LEN);
        blob.push(BLOB_V1);
        blob.extend_from_slice(&iv);
        blob.extend_from_slice(&sealed);
        Ok(blob)
    }

    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        deadline: Instant,
    ) -> Result<Secret32, RemoteError> {
        if wrapped.len() != BLOB_LEN || wrapped.first() != Some(&BLOB_V1) {
            return Err(err(
                RemoteErrorKind::Corrupt,
                "pkcs11: wrapped KEK has a wrong length or version",
            ));
        }
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(wrapped.get(1..=IV_LEN).unwrap_or(&[0; IV_LEN]));
        let sealed = wrapped.get(1 + IV_LEN..).unwrap_or_default();
        let lease = self.lease(deadline)?;
        check_deadline(deadline, "unwrap")?;
        let key = match self.key_for(&lease, key_id) {
            Ok(found) => found?,
            Err(e) => return Err(lease.fail("find key", &e)),
        };
        let opened =
            GcmParams::new(&mut iv, key_id.as_bytes(), TAG_BITS.into()).and_then(|params| {
                lease
                    .session()
                    .decrypt(&Mechanism::AesGcm(params), key, sealed)
            });
        let plain = match opened {
            Ok(p) => Zeroizing::new(p),
            Err(e) => {
                // A tag mismatch is a corrupt blob, whatever code the token chose for it
                // (SoftHSM2 answers CKR_GENERAL_ERROR to a failed GCM tag check).
                let tag_failure = matches!(e, CkError::Pkcs11(RvError::GeneralError, _));
                let mapped = lease.fail("decrypt", &e);
                return Err(if tag_failure || mapped.kind == RemoteErrorKind::Other {
                    err(RemoteErrorKind::Corrupt, mapped.detail)
                } else {
                    mapped
                });
            }
        };
        Secret32::from_slice(&plain).ok_or_else(|| {
            err(
                RemoteErrorKind::Corrupt,
                "pkcs11 decrypt: not a 32-byte key",
            )
        })
    }
}
