//! A file's existence, age (seconds since it was modified) or size. A missing file is 0 for
//! `exists` and CRITICAL for age and size, which cannot be measured. The path is the node's,
//! resolved under its root (see [`HostPaths::on_node`]); the output names it as configured.

use std::time::SystemTime;

use vedette_crds::check::{FileMetric, FileProbe};

use super::memory::human_bytes;
use super::{HostPaths, ProbeError, ProbeOutput, Result, blocking};

/// The file probe.
pub(crate) async fn probe(spec: &FileProbe, host: &HostPaths) -> Result<ProbeOutput> {
    let path = super::substituted("path", &spec.path)?.to_owned();
    let metadata = blocking({
        let path = path.clone();
        let host = host.clone();
        move || match std::fs::metadata(host.on_node(&path)) {
            Ok(metadata) => Ok(Some(metadata)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(ProbeError::read(path, error)),
        }
    })
    .await?;
    let Some(metadata) = metadata else {
        return match spec.metric {
            FileMetric::Exists => {
                Ok(
                    ProbeOutput::measured("file", 0.0, format!("{path} does not exist"))
                        .with_perf("exists", 0.0, ""),
                )
            }
            FileMetric::AgeSeconds | FileMetric::SizeBytes => {
                Err(ProbeError::Missing(format!("{path} does not exist")))
            }
        };
    };
    let age = metadata
        .modified()
        .ok()
        .map(
            |modified| match SystemTime::now().duration_since(modified) {
                Ok(age) => age.as_secs_f64(),
                // Modified in the future (clock skew): a negative age, not a panic.
                Err(ahead) => -ahead.duration().as_secs_f64(),
            },
        )
        .unwrap_or(f64::NAN);
    let size = metadata.len();
    let value = match spec.metric {
        FileMetric::Exists => 1.0,
        FileMetric::AgeSeconds => age,
        FileMetric::SizeBytes => size as f64,
    };
    Ok(ProbeOutput::measured(
        "file",
        value,
        format!(
            "{path} exists, {} modified {age:.0} seconds ago",
            human_bytes(size)
        ),
    )
    .with_perf("age", age, "s")
    .with_perf("size", size as f64, "B"))
}
