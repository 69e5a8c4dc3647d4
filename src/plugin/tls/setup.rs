//! `tls CERT KEY [CA] { client_auth nocert|request|require|verify_if_given|require_and_verify }`.

use std::sync::Arc;

use crate::corefile::{Dispenser, ParseError};
use crate::plugin::{Plugin, SetupCtx};

use super::{ClientAuth, server_config};

/// Loads the certificate, key and CA into `ctx.config.tls`; adds no handler. Relative paths are
/// relative to the working directory, as in CoreDNS.
pub fn setup(
    d: &mut Dispenser,
    ctx: &mut SetupCtx<'_>,
) -> Result<Option<Arc<dyn Plugin>>, ParseError> {
    d.next(); // "tls"
    if ctx.config.tls.is_some() {
        return Err(d.err("TLS already configured for this server instance"));
    }
    let args = d.remaining_args();
    if args.len() < 2 || args.len() > 3 {
        return Err(d.arg_err());
    }
    // File errors are reported at the directive's line, not at the end of its block.
    let at = d.err("");
    let mut client_auth = ClientAuth::NoCert;
    while d.next_block() {
        match d.val() {
            "client_auth" => {
                let a = d.remaining_args();
                let [mode] = a.as_slice() else {
                    return Err(d.arg_err());
                };
                client_auth = ClientAuth::parse(mode)
                    .ok_or_else(|| d.err(format!("unknown authentication type '{mode}'")))?;
            }
            other => return Err(d.err(format!("unknown option '{other}'"))),
        }
    }
    let config = server_config(
        &args[0],
        &args[1],
        args.get(2).map(String::as_str),
        client_auth,
    )
    .map_err(|e| ParseError::new(at.file.clone(), at.line, e))?;
    ctx.config.tls = Some(config);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::plugin::config::BlockConfig;
    use crate::plugin::test_chain::config_of;

    // Fixed test-only keys made with openssl, for the PKCS#1 RSA and SEC1 EC encodings rcgen
    // cannot write.
    const RSA_KEY: &str = include_str!("testdata/rsa-pkcs1.key");
    const RSA_CERT: &str = include_str!("testdata/rsa.crt");
    const EC_KEY: &str = include_str!("testdata/ec-sec1.key");
    const EC_CERT: &str = include_str!("testdata/ec.crt");

    struct Pki {
        dir: tempfile::TempDir,
        /// A self-signed server certificate for `localhost` (PKCS#8 key).
        server_cert: PathBuf,
        server_key: PathBuf,
        server_der: CertificateDer<'static>,
        /// A CA and a client certificate it signed.
        ca: PathBuf,
        client_chain: Vec<CertificateDer<'static>>,
        client_key: Vec<u8>,
        /// A self-signed client certificate the CA did not sign.
        rogue_chain: Vec<CertificateDer<'static>>,
        rogue_key: Vec<u8>,
    }

    /// A client certificate and its PKCS#8 key.
    type ClientCert = (Vec<CertificateDer<'static>>, Vec<u8>);

    impl Pki {
        /// The config of `tls CERT KEY [CA] { client_auth MODE }` for the server pair.
        fn server_config(&self, with_ca: bool, mode: &str) -> Arc<rustls::ServerConfig> {
            let ca = if with_ca {
                format!(" {}", p(&self.ca))
            } else {
                String::new()
            };
            let text = format!(
                "tls {} {}{ca} {{\n client_auth {mode}\n}}",
                p(&self.server_cert),
                p(&self.server_key)
            );
            run(&text).unwrap().tls.expect("tls config stored")
        }

        /// The client certificate the CA signed.
        fn good(&self) -> Option<ClientCert> {
            Some((self.client_chain.clone(), self.client_key.clone()))
        }

        /// The self-signed client certificate.
        fn rogue(&self) -> Option<ClientCert> {
            Some((self.rogue_chain.clone(), self.rogue_key.clone()))
        }
    }

    fn write(dir: &Path, name: &str, data: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let server = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let server_cert = write(dir.path(), "server.crt", &server.cert.pem());
        let server_key = write(dir.path(), "server.key", &server.key_pair.serialize_pem());

        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "exdns test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = write(dir.path(), "ca.crt", &ca_cert.pem());

        let client_key = KeyPair::generate().unwrap();
        let client_cert = CertificateParams::new(vec!["client.exdns.test".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca_cert, &ca_key)
            .unwrap();
        let rogue = rcgen::generate_simple_self_signed(vec!["rogue".to_string()]).unwrap();
        Pki {
            server_der: server.cert.der().clone(),
            server_cert,
            server_key,
            ca,
            client_chain: vec![client_cert.der().clone()],
            client_key: client_key.serialize_der(),
            rogue_chain: vec![rogue.cert.der().clone()],
            rogue_key: rogue.key_pair.serialize_der(),
            dir,
        }
    }

    fn run(text: &str) -> Result<BlockConfig, String> {
        config_of(setup, text)
    }

    fn p(path: &Path) -> String {
        path.display().to_string()
    }

    /// Runs a TLS handshake plus one echoed byte between `server` and a client presenting
    /// `client_cert` (if any); Ok when the server accepted the client.
    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        trust: &CertificateDer<'static>,
        client_cert: Option<ClientCert>,
    ) -> Result<(), String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trust.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let client = match client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let (c, s) = tokio::io::duplex(16 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let server_side = async move {
            let mut tls = acceptor.accept(s).await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            tls.write_all(&b).await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        };
        let client_side = async move {
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = connector
                .connect(name, c)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"x").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        };
        let (s, c) = tokio::join!(server_side, client_side);
        s?;
        c
    }

    #[tokio::test]
    async fn loads_pkcs8_pair_and_serves() {
        let k = pki();
        let c = run(&format!("tls {} {}", p(&k.server_cert), p(&k.server_key))).unwrap();
        let cfg = c.tls.expect("tls config stored");
        assert!(cfg.alpn_protocols.is_empty(), "no ALPN, as CoreDNS");
        handshake(cfg.clone(), &k.server_der, None).await.unwrap();
        // nocert: a client certificate is not asked for, so one offered is simply unused.
        handshake(cfg, &k.server_der, k.rogue()).await.unwrap();
    }

    #[test]
    fn loads_rsa_and_ec_keys() {
        let dir = tempfile::tempdir().unwrap();
        let rc = write(dir.path(), "rsa.crt", RSA_CERT);
        let rk = write(dir.path(), "rsa.key", RSA_KEY);
        let ec = write(dir.path(), "ec.crt", EC_CERT);
        let ek = write(dir.path(), "ec.key", EC_KEY);
        assert!(RSA_KEY.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(EC_KEY.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        assert!(
            run(&format!("tls {} {}", p(&rc), p(&rk)))
                .unwrap()
                .tls
                .is_some()
        );
        assert!(
            run(&format!("tls {} {}", p(&ec), p(&ek)))
                .unwrap()
                .tls
                .is_some()
        );
        // A key that does not belong to the certificate.
        let e = run(&format!("tls {} {}", p(&rc), p(&ek))).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "Corefile:1 - Error during parsing: could not load TLS cert: {} and {}: ",
                p(&rc),
                p(&ek)
            )),
            "{e}"
        );
    }

    #[tokio::test]
    async fn require_and_verify_checks_client_certificates() {
        let k = pki();
        let cfg = k.server_config(true, "require_and_verify");
        handshake(cfg.clone(), &k.server_der, k.good())
            .await
            .unwrap();
        assert!(handshake(cfg.clone(), &k.server_der, None).await.is_err());
        assert!(handshake(cfg, &k.server_der, k.rogue()).await.is_err());
    }

    #[tokio::test]
    async fn verify_if_given_allows_none_but_checks_given() {
        let k = pki();
        let cfg = k.server_config(true, "verify_if_given");
        handshake(cfg.clone(), &k.server_der, None).await.unwrap();
        handshake(cfg.clone(), &k.server_der, k.good())
            .await
            .unwrap();
        assert!(handshake(cfg, &k.server_der, k.rogue()).await.is_err());
    }

    #[tokio::test]
    async fn require_wants_any_certificate() {
        let k = pki();
        let cfg = k.server_config(false, "require");
        handshake(cfg.clone(), &k.server_der, k.rogue())
            .await
            .unwrap();
        assert!(handshake(cfg, &k.server_der, None).await.is_err());

        let cfg = k.server_config(false, "request");
        handshake(cfg.clone(), &k.server_der, k.rogue())
            .await
            .unwrap();
        handshake(cfg, &k.server_der, None).await.unwrap();
    }

    #[test]
    fn file_errors_name_the_file() {
        let k = pki();
        let missing = k.dir.path().join("missing.pem");
        assert_eq!(
            run(&format!("tls {} {}", p(&missing), p(&k.server_key))).unwrap_err(),
            format!(
                "Corefile:1 - Error during parsing: could not load TLS cert: open {}: no such file or directory",
                p(&missing)
            )
        );
        assert_eq!(
            run(&format!("tls {} {}", p(&k.server_cert), p(&missing))).unwrap_err(),
            format!(
                "Corefile:1 - Error during parsing: could not load TLS key: open {}: no such file or directory",
                p(&missing)
            )
        );
        let junk = write(k.dir.path(), "junk.pem", "not a pem file\n");
        assert_eq!(
            run(&format!("tls {} {}", p(&junk), p(&k.server_key))).unwrap_err(),
            format!(
                "Corefile:1 - Error during parsing: could not load TLS cert: {}: no CERTIFICATE PEM block found",
                p(&junk)
            )
        );
        assert_eq!(
            run(&format!("tls {} {}", p(&k.server_cert), p(&k.server_cert))).unwrap_err(),
            format!(
                "Corefile:1 - Error during parsing: could not load TLS key: {}: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY PEM block found",
                p(&k.server_cert)
            )
        );
        assert_eq!(
            run(&format!(
                "tls {} {} {}",
                p(&k.server_cert),
                p(&k.server_key),
                p(&missing)
            ))
            .unwrap_err(),
            format!(
                "Corefile:1 - Error during parsing: error reading {0}: open {0}: no such file or directory",
                p(&missing)
            )
        );
        assert_eq!(
            run(&format!(
                "tls {} {} {}",
                p(&k.server_cert),
                p(&k.server_key),
                p(&junk)
            ))
            .unwrap_err(),
            format!(
                "Corefile:1 - Error during parsing: could not read root certs from {}",
                p(&junk)
            )
        );
    }

    #[test]
    fn syntax_errors() {
        let k = pki();
        let (c, key) = (p(&k.server_cert), p(&k.server_key));
        assert_eq!(
            run(&format!("tls {c}")).unwrap_err(),
            format!(
                "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '{c}'"
            )
        );
        assert_eq!(
            run(&format!("tls {c} {key} {c} {c}")).unwrap_err(),
            format!(
                "Corefile:1 - Error during parsing: Wrong argument count or unexpected line ending after '{c}'"
            )
        );
        assert_eq!(
            run(&format!("tls {c} {key} {{\n client_auth maybe\n}}")).unwrap_err(),
            "Corefile:2 - Error during parsing: unknown authentication type 'maybe'"
        );
        assert_eq!(
            run(&format!("tls {c} {key} {{\n client_auth\n}}")).unwrap_err(),
            "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'client_auth'"
        );
        assert_eq!(
            run(&format!("tls {c} {key} {{\n ciphers all\n}}")).unwrap_err(),
            "Corefile:2 - Error during parsing: unknown option 'ciphers'"
        );
        assert_eq!(
            run(&format!(
                "tls {c} {key} {{\n client_auth require_and_verify\n}}"
            ))
            .unwrap_err(),
            "Corefile:1 - Error during parsing: client_auth require_and_verify needs a CA to verify client certificates: tls CERT KEY CA"
        );
    }
}
