//! ICMP echo requests, as `check_ping` reports them: packet loss and round-trip times.
//!
//! An unprivileged ICMP socket (`SOCK_DGRAM`) where `net.ipv4.ping_group_range` admits the
//! process's group, a raw socket (`SOCK_RAW`, CAP_NET_RAW) otherwise; IPv4 and IPv6. Every run
//! has its own socket, identifier and payload, so concurrent runs never take each other's
//! replies: a raw socket sees every echo reply of the machine and keeps only those from the
//! target (the socket is connected) with this run's identifier, a sequence number it sent and
//! its payload; an unprivileged socket gets only replies to its own identifier (the kernel
//! rewrites it) and keeps those with a sequence number it sent and its payload.
//!
//! The socket, opened with `socket2`, is driven through tokio's `UdpSocket`, whose `send` and
//! `recv` are the plain datagram calls an ICMP socket takes (tokio's `AsyncFd::new` is
//! deprecated as unsound and its replacement is `unsafe`, which this crate forbids).

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use vedette_crds::check::{IcmpMetric, IcmpProbe};
use vedette_crds::template::CheckState;

use super::{ProbeError, ProbeOutput, Result};

/// The name in the output line, as `check_ping` prints it: `PING OK - …`.
const PROBE: &str = "ping";

/// The least time the timeout must leave after the last request for its reply.
pub(crate) const MIN_REPLY_WAIT: Duration = Duration::from_millis(100);

const PING_GROUP_RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// Largest datagram read: an IPv4 header with options and the largest ICMP message.
const RECEIVE_BUFFER: usize = 60 + 65_536;

/// Identifiers of raw-socket runs of this process, one per run, wrapping after 65,536.
static NEXT_IDENTIFIER: LazyLock<AtomicU16> = LazyLock::new(|| AtomicU16::new(fastrand::u16(..)));

/// How the socket was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SocketKind {
    /// `SOCK_DGRAM`: the kernel sets the identifier and checksum and strips the IP header.
    Datagram,
    /// `SOCK_RAW`: every echo reply of the machine arrives, IPv4 ones with their IP header.
    Raw,
}

/// The echo requests of one run: what to send and how to recognise the replies.
struct Echoes {
    target: IpAddr,
    kind: SocketKind,
    identifier: u16,
    payload: Vec<u8>,
    packets: u16,
    interval: Duration,
}

/// What came back.
struct Tally {
    sent: usize,
    round_trips: Vec<Duration>,
    last_error: Option<std::io::Error>,
}

/// The icmp probe. Every failure is reported as a `PING …` line like its measurements.
pub(crate) async fn probe(spec: &IcmpProbe, timeout: Duration) -> Result<ProbeOutput> {
    Ok(ping(spec, timeout)
        .await
        .unwrap_or_else(|error| ProbeOutput::failed(PROBE, &error)))
}

async fn ping(spec: &IcmpProbe, timeout: Duration) -> Result<ProbeOutput> {
    let host = super::substituted("host", &spec.host)?;
    check_schedule(spec, timeout)?;
    let started = Instant::now();
    let target = super::tcp::resolve(host, 0).await?[0].ip();
    let (socket, kind) = open(target)?;
    let echoes = Echoes {
        target,
        kind,
        identifier: NEXT_IDENTIFIER.fetch_add(1, Ordering::Relaxed),
        payload: payload(fastrand::u64(..), spec.payload_bytes as usize),
        packets: u16::try_from(spec.packets).unwrap_or(u16::MAX),
        interval: Duration::from_millis(spec.interval_milliseconds.into()),
    };
    let deadline = started + timeout;
    let tally = exchange(&socket, &echoes, deadline).await?;
    Ok(report(spec.metric, target, &tally))
}

/// Whether `packets` requests `interval_milliseconds` apart leave time for the last reply
/// within `timeout`.
pub(crate) fn check_schedule(spec: &IcmpProbe, timeout: Duration) -> Result<()> {
    let sending = Duration::from_millis(
        u64::from(spec.packets.saturating_sub(1)) * u64::from(spec.interval_milliseconds),
    );
    if sending + MIN_REPLY_WAIT > timeout {
        return Err(ProbeError::InvalidSpec(format!(
            "{} echo requests {} ms apart take {} ms to send, which leaves less than {} ms of \
             the {} s timeout for the last reply",
            spec.packets,
            spec.interval_milliseconds,
            sending.as_millis(),
            MIN_REPLY_WAIT.as_millis(),
            timeout.as_secs_f64()
        )));
    }
    Ok(())
}

/// An unprivileged ICMP socket connected to `target`, or a raw one when the kernel refuses
/// it; UNKNOWN naming what is missing when neither may be opened.
fn open(target: IpAddr) -> Result<(UdpSocket, SocketKind)> {
    let (domain, protocol) = match target {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(socket) => (socket, SocketKind::Datagram),
        Err(datagram_error) => match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(socket) => (socket, SocketKind::Raw),
            Err(raw_error) => return Err(no_socket(&datagram_error, &raw_error)),
        },
    };
    let failed = |error: std::io::Error| ProbeError::Connect {
        target: target.to_string(),
        reason: error.to_string(),
    };
    socket.set_nonblocking(true).map_err(failed)?;
    socket
        .connect(&SocketAddr::new(target, 0).into())
        .map_err(failed)?;
    let socket = UdpSocket::from_std(socket.into()).map_err(failed)?;
    Ok((socket, kind))
}

/// Why no ICMP socket could be opened, naming the setting or capability that would allow one.
fn no_socket(datagram_error: &std::io::Error, raw_error: &std::io::Error) -> ProbeError {
    let denied = |error: &std::io::Error| error.kind() == std::io::ErrorKind::PermissionDenied;
    if !denied(datagram_error) || !denied(raw_error) {
        return ProbeError::Privilege(format!(
            "cannot open an ICMP socket: unprivileged: {datagram_error}; raw: {raw_error}"
        ));
    }
    let range = std::fs::read_to_string(PING_GROUP_RANGE)
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|error| format!("unreadable: {error}"));
    ProbeError::Privilege(format!(
        "cannot open an ICMP socket: net.ipv4.ping_group_range ({range}) does not include \
         group {} for an unprivileged one, and a raw one needs CAP_NET_RAW",
        rustix::process::getegid().as_raw()
    ))
}

/// `length` payload bytes: the run's token repeated, so a reply carries the run it answers.
fn payload(token: u64, length: usize) -> Vec<u8> {
    token
        .to_be_bytes()
        .into_iter()
        .cycle()
        .take(length)
        .collect()
}

/// An echo request (ICMP type 8, or ICMPv6 type 128). The IPv4 checksum is computed here;
/// the kernel fills in ICMPv6's, and an unprivileged socket's identifier and checksum.
fn echo_request(ipv6: bool, identifier: u16, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(8 + payload.len());
    packet.push(if ipv6 { 128 } else { 8 });
    packet.push(0);
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(payload);
    if !ipv6 {
        let checksum = internet_checksum(&packet);
        packet[2..4].copy_from_slice(&checksum.to_be_bytes());
    }
    packet
}

/// The ones' complement sum of RFC 1071.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo reply as received.
#[derive(Debug, PartialEq, Eq)]
struct EchoReply<'a> {
    identifier: u16,
    sequence: u16,
    payload: &'a [u8],
}

/// The echo reply in `packet` from `target`, if it is one: raw IPv4 sockets deliver the IP
/// header (whose source must be the target), the others the ICMP message alone.
fn parse_reply(packet: &[u8], target: IpAddr, kind: SocketKind) -> Option<EchoReply<'_>> {
    let message = match (target, kind) {
        (IpAddr::V4(target), SocketKind::Raw) => {
            let header_length = usize::from(packet.first()? & 0x0f) * 4;
            let source: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let is_icmp = packet.first()? >> 4 == 4 && *packet.get(9)? == 1;
            if !is_icmp || source != target.octets() {
                return None;
            }
            packet.get(header_length..)?
        }
        _ => packet,
    };
    let reply_type = if target.is_ipv6() { 129 } else { 0 };
    if message.len() < 8 || message[0] != reply_type || message[1] != 0 {
        return None;
    }
    Some(EchoReply {
        identifier: u16::from_be_bytes([message[4], message[5]]),
        sequence: u16::from_be_bytes([message[6], message[7]]),
        payload: &message[8..],
    })
}

impl Echoes {
    /// The index of the request `reply` answers, if it answers one of this run's `sent`.
    fn answered(&self, reply: &EchoReply<'_>, sent: usize) -> Option<usize> {
        let own_identifier =
            self.kind == SocketKind::Datagram || reply.identifier == self.identifier;
        let sequence = usize::from(reply.sequence);
        (own_identifier && sequence < sent && reply.payload == self.payload).then_some(sequence)
    }
}

/// Sends the requests on their schedule and collects replies until every request has its
/// reply or `deadline` passes.
async fn exchange(socket: &UdpSocket, echoes: &Echoes, deadline: Instant) -> Result<Tally> {
    let started = Instant::now();
    let packets = usize::from(echoes.packets);
    let mut sent_at: Vec<Instant> = Vec::with_capacity(packets);
    let mut replies: Vec<Option<Duration>> = vec![None; packets];
    let mut received = 0;
    let mut last_error = None;
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    let deadline = tokio::time::Instant::from_std(deadline);
    while sent_at.len() < packets || received < packets {
        let next_send = started + echoes.interval * sent_at.len() as u32;
        // A request that is due goes out at once: a timer that is already due still waits
        // for the timer wheel's next millisecond tick.
        if sent_at.len() < packets && Instant::now() >= next_send {
            let sequence = sent_at.len() as u16;
            let request = echo_request(
                echoes.target.is_ipv6(),
                echoes.identifier,
                sequence,
                &echoes.payload,
            );
            socket
                .send(&request)
                .await
                .map_err(|error| ProbeError::Connect {
                    target: echoes.target.to_string(),
                    reason: format!("failed to send an echo request: {error}"),
                })?;
            sent_at.push(Instant::now());
            continue;
        }
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(deadline) => break,
            () = tokio::time::sleep_until(next_send.into()), if sent_at.len() < packets => {}
            read = socket.recv(&mut buffer) => match read {
                Ok(length) => {
                    let arrived = Instant::now();
                    let answered = parse_reply(&buffer[..length], echoes.target, echoes.kind)
                        .and_then(|reply| echoes.answered(&reply, sent_at.len()));
                    if let Some(index) = answered
                        && replies[index].is_none()
                    {
                        replies[index] = Some(arrived - sent_at[index]);
                        received += 1;
                    }
                }
                // An ICMP error (host unreachable) reported on the socket; the request counts
                // as lost.
                Err(error) => last_error = Some(error),
            },
        }
    }
    Ok(Tally {
        sent: sent_at.len(),
        round_trips: replies.into_iter().flatten().collect(),
        last_error,
    })
}

/// Milliseconds with three decimals.
fn milliseconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// The `check_ping`-style result: `Packet loss = 0%, RTA = 0.05 ms` with `rta`, `pl`, `rtmin`
/// and `rtmax`; CRITICAL when no request got a reply.
fn report(metric: IcmpMetric, target: IpAddr, tally: &Tally) -> ProbeOutput {
    let sent = tally.sent.max(1);
    let received = tally.round_trips.len();
    let loss = (sent - received) as f64 * 100.0 / sent as f64;
    if received == 0 {
        let why = tally
            .last_error
            .as_ref()
            .map(|error| format!(" ({error})"))
            .unwrap_or_default();
        let reason = format!("100% packet loss{why}");
        let value = match metric {
            IcmpMetric::RoundTripMilliseconds => f64::NAN,
            IcmpMetric::LossPercent => loss,
        };
        return ProbeOutput::measured(
            PROBE,
            value,
            format!(
                "{reason}: no reply to {} echo requests to {target}",
                tally.sent
            ),
        )
        .with_perf("pl", loss, "%")
        .with_failure(CheckState::Critical, reason);
    }
    let total: Duration = tally.round_trips.iter().sum();
    let average = milliseconds(total / received as u32);
    let min = tally.round_trips.iter().min().copied().unwrap_or_default();
    let max = tally.round_trips.iter().max().copied().unwrap_or_default();
    let value = match metric {
        IcmpMetric::RoundTripMilliseconds => average,
        IcmpMetric::LossPercent => loss,
    };
    ProbeOutput::measured(
        PROBE,
        value,
        format!("Packet loss = {loss:.0}%, RTA = {average:.2} ms"),
    )
    .with_perf("rta", average, "ms")
    .with_perf("pl", loss, "%")
    .with_perf("rtmin", milliseconds(min), "ms")
    .with_perf("rtmax", milliseconds(max), "ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(packets: u32, interval_milliseconds: u32) -> IcmpProbe {
        IcmpProbe {
            host: "127.0.0.1".into(),
            packets,
            interval_milliseconds,
            payload_bytes: 56,
            metric: IcmpMetric::RoundTripMilliseconds,
        }
    }

    #[test]
    fn checksum_of_an_echo_request_verifies() {
        let packet = echo_request(false, 0x1234, 7, b"abc");
        assert_eq!(&packet[..2], &[8, 0]);
        assert_eq!(internet_checksum(&packet), 0, "{packet:?}");
        let ipv6 = echo_request(true, 1, 2, b"");
        assert_eq!(ipv6, vec![128, 0, 0, 0, 0, 1, 0, 2]);
    }

    #[test]
    fn payload_repeats_the_token() {
        assert_eq!(
            payload(0x0102_0304_0506_0708, 10),
            [1, 2, 3, 4, 5, 6, 7, 8, 1, 2]
        );
        assert!(payload(1, 0).is_empty());
    }

    #[test]
    fn raw_ipv4_replies_must_come_from_the_target() {
        let mut packet = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        packet.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 3, b'x']);
        let target: IpAddr = "127.0.0.1".parse().unwrap();
        let reply = parse_reply(&packet, target, SocketKind::Raw).unwrap();
        assert_eq!(
            reply,
            EchoReply {
                identifier: 0x1234,
                sequence: 3,
                payload: b"x"
            }
        );
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(parse_reply(&packet, other, SocketKind::Raw), None);
        // The echo request itself (type 8) is seen by raw sockets on loopback too.
        packet[20] = 8;
        assert_eq!(parse_reply(&packet, target, SocketKind::Raw), None);
    }

    #[test]
    fn replies_of_other_runs_are_not_taken() {
        let echoes = Echoes {
            target: "::1".parse().unwrap(),
            kind: SocketKind::Raw,
            identifier: 9,
            payload: payload(42, 16),
            packets: 3,
            interval: Duration::from_millis(10),
        };
        let own = EchoReply {
            identifier: 9,
            sequence: 1,
            payload: &echoes.payload,
        };
        assert_eq!(echoes.answered(&own, 2), Some(1));
        assert_eq!(echoes.answered(&own, 1), None, "not sent yet");
        let other_identifier = EchoReply {
            identifier: 10,
            ..own
        };
        assert_eq!(echoes.answered(&other_identifier, 2), None);
        let other_payload = payload(43, 16);
        let other_run = EchoReply {
            payload: &other_payload,
            ..own
        };
        assert_eq!(echoes.answered(&other_run, 2), None);
        let datagram = Echoes {
            kind: SocketKind::Datagram,
            payload: echoes.payload.clone(),
            ..echoes
        };
        assert_eq!(datagram.answered(&other_identifier, 2), Some(1));
    }

    #[test]
    fn schedules_that_cannot_fit_the_timeout_are_refused() {
        assert!(check_schedule(&spec(5, 200), Duration::from_secs(1)).is_ok());
        let error = check_schedule(&spec(51, 200), Duration::from_secs(10)).unwrap_err();
        assert_eq!(error.state(), CheckState::Unknown);
        assert!(error.to_string().contains("10000 ms"), "{error}");
        assert!(check_schedule(&spec(50, 200), Duration::from_secs(10)).is_ok());
        assert!(check_schedule(&spec(1, 10_000), Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn report_is_check_ping_style() {
        let tally = Tally {
            sent: 4,
            round_trips: vec![Duration::from_micros(40), Duration::from_micros(60)],
            last_error: None,
        };
        let target = "127.0.0.1".parse().unwrap();
        let output = report(IcmpMetric::RoundTripMilliseconds, target, &tally);
        assert_eq!(
            output.line(CheckState::Ok),
            "PING OK - Packet loss = 50%, RTA = 0.05 ms|rta=0.05ms pl=50% rtmin=0.04ms rtmax=0.06ms"
        );
        assert_eq!(output.value, 0.05);
        let loss = report(IcmpMetric::LossPercent, target, &tally);
        assert_eq!(loss.value, 50.0);
        let none = Tally {
            sent: 2,
            round_trips: Vec::new(),
            last_error: None,
        };
        let output = report(IcmpMetric::RoundTripMilliseconds, target, &none);
        assert_eq!(
            output.failure,
            Some((CheckState::Critical, "100% packet loss".into()))
        );
        assert!(output.value.is_nan());
    }
}
