//! An agent refuses a check it cannot run alone and a plan it cannot read whole. A check
//! without a probe (what a newer release's probe looks like to this one) is refused alone: the
//! RuleSet's status shows it UNKNOWN with the reason while the agent keeps its plan. A plan with
//! two checks of one id cannot be read: the agent keeps running its last good one and says so,
//! and the zone's status counts it in agentsOnHeldPlan. The satellite reads its bundle from a
//! file (the bundle the operator published, decoded from its ConfigMaps), so that the test can
//! serve what the operator never would. No process exits.

use std::net::TcpListener;
use std::time::Duration;

use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::operator;

const NAMESPACE: &str = "res-held";
const APP: &str = "res-held-app";
const ZONE: &str = "rh";
const NODE: &str = "rh-node-1";
const STATUS_WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_its_last_good_plan_is_counted_in_zone_status() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let flags = ["--insecure-no-auth"];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let client = scenario.client.clone();
    let (mut bundle, _) = operator::bundle(&client, NAMESPACE, ZONE).await?;
    let bundle_file = scenario.plane.dir().join("rh-bundle.json");
    fleet::write_bundle(&bundle_file, &bundle)?;
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "rh-satellite-0",
        &[scenario.operator.url()],
        SatelliteMode::File(bundle_file.clone()),
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;
    fleet::zone_status(&client, ZONE, STATUS_WAIT, |s| {
        (s.agents_connected == 1 && s.agents_on_held_plan == 0).then_some(())
    })
    .await?;
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.ok == 1).then_some(())
    })
    .await?;

    // A check without a probe: refused alone, UNKNOWN with the reason, the plan not held.
    let good = bundle.clone();
    bundle.checks[0].check = vedette_crds::CheckSpec::default();
    fleet::write_bundle(&bundle_file, &bundle)?;
    let refused = fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.unknown == 1)
            .then(|| s.problems.first().cloned())
            .flatten()
    })
    .await?;
    assert!(
        refused.output.contains("check refused by this agent")
            && refused.output.contains("needs exactly one probe"),
        "{refused:?}"
    );
    fleet::zone_status(&client, ZONE, STATUS_WAIT, |s| {
        (s.agents_on_held_plan == 0 && s.agents_connected == 1).then_some(())
    })
    .await?;

    // The good plan again, then two checks with one id: the plan cannot be read, the last
    // good one is held.
    fleet::write_bundle(&bundle_file, &good)?;
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.ok == 1).then_some(())
    })
    .await?;
    bundle = good.clone();
    bundle.checks.push(good.checks[0].clone());
    for indices in bundle.machines.values_mut() {
        indices.push(good.checks.len() as u32);
    }
    fleet::write_bundle(&bundle_file, &bundle)?;
    fleet::zone_status(&client, ZONE, STATUS_WAIT, |s| {
        (s.agents_on_held_plan == 1 && s.agents_connected == 1).then_some(())
    })
    .await?;
    // It still runs the last good plan: the check still probes the listener.
    let before = runs(&agent).await?;
    vedette_e2e::wait::until(
        "the held plan's check to keep running",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || async { Ok((runs(&agent).await? > before).then_some(())) },
    )
    .await?;
    drop(listener);

    scenario.operator.ensure_running()?;
    satellite.ensure_running()?;
    agent.ensure_running()?;
    scenario.plane.ensure_running()
}

async fn runs(agent: &NodeAgent) -> anyhow::Result<f64> {
    let labels = [r#"check="listener""#];
    Ok(agent
        .metric("vedette_check_runs_total", &labels)
        .await?
        .unwrap_or_default())
}
