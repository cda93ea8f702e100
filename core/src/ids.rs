//! Identifiers and labels every layer shares: connections, remote operations, RPC methods.
//! A leaf module: it imports nothing of the crate.

/// Identifies one accepted connection; never reused within a `Plugin`'s lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// Identifies one remote operation; every `Effect::Remote` is answered exactly once through
/// `Plugin::handle_remote` with the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// The RPCs the plugin serves, by gRPC `:path` (a bounded label set for logs and metrics).
/// Both services are served on the same socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `/v1beta1.KeyManagementService/Version`.
    V1Version,
    /// `/v1beta1.KeyManagementService/Encrypt`.
    V1Encrypt,
    /// `/v1beta1.KeyManagementService/Decrypt`.
    V1Decrypt,
    /// `/v2.KeyManagementService/Status`.
    V2Status,
    /// `/v2.KeyManagementService/Encrypt`.
    V2Encrypt,
    /// `/v2.KeyManagementService/Decrypt`.
    V2Decrypt,
    /// Any other path (answered UNIMPLEMENTED).
    Unknown,
}

impl Method {
    /// Every known method with its path.
    pub const ALL: [(Self, &'static str); 6] = [
        (Self::V1Version, "/v1beta1.KeyManagementService/Version"),
        (Self::V1Encrypt, "/v1beta1.KeyManagementService/Encrypt"),
        (Self::V1Decrypt, "/v1beta1.KeyManagementService/Decrypt"),
        (Self::V2Status, "/v2.KeyManagementService/Status"),
        (Self::V2Encrypt, "/v2.KeyManagementService/Encrypt"),
        (Self::V2Decrypt, "/v2.KeyManagementService/Decrypt"),
    ];

    /// The method named by a gRPC `:path` (exact, case-sensitive match as grpc-go routes).
    pub fn from_path(path: &str) -> Self {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == path)
            .map_or(Self::Unknown, |(m, _)| *m)
    }

    /// The gRPC path, or `None` for [`Method::Unknown`].
    pub fn path(self) -> Option<&'static str> {
        Self::ALL.iter().find(|(m, _)| *m == self).map(|(_, p)| *p)
    }

    /// Short name for logs and metric labels, e.g. `v2.Status`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::V1Version => "v1beta1.Version",
            Self::V1Encrypt => "v1beta1.Encrypt",
            Self::V1Decrypt => "v1beta1.Decrypt",
            Self::V2Status => "v2.Status",
            Self::V2Encrypt => "v2.Encrypt",
            Self::V2Decrypt => "v2.Decrypt",
            Self::Unknown => "unknown",
        }
    }
}
