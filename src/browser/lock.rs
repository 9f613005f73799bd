//! The one locking rule of the browser pool: take a `std` mutex even when it is poisoned.
//!
//! It owns [`lock`] only, so `instance.rs` and `session.rs` (and the pool) share it without
//! importing each other; it must not grow into a home for other helpers.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, taking the data even if a panicking holder poisoned it: every critical
/// section in `browser/` leaves the data consistent, so the poison carries no information.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
