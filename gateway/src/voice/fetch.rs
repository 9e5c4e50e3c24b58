//! Tenants' audio files: `GET audio_url` over HTTP or HTTPS with the client set-up the
//! webhooks use (hyper + rustls, system roots), bounded by a whole-download timeout and a size
//! limit (read stops as soon as the body passes it).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::AudioError;

/// Downloads audio files.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// HTTP(S) client (no connection reuse needed beyond hyper's pool).
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    /// Largest body accepted.
    max_bytes: usize,
    /// Whole-download timeout.
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher with these limits.
    pub fn new(max_bytes: usize, timeout: Duration) -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        let roots = crate::tls::roots(None, true)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_config(roots)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Fetcher {
            client,
            max_bytes,
            timeout,
        })
    }

    /// The body of `url`, if it answers 200 within the timeout and the size limit.
    pub async fn get(&self, url: &str) -> Result<Bytes, AudioError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| AudioError::Fetch(format!("bad URL: {e}")))?;
        let run = async {
            let response = self.client.get(uri).await.map_err(|e| {
                let mut msg = e.to_string();
                if let Some(src) = std::error::Error::source(&e) {
                    msg = format!("{msg}: {src}");
                }
                AudioError::Fetch(msg)
            })?;
            let status = response.status();
            if !status.is_success() {
                return Err(AudioError::Fetch(format!("HTTP {}", status.as_u16())));
            }
            let body = Limited::new(response.into_body(), self.max_bytes)
                .collect()
                .await
                .map_err(|e| {
                    AudioError::Fetch(format!(
                        "body unreadable or larger than {} bytes: {e}",
                        self.max_bytes
                    ))
                })?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.timeout, run).await.map_err(|_| {
            AudioError::Fetch(format!("no complete answer within {:?}", self.timeout))
        })?
    }
}
