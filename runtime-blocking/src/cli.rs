//! The `kms-plugin` command line: one flag table drives parsing, validation and help.
//!
//! Commands: `serve` (default), `keys init|rotate|list`, `probe`, `encryption-config`,
//! `check-config FILE`, `version`, `help`. Every flag of every command is one [`FlagSpec`] row
//! in [`FLAGS`]; [`parse`] rejects unknown flags, repeated flags and flags given to a command
//! that does not take them, so commands only read values (`Args::get`).
//!
//! Adding a provider (a small, local change):
//! 1. its flags: rows in [`FLAGS`] with `commands: SERVE` and help prefixed `name:`;
//! 2. a remote provider (network/HSM): a field per flag in [`ProviderFlags`], filled in
//!    [`build_provider`], its name in `build_provider`'s `remote @ ("vault" | "pkcs11")`
//!    pattern, and a match arm in [`remote::build`] (wrapped in the resilience layer there);
//!    an in-process provider: a match arm in [`build_provider`];
//! 3. its name in the `--provider` help row and in `build_provider`'s last error message.
//!
//! Secrets never come from argv: `KMS_USER_ID` (environment) or a `--*-file` flag.
//! Nothing else parses arguments.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kms_plugin_core::Config;
use kms_plugin_core::config::StatusVersion;
use kms_plugin_core::keyring::Keyring;

use crate::endpoint::Endpoint;
use crate::keyfile::{self, DEFAULT_KEY_FILE};
use crate::log::{Level, LogFormat, Logger};
use crate::provider::KekProvider;
use crate::provider::local::LocalKeyFile;
use crate::provider::remote::{self, ProviderFlags};
use crate::serve::{ServeOptions, Server};

/// Exit code for bad usage or configuration.
pub const EXIT_USAGE: i32 = 2;

/// One command-line flag.
pub struct FlagSpec {
    /// `--name`.
    pub name: &'static str,
    /// Placeholder for its value; empty for a boolean switch.
    pub value: &'static str,
    /// The commands that accept it.
    pub commands: &'static [&'static str],
    /// One line of help (with the default).
    pub help: &'static str,
}

const SERVE: &[&str] = &["serve"];
const SERVE_PROBE_CONFIG: &[&str] = &["serve", "probe", "encryption-config", "check-config"];
const PROBE_CONFIG: &[&str] = &["probe", "encryption-config"];
const ENCRYPTION_CONFIG: &[&str] = &["encryption-config"];

/// Every command (the first positional argument; none means `serve`).
const COMMANDS: &[&str] = &[
    "serve",
    "keys",
    "probe",
    "encryption-config",
    "check-config",
    "version",
    "help",
];
const KEYS: &[&str] = &["keys"];
const SERVE_KEYS: &[&str] = &["serve", "keys"];

/// Every flag of every command.
pub const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "listen",
        value: "ENDPOINT",
        commands: SERVE_PROBE_CONFIG,
        help: "unix:///path or unix:///@abstract-name (default unix:///tmp/kms.sock; check-config: only checked when given)",
    },
    FlagSpec {
        name: "provider",
        value: "NAME",
        commands: SERVE,
        help: "remote KEK provider: local (default), vault, pkcs11 (vault and pkcs11 need builds with those cargo features); see docs/providers.md",
    },
    FlagSpec {
        name: "vault-addr",
        value: "URL",
        commands: SERVE,
        help: "vault: https://host:port of Vault/OpenBao (default $VAULT_ADDR)",
    },
    FlagSpec {
        name: "transit-mount",
        value: "PATH",
        commands: SERVE,
        help: "vault: Transit mount path (default transit)",
    },
    FlagSpec {
        name: "vault-namespace",
        value: "NS",
        commands: SERVE,
        help: "vault: namespace sent as X-Vault-Namespace (default $VAULT_NAMESPACE)",
    },
    FlagSpec {
        name: "ca-file",
        value: "FILE",
        commands: SERVE,
        help: "vault: PEM CA bundle to trust (default $VAULT_CACERT, else the built-in roots)",
    },
    FlagSpec {
        name: "token-file",
        value: "FILE",
        commands: SERVE,
        help: "vault: file holding the token, re-read when it changes (else $KMS_USER_ID)",
    },
    FlagSpec {
        name: "pkcs11-module",
        value: "FILE",
        commands: SERVE,
        help: "pkcs11: module path (default /usr/lib/softhsm/libsofthsm2.so)",
    },
    FlagSpec {
        name: "pkcs11-token-label",
        value: "LABEL",
        commands: SERVE,
        help: "pkcs11: label of the token holding the AES key (KMS_KEY_ID = key label)",
    },
    FlagSpec {
        name: "pin-file",
        value: "FILE",
        commands: SERVE,
        help: "pkcs11: file holding the user PIN, re-read when it changes (else $KMS_USER_ID)",
    },
    FlagSpec {
        name: "key-file",
        value: "FILE",
        commands: SERVE_KEYS,
        help: "local keyring file (default /var/lib/kms-plugin/keyring; created on first run of a no-argument serve)",
    },
    FlagSpec {
        name: "key-name",
        value: "NAME",
        commands: SERVE_KEYS,
        help: "key name in the keyring (default $KMS_KEY_ID, else \"default\")",
    },
    FlagSpec {
        name: "status-version",
        value: "v2|v2beta1",
        commands: SERVE,
        help: "version reported by v2 Status: v2 (kube >= 1.29, default) or v2beta1 (also kube 1.27/1.28)",
    },
    FlagSpec {
        name: "socket-mode",
        value: "OCTAL",
        commands: SERVE,
        help: "permissions of a path socket (default 0600)",
    },
    FlagSpec {
        name: "log-format",
        value: "json|text",
        commands: SERVE,
        help: "log line format (default json)",
    },
    FlagSpec {
        name: "log-level",
        value: "LEVEL",
        commands: SERVE,
        help: "error, warn, info (default) or debug",
    },
    FlagSpec {
        name: "metrics-addr",
        value: "[IP:]PORT",
        commands: SERVE,
        help: "serve /metrics, /livez and /readyz over HTTP on this address (off by default; a bare PORT or :PORT means 127.0.0.1; a non-loopback IP must be written out)",
    },
    FlagSpec {
        name: "status-refresh",
        value: "SECONDS",
        commands: SERVE,
        help: "how often the remote KEK status (and the key file) is re-checked (default 10)",
    },
    FlagSpec {
        name: "shutdown-grace",
        value: "SECONDS",
        commands: SERVE,
        help: "how long SIGTERM waits for in-flight requests (default 5)",
    },
    FlagSpec {
        name: "timeout",
        value: "SECONDS",
        commands: PROBE_CONFIG,
        help: "probe timeout, or the kms timeout written by encryption-config (default 3)",
    },
    FlagSpec {
        name: "api",
        value: "v2|v1",
        commands: ENCRYPTION_CONFIG,
        help: "KMS API of the rendered provider: v2 (default) or v1 (deprecated)",
    },
    FlagSpec {
        name: "name",
        value: "NAME",
        commands: ENCRYPTION_CONFIG,
        help: "kms provider name in the rendered config (default kms-plugin); never rename one in use",
    },
    FlagSpec {
        name: "force",
        value: "",
        commands: KEYS,
        help: "keys init: overwrite an existing key file (destroys its keys!)",
    },
    FlagSpec {
        name: "help",
        value: "",
        commands: COMMANDS,
        help: "show this help",
    },
];

const USAGE: &str = "usage: kms-plugin [serve] [flags]
       kms-plugin keys init|rotate|list --key-file FILE [--key-name NAME] [--force]
       kms-plugin probe [--listen ENDPOINT] [--timeout SECONDS]
       kms-plugin encryption-config [--api v2|v1] [--name NAME] [--listen ENDPOINT] [--timeout SECONDS]
       kms-plugin check-config FILE [--listen ENDPOINT]
       kms-plugin version

environment: KMS_KEY_ID = key name (local) or key id of the provider; KMS_USER_ID = credential id";

/// Parsed arguments.
#[derive(Debug, Default)]
pub struct Args {
    /// One of `serve`, `keys`, `probe`, `encryption-config`, `check-config`, `version`, `help`.
    pub command: String,
    /// For `keys`: `init`, `rotate` or `list`; for `check-config`: the FILE.
    pub subcommand: Option<String>,
    values: HashMap<&'static str, String>,
}

impl Args {
    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether the switch `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

/// Parses `argv` (without the program name). Errors are one line naming the flag and the fix.
pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut args = Args::default();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        let Some(flag) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg != "-" {
                return Err(format!(
                    "unknown option {arg:?}; flags are written --name (see --help)"
                ));
            }
            positional.push(arg.clone());
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let spec = FLAGS
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("unknown flag --{name} (see --help)"))?;
        let value = if spec.value.is_empty() {
            if inline.is_some() {
                return Err(format!("--{name} takes no value"));
            }
            String::new()
        } else if let Some(v) = inline {
            v
        } else {
            let v = argv
                .get(i)
                .ok_or_else(|| format!("--{name} needs a value: --{name} {}", spec.value))?;
            i += 1;
            v.clone()
        };
        if args.values.insert(spec.name, value).is_some() {
            return Err(format!("--{name} given twice"));
        }
    }
    let mut positional = positional.into_iter();
    args.command = positional.next().unwrap_or_else(|| "serve".to_string());
    if !COMMANDS.contains(&args.command.as_str()) {
        return Err(format!("unknown command {:?}\n{USAGE}", args.command));
    }
    if args.command == "keys" {
        let sub = positional
            .next()
            .ok_or("keys needs a subcommand: keys init|rotate|list --key-file FILE")?;
        if !["init", "rotate", "list"].contains(&sub.as_str()) {
            return Err(format!(
                "unknown keys subcommand {sub:?}; use init, rotate or list"
            ));
        }
        args.subcommand = Some(sub);
    }
    if args.command == "check-config" {
        let file = positional.next().ok_or(
            "check-config needs the file: kms-plugin check-config /etc/kubernetes/encryption-config.yaml",
        )?;
        args.subcommand = Some(file);
    }
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument {extra:?}\n{USAGE}"));
    }
    for name in args.values.keys() {
        let spec = FLAGS.iter().find(|f| f.name == *name).expect("from FLAGS");
        if !spec.commands.contains(&args.command.as_str()) {
            return Err(format!("--{name} does not apply to `{}`", args.command));
        }
    }
    Ok(args)
}

fn help() -> String {
    let mut out = format!("{USAGE}\n\nflags:\n");
    for f in FLAGS {
        let _ = writeln!(
            out,
            "  --{}{}{}\n      {} [{}]",
            f.name,
            if f.value.is_empty() { "" } else { " " },
            f.value,
            f.help,
            f.commands.join(", ")
        );
    }
    out
}

fn seconds(args: &Args, name: &str, default: u64) -> Result<Duration, String> {
    match args.get(name) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!("--{name} {v:?}: expected a number of seconds, e.g. --{name} 3")
            }),
    }
}

fn key_name(args: &Args) -> String {
    args.get("key-name")
        .map(str::to_string)
        .or_else(|| std::env::var("KMS_KEY_ID").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| Keyring::DEFAULT_KEY_NAME.to_string())
}

/// Builds the provider selected by `--provider`.
pub fn build_provider(args: &Args, logger: &Logger) -> Result<Arc<dyn KekProvider>, String> {
    match args.get("provider").unwrap_or("local") {
        "local" => {
            let name = key_name(args);
            let path = if let Some(p) = args.get("key-file") {
                PathBuf::from(p)
            } else {
                let path = PathBuf::from(DEFAULT_KEY_FILE);
                if let Some(key_id) = keyfile::commands::create_if_absent(&path, &name)? {
                    logger.info(
                        "created a new local key file; back it up: losing it loses every Secret encrypted with it",
                        &[
                            ("key_file", &path.display()),
                            ("key_id_hash", &crate::log::hash_key_id(&key_id)),
                        ],
                    );
                }
                path
            };
            Ok(Arc::new(LocalKeyFile::open(path, name, *logger)?))
        }
        remote @ ("vault" | "pkcs11") => {
            let flags = ProviderFlags {
                vault_addr: args.get("vault-addr").map(str::to_string),
                transit_mount: args.get("transit-mount").map(str::to_string),
                vault_namespace: args.get("vault-namespace").map(str::to_string),
                ca_file: args.get("ca-file").map(PathBuf::from),
                token_file: args.get("token-file").map(PathBuf::from),
                pkcs11_module: args.get("pkcs11-module").map(PathBuf::from),
                pkcs11_token_label: args.get("pkcs11-token-label").map(str::to_string),
                pin_file: args.get("pin-file").map(PathBuf::from),
                ..ProviderFlags::default()
            };
            let provider = remote::build(remote, &flags, &|name| std::env::var(name).ok())?;
            Ok(Arc::from(provider))
        }
        other => Err(format!(
            "--provider {other:?}: unknown provider; use local, vault or pkcs11"
        )),
    }
}

fn serve(args: &Args) -> Result<(), String> {
    let format = match args.get("log-format").unwrap_or("json") {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        v => return Err(format!("--log-format {v:?}: use json or text")),
    };
    let level = args.get("log-level").map_or(Ok(Level::Info), |v| {
        Level::parse(v).ok_or_else(|| format!("--log-level {v:?}: use error, warn, info or debug"))
    })?;
    let logger = Logger::new(format, level);
    let endpoint = Endpoint::parse(args.get("listen").unwrap_or(Endpoint::DEFAULT))?;
    let socket_mode = match args.get("socket-mode") {
        None => 0o600,
        Some(v) => u32::from_str_radix(v.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                format!("--socket-mode {v:?}: expected an octal mode such as 0600 or 0660")
            })?,
    };
    let mut config = Config::default();
    config.kms.status_version = match args.get("status-version").unwrap_or("v2") {
        "v2" => StatusVersion::V2,
        "v2beta1" => StatusVersion::V2Beta1,
        v => {
            return Err(format!(
                "--status-version {v:?}: use v2 (kube >= 1.29) or v2beta1 (kube 1.27/1.28)"
            ));
        }
    };
    config.kms.runtime_version = env!("CARGO_PKG_VERSION").to_string();
    config.kms.status_refresh_interval = seconds(args, "status-refresh", 10)?;
    if config.kms.status_staleness < config.kms.status_refresh_interval * 3 {
        config.kms.status_staleness = config.kms.status_refresh_interval * 3;
    }
    let metrics_addr = args
        .get("metrics-addr")
        .map(crate::observe::metrics_server::parse_addr)
        .transpose()?;
    let provider = build_provider(args, &logger)?;
    let server = Server::start(ServeOptions {
        endpoint,
        socket_mode,
        config,
        provider,
        logger,
        shutdown_grace: seconds(args, "shutdown-grace", 5)?,
        remote_workers: 4,
    })?;
    let metrics = match metrics_addr {
        Some(addr) => Some(start_metrics(addr, &server, logger)?),
        None => None,
    };
    wait_for_signal()?;
    server.shutdown();
    server.wait();
    if let Some(m) = metrics {
        m.stop();
    }
    Ok(())
}

fn start_metrics(
    addr: std::net::SocketAddr,
    server: &Server,
    logger: Logger,
) -> Result<crate::observe::metrics_server::MetricsServer, String> {
    use crate::observe::metrics_server::{Limits, MetricsServer, is_loopback};
    let m = MetricsServer::start(addr, server.probe(), Limits::default())
        .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))?;
    let bound = m.local_addr();
    logger.info("serving metrics", &[("addr", &bound)]);
    if !is_loopback(&bound) {
        logger.warn(
            "metrics served on a non-loopback address; /metrics and /readyz are reachable from the network",
            &[("addr", &bound)],
        );
    }
    Ok(m)
}

fn wait_for_signal() -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let _ = signals.forever().next();
    Ok(())
}

fn keys(args: &Args) -> Result<(), String> {
    let path = PathBuf::from(
        args.get("key-file")
            .ok_or("keys needs --key-file FILE (the default is /var/lib/kms-plugin/keyring)")?,
    );
    let name = key_name(args);
    let lines = match args.subcommand.as_deref() {
        Some("init") => keyfile::commands::init(&path, &name, args.flag("force"))?,
        Some("rotate") => keyfile::commands::rotate(&path, &name)?,
        _ => keyfile::commands::list(&path)?,
    };
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn probe(args: &Args) -> Result<i32, String> {
    let endpoint = Endpoint::parse(args.get("listen").unwrap_or(Endpoint::DEFAULT))?;
    let timeout = seconds(args, "timeout", 3)?;
    let (code, line) = crate::probe::run(&endpoint, timeout, crate::probe::Check::Readiness, None);
    println!("{line}");
    Ok(code)
}

/// `encryption-config`: prints a config for this plugin; refuses (exit 2, printing the findings
/// to stderr) when the flags would make kube-apiserver reject it.
fn encryption_config(args: &Args) -> Result<i32, String> {
    use crate::encryption_config::{ApiVersion, check, has_errors, render};
    let api = match args.get("api").unwrap_or("v2") {
        "v2" => ApiVersion::V2,
        "v1" => ApiVersion::V1,
        v => {
            return Err(format!(
                "--api {v:?}: use v2 (recommended) or v1 (deprecated)"
            ));
        }
    };
    let listen = args.get("listen").unwrap_or(Endpoint::DEFAULT);
    Endpoint::parse(listen)?;
    let timeout = seconds(args, "timeout", 3)?;
    let text = render(
        api,
        args.get("name").unwrap_or("kms-plugin"),
        listen,
        timeout,
    );
    let findings = check(&text, Some(listen));
    if has_errors(&findings) {
        for f in &findings {
            eprintln!("kms-plugin: {f}");
        }
        return Ok(EXIT_USAGE);
    }
    print!("{text}");
    Ok(0)
}

/// `check-config FILE`: prints every finding; exit 1 when any is an error, 0 otherwise.
fn check_config(args: &Args) -> Result<i32, String> {
    use crate::encryption_config::{check, has_errors};
    let file = args.subcommand.as_deref().unwrap_or_default();
    let listen = args.get("listen");
    if let Some(l) = listen {
        Endpoint::parse(l)?;
    }
    let bytes = std::fs::read(file)
        .map_err(|e| format!("check-config: cannot read {file:?}: {e}; pass the EncryptionConfiguration file kube-apiserver uses"))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        format!(
            "check-config: {file:?} is not UTF-8 text; pass the EncryptionConfiguration YAML file"
        )
    })?;
    let findings = check(&text, listen);
    for f in &findings {
        println!("{f}");
    }
    if has_errors(&findings) {
        Ok(1)
    } else {
        if findings.is_empty() {
            println!("ok: {file}");
        }
        Ok(0)
    }
}

/// Runs the command line; returns the process exit code.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> i32 {
    let argv: Vec<String> = match argv
        .into_iter()
        .skip(1)
        .map(OsString::into_string)
        .collect()
    {
        Ok(v) => v,
        Err(bad) => {
            eprintln!("kms-plugin: error: argument {bad:?} is not valid UTF-8");
            return EXIT_USAGE;
        }
    };
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kms-plugin: error: {e}");
            return EXIT_USAGE;
        }
    };
    if args.flag("help") || args.command == "help" {
        print!("{}", help());
        return 0;
    }
    let result = match args.command.as_str() {
        "version" => {
            println!("kms-plugin {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        "keys" => keys(&args).map(|()| 0),
        "probe" => probe(&args),
        "encryption-config" => encryption_config(&args),
        "check-config" => check_config(&args),
        _ => serve(&args).map(|()| 0),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kms-plugin: error: {e}");
            EXIT_USAGE
        }
    }
}
