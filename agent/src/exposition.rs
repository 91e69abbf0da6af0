//! The two text formats `/metrics` speaks. prometheus-client writes OpenMetrics 1.0, which
//! Prometheus asks for; promtool, curl and other scrapers read the classic text format 0.0.4,
//! where a counter's `# HELP` and `# TYPE` name its `_total` sample and `# UNIT` and `# EOF`
//! do not exist. [`negotiate`] picks the format from the request's `Accept` header (OpenMetrics
//! only when it is asked for) and [`classic`] derives the classic text from the OpenMetrics
//! text line by line, so both formats carry the same samples. Pure: no I/O.

use std::collections::HashMap;

/// The content type of OpenMetrics 1.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic Prometheus text format.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text format of the exposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, as prometheus-client writes it.
    OpenMetrics,
    /// The classic text format 0.0.4.
    Classic,
}

impl Format {
    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Classic => CLASSIC_CONTENT_TYPE,
        }
    }

    /// `openmetrics` (OpenMetrics text from prometheus-client) in this format.
    pub fn render(self, openmetrics: String) -> String {
        match self {
            Format::OpenMetrics => openmetrics,
            Format::Classic => classic(&openmetrics),
        }
    }
}

/// The format to answer a request with `Accept: accept`: OpenMetrics when the header names
/// `application/openmetrics-text` with a quality above zero and at least that of
/// `text/plain`; the classic format otherwise (no header, `*/*`, `text/plain`, anything else).
pub fn negotiate(accept: Option<&str>) -> Format {
    let (mut openmetrics, mut text) = (0.0_f32, 0.0_f32);
    for range in accept.unwrap_or_default().split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let quality = parts
            .filter_map(|parameter| parameter.split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, value)| value.trim().parse().unwrap_or(0.0));
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            openmetrics = openmetrics.max(quality);
        } else if media.eq_ignore_ascii_case("text/plain") {
            text = text.max(quality);
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Classic
    }
}

/// The classic text format of `openmetrics`: a counter family `x` is announced as `x_total`
/// (its sample's name) and an info family `x` as the gauge `x_info`; `unknown` is `untyped`;
/// `# UNIT`, `# EOF`, `_created` samples and exemplars, which the classic format does not
/// have, are left out. Every other line is kept as it is.
pub fn classic(openmetrics: &str) -> String {
    let types: HashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + openmetrics.len() / 16);
    for line in openmetrics.lines() {
        if let Some(converted) = classic_line(line, &types) {
            out.push_str(&converted);
            out.push('\n');
        }
    }
    out
}

/// One line in the classic format, or `None` when it has no place there.
fn classic_line(line: &str, types: &HashMap<&str, &str>) -> Option<String> {
    if line == "# EOF" || line.starts_with("# UNIT ") {
        return None;
    }
    if let Some(rest) = line.strip_prefix("# HELP ") {
        let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
        return Some(format!("# HELP {} {help}", family_name(name, types)));
    }
    if let Some(rest) = line.strip_prefix("# TYPE ") {
        let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
        return Some(format!(
            "# TYPE {} {}",
            family_name(name, types),
            classic_type(kind)
        ));
    }
    if line.starts_with('#') {
        return Some(line.to_owned());
    }
    let name = sample_name(line);
    let created = name.strip_suffix("_created").is_some_and(|family| {
        matches!(
            types.get(family),
            Some(&("counter" | "histogram" | "summary"))
        )
    });
    (!created).then(|| without_exemplar(line).to_owned())
}

/// The classic name of family `name`: what its sample is called.
fn family_name(name: &str, types: &HashMap<&str, &str>) -> String {
    match types.get(name) {
        Some(&"counter") => format!("{name}_total"),
        Some(&"info") => format!("{name}_info"),
        _ => name.to_owned(),
    }
}

/// The classic type of an OpenMetrics type.
fn classic_type(kind: &str) -> &str {
    match kind {
        "counter" | "gauge" | "histogram" | "summary" => kind,
        "info" | "stateset" => "gauge",
        _ => "untyped",
    }
}

/// The metric name a sample line starts with.
fn sample_name(line: &str) -> &str {
    let end = line.find(['{', ' ']).unwrap_or(line.len());
    &line[..end]
}

/// A sample line without its exemplar (` # {labels} value [timestamp]` after the value).
fn without_exemplar(line: &str) -> &str {
    let after_labels = labels_end(line);
    match line[after_labels..].find(" # ") {
        Some(at) => &line[..after_labels + at],
        None => line,
    }
}

/// Where the sample's label set ends (just past its `}`; the name's end without one),
/// skipping quoted label values, which may hold `}` and `#`.
fn labels_end(line: &str) -> usize {
    let start = sample_name(line).len();
    if !line[start..].starts_with('{') {
        return start;
    }
    let (mut quoted, mut escaped) = (false, false);
    for (offset, character) in line[start..].char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return start + offset + 1,
            _ => {}
        }
    }
    line.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_asked_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("Application/OpenMetrics-Text; version=1.0.0")),
            Format::OpenMetrics
        );
        for classic in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("application/openmetrics-text;q=0"),
            Some("text/plain;q=1, application/openmetrics-text;q=0.5"),
            Some("application/json"),
        ] {
            assert_eq!(negotiate(classic), Format::Classic, "{classic:?}");
        }
    }

    #[test]
    fn counters_and_infos_are_named_by_their_samples_and_openmetrics_only_lines_go() {
        let openmetrics = concat!(
            "# HELP jobs Jobs run.\n",
            "# TYPE jobs counter\n",
            "jobs_total{kind=\"a\"} 3 # {trace=\"x\"} 1.0\n",
            "jobs_created{kind=\"a\"} 1700000000.0\n",
            "# HELP size_bytes Size.\n",
            "# TYPE size_bytes gauge\n",
            "# UNIT size_bytes bytes\n",
            "size_bytes{path=\"a } # b\"} 7\n",
            "# HELP build Build.\n",
            "# TYPE build info\n",
            "build_info{version=\"1\"} 1\n",
            "# HELP odd Odd.\n",
            "# TYPE odd unknown\n",
            "odd 1\n",
            "# HELP wait_seconds Waits.\n",
            "# TYPE wait_seconds histogram\n",
            "wait_seconds_sum 0.5\n",
            "wait_seconds_count 1\n",
            "wait_seconds_bucket{le=\"+Inf\"} 1\n",
            "# EOF\n",
        );
        let expected = concat!(
            "# HELP jobs_total Jobs run.\n",
            "# TYPE jobs_total counter\n",
            "jobs_total{kind=\"a\"} 3\n",
            "# HELP size_bytes Size.\n",
            "# TYPE size_bytes gauge\n",
            "size_bytes{path=\"a } # b\"} 7\n",
            "# HELP build_info Build.\n",
            "# TYPE build_info gauge\n",
            "build_info{version=\"1\"} 1\n",
            "# HELP odd Odd.\n",
            "# TYPE odd untyped\n",
            "odd 1\n",
            "# HELP wait_seconds Waits.\n",
            "# TYPE wait_seconds histogram\n",
            "wait_seconds_sum 0.5\n",
            "wait_seconds_count 1\n",
            "wait_seconds_bucket{le=\"+Inf\"} 1\n",
        );
        assert_eq!(classic(openmetrics), expected);
    }

    #[test]
    fn what_prometheus_client_writes_converts() {
        use prometheus_client::metrics::counter::Counter;
        use prometheus_client::metrics::family::Family;
        let mut registry = prometheus_client::registry::Registry::default();
        let sends: Family<Vec<(String, String)>, Counter> = Family::default();
        sends
            .get_or_create(&vec![("result".into(), "ok".into())])
            .inc_by(2);
        registry.sub_registry_with_prefix("vedette").register(
            "upstream_sends",
            "Batches sent upstream",
            sends,
        );
        let mut openmetrics = String::new();
        prometheus_client::encoding::text::encode(&mut openmetrics, &registry).unwrap();
        assert_eq!(
            classic(&openmetrics),
            concat!(
                "# HELP vedette_upstream_sends_total Batches sent upstream.\n",
                "# TYPE vedette_upstream_sends_total counter\n",
                "vedette_upstream_sends_total{result=\"ok\"} 2\n",
            )
        );
    }
}
