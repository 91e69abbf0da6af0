//! NotificationConfigs compiled into the routing the masters run ([`Routing`]), and every
//! `notify` of a RuleSet rule or a BusinessProcess clause checked against the receivers of
//! its namespace: an unknown receiver, a route to one, a matcher whose regular expression
//! does not compile or a receiver defined twice is a diagnostic on the object at fault. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vedette_crds::notification::{
    DEFAULT_GROUP_INTERVAL_SECONDS, DEFAULT_GROUP_WAIT_SECONDS, DEFAULT_REPEAT_INTERVAL_SECONDS,
    MatchType, Matcher, Receiver,
};
use vedette_crds::{BusinessProcess, NotificationConfig, RuleSet};

use super::diagnostic::{Diagnostics, ObjectRef, Reason};
use super::{name_of as name, namespace_of as namespace};

/// Kind name of notification configs.
pub const KIND_NOTIFICATION_CONFIG: &str = "NotificationConfig";

/// Labels a notification is grouped by when its route does not say.
pub const DEFAULT_GROUP_BY: [&str; 3] = ["ruleSet", "check", "host"];

/// How the masters route every namespace's notifications.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// Per namespace: its receivers and routes.
    pub namespaces: BTreeMap<String, NamespaceRouting>,
    /// Per rule set (`namespace/name`): the labels its notifications carry and, per rule,
    /// the receivers its `notify` names.
    pub rule_sets: BTreeMap<String, RuleSetNotify>,
    /// Per NotificationConfig (`namespace/name`): what of it compiled, for its status.
    pub configs: BTreeMap<String, ConfigSummary>,
}

/// What of one NotificationConfig compiled.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSummary {
    /// Receivers in use.
    pub receivers: u32,
    /// Routes in use.
    pub routes: u32,
}

/// One namespace's receivers and routes, from all its NotificationConfigs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceRouting {
    /// Receivers by name.
    pub receivers: BTreeMap<String, Receiver>,
    /// Routes in order (configs by name, then each config's order).
    pub routes: Vec<RouteModel>,
}

/// A route with its defaults filled in and its matchers checked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouteModel {
    /// The receiver.
    pub receiver: String,
    /// Matchers (their regular expressions compile).
    pub matchers: Vec<Matcher>,
    /// Grouping labels.
    pub group_by: Vec<String>,
    /// Seconds a new group waits.
    pub group_wait_seconds: u32,
    /// Seconds between sends of a changed group.
    pub group_interval_seconds: u32,
    /// Seconds before an unchanged group with problems is sent again.
    pub repeat_interval_seconds: u32,
    /// Whether later routes are tried too.
    pub continue_: bool,
}

/// What a rule set adds to its checks' notifications.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuleSetNotify {
    /// The RuleSet's `labels`.
    pub labels: BTreeMap<String, String>,
    /// Per rule, the receivers its `notify` names (known ones only).
    pub rules: BTreeMap<String, Vec<String>>,
}

/// Compiles every config, and checks the `notify` of every rule set and process.
pub fn compile(
    configs: &[NotificationConfig],
    rule_sets: &[RuleSet],
    processes: &[BusinessProcess],
    diagnostics: &mut Diagnostics,
) -> Routing {
    let mut sorted: Vec<&NotificationConfig> = configs.iter().collect();
    sorted.sort_by_key(|c| (namespace(&c.metadata), name(&c.metadata)));
    let mut routing = Routing::default();
    for config in &sorted {
        add_receivers(config, &mut routing, diagnostics);
    }
    for config in &sorted {
        add_routes(config, &mut routing, diagnostics);
    }
    for rule_set in rule_sets {
        let (ns, rs) = (namespace(&rule_set.metadata), name(&rule_set.metadata));
        let object = ObjectRef::rule_set(ns, rs);
        let mut notify = RuleSetNotify {
            labels: rule_set.spec.labels.clone(),
            rules: BTreeMap::new(),
        };
        for rule in &rule_set.spec.rules {
            let known = known_receivers(
                &routing,
                ns,
                &rule.notify,
                &object,
                &format!("rule {}", rule.name),
                diagnostics,
            );
            if !known.is_empty() {
                notify.rules.insert(rule.name.clone(), known);
            }
        }
        routing.rule_sets.insert(format!("{ns}/{rs}"), notify);
    }
    for process in processes {
        let ns = namespace(&process.metadata);
        let object = ObjectRef::process(ns, name(&process.metadata));
        for element in &process.spec.elements {
            for (clause_name, _, clause) in super::process::clauses_of(element) {
                known_receivers(
                    &routing,
                    ns,
                    &clause.notify,
                    &object,
                    &format!("element {} clause {clause_name}", element.name),
                    diagnostics,
                );
            }
        }
    }
    routing
}

fn add_receivers(
    config: &NotificationConfig,
    routing: &mut Routing,
    diagnostics: &mut Diagnostics,
) {
    let ns = namespace(&config.metadata);
    let object = ObjectRef::new(KIND_NOTIFICATION_CONFIG, ns, name(&config.metadata));
    let key = format!("{ns}/{}", name(&config.metadata));
    let entry = routing.namespaces.entry(ns.to_owned()).or_default();
    let mut compiled = 0;
    for receiver in &config.spec.receivers {
        let kinds = [
            receiver.alertmanager.is_some(),
            receiver.webhook.is_some(),
            receiver.email.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            diagnostics.error(
                &object,
                Reason::InvalidReceiver,
                format!(
                    "receiver {} must be exactly one of alertmanager, webhook or email",
                    receiver.name
                ),
            );
            continue;
        }
        if let Some(am) = &receiver.alertmanager
            && am.url.is_some() == am.service.is_some()
        {
            diagnostics.error(
                &object,
                Reason::InvalidReceiver,
                format!(
                    "receiver {}: an Alertmanager is given by exactly one of url or service",
                    receiver.name
                ),
            );
            continue;
        }
        if let Some(email) = &receiver.email
            && email.password_secret.is_some() != email.username.is_some()
        {
            diagnostics.error(
                &object,
                Reason::InvalidReceiver,
                format!(
                    "receiver {}: email username and passwordSecret go together",
                    receiver.name
                ),
            );
            continue;
        }
        if entry.receivers.contains_key(&receiver.name) {
            diagnostics.error(
                &object,
                Reason::Duplicate,
                format!(
                    "receiver {} is defined more than once in namespace {ns}; the first \
                     (by config name) is used",
                    receiver.name
                ),
            );
            continue;
        }
        entry
            .receivers
            .insert(receiver.name.clone(), receiver.clone());
        compiled += 1;
    }
    routing.configs.entry(key).or_default().receivers = compiled;
}

fn add_routes(config: &NotificationConfig, routing: &mut Routing, diagnostics: &mut Diagnostics) {
    let ns = namespace(&config.metadata);
    let object = ObjectRef::new(KIND_NOTIFICATION_CONFIG, ns, name(&config.metadata));
    let key = format!("{ns}/{}", name(&config.metadata));
    let entry = routing.namespaces.entry(ns.to_owned()).or_default();
    let mut compiled = 0;
    for (index, route) in config.spec.routes.iter().enumerate() {
        if !entry.receivers.contains_key(&route.receiver) {
            diagnostics.error(
                &object,
                Reason::UnknownReceiver,
                format!(
                    "route {index} sends to receiver {}, which no NotificationConfig of \
                     namespace {ns} defines",
                    route.receiver
                ),
            );
            continue;
        }
        if let Some(problem) = route.matchers.iter().find_map(invalid_matcher) {
            diagnostics.error(
                &object,
                Reason::InvalidMatcher,
                format!("route {index}: {problem}"),
            );
            continue;
        }
        entry.routes.push(RouteModel {
            receiver: route.receiver.clone(),
            matchers: route.matchers.clone(),
            group_by: route
                .group_by
                .clone()
                .unwrap_or_else(|| DEFAULT_GROUP_BY.iter().map(|s| (*s).to_owned()).collect()),
            group_wait_seconds: route
                .group_wait_seconds
                .unwrap_or(DEFAULT_GROUP_WAIT_SECONDS),
            group_interval_seconds: route
                .group_interval_seconds
                .unwrap_or(DEFAULT_GROUP_INTERVAL_SECONDS),
            repeat_interval_seconds: route
                .repeat_interval_seconds
                .unwrap_or(DEFAULT_REPEAT_INTERVAL_SECONDS),
            continue_: route.continue_,
        });
        compiled += 1;
    }
    routing.configs.entry(key).or_default().routes = compiled;
}

/// Why a matcher cannot be used, if it cannot.
fn invalid_matcher(matcher: &Matcher) -> Option<String> {
    match matcher.match_type {
        MatchType::Regex | MatchType::NotRegex => anchored(&matcher.value).err().map(|error| {
            format!(
                "matcher {} has a regular expression that does not compile: {error}",
                matcher.name
            )
        }),
        MatchType::Equal | MatchType::NotEqual => None,
    }
}

/// A matcher's expression, anchored as Alertmanager anchors it.
pub fn anchored(value: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{value})$"))
}

fn known_receivers(
    routing: &Routing,
    ns: &str,
    names: &[String],
    object: &ObjectRef,
    what: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<String> {
    let defined: BTreeSet<&String> = routing
        .namespaces
        .get(ns)
        .map(|n| n.receivers.keys().collect())
        .unwrap_or_default();
    let mut known = Vec::new();
    for receiver in names {
        if defined.contains(receiver) {
            known.push(receiver.clone());
        } else {
            diagnostics.warning(
                object,
                Reason::UnknownReceiver,
                format!(
                    "{what} notifies receiver {receiver}, which no NotificationConfig of \
                     namespace {ns} defines; nothing is sent to it"
                ),
            );
        }
    }
    known
}
