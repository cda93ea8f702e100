//! `kms.endpoint` as kube-apiserver reads it: Go `url.Parse`, scheme `unix`, socket = `u.Path`,
//! `/@name` = abstract (`k8s.io/kms/pkg/util.ParseEndpoint`, docs/protocol.md §1).

/// The socket an endpoint names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Socket {
    /// A filesystem socket path.
    Path(String),
    /// A Linux abstract socket name (without the `@`).
    Abstract(String),
}

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

impl Socket {
    /// Parses an endpoint like kube-apiserver. `Ok((socket, Some(warning)))` for forms that work
    /// but are probably a mistake; `Err(message)` (problem and fix) for ones that cannot work.
    pub(super) fn parse(text: &str) -> Result<(Self, Option<String>), String> {
        if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(
                "invalid endpoint for kms provider: net/url: invalid control character in URL; remove it".to_string(),
            );
        }
        let Some((scheme, rest)) = text.split_once(':').filter(|(s, _)| is_scheme(s)) else {
            return Err(format!(
                "unsupported scheme \"\" for KMS provider, only unix is supported; write unix://{}{text}",
                if text.starts_with('/') { "" } else { "/" }
            ));
        };
        if !scheme.eq_ignore_ascii_case("unix") {
            return Err(format!(
                "unsupported scheme {:?} for KMS provider, only unix is supported; run the plugin on the apiserver host and use unix:///tmp/kms.sock",
                scheme.to_ascii_lowercase()
            ));
        }
        // Query and fragment are not part of the path.
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let mut warning = None;
        let path = if let Some(after) = rest.strip_prefix("//") {
            let (host, path) = after.find('/').map_or((after, ""), |i| after.split_at(i));
            if !host.is_empty() {
                warning = Some(format!(
                    "`{host}` is parsed as a URL host and ignored, so the socket is `{}`; use three slashes: unix:///{host}{path}",
                    if path.is_empty() { "(none)" } else { path }
                ));
            }
            path
        } else {
            rest
        };
        if !path.starts_with('/') {
            return Err(format!(
                "endpoint {text} names no socket path; use an absolute path with three slashes, e.g. unix:///tmp/kms.sock"
            ));
        }
        if let Some(name) = path.strip_prefix("/@") {
            if name.is_empty() {
                return Err(
                    "the abstract socket name after `@` is empty; use e.g. unix:///@kms-plugin"
                        .to_string(),
                );
            }
            return Ok((Self::Abstract(name.to_string()), warning));
        }
        if path.len() > MAX_SOCKET_PATH {
            return Err(format!(
                "socket path is {} bytes, Unix sockets allow at most {MAX_SOCKET_PATH}; use a shorter path",
                path.len()
            ));
        }
        if path.ends_with('/') {
            return Err(format!(
                "{path} names a directory, not a socket; use e.g. unix://{path}kms.sock"
            ));
        }
        Ok((Self::Path(path.to_string()), warning))
    }
}

/// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::Socket;

    #[test]
    fn parses_like_go_url() {
        let path = |p: &str| Ok((Socket::Path(p.to_string()), None));
        assert_eq!(Socket::parse("unix:///tmp/kms.sock"), path("/tmp/kms.sock"));
        assert_eq!(Socket::parse("unix:/tmp/kms.sock"), path("/tmp/kms.sock"));
        assert_eq!(Socket::parse("UNIX:///tmp/kms.sock"), path("/tmp/kms.sock"));
        assert_eq!(
            Socket::parse("unix:///tmp/kms.sock?x#y"),
            path("/tmp/kms.sock")
        );
        assert_eq!(
            Socket::parse("unix:///@kms"),
            Ok((Socket::Abstract("kms".to_string()), None))
        );
        let (socket, warning) = Socket::parse("unix://tmp/kms.sock").unwrap();
        assert_eq!(socket, Socket::Path("/kms.sock".to_string()));
        assert!(warning.unwrap().contains("unix:///tmp/kms.sock"));
        for bad in [
            "tcp://127.0.0.1:80",
            "/tmp/kms.sock",
            "unix://kms.sock",
            "unix:kms.sock",
            "unix:///@",
            "unix:///tmp/",
            "unix:///tmp/\n",
        ] {
            assert!(Socket::parse(bad).is_err(), "{bad}");
        }
    }
}
