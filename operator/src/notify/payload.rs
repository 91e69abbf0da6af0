//! What receivers get, as bytes (pure): the webhook body (JSON, `version: "1"`, documented in
//! docs/notifications.md), its HMAC-SHA256 signature, the mail (a subject, a plain-text body a
//! person reads on a phone, an HTML part, a stable Message-ID) and Alertmanager's API v2
//! alerts.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use vedette_protocol::clock::rfc3339;

use super::alert::{Alert, Labels, Status};
use super::group::{Dispatch, group_labels};

/// The webhook body's version.
pub const WEBHOOK_VERSION: &str = "1";
/// The header carrying the signature: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Vedette-Signature";
/// The header carrying the idempotency key (also in the body).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// The webhook body.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct WebhookBody<'a> {
    /// Always [`WEBHOOK_VERSION`].
    pub version: &'static str,
    /// The idempotency key: the same for a repeated delivery of this notification.
    pub key: &'a str,
    /// The receiver (`namespace/name`).
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved` (or `info` when all are facts).
    pub status: Status,
    /// The group's labels.
    pub group_labels: Labels,
    /// The alerts.
    pub alerts: Vec<WebhookAlert<'a>>,
}

/// One alert in a webhook body.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert<'a> {
    /// Firing, resolved or info.
    pub status: Status,
    /// Labels.
    pub labels: &'a Labels,
    /// Annotations (summary, output).
    pub annotations: &'a Labels,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, when resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Stable identity of what the alert is about.
    pub fingerprint: String,
}

/// The dispatch's overall status.
pub fn status_of(dispatch: &Dispatch) -> Status {
    let statuses: Vec<Status> = dispatch.alerts.iter().map(|a| a.status).collect();
    if statuses.contains(&Status::Firing) {
        Status::Firing
    } else if statuses.contains(&Status::Resolved) {
        Status::Resolved
    } else {
        Status::Info
    }
}

/// The webhook body of `dispatch`, as JSON bytes.
pub fn webhook_body(dispatch: &Dispatch) -> Vec<u8> {
    let body = WebhookBody {
        version: WEBHOOK_VERSION,
        key: &dispatch.key,
        receiver: dispatch.group.receiver.to_string(),
        status: status_of(dispatch),
        group_labels: group_labels(dispatch),
        alerts: dispatch
            .alerts
            .iter()
            .map(|alert| WebhookAlert {
                status: alert.status,
                labels: &alert.labels,
                annotations: &alert.annotations,
                starts_at: rfc3339(alert.starts_at_ms),
                ends_at: alert.ends_at_ms.map(rfc3339),
                fingerprint: alert.fingerprint(),
            })
            .collect(),
    };
    serde_json::to_vec(&body).expect("a webhook body always serializes")
}

/// `sha256=<hex of HMAC-SHA256(key, body)>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A mail: subject, plain text, HTML, Message-ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    /// The subject line.
    pub subject: String,
    /// The plain-text body: key facts and errors, nothing more.
    pub text: String,
    /// The HTML part: the same, as a table.
    pub html: String,
    /// `<key@vedette>`: the same for a repeated delivery.
    pub message_id: String,
}

/// The mail of `dispatch`.
pub fn mail(dispatch: &Dispatch) -> Mail {
    let firing = dispatch
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .count();
    let resolved = dispatch
        .alerts
        .iter()
        .filter(|a| a.status == Status::Resolved)
        .count();
    let first = dispatch.alerts.first();
    let what = first
        .and_then(|a| a.annotations.get("summary"))
        .cloned()
        .unwrap_or_default();
    let subject = match (firing, resolved, dispatch.alerts.len()) {
        (_, _, 1) => format!("[{}] {what}", word(status_of(dispatch))),
        (f, r, n) => format!(
            "[{}] {n} alerts ({f} firing, {r} resolved): {what}",
            word(status_of(dispatch))
        ),
    };
    let mut text = String::new();
    let mut rows = String::new();
    for alert in &dispatch.alerts {
        let summary = alert
            .annotations
            .get("summary")
            .cloned()
            .unwrap_or_default();
        let output = alert.annotations.get("output").cloned().unwrap_or_default();
        let at = rfc3339(alert.changed_at_ms());
        text.push_str(&format!(
            "{}: {summary}\n  since {at}\n",
            word(alert.status)
        ));
        if !output.is_empty() {
            text.push_str(&format!(
                "  {}\n",
                output.lines().next().unwrap_or_default()
            ));
        }
        let labels: Vec<String> = [
            "namespace",
            "zone",
            "host",
            "ruleSet",
            "check",
            "process",
            "element",
        ]
        .iter()
        .filter_map(|k| alert.labels.get(*k).map(|v| format!("{k}={v}")))
        .collect();
        text.push_str(&format!("  {}\n\n", labels.join(" ")));
        rows.push_str(&format!(
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td><pre>{}</pre></td><td>{}</td></tr>\n",
            word(alert.status),
            escape(&summary),
            escape(&at),
            escape(&output),
            escape(&labels.join(" "))
        ));
    }
    text.push_str(&format!("Notification {}\n", dispatch.key));
    let html = format!(
        "<html><body><h3>{}</h3><table border=\"1\" cellpadding=\"4\">\
         <tr><th>Status</th><th>What</th><th>Since</th><th>Output</th><th>Labels</th></tr>\n{rows}</table>\
         <p><small>Notification {}</small></p></body></html>",
        escape(&subject),
        dispatch.key
    );
    Mail {
        subject,
        text,
        html,
        message_id: format!("<{}@vedette>", dispatch.key),
    }
}

fn word(status: Status) -> &'static str {
    match status {
        Status::Firing => "FIRING",
        Status::Resolved => "RESOLVED",
        Status::Info => "INFO",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One alert as Alertmanager's API v2 (`POST /api/v2/alerts`) takes it.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// Labels (Alertmanager's identity: the same labels, the same alert).
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339: the resolution, or how long a firing alert stays firing unless re-posted.
    pub ends_at: String,
    /// Where people look.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub generator_u_r_l: String,
}

/// How long a posted firing alert holds in Alertmanager without being posted again, ms
/// (Prometheus uses 4 × its resend delay of a minute).
pub const ALERTMANAGER_HOLD_MS: u64 = 4 * 60_000;
/// How often firing alerts are posted again, ms.
pub const ALERTMANAGER_REPOST_MS: u64 = 60_000;

/// `alert` for Alertmanager at `now_ms` (info alerts are not for Alertmanager).
pub fn postable(alert: &Alert, now_ms: u64) -> Option<PostableAlert> {
    let ends_at_ms = match alert.status {
        Status::Info => return None,
        Status::Resolved => alert.ends_at_ms.unwrap_or(now_ms),
        Status::Firing => now_ms + ALERTMANAGER_HOLD_MS,
    };
    let mut labels: Labels = alert
        .labels
        .iter()
        .map(|(k, v)| (prometheus_label(k), v.clone()))
        .collect();
    labels.insert("alertname".into(), alertname(alert));
    Some(PostableAlert {
        labels,
        annotations: alert.annotations.clone(),
        starts_at: rfc3339(alert.starts_at_ms),
        ends_at: rfc3339(ends_at_ms),
        generator_u_r_l: String::new(),
    })
}

/// `VedetteCheck`, `VedetteAgentLost`, `VedetteElementFailed`, `VedetteProcessViolation`.
fn alertname(alert: &Alert) -> String {
    match alert.labels.get("kind").map(String::as_str) {
        Some("check") => "VedetteCheck".into(),
        Some("agent") => "VedetteAgentLost".into(),
        Some("element") => "VedetteElementFailed".into(),
        Some("violation") => "VedetteProcessViolation".into(),
        _ => "Vedette".into(),
    }
}

/// A label name as Prometheus writes them: `ruleSet` → `rule_set`.
pub fn prometheus_label(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}
