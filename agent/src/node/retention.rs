//! The state machines of the running plan's checks ([`CheckStates`]), and their retention
//! across restarts (as Icinga keeps them in its state file): a check that was
//! hard CRITICAL is hard CRITICAL again after the agent restarts, instead of starting over at
//! OK and going through its soft attempts to a second, false hard change.
//!
//! The states are written to one file in the state directory, atomically, at most every
//! [`SAVE_EVERY`] and when a plan ends; a state is restored only for a check whose definition
//! (content hash) is unchanged. A file that is missing, unreadable or damaged restores nothing:
//! the checks start as they would without it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::state::{CheckStateMachine, SavedState, Transition};
use vedette_crds::template::CheckState;
use vedette_protocol::plan::CheckId;

/// The longest a changed state waits to be written.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);

/// One check's saved state, with the definition it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Saved {
    /// Content hash of the check's definition.
    definition: String,
    #[serde(flatten)]
    state: SavedState,
}

/// The machines of the checks run now, as the engine keeps them: definition hash and machine.
pub type Machines = HashMap<CheckId, (String, CheckStateMachine)>;

/// The state machines of the checks run now; with a [`Retention`], saved as they change and
/// restored from the last life.
pub struct CheckStates {
    machines: Machines,
    retention: Option<Retention>,
}

impl CheckStates {
    /// No machines yet.
    pub fn new(retention: Option<Retention>) -> Self {
        Self {
            machines: HashMap::new(),
            retention,
        }
    }

    /// Sets up the machines of a new plan's checks, given as (id, definition hash, max
    /// attempts): an unchanged check keeps its machine, else the last life's is restored, else
    /// a new one starts and `restarted` is told.
    pub fn plan<'a>(
        &mut self,
        checks: impl IntoIterator<Item = (&'a CheckId, String, u32)>,
        mut restarted: impl FnMut(&CheckId),
    ) {
        let mut next = HashMap::new();
        for (id, definition, max_attempts) in checks {
            let machine = match self.machines.remove(id) {
                Some((old, machine)) if old == definition => machine,
                _ => {
                    let restored = self
                        .retention
                        .as_mut()
                        .and_then(|r| r.take(id, &definition, max_attempts));
                    restored.unwrap_or_else(|| {
                        restarted(id);
                        CheckStateMachine::new(max_attempts)
                    })
                }
            };
            next.insert(id.clone(), (definition, machine));
        }
        self.machines = next;
    }

    /// Applies one result of `check` (which must be in the plan) and saves when due.
    pub fn observe(&mut self, check: &CheckId, result: CheckState) -> Transition {
        let (_, machine) = self
            .machines
            .get_mut(check)
            .expect("every planned check has a state machine");
        let before = machine.saved();
        let transition = machine.observe(result);
        let changed = machine.saved() != before;
        if let Some(retention) = self.retention.as_mut() {
            if changed {
                retention.changed();
            }
            retention.save(&self.machines, false);
        }
        transition
    }

    /// Saves now (a plan ends).
    pub fn save_now(&mut self) {
        if let Some(retention) = self.retention.as_mut() {
            retention.changed();
            retention.save(&self.machines, true);
        }
    }

    /// Waits for a write in flight (the engine stops).
    pub async fn flush(&mut self) {
        if let Some(retention) = self.retention.as_mut() {
            retention.flush().await;
        }
    }
}

/// The state file and what it held at start.
pub struct Retention {
    path: PathBuf,
    loaded: HashMap<String, Saved>,
    dirty: bool,
    last_write: Option<Instant>,
    writing: Option<tokio::task::JoinHandle<()>>,
}

impl Retention {
    /// Reads `path` if it is there.
    pub fn open(path: PathBuf) -> Self {
        let loaded = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                warn!(message = "Ignoring a damaged check state file.", %error, path = %path.display());
                HashMap::new()
            }),
            Err(_) => HashMap::new(),
        };
        Self {
            path,
            loaded,
            dirty: false,
            last_write: None,
            writing: None,
        }
    }

    /// The saved machine of `check`, if its definition is still `definition`; each is handed
    /// out once.
    pub fn take(
        &mut self,
        check: &CheckId,
        definition: &str,
        max_attempts: u32,
    ) -> Option<CheckStateMachine> {
        let saved = self.loaded.remove(&check.to_string())?;
        (saved.definition == definition)
            .then(|| CheckStateMachine::restored(max_attempts, saved.state))
    }

    /// Notes that a machine changed.
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// Writes the machines if they changed and the last write is [`SAVE_EVERY`] old (or
    /// `now_anyway`). The file is written off the engine's task; a write still running is not
    /// overlapped.
    pub fn save(&mut self, machines: &Machines, now_anyway: bool) {
        let due = now_anyway || self.last_write.is_none_or(|at| at.elapsed() >= SAVE_EVERY);
        let busy = self
            .writing
            .as_ref()
            .is_some_and(|task| !task.is_finished());
        if !self.dirty || !due || busy {
            return;
        }
        let saved: HashMap<String, Saved> = machines
            .iter()
            .map(|(check, (definition, machine))| {
                let saved = Saved {
                    definition: definition.clone(),
                    state: machine.saved(),
                };
                (check.to_string(), saved)
            })
            .collect();
        let bytes = serde_json::to_vec(&saved).expect("saved states always serialize");
        let path = self.path.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            if let Err(error) = crate::atomic_file::replace(&path, &bytes) {
                warn!(message = "Failed to save the check states.", %error, path = %path.display());
            }
        }));
        self.dirty = false;
        self.last_write = Some(Instant::now());
    }

    /// Waits for a write in flight (tests, shutdown).
    pub async fn flush(&mut self) {
        if let Some(task) = self.writing.take() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(rule: &str) -> CheckId {
        CheckId {
            namespace: "shop".into(),
            rule_set: "web".into(),
            rule: rule.into(),
        }
    }

    fn hard_critical() -> CheckStateMachine {
        let mut machine = CheckStateMachine::new(2);
        machine.observe(CheckState::Critical);
        machine.observe(CheckState::Critical);
        machine
    }

    #[tokio::test]
    async fn states_come_back_for_unchanged_checks_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("check-states.json");
        let mut retention = Retention::open(path.clone());
        let machines: Machines = [
            (id("a"), ("def-a".to_owned(), hard_critical())),
            (id("b"), ("def-b".to_owned(), hard_critical())),
        ]
        .into();
        retention.save(&machines, true);
        assert!(!path.exists(), "nothing changed, nothing written");
        retention.changed();
        retention.save(&machines, true);
        retention.flush().await;

        let mut reopened = Retention::open(path);
        assert_eq!(reopened.take(&id("a"), "def-a", 2), Some(hard_critical()));
        assert_eq!(reopened.take(&id("a"), "def-a", 2), None, "handed out once");
        assert_eq!(reopened.take(&id("b"), "def-b-changed", 2), None);
        assert_eq!(reopened.take(&id("c"), "def-c", 2), None);
    }

    #[tokio::test]
    async fn writes_are_spaced_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("check-states.json");
        let mut retention = Retention::open(path.clone());
        let mut machines: Machines = [(id("a"), ("def-a".to_owned(), hard_critical()))].into();
        retention.changed();
        retention.save(&machines, false);
        retention.flush().await;
        machines.get_mut(&id("a")).unwrap().1 = CheckStateMachine::new(2);
        retention.changed();
        retention.save(&machines, false);
        retention.flush().await;
        let mut reopened = Retention::open(path.clone());
        assert_eq!(
            reopened.take(&id("a"), "def-a", 2),
            Some(hard_critical()),
            "the second save waits for SAVE_EVERY"
        );
        retention.save(&machines, true);
        retention.flush().await;
        let mut reopened = Retention::open(path);
        assert_eq!(
            reopened.take(&id("a"), "def-a", 2),
            Some(CheckStateMachine::new(2))
        );
    }

    #[test]
    fn a_damaged_file_restores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("check-states.json");
        std::fs::write(&path, b"{\"shop/web/a\": {\"definition\": 1").unwrap();
        let mut retention = Retention::open(path);
        assert_eq!(retention.take(&id("a"), "def-a", 2), None);
    }
}
