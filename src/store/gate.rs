//! The gate between syncs and GC, as types. A sync stores objects before any ref names them,
//! so GC must never sweep while one runs: syncs hold a [`SyncGuard`] (many at once), and GC
//! and deep verify need a [`GcGuard`] (alone), which `gc::sweep` and `verify::verify` take as
//! an argument, so they cannot be called without holding the gate.
//!
//! The gate serves one process; the data-dir lock (`DataLock`) keeps other processes out.

use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

/// Syncs share it, GC takes it alone.
#[derive(Debug, Default)]
pub struct GcGate {
    // The lock guards no data: a holder that panicked leaves nothing half-changed behind, so
    // a poisoned lock is taken like a healthy one.
    lock: RwLock<()>,
}

/// Held by a sync while it stores objects no ref names yet: no GC meanwhile.
#[must_use = "the gate is open again as soon as the guard is dropped"]
pub struct SyncGuard<'a> {
    _shared: RwLockReadGuard<'a, ()>,
}

/// Proof that no sync is storing objects: what GC and deep verify require.
#[must_use = "the gate is open again as soon as the guard is dropped"]
pub struct GcGuard<'a> {
    _alone: RwLockWriteGuard<'a, ()>,
}

impl GcGate {
    pub fn new() -> GcGate {
        GcGate::default()
    }

    /// Lets a sync store objects; waits while GC runs.
    pub fn sync_guard(&self) -> SyncGuard<'_> {
        SyncGuard {
            _shared: self.lock.read().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Waits until no sync runs, then keeps new ones waiting until the guard is dropped.
    pub fn exclusive(&self) -> GcGuard<'_> {
        GcGuard {
            _alone: self.lock.write().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// [`GcGate::exclusive`] if no sync runs right now, else `None` without waiting.
    pub fn try_exclusive(&self) -> Option<GcGuard<'_>> {
        match self.lock.try_write() {
            Ok(alone) => Some(GcGuard { _alone: alone }),
            Err(TryLockError::Poisoned(poisoned)) => Some(GcGuard {
                _alone: poisoned.into_inner(),
            }),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_keeps_gc_out_and_gc_keeps_syncs_out() {
        let gate = GcGate::new();
        let one = gate.sync_guard();
        let two = gate.sync_guard();
        assert!(gate.try_exclusive().is_none(), "syncs running");
        drop(one);
        assert!(gate.try_exclusive().is_none(), "one sync still running");
        drop(two);
        let gc = gate.try_exclusive().expect("no sync running");
        assert!(gate.try_exclusive().is_none(), "GC runs alone");
        drop(gc);
        drop(gate.exclusive());
        let _sync = gate.sync_guard();
    }

    #[test]
    fn gc_waits_for_a_running_sync() {
        let gate = GcGate::new();
        let sync = gate.sync_guard();
        std::thread::scope(|scope| {
            let gc = scope.spawn(|| {
                let _alone = gate.exclusive();
                std::time::Instant::now()
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            let released = std::time::Instant::now();
            drop(sync);
            assert!(gc.join().unwrap() >= released);
        });
    }
}
