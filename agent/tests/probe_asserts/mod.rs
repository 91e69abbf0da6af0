//! Assertions the probe tests share: a probe's failure and its perfdata.

#![allow(dead_code)]

use vedette_agent::probe::ProbeOutput;
use vedette_crds::template::CheckState;

/// The probe failed CRITICAL, naming `reason`.
pub fn assert_critical(output: &ProbeOutput, reason: &str) {
    let (state, message) = output
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure: {output:?}"));
    assert_eq!(*state, CheckState::Critical, "{output:?}");
    assert!(
        message.contains(reason),
        "expected {reason:?} in {message:?}"
    );
}

/// The value of perfdata item `label`.
pub fn perf(output: &ProbeOutput, label: &str) -> f64 {
    output
        .perfdata
        .iter()
        .find(|p| p.label == label)
        .unwrap_or_else(|| panic!("no perfdata {label} in {output:?}"))
        .value
}
