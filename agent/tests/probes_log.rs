//! The log probe on real files: appends, partial lines, rotation, truncation, late creation.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use vedette_agent::probe::{ProbeOutput, Prober};
use vedette_crds::CheckSpec;
use vedette_crds::check::LogProbe;

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

async fn matches(prober: &Prober, path: &Path, pattern: &str) -> ProbeOutput {
    let spec = CheckSpec {
        log: Some(LogProbe {
            path: path.to_str().unwrap().into(),
            pattern: pattern.into(),
        }),
        ..Default::default()
    };
    let output = prober.run(&spec, Duration::from_secs(5)).await;
    assert!(output.failure.is_none(), "{output:?}");
    output
}

#[tokio::test]
async fn counts_matches_since_the_last_read_across_rotation_and_truncation() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("app.log");
    append(&path, "ERROR before the agent watched\n");
    let prober = Prober::new();
    let count = |pattern: &'static str| {
        let (prober, path) = (&prober, &path);
        async move { matches(prober, path, pattern).await.value }
    };

    assert_eq!(
        count("ERROR").await,
        0.0,
        "the first read starts at the end"
    );
    append(
        &path,
        "INFO started\nERROR disk full\nWARN slow\nERROR disk still full\n",
    );
    assert_eq!(count("ERROR").await, 2.0);
    assert_eq!(count("ERROR").await, 0.0);

    // Another pattern on the same file has its own cursor.
    assert_eq!(count("WARN").await, 0.0);
    append(&path, "WARN again\n");
    assert_eq!(count("WARN").await, 1.0);

    // A line still being written counts once it is complete.
    append(&path, "ERROR half");
    assert_eq!(count("ERROR").await, 0.0);
    append(&path, " a line\n");
    assert_eq!(count("ERROR").await, 1.0);

    // Rotation: the rest of the old file and all of the new one.
    append(&path, "ERROR last words of the old file\n");
    std::fs::rename(&path, directory.path().join("app.log.1")).unwrap();
    append(
        &path,
        "ERROR first in new file\nINFO fine\nERROR second in new file\n",
    );
    let output = matches(&prober, &path, "ERROR").await;
    assert_eq!(output.value, 3.0, "{output:?}");
    assert!(output.output.contains("rotated"), "{}", output.output);

    // Truncation in place (copytruncate): read from the start.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    append(&path, "ERROR after truncation\n");
    let output = matches(&prober, &path, "ERROR").await;
    assert_eq!(output.value, 1.0, "{output:?}");
    assert!(output.output.contains("truncated"), "{}", output.output);
    assert_eq!(count("ERROR").await, 0.0);

    // Truncated in place and grown past the old offset before the next run: the bytes before
    // the offset are no longer the last line read, so the file is read from its start.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    append(
        &path,
        "ERROR in a first line longer than all of the old file\nERROR one\nERROR two\n",
    );
    let output = matches(&prober, &path, "ERROR").await;
    assert_eq!(output.value, 3.0, "{output:?}");
    assert!(output.output.contains("truncated"), "{}", output.output);
    assert_eq!(count("ERROR").await, 0.0);
}

#[tokio::test]
async fn a_file_created_after_the_first_run_is_read_from_its_start() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("late.log");
    let prober = Prober::new();
    assert_eq!(matches(&prober, &path, "panic").await.value, 0.0);
    append(&path, "panic: one\nok\npanic: two\n");
    assert_eq!(
        matches(&prober, &path, "^panic").await.value,
        0.0,
        "a new pattern starts at the end"
    );
    assert_eq!(matches(&prober, &path, "panic").await.value, 2.0);
}
