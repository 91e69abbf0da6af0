//! Machine probes on this machine: cpu, memory, swap, disk, load, network, process and file.

mod probe_asserts;
use probe_asserts::assert_critical;

use std::io::Write;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vedette_agent::probe::{ProbeOutput, Prober};
use vedette_crds::CheckSpec;
use vedette_crds::check::{
    CpuProbe, DiskMetric, DiskProbe, FileMetric, FileProbe, LoadProbe, MemoryMetric, MemoryProbe,
    NetworkMetric, NetworkProbe, ProcessProbe, SwapProbe,
};
use vedette_crds::template::CheckState;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn run(prober: &Prober, spec: CheckSpec) -> ProbeOutput {
    let output = prober.run(&spec, TIMEOUT).await;
    println!("{}", output.line(CheckState::Ok));
    output
}

fn assert_percent(output: &ProbeOutput) {
    assert!(output.failure.is_none(), "{output:?}");
    assert!(
        (0.0..=100.0).contains(&output.value),
        "not a percentage: {output:?}"
    );
}

#[tokio::test]
async fn cpu_memory_swap_disk_and_load_are_plausible() {
    let prober = Prober::new();
    for busiest_core in [false, true] {
        let spec = CheckSpec {
            cpu: Some(CpuProbe { busiest_core }),
            ..Default::default()
        };
        assert_percent(&run(&prober, spec.clone()).await);
        // The second run measures since the first.
        assert_percent(&run(&prober, spec).await);
    }

    assert_percent(
        &run(
            &prober,
            CheckSpec {
                memory: Some(MemoryProbe::default()),
                ..Default::default()
            },
        )
        .await,
    );
    let available = MemoryProbe {
        metric: MemoryMetric::AvailableBytes,
    };
    let output = run(
        &prober,
        CheckSpec {
            memory: Some(available),
            ..Default::default()
        },
    )
    .await;
    assert!(output.value > 1024.0 * 1024.0, "{output:?}");

    assert_percent(
        &run(
            &prober,
            CheckSpec {
                swap: Some(SwapProbe {}),
                ..Default::default()
            },
        )
        .await,
    );

    let disk = |metric| DiskProbe {
        mount_point: "/".into(),
        metric,
    };
    assert_percent(
        &run(
            &prober,
            CheckSpec {
                disk: Some(disk(DiskMetric::UsedPercent)),
                ..Default::default()
            },
        )
        .await,
    );
    assert_percent(
        &run(
            &prober,
            CheckSpec {
                disk: Some(disk(DiskMetric::InodesUsedPercent)),
                ..Default::default()
            },
        )
        .await,
    );
    let output = run(
        &prober,
        CheckSpec {
            disk: Some(disk(DiskMetric::FreeBytes)),
            ..Default::default()
        },
    )
    .await;
    assert!(output.value > 0.0, "{output:?}");
    let missing = DiskProbe {
        mount_point: "/no/such/mount".into(),
        metric: DiskMetric::UsedPercent,
    };
    assert_critical(
        &run(
            &prober,
            CheckSpec {
                disk: Some(missing),
                ..Default::default()
            },
        )
        .await,
        "not found",
    );

    for per_cpu in [false, true] {
        let load = LoadProbe {
            period_minutes: 1,
            per_cpu,
        };
        let output = run(
            &prober,
            CheckSpec {
                load: Some(load),
                ..Default::default()
            },
        )
        .await;
        assert!(
            output.failure.is_none() && output.value >= 0.0 && output.value < 1000.0,
            "{output:?}"
        );
    }
}

/// Sends `bytes` through a loopback TCP connection.
async fn loopback_traffic(bytes: usize) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).await.unwrap();
        sink.len()
    });
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(&vec![7u8; bytes]).await.unwrap();
    stream.shutdown().await.unwrap();
    assert_eq!(reader.await.unwrap(), bytes);
}

#[tokio::test]
async fn network_rate_on_loopback_sees_generated_traffic() {
    let prober = Prober::new();
    let spec = CheckSpec {
        network: Some(NetworkProbe {
            interface: "lo".into(),
            metric: NetworkMetric::ReceiveBytesPerSecond,
        }),
        ..Default::default()
    };
    let started = Instant::now();
    run(&prober, spec.clone()).await;
    const BYTES: usize = 16 * 1024 * 1024;
    loopback_traffic(BYTES).await;
    let output = run(&prober, spec).await;
    let floor = BYTES as f64 / started.elapsed().as_secs_f64();
    assert!(output.failure.is_none(), "{output:?}");
    assert!(output.value >= floor, "rate {} below {floor}", output.value);

    let missing = NetworkProbe {
        interface: "nosuch0".into(),
        metric: NetworkMetric::ErrorsPerSecond,
    };
    let output = run(
        &prober,
        CheckSpec {
            network: Some(missing),
            ..Default::default()
        },
    )
    .await;
    assert_critical(&output, "interface nosuch0 not found");
}

/// Children killed when the test ends, however it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the probe until its value is `expected` or five seconds passed (a child may not have
/// exec'd yet); returns the last value.
async fn value_becomes(prober: &Prober, spec: &CheckSpec, expected: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let output = prober.run(spec, TIMEOUT).await;
        assert!(output.failure.is_none(), "{output:?}");
        if output.value == expected || Instant::now() > deadline {
            return output.value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn own_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn process_counts_spawned_sleeps_by_name_and_command_line() {
    let directory = tempfile::tempdir().unwrap();
    let sleep = which_sleep();
    let short_name = format!("vs{}", std::process::id() % 100_000);
    let long_name = "vedette-long-sleeper".to_owned();
    let mut children = Children(Vec::new());
    for (name, count) in [(&short_name, 3), (&long_name, 2)] {
        let program = directory.path().join(name);
        std::fs::copy(&sleep, &program).unwrap();
        for _ in 0..count {
            children
                .0
                .push(Command::new(&program).arg("3600").spawn().unwrap());
        }
    }
    let marker = format!("3600.{}", std::process::id());
    for _ in 0..2 {
        children
            .0
            .push(Command::new("sleep").arg(&marker).spawn().unwrap());
    }

    let prober = Prober::new();
    let by_name = |name: &str, user: Option<String>| CheckSpec {
        process: Some(ProcessProbe {
            name: Some(name.into()),
            command_line: None,
            user,
        }),
        ..Default::default()
    };
    assert_eq!(
        value_becomes(&prober, &by_name(&short_name, None), 3.0).await,
        3.0
    );
    assert_eq!(
        value_becomes(&prober, &by_name(&long_name, None), 2.0).await,
        2.0
    );
    let by_command_line = CheckSpec {
        process: Some(ProcessProbe {
            name: None,
            command_line: Some(format!(r"^sleep {}$", regex::escape(&marker))),
            user: None,
        }),
        ..Default::default()
    };
    assert_eq!(value_becomes(&prober, &by_command_line, 2.0).await, 2.0);

    let mine = by_name(&short_name, Some(own_uid().to_string()));
    assert_eq!(prober.run(&mine, TIMEOUT).await.value, 3.0);
    let other_uid = if own_uid() == 65534 { 0 } else { 65534 };
    let others = by_name(&short_name, Some(other_uid.to_string()));
    assert_eq!(prober.run(&others, TIMEOUT).await.value, 0.0);
    let output = prober.run(&by_name(&short_name, None), TIMEOUT).await;
    assert_eq!(
        output.line(CheckState::Ok),
        format!("PROCESS OK - 3 processes with name '{short_name}'|procs=3")
    );

    drop(children);
    assert_eq!(
        value_becomes(&prober, &by_name(&short_name, None), 0.0).await,
        0.0
    );
}

fn which_sleep() -> std::path::PathBuf {
    ["/usr/bin/sleep", "/bin/sleep"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .unwrap()
}

#[tokio::test]
async fn file_exists_age_and_size() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("heartbeat");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&[b'x'; 1234]).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(file);
    let prober = Prober::new();
    let spec = |path: &std::path::Path, metric| CheckSpec {
        file: Some(FileProbe {
            path: path.to_str().unwrap().into(),
            metric,
        }),
        ..Default::default()
    };

    assert_eq!(
        prober
            .run(&spec(&path, FileMetric::Exists), TIMEOUT)
            .await
            .value,
        1.0
    );
    assert_eq!(
        prober
            .run(&spec(&path, FileMetric::SizeBytes), TIMEOUT)
            .await
            .value,
        1234.0
    );
    let age = prober
        .run(&spec(&path, FileMetric::AgeSeconds), TIMEOUT)
        .await
        .value;
    assert!((3599.0..3700.0).contains(&age), "age {age}");

    let missing = directory.path().join("missing");
    let output = prober
        .run(&spec(&missing, FileMetric::Exists), TIMEOUT)
        .await;
    assert_eq!(output.value, 0.0);
    assert!(output.failure.is_none(), "{output:?}");
    assert_critical(
        &prober
            .run(&spec(&missing, FileMetric::AgeSeconds), TIMEOUT)
            .await,
        "does not exist",
    );
    assert_critical(
        &prober
            .run(&spec(&missing, FileMetric::SizeBytes), TIMEOUT)
            .await,
        "does not exist",
    );
}
