//! The operations HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive) and `/readyz` (broker, Redis and pools usable; not while draining).
//!
//! It serves what others record; it changes nothing.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::health::Health;

#[derive(Clone)]
struct OpsState {
    metrics: PrometheusHandle,
    health: Health,
}

/// The routes, apart from the listener so tests can drive them in-process.
pub fn router(metrics: PrometheusHandle, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(OpsState { metrics, health })
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let reasons = state.health.not_ready_because();
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", reasons.join(", "))).into_response()
    }
}

/// Serves on `addr` until `stop` fires; returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    health: Health,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(metrics, health);
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        if let Err(error) = served {
            tracing::warn!(%error, "The ops server stopped with an error.");
        }
    });
    tracing::info!(addr = %bound, "Serving /metrics, /healthz and /readyz.");
    Ok((bound, handle))
}
