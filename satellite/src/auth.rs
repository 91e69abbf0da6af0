//! Authentication of agents (F36): `Authorization: Bearer <token>`, a projected
//! ServiceAccount token with the `vedette` audience, checked with a TokenReview against the
//! API server and cached for a minute (by the token's SHA-256, never the token itself).
//! The identity must fit the batch: when the token names the node its pod runs on
//! (`authentication.kubernetes.io/node-name`, Kubernetes ≥ 1.30), that node must be the
//! batch's agent (or the plan's host).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use moka::future::Cache;
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
    /// The user's groups (for a SubjectAccessReview).
    pub groups: Vec<String>,
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

    /// Whether this identity may send what a satellite forwards (`POST /v1/satellite`, to
    /// the masters or to a parent zone's satellites): a ServiceAccount of `namespace`, where
    /// the operator runs the satellites.
    pub fn authorize_satellite(&self, namespace: &str) -> Result<(), Error> {
        let prefix = format!("system:serviceaccount:{namespace}:");
        if self.username.starts_with(&prefix) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                user: self.username.clone(),
                agent: format!("satellites of namespace {namespace}"),
            })
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
    audiences: Option<Vec<String>>,
}

impl KubeTokenReviewer {
    /// A reviewer using `client`, for tokens issued for the [`AUDIENCE`] `vedette` (agents,
    /// satellites).
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            audiences: Some(vec![AUDIENCE.to_owned()]),
        }
    }

    /// A reviewer for tokens issued for the API server itself (people and tools reading the
    /// masters' APIs with `kubectl create token` or their kubeconfig's token).
    pub fn for_api_server_tokens(client: kube::Client) -> Self {
        Self {
            client,
            audiences: None,
        }
    }
}

impl TokenReviewer for KubeTokenReviewer {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, Error>> {
        Box::pin(async move {
            let api: Api<TokenReview> = Api::all(self.client.clone());
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    audiences: self.audiences.clone(),
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
                groups: user.groups.unwrap_or_default(),
            })
        })
    }
}

/// Answers by the SHA-256 of the token, with when they were given.
/// Most token answers kept; beyond, the least recently used go first. Tokens live for a
/// minute in the cache, so this is the number of distinct tokens seen in a minute that stay
/// cheap: a zone of 10,000 agents uses about 10,000.
pub const MAX_CACHED_TOKENS: u64 = 50_000;

/// Checks bearer tokens with a [`TokenReviewer`], caching each answer (a valid identity or an
/// invalid token, not a failed review) for `ttl` by the token's SHA-256. The cache is bounded
/// ([`MAX_CACHED_TOKENS`]) and concurrent requests with the same uncached token share one
/// review (`moka`), so a fleet reconnecting at once costs one TokenReview per token.
pub struct Authenticator {
    reviewer: Arc<dyn TokenReviewer>,
    cache: Cache<[u8; 32], Result<Identity, Error>>,
}

impl Authenticator {
    /// Reviews tokens with `reviewer`, caching answers for `ttl`.
    pub fn new(reviewer: Arc<dyn TokenReviewer>, ttl: Duration) -> Self {
        Self {
            reviewer,
            cache: Cache::builder()
                .max_capacity(MAX_CACHED_TOKENS)
                .time_to_live(ttl)
                .build(),
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
        let review = async {
            match self.reviewer.review(token).await {
                // Not cached: the next request asks the API server again.
                Err(Error::Unavailable(message)) => Err(Error::Unavailable(message)),
                answer => Ok(answer),
            }
        };
        match self.cache.try_get_with(key, review).await {
            Ok(answer) => answer,
            Err(unavailable) => Err((*unavailable).clone()),
        }
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
