//! Who may read what the masters know: one rule for every read API (the history, the
//! dashboard and its live stream).
//!
//! The caller's bearer token is checked with a TokenReview (a token for the API server, as
//! `kubectl create token`, a kubeconfig or an OIDC id token gives), and every namespace with
//! a SubjectAccessReview: `get` on `rulesets.vedette.dev` in that namespace. What belongs to
//! no namespace (agents, zones, satellites) is shown to a caller who may `get` the
//! cluster-scoped `monitorzones`. Answers are cached for a minute. Standalone mode (loopback
//! only) and `--insecure-no-auth` answer everyone ([`ReadAccess::Open`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use moka::future::Cache;
use sha2::{Digest, Sha256};
use vedette_satellite::auth::{self, Authenticator, Identity};

/// How long an access answer is kept.
pub const ACCESS_TTL: Duration = Duration::from_secs(60);

/// Who may read what.
pub enum ReadAccess {
    /// Everyone reads everything (standalone on loopback, `--insecure-no-auth`).
    Open,
    /// Tokens and SubjectAccessReviews against the API server.
    Kube(Box<KubeAccess>),
}

/// Why a caller's access could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// No token, or one the API server refuses.
    #[error("{0}")]
    Unauthenticated(String),
    /// The API server could not be asked.
    #[error("{0}")]
    Unavailable(String),
}

/// An authenticated caller (or anyone, under [`ReadAccess::Open`]).
#[derive(Clone, Debug)]
pub struct Caller {
    /// Hash of the token, the key of the cached answers.
    token: [u8; 32],
    /// Who the API server says it is; `None` under [`ReadAccess::Open`].
    pub identity: Option<Identity>,
}

impl Caller {
    /// The caller's user name, for messages.
    pub fn name(&self) -> &str {
        self.identity
            .as_ref()
            .map_or("anyone", |identity| identity.username.as_str())
    }
}

/// What a caller may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visible {
    /// Every namespace.
    All,
    /// These namespaces only.
    Namespaces(BTreeSet<String>),
}

impl Visible {
    /// Whether `namespace` is visible.
    pub fn includes(&self, namespace: &str) -> bool {
        match self {
            Visible::All => true,
            Visible::Namespaces(set) => set.contains(namespace),
        }
    }

    /// The namespaces, `None` for all (as the history queries take them).
    pub fn as_list(&self) -> Option<Vec<String>> {
        match self {
            Visible::All => None,
            Visible::Namespaces(set) => Some(set.iter().cloned().collect()),
        }
    }
}

/// TokenReview for the caller, SubjectAccessReviews per namespace, both cached.
pub struct KubeAccess {
    authenticator: Authenticator,
    client: kube::Client,
    /// `(token hash, resource, namespace or "" for the cluster)` → allowed.
    answers: Cache<([u8; 32], &'static str, String), bool>,
}

impl KubeAccess {
    /// Access checked against the API server of `client`.
    pub fn new(client: kube::Client) -> Self {
        let reviewer = auth::KubeTokenReviewer::for_api_server_tokens(client.clone());
        KubeAccess {
            authenticator: Authenticator::new(Arc::new(reviewer), ACCESS_TTL),
            client,
            answers: Cache::builder()
                .max_capacity(auth::MAX_CACHED_TOKENS)
                .time_to_live(ACCESS_TTL)
                .build(),
        }
    }

    /// Whether `identity` may `get` `resource` in `namespace` (`None`: cluster-wide).
    async fn may_get(
        &self,
        token: [u8; 32],
        identity: &Identity,
        resource: &'static str,
        namespace: Option<&str>,
    ) -> Result<bool, AccessError> {
        let key = (token, resource, namespace.unwrap_or_default().to_owned());
        let review = async {
            let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(identity.username.clone()),
                    groups: Some(identity.groups.clone()),
                    resource_attributes: Some(ResourceAttributes {
                        namespace: namespace.map(str::to_owned),
                        verb: Some("get".into()),
                        group: Some(vedette_crds::GROUP.into()),
                        resource: Some(resource.into()),
                        ..ResourceAttributes::default()
                    }),
                    ..SubjectAccessReviewSpec::default()
                },
                ..SubjectAccessReview::default()
            };
            let answer = api.create(&PostParams::default(), &review).await?;
            Ok::<_, kube::Error>(answer.status.is_some_and(|s| s.allowed))
        };
        self.answers
            .try_get_with(key, review)
            .await
            .map_err(|e| AccessError::Unavailable(format!("failed to review access: {e}")))
    }
}

impl ReadAccess {
    /// The caller whose `Authorization` header value this is.
    pub async fn caller(&self, authorization: Option<&str>) -> Result<Caller, AccessError> {
        let token: [u8; 32] = Sha256::digest(authorization.unwrap_or_default().as_bytes()).into();
        let ReadAccess::Kube(access) = self else {
            return Ok(Caller {
                token,
                identity: None,
            });
        };
        let identity = access
            .authenticator
            .authenticate(authorization)
            .await
            .map_err(|e| match e {
                auth::Error::Unavailable(m) => AccessError::Unavailable(m),
                other => AccessError::Unauthenticated(other.to_string()),
            })?;
        Ok(Caller {
            token,
            identity: Some(identity),
        })
    }

    /// Whether `caller` may read the checks of `namespace` (`None`: of every namespace).
    pub async fn may_read(
        &self,
        caller: &Caller,
        namespace: Option<&str>,
    ) -> Result<bool, AccessError> {
        match (self, &caller.identity) {
            (ReadAccess::Kube(access), Some(identity)) => {
                access
                    .may_get(caller.token, identity, "rulesets", namespace)
                    .await
            }
            (ReadAccess::Kube(_), None) => Ok(false),
            (ReadAccess::Open, _) => Ok(true),
        }
    }

    /// Whether `caller` may see what belongs to no namespace: zones, satellites, agents.
    pub async fn may_read_cluster(&self, caller: &Caller) -> Result<bool, AccessError> {
        match (self, &caller.identity) {
            (ReadAccess::Kube(access), Some(identity)) => {
                access
                    .may_get(caller.token, identity, "monitorzones", None)
                    .await
            }
            (ReadAccess::Kube(_), None) => Ok(false),
            (ReadAccess::Open, _) => Ok(true),
        }
    }

    /// The namespaces of `candidates` that `caller` may read ([`Visible::All`] when it may read
    /// every namespace).
    pub async fn visible(
        &self,
        caller: &Caller,
        candidates: impl IntoIterator<Item = String>,
    ) -> Result<Visible, AccessError> {
        if self.may_read(caller, None).await? {
            return Ok(Visible::All);
        }
        let mut readable = BTreeSet::new();
        for namespace in candidates {
            if self.may_read(caller, Some(&namespace)).await? {
                readable.insert(namespace);
            }
        }
        Ok(Visible::Namespaces(readable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_is_all_or_the_listed_namespaces() {
        let some = Visible::Namespaces(["shop".to_owned()].into());
        assert!(some.includes("shop") && !some.includes("billing"));
        assert_eq!(some.as_list(), Some(vec!["shop".to_owned()]));
        assert!(Visible::All.includes("anything"));
        assert_eq!(Visible::All.as_list(), None);
    }

    #[tokio::test]
    async fn open_access_lets_everyone_read_everything() {
        let access = ReadAccess::Open;
        let caller = access.caller(None).await.unwrap();
        assert_eq!(caller.name(), "anyone");
        assert!(access.may_read(&caller, Some("shop")).await.unwrap());
        assert!(access.may_read_cluster(&caller).await.unwrap());
        let visible = access.visible(&caller, ["shop".to_owned()]).await.unwrap();
        assert_eq!(visible, Visible::All);
    }
}
