//! Signals across cgroups are counted in the kernel, per (target cgroup,
//! sender cgroup, sender, signal), and only when delivered; the main
//! process's exit names the signal from outside that ended it. No ring
//! record per signal.
use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use dsh::probe::event::{EventKind, SignalSender};
use dsh_ebpf::{SignalCount, SignalKey};

use crate::common::{TestCgroup, WAIT, ensure_loaded, is_exit_of, probe, wait_ready};

/// The counter of (target cgroup, sender, signal), once it reaches `at_least`.
fn counted(
    target: &TestCgroup,
    sender: u32,
    signal: u32,
    at_least: u64,
) -> Option<(SignalKey, SignalCount)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = probe()
            .probe
            .signal_counts()
            .expect("signal counters")
            .into_iter()
            .find(|(k, _)| {
                k.target_cgroup_id == target.id().get()
                    && k.sender_tgid == sender
                    && k.signal == signal
            });
        if found.is_some_and(|(_, c)| c.count >= at_least) || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_from_another_cgroup_is_counted_and_named_by_the_exit() {
    let target_cg = TestCgroup::new("sig-target");
    let sender_cg = TestCgroup::new("sig-sender");
    ensure_loaded();
    let mut target = target_cg
        .command(&["sleep"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn target");
    wait_ready(&mut target);
    let tpid = target.id();
    let mut sender = sender_cg
        .command(&["kill", &tpid.to_string(), "15"])
        .spawn()
        .expect("spawn sender");
    let spid = sender.id();
    assert!(sender.wait().expect("wait sender").success());
    target.wait().expect("wait target");
    let (key, count) = counted(&target_cg, spid, 15, 1).expect("no SIGTERM counter for the target");
    assert_eq!(key.sender_cgroup_id, sender_cg.id().get(), "sender cgroup");
    assert_eq!(count.count, 1);
    assert_eq!(dsh::probe::event::c_str(&count.sender_comm), "dsh-workload");
    // The target was its cgroup's first exec, its main process: its exit
    // names the sender.
    let exit = probe()
        .wait_for(WAIT, |e| is_exit_of(e, tpid))
        .expect("no exit event for the target");
    let EventKind::Exit { outside, .. } = exit.kind else {
        unreachable!()
    };
    assert_eq!(
        outside,
        [SignalSender {
            signal: dsh::signal::Signal::from_raw(15),
            pid: spid,
            comm: "dsh-workload".into()
        }]
    );
}

/// A trapped signal is delivered and counted, every time; one the target
/// ignores is not delivered and not counted; a flood costs no ring record.
/// (A shell is no target for the ignored one: dash blocks every signal
/// while it waits for a child, and the kernel queues a blocked signal even
/// when it is ignored.)
#[test]
fn only_delivered_signals_count_and_a_flood_sends_no_record() {
    let target_cg = TestCgroup::new("sig-flood-target");
    ensure_loaded();
    // A loop of builtins: a shell waiting for a child blocks signals, and a
    // signal pending when the next comes is coalesced (not counted).
    let script = "trap ':' USR1; echo ready; while :; do :; done";
    let mut target = target_cg
        .command_of(Path::new("/bin/sh"), &["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn target");
    wait_ready(&mut target);
    let tpid = target.id() as i32;
    let ignoring_cg = TestCgroup::new("sig-ignoring");
    let exec_ignoring = format!("trap '' USR2; exec {} sleep", dsh_testkit::workload());
    let mut ignoring = ignoring_cg
        .command_of(Path::new("/bin/sh"), &["-c", &exec_ignoring])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the ignoring target");
    wait_ready(&mut ignoring);
    let ipid = ignoring.id() as i32;
    let me = std::process::id();
    probe().collect();
    let records_before = probe().events.len();
    for _ in 0..200 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(tpid, libc::SIGUSR1);
            libc::kill(ipid, libc::SIGUSR2);
        }
        // Let the shell take it: a signal still pending is coalesced.
        std::thread::sleep(Duration::from_millis(2));
    }
    let (_, usr1) = counted(&target_cg, me, 10, 200).expect("SIGUSR1 counted");
    // Some may come while one is still pending (coalesced, not counted),
    // more so in a slow emulated VM; never more than were sent.
    assert!((20..=200).contains(&usr1.count), "SIGUSR1 x {}", usr1.count);
    assert!(
        counted(&ignoring_cg, me, 12, 1).is_none(),
        "an ignored SIGUSR2 is not delivered"
    );
    probe().collect();
    let signal_records = probe().events[records_before..]
        .iter()
        .filter(|e| {
            e.task.tgid == me || [target_cg.id(), ignoring_cg.id()].contains(&e.task.cgroup_id)
        })
        .filter(|e| !matches!(e.kind, EventKind::Exec { .. } | EventKind::Exit { .. }))
        .count();
    assert_eq!(signal_records, 0, "no ring record for the signals");
    for (pid, child) in [(tpid, &mut target), (ipid, &mut ignoring)] {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        child.wait().expect("wait target");
    }
}
