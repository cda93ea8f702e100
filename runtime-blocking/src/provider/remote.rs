//! Building a remote provider (`vault`, `pkcs11`) from the CLI's flags and the environment.
//!
//! The CLI owns argument parsing; it can either fill [`ProviderFlags`] from its own parser,
//! or let [`ProviderFlags::take_from_args`] pull the provider flags out of the argument list
//! first. Secrets never come from argv: `KMS_USER_ID` (environment) or a file.
//!
//! | setting | flag | environment |
//! |---|---|---|
//! | Transit key name / PKCS#11 key label | | `KMS_KEY_ID` |
//! | Vault token / PKCS#11 user PIN | `--token-file` / `--pin-file` | `KMS_USER_ID` |
//! | Vault address | `--vault-addr` (`http://` only with `--vault-insecure-http`) | `VAULT_ADDR` |
//! | Transit mount | `--transit-mount` (default `transit`) | |
//! | Vault namespace | `--vault-namespace` | `VAULT_NAMESPACE` |
//! | CA bundle | `--ca-file` | `VAULT_CACERT` |
//! | PKCS#11 module | `--pkcs11-module` (default SoftHSM2) | |
//! | PKCS#11 token label | `--pkcs11-token-label` | |
//! | KMIP key name or unique identifier | | `KMS_KEY_ID` |
//! | KMIP server | `--kmip-addr` (`host[:port]`, default port 5696) | |
//! | KMIP client certificate / key | `--kmip-client-cert` / `--kmip-client-key` | |
//! | KMIP server CA | `--ca-file` | |
//! | KMIP username / password | `--kmip-password-file` | `KMS_USER_ID` (the username) |
//! | KMIP wrap mode | `--kmip-mode` (`gcm`, `key-wrap`, `key-wrap-pad`; default: probe) | |

use std::path::PathBuf;

#[cfg(any(feature = "vault", feature = "pkcs11"))]
use zeroize::Zeroizing;

use super::KekProvider;
#[cfg(feature = "vault")]
use super::vault::{TokenSource, VaultConfig};

/// Provider flags as given on the command line (`None` = not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderFlags {
    /// `--vault-addr`.
    pub vault_addr: Option<String>,
    /// `--transit-mount`.
    pub transit_mount: Option<String>,
    /// `--vault-namespace`.
    pub vault_namespace: Option<String>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--pkcs11-module`.
    pub pkcs11_module: Option<PathBuf>,
    /// `--pkcs11-token-label`.
    pub pkcs11_token_label: Option<String>,
    /// `--pin-file`.
    pub pin_file: Option<PathBuf>,
    /// `--kmip-addr`.
    pub kmip_addr: Option<String>,
    /// `--kmip-client-cert`.
    pub kmip_client_cert: Option<PathBuf>,
    /// `--kmip-client-key`.
    pub kmip_client_key: Option<PathBuf>,
    /// `--kmip-password-file`.
    pub kmip_password_file: Option<PathBuf>,
    /// `--kmip-mode`.
    pub kmip_mode: Option<String>,
    /// `--vault-insecure-http`: accept an `http://` Vault address.
    pub vault_insecure_http: bool,
}

/// Flags that would put a secret on the command line; refused with a pointer to the
/// supported ways.
const REFUSED: [&str; 5] = [
    "--token",
    "--vault-token",
    "--pin",
    "--user-pin",
    "--password",
];

impl ProviderFlags {
    /// Every flag this module understands.
    pub const NAMES: [&'static str; 13] = [
        "--vault-addr",
        "--transit-mount",
        "--vault-namespace",
        "--ca-file",
        "--token-file",
        "--pkcs11-module",
        "--pkcs11-token-label",
        "--pin-file",
        "--kmip-addr",
        "--kmip-client-cert",
        "--kmip-client-key",
        "--kmip-password-file",
        "--kmip-mode",
    ];

    /// Removes the provider flags (`--flag value` or `--flag=value`) from `args` and returns
    /// them with the remaining arguments, in order, for the CLI's own parser.
    pub fn take_from_args(args: Vec<String>) -> Result<(Self, Vec<String>), String> {
        let mut flags = Self::default();
        let mut rest = Vec::with_capacity(args.len());
        let mut iter = args.into_iter();
        while let Some(arg) = iter.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            if REFUSED.contains(&name.as_str()) {
                return Err(format!(
                    "{name} is not accepted: secrets never go on the command line; \
                     use KMS_USER_ID or --token-file / --pin-file / --kmip-password-file"
                ));
            }
            if !Self::NAMES.contains(&name.as_str()) {
                rest.push(arg);
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None => iter.next().ok_or_else(|| format!("{name} needs a value"))?,
            };
            if value.is_empty() {
                return Err(format!("{name} needs a non-empty value"));
            }
            flags.set(&name, value);
        }
        Ok((flags, rest))
    }

    fn set(&mut self, name: &str, value: String) {
        match name {
            "--vault-addr" => self.vault_addr = Some(value),
            "--transit-mount" => self.transit_mount = Some(value),
            "--vault-namespace" => self.vault_namespace = Some(value),
            "--ca-file" => self.ca_file = Some(value.into()),
            "--token-file" => self.token_file = Some(value.into()),
            "--pkcs11-module" => self.pkcs11_module = Some(value.into()),
            "--pkcs11-token-label" => self.pkcs11_token_label = Some(value),
            "--pin-file" => self.pin_file = Some(value.into()),
            "--kmip-addr" => self.kmip_addr = Some(value),
            "--kmip-client-cert" => self.kmip_client_cert = Some(value.into()),
            "--kmip-client-key" => self.kmip_client_key = Some(value.into()),
            "--kmip-password-file" => self.kmip_password_file = Some(value.into()),
            "--kmip-mode" => self.kmip_mode = Some(value),
            _ => {}
        }
    }
}

/// Reads an environment variable (injected so tests and embedders need not touch the real
/// environment).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

#[cfg(any(feature = "vault", feature = "pkcs11", feature = "kmip"))]
fn required(env: Env<'_>, name: &str, what: &str) -> Result<String, String> {
    env(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} must name the {what}"))
}

/// The Vault configuration from `flags` and `env` (see the module table).
#[cfg(feature = "vault")]
pub fn vault_config(flags: &ProviderFlags, env: Env<'_>) -> Result<VaultConfig, String> {
    let addr = flags
        .vault_addr
        .clone()
        .or_else(|| env("VAULT_ADDR"))
        .ok_or("--vault-addr (or VAULT_ADDR) is required for --provider vault")?;
    let key = required(env, "KMS_KEY_ID", "Transit key")?;
    let token = match (
        &flags.token_file,
        env("KMS_USER_ID").filter(|t| !t.is_empty()),
    ) {
        (Some(_), Some(_)) => {
            return Err(
                "give the Vault token either in KMS_USER_ID or --token-file, not both".into(),
            );
        }
        (Some(path), None) => TokenSource::File(path.clone()),
        (None, Some(token)) => TokenSource::Value(Zeroizing::new(token)),
        (None, None) => return Err("the Vault token must be in KMS_USER_ID or --token-file".into()),
    };
    if addr.trim().to_ascii_lowercase().starts_with("http://") && !flags.vault_insecure_http {
        return Err(format!(
            "--vault-addr {addr}: plain http would send the Vault token, the plaintext key \
             and the unwrapped key in cleartext; use https:// (with --ca-file for a private CA), \
             or add --vault-insecure-http for a test setup on a trusted network"
        ));
    }
    Ok(VaultConfig {
        addr,
        namespace: flags
            .vault_namespace
            .clone()
            .or_else(|| env("VAULT_NAMESPACE")),
        mount: flags
            .transit_mount
            .clone()
            .unwrap_or_else(|| "transit".into()),
        key,
        token,
        ca_file: flags
            .ca_file
            .clone()
            .or_else(|| env("VAULT_CACERT").map(PathBuf::from)),
    })
}

/// The PKCS#11 configuration from `flags` and `env` (see the module table).
#[cfg(feature = "pkcs11")]
pub fn pkcs11_config(
    flags: &ProviderFlags,
    env: Env<'_>,
) -> Result<super::pkcs11::Pkcs11Config, String> {
    use super::pkcs11::{DEFAULT_MODULE, PinSource, Pkcs11Config};
    let key_label = required(env, "KMS_KEY_ID", "PKCS#11 key label")?;
    let pin = match (
        &flags.pin_file,
        env("KMS_USER_ID").filter(|p| !p.is_empty()),
    ) {
        (Some(_), Some(_)) => {
            return Err("give the PIN either in KMS_USER_ID or --pin-file, not both".into());
        }
        (Some(path), None) => PinSource::File(path.clone()),
        (None, Some(pin)) => PinSource::Value(Zeroizing::new(pin)),
        (None, None) => return Err("the PKCS#11 PIN must be in KMS_USER_ID or --pin-file".into()),
    };
    Ok(Pkcs11Config {
        module: flags
            .pkcs11_module
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE)),
        token_label: flags
            .pkcs11_token_label
            .clone()
            .ok_or("--pkcs11-token-label is required for --provider pkcs11")?,
        key_label,
        pin,
        max_idle_sessions: 4,
    })
}

/// The KMIP configuration from `flags` and `env` (see the module table).
#[cfg(feature = "kmip")]
pub fn kmip_config(flags: &ProviderFlags, env: Env<'_>) -> Result<super::kmip::KmipConfig, String> {
    use kms_plugin_core::kek::kmip::WrapMode;
    let need = |v: &Option<PathBuf>, flag: &str, what: &str| {
        v.clone()
            .ok_or_else(|| format!("{flag} ({what}) is required for --provider kmip"))
    };
    let credential = match (
        env("KMS_USER_ID").filter(|u| !u.is_empty()),
        &flags.kmip_password_file,
    ) {
        (Some(user), Some(file)) => Some((user, file.clone())),
        (None, None) => None,
        (Some(_), None) => {
            return Err("KMS_USER_ID is the KMIP username: give its password with \
                        --kmip-password-file, or unset KMS_USER_ID to authenticate by the \
                        client certificate alone"
                .into());
        }
        (None, Some(_)) => {
            return Err("--kmip-password-file needs the KMIP username in KMS_USER_ID".into());
        }
    };
    let mode = match flags.kmip_mode.as_deref() {
        None | Some("auto") => None,
        Some(m) => Some(WrapMode::parse(m).ok_or_else(|| {
            format!("--kmip-mode {m:?}: use gcm, key-wrap, key-wrap-pad or auto (the default)")
        })?),
    };
    Ok(super::kmip::KmipConfig {
        addr: flags.kmip_addr.clone().ok_or(
            "--kmip-addr (host[:port] of the KMIP server) is required for --provider kmip",
        )?,
        key: required(
            env,
            "KMS_KEY_ID",
            "KMIP key (its Name or Unique Identifier)",
        )?,
        client_cert: need(
            &flags.kmip_client_cert,
            "--kmip-client-cert",
            "PEM client certificate",
        )?,
        client_key: need(
            &flags.kmip_client_key,
            "--kmip-client-key",
            "PEM client key",
        )?,
        ca_file: need(
            &flags.ca_file,
            "--ca-file",
            "PEM CA of the server's certificate",
        )?,
        credential,
        mode,
    })
}

/// How long the KMIP start-up probe may take before the plugin starts anyway.
#[cfg(feature = "kmip")]
const KMIP_START_PROBE: std::time::Duration = std::time::Duration::from_secs(3);

/// Builds remote provider `name` (`vault`, `pkcs11` or `kmip`, each when built with its cargo
/// feature), wrapped in [`ResilientProvider`](super::resilient::ResilientProvider) with the
/// default retry policy and breaker. Does no network IO, except KMIP's start-up probe (at
/// most 3 s): a KMIP server that answers but can wrap with the key in no allowed mode is a
/// start-up error; otherwise the plugin starts (and reports not-ok health) while the remote
/// is down or refuses it. A provider left out of this build is an error naming the feature
/// that adds it.
#[cfg_attr(
    not(any(feature = "vault", feature = "pkcs11", feature = "kmip")),
    allow(unused_variables)
)]
pub fn build(
    name: &str,
    flags: &ProviderFlags,
    env: Env<'_>,
) -> Result<Box<dyn KekProvider>, String> {
    match name {
        #[cfg(feature = "vault")]
        "vault" => {
            let vault = super::vault::VaultProvider::new(vault_config(flags, env)?)?;
            Ok(resilient(vault))
        }
        #[cfg(feature = "pkcs11")]
        "pkcs11" => {
            let hsm = super::pkcs11::Pkcs11Provider::new(pkcs11_config(flags, env)?)?;
            Ok(resilient(hsm))
        }
        #[cfg(feature = "kmip")]
        "kmip" => {
            use super::kmip::{KmipProvider, ProbeOutcome};
            let kmip = KmipProvider::new(kmip_config(flags, env)?)?;
            let deadline = std::time::Instant::now() + KMIP_START_PROBE;
            if let ProbeOutcome::Refused(why) = kmip.probe_at_start(deadline) {
                return Err(format!(
                    "--provider kmip: {why}; use a key the server can encrypt with in AES-GCM \
                     or AES key wrap, or check --kmip-mode"
                ));
            }
            Ok(resilient(kmip))
        }
        #[cfg(not(feature = "vault"))]
        "vault" => Err(not_built("vault")),
        #[cfg(not(feature = "pkcs11"))]
        "pkcs11" => Err(not_built("pkcs11")),
        #[cfg(not(feature = "kmip"))]
        "kmip" => Err(not_built("kmip")),
        other => Err(format!(
            "unknown remote provider {other:?} (vault, pkcs11, kmip)"
        )),
    }
}

/// The error for a provider this build leaves out: names the cargo feature that adds it.
#[cfg(not(all(feature = "vault", feature = "pkcs11", feature = "kmip")))]
fn not_built(feature: &str) -> String {
    format!(
        "--provider {feature}: this build has no {feature} support; rebuild with `cargo build --release --features {feature}` (see docs/providers.md)"
    )
}

/// `provider` behind the default retry policy and circuit breaker.
#[cfg(any(feature = "vault", feature = "pkcs11", feature = "kmip"))]
fn resilient<P: KekProvider>(provider: P) -> Box<dyn KekProvider> {
    use kms_plugin_core::kek::resilience::{BreakerConfig, RetryPolicy};
    Box::new(super::resilient::ResilientProvider::new(
        provider,
        RetryPolicy::default(),
        BreakerConfig::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn provider_flags_are_taken_out_and_the_rest_kept_in_order() {
        let (flags, rest) = ProviderFlags::take_from_args(args(&[
            "serve",
            "--vault-addr",
            "https://v:8200",
            "--listen=/run/kms.sock",
            "--transit-mount=kms/transit",
            "--token-file",
            "/run/token",
            "-v",
        ]))
        .unwrap();
        assert_eq!(rest, args(&["serve", "--listen=/run/kms.sock", "-v"]));
        assert_eq!(flags.vault_addr.as_deref(), Some("https://v:8200"));
        assert_eq!(flags.transit_mount.as_deref(), Some("kms/transit"));
        assert_eq!(flags.token_file, Some(PathBuf::from("/run/token")));
    }

    #[test]
    fn secrets_on_the_command_line_and_missing_values_are_refused() {
        for bad in [
            &["--token", "x"][..],
            &["--pin=1234"],
            &["--vault-addr"],
            &["--ca-file="],
        ] {
            assert!(ProviderFlags::take_from_args(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[cfg(not(feature = "vault"))]
    #[test]
    fn providers_left_out_of_the_build_say_which_feature_adds_them() {
        let env = |k: &str| (k == "KMS_KEY_ID").then(|| "kms".to_owned());
        let err = build("vault", &ProviderFlags::default(), &env)
            .err()
            .unwrap();
        assert!(err.contains("--features vault"), "{err}");
        #[cfg(not(feature = "pkcs11"))]
        {
            let err = build("pkcs11", &ProviderFlags::default(), &env)
                .err()
                .unwrap();
            assert!(err.contains("--features pkcs11"), "{err}");
        }
        #[cfg(not(feature = "kmip"))]
        {
            let err = build("kmip", &ProviderFlags::default(), &env)
                .err()
                .unwrap();
            assert!(err.contains("--features kmip"), "{err}");
        }
    }

    #[cfg(feature = "vault")]
    #[test]
    fn vault_config_from_flags_and_env() {
        let env = |k: &str| match k {
            "KMS_KEY_ID" => Some("kms".to_owned()),
            "KMS_USER_ID" => Some("hvs.x".to_owned()),
            "VAULT_ADDR" => Some("https://env:8200".to_owned()),
            _ => None,
        };
        let cfg = vault_config(&ProviderFlags::default(), &env).unwrap();
        assert_eq!(cfg.addr, "https://env:8200");
        assert_eq!(cfg.mount, "transit");
        assert_eq!(cfg.key, "kms");
        assert!(matches!(cfg.token, TokenSource::Value(_)));
        let flags = ProviderFlags {
            vault_addr: Some("http://flag:8200".into()),
            token_file: Some("/t".into()),
            ..ProviderFlags::default()
        };
        let err = vault_config(&flags, &env).err().unwrap();
        assert!(err.contains("not both"), "{err}");
        let no_token = |k: &str| (k == "KMS_KEY_ID").then(|| "kms".to_owned());
        // Plain http only when asked for by name.
        let err = vault_config(&flags, &no_token).err().unwrap();
        assert!(err.contains("--vault-insecure-http"), "{err}");
        let flags = ProviderFlags {
            vault_insecure_http: true,
            ..flags
        };
        let cfg = vault_config(&flags, &no_token).unwrap();
        assert_eq!(cfg.addr, "http://flag:8200");
        assert!(matches!(cfg.token, TokenSource::File(_)));
        assert!(vault_config(&ProviderFlags::default(), &no_token).is_err());
        assert!(build("vault", &flags, &no_token).is_ok());
        assert!(build("nope", &flags, &no_token).is_err());
    }

    #[cfg(feature = "kmip")]
    #[test]
    fn kmip_config_needs_addr_certificates_and_a_password_file_with_a_username() {
        let (flags, rest) = ProviderFlags::take_from_args(args(&[
            "--kmip-addr",
            "kmip.example:5696",
            "--kmip-client-cert=/c.pem",
            "--kmip-client-key",
            "/c.key",
            "--ca-file",
            "/ca.pem",
            "--kmip-mode",
            "gcm",
        ]))
        .unwrap();
        assert!(rest.is_empty());
        let key_only = |k: &str| (k == "KMS_KEY_ID").then(|| "kube-kms".to_owned());
        let cfg = kmip_config(&flags, &key_only).unwrap();
        assert_eq!(cfg.addr, "kmip.example:5696");
        assert!(cfg.credential.is_none());
        assert_eq!(cfg.mode, Some(kms_plugin_core::kek::kmip::WrapMode::Gcm));
        let with_user = |k: &str| match k {
            "KMS_KEY_ID" => Some("kube-kms".to_owned()),
            "KMS_USER_ID" => Some("alice".to_owned()),
            _ => None,
        };
        let err = kmip_config(&flags, &with_user).err().unwrap();
        assert!(err.contains("--kmip-password-file"), "{err}");
        let with_password = ProviderFlags {
            kmip_password_file: Some("/pw".into()),
            ..flags.clone()
        };
        let cfg = kmip_config(&with_password, &with_user).unwrap();
        assert_eq!(cfg.credential.map(|c| c.0).as_deref(), Some("alice"));
        let err = kmip_config(&with_password, &key_only).err().unwrap();
        assert!(err.contains("KMS_USER_ID"), "{err}");
        for (field, needle) in [
            (
                ProviderFlags {
                    kmip_addr: None,
                    ..flags.clone()
                },
                "--kmip-addr",
            ),
            (
                ProviderFlags {
                    ca_file: None,
                    ..flags.clone()
                },
                "--ca-file",
            ),
            (
                ProviderFlags {
                    kmip_client_key: None,
                    ..flags.clone()
                },
                "--kmip-client-key",
            ),
            (
                ProviderFlags {
                    kmip_mode: Some("cbc".into()),
                    ..flags.clone()
                },
                "--kmip-mode",
            ),
        ] {
            let err = kmip_config(&field, &key_only).err().unwrap();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert!(ProviderFlags::take_from_args(args(&["--password", "x"])).is_err());
    }
}
