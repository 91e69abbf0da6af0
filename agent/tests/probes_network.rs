//! Network probes against real servers on loopback: tcp, http, https, tls and dns.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use vedette_agent::probe::{ProbeOutput, Prober};
use vedette_crds::CheckSpec;
use vedette_crds::check::{
    DnsProbe, DnsRecordType, HttpProbe, PortOrParameter, TcpClose, TcpProbe, TlsProbe,
};
use vedette_crds::template::CheckState;

const TIMEOUT: Duration = Duration::from_secs(5);

fn tcp(port: u16) -> TcpProbe {
    TcpProbe {
        host: "127.0.0.1".into(),
        port: PortOrParameter::Int(port.into()),
        send: None,
        expect: None,
        close: Default::default(),
    }
}

fn http(url: String) -> HttpProbe {
    HttpProbe {
        url,
        method: "GET".into(),
        expect_status: Vec::new(),
        body_match: None,
        verify_certificate: true,
        headers: Default::default(),
        reuse_connection: false,
        auth: None,
    }
}

fn assert_ok(output: &ProbeOutput) {
    assert!(output.failure.is_none(), "expected no failure: {output:?}");
    assert!(output.value.is_finite(), "{output:?}");
}

fn assert_critical(output: &ProbeOutput, reason: &str) {
    let (state, message) = output
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure: {output:?}"));
    assert_eq!(*state, CheckState::Critical, "{output:?}");
    assert!(
        message.contains(reason),
        "expected {reason:?} in {message:?}"
    );
}

/// How the server saw the probe's connection end: `Ok(0)` for a close, an error for a reset.
async fn server_sees_close(close: TcpClose) -> std::io::Result<usize> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = [0; 64];
        stream.read(&mut buffer).await
    });
    let output = Prober::new()
        .run(
            &CheckSpec {
                tcp: Some(TcpProbe { close, ..tcp(port) }),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_ok(&output);
    server.await.unwrap()
}

#[tokio::test]
async fn tcp_closes_gracefully_by_default_and_resets_when_asked() {
    assert_eq!(server_sees_close(TcpClose::Graceful).await.unwrap(), 0);
    let reset = server_sees_close(TcpClose::Reset).await.unwrap_err();
    assert_eq!(reset.kind(), std::io::ErrorKind::ConnectionReset, "{reset}");
}

/// A port nothing listens on: bound, then closed.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn tcp_connects_to_a_listener_and_fails_on_a_closed_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let _ = stream.write_all(b"220 vedette ready\r\n").await;
                let mut buffer = [0; 64];
                let _ = stream.read(&mut buffer).await;
            });
        }
    });
    let prober = Prober::new();
    let output = prober
        .run(
            &CheckSpec {
                tcp: Some(tcp(port)),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_ok(&output);
    assert!(output.value >= 0.0 && output.value < 1.0, "{output:?}");
    let line = output.line(CheckState::Ok);
    assert!(
        line.starts_with("TCP OK - ") && line.contains(&format!("on 127.0.0.1 port {port}")),
        "{line}"
    );

    let greeting = TcpProbe {
        expect: Some("ready".into()),
        send: Some("HELO\r\n".into()),
        ..tcp(port)
    };
    let output = prober
        .run(
            &CheckSpec {
                tcp: Some(greeting),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_ok(&output);

    let wrong = TcpProbe {
        expect: Some("SSH-2.0".into()),
        ..tcp(port)
    };
    let output = prober
        .run(
            &CheckSpec {
                tcp: Some(wrong),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_critical(&output, "expected \"SSH-2.0\"");

    let closed = closed_port().await;
    let output = prober
        .run(
            &CheckSpec {
                tcp: Some(tcp(closed)),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_critical(&output, "refused");
    assert!(output.value.is_nan());
}

#[tokio::test]
async fn tcp_expect_that_never_comes_times_out_as_critical() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap().0);
        }
    });
    let silent = TcpProbe {
        expect: Some("hello".into()),
        ..tcp(port)
    };
    let output = Prober::new()
        .run(
            &CheckSpec {
                tcp: Some(silent),
                ..Default::default()
            },
            Duration::from_millis(300),
        )
        .await;
    assert_critical(&output, "timed out");
    assert!(output.timed_out);
}

#[tokio::test]
async fn unsubstituted_parameters_and_exec_are_unknown() {
    let prober = Prober::new();
    let probe = TcpProbe {
        port: PortOrParameter::Parameter("$port$".into()),
        ..tcp(1)
    };
    let output = prober
        .run(
            &CheckSpec {
                tcp: Some(probe),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_eq!(output.failure.unwrap().0, CheckState::Unknown);
    let two = CheckSpec {
        tcp: Some(tcp(1)),
        swap: Some(vedette_crds::check::SwapProbe {}),
        ..Default::default()
    };
    let output = prober.run(&two, TIMEOUT).await;
    assert_eq!(output.failure.unwrap().0, CheckState::Unknown);
    let exec = vedette_crds::check::ExecProbe {
        command: "check_dummy".into(),
        args: vec![],
    };
    let output = prober
        .run(
            &CheckSpec {
                exec: Some(exec),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_eq!(output.failure.unwrap().0, CheckState::Unknown);
}

async fn handle(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match request.uri().path() {
        "/" => Response::new(Full::new(Bytes::from_static(
            b"hello from vedette test server",
        ))),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(250)).await;
            Response::new(Full::new(Bytes::from_static(b"slow")))
        }
        "/agent" => {
            let agent = request
                .headers()
                .get("x-probe")
                .map(|v| v.to_str().unwrap().to_owned());
            Response::new(Full::new(Bytes::from(agent.unwrap_or_default())))
        }
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not here")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

/// A keep-alive HTTP/1.1 server, with TLS when `tls` is given; returns its port.
async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let tls = tls.clone();
            tokio::spawn(async move {
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service_fn(handle))
                            .await;
                    }
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service_fn(handle))
                            .await;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn http_checks_status_body_and_latency() {
    let port = serve(None).await;
    let base = format!("http://127.0.0.1:{port}");
    let prober = Prober::new();
    let run = |probe: HttpProbe| {
        let prober = &prober;
        async move {
            prober
                .run(
                    &CheckSpec {
                        http: Some(probe),
                        ..Default::default()
                    },
                    TIMEOUT,
                )
                .await
        }
    };

    let output = run(http(format!("{base}/"))).await;
    assert_ok(&output);
    assert!(output.output.contains("200 OK"), "{}", output.output);

    let output = run(HttpProbe {
        body_match: Some("from vedette".into()),
        ..http(format!("{base}/"))
    })
    .await;
    assert_ok(&output);
    let output = run(HttpProbe {
        body_match: Some("^nope$".into()),
        ..http(format!("{base}/"))
    })
    .await;
    assert_critical(&output, "not found in the body");

    let output = run(http(format!("{base}/missing"))).await;
    assert_critical(&output, "status 404, expected 200-399");
    let output = run(HttpProbe {
        expect_status: vec![404],
        ..http(format!("{base}/missing"))
    })
    .await;
    assert_ok(&output);
    let output = run(HttpProbe {
        expect_status: vec![201, 204],
        ..http(format!("{base}/"))
    })
    .await;
    assert_critical(&output, "status 200, expected 201 or 204");

    let output = run(http(format!("{base}/slow"))).await;
    assert_ok(&output);
    assert!(
        output.value >= 0.25 && output.value < 2.0,
        "latency {}",
        output.value
    );

    let mut headers = std::collections::BTreeMap::new();
    headers.insert("X-Probe".to_owned(), "vedette".to_owned());
    let probe = HttpProbe {
        headers,
        body_match: Some("^vedette$".into()),
        ..http(format!("{base}/agent"))
    };
    assert_ok(&run(probe).await);

    let output = run(http(format!("http://127.0.0.1:{}/", closed_port().await))).await;
    assert_critical(&output, "failed to connect");

    let output = Prober::new()
        .run(
            &CheckSpec {
                http: Some(http(format!("{base}/slow"))),
                ..Default::default()
            },
            Duration::from_millis(100),
        )
        .await;
    assert_critical(&output, "timed out");
}

/// A self-signed certificate for `localhost` expiring in `days` days, and a TLS acceptor.
fn certificate(days: i64) -> (CertificateDer<'static>, tokio_rustls::TlsAcceptor) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let certificate = params.self_signed(&key).unwrap();
    let der = certificate.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der.clone()], private)
    .unwrap();
    (der, tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn tls(port: u16) -> TlsProbe {
    TlsProbe {
        host: "127.0.0.1".into(),
        port: PortOrParameter::Int(port.into()),
        server_name: Some("localhost".into()),
        start_tls: None,
    }
}

#[tokio::test]
async fn tls_reports_days_left_and_untrusted_chains() {
    let (der, acceptor) = certificate(30);
    let port = serve(Some(acceptor)).await;

    let output = Prober::new()
        .run(
            &CheckSpec {
                tls: Some(tls(port)),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert!(
        (output.value - 30.0).abs() < 0.01,
        "days left {}",
        output.value
    );
    assert_critical(&output, "not trusted");
    assert!(
        output.output.contains("expires in 30.0 days"),
        "{}",
        output.output
    );

    let trusting = Prober::with_extra_roots(&[der]);
    let output = trusting
        .run(
            &CheckSpec {
                tls: Some(tls(port)),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_ok(&output);
    assert!(
        (output.value - 30.0).abs() < 0.01,
        "days left {}",
        output.value
    );

    let wrong_name = TlsProbe {
        server_name: Some("other.example".into()),
        ..tls(port)
    };
    let output = trusting
        .run(
            &CheckSpec {
                tls: Some(wrong_name),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_critical(&output, "not trusted for other.example");
}

#[tokio::test]
async fn https_verification_fails_with_a_reason_unless_disabled() {
    let (der, acceptor) = certificate(10);
    let port = serve(Some(acceptor)).await;
    let url = format!("https://localhost:{port}/");
    let prober = Prober::new();

    let output = prober
        .run(
            &CheckSpec {
                http: Some(http(url.clone())),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_critical(&output, "invalid peer certificate");

    let unverified = HttpProbe {
        verify_certificate: false,
        ..http(url.clone())
    };
    let output = prober
        .run(
            &CheckSpec {
                http: Some(unverified),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_ok(&output);

    let output = Prober::with_extra_roots(&[der])
        .run(
            &CheckSpec {
                http: Some(http(url)),
                ..Default::default()
            },
            TIMEOUT,
        )
        .await;
    assert_ok(&output);
}

/// A DNS server on loopback knowing one A record; answers NXDOMAIN for anything else.
async fn dns_server() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 512];
        loop {
            let (length, peer) = socket.recv_from(&mut buffer).await.unwrap();
            let request = Message::from_vec(&buffer[..length]).unwrap();
            let mut response = Message::response(request.metadata.id, OpCode::Query);
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            let query = request.queries[0].clone();
            let known = Name::from_utf8("app.vedette.test.").unwrap();
            if query.name() == &known && query.query_type() == RecordType::A {
                let record = Record::from_rdata(known, 60, RData::A(A(Ipv4Addr::new(10, 1, 2, 3))));
                response.add_answer(record);
            } else if query.name() != &known {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
            response.add_query(query);
            socket
                .send_to(&response.to_vec().unwrap(), peer)
                .await
                .unwrap();
        }
    });
    address
}

fn dns(name: &str, server: SocketAddr) -> DnsProbe {
    DnsProbe {
        name: name.into(),
        server: Some(server.to_string()),
        record_type: DnsRecordType::A,
        expect: Vec::new(),
    }
}

#[tokio::test]
async fn dns_resolves_against_a_local_server() {
    let server = dns_server().await;
    let prober = Prober::new();
    let run = |probe: DnsProbe| {
        let prober = &prober;
        async move {
            prober
                .run(
                    &CheckSpec {
                        dns: Some(probe),
                        ..Default::default()
                    },
                    TIMEOUT,
                )
                .await
        }
    };

    let output = run(dns("app.vedette.test", server)).await;
    assert_ok(&output);
    assert!(output.output.contains("10.1.2.3"), "{}", output.output);
    assert!(output.value < 1.0);

    assert_ok(
        &run(DnsProbe {
            expect: vec!["10.1.2.3".into()],
            ..dns("app.vedette.test", server)
        })
        .await,
    );
    let output = run(DnsProbe {
        expect: vec!["10.9.9.9".into()],
        ..dns("app.vedette.test", server)
    })
    .await;
    assert_critical(&output, "missing 10.9.9.9");
    let output = run(DnsProbe {
        record_type: DnsRecordType::AAAA,
        ..dns("app.vedette.test", server)
    })
    .await;
    assert_critical(&output, "no AAAA record for app.vedette.test");
    let output = run(dns("gone.vedette.test", server)).await;
    assert_critical(
        &output,
        "answered Non-Existent Domain for gone.vedette.test A",
    );
}
