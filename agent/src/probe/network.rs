//! Counters of one network interface from `/proc/net/dev` (of the node's network namespace,
//! see [`HostPaths::namespaced_proc_file`]), as rates per second since the
//! check last ran (each interface and metric keeps its own previous sample); the first run
//! samples over `FIRST_SAMPLE`, and so does a run after the counters went backwards.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vedette_crds::check::{NetworkMetric, NetworkProbe};

use super::{HostPaths, ProbeError, ProbeOutput, Result, read_system_file};

const FIRST_SAMPLE: Duration = Duration::from_millis(200);

/// The counters the probe uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    receive_bytes: u64,
    transmit_bytes: u64,
    errors: u64,
    drops: u64,
}

impl Counters {
    fn metric(&self, metric: NetworkMetric) -> u64 {
        match metric {
            NetworkMetric::ReceiveBytesPerSecond => self.receive_bytes,
            NetworkMetric::TransmitBytesPerSecond => self.transmit_bytes,
            NetworkMetric::ErrorsPerSecond => self.errors,
            NetworkMetric::DropsPerSecond => self.drops,
        }
    }
}

/// The counters of `interface` in the text of `/proc/net/dev`, if it is there.
pub(crate) fn parse_net_dev(text: &str, interface: &str) -> Result<Option<Counters>> {
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != interface {
            continue;
        }
        let fields: Vec<u64> = rest
            .split_whitespace()
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| ProbeError::Parse("/proc/net/dev".into()))?;
        if fields.len() < 12 {
            return Err(ProbeError::Parse("/proc/net/dev".into()));
        }
        return Ok(Some(Counters {
            receive_bytes: fields[0],
            transmit_bytes: fields[8],
            errors: fields[2] + fields[10],
            drops: fields[3] + fields[11],
        }));
    }
    Ok(None)
}

fn read_counters(interface: &str, host: &HostPaths) -> Result<(Instant, Counters)> {
    let text = read_system_file(host.namespaced_proc_file("net/dev"))?;
    let at = Instant::now();
    let counters = parse_net_dev(&text, interface)?
        .ok_or_else(|| ProbeError::Missing(format!("interface {interface} not found")))?;
    Ok((at, counters))
}

/// Interface and metric (as its discriminant; the CRD enum has no `Hash`).
type Key = (String, u8);

/// Previous samples by interface and metric.
#[derive(Default)]
pub(crate) struct NetworkState {
    previous: Mutex<HashMap<Key, (Instant, Counters)>>,
}

impl NetworkState {
    pub(crate) async fn probe(&self, spec: &NetworkProbe, host: &HostPaths) -> Result<ProbeOutput> {
        let interface = super::substituted("interface", &spec.interface)?;
        let key = (interface.to_owned(), spec.metric as u8);
        let now = read_counters(interface, host)?;
        let earlier = self.lock().insert(key.clone(), now);
        let (earlier, now) = match earlier {
            Some(earlier)
                if now.0 > earlier.0
                    && now.1.metric(spec.metric) >= earlier.1.metric(spec.metric) =>
            {
                (earlier, now)
            }
            _ => {
                tokio::time::sleep(FIRST_SAMPLE).await;
                let later = read_counters(interface, host)?;
                self.lock().insert(key, later);
                (now, later)
            }
        };
        Ok(report(interface, spec.metric, earlier, now))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, Counters)>> {
        self.previous
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn report(
    interface: &str,
    metric: NetworkMetric,
    (then, earlier): (Instant, Counters),
    (now, later): (Instant, Counters),
) -> ProbeOutput {
    let elapsed = now.duration_since(then).as_secs_f64().max(1e-6);
    let rate =
        |pick: fn(&Counters) -> u64| pick(&later).saturating_sub(pick(&earlier)) as f64 / elapsed;
    let receive = rate(|c| c.receive_bytes);
    let transmit = rate(|c| c.transmit_bytes);
    let errors = rate(|c| c.errors);
    let drops = rate(|c| c.drops);
    let value = match metric {
        NetworkMetric::ReceiveBytesPerSecond => receive,
        NetworkMetric::TransmitBytesPerSecond => transmit,
        NetworkMetric::ErrorsPerSecond => errors,
        NetworkMetric::DropsPerSecond => drops,
    };
    ProbeOutput::measured(
        "network",
        value,
        format!(
            "{interface} receive {receive:.0} B/s, transmit {transmit:.0} B/s, errors {errors:.2}/s, drops {drops:.2}/s over {elapsed:.1} s"
        ),
    )
    .with_perf("receive", receive, "B")
    .with_perf("transmit", transmit, "B")
    .with_perf("errors", errors, "")
    .with_perf("drops", drops, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n  eth0: 5 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0\n";

    #[test]
    fn finds_the_interface_counters() {
        let lo = parse_net_dev(NET_DEV, "lo").unwrap().unwrap();
        assert_eq!(
            lo,
            Counters {
                receive_bytes: 1000,
                transmit_bytes: 2000,
                errors: 4,
                drops: 6
            }
        );
        assert!(parse_net_dev(NET_DEV, "eth1").unwrap().is_none());
    }

    #[test]
    fn rate_is_delta_over_elapsed() {
        let then = Instant::now();
        let now = then + Duration::from_secs(2);
        let earlier = Counters {
            receive_bytes: 100,
            ..Counters::default()
        };
        let later = Counters {
            receive_bytes: 300,
            ..Counters::default()
        };
        let output = report(
            "lo",
            NetworkMetric::ReceiveBytesPerSecond,
            (then, earlier),
            (now, later),
        );
        assert!((output.value - 100.0).abs() < 1e-9);
    }
}
