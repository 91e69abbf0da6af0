//! Waiting for the signals that stop a process: SIGTERM (the kubelet, systemd) and SIGINT
//! (Ctrl-C).

use std::future::Future;

/// Installs the SIGTERM and SIGINT handlers **now** and returns a future that completes once
/// one of them arrives (never, when the handlers cannot be installed). Installing before the
/// work it races starts matters: a signal that arrives before the handlers exist kills the
/// process with the default action, running plugins and all. Call it inside the runtime.
pub fn stopped() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut terminate), Ok(mut interrupt)) = handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
}
