//! The facts of this machine that business-process clauses ask about, read the way the probes
//! read them (the node's procfs and root, see [`HostPaths`]): whether a process of a name runs,
//! whether a file exists, and whether a log file got a matching line since a point in time.

use regex::Regex;

use super::HostPaths;
use super::log::LogCursor;

/// Whether a process with exactly this name runs on the node.
pub fn process_running(name: &str, host: &HostPaths) -> bool {
    super::process::count_named(name, host).is_ok_and(|n| n > 0)
}

/// Whether `path` (the node's) exists.
pub fn file_exists(path: &str, host: &HostPaths) -> bool {
    host.on_node(path).exists()
}

/// Lines of one log file matching one pattern, watched from the moment it is made.
pub struct LogWatch {
    path: String,
    pattern: Regex,
    cursor: LogCursor,
}

impl LogWatch {
    /// Watches `path` for lines matching `pattern`; the first [`LogWatch::new_matches`] starts
    /// at the end of the file.
    pub fn new(path: &str, pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            path: path.to_owned(),
            pattern: Regex::new(pattern)?,
            cursor: LogCursor::default(),
        })
    }

    /// Matching lines written since the last call (an unreadable file counts none).
    pub fn new_matches(&mut self, host: &HostPaths) -> u64 {
        let at = host.on_node(&self.path);
        self.cursor
            .new_matches(&at, &self.path, &self.pattern)
            .unwrap_or(0)
    }
}
