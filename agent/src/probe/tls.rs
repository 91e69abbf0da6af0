//! TLS: the certificate verifier shared with the HTTP clients, and the tls probe, which reports
//! the days until the server's certificate expires. The probe completes the handshake whatever
//! the chain, reads `notAfter`, then verifies the chain and name separately, so an untrusted or
//! expired certificate is CRITICAL with its reason and still reports its days left. With
//! `startTls` the handshake follows the mail protocol's plain-text part (see `starttls`); the
//! mail probe's STARTTLS uses the same handshake and evaluation.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use vedette_crds::check::TlsProbe;
use vedette_crds::template::CheckState;

use super::{ProbeError, ProbeOutput, Result, seconds, starttls};

/// Verifies server certificates against the machine's roots (plus extra ones), or accepts any
/// certificate while still checking handshake signatures.
#[derive(Clone, Debug)]
pub(crate) struct Verifier {
    /// `None` when no root certificate could be loaded: every chain is then untrusted.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    verify: bool,
}

impl Verifier {
    /// A verifying verifier trusting the machine's roots and `extra_roots`.
    pub(crate) fn new(extra_roots: &[CertificateDer<'static>]) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        // Unreadable or malformed system certificates are skipped; the ones that load count.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        roots.add_parsable_certificates(extra_roots.iter().cloned());
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .ok();
        Self {
            webpki,
            provider,
            verify: true,
        }
    }

    /// The same verifier, accepting any chain and name.
    pub(crate) fn accept_any(&self) -> Self {
        Self {
            verify: false,
            ..self.clone()
        }
    }

    /// A client configuration using this verifier.
    pub(crate) fn client_config(&self) -> ClientConfig {
        ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self.clone()))
            .with_no_client_auth()
    }

    /// Verifies a chain and name against the roots, whatever `verify` says.
    fn check_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.webpki {
            Some(webpki) => {
                webpki.verify_server_cert(end_entity, intermediates, server_name, &[], now)
            }
            None => Err(rustls::Error::General(
                "no trusted root certificates on this machine".into(),
            )),
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if !self.verify {
            return Ok(ServerCertVerified::assertion());
        }
        self.check_chain(end_entity, intermediates, server_name, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Runs tls probes with one client configuration that completes any handshake.
pub(crate) struct TlsProber {
    verifier: Verifier,
    connector: tokio_rustls::TlsConnector,
}

impl TlsProber {
    pub(crate) fn new(verifier: Verifier) -> Self {
        let connector =
            tokio_rustls::TlsConnector::from(Arc::new(verifier.accept_any().client_config()));
        Self {
            verifier,
            connector,
        }
    }

    /// The tls probe, with TLS from the first byte or after `startTls`'s plain-text part.
    pub(crate) async fn probe(&self, spec: &TlsProbe, timeout: Duration) -> Result<ProbeOutput> {
        let host = super::substituted("host", &spec.host)?;
        let port = super::port(&spec.port)?;
        let name = spec.server_name.as_deref().unwrap_or(host);
        let server_name = server_name(name)?;
        let started = Instant::now();
        let target = format!("{host} port {port}");
        let (stream, _) = super::tcp::connect(host, port, timeout).await?;
        let stream = match spec.start_tls {
            Some(protocol) => {
                starttls::negotiate(stream, protocol, &target, started, timeout).await?
            }
            None => stream,
        };
        let (stream, certificate) = self
            .handshake(stream, &server_name, &target, started, timeout)
            .await?;
        if let Some(protocol) = spec.start_tls {
            starttls::Session::new(stream, protocol, &target, started, timeout)
                .quit()
                .await;
        }
        let days = certificate.days;
        let mut output = ProbeOutput::measured("tls", days, certificate.describe()).with_perf(
            "days_left",
            days,
            "",
        );
        if let Some(reason) = certificate.untrusted {
            output.output = format!("{reason}; {}", output.output);
            output = output.with_failure(CheckState::Critical, reason);
        }
        Ok(output)
    }

    /// Completes a TLS handshake on `stream` whatever the chain, within `timeout` of
    /// `started`, and evaluates the certificate the server presented.
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        server_name: &ServerName<'static>,
        target: &str,
        started: Instant,
        timeout: Duration,
    ) -> Result<(TlsStream<TcpStream>, PeerCertificate)> {
        let handshake = self.connector.connect(server_name.clone(), stream);
        let remaining = timeout.saturating_sub(started.elapsed());
        let stream = tokio::time::timeout(remaining, handshake)
            .await
            .map_err(|_| ProbeError::Timeout {
                what: format!("tls handshake with {target}"),
                seconds: seconds(timeout),
            })?
            .map_err(|error| ProbeError::Connect {
                target: target.to_owned(),
                reason: format!("tls handshake failed: {error}"),
            })?;
        let certificate = self.evaluate(&stream, server_name, target)?;
        Ok((stream, certificate))
    }

    /// The expiry of the server's certificate, and whether its chain and name are trusted.
    fn evaluate(
        &self,
        stream: &TlsStream<TcpStream>,
        server_name: &ServerName<'static>,
        target: &str,
    ) -> Result<PeerCertificate> {
        let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
        let (end_entity, intermediates) = chain
            .split_first()
            .ok_or_else(|| ProbeError::Unexpected(format!("{target} sent no certificate")))?;
        let expiry = Expiry::of(end_entity)?;
        let days = expiry.days_left(SystemTime::now());
        let verified =
            self.verifier
                .check_chain(end_entity, intermediates, server_name, UnixTime::now());
        let untrusted = verified.err().map(|error| {
            format!(
                "certificate of {target} not trusted for {}: {error}",
                server_name.to_str()
            )
        });
        Ok(PeerCertificate {
            expiry,
            days,
            untrusted,
        })
    }
}

/// The name a handshake sends (SNI) and verifies.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(name.to_owned())
        .map_err(|error| ProbeError::InvalidSpec(format!("bad server name {name:?}: {error}")))
}

/// The certificate a server presented in a handshake.
pub(crate) struct PeerCertificate {
    expiry: Expiry,
    /// Days until `notAfter`; negative once expired.
    pub(crate) days: f64,
    /// Why the verifier does not trust the chain or name, if it does not.
    pub(crate) untrusted: Option<String>,
}

impl PeerCertificate {
    /// `certificate 'CN=…' expires in 30.0 days (…)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "certificate '{}' expires in {:.1} days ({})",
            self.expiry.subject, self.days, self.expiry.not_after_text
        )
    }
}

/// What the tls probe reads from a certificate.
struct Expiry {
    subject: String,
    not_after: i64,
    not_after_text: String,
}

impl Expiry {
    fn of(certificate: &CertificateDer<'_>) -> Result<Self> {
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref())
            .map_err(|error| ProbeError::Unexpected(format!("unreadable certificate: {error}")))?;
        let not_after = parsed.validity().not_after;
        Ok(Self {
            subject: parsed.subject().to_string(),
            not_after: not_after.timestamp(),
            not_after_text: not_after.to_string(),
        })
    }

    /// Fractional days from `now` to `notAfter`; negative once expired.
    fn days_left(&self, now: SystemTime) -> f64 {
        let now = match now.duration_since(UNIX_EPOCH) {
            Ok(since) => since.as_secs_f64(),
            Err(before) => -before.duration().as_secs_f64(),
        };
        (self.not_after as f64 - now) / 86_400.0
    }
}
