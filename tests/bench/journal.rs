//! What the journal costs: an agent records the churn of a shell loop
//! (summed up in one line per sample, not one per process) and a loop of
//! crashing children (one critical line each); the bytes its lines take in
//! the store (and the file's size, for reference) are divided by the lines
//! it keeps, and churn lines are counted per second.
use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use dsh_testkit::TestCgroup;
use serde::Serialize;

use crate::{Budget, agent::Agent};

#[derive(Serialize, Default)]
struct Report {
    processes: u64,
    loop_seconds: f64,
    churn_lines: u64,
    churn_lines_per_s: f64,
    crashes: u64,
    critical_lines: u64,
    chatty_lines: u64,
    file_bytes: u64,
    stored_bytes: u64,
    bytes_per_line: f64,
}

pub fn run(quick: bool, out_dir: &Path) -> Vec<Budget> {
    let (n, crashes) = if quick { (3_000, 300) } else { (20_000, 2_000) };
    let agent = Agent::start();
    let cg = TestCgroup::new("journal");
    let name = format!("/{}", cg.name);
    let script = format!(
        "i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done; \
         i=0; while [ $i -lt {crashes} ]; do /bin/sh -c 'kill -SEGV $$'; i=$((i+1)); done"
    );
    let started = Instant::now();
    let mut shell = cg
        .command_of(Path::new("/bin/sh"), &["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the shell loop");
    assert!(shell.wait().expect("shell loop").success());
    let mut report = Report {
        processes: n,
        loop_seconds: started.elapsed().as_secs_f64(),
        crashes,
        ..Default::default()
    };
    // The loop's processes, crashes and main exit, all in.
    let expected = n + crashes + 1;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exits = agent
            .rows()
            .iter()
            .find(|r| r["id"] == name.as_str())
            .and_then(|r| r["process_exits"].as_u64())
            .unwrap_or(0);
        let j = agent.json(&["status"])["journal"].clone();
        report.critical_lines = j["critical_entries"].as_u64().unwrap_or(0);
        report.chatty_lines = j["chatty_entries"].as_u64().unwrap_or(0);
        report.stored_bytes = j["stored_bytes"].as_u64().unwrap_or(0);
        report.bytes_per_line = j["bytes_per_line"].as_f64().unwrap_or(f64::NAN);
        if (exits >= expected && report.critical_lines >= crashes) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    report.file_bytes = agent.json(&["status"])["journal_bytes"]
        .as_u64()
        .unwrap_or(0);
    let out = std::process::Command::new(crate::agent::dsh_bin())
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .args(["log", "-a", &name, "--json"])
        .output()
        .expect("dsh log");
    report.churn_lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"kind\":\"churn\""))
        .count() as u64;
    // One line per sample at most: the loop's seconds, plus the sample
    // that closes it.
    report.churn_lines_per_s = report.churn_lines as f64 / (report.loop_seconds + 1.0);
    println!("\n## Journal: churn lines and bytes per line on disk\n");
    println!(
        "| processes | loop s | churn lines | churn lines/s | crashes | critical lines | chatty lines | file bytes | encoded bytes | bytes per line (file / lines) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1} | {} | {:.2} | {} | {} | {} | {} | {} | {:.1} |",
        report.processes,
        report.loop_seconds,
        report.churn_lines,
        report.churn_lines_per_s,
        report.crashes,
        report.critical_lines,
        report.chatty_lines,
        report.file_bytes,
        report.stored_bytes,
        report.bytes_per_line
    );
    crate::write_json(out_dir, "journal.json", &report);
    vec![
        // Churn is summed up, so this journal keeps a few thousand lines
        // and the database file's fixed size dominates its bytes per line;
        // the budget is on what each line costs in the store (the journal's
        // unit tests hold the file to 200 bytes per line over 20,200 lines).
        Budget::at_most(
            "journal: stored bytes per line",
            report.stored_bytes as f64
                / (report.critical_lines + report.chatty_lines).max(1) as f64,
            200.0,
        ),
        Budget::at_most(
            "journal: churn lines per container per second",
            report.churn_lines_per_s,
            1.0,
        ),
    ]
}
