//! The udp probe against real sockets on loopback: an echo server, a DNS-style binary
//! responder, a closed port, a silent server and replies that do not match.

mod probe_asserts;
use probe_asserts::assert_critical;

use std::time::Duration;

use tokio::net::UdpSocket;
use vedette_agent::probe::{self, ProbeOutput, Prober};
use vedette_crds::CheckSpec;
use vedette_crds::check::{PortOrParameter, UdpProbe};
use vedette_crds::template::CheckState;

const TIMEOUT: Duration = Duration::from_secs(5);

fn udp(host: &str, port: u16) -> UdpProbe {
    UdpProbe {
        host: host.into(),
        port: PortOrParameter::Int(port.into()),
        send: None,
        send_hex: None,
        expect: None,
        expect_hex: None,
    }
}

async fn run(spec: UdpProbe, timeout: Duration) -> ProbeOutput {
    Prober::new()
        .run(
            &CheckSpec {
                udp: Some(spec),
                ..Default::default()
            },
            timeout,
        )
        .await
}

fn assert_ok(output: &ProbeOutput) {
    assert!(output.failure.is_none(), "expected no failure: {output:?}");
    assert!(output.value >= 0.0 && output.value < 1.0, "{output:?}");
    assert_eq!(output.perfdata[0].label, "time", "{output:?}");
    assert_eq!(output.perfdata[0].value, output.value, "{output:?}");
}

/// A server on `address` answering every datagram with what `answer` makes of it.
async fn serve(address: &str, answer: fn(&[u8]) -> Vec<u8>) -> u16 {
    let socket = UdpSocket::bind(address).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buffer = [0u8; 2048];
        loop {
            let (length, peer) = socket.recv_from(&mut buffer).await.unwrap();
            socket
                .send_to(&answer(&buffer[..length]), peer)
                .await
                .unwrap();
        }
    });
    port
}

#[tokio::test]
async fn an_echo_server_answers_and_the_reply_is_shown() {
    let port = serve("127.0.0.1:0", <[u8]>::to_vec).await;
    let output = run(
        UdpProbe {
            send: Some("ping\n".into()),
            expect: Some("ping".into()),
            ..udp("127.0.0.1", port)
        },
        TIMEOUT,
    )
    .await;
    assert_ok(&output);
    let line = output.line(CheckState::Ok);
    assert!(
        line.starts_with("UDP OK - ")
            && line.contains(&format!(
                " second response time on 127.0.0.1 port {port} [ping\\n]|time="
            )),
        "{line}"
    );
}

#[tokio::test]
async fn an_echo_server_on_ipv6_loopback_answers() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        println!("SKIPPED: this machine has no IPv6 loopback (::1)");
        return;
    }
    let port = serve("[::1]:0", <[u8]>::to_vec).await;
    let output = run(
        UdpProbe {
            send: Some("hello".into()),
            expect: Some("hello".into()),
            ..udp("::1", port)
        },
        TIMEOUT,
    )
    .await;
    assert_ok(&output);
    assert!(output.output.contains("on ::1 port"), "{output:?}");
}

/// A DNS query for `example.com A` with id 0x1234, as hex with spaces.
const DNS_QUERY: &str = "1234 0100 0001 0000 0000 0000 07 6578616d706c65 03 636f6d 00 0001 0001";

/// Answers a query with the DNS header of a response (QR, RD, RA set) and no records, or
/// with `FORMERR` when the bytes are not the query above.
fn dns_responder(query: &[u8]) -> Vec<u8> {
    let expected: Vec<u8> = [
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l',
        b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1,
    ]
    .to_vec();
    if query == expected {
        let mut response = query.to_vec();
        response[2..4].copy_from_slice(&[0x81, 0x80]);
        response
    } else {
        vec![query.first().copied().unwrap_or(0), 0, 0x80, 0x01]
    }
}

#[tokio::test]
async fn a_binary_query_gets_its_binary_answer() {
    let port = serve("127.0.0.1:0", dns_responder).await;
    let output = run(
        UdpProbe {
            send_hex: Some(DNS_QUERY.into()),
            expect_hex: Some("1234 8180".into()),
            ..udp("127.0.0.1", port)
        },
        TIMEOUT,
    )
    .await;
    assert_ok(&output);
    assert!(
        output.output.contains("[\\x124\\x81\\x80\\x00\\x01"),
        "the reply is shown escaped: {output:?}"
    );

    let wrong_query = run(
        UdpProbe {
            send_hex: Some("1234 0000".into()),
            expect_hex: Some("1234 8180".into()),
            ..udp("127.0.0.1", port)
        },
        TIMEOUT,
    )
    .await;
    assert_critical(
        &wrong_query,
        "expected \"\\x124\\x81\\x80\", got \"\\x12\\x00\\x80\\x01\"",
    );
}

#[tokio::test]
async fn a_reply_without_the_expected_text_is_critical_and_shown_cut() {
    let port = serve("127.0.0.1:0", |_| {
        [b"pong\x00".as_slice(), &[b'x'; 200]].concat()
    })
    .await;
    let output = run(
        UdpProbe {
            send: Some("ping".into()),
            expect: Some("ping".into()),
            ..udp("127.0.0.1", port)
        },
        TIMEOUT,
    )
    .await;
    let shown = format!("got \"pong\\x00{}...\"", "x".repeat(75));
    assert_critical(&output, &shown);
    assert!(output.value.is_finite(), "the response time is kept");
    assert!(output.output.contains("unexpected reply"), "{output:?}");
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let port = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let output = run(
        UdpProbe {
            send: Some("anyone?".into()),
            ..udp("127.0.0.1", port)
        },
        TIMEOUT,
    )
    .await;
    assert_critical(&output, "connection refused");
    assert!(!output.timed_out, "{output:?}");
    assert!(output.value.is_nan());
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let output = run(
        UdpProbe {
            send: Some("hello?".into()),
            ..udp("127.0.0.1", port)
        },
        Duration::from_millis(300),
    )
    .await;
    assert_critical(&output, "timed out");
    assert!(output.timed_out, "{output:?}");
    let mut buffer = [0u8; 16];
    let (length, _) = silent.recv_from(&mut buffer).await.unwrap();
    assert_eq!(&buffer[..length], b"hello?", "the request did arrive");
}

#[test]
fn bad_hex_and_unsubstituted_fields_are_refused_at_plan_time() {
    let check = |spec: UdpProbe| {
        probe::validate(&CheckSpec {
            udp: Some(spec),
            ..Default::default()
        })
    };
    assert!(check(udp("127.0.0.1", 53)).is_ok());
    for (spec, problem) in [
        (
            UdpProbe {
                send_hex: Some("12 3".into()),
                ..udp("127.0.0.1", 53)
            },
            "odd number",
        ),
        (
            UdpProbe {
                expect_hex: Some("0x12".into()),
                ..udp("127.0.0.1", 53)
            },
            "not hexadecimal",
        ),
        (
            UdpProbe {
                send: Some("a".into()),
                send_hex: Some("61".into()),
                ..udp("127.0.0.1", 53)
            },
            "not both",
        ),
        (udp("$host$", 53), "$host$"),
        (udp("127.0.0.1", 0), "not in 1-65535"),
    ] {
        let error = check(spec).unwrap_err();
        assert_eq!(error.state(), CheckState::Unknown);
        assert!(error.to_string().contains(problem), "{problem}: {error}");
    }
}
