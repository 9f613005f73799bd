//! The circuit breaker of one extractor: closed (calls go to the component), open (calls go to
//! the native fallback), half-open (one probe goes to the component). It trips on consecutive
//! failures that are not the input's fault (`WasmError::is_component_fault`). Pure logic: the
//! caller passes the time, so tests need no clock; it must not emit telemetry (`pool/routing.rs` does).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The breaker's state, as reported in stats, metrics (0, 1, 2) and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go to the component.
    Closed,
    /// One probe call goes to the component; the rest fall back.
    HalfOpen,
    /// Calls fall back to the native core.
    Open,
}

impl BreakerState {
    /// `closed`, `half_open`, `open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

/// Where one call should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// To the component.
    Component,
    /// To the component, as the half-open probe (its outcome decides the state).
    Probe,
    /// To the native fallback.
    Fallback,
}

/// One extractor's breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    state: BreakerState,
    failures: u32,
    threshold: u32,
    open_for: Duration,
    opened_at: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            state: BreakerState::Closed,
            failures: 0,
            threshold: threshold.max(1),
            open_for,
            opened_at: None,
            probing: false,
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state
    }

    /// Routes a call; an open breaker past its open time turns half-open and lets one probe in.
    /// Returns the route and the new state when it changed.
    pub(crate) fn route(&mut self, now: Instant) -> (Route, Option<BreakerState>) {
        match self.state {
            BreakerState::Closed => (Route::Component, None),
            BreakerState::Open if self.opened_at.is_some_and(|t| now.duration_since(t) >= self.open_for) => {
                self.state = BreakerState::HalfOpen;
                self.probing = true;
                (Route::Probe, Some(BreakerState::HalfOpen))
            }
            BreakerState::HalfOpen if !self.probing => {
                self.probing = true;
                (Route::Probe, None)
            }
            BreakerState::Open | BreakerState::HalfOpen => (Route::Fallback, None),
        }
    }

    /// Records a call that reached the component; returns the new state when it changed.
    /// `component_fault` is false for successes and for the input's own failures.
    pub(crate) fn record(&mut self, route: Route, component_fault: bool, now: Instant) -> Option<BreakerState> {
        if route == Route::Probe {
            self.probing = false;
        }
        if !component_fault {
            self.failures = 0;
            if self.state != BreakerState::Closed && route == Route::Probe {
                self.state = BreakerState::Closed;
                self.opened_at = None;
                return Some(BreakerState::Closed);
            }
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        let trip = route == Route::Probe || (self.state == BreakerState::Closed && self.failures >= self.threshold);
        if trip {
            self.state = BreakerState::Open;
            self.opened_at = Some(now);
            return Some(BreakerState::Open);
        }
        None
    }

    /// A probe that never reached the component (no slot, pool closed): the next call probes.
    pub(crate) fn cancel_probe(&mut self) {
        self.probing = false;
    }

    /// Consecutive component failures so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_falls_back_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(10));
        assert_eq!(b.route(t0).0, Route::Component);
        assert_eq!(b.record(Route::Component, true, t0), None);
        assert_eq!(b.record(Route::Component, true, t0), Some(BreakerState::Open));
        assert_eq!(b.route(t0 + Duration::from_secs(1)).0, Route::Fallback);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.route(later), (Route::Probe, Some(BreakerState::HalfOpen)));
        assert_eq!(b.route(later).0, Route::Fallback, "one probe at a time");
        assert_eq!(b.record(Route::Probe, false, later), Some(BreakerState::Closed));
        assert_eq!(b.route(later).0, Route::Component);
    }

    #[test]
    fn a_failed_probe_reopens_and_input_faults_do_not_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::ZERO);
        assert_eq!(b.record(Route::Component, false, t0), None);
        assert_eq!(b.record(Route::Component, true, t0), Some(BreakerState::Open));
        let (route, _) = b.route(t0);
        assert_eq!(route, Route::Probe);
        assert_eq!(b.record(route, true, t0), Some(BreakerState::Open));
        assert_eq!(b.state(), BreakerState::Open);
    }
}
