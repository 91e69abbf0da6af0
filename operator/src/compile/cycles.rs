//! Checks on cycles (`everyCycles`): a rule compiles to a check that runs every N cycles
//! without knowing which zones run it; each zone's bundle gives it that zone's period,
//! N × `cycleSeconds`, as its interval, and leaves it out where its timeout does not fit.

use std::borrow::Cow;

use vedette_protocol::plan::PlannedCheck;

/// `check` as the zone with cycles of `cycle_seconds` runs it: unchanged when it runs on its
/// own interval; with its interval (and its retry interval, unless the template gives one)
/// set to its period when it runs on cycles. An error says why the timeout does not fit.
pub fn in_zone(check: &PlannedCheck, cycle_seconds: u32) -> Result<Cow<'_, PlannedCheck>, String> {
    let Some(every) = check.every_cycles else {
        return Ok(Cow::Borrowed(check));
    };
    let period = every.saturating_mul(cycle_seconds);
    if check.timeout_seconds >= period {
        return Err(format!(
            "timeoutSeconds {} must be shorter than everyCycles {every} × cycleSeconds \
             {cycle_seconds} = {period}",
            check.timeout_seconds
        ));
    }
    let mut check = check.clone();
    check.interval_seconds = period;
    if check.retry_interval_seconds == 0 {
        check.retry_interval_seconds = period;
    }
    Ok(Cow::Owned(check))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vedette_crds::CheckSpec;
    use vedette_crds::template::CheckState;
    use vedette_protocol::plan::CheckId;

    fn on_cycles(every: u32, retry_interval_seconds: u32) -> PlannedCheck {
        PlannedCheck {
            id: CheckId {
                namespace: "infrastructure".into(),
                rule_set: "linux".into(),
                rule: "packages".into(),
            },
            template: "infrastructure/packages".into(),
            labels: BTreeMap::new(),
            check: CheckSpec::default(),
            warning: None,
            critical: None,
            condition: None,
            condition_state: CheckState::Critical,
            interval_seconds: 0,
            every_cycles: Some(every),
            retry_interval_seconds,
            max_attempts: 3,
            timeout_seconds: 30,
            timeout_state: CheckState::Critical,
            spool_every_result: false,
        }
    }

    #[test]
    fn a_zone_gives_a_check_on_cycles_its_period() {
        let check = in_zone(&on_cycles(5, 0), 60).unwrap().into_owned();
        assert_eq!(
            (check.interval_seconds, check.retry_interval_seconds),
            (300, 300)
        );
        let check = in_zone(&on_cycles(5, 45), 60).unwrap().into_owned();
        assert_eq!(
            (check.interval_seconds, check.retry_interval_seconds),
            (300, 45),
            "a retry interval of the template's own is kept"
        );
    }

    #[test]
    fn a_timeout_not_shorter_than_the_period_is_refused() {
        assert_eq!(
            in_zone(&on_cycles(2, 0), 15).unwrap_err(),
            "timeoutSeconds 30 must be shorter than everyCycles 2 × cycleSeconds 15 = 30"
        );
        assert!(in_zone(&on_cycles(3, 0), 15).is_ok());
    }

    #[test]
    fn a_check_on_its_own_interval_is_left_alone() {
        let mut check = on_cycles(1, 10);
        check.every_cycles = None;
        check.interval_seconds = 20;
        assert!(matches!(in_zone(&check, 60), Ok(Cow::Borrowed(_))));
    }
}
