//! `kms-plugin probe`: one v2 Status call over the socket with a minimal HTTP/2 client (the
//! core's HPACK codec and hand-built frames; no gRPC library), for exec probes in a scratch
//! image. Two questions ([`Check`]):
//! - readiness: healthy means grpc-status 0 and `healthz == "ok"`;
//! - liveness: the process serves its socket, i.e. Status is answered with grpc-status 0,
//!   whatever healthz says. A remote KMS outage makes the plugin unready but never "dead", so
//!   kubelet does not restart it (a restart would drop the unwrapped KEKs it still decrypts
//!   with).
//!
//! Health warnings the answer carries (`kms-plugin-warning` trailers, e.g. Vault over plain
//! http) are printed as `warning: <text>` lines after the verdict and never change it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use kms_plugin_core::h2::PREFACE;
use kms_plugin_core::health::{HealthWarning, WARNING_TRAILER};
use kms_plugin_core::hpack::{Decoder, Encoder};
use kms_plugin_proto::v2::StatusResponse;
use prost::Message;

use crate::endpoint::Endpoint;

/// Which question `probe` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Is the plugin ready to encrypt and decrypt (healthz `ok`)?
    Readiness,
    /// Does the process serve its socket (Status answered at all)?
    Liveness,
}

/// `kms-plugin probe`: asks `check` of the plugin at `endpoint` within `timeout` and returns
/// the exit code (0 yes, 1 no) and the text to print: one line, then a `warning: <text>` line
/// for each health warning the Status answer carried (they never change the exit code). With
/// `key_file`, the first line also carries that key file's fingerprint (`keyring=kr1:...`), to
/// compare control-plane hosts.
pub fn run(
    endpoint: &Endpoint,
    timeout: Duration,
    check: Check,
    key_file: Option<&std::path::Path>,
) -> (i32, String) {
    let mut answer = status(endpoint, timeout);
    let warnings = answer
        .as_mut()
        .map(|r| std::mem::take(&mut r.warnings))
        .unwrap_or_default();
    let (code, mut line) = match (answer, check) {
        (Ok(r), Check::Readiness) if r.healthz == "ok" => {
            (0, format!("ok version={} key_id={}", r.version, r.key_id))
        }
        (Ok(r), Check::Readiness) => (1, format!("unhealthy: {}", r.healthz)),
        (Ok(r), Check::Liveness) => (
            0,
            format!("live version={} healthz={:?}", r.version, r.healthz),
        ),
        (Err(e), Check::Readiness) => (1, format!("unhealthy: {e}")),
        (Err(e), Check::Liveness) => (1, format!("not live: {e}")),
    };
    if let Some(path) = key_file {
        match crate::keyfile::load(path) {
            Ok((keyring, _)) => {
                line.push_str(" keyring=");
                line.push_str(&keyring.fingerprint());
            }
            Err(e) => line = format!("{line} keyring-error={e:?}"),
        }
    }
    for w in warnings {
        line.push_str("\nwarning: ");
        line.push_str(&w);
    }
    (code, line)
}

/// What the probe saw.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeResult {
    /// `StatusResponse.version`.
    pub version: String,
    /// `StatusResponse.healthz`.
    pub healthz: String,
    /// `StatusResponse.key_id`.
    pub key_id: String,
    /// Each `kms-plugin-warning` trailer ([`WARNING_TRAILER`]), made printable and bounded by
    /// [`HealthWarning::new`]; at most 4 (`MAX_WARNINGS`).
    pub warnings: Vec<String>,
}

/// Warning trailers kept at most (a plugin sends one; more come only from something else).
const MAX_WARNINGS: usize = 4;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

fn connect(endpoint: &Endpoint) -> std::io::Result<UnixStream> {
    match endpoint {
        Endpoint::Path(p) => UnixStream::connect(p),
        Endpoint::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            UnixStream::connect_addr(&addr)
        }
    }
}

/// Calls `/v2.KeyManagementService/Status` within `timeout`. Errors are one line.
pub fn status(endpoint: &Endpoint, timeout: Duration) -> Result<ProbeResult, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(endpoint).map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket: {e}"))?;

    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(PREFACE);
    frame(&mut out, SETTINGS, 0, 0, &[]);
    let mut block = Vec::new();
    let mut enc = Encoder::new();
    for (name, value) in [
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", b"/v2.KeyManagementService/Status"),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-timeout", b"2S"),
    ] {
        enc.encode_field(name, value, false, &mut block);
    }
    frame(&mut out, HEADERS, END_HEADERS, 1, &block);
    frame(&mut out, DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]);
    stream.write_all(&out).map_err(|e| format!("write: {e}"))?;

    let mut decoder = Decoder::new(4096);
    let mut inbuf = Vec::new();
    let mut body = Vec::new();
    let mut grpc_status: Option<String> = None;
    let mut grpc_message = String::new();
    let mut warnings = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Parse whole frames from inbuf.
        while inbuf.len() >= 9 {
            let len =
                usize::from(inbuf[0]) << 16 | usize::from(inbuf[1]) << 8 | usize::from(inbuf[2]);
            if len > 1 << 20 {
                return Err("server sent an oversized frame".into());
            }
            if inbuf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (inbuf[3], inbuf[4]);
            let sid = u32::from_be_bytes([inbuf[5], inbuf[6], inbuf[7], inbuf[8]]) & 0x7fff_ffff;
            let payload: Vec<u8> = inbuf[9..9 + len].to_vec();
            inbuf.drain(..9 + len);
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    let mut ack = Vec::new();
                    frame(&mut ack, SETTINGS, ACK, 0, &[]);
                    let _ = stream.write_all(&ack);
                }
                PING if flags & ACK == 0 => {
                    let mut pong = Vec::new();
                    frame(&mut pong, PING, ACK, 0, &payload);
                    let _ = stream.write_all(&pong);
                }
                GOAWAY => return Err("server closed the connection (GOAWAY)".into()),
                RST_STREAM if sid == 1 => return Err("server reset the request".into()),
                DATA if sid == 1 => body.extend_from_slice(strip_padding(&payload, flags)?),
                HEADERS if sid == 1 => {
                    if flags & END_HEADERS == 0 {
                        return Err("CONTINUATION frames are not supported by probe".into());
                    }
                    let mut fragment = strip_padding(&payload, flags)?;
                    if flags & PRIORITY != 0 {
                        fragment = fragment.get(5..).ok_or("bad PRIORITY")?;
                    }
                    decoder
                        .decode(fragment, &mut |name, value, _| match name {
                            b"grpc-status" => {
                                grpc_status = Some(String::from_utf8_lossy(value).into_owned());
                            }
                            b"grpc-message" => {
                                grpc_message = String::from_utf8_lossy(value).into_owned();
                            }
                            _ if name == WARNING_TRAILER.as_bytes()
                                && warnings.len() < MAX_WARNINGS =>
                            {
                                let text = String::from_utf8_lossy(value);
                                if let Some(w) = HealthWarning::new(&text) {
                                    warnings.push(w.as_str().to_owned());
                                }
                            }
                            _ => {}
                        })
                        .map_err(|e| format!("bad header block: {e}"))?;
                    if flags & END_STREAM != 0 {
                        let answer = finish(grpc_status.as_deref(), &grpc_message, &body);
                        return answer.map(|r| ProbeResult { warnings, ..r });
                    }
                }
                _ => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("no answer from {endpoint} within {timeout:?}"));
        }
        let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        inbuf.extend_from_slice(&chunk[..n]);
    }
}

fn strip_padding(payload: &[u8], flags: u8) -> Result<&[u8], String> {
    if flags & PADDED == 0 {
        return Ok(payload);
    }
    let pad = usize::from(*payload.first().ok_or("bad padding")?);
    payload
        .get(1..payload.len().saturating_sub(pad))
        .filter(|_| pad < payload.len())
        .ok_or_else(|| "bad padding".into())
}

fn finish(status: Option<&str>, message: &str, body: &[u8]) -> Result<ProbeResult, String> {
    match status {
        Some("0") => {}
        Some(code) => return Err(format!("Status failed: grpc-status {code}: {message}")),
        None => return Err("no grpc-status in the response".into()),
    }
    let msg = body.get(5..).ok_or("Status response has no message")?;
    let resp = StatusResponse::decode(msg).map_err(|e| format!("bad StatusResponse: {e}"))?;
    Ok(ProbeResult {
        version: resp.version,
        healthz: resp.healthz,
        key_id: resp.key_id,
        warnings: Vec::new(),
    })
}
