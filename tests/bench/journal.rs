//! What a journal line costs on disk: an agent records the churn of a
//! shell loop (one exec line per process) and a few crashes, and the
//! journal file's size is divided by the lines it keeps.
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
    critical_lines: u64,
    chatty_lines: u64,
    file_bytes: u64,
    stored_bytes: u64,
    bytes_per_line: f64,
}

pub fn run(quick: bool, out_dir: &Path) -> Vec<Budget> {
    let (n, crashes) = if quick { (3_000, 5) } else { (20_000, 20) };
    let agent = Agent::start();
    let cg = TestCgroup::new("journal");
    let script = format!("i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done");
    let mut churn = cg
        .command_of(Path::new("/bin/sh"), &["-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .expect("the shell loop");
    for _ in 0..crashes {
        let _ = cg.run(&["segv"]);
    }
    assert!(churn.wait().expect("shell loop").success());
    let mut report = Report {
        processes: n,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = agent.json(&["status"])["journal"].clone();
        report.critical_lines = j["critical_entries"].as_u64().unwrap_or(0);
        report.chatty_lines = j["chatty_entries"].as_u64().unwrap_or(0);
        report.stored_bytes = j["stored_bytes"].as_u64().unwrap_or(0);
        report.bytes_per_line = j["bytes_per_line"].as_f64().unwrap_or(f64::NAN);
        if report.chatty_lines >= n || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    report.file_bytes = agent.json(&["status"])["journal_bytes"]
        .as_u64()
        .unwrap_or(0);
    println!("\n## Journal: bytes per line on disk\n");
    println!(
        "| processes (exec lines) | critical lines | chatty lines | file bytes | encoded bytes | bytes per line (file / lines) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {} | {:.1} |",
        report.processes,
        report.critical_lines,
        report.chatty_lines,
        report.file_bytes,
        report.stored_bytes,
        report.bytes_per_line
    );
    crate::write_json(out_dir, "journal.json", &report);
    vec![Budget::at_most(
        "journal: bytes per line on disk",
        report.bytes_per_line,
        200.0,
    )]
}
