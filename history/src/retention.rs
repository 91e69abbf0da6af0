//! Retention: records past the age or size limit are removed in small batches, one batch per
//! pause, so pruning never holds the writer's connection long enough to stall ingest.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{Pruned, Retention, Store};

/// Records removed per step.
pub const BATCH: usize = 5_000;
/// Pause between steps while there is more to remove.
pub const BUSY_PAUSE: Duration = Duration::from_millis(200);
/// Pause between looks when nothing was due.
pub const IDLE_PAUSE: Duration = Duration::from_secs(60);

/// Prunes `store` by `retention` until it is dropped (the task is aborted); `now_ms` is the
/// clock. Runs each step on a blocking thread.
pub async fn run(store: Arc<dyn Store>, retention: Retention, now_ms: fn() -> u64) {
    loop {
        let step_store = store.clone();
        let step =
            tokio::task::spawn_blocking(move || step_store.prune(&retention, now_ms(), BATCH))
                .await;
        let pause = match step {
            Ok(Ok(pruned)) => pause_after(pruned),
            Ok(Err(error)) => {
                tracing::warn!(message = "Pruning the history failed.", error = %error);
                IDLE_PAUSE
            }
            Err(_) => IDLE_PAUSE,
        };
        tokio::time::sleep(pause).await;
    }
}

/// How long to wait after a step that removed `pruned`.
fn pause_after(pruned: Pruned) -> Duration {
    if pruned.by_age + pruned.by_size >= BATCH as u64 {
        BUSY_PAUSE
    } else {
        IDLE_PAUSE
    }
}
