//! `vedette-operator run`: watch the Vedette kinds and Nodes, compile, publish zones'
//! objects, write statuses; Lease-elected writer, both replicas serve `/healthz`, `/readyz`
//! and `/metrics`.
//!
//! | module | concept |
//! | --- | --- |
//! | [`sources`] | reflectors of what compile reads (Nodes as metadata only) |
//! | [`owned`] | index of what the operator owns, with the hash last applied |
//! | [`last_good`] | last good spec per object, so an invalid spec never replaces a good bundle |
//! | [`desired`] | a zone's objects from the builders, with their content hash |
//! | [`publish`] | server-side apply of what changed, deletion of what is no longer wanted |
//! | [`status`] | statuses from the compile output (pure) |
//! | [`status_writer`] | coalesced status writes |
//! | [`leader`] | Lease election |
//! | [`controller`] | the loop |
//! | [`http`], [`metrics`], [`error`] | serving, counting, failing |

pub mod check_secrets;
pub mod controller;
pub mod desired;
pub mod error;
pub mod http;
pub mod last_good;
pub mod leader;
pub mod owned;
pub mod publish;
pub mod sources;
pub mod status_writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::registry::Registry;
use tokio::sync::Notify;

pub use error::{Error, Result};

/// What `run` needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespace of the zones' objects and the Lease.
    pub namespace: String,
    /// Image of `vedette-agent`.
    pub image: String,
    /// URL satellites report to.
    pub masters_url: String,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity in the election.
    pub identity: String,
    /// Accept satellites without a token.
    pub insecure_no_auth: bool,
    /// At most one Event per check per this many seconds.
    pub event_interval_seconds: u64,
    /// At most this many Events per second.
    pub events_per_second: u32,
    /// Where the history is kept (`None`: no history, unless `postgres_url` is set).
    pub data_dir: Option<std::path::PathBuf>,
    /// The shared history database (both masters write it), instead of `data_dir`.
    pub postgres_url: Option<String>,
    /// How much of it.
    pub retention: vedette_history::Retention,
    /// The cluster's default notification receiver (an Alertmanager).
    pub default_alertmanager_url: Option<String>,
}

/// Runs the operator until the process ends.
pub async fn run(config: Config) -> Result<()> {
    let stopped = vedette_agent::signal::stopped();
    let mut stopped = std::pin::pin!(stopped);
    let client = kube::Client::try_default().await.map_err(Error::Client)?;
    let mut registry = Registry::default();
    let metrics = Arc::new(crate::metrics::Metrics::new(&mut registry));
    let ready = Arc::new(AtomicBool::new(false));
    let listener = http::bind(&config.listen).await?;
    tracing::info!(message = "Serving.", listen = %config.listen, identity = %config.identity);
    // The masters' event stream: every subscriber is declared and the topology validated
    // before any task runs or any batch is accepted.
    let mut topology = crate::masters::stream::BusBuilder::default();
    let status_stream = topology.subscribe("status", STATUS_STREAM_CAPACITY);
    let events_stream = topology.subscribe("events", crate::masters::events::MAX_PENDING);
    let notify_stream = topology.subscribe("notify", crate::notify::MAX_QUEUED);
    let dashboard_stream = topology.subscribe("dashboard", crate::dashboard::live::CAPACITY);
    let bus = topology.build(metrics.clone()).map_err(Error::Topology)?;
    let history = open_history(config.data_dir.as_deref(), config.postgres_url.as_deref())?;
    let masters = Arc::new(
        crate::masters::Masters::new(
            satellite_auth(&client, config.insecure_no_auth),
            &config.namespace,
            bus,
            metrics.clone(),
            history.clone(),
        )
        .map_err(Error::History)?,
    );
    let live = controller::LiveChanges::subscribe(status_stream);
    let sweeper = tokio::spawn(sweep(Arc::downgrade(&masters)));
    let read_access = || {
        if config.insecure_no_auth {
            crate::masters::access::ReadAccess::Open
        } else {
            crate::masters::access::ReadAccess::Kube(Box::new(
                crate::masters::access::KubeAccess::new(client.clone()),
            ))
        }
    };
    let dashboard =
        crate::dashboard::Dashboard::start(masters.clone(), read_access(), dashboard_stream);
    let mut routes =
        crate::masters::router(masters.clone()).merge(crate::dashboard::router(dashboard));
    let history_for_notify = history.clone();
    let pruner = history.map(|history| {
        let access = read_access();
        routes = std::mem::take(&mut routes).merge(crate::masters::history_api::router(Arc::new(
            crate::masters::history_api::HistoryApi {
                store: history.store.clone(),
                access,
            },
        )));
        tokio::spawn(vedette_history::retention::run(
            history.store,
            config.retention,
            vedette_protocol::clock::unix_ms,
        ))
    });
    let mut server = tokio::spawn(http::serve(
        listener,
        Arc::new(registry),
        ready.clone(),
        routes,
    ));

    let changed = Arc::new(Notify::new());
    let sources = sources::Sources::spawn(&client, &changed, &metrics);
    let owned = Arc::new(owned::OwnedIndex::default());
    owned::spawn_watches(&client, &config.namespace, &owned, &changed, &metrics);
    let synced = async {
        sources.wait_until_ready().await;
        while !owned.synced() {
            changed.notified().await;
        }
    };
    // The API server may be unreachable for long: a stop must not wait for it.
    tokio::select! {
        () = synced => {}
        () = &mut stopped => {
            tracing::info!(message = "Stopped before every watch synced.");
            server.abort();
            return Ok(());
        }
    }
    ready.store(true, Ordering::Release);
    tracing::info!(message = "Every watch synced.");

    let election = leader::Election {
        namespace: config.namespace.clone(),
        lease_name: config.lease_name.clone(),
        identity: config.identity.clone(),
    };
    let leader::Leadership { leader, generation } =
        leader::start(client.clone(), election, metrics.clone());
    let events = tokio::spawn(crate::masters::events::run(
        client.clone(),
        crate::masters::events::EventSettings {
            per_check: std::time::Duration::from_secs(config.event_interval_seconds.max(1)),
            per_second: config.events_per_second,
            instance: config.identity.clone(),
        },
        events_stream,
        leader.clone(),
        crate::masters::events::EventObjects {
            zones: sources.zones.clone(),
            rule_sets: sources.rule_sets.clone(),
            processes: sources.processes.clone(),
        },
        metrics.clone(),
    ));
    // Every replica groups what the stream brings; only the Lease holder sends.
    let (routing, routing_updates) =
        tokio::sync::watch::channel(Arc::new(crate::compile::notify::Routing::default()));
    let notifier = tokio::spawn(crate::notify::run(
        crate::notify::Settings {
            default_alertmanager: config.default_alertmanager_url.clone(),
            secrets: Arc::new(crate::notify::send::KubeSecrets {
                client: client.clone(),
            }),
            history: history_for_notify,
            metrics: metrics.clone(),
            generation: Some(generation),
        },
        notify_stream,
        routing_updates,
        leader.clone(),
    ));
    let settings = publish::Settings {
        namespace: config.namespace.clone(),
        image: config.image.clone(),
        masters_url: config.masters_url.clone(),
    };
    let controller = controller::Controller {
        sources,
        owned: owned.clone(),
        publisher: publish::Publisher::new(client.clone(), settings, owned, metrics.clone()),
        check_secrets: check_secrets::CheckSecrets::new(client.clone(), config.namespace.clone()),
        statuses: status_writer::StatusWriter::new(client, config.identity.clone()),
        last_good: last_good::LastGood::default(),
        masters,
        live,
        compiled: None,
        routing,
        metrics,
        leader,
        changed: changed.clone(),
        namespace: config.namespace,
        unpublished: Default::default(),
    };
    changed.notify_one();
    let result = tokio::select! {
        () = controller.run() => Ok(()),
        served = &mut server => match served {
            Ok(result) => result,
            Err(join) => {
                tracing::error!(message = "The http server panicked.", error = %join);
                Ok(())
            }
        },
        () = &mut stopped => {
            tracing::info!(message = "Shutting down: no more batches; draining the event stream.");
            Ok(())
        }
    };
    // Stop the input (the server and its handle on the masters, the sweeper), so the bus
    // goes away and every subscriber drains what is queued and ends.
    server.abort();
    let _ = server.await;
    sweeper.abort();
    let _ = sweeper.await;
    if let Some(pruner) = pruner {
        pruner.abort();
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, events).await.is_err() {
        tracing::warn!(message = "The event stream did not drain in time.");
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, notifier).await.is_err() {
        tracing::warn!(message = "The notifier did not drain in time.");
    }
    result
}

/// The history in the database `postgres_url`, else in `data_dir`, when there is one.
fn open_history(
    data_dir: Option<&std::path::Path>,
    postgres_url: Option<&str>,
) -> Result<Option<crate::masters::History>> {
    if let Some(url) = postgres_url {
        let history = crate::masters::History::open_postgres(url).map_err(Error::History)?;
        tracing::info!(message = "History opened in PostgreSQL.");
        return Ok(Some(history));
    }
    let Some(dir) = data_dir else {
        tracing::warn!(
            message = "No --data-dir: the masters keep no history, and every check is pending after a restart."
        );
        return Ok(None);
    };
    let history = crate::masters::History::open(dir).map_err(Error::History)?;
    tracing::info!(message = "History opened.", file = %dir.join(crate::masters::HISTORY_FILE).display());
    Ok(Some(history))
}

/// Events the status subscriber may have queued (it only needs to know that something came).
const STATUS_STREAM_CAPACITY: usize = 1024;
/// How long shutdown waits for the subscribers to drain.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How often agents are checked for staleness.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Publishes agents that went stale, every [`SWEEP_INTERVAL`], while the masters exist.
async fn sweep(masters: std::sync::Weak<crate::masters::Masters>) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tick.tick().await;
        let Some(masters) = masters.upgrade() else {
            return;
        };
        masters.sweep();
    }
}

/// How satellites are authenticated: TokenReview against the API server, cached a minute.
fn satellite_auth(client: &kube::Client, insecure_no_auth: bool) -> vedette_satellite::auth::Auth {
    use vedette_satellite::auth::{Auth, Authenticator, KubeTokenReviewer};
    if insecure_no_auth {
        tracing::warn!(message = "Satellites are not authenticated (--insecure-no-auth).");
        return Auth::Disabled;
    }
    Auth::Tokens(Authenticator::new(
        Arc::new(KubeTokenReviewer::new(client.clone())),
        std::time::Duration::from_secs(60),
    ))
}
