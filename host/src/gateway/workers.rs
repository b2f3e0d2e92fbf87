//! The entry Worker's instances. A Worker is stateless: the host runs up to
//! `max-worker-instances` of them (objects of the entry class named `worker-<n>`, whose storage
//! is never used) and sends each request to an idle one, or, when all are busy, to the one with
//! the fewest requests in flight. Nothing a Worker keeps in memory is promised to the next
//! request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::router::Address;

/// Requests in flight per Worker instance.
pub(crate) struct WorkerPool {
    in_flight: Box<[AtomicU32]>,
}

/// A request's hold on one instance, released when dropped.
pub(crate) struct WorkerSlot {
    pool: Arc<WorkerPool>,
    index: usize,
}

impl WorkerPool {
    pub(crate) fn new(instances: u32) -> Arc<WorkerPool> {
        let instances = instances.max(1) as usize;
        Arc::new(WorkerPool {
            in_flight: (0..instances).map(|_| AtomicU32::new(0)).collect(),
        })
    }

    /// The instance for the next request: the first idle one (so few instances stay live under
    /// light load), else the least busy.
    pub(crate) fn pick(self: &Arc<Self>) -> WorkerSlot {
        let mut best = (u32::MAX, 0);
        for (index, count) in self.in_flight.iter().enumerate() {
            let n = count.load(Ordering::Relaxed);
            if n == 0
                && count
                    .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return self.slot(index);
            }
            if n < best.0 {
                best = (n, index);
            }
        }
        self.in_flight[best.1].fetch_add(1, Ordering::AcqRel);
        self.slot(best.1)
    }

    fn slot(self: &Arc<Self>, index: usize) -> WorkerSlot {
        WorkerSlot {
            pool: self.clone(),
            index,
        }
    }
}

impl WorkerSlot {
    /// The instance's object name in the entry class.
    pub(crate) fn address(&self) -> Address {
        Address::Name(format!("worker-{}", self.index))
    }
}

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        self.pool.in_flight[self.index].fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_instances_first_then_the_least_busy() {
        let pool = WorkerPool::new(3);
        let a = pool.pick();
        let b = pool.pick();
        let c = pool.pick();
        assert_eq!((a.index, b.index, c.index), (0, 1, 2));
        // all busy: queue behind the least busy (all equal → the first)
        let d = pool.pick();
        assert_eq!(d.index, 0);
        drop(b);
        // an idle one again
        assert_eq!(pool.pick().index, 1);
        drop((a, c, d));
        assert!(
            pool.in_flight
                .iter()
                .all(|n| n.load(Ordering::Relaxed) == 0)
        );
    }
}
