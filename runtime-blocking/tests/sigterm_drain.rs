//! SIGTERM drains: a Decrypt whose remote unwrap is in flight when the signal arrives is still
//! answered, then the plugin exits 0 and unlinks its socket. The remote is the fake Transit
//! server with a slow answer; "in flight" is read from the server's own request log.
#![cfg(feature = "vault")]
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod support;
#[path = "support/transit_server.rs"]
mod transit_server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kms_plugin_proto::v2;
use support::{BIN, Plugin, TempDir};
use tonic::codegen::http::uri::PathAndQuery;
use transit_server::TransitServer;

const TOKEN: &str = "hvs.drain-token";
const WAIT: Duration = Duration::from_secs(30);

fn start(args: &[&str]) -> Plugin {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .args(args)
        .args(["--log-format", "text", "--log-level", "debug"])
        .env("KMS_KEY_ID", "kms")
        .env_remove("KMS_USER_ID")
        .env_remove("VAULT_ADDR");
    Plugin::spawn(&mut cmd, &["info  healthy"])
}

/// A blocking tonic client over the Unix socket.
struct Client {
    rt: tokio::runtime::Runtime,
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl Client {
    fn connect(sock: &Path) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = sock.to_path_buf();
        let channel = rt.block_on(async move {
            tonic::transport::Endpoint::try_from("http://localhost")
                .unwrap()
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
                .expect("connect")
        });
        Self {
            rt,
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    fn unary<Req, Resp>(&mut self, path: &'static str, req: Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let grpc = &mut self.grpc;
        self.rt.block_on(async move {
            grpc.ready().await.expect("ready");
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            grpc.unary(
                tonic::Request::new(req),
                PathAndQuery::from_static(path),
                codec,
            )
            .await
            .map(tonic::Response::into_inner)
        })
    }
}

fn listen(dir: &TempDir) -> (PathBuf, String) {
    let sock = dir.join("kms.sock");
    let listen = format!("unix://{}", sock.display());
    (sock, listen)
}

#[test]
fn sigterm_answers_the_in_flight_decrypt_then_exits_0() {
    let server = TransitServer::start();
    server.add_key("kms");
    server.allow_token(TOKEN);
    let dir = TempDir::new("drain");
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (sock, listen) = listen(&dir);
    let url = server.url();
    let args = [
        "--provider",
        "vault",
        "--vault-addr",
        url.as_str(),
        "--vault-insecure-http",
        "--token-file",
        token_file.to_str().unwrap(),
        "--listen",
        listen.as_str(),
        "--shutdown-grace",
        "20",
    ];

    // A ciphertext from a first process...
    let first = start(&args);
    let mut client = Client::connect(&sock);
    let enc: v2::EncryptResponse = client
        .unary(
            "/v2.KeyManagementService/Encrypt",
            v2::EncryptRequest {
                plaintext: bytes::Bytes::from(vec![7; 32]),
                uid: "drain-enc".into(),
            },
        )
        .unwrap();
    drop(client);
    assert_eq!(first.terminate(), 0);

    // ...decrypted by a fresh one (no cached KEK): the unwrap goes to the slow Transit server.
    let plugin = start(&args);
    let before = server.count("/decrypt/kms");
    server.set_delay(Duration::from_millis(500));
    let sock2 = sock.clone();
    let decrypt = std::thread::spawn(move || {
        let mut client = Client::connect(&sock2);
        client
            .unary::<_, v2::DecryptResponse>(
                "/v2.KeyManagementService/Decrypt",
                v2::DecryptRequest {
                    ciphertext: enc.ciphertext.clone(),
                    uid: "drain-dec".into(),
                    key_id: enc.key_id.clone(),
                    annotations: enc.annotations.clone(),
                },
            )
            .map(|d| d.plaintext.to_vec())
    });
    // Bounded wait until the unwrap has reached the server (it answers 0.5 s later).
    let deadline = Instant::now() + WAIT;
    while server.count("/decrypt/kms") == before {
        assert!(
            Instant::now() < deadline,
            "the unwrap never reached Transit"
        );
        std::thread::yield_now();
    }

    assert_eq!(plugin.terminate(), 0, "graceful exit after draining");
    let answer = decrypt.join().unwrap();
    assert_eq!(answer.map_err(|s| s.to_string()), Ok(vec![7; 32]));
    assert!(!sock.exists(), "socket unlinked on exit");
}
