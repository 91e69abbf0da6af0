//! How many processes match an exact name (`/proc/<pid>/comm`) or a regular expression over
//! the command line (`/proc/<pid>/cmdline`), optionally of one user (`Uid` in `status`, a name
//! looked up in the node's `/etc/passwd`). The processes are the node's: its procfs is listed
//! (see [`HostPaths`]). The agent never counts itself.

use std::sync::Arc;

use regex::Regex;
use vedette_crds::check::ProcessProbe;

use super::{HostPaths, ProbeError, ProbeOutput, Result, blocking, read_system_file};

/// Longest name the kernel keeps in `comm`; longer names are compared with `argv[0]` too.
const COMM_LENGTH: usize = 15;

/// What a process must match.
struct Filter {
    name: Option<String>,
    command_line: Option<Arc<Regex>>,
    uid: Option<u32>,
}

/// The uid of `user`: a number, or a name from `/etc/passwd`.
fn uid_of(user: &str, passwd: &str) -> Result<u32> {
    if let Ok(uid) = user.parse() {
        return Ok(uid);
    }
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&user))
        .and_then(|fields| fields.get(2)?.parse().ok())
        .ok_or_else(|| ProbeError::InvalidSpec(format!("user {user} not found in /etc/passwd")))
}

/// The real uid from the text of `/proc/<pid>/status`.
fn status_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The command line with its NUL separators as spaces.
fn command_line(raw: &[u8]) -> String {
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
    String::from_utf8_lossy(trimmed).replace('\0', " ")
}

impl Filter {
    /// Whether the process in `dir` (`/proc/<pid>`) matches; `None` when it vanished.
    fn matches(&self, dir: &std::path::Path) -> Option<bool> {
        if let Some(uid) = self.uid {
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            if status_uid(&status)? != uid {
                return Some(false);
            }
        }
        if let Some(name) = &self.name {
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let comm = comm.trim_end_matches('\n');
            if comm == name {
                return Some(true);
            }
            if name.len() < COMM_LENGTH || !name.starts_with(comm) {
                return Some(false);
            }
            let raw = std::fs::read(dir.join("cmdline")).ok()?;
            let program = raw.split(|b| *b == 0).next().unwrap_or_default();
            let base = program.rsplit(|b| *b == b'/').next().unwrap_or_default();
            return Some(base == name.as_bytes());
        }
        if let Some(pattern) = &self.command_line {
            let raw = std::fs::read(dir.join("cmdline")).ok()?;
            return Some(!raw.is_empty() && pattern.is_match(&command_line(&raw)));
        }
        Some(false)
    }
}

/// This process's pid in the procfs listed: its own id with the default `/proc`, else what
/// `<proc>/self` names (the procfs answers in its own PID namespace); `None` when unknown.
fn own_pid(host: &HostPaths) -> Option<String> {
    if host.is_own_proc() {
        return Some(std::process::id().to_string());
    }
    let link = std::fs::read_link(host.proc_file("self")).ok()?;
    Some(link.to_str()?.to_owned())
}

fn count(filter: &Filter, host: &HostPaths) -> Result<usize> {
    let own = own_pid(host);
    let proc = host.proc();
    let entries = std::fs::read_dir(proc)
        .map_err(|error| ProbeError::read(proc.display().to_string(), error))?;
    let mut count = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str() else {
            continue;
        };
        if !pid.bytes().all(|b| b.is_ascii_digit()) || own.as_deref() == Some(pid) {
            continue;
        }
        if filter.matches(&entry.path()) == Some(true) {
            count += 1;
        }
    }
    Ok(count)
}

/// How many processes with this exact name run (`comm`, or `argv[0]` for names longer than
/// the kernel keeps): a business process's `processRunning` fact.
pub(crate) fn count_named(name: &str, host: &HostPaths) -> Result<usize> {
    let filter = Filter {
        name: Some(name.to_owned()),
        command_line: None,
        uid: None,
    };
    count(&filter, host)
}

/// The process probe.
pub(crate) async fn probe(
    spec: &ProcessProbe,
    command_line: Option<Arc<Regex>>,
    host: &HostPaths,
) -> Result<ProbeOutput> {
    let uid = match &spec.user {
        Some(user) => Some(uid_of(
            super::substituted("user", user)?,
            &read_system_file(host.on_node("/etc/passwd"))?,
        )?),
        None => None,
    };
    let described = match (&spec.name, &command_line) {
        (Some(name), _) => format!("with name '{name}'"),
        (None, Some(pattern)) => format!("with command line matching '{}'", pattern.as_str()),
        (None, None) => {
            return Err(ProbeError::InvalidSpec(
                "process needs a name or commandLine".into(),
            ));
        }
    };
    let user = spec
        .user
        .as_ref()
        .map(|user| format!(" of user {user}"))
        .unwrap_or_default();
    let filter = Filter {
        name: spec.name.clone(),
        command_line,
        uid,
    };
    let host = host.clone();
    let count = blocking(move || count(&filter, &host)).await?;
    let plural = if count == 1 { "process" } else { "processes" };
    Ok(ProbeOutput::measured(
        "process",
        count as f64,
        format!("{count} {plural} {described}{user}"),
    )
    .with_perf("procs", count as f64, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_by_name_or_number() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n";
        assert_eq!(uid_of("www-data", passwd).unwrap(), 33);
        assert_eq!(uid_of("1000", passwd).unwrap(), 1000);
        assert!(uid_of("nobody-here", passwd).is_err());
    }

    #[test]
    fn status_uid_is_the_real_uid() {
        assert_eq!(
            status_uid("Name:\tsleep\nUid:\t1000\t1001\t1000\t1000\n"),
            Some(1000)
        );
    }

    #[test]
    fn command_line_joins_arguments() {
        assert_eq!(command_line(b"sleep\x0030\x00"), "sleep 30");
    }
}
