//! The model fed random interleavings of the kernel's and the runtime's
//! events for several containers: duplicates, late arrivals (time going
//! backwards), cgroups nobody created, exits without execs, runtimes that
//! come and go. Whatever the order:
//! - nothing panics (the rows and the resolver included);
//! - a container's restart count never decreases;
//! - every exit of a container's main process gives exactly one state-change
//!   line, and any other exit none;
//! - once a main process has exited in its cgroup, an exec there (an orphan
//!   of the pid namespace) starts nothing;
//! - an event of a cgroup the model does not hold (removed, never created)
//!   writes nothing and counts no restart;
//! - a row's cgroup id is its identity: it keys events to that row, and a
//!   look-alike cgroup claiming a live row's id changes nothing in the row.
//!
//! The seed is fixed (a failure is the same on every run, and shrinks to a
//! short sequence); `DSH_PROPTEST_CASES` sets how many sequences (256).
use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use proptest::{
    prelude::*,
    test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner},
};

use super::{
    Model,
    cause::{ExternalSignal, OomAtDeath, Start},
    entry::LogKind,
    health::HealthRules,
};
use crate::{
    cgroup::{
        CgroupId,
        identity::{Identity, Runtime},
    },
    runtime::RuntimeMeta,
    signal::{ExitStatus, Signal},
};

const SEED: [u8; 32] = *b"dsh model invariants, fixed seed";
const CONTAINERS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    /// Container `c`'s own cgroup (a new incarnation) with id `cg`.
    Created {
        c: usize,
        cg: u64,
    },
    /// A sub-cgroup of container `c`.
    SubCreated {
        c: usize,
        cg: u64,
    },
    /// A cgroup elsewhere claiming container `c`'s id (or a sub-cgroup of
    /// it), as a delegated user can make one.
    LookAlike {
        c: usize,
        cg: u64,
        sub: bool,
    },
    Removed {
        cg: u64,
    },
    Exec {
        cg: u64,
        tgid: u32,
    },
    Exit {
        cg: u64,
        tgid: u32,
        code: Option<u8>,
        signal: Option<u8>,
        core: bool,
    },
    Oom {
        cg: u64,
        tgid: u32,
    },
    Signal {
        from: u64,
        to: u64,
        tgid: u32,
        sig: u32,
    },
    /// The runtime names container `c` (with its restart count), or says
    /// it is gone (`None`).
    Meta {
        c: usize,
        restarts: Option<u64>,
    },
    RuntimeLost,
    FoundRunning {
        c: usize,
        main: Option<u32>,
    },
    MarkGone {
        c: usize,
    },
    Housekeep,
}

/// An op and how far the clock moved before it (negative: a late arrival).
type Step = (Op, i64);

fn op() -> impl Strategy<Value = Op> {
    // Few ids, so that the same cgroup and process come up again and again;
    // ids 9..12 are never created (unknown cgroups), 12..15 are look-alikes'.
    let cg = 1..15u64;
    let tgid = 1..6u32;
    let c = 0..CONTAINERS;
    prop_oneof![
        3 => (c.clone(), cg.clone()).prop_map(|(c, cg)| Op::Created { c, cg: cg % 9 }),
        1 => (c.clone(), cg.clone()).prop_map(|(c, cg)| Op::SubCreated { c, cg: cg % 9 }),
        2 => (c.clone(), 12..15u64, any::<bool>())
            .prop_map(|(c, cg, sub)| Op::LookAlike { c, cg, sub }),
        2 => cg.clone().prop_map(|cg| Op::Removed { cg }),
        4 => (cg.clone(), tgid.clone()).prop_map(|(cg, tgid)| Op::Exec { cg, tgid }),
        4 => (
            cg.clone(),
            tgid.clone(),
            proptest::option::of(any::<u8>()),
            proptest::option::of(1..65u8),
            any::<bool>()
        )
            .prop_map(|(cg, tgid, code, signal, core)| Op::Exit {
                cg,
                tgid,
                // The kernel gives one or the other.
                code: if signal.is_some() { None } else { code.or(Some(0)) },
                signal,
                core,
            }),
        1 => (cg.clone(), tgid.clone()).prop_map(|(cg, tgid)| Op::Oom { cg, tgid }),
        1 => (cg.clone(), cg.clone(), tgid.clone(), 1..65u32)
            .prop_map(|(from, to, tgid, sig)| Op::Signal { from, to, tgid, sig }),
        2 => (c.clone(), proptest::option::of(0..6u64))
            .prop_map(|(c, restarts)| Op::Meta { c, restarts }),
        1 => Just(Op::RuntimeLost),
        1 => (c.clone(), proptest::option::of(tgid.clone()))
            .prop_map(|(c, main)| Op::FoundRunning { c, main }),
        1 => c.prop_map(|c| Op::MarkGone { c }),
        1 => Just(Op::Housekeep),
    ]
}

fn key(c: usize) -> String {
    format!("{c:064x}")
}

fn identity(c: usize) -> Identity {
    Identity {
        runtime: Runtime::Docker,
        runtime_id: key(c),
        pod_uid: None,
        cgroup: format!("/docker/{}", key(c)),
    }
}

fn restart_counts(m: &Model) -> HashMap<String, u64> {
    m.containers()
        .map(|c| (c.key().to_owned(), c.restart_count()))
        .collect()
}

/// Applies `steps` to a fresh model, checking the invariants after each.
fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut m = Model::new(HealthRules::default(), SignedDuration::from_secs(120));
    let mut now = Timestamp::from_second(1_800_000_000).unwrap();
    for (i, (op, dt)) in steps.iter().enumerate() {
        now += SignedDuration::from_secs(*dt);
        let before = restart_counts(&m);
        // Whether this op is the exit of its container's main process.
        let main_exit = match op {
            Op::Exit { cg, tgid, .. } => Some(
                m.key_of_cgroup(CgroupId::new(*cg))
                    .and_then(|k| m.get(k))
                    .is_some_and(|c| c.main_tgid == Some(*tgid)),
            ),
            _ => None,
        };
        // An exec in a container's cgroup whose main process already exited
        // there: the orphans of a pid namespace whose init is gone.
        let orphan_exec = match op {
            Op::Exec { cg, .. } => m
                .key_of_cgroup(CgroupId::new(*cg))
                .and_then(|k| m.get(k))
                .is_some_and(|c| c.cgroup_id == Some(CgroupId::new(*cg)) && c.main_exited),
            _ => false,
        };
        // A kernel event of a cgroup the model does not hold (removed, or
        // never created).
        let unknown_cgroup = match op {
            Op::Exec { cg, .. } | Op::Exit { cg, .. } | Op::Oom { cg, .. } => {
                m.key_of_cgroup(CgroupId::new(*cg)).is_none()
            }
            _ => false,
        };
        // A look-alike of a row holding a live cgroup: the row as it was.
        let held = match op {
            Op::LookAlike { c, .. } => m
                .get(&key(*c))
                .filter(|row| row.cgroup_id.is_some())
                .map(|row| (row.cgroup_id, row.identity.clone(), row.state)),
            _ => None,
        };
        let live_before = (m.live_epoch(), m.live_keys());
        apply(&mut m, op, now);
        // The sampler walks the rows again only when the epoch moved.
        if m.live_epoch() == live_before.0 {
            prop_assert_eq!(&m.live_keys(), &live_before.1, "step {}: {:?}", i, op);
        }
        let mut kept = live_before.1.clone();
        m.live_keys_into(&mut kept);
        prop_assert_eq!(kept, m.live_keys());
        let log = m.take_log();
        if orphan_exec || unknown_cgroup {
            prop_assert!(
                log.is_empty(),
                "step {}: {:?} (orphan exec {}, unknown cgroup {}) gave {:?}",
                i,
                op,
                orphan_exec,
                unknown_cgroup,
                log
            );
            let after = restart_counts(&m);
            prop_assert_eq!(&after, &before, "step {}: {:?} changed restarts", i, op);
        }
        if let (Some(was), Op::LookAlike { c, .. }) = (&held, op) {
            let row = m
                .get(&key(*c))
                .map(|r| (r.cgroup_id, r.identity.clone(), r.state));
            prop_assert_eq!(
                row.as_ref(),
                Some(was),
                "step {}: {:?} re-pointed the row",
                i,
                op
            );
            prop_assert!(log.is_empty(), "step {}: {:?} wrote {:?}", i, op, log);
        }
        for row in m.containers() {
            if let Some(id) = row.cgroup_id {
                prop_assert_eq!(
                    m.key_of_cgroup(id),
                    Some(row.key()),
                    "step {}: the cgroup {} of {} keys another row",
                    i,
                    id,
                    row.key()
                );
            }
        }
        // A new row's create line waits for its next line (`cgroup_churn`):
        // it may come out with this step's, but is not this step's doing.
        let changes = log
            .iter()
            .filter(|e| e.is_state_change() && e.kind != LogKind::Create)
            .count();
        match main_exit {
            Some(true) => {
                prop_assert_eq!(changes, 1, "step {}: main exit gave {:?}", i, log);
                let kind = log.iter().find(|e| e.is_state_change()).map(|e| e.kind);
                prop_assert!(matches!(
                    kind,
                    Some(LogKind::Exit | LogKind::Oom | LogKind::Signal | LogKind::Coredump)
                ));
            }
            Some(false) => {
                prop_assert_eq!(changes, 0, "step {}: other exit gave {:?}", i, log)
            }
            None => {}
        }
        for (k, n) in restart_counts(&m) {
            if let Some(&was) = before.get(&k) {
                prop_assert!(n >= was, "step {}: {} restarts went {} -> {}", i, k, was, n);
            }
        }
        // Everything that reads the model copes with whatever it holds.
        let _ = m.take_changes();
        let _ = m.rows(true, now);
        let _ = m.resolve("0000");
    }
    Ok(())
}

fn apply(m: &mut Model, op: &Op, now: Timestamp) {
    let id = CgroupId::new;
    match *op {
        Op::Created { c, cg } => {
            let ident = identity(c);
            let path = ident.cgroup.clone();
            m.cgroup_created(ident, &path, id(cg), now);
        }
        Op::SubCreated { c, cg } => {
            let ident = identity(c);
            let path = format!("{}/sub", ident.cgroup);
            m.cgroup_created(ident, &path, id(cg), now);
        }
        Op::LookAlike { c, cg, sub } => {
            let ident = Identity {
                cgroup: format!(
                    "/user.slice/user-1000.slice/user@1000.service/docker/{}",
                    key(c)
                ),
                ..identity(c)
            };
            let path = if sub {
                format!("{}/x", ident.cgroup)
            } else {
                ident.cgroup.clone()
            };
            m.cgroup_created(ident, &path, id(cg), now);
        }
        Op::Removed { cg } => m.cgroup_removed(id(cg), now),
        Op::Exec { cg, tgid } => m.exec(id(cg), tgid, "sh", now),
        Op::Exit {
            cg,
            tgid,
            code,
            signal,
            core,
        } => {
            let status = match (code, signal) {
                (_, Some(s)) => ExitStatus::Killed {
                    signal: Signal::from_raw(s.into()),
                    core_dumped: core,
                },
                (code, None) => ExitStatus::Exited(code.unwrap_or(0)),
            };
            m.exit(id(cg), tgid, "sh", status, now);
        }
        Op::Oom { cg, tgid } => {
            let at_death = OomAtDeath {
                mem_used: Some(1 << 20),
                mem_limit: None,
                sampled: false,
            };
            m.oom_kill(id(cg), tgid, at_death, now);
        }
        Op::Signal {
            from,
            to,
            tgid,
            sig,
        } => {
            // Counted signals and their summary, and the senders the
            // kernel hands over with an exit.
            let signal = Signal::from_raw(sig);
            m.record_signals(id(to), id(from), signal, 99, "kill", u64::from(tgid));
            m.signal_lines(now);
            let sender = ExternalSignal {
                signal,
                sender_pid: 99,
                sender_comm: "kill".to_owned(),
            };
            m.signalled_from_outside(id(to), tgid, vec![sender]);
        }
        Op::Meta { c, restarts } => {
            let meta = restarts.map(|restart_count| RuntimeMeta {
                runtime: "docker".to_owned(),
                name: format!("c{c}"),
                restart_count,
                ..Default::default()
            });
            m.set_meta(&key(c), meta, now);
        }
        Op::RuntimeLost => m.clear_meta("docker"),
        Op::FoundRunning { c, main } => {
            m.found_running(&key(c), now, None, main, Start::FoundRunning)
        }
        Op::MarkGone { c } => m.mark_gone(&key(c), now),
        Op::Housekeep => m.housekeep(now),
    }
}

fn cases() -> u32 {
    std::env::var("DSH_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[test]
fn invariants_hold_under_any_event_order() {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    let steps = proptest::collection::vec((op(), -5..40i64), 1..80);
    if let Err(e) = runner.run(&steps, |steps| run(&steps)) {
        panic!("{e}");
    }
}
