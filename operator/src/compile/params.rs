//! Typed template parameters: a value is checked against its parameter's declared type,
//! range and allowed values, and turned into the text that replaces `$name$`.

use std::fmt;

use vedette_crds::ParameterValue;
use vedette_crds::template::{ParameterSpec, ParameterType};

use super::duration::parse_duration_seconds;

/// Why a value does not fit its parameter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// Wrong type, or outside `minimum`/`maximum`.
    #[error("expected {expected}, got {got}")]
    Expected {
        /// The type and range, e.g. `int 1–65535`.
        expected: Expectation,
        /// The value as written, JSON-quoted when text.
        got: String,
    },
    /// Not one of the allowed values.
    #[error("expected one of {allowed}, got {got}")]
    NotAllowed {
        /// The allowed values, comma-separated.
        allowed: String,
        /// The value as written.
        got: String,
    },
}

/// What a parameter accepts: its type and its bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    type_: ParameterType,
    minimum: Option<f64>,
    maximum: Option<f64>,
}

impl Expectation {
    /// The expectation a parameter declares.
    pub fn of(spec: &ParameterSpec) -> Self {
        Self {
            type_: spec.type_,
            minimum: spec.minimum,
            maximum: spec.maximum,
        }
    }

    /// An int in `minimum..=maximum`, as ports need.
    pub fn int_range(minimum: i64, maximum: i64) -> Self {
        Self {
            type_: ParameterType::Int,
            minimum: Some(minimum as f64),
            maximum: Some(maximum as f64),
        }
    }

    fn in_range(&self, number: f64) -> bool {
        self.minimum.is_none_or(|m| number >= m) && self.maximum.is_none_or(|m| number <= m)
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, unit) = match self.type_ {
            ParameterType::String => ("string", ""),
            ParameterType::Int => ("int", ""),
            ParameterType::Float => ("float", ""),
            ParameterType::Bool => ("bool", ""),
            ParameterType::Duration => ("duration", "s"),
        };
        f.write_str(name)?;
        match (self.minimum, self.maximum) {
            (Some(min), Some(max)) => write!(f, " {min}{unit}–{max}{unit}"),
            (Some(min), None) => write!(f, " ≥ {min}{unit}"),
            (None, Some(max)) => write!(f, " ≤ {max}{unit}"),
            (None, None) if self.type_ == ParameterType::Duration => f.write_str(" such as 90s"),
            (None, None) => Ok(()),
        }
    }
}

/// A value as written, for messages: text is quoted, numbers and booleans are bare.
pub fn shown(value: &ParameterValue) -> String {
    match value {
        ParameterValue::String(text) => format!("{text:?}"),
        other => text_of(other),
    }
}

/// A value's plain text.
fn text_of(value: &ParameterValue) -> String {
    match value {
        ParameterValue::Bool(b) => b.to_string(),
        ParameterValue::Int(i) => i.to_string(),
        ParameterValue::Float(x) => x.to_string(),
        ParameterValue::String(text) => text.clone(),
    }
}

/// Checks a value against its parameter and returns the text to substitute.
pub fn resolve(spec: &ParameterSpec, value: &ParameterValue) -> Result<String, ValueError> {
    let expectation = Expectation::of(spec);
    let wrong = || ValueError::Expected {
        expected: expectation.clone(),
        got: shown(value),
    };
    let (text, number) = match spec.type_ {
        ParameterType::String => (text_of(value), None),
        ParameterType::Int => {
            let int = as_int(value).ok_or_else(wrong)?;
            (int.to_string(), Some(int as f64))
        }
        ParameterType::Float => {
            let float = as_float(value).ok_or_else(wrong)?;
            let text = match value {
                ParameterValue::Int(i) => i.to_string(),
                _ => float.to_string(),
            };
            (text, Some(float))
        }
        ParameterType::Bool => (as_bool(value).ok_or_else(wrong)?.to_string(), None),
        ParameterType::Duration => {
            let ParameterValue::String(text) = value else {
                return Err(wrong());
            };
            let seconds = parse_duration_seconds(text.trim()).map_err(|_| wrong())?;
            (text.trim().to_owned(), Some(seconds))
        }
    };
    if number.is_some_and(|n| !expectation.in_range(n)) {
        return Err(wrong());
    }
    if !spec.allowed.is_empty() && !spec.allowed.contains(&text) {
        return Err(ValueError::NotAllowed {
            allowed: spec.allowed.join(", "),
            got: shown(value),
        });
    }
    Ok(text)
}

/// An int in `1..=65535`, from text a port field holds after substitution.
pub fn port(text: &str) -> Result<i64, ValueError> {
    let expectation = Expectation::int_range(1, 65535);
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|p| expectation.in_range(*p as f64))
        .ok_or_else(|| ValueError::Expected {
            expected: expectation,
            got: format!("{text:?}"),
        })
}

fn as_int(value: &ParameterValue) -> Option<i64> {
    match value {
        ParameterValue::Int(i) => Some(*i),
        ParameterValue::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(*x as i64),
        ParameterValue::String(text) => text.trim().parse().ok(),
        ParameterValue::Float(_) | ParameterValue::Bool(_) => None,
    }
}

fn as_float(value: &ParameterValue) -> Option<f64> {
    let float = match value {
        ParameterValue::Int(i) => *i as f64,
        ParameterValue::Float(x) => *x,
        ParameterValue::String(text) => text.trim().parse().ok()?,
        ParameterValue::Bool(_) => return None,
    };
    float.is_finite().then_some(float)
}

fn as_bool(value: &ParameterValue) -> Option<bool> {
    match value {
        ParameterValue::Bool(b) => Some(*b),
        ParameterValue::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(type_: ParameterType, minimum: Option<f64>, maximum: Option<f64>) -> ParameterSpec {
        ParameterSpec {
            name: "p".into(),
            type_,
            default: None,
            required: false,
            description: None,
            minimum,
            maximum,
            allowed: Vec::new(),
        }
    }

    fn text(s: &str) -> ParameterValue {
        ParameterValue::String(s.into())
    }

    #[test]
    fn values_of_the_right_type_become_text() {
        let int = spec(ParameterType::Int, Some(1.0), Some(65535.0));
        assert_eq!(resolve(&int, &ParameterValue::Int(443)).unwrap(), "443");
        assert_eq!(resolve(&int, &text("8080")).unwrap(), "8080");
        assert_eq!(resolve(&int, &ParameterValue::Float(22.0)).unwrap(), "22");
        let float = spec(ParameterType::Float, Some(0.0), Some(100.0));
        assert_eq!(resolve(&float, &ParameterValue::Int(85)).unwrap(), "85");
        assert_eq!(resolve(&float, &ParameterValue::Float(0.5)).unwrap(), "0.5");
        let boolean = spec(ParameterType::Bool, None, None);
        assert_eq!(resolve(&boolean, &text("true")).unwrap(), "true");
        let string = spec(ParameterType::String, None, None);
        assert_eq!(resolve(&string, &ParameterValue::Int(7)).unwrap(), "7");
        let duration = spec(ParameterType::Duration, Some(10.0), Some(3600.0));
        assert_eq!(resolve(&duration, &text("1h")).unwrap(), "1h");
        assert_eq!(resolve(&duration, &text("5m")).unwrap(), "5m");
    }

    #[test]
    fn wrong_types_and_ranges_name_the_expectation() {
        let port = spec(ParameterType::Int, Some(1.0), Some(65535.0));
        let message =
            |s: &ParameterSpec, v: ParameterValue| resolve(s, &v).unwrap_err().to_string();
        assert_eq!(
            message(&port, text("abc")),
            "expected int 1–65535, got \"abc\""
        );
        assert_eq!(
            message(&port, ParameterValue::Int(70000)),
            "expected int 1–65535, got 70000"
        );
        assert_eq!(
            message(&port, ParameterValue::Float(2.5)),
            "expected int 1–65535, got 2.5"
        );
        let percent = spec(ParameterType::Float, Some(0.0), None);
        assert_eq!(
            message(&percent, ParameterValue::Float(-1.5)),
            "expected float ≥ 0, got -1.5"
        );
        let boolean = spec(ParameterType::Bool, None, None);
        assert_eq!(message(&boolean, text("yes")), "expected bool, got \"yes\"");
        let duration = spec(ParameterType::Duration, Some(10.0), Some(3600.0));
        assert_eq!(
            message(&duration, text("2h")),
            "expected duration 10s–3600s, got \"2h\""
        );
        assert_eq!(
            message(&duration, text("5s")),
            "expected duration 10s–3600s, got \"5s\""
        );
        let any_duration = spec(ParameterType::Duration, None, Some(60.0));
        assert_eq!(
            message(&any_duration, ParameterValue::Int(5)),
            "expected duration ≤ 60s, got 5"
        );
        let unbounded = spec(ParameterType::Duration, None, None);
        assert_eq!(
            message(&unbounded, text("soon")),
            "expected duration such as 90s, got \"soon\""
        );
    }

    #[test]
    fn enums_allow_only_their_values() {
        let mut method = spec(ParameterType::String, None, None);
        method.allowed = vec!["GET".into(), "HEAD".into()];
        assert_eq!(resolve(&method, &text("HEAD")).unwrap(), "HEAD");
        assert_eq!(
            resolve(&method, &text("PATCH")).unwrap_err().to_string(),
            "expected one of GET, HEAD, got \"PATCH\""
        );
    }

    #[test]
    fn ports_are_ints_from_1_to_65535() {
        assert_eq!(port("443"), Ok(443));
        assert_eq!(
            port("0").unwrap_err().to_string(),
            "expected int 1–65535, got \"0\""
        );
        assert!(port("http").is_err());
    }
}
