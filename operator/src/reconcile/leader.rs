//! Leader election on a `coordination.k8s.io` Lease (kube-lease-manager): only the holder
//! writes; the other replicas watch and compile, and take over when the holder stops renewing.

use std::sync::Arc;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use super::error::Error;
use crate::metrics::Metrics;

/// Seconds a Lease stays valid after its last renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// Seconds before expiry the holder renews.
pub const LEASE_GRACE_SECONDS: u64 = 5;

/// Where and as whom to take part in the election.
#[derive(Clone, Debug)]
pub struct Election {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
}

/// Starts taking part in the election; the receiver holds `true` while this replica holds
/// the Lease. A failing election (API errors) is restarted and reads as "not the leader"
/// meanwhile, so a replica that cannot renew stops writing.
pub fn start(
    client: kube::Client,
    election: Election,
    metrics: Arc<Metrics>,
) -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            if let Err(error) = take_part(&client, &election, &sender, &metrics).await {
                metrics.error(&error);
            }
            set(&sender, &metrics, false, &election.identity);
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    receiver
}

async fn take_part(
    client: &kube::Client,
    election: &Election,
    sender: &watch::Sender<bool>,
    metrics: &Metrics,
) -> Result<(), Error> {
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_field_manager(format!("vedette-operator-lease-{}", election.identity))
        .with_duration(LEASE_DURATION_SECONDS)
        .with_grace(LEASE_GRACE_SECONDS)
        .build()
        .await
        .map_err(Error::Lease)?;
    let (mut changes, handle) = manager.watch().await;
    loop {
        let leader = *changes.borrow_and_update();
        set(sender, metrics, leader, &election.identity);
        if changes.changed().await.is_err() || sender.is_closed() {
            break;
        }
    }
    drop(changes);
    match handle.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(Error::Lease(error)),
        Err(join) => {
            tracing::error!(message = "The lease task panicked.", error = %join);
            Ok(())
        }
    }
}

fn set(sender: &watch::Sender<bool>, metrics: &Metrics, leader: bool, identity: &str) {
    metrics.leader.set(i64::from(leader));
    sender.send_if_modified(|current| {
        if *current == leader {
            return false;
        }
        *current = leader;
        if leader {
            tracing::info!(message = "Took the lease; this replica writes now.", %identity);
        } else {
            tracing::info!(message = "Not the lease holder; this replica only watches.", %identity);
        }
        true
    });
}
