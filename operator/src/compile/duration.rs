//! Go-style durations (`90s`, `5m`, `1h30m`, `1.5h`, `250ms`), as template parameters take
//! them; bounds of duration parameters are compared in seconds.

/// Why text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("empty duration")]
    Empty,
    /// A number is missing where one is expected.
    #[error("missing number in duration {0:?}")]
    MissingNumber(String),
    /// A number has no unit after it.
    #[error("missing unit in duration {0:?} (use ns, us, ms, s, m or h)")]
    MissingUnit(String),
    /// The unit is not one Go knows.
    #[error("unknown unit {unit:?} in duration {text:?} (use ns, us, ms, s, m or h)")]
    UnknownUnit {
        /// The unit.
        unit: String,
        /// The whole text.
        text: String,
    },
}

/// Parses a Go duration into seconds.
pub fn parse_duration_seconds(text: &str) -> Result<f64, DurationError> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    if rest == "0" {
        return Ok(0.0);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        let value: f64 = number
            .parse()
            .map_err(|_| DurationError::MissingNumber(text.to_owned()))?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        total += value * unit_seconds(unit, text)?;
    }
    Ok(if negative { -total } else { total })
}

fn unit_seconds(unit: &str, text: &str) -> Result<f64, DurationError> {
    Ok(match unit {
        "" => return Err(DurationError::MissingUnit(text.to_owned())),
        "ns" => 1e-9,
        "us" | "µs" | "μs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(DurationError::UnknownUnit {
                unit: other.to_owned(),
                text: text.to_owned(),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_to_seconds() {
        for (text, seconds) in [
            ("90s", 90.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("250ms", 0.25),
            ("2h45m30s", 9930.0),
            ("0", 0.0),
            ("-1m", -60.0),
            ("+10s", 10.0),
        ] {
            assert_eq!(parse_duration_seconds(text), Ok(seconds), "{text}");
        }
    }

    #[test]
    fn malformed_durations_say_why() {
        assert_eq!(parse_duration_seconds(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration_seconds("90").unwrap_err().to_string(),
            "missing unit in duration \"90\" (use ns, us, ms, s, m or h)"
        );
        assert_eq!(
            parse_duration_seconds("5d").unwrap_err().to_string(),
            "unknown unit \"d\" in duration \"5d\" (use ns, us, ms, s, m or h)"
        );
        assert!(parse_duration_seconds("m5").is_err());
        assert!(parse_duration_seconds("1..2s").is_err());
    }
}
