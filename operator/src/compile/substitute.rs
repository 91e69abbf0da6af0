//! `$name$` substitution in one pass: a value that itself holds `$host$` is not substituted
//! again. Applied to every string of a `CheckSpec` (through its JSON form), to thresholds and
//! to the condition; port fields that named a parameter become numbers.

use std::collections::BTreeMap;

use serde_json::Value;
use vedette_crds::CheckSpec;
use vedette_crds::check::PortOrParameter;

use super::params::{ValueError, port};

/// Why a check could not be substituted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubstituteError {
    /// A port field does not hold a port after substitution.
    #[error("{field}: {source}")]
    Port {
        /// `check.tcp.port` or `check.tls.port`.
        field: &'static str,
        /// What the value was.
        source: ValueError,
    },
    /// The substituted JSON is no longer a check (cannot happen for string substitution).
    #[error("check no longer parses after substitution: {0}")]
    Shape(String),
}

/// Whether `name` may be a parameter name (`[A-Za-z_][A-Za-z0-9_]*`).
fn is_parameter_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// Replaces each `$name$` whose name is in `values`; other text is kept as written.
pub fn substitute_text(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('$') else {
            out.push('$');
            rest = after;
            break;
        };
        let name = &after[..end];
        match values.get(name).filter(|_| is_parameter_name(name)) {
            Some(value) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push('$');
                out.push_str(name);
                rest = &after[end..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A check with every string substituted and parameter ports made numbers.
pub fn substitute_check(
    check: &CheckSpec,
    values: &BTreeMap<String, String>,
) -> Result<CheckSpec, SubstituteError> {
    let mut json =
        serde_json::to_value(check).map_err(|e| SubstituteError::Shape(e.to_string()))?;
    map_strings(&mut json, &mut |s| *s = substitute_text(s, values));
    let mut check: CheckSpec =
        serde_json::from_value(json).map_err(|e| SubstituteError::Shape(e.to_string()))?;
    if let Some(tcp) = check.tcp.as_mut() {
        settle_port(&mut tcp.port, "check.tcp.port")?;
    }
    if let Some(tls) = check.tls.as_mut() {
        settle_port(&mut tls.port, "check.tls.port")?;
    }
    if let Some(udp) = check.udp.as_mut() {
        settle_port(&mut udp.port, "check.udp.port")?;
    }
    if let Some(snmp) = check.snmp.as_mut() {
        settle_port(&mut snmp.port, "check.snmp.port")?;
    }
    if let Some(port) = check.database.as_mut().and_then(|d| d.port.as_mut()) {
        settle_port(port, "check.database.port")?;
    }
    if let Some(port) = check.mail.as_mut().and_then(|m| m.port.as_mut()) {
        settle_port(port, "check.mail.port")?;
    }
    Ok(check)
}

fn settle_port(value: &mut PortOrParameter, field: &'static str) -> Result<(), SubstituteError> {
    let number = match value {
        PortOrParameter::Int(number) => port(&number.to_string()),
        PortOrParameter::Parameter(text) => port(text),
    };
    *value =
        PortOrParameter::Int(number.map_err(|source| SubstituteError::Port { field, source })?);
    Ok(())
}

fn map_strings(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| map_strings(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| map_strings(v, f)),
        _ => {}
    }
}

/// Every string of a check with its field path (`check.http.url`, `check.exec.args[2]`).
pub fn check_strings(check: &CheckSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(json) = serde_json::to_value(check) {
        collect_strings("check".to_owned(), &json, &mut out);
    }
    out
}

fn collect_strings(path: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => out.push((path, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(format!("{path}[{i}]"), item, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                collect_strings(format!("{path}.{key}"), item, out);
            }
        }
        _ => {}
    }
}

/// Whether text is a Nagios range: `10`, `10:`, `~:10`, `10:20`, `@10:20`.
pub fn is_threshold(text: &str) -> bool {
    let body = text.strip_prefix('@').unwrap_or(text);
    let (start, end) = match body.split_once(':') {
        Some((start, end)) => (Some(start), end),
        None => (None, body),
    };
    let start_ok = start.is_none_or(|s| s == "~" || is_number(s));
    let end_ok = end.is_empty() || is_number(end);
    start_ok && end_ok && !body.is_empty()
}

fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vedette_crds::check::{ExecProbe, HttpProbe, TlsProbe};

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn text_substitution_is_one_pass_and_leaves_unknown_names() {
        let v = values(&[("url", "http://$host$:8080/"), ("warn", "85")]);
        assert_eq!(substitute_text("$url$", &v), "http://$host$:8080/");
        assert_eq!(substitute_text("$warn$:", &v), "85:");
        assert_eq!(
            substitute_text("$host$ costs $5 $warn$", &v),
            "$host$ costs $5 85"
        );
        assert_eq!(substitute_text("a$b c$warn$", &v), "a$b c85");
        assert_eq!(substitute_text("$warn", &v), "$warn");
    }

    #[test]
    fn every_string_of_a_check_is_substituted() {
        let check = CheckSpec {
            exec: Some(ExecProbe {
                command: "check_tcp".into(),
                args: vec!["-p".into(), "$port$".into(), "-H".into(), "$host$".into()],
            }),
            ..CheckSpec::default()
        };
        let out = substitute_check(&check, &values(&[("port", "6379")])).unwrap();
        assert_eq!(out.exec.unwrap().args, ["-p", "6379", "-H", "$host$"]);
        let http = CheckSpec {
            http: Some(HttpProbe {
                url: "$url$".into(),
                method: "GET".into(),
                expect_status: vec![200],
                body_match: Some("$body$".into()),
                verify_certificate: true,
                headers: BTreeMap::from([("X-Team".into(), "$team$".into())]),
                reuse_connection: false,
                auth: None,
            }),
            ..CheckSpec::default()
        };
        let v = values(&[("url", "https://x/"), ("body", "ok"), ("team", "web")]);
        let out = substitute_check(&http, &v).unwrap().http.unwrap();
        assert_eq!(out.url, "https://x/");
        assert_eq!(out.body_match.as_deref(), Some("ok"));
        assert_eq!(out.headers["X-Team"], "web");
    }

    #[test]
    fn a_port_parameter_becomes_a_number_or_an_error() {
        let tls = |port: &str| CheckSpec {
            tls: Some(TlsProbe {
                host: "$host$".into(),
                port: PortOrParameter::Parameter(port.into()),
                server_name: None,
                start_tls: None,
            }),
            ..CheckSpec::default()
        };
        let out = substitute_check(&tls("$port$"), &values(&[("port", "8443")])).unwrap();
        assert_eq!(out.tls.unwrap().port, PortOrParameter::Int(8443));
        let error = substitute_check(&tls("$port$"), &values(&[("port", "abc")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "check.tls.port: expected int 1–65535, got \"abc\""
        );
    }

    #[test]
    fn thresholds_follow_nagios_range_syntax() {
        for good in ["10", "10:", "~:10", "10:20", "@10:20", "-1.5:2", "0.5"] {
            assert!(is_threshold(good), "{good}");
        }
        for bad in ["", "abc", "10:x", "1.", "$warn$", "~", "@"] {
            assert!(!is_threshold(bad), "{bad}");
        }
    }
}
