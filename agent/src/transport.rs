//! The agent's connection to its upstreams (satellites): result batches over HTTP keep-alive
//! and plan fetches with `If-None-Match`, to a list of upstreams (primary first, then
//! standbys) with failover. Every connection is opened by the agent (F4).
//!
//! Clones of a transport share one count of the upstreams' answers ([`Transport::answers`]):
//! a send loop backing off learns from a plan fetch that succeeded that an upstream is back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH};

use serde::Serialize;
use tokio::sync::watch;

use vedette_protocol::report::{Ack, Batch};

/// Where agents send result batches.
pub const RESULTS_PATH: &str = "/v1/results";
/// Where satellites send their batches to the masters.
pub const SATELLITE_PATH: &str = "/v1/satellite";

/// Why a request to an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection, timeout, or a broken response.
    #[error("failed to reach upstream {url}: {source}")]
    Unreachable {
        /// The upstream.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The upstream answered with an error status.
    #[error("upstream {url} answered {status}: {body}")]
    Refused {
        /// The upstream.
        url: String,
        /// The status.
        status: StatusCode,
        /// The first part of its body.
        body: String,
    },
    /// The credential file could not be read.
    #[error("failed to read token {path}: {source}")]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// A label for metrics: the variant name, never the message.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Unreachable { .. } => "unreachable",
            Error::Refused { .. } => "refused",
            Error::Token { .. } => "token",
        }
    }
}

/// The result of a plan fetch.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanFetch {
    /// The plan did not change since the ETag given.
    NotModified,
    /// A new plan (unvalidated bytes) and its ETag.
    Changed {
        /// The body.
        body: Vec<u8>,
        /// Its ETag, if the upstream sent one.
        etag: Option<String>,
    },
}

/// How long requests stay on a standby before the primary is tried again.
pub const FAILBACK_AFTER: Duration = Duration::from_secs(300);

/// Upstreams in order of preference and the one currently used. After a failover, the
/// primary is tried again once [`FAILBACK_AFTER`] has passed (one request; if it fails, the
/// failover goes on from there), so that agents return to it when it is back.
#[derive(Debug, Clone)]
pub struct Upstreams {
    urls: Vec<String>,
    current: usize,
    /// When requests left the primary.
    left_primary: Option<Instant>,
}

impl Upstreams {
    /// Upstream base URLs (e.g. `http://satellite-0:7080`), primary first.
    pub fn new(urls: Vec<String>) -> Self {
        let urls = urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect();
        Self {
            urls,
            current: 0,
            left_primary: None,
        }
    }

    /// The upstream to use now.
    pub fn current(&self) -> &str {
        &self.urls[self.current]
    }

    /// Moves to the next upstream (wrapping), after a failure.
    pub fn fail_over(&mut self) {
        self.fail_over_at(Instant::now());
    }

    /// [`Self::fail_over`] at `now`.
    pub fn fail_over_at(&mut self, now: Instant) {
        self.current = (self.current + 1) % self.urls.len();
        self.left_primary = (self.current != 0).then_some(now);
    }

    /// Goes back to the primary if requests left it [`FAILBACK_AFTER`] ago or more.
    pub fn fail_back_at(&mut self, now: Instant) {
        if self
            .left_primary
            .is_some_and(|left| now.saturating_duration_since(left) >= FAILBACK_AFTER)
        {
            self.current = 0;
            self.left_primary = None;
        }
    }

    /// How many upstreams there are.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }
}

/// An HTTP client bound to a list of upstreams.
#[derive(Debug, Clone)]
pub struct Transport {
    client: reqwest::Client,
    upstreams: Upstreams,
    token_file: Option<PathBuf>,
    results_path: &'static str,
    /// Successful answers of any upstream to any request of this transport or its clones.
    answers: Arc<watch::Sender<u64>>,
}

impl Transport {
    /// A client with keep-alive connections and a per-request timeout. `token_file` holds a
    /// bearer token (a projected ServiceAccount token), read at every request so that
    /// rotation is picked up.
    pub fn new(upstreams: Upstreams, token_file: Option<PathBuf>, timeout: Duration) -> Self {
        assert!(!upstreams.is_empty(), "at least one upstream is required");
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("vedette-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is valid");
        Self {
            client,
            upstreams,
            token_file,
            results_path: RESULTS_PATH,
            answers: Arc::new(watch::Sender::new(0)),
        }
    }

    /// The count of successful answers (a batch acknowledged, a plan or `304 Not Modified`)
    /// to this transport and its clones; it changes with each one.
    pub fn answers(&self) -> watch::Receiver<u64> {
        self.answers.subscribe()
    }

    fn answered<T>(&self, result: &Result<T, Error>) {
        if result.is_ok() {
            self.answers.send_modify(|count| *count += 1);
        }
    }

    /// The same client posting batches to `path` (e.g. [`SATELLITE_PATH`]).
    pub fn with_results_path(mut self, path: &'static str) -> Self {
        self.results_path = path;
        self
    }

    /// The upstream requests go to now.
    pub fn current_upstream(&self) -> &str {
        self.upstreams.current()
    }

    /// Sends a batch to the current upstream; on failure moves to the next one and returns the
    /// error (the caller backs off and retries).
    pub async fn send<R: Serialize>(&mut self, batch: &Batch<R>) -> Result<Ack, Error> {
        self.upstreams.fail_back_at(Instant::now());
        let url = format!("{}{}", self.upstreams.current(), self.results_path);
        let result = self.try_send(&url, batch).await;
        self.answered(&result);
        if result.is_err() {
            self.upstreams.fail_over();
        }
        result
    }

    async fn try_send<R: Serialize>(&self, url: &str, batch: &Batch<R>) -> Result<Ack, Error> {
        let request = self.authorized(self.client.post(url).json(batch))?;
        let response = request
            .send()
            .await
            .map_err(|source| unreachable(url, source))?;
        let response = ensure_success(url, response).await?;
        response
            .json::<Ack>()
            .await
            .map_err(|source| unreachable(url, source))
    }

    /// Asks the current upstream whether it is back (`GET /healthz`, no credentials): a send
    /// loop waiting out its backoff against it retries at once when it answers
    /// ([`Transport::answers`]). Does not fail over.
    pub async fn probe(&self) -> Result<(), Error> {
        let url = format!("{}/healthz", self.upstreams.current());
        let result = async {
            let response = self
                .client
                .get(&url)
                .send()
                .await
                .map_err(|source| unreachable(&url, source))?;
            ensure_success(&url, response).await.map(drop)
        }
        .await;
        self.answered(&result);
        result
    }

    /// Fetches the plan of `host` from the current upstream, sending `etag` as
    /// `If-None-Match`; on failure moves to the next upstream.
    pub async fn fetch_plan(&mut self, host: &str, etag: Option<&str>) -> Result<PlanFetch, Error> {
        self.upstreams.fail_back_at(Instant::now());
        let url = format!("{}/v1/plan", self.upstreams.current());
        let result = self.try_fetch_plan(&url, host, etag).await;
        self.answered(&result);
        if result.is_err() {
            self.upstreams.fail_over();
        }
        result
    }

    async fn try_fetch_plan(
        &self,
        url: &str,
        host: &str,
        etag: Option<&str>,
    ) -> Result<PlanFetch, Error> {
        let mut request = self.client.get(url).query(&[("host", host)]);
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = self
            .authorized(request)?
            .send()
            .await
            .map_err(|s| unreachable(url, s))?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(PlanFetch::NotModified);
        }
        let response = ensure_success(url, response).await?;
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|s| unreachable(url, s))?
            .to_vec();
        Ok(PlanFetch::Changed { body, etag })
    }

    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let Some(path) = &self.token_file else {
            return Ok(request);
        };
        let token = std::fs::read_to_string(path).map_err(|source| Error::Token {
            path: path.clone(),
            source,
        })?;
        Ok(request.bearer_auth(token.trim()))
    }
}

fn unreachable(url: &str, source: reqwest::Error) -> Error {
    Error::Unreachable {
        url: url.to_owned(),
        source,
    }
}

async fn ensure_success(
    url: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(512);
    Err(Error::Refused {
        url: url.to_owned(),
        status,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_return_to_the_primary_after_the_failback_delay() {
        let mut upstreams = Upstreams::new(vec!["http://a/".into(), "http://b".into()]);
        let start = Instant::now();
        assert_eq!(upstreams.current(), "http://a");
        upstreams.fail_over_at(start);
        assert_eq!(upstreams.current(), "http://b");
        upstreams.fail_back_at(start + FAILBACK_AFTER - Duration::from_secs(1));
        assert_eq!(upstreams.current(), "http://b", "too early");
        upstreams.fail_back_at(start + FAILBACK_AFTER);
        assert_eq!(upstreams.current(), "http://a");

        // The primary still fails: on to the standby again, for another full delay.
        let again = start + FAILBACK_AFTER;
        upstreams.fail_over_at(again);
        assert_eq!(upstreams.current(), "http://b");
        upstreams.fail_back_at(again + Duration::from_secs(10));
        assert_eq!(upstreams.current(), "http://b");
    }

    #[test]
    fn wrapping_back_to_the_primary_is_no_failover() {
        let mut upstreams = Upstreams::new(vec!["http://a".into(), "http://b".into()]);
        let start = Instant::now();
        upstreams.fail_over_at(start);
        upstreams.fail_over_at(start);
        assert_eq!(upstreams.current(), "http://a");
        upstreams.fail_back_at(start + FAILBACK_AFTER * 2);
        assert_eq!(upstreams.current(), "http://a");
    }
}
