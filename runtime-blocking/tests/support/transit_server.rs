//! A fake Vault/OpenBao Transit server for the providers' tests: real HTTP/1.1 (and HTTPS with
//! a CA generated at test time by rcgen) on 127.0.0.1, implementing the documented Transit
//! calls the plugin uses (`keys/<k>` read, `encrypt/<k>`, `decrypt/<k>`, `keys/<k>/rotate`)
//! with real AES-256-GCM per key version, token checks (403 with Vault's `{"errors":[...]}`
//! body), and fault injection: queued error statuses, slow answers, stop and restart.
//!
//! Shared by runtime-blocking and runtime-smol tests (`#[path = "..."] mod`).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::missing_panics_doc,
    clippy::must_use_candidate
)]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

/// The mount the fake serves.
pub const MOUNT: &str = "transit";

struct Key {
    /// Key material per version (index 0 = version 1).
    versions: Vec<[u8; 32]>,
    /// Creation time (unix seconds) per version, unique across the server's lifetime.
    created: Vec<u64>,
    min_decryption_version: u32,
    kind: String,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Key>,
    /// token -> may use encrypt/decrypt (false = read-only policy).
    tokens: HashMap<String, bool>,
    fail_next: VecDeque<u16>,
    delay: Duration,
    /// `sys/capabilities-self` answers 403 (a token without Vault's default policy).
    capabilities_denied: bool,
    /// Bytes of filler added to every JSON answer (an oversized response).
    pad: usize,
    /// (method, path, namespace header) of every request, in arrival order.
    log: Vec<(String, String, Option<String>)>,
}

struct Shared {
    state: Mutex<State>,
    nonce: AtomicU64,
}

/// A fake "now" in unix seconds, strictly increasing: every created key version gets its own.
static CLOCK: AtomicU64 = AtomicU64::new(1_700_000_000);

fn creation_time() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

/// Key material derived from name, version and creation time (a re-created key differs).
fn material_at(name: &str, version: usize, created: u64) -> [u8; 32] {
    let mut k = material(name, version);
    for (b, c) in k.iter_mut().zip(created.to_le_bytes().iter().cycle()) {
        *b ^= *c;
    }
    k
}

/// A running (or stopped) fake Transit server.
pub struct TransitServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// PEM of the CA that signed the HTTPS certificate.
    ca_pem: Option<String>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

fn material(name: &str, version: usize) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        let n = name
            .as_bytes()
            .get(i % name.len().max(1))
            .copied()
            .unwrap_or(0);
        *b = n ^ (i as u8).wrapping_mul(31) ^ (version as u8).wrapping_mul(113);
    }
    k
}

fn test_tls() -> (Arc<rustls::ServerConfig>, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kms-plugin test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (Arc::new(config), ca.pem())
}

impl TransitServer {
    /// Starts a plain-HTTP server on a free port of 127.0.0.1.
    pub fn start() -> Self {
        Self::spawn(None, None, "127.0.0.1:0".parse().unwrap())
    }

    /// Starts an HTTPS server whose certificate (for `localhost` and `127.0.0.1`) is signed
    /// by a CA created now; [`TransitServer::ca_pem`] returns that CA.
    pub fn start_tls() -> Self {
        let (tls, ca) = test_tls();
        Self::spawn(Some(tls), Some(ca), "127.0.0.1:0".parse().unwrap())
    }

    fn spawn(
        tls: Option<Arc<rustls::ServerConfig>>,
        ca_pem: Option<String>,
        bind: SocketAddr,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            nonce: AtomicU64::new(1),
        });
        let mut server = Self {
            shared,
            addr: bind,
            tls,
            ca_pem,
            stop: Arc::new(AtomicBool::new(false)),
            accept: None,
        };
        server.listen(bind);
        server
    }

    fn listen(&mut self, bind: SocketAddr) {
        let listener = TcpListener::bind(bind).unwrap();
        self.addr = listener.local_addr().unwrap();
        self.stop = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&self.stop);
        let shared = Arc::clone(&self.shared);
        let tls = self.tls.clone();
        self.accept = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                std::thread::spawn(move || serve_connection(&shared, tls, stream));
            }
        }));
    }

    /// `http(s)://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The test CA (HTTPS servers only).
    pub fn ca_pem(&self) -> &str {
        self.ca_pem.as_deref().unwrap_or_default()
    }

    /// Stops accepting connections (the port then refuses: a dead server). Requests already
    /// being answered finish.
    pub fn stop(&mut self) {
        if let Some(handle) = self.accept.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
            handle.join().unwrap();
        }
    }

    /// Listens again on the same port, with the same keys and tokens.
    pub fn restart(&mut self) {
        self.stop();
        self.listen(self.addr);
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.shared.state.lock().unwrap())
    }

    /// Creates key `name` of type `aes256-gcm96` at version 1.
    pub fn add_key(&self, name: &str) {
        self.add_key_of_type(name, "aes256-gcm96");
    }

    /// Creates key `name` of Transit type `key_type` at version 1.
    pub fn add_key_of_type(&self, name: &str, key_type: &str) {
        self.with(|s| {
            let created = creation_time();
            s.keys.insert(
                name.to_string(),
                Key {
                    versions: vec![material_at(name, 1, created)],
                    created: vec![created],
                    min_decryption_version: 1,
                    kind: key_type.to_string(),
                },
            );
        });
    }

    /// Adds a version to key `name` (like `vault write -f transit/keys/<name>/rotate`) and
    /// returns the new latest version.
    pub fn rotate(&self, name: &str) -> u32 {
        self.with(|s| rotate_key(s, name).unwrap())
    }

    /// Deletes key `name` (like `vault delete transit/keys/<name>` with deletion allowed).
    pub fn delete_key(&self, name: &str) {
        self.with(|s| s.keys.remove(name));
    }

    /// Sets the key's `min_decryption_version`.
    pub fn set_min_decryption_version(&self, name: &str, version: u32) {
        self.with(|s| s.keys.get_mut(name).unwrap().min_decryption_version = version);
    }

    /// Accepts `token` with full access.
    pub fn allow_token(&self, token: &str) {
        self.with(|s| s.tokens.insert(token.to_string(), true));
    }

    /// Accepts `token` for key reads only (encrypt/decrypt answer 403 permission denied).
    pub fn allow_token_read_only(&self, token: &str) {
        self.with(|s| s.tokens.insert(token.to_string(), false));
    }

    /// Revokes `token`.
    pub fn revoke_token(&self, token: &str) {
        self.with(|s| s.tokens.remove(token));
    }

    /// The next `count` requests are answered with `status` and `{"errors":["injected ..."]}`.
    pub fn fail_next(&self, status: u16, count: usize) {
        self.with(|s| s.fail_next.extend(std::iter::repeat_n(status, count)));
    }

    /// The next `count` requests get no answer: the connection is closed after the request
    /// is read (a server dying mid-call).
    pub fn drop_next(&self, count: usize) {
        self.fail_next(0, count);
    }

    /// Every answer waits `delay` first (a slow or hung server).
    pub fn set_delay(&self, delay: Duration) {
        self.with(|s| s.delay = delay);
    }

    /// `sys/capabilities-self` answers 403 from now on (a token without the default policy).
    pub fn deny_capabilities(&self) {
        self.with(|s| s.capabilities_denied = true);
    }

    /// Every JSON answer carries `bytes` of filler from now on.
    pub fn set_padding(&self, bytes: usize) {
        self.with(|s| s.pad = bytes);
    }

    /// Requests received whose path contains `fragment`.
    pub fn count(&self, fragment: &str) -> usize {
        self.with(|s| {
            s.log
                .iter()
                .filter(|(_, p, _)| p.contains(fragment))
                .count()
        })
    }

    /// Every request received: (method, path, X-Vault-Namespace).
    pub fn log(&self) -> Vec<(String, String, Option<String>)> {
        self.with(|s| s.log.clone())
    }
}

impl Drop for TransitServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn rotate_key(s: &mut State, name: &str) -> Option<u32> {
    let key = s.keys.get_mut(name)?;
    let next = key.versions.len() + 1;
    let created = creation_time();
    key.versions.push(material_at(name, next, created));
    key.created.push(created);
    Some(next as u32)
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 16 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).ok()?.to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn serve_connection(shared: &Shared, tls: Option<Arc<rustls::ServerConfig>>, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    match tls {
        None => serve(shared, stream),
        Some(config) => {
            let Ok(conn) = rustls::ServerConnection::new(config) else {
                return;
            };
            serve(shared, rustls::StreamOwned::new(conn, stream));
        }
    }
}

fn serve(shared: &Shared, mut stream: impl Read + Write) {
    let Some(req) = read_request(&mut stream) else {
        return;
    };
    let (delay, injected, pad) = {
        let mut s = shared.state.lock().unwrap();
        s.log.push((
            req.method.clone(),
            req.path.clone(),
            req.headers.get("x-vault-namespace").cloned(),
        ));
        (s.delay, s.fail_next.pop_front(), s.pad)
    };
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    if injected == Some(0) {
        // Injected "crash": close the connection without answering.
        return;
    }
    let (status, body) = match injected {
        Some(status) => (status, json!({"errors": [format!("injected {status}")]})),
        None => handle(shared, &req),
    };
    let mut body = body;
    if pad > 0 {
        if let Some(map) = body.as_object_mut() {
            map.insert("pad".into(), Value::String("x".repeat(pad)));
        }
    }
    // RFC 9110 §15.3.5: a 204 has no content.
    let body = if status == 204 {
        String::new()
    } else {
        body.to_string()
    };
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        _ => "Status",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

fn errors(status: u16, text: &[&str]) -> (u16, Value) {
    (status, json!({ "errors": text }))
}

/// `sys/capabilities-self`: full tokens may `update` the mount's paths, read-only ones `read`.
fn capabilities(body: &[u8], may_use: bool, denied: bool) -> (u16, Value) {
    if denied {
        return errors(403, &["permission denied"]);
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut data = serde_json::Map::new();
    for path in body["paths"].as_array().into_iter().flatten() {
        let path = path.as_str().unwrap_or_default();
        let caps = if path.starts_with(&format!("{MOUNT}/")) && may_use {
            json!(["update"])
        } else if path.starts_with(&format!("{MOUNT}/")) {
            json!(["read"])
        } else {
            json!(["deny"])
        };
        data.insert(path.to_string(), caps);
    }
    let mut top = data.clone();
    top.insert("data".into(), Value::Object(data));
    (200, Value::Object(top))
}

fn handle(shared: &Shared, req: &Request) -> (u16, Value) {
    let mut s = shared.state.lock().unwrap();
    let may_use = match req
        .headers
        .get("x-vault-token")
        .and_then(|t| s.tokens.get(t))
    {
        None => return errors(403, &["permission denied", "invalid token"]),
        Some(may_use) => *may_use,
    };
    if req.path == "/v1/sys/capabilities-self" {
        return capabilities(&req.body, may_use, s.capabilities_denied);
    }
    let Some(rest) = req.path.strip_prefix(&format!("/v1/{MOUNT}/")) else {
        return errors(404, &[&format!("no handler for route \"{}\"", req.path)]);
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["keys", name]) => match s.keys.get(*name) {
            None => errors(404, &[]),
            Some(k) => {
                let versions: serde_json::Map<String, Value> = k
                    .created
                    .iter()
                    .enumerate()
                    .map(|(i, c)| ((i + 1).to_string(), json!(c)))
                    .collect();
                (
                    200,
                    json!({"data": {
                        "name": name,
                        "type": k.kind,
                        "latest_version": k.versions.len(),
                        "min_decryption_version": k.min_decryption_version,
                        "min_encryption_version": 0,
                        "supports_encryption": true,
                        "supports_decryption": true,
                        "deletion_allowed": false,
                        "keys": versions,
                    }}),
                )
            }
        },
        ("POST" | "PUT", ["keys", name, "rotate"]) => match rotate_key(&mut s, name) {
            Some(_) => (204, Value::Null),
            None => errors(404, &[]),
        },
        ("POST" | "PUT", ["encrypt", name]) => {
            if !may_use {
                return errors(403, &["permission denied"]);
            }
            let Some(k) = s.keys.get(*name) else {
                return errors(400, &["encryption key not found"]);
            };
            let Some(pt) = body["plaintext"].as_str().and_then(|p| B64.decode(p).ok()) else {
                return errors(400, &["illegal base64 data in plaintext"]);
            };
            let latest = k.versions.len() as u64;
            let version = match body["key_version"].as_u64().unwrap_or(0) {
                0 => latest,
                v if v <= latest => v,
                _ => {
                    return errors(
                        400,
                        &[
                            "requested version for encryption is greater than the latest key version",
                        ],
                    );
                }
            };
            let cipher = Aes256Gcm::new_from_slice(&k.versions[(version - 1) as usize]).unwrap();
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&shared.nonce.fetch_add(1, Ordering::SeqCst).to_be_bytes());
            let mut blob = nonce.to_vec();
            blob.extend(
                cipher
                    .encrypt(Nonce::from_slice(&nonce), pt.as_slice())
                    .unwrap(),
            );
            (
                200,
                json!({"data": {"ciphertext": format!("vault:v{version}:{}", B64.encode(blob)), "key_version": version}}),
            )
        }
        ("POST" | "PUT", ["decrypt", name]) => {
            if !may_use {
                return errors(403, &["permission denied"]);
            }
            let Some(k) = s.keys.get(*name) else {
                return errors(400, &["encryption key not found"]);
            };
            let ct = body["ciphertext"].as_str().unwrap_or_default();
            let parsed = ct
                .strip_prefix("vault:v")
                .and_then(|r| r.split_once(':'))
                .and_then(|(v, b)| Some((v.parse::<usize>().ok()?, B64.decode(b).ok()?)));
            let Some((version, blob)) = parsed else {
                return errors(400, &["invalid ciphertext: no prefix"]);
            };
            if version < k.min_decryption_version as usize {
                return errors(
                    400,
                    &["ciphertext or signature version is disallowed by policy (too old)"],
                );
            }
            if version == 0 || version > k.versions.len() || blob.len() < 12 {
                return errors(400, &["invalid ciphertext: invalid key version"]);
            }
            let cipher = Aes256Gcm::new_from_slice(&k.versions[version - 1]).unwrap();
            match cipher.decrypt(Nonce::from_slice(&blob[..12]), &blob[12..]) {
                Ok(pt) => (200, json!({"data": {"plaintext": B64.encode(pt)}})),
                Err(_) => errors(400, &["cipher: message authentication failed"]),
            }
        }
        _ => errors(404, &[&format!("no handler for route \"{}\"", req.path)]),
    }
}
