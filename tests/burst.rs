//! A storm of short-lived processes must not crowd out an OOM kill.
use std::time::{Duration, Instant};

use dsh::probe::event::EventKind;
use dsh_ebpf::channel;

use crate::common::{TestCgroup, note, probe};

#[test]
fn oom_inside_a_fork_burst_is_delivered_with_no_critical_loss() {
    const PROCS: u32 = 20_000;
    let storm = TestCgroup::new("storm");
    let victim_cg = TestCgroup::new("storm-oom");
    victim_cg.set_memory_limit(32 << 20);
    let before = probe().probe.channel_stats().expect("channel stats");
    let storm_id = storm.id();

    let start = Instant::now();
    let mut burst = storm
        .command(&["fork-burst", &PROCS.to_string()])
        .spawn()
        .expect("spawn burst");
    // Let the burst get going, then OOM inside it.
    std::thread::sleep(Duration::from_millis(300));
    let hog = victim_cg
        .command(&["hog", "256"])
        .spawn()
        .expect("spawn hog");
    let hog_pid = hog.id();
    let mut exits = 0usize;
    let mut done = false;
    while !done {
        done = burst.try_wait().expect("wait burst").is_some();
        let mut p = probe();
        p.collect();
        // Keep memory flat: count this burst's exits and forget them.
        let evs = std::mem::take(&mut p.events);
        for e in evs {
            match e.kind {
                EventKind::Exit { .. } if e.task.cgroup_id == storm_id => exits += 1,
                EventKind::Oom { .. } => p.events.push(e),
                _ => {}
            }
        }
        drop(p);
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = start.elapsed();
    assert!(
        burst.wait().expect("wait burst").success(),
        "fork burst failed"
    );
    hog.wait_with_output().expect("wait hog");
    let mut p = probe();
    let oom = p.wait_for(
        crate::common::WAIT,
        |e| matches!(e.kind, EventKind::Oom { victim_tgid, .. } if victim_tgid == hog_pid),
    );
    let after = p.probe.channel_stats().expect("channel stats");
    // The burst's children are churn: counted in the kernel, not sent.
    let counted: u64 = p
        .probe
        .churn_counts()
        .expect("churn counters")
        .iter()
        .filter(|(k, _)| k.cgroup_id == storm_id.get())
        .map(|(_, c)| c.exits())
        .sum();
    let exits = exits as u64 + counted;
    let crit = channel::CRITICAL as usize;
    let chatty = channel::CHATTY as usize;
    note(&format!(
        "burst: {PROCS} processes in {:.2}s ({:.0}/s), {exits} exits seen ({counted} counted in the kernel), chatty lost {}",
        elapsed.as_secs_f64(),
        PROCS as f64 / elapsed.as_secs_f64(),
        after[chatty].lost - before[chatty].lost
    ));
    assert!(
        oom.is_some(),
        "the OOM kill inside the burst was not delivered"
    );
    assert_eq!(
        after[crit].lost, before[crit].lost,
        "critical channel lost events"
    );
    // The forking parent exits too.
    assert!(
        exits >= u64::from(PROCS),
        "saw {exits} exits of {PROCS} processes"
    );
}
