//! The auth cache against a fake TokenReview endpoint (a real HTTP server speaking the
//! TokenReview API), and the HTTP API refusing a bad token with 401 without changing state.

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::routing::post;

use super::*;

/// A fake API server: `good` is valid for node `web-1`, anything else is not.
async fn fake_api_server(reviews: Arc<AtomicUsize>) -> kube::Client {
    let app = axum::Router::new().route(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        post(move |Json(review): Json<serde_json::Value>| {
            let reviews = reviews.clone();
            async move {
                reviews.fetch_add(1, Ordering::SeqCst);
                assert_eq!(review["spec"]["audiences"], serde_json::json!([AUDIENCE]));
                let valid = review["spec"]["token"] == "good";
                let status = if valid {
                    serde_json::json!({"authenticated": true, "user": {
                        "username": "system:serviceaccount:vedette:agent",
                        "extra": {NODE_NAME_EXTRA: ["web-1"]}}})
                } else {
                    serde_json::json!({"authenticated": false, "error": "invalid bearer token"})
                };
                let mut answer = review.clone();
                answer["status"] = status;
                Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = kube::Config::new(url.parse().unwrap());
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn reviews_are_cached_and_identities_must_match_the_agent() {
    let reviews = Arc::new(AtomicUsize::new(0));
    let client = fake_api_server(reviews.clone()).await;
    let auth = Authenticator::new(
        Arc::new(KubeTokenReviewer::new(client)),
        Duration::from_secs(60),
    );
    let identity = auth.authenticate(Some("Bearer good")).await.unwrap();
    assert_eq!(identity.node_name.as_deref(), Some("web-1"));
    assert!(identity.authorize("web-1").is_ok());
    assert!(matches!(
        identity.authorize("web-2"),
        Err(Error::Forbidden { .. })
    ));
    auth.authenticate(Some("Bearer good")).await.unwrap();
    assert_eq!(
        reviews.load(Ordering::SeqCst),
        1,
        "the second request hit the cache"
    );
    let bad = auth.authenticate(Some("Bearer bad")).await.unwrap_err();
    assert_eq!(bad, Error::Invalid("invalid bearer token".into()));
    assert_eq!(auth.authenticate(None).await.unwrap_err(), Error::Missing);
    assert_eq!(reviews.load(Ordering::SeqCst), 2);

    let expiring = Authenticator::new(
        Arc::new(KubeTokenReviewer::new(
            fake_api_server(reviews.clone()).await,
        )),
        Duration::from_millis(1),
    );
    expiring.authenticate(Some("Bearer good")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    expiring.authenticate(Some("Bearer good")).await.unwrap();
    assert_eq!(
        reviews.load(Ordering::SeqCst),
        4,
        "an expired answer is reviewed again"
    );
}

/// Counts reviews and answers after a pause; `down` answers that the API server failed.
struct SlowReviewer {
    reviews: AtomicUsize,
    down: bool,
}

impl TokenReviewer for SlowReviewer {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Identity, Error>> {
        Box::pin(async move {
            self.reviews.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.down {
                return Err(Error::Unavailable("connection refused".into()));
            }
            Ok(Identity {
                username: token.to_owned(),
                node_name: None,
                groups: Vec::new(),
            })
        })
    }
}

#[tokio::test]
async fn concurrent_requests_with_one_new_token_share_one_review() {
    let reviewer = Arc::new(SlowReviewer {
        reviews: AtomicUsize::new(0),
        down: false,
    });
    let auth = Arc::new(Authenticator::new(
        reviewer.clone(),
        Duration::from_secs(60),
    ));
    let requests = (0..20).map(|_| {
        let auth = auth.clone();
        tokio::spawn(async move { auth.authenticate(Some("Bearer shared")).await })
    });
    for request in requests.collect::<Vec<_>>() {
        assert_eq!(request.await.unwrap().unwrap().username, "shared");
    }
    assert_eq!(reviewer.reviews.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_review_is_not_cached() {
    let reviewer = Arc::new(SlowReviewer {
        reviews: AtomicUsize::new(0),
        down: true,
    });
    let auth = Authenticator::new(reviewer.clone(), Duration::from_secs(60));
    for _ in 0..2 {
        let error = auth.authenticate(Some("Bearer t")).await.unwrap_err();
        assert_eq!(error, Error::Unavailable("connection refused".into()));
    }
    assert_eq!(reviewer.reviews.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_bad_token_is_refused_with_401_and_changes_nothing() {
    use crate::http::{Api, router, state_view};
    use crate::ingest::Ingest;
    use crate::metrics::SatelliteMetrics;
    use crate::plans::Plans;
    use vedette_agent::spool::{Spool, SpoolConfig};

    let dir = tempfile::tempdir().unwrap();
    let client = fake_api_server(Arc::new(AtomicUsize::new(0))).await;
    let metrics = Arc::new(SatelliteMetrics::default());
    let spool = Spool::open(SpoolConfig::new(dir.path().join("spool"))).unwrap();
    let ingest = Ingest::open(
        "s",
        spool.clone(),
        &dir.path().join("snap"),
        None,
        metrics.clone(),
    );
    let api = Arc::new(Api {
        zone: "core".into(),
        replica: "s".into(),
        namespace: "vedette".into(),
        plans: Arc::new(Plans::default()),
        ingest: Arc::new(ingest.unwrap()),
        auth: Auth::Tokens(Authenticator::new(
            Arc::new(KubeTokenReviewer::new(client)),
            Duration::from_secs(60),
        )),
        registry: metrics.registry(),
        metrics,
        max_body_bytes: 1 << 20,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/results", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, router(api.clone())).into_future());
    let batch = serde_json::json!({"agent": "web-1", "floor": 1, "entries": [
        {"sequence": 1, "report": serde_json::to_value(
            crate::table::tests::change("web-1", "a", vedette_crds::template::CheckState::Critical, 1)).unwrap()}]});
    let http = reqwest::Client::new();
    for token in [None, Some("bad")] {
        let mut request = http.post(&url).json(&batch);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "token {token:?}");
        assert!(response.text().await.unwrap().contains("token"));
    }
    assert_eq!(spool.stats().last_sequence, 0, "nothing stored");
    assert_eq!(state_view(&api).applied.state_changes, 0, "nothing applied");
    let other_node = http
        .post(&url)
        .json(&serde_json::json!({"agent": "web-2", "floor": 1, "entries": []}));
    assert_eq!(
        other_node
            .bearer_auth("good")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    let response = http
        .post(&url)
        .json(&batch)
        .bearer_auth("good")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["upTo"],
        1
    );
    assert_eq!(state_view(&api).applied.state_changes, 1);
}
