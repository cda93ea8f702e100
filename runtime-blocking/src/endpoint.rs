//! The `--listen` endpoint, parsed the way kube-apiserver parses `kms.endpoint`
//! (`k8s.io/kms/pkg/util.ParseEndpoint`, docs/protocol.md §1).

use std::fmt;
use std::path::PathBuf;

/// Where the plugin listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A filesystem Unix socket (`unix:///abs/path`).
    Path(PathBuf),
    /// A Linux abstract socket (`unix:///@name`): bound as `\0name` with the exact name
    /// bytes, no NUL padding, exactly as Go's `net.DialUnix` with `@name` connects.
    Abstract(Vec<u8>),
}

impl Endpoint {
    /// The default, as in the reference deployment and the product's docs.
    pub const DEFAULT: &'static str = "unix:///tmp/kms.sock";

    /// Parses `unix:///abs/path` or `unix:///@name`. Errors say what is wrong and how to fix it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("unix://") else {
            return Err(format!(
                "--listen {text:?}: only unix sockets are supported; use unix:///path/to.sock \
                 or unix:///@abstract-name"
            ));
        };
        // url.Parse: "unix://relative" makes "relative" the host and leaves no path.
        let Some(path) = rest.strip_prefix('/') else {
            return Err(format!(
                "--listen {text:?}: the socket path must be absolute (three slashes): \
                 unix:///{rest}"
            ));
        };
        if let Some(name) = path.strip_prefix('@') {
            if name.is_empty() {
                return Err(format!(
                    "--listen {text:?}: the abstract socket name is empty"
                ));
            }
            if name.len() > 107 {
                return Err(format!(
                    "--listen {text:?}: abstract names are at most 107 bytes"
                ));
            }
            return Ok(Self::Abstract(name.as_bytes().to_vec()));
        }
        if path.is_empty() || path.ends_with('/') {
            return Err(format!(
                "--listen {text:?}: names a directory, not a socket file"
            ));
        }
        let full = format!("/{path}");
        if full.len() > 107 {
            return Err(format!(
                "--listen {text:?}: Unix socket paths are at most 107 bytes; use a shorter path"
            ));
        }
        Ok(Self::Path(PathBuf::from(full)))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "unix://{}", p.display()),
            Self::Abstract(name) => write!(f, "unix:///@{}", String::from_utf8_lossy(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_kube() {
        assert_eq!(
            Endpoint::parse("unix:///tmp/kms.sock").unwrap(),
            Endpoint::Path("/tmp/kms.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix:///@kms-foo").unwrap(),
            Endpoint::Abstract(b"kms-foo".to_vec())
        );
        for bad in [
            "tcp://1.2.3.4:5",
            "/tmp/kms.sock",
            "unix://relative",
            "unix:///@",
            "unix:///tmp/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Endpoint::parse("unix:///tmp/kms.sock").unwrap().to_string(),
            "unix:///tmp/kms.sock"
        );
    }
}
