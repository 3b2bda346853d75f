//! The matrix: its cells (kernel x layout), the tests each VM runs, and
//! the last run as a Markdown table for `target/vm/matrix.md` and
//! `docs/vm-matrix.md`.
use std::{fmt::Write as _, process::Command, time::Duration};

use super::{Cell, Kernel, Layout, console::Outcome};
use crate::{cmd::output, workspace_root};

/// The cells `cargo xtask test` runs: the layouts each kernel's
/// distribution (and its users) actually have.
pub const MATRIX: &[(Kernel, Layout)] = &[
    (Kernel::V5_10, Layout::V1),
    (Kernel::V5_10, Layout::V2),
    (Kernel::V6_1, Layout::V2),
    (Kernel::V6_1, Layout::Hybrid),
    (Kernel::V6_12, Layout::V2),
];

/// The integration tests every VM runs, by what they prove: those that
/// need no Docker and whose outcome can depend on the kernel or the cgroup
/// layout. Left to the host: `burst::*` (20,000 forks: minutes in an
/// emulated guest), `agent_runtime::churn_of_200_cgroups_for_30_seconds` (a
/// minute by design), and the agent's user-space-only tests
/// (`agent_journal::*`: the journal under kill -9 and the CLI's errors;
/// `agent_top::*`: rendering), each of which starts agents that take
/// seconds to load in a guest.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "syscall counts",
        &[
            "syscalls::getppid_calls_are_counted_for_their_cgroup",
            "syscalls::failing_calls_are_counted_as_errors",
            "syscalls::latency_histogram_fills_only_when_switched_on",
        ],
    ),
    (
        "exec, churn, exit codes, SIGSEGV",
        &[
            "process::a_cgroups_first_exec_is_an_event_and_later_ones_are_counted",
            "process::children_are_counted_and_the_main_exit_is_an_event",
            "process::exit_3_has_exit_code_3",
            "process::sigsegv_death_has_signal_11",
        ],
    ),
    ("OOM kill", &["oom::oom_kill_names_victim_pid_and_cgroup"]),
    (
        "forks refused at pids.max",
        &["agent_sick::plain_cgroup_forks_refused_at_the_pids_limit"],
    ),
    (
        "signal from another cgroup",
        &[
            "signals::kill_from_another_cgroup_is_counted_and_named_by_the_exit",
            "signals::only_delivered_signals_count_and_a_flood_sends_no_record",
        ],
    ),
    (
        "cgroup mkdir/rmdir",
        &[
            "cgroups::mkdir_and_rmdir_are_seen_with_path",
            "cgroups::cgroup_ids_resolve_to_their_paths",
        ],
    ),
    (
        "TCP listen",
        &["cgroups::tcp_listen_is_seen_with_port_and_cgroup"],
    ),
    (
        "TCP connects",
        &["tcp_connects::connects_are_counted_for_their_cgroup_by_how_they_ended"],
    ),
    (
        "TCP retransmits, resets, destinations (own netns)",
        &["tcp_sockets::retransmits_resets_and_destinations_count_for_the_sockets_cgroup"],
    ),
    (
        "TCP refused, listen overflow (own netns)",
        &["agent_tcp::plain_cgroup_in_its_own_netns_is_sick_with_both"],
    ),
    (
        "block I/O (virtio disk)",
        &["block::direct_write_is_attributed_to_its_cgroup"],
    ),
    (
        "agent: ps, log",
        &[
            "agent_plain::plain_cgroups_exit_oom_and_crash_in_ps_and_log",
            "agent_plain::cgroups_execd_into_at_once_all_start_and_end",
        ],
    ),
    (
        "trace",
        &["agent_trace::trace_reports_the_workloads_syscall_errno_and_histogram"],
    ),
    (
        "no tracefs needed",
        &["cgroups::programs_were_loaded_without_tracefs"],
    ),
];

pub fn markdown(cells: &[Cell], groups: &[(&str, &[&str])], total: Duration) -> String {
    let mut s = String::new();
    let commit = output(
        Command::new("git")
            .args(["describe", "--always", "--dirty", "--abbrev=7"])
            .current_dir(workspace_root()),
    )
    .unwrap_or_else(|_| "unknown".into());
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default();
    let _ = writeln!(
        s,
        "`cargo xtask vm-test` on {date}, commit {commit}: {} VM(s) in {:.0} s \
         (qemu software emulation).\n",
        cells.len(),
        total.as_secs_f64()
    );
    let _ = write!(s, "| kernel | cgroups | result | time |");
    for (g, _) in groups {
        let _ = write!(s, " {g} |");
    }
    let _ = write!(s, "\n|---|---|---|---|");
    for _ in groups {
        s.push_str("---|");
    }
    s.push('\n');
    for c in cells {
        let passed = c.outcomes.iter().filter(|(_, o)| o.passed()).count();
        let result = if c.passed() {
            "pass".to_owned()
        } else {
            format!("**FAIL** ({passed}/{})", c.outcomes.len())
        };
        let _ = write!(
            s,
            "| {} ({}, `{}`) | {} | {result} | {:.0} s |",
            c.kernel.name(),
            c.kernel.distribution(),
            c.release.as_deref().unwrap_or("?"),
            c.layout.name(),
            c.elapsed.as_secs_f64()
        );
        for (_, tests) in groups {
            let _ = write!(s, " {} |", group_mark(c, tests));
        }
        s.push('\n');
    }
    let failing: Vec<&Cell> = cells.iter().filter(|c| !c.passed()).collect();
    if !failing.is_empty() {
        s.push_str("\nWhy cells failed:\n\n");
    }
    for c in failing {
        let _ = writeln!(
            s,
            "- **{}**{}",
            c.label(),
            c.problem
                .as_deref()
                .map(|p| format!(": {p}"))
                .unwrap_or_default()
        );
        for (why, names) in c.failures() {
            let who = if names.len() > 3 {
                format!("{} tests", names.len())
            } else {
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, "  - {who}: {}", why.replace('|', "\\|"));
        }
    }
    s
}

/// `yes` when every test of the group that ran passed, `no` when one
/// failed, `-` when none of them ran.
fn group_mark(c: &Cell, tests: &[&str]) -> &'static str {
    let ran: Vec<&Outcome> = c
        .outcomes
        .iter()
        .filter(|(n, _)| tests.contains(&n.as_str()))
        .map(|(_, o)| o)
        .collect();
    if ran.is_empty() {
        "-"
    } else if ran.iter().all(|o| o.passed()) {
        "yes"
    } else {
        "**no**"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A renamed test would leave its cell with a missing result at run
    /// time, minutes in: catch it here.
    #[test]
    fn every_vm_test_exists_in_the_integration_tests() {
        for (_, tests) in GROUPS {
            for name in *tests {
                let (module, function) = name.split_once("::").expect("module::function");
                let source = workspace_root().join("tests").join(format!("{module}.rs"));
                let text = std::fs::read_to_string(&source)
                    .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
                assert!(
                    text.contains(&format!("fn {function}()")),
                    "{name}: no such test in {}",
                    source.display()
                );
            }
        }
    }
}
