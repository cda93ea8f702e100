//! The tonic reference server's services (KMS v2 + v1beta1 over [`RefKms`]), shared by the
//! `tonic-reference` binary and the benchmark's own tests.

use std::path::Path;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::pb::{v1beta1, v2};
use crate::refkms::{RefKms, WRAPPED_KEK_ANNOTATION};

/// Both services share one key hierarchy.
#[derive(Clone)]
pub struct Service(Arc<RefKms>);

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

impl Service {
    /// Services over a fresh key hierarchy named `key_id`.
    pub fn new(key_id: &str) -> Self {
        Self(Arc::new(RefKms::new(key_id)))
    }
}

/// Serves both KMS services on `socket` until `shutdown` completes.
pub async fn serve(
    socket: &Path,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    let service = Service::new("tonic-reference-key-1");
    tonic::transport::Server::builder()
        .add_service(
            v2::key_management_service_server::KeyManagementServiceServer::new(service.clone()),
        )
        .add_service(
            v1beta1::key_management_service_server::KeyManagementServiceServer::new(service),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    let _ = std::fs::remove_file(socket);
    Ok(())
}
