//! Plans served to agents: derived from the zone bundle with `plan_for`, serialized once per
//! host and cached until the bundle's hash changes. The ETag is the plan's hash, quoted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use vedette_protocol::plan::{ZoneBundle, content_hash, plan_for};

/// A plan ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedPlan {
    /// `"<plan hash>"`.
    pub etag: String,
    /// The plan's JSON.
    pub body: Bytes,
}

/// The plans of one bundle, computed on first request per host.
#[derive(Debug)]
pub struct PlanCache {
    bundle: Arc<ZoneBundle>,
    bundle_hash: String,
    plans: Mutex<HashMap<String, Option<Arc<ServedPlan>>>>,
}

impl PlanCache {
    /// An empty cache over `bundle`.
    pub fn new(bundle: Arc<ZoneBundle>) -> Self {
        Self {
            bundle_hash: content_hash(&*bundle),
            bundle,
            plans: Mutex::new(HashMap::new()),
        }
    }

    /// The bundle's hash.
    pub fn bundle_hash(&self) -> &str {
        &self.bundle_hash
    }

    /// The bundle.
    pub fn bundle(&self) -> &Arc<ZoneBundle> {
        &self.bundle
    }

    /// The plan of `host`; `None` when the bundle does not know the machine.
    pub fn plan(&self, host: &str) -> Option<Arc<ServedPlan>> {
        let mut plans = self.plans.lock().expect("plan cache lock");
        plans
            .entry(host.to_owned())
            .or_insert_with(|| {
                let plan = plan_for(&self.bundle, host)?;
                let body = serde_json::to_vec(&plan).expect("plans always serialize");
                Some(Arc::new(ServedPlan {
                    etag: format!("\"{}\"", plan.hash()),
                    body: Bytes::from(body),
                }))
            })
            .clone()
    }

    /// Hosts with a cached plan (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.plans.lock().expect("plan cache lock").len()
    }
}

/// The current bundle's plans; replaced (the cache invalidated) when the bundle changes.
#[derive(Debug, Default)]
pub struct Plans {
    current: RwLock<Option<Arc<PlanCache>>>,
}

impl Plans {
    /// Takes a bundle; returns false (and keeps the cache) when its hash is unchanged.
    pub fn set_bundle(&self, bundle: Arc<ZoneBundle>) -> bool {
        let cache = PlanCache::new(bundle);
        let mut current = self.current.write().expect("plans lock");
        if current.as_ref().is_some_and(|c| {
            c.bundle_hash == cache.bundle_hash && c.bundle.secrets == cache.bundle.secrets
        }) {
            return false;
        }
        *current = Some(Arc::new(cache));
        true
    }

    /// The plans of the current bundle; `None` before one is loaded.
    pub fn current(&self) -> Option<Arc<PlanCache>> {
        self.current.read().expect("plans lock").clone()
    }
}

/// Whether an `If-None-Match` header value matches `etag` (a list, `*`, weak tags).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vedette_protocol::plan::AgentSettings;

    fn bundle(interval: i64) -> Arc<ZoneBundle> {
        Arc::new(ZoneBundle {
            zone: "core".into(),
            settings: AgentSettings {
                keepalive_interval_seconds: interval,
                ..AgentSettings::default()
            },
            checks: Vec::new(),
            machines: BTreeMap::from([("web-1".into(), vec![])]),
            remote: Vec::new(),
            elements: Vec::new(),
            secrets: Default::default(),
        })
    }

    #[test]
    fn plans_are_cached_per_host_and_invalidated_by_a_new_bundle() {
        let plans = Plans::default();
        assert!(plans.current().is_none());
        assert!(plans.set_bundle(bundle(10)));
        let cache = plans.current().unwrap();
        let first = cache.plan("web-1").unwrap();
        assert!(Arc::ptr_eq(&first, &cache.plan("web-1").unwrap()));
        assert!(cache.plan("nobody").is_none());
        assert!(!plans.set_bundle(bundle(10)), "same bundle: cache kept");
        assert!(Arc::ptr_eq(&cache, &plans.current().unwrap()));
        assert!(plans.set_bundle(bundle(20)));
        let second = plans.current().unwrap().plan("web-1").unwrap();
        assert_ne!(first.etag, second.etag);
        let plan: vedette_protocol::plan::Plan = serde_json::from_slice(&second.body).unwrap();
        assert_eq!(second.etag, format!("\"{}\"", plan.hash()));
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_match() {
        assert!(etag_matches("\"a\"", "\"a\""));
        assert!(etag_matches("\"b\", W/\"a\"", "\"a\""));
        assert!(etag_matches("*", "\"a\""));
        assert!(!etag_matches("\"b\"", "\"a\""));
    }
}
