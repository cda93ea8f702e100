//! The tonic reference server for the end-to-end benchmark: KMS v2 and v1beta1 over a Unix
//! socket, built the way other Rust KMS plugins are (tonic 0.14 + tokio multi-thread runtime,
//! prost 0.14), doing the same AES-256-GCM + HKDF work per request as kms-plugin.
//!
//! Usage: `tonic-reference --socket PATH`. Like every h2/tonic server it resets requests whose
//! `:authority` is not a valid URI authority, so clients must send `localhost` (spec §1.3).

// Benchmarks do IO, read clocks and spawn threads (clippy.toml bans them in the core only).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::path::PathBuf;
use std::sync::Arc;

use kms_plugin_benches::pb::{v1beta1, v2};
use kms_plugin_benches::refkms::{RefKms, WRAPPED_KEK_ANNOTATION};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// Both services share one key hierarchy.
#[derive(Clone)]
struct Service(Arc<RefKms>);

#[tonic::async_trait]
impl v2::key_management_service_server::KeyManagementService for Service {
    async fn status(
        &self,
        _request: Request<v2::StatusRequest>,
    ) -> Result<Response<v2::StatusResponse>, Status> {
        Ok(Response::new(v2::StatusResponse {
            version: "v2".into(),
            healthz: "ok".into(),
            key_id: self.0.key_id().into(),
        }))
    }

    async fn decrypt(
        &self,
        request: Request<v2::DecryptRequest>,
    ) -> Result<Response<v2::DecryptResponse>, Status> {
        let req = request.into_inner();
        let wrapped = req
            .annotations
            .get(WRAPPED_KEK_ANNOTATION)
            .ok_or_else(|| Status::invalid_argument("missing annotation"))?;
        let plaintext = self
            .0
            .decrypt_v2(&req.ciphertext, &req.key_id, wrapped)
            .map_err(|_| Status::invalid_argument("decryption failed"))?;
        Ok(Response::new(v2::DecryptResponse { plaintext }))
    }

    async fn encrypt(
        &self,
        request: Request<v2::EncryptRequest>,
    ) -> Result<Response<v2::EncryptResponse>, Status> {
        let req = request.into_inner();
        if req.uid.is_empty() {
            return Err(Status::invalid_argument("empty uid"));
        }
        let ciphertext = self.0.encrypt_v2(&req.plaintext);
        let annotations = [(
            WRAPPED_KEK_ANNOTATION.to_owned(),
            self.0.wrapped_kek().to_vec(),
        )]
        .into_iter()
        .collect();
        Ok(Response::new(v2::EncryptResponse {
            ciphertext,
            key_id: self.0.key_id().into(),
            annotations,
        }))
    }
}

#[tonic::async_trait]
impl v1beta1::key_management_service_server::KeyManagementService for Service {
    async fn version(
        &self,
        _request: Request<v1beta1::VersionRequest>,
    ) -> Result<Response<v1beta1::VersionResponse>, Status> {
        Ok(Response::new(v1beta1::VersionResponse {
            version: "v1beta1".into(),
            runtime_name: "tonic-reference".into(),
            runtime_version: "0.1.0".into(),
        }))
    }

    async fn decrypt(
        &self,
        request: Request<v1beta1::DecryptRequest>,
    ) -> Result<Response<v1beta1::DecryptResponse>, Status> {
        let plain = self
            .0
            .decrypt_v1(&request.into_inner().cipher)
            .map_err(|_| Status::invalid_argument("decryption failed"))?;
        Ok(Response::new(v1beta1::DecryptResponse { plain }))
    }

    async fn encrypt(
        &self,
        request: Request<v1beta1::EncryptRequest>,
    ) -> Result<Response<v1beta1::EncryptResponse>, Status> {
        let cipher = self.0.encrypt_v1(&request.into_inner().plain);
        Ok(Response::new(v1beta1::EncryptResponse { cipher }))
    }
}

fn socket_arg() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--socket"), Some(path)) => Ok(PathBuf::from(path)),
        _ => Err("usage: tonic-reference --socket PATH".into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let socket = socket_arg()?;
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    let service = Service(Arc::new(RefKms::new("tonic-reference-key-1")));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tonic::transport::Server::builder()
        .add_service(
            v2::key_management_service_server::KeyManagementServiceServer::new(service.clone()),
        )
        .add_service(
            v1beta1::key_management_service_server::KeyManagementServiceServer::new(service),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            term.recv().await;
        })
        .await?;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
