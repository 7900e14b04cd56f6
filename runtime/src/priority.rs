//! Training yields the CPU to serving: while a pipeline serves its live model, the source and
//! trainer threads run at a lower scheduling priority (`serve.trainer_nice`), so on a busy
//! machine the HTTP server's threads run first and a prediction waits on no training work.
//! With no requests there is nobody to yield to, and training runs at full speed.

/// How far the source and trainer threads step back while serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Yield {
    /// Their nice value (1 to 19; 0 leaves them alone): they still get a share of the CPU
    /// in proportion to their weight.
    Nice(i32),
    /// Linux's SCHED_IDLE class: they run only on CPU time nothing else wants, so a request
    /// never waits behind them, and a saturated server can starve training.
    Idle,
}

/// The calling thread's priority, lowered by [`lower_this_thread`] until this is dropped.
pub(crate) struct Lowered {
    #[cfg(target_os = "linux")]
    previous: Option<Previous>,
}

#[cfg(target_os = "linux")]
enum Previous {
    Nice(i32),
    Policy(i32),
}

/// Lowers the calling thread's priority as `how` says. On Linux the nice value and the
/// scheduling class belong to the thread, not the process; elsewhere this does nothing.
pub(crate) fn lower_this_thread(how: Yield) -> Lowered {
    #[cfg(target_os = "linux")]
    {
        let previous = match how {
            Yield::Nice(nice) if nice <= 0 => return Lowered { previous: None },
            Yield::Nice(nice) => set_nice(nice).map(Previous::Nice),
            Yield::Idle => set_policy(libc::SCHED_IDLE).map(Previous::Policy),
        };
        if previous.is_none() {
            tracing::debug!(?how, "could not lower the training thread's priority");
        }
        Lowered { previous }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = how;
        Lowered {}
    }
}

impl Drop for Lowered {
    fn drop(&mut self) {
        // A pooled thread goes back to its pool at the priority it came with (raising it back
        // may be refused without privileges; it then stays lower, which is harmless).
        #[cfg(target_os = "linux")]
        match self.previous {
            Some(Previous::Nice(nice)) => drop(set_nice(nice)),
            Some(Previous::Policy(policy)) => drop(set_policy(policy)),
            None => {}
        }
    }
}

/// Moves the calling thread to scheduling class `policy` (a non-real-time one, priority 0);
/// the class it had, or `None` when refused.
#[cfg(target_os = "linux")]
fn set_policy(policy: i32) -> Option<i32> {
    let param = libc::sched_param { sched_priority: 0 };
    #[allow(unsafe_code)]
    // SAFETY: `param` is a valid sched_param that outlives the call, which only reads it; pid 0
    // names the calling thread. sched_getscheduler takes an integer only.
    unsafe {
        let before = libc::sched_getscheduler(0);
        (before >= 0 && libc::sched_setscheduler(0, policy, &param) == 0).then_some(before)
    }
}

/// Sets the calling thread's nice value; the one it had, or `None` when refused.
#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> Option<i32> {
    // The workspace denies `unsafe`; these are plain system calls through libc's declarations.
    #[allow(unsafe_code)]
    // SAFETY: gettid, getpriority and setpriority take integers only and touch no memory of
    // ours; on failure they return -1 (getpriority may also return -1 as a valid value, which
    // only makes the restored value -1, still within the valid range).
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        let before = libc::getpriority(libc::PRIO_PROCESS, tid);
        (libc::setpriority(libc::PRIO_PROCESS, tid, nice) == 0).then_some(before)
    }
}

/// The `/proc/self/task` directories of this process's live threads whose name starts with
/// `prefix` (for tests that check how a pipeline's threads were started).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn threads_named(prefix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
        .map(|task| task.path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| comm.starts_with(prefix))
        })
        .collect()
}

/// Field `n` (numbered from 1 as in proc(5)) of the stat line of the thread whose `/proc`
/// directory is `task`; `None` once the thread is gone.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn stat_field(task: &std::path::Path, n: usize) -> Option<i32> {
    std::fs::read_to_string(task.join("stat"))
        .ok()?
        .rsplit(')')
        .next()?
        .split_whitespace()
        // the fields after the command name start at field 3
        .nth(n - 3)?
        .parse()
        .ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Field `n` of this thread's stat line.
    fn own_stat_field(n: usize) -> i32 {
        stat_field(std::path::Path::new("/proc/thread-self"), n).expect("a number")
    }

    fn nice_now() -> i32 {
        own_stat_field(19)
    }

    fn policy_now() -> i32 {
        own_stat_field(41)
    }

    /// What `read` gives on another thread before, while and after it holds `how`; `meanwhile`
    /// runs on this thread while the other one holds it.
    fn held_elsewhere(how: Yield, read: fn() -> i32, meanwhile: impl FnOnce()) -> [i32; 3] {
        let (lowered, seen) = std::sync::mpsc::channel();
        let (checked, done) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let before = read();
            let during = {
                let _lowered = lower_this_thread(how);
                lowered.send(()).expect("send");
                let during = read();
                done.recv().expect("the other side checked");
                during
            };
            [before, during, read()]
        });
        seen.recv().expect("lowered");
        meanwhile();
        checked.send(()).expect("send");
        worker.join().expect("joins")
    }

    #[test]
    fn lowers_only_this_thread_and_only_while_held() {
        let mine = nice_now();
        let [before, during, after] = held_elsewhere(Yield::Nice(7), nice_now, || {
            assert_eq!(nice_now(), mine, "the other threads keep their priority");
        });
        assert_eq!(during, 7);
        // Raising the value back needs privileges (tests here run as root); without them it
        // stays lower, which is harmless.
        assert!(after == before || after == 7, "{after}");
    }

    #[test]
    fn idle_class_for_this_thread_only_and_only_while_held() {
        let mine = policy_now();
        let [_, during, after] = held_elsewhere(Yield::Idle, policy_now, || {
            assert_eq!(policy_now(), mine, "the other threads keep their class");
        });
        assert_eq!(during, libc::SCHED_IDLE);
        // Leaving SCHED_IDLE may need privileges (tests here run as root).
        assert!(after == mine || after == libc::SCHED_IDLE, "{after}");
    }
}
