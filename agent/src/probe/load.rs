//! Load average from `/proc/loadavg` (the node's, see [`HostPaths`]), optionally divided by the number of CPUs.

use vedette_crds::check::LoadProbe;

use super::{HostPaths, ProbeError, ProbeOutput, Result, read_system_file};

/// The 1, 5 and 15 minute averages.
fn parse_loadavg(text: &str) -> Result<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let mut next = || {
        fields
            .next()
            .and_then(|field| field.ok())
            .ok_or_else(|| ProbeError::Parse("/proc/loadavg".into()))
    };
    Ok([next()?, next()?, next()?])
}

/// Online CPUs: the `cpuN` lines of `/proc/stat` (the machine's, not this process's affinity).
fn cpu_count(host: &HostPaths) -> Result<usize> {
    let stat = read_system_file(host.proc_file("stat"))?;
    let count = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    Ok(count.max(1))
}

/// Which field of `/proc/loadavg` a period (minutes) is.
pub(crate) fn period_index(minutes: u8) -> Result<usize> {
    match minutes {
        1 => Ok(0),
        5 => Ok(1),
        15 => Ok(2),
        other => Err(ProbeError::InvalidSpec(format!(
            "load period {other} is not 1, 5 or 15"
        ))),
    }
}

/// The load probe.
pub(crate) fn probe(spec: &LoadProbe, host: &HostPaths) -> Result<ProbeOutput> {
    let averages = parse_loadavg(&read_system_file(host.proc_file("loadavg"))?)?;
    let index = period_index(spec.period_minutes)?;
    let cpus = if spec.per_cpu { cpu_count(host)? } else { 1 };
    let scaled = averages.map(|average| average / cpus as f64);
    let per = if spec.per_cpu {
        format!(" per cpu ({cpus} cpus)")
    } else {
        String::new()
    };
    Ok(ProbeOutput::measured(
        "load",
        scaled[index],
        format!(
            "load average{per}: {:.2}, {:.2}, {:.2}",
            scaled[0], scaled[1], scaled[2]
        ),
    )
    .with_perf("load1", scaled[0], "")
    .with_perf("load5", scaled[1], "")
    .with_perf("load15", scaled[2], ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_averages() {
        assert_eq!(
            parse_loadavg("0.50 1.25 2.00 1/123 4567\n").unwrap(),
            [0.5, 1.25, 2.0]
        );
        assert!(parse_loadavg("0.5 x").is_err());
    }
}
