//! Connections made on a tenant's behalf — webhooks (`webhook_url`, `callback_url`), the
//! endpoints of webhook-channel messages (`chat::webhook`) and voice `audio_url` downloads —
//! go through [`Connector`], which applies the operator's `[egress]` policy ([`EgressPolicy`])
//! to the address actually connected to.
//!
//! ```text
//! URL host ─┬─ address literal ──► policy ──► connect to it        (refused: Refused)
//!           └─ name ──► getaddrinfo ──► policy, per address ──► connect only to the allowed
//!                                                                 addresses (none: Refused)
//! ```
//! The addresses judged are the ones handed to the TCP connector, so a name that answers
//! differently between a check and the connection (DNS rebinding) gains nothing. TLS
//! (`https://`) wraps this connector, so the certificate is still checked against the name.
//!
//! A refusal is an error like a failed connection; [`refusal`] finds it in an error's source
//! chain so callers can give tenants a generic answer and log the detail for the operator.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use switchyard_ops::config::egress::Refusal;
use switchyard_ops::config::EgressPolicy;
use tokio::net::TcpStream;
use tower_service::Service;

/// A boxed error, as hyper's connectors use.
type BoxError = Box<dyn StdError + Send + Sync>;

/// The connection was not made: the destination is not one the policy allows.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    /// The URL's host.
    pub(crate) host: String,
    /// The first address refused and why.
    pub(crate) refusal: Refusal,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "destination {} refused by the egress policy: {}",
            self.host, self.refusal
        )
    }
}

impl StdError for Refused {}

/// The [`Refused`] somewhere in `err`'s source chain, if the error is a policy refusal.
pub(crate) fn refusal<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a Refused> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        next = e.source();
    }
    None
}

/// Resolves names with the system resolver and keeps only the addresses the policy allows.
#[derive(Clone, Debug)]
pub(crate) struct PolicyResolver {
    /// The operator's policy.
    policy: Arc<EgressPolicy>,
    /// getaddrinfo on the blocking pool.
    inner: GaiResolver,
}

impl Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        let lookup = self.inner.call(name.clone());
        Box::pin(async move {
            let addrs = lookup.await?;
            let mut allowed = Vec::new();
            let mut first_refusal = None;
            for addr in addrs {
                match policy.check(name.as_str(), addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(r) => {
                        first_refusal.get_or_insert(r);
                    }
                }
            }
            match (allowed.is_empty(), first_refusal) {
                (true, Some(refusal)) => Err(Box::new(Refused {
                    host: name.as_str().to_owned(),
                    refusal,
                }) as BoxError),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

/// A TCP connector for `http://` and `https://` URIs that connects only where the policy
/// allows (wrap it in `hyper_rustls` for TLS).
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    /// The operator's policy, for address literals (hyper connects to those without
    /// resolving).
    policy: Arc<EgressPolicy>,
    /// hyper's connector over the filtering resolver.
    http: HttpConnector<PolicyResolver>,
}

impl Connector {
    /// A connector under `policy`, giving up on a connection after `connect_timeout`.
    pub(crate) fn new(policy: Arc<EgressPolicy>, connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new_with_resolver(PolicyResolver {
            policy: policy.clone(),
            inner: GaiResolver::new(),
        });
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        // The TLS wrapper hands `https://` URIs down to this connector.
        http.enforce_http(false);
        Connector { policy, http }
    }
}

impl Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = uri.host().unwrap_or_default();
        if let Some(refusal) = self.policy.literal_refusal(host) {
            let refused = Refused {
                host: host.to_owned(),
                refusal,
            };
            return Box::pin(async move { Err(Box::new(refused) as BoxError) });
        }
        let connecting = self.http.call(uri);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// The HTTP(S) connector tenants' URLs are fetched through: [`Connector`] under TLS with
/// `roots`.
pub(crate) fn https_connector(
    policy: Arc<EgressPolicy>,
    connect_timeout: Duration,
    tls: rustls::ClientConfig,
) -> hyper_rustls::HttpsConnector<Connector> {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(Connector::new(policy, connect_timeout))
}

/// The HTTP(S) client for tenants' URLs (webhooks, audio files): connects only where `policy`
/// allows, within `connect_timeout`; verifies servers against the system's roots and the PEM
/// bundle `ca`; keeps at most `max_idle_per_host` idle connections per host for 30 s.
pub(crate) fn client<B>(
    policy: Arc<EgressPolicy>,
    connect_timeout: Duration,
    ca: Option<&std::path::Path>,
    max_idle_per_host: usize,
) -> anyhow::Result<hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<Connector>, B>>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    let roots = crate::tls::roots(ca, true)?;
    if roots.is_empty() {
        tracing::warn!("no CA certificates (system store empty, none configured): https:// URLs will fail verification");
    }
    let connector = https_connector(policy, connect_timeout, crate::tls::client_config(roots)?);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(max_idle_per_host)
            .build(connector),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_ops::config::egress::Cidr;

    fn policy(allow: &[&str]) -> Arc<EgressPolicy> {
        Arc::new(EgressPolicy {
            allow_nets: allow.iter().map(|a| Cidr::parse(a).unwrap()).collect(),
            allow_hosts: Vec::new(),
        })
    }

    async fn connect(c: &mut Connector, url: &str) -> Result<TokioIo<TcpStream>, BoxError> {
        std::future::poll_fn(|cx| c.poll_ready(cx)).await?;
        c.call(url.parse().unwrap()).await
    }

    #[tokio::test]
    async fn refuses_literals_and_names_that_resolve_to_refused_addresses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut strict = Connector::new(policy(&[]), Duration::from_secs(2));
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("http://localhost:{port}/"),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://[::1]:9/".to_owned(),
        ] {
            let err = connect(&mut strict, &url).await.unwrap_err();
            let r = refusal(err.as_ref()).unwrap_or_else(|| panic!("{url}: {err}"));
            assert!(!r.refusal.range.is_empty(), "{url}");
        }
        let mut open = Connector::new(policy(&["127.0.0.1/32"]), Duration::from_secs(2));
        connect(&mut open, &format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap();
        connect(&mut open, &format!("http://localhost:{port}/"))
            .await
            .unwrap();
        // A failure that is not the policy's is not reported as a refusal.
        drop(listener);
        let err = connect(&mut open, &format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert!(refusal(err.as_ref()).is_none(), "{err}");
    }
}
