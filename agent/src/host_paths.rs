//! Where the node's file systems are, as the agent sees them. On a machine the agent reads `/`
//! and `/proc` directly (the defaults). In a pod it has its own mount, PID and network
//! namespaces, and the node's `/` and `/proc` are mounted read-only elsewhere (`/host/root`,
//! `/host/proc`): the built-in machine probes read those instead.
//!
//! - `/proc` files (`stat`, `meminfo`, `loadavg`) are read under [`HostPaths::proc`].
//! - Per-namespace `/proc` views (`net/dev`) are read through pid 1 of the node's procfs
//!   (`<proc>/1/net/dev`), which is in the node's namespaces, when the procfs is not `/proc`.
//! - Absolute paths a check names (a file, a log, a mount point) are resolved under
//!   [`HostPaths::root`], following symbolic links as the node would: an absolute link target
//!   starts again at the root, and `..` never climbs above it.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// The process's own procfs.
const OWN_PROC: &str = "/proc";

/// Symbolic links followed while resolving one path at most, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// The node's `/` and `/proc` as the agent sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
    proc: PathBuf,
}

impl Default for HostPaths {
    /// This machine's own `/` and `/proc`.
    fn default() -> Self {
        Self::new("/", OWN_PROC)
    }
}

impl HostPaths {
    /// The node's `/` mounted at `root` and its `/proc` at `proc`.
    pub fn new(root: impl Into<PathBuf>, proc: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            proc: proc.into(),
        }
    }

    /// Where the node's `/` is.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the node's `/proc` is.
    pub fn proc(&self) -> &Path {
        &self.proc
    }

    /// Whether the procfs read is this process's own `/proc` (not a node's mounted elsewhere).
    pub fn is_own_proc(&self) -> bool {
        self.proc == Path::new(OWN_PROC)
    }

    /// `<proc>/<name>`, such as `<proc>/meminfo`.
    pub fn proc_file(&self, name: &str) -> PathBuf {
        self.proc.join(name)
    }

    /// `/proc/<name>` of the node's namespaces (network, mounts): this process's own view with
    /// the default procfs, else pid 1's of the node's procfs.
    pub fn namespaced_proc_file(&self, name: &str) -> PathBuf {
        if self.is_own_proc() {
            self.proc.join(name)
        } else {
            self.proc.join("1").join(name)
        }
    }

    /// `path`, a path of the node, as the agent reaches it: unchanged with the default root,
    /// else resolved under the root (see the module documentation). Does blocking I/O
    /// (`readlink`) when the root is not `/`.
    pub fn on_node(&self, path: &str) -> PathBuf {
        if self.root == Path::new("/") {
            return PathBuf::from(path);
        }
        resolve_under(&self.root, Path::new(path))
    }
}

/// `path` resolved under `root`: components are walked one by one, symbolic links met on the
/// way are read and followed inside `root`, and `..` stops at `root`. A component that does
/// not exist (or a link loop) ends the walk with the rest appended as written.
fn resolve_under(root: &Path, path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    let mut pending: Vec<OsString> = components(path);
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&name);
        match std::fs::read_link(root.join(&candidate)) {
            Ok(target) if links < MAX_SYMLINKS => {
                links += 1;
                if target.is_absolute() {
                    resolved.clear();
                }
                pending.extend(components(&target));
            }
            _ => resolved = candidate,
        }
    }
    root.join(resolved)
}

/// The normal and `..` components of `path`, last first (a stack to pop from).
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .rev()
        .filter_map(|component| match component {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_leave_paths_alone() {
        let host = HostPaths::default();
        assert!(host.is_own_proc());
        assert_eq!(host.proc_file("stat"), Path::new("/proc/stat"));
        assert_eq!(
            host.namespaced_proc_file("net/dev"),
            Path::new("/proc/net/dev")
        );
        assert_eq!(
            host.on_node("/var/log/syslog"),
            Path::new("/var/log/syslog")
        );
        assert_eq!(host.on_node("relative/file"), Path::new("relative/file"));
    }

    #[test]
    fn a_mounted_procfs_is_read_through_pid_1_for_namespaced_files() {
        let host = HostPaths::new("/host/root", "/host/proc");
        assert!(!host.is_own_proc());
        assert_eq!(host.proc_file("meminfo"), Path::new("/host/proc/meminfo"));
        assert_eq!(
            host.namespaced_proc_file("net/dev"),
            Path::new("/host/proc/1/net/dev")
        );
    }

    #[test]
    fn node_paths_resolve_under_the_root_and_links_stay_inside() {
        let root = tempfile::tempdir().unwrap();
        let root_path = root.path();
        std::fs::create_dir_all(root_path.join("data/logs")).unwrap();
        std::fs::create_dir_all(root_path.join("var")).unwrap();
        // An absolute link, as the node would resolve it: /var/log -> /data/logs.
        std::os::unix::fs::symlink("/data/logs", root_path.join("var/log")).unwrap();
        // A relative one climbing above the root.
        std::os::unix::fs::symlink("../../../../data", root_path.join("var/up")).unwrap();
        let host = HostPaths::new(root_path, "/proc");
        assert_eq!(
            host.on_node("/var/log/app.log"),
            root_path.join("data/logs/app.log")
        );
        assert_eq!(host.on_node("/var/up/logs"), root_path.join("data/logs"));
        assert_eq!(
            host.on_node("/../../etc/passwd"),
            root_path.join("etc/passwd")
        );
        assert_eq!(host.on_node("/missing/x"), root_path.join("missing/x"));
        assert_eq!(host.on_node("/"), root_path.to_path_buf());
    }
}
