//! The state machine fed the event sequences real containers produce.
use jiff::{SignedDuration, Timestamp};

use super::{
    Model, ResolveError,
    cause::{ExitCause, ExitUsage, ExternalSignal, Message, OomAtDeath, SignalsReceived, Start},
    container::NetSample,
    entry::{LogClass, LogKind},
    health::HealthRules,
    state::State,
};
use crate::{
    cgroup::{
        CgroupId,
        identity::{Identity, Runtime},
        stats::CgroupStats,
    },
    runtime::RuntimeMeta,
    signal::{ExitStatus, Signal},
};

pub(super) const ID: &str = "07c561cc06f3bd45658a4dec58468bc6d68032d6c4f168a2079b679f09c8233e";

pub(super) fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn docker(id: &str) -> Identity {
    Identity {
        runtime: Runtime::Docker,
        runtime_id: id.to_owned(),
        pod_uid: None,
        cgroup: format!("/docker/{id}"),
    }
}

fn killed(signal: u32, core_dumped: bool) -> ExitStatus {
    ExitStatus::Killed {
        signal: Signal::from_raw(signal),
        core_dumped,
    }
}

fn cg(id: u64) -> CgroupId {
    CgroupId::new(id)
}

/// The exit summary of a main process that ran this long, with no CPU or
/// memory figures read.
fn ran(run_time_s: f64) -> Option<ExitUsage> {
    Some(ExitUsage {
        run_time_s,
        ..Default::default()
    })
}

pub(super) fn model() -> Model {
    Model::new(HealthRules::default(), SignedDuration::from_hours(1))
}

/// What runc does: cgroup, its own helpers exit inside it, then the user exec.
pub(super) fn boot(m: &mut Model, cg: u64, at: i64, user_tgid: u32) {
    let cg = CgroupId::new(cg);
    let ident = docker(ID);
    let path = ident.cgroup.clone();
    m.cgroup_created(ident, &path, cg, t(at));
    m.exit(
        cg,
        user_tgid - 2,
        "runc:[1:CHILD]",
        ExitStatus::Exited(0),
        t(at),
    );
    m.exit(
        cg,
        user_tgid - 1,
        "runc:[0:PARENT]",
        ExitStatus::Exited(0),
        t(at),
    );
    m.exec(cg, user_tgid, "sh", t(at + 1));
}

fn changes(m: &mut Model) -> Vec<(Option<State>, State, Message)> {
    m.take_log()
        .into_iter()
        .filter_map(|e| e.to.map(|to| (e.from, to, e.msg)))
        .collect()
}

#[test]
fn boot_then_oom_then_restart() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    assert_eq!(
        changes(&mut m),
        vec![
            (
                None,
                State::Booting,
                Message::CgroupCreated {
                    cgroup: format!("/docker/{ID}")
                }
            ),
            (
                Some(State::Booting),
                State::Running,
                Message::Started(Start::Exec)
            ),
        ]
    );
    let c = m.get(ID).unwrap();
    assert_eq!(c.btime, Some(SignedDuration::from_secs(1)));
    assert_eq!(c.main_tgid, Some(50));

    let at_death = OomAtDeath {
        mem_used: Some(32 << 20),
        mem_limit: Some(32 << 20),
        sampled: false,
    };
    m.oom_kill(cg(100), 50, at_death, t(5));
    m.exit(cg(100), 50, "dd", killed(9, false), t(5));
    let log = m.take_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].kind, LogKind::Oom);
    assert_eq!(log[0].to, Some(State::Error));
    assert_eq!(
        log[0].msg,
        Message::Exit {
            cause: ExitCause::Oom(at_death),
            child: false,
            usage: ran(4.0)
        }
    );

    // --restart=always: same container, new cgroup, new user process.
    m.cgroup_removed(cg(100), t(6));
    m.cgroup_created(docker(ID), &format!("/docker/{ID}"), cg(101), t(7));
    m.exec(cg(101), 60, "sh", t(8));
    let c = m.get(ID).unwrap();
    assert_eq!((c.state, c.restarts, c.oom_kills), (State::Running, 1, 1));
    let ch = changes(&mut m);
    assert_eq!(
        ch.last().unwrap(),
        &(
            Some(State::Error),
            State::Running,
            Message::Started(Start::Exec)
        )
    );
    let (h, why) = m.rules.evaluate(m.get(ID).unwrap(), t(9));
    assert_eq!(h, super::health::Health::UnHealthy, "{why:?}");
}

#[test]
fn segv_is_a_core_dump_and_child_exits_are_quiet() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.take_log();
    m.exec(cg(100), 51, "sleep", t(2));
    m.exit(cg(100), 51, "sleep", ExitStatus::Exited(0), t(3));
    m.exit(cg(100), 50, "sh", killed(11, true), t(4));
    let log = m.take_log();
    // The child's exec and exit are churn: no line of their own.
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0].msg,
        Message::Exit {
            cause: ExitCause::Coredump {
                signal: Signal::from_raw(11),
                core_written: true
            },
            child: false,
            usage: ran(3.0)
        }
    );
    assert_eq!(log[0].signal.as_deref(), Some("SIGSEGV"));
    assert_eq!(log[0].core_dumped, Some(true));
    assert_eq!(m.get(ID).unwrap().core_dumps, 1);
    // ... but one summary line when the sample asks for it, with the
    // kernel's counts of the same container added in.
    m.record_churn(
        cg(100),
        "cat",
        &dsh_ebpf::ChurnCounts {
            execs: 10,
            exits_ok: 9,
            exits_failed: 1,
            exits_killed: 0,
        },
    );
    m.record_churn(cg(999), "cat", &dsh_ebpf::ChurnCounts::default());
    m.churn_lines(t(5));
    let log = m.take_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].kind, LogKind::Churn);
    let Message::Churn(s) = &log[0].msg else {
        panic!("{log:?}")
    };
    assert_eq!(s.execs, 11);
    assert_eq!(
        s.commands,
        [("cat".to_owned(), 10), ("sleep".to_owned(), 1)]
    );
    // 9 counted, `sleep`, and the two runc helpers of the boot.
    assert_eq!((s.exits_ok, s.exits_failed), (12, 1));
    assert_eq!(m.get(ID).unwrap().process_exits, 2 + 2 + 10);
    m.churn_lines(t(6));
    assert!(m.take_log().is_empty(), "no churn, no line");
}

#[test]
fn term_from_outside_names_the_sender_and_is_a_stop() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.take_log();
    let sender = ExternalSignal {
        signal: Signal::from_raw(15),
        sender_pid: 777,
        sender_comm: "runc".to_owned(),
    };
    // The kernel hands the senders over with the main process's exit.
    m.signalled_from_outside(cg(100), 50, vec![sender.clone()]);
    m.exit(cg(100), 50, "sh", killed(15, false), t(3));
    let log = m.take_log();
    assert_eq!(log.len(), 1, "the exit line alone: {log:?}");
    assert_eq!(log[0].kind, LogKind::Signal);
    assert_eq!(log[0].to, Some(State::Exited));
    assert_eq!(
        log[0].msg,
        Message::Exit {
            cause: ExitCause::SignalFromOutside(sender),
            child: false,
            usage: ran(2.0)
        }
    );
}

#[test]
fn exit_code_three_is_an_error_and_zero_is_not() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    assert!(m.is_main(cg(100), 50) && !m.is_main(cg(100), 51));
    m.final_stats(
        cg(100),
        CgroupStats {
            cpu_usage_ns: 3_200_000_000,
            mem_peak_bytes: Some(41 << 20),
            ..Default::default()
        },
    );
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(3), t(2));
    assert_eq!(m.get(ID).unwrap().state, State::Error);
    assert_eq!(
        changes(&mut m).last().unwrap().2,
        Message::Exit {
            cause: ExitCause::Exited { code: 3 },
            child: false,
            usage: Some(ExitUsage {
                run_time_s: 1.0,
                cpu_s: Some(3.2),
                peak_mem_bytes: Some(41 << 20)
            })
        }
    );
    m.cgroup_removed(cg(100), t(3));
    m.cgroup_created(docker(ID), &format!("/docker/{ID}"), cg(102), t(3));
    m.exec(cg(102), 60, "sh", t(4));
    m.exit(cg(102), 60, "sh", ExitStatus::Exited(0), t(5));
    assert_eq!(m.get(ID).unwrap().state, State::Exited);
}

#[test]
fn signals_inside_the_container_are_not_external() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    // A sub-cgroup of the same container.
    m.cgroup_created(docker(ID), &format!("/docker/{ID}/sub"), cg(101), t(1));
    m.take_log();
    let sig = Signal::from_raw(10);
    m.record_signals(cg(100), cg(100), sig, 50, "sh", 5);
    m.record_signals(cg(100), cg(101), sig, 51, "sh", 5);
    // Housekeeping from outside, and a target that is no container's.
    m.record_signals(cg(100), cg(1), Signal::from_raw(17), 1, "init", 5);
    m.record_signals(cg(999), cg(1), sig, 1, "bash", 5);
    m.signal_lines(t(2));
    assert!(m.take_log().is_empty());
}

/// `docker stop`: the TERM is read from the kernel's counters at the next
/// sample, after the container's cgroup is gone; it still gets its line.
#[test]
fn signals_read_after_the_cgroup_is_removed_still_count() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(143), t(2));
    m.cgroup_removed(cg(100), t(2));
    m.take_log();
    m.record_signals(cg(100), cg(1), Signal::from_raw(15), 9, "runc", 1);
    m.signal_lines(t(3));
    let log = m.take_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].signal.as_deref(), Some("SIGTERM"));
    // Only until that summary.
    m.record_signals(cg(100), cg(1), Signal::from_raw(15), 9, "runc", 1);
    m.signal_lines(t(4));
    assert!(m.take_log().is_empty());
}

#[test]
fn a_signal_flood_from_outside_is_a_few_chatty_lines_per_interval() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.take_log();
    m.take_changes();
    for interval in 0..10 {
        // Two senders with a shell loop each, and a `kill` process per signal.
        m.record_signals(cg(100), cg(1), Signal::from_raw(1), 812, "bash", 31_000);
        m.record_signals(cg(100), cg(1), Signal::from_raw(10), 812, "bash", 30_000);
        for pid in 0..1000 {
            m.record_signals(cg(100), cg(1), Signal::from_raw(1), 2000 + pid, "kill", 1);
        }
        m.signal_lines(t(2 + interval));
    }
    let log = m.take_log();
    assert_eq!(
        log.len(),
        10 * (super::signals::NAMED.min(3) + 1),
        "{log:?}"
    );
    assert!(
        log.iter()
            .all(|e| e.class() == LogClass::Chatty && !e.is_state_change())
    );
    assert_eq!(log[0].kind, LogKind::Signal);
    assert_eq!(
        (log[0].pid, log[0].signal.as_deref()),
        (Some(812), Some("SIGHUP"))
    );
    assert_eq!(
        log[0].msg,
        Message::SignalsReceived(SignalsReceived {
            signal: Signal::from_raw(1),
            count: 31_000,
            sender_pid: 812,
            sender_comm: "bash".into()
        })
    );
    let Message::OtherSignalsReceived(other) = &log[3].msg else {
        panic!("{:?}", log[3]);
    };
    // Three named: bash twice, then the first `kill` (ties go by pid).
    assert_eq!((other.count, other.senders), (999, 999));
    // No state changed: nothing to save.
    assert!(m.take_changes().updated.is_empty());
}

#[test]
fn forgotten_after_removal_and_ttl() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(0), t(2));
    m.cgroup_removed(cg(100), t(2));
    m.housekeep(t(60));
    assert_eq!(m.len(), 1);
    m.housekeep(t(2 + 3601));
    assert!(m.is_empty());
    assert_eq!(m.take_changes().forgotten, vec![ID.to_owned()]);
}

#[test]
fn names_prefixes_and_paths_resolve() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    let other = "07c5ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    m.cgroup_created(docker(other), &format!("/docker/{other}"), cg(200), t(0));
    m.set_meta(
        ID,
        Some(RuntimeMeta {
            runtime: "docker".to_owned(),
            name: "web".to_owned(),
            ..Default::default()
        }),
        t(0),
    );
    assert_eq!(m.resolve("web").unwrap(), ID);
    assert_eq!(m.resolve("07c56").unwrap(), ID);
    assert_eq!(m.resolve(&format!("/docker/{other}")).unwrap(), other);
    assert!(
        matches!(m.resolve("07c5"), Err(ResolveError::Ambiguous { matches, .. }) if matches.len() == 2)
    );
    assert!(matches!(
        m.resolve("07c"),
        Err(ResolveError::Unknown { .. })
    ));
    let e = m.resolve("nope").unwrap_err().to_string();
    assert!(
        e.contains("no container matches \"nope\"") && e.contains("web (07c561cc06f3)"),
        "{e}"
    );
    // The runtime gone: the name is no longer shown but still resolves.
    m.clear_meta("podman");
    assert_eq!(
        m.get(ID).unwrap().display_id(),
        "web",
        "another runtime's names stay"
    );
    m.clear_meta("docker");
    assert_eq!(m.get(ID).unwrap().display_id(), format!("/docker/{ID}"));
    assert_eq!(m.resolve("web").unwrap(), ID);
    // Removed from the runtime (`docker rm`): the last name stays on show.
    m.set_meta(ID, None, t(0));
    assert_eq!(m.get(ID).unwrap().display_id(), "web");
}

#[test]
fn a_handled_term_is_a_stop_that_names_the_sender() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    let sender = ExternalSignal {
        signal: Signal::from_raw(15),
        sender_pid: 9,
        sender_comm: "runc".to_owned(),
    };
    m.signalled_from_outside(cg(100), 50, vec![sender.clone()]);
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(143), t(2));
    assert_eq!(m.get(ID).unwrap().state, State::Exited);
    assert_eq!(
        changes(&mut m).last().unwrap().2,
        Message::Exit {
            cause: ExitCause::ExitAfterSignal {
                code: 143,
                by: sender
            },
            child: false,
            usage: ran(1.0)
        }
    );
}

fn named(name: &str) -> Option<RuntimeMeta> {
    Some(RuntimeMeta {
        runtime: "docker".to_owned(),
        name: name.to_owned(),
        ..Default::default()
    })
}

/// `docker rm -f web && docker run --name web ...`: the name means the new
/// container; the old one is an earlier incarnation, reachable by id.
#[test]
fn a_reused_name_resolves_to_the_current_container() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.set_meta(ID, named("web"), t(1));
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(0), t(2));
    m.cgroup_removed(cg(100), t(2));
    m.set_meta(ID, None, t(3));
    let new = "4f7a000000000000000000000000000000000000000000000000000000000000";
    m.cgroup_created(docker(new), &format!("/docker/{new}"), cg(300), t(5));
    m.set_meta(new, named("web"), t(5));
    assert_eq!(m.resolve("web").unwrap(), new);
    assert_eq!(m.earlier_incarnations("web", new), vec![ID.to_owned()]);
    assert_eq!(m.resolve("07c5").unwrap(), ID);
    // Both gone: the most recent.
    m.cgroup_removed(cg(300), t(9));
    m.set_meta(new, None, t(9));
    assert_eq!(m.resolve("web").unwrap(), new);
    // The runtime unreachable: the live one is current.
    m.cgroup_created(docker(new), &format!("/docker/{new}"), cg(301), t(10));
    m.clear_meta("docker");
    assert_eq!(m.resolve("web").unwrap(), new);
}

#[test]
fn plain_cgroups_resolve_with_or_without_the_slash() {
    let mut m = model();
    let ident = Identity {
        runtime: Runtime::Cgroup,
        runtime_id: "/batch".to_owned(),
        pod_uid: None,
        cgroup: "/batch".to_owned(),
    };
    m.cgroup_created(ident, "/batch", cg(7), t(0));
    assert_eq!(m.resolve("batch").unwrap(), "/batch");
    assert_eq!(m.resolve("/batch").unwrap(), "/batch");
}

/// A removed container's name is saved with it, and shown after a restart
/// (no runtime metadata then: the container is gone).
#[test]
fn removed_containers_keep_their_name_across_restarts() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.set_meta(ID, named("web"), t(1));
    m.cgroup_removed(cg(100), t(2));
    m.take_changes();
    m.set_meta(ID, None, t(3));
    let saved = m.take_changes().updated;
    assert_eq!(saved.len(), 1, "removal from the runtime is saved");
    let json = serde_json::to_vec(&saved[0]).unwrap();
    let mut restarted = model();
    restarted.restore(vec![serde_json::from_slice(&json).unwrap()]);
    assert_eq!(restarted.get(ID).unwrap().display_id(), "web");
    assert_eq!(restarted.resolve("web").unwrap(), ID);
}

#[test]
fn syscall_rates_follow_the_accounting_mode() {
    use super::{
        container::Counters,
        syscalls::{SyscallAccounting, SyscallWindow},
    };
    let counters = |syscalls| Counters {
        syscalls,
        ..Default::default()
    };
    let rate = |m: &Model| m.get(ID).unwrap().sample.syscalls_per_s;
    // Exact: rates from the cumulative counters, sample to sample.
    let mut m = model();
    m.syscall_accounting = SyscallAccounting::Exact;
    boot(&mut m, 100, 0, 50);
    m.record_sample(
        ID,
        CgroupStats::default(),
        counters(1_000),
        NetSample::default(),
        t(1),
    );
    m.record_sample(
        ID,
        CgroupStats::default(),
        counters(21_000),
        NetSample::default(),
        t(2),
    );
    assert_eq!(rate(&m), 20_000.0);
    // Sampled: the counters do not move between windows; the rate is the
    // last window's, and totals grow by the window scaled to its period.
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.record_sample(
        ID,
        CgroupStats::default(),
        counters(0),
        NetSample::default(),
        t(1),
    );
    m.record_syscall_window(
        ID,
        SyscallWindow {
            calls: 5_000,
            errors: 10,
            attached: std::time::Duration::from_millis(500),
            period: std::time::Duration::from_secs(10),
        },
    );
    m.record_sample(
        ID,
        CgroupStats::default(),
        counters(0),
        NetSample::default(),
        t(2),
    );
    assert_eq!(rate(&m), 10_000.0);
    assert_eq!(m.get(ID).unwrap().sample.syscall_errors_per_s, 20.0);
    let prev = m.get(ID).unwrap().sample.prev.unwrap();
    assert_eq!((prev.syscalls, prev.syscall_errors), (100_000, 200));
    let row = &m.rows(false, t(2))[0];
    assert!(row.syscalls_sampled, "{row:?}");
    // Off: no rate.
    m.syscall_accounting = SyscallAccounting::Off;
    m.record_sample(
        ID,
        CgroupStats::default(),
        counters(0),
        NetSample::default(),
        t(3),
    );
    assert_eq!(rate(&m), 0.0);
    assert_eq!(
        m.rows(false, t(3))[0].syscall_accounting,
        SyscallAccounting::Off
    );
}

/// The ids plain `dsh ps` lists at `now`.
fn listed(m: &Model, now: Timestamp) -> Vec<String> {
    m.rows(false, now)
        .into_iter()
        .map(|r| r.runtime_id)
        .collect()
}

#[test]
fn a_crash_loop_between_two_starts_stays_listed() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    // Docker's restart policy: the cgroup goes with the process, a new one
    // comes seconds later. Between the two the container is dead.
    m.exit(cg(100), 50, "sh", killed(11, true), t(2));
    m.cgroup_removed(cg(100), t(2));
    assert_eq!(m.get(ID).unwrap().state, State::Error);
    assert_eq!(listed(&m, t(3)), vec![ID.to_owned()]);
    let row = &m.rows(false, t(3))[0];
    assert_eq!(row.health, "UnHealthy");
    // Still there after the window only while the runtime says it will
    // start it again.
    let after = t(2 + 601);
    assert!(listed(&m, after).is_empty());
    assert_eq!(m.rows(true, after).len(), 1);
    let mut meta = named("web").unwrap();
    meta.restarting = true;
    m.set_meta(ID, Some(meta), after);
    assert_eq!(listed(&m, t(2 + 602)), vec![ID.to_owned()]);
}

#[test]
fn an_oom_kill_is_listed_for_the_unhealthy_window_then_not() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    let at_death = OomAtDeath {
        mem_used: Some(32 << 20),
        mem_limit: Some(32 << 20),
        sampled: false,
    };
    m.oom_kill(cg(100), 50, at_death, t(5));
    m.exit(cg(100), 50, "dd", killed(9, false), t(5));
    m.cgroup_removed(cg(100), t(5));
    assert_eq!(listed(&m, t(6)), vec![ID.to_owned()]);
    assert_eq!(listed(&m, t(5 + 599)), vec![ID.to_owned()]);
    assert!(listed(&m, t(5 + 601)).is_empty());
}

#[test]
fn a_clean_exit_is_not_listed() {
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(0), t(2));
    m.cgroup_removed(cg(100), t(2));
    assert_eq!(m.get(ID).unwrap().state, State::Exited);
    assert!(listed(&m, t(3)).is_empty());
    assert_eq!(m.rows(true, t(3)).len(), 1);
}

#[test]
fn orphans_after_the_main_exit_are_no_restart() {
    // `--pids-limit 12`: the shell exits 2 (can't fork) while its children
    // run; one of them execs, then the kernel kills the rest (the pid
    // namespace lost its init).
    let mut m = model();
    boot(&mut m, 100, 0, 50);
    m.take_log();
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(2), t(2));
    m.exec(cg(100), 57, "sleep", t(2));
    m.exit(cg(100), 57, "sleep", killed(9, false), t(2));
    m.exit(cg(100), 58, "sleep", killed(9, false), t(2));
    let c = m.get(ID).unwrap();
    assert_eq!(
        (c.state, c.restarts, c.last_exit_code),
        (State::Error, 0, Some(2))
    );
    let ch = changes(&mut m);
    assert_eq!(ch.len(), 1, "{ch:?}");
    assert_eq!(
        ch[0].2,
        Message::Exit {
            cause: ExitCause::Exited { code: 2 },
            child: false,
            usage: ran(1.0)
        }
    );
    // The runtime's restart is a new cgroup: that one is a start.
    m.cgroup_removed(cg(100), t(3));
    m.cgroup_created(docker(ID), &format!("/docker/{ID}"), cg(101), t(4));
    m.exec(cg(101), 70, "sh", t(4));
    let c = m.get(ID).unwrap();
    assert_eq!((c.state, c.restarts), (State::Running, 1));
}

#[test]
fn a_plain_cgroup_may_start_again_in_the_same_cgroup() {
    let mut m = model();
    let ident = Identity {
        runtime: Runtime::Cgroup,
        runtime_id: "/batch".to_owned(),
        pod_uid: None,
        cgroup: "/batch".to_owned(),
    };
    m.cgroup_created(ident, "/batch", cg(100), t(0));
    m.exec(cg(100), 50, "job", t(1));
    m.exit(cg(100), 50, "job", ExitStatus::Exited(0), t(2));
    m.exec(cg(100), 60, "job", t(3));
    let c = m.get("/batch").unwrap();
    assert_eq!(
        (c.state, c.restarts, c.main_tgid),
        (State::Running, 1, Some(60))
    );
}

#[test]
fn runcs_own_reexec_is_no_user_process() {
    use super::container::is_runtime_reexec;
    // As the kernel reports runc 1.1's exec in a new container's cgroup.
    assert!(is_runtime_reexec("runc", "/dev/fd/6"));
    assert!(is_runtime_reexec("runc:[0:PARENT]", "/proc/self/exe"));
    assert!(is_runtime_reexec("crun", "/memfd:crun"));
    assert!(!is_runtime_reexec("runc:[2:INIT]", "/bin/sh"));
    assert!(!is_runtime_reexec("sh", "/dev/fd/3"));
}

#[test]
fn a_sample_without_namespace_figures_keeps_the_last() {
    let mut m = model();
    m.cgroup_created(docker(ID), &format!("/docker/{ID}"), cg(1), t(0));
    let sample = |m: &mut Model, net: Option<NetSample>, at| {
        let counters = super::container::Counters::default();
        m.record_sample(ID, CgroupStats::default(), counters, net, t(at));
    };
    sample(&mut m, Some(NetSample::host()), 1);
    sample(&mut m, None, 2);
    assert!(m.get(ID).unwrap().sample.net.is_host());
    sample(&mut m, Some(NetSample::default()), 3);
    assert_eq!(m.get(ID).unwrap().sample.net, NetSample::default());
}
