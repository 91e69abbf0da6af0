//! Waiting for the signals that stop a process: SIGTERM (the kubelet, systemd) and SIGINT
//! (Ctrl-C). [`stopped`] is one signal; [`graceful`] is the first of two, the second one ending
//! the process at once (a drain that takes too long for whoever sent it).

use std::future::Future;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Exit code of a process ended by a second signal: 128 + SIGTERM's number.
pub const EXIT_SECOND_SIGTERM: i32 = 128 + 15;
/// Exit code of a process ended by a second signal: 128 + SIGINT's number.
pub const EXIT_SECOND_SIGINT: i32 = 128 + 2;

/// Installs the SIGTERM and SIGINT handlers **now** and returns a future that completes once
/// one of them arrives (never, when the handlers cannot be installed). Installing before the
/// work it races starts matters: a signal that arrives before the handlers exist kills the
/// process with the default action, running plugins and all. Call it inside the runtime.
pub fn stopped() -> impl Future<Output = ()> {
    let handlers = handlers();
    async move {
        let Some((mut terminate, mut interrupt)) = handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
}

/// Like [`stopped`], for a process that drains before it exits: the future completes at the
/// first SIGTERM or SIGINT, and from then on a second one exits the process at once
/// ([`EXIT_SECOND_SIGTERM`], [`EXIT_SECOND_SIGINT`]), whatever the drain had left to do.
pub fn graceful() -> impl Future<Output = ()> {
    let handlers = handlers();
    async move {
        let Some((mut terminate, mut interrupt)) = handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tokio::spawn(async move {
            let code = tokio::select! {
                _ = terminate.recv() => EXIT_SECOND_SIGTERM,
                _ = interrupt.recv() => EXIT_SECOND_SIGINT,
            };
            tracing::warn!(message = "Second signal: exiting now, without finishing the drain.");
            std::process::exit(code);
        });
    }
}

fn handlers() -> Option<(Signal, Signal)> {
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => Some((terminate, interrupt)),
        _ => None,
    }
}
