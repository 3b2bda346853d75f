//! Syscall counts, errors and latency per cgroup.
use dsh_ebpf::SyscallStats;

use crate::common::{TestCgroup, ensure_loaded, probe};

fn stats(cg: &TestCgroup) -> SyscallStats {
    probe()
        .probe
        .syscall_stats(&cg.dir)
        .expect("reading syscall stats")
        .expect("the cgroup made syscalls, so it has counters")
}

const N: u64 = 100_000;

#[test]
fn getppid_calls_are_counted_for_their_cgroup() {
    // Same binary, same start-up; the only difference is N getppid calls.
    let base = TestCgroup::new("sys-base");
    let busy = TestCgroup::new("sys-busy");
    ensure_loaded();
    assert!(base.run(&["getppid", "0"]).success());
    assert!(busy.run(&["getppid", &N.to_string()]).success());
    let (b, n) = (stats(&base), stats(&busy));
    let extra = n.count - b.count;
    assert!(
        extra >= N,
        "{N} getppid calls raised the count by only {extra}"
    );
    assert!(
        extra < N + 200,
        "{N} getppid calls raised the count by {extra}: misattributed calls"
    );
    // Nothing else ran in these cgroups: a count this small proves attribution
    // to the cgroup, not to the host.
    assert!(
        b.count < 1000,
        "baseline cgroup counted {} syscalls",
        b.count
    );
}

#[test]
fn failing_calls_are_counted_as_errors() {
    const M: u64 = 5_000;
    let base = TestCgroup::new("err-base");
    let failing = TestCgroup::new("err-fail");
    ensure_loaded();
    assert!(base.run(&["close-bad", "0"]).success());
    assert!(failing.run(&["close-bad", &M.to_string()]).success());
    let (b, f) = (stats(&base), stats(&failing));
    assert!(
        f.errors - b.errors >= M,
        "errors rose by {} for {M} close(-1)",
        f.errors - b.errors
    );
    assert!(f.count - b.count >= M);
    assert!(b.errors < 200, "baseline errors {}", b.errors);
}

#[test]
fn latency_histogram_fills_only_when_switched_on() {
    let off = TestCgroup::new("lat-off");
    let on = TestCgroup::new("lat-on");
    assert!(off.run(&["getppid", "10000"]).success());
    let off_hist: u64 = stats(&off).latency.iter().sum();
    assert_eq!(
        off_hist, 0,
        "latency recorded while latency tracking was off"
    );

    probe()
        .probe
        .set_syscall_latency(true)
        .expect("attach latency hooks");
    let status = on.run(&["getppid", "10000"]);
    probe()
        .probe
        .set_syscall_latency(false)
        .expect("detach latency hooks");
    assert!(status.success());
    let s = stats(&on);
    let hist: u64 = s.latency.iter().sum();
    assert!(
        hist >= 10_000,
        "histogram holds {hist} samples for 10000 calls"
    );
    assert!(
        hist <= s.count,
        "more latency samples ({hist}) than calls ({})",
        s.count
    );
    // A getppid takes well under 65 µs: most samples sit in low buckets.
    let fast: u64 = s.latency[..16].iter().sum();
    assert!(fast * 2 > hist, "most getppid calls took more than 65 µs?");
}
