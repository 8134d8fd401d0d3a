//! Runs SQLite write transactions on the CPU of the writer connection's own thread.
//!
//! `sqlx` gives each SQLite connection a thread of its own: every statement is a round trip
//! from the task to that thread and back. A submission makes about forty on the single writer,
//! and nothing else can write meanwhile. When the two threads sit on different CPUs, each
//! handoff wakes the other CPU: on the 2-vCPU benchmark machine a trivial statement took
//! ~100 µs that way against ~16 µs with both threads on one CPU. So the writer connection's
//! thread is pinned to one CPU, and the thread that drives a write transaction moves to that
//! CPU for the transaction's duration (`block_in_place`, so that the runtime's other tasks go
//! on elsewhere). Measured with 16 clients submitting 1 MiB documents: 60–74 → 87–97
//! submissions per second (BENCHMARKS.md).
//!
//! Everything here is an optimisation: when the affinity cannot be read or set (not Linux, one
//! CPU, a container that forbids it), writes run as before.

use std::future::Future;

/// Names the writer connection's thread so that it can be found in `/proc/self/task`.
/// Thread names are at most 15 bytes on Linux: "ip-writer-" and five digits.
pub(crate) fn writer_thread_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "ip-writer-{}",
        NEXT.fetch_add(1, Ordering::Relaxed) % 100_000
    )
}

std::thread_local! {
    /// Set while this thread drives a write: a nested write (which the store never makes)
    /// must not start a second `block_on` inside the first.
    static DRIVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` (a write transaction) on `cpu` when one is given and the runtime allows
/// blocking its worker thread; otherwise simply awaits it.
pub(crate) async fn drive<F: Future>(cpu: Option<usize>, work: F) -> F::Output {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    match cpu {
        Some(cpu) if multi_thread && !DRIVING.get() => tokio::task::block_in_place(|| {
            DRIVING.set(true);
            let _pinned = affinity::pin_current_thread(cpu);
            let output = tokio::runtime::Handle::current().block_on(work);
            DRIVING.set(false);
            output
        }),
        _ => work.await,
    }
}

#[cfg(target_os = "linux")]
mod affinity {
    use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
    use nix::unistd::Pid;

    /// Pins the thread named `thread_name` to the last CPU this process may run on; returns
    /// that CPU. `None` with fewer than two CPUs (pinning would only take one away).
    pub(crate) fn pin_named_thread(thread_name: &str) -> Option<usize> {
        let cpus = current_thread_cpus()?;
        let (&cpu, others) = cpus.split_last()?;
        if others.is_empty() {
            return None;
        }
        let tid = std::fs::read_dir("/proc/self/task")
            .ok()?
            .flatten()
            .find(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == thread_name)
            })?
            .file_name()
            .to_str()?
            .parse::<i32>()
            .ok()?;
        let mut only = CpuSet::new();
        only.set(cpu).ok()?;
        sched_setaffinity(Pid::from_raw(tid), &only).ok()?;
        Some(cpu)
    }

    /// The CPUs the calling thread may run on.
    pub(crate) fn current_thread_cpus() -> Option<Vec<usize>> {
        let allowed = sched_getaffinity(Pid::from_raw(0)).ok()?;
        Some(
            (0..CpuSet::count())
                .filter(|cpu| allowed.is_set(*cpu).unwrap_or(false))
                .collect(),
        )
    }

    /// Restores the thread's previous CPUs when dropped.
    pub(crate) struct Pinned(CpuSet);

    impl Drop for Pinned {
        fn drop(&mut self) {
            // Failing leaves the thread on one CPU: slower, never wrong.
            let _ = sched_setaffinity(Pid::from_raw(0), &self.0);
        }
    }

    pub(crate) fn pin_current_thread(cpu: usize) -> Option<Pinned> {
        let previous = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let mut only = CpuSet::new();
        only.set(cpu).ok()?;
        sched_setaffinity(Pid::from_raw(0), &only).ok()?;
        Some(Pinned(previous))
    }
}

#[cfg(not(target_os = "linux"))]
mod affinity {
    pub(crate) fn pin_named_thread(_thread_name: &str) -> Option<usize> {
        None
    }

    pub(crate) fn pin_current_thread(_cpu: usize) -> Option<()> {
        None
    }

    pub(crate) fn current_thread_cpus() -> Option<Vec<usize>> {
        None
    }
}

pub(crate) use affinity::pin_named_thread;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_driven_write_runs_on_the_given_cpu_and_the_thread_gets_its_cpus_back() {
        let Some(before) = affinity::current_thread_cpus() else {
            return; // not Linux: nothing is pinned
        };
        let cpu = *before.last().expect("a thread runs on some CPU");
        let during = drive(Some(cpu), async { affinity::current_thread_cpus() }).await;
        assert_eq!(during, Some(vec![cpu]));
        // `drive` completes within one poll, so this is the same thread, back on its CPUs.
        assert_eq!(affinity::current_thread_cpus(), Some(before));
        // A nested drive runs inline instead of starting a runtime inside the runtime.
        assert_eq!(drive(Some(cpu), drive(Some(cpu), async { 7 })).await, 7);
    }

    #[tokio::test]
    async fn on_a_single_threaded_runtime_a_write_is_simply_awaited() {
        let before = affinity::current_thread_cpus();
        let during = drive(Some(0), async { affinity::current_thread_cpus() }).await;
        assert_eq!(during, before);
    }

    /// The CPUs a thread of this process may run on, as the kernel reports them.
    fn allowed_list(tid: &str) -> String {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string()
    }

    #[test]
    fn the_named_thread_and_only_it_is_pinned_to_the_last_cpu() {
        let Some(cpus) = affinity::current_thread_cpus() else {
            return; // not Linux
        };
        let name = writer_thread_name();
        let (tid_sender, tid_receiver) = std::sync::mpsc::channel();
        let (stop_sender, stop_receiver) = std::sync::mpsc::channel::<()>();
        let named = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                tid_sender.send(nix::unistd::gettid().as_raw()).unwrap();
                let _ = stop_receiver.recv();
            })
            .unwrap();
        let tid = tid_receiver.recv().unwrap().to_string();
        let before_self = affinity::current_thread_cpus();
        let pinned = pin_named_thread(&name);
        if cpus.len() < 2 {
            assert_eq!(pinned, None, "one CPU: nothing to pin");
        } else {
            let cpu = *cpus.last().unwrap();
            assert_eq!(pinned, Some(cpu));
            assert_eq!(allowed_list(&tid), cpu.to_string());
            // The caller's own CPUs are untouched.
            assert_eq!(affinity::current_thread_cpus(), before_self);
        }
        assert_eq!(pin_named_thread("no-such-thread"), None);
        stop_sender.send(()).unwrap();
        named.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_store_drives_its_writes_from_the_pinned_cpu() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("pin.db").display());
        let store = crate::Store::connect(&url).await.unwrap();
        let cpus = affinity::current_thread_cpus().unwrap_or_default();
        if cpus.len() < 2 {
            assert_eq!(store.writer_cpu, None);
        } else {
            assert_eq!(store.writer_cpu, cpus.last().copied());
        }
        // A write through `on_writer!` (so through `drive`) still commits.
        store
            .execute_raw_for_tests("CREATE TABLE probe (x); INSERT INTO probe VALUES (1)")
            .await
            .unwrap();
    }

    #[test]
    fn writer_thread_names_fit_in_a_linux_thread_name() {
        for _ in 0..3 {
            assert!(writer_thread_name().len() <= 15);
        }
    }
}
