//! Vault / OpenBao Transit provider over HTTP(S) with hyper 1 (HTTP/1.1 client connection),
//! smol's TCP, futures-rustls and smol-hyper's `FuturesIo` adapter.
//!
//! Bodies, parsing, key ids and error mapping are the core's (`kms_plugin_core::kek::vault`).
//! One connection per request: Transit calls are rare (a Status per poll interval, a wrap per
//! local-KEK rotation, an unwrap per cache miss), so pooling would add state for no gain.
//! Every request is bounded by `request_timeout`; the runtime additionally drops the future
//! at the core's deadline (which cancels the request).

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use futures_rustls::TlsConnector;
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use kms_plugin_core::kek::vault::{
    self, MAX_RESPONSE_BYTES, TransitOp, TransitTarget, capabilities,
};
use kms_plugin_core::secret::Secret32;
use kms_plugin_core::{RemoteError, RemoteErrorKind};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use smol::future;
use smol_hyper::rt::FuturesIo;
use zeroize::Zeroizing;

use super::secret_file::{SecretFile, check_secret};
use super::{AsyncKekProvider, BoxFuture};

/// Where the Vault token comes from.
pub enum TokenSource {
    /// A fixed token (from `KMS_USER_ID`); never from the command line.
    Value(Zeroizing<String>),
    /// A token file, re-read when its size, modification time or inode changes.
    File(PathBuf),
}

/// Configuration of a [`VaultProvider`].
pub struct VaultConfig {
    /// `http(s)://host[:port]` of Vault or OpenBao.
    pub addr: String,
    /// Optional namespace (`X-Vault-Namespace`).
    pub namespace: Option<String>,
    /// Transit mount path (default `transit`).
    pub mount: String,
    /// Transit key name (`KMS_KEY_ID`).
    pub key: String,
    /// The token.
    pub token: TokenSource,
    /// PEM file of CA certificates to trust instead of the built-in webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Upper bound of one request (connect + TLS + exchange).
    pub request_timeout: Duration,
}

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

/// A request body that wipes itself when hyper drops it.
type SecretBody = Full<Cursor<Zeroizing<Vec<u8>>>>;

/// Vault / OpenBao Transit as an [`AsyncKekProvider`].
pub struct VaultProvider {
    target: TransitTarget,
    tls: Option<TlsConnector>,
    token: TokenReader,
    request_timeout: Duration,
}

fn err(kind: RemoteErrorKind, op: TransitOp, what: impl std::fmt::Display) -> RemoteError {
    RemoteError::new(kind, format!("transit {}: {what}", op.name()))
}

impl VaultProvider {
    /// Validates `config` and builds the TLS client. Does no network IO and does not read
    /// the token yet.
    pub fn new(config: VaultConfig) -> Result<Self, String> {
        let target = TransitTarget::new(
            &config.addr,
            config.namespace.as_deref(),
            &config.mount,
            &config.key,
        )
        .map_err(|e| e.0)?;
        let tls = if target.is_https() {
            let mut roots = RootCertStore::empty();
            if let Some(ca) = &config.ca_file {
                let pem =
                    std::fs::read(ca).map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("--ca-file {}: no certificates", ca.display()));
                }
            } else {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            target,
            tls,
            token: match config.token {
                TokenSource::Value(v) => TokenReader::Value(v),
                TokenSource::File(path) => TokenReader::File(SecretFile::new(path, "vault token")),
            },
            request_timeout: config.request_timeout,
        })
    }

    /// The validated Transit location.
    pub fn target(&self) -> &TransitTarget {
        &self.target
    }

    /// One Transit request, bounded by `request_timeout`; the body is wiped on drop.
    async fn call(
        &self,
        op: TransitOp,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), RemoteError> {
        let token = self.token.token()?;
        let request = self.request(op, body, &token)?;
        let exchange = self.exchange(op, request);
        let timeout = async {
            Timer::after(self.request_timeout).await;
            Err(err(RemoteErrorKind::Timeout, op, "deadline exceeded"))
        };
        future::or(exchange, timeout).await
    }

    fn request(
        &self,
        op: TransitOp,
        body: Option<Zeroizing<Vec<u8>>>,
        token: &str,
    ) -> Result<Request<SecretBody>, RemoteError> {
        let mut token = HeaderValue::from_str(token).map_err(|_| {
            RemoteError::new(
                RemoteErrorKind::Auth,
                "vault token is not a valid header value",
            )
        })?;
        token.set_sensitive(true);
        let host = if (self.target.is_https() && self.target.port() == 443)
            || (!self.target.is_https() && self.target.port() == 80)
        {
            self.target.host().to_owned()
        } else {
            format!("{}:{}", self.target.host(), self.target.port())
        };
        let mut builder = Request::builder()
            .method(if body.is_some() { "POST" } else { "GET" })
            .uri(self.target.path(op))
            .header(HOST, host)
            .header("X-Vault-Token", token)
            .header("User-Agent", "kms-plugin");
        if let Some(ns) = self.target.namespace() {
            builder = builder.header("X-Vault-Namespace", ns);
        }
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        let body = Full::new(Cursor::new(body.unwrap_or_default()));
        builder
            .body(body)
            .map_err(|e| err(RemoteErrorKind::Other, op, e))
    }

    async fn exchange(
        &self,
        op: TransitOp,
        request: Request<SecretBody>,
    ) -> Result<(u16, Zeroizing<Vec<u8>>), RemoteError> {
        let host = self
            .target
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = smol::net::TcpStream::connect((host, self.target.port()))
            .await
            .map_err(|e| err(RemoteErrorKind::Unavailable, op, format!("connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => send(op, FuturesIo::new(tcp), request).await,
            Some(connector) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|e| err(RemoteErrorKind::Other, op, format!("server name: {e}")))?;
                let stream = connector.connect(name, tcp).await.map_err(|e| {
                    // Certificate and handshake refusals are configuration problems.
                    let kind = if e.kind() == std::io::ErrorKind::InvalidData {
                        RemoteErrorKind::Other
                    } else {
                        RemoteErrorKind::Unavailable
                    };
                    err(kind, op, format!("TLS: {e}"))
                })?;
                send(op, FuturesIo::new(stream), request).await
            }
        }
    }
}

/// Sends `request` over a fresh HTTP/1.1 connection on `io` and reads the bounded body.
async fn send<T>(
    op: TransitOp,
    io: T,
    request: Request<SecretBody>,
) -> Result<(u16, Zeroizing<Vec<u8>>), RemoteError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let unavailable = |e: hyper::Error| err(RemoteErrorKind::Unavailable, op, format!("HTTP: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(unavailable)?;
    // Drive the connection alongside the exchange; it never "wins" the race, so a server that
    // closes right after answering does not cut the body short.
    let drive = async move {
        let _ = conn.await;
        future::pending::<Result<(u16, Zeroizing<Vec<u8>>), RemoteError>>().await
    };
    let exchange = async move {
        let response = sender.send_request(request).await.map_err(unavailable)?;
        let status = response.status().as_u16();
        let collected = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| err(RemoteErrorKind::Corrupt, op, format!("response body: {e}")))?;
        Ok((status, Zeroizing::new(collected.to_bytes().to_vec())))
    };
    future::or(exchange, drive).await
}

impl AsyncKekProvider for VaultProvider {
    fn name(&self) -> &'static str {
        "vault"
    }

    fn status(&self) -> BoxFuture<'_, Result<String, RemoteError>> {
        Box::pin(async move {
            let (status, body) = self.call(TransitOp::ReadKey, None).await?;
            let info = vault::parse_key_info(status, &body)?;
            let request = Zeroizing::new(capabilities::capabilities_body(&self.target));
            let (status, body) = self.call(TransitOp::Capabilities, Some(request)).await?;
            capabilities::check_capabilities(&self.target, status, &body)?;
            Ok(info.key_id(&self.target))
        })
    }

    fn wrap<'a>(
        &'a self,
        key_id: &'a str,
        kek: &'a Secret32,
    ) -> BoxFuture<'a, Result<Vec<u8>, RemoteError>> {
        Box::pin(async move {
            let version = self.target.version_of(key_id)?;
            let body = vault::encrypt_body(kek, version).into_zeroizing();
            let (status, resp) = self.call(TransitOp::Encrypt, Some(body)).await?;
            vault::parse_encrypt(status, &resp, version)
        })
    }

    fn unwrap<'a>(
        &'a self,
        key_id: &'a str,
        wrapped: &'a [u8],
    ) -> BoxFuture<'a, Result<Secret32, RemoteError>> {
        Box::pin(async move {
            let body = vault::decrypt_body(&self.target, key_id, wrapped)?;
            let (status, resp) = self
                .call(TransitOp::Decrypt, Some(Zeroizing::new(body)))
                .await?;
            vault::parse_decrypt(status, &resp)
        })
    }
}
