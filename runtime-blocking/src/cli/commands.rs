//! What each command does once its arguments are parsed ([`super::args`]). Errors are one
//! operator-facing line naming the flag or file and the fix; the caller prints them and exits 2.

use std::path::PathBuf;
use std::sync::Arc;

use kms_plugin_core::Config;
use kms_plugin_core::config::StatusVersion;
use kms_plugin_core::keyring::Keyring;

use super::EXIT_USAGE;
use super::args::{
    ApiArg, CheckConfigArgs, EncryptionConfigArgs, KeyFileArgs, KeysCommand, LogFormatArg,
    LogLevelArg, ProbeArgs, ProviderName, ServeArgs, StatusVersionArg,
};
use crate::keyfile::{self, DEFAULT_KEY_FILE};
use crate::log::{Level, LogFormat, Logger};
use crate::provider::KekProvider;
use crate::provider::local::LocalKeyFile;
use crate::provider::remote::{self, ProviderFlags};
use crate::serve::{ServeOptions, Server};

/// `--socket-mode` bits refused without `--force-socket-mode`: any permission for others
/// (0660, owner and group, is the widest accepted; execute bits mean nothing on a socket).
const OTHERS_BITS: u32 = 0o007;

fn key_name(flag: Option<&String>) -> String {
    flag.cloned()
        .or_else(|| std::env::var("KMS_KEY_ID").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| Keyring::DEFAULT_KEY_NAME.to_string())
}

fn local_provider(local: &KeyFileArgs, logger: Logger) -> Result<LocalKeyFile, String> {
    let name = key_name(local.key_name.as_ref());
    let path = if let Some(p) = &local.key_file {
        p.clone()
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
    LocalKeyFile::open(path, name, logger)
}

/// Builds the provider selected by `--provider`.
pub fn build_provider(args: &ServeArgs, logger: &Logger) -> Result<Arc<dyn KekProvider>, String> {
    let remote = match args.provider {
        ProviderName::Local => return Ok(Arc::new(local_provider(&args.local, *logger)?)),
        ProviderName::Vault => "vault",
        ProviderName::Pkcs11 => "pkcs11",
        ProviderName::Kmip => "kmip",
    };
    let flags = ProviderFlags {
        vault_addr: args.vault.vault_addr.clone(),
        transit_mount: args.vault.transit_mount.clone(),
        vault_namespace: args.vault.vault_namespace.clone(),
        ca_file: args.vault.ca_file.clone(),
        token_file: args.vault.token_file.clone(),
        pkcs11_module: args.pkcs11.pkcs11_module.clone(),
        pkcs11_token_label: args.pkcs11.pkcs11_token_label.clone(),
        pin_file: args.pkcs11.pin_file.clone(),
        kmip_addr: args.kmip.kmip_addr.clone(),
        kmip_client_cert: args.kmip.kmip_client_cert.clone(),
        kmip_client_key: args.kmip.kmip_client_key.clone(),
        kmip_password_file: args.kmip.kmip_password_file.clone(),
        kmip_mode: args.kmip.kmip_mode.clone(),
        vault_insecure_http: args.vault.vault_insecure_http,
    };
    let provider = remote::build(remote, &flags, &|name| std::env::var(name).ok())?;
    Ok(Arc::new(crate::provider::logged::LogMissingVersions::new(
        provider, *logger,
    )))
}

/// `serve`: runs until SIGTERM or SIGINT, then drains and unlinks the socket.
pub fn serve(args: &ServeArgs) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    // Before anything is bound: a SIGTERM that arrives while starting still ends in the
    // orderly path below (stop, drain, unlink the socket) instead of killing the process.
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let format = match args.log_format {
        LogFormatArg::Json => LogFormat::Json,
        LogFormatArg::Text => LogFormat::Text,
    };
    let level = match args.log_level {
        LogLevelArg::Error => Level::Error,
        LogLevelArg::Warn => Level::Warn,
        LogLevelArg::Info => Level::Info,
        LogLevelArg::Debug => Level::Debug,
    };
    let logger = Logger::new(format, level);
    if args.socket_mode & OTHERS_BITS != 0 && !args.force_socket_mode {
        return Err(format!(
            "--socket-mode {:04o} gives users other than the owner and group access to the socket; use 0600 or 0660 (or add --force-socket-mode if you really mean it)",
            args.socket_mode
        ));
    }
    let mut config = Config::default();
    config.kms.status_version = match args.status_version {
        StatusVersionArg::V2 => StatusVersion::V2,
        StatusVersionArg::V2beta1 => StatusVersion::V2Beta1,
    };
    config.kms.runtime_version = super::version::VERSION.to_string();
    config.kms.status_refresh_interval = args.status_refresh;
    if config.kms.status_staleness < config.kms.status_refresh_interval * 3 {
        config.kms.status_staleness = config.kms.status_refresh_interval * 3;
    }
    // One grace for the process and for each connection's in-flight streams.
    config.transport.shutdown_grace = args.shutdown_grace;
    let provider = build_provider(args, &logger)?;
    if args.provider == ProviderName::Vault && args.vault.vault_insecure_http {
        let addr = args
            .vault
            .vault_addr
            .clone()
            .or_else(|| std::env::var("VAULT_ADDR").ok())
            .unwrap_or_default();
        if addr.trim().to_ascii_lowercase().starts_with("http://") {
            logger.warn(
                "INSECURE: --vault-insecure-http: the Vault token, the plaintext keys sent to wrap and the unwrapped keys cross the network in cleartext; anyone on the path can decrypt every Secret. Use https:// outside a test setup",
                &[("vault_addr", &addr)],
            );
        }
    }
    let server = Server::start(ServeOptions {
        endpoint: args.listen.listen.clone(),
        socket_mode: args.socket_mode,
        config,
        provider,
        logger,
        shutdown_grace: args.shutdown_grace,
        remote_workers: 4,
        allow_uids: args.allow_uid.clone(),
    })?;
    if let Some(warning) = crate::socket::directory_warning(&args.listen.listen) {
        logger.warn(&warning, &[]);
    }
    let metrics = match args.metrics_addr {
        Some(addr) => match start_metrics(addr, &server, logger) {
            Ok(m) => Some(m),
            Err(e) => {
                server.shutdown();
                server.wait();
                return Err(e);
            }
        },
        None => None,
    };
    let _ = signals.forever().next();
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

/// `keys init|rotate|stage|promote|list|status`.
pub fn keys(command: &KeysCommand) -> Result<(), String> {
    let lines = match command {
        KeysCommand::Init(init) => keyfile::commands::init(
            &init.keys.key_file,
            &key_name(init.keys.key_name.as_ref()),
            init.force,
        )?,
        KeysCommand::Rotate(args) => {
            keyfile::commands::rotate(&args.key_file, &key_name(args.key_name.as_ref()))?
        }
        KeysCommand::Stage(args) => {
            keyfile::commands::stage(&args.key_file, &key_name(args.key_name.as_ref()))?
        }
        KeysCommand::Promote(args) => {
            keyfile::commands::promote(&args.key_file, &key_name(args.key_name.as_ref()))?
        }
        KeysCommand::List(args) => keyfile::commands::list(&args.key_file)?,
        KeysCommand::Status(args) => keyfile::commands::status(&args.key_file)?,
    };
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// `probe`: readiness (exit 0 when the plugin answers healthz "ok", 1 otherwise) or, with
/// `--liveness`, liveness (exit 0 whenever it answers Status at all).
pub fn probe(args: &ProbeArgs) -> i32 {
    let check = if args.liveness {
        crate::probe::Check::Liveness
    } else {
        crate::probe::Check::Readiness
    };
    let (code, line) = crate::probe::run(
        &args.listen.listen,
        args.timeout,
        check,
        args.key_file.as_deref(),
    );
    println!("{line}");
    code
}

/// `encryption-config`: prints a config for this plugin; refuses (exit 2, printing the findings
/// to stderr) when the flags would make kube-apiserver reject it.
pub fn encryption_config(args: &EncryptionConfigArgs) -> i32 {
    use crate::encryption_config::{ApiVersion, check, has_errors, render};
    let api = match args.api {
        ApiArg::V2 => ApiVersion::V2,
        ApiArg::V1 => ApiVersion::V1,
    };
    let listen = args.listen.listen.to_string();
    let text = render(api, &args.name, &listen, args.timeout);
    let findings = check(&text, Some(&listen));
    if has_errors(&findings) {
        for f in &findings {
            eprintln!("kms-plugin: {f}");
        }
        return EXIT_USAGE;
    }
    print!("{text}");
    0
}

fn read_config(file: &std::path::Path, what: &str) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| {
        format!(
            "check-config: cannot read {what}{}: {e}; pass the EncryptionConfiguration file kube-apiserver uses",
            file.display()
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        format!(
            "check-config: {what}{} is not UTF-8 text; pass the EncryptionConfiguration YAML file",
            file.display()
        )
    })
}

/// `check-config FILE`: prints every finding; exit 1 when any is an error, 0 otherwise.
pub fn check_config(args: &CheckConfigArgs) -> Result<i32, String> {
    use crate::encryption_config::{check, has_errors};
    let text = read_config(&args.file, "")?;
    let previous = match &args.previous {
        Some(path) => Some(read_config(path, "--previous ")?),
        None => None,
    };
    let listen = args.listen.as_ref().map(ToString::to_string);
    let mut findings = check(&text, listen.as_deref());
    if let Some(previous) = previous {
        findings.extend(crate::encryption_config::compare(&previous, &text));
    }
    for f in &findings {
        println!("{f}");
    }
    if has_errors(&findings) {
        Ok(1)
    } else {
        if findings.is_empty() {
            println!("ok: {}", args.file.display());
        }
        Ok(0)
    }
}
