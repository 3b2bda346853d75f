//! The journal under a hard kill, the CLI's errors, and a reader that leaves early.
use std::{
    io::{BufRead as _, BufReader},
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::{
    agentkit::{Agent, OthersCopy, dsh_bin, wait_until},
    common::TestCgroup,
};

/// `kill -9` during a burst of journal writes: the journal reopens,
/// consistent, with every committed line once.
#[test]
fn agent_killed_during_a_write_burst_keeps_a_consistent_journal() {
    let mut agent = Agent::fresh("kill9", &[]);
    let cg = TestCgroup::new("kill9");
    // Thousands of child crashes: one journal line each (plain exits are
    // churn, summed up once per sample).
    let script = "i=0; while [ $i -lt 4000 ]; do /bin/sh -c 'kill -SEGV $$'; i=$((i+1)); done";
    let mut burst = cg
        .command_of(std::path::Path::new("/bin/sh"), &["-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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

    // `dsh log --json | head -1`: the reader goes after one line. The pipe is
    // shrunk to one page, so the log is many times what it holds and dsh is
    // still writing when the reader has gone.
    let (reader, writer) = std::io::pipe().expect("pipe");
    // SAFETY: fcntl on a pipe descriptor this function owns; no pointers.
    let set = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        set >= 4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    // The Command (and the parent's copy of the write end) is dropped here.
    let log = Command::new(dsh_bin())
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .args(["log", "-a", "--json", &path])
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("running dsh log");
    let mut first = String::new();
    BufReader::new(reader)
        .read_line(&mut first)
        .expect("reading the first line");
    // The reader was dropped: the pipe is closed.
    assert!(first.starts_with('{'), "{first:?}");
    let out = log.wait_with_output().expect("waiting for dsh log");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "a closed pipe is no error: {stderr}");
}

fn run_dsh(args: &[&str], state_dir: &std::path::Path) -> (i32, String) {
    output(Command::new(dsh_bin()), args, state_dir)
}

/// `dsh` run as `uid`, from a copy that user can execute, in a directory
/// it can enter.
fn run_dsh_as(
    copy: &OthersCopy,
    uid: u32,
    args: &[&str],
    state_dir: &std::path::Path,
) -> (i32, String) {
    let mut cmd = Command::new(&copy.path);
    cmd.uid(uid).gid(uid).current_dir("/");
    output(cmd, args, state_dir)
}

fn output(mut cmd: Command, args: &[&str], state_dir: &std::path::Path) -> (i32, String) {
    cmd.arg("--state-dir").arg(state_dir).args(args);
    let out = cmd.output().expect("running dsh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_errors_are_clear_and_fail() {
    let nowhere = std::env::temp_dir().join(format!("dsh-it-none-{}", std::process::id()));
    let (code, err) = run_dsh(&["ps"], &nowhere);
    assert_eq!(code, 1);
    assert!(err.contains("the dsh agent is not running"), "{err}");

    // As nobody: from a copy nobody can execute wherever this clone lives.
    let copy = OthersCopy::new();
    let (code, err) = run_dsh_as(&copy, 65534, &["ps"], &nowhere);
    assert_eq!(code, 1);
    assert!(err.contains("must run as root"), "{err}");
    let (code, err) = run_dsh_as(&copy, 65534, &["agent"], &nowhere);
    assert_eq!(code, 1);
    assert!(err.contains("root"), "{err}");

    let agent = Agent::fresh("cli", &[]);
    let (code, err) = run_dsh(&["log", "no-such-container"], &agent.state_dir);
    assert_eq!(code, 1);
    assert!(
        err.contains("no container matches \"no-such-container\""),
        "{err}"
    );
    let (code, err) = run_dsh(&["log", "--since", "3x", "x"], &agent.state_dir);
    assert_eq!(code, 2, "clap's usage error: {err}");
    assert!(err.contains("not a duration"), "{err}");
    let (code, err) = run_dsh(&["log", "--since", "500ms"], &agent.state_dir);
    assert_eq!(code, 0, "{err}");

    // A second agent on the same state dir refuses to start.
    let (code, err) = run_dsh(&["agent"], &agent.state_dir);
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
    // What the kernel programs could not do is reported, kind by kind.
    let failures: Vec<&str> = status["kernel_failures"]
        .as_array()
        .expect("kernel_failures in the status")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(failures, dsh_ebpf::failure::NAMES, "{status}");
}

/// A container record the agent cannot decode (written by a newer dsh, a
/// bad sector): the agent starts, keeps the other containers, and says so.
#[test]
fn an_undecodable_container_record_is_skipped_and_said() {
    let mut agent = Agent::fresh("badrecord", &[]);
    let (kept, damaged) = (TestCgroup::new("kept"), TestCgroup::new("damaged"));
    let mut sleepers: Vec<_> = [&kept, &damaged]
        .iter()
        .map(|cg| {
            cg.command_of(std::path::Path::new("/bin/sleep"), &["600"])
                .spawn()
                .expect("sleep in a test cgroup")
        })
        .collect();
    let (kept_path, damaged_path) = (format!("/{}", kept.name), format!("/{}", damaged.name));
    wait_until(Duration::from_secs(20), "both cgroups saved", || {
        (agent.row(&kept_path).is_some() && agent.row(&damaged_path).is_some()).then_some(())
    });
    agent.stop();

    // The record as the agent stored it, cut in half: no longer JSON.
    let file = agent.state_dir.join("journal.redb");
    {
        let containers: redb::TableDefinition<&str, &[u8]> =
            redb::TableDefinition::new("containers");
        let db = redb::Database::open(&file).expect("opening the journal");
        let tx = db.begin_write().expect("write transaction");
        {
            use redb::ReadableTable as _;
            let mut table = tx.open_table(containers).expect("containers table");
            let record = table
                .get(damaged_path.as_str())
                .expect("reading the record")
                .expect("the record was saved")
                .value()
                .to_vec();
            table
                .insert(damaged_path.as_str(), &record[..record.len() / 2])
                .expect("writing half of it");
        }
        tx.commit().expect("commit");
    }

    agent.start_again();
    let status = agent.status();
    assert_eq!(status["journal"]["skipped_records"], 1, "{status}");
    let said = agent.ok(&["status"]);
    assert!(
        said.contains(&format!(
            "journal: 1 undecodable container records skipped at start-up (last: journal: \
             container record {damaged_path} is damaged"
        )),
        "{said}"
    );
    // The other container's history was restored and both are tracked.
    wait_until(Duration::from_secs(20), "both cgroups seen again", || {
        (agent.row(&kept_path).is_some() && agent.row(&damaged_path).is_some()).then_some(())
    });
    for s in &mut sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
}
