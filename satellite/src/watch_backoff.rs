//! The backoff of every watch (the operator's, the masters', a satellite's bundle) while the
//! API server is unreachable.
//!
//! kube-runtime's `default_backoff()` resets its backoff on every `Ok` item, and a watcher
//! starting a (re)list yields `Event::Init` before it sends the list request: against an API
//! server that is down, every retry resets the backoff, so each watch fails every 0.8 s, and
//! the operator's watches log about twenty errors a second for as long as it lasts.
//! Here only what the API server sent (any event but `Init`) resets it: the retries back off
//! exponentially (0.8 s doubling to 30 s, jittered, as kube-runtime's own `DefaultBackoff`).

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, DefaultBackoff, Event};

/// The longest wait, should the backoff give up (kube-runtime's never does).
const LONGEST: Duration = Duration::from_secs(30);

/// Whether an item shows that the API server answered: an event it sent; `Init` only says
/// that a list is about to be requested.
pub fn answered<K, E>(item: &Result<Event<K>, E>) -> bool {
    matches!(item, Ok(event) if !matches!(event, Event::Init))
}

/// `stream` (a `watcher`) with kube-runtime's default backoff, reset only by what the API
/// server sent ([`answered`]).
pub fn backoff<K, S>(stream: S) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    K: Send + 'static,
{
    with_backoff(stream, DefaultBackoff::default())
}

/// `stream` waiting `backoff`'s next delay after each error before it is polled again; the
/// backoff is reset by every item the API server sent.
pub fn with_backoff<K, E, S, B>(stream: S, backoff: B) -> impl Stream<Item = Result<Event<K>, E>>
where
    S: Stream<Item = Result<Event<K>, E>>,
    B: Backoff,
{
    let state = (Box::pin(stream), backoff, None::<Duration>);
    futures::stream::unfold(state, |(mut stream, mut backoff, wait)| async move {
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
        let item = stream.next().await?;
        if answered(&item) {
            backoff.reset();
        }
        let wait = item.is_err().then(|| backoff.next().unwrap_or(LONGEST));
        Some((item, (stream, backoff, wait)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::WatchStreamExt;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    /// A watcher against an API server that refuses connections: every attempt is `Init`,
    /// then the failed list. Each failure is counted when it happens.
    fn refused(
        failures: Arc<Mutex<Vec<Instant>>>,
    ) -> impl Stream<Item = Result<Event<()>, String>> {
        futures::stream::iter(0..).flat_map(move |attempt| {
            let failures = failures.clone();
            futures::stream::iter([Ok(Event::Init), Err(format!("attempt {attempt} refused"))])
                .inspect(move |item| {
                    if item.is_err() {
                        failures.lock().unwrap().push(Instant::now());
                    }
                })
        })
    }

    /// Failures within `window` of `stream` driven on paused time.
    async fn failures_within<S: Stream>(
        stream: S,
        failures: &Mutex<Vec<Instant>>,
        window: Duration,
    ) -> usize {
        let start = Instant::now();
        let drive = stream.for_each(|_| async {});
        let _ = tokio::time::timeout(window, drive).await;
        failures
            .lock()
            .unwrap()
            .iter()
            .filter(|at| at.duration_since(start) < window)
            .count()
    }

    #[tokio::test(start_paused = true)]
    async fn failures_against_a_refusing_api_server_back_off_to_30_s() {
        let window = Duration::from_secs(120);
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stream = backoff_of(refused(failures.clone()));
        let count = failures_within(stream, &failures, window).await;
        // 0, ~0.8, ~2.4, ~5.6, ~12, ~25, ~51, then every 30 s or so: about 9 in 2 minutes.
        assert!((5..=11).contains(&count), "{count} failures in {window:?}");
        let times = failures.lock().unwrap().clone();
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.last().unwrap() >= &Duration::from_secs(15), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn kube_runtimes_default_backoff_resets_on_init_and_never_grows() {
        // Why this module exists: the same stream under `default_backoff()`.
        let window = Duration::from_secs(120);
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stream = refused(failures.clone()).default_backoff();
        let count = failures_within(stream, &failures, window).await;
        assert!(count >= 60, "{count} failures in {window:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_event_from_the_api_server_resets_the_backoff() {
        let items: Vec<Result<Event<()>, String>> = vec![
            Err("1".into()),
            Err("2".into()),
            Err("3".into()),
            Err("4".into()),
            Ok(Event::InitDone),
            Err("5".into()),
            Err("6".into()),
        ];
        let start = Instant::now();
        let mut arrivals = Vec::new();
        let mut stream = std::pin::pin!(backoff_of(futures::stream::iter(items)));
        while let Some(item) = stream.next().await {
            arrivals.push((item.is_ok(), start.elapsed()));
        }
        // After four failures the wait has grown past 6 s; after InitDone it is back at the
        // base 0.8 s (jittered up to twice that).
        let gap = |i: usize| arrivals[i].1 - arrivals[i - 1].1;
        assert!(gap(4) >= Duration::from_millis(6400), "{arrivals:?}");
        assert_eq!(
            gap(5),
            Duration::ZERO,
            "no wait after an event: {arrivals:?}"
        );
        assert!(gap(6) <= Duration::from_millis(1600), "{arrivals:?}");
        assert!(answered::<(), String>(&Ok(Event::InitDone)));
        assert!(!answered::<(), String>(&Ok(Event::Init)));
        assert!(!answered::<(), String>(&Err("refused".into())));
    }

    fn backoff_of<S>(stream: S) -> impl Stream<Item = Result<Event<()>, String>>
    where
        S: Stream<Item = Result<Event<()>, String>>,
    {
        with_backoff(stream, DefaultBackoff::default())
    }
}
