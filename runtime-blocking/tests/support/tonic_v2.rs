//! A tonic (Rust, hyper/h2) gRPC client for KMS v2 over a Unix socket, shared by both runtimes'
//! end-to-end tests (tonic sends `:authority: localhost`).
#![allow(
    dead_code,
    unreachable_pub,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

use kms_plugin_proto::v2;
use tonic::codegen::http::uri::PathAndQuery;

pub async fn channel(path: std::path::PathBuf) -> tonic::transport::Channel {
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
}

pub async fn unary<Req, Resp>(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: &'static str,
    req: Req,
) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(
        tonic::Request::new(req),
        PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Status, Encrypt, Decrypt round trip against the plugin listening on `sock`; an unknown
/// method is UNIMPLEMENTED and a swapped key id fails.
pub fn v2_round_trip(sock: &std::path::Path) {
    let sock = sock.to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut grpc = tonic::client::Grpc::new(channel(sock.clone()).await);
        // "listening" may precede the first local KEK: wait (bounded) for healthz ok.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            let status: v2::StatusResponse = unary(
                &mut grpc,
                "/v2.KeyManagementService/Status",
                v2::StatusRequest {},
            )
            .await
            .unwrap();
            if status.healthz == "ok" || std::time::Instant::now() > deadline {
                break status;
            }
            tokio::task::yield_now().await;
        };
        assert_eq!(
            (status.version.as_str(), status.healthz.as_str()),
            ("v2", "ok")
        );
        let seed = bytes::Bytes::from_static(&[7u8; 32]);
        let enc: v2::EncryptResponse = unary(
            &mut grpc,
            "/v2.KeyManagementService/Encrypt",
            v2::EncryptRequest {
                plaintext: seed.clone(),
                uid: "tonic-1".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            enc.key_id, status.key_id,
            "Status and Encrypt agree on the key id"
        );
        assert!((1..=1024).contains(&enc.ciphertext.len()));
        let dec: v2::DecryptResponse = unary(
            &mut grpc,
            "/v2.KeyManagementService/Decrypt",
            v2::DecryptRequest {
                ciphertext: enc.ciphertext.clone(),
                uid: "tonic-2".into(),
                key_id: enc.key_id.clone(),
                annotations: enc.annotations.clone(),
            },
        )
        .await
        .unwrap();
        assert_eq!(dec.plaintext, seed);
        // An unknown method is UNIMPLEMENTED; a swapped key id fails opaquely.
        let err = unary::<v2::StatusRequest, v2::StatusResponse>(
            &mut grpc,
            "/v2.KeyManagementService/Nope",
            v2::StatusRequest {},
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unimplemented);
        let err = unary::<v2::DecryptRequest, v2::DecryptResponse>(
            &mut grpc,
            "/v2.KeyManagementService/Decrypt",
            v2::DecryptRequest {
                ciphertext: enc.ciphertext,
                uid: "tonic-3".into(),
                key_id: "local:other:v9:0000000000000000".into(),
                annotations: enc.annotations,
            },
        )
        .await
        .unwrap_err();
        assert_ne!(err.code(), tonic::Code::Ok);
    });
}

/// A blocking KMS v2 client over one tonic channel (its own current-thread runtime).
pub struct Client {
    rt: tokio::runtime::Runtime,
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl Client {
    pub fn connect(sock: &std::path::Path) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = rt.block_on(channel(sock.to_path_buf()));
        Self {
            rt,
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    pub fn status(&mut self) -> v2::StatusResponse {
        self.rt
            .block_on(unary(
                &mut self.grpc,
                "/v2.KeyManagementService/Status",
                v2::StatusRequest {},
            ))
            .expect("Status")
    }

    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<v2::EncryptResponse, tonic::Status> {
        self.rt.block_on(unary(
            &mut self.grpc,
            "/v2.KeyManagementService/Encrypt",
            v2::EncryptRequest {
                plaintext: bytes::Bytes::copy_from_slice(plaintext),
                uid: "test-encrypt".into(),
            },
        ))
    }

    pub fn decrypt(&mut self, enc: &v2::EncryptResponse) -> Result<Vec<u8>, tonic::Status> {
        self.rt
            .block_on(unary::<_, v2::DecryptResponse>(
                &mut self.grpc,
                "/v2.KeyManagementService/Decrypt",
                v2::DecryptRequest {
                    ciphertext: enc.ciphertext.clone(),
                    uid: "test-decrypt".into(),
                    key_id: enc.key_id.clone(),
                    annotations: enc.annotations.clone(),
                },
            ))
            .map(|d| d.plaintext.to_vec())
    }
}
