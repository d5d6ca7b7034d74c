//! The HTTP client instant-acme talks to the CA with: reqwest (already the sync's client, with
//! rustls and ring), trusting the web roots plus the `ca_file` of a private ACME server.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The `ca_file` as the sources' fetch keys report it (path and why).
    #[error("[server.acme] {0}")]
    CaFile(String),
    #[error("cannot set up the HTTP client for the ACME directory: {0}")]
    Build(reqwest::Error),
}

/// Cheap to clone (reqwest's client is shared), so each account builder gets one.
#[derive(Clone)]
pub struct AcmeHttpClient {
    client: reqwest::Client,
}

impl AcmeHttpClient {
    pub fn new(ca_file: Option<&Path>) -> Result<AcmeHttpClient, ClientError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("mirrorbox/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(60));
        if let Some(path) = ca_file {
            for root in crate::sync::fetch::read_ca_file(path).map_err(ClientError::CaFile)? {
                builder = builder.add_root_certificate(root);
            }
        }
        Ok(AcmeHttpClient {
            client: builder.build().map_err(ClientError::Build)?,
        })
    }
}

impl HttpClient for AcmeHttpClient {
    fn request(
        &self,
        request: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.client.clone();
        Box::pin(async move {
            let other = |e: reqwest::Error| instant_acme::Error::Other(Box::new(e));
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(other)?;
            let response = client.execute(request).await.map_err(other)?;
            Ok(BytesResponse::from(http::Response::<reqwest::Body>::from(
                response,
            )))
        })
    }
}
