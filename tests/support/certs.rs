//! Test PKI: a throw-away CA and server certificates it signs.
//!
//! Server certificates are end-entity certificates (no `basicConstraints`: not a CA, which rustls
//! requires of an end entity; rcgen's explicit `CA:FALSE` encodes the DER default, which strict
//! parsers — Python's `cryptography`, so aioquic — reject) whose subjectAltName lists the given names (an entry that
//! parses as an IP address becomes an IP SAN, anything else a DNS SAN).
//!
//! ```ignore
//! let ca = TestCa::new("exdns test CA");
//! let cert = ca.issue(&["dns.example.test"]);
//! let (cert_pem, key_pem) = cert.write(dir, "server");
//! let ca_pem = ca.write(dir, "ca.pem");
//! ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority that exists only for one test.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

/// A server certificate (leaf) and its private key.
pub struct ServerCert {
    /// The names the certificate was issued for (its subjectAltName entries).
    pub names: Vec<String>,
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
    /// PKCS#8 DER of the private key.
    pub key_der: Vec<u8>,
}

impl TestCa {
    /// A fresh CA (ECDSA P-256) with the given common name.
    pub fn new(common_name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.self_signed(&key).expect("self-sign CA");
        TestCa { cert, key }
    }

    /// The CA certificate in PEM (what a client puts in its trust store).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Writes the CA certificate to `dir/file_name`; returns the path.
    pub fn write(&self, dir: &Path, file_name: &str) -> PathBuf {
        let p = dir.join(file_name);
        std::fs::write(&p, self.pem()).expect("write CA pem");
        p
    }

    /// A root store that trusts only this CA.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der()).expect("add CA to root store");
        roots
    }

    /// Issues a server certificate for `names` (first name is also the subject CN).
    pub fn issue(&self, names: &[&str]) -> ServerCert {
        assert!(!names.is_empty(), "a server certificate needs a name");
        let key = KeyPair::generate().expect("generate server key");
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone())
            .unwrap_or_else(|e| panic!("certificate names {names:?}: {e}"));
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign server certificate");
        ServerCert {
            names,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

impl ServerCert {
    /// Writes `STEM.pem` (certificate) and `STEM.key` (PKCS#8 key) into `dir`; returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let c = dir.join(format!("{stem}.pem"));
        let k = dir.join(format!("{stem}.key"));
        std::fs::write(&c, &self.cert_pem).expect("write cert");
        std::fs::write(&k, &self.key_pem).expect("write key");
        (c, k)
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The certificate and key as rustls uses them in a server.
    pub fn certified_key(&self) -> Arc<rustls::sign::CertifiedKey> {
        let key = rustls::crypto::ring::sign::any_supported_type(&self.private_key())
            .expect("usable signing key");
        Arc::new(rustls::sign::CertifiedKey::new(
            vec![self.cert_der.clone()],
            key,
        ))
    }
}
