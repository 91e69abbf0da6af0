//! Mail over TLS to a real SMTP server (Debian's python3-aiosmtpd) whose certificate a private
//! CA signed: STARTTLS and implicit TLS both deliver when the receiver trusts that CA
//! (`caSecret`), and without it the send fails naming the certificate, sending nothing. A
//! server that requires a login (AUTH over STARTTLS) takes the receiver's user name and
//! password and refuses a wrong password.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vedette_crds::notification::{EmailReceiver, SmtpTls};
use vedette_operator::notify::payload::Mail;
use vedette_operator::notify::send;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
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

/// A CA and a certificate it signed for 127.0.0.1, as PEM: (ca, cert, key).
fn certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "vedette test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = server.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Waits until the server at `port` greets (`220`), not only accepts: aiosmtpd listens a
/// moment before it serves.
fn wait_for_greeting(port: u16) {
    use std::io::{BufRead, BufReader, Write};
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the SMTP server did not greet"
        );
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_ok() && line.starts_with("220") {
                let _ = (&stream).write_all(b"QUIT\r\n");
                let _ = reader.read_line(&mut line);
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "aiosmtpd did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // It accepts a moment before it serves TLS.
    std::thread::sleep(Duration::from_millis(500));
}

fn start_smtp(dir: &Path, maildir: &Path, port: u16, implicit: bool) -> Killed {
    let (cert_flag, key_flag) = if implicit {
        ("--smtpscert", "--smtpskey")
    } else {
        ("--tlscert", "--tlskey")
    };
    let child = Command::new("/usr/bin/python3")
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(cert_flag)
        .arg(dir.join("cert.pem"))
        .arg(key_flag)
        .arg(dir.join("key.pem"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd (make deps installs python3-aiosmtpd)");
    let smtp = Killed(child);
    if implicit {
        // The greeting comes inside TLS: a plain probe can only see the port open.
        wait_for_port(port);
    } else {
        wait_for_greeting(port);
    }
    smtp
}

fn mails(maildir: &Path) -> Vec<String> {
    ["new", "cur"]
        .iter()
        .filter_map(|d| std::fs::read_dir(maildir.join(d)).ok())
        .flatten()
        .filter_map(|e| e.ok().and_then(|e| std::fs::read_to_string(e.path()).ok()))
        .collect()
}

fn receiver(port: u16, tls: SmtpTls) -> EmailReceiver {
    EmailReceiver {
        to: vec!["oncall@shop.example".into()],
        from: "vedette@shop.example".into(),
        smarthost: format!("127.0.0.1:{port}"),
        tls,
        username: None,
        password_secret: None,
        ca_secret: None,
    }
}

fn mail(subject: &str) -> Mail {
    Mail {
        subject: subject.into(),
        text: "port on node-1 is CRITICAL".into(),
        html: "<p>port on node-1 is CRITICAL</p>".into(),
        message_id: format!("<{subject}@vedette>"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_implicit_tls_deliver_when_the_ca_is_trusted_and_fail_when_not() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    for (implicit, tls) in [(false, SmtpTls::StartTls), (true, SmtpTls::Tls)] {
        let maildir = dir.path().join(format!("maildir-{implicit}"));
        let port = free_port();
        let _smtp = start_smtp(dir.path(), &maildir, port, implicit);

        let refused = send::email(&receiver(port, tls), None, None, &mail("untrusted")).await;
        let error = refused.expect_err("a certificate of an unknown CA is refused");
        assert!(
            error.contains(&format!("SMTP 127.0.0.1:{port}")) && error.contains("certificate"),
            "{tls:?}: {error}"
        );

        send::email(
            &receiver(port, tls),
            None,
            Some(ca.clone().into_bytes()),
            &mail("trusted"),
        )
        .await
        .unwrap_or_else(|e| panic!("{tls:?}: {e}"));
        let started = Instant::now();
        let arrived = loop {
            let found = mails(&maildir);
            if !found.is_empty() || started.elapsed() > Duration::from_secs(10) {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(arrived.len(), 1, "{tls:?}: only the trusted send arrives");
        assert!(
            arrived[0].contains("Message-ID: <trusted@vedette>"),
            "{}",
            arrived[0]
        );
    }
}

/// aiosmtpd with STARTTLS required and AUTH checked against one user, as a script.
const AUTH_SERVER: &str = r#"
import asyncio, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult

port, cert, key, maildir = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"vedette" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)

controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port,
                        tls_context=context, require_starttls=True,
                        authenticator=authenticator, auth_required=True)
controller.start()
print("ready", flush=True)
asyncio.get_event_loop().run_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_requiring_a_login_takes_the_password_and_refuses_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    std::fs::write(dir.path().join("server.py"), AUTH_SERVER).unwrap();
    let maildir = dir.path().join("maildir");
    let port = free_port();
    let _smtp = Killed(
        Command::new("/usr/bin/python3")
            .arg(dir.path().join("server.py"))
            .arg(port.to_string())
            .arg(dir.path().join("cert.pem"))
            .arg(dir.path().join("key.pem"))
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd"),
    );
    wait_for_greeting(port);
    let mut login = receiver(port, SmtpTls::StartTls);
    login.username = Some("vedette".into());
    let ca = Some(ca.into_bytes());

    let wrong = send::email(&login, Some(b"wrong".to_vec()), ca.clone(), &mail("wrong")).await;
    let error = wrong.expect_err("a wrong password is refused");
    assert!(
        error.contains("SMTP 127.0.0.1") && error.contains("535"),
        "{error}"
    );

    send::email(&login, Some(b"s3cret".to_vec()), ca, &mail("logged-in"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let arrived = loop {
        let found = mails(&maildir);
        if !found.is_empty() || started.elapsed() > Duration::from_secs(10) {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(arrived.len(), 1, "only the logged-in send arrives");
    assert!(
        arrived[0].contains("Message-ID: <logged-in@vedette>"),
        "{}",
        arrived[0]
    );
}
