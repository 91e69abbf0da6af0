//! HTTP(S) requests through two pooled keep-alive clients (verifying and not verifying the
//! server certificate): status, optional body pattern, and the time to the end of the body.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use regex::Regex;
use vedette_crds::check::HttpProbe;
use vedette_crds::template::CheckState;

use super::tls::Verifier;
use super::{ProbeError, ProbeOutput, Result, seconds};

/// Most body bytes kept for `bodyMatch`; the rest is read and dropped so the connection can
/// be reused.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The two clients.
pub(crate) struct HttpClients {
    verified: HttpsClient,
    unverified: HttpsClient,
}

fn client(verifier: &Verifier) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(verifier.client_config())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(https)
}

pub(crate) use crate::error_chain::error_chain;

impl HttpClients {
    pub(crate) fn new(verifier: &Verifier) -> Self {
        Self {
            verified: client(verifier),
            unverified: client(&verifier.accept_any()),
        }
    }

    /// The http probe.
    pub(crate) async fn probe(
        &self,
        spec: &HttpProbe,
        body_match: Option<&Regex>,
        timeout: Duration,
    ) -> Result<ProbeOutput> {
        let request = request(spec)?;
        let client = if spec.verify_certificate {
            &self.verified
        } else {
            &self.unverified
        };
        let url = spec.url.as_str();
        let started = Instant::now();
        let exchange = async {
            let response = client
                .request(request)
                .await
                .map_err(|error| ProbeError::Connect {
                    target: url.to_owned(),
                    reason: error_chain(&error),
                })?;
            let (head, body) = response.into_parts();
            let body = read_body(body)
                .await
                .map_err(|reason| ProbeError::Connect {
                    target: url.to_owned(),
                    reason,
                })?;
            Ok::<_, ProbeError>((head, body))
        };
        let (head, (body, body_bytes)) =
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| ProbeError::Timeout {
                    what: format!("request to {url}"),
                    seconds: seconds(timeout),
                })??;
        let elapsed = seconds(started.elapsed());
        let status_line = format!("{:?} {}", head.version, status_text(head.status));
        let mut output = ProbeOutput::measured(
            "http",
            elapsed,
            format!("{status_line} - {body_bytes} bytes in {elapsed:.3} second response time"),
        )
        .with_perf("time", elapsed, "s")
        .with_perf("size", body_bytes as f64, "B");
        if let Some(reason) = status_problem(spec, head.status) {
            output.output = format!("{status_line} - {reason}");
            return Ok(output.with_failure(CheckState::Critical, format!("{url}: {reason}")));
        }
        if let Some(pattern) = body_match
            && !pattern.is_match(&String::from_utf8_lossy(&body))
        {
            let reason = format!("pattern {:?} not found in the body", pattern.as_str());
            output.output = format!("{status_line} - {reason}");
            return Ok(output.with_failure(CheckState::Critical, format!("{url}: {reason}")));
        }
        Ok(output)
    }
}

pub(crate) fn request(spec: &HttpProbe) -> Result<Request<Full<Bytes>>> {
    let invalid = |what: String| ProbeError::InvalidSpec(what);
    let url = super::substituted("url", &spec.url)?;
    let uri: Uri = url
        .parse()
        .map_err(|error| invalid(format!("bad url {url:?}: {error}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(invalid(format!("url {url:?} is not http:// or https://")));
    }
    let method = Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| invalid(format!("bad method {:?}", spec.method)))?;
    let mut request = Request::builder().method(method).uri(uri);
    let headers = request.headers_mut().expect("the builder has no error yet");
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("vedette-agent/", env!("CARGO_PKG_VERSION"))),
    );
    for (name, value) in &spec.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("bad header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("bad value of header {name}")))?;
        headers.insert(name, value);
    }
    request
        .body(Full::new(Bytes::new()))
        .map_err(|error| invalid(error.to_string()))
}

/// The first `MAX_BODY_BYTES` of the body and its full length.
async fn read_body(
    mut body: hyper::body::Incoming,
) -> std::result::Result<(Vec<u8>, usize), String> {
    let mut kept = Vec::new();
    let mut total = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|error| format!("failed to read the body: {}", error_chain(&error)))?;
        if let Ok(data) = frame.into_data() {
            total += data.len();
            let room = MAX_BODY_BYTES.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok((kept, total))
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Why `status` is not one the check expects, if it is not.
fn status_problem(spec: &HttpProbe, status: StatusCode) -> Option<String> {
    let code = status.as_u16();
    if spec.expect_status.is_empty() {
        return (!(200..=399).contains(&code)).then(|| format!("status {code}, expected 200-399"));
    }
    if spec.expect_status.contains(&code) {
        return None;
    }
    let expected: Vec<String> = spec.expect_status.iter().map(u16::to_string).collect();
    Some(format!("status {code}, expected {}", expected.join(" or ")))
}
