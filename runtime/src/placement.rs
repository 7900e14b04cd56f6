//! Which CPUs a pipeline's helper threads run on.
//!
//! A replay runs as fast as its trainer thread, which learns every event in order on one thread;
//! the helpers (the columnar decoder, the source thread that cuts chunks and hashes ahead, the
//! scoring thread) keep about one more core busy between them. Left to the scheduler, a helper
//! that the trainer wakes (by taking a chunk from a full queue) is often put on the trainer's
//! own CPU and run there first: the trainer then stops for the helper's turn (~70 us each, up
//! to ~200 times in a million-event replay on a 2-vCPU VM), and the chunks it was to learn next
//! wait behind it. So helpers keep off one CPU, the last this process may run on, which leaves
//! it to the trainer. The trainer itself is not pinned: it may still run anywhere, and nothing
//! else in the process (the HTTP server, the parser threads of text sources, which a text
//! replay needs on every core) is restricted.
//!
//! Only when the process may run on two or more CPUs; `EDDY_TRAINER_CPU=shared` in the
//! environment turns it off (on a machine where another program keeps the helpers' CPUs busy,
//! they could not move).

/// The calling thread's CPU set, changed by [`off_trainer_cpu`] or [`any_cpu`] until this is
/// dropped.
pub(crate) struct Placed {
    #[cfg(target_os = "linux")]
    previous: Option<libc::cpu_set_t>,
}

/// The CPU helpers keep off, if any.
pub(crate) fn trainer_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    return linux::reserved();
    #[cfg(not(target_os = "linux"))]
    None
}

/// Keeps the calling helper thread off the trainer's CPU (see the module's documentation);
/// a no-op when there is no CPU to leave or it already keeps off it.
pub(crate) fn off_trainer_cpu() -> Placed {
    #[cfg(target_os = "linux")]
    {
        let previous = linux::reserved().and_then(|cpu| {
            let mine = linux::this_thread()?;
            let mut fewer = mine;
            linux::remove(&mut fewer, cpu);
            let narrower = (1..linux::count(&mine)).contains(&linux::count(&fewer));
            (narrower && linux::set_this_thread(&fewer)).then_some(mine)
        });
        Placed { previous }
    }
    #[cfg(not(target_os = "linux"))]
    Placed {}
}

/// Lets the calling thread run on every CPU the process may use, whatever the thread that
/// started it kept off (a parser thread started by the source thread).
pub(crate) fn any_cpu() -> Placed {
    #[cfg(target_os = "linux")]
    {
        let previous = linux::process().and_then(|all| {
            let mine = linux::this_thread()?;
            (linux::count(&mine) < linux::count(&all) && linux::set_this_thread(&all))
                .then_some(mine)
        });
        Placed { previous }
    }
    #[cfg(not(target_os = "linux"))]
    Placed {}
}

impl Drop for Placed {
    fn drop(&mut self) {
        // a pooled thread (the source thread is one of tokio's) goes back with the set it came
        // with, so a trainer that later runs on it is not kept off its own CPU
        #[cfg(target_os = "linux")]
        if let Some(previous) = &self.previous {
            linux::set_this_thread(previous);
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::OnceLock;

    use libc::cpu_set_t;

    const SIZE: usize = std::mem::size_of::<cpu_set_t>();

    /// The CPUs the process may run on: the main thread's set (threads start with their
    /// creator's, and eddy never changes the main thread's).
    pub(super) fn process() -> Option<cpu_set_t> {
        // SAFETY: getpid takes nothing.
        #[allow(unsafe_code)]
        let pid = unsafe { libc::getpid() };
        get(pid)
    }

    pub(super) fn this_thread() -> Option<cpu_set_t> {
        get(0)
    }

    fn get(pid: libc::pid_t) -> Option<cpu_set_t> {
        // The workspace denies `unsafe`; these are a system call and libc's bit macros.
        #[allow(unsafe_code)]
        // SAFETY: an all-zero cpu_set_t is a valid (empty) set; sched_getaffinity writes at most
        // SIZE bytes into the set we pass with that size.
        unsafe {
            let mut set: cpu_set_t = std::mem::zeroed();
            (libc::sched_getaffinity(pid, SIZE, &mut set) == 0).then_some(set)
        }
    }

    /// Sets the calling thread's CPUs; false when refused.
    pub(super) fn set_this_thread(set: &cpu_set_t) -> bool {
        #[allow(unsafe_code)]
        // SAFETY: sched_setaffinity reads SIZE bytes of `set`, which is that large; pid 0 is
        // the calling thread.
        unsafe {
            libc::sched_setaffinity(0, SIZE, set) == 0
        }
    }

    pub(super) fn count(set: &cpu_set_t) -> usize {
        #[allow(unsafe_code)]
        // SAFETY: CPU_COUNT reads the set it is given.
        let n = unsafe { libc::CPU_COUNT(set) };
        usize::try_from(n).unwrap_or(0)
    }

    pub(super) fn remove(set: &mut cpu_set_t, cpu: usize) {
        #[allow(unsafe_code)]
        // SAFETY: CPU_CLR checks `cpu` against the set's size.
        unsafe {
            libc::CPU_CLR(cpu, set)
        }
    }

    pub(super) fn contains(set: &cpu_set_t, cpu: usize) -> bool {
        #[allow(unsafe_code)]
        // SAFETY: CPU_ISSET checks `cpu` against the set's size.
        unsafe {
            libc::CPU_ISSET(cpu, set)
        }
    }

    /// The trainer's CPU: the last one the process may run on, decided once; `None` with fewer
    /// than two or when `EDDY_TRAINER_CPU=shared`.
    pub(super) fn reserved() -> Option<usize> {
        static CPU: OnceLock<Option<usize>> = OnceLock::new();
        *CPU.get_or_init(|| {
            if std::env::var("EDDY_TRAINER_CPU").is_ok_and(|v| v == "shared") {
                return None;
            }
            let all = process()?;
            if count(&all) < 2 {
                return None;
            }
            (0..SIZE * 8).rev().find(|&cpu| contains(&all, cpu))
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn cpus(set: Option<libc::cpu_set_t>) -> Vec<usize> {
        let set = set.expect("affinity");
        (0..1024).filter(|&c| linux::contains(&set, c)).collect()
    }

    fn cpus_of_this_thread() -> Vec<usize> {
        cpus(linux::this_thread())
    }

    /// What a fresh thread sees: its CPUs before, while it holds `place()`'s guard (twice
    /// nested) and after dropping it.
    fn on_a_thread(place: fn() -> Placed) -> [Vec<usize>; 4] {
        std::thread::spawn(move || {
            let before = cpus_of_this_thread();
            let outer = place();
            let once = cpus_of_this_thread();
            let inner = place();
            let twice = cpus_of_this_thread();
            drop(inner);
            drop(outer);
            [before, once, twice, cpus_of_this_thread()]
        })
        .join()
        .expect("joins")
    }

    #[test]
    fn a_helper_leaves_the_last_cpu_and_gets_its_set_back() {
        let [before, once, twice, after] = on_a_thread(off_trainer_cpu);
        assert_eq!(after, before);
        match linux::reserved() {
            Some(cpu) => {
                assert_eq!(Some(&cpu), before.last(), "the last CPU of the process");
                let expected: Vec<usize> = before.iter().copied().filter(|&c| c != cpu).collect();
                assert_eq!(once, expected);
                // asking again leaves one CPU, not two
                assert_eq!(twice, expected);
            }
            // one CPU, or turned off: nothing moves
            None => assert_eq!(once, before),
        }
    }

    #[test]
    fn a_thread_started_by_a_helper_can_take_every_cpu_back() {
        let seen = std::thread::spawn(|| {
            let kept_off = off_trainer_cpu();
            let [started_with, widened, _, after] = on_a_thread(any_cpu);
            drop(kept_off);
            (started_with, widened, after)
        })
        .join()
        .expect("joins");
        let (started_with, widened, after) = seen;
        let all = cpus(linux::process());
        assert_eq!(widened, all);
        assert_eq!(after, started_with, "given back on drop");
        if linux::reserved().is_some() {
            assert!(started_with.len() < all.len(), "inherited from the helper");
        }
    }
}
