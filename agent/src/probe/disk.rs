//! Use of one mounted file system, from `statvfs(2)` as `df` computes it: used blocks over the
//! blocks an unprivileged user could have (used + available), so reserved blocks count as full.
//! The mount point is the node's, resolved under its root (see [`HostPaths::on_node`]); the
//! output names it as configured.

use vedette_crds::check::{DiskMetric, DiskProbe};

use super::memory::human_bytes;
use super::{HostPaths, ProbeError, ProbeOutput, Result, blocking};

/// The numbers the disk probe reports.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Usage {
    used_percent: f64,
    free_bytes: u64,
    size_bytes: u64,
    inodes_used_percent: f64,
}

fn usage(stat: &rustix::fs::StatVfs) -> Usage {
    let used = stat.f_blocks.saturating_sub(stat.f_bfree);
    let usable = used + stat.f_bavail;
    let inodes_used = stat.f_files.saturating_sub(stat.f_ffree);
    Usage {
        used_percent: ratio(used, usable),
        free_bytes: stat.f_bavail * stat.f_frsize,
        size_bytes: stat.f_blocks * stat.f_frsize,
        inodes_used_percent: ratio(inodes_used, stat.f_files),
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The disk probe.
pub(crate) async fn probe(spec: &DiskProbe, host: &HostPaths) -> Result<ProbeOutput> {
    let mount_point = super::substituted("mount point", &spec.mount_point)?.to_owned();
    let stat = blocking({
        let mount_point = mount_point.clone();
        let host = host.clone();
        move || {
            rustix::fs::statvfs(host.on_node(&mount_point)).map_err(|error| match error {
                rustix::io::Errno::NOENT => {
                    ProbeError::Missing(format!("mount point {mount_point} not found"))
                }
                error => ProbeError::read(mount_point, error.into()),
            })
        }
    })
    .await?;
    let usage = usage(&stat);
    let value = match spec.metric {
        DiskMetric::UsedPercent => usage.used_percent,
        DiskMetric::FreeBytes => usage.free_bytes as f64,
        DiskMetric::InodesUsedPercent => usage.inodes_used_percent,
    };
    Ok(ProbeOutput::measured(
        "disk",
        value,
        format!(
            "{mount_point} {:.1}% used, {} free of {}, inodes {:.1}% used",
            usage.used_percent,
            human_bytes(usage.free_bytes),
            human_bytes(usage.size_bytes),
            usage.inodes_used_percent
        ),
    )
    .with_perf("used", usage.used_percent, "%")
    .with_perf("free", usage.free_bytes as f64, "B")
    .with_perf("inodes_used", usage.inodes_used_percent, "%"))
}
