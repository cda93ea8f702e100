//! The command line as data: every command, flag, default and environment variable of
//! `kms-plugin`, declared once with clap's derive. Parsing, `--help`, shell completions and the
//! "does not apply" checks all read these declarations.
//!
//! Every flag can also be set from the environment: `--some-flag` is `KMS_PLUGIN_SOME_FLAG`
//! (a flag given on the command line wins). The exceptions are deliberate: `keys init
//! --force` (it destroys keys, so it must be typed) and secrets, which never come from argv at
//! all (`KMS_USER_ID` or a `--*-file` flag). `KMS_KEY_ID` and `KMS_USER_ID` keep their meaning.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::endpoint::Endpoint;

/// The prefix of every flag's environment variable.
pub const ENV_PREFIX: &str = "KMS_PLUGIN_";

/// `kms-plugin`: a Kubernetes KMS v2/v1 plugin on a Unix socket.
#[derive(Debug, Parser)]
#[command(
    name = "kms-plugin",
    version = env!("KMS_PLUGIN_VERSION_LINE"),
    about = "Kubernetes KMS v2/v1 plugin: encrypts Secrets at rest for kube-apiserver",
    long_about = "Kubernetes KMS v2/v1 plugin: encrypts Secrets at rest for kube-apiserver.\n\n\
        Without a command it serves (`kms-plugin --listen ...` is `kms-plugin serve --listen ...`).\n\
        Every flag can also be set from the environment: --some-flag is KMS_PLUGIN_SOME_FLAG.\n\
        KMS_KEY_ID names the key (local key name, Transit key, PKCS#11 key label);\n\
        KMS_USER_ID holds the credential (Vault token, PKCS#11 PIN) unless a --*-file flag is given.",
    propagate_version = true,
    disable_help_subcommand = false
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Serve KMS v2 and v1 on the Unix socket (the default command).
    Serve(ServeArgs),
    /// Manage the local provider's key file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Ask a running plugin for its health (v2 Status); exit 0 healthy, 1 not.
    Probe(ProbeArgs),
    /// Print an EncryptionConfiguration that uses this plugin.
    EncryptionConfig(EncryptionConfigArgs),
    /// Check an EncryptionConfiguration file as kube-apiserver would; exit 1 on errors.
    CheckConfig(CheckConfigArgs),
    /// Print the version, the commit and the providers built in.
    Version(VersionArgs),
    /// Print a shell completion script (e.g. `kms-plugin completions bash > /etc/bash_completion.d/kms-plugin`).
    Completions(CompletionsArgs),
}

impl Command {
    /// The command's name as typed (`serve`, `keys`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Serve(_) => "serve",
            Self::Keys(_) => "keys",
            Self::Probe(_) => "probe",
            Self::EncryptionConfig(_) => "encryption-config",
            Self::CheckConfig(_) => "check-config",
            Self::Version(_) => "version",
            Self::Completions(_) => "completions",
        }
    }
}

/// `--listen`, shared by the commands that talk to (or about) the socket.
#[derive(Clone, Debug, Args)]
pub struct ListenArg {
    /// unix:///path or unix:///@abstract-name.
    #[arg(
        long,
        value_name = "ENDPOINT",
        env = "KMS_PLUGIN_LISTEN",
        default_value = Endpoint::DEFAULT,
        value_parser = Endpoint::parse
    )]
    pub listen: Endpoint,
}

/// `serve`'s flags.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Where the plugin listens.
    #[command(flatten)]
    pub listen: ListenArg,
    /// Remote KEK provider (vault, pkcs11 and kmip need builds with those cargo features; see docs/providers.md).
    #[arg(long, value_name = "NAME", env = "KMS_PLUGIN_PROVIDER", value_enum, default_value_t = ProviderName::Local)]
    pub provider: ProviderName,
    /// `--provider local` flags.
    #[command(flatten)]
    pub local: KeyFileArgs,
    /// Version reported by v2 Status: v2 (kube >= 1.29) or v2beta1 (also kube 1.27/1.28).
    #[arg(long, value_name = "VERSION", env = "KMS_PLUGIN_STATUS_VERSION", value_enum, default_value_t = StatusVersionArg::V2)]
    pub status_version: StatusVersionArg,
    /// Permissions of a path socket (octal). Any bit for others (wider than 0660) needs --force-socket-mode.
    #[arg(long, value_name = "OCTAL", env = "KMS_PLUGIN_SOCKET_MODE", default_value = "0600", value_parser = parse_socket_mode)]
    pub socket_mode: u32,
    /// Accept a --socket-mode that gives others access (lets any local user's processes connect).
    #[arg(long, env = "KMS_PLUGIN_FORCE_SOCKET_MODE", value_parser = clap::builder::BoolishValueParser::new())]
    pub force_socket_mode: bool,
    /// Peer uids allowed to connect, checked with SO_PEERCRED on every connection (comma-separated
    /// or repeated; the plugin's own uid is always allowed). Default: root and the plugin's own
    /// uid on an abstract socket; on a path socket, whoever its mode lets in.
    #[arg(
        long,
        value_name = "UID",
        env = "KMS_PLUGIN_ALLOW_UID",
        value_delimiter = ','
    )]
    pub allow_uid: Option<Vec<u32>>,
    /// Log line format.
    #[arg(long, value_name = "FORMAT", env = "KMS_PLUGIN_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Json)]
    pub log_format: LogFormatArg,
    /// Lowest level logged.
    #[arg(long, value_name = "LEVEL", env = "KMS_PLUGIN_LOG_LEVEL", value_enum, default_value_t = LogLevelArg::Info)]
    pub log_level: LogLevelArg,
    /// Serve /metrics, /livez and /readyz over HTTP on IP:PORT or PORT (off by default; a bare PORT or
    /// :PORT means 127.0.0.1; a non-loopback IP must be written out).
    #[arg(long, value_name = "[IP:]PORT", env = "KMS_PLUGIN_METRICS_ADDR", value_parser = crate::observe::metrics_server::parse_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How often the remote KEK status (and the key file) is re-checked, in seconds.
    #[arg(long, value_name = "SECONDS", env = "KMS_PLUGIN_STATUS_REFRESH", default_value = "10", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub status_refresh: Duration,
    /// How long SIGTERM waits for in-flight requests (and each connection's last requests), in seconds.
    #[arg(long, value_name = "SECONDS", env = "KMS_PLUGIN_SHUTDOWN_GRACE", default_value = "5", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub shutdown_grace: Duration,
    /// `--provider vault` flags.
    #[command(flatten)]
    pub vault: VaultArgs,
    /// `--provider pkcs11` flags.
    #[command(flatten)]
    pub pkcs11: Pkcs11Args,
    /// `--provider kmip` flags.
    #[command(flatten)]
    pub kmip: KmipArgs,
}

/// The local provider's key file flags (also `keys`).
#[derive(Clone, Debug, Args)]
pub struct KeyFileArgs {
    /// Local keyring file (serve: default /var/lib/kms-plugin/keyring, created on the first run of a no-argument serve).
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Key name in the keyring (default $KMS_KEY_ID, else "default").
    #[arg(long, value_name = "NAME", env = "KMS_PLUGIN_KEY_NAME")]
    pub key_name: Option<String>,
}

/// `--provider vault` flags.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Vault provider (--provider vault)")]
pub struct VaultArgs {
    /// https://host:port of Vault/OpenBao (default $VAULT_ADDR).
    #[arg(long, value_name = "URL", env = "KMS_PLUGIN_VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// Accept an http:// --vault-addr: the token and the keys then cross the network in cleartext.
    #[arg(long, env = "KMS_PLUGIN_VAULT_INSECURE_HTTP", value_parser = clap::builder::BoolishValueParser::new())]
    pub vault_insecure_http: bool,
    /// Transit mount path (default transit).
    #[arg(long, value_name = "PATH", env = "KMS_PLUGIN_TRANSIT_MOUNT")]
    pub transit_mount: Option<String>,
    /// Namespace sent as X-Vault-Namespace (default $VAULT_NAMESPACE).
    #[arg(long, value_name = "NS", env = "KMS_PLUGIN_VAULT_NAMESPACE")]
    pub vault_namespace: Option<String>,
    /// PEM CA bundle to trust (vault: default $VAULT_CACERT, else the built-in roots; kmip: the
    /// CA of the KMIP server's certificate, required).
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// File holding the token, re-read when it changes (else $KMS_USER_ID).
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// `--provider pkcs11` flags.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "PKCS#11 provider (--provider pkcs11)")]
pub struct Pkcs11Args {
    /// Module path (default /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_PKCS11_MODULE")]
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the token holding the AES key (KMS_KEY_ID = key label).
    #[arg(long, value_name = "LABEL", env = "KMS_PLUGIN_PKCS11_TOKEN_LABEL")]
    pub pkcs11_token_label: Option<String>,
    /// File holding the user PIN, re-read when it changes (else $KMS_USER_ID).
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_PIN_FILE")]
    pub pin_file: Option<PathBuf>,
}

/// `--provider kmip` flags (and `--ca-file`).
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "KMIP provider (--provider kmip)")]
pub struct KmipArgs {
    /// The KMIP server, host or host:port (port 5696 if left out); KMS_KEY_ID = the key's Name or Unique Identifier.
    #[arg(long, value_name = "HOST[:PORT]", env = "KMS_PLUGIN_KMIP_ADDR")]
    pub kmip_addr: Option<String>,
    /// PEM client certificate (chain) for mutual TLS.
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_KMIP_CLIENT_CERT")]
    pub kmip_client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_KMIP_CLIENT_KEY")]
    pub kmip_client_key: Option<PathBuf>,
    /// File holding the password of a Username/Password credential (username = $KMS_USER_ID), re-read when it changes.
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_KMIP_PASSWORD_FILE")]
    pub kmip_password_file: Option<PathBuf>,
    /// Wrap mode: AES-GCM, NIST AES key wrap (RFC 3394), key wrap with padding (RFC 5649), or auto (GCM, else the key wraps).
    #[arg(long, value_name = "MODE", env = "KMS_PLUGIN_KMIP_MODE", value_parser = ["auto", "gcm", "key-wrap", "key-wrap-pad"])]
    pub kmip_mode: Option<String>,
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key file with one key (refuses to overwrite one).
    Init(KeysInitArgs),
    /// Add a new version of the key and make it current at once (one host; several hosts: stage, copy, promote).
    Rotate(KeysArgs),
    /// Add a new version that decrypts at once but is not used to encrypt until `keys promote` (multi-host rotation, step 1).
    Stage(KeysArgs),
    /// Make the highest (staged) version current: running plugins encrypt with it (multi-host rotation, last step on each host).
    Promote(KeysArgs),
    /// List key names, versions and key ids, marking the current and staged ones (never key bytes).
    List(KeysArgs),
    /// Print the keyring fingerprint (equal on hosts with equal key files), each key's current key id and staged versions.
    Status(KeysArgs),
}

/// Flags of every `keys` subcommand.
#[derive(Clone, Debug, Args)]
pub struct KeysArgs {
    /// The keyring file (the serving default is /var/lib/kms-plugin/keyring).
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_KEY_FILE")]
    pub key_file: PathBuf,
    /// Key name in the keyring (default $KMS_KEY_ID, else "default").
    #[arg(long, value_name = "NAME", env = "KMS_PLUGIN_KEY_NAME")]
    pub key_name: Option<String>,
}

/// `keys init` flags.
#[derive(Clone, Debug, Args)]
pub struct KeysInitArgs {
    /// The key file and key name.
    #[command(flatten)]
    pub keys: KeysArgs,
    /// Overwrite an existing key file (destroys its keys!). Command line only: no environment variable.
    #[arg(long)]
    pub force: bool,
}

/// `probe` flags.
#[derive(Clone, Debug, Args)]
pub struct ProbeArgs {
    /// Where the plugin listens.
    #[command(flatten)]
    pub listen: ListenArg,
    /// How long to wait for the answer, in seconds.
    #[arg(long, value_name = "SECONDS", env = "KMS_PLUGIN_TIMEOUT", default_value = "3", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub timeout: Duration,
    /// Liveness only: exit 0 whenever the plugin answers Status on its socket, whatever healthz says (a remote outage is no reason to restart it). Without it: readiness (healthz ok).
    #[arg(long, env = "KMS_PLUGIN_LIVENESS")]
    pub liveness: bool,
    /// Also print this key file's fingerprint (keyring=kr1:...), to compare control-plane hosts.
    #[arg(long, value_name = "FILE", env = "KMS_PLUGIN_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// `encryption-config` flags.
#[derive(Clone, Debug, Args)]
pub struct EncryptionConfigArgs {
    /// Where the plugin listens.
    #[command(flatten)]
    pub listen: ListenArg,
    /// The kms timeout written into the config, in seconds.
    #[arg(long, value_name = "SECONDS", env = "KMS_PLUGIN_TIMEOUT", default_value = "3", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub timeout: Duration,
    /// KMS API of the rendered provider (v1 is deprecated).
    #[arg(long, value_name = "API", env = "KMS_PLUGIN_API", value_enum, default_value_t = ApiArg::V2)]
    pub api: ApiArg,
    /// kms provider name in the rendered config; never rename one in use.
    #[arg(
        long,
        value_name = "NAME",
        env = "KMS_PLUGIN_NAME",
        default_value = "kms-plugin"
    )]
    pub name: String,
}

/// `check-config` arguments.
#[derive(Clone, Debug, Args)]
pub struct CheckConfigArgs {
    /// The EncryptionConfiguration file kube-apiserver uses (or will use).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Where this plugin listens; when given, a kms provider must point at it.
    #[arg(long, value_name = "ENDPOINT", env = "KMS_PLUGIN_LISTEN", value_parser = Endpoint::parse)]
    pub listen: Option<Endpoint>,
    /// The configuration in use before FILE: warns when FILE would leave data it wrote unreadable.
    #[arg(long, value_name = "OLD_FILE", env = "KMS_PLUGIN_PREVIOUS")]
    pub previous: Option<PathBuf>,
}

/// `version` flags.
#[derive(Clone, Debug, Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(long, short, value_name = "FORMAT", env = "KMS_PLUGIN_OUTPUT", value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// `completions` arguments.
#[derive(Clone, Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: clap_complete::Shell,
}

/// `--provider`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProviderName {
    /// A key file on the host (this build always has it).
    Local,
    /// HashiCorp Vault / OpenBao Transit (cargo feature `vault`).
    Vault,
    /// A PKCS#11 HSM (cargo feature `pkcs11`).
    Pkcs11,
    /// A KMIP server: enterprise KMS or HSM appliance (cargo feature `kmip`).
    Kmip,
}

/// `--status-version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusVersionArg {
    /// kube >= 1.29.
    V2,
    /// Also accepted by kube 1.27 and 1.28.
    V2beta1,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// One JSON object a line.
    Json,
    /// Human-readable `key=value` lines.
    Text,
}

/// `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevelArg {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also normal operation (start, health changes).
    Info,
    /// Also per-connection detail.
    Debug,
}

/// `encryption-config --api`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ApiArg {
    /// KMS v2 (recommended).
    V2,
    /// KMS v1 (deprecated).
    V1,
}

/// `version --output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line, as `--version` prints it.
    Text,
    /// One JSON object.
    Json,
}

/// A number of seconds, `0 < s < 86400`, fractions allowed.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "expected a number of seconds above 0 and below 86400, e.g. 3 or 0.5".into())
}

/// An octal file mode (`0600`, `660`, `0o660`).
pub fn parse_socket_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| "expected an octal mode such as 0600 or 0660".into())
}
