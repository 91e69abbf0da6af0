//! `NotificationConfig`: an application's notification receivers and the routes that send
//! its problems to them (F26, F18's "notification routes travel with the application"),
//! modelled on prometheus-operator's `AlertmanagerConfig`. Namespaced: a team owns it with its
//! namespace's RBAC, and its routes see only that namespace's checks and processes.

#[cfg(feature = "kube")]
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Condition;

/// Alertmanager's default `group_wait`, seconds.
pub const DEFAULT_GROUP_WAIT_SECONDS: u32 = 30;
/// Alertmanager's default `group_interval`, seconds.
pub const DEFAULT_GROUP_INTERVAL_SECONDS: u32 = 300;
/// Alertmanager's default `repeat_interval`, seconds.
pub const DEFAULT_REPEAT_INTERVAL_SECONDS: u32 = 14_400;

/// Receivers and routes of one application.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[cfg_attr(feature = "kube", derive(CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "vedette.dev",
        version = "v1alpha1",
        kind = "NotificationConfig",
        namespaced,
        status = "NotificationConfigStatus",
        shortname = "vnc",
        category = "vedette",
        printcolumn = r#"{"name":"Receivers","type":"integer","jsonPath":".status.receivers"}"#,
        printcolumn = r#"{"name":"Routes","type":"integer","jsonPath":".status.routes"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationConfigSpec {
    /// Named receivers; names are unique within the namespace (across its
    /// NotificationConfigs), and a RuleSet rule's or a BusinessProcess clause's `notify`
    /// names them.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub receivers: Vec<Receiver>,
    /// Routes, tried in order: the first whose matchers all match sends to its receiver and,
    /// unless it says `continue`, ends the search.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub routes: Vec<Route>,
}

/// Where notifications go. Exactly one of `alertmanager`, `webhook` and `email`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.alertmanager), has(self.webhook), has(self.email)].filter(x, x).size() == 1",
    "message": "a receiver is exactly one of alertmanager, webhook or email"
}]))]
pub struct Receiver {
    /// The receiver's name.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// An Alertmanager (API v2) that gets every notification as an alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<AlertmanagerReceiver>,
    /// An HTTP endpoint that gets each notification as a signed JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookReceiver>,
    /// Mail to people, through an SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailReceiver>,
}

/// An Alertmanager, by URL or by Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.url) != has(self.service)",
    "message": "an Alertmanager is given by exactly one of url or service"
}]))]
pub struct AlertmanagerReceiver {
    /// Its base URL, such as `http://alertmanager.monitoring.svc:9093`; alerts are posted to
    /// `<url>/api/v2/alerts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub url: Option<String>,
    /// Its Service in the cluster, instead of `url` (plain HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceReference>,
}

impl AlertmanagerReceiver {
    /// An Alertmanager at `url`.
    pub fn at(url: &str) -> Self {
        Self {
            url: Some(url.to_owned()),
            service: None,
        }
    }

    /// Its base URL; a Service without a namespace is looked for in `namespace`.
    pub fn base_url(&self, namespace: &str) -> Option<String> {
        match (&self.url, &self.service) {
            (Some(url), _) => Some(url.trim_end_matches('/').to_owned()),
            (None, Some(service)) => Some(format!(
                "http://{}.{}.svc:{}",
                service.name,
                service.namespace.as_deref().unwrap_or(namespace),
                service.port
            )),
            (None, None) => None,
        }
    }
}

/// A Service and its port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceReference {
    /// The Service's name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Its namespace; the NotificationConfig's when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// The port (Alertmanager's is 9093).
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
}

/// An HTTP endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookReceiver {
    /// The URL each notification is posted to.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub url: String,
    /// The key of the body's HMAC-SHA256 signature (header `X-Vedette-Signature`), from a
    /// Secret of this namespace. Without it the body is not signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<SecretKeyReference>,
    /// Tries before a notification is given up and recorded as dead in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: Option<u32>,
}

/// Mail through an SMTP server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmailReceiver {
    /// Addresses the mail goes to.
    #[schemars(length(min = 1, max = 32), inner(length(min = 3, max = 254)))]
    pub to: Vec<String>,
    /// The sender's address.
    #[schemars(length(min = 3, max = 254))]
    pub from: String,
    /// The SMTP server, `host:port`.
    #[schemars(length(min = 3, max = 255))]
    pub smarthost: String,
    /// How the connection is secured (default `StartTls`).
    #[serde(default)]
    pub tls: SmtpTls,
    /// The user name to log in with; the password comes from `passwordSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 254))]
    pub username: Option<String>,
    /// The password, from a Secret of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyReference>,
    /// PEM certificates to trust for the SMTP server besides the public roots (a private
    /// CA), from a Secret of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyReference>,
}

/// How an SMTP connection is secured.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    #[default]
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No TLS: only for a relay on the same machine or in tests.
    None,
}

/// A key of a Secret in the object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyReference {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within it.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Which notifications go to a receiver, and how they are grouped.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// The receiver, by name, of this namespace.
    #[schemars(length(min = 1, max = 63))]
    pub receiver: String,
    /// Label matchers that must all match (none: every notification of the namespace).
    /// Labels: `namespace`, `zone`, `host`, `ruleSet`, `check`, `severity`, `process`,
    /// `element`, `kind`, and the RuleSet's own `labels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matchers: Vec<Matcher>,
    /// Labels whose values make a group: notifications of one group are sent together.
    /// Default: `ruleSet`, `check`, `host` (every check on its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 63)))]
    pub group_by: Option<Vec<String>>,
    /// How long a new group waits for more before its first send (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub group_wait_seconds: Option<u32>,
    /// How long a group waits before sending what changed in it (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub group_interval_seconds: Option<u32>,
    /// How long before a group that still has problems is sent again unchanged (default
    /// 14400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 604800))]
    pub repeat_interval_seconds: Option<u32>,
    /// Whether the routes after this one are tried too when it matches.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
}

/// A label matcher, as Alertmanager's.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    /// The label's name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The value compared (a regular expression for `=~` and `!~`, anchored).
    #[schemars(length(max = 1024))]
    pub value: String,
    /// `=` (default), `!=`, `=~`, `!~`.
    #[serde(default)]
    pub match_type: MatchType,
}

/// How a matcher compares.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MatchType {
    /// Equal.
    #[default]
    #[serde(rename = "=")]
    Equal,
    /// Not equal.
    #[serde(rename = "!=")]
    NotEqual,
    /// Matches the regular expression.
    #[serde(rename = "=~")]
    Regex,
    /// Does not match the regular expression.
    #[serde(rename = "!~")]
    NotRegex,
}

/// What the operator observed about a NotificationConfig.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationConfigStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `InvalidSpec`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Receivers that compiled.
    #[serde(default)]
    pub receivers: u32,
    /// Routes that compiled.
    #[serde(default)]
    pub routes: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alertmanager_service_is_its_cluster_url() {
        let by_service = AlertmanagerReceiver {
            url: None,
            service: Some(ServiceReference {
                name: "alertmanager-operated".into(),
                namespace: Some("monitoring".into()),
                port: 9093,
            }),
        };
        assert_eq!(
            by_service.base_url("shop").as_deref(),
            Some("http://alertmanager-operated.monitoring.svc:9093")
        );
        let mut local = by_service.clone();
        local.service.as_mut().unwrap().namespace = None;
        assert_eq!(
            local.base_url("shop").as_deref(),
            Some("http://alertmanager-operated.shop.svc:9093")
        );
        assert_eq!(
            AlertmanagerReceiver::at("http://am:9093/")
                .base_url("shop")
                .as_deref(),
            Some("http://am:9093")
        );
    }
}
