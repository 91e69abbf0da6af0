//! The dashboard's live updates: the masters' event stream turned into [`Change`]s, handed to
//! every open page through a broadcast channel, and sent as server-sent events.
//!
//! **Pace.** A page gets at most one message every [`COALESCE`]: the changes that arrived in
//! that time, those of namespaces the page may not see removed. A burst of a thousand state
//! changes is a handful of messages, not a thousand, and the page fetches its view again at
//! most once per message. A page that falls more than [`CAPACITY`] changes behind gets a
//! `resync` instead (it fetches its view), never a stall of the masters: the broadcast never
//! waits for a page.
//!
//! **Access.** What a page may see is decided when it connects; the stream ends after
//! [`RECHECK`] and the browser reconnects, so access that was revoked (or granted) applies
//! within minutes, as the cached answers of [`crate::masters::access`] do.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::masters::access::Visible;
use crate::masters::stream::{MasterEvent, Subscription};

/// Changes waiting for the slowest page before it must resync.
pub const CAPACITY: usize = 4096;
/// Changes gathered into one message.
pub const COALESCE: Duration = Duration::from_millis(250);
/// How long one stream lives before the browser reconnects (and access is decided again).
pub const RECHECK: Duration = Duration::from_secs(300);

/// What changed, as a page learns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Change {
    /// A check's state or output.
    #[serde(rename_all = "camelCase")]
    Check {
        /// The application.
        namespace: String,
        /// The host.
        host: String,
        /// `namespace/ruleSet/rule`.
        check: String,
        /// The state now.
        state: &'static str,
    },
    /// An agent went fresh or stale, or its plan was held or released.
    Agent {
        /// Its host.
        host: String,
    },
    /// A satellite's zone summary.
    Zone {
        /// The zone.
        zone: String,
    },
    /// A business process's element, violation or run.
    Process {
        /// The application.
        namespace: String,
        /// `namespace/name`.
        process: String,
    },
}

impl Change {
    /// The change an event is, if a page shows it.
    pub fn of(event: &MasterEvent) -> Option<Change> {
        use crate::masters::processes::ProcessEvent;
        Some(match event {
            MasterEvent::Check(check) => Change::Check {
                namespace: check.check.namespace.clone(),
                host: check.host.clone(),
                check: check.check.to_string(),
                state: check.state.name(),
            },
            MasterEvent::AgentFresh(agent) | MasterEvent::AgentStale(agent) => Change::Agent {
                host: agent.host.clone(),
            },
            MasterEvent::PlanHeld { agent, .. } | MasterEvent::PlanReleased(agent) => {
                Change::Agent {
                    host: agent.host.clone(),
                }
            }
            MasterEvent::ZoneSummary { zone, .. } => Change::Zone { zone: zone.clone() },
            MasterEvent::Process(process) => {
                let id = match process {
                    ProcessEvent::Transition(t) => &t.process,
                    ProcessEvent::Violation { process, .. }
                    | ProcessEvent::RunEnded { process, .. } => process,
                };
                Change::Process {
                    namespace: id.namespace.clone(),
                    process: id.to_string(),
                }
            }
        })
    }

    /// Whether a page that sees `visible` (and what belongs to no namespace when `cluster`)
    /// may learn this change.
    pub fn visible_to(&self, visible: &Visible, cluster: bool) -> bool {
        match self {
            Change::Check { namespace, .. } | Change::Process { namespace, .. } => {
                visible.includes(namespace)
            }
            Change::Agent { .. } | Change::Zone { .. } => cluster,
        }
    }
}

/// Hands the masters' events to the pages until the stream ends.
pub async fn run(mut events: Subscription, pages: broadcast::Sender<Arc<Change>>) {
    while let Some(event) = events.recv().await {
        if let Some(change) = Change::of(&event) {
            // No page open is not a problem.
            let _ = pages.send(Arc::new(change));
        }
    }
}

/// What one message to a page carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// These changes.
    Changes(Vec<Arc<Change>>),
    /// Changes were missed: fetch the view again.
    Resync,
}

/// The next message for a page: waits for a change it may see, then gathers the others that
/// arrive within [`COALESCE`]. `None` once the masters stop.
pub async fn next(
    pages: &mut broadcast::Receiver<Arc<Change>>,
    visible: &Visible,
    cluster: bool,
) -> Option<Message> {
    use broadcast::error::{RecvError, TryRecvError};
    let mut changes = Vec::new();
    while changes.is_empty() {
        match pages.recv().await {
            Ok(change) if change.visible_to(visible, cluster) => changes.push(change),
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => return Some(Message::Resync),
            Err(RecvError::Closed) => return None,
        }
    }
    tokio::time::sleep(COALESCE).await;
    loop {
        match pages.try_recv() {
            Ok(change) if change.visible_to(visible, cluster) => changes.push(change),
            Ok(_) => {}
            Err(TryRecvError::Lagged(_)) => return Some(Message::Resync),
            Err(TryRecvError::Empty | TryRecvError::Closed) => {
                return Some(Message::Changes(changes));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(namespace: &str) -> Arc<Change> {
        Arc::new(Change::Check {
            namespace: namespace.into(),
            host: "a".into(),
            check: format!("{namespace}/web/http"),
            state: "CRITICAL",
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_gets_the_changes_it_may_see_gathered_into_one_message() {
        let (sender, mut page) = broadcast::channel(16);
        let shop = Visible::Namespaces(["shop".to_owned()].into());
        for namespace in ["billing", "shop", "shop"] {
            sender.send(check(namespace)).unwrap();
        }
        sender
            .send(Arc::new(Change::Agent { host: "a".into() }))
            .unwrap();
        let message = next(&mut page, &shop, false).await.unwrap();
        assert_eq!(
            message,
            Message::Changes(vec![check("shop"), check("shop")])
        );
        drop(sender);
        assert_eq!(next(&mut page, &shop, false).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_too_far_behind_is_told_to_resync() {
        let (sender, mut page) = broadcast::channel(2);
        for _ in 0..5 {
            sender.send(check("shop")).unwrap();
        }
        assert_eq!(
            next(&mut page, &Visible::All, true).await,
            Some(Message::Resync)
        );
    }

    #[test]
    fn agents_and_zones_are_only_for_pages_that_may_see_the_cluster() {
        let zone = Change::Zone {
            zone: "edge".into(),
        };
        assert!(!zone.visible_to(&Visible::All, false));
        assert!(zone.visible_to(&Visible::All, true));
    }
}
