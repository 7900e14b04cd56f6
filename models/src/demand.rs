//! Prediction demand as training sees it: how many prediction requests are in flight and when
//! the last one started or finished. A pipeline that puts serving strictly first
//! (`serve.pause_training_ms`) reads it between chunks and waits for a quiet moment.
//!
//! Lowering the training threads' priority is not enough for a tail-latency target on a small
//! machine: on the 2-core test machine even a SCHED_IDLE busy loop in another process raised the
//! server's p99 from 0.5-1.6 ms to 3.3-3.5 ms (`wrk`, 16 connections), because a waking server
//! thread can wait up to a scheduler tick for a CPU that is running something. Only a CPU that
//! training leaves alone is free at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared by the server (which records prediction requests) and the trainer (which reads it);
/// cheap to clone. Relaxed atomics: it is a hint, and a stale read costs one chunk's timing.
#[derive(Clone, Debug)]
pub struct Demand {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Microseconds after `epoch` plus one of the last start or end of a request; 0 for never.
    last: AtomicU64,
}

impl Default for Demand {
    fn default() -> Self {
        Demand {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                in_flight: AtomicUsize::new(0),
                last: AtomicU64::new(0),
            }),
        }
    }
}

/// One prediction request in flight, until dropped.
#[derive(Debug)]
pub struct InFlight {
    demand: Demand,
}

impl Demand {
    fn stamp(&self) {
        let micros = self.inner.epoch.elapsed().as_micros() as u64;
        self.inner.last.store(micros + 1, Ordering::Relaxed);
    }

    /// Records a prediction request until the returned guard is dropped.
    pub fn begin(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        self.stamp();
        InFlight {
            demand: self.clone(),
        }
    }

    /// How long until no prediction will have been in flight for `quiet`: zero when that is
    /// already so, `quiet` while one is in flight.
    pub fn quiet_in(&self, quiet: Duration) -> Duration {
        if self.inner.in_flight.load(Ordering::Relaxed) > 0 {
            return quiet;
        }
        match self.inner.last.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            last => {
                let now = self.inner.epoch.elapsed().as_micros() as u64 + 1;
                quiet.saturating_sub(Duration::from_micros(now.saturating_sub(last)))
            }
        }
    }

    /// Waits (sleeping, on the calling thread) until predictions have been quiet for `quiet`,
    /// for at most `at_most` or until `give_up` says so; the time waited (zero when quiet).
    pub fn wait_for_quiet(
        &self,
        quiet: Duration,
        at_most: Duration,
        give_up: impl Fn() -> bool,
    ) -> Duration {
        if self.quiet_in(quiet).is_zero() {
            return Duration::ZERO;
        }
        let start = Instant::now();
        loop {
            let wait = self.quiet_in(quiet);
            let waited = start.elapsed();
            if wait.is_zero() || waited >= at_most || give_up() {
                return waited;
            }
            std::thread::sleep(wait.min(at_most - waited));
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.demand.stamp();
        self.demand.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(5);

    #[test]
    fn quiet_until_a_request_then_quiet_again_after_the_quiet_period() {
        let demand = Demand::default();
        assert_eq!(demand.quiet_in(QUIET), Duration::ZERO, "no request yet");
        let request = demand.begin();
        assert_eq!(demand.clone().quiet_in(QUIET), QUIET, "one in flight");
        drop(request);
        assert!(demand.quiet_in(QUIET) > Duration::ZERO, "just finished");
        std::thread::sleep(QUIET);
        assert_eq!(demand.quiet_in(QUIET), Duration::ZERO);
    }

    #[test]
    fn waiting_is_bounded_and_can_be_given_up() {
        let demand = Demand::default();
        assert_eq!(
            demand.wait_for_quiet(QUIET, QUIET, || false),
            Duration::ZERO
        );
        let _request = demand.begin();
        let at_most = Duration::from_millis(20);
        assert!(demand.wait_for_quiet(QUIET, at_most, || false) >= at_most);
        assert!(demand.wait_for_quiet(QUIET, Duration::from_secs(60), || true) < at_most);
    }

    #[test]
    fn waits_out_a_request_that_finishes() {
        let demand = Demand::default();
        let request = demand.begin();
        let finishing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&finishing);
        let finisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            flag.store(true, Ordering::SeqCst);
            drop(request);
        });
        demand.wait_for_quiet(QUIET, Duration::from_secs(60), || false);
        assert!(
            finishing.load(Ordering::SeqCst),
            "returned while a request was in flight"
        );
        assert_eq!(demand.quiet_in(QUIET), Duration::ZERO);
        finisher.join().expect("the request thread ends");
    }
}
