//! Per-call resource limits: the memory limiter every store carries. It reports its own error
//! type so that a cap hit is told apart from a guest bug (a Rust guest aborts on a failed
//! allocation, which alone looks like any other trap). It must not decide retries (`error.rs`).

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// The guest asked to grow linear memory past the per-call cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("linear memory would grow to {desired} bytes, past the per-call cap of {cap}")]
pub struct MemoryCapExceeded {
    /// Bytes asked for.
    pub desired: u64,
    /// The cap, bytes.
    pub cap: u64,
}

/// The limiter of one store: the per-call memory cap first, then wasmtime's count limits.
#[derive(Debug)]
pub(crate) struct CallLimiter {
    /// Instance, table and memory counts (a component has 3 core instances, 1 memory).
    inner: StoreLimits,
    /// Bytes one call's linear memory may grow to.
    cap: usize,
    /// Largest size asked for so far, bytes (peak memory of the call).
    pub(crate) peak: usize,
}

impl CallLimiter {
    pub(crate) fn new(cap: u64) -> Self {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        let inner = StoreLimitsBuilder::new().instances(16).tables(16).memories(4).build();
        CallLimiter { inner, cap, peak: 0 }
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.cap {
            // An `Err` (not `Ok(false)`) traps at once with our type inside, so the pool can
            // classify it; `Ok(false)` would let the guest abort with an anonymous trap.
            return Err(MemoryCapExceeded { desired: desired as u64, cap: self.cap as u64 }.into());
        }
        self.peak = self.peak.max(desired);
        self.inner.memory_growing(current, desired, maximum)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_past_the_cap_is_a_typed_error() {
        let mut limiter = CallLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 19, None).is_ok_and(|ok| ok));
        let err = limiter.memory_growing(1 << 19, 2 << 20, None).err();
        let cap = err.as_ref().and_then(|e| e.downcast_ref::<MemoryCapExceeded>());
        assert_eq!(cap, Some(&MemoryCapExceeded { desired: 2 << 20, cap: 1 << 20 }));
        assert_eq!(limiter.peak, 1 << 19);
    }
}
