//! End-to-end load benchmark: kms-plugin (blocking and smol runtimes) vs a tonic reference
//! server vs the raw Unix-socket floor, over real sockets, with the same closed-loop client.
//!
//! `cargo run --release -p kms-plugin-benches --bin e2e -- --duration 5` builds the servers,
//! runs every (server, scenario, concurrency), and prints Markdown tables (docs/performance.md
//! explains each number). Servers run pinned to CPU 1 (`taskset`), the client to CPU 0.
//! Options: `--duration S` `--warmup S` `--conns C` `--concurrency 1,64` `--startups N`
//! `--servers kms-plugin,smol,tonic,floor` `--no-build` `--cmd NAME=TEMPLATE` and
//! `--setup NAME=TEMPLATE` (run once before the server's first start; placeholders `{bin_dir}`,
//! `{socket}`, `{dir}`).

// Benchmarks do IO, read clocks and spawn threads (clippy.toml bans them in the core only).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kms_plugin_benches::h2load::{self, Call, ConnStats, Validator, Window};
use kms_plugin_benches::pb::{v1beta1, v2};
use kms_plugin_benches::report::{self, Measured, ProcessFacts};
use kms_plugin_benches::{floor, procstat};
use prost::Message;

const CLIENT_CPU: &str = "0";
const SERVER_CPU: &str = "1";
const SEED: [u8; 32] = [0x5a; 32];

struct Args {
    duration: Duration,
    warmup: Duration,
    conns: usize,
    concurrency: Vec<usize>,
    startups: usize,
    servers: Vec<String>,
    build: bool,
    cmds: BTreeMap<String, String>,
    /// Commands run once before a server's first start (e.g. to write its key file).
    setups: BTreeMap<String, String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        duration: Duration::from_secs(3),
        warmup: Duration::from_millis(700),
        conns: 4,
        concurrency: vec![1, 64],
        startups: 15,
        servers: ["kms-plugin", "smol", "tonic", "floor"]
            .map(String::from)
            .to_vec(),
        build: true,
        cmds: default_commands(),
        setups: default_setups(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let secs = |v: String| {
            v.parse::<f64>()
                .map(Duration::from_secs_f64)
                .map_err(|e| e.to_string())
        };
        match flag.as_str() {
            "--duration" => a.duration = secs(val()?)?,
            "--warmup" => a.warmup = secs(val()?)?,
            "--conns" => a.conns = val()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--startups" => a.startups = val()?.parse().map_err(|e| format!("--startups: {e}"))?,
            "--concurrency" => {
                a.concurrency = val()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--concurrency: {e}"))?;
            }
            "--servers" => a.servers = val()?.split(',').map(String::from).collect(),
            "--no-build" => a.build = false,
            "--cmd" => {
                let v = val()?;
                let (k, t) = v.split_once('=').ok_or("--cmd NAME=TEMPLATE")?;
                a.cmds.insert(k.into(), t.into());
            }
            "--setup" => {
                let v = val()?;
                let (k, t) = v.split_once('=').ok_or("--setup NAME=TEMPLATE")?;
                a.setups.insert(k.into(), t.into());
            }
            _ => {
                return Err(format!(
                    "unknown option {flag} (see the file's doc comment)"
                ));
            }
        }
    }
    Ok(a)
}

/// How each server is started; `{socket}` is where it must listen.
fn default_commands() -> BTreeMap<String, String> {
    [
        (
            "kms-plugin",
            "{bin_dir}/kms-plugin serve --listen unix://{socket} --key-file {dir}/keyring",
        ),
        (
            "smol",
            "{bin_dir}/kms-plugin-smol --listen unix://{socket} --key-file {dir}/keyring",
        ),
        ("tonic", "{bin_dir}/tonic-reference --socket {socket}"),
        ("floor", "{bin_dir}/floor-echo --socket {socket}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect()
}

/// Commands run once before a server's first start.
fn default_setups() -> BTreeMap<String, String> {
    let init = "{bin_dir}/kms-plugin keys init --force --key-file {dir}/keyring";
    [("kms-plugin", init), ("smol", init)]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

fn argv(template: &str, bin_dir: &Path, socket: &Path, dir: &Path) -> Vec<String> {
    template
        .split_whitespace()
        .map(|w| {
            w.replace("{bin_dir}", &bin_dir.to_string_lossy())
                .replace("{socket}", &socket.to_string_lossy())
                .replace("{dir}", &dir.to_string_lossy())
        })
        .collect()
}

fn cargo_build(args: &[&str]) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("building: cargo build --release {}", args.join(" "));
    Command::new(cargo)
        .args(["build", "--release"])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Spawns a server (pinned to the server CPU when `pinned`) and waits until its socket accepts
/// connections; returns the child and the exec-to-connectable time.
fn start(cmd: &[String], socket: &Path, pinned: bool) -> Result<(Child, Duration), String> {
    let _ = std::fs::remove_file(socket);
    let mut c = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", SERVER_CPU]).args(cmd);
        c
    } else {
        let mut c = Command::new(&cmd[0]);
        c.args(&cmd[1..]);
        c
    };
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let mut child = c.spawn().map_err(|e| format!("spawn {}: {e}", cmd[0]))?;
    loop {
        if UnixStream::connect(socket).is_ok() {
            return Ok((child, t0.elapsed()));
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("{} exited early: {st}", cmd[0]));
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return Err(format!("{} did not listen within 10 s", cmd[0]));
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

/// Stops a server: SIGTERM (so wrappers such as profilers write their output and servers shut
/// down as in production), SIGKILL if it is still running after 5 s.
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One benchmark scenario: a gRPC call plus a check of its response.
struct Scenario {
    name: &'static str,
    call: Call,
    validate: Validator,
}

/// Builds the four scenarios against a running server (each Decrypt needs one of its
/// ciphertexts, obtained with an Encrypt at setup).
fn scenarios(socket: &Path) -> Result<Vec<Scenario>, String> {
    let status = Call::new("/v2.KeyManagementService/Status", &[]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let healthy = h2load::unary(socket, &status)
            .ok()
            .and_then(|b| v2::StatusResponse::decode(b.as_slice()).ok())
            .is_some_and(|s| s.healthz == "ok" && !s.key_id.is_empty());
        if healthy {
            break;
        }
        if Instant::now() > deadline {
            return Err("Status never reported healthz ok".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let enc = v2::EncryptRequest {
        plaintext: SEED.to_vec(),
        uid: "bench-setup-0001".into(),
    }
    .encode_to_vec();
    let enc = h2load::unary(socket, &Call::new("/v2.KeyManagementService/Encrypt", &enc))?;
    let enc = v2::EncryptResponse::decode(enc.as_slice()).map_err(|e| e.to_string())?;
    let dec = v2::DecryptRequest {
        ciphertext: enc.ciphertext,
        uid: "6f1c6e1e-4b8e-4bde-9a5f-3f0b1f2f6d11".into(),
        key_id: enc.key_id,
        annotations: enc.annotations,
    }
    .encode_to_vec();
    let v1enc = v1beta1::EncryptRequest {
        version: "v1beta1".into(),
        plain: SEED.to_vec(),
    }
    .encode_to_vec();
    let v1cipher = h2load::unary(
        socket,
        &Call::new("/v1beta1.KeyManagementService/Encrypt", &v1enc),
    )?;
    let v1cipher = v1beta1::EncryptResponse::decode(v1cipher.as_slice())
        .map_err(|e| e.to_string())?
        .cipher;
    let v1dec = v1beta1::DecryptRequest {
        version: "v1beta1".into(),
        cipher: v1cipher,
    }
    .encode_to_vec();
    Ok(vec![
        Scenario {
            name: "v2 Status",
            call: status,
            validate: Arc::new(|b| v2::StatusResponse::decode(b).is_ok_and(|s| s.healthz == "ok")),
        },
        Scenario {
            name: "v2 Decrypt (cached KEK)",
            call: Call::new("/v2.KeyManagementService/Decrypt", &dec),
            validate: Arc::new(|b| {
                v2::DecryptResponse::decode(b).is_ok_and(|d| d.plaintext == SEED)
            }),
        },
        Scenario {
            name: "v1 Encrypt",
            call: Call::new("/v1beta1.KeyManagementService/Encrypt", &v1enc),
            validate: Arc::new(|b| {
                v1beta1::EncryptResponse::decode(b).is_ok_and(|e| !e.cipher.is_empty())
            }),
        },
        Scenario {
            name: "v1 Decrypt",
            call: Call::new("/v1beta1.KeyManagementService/Decrypt", &v1dec),
            validate: Arc::new(|b| {
                v1beta1::DecryptResponse::decode(b).is_ok_and(|d| d.plain == SEED)
            }),
        },
    ])
}

/// Runs `conns` client threads with `in_flight` requests in total; samples the server's CPU
/// time over the measurement window.
fn load(
    pid: u32,
    conns: usize,
    in_flight: usize,
    args: &Args,
    run: &(dyn Fn(usize, Window) -> ConnStats + Sync),
) -> Measured {
    let conns = conns.clamp(1, in_flight.max(1));
    let start = Instant::now() + args.warmup;
    let window = Window {
        start,
        end: start + args.duration,
    };
    let stats = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|i| {
                let share = in_flight / conns + usize::from(i < in_flight % conns);
                s.spawn(move || run(share, window))
            })
            .collect();
        std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
        let cpu0 = procstat::cpu_time(pid).unwrap_or_default();
        std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
        let cpu1 = procstat::cpu_time(pid).unwrap_or_default();
        let stats: Vec<ConnStats> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (stats, cpu1.saturating_sub(cpu0))
    });
    report::summarize(stats.0, args.duration, stats.1)
}

type Row = (String, String, Measured);

/// Benchmarks one gRPC server; appends rows and returns its process facts.
fn bench_grpc(
    name: &str,
    cmd: &[String],
    socket: &Path,
    args: &Args,
    rows: &mut Vec<Row>,
) -> Result<(ProcessFacts, Vec<(String, usize)>), String> {
    let mut facts = startup_facts(cmd, socket, args)?;
    let (child, _) = start(cmd, socket, true)?;
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    facts.idle_rss_kib = procstat::rss_kib(pid);
    let result = (|| {
        let scenarios = scenarios(socket)?;
        for sc in &scenarios {
            for &n in &args.concurrency {
                eprintln!("  {name}: {} @ {n}", sc.name);
                let run = |share: usize, w: Window| {
                    h2load::run_connection(socket, &sc.call, &sc.validate, share, w)
                };
                let m = load(pid, args.conns, n, args, &run);
                rows.push((format!("{} @{n}", sc.name), name.into(), m));
            }
        }
        Ok::<_, String>(scenarios)
    })();
    facts.loaded_rss_kib = procstat::rss_kib(pid);
    stop(child);
    let sizes = result?
        .iter()
        .map(|sc| (sc.name.to_string(), sc.call.wire_len()))
        .collect();
    Ok((facts, sizes))
}

/// Exec-to-listening (median and min of `args.startups` runs) and binary facts.
fn startup_facts(cmd: &[String], socket: &Path, args: &Args) -> Result<ProcessFacts, String> {
    let mut times = Vec::new();
    for _ in 0..args.startups {
        let (child, t) = start(cmd, socket, false)?;
        times.push(t.as_secs_f64() * 1e6);
        stop(child);
    }
    times.sort_by(f64::total_cmp);
    let bin = Path::new(&cmd[0]);
    Ok(ProcessFacts {
        start_us_median: times.get(times.len() / 2).copied(),
        start_us_min: times.first().copied(),
        binary_bytes: std::fs::metadata(bin).ok().map(|m| m.len()),
        static_elf: procstat::is_static_elf(bin),
        ..ProcessFacts::default()
    })
}

/// The floor with the same request sizes and the response sizes a gRPC server produced.
fn bench_floor(
    cmd: &[String],
    socket: &Path,
    args: &Args,
    calls: &[(String, usize, f64)],
    rows: &mut Vec<Row>,
) -> Result<ProcessFacts, String> {
    let mut facts = startup_facts(cmd, socket, args)?;
    let (child, _) = start(cmd, socket, true)?;
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    facts.idle_rss_kib = procstat::rss_kib(pid);
    for (name, req_len, resp_len) in calls {
        for &n in &args.concurrency {
            eprintln!("  floor: {name} @ {n}");
            let resp = resp_len.round() as usize;
            let run =
                |share: usize, w: Window| floor::run_connection(socket, *req_len, resp, share, w);
            let m = load(pid, args.conns, n, args, &run);
            rows.push((format!("{name} @{n}"), "floor".into(), m));
        }
    }
    facts.loaded_rss_kib = procstat::rss_kib(pid);
    stop(child);
    Ok(facts)
}

fn pin_self() {
    let ok = Command::new("taskset")
        .args([
            "-a",
            "-c",
            "-p",
            CLIENT_CPU,
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("warning: could not pin the client to CPU {CLIENT_CPU}");
    }
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin_dir = exe.parent().ok_or("no bin dir")?.to_path_buf();
    if args.build {
        cargo_build(&["-p", "kms-plugin-benches", "--bins"]);
        if args
            .servers
            .iter()
            .any(|s| s == "kms-plugin" || s == "smol")
        {
            cargo_build(&["-p", "kms-plugin-blocking", "--bin", "kms-plugin"]);
        }
        if args.servers.iter().any(|s| s == "smol") {
            cargo_build(&["-p", "kms-plugin-smol", "--bin", "kms-plugin-smol"]);
        }
    }
    pin_self();
    let dir = std::env::temp_dir().join(format!("kms-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let t0 = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut facts: Vec<(String, ProcessFacts)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut floor_calls: Option<Vec<(String, usize, f64)>> = None;
    for name in args.servers.iter().filter(|s| *s != "floor") {
        let Some(template) = args.cmds.get(name) else {
            notes.push(format!("{name}: no command template"));
            continue;
        };
        let socket = dir.join(format!("{name}.sock"));
        let cmd = argv(template, &bin_dir, &socket, &dir);
        if !Path::new(&cmd[0]).exists() {
            notes.push(format!("{name}: skipped, {} not built", cmd[0]));
            continue;
        }
        // A server added with `--cmd kms-plugin-…=…` gets kms-plugin's key file set-up too.
        let setup = args.setups.get(name).or_else(|| {
            name.starts_with("kms-plugin")
                .then(|| args.setups.get("kms-plugin"))
                .flatten()
        });
        if let Some(setup) = setup {
            let setup = argv(setup, &bin_dir, &socket, &dir);
            let ok = Command::new(&setup[0])
                .args(&setup[1..])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                notes.push(format!("{name}: setup `{}` failed", setup.join(" ")));
                continue;
            }
        }
        eprintln!("server {name}: {}", cmd.join(" "));
        match bench_grpc(name, &cmd, &socket, &args, &mut rows) {
            Ok((f, sizes)) => {
                facts.push((name.clone(), f));
                if floor_calls.is_none() {
                    floor_calls = Some(floor_sizes(&rows, name, &sizes));
                }
            }
            Err(e) => notes.push(format!("{name}: failed: {e}")),
        }
    }
    if args.servers.iter().any(|s| s == "floor") {
        let socket = dir.join("floor.sock");
        let cmd = argv(&args.cmds["floor"], &bin_dir, &socket, &dir);
        let calls = floor_calls.unwrap_or_else(|| {
            notes.push("floor: no gRPC run to copy sizes from; using 120/100 bytes".into());
            [
                "v2 Status",
                "v2 Decrypt (cached KEK)",
                "v1 Encrypt",
                "v1 Decrypt",
            ]
            .map(|n| (n.to_string(), 120, 100.0))
            .to_vec()
        });
        match bench_floor(&cmd, &socket, &args, &calls, &mut rows) {
            Ok(f) => facts.push(("floor".into(), f)),
            Err(e) => notes.push(format!("floor: failed: {e}")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    for (scenario, server, m) in &rows {
        for f in &m.failures {
            notes.push(format!("{server} {scenario}: connection failed: {f}"));
        }
    }
    print_report(
        &args,
        cpus,
        &rows,
        &facts,
        &notes,
        &load_before,
        t0.elapsed(),
    );
    Ok(())
}

/// Per scenario: the gRPC request's wire size and the response size `server` produced
/// (averaged over its runs of that scenario).
fn floor_sizes(rows: &[Row], server: &str, sizes: &[(String, usize)]) -> Vec<(String, usize, f64)> {
    sizes
        .iter()
        .map(|(name, req)| {
            let resp: Vec<f64> = rows
                .iter()
                .filter(|r| r.1 == server && r.0.starts_with(name.as_str()) && r.2.resp_bytes > 0.0)
                .map(|r| r.2.resp_bytes)
                .collect();
            let avg = if resp.is_empty() {
                100.0
            } else {
                resp.iter().sum::<f64>() / resp.len() as f64
            };
            (name.clone(), *req, avg)
        })
        .collect()
}

fn print_report(
    args: &Args,
    cpus: usize,
    rows: &[Row],
    facts: &[(String, ProcessFacts)],
    notes: &[String],
    load_before: &str,
    elapsed: Duration,
) {
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("## kms-plugin end-to-end benchmark\n");
    println!(
        "duration {:.1} s (+{:.1} s warm-up) per run, {} client connections at concurrency > 1, \
         client on CPU {CLIENT_CPU}, servers on CPU {SERVER_CPU} (of {cpus}), \
         loadavg before `{}` after `{}`, total {:.0} s\n",
        args.duration.as_secs_f64(),
        args.warmup.as_secs_f64(),
        args.conns,
        load_before.trim(),
        load_after.trim(),
        elapsed.as_secs_f64()
    );
    println!("### Ratios\n");
    println!("{}", ratio_table(rows));
    println!("### Measurements\n");
    println!("{}", report::results_table(rows));
    println!("### Processes\n");
    println!("{}", report::process_table(facts));
    for n in notes {
        println!("- note: {n}");
    }
}

fn ratio_table(rows: &[Row]) -> String {
    let get = |scenario: &str, server: &str| {
        rows.iter()
            .find(|r| r.0 == scenario && r.1 == server)
            .map(|r| &r.2)
    };
    let mut scenarios: Vec<&str> = Vec::new();
    for r in rows {
        if !scenarios.contains(&r.0.as_str()) {
            scenarios.push(&r.0);
        }
    }
    let mut s = String::from(
        "| scenario | server | req/s vs tonic | p50 vs tonic | p99 vs tonic | CPU/req vs tonic | req/s vs floor | p50 vs floor | p99 vs floor | CPU/req vs floor |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for sc in scenarios {
        for server in ["kms-plugin", "smol"] {
            let Some(m) = get(sc, server) else { continue };
            let tonic = get(sc, "tonic");
            let floor = get(sc, "floor");
            let r = |a: f64, b: Option<&Measured>, pick: fn(&Measured) -> f64| {
                report::ratio(Some(a), b.map(pick))
            };
            let _ = writeln!(
                s,
                "| {sc} | {server} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r(m.rps, tonic, |x| x.rps),
                r(m.p50_us, tonic, |x| x.p50_us),
                r(m.p99_us, tonic, |x| x.p99_us),
                r(m.cpu_us_per_req, tonic, |x| x.cpu_us_per_req),
                r(m.rps, floor, |x| x.rps),
                r(m.p50_us, floor, |x| x.p50_us),
                r(m.p99_us, floor, |x| x.p99_us),
                r(m.cpu_us_per_req, floor, |x| x.cpu_us_per_req),
            );
        }
    }
    s
}
