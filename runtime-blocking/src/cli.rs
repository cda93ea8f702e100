//! The `kms-plugin` command line, on clap (derive): [`args`] declares every command, flag,
//! default and environment variable; [`commands`] runs them; this module turns argv into a
//! [`args::Cli`] and clap's errors into one line naming the flag and the fix (exit 2).
//!
//! Commands: `serve` (the default: `kms-plugin --listen X` is `kms-plugin serve --listen X`),
//! `keys init|rotate|stage|promote|list|status`, `probe`, `encryption-config`, `check-config FILE`, `version`,
//! `completions SHELL`, `help`. `-h`/`--help` work on every command, `--version` everywhere.
//!
//! Adding a provider (a small, local change):
//! 1. its flags: an `Args` struct in [`args`] flattened into `ServeArgs` (with
//!    `next_help_heading`), each flag with `env = "KMS_PLUGIN_..."`;
//! 2. its name in [`args::ProviderName`]; a remote provider (network/HSM): a field per flag in
//!    [`crate::provider::remote::ProviderFlags`], filled in [`commands::build_provider`], and a
//!    match arm in [`crate::provider::remote::build`] (wrapped in the resilience layer there);
//! 3. its cargo feature in `build.rs`'s provider list (shown by `--version`).
//!
//! Secrets never come from argv: `KMS_USER_ID` (environment) or a `--*-file` flag.
//! Nothing else parses arguments.

pub mod args;
pub mod commands;
pub mod version;

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

use args::{Cli, Command};

/// Exit code for bad usage or configuration.
pub const EXIT_USAGE: i32 = 2;

/// Whether `--long` takes a value in any command (flags are spelled alike everywhere).
fn takes_value(root: &clap::Command, long: &str) -> bool {
    root.get_arguments()
        .chain(
            root.get_subcommands()
                .flat_map(clap::Command::get_arguments),
        )
        .chain(
            root.get_subcommands()
                .flat_map(clap::Command::get_subcommands)
                .flat_map(clap::Command::get_arguments),
        )
        .any(|a| a.get_long() == Some(long) && a.get_action().takes_values())
}

/// Puts the command first, as clap expects: `kms-plugin` alone or with flags only serves, and
/// flags written before the command (`kms-plugin --key-file K keys list`, which the earlier
/// parser accepted) move behind it.
fn with_default_command(root: &clap::Command, argv: &[String]) -> Vec<String> {
    let mut full = Vec::with_capacity(argv.len() + 2);
    full.push("kms-plugin".to_string());
    let leading_flag = argv.first().is_some_and(|first| {
        first.starts_with('-') && !matches!(first.as_str(), "-h" | "--help" | "-V" | "--version")
    });
    if argv.is_empty() {
        full.push("serve".to_string());
        return full;
    }
    if !leading_flag {
        full.extend_from_slice(argv);
        return full;
    }
    // The first token that is not a flag or a flag's value.
    let mut i = 0;
    let command_at = loop {
        let Some(token) = argv.get(i) else { break None };
        match token.strip_prefix("--") {
            Some(long) if !long.contains('=') && takes_value(root, long) => i += 2,
            Some(_) => i += 1,
            None if token.starts_with('-') => i += 1,
            None => break Some(i),
        }
    };
    let Some(at) = command_at.filter(|&at| root.find_subcommand(&argv[at]).is_some()) else {
        full.push("serve".to_string());
        full.extend_from_slice(argv);
        return full;
    };
    let mut rest = argv.to_vec();
    let command = rest.remove(at);
    let nested = root.find_subcommand(&command).is_some_and(|c| {
        rest.get(at)
            .is_some_and(|next| c.find_subcommand(next).is_some())
    });
    full.push(command);
    if nested {
        full.push(rest.remove(at));
    }
    full.extend(rest);
    full
}

/// Parses `argv` (without the program name). Errors are one line naming the flag and the fix;
/// `--help` and `--version` come back as `Err` too (their text, multi-line).
pub fn parse(argv: &[String]) -> Result<Cli, String> {
    parse_full(argv).map_err(|e| e.1)
}

/// As [`parse`], with the exit code a failure ends the process with (0 for help/version).
fn parse_full(argv: &[String]) -> Result<Cli, (i32, String)> {
    let mut command = Cli::command();
    let full = with_default_command(&command, argv);
    let matches = command
        .try_get_matches_from_mut(&full)
        .map_err(|e| render_error(&e, &command, &full))?;
    Cli::from_arg_matches(&matches).map_err(|e| render_error(&e, &command, &full))
}

/// The subcommand names given in `argv` (program name first), outermost first, e.g.
/// `["keys", "init"]`; flag values are skipped.
fn command_path(root: &clap::Command, argv: &[String]) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = root;
    let mut tokens = argv.iter().skip(1);
    while let Some(token) = tokens.next() {
        if token == "--" {
            break;
        }
        if let Some(long) = token.strip_prefix("--") {
            let takes_value = current
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .is_some_and(|a| a.get_action().takes_values());
            if takes_value && !long.contains('=') {
                tokens.next();
            }
            continue;
        }
        if token.starts_with('-') {
            continue;
        }
        match current.find_subcommand(token) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                current = sub;
            }
            None => break,
        }
    }
    path
}

/// Every command path (e.g. `keys init`) that has the long flag `long`.
fn commands_with_flag(command: &clap::Command, prefix: &str, long: &str, out: &mut Vec<String>) {
    for sub in command.get_subcommands() {
        let path = format!("{prefix}{}", sub.get_name()).trim().to_string();
        if sub.get_arguments().any(|a| a.get_long() == Some(long)) {
            out.push(path.clone());
        }
        commands_with_flag(sub, &format!("{path} "), long, out);
    }
}

/// The subcommands of the command at `path` (without clap's `help`).
fn subcommand_names<'a>(root: &'a clap::Command, path: &[String]) -> Vec<&'a str> {
    path.iter()
        .try_fold(root, |c, name| c.find_subcommand(name))
        .map(|c| {
            c.get_subcommands()
                .map(clap::Command::get_name)
                .filter(|n| *n != "help")
                .collect()
        })
        .unwrap_or_default()
}

fn context(err: &clap::Error, kind: ContextKind) -> Option<String> {
    match err.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join(", ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::StyledStrs(v) => Some(
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ContextValue::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `--help` and `--version` text as clap renders it (exit 0); every other error as one line
/// (exit 2) that names the flag, value or command and says how to fix it.
fn render_error(err: &clap::Error, root: &clap::Command, argv: &[String]) -> (i32, String) {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        return (0, err.render().to_string());
    }
    let path = command_path(root, argv);
    let cmd = if path.is_empty() {
        "kms-plugin".to_string()
    } else {
        path.join(" ")
    };
    let see = if path.is_empty() {
        "see kms-plugin --help".to_string()
    } else {
        format!("see kms-plugin {} --help", path.join(" "))
    };
    let invalid_arg = context(err, ContextKind::InvalidArg).unwrap_or_default();
    // "--timeout <SECONDS>" -> "--timeout"
    let flag = invalid_arg
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let value = context(err, ContextKind::InvalidValue).unwrap_or_default();
    let suggestion = context(err, ContextKind::SuggestedArg)
        .or_else(|| context(err, ContextKind::SuggestedSubcommand))
        .map(|s| format!(" (did you mean {s}?)"))
        .unwrap_or_default();
    // A bad value that came from the environment: say which variable.
    let from_env = (!flag.is_empty()
        && !argv
            .iter()
            .any(|a| a == &flag || a.starts_with(&format!("{flag}="))))
    .then(|| {
        let current = path
            .iter()
            .try_fold(root, |c, name| c.find_subcommand(name))?;
        let long = flag.trim_start_matches('-');
        let arg = current
            .get_arguments()
            .find(|a| a.get_long() == Some(long))?;
        Some(format!(
            " (from the environment variable {})",
            arg.get_env()?.to_string_lossy()
        ))
    })
    .flatten()
    .unwrap_or_default();
    let line = match err.kind() {
        ErrorKind::UnknownArgument if flag.starts_with('-') => {
            let long = flag.trim_start_matches('-').split('=').next().unwrap_or("");
            let mut owners = Vec::new();
            commands_with_flag(root, "", long, &mut owners);
            if owners.is_empty() || flag.starts_with("---") || !flag.starts_with("--") {
                format!("unknown flag {flag} for `{cmd}`{suggestion} ({see})")
            } else {
                format!(
                    "{flag} does not apply to `{cmd}`; it is a flag of `{}` ({see})",
                    owners.join("`, `")
                )
            }
        }
        ErrorKind::UnknownArgument => {
            format!("unexpected argument {invalid_arg:?} for `{cmd}` ({see})")
        }
        ErrorKind::InvalidSubcommand => {
            let given = context(err, ContextKind::InvalidSubcommand).unwrap_or_default();
            let valid = subcommand_names(root, &path).join(", ");
            let what = if path.is_empty() {
                "command".to_string()
            } else {
                format!("{cmd} subcommand")
            };
            format!("unknown {what} {given:?}{suggestion}; use one of: {valid}")
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let valid = subcommand_names(root, &path).join(", ");
            format!("`{cmd}` needs a subcommand: {valid} ({see})")
        }
        ErrorKind::MissingRequiredArgument => {
            format!("`{cmd}` needs {invalid_arg} ({see})")
        }
        ErrorKind::InvalidValue => {
            let valid = context(err, ContextKind::ValidValue).unwrap_or_default();
            if value.is_empty() && valid.is_empty() {
                format!("{flag} needs a value ({see})")
            } else if value.is_empty() {
                format!("{flag} needs a value: one of {valid}")
            } else {
                format!("{flag} {value:?}{from_env}: not a valid value; use one of {valid}")
            }
        }
        ErrorKind::ValueValidation => {
            let reason = std::error::Error::source(err)
                .map_or_else(|| "invalid value".into(), ToString::to_string);
            if reason.starts_with(&flag) {
                format!("{reason}{from_env}")
            } else {
                format!("{flag} {value:?}{from_env}: {reason}")
            }
        }
        _ => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            format!("{} ({see})", first.trim_start_matches("error: "))
        }
    };
    (EXIT_USAGE, line)
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
    let cli = match parse_full(&argv) {
        Ok(cli) => cli,
        Err((0, text)) => {
            print!("{text}");
            return 0;
        }
        Err((code, line)) => {
            eprintln!("kms-plugin: error: {line}");
            return code;
        }
    };
    let result = match &cli.command {
        Command::Serve(args) => commands::serve(args).map(|()| 0),
        Command::Keys(keys) => commands::keys(keys).map(|()| 0),
        Command::Probe(args) => Ok(commands::probe(args)),
        Command::EncryptionConfig(args) => Ok(commands::encryption_config(args)),
        Command::CheckConfig(args) => commands::check_config(args),
        Command::Version(args) => {
            match args.output {
                args::OutputFormat::Text => println!("kms-plugin {}", version::LINE),
                args::OutputFormat::Json => println!("{}", version::json()),
            }
            Ok(0)
        }
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "kms-plugin",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kms-plugin: error: {e}");
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::args::{Cli, ENV_PREFIX};

    /// Every flag of every command has its environment variable, named from the flag:
    /// `--some-flag` is `KMS_PLUGIN_SOME_FLAG` (the documented rule), except the ones that must
    /// be typed (`keys init --force`) and clap's own `--help`/`--version`.
    #[test]
    fn every_flag_has_its_kms_plugin_environment_variable() {
        fn walk(command: &clap::Command, path: &str, checked: &mut usize) {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if matches!(long, "help" | "version") || (path == "keys init" && long == "force") {
                    continue;
                }
                let expected = format!("{ENV_PREFIX}{}", long.to_uppercase().replace('-', "_"));
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert_eq!(
                    env.as_deref(),
                    Some(expected.as_str()),
                    "`{path} --{long}` needs env = \"{expected}\""
                );
                *checked += 1;
            }
            for sub in command.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                walk(sub, sub_path.trim(), checked);
            }
        }
        let mut checked = 0;
        walk(&Cli::command(), "", &mut checked);
        assert!(checked > 30, "{checked} flags checked");
    }

    #[test]
    fn the_clap_declarations_are_consistent() {
        Cli::command().debug_assert();
    }
}
