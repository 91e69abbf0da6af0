//! Machine probes reading the node through `--host-root` and `--host-proc`: a fake procfs and
//! root file system in a temporary directory stand for the node's, mounted into a pod.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use vedette_agent::host_paths::HostPaths;
use vedette_agent::probe::{ProbeOutput, Prober};
use vedette_crds::CheckSpec;
use vedette_crds::check::{
    CpuProbe, DiskMetric, DiskProbe, FileMetric, FileProbe, LoadProbe, LogProbe, MemoryMetric,
    MemoryProbe, NetworkMetric, NetworkProbe, ProcessProbe, SwapProbe,
};
use vedette_crds::template::CheckState;

const TIMEOUT: Duration = Duration::from_secs(5);

const MEMINFO: &str = "MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     250 kB\nBuffers:  10 kB\nCached: 20 kB\nSwapTotal:        400 kB\nSwapFree:         300 kB\n";
const STAT_BEFORE: &str = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\ncpu2 0 0 0 0 0 0 0 0 0 0\nintr 1\n";
const STAT_AFTER: &str = "cpu  200 0 100 1600 100 0 0 0 0 0\ncpu0 140 0 35 400 25 0 0 0 0 0\ncpu1 60 0 65 1200 75 0 0 0 0 0\ncpu2 0 0 0 0 0 0 0 0 0 0\nintr 1\n";
const NET_DEV_HEADER: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

/// A node's `/proc` and `/` in a temporary directory.
struct FakeNode {
    _directory: tempfile::TempDir,
    proc: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl FakeNode {
    fn new() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let proc = directory.path().join("proc");
        let root = directory.path().join("root");
        std::fs::create_dir_all(&proc).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let node = Self {
            _directory: directory,
            proc,
            root,
        };
        node.write_proc("meminfo", MEMINFO);
        node.write_proc("loadavg", "1.50 3.00 6.00 2/345 6789\n");
        node.write_proc("stat", STAT_BEFORE);
        // The pod's own network namespace (what `<proc>/net/dev` would show to the agent) and
        // the node's, through pid 1.
        node.write_proc(
            "net/dev",
            &format!("{NET_DEV_HEADER}  pod0: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n"),
        );
        node.write_net_dev(1000);
        node
    }

    fn host_paths(&self) -> HostPaths {
        HostPaths::new(&self.root, &self.proc)
    }

    fn prober(&self) -> Prober {
        Prober::new().with_host_paths(self.host_paths())
    }

    fn write_proc(&self, name: &str, text: &str) {
        write(&self.proc.join(name), text.as_bytes());
    }

    fn write_root(&self, path: &str, bytes: &[u8]) {
        write(&self.root.join(path.trim_start_matches('/')), bytes);
    }

    fn write_net_dev(&self, receive_bytes: u64) {
        self.write_proc(
            "1/net/dev",
            &format!(
                "{NET_DEV_HEADER}    lo: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n node0: {receive_bytes} 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
            ),
        );
    }

    /// A process of the node: `<proc>/<pid>/comm`, `cmdline` and `status`.
    fn process(&self, pid: u32, comm: &str, cmdline: &[&str], uid: u32) {
        self.write_proc(&format!("{pid}/comm"), &format!("{comm}\n"));
        let mut raw = cmdline.join("\0").into_bytes();
        raw.push(0);
        write(&self.proc.join(format!("{pid}/cmdline")), &raw);
        self.write_proc(
            &format!("{pid}/status"),
            &format!("Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        );
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

async fn run(prober: &Prober, spec: CheckSpec) -> ProbeOutput {
    let output = prober.run(&spec, TIMEOUT).await;
    println!("{}", output.line(CheckState::Ok));
    assert!(output.failure.is_none(), "{output:?}");
    output
}

#[tokio::test]
async fn memory_swap_load_and_cpu_read_the_node_procfs() {
    let node = FakeNode::new();
    let prober = node.prober();

    let memory = run(
        &prober,
        CheckSpec {
            memory: Some(MemoryProbe::default()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(memory.value, 75.0);
    let available = run(
        &prober,
        CheckSpec {
            memory: Some(MemoryProbe {
                metric: MemoryMetric::AvailableBytes,
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(available.value, 250.0 * 1024.0);
    let swap = run(
        &prober,
        CheckSpec {
            swap: Some(SwapProbe::default()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(swap.value, 25.0);

    let load = |period_minutes, per_cpu| CheckSpec {
        load: Some(LoadProbe {
            period_minutes,
            per_cpu,
        }),
        ..Default::default()
    };
    assert_eq!(run(&prober, load(1, false)).await.value, 1.5);
    let per_cpu = run(&prober, load(15, true)).await;
    assert_eq!(per_cpu.value, 2.0);
    assert!(per_cpu.output.contains("(3 cpus)"), "{}", per_cpu.output);

    // The first run keeps a sample of the unchanging file; the second measures from it.
    let cpu = CheckSpec {
        cpu: Some(CpuProbe::default()),
        ..Default::default()
    };
    run(&prober, cpu.clone()).await;
    node.write_proc("stat", STAT_AFTER);
    let output = run(&prober, cpu).await;
    // 1000 jiffies passed, 850 of them idle or iowait.
    assert!((output.value - 15.0).abs() < 1e-9, "{output:?}");
}

#[tokio::test]
async fn network_reads_the_node_namespace_through_pid_1() {
    let node = FakeNode::new();
    let prober = node.prober();
    let spec = |interface: &str| CheckSpec {
        network: Some(NetworkProbe {
            interface: interface.into(),
            metric: NetworkMetric::ReceiveBytesPerSecond,
        }),
        ..Default::default()
    };
    let first = run(&prober, spec("node0")).await;
    assert!(first.output.starts_with("node0 receive 0 B/s"), "{first:?}");
    node.write_net_dev(1_000_000);
    let second = run(&prober, spec("node0")).await;
    assert!(second.value > 0.0, "{second:?}");

    // The pod's own interfaces are not the node's.
    let pod = prober.run(&spec("pod0"), TIMEOUT).await;
    let (state, message) = pod.failure.expect("pod0 is not a node interface");
    assert_eq!(state, CheckState::Critical);
    assert_eq!(message, "interface pod0 not found");
}

#[tokio::test]
async fn process_lists_the_node_procfs_and_its_users() {
    let node = FakeNode::new();
    node.process(4242, "fakeproc", &["/usr/sbin/fakeproc", "--serve"], 4321);
    node.process(4243, "fakeproc", &["fakeproc", "--serve"], 0);
    node.process(4244, "other", &["other", "--serve"], 4321);
    // The agent itself, as the node's procfs names it: never counted.
    node.process(4245, "fakeproc", &["fakeproc", "--serve"], 0);
    std::os::unix::fs::symlink("4245", node.proc.join("self")).unwrap();
    std::fs::create_dir_all(node.proc.join("sys")).unwrap();
    node.write_root(
        "/etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nfakeuser:x:4321:4321::/:/bin/false\n",
    );
    let prober = node.prober();
    let spec = |name: Option<&str>, command_line: Option<&str>, user: Option<&str>| CheckSpec {
        process: Some(ProcessProbe {
            name: name.map(Into::into),
            command_line: command_line.map(Into::into),
            user: user.map(Into::into),
        }),
        ..Default::default()
    };

    let by_name = run(&prober, spec(Some("fakeproc"), None, None)).await;
    assert_eq!(
        by_name.line(CheckState::Ok),
        "PROCESS OK - 2 processes with name 'fakeproc'|procs=2"
    );
    assert_eq!(
        run(&prober, spec(None, Some("--serve$"), None)).await.value,
        3.0
    );
    let of_user = run(&prober, spec(None, Some("--serve$"), Some("fakeuser"))).await;
    assert_eq!(of_user.value, 2.0, "{of_user:?}");
}

#[tokio::test]
async fn file_log_and_disk_resolve_their_paths_under_the_node_root() {
    let node = FakeNode::new();
    let mut heartbeat = vec![b'x'; 1234];
    heartbeat.push(b'\n');
    node.write_root("/var/lib/app/heartbeat", &heartbeat);
    let file = std::fs::File::options()
        .write(true)
        .open(node.root.join("var/lib/app/heartbeat"))
        .unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(file);
    // /var/log is a link on the node, to /data/log: followed inside the root.
    node.write_root("/data/log/app.log", b"ERROR before the agent watched\n");
    std::os::unix::fs::symlink("/data/log", node.root.join("var/log")).unwrap();
    std::fs::create_dir_all(node.root.join("only-on-the-node")).unwrap();
    let prober = node.prober();

    let file = |path: &str, metric| CheckSpec {
        file: Some(FileProbe {
            path: path.into(),
            metric,
        }),
        ..Default::default()
    };
    let size = run(
        &prober,
        file("/var/lib/app/heartbeat", FileMetric::SizeBytes),
    )
    .await;
    assert_eq!(size.value, 1235.0);
    assert!(
        size.output
            .starts_with("/var/lib/app/heartbeat exists, 1.2 KiB modified 36"),
        "{}",
        size.output
    );
    let age = run(
        &prober,
        file("/var/lib/app/heartbeat", FileMetric::AgeSeconds),
    )
    .await;
    assert!((3599.0..3700.0).contains(&age.value), "{age:?}");
    let missing = run(&prober, file("/var/lib/app/missing", FileMetric::Exists)).await;
    assert_eq!(missing.output, "/var/lib/app/missing does not exist");

    let log = CheckSpec {
        log: Some(LogProbe {
            path: "/var/log/app.log".into(),
            pattern: "ERROR".into(),
        }),
        ..Default::default()
    };
    assert_eq!(run(&prober, log.clone()).await.value, 0.0);
    std::fs::File::options()
        .append(true)
        .open(node.root.join("data/log/app.log"))
        .unwrap()
        .write_all(b"ERROR one\ninfo\nERROR two\n")
        .unwrap();
    let output = run(&prober, log).await;
    assert_eq!(output.value, 2.0);
    assert_eq!(
        output.output,
        "2 lines matching 'ERROR' in /var/log/app.log since the last read"
    );

    let disk = run(
        &prober,
        CheckSpec {
            disk: Some(DiskProbe {
                mount_point: "/only-on-the-node".into(),
                metric: DiskMetric::UsedPercent,
            }),
            ..Default::default()
        },
    )
    .await;
    assert!(
        disk.output.starts_with("/only-on-the-node "),
        "{}",
        disk.output
    );
    assert!((0.0..=100.0).contains(&disk.value), "{disk:?}");
}

#[tokio::test]
async fn defaults_read_this_machine() {
    let prober = Prober::new();
    assert_eq!(HostPaths::default(), HostPaths::new("/", "/proc"));

    let cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("cpu") && !line.starts_with("cpu "))
        .count();
    let load = run(
        &prober,
        CheckSpec {
            load: Some(LoadProbe {
                period_minutes: 1,
                per_cpu: true,
            }),
            ..Default::default()
        },
    )
    .await;
    assert!(
        load.output.contains(&format!("({cpus} cpus)")),
        "{}",
        load.output
    );

    // This process's own network namespace, through /proc/net/dev.
    let lo = run(
        &prober,
        CheckSpec {
            network: Some(NetworkProbe {
                interface: "lo".into(),
                metric: NetworkMetric::ReceiveBytesPerSecond,
            }),
            ..Default::default()
        },
    )
    .await;
    assert!(lo.output.starts_with("lo receive"), "{}", lo.output);

    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("real");
    std::fs::write(&path, b"12345").unwrap();
    let size = run(
        &prober,
        CheckSpec {
            file: Some(FileProbe {
                path: path.to_str().unwrap().into(),
                metric: FileMetric::SizeBytes,
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(size.value, 5.0);
}
