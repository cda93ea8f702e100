//! Example binary of the smol runtime: `kms-plugin-smol [--listen unix:///path|unix:///@name]
//! --key-file FILE [--key-name NAME] [--socket-mode 0600] [--status-refresh SECONDS]
//! [--shutdown-grace SECONDS] [--allow-uid UID,...] [--metrics-addr [IP:]PORT]
//! [--log-format json|text]
//! [--log-level LEVEL]`. The static production binary is `kms-plugin` (blocking runtime);
//! this one shows how to embed the plugin in an async application. Socket, key file (re-read
//! after `kms-plugin keys rotate`), logger and metrics are the same std layer as the static
//! binary's.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use kms_plugin_blocking::endpoint::Endpoint;
use kms_plugin_blocking::log::{Level, LogFormat, Logger};
use kms_plugin_blocking::provider::local::LocalKeyFile;
use kms_plugin_blocking::socket::BoundSocket;
use kms_plugin_blocking::socket::peer::PeerGate;
use kms_plugin_smol::observe::metrics_server;
use kms_plugin_smol::serve::{Observer, ServeOptions, serve_observed};

fn main() {
    if let Err(e) = run() {
        eprintln!("kms-plugin-smol: error: {e}");
        std::process::exit(2);
    }
}

/// `--flag value` from the command line.
struct Args(Vec<String>);

impl Args {
    fn get(&self, flag: &str) -> Option<&str> {
        let i = self.0.iter().position(|a| a == flag)?;
        self.0.get(i + 1).map(String::as_str)
    }

    fn parse<T>(
        &self,
        flag: &str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, String> {
        self.get(flag).map_or(Ok(default), |v| {
            parse(v)
                .ok_or_else(|| format!("{flag} {v:?} is not valid; see the usage line in --help"))
        })
    }
}

fn seconds(v: &str) -> Option<Duration> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
}

fn run() -> Result<(), String> {
    let args = Args(std::env::args().skip(1).collect());
    let endpoint = Endpoint::parse(args.get("--listen").unwrap_or(Endpoint::DEFAULT))?;
    let key_file = args
        .get("--key-file")
        .ok_or("--key-file FILE is required")?;
    let key_name = args.get("--key-name").unwrap_or("default");
    let format = args.parse("--log-format", LogFormat::Json, LogFormat::parse)?;
    let level = args.parse("--log-level", Level::Info, Level::parse)?;
    let socket_mode = args.parse("--socket-mode", 0o600, |v| {
        u32::from_str_radix(v.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
    })?;
    let mut config = kms_plugin_core::Config::default();
    config.kms.status_refresh_interval = args.parse(
        "--status-refresh",
        config.kms.status_refresh_interval,
        seconds,
    )?;
    config.kms.status_staleness = config
        .kms
        .status_staleness
        .max(config.kms.status_refresh_interval * 3);
    let shutdown_grace = args.parse("--shutdown-grace", Duration::from_secs(5), seconds)?;
    let allow_uids = args
        .get("--allow-uid")
        .map(|v| {
            v.split(',')
                .map(|u| u.trim().parse::<u32>())
                .collect::<Result<Vec<u32>, _>>()
                .map_err(|_| format!("--allow-uid {v:?}: give numeric uids, comma-separated"))
        })
        .transpose()?;
    config.transport.shutdown_grace = shutdown_grace;
    let logger = Logger::new(format, level);
    let metrics_listener = match args.get("--metrics-addr") {
        Some(v) => {
            let addr = metrics_server::parse_addr(v)?;
            let l = metrics_server::bind(addr)
                .map_err(|e| format!("--metrics-addr {addr}: cannot listen: {e}"))?;
            let bound = l.get_ref().local_addr().map_err(|e| e.to_string())?;
            logger.info("serving metrics", &[("addr", &bound)]);
            if !metrics_server::is_loopback(&bound) {
                logger.warn(
                    "metrics served on a non-loopback address; /metrics and /readyz are reachable from the network",
                    &[("addr", &bound)],
                );
            }
            Some(l)
        }
        None => None,
    };
    let provider = LocalKeyFile::open(key_file.into(), key_name.into(), logger)?;
    let socket = BoundSocket::bind(&endpoint, socket_mode)?;
    let listener = socket
        .listener()
        .try_clone()
        .and_then(Async::new)
        .map_err(|e| format!("--listen {endpoint}: {e}"))?;

    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = stop_tx.send_blocking(());
        }
    });

    let executor = Arc::new(smol::Executor::new());
    let gate = PeerGate::new(&endpoint, allow_uids.as_deref());
    logger.info(
        "listening",
        &[
            ("endpoint", &endpoint),
            ("provider", &"local"),
            ("allowed_uids", &gate.allowed_text()),
        ],
    );
    let options = ServeOptions {
        config,
        provider: Arc::new(provider),
        shutdown_grace,
        peer_gate: Some(Arc::new(gate)),
    };
    let observer = Observer {
        logger: Some(logger),
        metrics_listener,
        metrics_limits: metrics_server::Limits::default(),
    };
    let shutdown = async move {
        let _ = stop_rx.recv().await;
        logger.info("shutting down", &[]);
    };
    let result = smol::block_on(executor.run(serve_observed(
        executor.clone(),
        listener,
        options,
        observer,
        shutdown,
    )));
    drop(socket); // unlinks our socket file (only if it is still ours)
    logger.info("stopped", &[]);
    result
}
