//! A TCP connection: connect time, and optionally a greeting checked after sending a text.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vedette_crds::check::{TcpClose, TcpProbe};
use vedette_crds::template::CheckState;

use super::{ProbeError, ProbeOutput, Result, seconds};

/// Most bytes read while waiting for `expect`.
const MAX_EXPECT_BYTES: usize = 64 * 1024;

/// How long the peer may pause once it has sent something before the answer counts as
/// complete.
const EXPECT_QUIET: Duration = Duration::from_millis(100);

/// Resolves `host:port`; literal addresses skip the resolver.
pub(crate) async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| ProbeError::Resolve {
            host: host.to_owned(),
            reason: error.to_string(),
        })?
        .collect();
    if addresses.is_empty() {
        return Err(ProbeError::Resolve {
            host: host.to_owned(),
            reason: "no addresses".into(),
        });
    }
    Ok(addresses)
}

/// Connects to the first address of `host` that accepts, within `timeout`.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr)> {
    let addresses = resolve(host, port).await?;
    let target = format!("{host} port {port}");
    let attempt = async {
        let mut last_error = None;
        for address in addresses {
            match TcpStream::connect(address).await {
                Ok(stream) => return Ok((stream, address)),
                Err(error) => last_error = Some(error),
            }
        }
        Err(ProbeError::Connect {
            target: target.clone(),
            reason: last_error.map(|e| e.to_string()).unwrap_or_default(),
        })
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ProbeError::Timeout {
            what: format!("connect to {target}"),
            seconds: seconds(timeout),
        })?
}

/// The tcp probe.
pub(crate) async fn probe(spec: &TcpProbe, timeout: Duration) -> Result<ProbeOutput> {
    let host = super::substituted("host", &spec.host)?;
    let port = super::port(&spec.port)?;
    let started = Instant::now();
    let (mut stream, address) = connect(host, port, timeout).await?;
    let connect_time = seconds(started.elapsed());
    if let Some(send) = &spec.send {
        stream
            .write_all(send.as_bytes())
            .await
            .map_err(|error| ProbeError::Connect {
                target: format!("{host} port {port}"),
                reason: format!("failed to send: {error}"),
            })?;
    }
    let mut output = ProbeOutput::measured(
        "tcp",
        connect_time,
        format!(
            "{connect_time:.3} second response time on {} port {port}",
            address.ip()
        ),
    )
    .with_perf("time", connect_time, "s");
    if let Some(expect) = &spec.expect {
        let remaining = timeout.saturating_sub(started.elapsed());
        let received = tokio::time::timeout(remaining, read_until(&mut stream, expect)).await;
        let Ok(received) = received else {
            return Err(ProbeError::Timeout {
                what: format!("waiting for {expect:?} from {host} port {port}"),
                seconds: seconds(timeout),
            });
        };
        if !received.contains(expect.as_str()) {
            let shown: String = received.chars().take(80).collect();
            let reason = format!(
                "unexpected response from {host} port {port}: expected {expect:?}, got {shown:?}"
            );
            output.output = reason.clone();
            output = output.with_failure(CheckState::Critical, reason);
        }
    }
    close(stream, spec.close).await;
    Ok(output)
}

/// Ends the connection as the check asks: a graceful close so the server does not log a
/// reset, or a reset that leaves no TIME_WAIT behind.
async fn close(mut stream: TcpStream, how: TcpClose) {
    match how {
        TcpClose::Graceful => {
            let _ = stream.shutdown().await;
        }
        TcpClose::Reset => {
            // Dropping a socket with a zero linger sends RST and frees it at once.
            let _ = stream.set_zero_linger();
        }
    }
}

/// Reads until `expect` appears, the peer closes, `MAX_EXPECT_BYTES` arrived, or the peer
/// has said something and then stays quiet for `EXPECT_QUIET` (a greeting that does not
/// contain `expect` will not start to). The caller's timeout bounds the wait for the first
/// bytes.
async fn read_until(stream: &mut TcpStream, expect: &str) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while received.len() < MAX_EXPECT_BYTES {
        let read = if received.is_empty() {
            stream.read(&mut buffer).await
        } else {
            match tokio::time::timeout(EXPECT_QUIET, stream.read(&mut buffer)).await {
                Ok(read) => read,
                Err(_) => break,
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
        if String::from_utf8_lossy(&received).contains(expect) {
            break;
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}
