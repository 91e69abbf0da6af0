//! Runs a Nagios plugin: from an argv, never through a shell, in its own process group, with a
//! timeout that kills the whole group, and with stdout and stderr captured (one stream, like
//! Icinga 2) up to a size cap.
//!
//! **Nothing outlives its timeout, even the agent.** The agent kills a plugin's group at its
//! timeout and when it stops. Should the agent itself be killed (`kill -9`, the OOM killer),
//! a plugin is also under a watchdog that does not depend on it: coreutils' `timeout`
//! ([`WATCHDOGS`]), which runs the plugin in its process group and kills that whole group
//! [`WATCHDOG_GRACE`] after the plugin's own timeout. (In a pod the agent is also PID 1 of its
//! container, whose PID namespace the kernel empties when it dies.) Without `timeout` on the
//! machine, plugins run directly and an agent killed with SIGKILL can leave one running until
//! it ends by itself; the agent says so at start.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::time::Instant;
use vedette_crds::check::ExecProbe;
use vedette_crds::template::CheckState;

use super::perfdata::{PerfDatum, PerfdataError, parse_output};

/// Where bare plugin names are looked up, in order, unless configured otherwise.
pub const DEFAULT_PLUGIN_DIRS: [&str; 3] = [
    "/usr/lib/nagios/plugins",
    "/usr/lib/monitoring-plugins",
    "/usr/local/nagios/libexec",
];

/// Where the watchdog (coreutils' `timeout`) is looked for, in order.
pub const WATCHDOGS: [&str; 2] = ["/usr/bin/timeout", "/bin/timeout"];

/// How long after a plugin's timeout the watchdog kills its group, should the agent not have.
pub const WATCHDOG_GRACE: Duration = Duration::from_secs(2);

/// The watchdog on this machine, if any.
pub fn find_watchdog() -> Option<PathBuf> {
    WATCHDOGS
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
}

/// How much output is kept by default.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// How long output is still read after the plugin exited, for data already in flight from a
/// process that escaped the plugin's process group.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// Why a plugin could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A path was given and nothing is there.
    #[error("plugin {} not found", program.display())]
    NotFound {
        /// The path given.
        program: PathBuf,
    },
    /// A bare name was given and no plugin directory holds it.
    #[error("plugin {name} not found in {}", dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "))]
    NotFoundInDirs {
        /// The name given.
        name: String,
        /// The directories searched.
        dirs: Vec<PathBuf>,
    },
    /// The file exists but may not be executed.
    #[error("plugin {} is not executable", program.display())]
    NotExecutable {
        /// The resolved path.
        program: PathBuf,
    },
    /// Any other failure to start the process.
    #[error("plugin {} could not be started: {source}", program.display())]
    Spawn {
        /// The resolved path.
        program: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The output pipe could not be created.
    #[error("failed to create the output pipe: {0}")]
    Pipe(#[source] io::Error),
}

/// One plugin run to perform.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecRequest {
    /// An absolute or relative path, or a bare name looked up in the plugin directories.
    pub command: String,
    /// Arguments, passed as they are.
    pub args: Vec<String>,
    /// How long the plugin may run before its process group is killed.
    pub timeout: Duration,
    /// The state a timeout yields.
    pub timeout_state: CheckState,
}

impl ExecRequest {
    /// A request with a 10 s timeout that yields CRITICAL.
    pub fn new(
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        ExecRequest {
            command: command.into(),
            args: args.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(10),
            timeout_state: CheckState::Critical,
        }
    }
}

impl ExecRequest {
    /// The request for an `exec` probe, whose `$param$` arguments are already substituted.
    pub fn from_probe(probe: &ExecProbe, timeout_seconds: u32, timeout_state: CheckState) -> Self {
        ExecRequest {
            command: probe.command.clone(),
            args: probe.args.clone(),
            timeout: Duration::from_secs(timeout_seconds.into()),
            timeout_state,
        }
    }
}

/// How the plugin's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The plugin exited with this code.
    Exited(i32),
    /// The plugin was killed by this signal (not by us).
    Signaled(i32),
    /// The plugin ran past its timeout and its process group was killed.
    TimedOut,
    /// The plugin could not be started.
    NotStarted,
}

/// The result of one plugin run.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecResult {
    /// The check state.
    pub state: CheckState,
    /// The first line of output, or why the run failed.
    pub output: String,
    /// The further lines of output (the plugin's own text when `output` says why it failed).
    pub long_output: String,
    /// Well-formed performance data.
    pub perfdata: Vec<PerfDatum>,
    /// Malformed performance data items.
    pub problems: Vec<PerfdataError>,
    /// The first item written was malformed (it is the first of `problems`).
    pub first_perfdata_malformed: bool,
    /// Wall-clock time from start to the plugin's end.
    pub duration: Duration,
    /// How the run ended.
    pub termination: Termination,
    /// Whether output was cut at the size cap.
    pub truncated: bool,
    /// Whether the cap cut a performance data item, which was then dropped (not kept with a
    /// shortened value).
    pub perfdata_cut: bool,
}

/// Runs plugins with a set of plugin directories and an output cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRunner {
    /// Directories searched for bare plugin names, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// Output beyond this many bytes is discarded and the result marked truncated.
    pub max_output_bytes: usize,
    /// The watchdog each plugin runs under (see the module documentation); `None` runs
    /// plugins directly.
    pub watchdog: Option<PathBuf>,
}

impl Default for PluginRunner {
    fn default() -> Self {
        PluginRunner {
            plugin_dirs: DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            watchdog: find_watchdog(),
        }
    }
}

/// The raw outcome of a run, before it is mapped to a check state.
struct Run {
    status: Option<ExitStatus>,
    timed_out: bool,
    output: Vec<u8>,
    truncated: bool,
    cut_in_word: bool,
    duration: Duration,
}

impl PluginRunner {
    /// Finds the program: a name with a `/` is used as given, a bare name is looked up in the
    /// plugin directories.
    pub fn resolve(&self, command: &str) -> Result<PathBuf, ExecError> {
        if command.contains('/') {
            let program = PathBuf::from(command);
            return match program.try_exists() {
                Ok(true) => Ok(program),
                _ => Err(ExecError::NotFound { program }),
            };
        }
        self.plugin_dirs
            .iter()
            .map(|dir| dir.join(command))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| ExecError::NotFoundInDirs {
                name: command.to_owned(),
                dirs: self.plugin_dirs.clone(),
            })
    }

    /// Runs the plugin to its end (or its timeout) and maps the outcome to a check result.
    pub async fn run(&self, request: &ExecRequest) -> ExecResult {
        let started = Instant::now();
        let run = match self.resolve(&request.command) {
            Ok(program) => self.run_program(&program, request).await,
            Err(error) => Err(error),
        };
        match run {
            Ok(run) => self.result(run, request),
            Err(error) => ExecResult {
                state: CheckState::Unknown,
                output: error.to_string(),
                long_output: String::new(),
                perfdata: Vec::new(),
                problems: Vec::new(),
                first_perfdata_malformed: false,
                duration: started.elapsed(),
                termination: Termination::NotStarted,
                truncated: false,
                perfdata_cut: false,
            },
        }
    }

    async fn run_program(&self, program: &Path, request: &ExecRequest) -> Result<Run, ExecError> {
        let started = Instant::now();
        let (reader, writer) = io::pipe().map_err(ExecError::Pipe)?;
        let stderr = writer.try_clone().map_err(ExecError::Pipe)?;
        if !is_executable(program) {
            return Err(ExecError::NotExecutable {
                program: program.to_owned(),
            });
        }
        let mut command = match &self.watchdog {
            Some(watchdog) => {
                let limit = request.timeout + WATCHDOG_GRACE;
                let mut command = tokio::process::Command::new(watchdog);
                command
                    .args(["-s", "KILL", "--"])
                    .arg(format!("{}s", limit.as_secs_f64()))
                    .arg(program);
                command
            }
            None => tokio::process::Command::new(program),
        };
        command
            .args(&request.args)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        let spawned = command.spawn();
        // The command holds our copies of the pipe's write end; drop it so that the pipe
        // reaches end-of-file once the plugin's processes are gone.
        drop(command);
        let mut child = spawned.map_err(|source| spawn_error(program, source))?;
        let group = ProcessGroup::new(child.id());
        let mut output = output_receiver(reader)?;
        let mut capture = Capture::new(self.max_output_bytes);
        let deadline = started + request.timeout;
        let mut status = None;
        let mut timed_out = false;
        let mut duration = Duration::ZERO;
        // One timer for the whole run: first the deadline, then the end of the drain grace.
        let timer = tokio::time::sleep_until(deadline);
        tokio::pin!(timer);
        let mut eof = false;
        let mut chunk = vec![0; 8192];
        while !(eof && status.is_some()) {
            tokio::select! {
                read = output.read(&mut chunk), if !eof => match read {
                    Ok(0) | Err(_) => eof = true,
                    Ok(length) => capture.push(&chunk[..length]),
                },
                exited = child.wait(), if status.is_none() => {
                    duration = started.elapsed();
                    // Whatever the plugin left behind in its group goes with it; this also
                    // releases a pipe held open by a background grandchild.
                    group.kill();
                    status = Some(exited);
                    timer.as_mut().reset(Instant::now() + DRAIN_GRACE);
                }
                () = &mut timer, if status.is_some() || !timed_out => {
                    if status.is_some() {
                        break;
                    }
                    timed_out = true;
                    group.kill();
                    // Also by pid, in case the plugin moved itself out of its group.
                    let _ = child.start_kill();
                }
            }
        }
        group.disarm();
        Ok(Run {
            status: status.and_then(Result::ok),
            timed_out,
            output: capture.bytes,
            truncated: capture.truncated,
            cut_in_word: capture.cut_in_word,
            duration,
        })
    }

    fn result(&self, run: Run, request: &ExecRequest) -> ExecResult {
        let (kept, perfdata_cut) = without_cut_word(&run);
        let mut text = String::from_utf8_lossy(kept).into_owned();
        if run.truncated {
            text.push_str(&format!(
                "\n[output truncated after {} bytes]",
                self.max_output_bytes
            ));
        }
        let parsed = parse_output(&text);
        let (state, termination, reason) = classify(&run, request);
        let (output, long_output) = match reason {
            None => (parsed.text, parsed.long_text),
            // The reason leads; the plugin's own text follows so that nothing is lost.
            Some(reason) => {
                let plugin_text = [parsed.text, parsed.long_text]
                    .into_iter()
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("\n");
                (reason, plugin_text)
            }
        };
        ExecResult {
            state,
            output,
            long_output,
            perfdata: parsed.perfdata.items,
            problems: parsed.perfdata.problems,
            first_perfdata_malformed: parsed.perfdata.first_malformed,
            duration: run.duration,
            termination,
            truncated: run.truncated,
            perfdata_cut,
        }
    }
}

/// The output without the performance data item the cap cut in the middle (so that
/// `big=1234567890` cut after `big=12345` is dropped, not read as 12345), and whether there was
/// one. A cut word of text is kept as cut.
fn without_cut_word(run: &Run) -> (&[u8], bool) {
    if !run.cut_in_word {
        return (&run.output, false);
    }
    let end = run
        .output
        .iter()
        .rposition(u8::is_ascii_whitespace)
        .map_or(0, |at| at + 1);
    let kept = &run.output[..end];
    let items = |bytes: &[u8]| {
        let perfdata = parse_output(&String::from_utf8_lossy(bytes)).perfdata;
        perfdata.items.len() + perfdata.problems.len()
    };
    if items(&run.output) > items(kept) {
        (kept, true)
    } else {
        (&run.output, false)
    }
}

/// The state, how the run ended, and a reason when the plugin did not decide the state.
fn classify(run: &Run, request: &ExecRequest) -> (CheckState, Termination, Option<String>) {
    if run.timed_out {
        let reason = format!("plugin timed out after {}", seconds(request.timeout));
        return (request.timeout_state, Termination::TimedOut, Some(reason));
    }
    let Some(status) = run.status else {
        let reason = "plugin exit status could not be read".to_owned();
        return (CheckState::Unknown, Termination::NotStarted, Some(reason));
    };
    match (status.code(), status.signal()) {
        (Some(code @ 0..=3), _) => (
            CheckState::from_exit_code(code),
            Termination::Exited(code),
            None,
        ),
        (Some(code), _) => {
            let reason = format!("plugin exited with code {code}");
            (CheckState::Unknown, Termination::Exited(code), Some(reason))
        }
        (None, Some(signal)) => {
            let name = Signal::try_from(signal).map_or("unknown signal", Signal::as_str);
            let reason = format!("plugin was killed by signal {signal} ({name})");
            (
                CheckState::Unknown,
                Termination::Signaled(signal),
                Some(reason),
            )
        }
        (None, None) => {
            let reason = format!("plugin ended with {status}");
            (CheckState::Unknown, Termination::NotStarted, Some(reason))
        }
    }
}

/// `10s`, `1.5s`, `0.25s`.
fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}s")
}

/// The read end of the output pipe as a non-blocking tokio receiver, with one `ioctl` instead
/// of the checks and flag round trip of `Receiver::from_owned_fd` (the pipe is ours).
fn output_receiver(reader: io::PipeReader) -> Result<pipe::Receiver, ExecError> {
    let reader = OwnedFd::from(reader);
    rustix::io::ioctl_fionbio(&reader, true).map_err(|errno| ExecError::Pipe(errno.into()))?;
    pipe::Receiver::from_owned_fd_unchecked(reader).map_err(ExecError::Pipe)
}

/// Whether `program` is a file someone may execute (what the watchdog would otherwise report
/// as its own failure to run it).
fn is_executable(program: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(program).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn spawn_error(program: &Path, source: io::Error) -> ExecError {
    let program = program.to_owned();
    match source.kind() {
        io::ErrorKind::NotFound => ExecError::NotFound { program },
        io::ErrorKind::PermissionDenied => ExecError::NotExecutable { program },
        _ => ExecError::Spawn { program, source },
    }
}

/// Output kept up to a cap; the rest is read and dropped so the plugin never blocks on a full
/// pipe.
struct Capture {
    bytes: Vec<u8>,
    max_bytes: usize,
    truncated: bool,
    /// The cap fell inside a word: the last byte kept and the first dropped are both part of
    /// it.
    cut_in_word: bool,
}

impl Capture {
    fn new(max_bytes: usize) -> Self {
        Capture {
            bytes: Vec::new(),
            max_bytes,
            truncated: false,
            cut_in_word: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = self.max_bytes.saturating_sub(self.bytes.len());
        if chunk.len() > room && !self.truncated {
            self.truncated = true;
            let last_kept = chunk[..room].last().or(self.bytes.last());
            self.cut_in_word = last_kept.is_some_and(|b| !b.is_ascii_whitespace())
                && !chunk[room].is_ascii_whitespace();
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

/// The plugin's process group; killed on drop unless disarmed, so that a cancelled run leaves
/// nothing behind.
struct ProcessGroup {
    pgid: Option<Pid>,
}

impl ProcessGroup {
    fn new(pid: Option<u32>) -> Self {
        let pgid = pid
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        ProcessGroup { pgid }
    }

    /// SIGKILL to every process in the group. A group that is already empty is fine.
    ///
    /// The group id is the plugin's pid. It stays reserved while any process of the group
    /// lives; once the group is empty (and the plugin reaped), the id could in principle be
    /// reused, which is why the group is killed right when the plugin ends and then disarmed.
    fn kill(&self) {
        if let Some(pgid) = self.pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }

    fn disarm(mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_becomes_a_request() {
        let probe = ExecProbe {
            command: "check_tcp".into(),
            args: vec!["-H".into(), "db.example".into()],
        };
        let request = ExecRequest::from_probe(&probe, 7, CheckState::Warning);
        assert_eq!(request.command, "check_tcp");
        assert_eq!(request.args, ["-H", "db.example"]);
        assert_eq!(request.timeout, Duration::from_secs(7));
        assert_eq!(request.timeout_state, CheckState::Warning);
    }

    #[test]
    fn timeouts_are_written_in_seconds() {
        assert_eq!(seconds(Duration::from_secs(10)), "10s");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25s");
    }

    #[test]
    fn capture_keeps_up_to_the_cap() {
        let mut capture = Capture::new(5);
        capture.push(b"abc");
        assert!(!capture.truncated);
        capture.push(b"defg");
        capture.push(b"h");
        assert_eq!(capture.bytes, b"abcde");
        assert!(capture.truncated);
    }

    #[test]
    fn bare_names_are_looked_up_in_order() {
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        std::fs::write(second.path().join("check_x"), "").unwrap();
        std::fs::create_dir(first.path().join("check_dir")).unwrap();
        let runner = PluginRunner {
            plugin_dirs: vec![first.path().into(), second.path().into()],
            ..PluginRunner::default()
        };
        assert_eq!(
            runner.resolve("check_x").unwrap(),
            second.path().join("check_x")
        );
        let error = runner.resolve("check_dir").unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "plugin check_dir not found in {}, {}",
                first.path().display(),
                second.path().display()
            )
        );
        assert_eq!(
            runner.resolve("/x/check_foo").unwrap_err().to_string(),
            "plugin /x/check_foo not found"
        );
    }
}
