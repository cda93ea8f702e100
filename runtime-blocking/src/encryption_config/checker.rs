//! The document walk: top level, `resources` entries, providers, local-key providers,
//! identity position, and the endpoint match. KMS fields are in `kms.rs`.

use std::collections::BTreeSet;

use yaml_rust2::Yaml;

use super::endpoint::Socket;
use super::{CONFIG_API_VERSION, CONFIG_KIND, Finding, KMS_FIELDS, PROVIDER_KINDS, Severity};

/// One KMS provider seen so far.
pub(super) struct KmsSeen {
    pub(super) endpoint_path: String,
    /// `None` when missing or invalid (already reported).
    pub(super) endpoint: Option<String>,
}

#[derive(Default)]
pub(super) struct Checker {
    pub(super) findings: Vec<Finding>,
    pub(super) kms_names: BTreeSet<String>,
    pub(super) kms: Vec<KmsSeen>,
    /// Provider entries with a `kms` key, valid or not.
    kms_entries: usize,
}

pub(super) fn hash_get<'y>(map: &'y yaml_rust2::yaml::Hash, key: &str) -> Option<&'y Yaml> {
    map.get(&Yaml::String(key.to_string()))
}

pub(super) fn key_name(key: &Yaml) -> String {
    match key {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

pub(super) fn type_name(value: &Yaml) -> &'static str {
    match value {
        Yaml::Real(_) => "a number",
        Yaml::Integer(_) => "an integer",
        Yaml::String(_) => "a string",
        Yaml::Boolean(_) => "a boolean",
        Yaml::Array(_) => "a list",
        Yaml::Hash(_) => "a mapping",
        Yaml::Null => "null (empty)",
        Yaml::Alias(_) | Yaml::BadValue => "an unsupported value",
    }
}

impl Checker {
    fn push(&mut self, severity: Severity, path: &str, message: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, path, message);
    }

    pub(super) fn warning(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, path, message);
    }

    /// Flags keys outside `allowed` (kube-apiserver decodes strictly: `unknown field`).
    pub(super) fn unknown_fields(
        &mut self,
        map: &yaml_rust2::yaml::Hash,
        prefix: &str,
        allowed: &[&str],
    ) {
        for key in map.keys() {
            let name = key_name(key);
            if allowed.contains(&name.as_str()) {
                continue;
            }
            let path = join(prefix, &name);
            let hint = match name.as_str() {
                "keyID" | "keyId" | "key_id" | "keyid" => {
                    "the key id is not configured here: the plugin reports it in Status; remove the field".to_string()
                }
                "cacheSize" | "cache_size" => "the field is spelled `cachesize` (and is v1 only)".to_string(),
                "apiversion" | "api_version" => "the field is spelled `apiVersion`".to_string(),
                _ => format!("allowed here: {}", allowed.join(", ")),
            };
            self.error(
                &path,
                format!("unknown field `{name}` (kube-apiserver decodes this file strictly and refuses it); {hint}"),
            );
        }
    }

    pub(super) fn document(&mut self, doc: &Yaml) {
        let Yaml::Hash(top) = doc else {
            self.error(
                "<document>",
                format!(
                    "the document is {}, not a mapping; start with `apiVersion: {CONFIG_API_VERSION}` and `kind: {CONFIG_KIND}`",
                    type_name(doc)
                ),
            );
            return;
        };
        match hash_get(top, "apiVersion") {
            Some(Yaml::String(v)) if v == CONFIG_API_VERSION => {}
            Some(v) => self.error(
                "apiVersion",
                format!(
                    "is {}, expected `{CONFIG_API_VERSION}`; set `apiVersion: {CONFIG_API_VERSION}`",
                    shown(v)
                ),
            ),
            None => self.error(
                "apiVersion",
                format!("missing; add `apiVersion: {CONFIG_API_VERSION}`"),
            ),
        }
        match hash_get(top, "kind") {
            Some(Yaml::String(v)) if v == CONFIG_KIND => {}
            Some(v) => self.error(
                "kind",
                format!(
                    "is {}, expected `{CONFIG_KIND}`; set `kind: {CONFIG_KIND}`",
                    shown(v)
                ),
            ),
            None => self.error("kind", format!("missing; add `kind: {CONFIG_KIND}`")),
        }
        self.unknown_fields(top, "", &["apiVersion", "kind", "resources"]);
        match hash_get(top, "resources") {
            Some(Yaml::Array(list)) if !list.is_empty() => {
                for (i, entry) in list.iter().enumerate() {
                    self.resource_entry(entry, &format!("resources[{i}]"));
                }
            }
            Some(Yaml::Array(_) | Yaml::Null) | None => self.error(
                "resources",
                "at least one resources entry is required; add `resources: [{resources: [secrets], providers: [...]}]`",
            ),
            Some(v) => self.error(
                "resources",
                format!("is {}, expected a list of {{resources, providers}} entries", type_name(v)),
            ),
        }
        if self.kms_entries == 0 {
            self.warning(
                "resources",
                "no kms provider: nothing in this file uses a KMS plugin; add a `kms:` provider first in the list",
            );
        }
    }

    fn resource_entry(&mut self, entry: &Yaml, path: &str) {
        let Yaml::Hash(map) = entry else {
            self.error(
                path,
                format!(
                    "is {}, expected a mapping with `resources` and `providers`",
                    type_name(entry)
                ),
            );
            return;
        };
        self.unknown_fields(map, path, &["resources", "providers"]);
        let res_path = join(path, "resources");
        match hash_get(map, "resources") {
            Some(Yaml::Array(list)) if !list.is_empty() => {
                for (i, r) in list.iter().enumerate() {
                    match r {
                        Yaml::String(s) if !s.is_empty() => {}
                        other => self.error(
                            &format!("{res_path}[{i}]"),
                            format!(
                                "is {}, expected a resource name such as `secrets` or `*.*`",
                                type_name(other)
                            ),
                        ),
                    }
                }
            }
            _ => self.error(
                &res_path,
                "at least one resource is required; add e.g. `resources: [secrets]`",
            ),
        }
        let prov_path = join(path, "providers");
        match hash_get(map, "providers") {
            Some(Yaml::Array(list)) if !list.is_empty() => {
                for (j, p) in list.iter().enumerate() {
                    self.provider(p, &format!("{prov_path}[{j}]"));
                }
                self.identity_position(list, &prov_path);
            }
            _ => self.error(
                &prov_path,
                "at least one provider is required; add `providers: [{kms: {...}}, {identity: {}}]`",
            ),
        }
    }

    fn provider(&mut self, provider: &Yaml, path: &str) {
        let Yaml::Hash(map) = provider else {
            self.error(
                path,
                format!(
                    "is {}, expected a mapping with exactly one of {}",
                    type_name(provider),
                    PROVIDER_KINDS.join(", ")
                ),
            );
            return;
        };
        let kinds: Vec<&str> = PROVIDER_KINDS
            .iter()
            .copied()
            .filter(|k| hash_get(map, k).is_some())
            .collect();
        let misplaced_kms = KMS_FIELDS.iter().any(|f| hash_get(map, f).is_some());
        for key in map.keys() {
            let name = key_name(key);
            if PROVIDER_KINDS.contains(&name.as_str()) {
                continue;
            }
            let field = join(path, &name);
            if KMS_FIELDS.contains(&name.as_str()) {
                self.error(
                    &field,
                    format!("unknown field `{name}` at the provider level; it belongs under `kms:`: indent it two spaces deeper than `kms:`"),
                );
            } else {
                self.unknown_fields_one(&field, &name);
            }
        }
        if kinds.contains(&"kms") {
            self.kms_entries += 1;
        }
        if kinds.len() > 1 {
            self.error(
                path,
                format!(
                    "more than one provider ({}) in a single element; split them into separate list items, each starting with `-`",
                    kinds.join(", ")
                ),
            );
            return;
        }
        let Some(kind) = kinds.first() else {
            self.error(
                path,
                "provider does not contain any of the expected providers: kms, aesgcm, aescbc, secretbox, identity",
            );
            return;
        };
        let value = hash_get(map, kind).unwrap_or(&Yaml::Null);
        let inner = join(path, kind);
        match (*kind, value) {
            ("kms", Yaml::Hash(kms)) => self.kms(kms, &inner),
            ("kms", Yaml::Null) => {
                let why = if misplaced_kms {
                    "its fields are not indented under it"
                } else {
                    "it has no fields"
                };
                self.error(
                    &inner,
                    format!("`kms:` is null ({why}), so kube-apiserver sees no provider; indent apiVersion, name, endpoint and timeout two spaces deeper than `kms:`"),
                );
            }
            ("identity", Yaml::Hash(id)) => self.unknown_fields(id, &inner, &[]),
            ("identity", Yaml::Null) => self.error(
                &inner,
                "`identity:` is null, so kube-apiserver sees no provider; write `identity: {}`",
            ),
            // AES key sizes (crypto/aes.NewCipher) and the secretbox key size.
            ("aescbc" | "aesgcm", Yaml::Hash(keys)) => self.local_keys(keys, &inner, &[16, 24, 32]),
            ("secretbox", Yaml::Hash(keys)) => self.local_keys(keys, &inner, &[32]),
            (_, other) => self.error(
                &inner,
                format!("is {}, expected a mapping", type_name(other)),
            ),
        }
    }

    fn unknown_fields_one(&mut self, path: &str, name: &str) {
        self.error(
            path,
            format!(
                "unknown field `{name}` (kube-apiserver decodes this file strictly and refuses it); allowed here: {}",
                PROVIDER_KINDS.join(", ")
            ),
        );
    }

    /// `aescbc`/`aesgcm`/`secretbox`: `keys` present, each with a name and a base64 secret of
    /// an allowed length (`validateKey`). The secret itself is never quoted.
    fn local_keys(&mut self, map: &yaml_rust2::yaml::Hash, path: &str, sizes: &[usize]) {
        self.unknown_fields(map, path, &["keys"]);
        let keys_path = join(path, "keys");
        let Some(Yaml::Array(keys)) =
            hash_get(map, "keys").filter(|k| !matches!(k, Yaml::Array(v) if v.is_empty()))
        else {
            self.error(&keys_path, "at least one key is required");
            return;
        };
        for (i, key) in keys.iter().enumerate() {
            let key_path = format!("{keys_path}[{i}]");
            let Yaml::Hash(k) = key else {
                self.error(&key_path, "expected a mapping with `name` and `secret`");
                continue;
            };
            self.unknown_fields(k, &key_path, &["name", "secret"]);
            if !matches!(hash_get(k, "name"), Some(Yaml::String(s)) if !s.is_empty()) {
                self.error(
                    &join(&key_path, "name"),
                    "name is a mandatory field for a key",
                );
            }
            let secret_path = join(&key_path, "secret");
            let Some(Yaml::String(secret)) =
                hash_get(k, "secret").filter(|s| !matches!(s, Yaml::String(v) if v.is_empty()))
            else {
                self.error(&secret_path, "secret is a mandatory field for a key");
                continue;
            };
            match base64_decoded_len(secret) {
                None => self.error(
                    &secret_path,
                    "secrets must be base64 encoded; generate one with `head -c 32 /dev/urandom | base64`",
                ),
                Some(n) if !sizes.contains(&n) => self.error(
                    &secret_path,
                    format!(
                        "secret is not of the expected length, got {n}, expected one of {sizes:?} bytes; generate one with `head -c 32 /dev/urandom | base64`"
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    /// `identity` first means new writes are stored in plaintext.
    fn identity_position(&mut self, providers: &[Yaml], path: &str) {
        let is_identity =
            |p: &Yaml| matches!(p, Yaml::Hash(m) if hash_get(m, "identity").is_some());
        match providers {
            [only] if is_identity(only) => self.warning(
                &format!("{path}[0].identity"),
                "identity is the only provider: nothing is encrypted; put a kms provider first",
            ),
            [first, _, ..] if is_identity(first) => self.warning(
                &format!("{path}[0].identity"),
                "identity is first, so every write is stored unencrypted; move `identity: {}` to the end (only needed until existing data is migrated)",
            ),
            _ => {}
        }
    }

    /// At least one KMS provider must point where the plugin listens.
    pub(super) fn endpoint_matches(&mut self, expected: &str) {
        let want = Socket::parse(expected).ok().map(|(s, _)| s);
        let same = |text: &str| match (&want, Socket::parse(text)) {
            (Some(w), Ok((got, _))) => *w == got,
            _ => text == expected,
        };
        if self
            .kms
            .iter()
            .any(|k| k.endpoint.as_deref().is_some_and(same))
        {
            return;
        }
        let mismatched: Vec<String> = self
            .kms
            .iter()
            .filter(|k| k.endpoint.is_some())
            .map(|k| k.endpoint_path.clone())
            .collect();
        for path in mismatched {
            self.error(
                &path,
                format!("no kms provider uses the plugin's endpoint {expected}; set `endpoint: {expected}` or start the plugin with a matching --listen"),
            );
        }
    }
}

pub(super) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

pub(super) fn shown(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => format!("`{s}`"),
        other => type_name(other).to_string(),
    }
}

/// The decoded length of standard, padded base64 (Go `base64.StdEncoding`, which skips `\r` and
/// `\n`), or `None` if `text` is not valid base64.
fn base64_decoded_len(text: &str) -> Option<usize> {
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let pad = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2
        || bytes[..bytes.len() - pad]
            .iter()
            .any(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/')))
    {
        return None;
    }
    Some(bytes.len() / 4 * 3 - pad)
}
