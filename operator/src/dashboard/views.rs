//! The dashboard's views (pure): the masters' state joined with the [`Catalog`], cut to what
//! the caller may see ([`Visible`]), filtered, sorted and paged. Each function here is one
//! view's answer; the handlers in [`super`] only fetch, call and serialize.
//!
//! A check that is planned but never reported is PENDING (`state: null`); PENDING sorts below
//! OK, and the states sort by [`CheckState`]'s severity (its one home), worst first by default.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vedette_crds::CheckState;
use vedette_protocol::plan::CheckId;

use super::catalog::{Catalog, Definition, ZoneDefinition};
use crate::masters::access::Visible;
use crate::masters::state::{CheckEntry, MasterState};

/// Most rows in one page.
pub const MAX_PAGE: usize = 1000;
/// Rows in a page when none is asked for.
pub const DEFAULT_PAGE: usize = 200;
/// A satellite whose last zone summary is older than this is not ready (three summaries).
pub const SATELLITE_READY_MS: u64 = 3 * vedette_satellite::defaults::SUMMARY_SECONDS * 1000;

/// One check on one host, as every list shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The machine or remote target.
    pub host: String,
    /// The application (namespace).
    pub namespace: String,
    /// The rule set.
    pub rule_set: String,
    /// The rule.
    pub rule: String,
    /// The zone.
    pub zone: String,
    /// The state; `None` while PENDING (planned, never reported).
    pub state: Option<CheckState>,
    /// Whether the state is hard.
    pub hard: bool,
    /// Output of the run that set it.
    pub output: String,
    /// Since when it is in this state, Unix ms (0 while PENDING).
    pub since_ms: u64,
    /// When it last ran, Unix ms (0 while PENDING).
    pub at_ms: u64,
    /// The host's agent missed its keepalives: the state is the last known one.
    pub stale: bool,
}

impl Row {
    /// `namespace/ruleSet/rule`.
    pub fn check(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.rule_set, self.rule)
    }

    fn of(host: &str, id: &CheckId, zone: &str, entry: Option<&CheckEntry>, stale: bool) -> Row {
        Row {
            host: host.to_owned(),
            namespace: id.namespace.clone(),
            rule_set: id.rule_set.clone(),
            rule: id.rule.clone(),
            zone: entry
                .and_then(|e| e.zone.clone())
                .filter(|z| !z.is_empty())
                .unwrap_or_else(|| zone.to_owned()),
            state: entry.map(|e| e.state),
            hard: entry.is_some_and(|e| e.hard),
            output: entry.map(|e| e.output.clone()).unwrap_or_default(),
            since_ms: entry.map_or(0, |e| e.since_ms),
            at_ms: entry.map_or(0, |e| e.at_ms),
            stale,
        }
    }

    /// A hard state other than OK.
    pub fn is_hard_problem(&self) -> bool {
        self.hard && self.state.is_some_and(|s| s != CheckState::Ok)
    }

    /// A soft state other than OK (not yet confirmed).
    pub fn is_soft_problem(&self) -> bool {
        !self.hard && self.state.is_some_and(|s| s != CheckState::Ok)
    }
}

/// Every check the caller may see: reported ones and planned ones that never reported.
pub fn rows(state: &MasterState, catalog: &Catalog, visible: &Visible, now_ms: u64) -> Vec<Row> {
    rows_where(state, catalog, visible, now_ms, |_| true)
}

/// The checks the caller may see whose entry (`None`: PENDING) passes `keep`; only those are
/// made into rows.
pub fn rows_where(
    state: &MasterState,
    catalog: &Catalog,
    visible: &Visible,
    now_ms: u64,
    keep: impl Fn(Option<&CheckEntry>) -> bool,
) -> Vec<Row> {
    let stale = |host: &str| state.agents().get(host).is_some_and(|a| a.stale(now_ms));
    let mut rows = Vec::new();
    for (key, entry) in state.checks() {
        if !keep(Some(entry)) || !visible.includes(&key.check.namespace) {
            continue;
        }
        let zone = catalog
            .planned
            .get(&(key.host.clone(), key.check.clone()))
            .map_or("", String::as_str);
        rows.push(Row::of(
            &key.host,
            &key.check,
            zone,
            Some(entry),
            stale(&key.host),
        ));
    }
    if keep(None) {
        for ((host, id), zone) in &catalog.planned {
            if visible.includes(&id.namespace) && state.check(host, id).is_none() {
                rows.push(Row::of(host, id, zone, None, stale(host)));
            }
        }
    }
    rows
}

/// Counts by state of every check the caller may see, without making rows.
pub fn visible_counts(
    state: &MasterState,
    catalog: &Catalog,
    visible: &Visible,
) -> BTreeMap<&'static str, usize> {
    let mut counts = counts(std::iter::empty());
    for (key, entry) in state.checks() {
        if visible.includes(&key.check.namespace) {
            *counts.entry(entry.state.name()).or_default() += 1;
        }
    }
    let pending = catalog
        .planned
        .keys()
        .filter(|(host, id)| visible.includes(&id.namespace) && state.check(host, id).is_none())
        .count();
    counts.insert("PENDING", pending);
    counts
}

/// A column to sort by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Column {
    /// Severity (PENDING lowest), then host and check.
    #[default]
    State,
    /// Host, then check.
    Host,
    /// `namespace/ruleSet/rule`, then host.
    Check,
    /// Namespace, then check and host.
    Namespace,
    /// Zone, then host and check.
    Zone,
    /// How long it has been in its state (since when).
    Duration,
    /// When it last ran.
    LastCheck,
    /// The output text.
    Output,
}

/// Ascending or descending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Order {
    /// Smallest first (for `state`: OK first).
    Asc,
    /// Largest first (for `state`: worst first; for `duration`: longest first).
    #[default]
    Desc,
}

fn by_host_and_check(a: &Row, b: &Row) -> Ordering {
    (&a.host, &a.namespace, &a.rule_set, &a.rule).cmp(&(
        &b.host,
        &b.namespace,
        &b.rule_set,
        &b.rule,
    ))
}

fn by_check_and_host(a: &Row, b: &Row) -> Ordering {
    (&a.namespace, &a.rule_set, &a.rule, &a.host).cmp(&(
        &b.namespace,
        &b.rule_set,
        &b.rule,
        &b.host,
    ))
}

/// Sorts `rows` by `column` in `order`; ties are broken by host and check, ascending.
pub fn sort(rows: &mut [Row], column: Column, order: Order) {
    rows.sort_unstable_by(|a, b| {
        let first = match column {
            Column::State => a.state.cmp(&b.state),
            Column::Host => a.host.cmp(&b.host),
            Column::Check | Column::Namespace => by_check_and_host(a, b),
            Column::Zone => a.zone.cmp(&b.zone),
            // Shortest first when ascending: the newest `since`.
            Column::Duration => b.since_ms.cmp(&a.since_ms),
            Column::LastCheck => a.at_ms.cmp(&b.at_ms),
            Column::Output => a.output.cmp(&b.output),
        };
        let first = match order {
            Order::Asc => first,
            Order::Desc => first.reverse(),
        };
        first.then_with(|| by_host_and_check(a, b))
    });
}

/// What the all-checks view filters by (every field optional; all must match).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// The application.
    pub namespace: Option<String>,
    /// The zone.
    pub zone: Option<String>,
    /// The host, exactly.
    pub host: Option<String>,
    /// The rule set, as `name` or `namespace/name`.
    pub rule_set: Option<String>,
    /// States, comma-separated: OK, WARNING, CRITICAL, UNKNOWN, PENDING.
    pub state: Option<String>,
    /// Free text, case-insensitive, in host, check, zone or output.
    pub q: Option<String>,
}

/// A filter that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state={0:?} is not a list of OK, WARNING, CRITICAL, UNKNOWN, PENDING")]
pub struct BadState(pub String);

/// A [`Filter`] ready to test rows.
pub struct Matcher {
    filter: Filter,
    states: Option<BTreeSet<Option<CheckState>>>,
    text: Option<String>,
}

impl Filter {
    /// The matcher of this filter, or what does not parse.
    pub fn matcher(self) -> Result<Matcher, BadState> {
        let states = match self.state.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(list) => Some(
                list.split(',')
                    .map(|name| match name.trim().to_ascii_uppercase().as_str() {
                        "PENDING" => Ok(None),
                        upper => CheckState::from_name(upper)
                            .map(Some)
                            .ok_or_else(|| BadState(list.to_owned())),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let text = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_lowercase);
        Ok(Matcher {
            filter: self,
            states,
            text,
        })
    }
}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl Matcher {
    /// Whether `row` passes.
    pub fn matches(&self, row: &Row) -> bool {
        let f = &self.filter;
        given(&f.namespace).is_none_or(|n| row.namespace == n)
            && given(&f.zone).is_none_or(|z| row.zone == z)
            && given(&f.host).is_none_or(|h| row.host == h)
            && given(&f.rule_set).is_none_or(|r| match r.split_once('/') {
                Some((namespace, name)) => row.namespace == namespace && row.rule_set == name,
                None => row.rule_set == r,
            })
            && self.states.as_ref().is_none_or(|s| s.contains(&row.state))
            && self.text.as_ref().is_none_or(|q| {
                [&row.host, &row.zone, &row.output]
                    .iter()
                    .any(|field| field.to_lowercase().contains(q))
                    || row.check().to_lowercase().contains(q)
            })
    }
}

/// Counts by state: `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`, `PENDING`.
pub fn counts<'a>(rows: impl IntoIterator<Item = &'a Row>) -> BTreeMap<&'static str, usize> {
    let mut counts: BTreeMap<&'static str, usize> =
        ["OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING"]
            .into_iter()
            .map(|name| (name, 0))
            .collect();
    for row in rows {
        *counts
            .entry(row.state.map_or("PENDING", CheckState::name))
            .or_default() += 1;
    }
    counts
}

/// What the filter boxes offer: every value present among the visible rows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facets {
    /// Applications.
    pub namespaces: BTreeSet<String>,
    /// Zones.
    pub zones: BTreeSet<String>,
    /// Rule sets, `namespace/name`.
    pub rule_sets: BTreeSet<String>,
}

/// The facets of `rows`.
pub fn facets(rows: &[Row]) -> Facets {
    let mut namespaces = BTreeSet::new();
    let mut zones = BTreeSet::new();
    let mut rule_sets = BTreeSet::new();
    for row in rows {
        namespaces.insert(row.namespace.as_str());
        if !row.zone.is_empty() {
            zones.insert(row.zone.as_str());
        }
        rule_sets.insert((row.namespace.as_str(), row.rule_set.as_str()));
    }
    Facets {
        namespaces: namespaces.into_iter().map(str::to_owned).collect(),
        zones: zones.into_iter().map(str::to_owned).collect(),
        rule_sets: rule_sets
            .into_iter()
            .map(|(namespace, name)| format!("{namespace}/{name}"))
            .collect(),
    }
}

/// One page of the all-checks view.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChecksPage {
    /// Rows that pass the filter.
    pub total: usize,
    /// Of them, by state.
    pub counts: BTreeMap<&'static str, usize>,
    /// This page of them.
    pub rows: Vec<Row>,
    /// Where this page starts.
    pub offset: usize,
    /// Filter values present.
    pub facets: Facets,
}

/// The all-checks view: `rows` filtered, sorted and cut to `[offset, offset + limit)`.
pub fn checks_page(
    mut rows: Vec<Row>,
    matcher: &Matcher,
    (column, order): (Column, Order),
    offset: usize,
    limit: usize,
) -> ChecksPage {
    let facets = facets(&rows);
    rows.retain(|row| matcher.matches(row));
    sort(&mut rows, column, order);
    let counts = counts(&rows);
    let total = rows.len();
    let rows = rows
        .into_iter()
        .skip(offset)
        .take(limit.clamp(1, MAX_PAGE))
        .collect();
    ChecksPage {
        total,
        counts,
        rows,
        offset,
        facets,
    }
}

/// An agent that missed its keepalives, for the problems view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaleAgent {
    /// Its host.
    pub host: String,
    /// Its zone.
    pub zone: String,
    /// When it was last seen, Unix ms.
    pub seen_ms: u64,
}

/// Rows of each list the problems view shows (the worst; the checks view pages through all).
pub const PROBLEMS_SHOWN: usize = 500;

/// The problems view.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problems {
    /// Hard problems, worst first, then the newest first (the first [`PROBLEMS_SHOWN`]).
    pub hard: Vec<Row>,
    /// How many hard problems there are.
    pub hard_total: usize,
    /// Soft problems (not yet confirmed), in the same order (the first [`PROBLEMS_SHOWN`]).
    pub soft: Vec<Row>,
    /// How many soft problems there are.
    pub soft_total: usize,
    /// Agents that missed their keepalives (shown to those who may see zones).
    pub stale_agents: Vec<StaleAgent>,
    /// Checks the caller sees, by state.
    pub counts: BTreeMap<&'static str, usize>,
}

fn worst_then_newest(a: &Row, b: &Row) -> Ordering {
    b.state
        .cmp(&a.state)
        .then(b.since_ms.cmp(&a.since_ms))
        .then_with(|| by_host_and_check(a, b))
}

/// The problems among `rows` (rows of other states are left out), with the `counts` of
/// every check; stale agents when `with_agents`.
pub fn problems(
    rows: Vec<Row>,
    counts: BTreeMap<&'static str, usize>,
    state: &MasterState,
    with_agents: bool,
    now_ms: u64,
) -> Problems {
    let (mut hard, mut soft): (Vec<Row>, Vec<Row>) = rows
        .into_iter()
        .filter(|row| row.is_hard_problem() || row.is_soft_problem())
        .partition(Row::is_hard_problem);
    let (hard_total, soft_total) = (hard.len(), soft.len());
    for list in [&mut hard, &mut soft] {
        list.sort_unstable_by(worst_then_newest);
        list.truncate(PROBLEMS_SHOWN);
    }
    let stale_agents = if with_agents {
        state
            .agents()
            .iter()
            .filter(|(_, agent)| agent.stale(now_ms))
            .map(|(host, agent)| StaleAgent {
                host: host.clone(),
                zone: agent.zone.clone(),
                seen_ms: agent.seen_ms,
            })
            .collect()
    } else {
        Vec::new()
    };
    Problems {
        hard,
        hard_total,
        soft,
        soft_total,
        stale_agents,
        counts,
    }
}

/// An agent as the zone and host views show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    /// Its host.
    pub host: String,
    /// Its zone.
    pub zone: String,
    /// When it was last seen, Unix ms.
    pub seen_ms: u64,
    /// Missed its keepalives.
    pub stale: bool,
    /// Runs a held plan.
    pub plan_held: bool,
    /// Why, when held.
    pub plan_reason: String,
}

/// A satellite replica as its last zone summary shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SatelliteView {
    /// The replica.
    pub replica: String,
    /// Its last summary arrived within [`SATELLITE_READY_MS`].
    pub ready: bool,
    /// When that summary was made, Unix ms.
    pub at_ms: u64,
    /// Agents it knows.
    pub agents: u32,
    /// Of them connected.
    pub connected: u32,
    /// Remote checks it runs.
    pub remote_checks_owned: u32,
}

/// A zone as the zones view shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneView {
    /// The zone.
    pub name: String,
    /// As defined.
    #[serde(flatten)]
    pub definition: ZoneDefinition,
    /// Satellite replicas seen.
    pub satellites: Vec<SatelliteView>,
    /// Agents with a fresh keepalive.
    pub connected: u32,
    /// Agents that missed their keepalives.
    pub stale: u32,
    /// Agents on a held plan.
    pub plan_held: u32,
    /// Every agent.
    pub agents: Vec<AgentView>,
}

fn agent_view(host: &str, agent: &crate::masters::state::AgentEntry, now_ms: u64) -> AgentView {
    AgentView {
        host: host.to_owned(),
        zone: agent.zone.clone(),
        seen_ms: agent.seen_ms,
        stale: agent.stale(now_ms),
        plan_held: agent.plan_held,
        plan_reason: agent.plan_reason.clone(),
    }
}

/// Every zone: defined ones, and any an agent or satellite reported from.
pub fn zones(state: &MasterState, catalog: &Catalog, now_ms: u64) -> Vec<ZoneView> {
    let mut zones: BTreeMap<String, ZoneView> = catalog
        .zones
        .iter()
        .map(|(name, definition)| {
            let view = ZoneView {
                name: name.clone(),
                definition: definition.clone(),
                ..ZoneView::default()
            };
            (name.clone(), view)
        })
        .collect();
    fn zone<'a>(zones: &'a mut BTreeMap<String, ZoneView>, name: &str) -> &'a mut ZoneView {
        zones.entry(name.to_owned()).or_insert_with(|| ZoneView {
            name: name.to_owned(),
            ..ZoneView::default()
        })
    }
    for ((name, replica), summary) in state.zone_summaries() {
        zone(&mut zones, name).satellites.push(SatelliteView {
            replica: replica.clone(),
            ready: now_ms.saturating_sub(summary.at_ms) <= SATELLITE_READY_MS,
            at_ms: summary.at_ms,
            agents: summary.agents,
            connected: summary.connected,
            remote_checks_owned: summary.remote_checks_owned,
        });
    }
    for (host, agent) in state.agents() {
        let view = agent_view(host, agent, now_ms);
        let zone = zone(&mut zones, &agent.zone);
        zone.connected += u32::from(!view.stale);
        zone.stale += u32::from(view.stale);
        zone.plan_held += u32::from(view.plan_held);
        zone.agents.push(view);
    }
    zones.into_values().collect()
}

/// The host view.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// The host.
    pub name: String,
    /// Its agent, when it has one and the caller may see agents.
    pub agent: Option<AgentView>,
    /// Checked remotely by its zone's satellites.
    pub remote: bool,
    /// Its checks the caller may see, worst first.
    pub checks: Vec<Row>,
}

/// The host `name`, with `rows` (every visible row; only its own are kept).
pub fn host(
    name: &str,
    rows: Vec<Row>,
    state: &MasterState,
    catalog: &Catalog,
    with_agent: bool,
    now_ms: u64,
) -> HostView {
    let mut checks: Vec<Row> = rows.into_iter().filter(|r| r.host == name).collect();
    sort(&mut checks, Column::State, Order::Desc);
    HostView {
        name: name.to_owned(),
        agent: with_agent
            .then(|| {
                state
                    .agents()
                    .get(name)
                    .map(|a| agent_view(name, a, now_ms))
            })
            .flatten(),
        remote: catalog.remote_hosts.contains(name),
        checks,
    }
}

/// The check view (without its history, which the store gives).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckView {
    /// Its row.
    #[serde(flatten)]
    pub row: Row,
    /// Its definition, when it is still planned.
    pub definition: Option<Definition>,
    /// `namespace/ruleSet/rule`.
    pub check: String,
}

/// The check `id` on `host`, when it exists (reported or planned).
pub fn check(rows: Vec<Row>, catalog: &Catalog, host: &str, id: &CheckId) -> Option<CheckView> {
    let row = rows.into_iter().find(|r| {
        r.host == host
            && r.namespace == id.namespace
            && r.rule_set == id.rule_set
            && r.rule == id.rule
    })?;
    Some(CheckView {
        check: row.check(),
        row,
        definition: catalog.definitions.get(id).cloned(),
    })
}

/// The rule set × machine set view: machines as rows, rules as columns.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    /// `namespace/name`.
    pub rule_set: String,
    /// The rules, sorted.
    pub rules: Vec<String>,
    /// The machines, sorted, each with one cell per rule: its state (`"PENDING"`, or `""`
    /// where the rule does not run on that machine).
    pub machines: Vec<(String, Vec<&'static str>)>,
}

/// The matrix of rule set `namespace/name` among `rows`.
pub fn matrix(rows: &[Row], namespace: &str, name: &str) -> Matrix {
    let mine: Vec<&Row> = rows
        .iter()
        .filter(|r| r.namespace == namespace && r.rule_set == name)
        .collect();
    let rules: Vec<String> = mine
        .iter()
        .map(|r| r.rule.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cells: BTreeMap<&str, Vec<&'static str>> = BTreeMap::new();
    for row in &mine {
        let line = cells
            .entry(row.host.as_str())
            .or_insert_with(|| vec![""; rules.len()]);
        if let Ok(column) = rules.binary_search(&row.rule) {
            line[column] = row.state.map_or("PENDING", CheckState::name);
        }
    }
    Matrix {
        rule_set: format!("{namespace}/{name}"),
        rules,
        machines: cells
            .into_iter()
            .map(|(host, line)| (host.to_owned(), line))
            .collect(),
    }
}

#[cfg(test)]
#[path = "views_tests.rs"]
mod tests;
