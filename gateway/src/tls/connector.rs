//! TLS towards a carrier: SMPP binds and SIP trunks over TLS.
//!
//! Carriers that offer TLS (SMSC ports commonly 3550 or 8775, SIP 5061) present a server
//! certificate; the client verifies it against the configured CA bundle (`tls_ca`) or the
//! system's roots, for `tls_server_name` (or the host). A failed handshake is a failed
//! connection: logged with its reason, counted against the carrier's breaker, retried with the
//! bind's back-off — a bind never falls back to clear text.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How one carrier's binds start TLS.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    /// rustls client configuration (roots, protocol versions), shared by the carrier's binds.
    connector: TlsConnector,
    /// The name the SMSC's certificate must carry.
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Trusts the certificates in the PEM file `ca` (or the system's roots when `None`) and
    /// verifies `server_name`. Errors name the file or the name at fault.
    pub(crate) fn new(ca: Option<&Path>, server_name: &str) -> anyhow::Result<TlsSettings> {
        // A configured CA replaces the system's roots: a carrier's private CA is all we trust.
        let roots = super::roots(ca, ca.is_none())?;
        anyhow::ensure!(
            !roots.is_empty(),
            "no system CA certificates found; set tls_ca to the carrier's CA bundle"
        );
        let config = super::client_config(roots)?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .with_context(|| format!("{server_name:?} is not a valid TLS server name"))?;
        Ok(TlsSettings {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Runs the handshake over a connected socket.
    pub(crate) async fn connect(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector
            .connect(self.server_name.clone(), stream)
            .await
    }
}
