//! The agent DaemonSet: one `vedette-agent node` on every node of the zone.
//!
//! - **Placement.** The zone's `nodeSelector` is a LabelSelector; its `matchLabels` become
//!   the pod's `nodeSelector` and its `matchExpressions` one required node-affinity term
//!   (the operators `In`, `NotIn`, `Exists`, `DoesNotExist` mean the same for nodes), so the
//!   DaemonSet runs exactly on the nodes the zone selects.
//! - **Identity.** The agent authenticates to its satellites with a projected ServiceAccount
//!   token, audience `vedette`, valid for an hour and renewed by the kubelet; the ordinary API
//!   token is not mounted, the agent never talks to the API server.
//! - **Host access.** `/proc` and `/` of the node are mounted read-only at `/host/proc` and
//!   `/host/root`, and the agent is told so (`--host-proc`, `--host-root`): its machine probes
//!   read the node, not the container. No host PID, network or IPC namespace.
//! - **Node-local state.** Two hostPaths survive pod restarts and upgrades: the spool,
//!   `/var/lib/vedette/<zone>` at [`AGENT_SPOOL_DIR`], and the last good plan,
//!   `/var/lib/vedette-state/<zone>` at [`AGENT_STATE_DIR`] (the agent's default
//!   `--state-dir`): with the read-only root file system, the only writable places besides
//!   `/tmp`. The state has its own parent directory because any suffix (`<zone>-state`)
//!   would be another zone's spool.
//! - **Scraped and probed.** The agent's admin server listens on port [`AGENT_PORT`], named
//!   [`AGENT_PORT_NAME`] like the satellite's, so one PodMonitor (the chart's) scrapes the
//!   `/metrics` of both. Readiness is `/readyz`; liveness `/healthz`, lenient (two minutes of
//!   misses) since a restart stops the checks that are running.
//! - **User.** The agent runs as uid 0 *without any capability* (all dropped, no privilege
//!   escalation, read-only root file system): the kubelet creates the spool directory owned
//!   by root, and an unprivileged uid could not write it without an extra init container that
//!   needs `CAP_CHOWN`. Root without capabilities can write what root owns and nothing else.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, HostPathVolumeSource, NodeAffinity,
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodSecurityContext, PodSpec,
    PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use vedette_crds::MonitorZone;

use super::BuildContext;
use super::common::{AGENT_PORT, AGENT_PORT_NAME, http_probe};
use super::common::{AGENT_TOKEN_DIR, field_env, vedette_token_volume};
use super::common::{
    Component, agent_name, labels, object_meta, restricted_container_security_context,
    runtime_default_seccomp, selector_labels, zone_name,
};
use super::service::{satellite_url, standby_url};

/// Where the agent sees its spool.
pub const AGENT_SPOOL_DIR: &str = "/var/lib/vedette/spool";
/// Where the agent keeps its last good plan (its default `--state-dir`).
pub const AGENT_STATE_DIR: &str = "/var/lib/vedette/state";
/// Where the agent sees the node's `/proc`.
pub const AGENT_HOST_PROC: &str = "/host/proc";
/// Where the agent sees the node's `/`.
pub const AGENT_HOST_ROOT: &str = "/host/root";
/// The zone's agent DaemonSet, or `None` when the zone runs no agents
/// (`spec.agents.enabled: false`); the reconciler then deletes any it made before.
pub fn agent_daemon_set(zone: &MonitorZone, ctx: &BuildContext) -> Option<DaemonSet> {
    if !zone.spec.agents.enabled {
        return None;
    }
    let name = zone_name(zone);
    Some(DaemonSet {
        metadata: object_meta(zone, ctx, agent_name(&name), Component::Agent),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name, Component::Agent)),
                match_expressions: None,
            },
            update_strategy: Some(DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_unavailable: Some(IntOrString::String("10%".to_owned())),
                    max_surge: None,
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name, Component::Agent)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(zone, ctx)),
            },
            ..DaemonSetSpec::default()
        }),
        status: None,
    })
}

fn pod_spec(zone: &MonitorZone, ctx: &BuildContext) -> PodSpec {
    let name = zone_name(zone);
    let selector = &zone.spec.node_selector;
    PodSpec {
        service_account_name: Some(agent_name(&name)),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        host_pid: Some(false),
        node_selector: selector
            .match_labels
            .clone()
            .filter(|labels| !labels.is_empty()),
        affinity: node_affinity(selector),
        tolerations: Some(zone.spec.agents.tolerations.clone()).filter(|t| !t.is_empty()),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(0),
            run_as_group: Some(0),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        containers: vec![container(zone, ctx)],
        volumes: Some(volumes(&name)),
        ..PodSpec::default()
    }
}

/// The zone's `matchExpressions` as one required node-affinity term (all must hold), or
/// `None` when it has none.
pub fn node_affinity(selector: &LabelSelector) -> Option<Affinity> {
    let expressions = selector.match_expressions.as_ref()?;
    if expressions.is_empty() {
        return None;
    }
    let requirements = expressions
        .iter()
        .map(|expression| NodeSelectorRequirement {
            key: expression.key.clone(),
            operator: expression.operator.clone(),
            values: expression
                .values
                .clone()
                .filter(|values| !values.is_empty()),
        })
        .collect();
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(requirements),
                    match_fields: None,
                }],
            }),
            preferred_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    })
}

fn container(zone: &MonitorZone, ctx: &BuildContext) -> Container {
    // The zone's Service first, then the standby the zone asks for (failover: see the
    // agent's transport).
    let upstream = std::iter::once(satellite_url(zone, ctx))
        .chain(standby_url(zone, ctx))
        .collect::<Vec<_>>()
        .join(",");
    let token_file = format!("{AGENT_TOKEN_DIR}/token");
    let listen = format!("0.0.0.0:{AGENT_PORT}");
    let args = [
        "node",
        "--upstream",
        &upstream,
        "--listen",
        &listen,
        "--spool-dir",
        AGENT_SPOOL_DIR,
        "--token-file",
        &token_file,
        "--host-root",
        AGENT_HOST_ROOT,
        "--host-proc",
        AGENT_HOST_PROC,
    ];
    Container {
        name: "agent".to_owned(),
        image: Some(ctx.image.clone()),
        command: Some(vec!["vedette-agent".to_owned()]),
        args: Some(args.iter().map(|arg| (*arg).to_owned()).collect()),
        env: Some(vec![field_env("NODE_NAME", "spec.nodeName")]),
        ports: Some(vec![ContainerPort {
            name: Some(AGENT_PORT_NAME.to_owned()),
            container_port: AGENT_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(http_probe("/readyz", AGENT_PORT_NAME, 10, 3, 5)),
        liveness_probe: Some(http_probe("/healthz", AGENT_PORT_NAME, 20, 6, 5)),
        resources: zone.spec.agents.resources.clone(),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(vec![
            mount("spool", AGENT_SPOOL_DIR, false),
            mount("state", AGENT_STATE_DIR, false),
            mount("host-proc", AGENT_HOST_PROC, true),
            VolumeMount {
                // Mounts the node makes after the agent started (new disks) show up too.
                mount_propagation: Some("HostToContainer".to_owned()),
                ..mount("host-root", AGENT_HOST_ROOT, true)
            },
            mount("token", AGENT_TOKEN_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        ..Container::default()
    }
}

fn volumes(zone: &str) -> Vec<Volume> {
    vec![
        host_path(
            "spool",
            &format!("/var/lib/vedette/{zone}"),
            "DirectoryOrCreate",
        ),
        host_path(
            "state",
            &format!("/var/lib/vedette-state/{zone}"),
            "DirectoryOrCreate",
        ),
        host_path("host-proc", "/proc", "Directory"),
        host_path("host-root", "/", "Directory"),
        vedette_token_volume(),
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ]
}

fn host_path(name: &str, path: &str, type_: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_owned(),
            type_: Some(type_.to_owned()),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only).filter(|read_only| *read_only),
        ..VolumeMount::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::build::fixtures::{context, dmz, label_selector_matches};

    /// Whether a node with `node_labels` is one the DaemonSet's pods may run on, judged the way
    /// the scheduler judges `nodeSelector` and required node affinity.
    fn schedulable_on(pod: &PodSpec, node_labels: &BTreeMap<String, String>) -> bool {
        let selector_holds = pod
            .node_selector
            .iter()
            .flatten()
            .all(|(key, value)| node_labels.get(key) == Some(value));
        let terms = pod
            .affinity
            .as_ref()
            .and_then(|affinity| affinity.node_affinity.as_ref())
            .and_then(|affinity| {
                affinity
                    .required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|selector| selector.node_selector_terms.clone());
        let affinity_holds = terms.is_none_or(|terms| {
            terms.iter().any(|term| {
                term.match_expressions.iter().flatten().all(|requirement| {
                    let value = node_labels.get(&requirement.key);
                    let values = requirement.values.clone().unwrap_or_default();
                    match requirement.operator.as_str() {
                        "In" => value.is_some_and(|v| values.contains(v)),
                        "NotIn" => value.is_none_or(|v| !values.contains(v)),
                        "Exists" => value.is_some(),
                        "DoesNotExist" => value.is_none(),
                        _ => false,
                    }
                })
            })
        });
        selector_holds && affinity_holds
    }

    fn pod(zone: &MonitorZone) -> PodSpec {
        agent_daemon_set(zone, &context())
            .expect("agents enabled")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
    }

    #[test]
    fn agent_daemon_set_snapshot() {
        insta::assert_yaml_snapshot!(agent_daemon_set(&dmz(), &context()));
    }

    #[test]
    fn no_daemon_set_when_agents_are_disabled() {
        let mut zone = dmz();
        zone.spec.agents.enabled = false;
        assert_eq!(agent_daemon_set(&zone, &context()), None);
    }

    #[test]
    fn the_daemon_set_runs_on_exactly_the_nodes_the_zone_selects() {
        let zone = dmz();
        let pod = pod(&zone);
        let nodes: Vec<BTreeMap<String, String>> = [
            vec![("vedette.dev/zone", "dmz")],
            vec![("vedette.dev/zone", "dmz"), ("tier", "edge")],
            vec![("vedette.dev/zone", "dmz"), ("tier", "web")],
            vec![
                ("vedette.dev/zone", "dmz"),
                ("node-role.kubernetes.io/control-plane", ""),
            ],
            vec![("vedette.dev/zone", "core"), ("tier", "edge")],
            vec![("tier", "edge")],
            vec![],
        ]
        .into_iter()
        .map(|labels| {
            labels
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect();
        let mut selected = 0;
        for node in &nodes {
            let wanted = label_selector_matches(&zone.spec.node_selector, node);
            selected += usize::from(wanted);
            assert_eq!(schedulable_on(&pod, node), wanted, "node labels {node:?}");
        }
        assert_eq!(
            selected, 2,
            "the fixture should select some nodes and not others"
        );
    }

    #[test]
    fn a_select_everything_zone_has_no_node_constraints() {
        let mut zone = dmz();
        zone.spec.node_selector = LabelSelector::default();
        let pod = pod(&zone);
        assert_eq!(pod.node_selector, None);
        assert_eq!(pod.affinity, None);
    }

    /// The hostPath of the volume mounted at `mount_path`, and whether the mount is read-only.
    fn host_path_at(pod: &PodSpec, mount_path: &str) -> (String, bool) {
        let mount = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|mount| mount.mount_path == mount_path)
            .unwrap_or_else(|| panic!("nothing mounted at {mount_path}"));
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|volume| volume.name == mount.name)
            .unwrap();
        let host_path = volume.host_path.clone().expect("a hostPath").path;
        (host_path, mount.read_only == Some(true))
    }

    #[test]
    fn the_agent_reads_the_node_and_keeps_its_spool_and_plan_on_it() {
        let pod = pod(&dmz());
        let args = pod.containers[0].args.clone().unwrap();
        let flag = |name: &str| {
            let at = args.iter().position(|arg| arg == name);
            at.map(|at| args[at + 1].clone())
                .unwrap_or_else(|| panic!("no {name} in {args:?}"))
        };
        assert_eq!(flag("--host-root"), AGENT_HOST_ROOT);
        assert_eq!(flag("--host-proc"), AGENT_HOST_PROC);
        assert_eq!(flag("--spool-dir"), AGENT_SPOOL_DIR);
        // The agent reads these arguments as meant, and keeps its plan where it is mounted.
        let argv = ["vedette-agent".to_owned()]
            .into_iter()
            .chain(args.clone())
            .chain(["--host".to_owned(), "node-1".to_owned()]);
        let cli = <vedette_agent::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
        let vedette_agent::cli::Command::Node(node) = cli.command else {
            panic!("not the node role: {args:?}");
        };
        assert_eq!(node.state_dir, std::path::Path::new(AGENT_STATE_DIR));
        assert_eq!(
            node.host_paths.host_root,
            std::path::Path::new(AGENT_HOST_ROOT)
        );
        assert_eq!(
            node.host_paths.host_proc,
            std::path::Path::new(AGENT_HOST_PROC)
        );
        assert_eq!(host_path_at(&pod, AGENT_HOST_ROOT), ("/".to_owned(), true));
        assert_eq!(
            host_path_at(&pod, AGENT_HOST_PROC),
            ("/proc".to_owned(), true)
        );
        assert_eq!(
            host_path_at(&pod, AGENT_SPOOL_DIR),
            ("/var/lib/vedette/dmz".to_owned(), false)
        );
        // The agent's default --state-dir, writable and kept on the node.
        assert_eq!(
            host_path_at(&pod, AGENT_STATE_DIR),
            ("/var/lib/vedette-state/dmz".to_owned(), false)
        );
    }

    /// The agent as its container's arguments configure it.
    fn node_cli(pod: &PodSpec) -> vedette_agent::cli::NodeArgs {
        let argv = ["vedette-agent".to_owned()]
            .into_iter()
            .chain(pod.containers[0].args.clone().unwrap())
            .chain(["--host".to_owned(), "node-1".to_owned()]);
        let cli = <vedette_agent::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
        let vedette_agent::cli::Command::Node(node) = cli.command else {
            panic!("not the node role");
        };
        node
    }

    #[tokio::test]
    async fn the_agent_serves_its_metrics_and_probes_on_its_declared_port() {
        let pod = pod(&dmz());
        let container = &pod.containers[0];
        let ports = container.ports.clone().expect("a declared port");
        let [port] = ports.as_slice() else {
            panic!("one port: {ports:?}");
        };
        assert_eq!(port.name.as_deref(), Some(AGENT_PORT_NAME));
        // The agent listens on all of the pod's addresses, on the declared port.
        let listen = node_cli(&pod).listen;
        assert!(listen.ip().is_unspecified(), "{listen}");
        assert_eq!(i32::from(listen.port()), port.container_port);
        let probes = [
            ("readiness", container.readiness_probe.clone()),
            ("liveness", container.liveness_probe.clone()),
        ];
        // The agent's own admin router answers every probe and the PodMonitor's /metrics.
        let registry = std::sync::Arc::new(vedette_agent::metrics::registry(&std::sync::Arc::new(
            vedette_agent::metrics::Metrics::default(),
        )));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(vedette_agent::http::serve_metrics(listener, registry));
        let mut paths = vec!["/metrics".to_owned()];
        for (kind, probe) in probes {
            let get = probe
                .and_then(|probe| probe.http_get)
                .unwrap_or_else(|| panic!("no {kind} HTTP probe"));
            assert_eq!(
                get.port,
                IntOrString::String(AGENT_PORT_NAME.to_owned()),
                "{kind}"
            );
            paths.push(get.path.expect("a path"));
        }
        for path in paths {
            let response = reqwest::get(format!("http://{address}{path}"))
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
        server.abort();
    }

    #[test]
    fn the_agent_holds_only_its_vedette_token() {
        let pod = pod(&dmz());
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.host_pid, Some(false));
        let token = pod
            .volumes
            .unwrap()
            .into_iter()
            .find_map(|v| v.projected)
            .unwrap();
        let projection = token.sources.unwrap()[0]
            .service_account_token
            .clone()
            .unwrap();
        assert_eq!(projection.audience.as_deref(), Some("vedette"));
        assert_eq!(projection.expiration_seconds, Some(3600));
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        for mount in mounts.iter().filter(|m| m.mount_path.starts_with("/host")) {
            assert_eq!(mount.read_only, Some(true), "{}", mount.mount_path);
        }
    }
}
