//! Vault / OpenBao Transit codec: request paths and bodies, response parsing, error mapping
//! and key ids (the transport lives in the runtimes).
//!
//! API (Vault "Transit secrets engine" HTTP API, identical in OpenBao):
//! - identity: `GET /v1/<mount>/keys/<key>` -> `data.latest_version`,
//!   `data.min_decryption_version`, `data.type` (must be an AEAD type);
//! - wrap: `POST /v1/<mount>/encrypt/<key>` `{"plaintext": b64, "key_version": N}` ->
//!   `data.ciphertext` = `vault:vN:...` (the explicit version keeps key id and blob in step);
//! - unwrap: `POST /v1/<mount>/decrypt/<key>` `{"ciphertext": "vault:vN:..."}` ->
//!   `data.plaintext` (b64 of the 32-byte local KEK);
//! - errors: HTTP status + `{"errors": ["..."]}` (Vault never echoes request data there).
//!
//! JSON is handled with `serde_json` (no_std + alloc) so both runtimes share one parser; the
//! one secret field read (`data.plaintext`) is moved out of the parsed tree and wiped after
//! decoding. Base64 of key material uses the keyring's constant-time codec. Bodies larger than [`MAX_RESPONSE_BYTES`] must be refused by the transport.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::effect::{RemoteError, RemoteErrorKind};
use crate::keyring::base64;
use crate::secret::{Secret32, SecretBytes};

/// Largest response body a transport may buffer (Transit answers are < 4 KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest accepted Transit key name.
pub const MAX_KEY_NAME_LEN: usize = 128;
/// Longest accepted Transit ciphertext (a wrapped 32-byte KEK is about 90 bytes).
pub const MAX_CIPHERTEXT_LEN: usize = 1024;
/// Longest `errors` text quoted in a [`RemoteError`] detail.
pub const MAX_ERROR_TEXT: usize = 300;
/// Transit key types that are AEADs (others cannot wrap with integrity).
pub const AEAD_KEY_TYPES: [&str; 3] = ["aes256-gcm96", "aes128-gcm96", "chacha20-poly1305"];

/// Why a Transit configuration was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetError(pub String);

/// Which Transit call a response answers (the error mapping differs slightly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitOp {
    /// `GET keys/<key>`.
    ReadKey,
    /// `POST encrypt/<key>`.
    Encrypt,
    /// `POST decrypt/<key>`.
    Decrypt,
    /// `POST /v1/sys/capabilities-self` (see [`capabilities`]).
    Capabilities,
}

/// A validated Transit key location: server address, optional namespace, mount and key name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitTarget {
    addr: String,
    /// Host part of `addr` (IPv6 literals keep their brackets).
    host: String,
    /// Port of `addr` (default 443 for https, 80 for http).
    port: u16,
    namespace: Option<String>,
    mount: String,
    key: String,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.len() <= 256 && s.bytes().all(is_name_byte)
}

fn valid_path(s: &str) -> bool {
    s.len() <= 1024 && s.split('/').all(valid_segment)
}

impl TransitTarget {
    /// Validates the configuration: `addr` is `http(s)://host[:port]` (a trailing `/` is
    /// dropped), `mount` and `namespace` are `/`-separated segments of `[A-Za-z0-9_.-]`
    /// (surrounding `/` dropped), `key` is one such segment of at most
    /// [`MAX_KEY_NAME_LEN`] bytes.
    pub fn new(
        addr: &str,
        namespace: Option<&str>,
        mount: &str,
        key: &str,
    ) -> Result<Self, TargetError> {
        let addr = addr.trim_end_matches('/');
        let rest = addr
            .strip_prefix("https://")
            .or_else(|| addr.strip_prefix("http://"))
            .ok_or_else(|| {
                TargetError(format!(
                    "vault address {addr:?} must start with http:// or https://"
                ))
            })?;
        if rest.is_empty()
            || rest.contains('/')
            || rest.contains('@')
            || !rest.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(TargetError(format!(
                "vault address {addr:?} must be scheme://host[:port] with no path or user info"
            )));
        }
        let (host, port) =
            split_authority(rest, addr.starts_with("https://")).ok_or_else(|| {
                TargetError(format!(
                    "vault address {addr:?} has an invalid host or port"
                ))
            })?;
        let mount = mount.trim_matches('/');
        if !valid_path(mount) {
            return Err(TargetError(format!(
                "transit mount {mount:?} must be /-separated [A-Za-z0-9_.-] segments"
            )));
        }
        let namespace = match namespace.map(|n| n.trim_matches('/')) {
            None | Some("") => None,
            Some(n) if valid_path(n) => Some(String::from(n)),
            Some(n) => {
                return Err(TargetError(format!(
                    "vault namespace {n:?} must be /-separated [A-Za-z0-9_.-] segments"
                )));
            }
        };
        if !valid_segment(key) || key.len() > MAX_KEY_NAME_LEN {
            return Err(TargetError(format!(
                "transit key name {key:?} must be 1..={MAX_KEY_NAME_LEN} bytes of [A-Za-z0-9_.-]"
            )));
        }
        Ok(Self {
            addr: String::from(addr),
            host,
            port,
            namespace,
            mount: String::from(mount),
            key: String::from(key),
        })
    }

    /// The server address without a trailing `/` (`https://vault.example:8200`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The host to connect to (and, for TLS, the server name; IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the address uses TLS.
    pub fn is_https(&self) -> bool {
        self.addr.starts_with("https://")
    }

    /// The `X-Vault-Namespace` header value, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The Transit key name.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Request path of `op` (`/v1/<mount>/keys|encrypt|decrypt/<key>`,
    /// `/v1/sys/capabilities-self`).
    pub fn path(&self, op: TransitOp) -> String {
        let verb = match op {
            TransitOp::ReadKey => "keys",
            TransitOp::Encrypt => "encrypt",
            TransitOp::Decrypt => "decrypt",
            TransitOp::Capabilities => return String::from("/v1/sys/capabilities-self"),
        };
        format!("/v1/{}/{verb}/{}", self.mount, self.key)
    }

    /// The policy path of `verb` on this key, relative to the namespace
    /// (`<mount>/<verb>/<key>`).
    pub fn policy_path(&self, verb: &str) -> String {
        format!("{}/{verb}/{}", self.mount, self.key)
    }

    /// Full URL of `op`.
    pub fn url(&self, op: TransitOp) -> String {
        format!("{}{}", self.addr, self.path(op))
    }

    /// The key id of Transit key version `version`, created at `created` (the unix time
    /// Transit reports for that version in `data.keys`, 0 if unknown):
    /// `vault:<key>:v<version>:<hex16>`, where `hex16` is the first 8 bytes of SHA-256 over
    /// (namespace, mount, key, version, created).
    ///
    /// Readable and non-secret; a remote rotation (new version) is a new key id, and so is a
    /// key deleted and re-created under the same name (its version 1 has another creation
    /// time), so a key id is never reused for other key material. The server address is
    /// deliberately left out: every control-plane host reports the same key id even when
    /// each reaches Vault through its own address (a local agent, a load balancer).
    pub fn key_id(&self, version: u32, created: u64) -> String {
        let mut h = Sha256::new();
        for part in [
            self.namespace.as_deref().unwrap_or("").as_bytes(),
            self.mount.as_bytes(),
            self.key.as_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.update(u64::from(version).to_be_bytes());
        h.update(created.to_be_bytes());
        let digest = h.finalize();
        format!(
            "vault:{}:v{version}:{}",
            self.key,
            super::hex_lower(digest.get(..8).unwrap_or_default())
        )
    }

    /// The key version named by `key_id` (as built by [`TransitTarget::key_id`] for this
    /// key). A key id of another key name, or malformed, is `NotFound`; one whose digest
    /// belongs to another address or mount is accepted (Transit itself then decides, so a
    /// renamed address keeps old blobs readable).
    pub fn version_of(&self, key_id: &str) -> Result<u32, RemoteError> {
        let not_found = || {
            RemoteError::new(
                RemoteErrorKind::NotFound,
                format!(
                    "key id {key_id:?} does not name a version of transit key {:?}",
                    self.key
                ),
            )
        };
        let rest = key_id.strip_prefix("vault:").ok_or_else(not_found)?;
        let (key, rest) = rest.split_once(':').ok_or_else(not_found)?;
        if key != self.key {
            return Err(not_found());
        }
        let (version, digest) = rest.split_once(':').ok_or_else(not_found)?;
        if digest.len() != 16 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        parse_version(version.strip_prefix('v').ok_or_else(not_found)?).ok_or_else(not_found)
    }
}

/// Splits `host[:port]` / `[v6]:port`; `None` if the port is not a number 1..=65535.
fn split_authority(authority: &str, https: bool) -> Option<(String, u16)> {
    let default = if https { 443 } else { 80 };
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = authority.get(..=end)?;
        match authority.get(end + 1..)? {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    let port = match port {
        None => default,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|p| *p != 0)?
        }
        Some(_) => return None,
    };
    Some((String::from(host), port))
}

fn parse_version(digits: &str) -> Option<u32> {
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok().filter(|v| *v >= 1)
}

/// The key version in a Transit ciphertext's `vault:v<N>:` prefix.
pub fn ciphertext_version(ciphertext: &[u8]) -> Option<u32> {
    let rest = ciphertext.strip_prefix(b"vault:v")?;
    let end = rest.iter().position(|b| *b == b':')?;
    let digits = core::str::from_utf8(rest.get(..end)?).ok()?;
    parse_version(digits)
}

/// Body of the encrypt request, `{"plaintext":"<b64 kek>","key_version":N}` (secret).
pub fn encrypt_body(kek: &Secret32, version: u32) -> SecretBytes {
    // Capacity covers the whole body, so the secret is never left behind by a reallocation;
    // the encoder is the keyring's constant-time one.
    let mut body = Vec::with_capacity(96);
    body.extend_from_slice(b"{\"plaintext\":\"");
    base64::encode_into(kek.expose(), &mut body);
    body.extend_from_slice(b"\",\"key_version\":");
    body.extend_from_slice(format!("{version}}}").as_bytes());
    SecretBytes::new(body)
}

/// Checks a wrapped blob before unwrapping and builds the decrypt request body
/// `{"ciphertext":"vault:vN:..."}`. The blob's version must equal `key_id`'s version.
pub fn decrypt_body(
    target: &TransitTarget,
    key_id: &str,
    wrapped: &[u8],
) -> Result<Vec<u8>, RemoteError> {
    let version = target.version_of(key_id)?;
    let corrupt =
        |why: &str| RemoteError::new(RemoteErrorKind::Corrupt, format!("wrapped KEK {why}"));
    if wrapped.len() > MAX_CIPHERTEXT_LEN {
        return Err(corrupt("is too long for a transit ciphertext"));
    }
    // Only the prefix and base64 characters: nothing needs JSON escaping.
    if !wrapped
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'+' | b'/' | b'='))
    {
        return Err(corrupt("is not a transit ciphertext"));
    }
    match ciphertext_version(wrapped) {
        Some(v) if v == version => {}
        Some(_) => return Err(corrupt("version does not match its key id")),
        None => return Err(corrupt("has no vault:vN: prefix")),
    }
    let mut body = Vec::with_capacity(wrapped.len() + 20);
    body.extend_from_slice(b"{\"ciphertext\":\"");
    body.extend_from_slice(wrapped);
    body.extend_from_slice(b"\"}");
    Ok(body)
}

/// Names the trimmed key version in a decrypt error of kind `KeyVersionMissing` (other errors
/// pass unchanged): `key_id`'s version is below the key's `min_decryption_version`.
pub fn name_missing_version(target: &TransitTarget, key_id: &str, e: RemoteError) -> RemoteError {
    if e.kind != RemoteErrorKind::KeyVersionMissing {
        return e;
    }
    let version = target
        .version_of(key_id)
        .map_or_else(|_| String::from("?"), |v| format!("{v}"));
    RemoteError::new(
        RemoteErrorKind::KeyVersionMissing,
        format!(
            "vault transit key {:?} version v{version} is below its min_decryption_version and \
             can no longer decrypt ({}); lower min_decryption_version to {version} or less to \
             restore it",
            target.key, e.detail
        ),
    )
}

/// The fields of `GET keys/<key>` the provider uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Newest key version (what Status reports and new wraps use).
    pub latest_version: u32,
    /// Oldest version Transit still decrypts with.
    pub min_decryption_version: u32,
    /// Transit key type (one of [`AEAD_KEY_TYPES`]).
    pub key_type: String,
    /// Creation time (unix seconds) of `latest_version` from `data.keys`, 0 if absent.
    pub latest_created: u64,
}

impl KeyInfo {
    /// The key id Status reports for this key: its latest version.
    pub fn key_id(&self, target: &TransitTarget) -> String {
        target.key_id(self.latest_version, self.latest_created)
    }
}

fn corrupt(op: TransitOp, why: &str) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Corrupt,
        format!("transit {} response {why}", op_name(op)),
    )
}

fn op_name(op: TransitOp) -> &'static str {
    op.name()
}

impl TransitOp {
    /// Human-readable name for error details: `read key`, `encrypt`, `decrypt`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ReadKey => "read key",
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
            Self::Capabilities => "capabilities",
        }
    }
}

pub(crate) fn parse_ok(op: TransitOp, status: u16, body: &[u8]) -> Result<Value, RemoteError> {
    if !(200..300).contains(&status) {
        return Err(error_from_response(op, status, body));
    }
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(corrupt(op, "is too large"));
    }
    serde_json::from_slice::<Value>(body).map_err(|_| corrupt(op, "is not JSON"))
}

fn data_u32(data: &Value, field: &str) -> Option<u32> {
    data.get(field)?
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
}

/// Parses the key read response and checks the key can wrap: an AEAD type, encryption and
/// decryption supported, `1 <= min_decryption_version <= latest_version`.
pub fn parse_key_info(status: u16, body: &[u8]) -> Result<KeyInfo, RemoteError> {
    let op = TransitOp::ReadKey;
    let v = parse_ok(op, status, body)?;
    let data = v.get("data").ok_or_else(|| corrupt(op, "has no data"))?;
    let latest = data_u32(data, "latest_version")
        .filter(|v| *v >= 1)
        .ok_or_else(|| corrupt(op, "has no valid data.latest_version"))?;
    let min_dec = data_u32(data, "min_decryption_version").unwrap_or(1).max(1);
    let key_type = data
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt(op, "has no data.type"))?;
    if !AEAD_KEY_TYPES.contains(&key_type) {
        return Err(RemoteError::new(
            RemoteErrorKind::Other,
            format!(
                "transit key type {:?} is not an AEAD (need one of {})",
                truncate(key_type),
                AEAD_KEY_TYPES.join(", ")
            ),
        ));
    }
    for flag in ["supports_encryption", "supports_decryption"] {
        if data.get(flag).and_then(Value::as_bool) == Some(false) {
            return Err(RemoteError::new(
                RemoteErrorKind::Other,
                format!("transit key reports {flag}=false"),
            ));
        }
    }
    if min_dec > latest {
        return Err(corrupt(op, "has min_decryption_version > latest_version"));
    }
    // `data.keys` maps each version to its creation time (unix seconds) for symmetric keys.
    let latest_created = data
        .get("keys")
        .and_then(|keys| keys.get(format!("{latest}").as_str()))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(KeyInfo {
        latest_version: latest,
        min_decryption_version: min_dec,
        key_type: String::from(key_type),
        latest_created,
    })
}

/// Parses the encrypt response: `data.ciphertext` must be a `vault:v<version>:` ciphertext of
/// at most [`MAX_CIPHERTEXT_LEN`] bytes. Returns the blob to store.
pub fn parse_encrypt(status: u16, body: &[u8], version: u32) -> Result<Vec<u8>, RemoteError> {
    let op = TransitOp::Encrypt;
    let v = parse_ok(op, status, body)?;
    let ct = v
        .get("data")
        .and_then(|d| d.get("ciphertext"))
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt(op, "has no data.ciphertext"))?;
    if ct.len() > MAX_CIPHERTEXT_LEN {
        return Err(corrupt(op, "ciphertext is too long"));
    }
    if ciphertext_version(ct.as_bytes()) != Some(version) {
        return Err(corrupt(
            op,
            "ciphertext is not under the requested key version",
        ));
    }
    Ok(ct.as_bytes().to_vec())
}

/// Parses the decrypt response: `data.plaintext` must be base64 of exactly 32 bytes. Every
/// intermediate copy of the plaintext is wiped.
pub fn parse_decrypt(status: u16, body: &[u8]) -> Result<Secret32, RemoteError> {
    let op = TransitOp::Decrypt;
    let mut v = parse_ok(op, status, body)?;
    let b64 = match v.get_mut("data").and_then(|d| d.get_mut("plaintext")) {
        Some(Value::String(s)) => Zeroizing::new(core::mem::take(s)),
        _ => return Err(corrupt(op, "has no data.plaintext")),
    };
    base64::decode(b64.as_bytes())
        .and_then(|raw| Secret32::from_slice(&raw))
        .ok_or_else(|| corrupt(op, "plaintext is not a 32-byte key"))
}

pub(crate) fn truncate(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > MAX_ERROR_TEXT {
            out.push_str("...");
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// The `errors` array of an error body joined with `; ` (bounded, control characters
/// replaced), or a note when the body is not Vault's error JSON.
pub fn error_text(body: &[u8]) -> String {
    let parsed = if body.len() <= MAX_RESPONSE_BYTES {
        serde_json::from_slice::<Value>(body).ok()
    } else {
        None
    };
    let Some(errors) = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(Value::as_array)
    else {
        return String::from("(no errors in body)");
    };
    let joined: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
    if joined.is_empty() {
        return String::from("(empty errors)");
    }
    truncate(&joined.join("; "))
}

/// Maps a non-2xx Transit answer to a [`RemoteError`] whose detail holds the status code and
/// Vault's error text (never secrets):
///
/// | status | kind |
/// |---|---|
/// | 400 with "not found" | `NotFound` |
/// | 400 on decrypt with "disallowed by policy" / "too old" | `KeyVersionMissing` (the version was trimmed by `min_decryption_version`) |
/// | 400 on decrypt | `Corrupt` (ciphertext does not open) |
/// | 400 otherwise | `Other` |
/// | 401; 403 with "invalid token" / "token" errors | `Auth` |
/// | 403 otherwise | `Permission` |
/// | 404 | `NotFound` |
/// | 412, 473, 5xx | `Unavailable` |
/// | 429 | `Throttled` |
/// | anything else | `Other` |
pub fn error_from_response(op: TransitOp, status: u16, body: &[u8]) -> RemoteError {
    let text = error_text(body);
    let lower = text.to_ascii_lowercase();
    let kind = match status {
        400 if lower.contains("not found") => RemoteErrorKind::NotFound,
        400 if op == TransitOp::Decrypt
            && (lower.contains("disallowed by policy") || lower.contains("too old")) =>
        {
            RemoteErrorKind::KeyVersionMissing
        }
        400 if op == TransitOp::Decrypt => RemoteErrorKind::Corrupt,
        401 => RemoteErrorKind::Auth,
        403 if lower.contains("invalid token") || lower.contains("token is expired") => {
            RemoteErrorKind::Auth
        }
        403 => RemoteErrorKind::Permission,
        404 => RemoteErrorKind::NotFound,
        412 | 473 | 500..=599 => RemoteErrorKind::Unavailable,
        429 => RemoteErrorKind::Throttled,
        _ => RemoteErrorKind::Other,
    };
    RemoteError::new(
        kind,
        format!("transit {} HTTP {status}: {text}", op_name(op)),
    )
}

pub mod capabilities;
