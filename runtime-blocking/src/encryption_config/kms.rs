//! The `kms` provider's fields, as `validation_encryption.go` checks them (docs/protocol.md §7).

use yaml_rust2::Yaml;

use super::checker::{Checker, KmsSeen, hash_get, join, shown, type_name};
use super::endpoint::Socket;
use super::parse_go_duration;
use super::{ApiVersion, KMS_FIELDS};

impl Checker {
    pub(super) fn kms(&mut self, kms: &yaml_rust2::yaml::Hash, path: &str) {
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
}
