//! `make demo` as a newcomer sees it: the real binary in standalone mode on config/samples with
//! the Makefile's `DEMO_FLAGS`, on loopback, for about 20 s. Fifteen seconds after start no
//! check is PENDING; OK, WARNING and CRITICAL checks are all there, the shop's storefront
//! checks among them, and the twopm business process is evaluated on this machine; stdout says
//! where the state is served, and prints the summary again only when it changed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vedette-operator");
/// The machine's name: `$host$` in the samples' URLs is then a loopback name.
const HOST: &str = "localhost";
/// The storefront rule set's checks, which the demo's labels bring onto this machine.
const STOREFRONT: [&str; 6] = [
    "shop/storefront/certificate",
    "shop/storefront/checkout-api",
    "shop/storefront/homepage",
    "shop/storefront/nginx",
    "shop/storefront/redis-port",
    "shop/storefront/sitemap",
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator lives in the repository")
        .to_owned()
}

/// The flags `make demo` passes: the value of `DEMO_FLAGS ?=` in the Makefile, continuation
/// lines included.
fn demo_flags() -> Vec<String> {
    let makefile = std::fs::read_to_string(repository().join("Makefile")).expect("Makefile");
    let lines = makefile
        .lines()
        .skip_while(|line| !line.starts_with("DEMO_FLAGS ?="));
    let mut value = String::new();
    for line in lines {
        let line = line.strip_prefix("DEMO_FLAGS ?=").unwrap_or(line);
        match line.strip_suffix('\\') {
            Some(continued) => value.push_str(continued),
            None => {
                value.push_str(line);
                break;
            }
        }
        value.push(' ');
    }
    let flags: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
    assert!(
        flags.iter().any(|flag| flag == "--label"),
        "no DEMO_FLAGS with labels in the Makefile: {flags:?}"
    );
    flags
}

/// Stops the child (SIGTERM, then SIGKILL) when the test ends, however it ends.
struct Running(Child);

impl Running {
    fn stop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn state(port: u16) -> Option<serde_json::Value> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/v1/state"))
        .await
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

/// Each summary printed, as what it shows without its time and the checks' outputs: the
/// header, then per line that is not OK its state, softness, host and check, then the
/// process lines.
fn summaries(stdout: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        let header = line
            .split_once("] ")
            .filter(|(time, rest)| time.starts_with('[') && rest.starts_with("zone "))
            .map(|(_, rest)| rest);
        if let Some(header) = header {
            found.extend(current.take());
            current = Some(header.to_owned());
        } else if let (Some(summary), Some(body)) = (current.as_mut(), line.strip_prefix("  ")) {
            let shown = if body.starts_with(' ') || body.starts_with("process ") {
                body.to_owned() // a business process or one of its elements
            } else {
                let words: Vec<&str> = body.split_whitespace().collect();
                let soft = words.get(1) == Some(&"(soft)");
                let at = if soft { 2 } else { 1 };
                format!("{} soft={soft} {}", words[0], words[at..at + 2].join(" "))
            };
            summary.push('\n');
            summary.push_str(&shown);
        } else {
            found.extend(current.take());
        }
    }
    found.extend(current);
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_every_state_and_the_business_process_within_seconds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let started = Instant::now();
    let child = Command::new(BIN)
        .current_dir(repository())
        .args(["standalone", "-f", "config/samples/"])
        .args(demo_flags())
        .args(["--host", HOST, "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start vedette-operator standalone");
    let mut running = Running(child);
    let logs = || {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(&stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    };

    tokio::time::sleep_until((started + Duration::from_secs(15)).into()).await;
    if let Ok(Some(exit)) = running.0.try_wait() {
        panic!("standalone exited early ({exit})\n{}", logs());
    }
    let view = state(port)
        .await
        .unwrap_or_else(|| panic!("no /v1/state after 15 s\n{}", logs()));
    let checks = view["checks"].as_array().expect("checks");
    let pending: Vec<&str> = checks
        .iter()
        .filter(|c| c["state"] == "PENDING")
        .filter_map(|c| c["check"].as_str())
        .collect();
    assert!(
        pending.is_empty(),
        "PENDING 15 s after start: {pending:?}\n{}",
        logs()
    );
    let states: BTreeSet<&str> = checks.iter().filter_map(|c| c["state"].as_str()).collect();
    for state in ["OK", "WARNING", "CRITICAL"] {
        assert!(
            states.contains(state),
            "no {state} check: {view:#}\n{}",
            logs()
        );
    }
    let on_this_machine: BTreeSet<&str> = checks
        .iter()
        .filter(|c| c["host"] == HOST)
        .filter_map(|c| c["check"].as_str())
        .collect();
    for check in STOREFRONT {
        assert!(
            on_this_machine.contains(check),
            "{check} does not run here: {on_this_machine:?}"
        );
    }
    let twopm = view["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["process"] == "batch/twopm")
        .unwrap_or_else(|| panic!("no batch/twopm: {view:#}"));
    assert!(
        twopm.get("notEvaluating").is_none(),
        "twopm is not evaluated here: {twopm:#}"
    );
    let elements = twopm["elements"].as_array().expect("elements");
    assert!(
        elements.iter().any(|e| e["name"] == "twopm"),
        "no element twopm: {twopm:#}"
    );
    let stdout = std::fs::read_to_string(&stdout_path).expect("stdout");
    let served = format!("http://127.0.0.1:{port}/v1/state");
    let dashboard = format!("http://127.0.0.1:{port}/ui/");
    assert!(
        stdout.lines().any(|l| l.starts_with("Every check has run")
            && l.contains(&served)
            && l.contains(&dashboard)),
        "no line saying every check has run and where the state and the dashboard are\n{stdout}"
    );
    let response = reqwest::get(&dashboard)
        .await
        .expect("the dashboard answers");
    let status = response.status();
    let page = response.text().await.unwrap_or_default();
    assert!(
        status.is_success() && page.contains("/ui/assets/app.js"),
        "the dashboard's page: {status} {page}"
    );

    // Five seconds more: the summary is printed again only when what it shows changed.
    tokio::time::sleep_until((started + Duration::from_secs(20)).into()).await;
    let stdout = std::fs::read_to_string(&stdout_path).expect("stdout");
    running.stop();
    let printed = summaries(&stdout);
    assert!(!printed.is_empty(), "no summary printed\n{}", logs());
    let last = printed.last().expect("a summary");
    assert!(
        last.contains(", 0 PENDING") && last.contains("process batch/twopm"),
        "the last summary before 20 s: {last}"
    );
    for pair in printed.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "a summary printed again though nothing it shows changed\n{stdout}"
        );
    }
    eprintln!(
        "{} summaries in 20 s, states {states:?}, {} checks",
        printed.len(),
        checks.len()
    );
}
