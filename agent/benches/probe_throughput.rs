//! Throughput and CPU cost of the built-in TCP and HTTP probes. Prints numbers, never fails.
//!
//! The servers run in a child process (this binary with `serve`), so the CPU time measured from
//! `/proc/self/stat` is the prober's alone. Run with
//! `cargo bench -p vedette-agent --bench probe_throughput` (optionally `-- TCP_COUNT HTTP_COUNT
//! CONCURRENCY`).

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use vedette_agent::probe::Prober;
use vedette_crds::CheckSpec;
use vedette_crds::check::{HttpProbe, PortOrParameter, TcpProbe};

const TIMEOUT: Duration = Duration::from_secs(10);

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
        let tcp = CheckSpec {
            tcp: Some(TcpProbe {
                host: "127.0.0.1".into(),
                port: PortOrParameter::Int(ports[0].into()),
                send: None,
                expect: None,
            }),
            ..Default::default()
        };
        let http = CheckSpec {
            http: Some(HttpProbe {
                url: format!("http://127.0.0.1:{}/", ports[1]),
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
        measure("http (warm-up)", &prober, &http, 2_000, concurrency).await;
        measure("http keep-alive", &prober, &http, http_count, concurrency).await;
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
    spec: &CheckSpec,
    count: usize,
    concurrency: usize,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (prober, spec, next, failures) = (
                Arc::clone(prober),
                spec.clone(),
                Arc::clone(&next),
                Arc::clone(&failures),
            );
            let name = name.to_owned();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let output = prober.run(&spec, TIMEOUT).await;
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

/// The servers: a TCP listener that accepts and closes, and a keep-alive HTTP/1.1 server.
fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!(
            "{} {}",
            tcp.local_addr().expect("addr").port(),
            http.local_addr().expect("addr").port()
        );
        tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = tcp.accept().await {
                    drop(stream);
                }
            }
        });
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
