//! Zones: which zone each machine belongs to (the most specific matching selector wins, ties
//! by name), parent zones that exist and form no cycle, and each zone's remote checks.

use std::collections::{BTreeMap, BTreeSet};

use vedette_crds::check::PortOrParameter;
use vedette_crds::template::CheckState;
use vedette_crds::zone::{MonitorZoneSpec, RemoteCheck};
use vedette_protocol::plan::{CheckId, PlannedCheck, parameter_names};

use super::Machine;
use super::diagnostic::{Diagnostics, ObjectRef, Reason};
use super::selector::Selector;
use super::substitute::check_strings;
use super::template::{Template, instantiate};

/// How many machine names a message lists before it only counts.
const NAMES_SHOWN: usize = 5;

/// The zones, and the zone of every machine that has one.
#[derive(Debug, Default)]
pub struct Membership<'a> {
    /// Zones by name.
    pub zones: BTreeMap<&'a str, &'a MonitorZoneSpec>,
    /// Machine name → its zone.
    pub zone_of: BTreeMap<&'a str, &'a str>,
    /// Zone → its machines, sorted (every zone has an entry).
    pub machines_of: BTreeMap<&'a str, Vec<&'a str>>,
}

/// Places every machine in a zone and checks the zones' parents.
pub fn membership<'a>(
    zones: &[(&'a str, &'a MonitorZoneSpec)],
    machines: &[&'a Machine],
    diagnostics: &mut Diagnostics,
) -> Membership<'a> {
    let mut selectors: Vec<(&str, Selector)> = Vec::new();
    for (name, spec) in zones {
        match Selector::new(&spec.node_selector) {
            Ok(selector) => selectors.push((name, selector)),
            Err(error) => diagnostics.error(
                &ObjectRef::zone(name),
                Reason::InvalidSelector,
                format!("nodeSelector: {error}"),
            ),
        }
    }
    let mut result = Membership {
        zones: zones.iter().copied().collect(),
        machines_of: zones.iter().map(|(name, _)| (*name, Vec::new())).collect(),
        ..Membership::default()
    };
    // (losing zone, winning zone) → machines both selected.
    let mut overlaps: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for machine in machines {
        let matching: Vec<&(&str, Selector)> = selectors
            .iter()
            .filter(|(_, s)| s.matches(&machine.labels))
            .collect();
        // Most terms first; among equals, the first name (selectors are sorted by name).
        let Some(winner) = matching
            .iter()
            .max_by(|a, b| a.1.specificity().cmp(&b.1.specificity()).then(b.0.cmp(a.0)))
        else {
            continue;
        };
        for loser in matching.iter().filter(|z| z.0 != winner.0) {
            overlaps
                .entry((loser.0, winner.0))
                .or_default()
                .push(&machine.name);
        }
        result.zone_of.insert(&machine.name, winner.0);
        result
            .machines_of
            .entry(winner.0)
            .or_default()
            .push(&machine.name);
    }
    for ((loser, winner), names) in overlaps {
        let message = format!(
            "{} also selected by zone {winner}, which is preferred: {}",
            count(names.len(), "machine"),
            list(&names)
        );
        diagnostics.warning(&ObjectRef::zone(loser), Reason::OverlappingZones, message);
    }
    check_parents(&result.zones, diagnostics);
    for (&name, spec) in &result.zones {
        if spec.satellites.replicas < 2 {
            diagnostics.warning(
                &ObjectRef::zone(name),
                Reason::SingleSatellite,
                "satellites.replicas is 1: while that satellite's pod restarts or moves, the \
                 zone's agents only spool and nothing of the zone reaches the masters; set 2 \
                 or more",
            );
        }
    }
    result
}

/// `1 machine`, `3 machines`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The first few names, then how many more.
pub fn list(names: &[&str]) -> String {
    let shown = names
        .iter()
        .take(NAMES_SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match names.len().checked_sub(NAMES_SHOWN) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

fn check_parents(zones: &BTreeMap<&str, &MonitorZoneSpec>, diagnostics: &mut Diagnostics) {
    let parent = |zone: &str| zones.get(zone).and_then(|spec| spec.parent_zone.as_deref());
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for (&name, spec) in zones {
        if let Some(missing) = spec
            .parent_zone
            .as_deref()
            .filter(|p| !zones.contains_key(p))
        {
            diagnostics.error(
                &ObjectRef::zone(name),
                Reason::UnknownZone,
                format!("parentZone {missing} does not exist"),
            );
            continue;
        }
        // Walk up; a cycle is reported on every zone in it, each message starting there.
        let mut path = vec![name];
        while let Some(next) = parent(path[path.len() - 1]) {
            if let Some(start) = path.iter().position(|z| *z == next) {
                let cycle = &path[start..];
                for (at, &member) in cycle.iter().enumerate() {
                    if !reported.insert(member) {
                        continue;
                    }
                    let mut ordered: Vec<&str> =
                        cycle[at..].iter().chain(&cycle[..at]).copied().collect();
                    ordered.push(member);
                    let message = format!("parentZone forms a cycle: {}", ordered.join(" -> "));
                    diagnostics.error(&ObjectRef::zone(member), Reason::ZoneCycle, message);
                }
                break;
            }
            path.push(next);
        }
    }
}

/// A compiled remote check and the targets it runs against.
#[derive(Debug, Clone)]
pub struct Remote {
    /// The check, `$host$` left in.
    pub check: PlannedCheck,
    /// Its targets, sorted and distinct.
    pub targets: Vec<String>,
}

/// Compiles a zone's remote checks; a check with a problem is left out.
pub fn remote_checks(
    zone: &str,
    spec: &MonitorZoneSpec,
    templates: &BTreeMap<(&str, &str), Template<'_>>,
    diagnostics: &mut Diagnostics,
) -> Vec<Remote> {
    let object = ObjectRef::zone(zone);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for remote in &spec.satellites.remote_checks {
        if !seen.insert(remote.name.as_str()) {
            let message = format!(
                "remote check {} is defined twice; the first is used",
                remote.name
            );
            diagnostics.error(&object, Reason::Duplicate, message);
            continue;
        }
        match remote_check(zone, remote, templates) {
            Ok(check) => {
                let targets: BTreeSet<String> = remote.targets.iter().cloned().collect();
                out.push(Remote {
                    check,
                    targets: targets.into_iter().collect(),
                });
            }
            Err(problems) => {
                for (reason, message) in problems {
                    diagnostics.error(
                        &object,
                        reason,
                        format!("remote check {}: {message}", remote.name),
                    );
                }
            }
        }
    }
    out
}

type Problems = Vec<(Reason, String)>;

fn remote_check(
    zone: &str,
    remote: &RemoteCheck,
    templates: &BTreeMap<(&str, &str), Template<'_>>,
) -> Result<PlannedCheck, Problems> {
    let id = CheckId::remote(zone, &remote.name);
    match (&remote.template, &remote.check) {
        (Some(reference), None) => {
            let Some(namespace) = reference.namespace.as_deref() else {
                let message = format!(
                    "template {} needs a namespace (zones are cluster-scoped)",
                    reference.name
                );
                return Err(vec![(Reason::InvalidRemoteCheck, message)]);
            };
            let template = super::template::find_template(templates, namespace, &reference.name)?;
            let mut instance = instantiate(&template, &remote.parameters).map_err(|problems| {
                problems
                    .into_iter()
                    .map(|p| (p.reason, p.message))
                    .collect::<Problems>()
            })?;
            // Zones are the cluster administrator's: their checks read the template's
            // namespace's Secrets.
            instance.check.bind_secrets(namespace);
            Ok(super::planned::planned(
                id,
                &template,
                instance,
                super::planned::Cadence::default(),
                Default::default(),
            ))
        }
        (None, Some(check)) => {
            inline_problems(remote)?;
            Ok(PlannedCheck {
                id,
                template: String::new(),
                labels: BTreeMap::new(),
                check: check.clone(),
                warning: None,
                critical: None,
                condition: None,
                condition_state: CheckState::Critical,
                interval_seconds: INLINE_INTERVAL_SECONDS,
                every_cycles: None,
                retry_interval_seconds: INLINE_INTERVAL_SECONDS,
                max_attempts: INLINE_MAX_ATTEMPTS,
                timeout_seconds: INLINE_TIMEOUT_SECONDS,
                timeout_state: CheckState::Critical,
                spool_every_result: false,
            })
        }
        _ => Err(vec![(
            Reason::InvalidRemoteCheck,
            "needs exactly one of template or check".to_owned(),
        )]),
    }
}

/// An inline remote check runs every minute, as the CRD documents.
const INLINE_INTERVAL_SECONDS: u32 = 60;
/// Attempts before an inline remote check's state is hard (the template default).
const INLINE_MAX_ATTEMPTS: u32 = 3;
/// Seconds an inline remote check may take (the template default).
const INLINE_TIMEOUT_SECONDS: u32 = 10;

fn inline_problems(remote: &RemoteCheck) -> Result<(), Problems> {
    let check = remote.check.as_ref().map(|c| (c, c.probe_kind()));
    let mut problems = Problems::new();
    if !remote.parameters.is_empty() {
        problems.push((
            Reason::UnknownParameter,
            "parameters apply only to templates, not to an inline check".to_owned(),
        ));
    }
    if let Some((check, kind)) = check {
        if kind.is_none() {
            problems.push((
                Reason::InvalidProbe,
                "check needs exactly one probe".to_owned(),
            ));
        }
        for (field, value) in check_strings(check) {
            if let Some(name) = parameter_names(&value).find(|n| *n != "host") {
                problems.push((
                    Reason::UndeclaredParameter,
                    format!("{field} uses ${name}$, but an inline check has no parameters"),
                ));
            }
        }
        if !check.secrets().is_empty() {
            problems.push((
                Reason::InvalidRemoteCheck,
                "an inline check cannot read Secrets: use a template, whose namespace's \
                 Secrets it reads"
                    .to_owned(),
            ));
        }
        let ports = [
            ("check.tcp.port", check.tcp.as_ref().map(|p| &p.port)),
            ("check.tls.port", check.tls.as_ref().map(|p| &p.port)),
        ];
        for (field, port) in ports {
            let text = match port {
                Some(PortOrParameter::Parameter(text)) => text.clone(),
                Some(PortOrParameter::Int(number)) => number.to_string(),
                None => continue,
            };
            if let Err(error) = super::params::port(&text) {
                problems.push((Reason::InvalidParameter, format!("{field}: {error}")));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
