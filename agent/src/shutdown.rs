//! The graceful drain shared by the node agent and the satellite: after SIGTERM a process
//! takes no new entries ([`Spool::close`]), keeps its send loops going, and waits until its
//! upstreams acknowledged everything spooled or its grace runs out, whichever comes first
//! (Kubernetes SIGKILLs a pod `terminationGracePeriodSeconds`, 30 by default, after SIGTERM).

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::spool::Spool;

/// Seconds a stopping process gives itself by default: room within Kubernetes' default 30 s
/// `terminationGracePeriodSeconds` for what comes after the drain.
pub const DEFAULT_GRACE_SECONDS: u64 = 20;

/// How often the drain looks at the spool.
const POLL: Duration = Duration::from_millis(20);

/// Whether the drain is over: nothing waits in the spool, or the deadline passed.
pub fn drain_over(waiting: u64, now: Instant, deadline: Instant) -> bool {
    waiting == 0 || now >= deadline
}

/// Waits until the spool holds nothing unacknowledged (its send loops delivered everything)
/// or `deadline`; returns what is still waiting (0: drained). Logs the outcome.
pub async fn drain(spool: &Spool, deadline: Instant) -> u64 {
    let start = Instant::now();
    loop {
        let waiting = spool.stats().depth;
        let now = Instant::now();
        if drain_over(waiting, now, deadline) {
            let took_ms = now.duration_since(start).as_millis() as u64;
            if waiting == 0 {
                info!(
                    message = "Everything spooled was acknowledged upstream.",
                    took_ms
                );
            } else {
                warn!(
                    message = "The grace ran out: entries stay in the spool for the next start.",
                    waiting, took_ms
                );
            }
            return waiting;
        }
        tokio::time::sleep(POLL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Priority, SpoolConfig};

    #[test]
    fn the_drain_ends_when_nothing_waits_or_at_the_deadline() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(5);
        assert!(drain_over(0, now, deadline));
        assert!(!drain_over(3, now, deadline));
        assert!(drain_over(3, deadline, deadline));
    }

    #[tokio::test]
    async fn a_drain_returns_once_the_spool_is_acknowledged_or_its_grace_ran_out() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        for _ in 0..3 {
            spool.append(Priority::Result, vec![1; 8]).await.unwrap();
        }
        let start = Instant::now();
        let waiting = drain(&spool, start + Duration::from_millis(200)).await;
        assert_eq!(waiting, 3);
        assert!(start.elapsed() >= Duration::from_millis(200));

        let acknowledging = spool.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            acknowledging.ack(3).unwrap();
        });
        let start = Instant::now();
        let waiting = drain(&spool, start + Duration::from_secs(10)).await;
        assert_eq!(waiting, 0);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
