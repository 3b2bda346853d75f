//! Syscall counts, errors and latency per cgroup, in each counter layout
//! this kernel has (cgroup local storage, and the hash every kernel has).
use dsh::probe::{Probe, ProbeOptions, SyscallCounterLayout, SyscallCounters};
use dsh_ebpf::{SyscallStats, failure};

use crate::common::{COUNTER_LAYOUTS, TestCgroup, counter_probe, note};

fn stats(probe: &Probe, cg: &TestCgroup) -> SyscallStats {
    probe
        .syscall_stats(&cg.dir)
        .expect("reading syscall stats")
        .expect("the cgroup made syscalls, so it has counters")
}

const N: u64 = 100_000;

#[test]
fn getppid_calls_are_counted_for_their_cgroup() {
    for layout in COUNTER_LAYOUTS {
        let Some(probe) = counter_probe(layout) else {
            continue;
        };
        // Same binary, same start-up; the only difference is N getppid calls.
        let base = TestCgroup::new("sys-base");
        let busy = TestCgroup::new("sys-busy");
        assert!(base.run(&["getppid", "0"]).success());
        assert!(busy.run(&["getppid", &N.to_string()]).success());
        let (b, n) = (stats(&probe, &base), stats(&probe, &busy));
        let extra = n.count - b.count;
        assert!(
            extra >= N,
            "{layout}: {N} getppid calls raised the count by only {extra}"
        );
        assert!(
            extra < N + 200,
            "{layout}: {N} getppid calls raised the count by {extra}: misattributed calls"
        );
        // Nothing else ran in these cgroups: a count this small proves
        // attribution to the cgroup, not to the host.
        assert!(
            b.count < 1000,
            "{layout}: baseline cgroup counted {} syscalls",
            b.count
        );
        note(&format!("{layout}: {extra} syscalls for {N} getppid calls"));
    }
}

#[test]
fn failing_calls_are_counted_as_errors() {
    const M: u64 = 5_000;
    for layout in COUNTER_LAYOUTS {
        let Some(probe) = counter_probe(layout) else {
            continue;
        };
        let base = TestCgroup::new("err-base");
        let failing = TestCgroup::new("err-fail");
        assert!(base.run(&["close-bad", "0"]).success());
        assert!(failing.run(&["close-bad", &M.to_string()]).success());
        let (b, f) = (stats(&probe, &base), stats(&probe, &failing));
        assert!(
            f.errors - b.errors >= M,
            "{layout}: errors rose by {} for {M} close(-1)",
            f.errors - b.errors
        );
        assert!(f.count - b.count >= M);
        assert!(b.errors < 200, "{layout}: baseline errors {}", b.errors);
    }
}

#[test]
fn latency_histogram_fills_only_when_switched_on() {
    for layout in COUNTER_LAYOUTS {
        let Some(mut probe) = counter_probe(layout) else {
            continue;
        };
        let off = TestCgroup::new("lat-off");
        let on = TestCgroup::new("lat-on");
        assert!(off.run(&["getppid", "10000"]).success());
        let off_hist: u64 = stats(&probe, &off).latency.iter().sum();
        assert_eq!(
            off_hist, 0,
            "{layout}: latency recorded while latency tracking was off"
        );

        probe
            .set_syscall_latency(true)
            .expect("attach latency hooks");
        let status = on.run(&["getppid", "10000"]);
        probe
            .set_syscall_latency(false)
            .expect("detach latency hooks");
        assert!(status.success());
        let s = stats(&probe, &on);
        let hist: u64 = s.latency.iter().sum();
        assert!(
            hist >= 10_000,
            "{layout}: histogram holds {hist} samples for 10000 calls"
        );
        assert!(
            hist <= s.count,
            "{layout}: more latency samples ({hist}) than calls ({})",
            s.count
        );
        // A getppid takes well under 65 µs: most samples sit in low buckets.
        let fast: u64 = s.latency[..16].iter().sum();
        assert!(
            fast * 2 > hist,
            "{layout}: most getppid calls took more than 65 µs?"
        );
    }
}

#[test]
fn hash_layout_overflow_is_counted_not_silent() {
    // Room for one cgroup: the first to make a syscall takes it, and every
    // other cgroup's first syscall on a CPU finds the hash full.
    let mut probe = Probe::load_unattached(ProbeOptions {
        syscall_counters: SyscallCounters::Hash,
        syscall_counter_capacity: Some(1),
        ..ProbeOptions::default()
    })
    .expect("load the programs");
    assert_eq!(probe.syscall_counters(), SyscallCounterLayout::Hash);
    probe.attach("dsh_sys_exit_hash").expect("attach");
    let full = |p: &Probe| {
        p.failure_counts().expect("failure counters")[failure::SYSCALL_COUNTERS_FULL as usize]
    };
    let before = full(&probe);
    let a = TestCgroup::new("full-a");
    let b = TestCgroup::new("full-b");
    assert!(a.run(&["getppid", "1000"]).success());
    assert!(b.run(&["getppid", "1000"]).success());
    let after = full(&probe);
    assert!(
        after > before,
        "two new cgroups in a one-entry hash, and no overflow counted ({before} -> {after})"
    );
    let (entries, capacity) = probe.syscall_counter_fill().expect("hash layout fill");
    assert_eq!(capacity, 1);
    assert!(entries <= 1, "{entries} entries in a one-entry hash");
}
