//! Tenants' audio files: `GET audio_url` over HTTP or HTTPS with the client set-up the
//! webhooks use (hyper + rustls, system roots, the `[egress]` policy through
//! [`crate::egress::Connector`]), bounded by a whole-download timeout and a size limit (read
//! stops as soon as the body passes it).
//!
//! Every failure reads the same to the tenant (`audio_unavailable`, one fixed text): telling
//! "connection refused" from "timeout" from "HTTP 404" would let a tenant map which ports
//! answer where the gateway can reach. The reason goes to the operator's log.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use switchyard_ops::config::EgressPolicy;

use super::AudioError;
use crate::egress::Connector;

/// Downloads audio files.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    /// HTTP(S) client (no connection reuse needed beyond hyper's pool).
    client: Client<HttpsConnector<Connector>, Empty<Bytes>>,
    /// Largest body accepted.
    max_bytes: usize,
    /// Whole-download timeout.
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher with these limits, connecting only where `egress` allows.
    pub(crate) fn new(
        max_bytes: usize,
        timeout: Duration,
        egress: Arc<EgressPolicy>,
    ) -> anyhow::Result<Self> {
        let client = crate::egress::client(egress, timeout, None, usize::MAX)?;
        Ok(Fetcher {
            client,
            max_bytes,
            timeout,
        })
    }

    /// The body of `url`, if it answers 200 within the timeout and the size limit. The error
    /// is the same for every failure; the log has the reason.
    pub(crate) async fn get(&self, url: &str) -> Result<Bytes, AudioError> {
        self.fetch(url).await.map_err(|reason| {
            let host = url
                .parse::<hyper::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned))
                .unwrap_or_default();
            tracing::warn!(%host, "audio_url not fetched: {reason}");
            AudioError::Fetch(format!(
                "no usable answer (a 200 response of at most {} bytes within {:?} is needed)",
                self.max_bytes, self.timeout
            ))
        })
    }

    /// The download, with the operator's reason on failure.
    async fn fetch(&self, url: &str) -> Result<Bytes, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
        let run = async {
            let response = self.client.get(uri).await.map_err(|e| {
                if let Some(refused) = crate::egress::refusal(&e) {
                    return refused.to_string();
                }
                let mut msg = e.to_string();
                if let Some(src) = std::error::Error::source(&e) {
                    msg = format!("{msg}: {src}");
                }
                msg
            })?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("HTTP {}", status.as_u16()));
            }
            let body = Limited::new(response.into_body(), self.max_bytes)
                .collect()
                .await
                .map_err(|e| {
                    format!(
                        "body unreadable or larger than {} bytes: {e}",
                        self.max_bytes
                    )
                })?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| format!("no complete answer within {:?}", self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_ops::config::egress::Cidr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on 127.0.0.1 answering every request with `response`; its URL.
    async fn serve(response: &'static [u8]) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(response).await;
                });
            }
        });
        format!("http://{addr}/a.wav")
    }

    fn fetcher(allow: &[&str]) -> Fetcher {
        let policy = EgressPolicy {
            allow_nets: allow.iter().map(|a| Cidr::parse(a).unwrap()).collect(),
            allow_hosts: Vec::new(),
        };
        Fetcher::new(1000, Duration::from_secs(2), Arc::new(policy)).unwrap()
    }

    #[tokio::test]
    async fn every_failure_reads_the_same_to_the_tenant() {
        let ok = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").await;
        let missing = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            drop(l);
            format!("http://{addr}/a.wav")
        };
        let open = fetcher(&["127.0.0.1/32"]);
        assert_eq!(&open.get(&ok).await.unwrap()[..], b"abc");
        let strict = fetcher(&[]);
        let mut texts = Vec::new();
        for (f, url) in [
            (&strict, ok.as_str()),
            (&strict, "http://169.254.169.254/latest/meta-data/"),
            (&open, missing.as_str()),
            (&open, closed.as_str()),
        ] {
            let e = f.get(url).await.unwrap_err();
            assert_eq!(e.code(), "audio_unavailable");
            texts.push(e.to_string());
        }
        texts.dedup();
        assert_eq!(texts.len(), 1, "{texts:?}");
    }
}
