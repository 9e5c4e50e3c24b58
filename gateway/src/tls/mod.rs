//! TLS configuration shared by SMPP binds, SIP trunks and webhooks (clients) and the SIP and
//! HTTP API listeners (servers): rustls with the ring provider, so build machines need no cmake
//! or nasm. [`TlsSettings`] is the client towards one carrier.

mod connector;

pub(crate) use connector::TlsSettings;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Which certificates to trust: the PEM bundle `ca` and/or the system's roots (possibly none,
/// on a machine without a CA store: callers decide whether that is an error). Errors name the
/// file at fault.
pub(crate) fn roots(ca: Option<&Path>, system: bool) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca {
        let certs = CertificateDer::pem_file_iter(path)
            .with_context(|| format!("reading CA bundle {}", path.display()))?
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("parsing CA bundle {}", path.display()))?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        anyhow::ensure!(
            added > 0,
            "CA bundle {} holds no usable certificate",
            path.display()
        );
    }
    if system {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    }
    Ok(roots)
}

/// A client configuration trusting `roots`, TLS 1.2 and 1.3, no client certificate.
pub(crate) fn client_config(roots: RootCertStore) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A server configuration presenting the PEM certificate chain `cert` with the PEM private
/// key `key`, TLS 1.2 and 1.3, no client certificates. Errors name the file at fault.
pub(crate) fn server_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    server_config_with_clients(cert, key, None)
}

/// As [`server_config`]; with `client_ca`, every client must present a certificate chain
/// signed by a CA of that PEM bundle (the handshake fails otherwise).
pub(crate) fn server_config_with_clients(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<rustls::ServerConfig> {
    use rustls_pki_types::PrivateKeyDer;
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading certificate {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificate {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "{} holds no certificate", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(roots(Some(ca), false)?);
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                    .build()
                    .with_context(|| format!("client CA bundle {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .context("the certificate and key do not match")
}
