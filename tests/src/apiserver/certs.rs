//! Generates the server's CA, its serving certificate and the kubeconfig that trusts them.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA certificate in PEM form and a TLS configuration serving a certificate it signed.
pub(crate) struct Tls {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

/// Creates a fresh CA and a serving certificate for `127.0.0.1`, `::1` and `localhost`.
pub(crate) fn generate() -> Result<Tls, String> {
    let ca_key =
        KeyPair::generate().map_err(|error| format!("failed to generate CA key: {error}"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())
        .map_err(|error| format!("invalid CA parameters: {error}"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test-apiserver-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|error| format!("failed to sign the CA certificate: {error}"))?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key =
        KeyPair::generate().map_err(|error| format!("failed to generate server key: {error}"))?;
    let mut server_params = CertificateParams::new(vec!["localhost".to_string()])
        .map_err(|error| format!("invalid server certificate parameters: {error}"))?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server_params.subject_alt_names.extend([
        SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])),
        SanType::IpAddress(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)),
        SanType::DnsName("kubernetes.default.svc".try_into().expect("valid DNS name")),
    ]);
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(|error| format!("failed to sign the server certificate: {error}"))?;

    let chain = vec![
        CertificateDer::from(server_cert.der().to_vec()),
        CertificateDer::from(ca_cert.der().to_vec()),
    ];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("failed to set TLS versions: {error}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| format!("failed to load the server certificate: {error}"))?;
    // Only HTTP/1.1 is served; clients that offer h2 fall back to it through ALPN.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca_cert.pem(),
        config: Arc::new(config),
    })
}

/// Writes a kubeconfig with one cluster, one user (the bearer token) and one current context.
pub(crate) fn write_kubeconfig(
    path: &Path,
    url: &str,
    ca_pem: Option<&str>,
    token: &str,
) -> Result<(), String> {
    let cluster = match ca_pem {
        Some(pem) => {
            let data = base64::engine::general_purpose::STANDARD.encode(pem);
            format!("    server: {url}\n    certificate-authority-data: {data}\n")
        }
        None => format!("    server: {url}\n"),
    };
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: test-apiserver\n  cluster:\n{cluster}\
         users:\n\
         - name: test-user\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: test-apiserver\n  context:\n    cluster: test-apiserver\n    user: test-user\n    namespace: default\n\
         current-context: test-apiserver\n\
         preferences: {{}}\n"
    );
    std::fs::write(path, text)
        .map_err(|error| format!("failed to write kubeconfig {}: {error}", path.display()))
}
