//! Which satellite replicas of the zone are alive: each renews its own Lease
//! (`vedette-zone-<zone>-satellite-<pod>`) every few seconds; a replica whose Lease has not
//! been renewed within its duration is gone. Standalone, this replica is the only one.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use tokio::sync::watch;
use tracing::warn;

use vedette_protocol::names::{
    LABEL_COMPONENT, LABEL_ZONE, satellite_lease_name, zone_label_value,
};

/// Where the live replicas (sorted ids) are published.
pub type ReplicaSender = watch::Sender<Vec<String>>;

/// A way to learn the live replicas.
pub trait Membership: Send {
    /// Publishes the live replicas until the receivers are gone.
    fn run(self: Box<Self>, publish: ReplicaSender) -> BoxFuture<'static, ()>;
}

/// Only this replica (standalone).
pub struct Alone(pub String);

impl Membership for Alone {
    fn run(self: Box<Self>, publish: ReplicaSender) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            publish.send_replace(vec![self.0]);
            publish.closed().await;
        })
    }
}

/// Leases in the satellite's namespace.
pub struct LeaseMembership {
    /// API client.
    pub client: kube::Client,
    /// Namespace of the Leases.
    pub namespace: String,
    /// The zone.
    pub zone: String,
    /// This replica (its pod name).
    pub replica: String,
    /// How often the Lease is renewed.
    pub renew: Duration,
    /// How long a Lease lasts without renewal.
    pub duration: Duration,
}

impl LeaseMembership {
    async fn renew(&self, api: &Api<Lease>) -> Result<(), kube::Error> {
        let name = satellite_lease_name(&self.zone, &self.replica);
        let spec = LeaseSpec {
            holder_identity: Some(self.replica.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..LeaseSpec::default()
        };
        match api.get_opt(&name).await? {
            Some(mut lease) => {
                lease.spec = Some(spec);
                api.replace(&name, &PostParams::default(), &lease).await?;
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name),
                        labels: Some(
                            [
                                (LABEL_ZONE.to_owned(), zone_label_value(&self.zone)),
                                (LABEL_COMPONENT.to_owned(), "satellite".to_owned()),
                            ]
                            .into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                api.create(&PostParams::default(), &lease).await?;
            }
        }
        Ok(())
    }

    async fn live(&self, api: &Api<Lease>) -> Result<Vec<String>, kube::Error> {
        let selector = format!(
            "{LABEL_ZONE}={},{LABEL_COMPONENT}=satellite",
            zone_label_value(&self.zone)
        );
        let leases = api.list(&ListParams::default().labels(&selector)).await?;
        Ok(live_replicas(
            leases.items.iter().filter_map(|l| l.spec.as_ref()),
            Timestamp::now(),
        ))
    }
}

/// Holders of the Leases renewed within their duration at `now`, sorted.
pub fn live_replicas<'a>(
    leases: impl Iterator<Item = &'a LeaseSpec>,
    now: Timestamp,
) -> Vec<String> {
    let mut live: Vec<String> = leases
        .filter(|spec| {
            let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds)
            else {
                return false;
            };
            let expires = renewed.0.as_millisecond() + i64::from(seconds) * 1000;
            expires > now.as_millisecond()
        })
        .filter_map(|spec| spec.holder_identity.clone())
        .collect();
    live.sort();
    live.dedup();
    live
}

impl Membership for LeaseMembership {
    fn run(self: Box<Self>, publish: ReplicaSender) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
            while !publish.is_closed() {
                if let Err(error) = self.renew(&api).await {
                    warn!(message = "Failed to renew the satellite lease.", %error);
                }
                match self.live(&api).await {
                    Ok(mut live) => {
                        // This replica is alive as long as it runs, whatever the list says.
                        if !live.contains(&self.replica) {
                            live.push(self.replica.clone());
                            live.sort();
                        }
                        publish.send_if_modified(|current| {
                            let changed = *current != live;
                            *current = live;
                            changed
                        });
                    }
                    Err(error) => warn!(message = "Failed to list satellite leases.", %error),
                }
                tokio::time::sleep(self.renew).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_ms: i64, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(MicroTime(Timestamp::from_millisecond(renewed_ms).unwrap())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_replica_whose_lease_expired_is_gone() {
        let leases = [
            lease("b", 10_000, 15),
            lease("a", 1_000, 15),
            lease("c", 20_000, 15),
        ];
        let at = |ms| Timestamp::from_millisecond(ms).unwrap();
        assert_eq!(live_replicas(leases.iter(), at(15_000)), ["a", "b", "c"]);
        assert_eq!(live_replicas(leases.iter(), at(16_000)), ["b", "c"]);
        assert_eq!(live_replicas(leases.iter(), at(30_000)), ["c"]);
    }
}
