//! The circuit breaker of one extractor: closed (calls go to the component), open (calls go to
//! the native fallback), half-open (one probe goes to the component). It trips on consecutive
//! component faults (`WasmError::is_component_fault`) on *distinct* inputs: each fault carries
//! a key of the page it happened on ([`InputKey`]), and a page that faults again while its key is
//! among the recent faults counts once, since a page that traps twice is that page's problem
//! (its job fails permanently with its reason) and says nothing more about the component's
//! health. Faults with no input (instantiation) always count. Pure logic: the caller passes the
//! time, so tests need no clock; it must not emit telemetry (`pool/routing.rs` does).

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

/// A hash of one call's input (the page and the options; see `lease.rs`): two faults with the
/// same key are one bad page, not two signs of a sick component.
pub(crate) type InputKey = u64;

/// How a call that reached the component went, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A document, or a failure that is the input's own (deadline, memory cap, refusal).
    Healthy,
    /// A component fault (trap, `internal`, crash, instantiation), on the input with this key
    /// when there was one.
    Fault(Option<InputKey>),
}

/// One extractor's breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    state: BreakerState,
    /// Inputs of the consecutive component faults since the last healthy call, one entry per
    /// distinct input (`None`: a fault without one, always distinct); at most `threshold`.
    faulted: Vec<Option<InputKey>>,
    threshold: u32,
    open_for: Duration,
    opened_at: Option<Instant>,
    probing: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Breaker {
            state: BreakerState::Closed,
            faulted: Vec::new(),
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
    /// A fault on an input already among the recent faults does not count (and a probe that
    /// meets one proves nothing either way: the next call probes again).
    pub(crate) fn record(&mut self, route: Route, outcome: Outcome, now: Instant) -> Option<BreakerState> {
        if route == Route::Probe {
            self.probing = false;
        }
        let input = match outcome {
            Outcome::Healthy => {
                self.faulted.clear();
                if self.state != BreakerState::Closed && route == Route::Probe {
                    self.state = BreakerState::Closed;
                    self.opened_at = None;
                    return Some(BreakerState::Closed);
                }
                return None;
            }
            Outcome::Fault(input) => input,
        };
        if input.is_some() && self.faulted.contains(&input) {
            return None;
        }
        self.faulted.push(input);
        if self.faulted.len() > self.threshold as usize {
            self.faulted.remove(0);
        }
        let trip = route == Route::Probe || (self.state == BreakerState::Closed && self.failures() >= self.threshold);
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

    /// Consecutive component faults on distinct inputs so far (at most the threshold).
    pub(crate) fn failures(&self) -> u32 {
        self.faulted.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fault without an input: always counts.
    const FAULT: Outcome = Outcome::Fault(None);

    #[test]
    fn opens_falls_back_probes_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(10));
        assert_eq!(b.route(t0).0, Route::Component);
        assert_eq!(b.record(Route::Component, FAULT, t0), None);
        assert_eq!(b.record(Route::Component, FAULT, t0), Some(BreakerState::Open));
        assert_eq!(b.route(t0 + Duration::from_secs(1)).0, Route::Fallback);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(b.route(later), (Route::Probe, Some(BreakerState::HalfOpen)));
        assert_eq!(b.route(later).0, Route::Fallback, "one probe at a time");
        assert_eq!(b.record(Route::Probe, Outcome::Healthy, later), Some(BreakerState::Closed));
        assert_eq!(b.route(later).0, Route::Component);
    }

    #[test]
    fn a_failed_probe_reopens_and_input_faults_do_not_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(1, Duration::ZERO);
        assert_eq!(b.record(Route::Component, Outcome::Healthy, t0), None);
        assert_eq!(b.record(Route::Component, FAULT, t0), Some(BreakerState::Open));
        let (route, _) = b.route(t0);
        assert_eq!(route, Route::Probe);
        assert_eq!(b.record(route, FAULT, t0), Some(BreakerState::Open));
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn one_page_faulting_again_and_again_does_not_trip() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..10 {
            assert_eq!(b.record(Route::Component, Outcome::Fault(Some(7)), t0), None);
        }
        assert_eq!((b.state(), b.failures()), (BreakerState::Closed, 1));
        assert_eq!(b.record(Route::Component, Outcome::Fault(Some(8)), t0), None);
        assert_eq!(b.record(Route::Component, Outcome::Fault(Some(7)), t0), None);
        assert_eq!(b.record(Route::Component, Outcome::Fault(Some(9)), t0), Some(BreakerState::Open));
    }

    #[test]
    fn a_healthy_call_forgets_the_faulted_pages() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(10));
        assert_eq!(b.record(Route::Component, Outcome::Fault(Some(1)), t0), None);
        assert_eq!(b.record(Route::Component, Outcome::Healthy, t0), None);
        assert_eq!(b.record(Route::Component, Outcome::Fault(Some(2)), t0), None);
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn a_probe_on_a_known_bad_page_proves_nothing() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::ZERO);
        b.record(Route::Component, Outcome::Fault(Some(1)), t0);
        assert_eq!(b.record(Route::Component, Outcome::Fault(Some(2)), t0), Some(BreakerState::Open));
        assert_eq!(b.route(t0), (Route::Probe, Some(BreakerState::HalfOpen)));
        assert_eq!(b.record(Route::Probe, Outcome::Fault(Some(2)), t0), None);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.route(t0).0, Route::Probe, "the next call probes again");
        assert_eq!(b.record(Route::Probe, Outcome::Fault(Some(3)), t0), Some(BreakerState::Open));
    }
}
