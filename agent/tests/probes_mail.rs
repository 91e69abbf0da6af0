//! The mail probe and the tls probe's `startTls` against real mail servers on loopback:
//! Debian's python3-aiosmtpd for SMTP and dovecot for IMAP and POP3, each with a certificate
//! a private CA signed, started per test on free ports and stopped on drop.

mod probe_asserts;
use probe_asserts::{assert_critical, perf};

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use vedette_agent::probe::{ProbeOutput, Prober};
use vedette_crds::CheckSpec;
use vedette_crds::check::{MailProbe, MailProtocol, PortOrParameter, TlsProbe};
use vedette_crds::template::CheckState;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A server process, stopped on drop: SIGTERM first so that dovecot stops the processes it
/// started, SIGKILL if it has not exited within a few seconds.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A private CA and a certificate it signed for 127.0.0.1 valid for `days` more days, written
/// as `cert.pem` and `key.pem` into `dir`; returns the CA to trust.
fn certificates(dir: &Path, days: i64) -> CertificateDer<'static> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "vedette test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mail.test");
    server.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    server.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let cert = server.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    ca_cert.der().clone()
}

/// Waits until the server at `port` greets with `prefix`, not only accepts: aiosmtpd listens
/// a moment before it serves, dovecot greets once its auth process is ready.
fn wait_for_greeting(port: u16, prefix: &str, server: &mut Server, log: &Path) {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "the server exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no greeting on port {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_ok() && line.starts_with(prefix) {
                let quit: &[u8] = if prefix == "* OK" {
                    b"a LOGOUT\r\n"
                } else {
                    b"QUIT\r\n"
                };
                let _ = (&stream).write_all(quit);
                let _ = reader.read_line(&mut line);
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// aiosmtpd on a free port, offering STARTTLS with `dir`'s certificate when `starttls`; its
/// log (every command it received) goes to `dir/smtp.log`.
fn aiosmtpd(dir: &Path, starttls: bool) -> (Server, u16) {
    let port = free_port();
    let log = dir.join("smtp.log");
    let mut command = Command::new("/usr/bin/python3");
    command
        .args(["-m", "aiosmtpd", "-n", "-d", "-l"])
        .arg(format!("127.0.0.1:{port}"));
    if starttls {
        command
            .arg("--tlscert")
            .arg(dir.join("cert.pem"))
            .arg("--tlskey")
            .arg(dir.join("key.pem"));
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start aiosmtpd (e2e/tools/install-packages.sh installs python3-aiosmtpd)");
    let mut server = Server(child);
    wait_for_greeting(port, "220", &mut server, &log);
    (server, port)
}

/// Dovecot's configuration: IMAP and POP3 on loopback with STARTTLS, everything under `dir`,
/// no logins possible (an empty password file).
fn dovecot_config(dir: &Path, imap: u16, pop3: u16) -> String {
    let dir = dir.display();
    format!(
        "protocols = imap pop3
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
passdb {{
  driver = passwd-file
  args = /dev/null
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"
    )
}

/// Dovecot in the foreground with `dir`'s certificate; returns its IMAP and POP3 ports.
fn dovecot(dir: &Path) -> (Server, u16, u16) {
    let (imap, pop3) = (free_port(), free_port());
    let config = dir.join("dovecot.conf");
    std::fs::write(&config, dovecot_config(dir, imap, pop3)).unwrap();
    let log: PathBuf = dir.join("dovecot.log");
    let child = Command::new("dovecot")
        .arg("-F")
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dovecot.stderr")).unwrap())
        .spawn()
        .expect("start dovecot (e2e/tools/install-packages.sh installs dovecot-imapd)");
    let mut server = Server(child);
    wait_for_greeting(imap, "* OK", &mut server, &log);
    wait_for_greeting(pop3, "+OK", &mut server, &log);
    (server, imap, pop3)
}

fn mail(protocol: MailProtocol, port: u16) -> MailProbe {
    MailProbe {
        protocol,
        host: "127.0.0.1".into(),
        port: Some(PortOrParameter::Int(port.into())),
        expect: None,
        start_tls: false,
        helo_name: Some("probe.example".into()),
    }
}

fn starttls(protocol: MailProtocol, port: u16) -> MailProbe {
    MailProbe {
        start_tls: true,
        ..mail(protocol, port)
    }
}

fn tls(protocol: MailProtocol, port: u16) -> TlsProbe {
    TlsProbe {
        host: "127.0.0.1".into(),
        port: PortOrParameter::Int(port.into()),
        server_name: None,
        start_tls: Some(protocol),
    }
}

async fn run_mail(prober: &Prober, probe: MailProbe, timeout: Duration) -> ProbeOutput {
    let spec = CheckSpec {
        mail: Some(probe),
        ..Default::default()
    };
    vedette_agent::probe::validate(&spec).expect("a valid check");
    prober.run(&spec, timeout).await
}

async fn run_tls(prober: &Prober, probe: TlsProbe) -> ProbeOutput {
    let spec = CheckSpec {
        tls: Some(probe),
        ..Default::default()
    };
    prober.run(&spec, TIMEOUT).await
}

fn assert_ok(output: &ProbeOutput) {
    assert!(output.failure.is_none(), "expected no failure: {output:?}");
    assert!(
        output.value.is_finite() && output.value >= 0.0,
        "{output:?}"
    );
}

fn assert_days(output: &ProbeOutput, days: f64) {
    let left = perf(output, "days_left");
    assert!((left - days).abs() < 0.01, "days left {left}: {output:?}");
}

/// The commands aiosmtpd received on the last connection (`('127.0.0.1', 5000) >> b'QUIT'`
/// lines of its log), after the readiness check's.
fn smtp_commands(dir: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(dir.join("smtp.log")).unwrap();
    let received: Vec<(&str, &str)> = log
        .lines()
        .filter_map(|line| line.split_once(" >> "))
        .map(|(peer, command)| (peer.rsplit(':').next().unwrap_or(peer), command))
        .collect();
    let last = received.last().map(|(peer, _)| *peer);
    received
        .iter()
        .filter(|(peer, _)| Some(*peer) == last)
        .map(|(_, command)| (*command).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_greeting_and_ehlo_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (_smtp, port) = aiosmtpd(dir.path(), false);

    let output = run_mail(&Prober::new(), mail(MailProtocol::SMTP, port), TIMEOUT).await;
    assert_ok(&output);
    let line = output.line(CheckState::Ok);
    assert!(
        line.starts_with("SMTP OK - ") && line.contains(" sec. response time, 220 "),
        "{line}"
    );
    assert!(line.contains("Python SMTP"), "{line}");
    assert_eq!(perf(&output, "time"), output.value);
    assert!(perf(&output, "connect") + perf(&output, "greeting") <= output.value);
    assert_eq!(
        smtp_commands(dir.path()),
        ["b'EHLO probe.example'", "b'QUIT'"],
        "EHLO with heloName, then a polite QUIT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_expect_must_be_in_the_greeting() {
    let dir = tempfile::tempdir().unwrap();
    let (_smtp, port) = aiosmtpd(dir.path(), false);
    let prober = Prober::new();

    let found = MailProbe {
        expect: Some("Python SMTP".into()),
        ..mail(MailProtocol::SMTP, port)
    };
    assert_ok(&run_mail(&prober, found, TIMEOUT).await);

    let missing = MailProbe {
        expect: Some("Postfix".into()),
        ..mail(MailProtocol::SMTP, port)
    };
    let output = run_mail(&prober, missing, TIMEOUT).await;
    assert_critical(&output, "does not contain \"Postfix\"");
    assert!(
        output.output.contains("220 "),
        "shows the greeting: {output:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_starttls_with_a_trusted_certificate_reports_its_days_left() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path(), 30);
    let (_smtp, port) = aiosmtpd(dir.path(), true);

    let output = run_mail(
        &Prober::with_extra_roots(&[ca]),
        starttls(MailProtocol::SMTP, port),
        TIMEOUT,
    )
    .await;
    assert_ok(&output);
    assert_days(&output, 30.0);
    assert!(perf(&output, "tls") > 0.0, "{output:?}");
    assert!(
        output
            .output
            .contains("STARTTLS certificate 'CN=mail.test' expires in 30.0 days"),
        "{}",
        output.output
    );
    assert_eq!(
        smtp_commands(dir.path()),
        [
            "b'EHLO probe.example'",
            "b'STARTTLS'",
            "b'EHLO probe.example'",
            "b'QUIT'"
        ],
        "EHLO again inside TLS, then QUIT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_starttls_with_an_untrusted_certificate_is_critical_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), 30);
    let (_smtp, port) = aiosmtpd(dir.path(), true);

    let output = run_mail(&Prober::new(), starttls(MailProtocol::SMTP, port), TIMEOUT).await;
    assert_critical(
        &output,
        &format!("certificate of 127.0.0.1 port {port} not trusted"),
    );
    assert_critical(&output, "UnknownIssuer");
    assert_days(&output, 30.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_starttls_asked_of_a_server_without_it_is_critical() {
    let dir = tempfile::tempdir().unwrap();
    let (_smtp, port) = aiosmtpd(dir.path(), false);

    let output = run_mail(&Prober::new(), starttls(MailProtocol::SMTP, port), TIMEOUT).await;
    assert_critical(&output, "server does not offer STARTTLS");
    assert!(
        output
            .line(CheckState::Critical)
            .starts_with("SMTP CRITICAL - "),
        "{output:?}"
    );
    assert_eq!(
        smtp_commands(dir.path()),
        ["b'EHLO probe.example'", "b'QUIT'"],
        "no STARTTLS sent, a polite QUIT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_and_pop3_greet_and_switch_to_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path(), 45);
    let (_dovecot, imap, pop3) = dovecot(dir.path());
    let prober = Prober::with_extra_roots(&[ca]);

    let output = run_mail(&prober, mail(MailProtocol::IMAP, imap), TIMEOUT).await;
    assert_ok(&output);
    let line = output.line(CheckState::Ok);
    assert!(line.starts_with("IMAP OK - "), "{line}");
    assert!(line.contains("* OK ") && line.contains("Dovecot"), "{line}");

    let output = run_mail(&prober, starttls(MailProtocol::IMAP, imap), TIMEOUT).await;
    assert_ok(&output);
    assert_days(&output, 45.0);

    let output = run_mail(&prober, mail(MailProtocol::POP3, pop3), TIMEOUT).await;
    assert_ok(&output);
    let line = output.line(CheckState::Ok);
    assert!(
        line.starts_with("POP3 OK - ") && line.contains("+OK Dovecot"),
        "{line}"
    );

    let output = run_mail(&prober, starttls(MailProtocol::POP3, pop3), TIMEOUT).await;
    assert_ok(&output);
    assert_days(&output, 45.0);

    let untrusted = run_mail(&Prober::new(), starttls(MailProtocol::IMAP, imap), TIMEOUT).await;
    assert_critical(&untrusted, "not trusted");

    // Two readiness checks and five probe sessions, each ending with LOGOUT or QUIT; dovecot
    // logs them asynchronously.
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.path().join("dovecot.log")).unwrap();
        if log.matches("Aborted login by logging out").count() >= 7 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "IMAP and POP3 sessions end with LOGOUT and QUIT: {log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_probe_with_starttls_reports_the_certificates_days() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certificates(dir.path(), 20);
    let (_smtp, smtp) = aiosmtpd(dir.path(), true);
    let (_dovecot, imap, pop3) = dovecot(dir.path());
    let prober = Prober::with_extra_roots(&[ca]);

    for (protocol, port) in [
        (MailProtocol::SMTP, smtp),
        (MailProtocol::IMAP, imap),
        (MailProtocol::POP3, pop3),
    ] {
        let output = run_tls(&prober, tls(protocol, port)).await;
        assert_ok(&output);
        assert!(
            (output.value - 20.0).abs() < 0.01,
            "{protocol:?}: {output:?}"
        );
        assert!(
            output.output.contains("expires in 20.0 days"),
            "{protocol:?}: {}",
            output.output
        );
    }

    let untrusted = run_tls(&Prober::new(), tls(MailProtocol::SMTP, smtp)).await;
    assert_critical(&untrusted, "not trusted");
    assert!((untrusted.value - 20.0).abs() < 0.01, "{untrusted:?}");

    // TLS from the first byte on a STARTTLS port fails the handshake: the plain-text part ran.
    let direct = TlsProbe {
        start_tls: None,
        ..tls(MailProtocol::SMTP, smtp)
    };
    assert_critical(&run_tls(&prober, direct).await, "tls handshake failed");
}

#[tokio::test]
async fn a_closed_port_is_critical() {
    let port = free_port();
    let output = run_mail(&Prober::new(), mail(MailProtocol::SMTP, port), TIMEOUT).await;
    assert_critical(&output, "refused");
    assert!(output.value.is_nan());
    assert!(
        output
            .line(CheckState::Critical)
            .starts_with("SMTP CRITICAL - failed to connect"),
        "{output:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_greets_times_out_as_critical_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(listener.accept().await.unwrap().0);
        }
    });
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let output = run_mail(&Prober::new(), mail(MailProtocol::IMAP, port), timeout).await;
    let took = started.elapsed();
    assert_critical(&output, "waiting for the greeting");
    assert!(output.timed_out, "{output:?}");
    assert!(took < timeout + Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn a_refusing_greeting_is_critical_and_shown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream
            .write_all(b"554 mail.test no SMTP service here|\x1b\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 64];
        while !received.ends_with(b"\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
        stream.write_all(b"221 bye\r\n").await.unwrap();
        String::from_utf8_lossy(&received).into_owned()
    });
    let output = run_mail(&Prober::new(), mail(MailProtocol::SMTP, port), TIMEOUT).await;
    assert_critical(
        &output,
        &format!(
            "unexpected greeting from 127.0.0.1 port {port}: 554 mail.test no SMTP service here\\u{{7c}}\\u{{1b}}"
        ),
    );
    assert_eq!(server.await.unwrap(), "QUIT\r\n", "only a polite QUIT");
}
