//! The retry schedule: exponential backoff with full jitter, honouring `Retry-After`, mapped
//! onto the fixed delay-queue tiers declared by the migrations.
//!
//! Pure arithmetic: it decides how long to wait, not where the message goes (that is
//! `broker/publish.rs`). The exponential envelope comes from `backon`; its own jitter adds
//! up to 100 % on top of the delay, so full jitter (uniform over `0..=envelope`, which spreads
//! a burst of failures best) is applied here.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::RetryConfig;

/// The retry schedule of one worker.
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    builder: ExponentialBuilder,
    /// Delay-queue tiers in ascending order; a delay is rounded up to one of them.
    tiers: Vec<Duration>,
}

impl RetrySchedule {
    /// A schedule from the config and the tiers the topology declares.
    pub fn new(config: &RetryConfig, tiers: Vec<Duration>) -> Self {
        let builder = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(config.base_delay_ms))
            .with_max_delay(Duration::from_millis(config.max_delay_ms))
            .with_factor(config.factor)
            .without_max_times();
        let mut tiers = tiers;
        tiers.sort();
        RetrySchedule { builder, tiers }
    }

    /// The upper bound of the wait after the `failed_attempt`-th attempt (1-based).
    pub fn envelope(&self, failed_attempt: u32) -> Duration {
        let index = usize::try_from(failed_attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        self.builder.build().nth(index).unwrap_or(Duration::MAX)
    }

    /// The wait before the next attempt: uniform over `0..=envelope`, at least `hint`.
    pub fn delay(&self, failed_attempt: u32, hint: Option<Duration>) -> Duration {
        let jittered = self.envelope(failed_attempt).mul_f64(fastrand::f64());
        hint.map_or(jittered, |hint| jittered.max(hint))
    }

    /// The delay-queue tier a politeness deferral of `wait` waits in: the longest one not
    /// longer (the job comes back a little early and waits the rest in place or is deferred
    /// again), or the shortest there is.
    pub fn tier_at_most(&self, wait: Duration) -> Option<Duration> {
        self.tiers.iter().copied().rev().find(|tier| *tier <= wait).or_else(|| self.tiers.first().copied())
    }

    /// The delay-queue tier that holds a message for `delay`: the smallest one at least as
    /// long (so a `Retry-After` is never cut short), or the longest there is.
    pub fn tier_for(&self, delay: Duration) -> Option<Duration> {
        self.tiers.iter().copied().find(|tier| *tier >= delay).or_else(|| self.tiers.last().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> RetrySchedule {
        let config = RetryConfig { base_delay_ms: 1000, max_delay_ms: 60_000, factor: 2.0 };
        let tiers = [1, 2, 5, 10, 30, 60].iter().map(|s| Duration::from_secs(*s)).collect();
        RetrySchedule::new(&config, tiers)
    }

    #[test]
    fn envelope_grows_exponentially_and_caps() {
        let s = schedule();
        assert_eq!(s.envelope(1), Duration::from_secs(1));
        assert_eq!(s.envelope(2), Duration::from_secs(2));
        assert_eq!(s.envelope(4), Duration::from_secs(8));
        assert_eq!(s.envelope(30), Duration::from_secs(60));
    }

    #[test]
    fn full_jitter_stays_inside_the_envelope_and_spreads() {
        let s = schedule();
        let samples: Vec<Duration> = (0..2000).map(|_| s.delay(4, None)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_secs(8)));
        let below_half = samples.iter().filter(|d| **d < Duration::from_secs(4)).count();
        // Uniform over 0..=8 s puts about half below 4 s.
        assert!((800..1200).contains(&below_half), "{below_half}");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let s = schedule();
        assert!(s.delay(1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert_eq!(s.tier_for(Duration::from_secs(7)), Some(Duration::from_secs(10)));
    }

    #[test]
    fn deferrals_round_down() {
        let s = schedule();
        assert_eq!(s.tier_at_most(Duration::from_millis(500)), Some(Duration::from_secs(1)));
        assert_eq!(s.tier_at_most(Duration::from_millis(4900)), Some(Duration::from_secs(2)));
        assert_eq!(s.tier_at_most(Duration::from_secs(45)), Some(Duration::from_secs(30)));
        assert_eq!(s.tier_at_most(Duration::from_secs(86_400)), Some(Duration::from_secs(60)));
    }

    #[test]
    fn tiers_round_up_and_clamp() {
        let s = schedule();
        assert_eq!(s.tier_for(Duration::ZERO), Some(Duration::from_secs(1)));
        assert_eq!(s.tier_for(Duration::from_millis(1500)), Some(Duration::from_secs(2)));
        assert_eq!(s.tier_for(Duration::from_secs(3600)), Some(Duration::from_secs(60)));
    }
}
