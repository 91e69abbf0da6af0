//! Memory and swap use from `/proc/meminfo` (the node's, see [`HostPaths`]).

use std::collections::HashMap;

use vedette_crds::check::{MemoryMetric, MemoryProbe};

use super::{HostPaths, ProbeError, ProbeOutput, Result, read_system_file};

/// `/proc/meminfo` values in bytes, by field name.
pub(crate) fn parse_meminfo(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let number: u64 = parts.next()?.parse().ok()?;
            let scale = if parts.next() == Some("kB") { 1024 } else { 1 };
            Some((name, number * scale))
        })
        .collect()
}

fn field(info: &HashMap<&str, u64>, name: &str) -> Result<u64> {
    info.get(name)
        .copied()
        .ok_or_else(|| ProbeError::Parse(format!("/proc/meminfo: no {name}")))
}

/// The memory probe.
pub(crate) fn memory(spec: &MemoryProbe, host: &HostPaths) -> Result<ProbeOutput> {
    let text = read_system_file(host.proc_file("meminfo"))?;
    memory_from(spec, &parse_meminfo(&text))
}

fn memory_from(spec: &MemoryProbe, info: &HashMap<&str, u64>) -> Result<ProbeOutput> {
    let total = field(info, "MemTotal")?;
    // MemAvailable exists since Linux 3.14; older kernels get the classic estimate.
    let available = match info.get("MemAvailable") {
        Some(available) => *available,
        None => field(info, "MemFree")? + field(info, "Buffers")? + field(info, "Cached")?,
    };
    let used = total.saturating_sub(available);
    let used_percent = percent(used, total);
    let value = match spec.metric {
        MemoryMetric::UsedPercent => used_percent,
        MemoryMetric::AvailableBytes => available as f64,
    };
    Ok(ProbeOutput::measured(
        "memory",
        value,
        format!(
            "{used_percent:.1}% used, {} available of {}",
            human_bytes(available),
            human_bytes(total)
        ),
    )
    .with_perf("used", used_percent, "%")
    .with_perf("available", available as f64, "B")
    .with_perf("total", total as f64, "B"))
}

/// The swap probe; a machine without swap reports 0.
pub(crate) fn swap(host: &HostPaths) -> Result<ProbeOutput> {
    let text = read_system_file(host.proc_file("meminfo"))?;
    swap_from(&parse_meminfo(&text))
}

fn swap_from(info: &HashMap<&str, u64>) -> Result<ProbeOutput> {
    let total = field(info, "SwapTotal")?;
    let free = field(info, "SwapFree")?;
    let used = total.saturating_sub(free);
    let used_percent = percent(used, total);
    let output = if total == 0 {
        "no swap configured".to_owned()
    } else {
        format!(
            "{used_percent:.1}% used, {} of {}",
            human_bytes(used),
            human_bytes(total)
        )
    };
    Ok(ProbeOutput::measured("swap", used_percent, output)
        .with_perf("used", used_percent, "%")
        .with_perf("used_bytes", used as f64, "B"))
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `1.5 GiB`, for output lines.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     250 kB\nBuffers:  10 kB\nCached: 20 kB\nSwapTotal:        400 kB\nSwapFree:         300 kB\nHugePages_Total:       0\n";

    #[test]
    fn used_percent_counts_available_as_free() {
        let output = memory_from(&MemoryProbe::default(), &parse_meminfo(MEMINFO)).unwrap();
        assert!((output.value - 75.0).abs() < 1e-9);
        let spec = MemoryProbe {
            metric: MemoryMetric::AvailableBytes,
        };
        assert_eq!(
            memory_from(&spec, &parse_meminfo(MEMINFO)).unwrap().value,
            250.0 * 1024.0
        );
    }

    #[test]
    fn swap_percent_and_no_swap() {
        assert!((swap_from(&parse_meminfo(MEMINFO)).unwrap().value - 25.0).abs() < 1e-9);
        let none = parse_meminfo("SwapTotal: 0 kB\nSwapFree: 0 kB\n");
        assert_eq!(swap_from(&none).unwrap().value, 0.0);
    }

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
