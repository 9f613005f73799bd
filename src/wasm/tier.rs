//! Tiers and the plan that moves extractors between them: a moving average of demand per
//! extractor, ranked, fitted into the memory budget. Pure logic (no wasmtime, no clock): the
//! pool (`pool/rebalance.rs`) measures, asks for a plan, and carries it out.

use serde::{Deserialize, Serialize};

/// Where an extractor's instances come from when leased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Artifact on disk only: a lease loads the compiled code, links and instantiates.
    Cold,
    /// Compiled and linked (`InstancePre`): a lease instantiates (~10 µs).
    Warm,
    /// Fresh pre-instantiated instances kept ready: a lease is a pop.
    Hot,
}

impl Tier {
    /// The label value: `hot`, `warm`, `cold`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }

    /// Every tier, for metrics.
    pub const ALL: [Tier; 3] = [Tier::Hot, Tier::Warm, Tier::Cold];
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Exponentially weighted moving average of leases per rebalance interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Demand {
    pub(crate) average: f64,
}

impl Demand {
    /// Folds in one interval's lease count with weight `smoothing` in (0, 1].
    pub(crate) fn observe(&mut self, leases: u64, smoothing: f64) {
        self.average = smoothing * leases as f64 + (1.0 - smoothing) * self.average;
    }
}

/// What the planner knows of one extractor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    /// Average leases per interval.
    pub(crate) demand: f64,
    /// Estimated bytes of its compiled code when warm.
    pub(crate) code_bytes: u64,
    /// Estimated bytes of one idle hot instance.
    pub(crate) instance_bytes: u64,
    /// Never below warm (the default extractor: the first job must not wait for a load).
    pub(crate) keep_warm: bool,
    /// Held at this tier whatever the demand (`wasm.pinned`).
    pub(crate) pinned: Option<Tier>,
}

/// The planner's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    pub(crate) hot_demand: f64,
    pub(crate) warm_demand: f64,
    pub(crate) hot_max_per_extractor: u32,
    pub(crate) hot_max_total: u32,
    pub(crate) memory_budget_bytes: u64,
}

/// The plan for one extractor: its tier and how many idle hot instances to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) tier: Tier,
    pub(crate) hot_target: u32,
}

/// Places every candidate (same order as given). Demand decides the wish: at least
/// `hot_demand` wants hot, with about one idle instance per expected lease per interval; at least
/// `warm_demand` wants warm; below, cold. The budget then decides what fits: most demanded first,
/// warm before any hot instance, so a burst on one extractor cannot push another to disk.
pub(crate) fn plan(candidates: &[Candidate], limits: &Limits) -> Vec<Placement> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| candidates[b].demand.total_cmp(&candidates[a].demand));
    let mut out = vec![Placement { tier: Tier::Cold, hot_target: 0 }; candidates.len()];
    let mut budget = limits.memory_budget_bytes;
    for &i in &order {
        let c = &candidates[i];
        if let Some(tier) = c.pinned {
            out[i].tier = tier.min(Tier::Warm);
            budget = budget.saturating_sub(if tier == Tier::Cold { 0 } else { c.code_bytes });
            continue;
        }
        let fits = c.demand >= limits.warm_demand && c.code_bytes <= budget;
        if c.keep_warm || fits {
            budget = budget.saturating_sub(c.code_bytes);
            out[i].tier = Tier::Warm;
        }
    }
    let mut hot_left = limits.hot_max_total;
    for &i in &order {
        let c = &candidates[i];
        let pinned_hot = c.pinned == Some(Tier::Hot);
        if out[i].tier != Tier::Warm || (c.demand < limits.hot_demand && !pinned_hot) || c.pinned == Some(Tier::Warm) {
            continue;
        }
        let wanted = if pinned_hot { limits.hot_max_per_extractor } else { c.demand.ceil() as u32 };
        let wanted = wanted.clamp(1, limits.hot_max_per_extractor.max(1));
        let affordable = budget.checked_div(c.instance_bytes.max(1)).unwrap_or(0);
        let n = wanted.min(hot_left).min(u32::try_from(affordable).unwrap_or(u32::MAX));
        if n > 0 {
            out[i] = Placement { tier: Tier::Hot, hot_target: n };
            hot_left -= n;
            budget -= u64::from(n) * c.instance_bytes.max(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn limits(budget: u64) -> Limits {
        Limits {
            hot_demand: 1.0,
            warm_demand: 0.05,
            hot_max_per_extractor: 4,
            hot_max_total: 6,
            memory_budget_bytes: budget,
        }
    }

    fn candidate(demand: f64) -> Candidate {
        Candidate { demand, code_bytes: 2 * MIB, instance_bytes: MIB, keep_warm: false, pinned: None }
    }

    #[test]
    fn demand_picks_the_tier() {
        let got = plan(&[candidate(3.2), candidate(0.5), candidate(0.0)], &limits(64 * MIB));
        assert_eq!(got[0], Placement { tier: Tier::Hot, hot_target: 4 });
        assert_eq!(got[1], Placement { tier: Tier::Warm, hot_target: 0 });
        assert_eq!(got[2], Placement { tier: Tier::Cold, hot_target: 0 });
    }

    #[test]
    fn the_budget_demotes_the_least_demanded_first() {
        // 5 MiB: two warm extractors (4 MiB) and one hot instance (1 MiB) fit, not the third.
        let got = plan(&[candidate(1.0), candidate(2.0), candidate(0.5)], &limits(5 * MIB));
        assert_eq!(got[1], Placement { tier: Tier::Hot, hot_target: 1 });
        assert_eq!(got[0].tier, Tier::Warm);
        assert_eq!(got[2].tier, Tier::Cold);
    }

    #[test]
    fn hot_instances_are_capped_in_total_and_the_default_stays_warm() {
        let mut idle = candidate(0.0);
        idle.keep_warm = true;
        let got = plan(&[candidate(9.0), candidate(9.0), idle], &limits(0));
        assert_eq!(got[2].tier, Tier::Warm);
        let got = plan(&[candidate(9.0), candidate(9.0)], &limits(64 * MIB));
        assert_eq!(got.iter().map(|p| p.hot_target).sum::<u32>(), 6);
    }

    #[test]
    fn pins_hold_whatever_the_demand() {
        let mut cold = candidate(9.0);
        cold.pinned = Some(Tier::Cold);
        let mut warm = candidate(9.0);
        warm.pinned = Some(Tier::Warm);
        let mut hot = candidate(0.0);
        hot.pinned = Some(Tier::Hot);
        let got = plan(&[cold, warm, hot], &limits(64 * MIB));
        assert_eq!(got[0].tier, Tier::Cold);
        assert_eq!(got[1], Placement { tier: Tier::Warm, hot_target: 0 });
        assert_eq!(got[2], Placement { tier: Tier::Hot, hot_target: 4 });
    }

    #[test]
    fn the_average_follows_demand() {
        let mut d = Demand::default();
        for _ in 0..20 {
            d.observe(4, 0.3);
        }
        assert!((d.average - 4.0).abs() < 0.01);
        for _ in 0..20 {
            d.observe(0, 0.3);
        }
        assert!(d.average < 0.01);
    }
}
