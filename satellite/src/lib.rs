//! vedette-satellite, the zone tier (`vedette-satellite --zone Z`): serves plans to the zone's agents, stores
//! their result batches durably before acknowledging them, keeps the zone's state table,
//! runs the zone's remote checks, and forwards state changes and summaries to the masters.
//!
//! Pure parts (tested without HTTP): `plans`, `table`, `ownership`, `ingest` (on a real
//! spool). Edges: `bundle_source` and `replicas` (Kubernetes or standalone), `auth`
//! (TokenReview), `http` (axum), `remote` (the node agent's engine), `cli`.
//!
//! It reuses the node agent's spool, sender and transport (`vedette-agent`, a library here),
//! so both tiers keep entries by the same durability rules.

pub mod auth;
pub mod bundle_source;
pub mod cli;
pub mod defaults;
pub mod error;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod ownership;
pub mod plans;
pub mod remote;
pub mod replicas;
pub mod shutdown;
pub mod table;
pub mod watch_backoff;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::Error;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use vedette_agent::sender::{AckGate, Cursors, LiveEntry, fan_out};
use vedette_agent::spool::{Spool, SpoolConfig};
use vedette_agent::transport::{SATELLITE_PATH, Transport, Upstreams};
use vedette_protocol::clock::unix_ms;
use vedette_protocol::forward::Forwarded;

use auth::{Auth, Authenticator, KubeTokenReviewer};
use bundle_source::{BundleSource, FileBundleSource, KubeBundleSource};
use ingest::Ingest;
use metrics::SatelliteMetrics;
use plans::Plans;
use replicas::{Alone, LeaseMembership, Membership};

/// Everything the satellite role needs.
#[derive(Debug, Clone)]
pub struct SatelliteConfig {
    /// The zone served.
    pub zone: String,
    /// This replica's id (its pod name).
    pub replica: String,
    /// Namespace of the bundle ConfigMaps and Leases.
    pub namespace: String,
    /// Address of the HTTP API.
    pub listen: SocketAddr,
    /// Where forwarded entries go, one cursor each: the masters' base URLs, or the parent
    /// zone's satellites (their Service; they relay to their own upstream); empty: nothing
    /// is forwarded.
    pub masters: Vec<String>,
    /// Bearer token file presented to the masters.
    pub token_file: Option<PathBuf>,
    /// Directory of the spool (and the snapshot beside it).
    pub spool_dir: PathBuf,
    /// Read the bundle from this JSON file instead of Kubernetes (standalone).
    pub bundle_file: Option<PathBuf>,
    /// Accept requests without a token (standalone only).
    pub insecure_no_auth: bool,
    /// Largest batch body.
    pub max_body_bytes: usize,
    /// Seconds between summaries sent to the masters.
    pub summary_seconds: u64,
    /// Seconds between snapshots of the core.
    pub snapshot_seconds: u64,
    /// Seconds between Lease renewals.
    pub lease_renew_seconds: u64,
    /// Seconds a Lease lasts without renewal.
    pub lease_duration_seconds: u64,
    /// Remote checks running at once at most.
    pub concurrency: usize,
    /// Backlog entries replayed to the masters per second.
    pub replay_per_second: u32,
    /// Seconds a stop (SIGTERM) may take to forward what is left before the process exits.
    pub shutdown_grace_seconds: u64,
}

/// Runs the satellite until SIGTERM or SIGINT, then drains ([`shutdown`]) and returns; a
/// second signal exits at once.
pub async fn run(config: SatelliteConfig) -> Result<(), Error> {
    // Before the remote checks' plugins start.
    let stop = vedette_agent::signal::graceful();
    let api = start(config.clone(), None).await?;
    let listen = |source| Error::Listen {
        address: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(listen)?;
    info!(message = "Serving the satellite API.", address = %listener.local_addr().map_err(listen)?, zone = %config.zone);
    // Served during the drain too: new batches are answered 503 then.
    let server = axum::serve(listener, http::router(api.clone())).into_future();
    let mut server = tokio::spawn(server);
    tokio::select! {
        served = &mut server => {
            return match served {
                Ok(result) => result.map_err(listen),
                Err(join) => Err(listen(std::io::Error::other(join))),
            };
        }
        () = stop => {}
    }
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    shutdown::drain(&api.ingest, !config.masters.is_empty(), grace).await;
    Ok(())
}

/// Starts every task of the satellite and returns the state its HTTP API serves (mount it
/// with [`http::router`]). `source` replaces the bundle source `config` names (standalone
/// mode compiles bundles itself); with a `source` no Kubernetes client is created unless
/// authentication needs one. `config.listen` is not bound here.
pub async fn start(
    mut config: SatelliteConfig,
    source: Option<Box<dyn BundleSource>>,
) -> Result<Arc<http::Api>, Error> {
    config.masters = master_urls(&config.masters);
    let standalone = source.is_some() || config.bundle_file.is_some();
    let metrics = Arc::new(SatelliteMetrics::default());
    let spool =
        Spool::open(SpoolConfig::new(config.spool_dir.join("spool"))).map_err(|source| {
            Error::Spool {
                dir: config.spool_dir.clone(),
                source,
            }
        })?;
    let (live_tx, live_rx) = mpsc::channel(10_000);
    let live = (!config.masters.is_empty()).then_some(live_tx);
    let ingest = Arc::new(
        Ingest::open(
            &config.replica,
            spool.clone(),
            &config.spool_dir.join("satellite-snapshot.json"),
            live,
            metrics.clone(),
        )
        .map_err(Error::Recover)?,
    );
    let client = if !standalone || !config.insecure_no_auth {
        Some(kube::Client::try_default().await.map_err(Error::Client)?)
    } else {
        None
    };
    let (bundles_tx, bundles) = watch::channel(None);
    let source: Box<dyn BundleSource> = match (source, &config.bundle_file, &client) {
        (Some(source), _, _) => source,
        (None, Some(path), _) => Box::new(FileBundleSource {
            path: path.clone(),
            poll: Duration::from_secs(1),
        }),
        (None, None, Some(client)) => Box::new(KubeBundleSource {
            client: client.clone(),
            namespace: config.namespace.clone(),
            zone: config.zone.clone(),
        }),
        (None, None, None) => unreachable!("a client exists without a bundle source"),
    };
    tokio::spawn(source.run(bundles_tx));
    let membership: Box<dyn Membership> = match (standalone, &client) {
        (false, Some(client)) => Box::new(LeaseMembership {
            client: client.clone(),
            namespace: config.namespace.clone(),
            zone: config.zone.clone(),
            replica: config.replica.clone(),
            renew: Duration::from_secs(config.lease_renew_seconds.max(1)),
            duration: Duration::from_secs(config.lease_duration_seconds.max(2)),
        }),
        _ => Box::new(Alone(config.replica.clone())),
    };
    let (replicas_tx, replicas) = watch::channel(Vec::new());
    tokio::spawn(membership.run(replicas_tx));

    let plans = Arc::new(Plans::default());
    tokio::spawn(follow_bundles(
        bundles.clone(),
        plans.clone(),
        ingest.clone(),
        metrics.clone(),
    ));
    tokio::spawn(snapshots(ingest.clone(), spool.clone(), config.clone()));
    tokio::spawn(remote::run(
        config.replica.clone(),
        bundles,
        replicas,
        ingest.clone(),
        metrics.clone(),
        config.concurrency.max(1),
    ));
    if config.masters.is_empty() {
        info!(message = "No masters configured: nothing is forwarded.");
    } else {
        forward_to_masters(&config, spool, ingest.gate(), &metrics, live_rx)?;
        tokio::spawn(summaries(
            ingest.clone(),
            plans.clone(),
            metrics.clone(),
            config.clone(),
        ));
    }

    let auth = match (&client, config.insecure_no_auth) {
        (_, true) => {
            warn!(message = "Authentication is disabled (--insecure-no-auth).");
            Auth::Disabled
        }
        (Some(client), false) => Auth::Tokens(Authenticator::new(
            Arc::new(KubeTokenReviewer::new(client.clone())),
            Duration::from_secs(60),
        )),
        (None, false) => unreachable!("a client exists when authentication is on"),
    };
    Ok(Arc::new(http::Api {
        zone: config.zone.clone(),
        replica: config.replica.clone(),
        namespace: config.namespace.clone(),
        plans,
        ingest,
        auth,
        registry: metrics.registry(),
        metrics,
        max_body_bytes: config.max_body_bytes,
    }))
}

/// Sends every spooled entry to each master, with a cursor per master in the spool directory;
/// an entry leaves the spool once every master has it and a snapshot covers it (`gate`).
fn forward_to_masters(
    config: &SatelliteConfig,
    spool: Spool,
    gate: AckGate,
    metrics: &SatelliteMetrics,
    live: mpsc::Receiver<LiveEntry>,
) -> Result<(), Error> {
    let masters = &config.masters;
    let cursors = Cursors::open(spool, gate, masters).map_err(|source| Error::Cursors {
        dir: config.spool_dir.clone(),
        source,
    })?;
    let upstreams: Vec<fan_out::Upstream> = masters
        .iter()
        .map(|url| fan_out::Upstream {
            transport: Transport::new(
                Upstreams::new(vec![url.clone()]),
                config.token_file.clone(),
                Duration::from_secs(10),
            )
            .with_results_path(SATELLITE_PATH),
            metrics: metrics.upstream(url),
        })
        .collect();
    for upstream in &upstreams {
        tokio::spawn(probe_while_behind(
            upstream.transport.clone(),
            upstream.metrics.backlog.clone(),
        ));
    }
    info!(message = "Forwarding to every master.", masters = ?masters);
    fan_out::spawn::<Forwarded>(
        &config.replica,
        config.replay_per_second,
        &cursors,
        upstreams,
        live,
    );
    Ok(())
}

/// How often an upstream with a backlog is asked whether it is back.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// While `transport`'s upstream has entries it did not acknowledge (`backlog`), asks it every
/// [`PROBE_EVERY`] whether it is back ([`Transport::probe`]), so a send loop waiting out a
/// backoff grown during an outage (up to 30 s) retries within a second of its return.
async fn probe_while_behind(transport: Transport, backlog: Gauge) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        if backlog.get() > 0 {
            let _ = transport.probe().await;
        }
    }
}

/// The masters' URLs as cursors name them: no trailing `/`, each once, in the given order.
pub fn master_urls(masters: &[String]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for url in masters.iter().map(|u| u.trim().trim_end_matches('/')) {
        if !url.is_empty() && !urls.iter().any(|u| u == url) {
            urls.push(url.to_owned());
        }
    }
    urls
}

/// Serves each new bundle's plans and takes its checks into the state table.
async fn follow_bundles(
    mut bundles: watch::Receiver<Option<Arc<vedette_protocol::plan::ZoneBundle>>>,
    plans: Arc<Plans>,
    ingest: Arc<Ingest>,
    metrics: Arc<SatelliteMetrics>,
) {
    loop {
        if let Some(bundle) = bundles.borrow_and_update().clone()
            && plans.set_bundle(bundle.clone())
        {
            ingest.core().table.set_bundle(&bundle);
            metrics.bundle_loaded.set(1);
        }
        if bundles.changed().await.is_err() {
            return;
        }
    }
}

/// Writes snapshots; without masters, also lets the spool drop what a snapshot covers. The
/// last one is the drain's ([`shutdown::drain`]).
async fn snapshots(ingest: Arc<Ingest>, spool: Spool, config: SatelliteConfig) {
    let every = Duration::from_secs(config.snapshot_seconds.max(1));
    loop {
        tokio::time::sleep(every).await;
        if ingest.is_closed() {
            return;
        }
        if let Err(error) = ingest.snapshot().await {
            warn!(message = "Failed to write the snapshot.", %error);
            continue;
        }
        if config.masters.is_empty() {
            shutdown::release_covered(&ingest, &spool);
        }
    }
}

/// Spools rule-set and zone summaries for the masters.
async fn summaries(
    ingest: Arc<Ingest>,
    plans: Arc<Plans>,
    metrics: Arc<SatelliteMetrics>,
    config: SatelliteConfig,
) {
    let every = Duration::from_secs(config.summary_seconds.max(1));
    loop {
        tokio::time::sleep(every).await;
        if ingest.is_closed() {
            return;
        }
        if plans.current().is_none() {
            continue;
        }
        let now = unix_ms();
        let entries: Vec<Forwarded> = {
            let core = ingest.core();
            let owned = metrics.remote_checks_owned.get() as u32;
            vec![Forwarded::ZoneSummary(core.table.zone_summary(
                &config.zone,
                &config.replica,
                now,
                owned,
            ))]
        };
        for entry in entries {
            if let Err(error) = ingest.append_own(entry).await {
                warn!(message = "Failed to spool a summary.", %error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::master_urls;

    #[test]
    fn master_urls_are_trimmed_and_listed_once() {
        let given = [
            "http://m-0:8080/",
            " http://m-1:8080",
            "",
            "http://m-0:8080",
        ];
        let given: Vec<String> = given.iter().map(|u| (*u).to_owned()).collect();
        assert_eq!(master_urls(&given), ["http://m-0:8080", "http://m-1:8080"]);
    }
}
