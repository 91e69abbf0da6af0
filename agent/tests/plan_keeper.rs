//! The plan keeper against a real HTTP upstream: a plan is taken, held while the upstream is
//! down, dropped when the hold runs out, and taken again when the upstream answers — even
//! though the plan itself did not change (so the upstream would answer "not modified" to the
//! old ETag) — and held for as long as the plan's zone says.

mod common;

use std::time::Duration;

use common::{Upstream, tcp_plan};
use vedette_agent::node::plan_keeper::PlanKeeper;
use vedette_agent::transport::{Transport, Upstreams};

const HOLD: Duration = Duration::from_secs(60);
const HOST: &str = "node-a";

fn transport(upstream: &Upstream) -> Transport {
    Transport::new(
        Upstreams::new(vec![upstream.url()]),
        None,
        Duration::from_secs(2),
    )
}

/// A plan whose zone holds it for `hold`.
fn plan_held_for(hold: Duration) -> vedette_protocol::plan::Plan {
    let mut plan = tcp_plan(HOST, 9, 10);
    plan.settings.plan_hold_seconds = hold.as_secs() as i64;
    plan
}

#[tokio::test]
async fn an_expired_plan_comes_back_when_the_upstream_answers_with_the_same_plan() {
    let upstream = Upstream::start().await;
    upstream.set_plan(&plan_held_for(HOLD));
    let state = tempfile::tempdir().unwrap();
    let (mut keeper, plans, status) = PlanKeeper::open(HOST, state.path(), HOLD);
    let mut transport = transport(&upstream);
    let readiness = || status.lock().unwrap().readiness();
    assert!(readiness().is_err(), "not ready before a plan");

    keeper.poll(&mut transport, 1_000).await;
    let taken = plans.borrow().clone().expect("plan taken");
    assert!(!status.lock().unwrap().held);
    assert_eq!(readiness(), Ok(()));

    upstream.set_failing(true);
    keeper.poll(&mut transport, 31_000).await;
    assert!(plans.borrow().is_some(), "held within the hold");
    assert!(status.lock().unwrap().held);
    assert_eq!(readiness(), Ok(()), "a held plan is still run");
    keeper.poll(&mut transport, 62_000).await;
    assert!(plans.borrow().is_none(), "dropped after the hold");
    let reason = status.lock().unwrap().reason.clone();
    assert!(reason.contains("held plan expired after 60s"), "{reason}");
    let not_ready = readiness().unwrap_err();
    assert!(
        not_ready.contains("no plan yet: held plan expired"),
        "{not_ready}"
    );

    upstream.set_failing(false);
    keeper.poll(&mut transport, 63_000).await;
    let again = plans.borrow().clone().expect("plan taken again");
    assert_eq!(again.hash, taken.hash);
    let status = status.lock().unwrap().clone();
    assert!(!status.held, "{status:?}");
    assert_eq!(status.hash, taken.hash);
}

#[tokio::test]
async fn a_stored_plan_runs_at_start_and_is_confirmed_with_its_etag() {
    let upstream = Upstream::start().await;
    upstream.set_plan(&plan_held_for(HOLD));
    let state = tempfile::tempdir().unwrap();
    let (mut first_life, plans, _) = PlanKeeper::open(HOST, state.path(), HOLD);
    first_life.poll(&mut transport(&upstream), 1_000).await;
    let hash = plans.borrow().as_ref().expect("plan taken").hash.clone();
    drop((first_life, plans));

    // A new life with the upstream down: the stored plan runs, held, until the hold ends.
    upstream.set_failing(true);
    let (mut keeper, plans, status) = PlanKeeper::open(HOST, state.path(), HOLD);
    assert_eq!(plans.borrow().as_ref().expect("stored plan").hash, hash);
    assert!(status.lock().unwrap().held);
    let mut transport = transport(&upstream);
    keeper.poll(&mut transport, 50_000).await;
    assert!(plans.borrow().is_some());

    // The upstream answers "not modified" to the stored ETag: confirmed, no longer held.
    upstream.set_failing(false);
    keeper.poll(&mut transport, 55_000).await;
    assert_eq!(plans.borrow().as_ref().expect("plan").hash, hash);
    let status = status.lock().unwrap().clone();
    assert!(!status.held, "{status:?}");
    assert_eq!(status.confirmed_at_ms, 55_000);
}

#[tokio::test]
async fn the_zones_hold_applies_to_its_plan() {
    let upstream = Upstream::start().await;
    upstream.set_plan(&plan_held_for(Duration::from_secs(20)));
    let state = tempfile::tempdir().unwrap();
    let (mut keeper, plans, status) = PlanKeeper::open(HOST, state.path(), HOLD);
    let mut transport = transport(&upstream);
    keeper.poll(&mut transport, 1_000).await;
    assert!(plans.borrow().is_some());

    upstream.set_failing(true);
    keeper.poll(&mut transport, 20_000).await;
    assert!(plans.borrow().is_some(), "held within the zone's 20 s");
    keeper.poll(&mut transport, 22_000).await;
    assert!(
        plans.borrow().is_none(),
        "dropped after the zone's 20 s, not the default 60 s"
    );
    let reason = status.lock().unwrap().reason.clone();
    assert!(reason.contains("held plan expired after 20s"), "{reason}");
}
