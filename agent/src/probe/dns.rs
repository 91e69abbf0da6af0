//! A DNS lookup: one query over UDP (TCP when the answer is truncated) to the given server or
//! to the machine's resolvers from `/etc/resolv.conf`, in order. Value: time to the answer.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use vedette_crds::check::{DnsProbe, DnsRecordType};
use vedette_crds::template::CheckState;

use super::{ProbeError, ProbeOutput, Result, read_system_file, seconds};

const RESOLV_CONF: &str = "/etc/resolv.conf";

fn record_type(kind: DnsRecordType) -> RecordType {
    match kind {
        DnsRecordType::A => RecordType::A,
        DnsRecordType::AAAA => RecordType::AAAA,
        DnsRecordType::CNAME => RecordType::CNAME,
        DnsRecordType::MX => RecordType::MX,
        DnsRecordType::TXT => RecordType::TXT,
    }
}

/// `address[:port]`, with `[v6]:port` for IPv6 with a port.
pub(crate) fn parse_server(server: &str) -> Result<SocketAddr> {
    if let Ok(address) = server.parse::<SocketAddr>() {
        return Ok(address);
    }
    let bare = server.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            ProbeError::InvalidSpec(format!("dns server {server:?} is not address[:port]"))
        })
}

/// The `nameserver` lines of resolv.conf.
pub(crate) fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| line.strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|address| address.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn servers(spec: &DnsProbe) -> Result<Vec<SocketAddr>> {
    if let Some(server) = &spec.server {
        return Ok(vec![parse_server(super::substituted("server", server)?)?]);
    }
    let servers = parse_resolv_conf(&read_system_file(RESOLV_CONF)?);
    if servers.is_empty() {
        return Err(ProbeError::InvalidSpec(format!(
            "no nameserver in {RESOLV_CONF}"
        )));
    }
    Ok(servers)
}

/// The dns probe.
pub(crate) async fn probe(spec: &DnsProbe, timeout: Duration) -> Result<ProbeOutput> {
    let name = super::substituted("name", &spec.name)?;
    let query_name = Name::from_utf8(name)
        .map_err(|error| ProbeError::InvalidSpec(format!("bad name {name:?}: {error}")))?;
    let kind = record_type(spec.record_type);
    let mut request = Message::query();
    request.add_query(Query::query(query_name, kind));
    request.metadata.recursion_desired = true;
    let started = Instant::now();
    let mut last_error = None;
    for server in servers(spec)? {
        let remaining = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, exchange(&request, server)).await {
            Ok(Ok(response)) => return Ok(report(spec, name, kind, server, &response, started)),
            Ok(Err(error)) => last_error = Some(error),
            Err(_) => {
                return Err(ProbeError::Timeout {
                    what: format!("dns query for {name} to {server}"),
                    seconds: seconds(timeout),
                });
            }
        }
    }
    Err(last_error.unwrap_or_else(|| ProbeError::Unexpected("no dns server answered".into())))
}

/// Sends `request` to `server` and returns the matching response.
async fn exchange(request: &Message, server: SocketAddr) -> Result<Message> {
    let bytes = request
        .to_vec()
        .map_err(|error| ProbeError::InvalidSpec(error.to_string()))?;
    let failed = |reason: String| ProbeError::Connect {
        target: format!("dns server {server}"),
        reason,
    };
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|error| failed(error.to_string()))?;
    socket
        .connect(server)
        .await
        .map_err(|error| failed(error.to_string()))?;
    socket
        .send(&bytes)
        .await
        .map_err(|error| failed(error.to_string()))?;
    let mut buffer = vec![0u8; 4096];
    loop {
        let length = socket
            .recv(&mut buffer)
            .await
            .map_err(|error| failed(error.to_string()))?;
        let Ok(response) = Message::from_vec(&buffer[..length]) else {
            continue;
        };
        if response.metadata.id != request.metadata.id {
            continue;
        }
        if response.metadata.truncation {
            return exchange_tcp(&bytes, request.metadata.id, server).await;
        }
        return Ok(response);
    }
}

async fn exchange_tcp(bytes: &[u8], id: u16, server: SocketAddr) -> Result<Message> {
    let failed = |reason: String| ProbeError::Connect {
        target: format!("dns server {server} (tcp)"),
        reason,
    };
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|error| failed(error.to_string()))?;
    let length = u16::try_from(bytes.len()).map_err(|_| failed("query too long".into()))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream
        .write_all(&framed)
        .await
        .map_err(|error| failed(error.to_string()))?;
    let length = stream
        .read_u16()
        .await
        .map_err(|error| failed(error.to_string()))?;
    let mut answer = vec![0u8; usize::from(length)];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(|error| failed(error.to_string()))?;
    let response =
        Message::from_vec(&answer).map_err(|error| failed(format!("bad answer: {error}")))?;
    if response.metadata.id != id {
        return Err(failed("answer to another query".into()));
    }
    Ok(response)
}

/// An answer as the `expect` list spells it: an address, a name without the final dot,
/// `preference exchange` for MX, the joined strings for TXT.
fn answer_text(data: &RData) -> Option<String> {
    let name = |name: &Name| name.to_utf8().trim_end_matches('.').to_lowercase();
    Some(match data {
        RData::A(address) => address.0.to_string(),
        RData::AAAA(address) => address.0.to_string(),
        RData::CNAME(target) => name(&target.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name(&mx.exchange)),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|part| String::from_utf8_lossy(part))
            .collect(),
        _ => return None,
    })
}

/// Whether `expected` is among `answers` (names compared without case or final dot; an MX may
/// be given as just its exchange).
fn has_answer(answers: &[String], expected: &str) -> bool {
    let expected = expected.trim_end_matches('.').to_lowercase();
    answers.iter().any(|answer| {
        answer.to_lowercase() == expected
            || answer
                .split_once(' ')
                .is_some_and(|(_, exchange)| exchange == expected)
    })
}

fn report(
    spec: &DnsProbe,
    name: &str,
    kind: RecordType,
    server: SocketAddr,
    response: &Message,
    started: Instant,
) -> ProbeOutput {
    let elapsed = seconds(started.elapsed());
    let answers: Vec<String> = response
        .answers
        .iter()
        .filter(|record| record.record_type() == kind)
        .filter_map(|record| answer_text(&record.data))
        .collect();
    let shown = if answers.is_empty() {
        "no answer".to_owned()
    } else {
        answers.join(", ")
    };
    let mut output = ProbeOutput::measured(
        "dns",
        elapsed,
        format!("{elapsed:.3} seconds response time, {name} {kind} from {server}: {shown}"),
    )
    .with_perf("time", elapsed, "s");
    let code = response.metadata.response_code;
    let problem = if code != ResponseCode::NoError {
        Some(format!("server {server} answered {code} for {name} {kind}"))
    } else if answers.is_empty() {
        Some(format!("no {kind} record for {name} from {server}"))
    } else {
        let missing: Vec<&str> = spec
            .expect
            .iter()
            .filter(|e| !has_answer(&answers, e))
            .map(String::as_str)
            .collect();
        (!missing.is_empty()).then(|| {
            format!(
                "{name} {kind} is missing {} (got {shown})",
                missing.join(", ")
            )
        })
    };
    if let Some(reason) = problem {
        output.output = format!("{reason} in {elapsed:.3} seconds");
        output = output.with_failure(CheckState::Critical, reason);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_with_and_without_port() {
        assert_eq!(
            parse_server("127.0.0.1").unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_server("[::1]:5353").unwrap(),
            "[::1]:5353".parse().unwrap()
        );
        assert_eq!(parse_server("::1").unwrap(), "[::1]:53".parse().unwrap());
        assert!(parse_server("dns.example").is_err());
    }

    #[test]
    fn resolv_conf_nameservers_in_order() {
        let text = "# comment\nsearch example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\noptions ndots:5\n";
        let servers = parse_resolv_conf(text);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0], "10.0.0.2:53".parse().unwrap());
    }

    #[test]
    fn expected_answers_ignore_case_and_final_dot() {
        let answers = vec![
            "10 mail.example.com".to_owned(),
            "www.example.com".to_owned(),
        ];
        assert!(has_answer(&answers, "Mail.Example.com."));
        assert!(has_answer(&answers, "10 mail.example.com"));
        assert!(has_answer(&answers, "www.example.com."));
        assert!(!has_answer(&answers, "other.example.com"));
    }
}
