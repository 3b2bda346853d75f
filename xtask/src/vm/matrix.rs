//! The matrix as a Markdown table (kernel x layout x what works), for
//! `target/vm/matrix.md` and the README.
use std::{fmt::Write as _, process::Command, time::Duration};

use super::{Cell, console::Outcome};
use crate::{cmd::output, workspace_root};

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
