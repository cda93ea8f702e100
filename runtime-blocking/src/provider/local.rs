//! The embedded default provider: a local key file (see `keyfile`), re-read when it changes.
//!
//! `status` (issued by the core on its refresh timer) checks the file's stamp and reloads it
//! when it was replaced, so `kms-plugin keys rotate` / `stage` / `promote` take effect without
//! a restart. The keyring in memory is append-only: a replacement that lacks a version this
//! process loaded, or holds other bytes under one, is refused (the plugin keeps every key it
//! has and keeps serving), `status` fails with `key_version_missing` (healthz names the cause),
//! and an error log line and the `kms_plugin_key_file_refused` metric name the file and the
//! versions. A file that became unreadable or corrupt (a truncated one included) likewise keeps
//! the last good keyring and makes `status` fail. An unwrap under a version the file lacks (say
//! after a restart on an older backup) fails with an error naming the version and the fix.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use kms_plugin_core::keyring::{Keyring, UnknownKeyId};
use kms_plugin_core::metrics::exposition::{Kind, header, sample};
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};

use super::KekProvider;
use crate::keyfile::{self, FileStamp};
use crate::log::Logger;

/// A [`KekProvider`] over a local keyring file.
pub struct LocalKeyFile {
    path: PathBuf,
    key_name: String,
    logger: Logger,
    state: Mutex<State>,
}

struct State {
    keyring: Keyring,
    /// The stamp of the file `keyring` was last loaded from.
    stamp: FileStamp,
    /// The file version last refused, and why (answered again until the file changes).
    refused: Option<Refusal>,
}

struct Refusal {
    stamp: FileStamp,
    error: RemoteError,
    /// For the metric: the versions the refused file lacks or changed, if that was the cause.
    versions: Option<String>,
}

/// Longest label value the refusal metric carries.
const MAX_LABEL: usize = 256;

impl LocalKeyFile {
    /// Loads `path` (errors are one operator-facing line) and serves key `key_name` from it.
    pub fn open(path: PathBuf, key_name: String, logger: Logger) -> Result<Self, String> {
        let (keyring, stamp) = keyfile::load(&path)?;
        if keyring.current_key_id(&key_name).is_none() {
            return Err(format!(
                "key file {} has no key named {key_name:?} (KMS_KEY_ID); add it with \
                 `kms-plugin keys rotate --key-file {} --key-name {key_name}`",
                path.display(),
                path.display()
            ));
        }
        logger.info(
            "key file loaded",
            &[
                ("key_file", &path.display()),
                ("fingerprint", &keyring.fingerprint()),
                ("versions", &keyring.len()),
            ],
        );
        Ok(Self {
            path,
            key_name,
            logger,
            state: Mutex::new(State {
                keyring,
                stamp,
                refused: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads the file if its stamp changed. A file that does not parse, or that breaks the
    /// append-only rule, is refused: the keyring in memory stays, and the error is returned
    /// (and logged once per file version).
    fn refresh(&self) -> Result<(), RemoteError> {
        let shown = self.path.display();
        let stamp = FileStamp::of(&self.path).map_err(|e| {
            RemoteError::new(
                RemoteErrorKind::Unavailable,
                format!("key file {shown}: {e}"),
            )
        })?;
        {
            let mut st = self.lock();
            if stamp == st.stamp {
                st.refused = None;
                return Ok(());
            }
            if let Some(r) = st.refused.as_ref().filter(|r| r.stamp == stamp) {
                return Err(r.error.clone());
            }
        }
        let (keyring, stamp) = match keyfile::load(&self.path) {
            Ok(loaded) => loaded,
            Err(e) => {
                let error = RemoteError::new(
                    RemoteErrorKind::Corrupt,
                    format!("{e}; the plugin keeps the keys it loaded"),
                );
                self.logger.error(
                    "key file refused: it does not load",
                    &[("key_file", &shown), ("error", &e)],
                );
                self.lock().refused = Some(Refusal {
                    stamp,
                    error: error.clone(),
                    versions: None,
                });
                return Err(error);
            }
        };
        let mut st = self.lock();
        if let Err(violation) = st.keyring.check_successor(&keyring) {
            let error = RemoteError::new(
                RemoteErrorKind::KeyVersionMissing,
                format!(
                    "key file {shown} refused: {violation}; the plugin keeps serving with the \
                     keys it loaded; restore the newer key file (from a backup or another host) \
                     before the plugin restarts"
                ),
            );
            let mut versions = violation.missing_list();
            if !violation.changed.is_empty() {
                let sep = if versions.is_empty() { "" } else { ", " };
                versions = format!("{versions}{sep}changed {}", violation.changed_list());
            }
            self.logger.error(
                "key file refused: a loaded key version is missing or changed",
                &[
                    ("key_file", &shown),
                    ("missing", &violation.missing_list()),
                    ("changed", &violation.changed_list()),
                ],
            );
            st.refused = Some(Refusal {
                stamp,
                error: error.clone(),
                versions: Some(versions),
            });
            return Err(error);
        }
        if keyring.current_key_id(&self.key_name).is_none() {
            // Unreachable after check_successor (the name's versions are all still there).
            return Err(RemoteError::new(
                RemoteErrorKind::NotFound,
                format!("key file {shown} has no key named {:?}", self.key_name),
            ));
        }
        self.logger.info(
            "key file reloaded",
            &[
                ("key_file", &shown),
                ("fingerprint", &keyring.fingerprint()),
                ("versions", &keyring.len()),
            ],
        );
        *st = State {
            keyring,
            stamp,
            refused: None,
        };
        Ok(())
    }

    /// The error for an unwrap under a key_id the keyring does not hold.
    fn unknown_key_id(&self, keyring: &Keyring, key_id: &str) -> RemoteError {
        let shown = self.path.display();
        match keyring.explain_unknown_key_id(key_id) {
            UnknownKeyId::MissingVersion { name, version } => RemoteError::new(
                RemoteErrorKind::KeyVersionMissing,
                format!(
                    "key file {shown} lacks key version {name} v{version}, which encrypted this \
                     data; restore the newer key file (from a backup or another host)"
                ),
            ),
            UnknownKeyId::ChangedVersion { name, version } => RemoteError::new(
                RemoteErrorKind::KeyVersionMissing,
                format!(
                    "key file {shown} holds other key bytes for {name} v{version} than the ones \
                     that encrypted this data; restore the original key file"
                ),
            ),
            UnknownKeyId::Foreign => RemoteError::new(
                RemoteErrorKind::NotFound,
                "key_id is not a key id of the local key file provider",
            ),
        }
    }
}

impl KekProvider for LocalKeyFile {
    fn name(&self) -> &'static str {
        "local"
    }

    fn status(&self, _deadline: Instant) -> Result<String, RemoteError> {
        self.refresh()?;
        self.lock()
            .keyring
            .current_key_id(&self.key_name)
            .ok_or_else(|| {
                RemoteError::new(
                    RemoteErrorKind::NotFound,
                    format!("key file has no key named {:?}", self.key_name),
                )
            })
    }

    fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        _deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let mut nonce = [0u8; 12];
        getrandom::getrandom(&mut nonce)
            .map_err(|e| RemoteError::new(RemoteErrorKind::Other, format!("entropy: {e}")))?;
        self.lock().keyring.wrap(key_id, kek, nonce)
    }

    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        _deadline: Instant,
    ) -> Result<Secret32, RemoteError> {
        let result = self.lock().keyring.unwrap(key_id, wrapped);
        match result {
            // Another host may have staged a version in the shared file: look again once.
            Err(e) if e.kind == RemoteErrorKind::NotFound => {
                // A refused or unreadable file does not hide the real answer below.
                let _ = self.refresh();
                let st = self.lock();
                match st.keyring.unwrap(key_id, wrapped) {
                    Err(e) if e.kind == RemoteErrorKind::NotFound => {
                        Err(self.unknown_key_id(&st.keyring, key_id))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    fn render_metrics(&self, out: &mut String) {
        let st = self.lock();
        let file = label(&self.path.display().to_string());
        let fingerprint = st.keyring.fingerprint();
        header(
            out,
            "kms_plugin_keyring_info",
            Kind::Gauge,
            "The loaded keyring's fingerprint: equal on hosts with equal key files (every version, and which is current).",
        );
        sample(
            out,
            "kms_plugin_keyring_info",
            &[("fingerprint", &fingerprint)],
            1,
        );
        header(
            out,
            "kms_plugin_keyring_versions",
            Kind::Gauge,
            "Key versions loaded from the key file (never fewer than before: append-only).",
        );
        sample(
            out,
            "kms_plugin_keyring_versions",
            &[],
            st.keyring.len() as u64,
        );
        header(
            out,
            "kms_plugin_keyring_staged_versions",
            Kind::Gauge,
            "Staged versions of the served key: they unwrap but wrap nothing until `keys promote`.",
        );
        sample(
            out,
            "kms_plugin_keyring_staged_versions",
            &[],
            st.keyring.staged_versions(&self.key_name).count() as u64,
        );
        header(
            out,
            "kms_plugin_key_file_refused",
            Kind::Gauge,
            "1 while the key file on disk is refused (it does not load, or lacks or changed a loaded version); `versions` names them.",
        );
        let versions = st
            .refused
            .as_ref()
            .map(|r| label(r.versions.as_deref().unwrap_or("")))
            .unwrap_or_default();
        sample(
            out,
            "kms_plugin_key_file_refused",
            &[("file", &file), ("versions", &versions)],
            u64::from(st.refused.is_some()),
        );
    }
}

/// `value` cut to at most [`MAX_LABEL`] bytes (on a character boundary).
fn label(value: &str) -> String {
    let mut end = value.len().min(MAX_LABEL);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default().to_string()
}
