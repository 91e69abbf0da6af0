//! CPU utilisation from `/proc/stat` (the node's, see [`HostPaths`]): the share of non-idle time between two samples, of all
//! cores together or of the busiest core. Each kind of cpu check keeps its own previous sample,
//! so the value covers the time since that check last ran; the first run samples over
//! `FIRST_SAMPLE`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use vedette_crds::check::CpuProbe;

use super::{HostPaths, ProbeError, ProbeOutput, Result, read_system_file};

/// How long the first run of a check samples, when there is no previous sample.
const FIRST_SAMPLE: Duration = Duration::from_millis(150);

/// Jiffies of one CPU line, split into the parts the output shows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Times {
    user: u64,
    system: u64,
    idle: u64,
    iowait: u64,
    total: u64,
}

impl Times {
    fn parse(line: &str) -> Option<Self> {
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
        // already counted in user, so it is left out of the total.
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        if fields.len() < 4 {
            return None;
        }
        let at = |i: usize| fields.get(i).copied().unwrap_or(0);
        Some(Self {
            user: at(0) + at(1),
            system: at(2) + at(5) + at(6),
            idle: at(3),
            iowait: at(4),
            total: fields.iter().sum(),
        })
    }

    fn since(&self, earlier: &Self) -> Usage {
        let total = self.total.saturating_sub(earlier.total);
        let share = |now: u64, then: u64| {
            if total == 0 {
                0.0
            } else {
                now.saturating_sub(then) as f64 * 100.0 / total as f64
            }
        };
        let idle = share(self.idle + self.iowait, earlier.idle + earlier.iowait);
        Usage {
            used: (100.0 - idle).clamp(0.0, 100.0),
            user: share(self.user, earlier.user),
            system: share(self.system, earlier.system),
            iowait: share(self.iowait, earlier.iowait),
        }
    }
}

/// Percentages over an interval.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Usage {
    used: f64,
    user: f64,
    system: f64,
    iowait: f64,
}

/// The aggregate line and each core's line of `/proc/stat`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Sample {
    all: Times,
    cores: Vec<Times>,
}

/// Parses `/proc/stat`.
pub(crate) fn parse_stat(text: &str) -> Result<Sample> {
    let mut sample = Sample::default();
    let mut found = false;
    for line in text.lines().filter(|line| line.starts_with("cpu")) {
        let times = Times::parse(line).ok_or_else(|| ProbeError::Parse("/proc/stat".into()))?;
        if line.starts_with("cpu ") {
            sample.all = times;
            found = true;
        } else {
            sample.cores.push(times);
        }
    }
    if !found {
        return Err(ProbeError::Parse("/proc/stat: no cpu line".into()));
    }
    Ok(sample)
}

fn read_sample(host: &HostPaths) -> Result<Sample> {
    parse_stat(&read_system_file(host.proc_file("stat"))?)
}

/// Previous samples by kind of check (average or busiest core).
#[derive(Default)]
pub(crate) struct CpuState {
    previous: Mutex<HashMap<bool, Sample>>,
}

impl CpuState {
    pub(crate) async fn probe(&self, spec: &CpuProbe, host: &HostPaths) -> Result<ProbeOutput> {
        let now = read_sample(host)?;
        let earlier = self.lock().insert(spec.busiest_core, now.clone());
        let (earlier, now) = match earlier {
            Some(earlier) if now.all.total > earlier.all.total => (earlier, now),
            _ => {
                tokio::time::sleep(FIRST_SAMPLE).await;
                let later = read_sample(host)?;
                self.lock().insert(spec.busiest_core, later.clone());
                (now, later)
            }
        };
        Ok(report(spec, &earlier, &now))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<bool, Sample>> {
        self.previous
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn report(spec: &CpuProbe, earlier: &Sample, now: &Sample) -> ProbeOutput {
    let all = now.all.since(&earlier.all);
    if spec.busiest_core {
        let busiest = now
            .cores
            .iter()
            .zip(&earlier.cores)
            .map(|(now, then)| now.since(then).used)
            .enumerate()
            .fold(
                (0, 0.0),
                |best, (core, used)| if used > best.1 { (core, used) } else { best },
            );
        return ProbeOutput::measured(
            "cpu",
            busiest.1,
            format!(
                "busiest core cpu{} {:.1}% used, all cores {:.1}%",
                busiest.0, busiest.1, all.used
            ),
        )
        .with_perf("busiest", busiest.1, "%")
        .with_perf("used", all.used, "%");
    }
    ProbeOutput::measured(
        "cpu",
        all.used,
        format!(
            "{:.1}% used (user {:.1}%, system {:.1}%, iowait {:.1}%)",
            all.used, all.user, all.system, all.iowait
        ),
    )
    .with_perf("used", all.used, "%")
    .with_perf("user", all.user, "%")
    .with_perf("system", all.system, "%")
    .with_perf("iowait", all.iowait, "%")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n";
    const AFTER: &str = "cpu  200 0 100 1600 100 0 0 0 0 0\ncpu0 140 0 35 400 25 0 0 0 0 0\ncpu1 60 0 65 1200 75 0 0 0 0 0\nintr 1\n";

    #[test]
    fn average_is_non_idle_share_of_the_interval() {
        let output = report(
            &CpuProbe::default(),
            &parse_stat(BEFORE).unwrap(),
            &parse_stat(AFTER).unwrap(),
        );
        // 1000 jiffies passed, 850 of them idle or iowait.
        assert!((output.value - 15.0).abs() < 1e-9, "{output:?}");
    }

    #[test]
    fn busiest_core_is_reported_when_asked() {
        let spec = CpuProbe { busiest_core: true };
        let output = report(
            &spec,
            &parse_stat(BEFORE).unwrap(),
            &parse_stat(AFTER).unwrap(),
        );
        // cpu0: 100 jiffies passed, none idle.
        assert!((output.value - 100.0).abs() < 1e-9, "{output:?}");
        assert!(output.output.contains("cpu0"), "{}", output.output);
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(parse_stat("intr 1 2 3\n").is_err());
        assert!(parse_stat("cpu  a b c d\n").is_err());
    }
}
