//! Plugin output and performance data: `text | 'label'=value[UOM];[warn];[crit];[min];[max] …`,
//! including the Nagios 3 multi-line format where a `|` in the long output starts more
//! performance data. Malformed items are reported and skipped; well-formed ones are kept.

use std::fmt;

use vedette_protocol::range::{Range, RangeError, parse_number};

/// Why one performance data item was skipped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PerfdataError {
    /// A quoted label has no closing quote.
    #[error("perfdata item {item:?}: unterminated quoted label")]
    UnterminatedQuote {
        /// The item as written.
        item: String,
    },
    /// No `=` between label and value.
    #[error("perfdata item {item:?}: missing \"=\" after the label")]
    MissingEquals {
        /// The item as written.
        item: String,
    },
    /// The label is empty.
    #[error("perfdata item {item:?}: empty label")]
    EmptyLabel {
        /// The item as written.
        item: String,
    },
    /// The value is neither a number nor `U`.
    #[error("perfdata item {item:?}: value {value:?} is not a number")]
    InvalidValue {
        /// The item as written.
        item: String,
        /// The value field.
        value: String,
    },
    /// The warning or critical threshold is not a range.
    #[error("perfdata item {item:?}: {field} threshold: {source}")]
    InvalidThreshold {
        /// The item as written.
        item: String,
        /// `warn` or `crit`.
        field: &'static str,
        /// What is wrong with the range.
        source: RangeError,
    },
    /// `min` or `max` is not a number.
    #[error("perfdata item {item:?}: {field} {value:?} is not a number")]
    InvalidLimit {
        /// The item as written.
        item: String,
        /// `min` or `max`.
        field: &'static str,
        /// The field as written.
        value: String,
    },
    /// More than the five `;`-separated fields.
    #[error("perfdata item {item:?}: more than 5 fields")]
    TooManyFields {
        /// The item as written.
        item: String,
    },
}

/// A unit of measurement.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Uom {
    /// No unit: a plain number.
    #[default]
    None,
    /// `s`
    Seconds,
    /// `ms`
    Milliseconds,
    /// `us`
    Microseconds,
    /// `%`
    Percent,
    /// `B`
    Bytes,
    /// `KB`
    Kilobytes,
    /// `MB`
    Megabytes,
    /// `GB`
    Gigabytes,
    /// `TB`
    Terabytes,
    /// `c`, a continuous counter.
    Counter,
    /// Any other unit, kept as written: a letter, then letters, digits, `/`, `_` or `%`
    /// (`MiB`, `req/s`). Anything else after the number (`10,5`, `1.2.3`) is not a unit but a
    /// malformed value, and the item is dropped.
    Other(String),
}

impl Uom {
    /// The unit as written after a value.
    pub fn parse(text: &str) -> Uom {
        match text {
            "" => Uom::None,
            "s" => Uom::Seconds,
            "ms" => Uom::Milliseconds,
            "us" => Uom::Microseconds,
            "%" => Uom::Percent,
            "B" => Uom::Bytes,
            "KB" => Uom::Kilobytes,
            "MB" => Uom::Megabytes,
            "GB" => Uom::Gigabytes,
            "TB" => Uom::Terabytes,
            "c" => Uom::Counter,
            other => Uom::Other(other.to_owned()),
        }
    }

    /// The unit as a plugin writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Uom::None => "",
            Uom::Seconds => "s",
            Uom::Milliseconds => "ms",
            Uom::Microseconds => "us",
            Uom::Percent => "%",
            Uom::Bytes => "B",
            Uom::Kilobytes => "KB",
            Uom::Megabytes => "MB",
            Uom::Gigabytes => "GB",
            Uom::Terabytes => "TB",
            Uom::Counter => "c",
            Uom::Other(other) => other,
        }
    }
}

/// One performance data item.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfDatum {
    /// The label, unquoted.
    pub label: String,
    /// The value; `None` when the plugin wrote `U` (it could not measure).
    pub value: Option<f64>,
    /// The unit.
    pub uom: Uom,
    /// The warning threshold.
    pub warn: Option<Range>,
    /// The critical threshold.
    pub crit: Option<Range>,
    /// The smallest possible value.
    pub min: Option<f64>,
    /// The largest possible value.
    pub max: Option<f64>,
}

/// Performance data items, and the problems of the items that were skipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Perfdata {
    /// The well-formed items, in order.
    pub items: Vec<PerfDatum>,
    /// One entry per malformed item.
    pub problems: Vec<PerfdataError>,
    /// Whether the first item written is one of `problems`: thresholds apply to the first
    /// item, so they then have no value, rather than moving on to the next one.
    pub first_malformed: bool,
}

/// A plugin's output split into its parts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginOutput {
    /// The first line, before any `|`.
    pub text: String,
    /// The following lines, up to the first `|` among them.
    pub long_text: String,
    /// Performance data from the first line and from the long output.
    pub perfdata: Perfdata,
}

/// Splits plugin output into text, long text and performance data.
pub fn parse_output(output: &str) -> PluginOutput {
    let (first_line, rest) = output.split_once('\n').unwrap_or((output, ""));
    let (text, first_perf) = first_line.split_once('|').unwrap_or((first_line, ""));
    let (long_text, long_perf) = rest.split_once('|').unwrap_or((rest, ""));
    let mut perfdata = parse_perfdata(first_perf);
    let more = parse_perfdata(long_perf);
    perfdata.items.extend(more.items);
    perfdata.problems.extend(more.problems);
    PluginOutput {
        text: text.trim().to_owned(),
        long_text: long_text.trim_end().to_owned(),
        perfdata,
    }
}

/// Parses whitespace-separated performance data items.
pub fn parse_perfdata(text: &str) -> Perfdata {
    let mut perfdata = Perfdata::default();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (item, after) = split_item(rest);
        match parse_item(item) {
            Ok(datum) => perfdata.items.push(datum),
            Err(problem) => {
                perfdata.first_malformed |=
                    perfdata.items.is_empty() && perfdata.problems.is_empty();
                perfdata.problems.push(problem);
            }
        }
        rest = after.trim_start();
    }
    perfdata
}

/// Splits off the first item: up to whitespace outside a quoted label.
fn split_item(text: &str) -> (&str, &str) {
    let mut in_quotes = false;
    let mut label_done = false;
    for (index, character) in text.char_indices() {
        match character {
            '\'' if !label_done => in_quotes = !in_quotes,
            '=' if !in_quotes => label_done = true,
            c if c.is_whitespace() && !in_quotes => return text.split_at(index),
            _ => {}
        }
    }
    if in_quotes {
        // An unterminated quote: the item ends at the next whitespace, so that one bad
        // label does not swallow the items after it.
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        return text.split_at(end);
    }
    (text, "")
}

fn parse_item(item: &str) -> Result<PerfDatum, PerfdataError> {
    let owned = || item.to_owned();
    let (label, fields) = split_label(item)?;
    if label.is_empty() {
        return Err(PerfdataError::EmptyLabel { item: owned() });
    }
    let fields: Vec<&str> = fields.split(';').collect();
    if fields.len() > 5 {
        return Err(PerfdataError::TooManyFields { item: owned() });
    }
    let field = |index: usize| fields.get(index).copied().unwrap_or("");
    let (value, uom) = split_value(field(0))
        .filter(|(_, uom)| is_unit(uom))
        .ok_or_else(|| PerfdataError::InvalidValue {
            item: owned(),
            value: field(0).to_owned(),
        })?;
    let threshold = |index: usize, name: &'static str| match field(index) {
        "" => Ok(None),
        text => Range::parse(text)
            .map(Some)
            .map_err(|source| PerfdataError::InvalidThreshold {
                item: owned(),
                field: name,
                source,
            }),
    };
    let limit = |index: usize, name: &'static str| match field(index) {
        "" => Ok(None),
        text => parse_number(text)
            .map(Some)
            .ok_or_else(|| PerfdataError::InvalidLimit {
                item: owned(),
                field: name,
                value: text.to_owned(),
            }),
    };
    Ok(PerfDatum {
        label,
        value,
        uom: Uom::parse(uom),
        warn: threshold(1, "warn")?,
        crit: threshold(2, "crit")?,
        min: limit(3, "min")?,
        max: limit(4, "max")?,
    })
}

/// Reads the label (quoted or not) and returns it with the text after `=`.
fn split_label(item: &str) -> Result<(String, &str), PerfdataError> {
    let Some(quoted) = item.strip_prefix('\'') else {
        let (label, fields) = item
            .split_once('=')
            .ok_or_else(|| PerfdataError::MissingEquals {
                item: item.to_owned(),
            })?;
        return Ok((label.to_owned(), fields));
    };
    let mut label = String::new();
    let mut characters = quoted.char_indices().peekable();
    while let Some((index, character)) = characters.next() {
        if character != '\'' {
            label.push(character);
        } else if characters.next_if(|&(_, next)| next == '\'').is_some() {
            label.push('\'');
        } else {
            let after = &quoted[index + 1..];
            let fields = after
                .strip_prefix('=')
                .ok_or_else(|| PerfdataError::MissingEquals {
                    item: item.to_owned(),
                })?;
            return Ok((label, fields));
        }
    }
    Err(PerfdataError::UnterminatedQuote {
        item: item.to_owned(),
    })
}

/// Whether what follows a value can be its unit: nothing, or a letter or `%` then letters,
/// digits, `/`, `_` or `%`.
fn is_unit(text: &str) -> bool {
    // `e2` or `E-3` right after a number would read back as its exponent (`1.5e5e2` written
    // as `150000e2`): no unit, a malformed value.
    if let [b'e' | b'E', rest @ ..] = text.as_bytes()
        && matches!(rest, [b'0'..=b'9', ..] | [b'+' | b'-', b'0'..=b'9', ..])
    {
        return false;
    }
    let mut characters = text.chars();
    match characters.next() {
        None => true,
        Some(first) if first.is_ascii_alphabetic() || first == '%' => {
            characters.all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '%'))
        }
        Some(_) => false,
    }
}

/// Splits `12.5ms` into the number and its unit; `U` is an unknown value.
fn split_value(text: &str) -> Option<(Option<f64>, &str)> {
    if let Some(uom) = text.strip_prefix('U') {
        return Some((None, uom));
    }
    let length = number_prefix_length(text);
    let value = parse_number(&text[..length])?;
    Some((Some(value), &text[length..]))
}

/// The length of the leading `[+-]digits[.digits][e[+-]digits]`.
fn number_prefix_length(text: &str) -> usize {
    let bytes = text.as_bytes();
    let digits = |mut at: usize| {
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        at
    };
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    end = digits(end);
    if bytes.get(end) == Some(&b'.') {
        end = digits(end + 1);
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exponent_end = digits(end + 1 + sign);
        if exponent_end > end + 1 + sign {
            end = exponent_end;
        }
    }
    end
}

impl fmt::Display for PerfDatum {
    /// Writes the item so that [`parse_perfdata`] reads it back unchanged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needs_quotes = self.label.starts_with('\'')
            || self
                .label
                .chars()
                .any(|c| c.is_whitespace() || c == '=' || c == '\'');
        if needs_quotes {
            write!(f, "'{}'=", self.label.replace('\'', "''"))?;
        } else {
            write!(f, "{}=", self.label)?;
        }
        match self.value {
            Some(value) => write!(f, "{value}")?,
            None => f.write_str("U")?,
        }
        f.write_str(self.uom.as_str())?;
        let optional = |value: Option<String>| value.unwrap_or_default();
        write!(
            f,
            ";{};{};{};{}",
            optional(self.warn.map(|r| r.to_string())),
            optional(self.crit.map(|r| r.to_string())),
            optional(self.min.map(|v| v.to_string())),
            optional(self.max.map(|v| v.to_string())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn only_item(text: &str) -> PerfDatum {
        let parsed = parse_perfdata(text);
        assert_eq!(parsed.problems, vec![], "{text}");
        assert_eq!(parsed.items.len(), 1, "{text}");
        parsed.items.into_iter().next().unwrap()
    }

    /// Icinga 2's perfdata cases (test/icinga-perfdata.cpp) as a table, read the way Vedette
    /// reads them: values are kept in the unit written (no scaling), threshold ranges are kept
    /// as ranges, and an item Icinga refuses is dropped here too.
    #[test]
    fn the_icinga_perfdata_cases() {
        type Expect = (&'static str, Option<f64>, &'static str);
        let kept: [(&str, &[Expect]); 14] = [
            ("", &[]),
            ("test=123456", &[("test", Some(123_456.0), "")]),
            (
                "'hello world'=123456",
                &[("hello world", Some(123_456.0), "")],
            ),
            (
                " 'testA'=123456  'testB'=123456",
                &[
                    ("testA", Some(123_456.0), ""),
                    ("testB", Some(123_456.0), ""),
                ],
            ),
            (
                "test=123456B;1000;2000;3000;4000",
                &[("test", Some(123_456.0), "B")],
            ),
            (
                "test=123456;1000:2000;0:3000;3000;4000",
                &[("test", Some(123_456.0), "")],
            ),
            (
                "testA=5;;7;1;9 testE=5;;7;;",
                &[("testA", Some(5.0), ""), ("testE", Some(5.0), "")],
            ),
            ("test=1000ms;200;500", &[("test", Some(1000.0), "ms")]),
            ("test=42c", &[("test", Some(42.0), "c")]),
            (
                "test=1.1e+1 t2=1.1E-1",
                &[("test", Some(11.0), ""), ("t2", Some(0.11), "")],
            ),
            ("test=23.", &[("test", Some(23.0), "")]),
            ("test=.42", &[("test", Some(0.42), "")]),
            ("test=+1.5E-15EB", &[("test", Some(1.5e-15), "EB")]),
            ("test=U;1;2", &[("test", None, "")]),
        ];
        for (text, expected) in kept {
            let parsed = parse_perfdata(text);
            assert_eq!(parsed.problems, vec![], "{text}");
            let got: Vec<(&str, Option<f64>, &str)> = parsed
                .items
                .iter()
                .map(|d| (d.label.as_str(), d.value, d.uom.as_str()))
                .collect();
            assert_eq!(got, expected.to_vec(), "{text}");
        }
        let full = only_item("test=1.1E-1;1.2e+1;1.3E-1;1.4e-2;1.5E2");
        assert_eq!(full.warn.and_then(|r| r.end()), Some(12.0));
        assert_eq!(full.crit.and_then(|r| r.end()), Some(0.13));
        assert_eq!((full.min, full.max), (Some(0.014), Some(150.0)));
        for dropped in [
            "123456",
            "test=1,23456",
            "test=123_456",
            "test=",
            "test=123,456;1;1;1;1",
            "test=1;123,456;1;1;1",
            "test=1;1;123,456;1;1",
            "test=1;1;1;123,456;1",
            "test=1;1;1;1;123,456",
            "test=inf",
            "test=Inf",
            "test=-inf",
            "test=123456;10%;20%",
        ] {
            let parsed = parse_perfdata(dropped);
            assert!(
                parsed.items.is_empty(),
                "{dropped} is dropped: {:?}",
                parsed.items
            );
            assert_eq!(parsed.problems.len(), 1, "{dropped} is one problem");
        }
    }

    #[test]
    fn full_item() {
        let datum = only_item("time=0.004s;1;2:5;0;10.5");
        assert_eq!(datum.label, "time");
        assert_eq!(datum.value, Some(0.004));
        assert_eq!(datum.uom, Uom::Seconds);
        assert_eq!(datum.warn, Some(Range::parse("1").unwrap()));
        assert_eq!(datum.crit, Some(Range::parse("2:5").unwrap()));
        assert_eq!((datum.min, datum.max), (Some(0.0), Some(10.5)));
    }

    #[test]
    fn every_known_unit_and_others_kept() {
        for (unit, uom) in [
            ("", Uom::None),
            ("s", Uom::Seconds),
            ("ms", Uom::Milliseconds),
            ("us", Uom::Microseconds),
            ("%", Uom::Percent),
            ("B", Uom::Bytes),
            ("KB", Uom::Kilobytes),
            ("MB", Uom::Megabytes),
            ("GB", Uom::Gigabytes),
            ("TB", Uom::Terabytes),
            ("c", Uom::Counter),
            ("MiB", Uom::Other("MiB".into())),
            ("req/s", Uom::Other("req/s".into())),
        ] {
            let datum = only_item(&format!("x=-1.5{unit}"));
            assert_eq!(datum.value, Some(-1.5), "{unit}");
            assert_eq!(datum.uom, uom, "{unit}");
        }
    }

    #[test]
    fn a_value_with_anything_but_a_unit_after_its_number_is_dropped() {
        for item in ["v=10,5", "v=1.2.3", "v=5-3", "v=7#"] {
            let parsed = parse_perfdata(&format!("{item} w=6"));
            let labels: Vec<&str> = parsed.items.iter().map(|d| d.label.as_str()).collect();
            assert_eq!(labels, ["w"], "{item}");
            assert!(
                matches!(
                    parsed.problems.as_slice(),
                    [PerfdataError::InvalidValue { .. }]
                ),
                "{item}: {:?}",
                parsed.problems
            );
        }
    }

    /// Found by fuzzing (fuzz target `perfdata`): `1.5e5e2` was read as 150000 with unit
    /// `e2`, written back as `150000e2` and read again as 15000000.
    #[test]
    fn a_second_exponent_is_no_unit() {
        for item in ["v=-1.5e5e2", "v=1e2E-3", "v=7e+1e2"] {
            let parsed = parse_perfdata(item);
            assert!(parsed.items.is_empty(), "{item}: {:?}", parsed.items);
            assert!(
                matches!(
                    parsed.problems.as_slice(),
                    [PerfdataError::InvalidValue { .. }]
                ),
                "{item}: {:?}",
                parsed.problems
            );
        }
        assert_eq!(only_item("v=3events").uom, Uom::Other("events".into()));
        assert_eq!(only_item("v=3e").uom, Uom::Other("e".into()));
    }

    #[test]
    fn quoted_labels_with_spaces_and_quotes() {
        let datum = only_item("'free space on /'=42%;80;90");
        assert_eq!(datum.label, "free space on /");
        let datum = only_item("'it''s ''quoted'''=1");
        assert_eq!(datum.label, "it's 'quoted'");
        let datum = only_item("'a=b'=2");
        assert_eq!(datum.label, "a=b");
    }

    #[test]
    fn unknown_value_and_trailing_empty_fields() {
        let datum = only_item("rta=U;;;;");
        assert_eq!(datum.value, None);
        assert_eq!(
            (datum.warn, datum.crit, datum.min, datum.max),
            (None, None, None, None)
        );
        let datum = only_item("rta=Ums;100;200");
        assert_eq!((datum.value, datum.uom), (None, Uom::Milliseconds));
        let datum = only_item("load1=0.5;");
        assert_eq!(datum.value, Some(0.5));
    }

    #[test]
    fn thresholds_in_every_range_form() {
        let datum = only_item("x=5;@10:20;~:30;;");
        assert!(datum.warn.unwrap().is_inverted());
        assert_eq!(datum.crit.unwrap().start(), None);
        let datum = only_item("x=5;10:;1e3");
        assert_eq!(datum.warn.unwrap().end(), None);
        assert_eq!(datum.crit.unwrap().end(), Some(1000.0));
    }

    #[test]
    fn malformed_items_are_reported_and_the_rest_kept() {
        let parsed = parse_perfdata("a=1 novalue b= c=abc g=2 =5 h=3");
        let labels: Vec<&str> = parsed.items.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels, ["a", "g", "h"]);
        let problems: Vec<String> = parsed.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [
                r#"perfdata item "novalue": missing "=" after the label"#,
                r#"perfdata item "b=": value "" is not a number"#,
                r#"perfdata item "c=abc": value "abc" is not a number"#,
                r#"perfdata item "=5": empty label"#,
            ]
        );
        // Each kind of problem on its own, between two good items.
        let cases = [
            (
                "c=abc",
                r#"perfdata item "c=abc": value "abc" is not a number"#,
            ),
            (
                "d=1;20:10",
                r#"perfdata item "d=1;20:10": warn threshold: range "20:10": start 20 is greater than end 10"#,
            ),
            (
                "e=1;;;x",
                r#"perfdata item "e=1;;;x": min "x" is not a number"#,
            ),
            (
                "e=1;;;;1:",
                r#"perfdata item "e=1;;;;1:": max "1:" is not a number"#,
            ),
            (
                "f=1;;;;;",
                r#"perfdata item "f=1;;;;;": more than 5 fields"#,
            ),
            ("=5", r#"perfdata item "=5": empty label"#),
            (
                "'open=3",
                r#"perfdata item "'open=3": unterminated quoted label"#,
            ),
            (
                "'x'y=1",
                r#"perfdata item "'x'y=1": missing "=" after the label"#,
            ),
            (
                "x=inf",
                r#"perfdata item "x=inf": value "inf" is not a number"#,
            ),
        ];
        for (text, message) in cases {
            let parsed = parse_perfdata(&format!("ok=1 {text} ok2=2"));
            let labels: Vec<&str> = parsed.items.iter().map(|d| d.label.as_str()).collect();
            assert_eq!(labels, ["ok", "ok2"], "{text}");
            let problems: Vec<String> = parsed.problems.iter().map(ToString::to_string).collect();
            assert_eq!(problems, [message], "{text}");
        }
    }

    #[test]
    fn output_with_single_line() {
        let output =
            parse_output("DISK OK - free space: / 74502MiB;| /=19671285760B;243;257;0;270\n");
        assert_eq!(output.text, "DISK OK - free space: / 74502MiB;");
        assert_eq!(output.long_text, "");
        assert_eq!(output.perfdata.items.len(), 1);
        assert_eq!(output.perfdata.items[0].label, "/");
        assert_eq!(output.perfdata.items[0].uom, Uom::Bytes);
        assert_eq!(output.perfdata.items[0].max, Some(270.0));
    }

    #[test]
    fn output_without_perfdata() {
        let output = parse_output("OK: hello world");
        assert_eq!(output.text, "OK: hello world");
        assert_eq!(output.long_text, "");
        assert_eq!(output.perfdata, Perfdata::default());
    }

    #[test]
    fn nagios3_multi_line_output() {
        let text = "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n\
                    / 15272 MB (77%);\n\
                    /boot 68 MB (69%);\n\
                    /home 69357 MB (27%);\n\
                    /var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n\
                    /home=69357MB;253404;253409;0;253414 \n\
                    /var/log=818MB;970;975;0;980\n";
        let output = parse_output(text);
        assert_eq!(output.text, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(
            output.long_text,
            "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);"
        );
        let labels: Vec<&str> = output
            .perfdata
            .items
            .iter()
            .map(|d| d.label.as_str())
            .collect();
        assert_eq!(labels, ["/", "/boot", "/home", "/var/log"]);
        assert!(output.perfdata.problems.is_empty());
    }

    #[test]
    fn long_output_without_pipe_on_first_line() {
        let output = parse_output("OK\nline two\nline three | x=1\ny=2");
        assert_eq!(output.text, "OK");
        assert_eq!(output.long_text, "line two\nline three");
        let labels: Vec<&str> = output
            .perfdata
            .items
            .iter()
            .map(|d| d.label.as_str())
            .collect();
        assert_eq!(labels, ["x", "y"]);
    }

    fn datum() -> impl Strategy<Value = PerfDatum> {
        let label = "[^\\p{Cc}|]{1,12}".prop_filter("not blank", |l: &String| !l.trim().is_empty());
        let number = prop_oneof![
            -1e9..1e9f64,
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
        ];
        let uom = prop_oneof![
            Just(Uom::None),
            Just(Uom::Seconds),
            Just(Uom::Milliseconds),
            Just(Uom::Microseconds),
            Just(Uom::Percent),
            Just(Uom::Bytes),
            Just(Uom::Kilobytes),
            Just(Uom::Megabytes),
            Just(Uom::Gigabytes),
            Just(Uom::Terabytes),
            Just(Uom::Counter),
            "[a-df-zA-DF-Z][a-zA-Z/]{0,4}".prop_map(|unit| Uom::parse(&unit)),
        ];
        let range = (
            proptest::option::of(number.clone()),
            proptest::option::of(number.clone()),
            any::<bool>(),
        )
            .prop_map(|(a, b, inside)| {
                let (start, end) = match (a, b) {
                    (Some(a), Some(b)) if a > b => (b.to_string(), a.to_string()),
                    (a, b) => (
                        a.map_or("~".to_owned(), |a| a.to_string()),
                        b.map_or(String::new(), |b| b.to_string()),
                    ),
                };
                let prefix = if inside { "@" } else { "" };
                Range::parse(&format!("{prefix}{start}:{end}")).unwrap()
            });
        (
            label,
            proptest::option::of(number.clone()),
            uom,
            proptest::option::of(range.clone()),
            proptest::option::of(range),
            proptest::option::of(number.clone()),
            proptest::option::of(number),
        )
            .prop_map(|(label, value, uom, warn, crit, min, max)| PerfDatum {
                label,
                value,
                uom,
                warn,
                crit,
                min,
                max,
            })
    }

    proptest! {
        #[test]
        fn display_then_parse_roundtrips(items in proptest::collection::vec(datum(), 0..6)) {
            let text: Vec<String> = items.iter().map(ToString::to_string).collect();
            let parsed = parse_perfdata(&text.join(" "));
            prop_assert_eq!(parsed.problems, vec![]);
            prop_assert_eq!(parsed.items, items);
        }

        #[test]
        fn a_malformed_item_never_costs_a_neighbour(
            before in datum(), after in datum(), junk in "[a-z0-9;:~@.]{1,10}",
        ) {
            let text = format!("{before} {junk} {after}");
            let parsed = parse_perfdata(&text);
            prop_assert_eq!(parsed.items.first(), Some(&before));
            prop_assert_eq!(parsed.items.last(), Some(&after));
            prop_assert_eq!(parsed.items.len() + parsed.problems.len(), 3);
        }

        #[test]
        fn parse_output_never_panics(text in "\\PC{0,64}") {
            let _ = parse_output(&text);
        }
    }
}
