//! The masters: `POST /v1/satellite` on the operator's `--listen` server, served by every
//! replica. Satellites send [`Batch<Forwarded>`](vedette_protocol::report::Batch) (the batch's
//! `agent` is the satellite replica); the batch is merged into the in-memory
//! [`MasterState`](state::MasterState) and acknowledged with `Ack {upTo}`.
//!
//! **Durability.** With a history store (the default in the chart; `--data-dir`), the batch's
//! records and last states are submitted to the store's writer under the merge lock and the
//! batch is acknowledged **only once that write is durable**; the writer commits in order and
//! retries a failed commit until it succeeds, so an acknowledgement never covers a record that
//! is not on disk, and a store that cannot write stops acknowledgements (the satellites keep
//! spooling) instead of losing records. At start the last states are read back, so a restarted
//! master serves every check's last known state, never `pending`. Without a store the masters
//! keep nothing on disk and acknowledge after the merge; a restarted master is brought back by
//! the entries and summaries that follow (see docs/architecture.md).
//!
//! | module | concept |
//! | --- | --- |
//! | [`state`] | the merge (pure): watermarks, last writer wins, keepalives, summaries → events |
//! | [`stream`] | the event stream: typed events and the bus to bounded subscriber channels |
//! | [`events`] | Kubernetes Events for hard state changes, rate-limited, Lease holder only |
//! | [`processes`] | business processes: element states, correlation, deadlines, runs (pure) |
//! | [`process_view`] | a process as people see it: status fields, `GET /v1/processes` (pure) |
//! | [`recorder`] | what a merged batch writes to the history (pure) |
//! | [`access`] | who may read what: TokenReview, SubjectAccessReview per namespace (every read API) |
//! | [`history_api`] | `GET /v1/history` and `GET /v1/availability` |
//!
//! What the merge learns goes out on the [`stream::Bus`]; the status subscriber marks the
//! live statuses stale and the Events subscriber turns hard changes into Kubernetes Events.
//! History, business processes, notifications and the dashboard subscribe the same way.
//!
//! Satellites authenticate with a bearer token checked by TokenReview (audience `vedette`,
//! cached a minute); the token must belong to a ServiceAccount of the operator's namespace
//! (where the satellites run). `--insecure-no-auth` turns this off for tests and standalone.

pub mod access;
pub mod events;
pub mod history_api;
pub mod process_view;
pub mod processes;
pub mod recorder;
pub mod state;
pub mod stream;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Serialize;
use vedette_protocol::clock::unix_ms;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::process::ProcessId;
use vedette_protocol::report::Batch;
use vedette_satellite::auth::{self, Auth, Identity};

use crate::metrics::Metrics;
use state::MasterState;
use stream::Bus;

/// Largest batch body: 8 MiB (a satellite sends at most 1 MiB of entries per batch).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The masters' history: the store and its writer.
#[derive(Clone)]
pub struct History {
    /// What queries read.
    pub store: Arc<dyn vedette_history::Store>,
    /// What the merge writes through.
    pub writer: vedette_history::Writer,
}

impl History {
    /// The embedded store in `data_dir` (`history.db`), with its writer.
    pub fn open(data_dir: &std::path::Path) -> Result<History, vedette_history::Error> {
        let store = vedette_history::SqliteStore::open(&data_dir.join(HISTORY_FILE))?;
        Ok(History::over(Arc::new(store)))
    }

    /// The shared store in the PostgreSQL database `url`, with its writer.
    pub fn open_postgres(url: &str) -> Result<History, vedette_history::Error> {
        let store = vedette_history::PostgresStore::open(url)?;
        Ok(History::over(Arc::new(store)))
    }

    /// `store` with its writer.
    pub fn over(store: Arc<dyn vedette_history::Store>) -> History {
        History {
            writer: vedette_history::Writer::start(store.clone()),
            store,
        }
    }
}

/// The embedded store's file in the data directory.
pub const HISTORY_FILE: &str = "history.db";

/// History writes waiting past which new batches are refused (503) until the store catches up:
/// a store that cannot write (PostgreSQL down, a full disk) would otherwise grow the masters'
/// memory with every satellite resend. The satellites keep the refused batches spooled.
pub const MAX_QUEUED_HISTORY_WRITES: u64 = 256;

/// Why a batch was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The history's writer stopped: the batch may not be durable.
    #[error(transparent)]
    Stopped(#[from] vedette_history::writer::WriterStopped),
    /// The history is behind; the batch was not applied.
    #[error(
        "the history store is {queued} writes behind (it cannot write, or not fast enough): the \
         batch is refused until it catches up; the satellite keeps it spooled"
    )]
    Behind {
        /// Writes waiting.
        queued: u64,
    },
}

/// Records of each kind read back at most at start, newest first.
const MAX_RESTORED_RECORDS: usize = 100_000;

/// Each element's newest transition and its last runs in the history (of the newest
/// [`MAX_RESTORED_RECORDS`] of each kind), as the state it resumes in.
fn restored_elements(
    store: &dyn vedette_history::Store,
) -> Result<Vec<processes::Restored>, vedette_history::Error> {
    let mut found: std::collections::BTreeMap<(ProcessId, String), processes::Restored> =
        std::collections::BTreeMap::new();
    newest(
        store,
        vedette_history::Kind::ProcessTransition,
        &mut |record| {
            if let Some(restored) = recorder::restored_element(record) {
                let key = (restored.process.clone(), restored.element.clone());
                found.entry(key).or_insert(restored);
            }
        },
    )?;
    newest(store, vedette_history::Kind::ProcessRun, &mut |record| {
        if let Some((key, run)) = recorder::run_of(record)
            && let Some(restored) = found.get_mut(&key)
            && restored.runs.len() < processes::RUNS_KEPT
        {
            restored.runs.push(run);
        }
    })?;
    Ok(found.into_values().collect())
}

/// Calls `each` on the newest records of `kind`, newest first, at most
/// [`MAX_RESTORED_RECORDS`].
fn newest(
    store: &dyn vedette_history::Store,
    kind: vedette_history::Kind,
    each: &mut dyn FnMut(&vedette_history::Record),
) -> Result<(), vedette_history::Error> {
    let mut query = vedette_history::query::HistoryQuery {
        kind: Some(kind),
        limit: vedette_history::query::MAX_PAGE,
        ..Default::default()
    };
    let mut read = 0;
    while read < MAX_RESTORED_RECORDS {
        let page = store.history(&query)?;
        read += page.records.len();
        for stored in &page.records {
            each(&stored.record);
        }
        let Some(next) = page
            .next
            .as_deref()
            .and_then(|text| vedette_history::query::Cursor::decode(text).ok())
        else {
            break;
        };
        query.after = Some(next);
    }
    Ok(())
}

/// What the handlers share.
pub struct Masters {
    state: Mutex<MasterState>,
    bus: Bus,
    auth: Auth,
    namespace: String,
    metrics: Arc<Metrics>,
    history: Option<History>,
    catalog: Mutex<Arc<crate::dashboard::catalog::Catalog>>,
}

impl Masters {
    /// Masters accepting satellites of `namespace` authenticated by `auth`; what the merge
    /// learns is published on `bus` and, with a `history`, written to it (whose last states
    /// are read back first).
    pub fn new(
        auth: Auth,
        namespace: &str,
        bus: Bus,
        metrics: Arc<Metrics>,
        history: Option<History>,
    ) -> Result<Self, vedette_history::Error> {
        let mut state = MasterState::default();
        if let Some(history) = &history {
            let last = history.store.last_states()?;
            tracing::info!(
                message = "Last known states read from the history.",
                checks = last.len()
            );
            state.restore(last.into_iter().map(recorder::restored_entry));
            let elements = restored_elements(history.store.as_ref())?;
            tracing::info!(
                message = "Business-process elements' last states read from the history.",
                elements = elements.len()
            );
            state.restore_processes(elements);
        }
        Ok(Self {
            state: Mutex::new(state),
            bus,
            auth,
            namespace: namespace.to_owned(),
            metrics,
            history,
            catalog: Mutex::default(),
        })
    }

    /// What is defined now, for the dashboard (set after each compile).
    pub fn catalog(&self) -> Arc<crate::dashboard::catalog::Catalog> {
        self.catalog
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces what is defined.
    pub fn set_catalog(&self, catalog: crate::dashboard::catalog::Catalog) {
        *self.catalog.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
    }

    /// The history store, when the masters keep one.
    pub fn history_store(&self) -> Option<Arc<dyn vedette_history::Store>> {
        self.history.as_ref().map(|h| h.store.clone())
    }

    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, MasterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a batch received now and returns the acknowledgement, once the batch's history
    /// is durable (see the module documentation).
    pub async fn receive(
        &self,
        batch: Batch<Forwarded>,
    ) -> Result<vedette_protocol::report::Ack, ReceiveError> {
        if let Some(history) = &self.history {
            let queued = history.writer.stats().queued.load(Ordering::Relaxed);
            if queued >= MAX_QUEUED_HISTORY_WRITES {
                return Err(ReceiveError::Behind { queued });
            }
        }
        let reports = self.history.as_ref().map(|_| recorder::reports(&batch));
        let (ack, pending) = {
            // Submitted and published under the lock, so the history and the subscribers see
            // every batch in merge order.
            let mut state = self.state();
            let before = state.applied().entries;
            let (ack, events) = state.receive(batch, unix_ms());
            self.metrics
                .satellite_entries
                .inc_by(state.applied().entries - before);
            let pending = self
                .history
                .as_ref()
                .zip(reports)
                .map(|(history, reports)| {
                    history
                        .writer
                        .submit(recorder::write_for(&reports, &events, &state))
                });
            self.bus.publish(events);
            (ack, pending)
        };
        if let Some(pending) = pending {
            pending.durable().await?;
        }
        Ok(ack)
    }

    /// Publishes (and records) the agents that went stale by now, and what the business
    /// processes' clauses and deadlines make of the time.
    pub fn sweep(&self) {
        let mut state = self.state();
        let events = state.sweep(unix_ms());
        if let Some(history) = &self.history {
            let records: Vec<_> = events
                .iter()
                .filter_map(|e| recorder::agent_record(e).or_else(|| recorder::process_record(e)))
                .collect();
            if !records.is_empty() {
                // Not waited for: nothing is acknowledged on it, and the writer keeps order.
                drop(history.writer.submit(vedette_history::Write {
                    records,
                    ..Default::default()
                }));
            }
        }
        self.bus.publish(events);
    }

    fn authorize(&self, identity: Option<&Identity>) -> Result<(), auth::Error> {
        identity.map_or(Ok(()), |id| id.authorize_satellite(&self.namespace))
    }
}

/// `POST /v1/satellite`, `GET /v1/masters/state` and `GET /v1/processes`.
pub fn router(masters: Arc<Masters>) -> Router {
    Router::new()
        .route(
            "/v1/satellite",
            post(receive).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/v1/masters/state", get(view))
        .route("/v1/processes", get(processes_view))
        .with_state(masters)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn receive(
    State(masters): State<Arc<Masters>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let identity = masters.auth.identify(authorization).await;
    if let Err(problem) = identity.and_then(|id| masters.authorize(id.as_ref())) {
        masters.metrics.batch(problem.metric_label());
        let status = match problem {
            auth::Error::Missing | auth::Error::Invalid(_) => StatusCode::UNAUTHORIZED,
            auth::Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            auth::Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        return error(status, problem.to_string());
    }
    let batch = body
        .map_err(|rejection| (rejection.status(), rejection.body_text()))
        .and_then(|body| {
            serde_json::from_slice::<Batch<Forwarded>>(&body).map_err(|problem| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("batch does not parse: {problem}"),
                )
            })
        });
    match batch {
        Ok(batch) => match masters.receive(batch).await {
            Ok(ack) => {
                masters.metrics.batch("ok");
                axum::Json(ack).into_response()
            }
            Err(problem) => {
                masters.metrics.batch(match problem {
                    ReceiveError::Stopped(_) => "store_unavailable",
                    ReceiveError::Behind { .. } => "store_behind",
                });
                error(StatusCode::SERVICE_UNAVAILABLE, problem.to_string())
            }
        },
        Err((status, message)) => {
            masters.metrics.batch("malformed");
            error(status, message)
        }
    }
}

/// The masters' state as `GET /v1/masters/state` shows it (for people and tests).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    /// Per satellite replica: every spool sequence up to this one is applied.
    pub satellites: std::collections::BTreeMap<String, u64>,
    /// Entries applied.
    pub entries: u64,
    /// Entries received again.
    pub duplicates: u64,
    /// Check reports older than the stored state.
    pub outdated: u64,
    /// Every check: host, `namespace/ruleSet/rule`, state, hard, output, and when it was
    /// last known (Unix ms) if it was read from the history and not reported since.
    pub checks: Vec<(String, String, String, bool, String, Option<u64>)>,
    /// Every agent: host, zone, stale, plan held.
    pub agents: Vec<(String, String, bool, bool)>,
}

/// Every business process: its elements' states and the current run's violations.
async fn processes_view(State(masters): State<Arc<Masters>>) -> Response {
    let views = process_view::views(&masters.state(), unix_ms());
    axum::Json(views).into_response()
}

async fn view(State(masters): State<Arc<Masters>>) -> Response {
    let now = unix_ms();
    let state = masters.state();
    let applied = state.applied();
    let view = StateView {
        satellites: state.satellite_watermarks(),
        entries: applied.entries,
        duplicates: applied.duplicates,
        outdated: applied.outdated,
        checks: state
            .checks()
            .iter()
            .map(|(key, entry)| {
                let state = serde_json::to_value(entry.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (
                    key.host.clone(),
                    key.check.to_string(),
                    state,
                    entry.hard,
                    entry.output.clone(),
                    entry.restored.then_some(entry.at_ms),
                )
            })
            .collect(),
        agents: state
            .agents()
            .iter()
            .map(|(host, a)| (host.clone(), a.zone.clone(), a.stale(now), a.plan_held))
            .collect(),
    };
    axum::Json(view).into_response()
}
