//! Network probes against real servers on loopback: tcp, http, https, tls and dns.

mod probe_asserts;
use probe_asserts::{assert_critical, perf};

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    CheckSecret, DnsProbe, DnsRecordType, HttpAuth, HttpProbe, PortOrParameter, TcpClose, TcpProbe,
    TlsProbe,
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
        "/host" => {
            let host = request.headers().get("host").map(|v| v.as_bytes().to_vec());
            Response::new(Full::new(Bytes::from(host.unwrap_or_default())))
        }
        "/private" => {
            let authorization = request.headers().get("authorization");
            let allowed = authorization.is_some_and(|v| {
                v == BASIC_AUTHORIZATION || v == format!("Bearer {TOKEN}").as_str()
            });
            let mut response = Response::new(Full::new(Bytes::from_static(b"private")));
            if !allowed {
                *response.status_mut() = StatusCode::UNAUTHORIZED;
            }
            response
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

/// The password of user `vedette` and the bearer token `/private` accepts.
const PASSWORD: &str = "s3cret-pw";
const TOKEN: &str = "t0ken-of-vedette";
/// `Basic` and base64 of `vedette:s3cret-pw`.
const BASIC_AUTHORIZATION: &str = "Basic dmVkZXR0ZTpzM2NyZXQtcHc=";

/// A keep-alive HTTP/1.1 server, with TLS when `tls` is given; returns its port.
async fn serve(tls: Option<tokio_rustls::TlsAcceptor>) -> u16 {
    serve_counted(tls).await.0
}

/// [`serve`], also returning how many connections it has accepted.
async fn serve_counted(tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
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
    (port, accepted)
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

async fn run_http(prober: &Prober, probe: HttpProbe, timeout: Duration) -> ProbeOutput {
    prober
        .run(
            &CheckSpec {
                http: Some(probe),
                ..Default::default()
            },
            timeout,
        )
        .await
}

fn perf_labels(output: &ProbeOutput) -> Vec<&str> {
    output.perfdata.iter().map(|p| p.label.as_str()).collect()
}

/// The phases of a fresh connection add up to no more than the total `time`, which is the
/// value thresholds apply to.
fn assert_phases_within_total(output: &ProbeOutput) {
    let total = perf(output, "time");
    assert_eq!(output.value, total, "{output:?}");
    let phases: f64 = ["dns", "connect", "tls", "firstbyte"]
        .iter()
        .filter(|label| perf_labels(output).contains(label))
        .map(|label| perf(output, label))
        .sum();
    assert!(
        phases <= total + 1e-6,
        "phases {phases} > time {total}: {output:?}"
    );
    assert!(output.perfdata.iter().all(|p| p.value >= 0.0), "{output:?}");
}

#[tokio::test]
async fn http_fresh_connections_time_each_phase_and_send_the_host() {
    let port = serve(None).await;
    let prober = Prober::new();
    let output = run_http(&prober, http(format!("http://127.0.0.1:{port}/")), TIMEOUT).await;
    assert_ok(&output);
    assert_eq!(
        perf_labels(&output),
        ["time", "dns", "connect", "firstbyte", "size"]
    );
    assert_phases_within_total(&output);
    assert_eq!(perf(&output, "size"), 30.0);
    assert!(
        output.output.starts_with("HTTP/1.1 200 OK - 30 bytes in ")
            && output.output.ends_with(" second response time"),
        "{}",
        output.output
    );

    for host in ["127.0.0.1", "localhost"] {
        let probe = HttpProbe {
            body_match: Some(format!("^{}:{port}$", regex::escape(host))),
            ..http(format!("http://{host}:{port}/host"))
        };
        let output = run_http(&prober, probe, TIMEOUT).await;
        assert_ok(&output);
        assert_phases_within_total(&output);
    }

    let reused = HttpProbe {
        reuse_connection: true,
        ..http(format!("http://127.0.0.1:{port}/"))
    };
    let output = run_http(&prober, reused, TIMEOUT).await;
    assert_ok(&output);
    assert_eq!(perf_labels(&output), ["time", "firstbyte", "size"]);
    assert!(perf(&output, "firstbyte") <= output.value, "{output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_opens_a_connection_per_run_unless_it_reuses_one() {
    let (port, accepted) = serve_counted(None).await;
    let url = format!("http://127.0.0.1:{port}/");
    let prober = Prober::new();
    for _ in 0..5 {
        assert_ok(&run_http(&prober, http(url.clone()), TIMEOUT).await);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
    let reused = HttpProbe {
        reuse_connection: true,
        ..http(url)
    };
    for _ in 0..5 {
        assert_ok(&run_http(&prober, reused.clone(), TIMEOUT).await);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 6);
}

/// A server listening with an accept queue of one that serves the first connection it
/// accepts (keep-alive) and then never accepts again; returns its address.
async fn serve_first_connection_then_stall() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service_fn(handle))
            .await;
        // Still listening, never accepting.
        std::future::pending::<()>().await;
        drop(listener);
    });
    address
}

/// Fills the accept queue of the listener at `address`: connects until a connection is not
/// answered (the kernel drops its SYN once the queue is full); returns the ones that were.
async fn fill_accept_queue(address: SocketAddr) -> Vec<tokio::net::TcpStream> {
    let mut parked = Vec::new();
    loop {
        let attempt = tokio::net::TcpStream::connect(address);
        match tokio::time::timeout(Duration::from_millis(500), attempt).await {
            Ok(Ok(stream)) => parked.push(stream),
            Ok(Err(error)) => panic!("connect to {address}: {error}"),
            Err(_) => return parked,
        }
        assert!(
            parked.len() < 64,
            "the accept queue of {address} does not fill"
        );
    }
}

#[tokio::test]
async fn http_fresh_connection_sees_a_full_accept_queue_that_a_reused_one_hides() {
    let address = serve_first_connection_then_stall().await;
    let url = format!("http://{address}/");
    let prober = Prober::new();
    let reused = HttpProbe {
        reuse_connection: true,
        ..http(url.clone())
    };
    assert_ok(&run_http(&prober, reused.clone(), TIMEOUT).await);
    let parked = fill_accept_queue(address).await;
    assert!(!parked.is_empty());

    let output = run_http(&prober, http(url.clone()), Duration::from_secs(1)).await;
    assert_critical(
        &output,
        &format!("connecting to {url} timed out after 1 seconds"),
    );
    assert!(output.timed_out);
    assert!(output.value.is_nan());

    let output = run_http(&prober, reused, TIMEOUT).await;
    assert_ok(&output);
}

#[tokio::test]
async fn https_fresh_connections_time_the_handshake_with_and_without_verification() {
    let (der, acceptor) = certificate(10);
    let (port, accepted) = serve_counted(Some(acceptor)).await;
    let url = format!("https://localhost:{port}/host");
    let host = HttpProbe {
        body_match: Some(format!("^localhost:{port}$")),
        ..http(url.clone())
    };
    let labels = ["time", "dns", "connect", "tls", "firstbyte", "size"];

    let output = run_http(&Prober::with_extra_roots(&[der]), host.clone(), TIMEOUT).await;
    assert_ok(&output);
    assert_eq!(perf_labels(&output), labels);
    assert_phases_within_total(&output);
    assert!(perf(&output, "tls") > 0.0, "{output:?}");

    let prober = Prober::new();
    let output = run_http(&prober, host.clone(), TIMEOUT).await;
    assert_critical(
        &output,
        &format!(
            "failed to connect to {url}: TLS handshake with localhost failed: invalid peer certificate"
        ),
    );
    let unverified = HttpProbe {
        verify_certificate: false,
        ..host
    };
    let output = run_http(&prober, unverified.clone(), TIMEOUT).await;
    assert_ok(&output);
    assert_eq!(perf_labels(&output), labels);
    assert_phases_within_total(&output);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);

    let reused = HttpProbe {
        reuse_connection: true,
        ..unverified
    };
    for _ in 0..3 {
        let output = run_http(&prober, reused.clone(), TIMEOUT).await;
        assert_ok(&output);
        assert_eq!(perf_labels(&output), ["time", "firstbyte", "size"]);
    }
}

/// `namespace/name/key` of a Secret of namespace `ns`.
fn secret(name: &str, key: &str) -> CheckSecret {
    CheckSecret {
        name: name.into(),
        key: key.into(),
        namespace: Some("ns".into()),
    }
}

fn basic(password: CheckSecret) -> HttpAuth {
    HttpAuth {
        username: Some("vedette".into()),
        password_secret: Some(password),
        bearer_token_secret: None,
    }
}

fn bearer(token: CheckSecret) -> HttpAuth {
    HttpAuth {
        username: None,
        password_secret: None,
        bearer_token_secret: Some(token),
    }
}

#[tokio::test]
async fn http_sends_basic_and_bearer_credentials_from_secrets() {
    let port = serve(None).await;
    let url = format!("http://127.0.0.1:{port}/private");
    let (password, token) = (secret("web", "password"), secret("web", "token"));
    let prober = Prober::new();
    prober.set_secrets(BTreeMap::from([
        (password.plan_key(), PASSWORD.to_owned()),
        (token.plan_key(), TOKEN.to_owned()),
    ]));
    for reuse_connection in [false, true] {
        let probe = |auth: Option<HttpAuth>| HttpProbe {
            auth,
            reuse_connection,
            ..http(url.clone())
        };
        assert_ok(&run_http(&prober, probe(Some(basic(password.clone()))), TIMEOUT).await);
        assert_ok(&run_http(&prober, probe(Some(bearer(token.clone()))), TIMEOUT).await);
        let output = run_http(&prober, probe(None), TIMEOUT).await;
        assert_critical(&output, "status 401, expected 200-399");
    }
}

#[tokio::test]
async fn http_secret_values_stay_out_of_outputs_and_missing_ones_are_unknown() {
    let port = serve(None).await;
    let url = format!("http://127.0.0.1:{port}/private");
    let (password, token) = (secret("web", "password"), secret("web", "token"));
    let wrong_password = "not-the-pw-7731";
    let wrong_token = "wrong-t0ken-5518";
    let prober = Prober::new();
    prober.set_secrets(BTreeMap::from([
        (password.plan_key(), wrong_password.to_owned()),
        (token.plan_key(), wrong_token.to_owned()),
    ]));
    let refused = format!("http://127.0.0.1:{}/private", closed_port().await);
    let runs = [
        (basic(password.clone()), url.clone(), "status 401"),
        (bearer(token.clone()), url.clone(), "status 401"),
        (
            basic(password.clone()),
            refused.clone(),
            "Connection refused",
        ),
        (bearer(token.clone()), refused, "Connection refused"),
    ];
    for (auth, url, reason) in runs {
        for reuse_connection in [false, true] {
            let probe = HttpProbe {
                auth: Some(auth.clone()),
                reuse_connection,
                ..http(url.clone())
            };
            let output = run_http(&prober, probe, TIMEOUT).await;
            assert_critical(&output, reason);
            let shown = format!("{} {:?}", output.line(CheckState::Critical), output.failure);
            for value in [
                wrong_password,
                wrong_token,
                "dmVkZXR0ZTpub3QtdGhlLXB3LTc3MzE=",
            ] {
                assert!(!shown.contains(value), "{value} shown in {shown}");
            }
        }
    }

    let absent = secret("gone", "token");
    let output = run_http(
        &prober,
        HttpProbe {
            auth: Some(bearer(absent)),
            ..http(url)
        },
        TIMEOUT,
    )
    .await;
    let (state, message) = output.failure.expect("a failure");
    assert_eq!(state, CheckState::Unknown, "{message}");
    assert!(message.contains("secret gone key token"), "{message}");
}
