//! [`compare`]: what a new EncryptionConfiguration would make unreadable, judged against the
//! configuration in use before it (`kms-plugin check-config --previous OLD NEW`).
//!
//! kube-apiserver reads a stored value with the provider its prefix names, among the
//! providers of the first `resources` entry that lists the resource:
//! `k8s:enc:kms:<api>:<name>:` (KMS), `k8s:enc:<aescbc|aesgcm|secretbox>:v1:<key name>:`
//! (local keys), no prefix for `identity` (plaintext). So every reader of the previous file is
//! something data may be stored under. The comparison warns, per resource, when the new file
//! - drops a reader (a KMS name, a local key, identity): values under it become unreadable;
//! - keeps a KMS name but points it at another endpoint: values under it go to whatever
//!   listens there, which cannot decrypt them unless it is the same plugin moved;
//! - keeps a local key name with other key material (compared, never shown);
//! - stops listing a resource whose values the previous file encrypted.
//!
//! It sees only the two files, not etcd: a dropped reader is fine once every value has been
//! rewritten and checked (docs/migrate.md), which is why these are warnings.

use std::collections::BTreeMap;

use yaml_rust2::{Yaml, YamlLoader};

use super::checker::hash_get;
use super::{Finding, Severity};

/// One way stored values can be read, and what it takes to read them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reader {
    /// `kms` provider: prefix `k8s:enc:kms:<api>:<name>:`, read through `endpoint`.
    Kms {
        api: String,
        name: String,
        endpoint: String,
    },
    /// One key of an aescbc/aesgcm/secretbox provider: prefix `k8s:enc:<kind>:v1:<name>:`.
    LocalKey {
        kind: String,
        name: String,
        /// The key material as written (compared only, never printed).
        secret: String,
    },
    /// `identity`: plaintext values, no prefix.
    Identity,
}

impl Reader {
    /// The stored-value prefix this reader answers to (what its values start with).
    fn prefix(&self) -> String {
        match self {
            Self::Kms { api, name, .. } => format!("k8s:enc:kms:{api}:{name}:"),
            Self::LocalKey { kind, name, .. } => format!("k8s:enc:{kind}:v1:{name}:"),
            Self::Identity => "(no prefix: plaintext)".to_string(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Kms { name, endpoint, .. } => format!("kms provider {name:?} ({endpoint})"),
            Self::LocalKey { kind, name, .. } => format!("{kind} key {name:?}"),
            Self::Identity => "identity".to_string(),
        }
    }
}

/// The readers of each resource, in file order, from the first entry listing it.
type Readers = BTreeMap<String, Vec<Reader>>;

fn string(value: Option<&Yaml>) -> Option<String> {
    match value? {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn provider_readers(provider: &Yaml, out: &mut Vec<Reader>) {
    let Yaml::Hash(map) = provider else { return };
    for (kind, body) in map {
        let Some(kind) = kind.as_str() else { continue };
        let body_map = match body {
            Yaml::Hash(m) => Some(m),
            _ => None,
        };
        match kind {
            "kms" => {
                let Some(m) = body_map else { continue };
                let (Some(name), Some(endpoint)) =
                    (string(hash_get(m, "name")), string(hash_get(m, "endpoint")))
                else {
                    continue;
                };
                let api = string(hash_get(m, "apiVersion")).unwrap_or_else(|| "v1".into());
                out.push(Reader::Kms {
                    api,
                    name,
                    endpoint,
                });
            }
            "aescbc" | "aesgcm" | "secretbox" => {
                let Some(Yaml::Array(keys)) = body_map.and_then(|m| hash_get(m, "keys")) else {
                    continue;
                };
                for key in keys {
                    let Yaml::Hash(k) = key else { continue };
                    if let Some(name) = string(hash_get(k, "name")) {
                        out.push(Reader::LocalKey {
                            kind: kind.to_string(),
                            name,
                            secret: string(hash_get(k, "secret")).unwrap_or_default(),
                        });
                    }
                }
            }
            "identity" => out.push(Reader::Identity),
            _ => {}
        }
    }
}

/// Readers per resource, or a one-line reason the file cannot be read as a configuration.
fn readers(yaml: &str) -> Result<Readers, String> {
    let docs = YamlLoader::load_from_str(yaml).map_err(|e| format!("not valid YAML: {e}"))?;
    let Some(Yaml::Hash(top)) = docs.first() else {
        return Err("not an EncryptionConfiguration mapping".into());
    };
    let Some(Yaml::Array(entries)) = hash_get(top, "resources") else {
        return Err("no `resources` list".into());
    };
    let mut out = Readers::new();
    for entry in entries {
        let Yaml::Hash(entry) = entry else { continue };
        let mut list = Vec::new();
        if let Some(Yaml::Array(providers)) = hash_get(entry, "providers") {
            for provider in providers {
                provider_readers(provider, &mut list);
            }
        }
        if let Some(Yaml::Array(resources)) = hash_get(entry, "resources") {
            for resource in resources.iter().filter_map(Yaml::as_str) {
                // The first entry naming a resource is the one kube-apiserver uses.
                out.entry(resource.to_string())
                    .or_insert_with(|| list.clone());
            }
        }
    }
    Ok(out)
}

/// The readers `next` uses for `resource`: its own entry, else a `*.*` entry, else none
/// (kube-apiserver then reads only plaintext).
fn next_readers<'a>(next: &'a Readers, resource: &str) -> Option<&'a Vec<Reader>> {
    next.get(resource).or_else(|| next.get("*.*"))
}

/// Warnings for every way `next` would leave data written under `previous` unreadable (see
/// the module doc); an error finding when either file cannot be read at all.
pub fn compare(previous: &str, next: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut push = |severity, path: String, message: String| {
        findings.push(Finding {
            severity,
            path,
            message,
        });
    };
    let (old, new) = match (readers(previous), readers(next)) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(e), _) => {
            push(
                Severity::Error,
                "<previous>".into(),
                format!("{e}; pass the configuration kube-apiserver used before"),
            );
            return findings;
        }
        (_, Err(e)) => {
            push(Severity::Error, "<document>".into(), e);
            return findings;
        }
    };
    for (resource, old_readers) in &old {
        let encrypted = old_readers.iter().any(|r| *r != Reader::Identity);
        let path = format!("resources[{resource}]");
        let Some(new_readers) = next_readers(&new, resource) else {
            if encrypted {
                push(
                    Severity::Warning,
                    path,
                    format!(
                        "no longer listed: kube-apiserver would read {resource} as plaintext, and every value the previous configuration encrypted becomes unreadable; keep the entry until every value is rewritten (docs/migrate.md)"
                    ),
                );
            }
            continue;
        };
        for reader in old_readers {
            if new_readers.contains(reader) {
                continue;
            }
            let message = match reader {
                Reader::Kms {
                    api,
                    name,
                    endpoint,
                } => {
                    let moved = new_readers.iter().find_map(|r| match r {
                        Reader::Kms {
                            api: a,
                            name: n,
                            endpoint: e,
                        } if a == api && n == name => Some(e),
                        _ => None,
                    });
                    match moved {
                        Some(to) => format!(
                            "kms provider name {name:?} now points at {to} (was {endpoint}): values stored under {} go there, and unless that is the same plugin with the same keys they cannot be decrypted; give a new plugin a new name (docs/migrate.md)",
                            reader.prefix()
                        ),
                        None => removed(reader),
                    }
                }
                Reader::LocalKey { kind, name, .. } => {
                    let changed = new_readers.iter().any(|r| {
                        matches!(r,
                        Reader::LocalKey { kind: k, name: n, .. } if k == kind && n == name)
                    });
                    if changed {
                        format!(
                            "{kind} key {name:?} has other key material than before: values stored under {} cannot be decrypted with it; add new keys under new names",
                            reader.prefix()
                        )
                    } else {
                        removed(reader)
                    }
                }
                Reader::Identity => removed(reader),
            };
            push(Severity::Warning, path.clone(), message);
        }
    }
    findings
}

fn removed(reader: &Reader) -> String {
    let what = match reader {
        Reader::Identity => {
            "values stored before encryption was enabled (plaintext) become unreadable".to_string()
        }
        _ => format!("values stored under {} become unreadable", reader.prefix()),
    };
    format!(
        "{} is no longer in the list: {what}; remove it only after every value is rewritten and no value in etcd keeps that prefix (docs/migrate.md)",
        reader.describe()
    )
}
