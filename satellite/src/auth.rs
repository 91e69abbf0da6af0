//! Authentication of agents (F36): `Authorization: Bearer <token>`, a projected
//! ServiceAccount token with the `vedette` audience, checked with a TokenReview against the
//! API server and cached for a minute (by the token's SHA-256, never the token itself).
//! The identity must fit the batch: when the token names the node its pod runs on
//! (`authentication.kubernetes.io/node-name`, Kubernetes ≥ 1.30), that node must be the
//! batch's agent (or the plan's host).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};

/// The audience agents' tokens are issued for.
pub const AUDIENCE: &str = "vedette";
/// `user.extra` key of the node a pod-bound token's pod runs on.
pub const NODE_NAME_EXTRA: &str = "authentication.kubernetes.io/node-name";

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No bearer token.
    #[error("missing bearer token")]
    Missing,
    /// The API server says the token is not valid.
    #[error("token is not valid: {0}")]
    Invalid(String),
    /// Authenticated, but as someone who may not speak for this agent.
    #[error("{user} may not send for {agent}")]
    Forbidden {
        /// The authenticated user.
        user: String,
        /// The agent asked for.
        agent: String,
    },
    /// The TokenReview could not be made.
    #[error("failed to review the token: {0}")]
    Unavailable(String),
}

impl Error {
    /// A label for metrics: the variant, never the message.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Missing | Error::Invalid(_) => "unauthenticated",
            Error::Forbidden { .. } => "forbidden",
            Error::Unavailable(_) => "auth_unavailable",
        }
    }
}

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub username: String,
    /// The node the token's pod runs on, when the token says.
    pub node_name: Option<String>,
}

impl Identity {
    /// Whether this identity may send results for (or fetch the plan of) `agent`.
    pub fn authorize(&self, agent: &str) -> Result<(), Error> {
        match &self.node_name {
            Some(node) if node != agent => Err(Error::Forbidden {
                user: format!("{} on node {node}", self.username),
                agent: agent.to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// Checks a token.
pub trait TokenReviewer: Send + Sync {
    /// The identity of `token`, or why it has none.
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, Error>>;
}

/// TokenReviews against the API server.
pub struct KubeTokenReviewer {
    client: kube::Client,
}

impl KubeTokenReviewer {
    /// A reviewer using `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, Error>> {
        Box::pin(async move {
            let api: Api<TokenReview> = Api::all(self.client.clone());
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    audiences: Some(vec![AUDIENCE.to_owned()]),
                },
                ..TokenReview::default()
            };
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            let status = answer.status.unwrap_or_default();
            if status.authenticated != Some(true) {
                return Err(Error::Invalid(
                    status
                        .error
                        .unwrap_or_else(|| "not authenticated".to_owned()),
                ));
            }
            let user = status.user.unwrap_or_default();
            let node_name = user
                .extra
                .as_ref()
                .and_then(|extra| extra.get(NODE_NAME_EXTRA))
                .and_then(|values| values.first().cloned());
            Ok(Identity {
                username: user.username.unwrap_or_default(),
                node_name,
            })
        })
    }
}

/// Answers by the SHA-256 of the token, with when they were given.
type Cache = HashMap<[u8; 32], (Result<Identity, Error>, Instant)>;

/// Reviews tokens, remembering answers (valid and invalid) for `ttl`; an unavailable API
/// server is not remembered.
pub struct Authenticator {
    reviewer: Arc<dyn TokenReviewer>,
    ttl: Duration,
    cache: Mutex<Cache>,
}

impl Authenticator {
    /// An authenticator caching answers of `reviewer` for `ttl`.
    pub fn new(reviewer: Arc<dyn TokenReviewer>, ttl: Duration) -> Self {
        Self {
            reviewer,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The identity behind an `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, Error> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(Error::Missing)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((answer, at)) = self.cache.lock().expect("token cache lock").get(&key)
            && now.duration_since(*at) < self.ttl
        {
            return answer.clone();
        }
        let answer = self.reviewer.review(token).await;
        if !matches!(answer, Err(Error::Unavailable(_))) {
            let mut cache = self.cache.lock().expect("token cache lock");
            cache.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
            cache.insert(key, (answer.clone(), now));
        }
        answer
    }
}

/// How requests are authenticated.
pub enum Auth {
    /// Not at all (`--insecure-no-auth`, standalone).
    Disabled,
    /// Bearer tokens.
    Tokens(Authenticator),
}

impl Auth {
    /// The identity behind the request (`None`: authentication is disabled).
    pub async fn identify(&self, authorization: Option<&str>) -> Result<Option<Identity>, Error> {
        match self {
            Auth::Disabled => Ok(None),
            Auth::Tokens(authenticator) => {
                authenticator.authenticate(authorization).await.map(Some)
            }
        }
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
