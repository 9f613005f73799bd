//! The stop signal: SIGINT or SIGTERM cancels a [`CancellationToken`] that every long-running
//! command (worker, `results --follow`, `extract`, `sample-site`) passes down.
//!
//! It only turns signals into a token; what stopping means is up to whoever holds the token.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGINT or SIGTERM (a task listens for them from now on).
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn(cancel_on_signal(token.clone()));
    token
}

/// Cancels `token` on SIGINT or SIGTERM.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for SIGTERM; only SIGINT stops gracefully.");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
        () = token.cancelled() => return,
    }
    tracing::info!("Stop signal received; stopping.");
    token.cancel();
}
