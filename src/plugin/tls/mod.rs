//! `tls`: the certificate, key and optional client CA a `tls://` server block serves DNS over TLS
//! (RFC 7858) with.
//!
//! The directive adds no handler; its setup loads the PEM files into a `rustls::ServerConfig`
//! (ring provider, TLS 1.2 and 1.3) stored in the block's config, which the server's TLS
//! listener uses. No ALPN protocol is set, as in CoreDNS: clients offering any ALPN list, or
//! none, are accepted.

use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

use crate::plugin::util::io_error_text;

mod setup;

pub use setup::setup;

/// `client_auth` in the `tls` block: what the server asks of clients' certificates (Go's
/// `tls.ClientAuthType`, which CoreDNS exposes under these names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `nocert` (default): no client certificate is asked for.
    NoCert,
    /// `request`: a certificate is asked for but neither required nor verified.
    Request,
    /// `require`: a certificate is required but not verified.
    Require,
    /// `verify_if_given`: a certificate is optional; one that is sent must chain to the CA.
    VerifyIfGiven,
    /// `require_and_verify`: a certificate chaining to the CA is required.
    RequireAndVerify,
}

impl ClientAuth {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "nocert" => ClientAuth::NoCert,
            "request" => ClientAuth::Request,
            "require" => ClientAuth::Require,
            "verify_if_given" => ClientAuth::VerifyIfGiven,
            "require_and_verify" => ClientAuth::RequireAndVerify,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ClientAuth::NoCert => "nocert",
            ClientAuth::Request => "request",
            ClientAuth::Require => "require",
            ClientAuth::VerifyIfGiven => "verify_if_given",
            ClientAuth::RequireAndVerify => "require_and_verify",
        }
    }
}

/// Builds the server TLS config from PEM files: `cert` (the chain, leaf first), `key` (PKCS#8,
/// PKCS#1 RSA or SEC1 EC) and an optional client `ca`. Errors name the file at fault.
pub fn server_config(
    cert: &str,
    key: &str,
    ca: Option<&str>,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, String> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let roots = ca.map(load_roots).transpose()?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("could not set up TLS: {e}"))?;
    let needs_ca = || {
        format!(
            "client_auth {} needs a CA to verify client certificates: tls CERT KEY CA",
            client_auth.as_str()
        )
    };
    let builder = match client_auth {
        ClientAuth::NoCert => builder.with_no_client_auth(),
        ClientAuth::Request | ClientAuth::Require => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::Require,
                algs: provider.signature_verification_algorithms,
            }))
        }
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            let roots = roots.ok_or_else(needs_ca)?;
            let mut vb = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if client_auth == ClientAuth::VerifyIfGiven {
                vb = vb.allow_unauthenticated();
            }
            let verifier = vb
                .build()
                .map_err(|e| format!("could not set up client verification: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("could not load TLS cert: {cert} and {key}: {e}"))?;
    Ok(Arc::new(config))
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what}: open {path}: {}", io_error_text(&e)))
}

/// Every CERTIFICATE block of a PEM file.
fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = read(path, "could not load TLS cert")?;
    let certs = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("could not load TLS cert: {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "could not load TLS cert: {path}: no CERTIFICATE PEM block found"
        ));
    }
    Ok(certs)
}

/// The first private key block (PKCS#8, RSA or EC) of a PEM file.
fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let data = read(path, "could not load TLS key")?;
    match rustls_pemfile::private_key(&mut data.as_slice()) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(format!(
            "could not load TLS key: {path}: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY PEM block found"
        )),
        Err(e) => Err(format!("could not load TLS key: {path}: {e}")),
    }
}

/// The CA certificates in a PEM file (client verification here; upstream verification in
/// `forward`), with Go-worded errors.
pub(crate) fn load_roots(path: &str) -> Result<RootCertStore, String> {
    let data = std::fs::read(path)
        .map_err(|e| format!("error reading {path}: open {path}: {}", io_error_text(&e)))?;
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut data.as_slice()) {
        let cert = cert.map_err(|e| format!("could not read root certs from {path}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("could not read root certs from {path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("could not read root certs from {path}"));
    }
    Ok(roots)
}

/// `request` / `require`: ask for a client certificate and accept any (Go's
/// `RequestClientCert` / `RequireAnyClientCert`). The handshake signature is still checked, so
/// the client must hold the key of the certificate it sends.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}
