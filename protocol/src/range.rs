//! Nagios threshold ranges (`10`, `10:`, `~:10`, `10:20`, `@10:20`), as defined by the
//! Nagios plugin development guidelines: a value alerts when it lies outside the range
//! (endpoints inclusive), or inside it when the range starts with `@`.

use std::fmt;
use std::str::FromStr;

/// Why a range could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RangeError {
    /// Nothing to parse (also `@` alone).
    #[error("range {input:?}: empty")]
    Empty {
        /// The text given.
        input: String,
    },
    /// An endpoint is not a number.
    #[error("range {input:?}: {token:?} is not a number")]
    NotANumber {
        /// The text given.
        input: String,
        /// The endpoint that failed to parse.
        token: String,
    },
    /// The start lies after the end.
    #[error("range {input:?}: start {start} is greater than end {end}")]
    StartAfterEnd {
        /// The text given.
        input: String,
        /// The parsed start.
        start: f64,
        /// The parsed end.
        end: f64,
    },
}

/// A Nagios threshold range. `None` endpoints are infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    start: Option<f64>,
    end: Option<f64>,
    inside: bool,
}

impl Range {
    /// Parses any of the forms `10`, `10:`, `~:10`, `10:20`, `@10:20` (and `:10`, same as `0:10`).
    pub fn parse(input: &str) -> Result<Range, RangeError> {
        let text = input.trim();
        let (inside, body) = match text.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if body.is_empty() {
            return Err(RangeError::Empty {
                input: input.to_owned(),
            });
        }
        let number = |token: &str| {
            parse_number(token).ok_or_else(|| RangeError::NotANumber {
                input: input.to_owned(),
                token: token.to_owned(),
            })
        };
        let (start, end) = match body.split_once(':') {
            None => (Some(0.0), Some(number(body)?)),
            Some((start, end)) => {
                let start = match start {
                    "~" => None,
                    "" => Some(0.0),
                    token => Some(number(token)?),
                };
                let end = match end {
                    "" => None,
                    token => Some(number(token)?),
                };
                (start, end)
            }
        };
        if let (Some(start), Some(end)) = (start, end)
            && start > end
        {
            return Err(RangeError::StartAfterEnd {
                input: input.to_owned(),
                start,
                end,
            });
        }
        Ok(Range { start, end, inside })
    }

    /// The lower endpoint; `None` is negative infinity (`~`).
    pub fn start(&self) -> Option<f64> {
        self.start
    }

    /// The upper endpoint; `None` is positive infinity.
    pub fn end(&self) -> Option<f64> {
        self.end
    }

    /// Whether the range alerts inside (`@`) rather than outside.
    pub fn is_inverted(&self) -> bool {
        self.inside
    }

    /// Whether `value` raises an alert. NaN lies in no range.
    pub fn alerts(&self, value: f64) -> bool {
        let above_start = self.start.is_none_or(|start| value >= start);
        let below_end = self.end.is_none_or(|end| value <= end);
        let within = above_start && below_end && !value.is_nan();
        within == self.inside
    }
}

/// A finite number in the plain notation plugins print (no `inf`, no `NaN`).
pub fn parse_number(token: &str) -> Option<f64> {
    let plain = token
        .bytes()
        .all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'-' | b'+' | b'e' | b'E'));
    let value: f64 = token.parse().ok()?;
    (plain && value.is_finite()).then_some(value)
}

impl FromStr for Range {
    type Err = RangeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Range::parse(input)
    }
}

impl fmt::Display for Range {
    /// The shortest canonical form: `10` for `0:10`, otherwise `start:end`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        match (self.start, self.end) {
            (Some(start), Some(end)) if start == 0.0 && start.is_sign_positive() => {
                write!(f, "{end}")
            }
            (start, end) => {
                match start {
                    None => f.write_str("~")?,
                    Some(start) => write!(f, "{start}")?,
                }
                f.write_str(":")?;
                match end {
                    None => Ok(()),
                    Some(end) => write!(f, "{end}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(text: &str) -> Range {
        Range::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    /// The range cases of monitoring-plugins' own tests (lib/tests/test_utils.c), as a table:
    /// text → (start, end, inverted), then values that alert and values that do not. One
    /// difference is deliberate: `1:12%` is refused (a threshold has no unit here; the
    /// plugins library silently drops the `%`).
    #[test]
    fn the_monitoring_plugins_range_cases() {
        type Case = (
            &'static str,
            Option<f64>,
            Option<f64>,
            bool,
            &'static [f64],
            &'static [f64],
        );
        const BIG: f64 = 12_345_678_901_234_567_890.0;
        let cases: [Case; 8] = [
            ("6", Some(0.0), Some(6.0), false, &[-1.0, 6.5], &[0.0, 6.0]),
            (
                "-7:23",
                Some(-7.0),
                Some(23.0),
                false,
                &[-7.5, 23.5],
                &[-7.0, 0.0, 23.0],
            ),
            (
                ":5.75",
                Some(0.0),
                Some(5.75),
                false,
                &[-0.1, 5.76],
                &[0.0, 5.75],
            ),
            (
                "~:-95.99",
                None,
                Some(-95.99),
                false,
                &[-95.98],
                &[-95.99, -1e9],
            ),
            ("~:0", None, Some(0.0), false, &[0.5], &[-10.0, 0.0]),
            (
                "@0:657.8210567",
                Some(0.0),
                Some(657.8210567),
                true,
                &[32.88, 657.8210567, 0.0],
                &[-2.0, 700.0],
            ),
            ("1:1", Some(1.0), Some(1.0), false, &[0.5, 5.2], &[1.0]),
            (
                "12345678901234567890:",
                Some(BIG),
                None,
                false,
                &[BIG / 1.1],
                &[BIG, BIG * 2.0],
            ),
        ];
        for (text, start, end, inverted, alert, calm) in cases {
            let r = range(text);
            assert_eq!(
                (r.start(), r.end(), r.is_inverted()),
                (start, end, inverted),
                "{text}"
            );
            for value in alert {
                assert!(r.alerts(*value), "{text}: {value} alerts");
            }
            for value in calm {
                assert!(!r.alerts(*value), "{text}: {value} does not alert");
            }
        }
        for refused in ["2:1", "1:12%", "10,5", "", "@", "~", "1:2:3"] {
            assert!(Range::parse(refused).is_err(), "{refused:?} is refused");
        }
    }

    #[test]
    fn bare_number_is_zero_to_n() {
        let r = range("10");
        assert_eq!(
            (r.start(), r.end(), r.is_inverted()),
            (Some(0.0), Some(10.0), false)
        );
        assert!(r.alerts(-0.001));
        assert!(!r.alerts(0.0));
        assert!(!r.alerts(5.0));
        assert!(!r.alerts(10.0));
        assert!(r.alerts(10.001));
    }

    #[test]
    fn open_end_is_n_to_infinity() {
        let r = range("10:");
        assert_eq!((r.start(), r.end()), (Some(10.0), None));
        assert!(r.alerts(9.999));
        assert!(!r.alerts(10.0));
        assert!(!r.alerts(1e300));
    }

    #[test]
    fn tilde_is_negative_infinity() {
        let r = range("~:10");
        assert_eq!((r.start(), r.end()), (None, Some(10.0)));
        assert!(!r.alerts(-1e300));
        assert!(!r.alerts(10.0));
        assert!(r.alerts(10.5));
    }

    #[test]
    fn start_and_end_are_inclusive() {
        let r = range("10:20");
        assert!(r.alerts(9.0));
        assert!(!r.alerts(10.0));
        assert!(!r.alerts(15.0));
        assert!(!r.alerts(20.0));
        assert!(r.alerts(20.1));
    }

    #[test]
    fn at_sign_alerts_inside_inclusive() {
        let r = range("@10:20");
        assert!(r.is_inverted());
        assert!(!r.alerts(9.9));
        assert!(r.alerts(10.0));
        assert!(r.alerts(15.0));
        assert!(r.alerts(20.0));
        assert!(!r.alerts(20.1));
        let r = range("@5");
        assert!(r.alerts(0.0) && r.alerts(5.0) && !r.alerts(-1.0) && !r.alerts(6.0));
    }

    #[test]
    fn negative_and_fractional_endpoints() {
        let r = range("-10.5:-2");
        assert!(r.alerts(-11.0));
        assert!(!r.alerts(-10.5));
        assert!(!r.alerts(-2.0));
        assert!(r.alerts(0.0));
        // `:10` defaults the start to 0, as the C library of monitoring-plugins does.
        assert_eq!(range(":10"), range("0:10"));
        // Equal endpoints: only that value passes.
        let r = range("5:5");
        assert!(!r.alerts(5.0) && r.alerts(4.99) && r.alerts(5.01));
    }

    #[test]
    fn infinite_both_ways_never_alerts() {
        let r = range("~:");
        assert!(!r.alerts(-1e308) && !r.alerts(0.0) && !r.alerts(1e308));
        assert!(range("@~:").alerts(0.0));
    }

    #[test]
    fn nan_alerts_outside_ranges_only() {
        assert!(range("10").alerts(f64::NAN));
        assert!(!range("@10").alerts(f64::NAN));
    }

    #[test]
    fn errors_name_the_problem() {
        let message = |text: &str| Range::parse(text).unwrap_err().to_string();
        assert_eq!(
            message("20:10"),
            r#"range "20:10": start 20 is greater than end 10"#
        );
        assert_eq!(
            message("@20:10.5"),
            r#"range "@20:10.5": start 20 is greater than end 10.5"#
        );
        assert_eq!(message(""), r#"range "": empty"#);
        assert_eq!(message("@"), r#"range "@": empty"#);
        assert_eq!(message("abc"), r#"range "abc": "abc" is not a number"#);
        assert_eq!(message("1:x"), r#"range "1:x": "x" is not a number"#);
        assert_eq!(message("~"), r#"range "~": "~" is not a number"#);
        assert_eq!(message("10:~"), r#"range "10:~": "~" is not a number"#);
        assert_eq!(message("inf"), r#"range "inf": "inf" is not a number"#);
        assert_eq!(message("NaN:"), r#"range "NaN:": "NaN" is not a number"#);
        assert_eq!(message("1:2:3"), r#"range "1:2:3": "2:3" is not a number"#);
        assert_eq!(message("@@1"), r#"range "@@1": "@1" is not a number"#);
    }

    #[test]
    fn display_is_canonical() {
        for (text, shown) in [
            ("10", "10"),
            ("0:10", "10"),
            ("10:", "10:"),
            ("~:10", "~:10"),
            ("10:20", "10:20"),
            ("@10:20", "@10:20"),
            ("@10", "@10"),
            ("~:", "~:"),
            ("1.50:2e1", "1.5:20"),
            ("-0:1", "-0:1"),
        ] {
            assert_eq!(range(text).to_string(), shown, "{text}");
        }
    }

    fn endpoint() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(0.0)),
            4 => (-1e6..1e6f64).prop_map(Some),
            2 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(Some),
        ]
    }

    proptest! {
        #[test]
        fn display_then_parse_roundtrips(a in endpoint(), b in endpoint(), inside: bool) {
            let (start, end) = match (a, b) {
                (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                pair => pair,
            };
            let original = Range { start, end, inside };
            let parsed = Range::parse(&original.to_string()).unwrap();
            prop_assert_eq!(parsed, original);
        }

        #[test]
        fn inverted_range_alerts_exactly_when_plain_does_not(
            a in endpoint(), b in endpoint(), value in -2e6..2e6f64,
        ) {
            let (start, end) = match (a, b) {
                (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                pair => pair,
            };
            let plain = Range { start, end, inside: false };
            let inverted = Range { start, end, inside: true };
            prop_assert_ne!(plain.alerts(value), inverted.alerts(value));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,12}") {
            let _ = Range::parse(&text);
        }
    }
}
