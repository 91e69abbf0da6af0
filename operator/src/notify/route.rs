//! Which receivers an alert goes to (pure): its namespace's routes in order (the first match
//! ends the search unless it says `continue`), the receivers its rule or clause names in
//! `notify`, and the cluster's default receiver when nothing of its namespace took it.

use vedette_crds::notification::{MatchType, Matcher};

use super::alert::Alert;
use crate::compile::notify::{DEFAULT_GROUP_BY, RouteModel, Routing};
use vedette_crds::notification::{
    DEFAULT_GROUP_INTERVAL_SECONDS, DEFAULT_GROUP_WAIT_SECONDS, DEFAULT_REPEAT_INTERVAL_SECONDS,
};

/// A receiver: its namespace (empty: the cluster's default) and name.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ReceiverId {
    /// Namespace of the NotificationConfig, empty for the cluster default.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for ReceiverId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// The name of the cluster's default receiver.
pub const DEFAULT_RECEIVER: &str = "default";

/// Where an alert goes, with the grouping of the route that sent it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The receiver.
    pub receiver: ReceiverId,
    /// The route's grouping and timing (a `notify` uses the defaults).
    pub route: RouteModel,
    /// Which route of the namespace (`None`: a `notify`, or the default).
    pub route_index: Option<usize>,
}

/// The targets of `alert`, each receiver once (the first route that names it wins).
pub fn targets(alert: &Alert, routing: &Routing, has_default: bool) -> Vec<Target> {
    let namespace = alert.namespace();
    let mut found: Vec<Target> = Vec::new();
    let push = |target: Target, found: &mut Vec<Target>| {
        if !found.iter().any(|t| t.receiver == target.receiver) {
            found.push(target);
        }
    };
    if let Some(ns) = routing.namespaces.get(namespace) {
        for (index, route) in ns.routes.iter().enumerate() {
            if route.matchers.iter().all(|m| matches(m, alert)) {
                push(
                    Target {
                        receiver: ReceiverId {
                            namespace: namespace.to_owned(),
                            name: route.receiver.clone(),
                        },
                        route: route.clone(),
                        route_index: Some(index),
                    },
                    &mut found,
                );
                if !route.continue_ {
                    break;
                }
            }
        }
        for name in &alert.notify {
            if ns.receivers.contains_key(name) {
                push(
                    Target {
                        receiver: ReceiverId {
                            namespace: namespace.to_owned(),
                            name: name.clone(),
                        },
                        route: default_route(name),
                        route_index: None,
                    },
                    &mut found,
                );
            }
        }
    }
    if found.is_empty() && has_default {
        found.push(Target {
            receiver: ReceiverId {
                namespace: String::new(),
                name: DEFAULT_RECEIVER.to_owned(),
            },
            route: default_route(DEFAULT_RECEIVER),
            route_index: None,
        });
    }
    found
}

/// Alertmanager's defaults, grouping every check on its own.
pub fn default_route(receiver: &str) -> RouteModel {
    RouteModel {
        receiver: receiver.to_owned(),
        matchers: Vec::new(),
        group_by: DEFAULT_GROUP_BY.iter().map(|s| (*s).to_owned()).collect(),
        group_wait_seconds: DEFAULT_GROUP_WAIT_SECONDS,
        group_interval_seconds: DEFAULT_GROUP_INTERVAL_SECONDS,
        repeat_interval_seconds: DEFAULT_REPEAT_INTERVAL_SECONDS,
        continue_: false,
    }
}

/// Whether `matcher` holds for the alert (a missing label is the empty string, as in
/// Alertmanager).
pub fn matches(matcher: &Matcher, alert: &Alert) -> bool {
    let value = alert
        .labels
        .get(&matcher.name)
        .map(String::as_str)
        .unwrap_or_default();
    match matcher.match_type {
        MatchType::Equal => value == matcher.value,
        MatchType::NotEqual => value != matcher.value,
        MatchType::Regex => regex_matches(&matcher.value, value),
        MatchType::NotRegex => !regex_matches(&matcher.value, value),
    }
}

fn regex_matches(pattern: &str, value: &str) -> bool {
    // Compile checked the pattern; one that still fails matches nothing.
    crate::compile::notify::anchored(pattern)
        .map(|re| re.is_match(value))
        .unwrap_or(false)
}
