//! The journal under a hard kill, and the CLI's errors.
use std::{
    os::unix::process::CommandExt as _,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{
    agentkit::{Agent, dsh_bin, wait_until},
    common::TestCgroup,
};

/// `kill -9` during a burst of journal writes: the journal reopens,
/// consistent, with every committed line once.
#[test]
fn agent_killed_during_a_write_burst_keeps_a_consistent_journal() {
    let mut agent = Agent::fresh("kill9", &[]);
    let cg = TestCgroup::new("kill9");
    // Thousands of execs: one `exec` journal line each.
    let script = "i=0; while [ $i -lt 4000 ]; do /bin/true; i=$((i+1)); done";
    let mut burst = cg
        .command_of(std::path::Path::new("/bin/sh"), &["-c", script])
        .stdout(Stdio::null())
        .spawn()
        .expect("burst");
    let path = format!("/{}", cg.name);
    wait_until(Duration::from_secs(20), "the burst in the journal", || {
        let n = agent.try_log_json(Some(&path)).map_or(0, |l| l.len());
        (n > 200).then_some(n)
    });
    agent.kill9();
    // Its job is done (lines were being written when the agent died); the
    // rest of its 4,000 execs would take minutes in an emulated VM.
    let _ = burst.kill();
    let _ = burst.wait();

    let agent = Agent::start(&agent.state_dir.clone(), &[]);
    let log = agent.log_json(Some(&path));
    assert!(log.len() > 200, "committed lines survive: {}", log.len());
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no line twice, in order"
    );
    let starts = log.iter().filter(|e| e["kind"] == "start").count();
    assert_eq!(starts, 1, "one start for the cgroup's first process");
    let status = agent.status();
    assert_eq!(status["journal_errors"], 0);
    assert!(status["journal_entries"].as_u64() >= Some(log.len() as u64));
}

fn run_dsh(args: &[&str], state_dir: &std::path::Path, uid: Option<u32>) -> (i32, String) {
    let mut cmd = Command::new(dsh_bin());
    cmd.arg("--state-dir").arg(state_dir).args(args);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("running dsh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_errors_are_clear_and_fail() {
    let nowhere = std::env::temp_dir().join(format!("dsh-it-none-{}", std::process::id()));
    let (code, err) = run_dsh(&["ps"], &nowhere, None);
    assert_eq!(code, 1);
    assert!(err.contains("the dsh agent is not running"), "{err}");

    let (code, err) = run_dsh(&["ps"], &nowhere, Some(65534));
    assert_eq!(code, 1);
    assert!(err.contains("must run as root"), "{err}");
    let (code, err) = run_dsh(&["agent"], &nowhere, Some(65534));
    assert_eq!(code, 1);
    assert!(err.contains("root"), "{err}");

    let agent = Agent::fresh("cli", &[]);
    let (code, err) = run_dsh(&["log", "no-such-container"], &agent.state_dir, None);
    assert_eq!(code, 1);
    assert!(
        err.contains("no container matches \"no-such-container\""),
        "{err}"
    );
    let (code, err) = run_dsh(&["log", "--since", "3w", "x"], &agent.state_dir, None);
    assert_ne!(code, 0);
    assert!(err.contains("unknown unit"), "{err}");

    // A second agent on the same state dir refuses to start.
    let (code, err) = run_dsh(&["agent"], &agent.state_dir, None);
    assert_eq!(code, 1);
    assert!(err.contains("already"), "{err}");

    // The socket is root's alone.
    let socket = agent.state_dir.join("dsh.sock");
    let mode = std::fs::metadata(&socket).map(|m| {
        use std::os::unix::fs::PermissionsExt as _;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.ok(), Some(0o600));
    let status: Value = agent.status();
    assert_eq!(status["runtimes"][0]["name"], "docker");
}
