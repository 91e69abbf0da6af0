//! The plugin runner against real Debian monitoring plugins in `/usr/lib/nagios/plugins`
//! (installed by `e2e/tools/install-packages.sh`).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use vedette_agent::nagios::exec::{ExecRequest, ExecResult, PluginRunner, Termination};
use vedette_agent::nagios::perfdata::Uom;
use vedette_crds::template::CheckState;

const PLUGINS: &str = "/usr/lib/nagios/plugins";

async fn run(command: &str, args: &[&str]) -> ExecResult {
    assert!(
        Path::new(PLUGINS).join(command).exists(),
        "{command} is missing: run `bash e2e/tools/install-packages.sh`"
    );
    PluginRunner::default()
        .run(&ExecRequest::new(command, args.iter().copied()))
        .await
}

#[tokio::test]
async fn check_dummy_maps_each_exit_code_to_its_state() {
    let cases = [
        ("0", CheckState::Ok, "OK: hello world", 0),
        ("1", CheckState::Warning, "WARNING: hello world", 1),
        ("2", CheckState::Critical, "CRITICAL: hello world", 2),
        ("3", CheckState::Unknown, "UNKNOWN: hello world", 3),
    ];
    for (code, state, output, exit) in cases {
        // A bare name is found in the default plugin directories.
        let result = run("check_dummy", &[code, "hello world"]).await;
        assert_eq!(result.state, state, "{result:?}");
        assert_eq!(result.output, output);
        assert_eq!(result.long_output, "");
        assert_eq!(result.termination, Termination::Exited(exit));
        assert!(result.perfdata.is_empty() && result.problems.is_empty());
        assert!(!result.truncated);
    }
    let result = run("check_dummy", &["4", "x"]).await;
    assert_eq!(result.state, CheckState::Unknown);
    assert_eq!(
        result.output,
        "UNKNOWN: Status 4 is not a supported error state"
    );
}

#[tokio::test]
async fn arguments_are_never_interpreted_by_a_shell() {
    let marker = tempfile::tempdir().unwrap();
    let touched = marker.path().join("touched");
    let argument = format!("$(touch {0}); touch {0} `touch {0}` | x", touched.display());
    let result = run(&format!("{PLUGINS}/check_dummy"), &["0", &argument]).await;
    assert_eq!(result.state, CheckState::Ok);
    assert_eq!(
        result.output,
        format!("OK: $(touch {0}); touch {0} `touch {0}`", touched.display())
    );
    assert!(!touched.exists(), "a shell ran the argument");
}

fn listener_counting_connections() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn check_tcp_is_ok_against_a_listener() {
    let (port, accepted) = listener_counting_connections();
    let port_text = port.to_string();
    let result = run("check_tcp", &["-H", "127.0.0.1", "-p", &port_text]).await;
    assert_eq!(result.state, CheckState::Ok, "{result:?}");
    assert!(result.output.starts_with("TCP OK"), "{}", result.output);
    assert!(
        result.output.contains(&format!("port {port}")),
        "{}",
        result.output
    );
    // The handshake completes in the kernel's backlog; the accept thread may count it later.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the plugin never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let time = result
        .perfdata
        .iter()
        .find(|d| d.label == "time")
        .expect("time perfdata");
    assert_eq!(time.uom, Uom::Seconds);
    assert!(
        time.value.is_some_and(|v| (0.0..10.0).contains(&v)),
        "{time:?}"
    );
    assert!(result.problems.is_empty(), "{:?}", result.problems);
}

#[tokio::test]
async fn check_tcp_is_critical_against_a_closed_port() {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_text = port.to_string();
    let result = run("check_tcp", &["-H", "127.0.0.1", "-p", &port_text]).await;
    assert_eq!(result.state, CheckState::Critical, "{result:?}");
    assert_eq!(result.termination, Termination::Exited(2));
    assert!(
        result.output.contains("Connection refused"),
        "{}",
        result.output
    );
}

#[tokio::test]
async fn check_disk_on_root_yields_parsed_perfdata() {
    let result = run("check_disk", &["-w", "0%", "-c", "0%", "-p", "/"]).await;
    // How full / is depends on the machine (a nearly full disk rounds to 0% free, which
    // check_disk calls CRITICAL); whichever verdict it gives, the state must be the one its
    // output names.
    let verdict = match result.state {
        CheckState::Ok => "DISK OK",
        CheckState::Critical => "DISK CRITICAL",
        other => panic!("check_disk with 0% thresholds gave {other:?}: {result:?}"),
    };
    assert!(result.output.starts_with(verdict), "{result:?}");
    assert!(result.problems.is_empty(), "{:?}", result.problems);
    let root = result
        .perfdata
        .iter()
        .find(|d| d.label == "/")
        .expect("perfdata for /");
    let used = root.value.expect("a used value");
    let size = root.max.expect("a maximum");
    assert!(used > 0.0 && used <= size, "{root:?}");
    assert_eq!(root.min, Some(0.0));
    assert!(root.warn.is_some() && root.crit.is_some(), "{root:?}");
    assert!(matches!(root.uom, Uom::Bytes | Uom::Megabytes), "{root:?}");

    // Asking for 100% free space can only fail: the state follows the plugin.
    let result = run("check_disk", &["-w", "100%", "-c", "100%", "-p", "/"]).await;
    assert_eq!(result.state, CheckState::Critical, "{result:?}");
    assert!(result.perfdata.iter().any(|d| d.label == "/"));
}

struct Sleepers(Vec<Child>);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn check_procs_counts_real_processes() {
    let marker = format!("{}.{}", 900 + std::process::id() % 100, std::process::id());
    let sleepers = Sleepers(
        (0..3)
            .map(|_| Command::new("sleep").arg(&marker).spawn().unwrap())
            .collect(),
    );
    let result = run("check_procs", &["-a", &marker, "-w", "3:3", "-c", "3:3"]).await;
    assert_eq!(result.state, CheckState::Ok, "{result:?}");
    let procs = result
        .perfdata
        .iter()
        .find(|d| d.label == "procs")
        .expect("procs perfdata");
    assert_eq!(procs.value, Some(3.0), "{result:?}");
    assert_eq!(procs.warn.map(|r| r.to_string()).as_deref(), Some("3:3"));

    let result = run("check_procs", &["-a", &marker, "-c", "5:"]).await;
    assert_eq!(result.state, CheckState::Critical, "{result:?}");
    assert!(
        result.output.starts_with("PROCS CRITICAL: 3 processes"),
        "{}",
        result.output
    );
    drop(sleepers);

    let result = run("check_procs", &["-a", &marker, "-c", "1:"]).await;
    assert_eq!(result.state, CheckState::Critical, "{result:?}");
    assert!(result.output.contains("0 processes"), "{}", result.output);
}

#[tokio::test]
async fn plugin_timing_is_measured() {
    // check_dummy is fast; the measured duration is real but small.
    let result = run("check_dummy", &["0", "x"]).await;
    assert!(result.duration > Duration::ZERO && result.duration < Duration::from_secs(5));
}
