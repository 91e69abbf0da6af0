//! The mail probe, as `check_smtp`, `check_imap` and `check_pop` do it: the greeting of an
//! SMTP, IMAP or POP3 server, its capabilities (`EHLO`, `CAPABILITY`, `CAPA`), optionally
//! STARTTLS with the certificate verified and its days left, and a polite goodbye. The value is
//! the seconds from connecting to the last answer before the goodbye.

use std::time::{Duration, Instant};

use vedette_crds::check::{MailProbe, MailProtocol, PortOrParameter};
use vedette_crds::template::CheckState;

use super::starttls::{self, Reply, Session};
use super::tls::{PeerCertificate, TlsProber};
use super::{ProbeOutput, Result, seconds};

/// The mail probe. Its lines name the protocol (`SMTP OK - …`), failures included.
pub(crate) async fn probe(
    spec: &MailProbe,
    tls: &TlsProber,
    timeout: Duration,
) -> Result<ProbeOutput> {
    let name = protocol_name(spec.protocol);
    Ok(session(spec, tls, timeout)
        .await
        .unwrap_or_else(|error| ProbeOutput::failed(name, &error)))
}

/// What `validate` can find wrong before a run.
pub(crate) fn validate(spec: &MailProbe) -> Result<()> {
    super::substituted("host", &spec.host)?;
    port(spec)?;
    if let Some(name) = &spec.helo_name {
        starttls::helo_name(super::substituted("heloName", name)?)?;
    }
    Ok(())
}

/// The name in output lines and the prefix of `check_*`.
fn protocol_name(protocol: MailProtocol) -> &'static str {
    match protocol {
        MailProtocol::SMTP => "smtp",
        MailProtocol::IMAP => "imap",
        MailProtocol::POP3 => "pop3",
    }
}

/// The port to connect to: the check's, or the protocol's plain-text one.
fn port(spec: &MailProbe) -> Result<u16> {
    let default = match spec.protocol {
        MailProtocol::SMTP => 25,
        MailProtocol::IMAP => 143,
        MailProtocol::POP3 => 110,
    };
    super::port(spec.port.as_ref().unwrap_or(&PortOrParameter::Int(default)))
}

/// Why a greeting fails the check: not the protocol's success, or without `expect`.
fn greeting_failure(spec: &MailProbe, target: &str, greeting: &Reply) -> Option<String> {
    if !greeting.ok {
        return Some(starttls::unexpected_greeting(target, greeting).to_string());
    }
    let expect = spec.expect.as_deref()?;
    (!greeting.contains(expect)).then(|| {
        format!(
            "greeting from {target} does not contain {:?}: {}",
            starttls::printable(expect),
            greeting.shown()
        )
    })
}

/// How long each part of a run took.
#[derive(Default)]
struct Timings {
    connect: f64,
    greeting: f64,
    tls: Option<f64>,
}

impl Timings {
    fn output(&self, name: &'static str, total: f64, greeting: &Reply) -> ProbeOutput {
        let mut output = ProbeOutput::measured(
            name,
            total,
            format!(
                "{total:.3} sec. response time, {}",
                greeting.first_line_shown()
            ),
        )
        .with_perf("time", total, "s")
        .with_perf("connect", self.connect, "s")
        .with_perf("greeting", self.greeting, "s");
        if let Some(tls) = self.tls {
            output = output.with_perf("tls", tls, "s");
        }
        output
    }
}

/// One run: connect, greeting, capabilities, STARTTLS if asked, goodbye.
async fn session(spec: &MailProbe, tls: &TlsProber, timeout: Duration) -> Result<ProbeOutput> {
    let host = super::substituted("host", &spec.host)?;
    let port = port(spec)?;
    let helo_name = match &spec.helo_name {
        Some(name) => starttls::helo_name(super::substituted("heloName", name)?)?.to_owned(),
        None => starttls::machine_host_name(),
    };
    let server_name = super::tls::server_name(host)?;
    let name = protocol_name(spec.protocol);
    let target = format!("{host} port {port}");
    let mut timings = Timings::default();

    let started = Instant::now();
    let (stream, _) = super::tcp::connect(host, port, timeout).await?;
    let connected = Instant::now();
    timings.connect = seconds(connected - started);
    let mut plain = Session::new(stream, spec.protocol, &target, started, timeout);
    let greeting = plain.greeting().await?;
    timings.greeting = seconds(connected.elapsed());
    if let Some(reason) = greeting_failure(spec, &target, &greeting) {
        let total = seconds(started.elapsed());
        plain.quit().await;
        let mut output = timings.output(name, total, &greeting);
        output.output = reason.clone();
        return Ok(output.with_failure(CheckState::Critical, reason));
    }
    let offered = match plain.capabilities(&helo_name).await {
        Ok(offered) => offered,
        Err(error) => {
            plain.quit().await;
            return Err(error);
        }
    };
    if !spec.start_tls {
        let total = seconds(started.elapsed());
        plain.quit().await;
        return Ok(timings.output(name, total, &greeting));
    }

    let tls_started = Instant::now();
    let stream = plain.start_tls(offered).await?;
    let (stream, certificate) = tls
        .handshake(stream, &server_name, &target, started, timeout)
        .await?;
    timings.tls = Some(seconds(tls_started.elapsed()));
    let mut secure = Session::new(stream, spec.protocol, &target, started, timeout);
    if spec.protocol == MailProtocol::SMTP
        && let Err(error) = secure.ehlo(&helo_name).await
    {
        secure.quit().await;
        return Err(error);
    }
    let total = seconds(started.elapsed());
    secure.quit().await;
    Ok(with_certificate(
        timings.output(name, total, &greeting),
        certificate,
    ))
}

/// Adds the certificate's days left to `output`, CRITICAL when it is not trusted.
fn with_certificate(output: ProbeOutput, certificate: PeerCertificate) -> ProbeOutput {
    let mut output = output.with_perf("days_left", certificate.days, "");
    output.output = format!("{}, STARTTLS {}", output.output, certificate.describe());
    match certificate.untrusted {
        Some(reason) => {
            output.output = format!("{reason}; {}", output.output);
            output.with_failure(CheckState::Critical, reason)
        }
        None => output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(expect: Option<&str>) -> MailProbe {
        MailProbe {
            protocol: MailProtocol::SMTP,
            host: "127.0.0.1".into(),
            port: None,
            expect: expect.map(str::to_owned),
            start_tls: false,
            helo_name: None,
        }
    }

    fn reply(ok: bool, line: &str) -> Reply {
        Reply {
            ok,
            lines: vec![line.to_owned()],
        }
    }

    #[test]
    fn a_greeting_fails_on_its_code_or_a_missing_expected_text() {
        let target = "127.0.0.1 port 25";
        let good = reply(true, "220 mail.example ESMTP Postfix");
        assert_eq!(greeting_failure(&spec(None), target, &good), None);
        assert_eq!(
            greeting_failure(&spec(Some("Postfix")), target, &good),
            None
        );
        let missing = greeting_failure(&spec(Some("Exim")), target, &good).unwrap();
        assert!(missing.contains("does not contain \"Exim\""), "{missing}");
        let refused = reply(false, "554 mail.example no\r\x1b service");
        let shown = greeting_failure(&spec(None), target, &refused).unwrap();
        assert_eq!(
            shown,
            "unexpected greeting from 127.0.0.1 port 25: 554 mail.example no\\r\\u{1b} service"
        );
    }

    #[test]
    fn ports_default_to_each_protocols_plain_text_port() {
        let mut probe = spec(None);
        assert_eq!(port(&probe).unwrap(), 25);
        probe.protocol = MailProtocol::IMAP;
        assert_eq!(port(&probe).unwrap(), 143);
        probe.protocol = MailProtocol::POP3;
        assert_eq!(port(&probe).unwrap(), 110);
        probe.port = Some(PortOrParameter::Int(587));
        assert_eq!(port(&probe).unwrap(), 587);
        probe.port = Some(PortOrParameter::Parameter("$port$".into()));
        assert!(validate(&probe).is_err());
        probe.port = None;
        probe.helo_name = Some("bad\r\nname".into());
        assert!(validate(&probe).is_err());
        probe.helo_name = Some("$helo$".into());
        assert!(validate(&probe).is_err());
    }
}
