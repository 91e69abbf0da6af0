//! A planned check from a template instance: on the template's schedule unless the rule's
//! cadence overrides it. Rule sets and zones' remote checks both plan checks this way.

use std::collections::BTreeMap;

use vedette_crds::template::{CheckTemplateSpec, DEFAULT_INTERVAL_SECONDS};
use vedette_protocol::plan::{CheckId, PlannedCheck};

use super::template::{Instance, Template};

/// How often a check runs, as a rule may override its template's: either field replaces the
/// template's whole schedule (interval or cycles); neither keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cadence {
    /// Run every this many seconds.
    pub interval_seconds: Option<u32>,
    /// Run on every this many cycles of the zone.
    pub every_cycles: Option<u32>,
}

impl Cadence {
    /// The override applied to a template: `(interval_seconds, every_cycles)`, exactly one set.
    fn resolve(self, spec: &CheckTemplateSpec) -> (Option<u32>, Option<u32>) {
        match (self.interval_seconds, self.every_cycles) {
            (Some(seconds), _) => (Some(seconds), None),
            (None, Some(every)) => (None, Some(every)),
            (None, None) => match spec.every_cycles {
                Some(every) => (None, Some(every)),
                None => (
                    Some(spec.interval_seconds.unwrap_or(DEFAULT_INTERVAL_SECONDS)),
                    None,
                ),
            },
        }
    }
}

/// A planned check from an instance, on the template's schedule unless `cadence` overrides
/// it. The retry interval defaults to the interval. A check on cycles does not know its
/// zone yet: its interval (and its retry interval, unless the template gives one) is 0 until
/// `cycles::in_zone` gives it the zone's period.
pub fn planned(
    id: CheckId,
    template: &Template<'_>,
    instance: Instance,
    cadence: Cadence,
    labels: BTreeMap<String, String>,
) -> PlannedCheck {
    let spec = template.spec;
    let (interval_seconds, every_cycles) = cadence.resolve(spec);
    let interval_seconds = interval_seconds.unwrap_or(0);
    PlannedCheck {
        id,
        template: template.key(),
        labels,
        check: instance.check,
        warning: instance.warning,
        critical: instance.critical,
        condition: instance.condition,
        condition_state: spec.condition_state,
        interval_seconds,
        every_cycles,
        retry_interval_seconds: spec.retry_interval_seconds.unwrap_or(interval_seconds),
        max_attempts: spec.max_attempts,
        timeout_seconds: spec.timeout_seconds,
        timeout_state: spec.timeout_state,
        spool_every_result: spec.spool_every_result,
    }
}
