//! The spool on a directory it cannot use: clear errors, never a panic, and nothing that was
//! confirmed durable is lost when the disk fills up.

use std::path::Path;
use std::process::Command;

use vedette_agent::spool::{Error, Priority, Spool, SpoolConfig};

#[test]
fn a_directory_under_a_regular_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let error = Spool::open(SpoolConfig::new(file.join("spool")))
        .err()
        .expect("open must fail");
    let message = error.to_string();
    assert!(
        message.starts_with("failed to create spool directory"),
        "{message}"
    );
    assert!(message.contains("not-a-directory/spool"), "{message}");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Spool::open(SpoolConfig::new(dir.path())).unwrap();
    let second = Spool::open(SpoolConfig::new(dir.path()))
        .err()
        .expect("second open must fail");
    assert!(matches!(second, Error::Locked(_)), "{second}");
}

/// A small tmpfs, unmounted on drop; `None` where mounting is not allowed.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallFs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_keeps_what_was_durable() {
    let Some(fs) = SmallFs::mount("256k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let dir = fs.path().join("spool");
    let config = SpoolConfig {
        segment_bytes: 64 * 1024,
        ..SpoolConfig::new(&dir)
    };
    let spool = Spool::open(config.clone()).unwrap();
    let mut durable = Vec::new();
    let error = loop {
        match spool.append_blocking(Priority::Result, vec![7; 1000]) {
            Ok(sequence) => durable.push(sequence),
            Err(error) => break error,
        }
        assert!(durable.len() < 1000, "the disk never filled up");
    };
    let message = error.to_string();
    assert!(message.contains("No space left on device"), "{message}");
    assert!(message.contains(&dir.display().to_string()), "{message}");
    // The writer stays usable: a later append fails the same way, not with a panic.
    assert!(
        spool
            .append_blocking(Priority::Result, vec![7; 1000])
            .is_err()
    );
    drop(spool);

    let spool = Spool::open(config.clone()).unwrap();
    let found: Vec<u64> = spool
        .peek(usize::MAX, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(
        found, durable,
        "durable records changed after the disk filled up"
    );
    assert!(spool.stats().recovery.errors.is_empty());
    drop(spool);

    fs.remount_read_only();
    let error = Spool::open(config)
        .err()
        .expect("open on a read-only filesystem must fail");
    let message = error.to_string();
    assert!(
        message.contains("lock") && message.contains("Read-only file system"),
        "{message}"
    );
}
