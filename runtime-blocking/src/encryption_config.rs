//! kube-apiserver `EncryptionConfiguration` files: [`render`] one for the running plugin, and
//! [`check`] one the way kube-apiserver validates it (spec §9), before a restart finds out.
//!
//! Pure functions: no IO, no environment. Contract for the CLI:
//! - `kms-plugin encryption-config --api v2|v1 --name N [--listen E] [--timeout T]` prints
//!   `render(api, N, E, T)` (E defaults to the plugin's default endpoint, T to 3 s). `render`
//!   never fails and never validates; the command runs `check(&text, Some(E))` on its own output
//!   and refuses (exit 2, printing the findings) when any finding is an [`Severity::Error`], e.g.
//!   a v2 name containing `:` or a zero timeout.
//! - `kms-plugin check-config FILE [--listen E]` reads FILE and prints every finding of
//!   `check(text, Some(E))`, one per line via [`Finding`]'s `Display`
//!   (`error: resources[0].providers[0].kms.name: ...`). Exit 1 when any is an error, 0
//!   otherwise (warnings alone pass). Pass `None` as the endpoint to skip the "is this where the
//!   plugin listens" check.
//!
//! Findings never quote secret material: the `secret` of aescbc/aesgcm/secretbox keys is only
//! checked for presence.

mod duration;
mod endpoint;
mod render;

use std::collections::BTreeSet;
use std::fmt;

use yaml_rust2::{Yaml, YamlLoader};

pub use duration::parse_go_duration;
pub use render::render;

use endpoint::Socket;

/// The KMS API a provider entry speaks (`kms.apiVersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    /// KMS v1 (`v1beta1` gRPC); deprecated, needs `--feature-gates=KMSv1=true` from kube 1.29.
    V1,
    /// KMS v2 (GA since kube 1.29).
    V2,
}

/// How bad a [`Finding`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// kube-apiserver refuses the file, or the plugin cannot be reached with it.
    Error,
    /// Accepted, but probably not what the operator wants (e.g. `identity` first, KMS v1).
    Warning,
}

/// One problem in an EncryptionConfiguration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// Field path as kube-apiserver prints it, e.g. `resources[0].providers[1].kms.name`;
    /// `<document>` for the file as a whole.
    pub path: String,
    /// One line: the problem and the fix.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}: {}", self.path, self.message)
    }
}

/// Whether any finding is an [`Severity::Error`].
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The `apiVersion` an EncryptionConfiguration must have.
pub const CONFIG_API_VERSION: &str = "apiserver.config.k8s.io/v1";
/// The `kind` an EncryptionConfiguration must have.
pub const CONFIG_KIND: &str = "EncryptionConfiguration";

const PROVIDER_KINDS: &[&str] = &["kms", "aescbc", "aesgcm", "secretbox", "identity"];
const KMS_FIELDS: &[&str] = &["apiVersion", "name", "endpoint", "cachesize", "timeout"];

/// Validates `yaml` as kube-apiserver validates `--encryption-provider-config` (strict decoding
/// plus `validation_encryption.go`), adding warnings for valid but risky choices. When
/// `expected_endpoint` is given (where this plugin listens, e.g. `unix:///tmp/kms.sock`), at
/// least one KMS provider must point at it. Returns the findings in document order; empty means
/// clean.
pub fn check(yaml: &str, expected_endpoint: Option<&str>) -> Vec<Finding> {
    let mut c = Checker::default();
    let docs = match YamlLoader::load_from_str(yaml) {
        Ok(docs) => docs,
        Err(e) => {
            c.error("<document>", format!("not valid YAML: {e}; fix the syntax"));
            return c.findings;
        }
    };
    match docs.as_slice() {
        [] => c.error(
            "<document>",
            "the file is empty; generate one with `kms-plugin encryption-config`",
        ),
        [doc] => c.document(doc),
        [doc, ..] => {
            c.error(
                "<document>",
                "more than one YAML document (`---`); kube-apiserver reads exactly one EncryptionConfiguration per file",
            );
            c.document(doc);
        }
    }
    if let Some(expected) = expected_endpoint {
        c.endpoint_matches(expected);
    }
    c.findings
}

/// One KMS provider seen so far.
struct KmsSeen {
    endpoint_path: String,
    /// `None` when missing or invalid (already reported).
    endpoint: Option<String>,
}

#[derive(Default)]
struct Checker {
    findings: Vec<Finding>,
    kms_names: BTreeSet<String>,
    kms: Vec<KmsSeen>,
    /// Provider entries with a `kms` key, valid or not.
    kms_entries: usize,
}

fn hash_get<'y>(map: &'y yaml_rust2::yaml::Hash, key: &str) -> Option<&'y Yaml> {
    map.get(&Yaml::String(key.to_string()))
}

fn key_name(key: &Yaml) -> String {
    match key {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn type_name(value: &Yaml) -> &'static str {
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

    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Error, path, message);
    }

    fn warning(&mut self, path: &str, message: impl Into<String>) {
        self.push(Severity::Warning, path, message);
    }

    /// Flags keys outside `allowed` (kube-apiserver decodes strictly: `unknown field`).
    fn unknown_fields(&mut self, map: &yaml_rust2::yaml::Hash, prefix: &str, allowed: &[&str]) {
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

    fn document(&mut self, doc: &Yaml) {
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
        let misplaced_kms = KMS_FIELDS
            .iter()
            .any(|f| *f != "apiVersion" && hash_get(map, f).is_some());
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
            ("aescbc" | "aesgcm" | "secretbox", Yaml::Hash(keys)) => self.local_keys(keys, &inner),
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

    /// `aescbc`/`aesgcm`/`secretbox`: `keys` present with a name and a secret each. The secret
    /// is never quoted.
    fn local_keys(&mut self, map: &yaml_rust2::yaml::Hash, path: &str) {
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
            for field in ["name", "secret"] {
                if !matches!(hash_get(k, field), Some(Yaml::String(s)) if !s.is_empty()) {
                    self.error(
                        &join(&key_path, field),
                        format!("{field} is a mandatory field for a key"),
                    );
                }
            }
        }
    }

    fn kms(&mut self, kms: &yaml_rust2::yaml::Hash, path: &str) {
        self.unknown_fields(kms, path, KMS_FIELDS);

        let api_path = join(path, "apiVersion");
        let api = match hash_get(kms, "apiVersion") {
            None | Some(Yaml::Null) => {
                self.warning(
                    &api_path,
                    "not set, so it defaults to v1: KMS v1 is deprecated and from kube 1.29 needs --feature-gates=KMSv1=true; set `apiVersion: v2`",
                );
                Some(ApiVersion::V1)
            }
            Some(Yaml::String(v)) if v == "v1" => {
                self.warning(
                    &api_path,
                    "KMS v1 is deprecated and from kube 1.29 needs --feature-gates=KMSv1=true on kube-apiserver; prefer `apiVersion: v2`",
                );
                Some(ApiVersion::V1)
            }
            Some(Yaml::String(v)) if v == "v2" => Some(ApiVersion::V2),
            Some(other) => {
                self.error(
                    &api_path,
                    format!("unsupported apiVersion {} for KMS provider, only v1 and v2 are supported; set `apiVersion: v2`", shown(other)),
                );
                None
            }
        };

        self.kms_name(kms, path, api);
        let endpoint = self.kms_endpoint(kms, path);
        self.kms.push(KmsSeen {
            endpoint_path: join(path, "endpoint"),
            endpoint,
        });
        self.kms_timeout(kms, path);

        let cache_path = join(path, "cachesize");
        let Some(cachesize) = hash_get(kms, "cachesize") else {
            return;
        };
        match (api, cachesize) {
            (Some(ApiVersion::V2), _) => self.error(
                &cache_path,
                "cachesize is not supported in v2 (kube-apiserver caches decrypted seeds itself); remove it",
            ),
            (_, Yaml::Integer(0)) => self.error(
                &cache_path,
                "cachesize should be a positive value, or negative to disable; remove it for the default 1000",
            ),
            (_, Yaml::Integer(_)) => {}
            (_, other) => self.error(
                &cache_path,
                format!("is {}, expected an integer such as 1000", type_name(other)),
            ),
        }
    }

    fn kms_name(&mut self, kms: &yaml_rust2::yaml::Hash, path: &str, api: Option<ApiVersion>) {
        let name_path = join(path, "name");
        let name = match hash_get(kms, "name") {
            Some(Yaml::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Yaml::Null) => {
                self.error(
                    &name_path,
                    "name is a mandatory field for a provider; add e.g. `name: kms-plugin` (it becomes part of every stored value's prefix and must never change)",
                );
                return;
            }
            Some(Yaml::String(_)) => {
                self.error(&name_path, "name is empty; set e.g. `name: kms-plugin`");
                return;
            }
            Some(other) => {
                self.error(
                    &name_path,
                    format!("is {}, expected a string; quote it", type_name(other)),
                );
                return;
            }
        };
        if api != Some(ApiVersion::V1) && name.contains(':') {
            self.error(
                &name_path,
                format!("invalid KMS provider name {name}, must not contain ':' (v2 stores `k8s:enc:kms:v2:<name>:`); use e.g. `-` instead"),
            );
        }
        if self.kms_names.contains(&name) {
            if api == Some(ApiVersion::V1) {
                self.warning(
                    &name_path,
                    format!("duplicate KMS provider name {name}: refused with --encryption-provider-config-automatic-reload, and ambiguous on read; give each provider its own name"),
                );
            } else {
                self.error(
                    &name_path,
                    format!("duplicate KMS provider name {name}, names must be unique across all kms providers; rename one"),
                );
            }
        }
        self.kms_names.insert(name);
    }

    /// Checks `endpoint`; returns it when it names a socket.
    fn kms_endpoint(&mut self, kms: &yaml_rust2::yaml::Hash, path: &str) -> Option<String> {
        let ep_path = join(path, "endpoint");
        let text = match hash_get(kms, "endpoint") {
            Some(Yaml::String(s)) if !s.is_empty() => s.clone(),
            None | Some(Yaml::Null | Yaml::String(_)) => {
                self.error(
                    &ep_path,
                    "endpoint is a mandatory field for a kms; add `endpoint: unix:///tmp/kms.sock` (where the plugin listens)",
                );
                return None;
            }
            Some(other) => {
                self.error(
                    &ep_path,
                    format!(
                        "is {}, expected a string such as unix:///tmp/kms.sock",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        match Socket::parse(&text) {
            Ok((_, warning)) => {
                if let Some(warning) = warning {
                    self.warning(&ep_path, warning);
                }
                Some(text)
            }
            Err(message) => {
                self.error(&ep_path, message);
                None
            }
        }
    }

    fn kms_timeout(&mut self, kms: &yaml_rust2::yaml::Hash, path: &str) {
        let t_path = join(path, "timeout");
        match hash_get(kms, "timeout") {
            None | Some(Yaml::Null) => {}
            Some(Yaml::String(s)) => match parse_go_duration(s) {
                Ok(nanos) if nanos > 0 => {}
                Ok(_) => self.error(
                    &t_path,
                    format!("timeout should be a positive value (got {s}); use e.g. `timeout: 3s`"),
                ),
                Err(e) => self.error(
                    &t_path,
                    format!("{e}; use a Go duration such as `3s` or `500ms`"),
                ),
            },
            Some(other) => self.error(
                &t_path,
                format!(
                    "is {}, expected a Go duration string with a unit; write e.g. `timeout: 3s`",
                    type_name(other)
                ),
            ),
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
    fn endpoint_matches(&mut self, expected: &str) {
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

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn shown(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => format!("`{s}`"),
        other => type_name(other).to_string(),
    }
}
