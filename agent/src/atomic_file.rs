//! Replacing a file so that a crash leaves either its old or its new content, never a mix:
//! write a temporary file beside it, fsync it, rename it over the file, fsync the directory.
//! The one implementation behind the spool's position and cursor files, the agent's last
//! good plan and check states, and the satellite's snapshot.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Which step of a replacement failed, on which path.
#[derive(Debug, thiserror::Error)]
#[error("failed to {step} {}: {source}", path.display())]
pub struct ReplaceError {
    /// `create`, `write`, `fsync`, `rename` or `fsync directory`.
    pub step: &'static str,
    /// The path the step worked on.
    pub path: PathBuf,
    /// What the system said.
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path` with `bytes` through `path` with the extension `tmp`, creating the
/// directory when it is missing.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), ReplaceError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed("create", dir))?;
    replace_through(&path.with_extension("tmp"), path, bytes)
}

/// Replaces `path` with `bytes`, written first to `temporary` (in the same directory).
pub fn replace_through(temporary: &Path, path: &Path, bytes: &[u8]) -> Result<(), ReplaceError> {
    let mut file = File::create(temporary).map_err(failed("create", temporary))?;
    file.write_all(bytes).map_err(failed("write", temporary))?;
    file.sync_all().map_err(failed("fsync", temporary))?;
    std::fs::rename(temporary, path).map_err(failed("rename", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), ReplaceError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(failed("fsync directory", dir))
}

fn failed(step: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReplaceError {
    let path = path.to_owned();
    move |source| ReplaceError { step, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/state.json");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_failure_names_the_step_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent/x.tmp");
        let error = replace_through(&missing, &dir.path().join("x"), b"x").unwrap_err();
        assert_eq!(error.step, "create");
        assert!(error.to_string().contains("absent/x.tmp"), "{error}");
    }
}
