//! Bakes the build's identity into the binary for `kms-plugin --version` and `kms-plugin
//! version`: the git commit and the providers compiled in.
//!
//! The commit comes from `KMS_PLUGIN_GIT_COMMIT` when set (container builds, whose context
//! has no `.git`: `docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD)`), else from
//! `git rev-parse HEAD`, else "unknown": a build outside git (a source tarball, a crates.io
//! download) never fails for the lack of it.

#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Re-runs this script when HEAD moves (a commit, a checkout), where those files exist.
fn watch_git_head() {
    let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    let git_dir = PathBuf::from(git_dir);
    let common = git(&["rev-parse", "--git-common-dir"]).map_or_else(
        || git_dir.clone(),
        |c| {
            let c = PathBuf::from(c);
            if c.is_absolute() {
                c
            } else {
                Path::new(&env("CARGO_MANIFEST_DIR").unwrap_or_default()).join(c)
            }
        },
    );
    let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git_dir.join(&reference));
        watched.push(common.join(&reference));
    }
    for path in watched.into_iter().filter(|p| p.is_file()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=KMS_PLUGIN_GIT_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    // Where the commit came from: "env", "git" or "none" (tests compare "git" with HEAD).
    let (commit, source) = if let Some(c) = env("KMS_PLUGIN_GIT_COMMIT") {
        (c, "env")
    } else {
        watch_git_head();
        git(&["rev-parse", "HEAD"]).map_or_else(|| ("unknown".into(), "none"), |c| (c, "git"))
    };
    println!("cargo:rustc-env=KMS_PLUGIN_GIT_COMMIT_SOURCE={source}");
    // Only characters that need no escaping in the version line or in JSON.
    let commit: String = commit
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '+'))
        .take(64)
        .collect();
    let mut providers = vec!["local"];
    if env("CARGO_FEATURE_VAULT").is_some() {
        providers.push("vault");
    }
    if env("CARGO_FEATURE_PKCS11").is_some() {
        providers.push("pkcs11");
    }
    if env("CARGO_FEATURE_KMIP").is_some() {
        providers.push("kmip");
    }
    let target = env("TARGET").unwrap_or_else(|| "unknown".into());
    let version = env("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=KMS_PLUGIN_GIT_COMMIT={commit}");
    println!(
        "cargo:rustc-env=KMS_PLUGIN_PROVIDERS={}",
        providers.join(",")
    );
    println!("cargo:rustc-env=KMS_PLUGIN_TARGET={target}");
    println!(
        "cargo:rustc-env=KMS_PLUGIN_VERSION_LINE={version} (commit {commit}; providers: {}; target {target})",
        providers.join(", ")
    );
}
