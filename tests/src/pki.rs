//! A throw-away PKI for TLS tests: a CA and one server certificate signed by it (rcgen).

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files of a test CA and a leaf certificate it signed.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (what a client trusts).
    pub ca: String,
    /// The leaf certificate (what a server presents).
    pub cert: String,
    /// The leaf's private key.
    pub key: String,
}

/// Makes a CA named after `prefix` and a leaf for `names` (DNS names or IP addresses), and
/// writes `<prefix>-ca.pem`, `<prefix>-cert.pem` and `<prefix>-key.pem` into `dir`.
pub fn make(dir: &Path, prefix: &str, names: &[&str]) -> anyhow::Result<Pki> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("Switchyard test CA {prefix}"));
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf_params = CertificateParams::new(names.clone())?;
    leaf_params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;

    let path = |name: &str| dir.join(format!("{prefix}-{name}")).display().to_string();
    let pki = Pki {
        ca: path("ca.pem"),
        cert: path("cert.pem"),
        key: path("key.pem"),
    };
    std::fs::write(&pki.ca, ca_cert.pem())?;
    std::fs::write(&pki.cert, leaf.pem())?;
    std::fs::write(&pki.key, leaf_key.serialize_pem())?;
    Ok(pki)
}
