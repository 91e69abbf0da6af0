//! Waiting for the signals that stop a process: SIGTERM (the kubelet, systemd) and SIGINT
//! (Ctrl-C).

/// Returns once SIGTERM or SIGINT arrives; never when the handlers cannot be installed.
pub async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}
