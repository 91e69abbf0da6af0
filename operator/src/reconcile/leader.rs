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

/// Whether this replica holds the Lease, and since which generation.
pub struct Leadership {
    /// `true` while this replica holds the Lease.
    pub leader: watch::Receiver<bool>,
    /// When this replica last took the Lease (its `acquireTime`, Unix ms; set before
    /// `leader` turns true): the fencing token of its term. A time, not `leaseTransitions`,
    /// so that a Lease deleted and created again (a reinstall keeping the history's volumes)
    /// still orders after every earlier term; terms are at least a Lease duration apart,
    /// more than the clock skew between replicas.
    pub generation: watch::Receiver<u64>,
}

/// Starts taking part in the election. A failing election (API errors) is restarted and
/// reads as "not the leader" meanwhile, so a replica that cannot renew stops writing.
pub fn start(client: kube::Client, election: Election, metrics: Arc<Metrics>) -> Leadership {
    let (sender, receiver) = watch::channel(false);
    let (generation_sender, generation) = watch::channel(0);
    tokio::spawn(async move {
        loop {
            let result = take_part(&client, &election, &sender, &generation_sender, &metrics);
            if let Err(error) = result.await {
                metrics.error(&error);
            }
            set(&sender, &metrics, false, &election.identity);
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Leadership {
        leader: receiver,
        generation,
    }
}

async fn take_part(
    client: &kube::Client,
    election: &Election,
    sender: &watch::Sender<bool>,
    generation: &watch::Sender<u64>,
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
        if leader {
            generation.send_replace(acquired_ms(client, election).await);
        }
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

/// The Lease's `acquireTime`, Unix ms (0 when it cannot be read, which the notifier takes
/// as "not fenced").
async fn acquired_ms(client: &kube::Client, election: &Election) -> u64 {
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(client.clone(), &election.namespace);
    match leases.get(&election.lease_name).await {
        Ok(lease) => lease
            .spec
            .and_then(|s| s.acquire_time)
            .map_or(0, |t| u64::try_from(t.0.as_millisecond()).unwrap_or(0)),
        Err(error) => {
            tracing::warn!(message = "The Lease's generation cannot be read; notifications are not fenced this term.", %error);
            0
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
