//! HTTP(S) requests: status, optional body pattern, and the time to the end of the body. Each
//! run opens its own connection by default (resolve, connect, TLS handshake, request, close),
//! as `check_http` does, timing every phase; `reuseConnection` keeps the connection open
//! afterwards and sends the next run's request on it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONNECTION, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper::http::response::Parts;
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use regex::Regex;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use vedette_crds::check::{CheckSecret, HttpAuth, HttpProbe};
use vedette_crds::template::CheckState;

use super::tls::Verifier;
use super::{CheckSecrets, ProbeError, ProbeOutput, Result, seconds};

/// Most body bytes kept for `bodyMatch`; the rest is read and dropped so the connection can
/// be reused.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long an idle kept connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Most idle connections kept to one target.
const MAX_IDLE_PER_TARGET: usize = 256;

/// The protocol offered by ALPN: the probe speaks HTTP/1.1 only.
const ALPN_HTTP1: &[u8] = b"http/1.1";

pub(crate) use crate::error_chain::error_chain;

/// The TLS connectors (verifying and not verifying the server certificate) and the idle
/// connections of `reuseConnection` checks.
pub(crate) struct HttpClients {
    verified: tokio_rustls::TlsConnector,
    unverified: tokio_rustls::TlsConnector,
    idle: IdleConnections,
}

/// A TLS connector with `verifier`, offering HTTP/1.1 by ALPN.
fn tls_connector(verifier: &Verifier) -> tokio_rustls::TlsConnector {
    let mut config = verifier.client_config();
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// An open HTTP/1.1 connection: the sender of its requests and the task driving it, which is
/// stopped (closing the socket) when the connection is dropped.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: tokio::task::AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Idle keep-alive connections of `reuseConnection` checks, by where they lead. A connection
/// comes back only once it can take the next request, so back-to-back runs share one.
#[derive(Default)]
struct IdleConnections(Mutex<HashMap<PoolKey, Vec<Idle>>>);

/// Where a kept connection leads, and whether its certificate was verified.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    https: bool,
    host: String,
    port: u16,
    verified: bool,
}

struct Idle {
    connection: Connection,
    since: std::time::Instant,
}

impl Idle {
    /// Not expired, not closed by the server, ready for a request.
    fn usable(&self) -> bool {
        self.since.elapsed() < POOL_IDLE && self.connection.sender.is_ready()
    }
}

impl IdleConnections {
    /// The most recently used connection to `key` that can take a request, dropping (closing)
    /// every connection that expired or that its server closed.
    fn take(&self, key: &PoolKey) -> Option<Connection> {
        let mut idle = self.0.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, connections| {
            connections.retain(Idle::usable);
            !connections.is_empty()
        });
        idle.get_mut(key)?.pop().map(|idle| idle.connection)
    }

    /// Keeps `connection` for the next run to `key`.
    fn put(&self, key: PoolKey, connection: Connection) {
        let mut idle = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let connections = idle.entry(key).or_default();
        if connections.len() < MAX_IDLE_PER_TARGET {
            connections.push(Idle {
                connection,
                since: std::time::Instant::now(),
            });
        }
    }
}

/// What one request brought back.
struct Exchange {
    answer: Answer,
    /// From the start of the run to the end of the body.
    total: Duration,
    /// The phases of the connection opened for this run; `None` with `reuseConnection`.
    phases: Option<Phases>,
}

/// A response: its head, the kept body, the body's length, and the time from sending the
/// request (or, with `reuseConnection`, from the start of the run) to the head.
struct Answer {
    head: Parts,
    body: Vec<u8>,
    size: usize,
    firstbyte: Duration,
}

/// How long each phase of opening a connection took.
struct Phases {
    dns: Duration,
    connect: Duration,
    /// `None` for plain http.
    tls: Option<Duration>,
}

/// Where a URL points.
struct Target<'a> {
    url: &'a str,
    host: &'a str,
    port: u16,
    https: bool,
}

impl<'a> Target<'a> {
    fn of(url: &'a str, uri: &'a Uri) -> Result<Self> {
        let host = uri
            .host()
            .ok_or_else(|| ProbeError::InvalidSpec(format!("url {url:?} has no host")))?;
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Self {
            url,
            host,
            port,
            https,
        })
    }

    /// The `Host` header: the host, and the port when it is not the scheme's default.
    fn host_header(&self) -> String {
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            self.host.to_owned()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name sent by SNI and verified: the host without IPv6 brackets.
    fn server_name(&self) -> Result<ServerName<'static>> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(bare.to_owned())
            .map_err(|error| ProbeError::InvalidSpec(format!("bad server name {bare:?}: {error}")))
    }

    fn pool_key(&self, verified: bool) -> PoolKey {
        PoolKey {
            https: self.https,
            host: self.host.to_owned(),
            port: self.port,
            verified,
        }
    }

    /// A failure of the target at this URL.
    fn failed(&self, reason: String) -> ProbeError {
        ProbeError::Connect {
            target: self.url.to_owned(),
            reason,
        }
    }
}

/// The run's deadline and its timeout, for the messages of phases that run out of time.
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    /// Bounds `phase` by the deadline; a timeout names what was waited for.
    async fn bound<T>(
        self,
        waiting_for: impl FnOnce() -> String,
        phase: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::time::timeout_at(self.at, phase)
            .await
            .map_err(|_| ProbeError::Timeout {
                what: waiting_for(),
                seconds: seconds(self.timeout),
            })?
    }
}

impl HttpClients {
    pub(crate) fn new(verifier: &Verifier) -> Self {
        Self {
            verified: tls_connector(verifier),
            unverified: tls_connector(&verifier.accept_any()),
            idle: IdleConnections::default(),
        }
    }

    /// The http probe.
    pub(crate) async fn probe(
        &self,
        spec: &HttpProbe,
        body_match: Option<&Regex>,
        secrets: &CheckSecrets,
        timeout: Duration,
    ) -> Result<ProbeOutput> {
        let mut request = request(spec)?;
        if let Some(auth) = &spec.auth {
            request
                .headers_mut()
                .insert(AUTHORIZATION, authorization(auth, secrets)?);
        }
        let uri = request.uri().clone();
        let target = Target::of(&spec.url, &uri)?;
        to_origin_form(&mut request, &target, !spec.reuse_connection)?;
        let deadline = Deadline::after(timeout);
        let exchange = if spec.reuse_connection {
            self.reused(spec, &target, request, deadline).await?
        } else {
            self.fresh(spec, &target, request, deadline).await?
        };
        let url = target.url;
        let mut output = measured(&exchange);
        let head = &exchange.answer.head;
        let status_line = format!("{:?} {}", head.version, status_text(head.status));
        if let Some(reason) = status_problem(spec, head.status) {
            output.output = format!("{status_line} - {reason}");
            return Ok(output.with_failure(CheckState::Critical, format!("{url}: {reason}")));
        }
        if let Some(pattern) = body_match
            && !pattern.is_match(&String::from_utf8_lossy(&exchange.answer.body))
        {
            let reason = format!("pattern {:?} not found in the body", pattern.as_str());
            output.output = format!("{status_line} - {reason}");
            return Ok(output.with_failure(CheckState::Critical, format!("{url}: {reason}")));
        }
        Ok(output)
    }

    /// Sends `request` on a connection of its own, closed when the run ends.
    async fn fresh(
        &self,
        spec: &HttpProbe,
        target: &Target<'_>,
        request: Request<Full<Bytes>>,
        deadline: Deadline,
    ) -> Result<Exchange> {
        let started = Instant::now();
        let (mut connection, phases) = self.open(target, spec.verify_certificate, deadline).await?;
        let sent = Instant::now();
        let response = send(&mut connection, request, target, deadline).await?;
        let answer = read_answer(response, sent, target, deadline).await?;
        Ok(Exchange {
            answer,
            total: started.elapsed(),
            phases: Some(phases),
        })
    }

    /// Sends `request` on a kept connection to the target, or on a new one kept afterwards.
    async fn reused(
        &self,
        spec: &HttpProbe,
        target: &Target<'_>,
        request: Request<Full<Bytes>>,
        deadline: Deadline,
    ) -> Result<Exchange> {
        let started = Instant::now();
        let key = target.pool_key(spec.verify_certificate);
        let mut request = Some(request);
        let mut kept = None;
        if let Some(mut connection) = self.idle.take(&key) {
            let unsent = request.take().expect("not sent yet");
            match deadline
                .bound(waiting_for_head(target), async {
                    Ok(connection.sender.try_send_request(unsent).await)
                })
                .await?
            {
                Ok(response) => kept = Some((connection, response)),
                // Closed by the server before the request went out: a new connection.
                Err(mut error) => match error.take_message() {
                    Some(unsent) => request = Some(unsent),
                    None => return Err(target.failed(error_chain(&error.into_error()))),
                },
            }
        }
        let (mut connection, response) = match (kept, request) {
            (Some(kept), _) => kept,
            (None, Some(request)) => {
                let (mut connection, _) =
                    self.open(target, spec.verify_certificate, deadline).await?;
                let response = send(&mut connection, request, target, deadline).await?;
                (connection, response)
            }
            (None, None) => unreachable!("the request is either sent or back"),
        };
        let answer = read_answer(response, started, target, deadline).await?;
        let total = started.elapsed();
        // Kept once it can take the next request; a server that closes it is not a failure.
        if let Ok(Ok(())) = tokio::time::timeout_at(deadline.at, connection.sender.ready()).await {
            self.idle.put(key, connection);
        }
        Ok(Exchange {
            answer,
            total,
            phases: None,
        })
    }

    /// Opens a connection: resolve (literal addresses skip the resolver), connect, TLS
    /// handshake for https, HTTP/1.1 handshake; each phase timed and named when it fails.
    async fn open(
        &self,
        target: &Target<'_>,
        verify: bool,
        deadline: Deadline,
    ) -> Result<(Connection, Phases)> {
        let url = target.url;
        let started = Instant::now();
        let addresses = deadline
            .bound(
                || format!("resolving {}", target.host),
                super::tcp::resolve(target.host, target.port),
            )
            .await?;
        let dns = started.elapsed();
        let stream = deadline
            .bound(
                || format!("connecting to {url}"),
                connect_first(&addresses, target),
            )
            .await?;
        let connect = started.elapsed() - dns;
        if !target.https {
            let connection = handshake(stream, target).await?;
            let tls = None;
            return Ok((connection, Phases { dns, connect, tls }));
        }
        let connector = if verify {
            &self.verified
        } else {
            &self.unverified
        };
        let server_name = target.server_name()?;
        let handshake_started = Instant::now();
        let stream = deadline
            .bound(|| format!("TLS handshake with {url}"), async {
                connector
                    .connect(server_name, stream)
                    .await
                    .map_err(|error| {
                        target.failed(format!(
                            "TLS handshake with {} failed: {}",
                            target.host,
                            error_chain(&error)
                        ))
                    })
            })
            .await?;
        let tls = Some(handshake_started.elapsed());
        let connection = handshake(stream, target).await?;
        Ok((connection, Phases { dns, connect, tls }))
    }
}

/// What a run that waits too long for the response head waited for.
fn waiting_for_head<'a>(target: &'a Target<'_>) -> impl FnOnce() -> String + 'a {
    move || format!("waiting for the response head from {}", target.url)
}

/// The output of a run that got an answer: the line, `time` (the value thresholds apply to),
/// the phases of a new connection, `firstbyte` and `size`.
fn measured(exchange: &Exchange) -> ProbeOutput {
    let elapsed = seconds(exchange.total);
    let answer = &exchange.answer;
    let status_line = format!(
        "{:?} {}",
        answer.head.version,
        status_text(answer.head.status)
    );
    let mut output = ProbeOutput::measured(
        "http",
        elapsed,
        format!(
            "{status_line} - {} bytes in {elapsed:.3} second response time",
            answer.size
        ),
    )
    .with_perf("time", elapsed, "s");
    if let Some(phases) = &exchange.phases {
        output = output.with_perf("dns", seconds(phases.dns), "s").with_perf(
            "connect",
            seconds(phases.connect),
            "s",
        );
        if let Some(tls) = phases.tls {
            output = output.with_perf("tls", seconds(tls), "s");
        }
    }
    output
        .with_perf("firstbyte", seconds(answer.firstbyte), "s")
        .with_perf("size", answer.size as f64, "B")
}

/// Readies a request for hyper's connection API, which sends the target as given and adds no
/// `Host`: origin-form target, `Host`, and `Connection: close` when the connection is not
/// kept; headers the check sets win.
fn to_origin_form(request: &mut Request<Full<Bytes>>, target: &Target, close: bool) -> Result<()> {
    let origin = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    *request.uri_mut() = origin
        .parse()
        .map_err(|error| ProbeError::InvalidSpec(format!("bad path {origin:?}: {error}")))?;
    let host = HeaderValue::from_str(&target.host_header())
        .map_err(|_| ProbeError::InvalidSpec(format!("bad host {:?}", target.host)))?;
    let headers = request.headers_mut();
    headers.entry(HOST).or_insert(host);
    if close {
        headers
            .entry(CONNECTION)
            .or_insert(HeaderValue::from_static("close"));
    }
    Ok(())
}

/// Connects to the first of `addresses` that accepts, with Nagle's algorithm off.
async fn connect_first(addresses: &[SocketAddr], target: &Target<'_>) -> Result<TcpStream> {
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => last_error = Some(error),
        }
    }
    let reason = last_error.map(|e| e.to_string()).unwrap_or_default();
    Err(target.failed(format!("connect: {reason}")))
}

/// Starts HTTP/1.1 on `stream`, driving the connection in a task of its own.
async fn handshake<S>(stream: S, target: &Target<'_>) -> Result<Connection>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| target.failed(error_chain(&error)))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    })
    .abort_handle();
    Ok(Connection { sender, driver })
}

/// Sends `request` on `connection` and waits for the response head.
async fn send(
    connection: &mut Connection,
    request: Request<Full<Bytes>>,
    target: &Target<'_>,
    deadline: Deadline,
) -> Result<Response<Incoming>> {
    deadline
        .bound(waiting_for_head(target), async {
            connection
                .sender
                .send_request(request)
                .await
                .map_err(|error| target.failed(error_chain(&error)))
        })
        .await
}

/// Reads the body of `response`, bounded; `firstbyte` counts from `since`.
async fn read_answer(
    response: Response<Incoming>,
    since: Instant,
    target: &Target<'_>,
    deadline: Deadline,
) -> Result<Answer> {
    let firstbyte = since.elapsed();
    let (head, body) = response.into_parts();
    let (body, size) = deadline
        .bound(|| format!("reading the body from {}", target.url), async {
            read_body(body)
                .await
                .map_err(|reason| target.failed(reason))
        })
        .await?;
    Ok(Answer {
        head,
        body,
        size,
        firstbyte,
    })
}

/// The `Authorization` header of `auth`, marked sensitive; its value is never shown.
fn authorization(auth: &HttpAuth, secrets: &CheckSecrets) -> Result<HeaderValue> {
    let value = match credentials(auth)? {
        Credentials::Basic { username, password } => {
            let password = secrets.get(password)?;
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            format!("Basic {pair}")
        }
        Credentials::Bearer(token) => format!("Bearer {}", secrets.get(token)?),
    };
    let mut header = HeaderValue::from_str(&value).map_err(|_| {
        ProbeError::InvalidSpec(
            "the credentials of auth hold characters not allowed in a header".to_owned(),
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// The kind of credentials `auth` names.
enum Credentials<'a> {
    Basic {
        username: &'a str,
        password: &'a CheckSecret,
    },
    Bearer(&'a CheckSecret),
}

/// Which credentials `auth` names: a username with a password Secret, or a bearer token
/// Secret, and not both.
fn credentials(auth: &HttpAuth) -> Result<Credentials<'_>> {
    let invalid = |what: &str| Err(ProbeError::InvalidSpec(format!("auth {what}")));
    match (
        &auth.username,
        &auth.password_secret,
        &auth.bearer_token_secret,
    ) {
        (Some(username), Some(password), None) => Ok(Credentials::Basic {
            username: super::substituted("auth.username", username)?,
            password,
        }),
        (None, None, Some(token)) => Ok(Credentials::Bearer(token)),
        (_, Some(_), Some(_)) | (Some(_), None, Some(_)) => {
            invalid("needs exactly one of bearerTokenSecret or username with passwordSecret")
        }
        (None, Some(_), None) => invalid("passwordSecret needs a username"),
        (Some(_), None, None) => invalid("username needs a passwordSecret"),
        (None, None, None) => invalid("names no credentials"),
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
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid(format!("url {url:?} has no host")));
    }
    if let Some(auth) = &spec.auth {
        credentials(auth)?;
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
async fn read_body(mut body: Incoming) -> std::result::Result<(Vec<u8>, usize), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(url: &'a str, uri: &'a Uri) -> Target<'a> {
        Target::of(url, uri).unwrap()
    }

    #[test]
    fn host_header_has_the_port_only_when_it_is_not_the_default() {
        for (url, host) in [
            ("http://example.com/", "example.com"),
            ("http://example.com:80/", "example.com"),
            ("http://example.com:8080/x", "example.com:8080"),
            ("https://example.com:443/", "example.com"),
            ("https://example.com:80/", "example.com:80"),
            ("https://[::1]:8443/", "[::1]:8443"),
        ] {
            let uri: Uri = url.parse().unwrap();
            assert_eq!(target(url, &uri).host_header(), host, "{url}");
        }
    }

    #[test]
    fn requests_use_the_origin_form_with_host_and_close_unless_kept() {
        let url = "http://127.0.0.1:8080/health?deep=1";
        let spec = HttpProbe {
            url: url.into(),
            method: "GET".into(),
            expect_status: Vec::new(),
            body_match: None,
            verify_certificate: true,
            headers: Default::default(),
            reuse_connection: false,
            auth: None,
        };
        let mut request = request(&spec).unwrap();
        let uri = request.uri().clone();
        to_origin_form(&mut request, &target(url, &uri), true).unwrap();
        assert_eq!(request.uri(), "/health?deep=1");
        assert_eq!(request.headers()[HOST], "127.0.0.1:8080");
        assert_eq!(request.headers()[CONNECTION], "close");

        let mut kept = super::request(&spec).unwrap();
        to_origin_form(&mut kept, &target(url, &uri), false).unwrap();
        assert!(kept.headers().get(CONNECTION).is_none());
    }

    #[test]
    fn ipv6_server_names_lose_their_brackets() {
        let uri: Uri = "https://[::1]:8443/".parse().unwrap();
        let name = target("https://[::1]:8443/", &uri).server_name().unwrap();
        assert_eq!(name.to_str(), "::1");
    }

    #[test]
    fn auth_needs_exactly_one_kind_of_credentials() {
        let secret = vedette_crds::check::CheckSecret {
            name: "web".into(),
            key: "password".into(),
            namespace: None,
        };
        let auth = |username: Option<&str>, password: bool, token: bool| HttpAuth {
            username: username.map(str::to_owned),
            password_secret: password.then(|| secret.clone()),
            bearer_token_secret: token.then(|| secret.clone()),
        };
        assert!(matches!(
            credentials(&auth(Some("u"), true, false)),
            Ok(Credentials::Basic { username: "u", .. })
        ));
        assert!(matches!(
            credentials(&auth(None, false, true)),
            Ok(Credentials::Bearer(_))
        ));
        for wrong in [
            auth(Some("u"), true, true),
            auth(None, true, false),
            auth(Some("u"), false, false),
            auth(None, false, false),
            auth(Some("$user$"), true, false),
        ] {
            let error = credentials(&wrong).err().expect("invalid");
            assert_eq!(error.state(), CheckState::Unknown, "{error}");
        }
    }
}
