//! Vault / OpenBao Transit provider over HTTP(S) with ureq 3 (rustls).
//!
//! The request bodies, response parsing, key ids and error mapping are the core's
//! (`kms_plugin_core::kek::vault`); this file only moves bytes, reads the token (from the
//! environment or a token file that is re-read whenever it changes) and maps transport
//! failures to [`RemoteErrorKind`]s. Every call is bounded by its deadline (ureq's global
//! timeout covers resolve, connect, TLS, request and response). Redirects are not followed, so
//! the token is only ever sent to the configured address.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kms_plugin_core::kek::vault::{
    self, MAX_RESPONSE_BYTES, TransitOp, TransitTarget, capabilities,
};
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};
use ureq::http::HeaderValue;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use zeroize::Zeroizing;

use super::KekProvider;
use super::secret_file::{SecretFile, check_secret};

/// Where the Vault token comes from.
pub enum TokenSource {
    /// A fixed token (from `KMS_USER_ID`); never from the command line.
    Value(Zeroizing<String>),
    /// A file holding the token (surrounding whitespace ignored), re-read when its size,
    /// modification time or inode changes, so a rotated token is picked up without restart.
    File(PathBuf),
}

/// Configuration of a [`VaultProvider`].
pub struct VaultConfig {
    /// `http(s)://host[:port]` of Vault or OpenBao (`--vault-addr`).
    pub addr: String,
    /// Optional Enterprise/OpenBao namespace (`--vault-namespace`).
    pub namespace: Option<String>,
    /// Transit mount path (`--transit-mount`, default `transit`).
    pub mount: String,
    /// Transit key name (`KMS_KEY_ID`).
    pub key: String,
    /// The token (`KMS_USER_ID` or `--token-file`).
    pub token: TokenSource,
    /// PEM file of CA certificates to trust instead of the built-in webpki roots
    /// (`--ca-file`).
    pub ca_file: Option<PathBuf>,
}

/// Reads the token from its source.
enum TokenReader {
    Value(Zeroizing<String>),
    File(SecretFile),
}

impl TokenReader {
    fn token(&self) -> Result<Arc<Zeroizing<String>>, RemoteError> {
        match self {
            Self::Value(v) => {
                check_secret(v, "vault token", "KMS_USER_ID")?;
                Ok(Arc::new(v.clone()))
            }
            Self::File(f) => f.read().map(|(_, token)| token),
        }
    }
}

fn auth(detail: String) -> RemoteError {
    RemoteError::new(RemoteErrorKind::Auth, detail)
}

/// The health warning of a Vault reached over `http://` ([`KekProvider::health_warning`]).
pub const INSECURE_HTTP_WARNING: &str = "vault reached over plain http (--vault-insecure-http)";

/// Vault / OpenBao Transit as a [`KekProvider`] (blocking, thread-safe).
pub struct VaultProvider {
    target: TransitTarget,
    agent: ureq::Agent,
    token: TokenReader,
    /// The address is `http://` (allowed only with `--vault-insecure-http`): shown in
    /// `kms_plugin_vault_insecure_http`.
    insecure_http: bool,
}

impl VaultProvider {
    /// Validates `config`, loads the CA file if any and builds the HTTP agent. Does no network
    /// IO (the plugin must start while Vault is down) and does not read the token yet.
    pub fn new(config: VaultConfig) -> Result<Self, String> {
        let target = TransitTarget::new(
            &config.addr,
            config.namespace.as_deref(),
            &config.mount,
            &config.key,
        )
        .map_err(|e| e.0)?;
        let mut tls = TlsConfig::builder();
        if let Some(ca) = &config.ca_file {
            let pem = fs::read(ca).map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<Vec<Certificate<'static>>, _>>()
                .map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
            if certs.is_empty() {
                return Err(format!("--ca-file {}: no certificates", ca.display()));
            }
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls.build())
            .user_agent("kms-plugin")
            .build()
            .new_agent();
        let insecure_http = config
            .addr
            .trim()
            .to_ascii_lowercase()
            .starts_with("http://");
        Ok(Self {
            target,
            agent,
            insecure_http,
            token: match config.token {
                TokenSource::Value(v) => TokenReader::Value(v),
                TokenSource::File(path) => TokenReader::File(SecretFile::new(path, "vault token")),
            },
        })
    }

    /// The validated Transit location.
    pub fn target(&self) -> &TransitTarget {
        &self.target
    }

    /// Sends one Transit request and returns the status and body (body wiped on drop).
    fn call(
        &self,
        op: TransitOp,
        body: Option<&[u8]>,
        deadline: Instant,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), RemoteError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timeout(op));
        }
        let token = self.token.token()?;
        let mut token_header = HeaderValue::from_str(&token)
            .map_err(|_| auth(String::from("vault token is not a valid header value")))?;
        token_header.set_sensitive(true);
        let url = self.target.url(op);
        let result = if let Some(body) = body {
            let mut req = self
                .agent
                .post(&url)
                .config()
                .timeout_global(Some(remaining))
                .build()
                .header("X-Vault-Token", token_header)
                .header("Content-Type", "application/json");
            if let Some(ns) = self.target.namespace() {
                req = req.header("X-Vault-Namespace", ns);
            }
            req.send(body)
        } else {
            let mut req = self
                .agent
                .get(&url)
                .config()
                .timeout_global(Some(remaining))
                .build()
                .header("X-Vault-Token", token_header);
            if let Some(ns) = self.target.namespace() {
                req = req.header("X-Vault-Namespace", ns);
            }
            req.call()
        };
        let mut response = result.map_err(|e| transport_error(op, &e, deadline))?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES as u64)
            .read_to_vec()
            .map_err(|e| transport_error(op, &e, deadline))?;
        Ok((status, Zeroizing::new(bytes)))
    }
}

fn timeout(op: TransitOp) -> RemoteError {
    RemoteError::new(
        RemoteErrorKind::Timeout,
        format!("transit {}: deadline exceeded", op.name()),
    )
}

/// Maps a ureq failure to a kind: deadline -> Timeout; DNS, refused, reset, TLS handshake
/// I/O, malformed HTTP -> Unavailable; certificate problems -> Other; oversized body ->
/// Corrupt.
fn transport_error(op: TransitOp, e: &ureq::Error, deadline: Instant) -> RemoteError {
    let label = op.name();
    let kind = match e {
        ureq::Error::Timeout(_) => RemoteErrorKind::Timeout,
        ureq::Error::Io(io) if matches!(io.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            RemoteErrorKind::Timeout
        }
        // rustls reports certificate and handshake refusals as InvalidData: a configuration
        // problem (wrong CA, wrong host name), not worth retrying.
        ureq::Error::Io(io) if io.kind() == ErrorKind::InvalidData => RemoteErrorKind::Other,
        // Malformed or truncated HTTP is a connection problem (a dying server or proxy), as
        // hyper reports it in the smol runtime: transient.
        ureq::Error::Io(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_) => RemoteErrorKind::Unavailable,
        ureq::Error::BodyExceedsLimit(_) => RemoteErrorKind::Corrupt,
        _ => RemoteErrorKind::Other,
    };
    let kind = if kind != RemoteErrorKind::Timeout && Instant::now() >= deadline {
        RemoteErrorKind::Timeout
    } else {
        kind
    };
    RemoteError::new(kind, format!("transit {label}: {e}"))
}

impl KekProvider for VaultProvider {
    fn name(&self) -> &'static str {
        "vault"
    }

    fn render_metrics(&self, out: &mut String) {
        use kms_plugin_core::metrics::exposition::{Kind, header, sample};
        header(
            out,
            "kms_plugin_vault_insecure_http",
            Kind::Gauge,
            "1 when Vault is reached over plain http (--vault-insecure-http): tokens and keys cross the network in cleartext.",
        );
        sample(
            out,
            "kms_plugin_vault_insecure_http",
            &[],
            u64::from(self.insecure_http),
        );
    }

    fn health_warning(&self) -> Option<&'static str> {
        self.insecure_http.then_some(INSECURE_HTTP_WARNING)
    }

    fn status(&self, deadline: Instant) -> Result<String, RemoteError> {
        let (status, body) = self.call(TransitOp::ReadKey, None, deadline)?;
        let info = vault::parse_key_info(status, &body)?;
        let request = capabilities::capabilities_body(&self.target);
        let (status, body) = self.call(TransitOp::Capabilities, Some(&request), deadline)?;
        capabilities::check_capabilities(&self.target, status, &body)?;
        Ok(info.key_id(&self.target))
    }

    fn wrap(
        &self,
        key_id: &str,
        kek: &Secret32,
        deadline: Instant,
    ) -> Result<Vec<u8>, RemoteError> {
        let version = self.target.version_of(key_id)?;
        let body = vault::encrypt_body(kek, version);
        let (status, resp) = self.call(TransitOp::Encrypt, Some(body.expose()), deadline)?;
        vault::parse_encrypt(status, &resp, version)
    }

    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        deadline: Instant,
    ) -> Result<Secret32, RemoteError> {
        let body = vault::decrypt_body(&self.target, key_id, wrapped)?;
        let (status, resp) = self.call(TransitOp::Decrypt, Some(&body), deadline)?;
        vault::parse_decrypt(status, &resp)
            .map_err(|e| vault::name_missing_version(&self.target, key_id, e))
    }
}
