//! The plain-text part of SMTP, IMAP and POP3, shared by the mail probe and the tls probe's
//! `startTls`: greetings, capability lists (`EHLO`, `CAPABILITY`, `CAPA`), the STARTTLS command
//! and a polite goodbye. Every read waits at most until the run's deadline and a reply may take
//! at most `MAX_REPLY_BYTES`; bytes a server sends after its STARTTLS answer are refused, so
//! nothing sent in plain text can pass for part of the TLS session.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use vedette_crds::check::MailProtocol;

use super::{ProbeError, Result, seconds};

/// Most bytes one reply (a greeting, an `EHLO` answer) may take.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Most characters of a server's text shown in an output line.
const MAX_SHOWN_CHARS: usize = 200;

/// Longest wait for the answer to the goodbye, within the deadline: a server that does not
/// answer `QUIT` must not hold a run whose measurement is done.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// The name `EHLO` sends when the machine's host name cannot be read or is not one.
const FALLBACK_HELO_NAME: &str = "localhost";

/// A server's reply: its lines without line ends, and whether it is the protocol's success.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    pub(crate) ok: bool,
    pub(crate) lines: Vec<String>,
}

impl Reply {
    /// The whole reply, bounded and escaped for an output line.
    pub(crate) fn shown(&self) -> String {
        printable(&self.lines.join(" "))
    }

    /// The first line, bounded and escaped: `220 mail.example ESMTP`.
    pub(crate) fn first_line_shown(&self) -> String {
        printable(self.lines.first().map(String::as_str).unwrap_or_default())
    }

    /// Whether any line contains `text`.
    pub(crate) fn contains(&self, text: &str) -> bool {
        self.lines.iter().any(|line| line.contains(text))
    }
}

/// What ends a reply and what makes it a success.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// SMTP: `250-…` lines continue, `250 …` ends it; success is the given code.
    Smtp(u16),
    /// An IMAP greeting: one line, `* OK …` or `* PREAUTH …` on success.
    ImapGreeting,
    /// An IMAP command's answer: untagged lines up to the one with the tag; success is `OK`.
    ImapTagged(&'static str),
    /// POP3: one line, `+OK …` or `-ERR …`.
    Pop,
    /// POP3 multi-line: `+OK` and lines up to a lone `.`; or `-ERR …` alone.
    PopList,
}

impl Shape {
    /// Whether the reply is complete with `lines` (never empty).
    fn is_complete(self, lines: &[String]) -> bool {
        let last = lines.last().map(String::as_str).unwrap_or_default();
        match self {
            Self::Smtp(_) => last.as_bytes().get(3) != Some(&b'-'),
            Self::ImapGreeting | Self::Pop => true,
            Self::ImapTagged(tag) => tagged(last, tag).is_some(),
            Self::PopList => {
                if lines.len() == 1 {
                    !starts_with_word(last, "+OK")
                } else {
                    last == "."
                }
            }
        }
    }

    /// Whether the complete reply `lines` is a success.
    fn is_success(self, lines: &[String]) -> bool {
        let first = lines.first().map(String::as_str).unwrap_or_default();
        let last = lines.last().map(String::as_str).unwrap_or_default();
        match self {
            Self::Smtp(code) => smtp_code(last) == Some(code),
            Self::ImapGreeting => {
                starts_with_word(first, "* OK") || starts_with_word(first, "* PREAUTH")
            }
            Self::ImapTagged(tag) => {
                tagged(last, tag).is_some_and(|rest| starts_with_word(rest, "OK"))
            }
            Self::Pop | Self::PopList => starts_with_word(first, "+OK"),
        }
    }
}

/// The three-digit code of an SMTP reply line.
fn smtp_code(line: &str) -> Option<u16> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The rest of an IMAP line tagged `tag`.
fn tagged<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.strip_prefix(tag)?.strip_prefix(' ')
}

/// Whether `line` starts with `word` (ASCII case ignored) followed by a space or its end.
fn starts_with_word(line: &str, word: &str) -> bool {
    line.get(..word.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(word))
        && matches!(line.as_bytes().get(word.len()), None | Some(b' '))
}

/// The greeting's shape for `protocol`.
fn greeting_shape(protocol: MailProtocol) -> Shape {
    match protocol {
        MailProtocol::SMTP => Shape::Smtp(220),
        MailProtocol::IMAP => Shape::ImapGreeting,
        MailProtocol::POP3 => Shape::Pop,
    }
}

/// Whether a capability reply (`EHLO`, `CAPABILITY`, `CAPA`) lists STARTTLS.
fn offers_starttls(protocol: MailProtocol, reply: &Reply) -> bool {
    let keyword = |line: &str, skip: usize| {
        line.get(skip..)
            .and_then(|rest| rest.split_ascii_whitespace().next())
            .map(str::to_owned)
    };
    match protocol {
        MailProtocol::SMTP => reply
            .lines
            .iter()
            .skip(1)
            .filter_map(|line| keyword(line, 4))
            .any(|word| word.eq_ignore_ascii_case("STARTTLS")),
        MailProtocol::IMAP => reply
            .lines
            .iter()
            .filter(|line| starts_with_word(line, "* CAPABILITY"))
            .flat_map(|line| line.split_ascii_whitespace().skip(2))
            .any(|word| word.eq_ignore_ascii_case("STARTTLS")),
        MailProtocol::POP3 => reply
            .lines
            .iter()
            .skip(1)
            .filter_map(|line| keyword(line, 0))
            .any(|word| word.eq_ignore_ascii_case("STLS")),
    }
}

/// `text` bounded to `MAX_SHOWN_CHARS` characters, with control characters escaped and `|`
/// (which starts Nagios perfdata) written as `\u{7c}`.
pub(crate) fn printable(text: &str) -> String {
    let mut shown = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == MAX_SHOWN_CHARS {
            shown.push('…');
            break;
        }
        if c == '|' {
            shown.extend(c.escape_unicode());
        } else if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// `name` if it can go on an `EHLO` line: printable ASCII without spaces.
pub(crate) fn helo_name(name: &str) -> Result<&str> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ProbeError::InvalidSpec(format!(
            "heloName {:?} is not a host name",
            printable(name)
        )));
    }
    Ok(name)
}

/// This machine's host name, as `EHLO` sends it by default.
pub(crate) fn machine_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| helo_name(name).is_ok())
        .unwrap_or_else(|| FALLBACK_HELO_NAME.to_owned())
}

/// One connection's dialogue in `protocol`, over plain TCP or TLS.
pub(crate) struct Session<'a, S> {
    stream: S,
    buffer: Vec<u8>,
    protocol: MailProtocol,
    target: &'a str,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Session<'a, S> {
    /// A dialogue with `target` (`host port N`) that must end `timeout` after `started`.
    pub(crate) fn new(
        stream: S,
        protocol: MailProtocol,
        target: &'a str,
        started: Instant,
        timeout: Duration,
    ) -> Self {
        Self {
            stream,
            buffer: Vec::new(),
            protocol,
            target,
            deadline: tokio::time::Instant::from_std(started + timeout),
            timeout,
        }
    }

    /// Reads the server's greeting, whether it is a success or not.
    pub(crate) async fn greeting(&mut self) -> Result<Reply> {
        self.read_reply(greeting_shape(self.protocol), "greeting")
            .await
    }

    /// Asks what the server supports: whether it offers STARTTLS, or `None` when a POP3
    /// server does not answer `CAPA`. A refused `EHLO` or `CAPABILITY` is an error.
    pub(crate) async fn capabilities(&mut self, helo_name: &str) -> Result<Option<bool>> {
        let reply = match self.protocol {
            MailProtocol::SMTP => return self.ehlo(helo_name).await.map(Some),
            MailProtocol::IMAP => {
                self.command("a1 CAPABILITY", Shape::ImapTagged("a1"), "CAPABILITY reply")
                    .await?
            }
            MailProtocol::POP3 => {
                let reply = self.command("CAPA", Shape::PopList, "CAPA reply").await?;
                if !reply.ok {
                    return Ok(None);
                }
                reply
            }
        };
        if !reply.ok {
            return Err(self.refused("CAPABILITY", &reply));
        }
        Ok(Some(offers_starttls(self.protocol, &reply)))
    }

    /// Sends SMTP's `EHLO` and tells whether the server offers STARTTLS.
    pub(crate) async fn ehlo(&mut self, helo_name: &str) -> Result<bool> {
        let reply = self
            .command(&format!("EHLO {helo_name}"), Shape::Smtp(250), "EHLO reply")
            .await?;
        if !reply.ok {
            return Err(self.refused("EHLO", &reply));
        }
        Ok(offers_starttls(MailProtocol::SMTP, &reply))
    }

    /// Sends STARTTLS (`STLS` in POP3) unless the server said it does not offer it, and
    /// returns the connection ready for the TLS handshake. Says goodbye when it cannot.
    pub(crate) async fn start_tls(mut self, offered: Option<bool>) -> Result<S> {
        if offered == Some(false) {
            let target = self.target;
            self.quit().await;
            return Err(ProbeError::Unexpected(format!(
                "server does not offer STARTTLS ({target})"
            )));
        }
        let (command, shape) = match self.protocol {
            MailProtocol::SMTP => ("STARTTLS", Shape::Smtp(220)),
            MailProtocol::IMAP => ("a2 STARTTLS", Shape::ImapTagged("a2")),
            MailProtocol::POP3 => ("STLS", Shape::Pop),
        };
        let reply = self.command(command, shape, "STARTTLS reply").await?;
        if !reply.ok {
            let error = self.refused("STARTTLS", &reply);
            self.quit().await;
            return Err(error);
        }
        if !self.buffer.is_empty() {
            return Err(ProbeError::Unexpected(format!(
                "{} sent data after its STARTTLS reply",
                self.target
            )));
        }
        Ok(self.stream)
    }

    /// Says goodbye (`QUIT`, `a3 LOGOUT`) and waits for the answer up to `GOODBYE_WAIT`
    /// within the deadline, then closes; a server that does not answer changes nothing.
    pub(crate) async fn quit(mut self) {
        self.deadline = self
            .deadline
            .min(tokio::time::Instant::now() + GOODBYE_WAIT);
        let (command, shape) = match self.protocol {
            MailProtocol::SMTP => ("QUIT", Shape::Smtp(221)),
            MailProtocol::IMAP => ("a3 LOGOUT", Shape::ImapTagged("a3")),
            MailProtocol::POP3 => ("QUIT", Shape::Pop),
        };
        let _ = self.command(command, shape, "goodbye").await;
        let _ = tokio::time::timeout_at(self.deadline, self.stream.shutdown()).await;
    }

    /// The error for a refused command, showing the server's answer.
    fn refused(&self, command: &str, reply: &Reply) -> ProbeError {
        ProbeError::Unexpected(format!(
            "{} refused {command}: {}",
            self.target,
            reply.shown()
        ))
    }

    fn timed_out(&self, what: &str) -> ProbeError {
        ProbeError::Timeout {
            what: format!("waiting for the {what} from {}", self.target),
            seconds: seconds(self.timeout),
        }
    }

    /// Sends `command` and reads its reply.
    async fn command(&mut self, command: &str, shape: Shape, what: &str) -> Result<Reply> {
        let line = format!("{command}\r\n");
        let write = async {
            self.stream.write_all(line.as_bytes()).await?;
            self.stream.flush().await
        };
        tokio::time::timeout_at(self.deadline, write)
            .await
            .map_err(|_| self.timed_out(what))?
            .map_err(|error| ProbeError::Connect {
                target: self.target.to_owned(),
                reason: format!("failed to send {}: {error}", first_word(command)),
            })?;
        self.read_reply(shape, what).await
    }

    /// Reads lines until `shape` says the reply is complete.
    async fn read_reply(&mut self, shape: Shape, what: &str) -> Result<Reply> {
        let mut lines = Vec::new();
        let mut taken = 0;
        loop {
            lines.push(self.read_line(&mut taken, what).await?);
            if shape.is_complete(&lines) {
                break;
            }
        }
        Ok(Reply {
            ok: shape.is_success(&lines),
            lines,
        })
    }

    /// The next line without its line end; `taken` counts the reply's bytes so far.
    async fn read_line(&mut self, taken: &mut usize, what: &str) -> Result<String> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                *taken += line.len();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            if *taken + self.buffer.len() >= MAX_REPLY_BYTES {
                return Err(ProbeError::Unexpected(format!(
                    "the {what} from {} is longer than {MAX_REPLY_BYTES} bytes",
                    self.target
                )));
            }
            let read = tokio::time::timeout_at(self.deadline, self.stream.read(&mut chunk))
                .await
                .map_err(|_| self.timed_out(what))?
                .map_err(|error| ProbeError::Connect {
                    target: self.target.to_owned(),
                    reason: format!("failed to read the {what}: {error}"),
                })?;
            if read == 0 {
                let partial = String::from_utf8_lossy(&self.buffer);
                return Err(ProbeError::Unexpected(format!(
                    "{} closed the connection before its {what}{}",
                    self.target,
                    if partial.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", printable(&partial))
                    }
                )));
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// The command's name for messages (`EHLO`, not the name it sends).
fn first_word(command: &str) -> &str {
    command.split(' ').next().unwrap_or(command)
}

/// The tls probe's `startTls`: greeting, capabilities and STARTTLS on `stream`, returning it
/// ready for the handshake. A greeting that is not a success is CRITICAL, showing it.
pub(crate) async fn negotiate(
    stream: TcpStream,
    protocol: MailProtocol,
    target: &str,
    started: Instant,
    timeout: Duration,
) -> Result<TcpStream> {
    let mut session = Session::new(stream, protocol, target, started, timeout);
    let greeting = session.greeting().await?;
    if !greeting.ok {
        session.quit().await;
        return Err(unexpected_greeting(target, &greeting));
    }
    match session.capabilities(&machine_host_name()).await {
        Ok(offered) => session.start_tls(offered).await,
        Err(error) => {
            session.quit().await;
            Err(error)
        }
    }
}

/// The error for a greeting that is not the protocol's success.
pub(crate) fn unexpected_greeting(target: &str, greeting: &Reply) -> ProbeError {
    ProbeError::Unexpected(format!(
        "unexpected greeting from {target}: {}",
        greeting.shown()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.split("\r\n").map(str::to_owned).collect()
    }

    fn complete_and_ok(shape: Shape, text: &str) -> (bool, bool) {
        let lines = lines(text);
        (shape.is_complete(&lines), shape.is_success(&lines))
    }

    #[test]
    fn smtp_replies_end_at_the_line_without_a_dash_and_succeed_on_their_code() {
        assert_eq!(
            complete_and_ok(Shape::Smtp(220), "220-mail.example ESMTP\r\n220 ready"),
            (true, true)
        );
        assert_eq!(
            complete_and_ok(Shape::Smtp(220), "220-mail.example ESMTP"),
            (false, true)
        );
        assert_eq!(
            complete_and_ok(Shape::Smtp(220), "554 no service here"),
            (true, false)
        );
        assert_eq!(complete_and_ok(Shape::Smtp(221), "221"), (true, true));
        assert_eq!(complete_and_ok(Shape::Smtp(220), "hello"), (true, false));
    }

    #[test]
    fn imap_and_pop3_replies_end_and_succeed_as_their_protocols_say() {
        assert_eq!(
            complete_and_ok(Shape::ImapGreeting, "* OK [CAPABILITY IMAP4rev1] ready"),
            (true, true)
        );
        assert_eq!(
            complete_and_ok(Shape::ImapGreeting, "* PREAUTH hi"),
            (true, true)
        );
        assert_eq!(
            complete_and_ok(Shape::ImapGreeting, "* BYE go away"),
            (true, false)
        );
        assert_eq!(
            complete_and_ok(Shape::ImapTagged("a1"), "* CAPABILITY IMAP4rev1"),
            (false, false)
        );
        assert_eq!(
            complete_and_ok(
                Shape::ImapTagged("a1"),
                "* CAPABILITY IMAP4rev1\r\na1 OK done"
            ),
            (true, true)
        );
        assert_eq!(
            complete_and_ok(Shape::ImapTagged("a2"), "a2 BAD no"),
            (true, false)
        );
        assert_eq!(complete_and_ok(Shape::Pop, "+OK ready"), (true, true));
        assert_eq!(complete_and_ok(Shape::Pop, "-ERR busy"), (true, false));
        assert_eq!(complete_and_ok(Shape::PopList, "+OK"), (false, true));
        assert_eq!(
            complete_and_ok(Shape::PopList, "+OK\r\nSTLS\r\n."),
            (true, true)
        );
        assert_eq!(
            complete_and_ok(Shape::PopList, "-ERR unknown"),
            (true, false)
        );
    }

    #[test]
    fn starttls_is_found_in_each_protocols_capability_list() {
        let reply = |text: &str| Reply {
            ok: true,
            lines: lines(text),
        };
        let ehlo = reply("250-mail.example\r\n250-PIPELINING\r\n250-starttls\r\n250 8BITMIME");
        assert!(offers_starttls(MailProtocol::SMTP, &ehlo));
        let plain = reply("250-mail.example STARTTLS\r\n250 8BITMIME");
        assert!(!offers_starttls(MailProtocol::SMTP, &plain));
        let imap = reply("* CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN\r\na1 OK done");
        assert!(offers_starttls(MailProtocol::IMAP, &imap));
        let imap = reply("* CAPABILITY IMAP4rev1 LOGINDISABLED\r\na1 OK STARTTLS");
        assert!(!offers_starttls(MailProtocol::IMAP, &imap));
        let pop = reply("+OK\r\nUSER\r\nSTLS\r\n.");
        assert!(offers_starttls(MailProtocol::POP3, &pop));
        let pop = reply("+OK STLS\r\nUSER\r\n.");
        assert!(!offers_starttls(MailProtocol::POP3, &pop));
    }

    #[test]
    fn server_text_is_bounded_and_escaped() {
        assert_eq!(printable("220 a|b\x1b[0m\r"), "220 a\\u{7c}b\\u{1b}[0m\\r");
        let long = "x".repeat(500);
        let shown = printable(&long);
        assert_eq!(shown.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn helo_names_cannot_carry_commands() {
        assert!(helo_name("probe.example").is_ok());
        assert!(helo_name("[127.0.0.1]").is_ok());
        assert!(helo_name("x\r\nRCPT TO:<a@b>").is_err());
        assert!(helo_name("two words").is_err());
        assert!(helo_name("").is_err());
        assert!(helo_name(&machine_host_name()).is_ok());
    }

    /// A session reading `server_says` from the other end of a pipe.
    fn session_hearing(server_says: Vec<u8>) -> Session<'static, tokio::io::DuplexStream> {
        let (client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let _ = server.write_all(&server_says).await;
            // Keeps the pipe open (a server that stops talking) until the session drops it.
            let mut sink = Vec::new();
            let _ = server.read_to_end(&mut sink).await;
        });
        Session::new(
            client,
            MailProtocol::SMTP,
            "mail.example port 25",
            Instant::now(),
            Duration::from_secs(5),
        )
    }

    #[tokio::test]
    async fn a_reply_longer_than_the_limit_is_refused() {
        let endless = "250-PIPELINING\r\n".repeat(MAX_REPLY_BYTES / 16 + 1);
        let mut session = session_hearing(format!("220 hi\r\n{endless}").into_bytes());
        assert!(session.greeting().await.unwrap().ok);
        let error = session.ehlo("probe.example").await.unwrap_err();
        assert!(
            error.to_string().contains("longer than 65536 bytes"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn bytes_after_the_starttls_answer_are_refused() {
        let injected = b"220 hi\r\n250-hi\r\n250 STARTTLS\r\n220 go ahead\r\nMAIL FROM:<x@y>\r\n";
        let mut session = session_hearing(injected.to_vec());
        assert!(session.greeting().await.unwrap().ok);
        assert!(session.ehlo("probe.example").await.unwrap());
        let error = session.start_tls(Some(true)).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("sent data after its STARTTLS reply"),
            "{error}"
        );
    }
}
