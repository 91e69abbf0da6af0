//! The snmp probe against a real net-snmp `snmpd` on loopback: v2c GET and WALK, `expect`,
//! missing OIDs, a wrong community, and v3 users at every security level with several auth
//! and privacy protocols.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vedette_agent::probe::{ProbeOutput, Prober};
use vedette_agent::state::evaluate;
use vedette_crds::CheckSpec;
use vedette_crds::check::{
    CheckSecret, PortOrParameter, SnmpAggregate, SnmpAuthProtocol, SnmpOperation,
    SnmpPrivacyProtocol, SnmpProbe, SnmpSecurityLevel, SnmpV3Security, SnmpVersion,
};
use vedette_crds::template::CheckState;
use vedette_protocol::range::Range;

const TIMEOUT: Duration = Duration::from_secs(5);

const SYS_DESCR: &str = "1.3.6.1.2.1.1.1.0";
const SYS_UPTIME: &str = "1.3.6.1.2.1.1.3.0";
const SYSTEM: &str = "1.3.6.1.2.1.1";

/// The v3 users of the test agent: (user, auth protocol, auth pass phrase, privacy protocol,
/// privacy pass phrase), as `createUser` spells them.
const USERS: [(&str, &str, &str, &str, &str); 5] = [
    (
        "authPrivUser",
        "SHA-256",
        "pass phrase1",
        "AES",
        "pass phrase2",
    ),
    ("authUser", "SHA", "pass phrase3", "", ""),
    ("md5DesUser", "MD5", "pass phrase4", "DES", "pass phrase5"),
    (
        "shaAes256User",
        "SHA",
        "pass phrase6",
        "AES256",
        "pass phrase7",
    ),
    (
        "sha512Aes192User",
        "SHA-512",
        "pass phrase8",
        "AES192",
        "pass phrase9",
    ),
];

/// A private `snmpd` on a free loopback UDP port with its own configuration and persistent
/// directory; stopped by pid when dropped (also when the test panics).
struct Snmpd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Snmpd {
    async fn start() -> Self {
        for _ in 0..5 {
            if let Some(snmpd) = Self::try_start().await {
                return snmpd;
            }
        }
        panic!("snmpd did not start");
    }

    /// One start on a port that was free a moment ago; `None` when snmpd exited (the port was
    /// taken in between).
    async fn try_start() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("snmpd.conf");
        std::fs::write(&config, config_text()).unwrap();
        let persistent = dir.path().join("persistent");
        std::fs::create_dir(&persistent).unwrap();
        let child = Command::new("snmpd")
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(&config)
            .arg("-p")
            .arg(dir.path().join("snmpd.pid"))
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("SNMP_PERSISTENT_DIR", &persistent)
            .env("SNMPCONFPATH", dir.path())
            .env("MIBS", "")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("snmpd (Debian package snmpd) runs");
        let mut snmpd = Self {
            child,
            port,
            _dir: dir,
        };
        snmpd.ready().await.then_some(snmpd)
    }

    /// Polls with a GET until snmpd answers; false when it exited first.
    async fn ready(&mut self) -> bool {
        let started = Instant::now();
        let prober = Prober::new();
        let check = spec(v2c(self.port, SYS_UPTIME));
        while started.elapsed() < Duration::from_secs(20) {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let output = prober.run(&check, Duration::from_millis(300)).await;
            if output.failure.is_none() {
                return true;
            }
        }
        panic!("snmpd on port {} did not answer within 20 s", self.port);
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_text() -> String {
    let mut config = String::from("rocommunity public 127.0.0.1\nsysServices 72\n");
    for (user, auth, auth_pass, privacy, privacy_pass) in USERS {
        if privacy.is_empty() {
            config.push_str(&format!("createUser {user} {auth} \"{auth_pass}\"\n"));
            config.push_str(&format!("rouser {user} auth\n"));
        } else {
            config.push_str(&format!(
                "createUser {user} {auth} \"{auth_pass}\" {privacy} \"{privacy_pass}\"\n"
            ));
            config.push_str(&format!("rouser {user} priv\n"));
        }
    }
    config.push_str("createUser noAuthUser\nrouser noAuthUser noauth\n");
    config
}

fn v2c(port: u16, oid: &str) -> SnmpProbe {
    SnmpProbe {
        host: "127.0.0.1".into(),
        port: PortOrParameter::Int(port.into()),
        version: SnmpVersion::V2c,
        community: None,
        community_secret: None,
        v3: None,
        oid: oid.into(),
        operation: SnmpOperation::Get,
        aggregate: SnmpAggregate::Count,
        expect: None,
    }
}

fn secret(name: &str) -> CheckSecret {
    CheckSecret {
        name: name.into(),
        key: "passphrase".into(),
        namespace: Some("ns".into()),
    }
}

/// A v3 GET of sysDescr as `user`, with its Secrets named after the user.
fn v3(
    port: u16,
    user: &str,
    level: SnmpSecurityLevel,
    auth: SnmpAuthProtocol,
    privacy: SnmpPrivacyProtocol,
) -> SnmpProbe {
    SnmpProbe {
        version: SnmpVersion::V3,
        v3: Some(SnmpV3Security {
            user: user.into(),
            level,
            auth_protocol: auth,
            auth_password_secret: Some(secret(&format!("{user}-auth"))),
            privacy_protocol: privacy,
            privacy_password_secret: Some(secret(&format!("{user}-priv"))),
            context: None,
        }),
        ..v2c(port, SYS_DESCR)
    }
}

/// A prober that knows every user's pass phrases (as `v3` names their Secrets).
fn prober_with_passphrases() -> Prober {
    let prober = Prober::new();
    let mut values = BTreeMap::new();
    for (user, _, auth_pass, _, privacy_pass) in USERS {
        values.insert(
            secret(&format!("{user}-auth")).plan_key(),
            auth_pass.to_owned(),
        );
        values.insert(
            secret(&format!("{user}-priv")).plan_key(),
            privacy_pass.to_owned(),
        );
    }
    prober.set_secrets(values);
    prober
}

fn spec(snmp: SnmpProbe) -> CheckSpec {
    CheckSpec {
        snmp: Some(snmp),
        ..Default::default()
    }
}

async fn run(prober: &Prober, snmp: SnmpProbe) -> ProbeOutput {
    prober.run(&spec(snmp), TIMEOUT).await
}

fn assert_ok(output: &ProbeOutput) {
    assert!(output.failure.is_none(), "expected no failure: {output:?}");
    assert!(!output.timed_out, "{output:?}");
}

fn assert_failed(output: &ProbeOutput, expected: CheckState, reason: &str) {
    let (state, message) = output
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure: {output:?}"));
    assert_eq!(*state, expected, "{output:?}");
    assert!(
        message.contains(reason),
        "expected {reason:?} in {message:?}"
    );
}

#[tokio::test]
async fn v2c_get_of_sysuptime_is_a_number_of_seconds() {
    let snmpd = Snmpd::start().await;
    let output = run(&Prober::new(), v2c(snmpd.port, SYS_UPTIME)).await;
    assert_ok(&output);
    // The agent has just started: seconds, not hundredths of seconds.
    assert!(output.value >= 0.0 && output.value < 60.0, "{output:?}");
    let line = output.line(CheckState::Ok);
    assert!(line.starts_with("SNMP OK - "), "{line}");
    assert!(line.contains("|1.3.6.1.2.1.1.3.0="), "{line}");
    assert!(line.contains(" time="), "{line}");
    // Thresholds see the value: an uptime below a day is OK for `critical: 86400`, and
    // CRITICAL for `critical: 86400:` (alert below 86400).
    let below_a_day = Range::parse("86400").unwrap();
    assert_eq!(
        evaluate(output.value, None, Some(&below_a_day)),
        CheckState::Ok
    );
    let at_least_a_day = Range::parse("86400:").unwrap();
    assert_eq!(
        evaluate(output.value, None, Some(&at_least_a_day)),
        CheckState::Critical
    );
}

#[tokio::test]
async fn v2c_get_of_a_string_with_expect_matches_or_is_critical() {
    let snmpd = Snmpd::start().await;
    let prober = Prober::new();
    let output = run(&prober, v2c(snmpd.port, SYS_DESCR)).await;
    assert_ok(&output);
    assert!(output.value.is_nan(), "text has no value: {output:?}");
    assert!(output.output.contains("Linux"), "{output:?}");

    let matching = SnmpProbe {
        expect: Some("^Linux ".into()),
        ..v2c(snmpd.port, SYS_DESCR)
    };
    let output = run(&prober, matching).await;
    assert_ok(&output);
    assert!(output.value.is_finite(), "{output:?}");

    let mismatching = SnmpProbe {
        expect: Some("^FreeBSD".into()),
        ..v2c(snmpd.port, SYS_DESCR)
    };
    let output = run(&prober, mismatching).await;
    assert_failed(&output, CheckState::Critical, "does not match \"^FreeBSD\"");
}

#[tokio::test]
async fn v2c_get_of_a_missing_oid_is_critical_and_names_it() {
    let snmpd = Snmpd::start().await;
    let output = run(&Prober::new(), v2c(snmpd.port, "1.3.6.1.2.1.1.99.0")).await;
    assert_failed(&output, CheckState::Critical, "1.3.6.1.2.1.1.99.0");
    assert!(output.output.contains("noSuch"), "{output:?}");
}

#[tokio::test]
async fn v2c_walk_counts_and_sums_the_system_group() {
    let snmpd = Snmpd::start().await;
    let prober = Prober::new();
    let walk = |aggregate| SnmpProbe {
        operation: SnmpOperation::Walk,
        aggregate,
        ..v2c(snmpd.port, SYSTEM)
    };
    let count = run(&prober, walk(SnmpAggregate::Count)).await;
    assert_ok(&count);
    // sysDescr, sysObjectID, sysUpTime, sysContact, sysName, sysLocation, sysServices,
    // sysORLastChange and the sysORTable: more than 8, and nothing outside the group.
    assert!(count.value > 8.0 && count.value < 500.0, "{count:?}");
    assert!(count.output.starts_with("count "), "{count:?}");
    let rows = count.perfdata.iter().filter(|p| p.label == "3.0").count();
    assert_eq!(rows, 1, "sysUpTime's row: {count:?}");

    let sum = run(&prober, walk(SnmpAggregate::Sum)).await;
    assert_ok(&sum);
    // sysServices (72, as configured) is among the numbers summed.
    assert!(sum.value >= 72.0, "{sum:?}");
    let max = run(&prober, walk(SnmpAggregate::Max)).await;
    assert_ok(&max);
    assert!(max.value <= sum.value, "{max:?} {sum:?}");
}

#[tokio::test]
async fn a_walk_of_an_empty_subtree_counts_zero() {
    let snmpd = Snmpd::start().await;
    let walk = SnmpProbe {
        operation: SnmpOperation::Walk,
        ..v2c(snmpd.port, "1.3.6.1.2.1.1.99")
    };
    let output = run(&Prober::new(), walk).await;
    assert_ok(&output);
    assert_eq!(output.value, 0.0, "{output:?}");
}

#[tokio::test]
async fn a_wrong_community_is_critical_within_the_timeout() {
    let snmpd = Snmpd::start().await;
    let wrong = SnmpProbe {
        community: Some("not-public".into()),
        ..v2c(snmpd.port, SYS_UPTIME)
    };
    let timeout = Duration::from_millis(900);
    let started = Instant::now();
    let output = Prober::new().run(&spec(wrong), timeout).await;
    assert!(
        started.elapsed() < timeout + Duration::from_secs(1),
        "{output:?}"
    );
    assert_failed(
        &output,
        CheckState::Critical,
        "no answer from 127.0.0.1 port",
    );
    assert!(output.output.contains("wrong community"), "{output:?}");
    assert!(!output.timed_out, "a probe's own verdict: {output:?}");
}

#[tokio::test]
async fn a_community_from_a_secret_is_used() {
    let snmpd = Snmpd::start().await;
    let prober = Prober::new();
    let community = secret("community");
    prober.set_secrets(BTreeMap::from([(community.plan_key(), "public".into())]));
    let with_secret = SnmpProbe {
        community: Some("not-public".into()),
        community_secret: Some(community),
        ..v2c(snmpd.port, SYS_UPTIME)
    };
    assert_ok(&run(&prober, with_secret).await);
}

#[tokio::test]
async fn v3_auth_priv_sha256_aes_get_works() {
    let snmpd = Snmpd::start().await;
    let check = v3(
        snmpd.port,
        "authPrivUser",
        SnmpSecurityLevel::AuthPriv,
        SnmpAuthProtocol::SHA256,
        SnmpPrivacyProtocol::AES,
    );
    let output = run(&prober_with_passphrases(), check).await;
    assert_ok(&output);
    assert!(output.output.contains("Linux"), "{output:?}");
}

#[tokio::test]
async fn v3_auth_priv_with_des_aes192_and_aes256_keys_works() {
    let snmpd = Snmpd::start().await;
    let prober = prober_with_passphrases();
    for (user, auth, privacy) in [
        (
            "md5DesUser",
            SnmpAuthProtocol::MD5,
            SnmpPrivacyProtocol::DES,
        ),
        // SHA-1 keys are shorter than AES-256's: the key extension must match net-snmp's.
        (
            "shaAes256User",
            SnmpAuthProtocol::SHA,
            SnmpPrivacyProtocol::AES256,
        ),
        (
            "sha512Aes192User",
            SnmpAuthProtocol::SHA512,
            SnmpPrivacyProtocol::AES192,
        ),
    ] {
        let check = v3(snmpd.port, user, SnmpSecurityLevel::AuthPriv, auth, privacy);
        let output = run(&prober, check).await;
        assert!(output.failure.is_none(), "{user}: {output:?}");
        assert!(output.output.contains("Linux"), "{user}: {output:?}");
    }
}

#[tokio::test]
async fn v3_auth_no_priv_and_no_auth_no_priv_work() {
    let snmpd = Snmpd::start().await;
    let prober = prober_with_passphrases();
    let auth = SnmpProbe {
        oid: SYS_UPTIME.into(),
        ..v3(
            snmpd.port,
            "authUser",
            SnmpSecurityLevel::AuthNoPriv,
            SnmpAuthProtocol::SHA,
            SnmpPrivacyProtocol::AES,
        )
    };
    let output = run(&prober, auth).await;
    assert_ok(&output);
    assert!(output.value.is_finite(), "{output:?}");

    let mut none = v3(
        snmpd.port,
        "noAuthUser",
        SnmpSecurityLevel::NoAuthNoPriv,
        SnmpAuthProtocol::SHA,
        SnmpPrivacyProtocol::AES,
    );
    none.oid = SYS_UPTIME.into();
    let output = run(&prober, none).await;
    assert_ok(&output);
}

#[tokio::test]
async fn v3_wrong_auth_pass_phrase_is_critical_without_the_pass_phrase() {
    let snmpd = Snmpd::start().await;
    let prober = Prober::new();
    let check = v3(
        snmpd.port,
        "authPrivUser",
        SnmpSecurityLevel::AuthPriv,
        SnmpAuthProtocol::SHA256,
        SnmpPrivacyProtocol::AES,
    );
    let wrong = "wrong pass phrase 1";
    prober.set_secrets(BTreeMap::from([
        (secret("authPrivUser-auth").plan_key(), wrong.to_owned()),
        (
            secret("authPrivUser-priv").plan_key(),
            "pass phrase2".to_owned(),
        ),
    ]));
    let output = run(&prober, check).await;
    assert_failed(&output, CheckState::Critical, "authentication failed");
    assert!(output.output.contains("usmStatsWrongDigests"), "{output:?}");
    let everything = format!("{output:?} {}", output.line(CheckState::Critical));
    assert!(!everything.contains(wrong), "{everything}");
    assert!(!everything.contains("pass phrase2"), "{everything}");
}

#[tokio::test]
async fn v3_wrong_privacy_pass_phrase_is_critical_and_says_so() {
    let snmpd = Snmpd::start().await;
    let prober = Prober::new();
    let check = v3(
        snmpd.port,
        "authPrivUser",
        SnmpSecurityLevel::AuthPriv,
        SnmpAuthProtocol::SHA256,
        SnmpPrivacyProtocol::AES,
    );
    prober.set_secrets(BTreeMap::from([
        (
            secret("authPrivUser-auth").plan_key(),
            "pass phrase1".to_owned(),
        ),
        (
            secret("authPrivUser-priv").plan_key(),
            "wrong pass phrase 2".to_owned(),
        ),
    ]));
    // net-snmp drops what it cannot decrypt: the probe waits its timeout, no longer.
    let timeout = Duration::from_millis(900);
    let started = Instant::now();
    let output = prober.run(&spec(check), timeout).await;
    assert!(
        started.elapsed() < timeout + Duration::from_secs(1),
        "{output:?}"
    );
    assert_failed(&output, CheckState::Critical, "wrong privacy pass phrase");
    assert!(
        !format!("{output:?}").contains("wrong pass phrase 2"),
        "{output:?}"
    );
}

#[tokio::test]
async fn v3_unsupported_security_level_is_critical_and_names_the_cause() {
    let snmpd = Snmpd::start().await;
    // authUser has no privacy key.
    let mut check = v3(
        snmpd.port,
        "authUser",
        SnmpSecurityLevel::AuthPriv,
        SnmpAuthProtocol::SHA,
        SnmpPrivacyProtocol::AES,
    );
    check.v3.as_mut().unwrap().privacy_password_secret = Some(secret("authUser-auth"));
    let output = run(&prober_with_passphrases(), check).await;
    assert_failed(
        &output,
        CheckState::Critical,
        "usmStatsUnsupportedSecLevels",
    );
}

#[tokio::test]
async fn v3_unknown_user_is_critical() {
    let snmpd = Snmpd::start().await;
    let mut check = v3(
        snmpd.port,
        "authPrivUser",
        SnmpSecurityLevel::AuthPriv,
        SnmpAuthProtocol::SHA256,
        SnmpPrivacyProtocol::AES,
    );
    check.v3.as_mut().unwrap().user = "nobody".into();
    let prober = prober_with_passphrases();
    prober.set_secrets(BTreeMap::from([
        (
            secret("authPrivUser-auth").plan_key(),
            "pass phrase1".into(),
        ),
        (
            secret("authPrivUser-priv").plan_key(),
            "pass phrase2".into(),
        ),
    ]));
    let output = run(&prober, check).await;
    assert_failed(
        &output,
        CheckState::Critical,
        "unknown user (usmStatsUnknownUserNames)",
    );
}

#[tokio::test]
async fn v3_missing_secret_is_unknown() {
    let snmpd = Snmpd::start().await;
    let check = v3(
        snmpd.port,
        "authPrivUser",
        SnmpSecurityLevel::AuthPriv,
        SnmpAuthProtocol::SHA256,
        SnmpPrivacyProtocol::AES,
    );
    let output = run(&Prober::new(), check).await;
    assert_failed(&output, CheckState::Unknown, "authPrivUser-auth");
}

#[test]
fn validate_refuses_bad_oids_and_incomplete_v3_settings() {
    let bad_oid = spec(v2c(161, "1.3.x"));
    let error = vedette_agent::probe::validate(&bad_oid).unwrap_err();
    assert!(error.to_string().contains("1.3.x"), "{error}");
    assert!(vedette_agent::probe::validate(&spec(v2c(161, SYS_UPTIME))).is_ok());

    let mut no_auth_secret = v3(
        161,
        "u",
        SnmpSecurityLevel::AuthNoPriv,
        SnmpAuthProtocol::SHA,
        SnmpPrivacyProtocol::AES,
    );
    no_auth_secret.v3.as_mut().unwrap().auth_password_secret = None;
    let error = vedette_agent::probe::validate(&spec(no_auth_secret)).unwrap_err();
    assert!(error.to_string().contains("authPasswordSecret"), "{error}");

    let v3_without_settings = SnmpProbe {
        version: SnmpVersion::V3,
        ..v2c(161, SYS_UPTIME)
    };
    assert!(vedette_agent::probe::validate(&spec(v3_without_settings)).is_err());
    let bad_expect = SnmpProbe {
        expect: Some("(".into()),
        ..v2c(161, SYS_UPTIME)
    };
    assert!(vedette_agent::probe::validate(&spec(bad_expect)).is_err());
    let bad_port = SnmpProbe {
        port: PortOrParameter::Int(0),
        ..v2c(161, SYS_UPTIME)
    };
    assert!(vedette_agent::probe::validate(&spec(bad_port)).is_err());
}
