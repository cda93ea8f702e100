//! Schema checks of the shipped `deploy/` files: the static pod manifest's required fields, the
//! systemd unit's hardening, the Dockerfile's final stage, and the socket/key paths they share
//! with the CLI defaults.

use kms_plugin_blocking::cli;
use kms_plugin_blocking::endpoint::Endpoint;
use kms_plugin_blocking::keyfile::DEFAULT_KEY_FILE;
use yaml_rust2::{Yaml, YamlLoader};

/// Where every shipped manifest puts the socket: a directory only the plugin's uid (and root)
/// can write, unlike the built-in default's `/tmp`.
const SHIPPED_SOCKET: &str = "unix:///run/kms-plugin/kms.sock";
const SOCKET_DIR: &str = "/run/kms-plugin";

fn deploy(name: &str) -> String {
    let path = format!("{}/../deploy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn static_pod() -> Yaml {
    let docs = YamlLoader::load_from_str(&deploy("kms-plugin.static-pod.yaml")).unwrap();
    assert_eq!(docs.len(), 1);
    docs.into_iter().next().unwrap()
}

fn strings(list: &Yaml) -> Vec<&str> {
    list.as_vec()
        .unwrap_or_else(|| panic!("not a list: {list:?}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}")))
        .collect()
}

/// Asserts the binary's own parser accepts `argv` (program name first) as `command`.
#[track_caller]
fn parses_as(argv: &[&str], command: &str) {
    let args: Vec<String> = argv[1..].iter().map(|a| (*a).to_string()).collect();
    let parsed = cli::parse(&args).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert_eq!(parsed.command.name(), command, "{argv:?}");
}

/// Where the plugin listens according to a `--listen=...` argument list.
fn listen_arg(args: &[&str]) -> String {
    let listen: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--listen="))
        .collect();
    assert_eq!(listen.len(), 1, "exactly one --listen=: {args:?}");
    listen[0].to_string()
}

#[test]
fn static_pod_has_the_required_fields() {
    let pod = static_pod();
    assert_eq!(pod["apiVersion"].as_str(), Some("v1"));
    assert_eq!(pod["kind"].as_str(), Some("Pod"));
    assert_eq!(pod["metadata"]["namespace"].as_str(), Some("kube-system"));
    let spec = &pod["spec"];
    assert_eq!(spec["hostNetwork"].as_bool(), Some(true));
    assert_eq!(
        spec["priorityClassName"].as_str(),
        Some("system-node-critical")
    );
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let uid = spec["securityContext"]["runAsUser"].as_i64().unwrap();
    assert!(uid > 0, "non-root uid");

    let containers = spec["containers"].as_vec().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let command = strings(&c["command"]);
    assert_eq!(&command[..2], ["/kms-plugin", "serve"]);
    let endpoint = listen_arg(&command);
    assert_eq!(endpoint, SHIPPED_SOCKET, "the dedicated socket directory");
    assert!(command.contains(&format!("--key-file={DEFAULT_KEY_FILE}").as_str()));
    parses_as(&command, "serve");

    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(
        sc["capabilities"]["add"].is_badvalue(),
        "no added capabilities"
    );
    assert!(c["resources"]["requests"]["cpu"].as_str().is_some());
    assert!(c["resources"]["requests"]["memory"].as_str().is_some());

    for probe in ["readinessProbe", "livenessProbe"] {
        let cmd = strings(&c[probe]["exec"]["command"]);
        assert_eq!(&cmd[..2], ["/kms-plugin", "probe"], "{probe}");
        assert_eq!(
            listen_arg(&cmd),
            endpoint,
            "{probe} probes the served socket"
        );
        assert!(c[probe]["timeoutSeconds"].as_i64().unwrap() >= 3, "{probe}");
        parses_as(&cmd, "probe");
    }
    // Liveness asks only whether the process serves its socket; readiness asks for healthz ok.
    let liveness = strings(&c["livenessProbe"]["exec"]["command"]);
    let readiness = strings(&c["readinessProbe"]["exec"]["command"]);
    assert!(liveness.contains(&"--liveness"), "{liveness:?}");
    assert!(!readiness.contains(&"--liveness"), "{readiness:?}");
}

#[test]
fn static_pod_mounts_host_directories_for_socket_and_keys() {
    let pod = static_pod();
    let volumes = pod["spec"]["volumes"].as_vec().unwrap();
    let host_path = |name: &str| -> String {
        let v = volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("volume {name}"));
        assert_eq!(v["hostPath"]["type"].as_str(), Some("Directory"), "{name}");
        v["hostPath"]["path"].as_str().unwrap().to_string()
    };
    let mounts = pod["spec"]["containers"][0]["volumeMounts"]
        .as_vec()
        .unwrap();
    let mount = |name: &str| -> &Yaml {
        mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("mount {name}"))
    };

    // The socket directory: the same path inside and outside, so the apiserver sees it.
    let Endpoint::Path(socket) = Endpoint::parse(SHIPPED_SOCKET).unwrap() else {
        panic!("path socket")
    };
    let socket_dir = socket.parent().unwrap().to_str().unwrap();
    assert_eq!(socket_dir, SOCKET_DIR);
    assert_eq!(host_path("socket-dir"), socket_dir);
    assert_eq!(mount("socket-dir")["mountPath"].as_str(), Some(socket_dir));

    // The key directory: persistent host storage, read-only for the serving process.
    let key_dir = std::path::Path::new(DEFAULT_KEY_FILE)
        .parent()
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(host_path("key-dir"), key_dir);
    assert_eq!(mount("key-dir")["mountPath"].as_str(), Some(key_dir));
    assert_eq!(mount("key-dir")["readOnly"].as_bool(), Some(true));
}

#[test]
fn systemd_unit_is_hardened_and_shares_the_socket() {
    let unit = deploy("kms-plugin.service");
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "[Service]",
        "User=kms-plugin",
        "NoNewPrivileges=true",
        "CapabilityBoundingSet=",
        "ProtectSystem=strict",
        "PrivateTmp=true",
        "RuntimeDirectory=kms-plugin",
        "RuntimeDirectoryMode=0750",
        "RuntimeDirectoryPreserve=yes",
        "StateDirectory=kms-plugin",
        "Before=kubelet.service",
        "RestrictAddressFamilies=AF_UNIX",
        "LimitCORE=0",
    ] {
        assert!(has(line), "kms-plugin.service lacks {line:?}");
    }
    assert!(!has("PrivateTmp=false"));
    assert!(!unit.contains("ReadWritePaths=/tmp"));
    assert!(unit.contains(&format!("--listen {SHIPPED_SOCKET}")));
    assert!(unit.contains(&format!("--key-file {DEFAULT_KEY_FILE}")));
    // ExecStart (with its `\` continuations) is a command line the binary accepts.
    let exec = unit
        .replace("\\\n", " ")
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=").map(str::to_string))
        .unwrap();
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(argv[0], "/usr/local/bin/kms-plugin");
    parses_as(&argv, "serve");
    // A watchdog, if any, checks liveness, never readiness.
    let watchdog = unit
        .lines()
        .find_map(|l| {
            l.trim_start_matches(['#', ' '])
                .strip_prefix("kms-plugin probe --liveness")
        })
        .expect("the unit documents the liveness check");
    let mut argv = vec!["kms-plugin", "probe", "--liveness"];
    argv.extend(watchdog.split_whitespace());
    parses_as(&argv, "probe");
}

#[test]
fn dockerfile_builds_static_and_runs_non_root_from_scratch() {
    let dockerfile = deploy("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let final_stage = &lines[last_from..];
    assert_eq!(final_stage[0], "FROM scratch");
    let user = final_stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the final stage");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid != "root" && uid.parse::<u32>().is_ok_and(|n| n != 0),
        "non-root numeric USER {user}"
    );
    assert!(final_stage.contains(&r#"ENTRYPOINT ["/kms-plugin", "serve"]"#));
    // The static non-PIE musl build: its flags live in .cargo/config.toml.
    assert!(dockerfile.contains("--target x86_64-unknown-linux-musl -p kms-plugin-blocking"));
    let cargo_config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.cargo/config.toml"
    ))
    .unwrap();
    assert!(cargo_config.contains("[target.x86_64-unknown-linux-musl]"));
    assert!(cargo_config.contains(r#"rustflags = ["-C", "relocation-model=static"]"#));
}

#[test]
fn apiserver_patch_names_the_flag_and_the_socket_mount() {
    let patch = deploy("kube-apiserver.patch.md");
    assert!(
        patch.contains("--encryption-provider-config=/etc/kubernetes/enc/encryption-config.yaml")
    );
    // Its YAML snippets parse.
    let mut in_yaml = false;
    let mut block = String::new();
    let mut blocks = 0;
    for line in patch.lines() {
        match (in_yaml, line.trim()) {
            (false, "```yaml") => in_yaml = true,
            (true, "```") => {
                YamlLoader::load_from_str(&block).unwrap_or_else(|e| panic!("{e}\n{block}"));
                block.clear();
                blocks += 1;
                in_yaml = false;
            }
            (true, _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks >= 3, "{blocks} yaml blocks");
}

/// Every concrete `kms-plugin ...` command in the docs' and deploy notes' code blocks is one the
/// binary accepts (placeholder lines such as `--key-file FILE` or `v2|v1` are skipped).
#[test]
fn documented_command_lines_parse() {
    let commands = [
        "serve",
        "keys",
        "probe",
        "version",
        "encryption-config",
        "check-config",
    ];
    let mut checked = 0;
    for file in [
        "../docs/operator-guide.md",
        "../deploy/kube-apiserver.patch.md",
        "../docs/migrate.md",
    ] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let joined = text.replace("\\\n", " ");
        let mut in_code = false;
        for line in joined.lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if !in_code {
                continue;
            }
            let tokens: Vec<&str> = line.split_whitespace().collect();
            let Some(start) = tokens
                .windows(2)
                .position(|w| w[0].ends_with("kms-plugin") && commands.contains(&w[1]))
            else {
                continue;
            };
            let argv: Vec<&str> = tokens[start..]
                .iter()
                .copied()
                .take_while(|t| !matches!(*t, "#" | "|" | ">" | "&&" | ";"))
                .collect();
            let placeholder = argv.iter().any(|t| {
                t.contains(['[', '|'])
                    || (t.len() > 1 && t.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            });
            if placeholder {
                continue;
            }
            // Documented ahead of the CLI wiring (encryption_config.rs has the contract):
            // checked once the binary knows the command.
            let known = !matches!(
                cli::parse(&[argv[1].to_string()]),
                Err(e) if e.starts_with("unknown command")
            );
            if !known {
                continue;
            }
            let args: Vec<String> = argv[1..].iter().map(|a| (*a).to_string()).collect();
            if let Err(e) = cli::parse(&args) {
                panic!("{file}: `{}`: {e}", argv.join(" "));
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} command lines found");
}

#[test]
fn the_socket_directory_is_made_at_boot_writable_by_the_plugin_only() {
    let conf = deploy("kms-plugin.tmpfiles.conf");
    let lines: Vec<Vec<&str>> = conf
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 1, "{conf}");
    let uid = static_pod()["spec"]["securityContext"]["runAsUser"]
        .as_i64()
        .unwrap()
        .to_string();
    // type path mode user group age
    assert_eq!(lines[0][..5], ["d", SOCKET_DIR, "0750", uid.as_str(), "0"]);
}

#[test]
fn every_shipped_file_names_the_same_socket() {
    for file in [
        "encryption-config.v1.yaml",
        "encryption-config.v2.yaml",
        "kube-apiserver.patch.md",
        "kms-plugin.service",
        "kms-plugin.static-pod.yaml",
        "kms-plugin.vault.static-pod.yaml",
    ] {
        let text = deploy(file);
        assert!(
            text.contains(SHIPPED_SOCKET),
            "{file} uses {SHIPPED_SOCKET}"
        );
        let other_endpoints = text
            .match_indices("unix://")
            .filter(|(i, _)| !text[*i..].starts_with(SHIPPED_SOCKET))
            .filter(|(i, _)| !text[*i..].starts_with(Endpoint::DEFAULT))
            .filter(|(i, _)| !text[*i..].starts_with("unix:///@name"))
            .count();
        assert_eq!(other_endpoints, 0, "{file}: one socket everywhere");
    }
    let patch = deploy("kube-apiserver.patch.md");
    assert!(patch.contains(&format!("mountPath: {SOCKET_DIR}")));
    assert!(patch.contains(&format!("path: {SOCKET_DIR}")));
}

/// The Vault variant: the image with the feature, https only, CA and token from read-only
/// host mounts, no token in the spec, and the same socket and probes as the local pod.
#[test]
fn vault_static_pod_takes_the_token_from_a_mounted_file() {
    let text = deploy("kms-plugin.vault.static-pod.yaml");
    let docs = YamlLoader::load_from_str(&text).unwrap();
    assert_eq!(docs.len(), 1);
    let pod = &docs[0];
    assert_eq!(pod["kind"].as_str(), Some("Pod"));
    let spec = &pod["spec"];
    assert_eq!(spec["hostNetwork"].as_bool(), Some(true));
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let c = &spec["containers"][0];
    assert!(
        c["image"].as_str().unwrap().ends_with("-vault"),
        "the image built with --build-arg FEATURES=vault"
    );
    let command = strings(&c["command"]);
    assert_eq!(&command[..2], ["/kms-plugin", "serve"]);
    assert_eq!(listen_arg(&command), SHIPPED_SOCKET);
    parses_as(&command, "serve");
    let flag = |name: &str| -> &str {
        command
            .iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("--{name}= in {command:?}"))
    };
    assert_eq!(flag("provider"), "vault");
    assert!(flag("vault-addr").starts_with("https://"));
    assert!(
        !command
            .iter()
            .any(|a| a.starts_with("--vault-insecure-http"))
    );
    // No secret in the spec: the token is neither an env value nor an argument.
    let env = c["env"].as_vec().unwrap();
    let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["KMS_KEY_ID"], "only the key name");
    assert!(!text.contains("KMS_USER_ID:") && !text.contains("hvs."));
    assert!(
        !command
            .iter()
            .any(|a| a.contains("token=") && !a.starts_with("--token-file="))
    );
    // The token and CA files are inside read-only mounts of host directories.
    let mounts = c["volumeMounts"].as_vec().unwrap();
    let volumes = spec["volumes"].as_vec().unwrap();
    for file in [flag("token-file"), flag("ca-file")] {
        let mount = mounts
            .iter()
            .find(|m| file.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
            .unwrap_or_else(|| panic!("{file} is not under a mount"));
        assert_eq!(mount["readOnly"].as_bool(), Some(true), "{file}");
        let name = mount["name"].as_str().unwrap();
        let volume = volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .unwrap();
        assert_eq!(
            volume["hostPath"]["type"].as_str(),
            Some("Directory"),
            "{name}"
        );
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        let cmd = strings(&c[probe]["exec"]["command"]);
        assert_eq!(listen_arg(&cmd), SHIPPED_SOCKET, "{probe}");
        parses_as(&cmd, "probe");
        // With a remote KMS above all: an outage makes it unready, never restarted.
        let liveness_only = cmd.contains(&"--liveness");
        assert_eq!(liveness_only, probe == "livenessProbe", "{probe}: {cmd:?}");
    }
    // The Dockerfile builds that image: a FEATURES build argument passed to cargo.
    let dockerfile = deploy("Dockerfile");
    assert!(dockerfile.contains("ARG FEATURES"));
    assert!(dockerfile.contains("--features \"$FEATURES\""));
}
