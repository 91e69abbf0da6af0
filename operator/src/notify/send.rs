//! Delivery (I/O): a webhook POST signed with HMAC-SHA256, a mail over SMTP (`lettre`:
//! STARTTLS, implicit TLS or plain, with login), Alertmanager's `POST /api/v2/alerts`. Each
//! returns what went wrong as a message that names the receiver's endpoint; retrying is the
//! caller's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use vedette_crds::notification::{
    AlertmanagerReceiver, EmailReceiver, SecretKeyReference, SmtpTls, WebhookReceiver,
};

use super::payload::{self, IDEMPOTENCY_HEADER, Mail, PostableAlert, SIGNATURE_HEADER};

/// How long one delivery may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where secrets (HMAC keys, SMTP passwords) are read from.
pub trait SecretSource: Send + Sync {
    /// The value of `reference` in `namespace`.
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        reference: &'a SecretKeyReference,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>>;
}

/// Secrets given up front (standalone mode: `Secret` documents of the manifest files). Its
/// `Debug` shows names and keys, never values.
#[derive(Default, Clone)]
pub struct StaticSecrets {
    /// By (namespace, name), then key.
    pub secrets: BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for StaticSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self
            .secrets
            .iter()
            .flat_map(|((namespace, name), data)| {
                data.keys()
                    .map(move |key| format!("{namespace}/{name}/{key}"))
            })
            .collect();
        f.debug_set().entries(keys).finish()
    }
}

impl SecretSource for StaticSecrets {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        reference: &'a SecretKeyReference,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        let found = self
            .secrets
            .get(&(namespace.to_owned(), reference.name.clone()))
            .ok_or_else(|| format!("Secret {namespace}/{} does not exist", reference.name))
            .and_then(|data| {
                data.get(&reference.key).cloned().ok_or_else(|| {
                    format!(
                        "Secret {namespace}/{} has no key {}",
                        reference.name, reference.key
                    )
                })
            });
        Box::pin(async move { found })
    }
}

/// Secrets read from the API server when needed.
pub struct KubeSecrets {
    /// The client.
    pub client: kube::Client,
}

impl SecretSource for KubeSecrets {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        reference: &'a SecretKeyReference,
    ) -> BoxFuture<'a, Result<Vec<u8>, String>> {
        Box::pin(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(self.client.clone(), namespace);
            let secret = api
                .get(&reference.name)
                .await
                .map_err(|e| format!("Secret {namespace}/{}: {e}", reference.name))?;
            secret
                .data
                .and_then(|mut d| d.remove(&reference.key))
                .map(|b| b.0)
                .ok_or_else(|| {
                    format!(
                        "Secret {namespace}/{} has no key {}",
                        reference.name, reference.key
                    )
                })
        })
    }
}

/// The HTTP(S) client deliveries share: hyper with rustls (ring), trusting the Web PKI roots
/// and the system's. Built on hyper rather than reqwest so that enabling TLS here does not
/// change how the agent's and satellite's plain-HTTP reqwest clients are built.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client with keep-alive connections.
    pub fn new() -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// POSTs `body` to `url` with `headers`; an error unless the answer is 2xx, within
    /// [`SEND_TIMEOUT`].
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<(), String> {
        let mut request = http::Request::post(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("POST {url}: {e}"))?;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| format!("POST {url}: {}", error_chain(&e)))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text = match response.into_body().collect().await {
                Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                Err(_) => String::new(),
            };
            Err(format!(
                "POST {url}: HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ))
        };
        tokio::time::timeout(SEND_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| Err(format!("POST {url}: no answer within {SEND_TIMEOUT:?}")))
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Posts `body` to the webhook, signed when it has a key.
pub async fn webhook(
    client: &HttpClient,
    receiver: &WebhookReceiver,
    key: Option<&[u8]>,
    idempotency_key: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        (IDEMPOTENCY_HEADER, idempotency_key.to_string()),
    ];
    if let Some(key) = key {
        headers.push((SIGNATURE_HEADER, payload::signature(key, &body)));
    }
    client.post(&receiver.url, &headers, body).await
}

/// Posts alerts to Alertmanager's API v2.
pub async fn alertmanager(
    client: &HttpClient,
    receiver: &AlertmanagerReceiver,
    namespace: &str,
    alerts: &[PostableAlert],
) -> Result<(), String> {
    let base = receiver
        .base_url(namespace)
        .ok_or("the Alertmanager receiver has neither url nor service")?;
    let url = format!("{base}/api/v2/alerts");
    let body = serde_json::to_vec(alerts).map_err(|e| format!("POST {url}: {e}"))?;
    client
        .post(
            &url,
            &[("content-type", "application/json".to_string())],
            body,
        )
        .await
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Sends `mail` through the receiver's SMTP server, trusting `ca` (PEM) besides the public
/// roots when given.
pub async fn email(
    receiver: &EmailReceiver,
    password: Option<Vec<u8>>,
    ca: Option<Vec<u8>>,
    mail: &Mail,
) -> Result<(), String> {
    let from: Mailbox = receiver
        .from
        .parse()
        .map_err(|e| format!("from address {:?}: {e}", receiver.from))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(&mail.subject)
        .message_id(Some(mail.message_id.clone()));
    for to in &receiver.to {
        let to: Mailbox = to.parse().map_err(|e| format!("to address {to:?}: {e}"))?;
        builder = builder.to(to);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| format!("mail: {e}"))?;
    let (host, port) = split_host_port(&receiver.smarthost)?;
    let tls = |wrap: fn(TlsParameters) -> Tls| -> Result<Tls, String> {
        let mut parameters = TlsParameters::builder(host.to_owned());
        if let Some(pem) = &ca {
            let certificate = Certificate::from_pem(pem)
                .map_err(|e| format!("SMTP {}: the CA certificate: {e}", receiver.smarthost))?;
            parameters = parameters.add_root_certificate(certificate);
        }
        let parameters = parameters
            .build_rustls()
            .map_err(|e| format!("SMTP {}: {e}", receiver.smarthost))?;
        Ok(wrap(parameters))
    };
    let tls = match receiver.tls {
        SmtpTls::StartTls => tls(Tls::Required)?,
        SmtpTls::Tls => tls(Tls::Wrapper)?,
        SmtpTls::None => Tls::None,
    };
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(SEND_TIMEOUT));
    let transport = match (&receiver.username, password) {
        (Some(user), Some(password)) => transport.credentials(Credentials::new(
            user.clone(),
            String::from_utf8_lossy(&password).into_owned(),
        )),
        _ => transport,
    }
    .build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}: {}", receiver.smarthost, error_chain(&e)))
}

fn split_host_port(smarthost: &str) -> Result<(&str, u16), String> {
    let (host, port) = smarthost
        .rsplit_once(':')
        .ok_or_else(|| format!("smarthost {smarthost:?} is not host:port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("smarthost {smarthost:?} has no valid port"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// A shared secret source.
pub type Secrets = Arc<dyn SecretSource>;
