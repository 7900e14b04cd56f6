//! Training yields the CPU to serving: while a pipeline serves its live model, the source and
//! trainer threads run at a lower scheduling priority (`serve.trainer_nice`), so on a busy
//! machine the HTTP server's threads run first and a prediction waits on no training work.
//! With no requests there is nobody to yield to, and training runs at full speed.

/// The calling thread's priority, lowered by [`lower_this_thread`] until this is dropped.
pub(crate) struct Lowered {
    #[cfg(target_os = "linux")]
    previous: Option<i32>,
}

/// Sets the calling thread's nice value to `nice` (0 to 19; 0 leaves it alone). On Linux the
/// nice value belongs to the thread, not the process; elsewhere this does nothing.
pub(crate) fn lower_this_thread(nice: i32) -> Lowered {
    #[cfg(target_os = "linux")]
    {
        if nice <= 0 {
            return Lowered { previous: None };
        }
        let previous = set_nice(nice);
        if previous.is_none() {
            tracing::debug!(nice, "could not lower the training thread's priority");
        }
        Lowered { previous }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        Lowered {}
    }
}

impl Drop for Lowered {
    fn drop(&mut self) {
        // A pooled thread goes back to its pool at the priority it came with (raising it back
        // may be refused without privileges; it then stays lower, which is harmless).
        #[cfg(target_os = "linux")]
        if let Some(previous) = self.previous {
            let _ = set_nice(previous);
        }
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_now() -> i32 {
        std::fs::read_to_string("/proc/thread-self/stat")
            .expect("stat")
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(16))
            .and_then(|n| n.parse().ok())
            .expect("the nice field")
    }

    #[test]
    fn lowers_only_this_thread_and_only_while_held() {
        let mine = nice_now();
        let (lowered, seen) = std::sync::mpsc::channel();
        let (checked, done) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let before = nice_now();
            {
                let _lowered = lower_this_thread(7);
                lowered.send(nice_now()).expect("send");
                done.recv().expect("the other side checked");
            }
            // Raising the value back needs privileges (tests here run as root); without them
            // it stays lower, which is harmless.
            let after = nice_now();
            assert!(after == before || after == 7, "{after}");
        });
        assert_eq!(seen.recv().expect("lowered"), 7);
        assert_eq!(nice_now(), mine, "the other threads keep their priority");
        checked.send(()).expect("send");
        worker.join().expect("joins");
    }
}
