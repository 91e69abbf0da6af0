//! Throughput and CPU cost of the built-in TCP and HTTP probes. Prints numbers, never fails.
//!
//! The servers run in a child process (this binary with `serve`), so the CPU time measured from
//! `/proc/self/stat` is the prober's alone. Run with
//! `cargo bench -p vedette-agent --bench probe_throughput` (optionally `-- TCP_COUNT HTTP_COUNT
//! CONCURRENCY`).

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use vedette_agent::probe::Prober;
use vedette_crds::CheckSpec;
use vedette_crds::check::{HttpProbe, PortOrParameter, TcpProbe};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Loopback addresses (127.0.0.1 to 127.0.0.N) with a TCP listener each: like a satellite
/// probing many hosts, and enough distinct 4-tuples that ephemeral ports in TIME_WAIT do not
/// throttle the run.
const TCP_TARGETS: u8 = 16;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve();
    }
    let number = |index: usize, default: usize| {
        args.get(index)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (tcp_count, http_count, concurrency) =
        (number(0, 200_000), number(1, 100_000), number(2, 128));

    let mut server = Command::new(std::env::current_exe().expect("own path"))
        .arg("serve")
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("ports");
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().expect("port"))
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "machine: {} cpus, {}; prober and servers in separate processes; concurrency {concurrency}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |info| info.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_owned())
            )
            .unwrap_or_default()
    );
    runtime.block_on(async {
        let prober = Arc::new(Prober::new());
        let tcp: Vec<CheckSpec> = (1..=TCP_TARGETS)
            .zip(&ports[1..])
            .map(|(target, port)| CheckSpec {
                tcp: Some(TcpProbe {
                    host: Ipv4Addr::new(127, 0, 0, target).to_string(),
                    port: PortOrParameter::Int((*port).into()),
                    send: None,
                    expect: None,
                }),
                ..Default::default()
            })
            .collect();
        let http = CheckSpec {
            http: Some(HttpProbe {
                url: format!("http://127.0.0.1:{}/", ports[0]),
                method: "GET".into(),
                expect_status: Vec::new(),
                body_match: Some("ok".into()),
                verify_certificate: true,
                headers: Default::default(),
            }),
            ..Default::default()
        };
        measure("tcp (warm-up)", &prober, &tcp, 2_000, concurrency).await;
        measure("tcp", &prober, &tcp, tcp_count, concurrency).await;
        measure(
            "http (warm-up)",
            &prober,
            std::slice::from_ref(&http),
            2_000,
            concurrency,
        )
        .await;
        measure(
            "http keep-alive",
            &prober,
            std::slice::from_ref(&http),
            http_count,
            concurrency,
        )
        .await;
    });
    let _ = server.kill();
    let _ = server.wait();
}

/// User plus system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

async fn measure(
    name: &str,
    prober: &Arc<Prober>,
    specs: &[CheckSpec],
    count: usize,
    concurrency: usize,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (prober, specs, next, failures) = (
                Arc::clone(prober),
                specs.to_vec(),
                Arc::clone(&next),
                Arc::clone(&failures),
            );
            let name = name.to_owned();
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    let output = prober.run(&specs[index % specs.len()], TIMEOUT).await;
                    if let Some((_, reason)) = output.failure
                        && failures.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        eprintln!("{name}: first failure: {reason}");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "{name:>16}: {count} probes in {elapsed:.2} s = {:.0} probes/s, CPU {:.1} µs/probe ({cpu:.2} s), {} failed",
        count as f64 / elapsed,
        cpu * 1e6 / count as f64,
        failures.load(Ordering::Relaxed)
    );
}

/// The servers: a TCP listener that accepts and waits for the client to close, and a keep-alive HTTP/1.1 server.
fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut ports = vec![http.local_addr().expect("addr").port()];
        for target in 1..=TCP_TARGETS {
            let tcp = TcpListener::bind((Ipv4Addr::new(127, 0, 0, target), 0))
                .await
                .expect("bind");
            ports.push(tcp.local_addr().expect("addr").port());
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = tcp.accept().await else {
                        continue;
                    };
                    // Wait for the prober to close first, as a real service would.
                    tokio::spawn(async move {
                        let mut buffer = [0u8; 64];
                        while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
                    });
                }
            });
        }
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        println!("{}", ports.join(" "));
        loop {
            let Ok((stream, _)) = http.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
