//! Which satellite replica runs which remote check (F3): rendezvous hashing of
//! (check, target) over the live replicas. Every assignment has exactly one owner; when a
//! replica goes away only its assignments move, and when one joins it takes only its share.

use sha2::{Digest, Sha256};

use vedette_protocol::plan::{RemoteAssignment, ZoneBundle};

/// The owner of `assignment` among `replicas` (none when there are no replicas).
pub fn owner<'a>(
    bundle: &ZoneBundle,
    assignment: &RemoteAssignment,
    replicas: &'a [String],
) -> Option<&'a str> {
    let check = bundle
        .checks
        .get(assignment.check as usize)
        .map(|c| c.id.to_string())
        .unwrap_or_default();
    replicas
        .iter()
        .max_by_key(|replica| {
            (
                weight(replica, &check, &assignment.target),
                replica.as_str(),
            )
        })
        .map(String::as_str)
}

/// The assignments `me` owns.
pub fn owned<'a>(
    bundle: &'a ZoneBundle,
    me: &str,
    replicas: &[String],
) -> Vec<&'a RemoteAssignment> {
    bundle
        .remote
        .iter()
        .filter(|assignment| owner(bundle, assignment, replicas) == Some(me))
        .collect()
}

fn weight(replica: &str, check: &str, target: &str) -> u64 {
    let mut hasher = Sha256::new();
    for part in [replica, check, target] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vedette_protocol::plan::{AgentSettings, CheckId, PlannedCheck};

    fn bundle(targets: usize) -> ZoneBundle {
        let mut check: PlannedCheck = serde_json::from_value(serde_json::json!({
            "id": {"namespace": "ns", "ruleSet": "zone/dmz", "rule": "http"},
            "template": "ns/http", "check": {}, "conditionState": "CRITICAL",
            "intervalSeconds": 30, "retryIntervalSeconds": 10, "maxAttempts": 1,
            "timeoutSeconds": 5, "timeoutState": "CRITICAL"
        }))
        .unwrap();
        let mut checks = vec![check.clone()];
        check.id = CheckId {
            rule: "tls".into(),
            ..check.id
        };
        checks.push(check);
        let remote = (0..targets)
            .flat_map(|t| {
                (0..2).map(move |c| RemoteAssignment {
                    check: c,
                    target: format!("t{t}"),
                })
            })
            .collect();
        ZoneBundle {
            zone: "dmz".into(),
            settings: AgentSettings::default(),
            checks,
            machines: Default::default(),
            remote,
            elements: Vec::new(),
            secrets: Default::default(),
        }
    }

    fn replicas(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn every_assignment_has_exactly_one_owner() {
        let bundle = bundle(50);
        let live = replicas(&["a", "b", "c"]);
        let mut total = 0;
        for me in &live {
            let mine = owned(&bundle, me, &live).len();
            assert!(mine > 10, "{me} owns {mine} of 100: spread evenly enough");
            total += mine;
        }
        assert_eq!(total, bundle.remote.len());
        assert!(owned(&bundle, "a", &[]).is_empty());
    }

    #[test]
    fn a_replica_whose_lease_expired_hands_over_only_its_checks() {
        let bundle = bundle(50);
        let before = replicas(&["a", "b", "c"]);
        let after = replicas(&["a", "c"]);
        for assignment in &bundle.remote {
            let old = owner(&bundle, assignment, &before).unwrap();
            let new = owner(&bundle, assignment, &after).unwrap();
            if old == "b" {
                assert!(new == "a" || new == "c");
            } else {
                assert_eq!(old, new, "{assignment:?} moved though its owner stayed");
            }
        }
        // b comes back: it takes back exactly what it had.
        for assignment in &bundle.remote {
            assert_eq!(
                owner(&bundle, assignment, &before),
                owner(&bundle, assignment, &replicas(&["c", "b", "a"])),
                "ownership does not depend on the order replicas are listed in"
            );
        }
        // One replica alone owns everything.
        assert_eq!(
            owned(&bundle, "c", &replicas(&["c"])).len(),
            bundle.remote.len()
        );
    }
}
