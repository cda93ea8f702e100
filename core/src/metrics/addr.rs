//! Parsing of the metrics listen address (`--metrics-addr`), shared by both runtimes.

use alloc::format;
use alloc::string::String;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The default port when `--metrics-addr` names none (the Prometheus exporter range).
pub const DEFAULT_PORT: u16 = 9464;

/// Parses `PORT`, `:PORT`, `IP:PORT` or `[V6]:PORT`; an empty host or `localhost` means
/// 127.0.0.1. Only IP literals and `localhost` are accepted (no name resolution), so a
/// non-loopback address is served only when written out explicitly; callers warn about it
/// ([`is_loopback`]). Errors are one operator-facing line naming the flag.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let bad = || {
        format!(
            "--metrics-addr {s:?}: expected PORT, :PORT or IP:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}"
        )
    };
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    match host {
        "" | "localhost" => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        _ => Err(format!(
            "--metrics-addr {s:?}: use an IP address (host names are not resolved), e.g. 127.0.0.1:{port}"
        )),
    }
}

/// Whether `addr` is reachable only from this host.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// The body of a `/readyz` answer: `(200, "ok\n")` when ready, else `(503, "not ready: <cause>\n")`.
pub fn readyz_answer(readiness: Result<(), &str>) -> (u16, String) {
    match readiness {
        Ok(()) => (200, String::from("ok\n")),
        Err(cause) => (503, format!("not ready: {cause}\n")),
    }
}
