//! Installing with Helm against the real control plane: the chart lints, renders manifests the
//! apiserver accepts, installs, upgrades without changing anything, uninstalls without leaving
//! objects behind, rejects wrongly typed values, and its roles allow exactly what they should.

use std::process::Stdio;
use std::time::Duration;

use vedette_e2e::tools::{helm, repository, run_ok};
use vedette_e2e::{ControlPlane, wait};

const NAMESPACE: &str = "vedette-system";

fn chart() -> String {
    repository().join("charts/vedette").display().to_string()
}

fn can_i(
    plane: &ControlPlane,
    who: &str,
    verb: &str,
    what: &str,
    namespace: Option<&str>,
) -> anyhow::Result<bool> {
    let mut command = plane.kubectl();
    let (resource, subresource) = what
        .split_once('/')
        .map_or((what, None), |(r, s)| (r, Some(s)));
    command.args(["auth", "can-i", verb, resource, "--as", who]);
    if let Some(subresource) = subresource {
        command.arg(format!("--subresource={subresource}"));
    }
    match namespace {
        Some(ns) => command.args(["-n", ns]),
        None => command.arg("--all-namespaces"),
    };
    let output = command.output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "yes")
}

/// The resourceVersions of every object the release created, by kind/name.
fn release_versions(plane: &ControlPlane) -> anyhow::Result<String> {
    run_ok(plane.kubectl().args([
        "get",
        "statefulset,service,serviceaccount,role,rolebinding,clusterrole,clusterrolebinding",
        "-A",
        "-l",
        "app.kubernetes.io/instance=vedette",
        "-o",
        "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}",
    ]))
}

/// The resourceVersions of the template library's CheckTemplates in the release namespace.
fn library_versions(plane: &ControlPlane) -> anyhow::Result<Vec<String>> {
    let listed = run_ok(plane.kubectl().args([
        "get",
        "checktemplates",
        "-n",
        NAMESPACE,
        "-l",
        "vedette.dev/library=true",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}",
    ]))?;
    Ok(listed.lines().map(str::to_owned).collect())
}

/// How many templates the library file holds.
fn library_size() -> anyhow::Result<usize> {
    let path = std::path::Path::new(&chart()).join("files/library.yaml");
    let text = std::fs::read_to_string(path)?;
    Ok(text.matches("\nkind: CheckTemplate\n").count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_lints_and_renders_manifests_the_apiserver_accepts() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    run_ok(helm(&plane)?.args(["lint", "--strict", &chart()]))?;
    let rendered = run_ok(helm(&plane)?.args([
        "template",
        "vedette",
        &chart(),
        "-n",
        NAMESPACE,
        "--kube-version",
        "v1.34.4",
        "--include-crds",
    ]))?;
    run_ok(plane.kubectl().args(["create", "namespace", NAMESPACE]))?;
    // The CRDs for real first: a dry run registers no kind, and the chart's template library
    // is made of CheckTemplates.
    let crds = format!("{}/crds", chart());
    run_ok(
        plane
            .kubectl()
            .args(["apply", "--server-side", "-f", &crds]),
    )?;
    run_ok(plane.kubectl().args([
        "wait",
        "--for=condition=Established",
        "crd/checktemplates.vedette.dev",
        "--timeout=60s",
    ]))?;
    let mut apply = plane.kubectl();
    apply
        .args(["apply", "--server-side", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = apply.spawn()?;
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), rendered.as_bytes())?;
    let output = child.wait_with_output()?;
    assert!(
        output.status.success(),
        "server-side dry run refused the chart: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let accepted = String::from_utf8_lossy(&output.stdout);
    for object in [
        "statefulset.apps/vedette-operator",
        "clusterrole.rbac.authorization.k8s.io/vedette-view",
        "customresourcedefinition.apiextensions.k8s.io/rulesets.vedette.dev",
        "checktemplate.vedette.dev/check-ping",
    ] {
        assert!(
            accepted.contains(object),
            "{object} missing from: {accepted}"
        );
    }
    // Satellites are told every master by its own stable name, one per replica.
    let masters = "--masters-url=http://vedette-operator-0.vedette-masters.vedette-system.svc:8080,http://vedette-operator-1.vedette-masters.vedette-system.svc:8080";
    assert!(
        rendered.contains(masters),
        "the operator is not given one master URL per replica: {rendered}"
    );
    assert!(
        rendered.contains("clusterIP: None"),
        "the masters Service is not headless"
    );
    // values.schema.json rejects wrong types.
    let wrong = helm(&plane)?
        .args([
            "template",
            "vedette",
            &chart(),
            "--set",
            "operator.replicas=two",
        ])
        .output()?;
    assert!(
        !wrong.status.success(),
        "a string replica count was accepted"
    );
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        message.contains("replicas"),
        "the error does not name the value: {message}"
    );
    plane.ensure_running()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installs_upgrades_without_change_and_uninstalls_cleanly() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    run_ok(helm(&plane)?.args([
        "install",
        "vedette",
        &chart(),
        "-n",
        NAMESPACE,
        "--create-namespace",
    ]))?;
    let installed = release_versions(&plane)?;
    for object in [
        "StatefulSet/vedette-operator",
        "ClusterRole/vedette-operator",
        "Role/vedette-operator",
        "ClusterRole/vedette-edit",
        "ServiceAccount/vedette",
        "Service/vedette-dashboard",
    ] {
        assert!(
            installed.contains(object),
            "{object} not installed: {installed}"
        );
    }
    run_ok(plane.kubectl().args([
        "wait",
        "--for=condition=Established",
        "crd/rulesets.vedette.dev",
        "--timeout=60s",
    ]))?;

    let library = library_versions(&plane)?;
    assert_eq!(
        library.len(),
        library_size()?,
        "the template library is not installed whole: {library:?}"
    );

    run_ok(helm(&plane)?.args(["upgrade", "vedette", &chart(), "-n", NAMESPACE]))?;
    assert_eq!(
        installed,
        release_versions(&plane)?,
        "upgrading to the same chart changed objects"
    );
    assert_eq!(
        library,
        library_versions(&plane)?,
        "upgrading to the same chart rewrote the template library"
    );

    run_ok(helm(&plane)?.args(["uninstall", "vedette", "-n", NAMESPACE, "--wait"]))?;
    let left = wait::until(
        "release objects gone",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let left = release_versions(&plane);
            async move {
                let left = left?;
                Ok(left.trim().is_empty().then_some(left))
            }
        },
    )
    .await?;
    assert!(left.trim().is_empty());
    assert!(
        library_versions(&plane)?.is_empty(),
        "uninstalling left the template library behind"
    );
    plane.ensure_running()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roles_allow_what_they_should_and_nothing_more() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    run_ok(helm(&plane)?.args([
        "install",
        "vedette",
        &chart(),
        "-n",
        NAMESPACE,
        "--create-namespace",
    ]))?;
    let operator = format!("system:serviceaccount:{NAMESPACE}:vedette");
    for (verb, what, namespace) in [
        ("list", "nodes", None),
        ("watch", "rulesets.vedette.dev", None),
        ("patch", "rulesets.vedette.dev/status", Some("team-a")),
        ("create", "statefulsets.apps", Some(NAMESPACE)),
        ("delete", "deployments.apps", Some(NAMESPACE)),
        ("create", "daemonsets.apps", Some(NAMESPACE)),
        ("create", "configmaps", Some(NAMESPACE)),
        ("update", "leases.coordination.k8s.io", Some(NAMESPACE)),
        ("create", "tokenreviews.authentication.k8s.io", None),
        // A NotificationConfig's HMAC key or SMTP password, by name.
        ("get", "secrets", Some("team-a")),
        // Each zone's check-secrets Secret, in the operator's namespace only.
        ("create", "secrets", Some(NAMESPACE)),
    ] {
        assert!(
            can_i(&plane, &operator, verb, what, namespace)?,
            "the operator cannot {verb} {what} in {namespace:?}"
        );
    }
    for (verb, what, namespace) in [
        ("list", "secrets", Some("team-a")),
        ("watch", "secrets", None),
        ("create", "deployments.apps", Some("default")),
        ("delete", "nodes", None),
        ("update", "rulesets.vedette.dev", Some("team-a")),
        ("create", "pods", Some(NAMESPACE)),
        ("update", "rulesets.vedette.dev/finalizers", Some("team-a")),
    ] {
        assert!(
            !can_i(&plane, &operator, verb, what, namespace)?,
            "the operator can {verb} {what} in {namespace:?}"
        );
    }

    run_ok(plane.kubectl().args([
        "create",
        "clusterrolebinding",
        "alice-view",
        "--clusterrole=vedette-view",
        "--user=alice",
    ]))?;
    run_ok(plane.kubectl().args(["create", "namespace", "team-a"]))?;
    run_ok(plane.kubectl().args([
        "create",
        "rolebinding",
        "bob-edit",
        "-n",
        "team-a",
        "--clusterrole=vedette-edit",
        "--user=bob",
    ]))?;
    assert!(can_i(
        &plane,
        "alice",
        "list",
        "rulesets.vedette.dev",
        None
    )?);
    assert!(can_i(
        &plane,
        "alice",
        "get",
        "monitorzones.vedette.dev",
        None
    )?);
    assert!(
        !can_i(
            &plane,
            "alice",
            "create",
            "rulesets.vedette.dev",
            Some("team-a")
        )?,
        "vedette-view can write"
    );
    assert!(
        !can_i(
            &plane,
            "alice",
            "delete",
            "checktemplates.vedette.dev",
            Some("team-a")
        )?,
        "vedette-view can delete"
    );
    assert!(can_i(
        &plane,
        "bob",
        "create",
        "rulesets.vedette.dev",
        Some("team-a")
    )?);
    assert!(can_i(
        &plane,
        "bob",
        "delete",
        "businessprocesses.vedette.dev",
        Some("team-a")
    )?);
    assert!(
        !can_i(
            &plane,
            "bob",
            "create",
            "rulesets.vedette.dev",
            Some("team-b")
        )?,
        "vedette-edit leaks out of its namespace"
    );
    assert!(
        !can_i(&plane, "bob", "create", "monitorzones.vedette.dev", None)?,
        "vedette-edit can create zones"
    );

    // Aggregation: whoever has the built-in view role can read Vedette objects too.
    run_ok(plane.kubectl().args([
        "create",
        "rolebinding",
        "carol-view",
        "-n",
        "team-a",
        "--clusterrole=view",
        "--user=carol",
    ]))?;
    let carol = wait::until(
        "view aggregates vedette-view",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let allowed = can_i(
                &plane,
                "carol",
                "list",
                "rulesets.vedette.dev",
                Some("team-a"),
            );
            async move { Ok(allowed?.then_some(())) }
        },
    )
    .await;
    assert!(carol.is_ok(), "{carol:?}");
    plane.ensure_running()
}
