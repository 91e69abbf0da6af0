//! The snmp probe against Debian's `check_snmp` (monitoring-plugins, which runs net-snmp's
//! `snmpget`): N GETs of one OID from a local `snmpd`, one after the other, by the probe in this
//! process and by the plugin as child processes, for SNMP v2c and for v3 authPriv (SHA/AES,
//! the strongest pair check_snmp 2.3 offers). Prints, per GET, wall time and the CPU of the
//! asking side (user + system): for the probe this process's own CPU, for the plugin its
//! reaped children's (check_snmp and snmpget). snmpd's CPU is not counted on either side.
//! Prints numbers; never fails on them.
//!
//! `cargo bench -p vedette-agent --bench snmp_vs_check_snmp` (env: `BENCH_RUNS` = N, default
//! 500).

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Daemon, env_or, own_cpu_seconds};
use vedette_agent::probe::Prober;
use vedette_crds::CheckSpec;
use vedette_crds::check::{
    CheckSecret, PortOrParameter, SnmpAggregate, SnmpAuthProtocol, SnmpOperation,
    SnmpPrivacyProtocol, SnmpProbe, SnmpSecurityLevel, SnmpV3Security, SnmpVersion,
};

const CHECK_SNMP: &str = "/usr/lib/nagios/plugins/check_snmp";
const OID: &str = "1.3.6.1.2.1.1.3.0";
const USER: &str = "benchUser";
const AUTH_PASS: &str = "bench auth phrase";
const PRIV_PASS: &str = "bench priv phrase";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Clock ticks per second of `/proc/self/stat` times.
const TICKS: f64 = 100.0;

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 500);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    let config = dir.path().join("snmpd.conf");
    std::fs::write(
        &config,
        format!(
            "rocommunity public 127.0.0.1\ncreateUser {USER} SHA \"{AUTH_PASS}\" AES \"{PRIV_PASS}\"\nrouser {USER} priv\n"
        ),
    )
    .expect("snmpd.conf");
    let persistent = dir.path().join("persistent");
    std::fs::create_dir(&persistent).expect("persistent dir");
    let mut command = Command::new("snmpd");
    command
        .args(["-f", "-Lo", "-C", "-c"])
        .arg(&config)
        .arg(format!("udp:127.0.0.1:{port}"))
        .env("SNMP_PERSISTENT_DIR", &persistent)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut snmpd = Daemon::start("snmpd", command);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let prober = Prober::new();
    let secret = |name: &str| CheckSecret {
        name: name.into(),
        key: "passphrase".into(),
        namespace: Some("bench".into()),
    };
    prober.set_secrets(BTreeMap::from([
        (secret("auth").plan_key(), AUTH_PASS.to_owned()),
        (secret("priv").plan_key(), PRIV_PASS.to_owned()),
    ]));
    let v2c = SnmpProbe {
        host: "127.0.0.1".into(),
        port: PortOrParameter::Int(port.into()),
        version: SnmpVersion::V2c,
        community: None,
        community_secret: None,
        v3: None,
        oid: OID.into(),
        operation: SnmpOperation::Get,
        aggregate: SnmpAggregate::Count,
        expect: None,
    };
    let v3 = SnmpProbe {
        version: SnmpVersion::V3,
        v3: Some(SnmpV3Security {
            user: USER.into(),
            level: SnmpSecurityLevel::AuthPriv,
            auth_protocol: SnmpAuthProtocol::SHA,
            auth_password_secret: Some(secret("auth")),
            privacy_protocol: SnmpPrivacyProtocol::AES,
            privacy_password_secret: Some(secret("priv")),
            context: None,
        }),
        ..v2c.clone()
    };
    wait_until_answering(&runtime, &prober, &v2c, &mut snmpd);

    let port_text = port.to_string();
    let plugin_v2c: Vec<String> = [
        "-H",
        "127.0.0.1",
        "-p",
        &port_text,
        "-C",
        "public",
        "-o",
        OID,
    ]
    .map(String::from)
    .to_vec();
    let plugin_v3: Vec<String> = [
        "-H",
        "127.0.0.1",
        "-p",
        &port_text,
        "-P",
        "3",
        "-L",
        "authPriv",
        "-U",
        USER,
        "-a",
        "SHA",
        "-A",
        AUTH_PASS,
        "-x",
        "AES",
        "-X",
        PRIV_PASS,
        "-o",
        OID,
    ]
    .map(String::from)
    .to_vec();

    println!("snmp_vs_check_snmp: {runs} sequential GETs of {OID} from a local snmpd (net-snmp)");
    println!("machine: {}", support::machine());
    println!(
        "{:<14} {:<12} {:>10} {:>12} {:>12} {:>12}",
        "version", "side", "wall ms", "CPU ms", "user ms", "sys ms"
    );
    for (version, spec, argv) in [("v2c", &v2c, &plugin_v2c), ("v3 authPriv", &v3, &plugin_v3)] {
        let probe = probe_side(&runtime, &prober, spec, runs);
        print_row(version, "probe", runs, &probe);
        let plugin = plugin_side(argv, &persistent, runs);
        print_row(version, "check_snmp", runs, &plugin);
        println!(
            "{:<14} {:<12} {:>10.1}x {:>11.1}x",
            version,
            "ratio",
            plugin.wall / probe.wall,
            plugin.cpu / probe.cpu
        );
    }
    snmpd.assert_running();
}

/// What one side spent on all its GETs, in seconds.
struct Spent {
    wall: f64,
    cpu: f64,
    user: f64,
    system: f64,
}

fn print_row(version: &str, side: &str, runs: usize, spent: &Spent) {
    let per = |seconds: f64| seconds * 1000.0 / runs as f64;
    println!(
        "{:<14} {:<12} {:>10.3} {:>12.3} {:>12.3} {:>12.3}",
        version,
        side,
        per(spent.wall),
        per(spent.cpu),
        per(spent.user),
        per(spent.system)
    );
}

fn wait_until_answering(
    runtime: &tokio::runtime::Runtime,
    prober: &Prober,
    spec: &SnmpProbe,
    snmpd: &mut Daemon,
) {
    let check = CheckSpec {
        snmp: Some(spec.clone()),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        snmpd.assert_running();
        let output = runtime.block_on(prober.run(&check, Duration::from_millis(300)));
        if output.failure.is_none() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "snmpd did not answer: {output:?}"
        );
    }
}

/// The probe's GETs: this process's CPU (all threads).
fn probe_side(
    runtime: &tokio::runtime::Runtime,
    prober: &Prober,
    spec: &SnmpProbe,
    runs: usize,
) -> Spent {
    let check = CheckSpec {
        snmp: Some(spec.clone()),
        ..Default::default()
    };
    let (user_before, system_before) = support::own_user_system_seconds();
    let cpu_before = own_cpu_seconds();
    let started = Instant::now();
    runtime.block_on(async {
        for _ in 0..runs {
            let output = prober.run(&check, TIMEOUT).await;
            assert!(output.failure.is_none(), "{output:?}");
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = own_cpu_seconds() - cpu_before;
    let (user, system) = support::own_user_system_seconds();
    Spent {
        wall,
        cpu,
        user: user - user_before,
        system: system - system_before,
    }
}

/// check_snmp's GETs: the CPU of the reaped children (the plugin and the snmpget it runs).
fn plugin_side(argv: &[String], persistent: &std::path::Path, runs: usize) -> Spent {
    let (user_before, system_before) = children_user_system_seconds();
    let started = Instant::now();
    for _ in 0..runs {
        let output = Command::new(CHECK_SNMP)
            .args(argv)
            .env("LC_ALL", "C")
            .env("SNMP_PERSISTENT_DIR", persistent)
            .stdin(Stdio::null())
            .output()
            .expect("check_snmp (Debian package monitoring-plugins-standard) runs");
        assert!(
            output.status.success(),
            "check_snmp: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let wall = started.elapsed().as_secs_f64();
    let (user, system) = children_user_system_seconds();
    let (user, system) = (user - user_before, system - system_before);
    Spent {
        wall,
        cpu: user + system,
        user,
        system,
    }
}

/// User and system CPU seconds of this process's reaped children (`cutime`, `cstime`).
fn children_user_system_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .rfind(')')
        .map(|end| &stat[end + 2..])
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0.0) / TICKS;
    (field(13), field(14))
}

/// A loopback UDP port that was free a moment ago.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free UDP port")
        .port()
}
