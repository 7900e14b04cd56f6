//! Prediction demand as training sees it: how many prediction requests are in flight and when
//! the last one started or finished. Training reads it to put serving first: between chunks it
//! can wait for a quiet moment (`serve.pause_training_ms`, [`Demand::wait_for_quiet`]), and while
//! predictions are being served it can learn in short slices with a short rest after each
//! (`serve.training_slice_us`, [`Pacer`]).
//!
//! Lowering the training threads' priority is not enough for a tail-latency target on the 2-core
//! test machine, a virtual machine whose host takes a virtual CPU away for 1-10 ms at a time once
//! the guest keeps it busy without pause (`bench/serve/vcpu_gaps.py`: 0-3 such gaps in 8 s with
//! one CPU busy, 2-24 per CPU with both). A request on that CPU waits as long, whatever the
//! priorities inside the guest: a SCHED_IDLE busy loop in another process raised the server's p99
//! from 0.55-1.7 ms to 2.6-3.3 ms (`wrk`, 16 connections). The same loop resting 50 us after each
//! 200 us of work left it at 0.76-1.03 ms: CPUs that go idle now and then are not taken away.
//! With `eddy run` training while serving (`bench/serve/run`'s pipeline, 32 connections):
//! SCHED_IDLE training alone left the p99 at 2.25-3.03 ms (eight rounds); 50 us slices with
//! 500 us rests, at 0.94-1.51 ms (five rounds, serve-only 0.87-1.58 ms in the same minutes).

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

/// Rows learned between two looks at the clock: about 20 us of learning at 3M events/s.
const CHECK_ROWS: u32 = 64;

/// Predictions served within this long count as "being served" for [`Pacer`].
const SERVING_WINDOW: Duration = Duration::from_millis(100);

/// Learning in slices while predictions are being served: after `slice` of learning the trainer
/// sleeps for `rest`, so its CPU goes idle now and then (see the module documentation). With no
/// prediction for 100 ms, training runs without rests. A slice is busy time: a wait for input as
/// long as a rest (a paced source, a quiet Kafka topic) starts a new one.
#[derive(Debug)]
pub struct Pacer {
    demand: Demand,
    slice: Duration,
    rest: Duration,
    /// Start of the current slice.
    since: Instant,
    /// End of the last chunk.
    ended: Instant,
    rows: u32,
    rested: Duration,
}

impl Pacer {
    /// `slice` and `rest` are both > 0 (checked by the configuration).
    pub fn new(demand: Demand, slice: Duration, rest: Duration) -> Self {
        Pacer {
            demand,
            slice,
            rest,
            since: Instant::now(),
            ended: Instant::now(),
            rows: 0,
            rested: Duration::ZERO,
        }
    }

    /// Called before a chunk is learned.
    pub fn begin_chunk(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.ended) >= self.rest {
            self.since = now;
        }
    }

    /// Called after a chunk is learned; the time spent resting during it.
    pub fn end_chunk(&mut self) -> Duration {
        self.ended = Instant::now();
        std::mem::take(&mut self.rested)
    }

    /// Called after each row learned; every few rows it reads the clock, and rests when a slice
    /// is over and predictions are being served.
    #[inline]
    pub fn row(&mut self) {
        self.rows += 1;
        if self.rows >= CHECK_ROWS {
            self.rows = 0;
            self.check();
        }
    }

    fn check(&mut self) {
        if self.since.elapsed() < self.slice {
            return;
        }
        if !self.demand.quiet_in(SERVING_WINDOW).is_zero() {
            let start = Instant::now();
            std::thread::sleep(self.rest);
            self.rested += start.elapsed();
        }
        self.since = Instant::now();
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

    /// "Learns" `rows` rows as one chunk, each keeping the CPU busy for a microsecond (so 64
    /// rows outlast a 20 us slice), and returns the rest taken.
    fn chunk(pacer: &mut Pacer, rows: u32) -> Duration {
        pacer.begin_chunk();
        for _ in 0..rows {
            let start = Instant::now();
            while start.elapsed() < Duration::from_micros(1) {
                std::hint::spin_loop();
            }
            pacer.row();
        }
        pacer.end_chunk()
    }

    #[test]
    fn rests_after_each_slice_only_while_predictions_are_served() {
        let demand = Demand::default();
        let rest = Duration::from_millis(2);
        let mut pacer = Pacer::new(demand.clone(), Duration::from_micros(20), rest);
        std::thread::sleep(Duration::from_millis(1));
        // Slices are over at every look at the clock, but nobody asks for predictions.
        assert_eq!(chunk(&mut pacer, 10 * CHECK_ROWS), Duration::ZERO);

        let request = demand.begin();
        let rested = chunk(&mut pacer, 3 * CHECK_ROWS);
        assert!(rested >= 3 * rest, "rested {rested:?}");
        // fewer rows than one look at the clock: no rest
        assert_eq!(chunk(&mut pacer, CHECK_ROWS - 1), Duration::ZERO);
        drop(request);
        // a prediction within the last 100 ms still counts as serving
        assert!(chunk(&mut pacer, 2 * CHECK_ROWS) >= rest);
        std::thread::sleep(SERVING_WINDOW);
        assert_eq!(chunk(&mut pacer, 10 * CHECK_ROWS), Duration::ZERO);
    }

    #[test]
    fn a_slice_is_busy_time_not_time_since_the_last_rest() {
        let demand = Demand::default();
        let _request = demand.begin();
        let slice = Duration::from_millis(100);
        let mut pacer = Pacer::new(demand, slice, Duration::from_micros(100));
        // Chunks 120 ms apart: more than a slice of wall time, but the waits between them are
        // longer than a rest, so each chunk starts a slice, and 128 rows take far less than
        // 100 ms.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(120));
            assert_eq!(chunk(&mut pacer, 2 * CHECK_ROWS), Duration::ZERO);
        }
    }
}
