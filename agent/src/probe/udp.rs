//! A UDP request and its reply, as `check_udp` sends them: one datagram (text or hex bytes) on
//! a connected socket and the first datagram back, which must contain what the check expects.
//! Value: response time in seconds. An ICMP port unreachable is a refused connection.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use vedette_crds::check::UdpProbe;
use vedette_crds::template::CheckState;

use super::{ProbeError, ProbeOutput, Result, seconds};

/// Largest datagram read.
const RECEIVE_BUFFER: usize = 65_536;

/// Bytes of a reply shown in the output.
const SHOWN_BYTES: usize = 80;

/// The bytes of a `sendHex` or `expectHex` field (`field` names it in the error): pairs of
/// hexadecimal digits, spaces allowed between them.
pub(crate) fn decode_hex(field: &str, text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bad = |why: &str| ProbeError::InvalidSpec(format!("{field} {text:?} {why}"));
    if !digits.len().is_multiple_of(2) {
        return Err(bad("has an odd number of hexadecimal digits"));
    }
    digits
        .chunks(2)
        .map(|pair| match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(high), Some(low)) => Ok(high << 4 | low),
            _ => Err(bad("is not hexadecimal")),
        })
        .collect()
}

fn hex_digit(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

/// The request to send: `send` as text, `sendHex` as bytes, or an empty datagram.
pub(crate) fn request(spec: &UdpProbe) -> Result<Vec<u8>> {
    match (&spec.send, &spec.send_hex) {
        (Some(_), Some(_)) => Err(ProbeError::InvalidSpec(
            "udp takes send or sendHex, not both".into(),
        )),
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(hex)) => decode_hex("sendHex", hex),
        (None, None) => Ok(Vec::new()),
    }
}

/// The bytes the reply must contain, if the check expects any.
pub(crate) fn expected(spec: &UdpProbe) -> Result<Option<Vec<u8>>> {
    match (&spec.expect, &spec.expect_hex) {
        (Some(_), Some(_)) => Err(ProbeError::InvalidSpec(
            "udp takes expect or expectHex, not both".into(),
        )),
        (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
        (None, Some(hex)) => decode_hex("expectHex", hex).map(Some),
        (None, None) => Ok(None),
    }
}

/// Up to `SHOWN_BYTES` of `bytes`, printable ASCII as is and the rest escaped (`\x00`, `\n`).
fn escaped(bytes: &[u8]) -> String {
    let mut shown: String = bytes
        .iter()
        .take(SHOWN_BYTES)
        .flat_map(|byte| std::ascii::escape_default(*byte))
        .map(char::from)
        .collect();
    if bytes.len() > SHOWN_BYTES {
        shown.push_str("...");
    }
    shown
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// The udp probe.
pub(crate) async fn probe(spec: &UdpProbe, timeout: Duration) -> Result<ProbeOutput> {
    let host = super::substituted("host", &spec.host)?;
    let port = super::port(&spec.port)?;
    let request = request(spec)?;
    let expected = expected(spec)?;
    let started = Instant::now();
    let address = super::tcp::resolve(host, port).await?[0];
    let target = format!("{host} port {port}");
    let remaining = timeout.saturating_sub(started.elapsed());
    let reply = tokio::time::timeout(remaining, exchange(address, &request))
        .await
        .map_err(|_| ProbeError::Timeout {
            what: format!("waiting for a reply from {target}"),
            seconds: seconds(timeout),
        })?
        .map_err(|error| ProbeError::Connect {
            target: target.clone(),
            reason: describe(&error),
        })?;
    let elapsed = seconds(started.elapsed());
    let on = format!("{} port {port}", address.ip());
    let mut output = ProbeOutput::measured(
        "udp",
        elapsed,
        format!(
            "{elapsed:.3} second response time on {on} [{}]",
            escaped(&reply)
        ),
    )
    .with_perf("time", elapsed, "s");
    if let Some(expected) = expected
        && !contains(&reply, &expected)
    {
        let reason = format!(
            "unexpected reply from {on}: expected \"{}\", got \"{}\"",
            escaped(&expected),
            escaped(&reply)
        );
        output.output = reason.clone();
        output = output.with_failure(CheckState::Critical, reason);
    }
    Ok(output)
}

/// Sends `request` to `address` on a connected socket and returns the first datagram back.
async fn exchange(address: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if address.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(address).await?;
    socket.send(request).await?;
    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    let length = socket.recv(&mut buffer).await?;
    buffer.truncate(length);
    Ok(buffer)
}

/// A socket error as the output says it: a refused port is "connection refused", as
/// `check_udp` says it.
fn describe(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::ConnectionRefused {
        "connection refused (ICMP port unreachable)".into()
    } else {
        error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_with_spaces_and_refuses_bad_digits() {
        assert_eq!(
            decode_hex("sendHex", "0a1B ff 00").unwrap(),
            [0x0a, 0x1b, 0xff, 0x00]
        );
        assert!(decode_hex("sendHex", "").unwrap().is_empty());
        let odd = decode_hex("sendHex", "abc").unwrap_err();
        assert!(odd.to_string().contains("odd number"), "{odd}");
        let bad = decode_hex("expectHex", "zz").unwrap_err();
        assert!(bad.to_string().contains("expectHex \"zz\""), "{bad}");
        assert_eq!(bad.state(), CheckState::Unknown);
        assert!(decode_hex("sendHex", "+1").is_err());
    }

    #[test]
    fn replies_are_shown_escaped_and_cut() {
        assert_eq!(escaped(b"ok\n\x00\xff"), "ok\\n\\x00\\xff");
        let long = escaped(&[b'a'; 100]);
        assert_eq!(long, format!("{}...", "a".repeat(80)));
    }

    #[test]
    fn contains_finds_bytes_anywhere() {
        assert!(contains(b"\x00\x01\x02", b"\x01\x02"));
        assert!(!contains(b"\x00\x01", b"\x01\x02"));
        assert!(contains(b"", b""));
    }
}
