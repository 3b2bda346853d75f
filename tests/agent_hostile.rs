//! Names a container chooses never reach the operator's terminal raw: a
//! cgroup named with terminal escapes, C1 controls, a bidi override, DEL and
//! invalid UTF-8, a process whose comm (and exec path) carries escapes, and a
//! sender of signals named the same way; every command's stdout and stderr,
//! and the agent's own log, are checked for raw control bytes.
use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader},
    os::unix::ffi::OsStrExt as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use dsh::untrusted::{from_utf8_escaped, is_unsafe};
use dsh_testkit::{TestCgroup, workload};
use serde_json::Value;

use crate::{
    agentkit::{Agent, dsh_bin, wait_until},
    promkit::{curl, metrics_url, promtool_check},
};

/// ESC [31m, OSC 0 (window title) ... BEL, DEL, C1 CSI (U+009B), RLO
/// (U+202E), and a byte that is not UTF-8.
const EVIL: &[u8] = b"\x1b[31mRED\x1b]0;title\x07\x7f\xc2\x9b2J\xe2\x80\xaeexe\xff";
/// A comm of 13 bytes (comm keeps 15): OSC 2, BEL, C1 CSI.
const EVIL_COMM: &[u8] = b"\x1b]2;pwn\x07\xc2\x9bsh";

/// Where a raw control character is in `bytes`, or why the bytes are not
/// text; None when they are safe for a terminal.
fn raw_control(bytes: &[u8]) -> Option<String> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Some(format!("not UTF-8: {e}")),
    };
    text.char_indices()
        .find(|&(_, c)| c != '\n' && is_unsafe(c))
        .map(|(i, c)| format!("{c:?} at byte {i}: {:?}", &text[i.saturating_sub(40)..]))
}

struct Outputs(Vec<(String, Vec<u8>, Vec<u8>, bool)>);

impl Outputs {
    /// Runs `dsh ARGS` against `agent` and keeps what it printed.
    fn run(&mut self, agent: &Agent, args: &[&str]) -> String {
        let out = agent.dsh(args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.0.push((
            format!("dsh {args:?}"),
            out.stdout,
            out.stderr,
            out.status.success(),
        ));
        stdout
    }

    fn stderr_of(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.0[i].2).into_owned()
    }

    fn check(&self) {
        for (what, stdout, stderr, _) in &self.0 {
            for (stream, bytes) in [("stdout", stdout), ("stderr", stderr)] {
                if let Some(why) = raw_control(bytes) {
                    panic!(
                        "{what} wrote a raw control character to {stream}: {why}\n{}",
                        String::from_utf8_lossy(bytes)
                    );
                }
            }
        }
    }
}

/// A link to the workload binary named `EVIL_COMM`: its processes' comm.
fn evil_program() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dsh-it-evil-program-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let link = dir.join(OsStr::from_bytes(EVIL_COMM));
    std::os::unix::fs::symlink(workload(), &link).expect("symlink");
    link
}

#[test]
fn hostile_names_never_reach_the_terminal_raw() {
    let agent = Agent::fresh_logging("hostile", &["--metrics-addr", "127.0.0.1:0"], "debug");
    let mut name = format!("dsh-evil-{}-", std::process::id()).into_bytes();
    name.extend_from_slice(EVIL);
    let cg = TestCgroup::named(OsStr::from_bytes(&name));
    // The cgroup path as dsh holds it: control characters kept (JSON has
    // them exactly), the byte that is not UTF-8 as the text `\xff`.
    let cgroup = format!("/{}", from_utf8_escaped(&name));
    let program = evil_program();

    // The main process, with the hostile comm; then a child exec'ing the
    // hostile path.
    let mut main = cg
        .command_of(&program, &["sleep"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("main process");
    let mut ready = String::new();
    BufReader::new(main.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready");
    let status = cg
        .command_of(&program, &["exit", "0"])
        .status()
        .expect("child");
    assert!(status.success());
    wait_until(
        Duration::from_secs(20),
        "the hostile container running",
        || {
            let row = agent
                .rows()
                .into_iter()
                .find(|r| r["cgroup"] == cgroup.as_str())?;
            (row["state"] == "kContainerRunning").then_some(row)
        },
    );

    let mut outputs = Outputs(Vec::new());
    let pid = main.id().to_string();
    // Commands that need it running.
    let which = outputs.run(&agent, &["which", &pid]);
    assert!(which.contains(r"\x1b[31mRED\x1b]0;title\x07"), "{which}");
    let which_json: Value =
        serde_json::from_str(&outputs.run(&agent, &["which", &pid, "--json"])).expect("JSON");
    assert_eq!(which_json["cgroup"], cgroup.as_str());
    let trace = outputs.run(&agent, &["trace", &cgroup, "-d", "1s"]);
    assert!(trace.contains(r"\u{9b}2J\u{202e}exe\xff"), "{trace}");
    let trace_json: Value =
        serde_json::from_str(&outputs.run(&agent, &["trace", &cgroup, "-d", "1s", "--json"]))
            .expect("JSON");
    assert_eq!(trace_json["cgroup"], cgroup.as_str());
    outputs.run(&agent, &["exec", &cgroup, "--", "/bin/true"]);

    // A signal from outside, sent by a process with the hostile comm.
    let kill = Command::new(&program)
        .args(["kill", &pid, "15"])
        .status()
        .expect("kill");
    assert!(kill.success());
    main.wait().expect("main exits");
    wait_until(
        Duration::from_secs(20),
        "the hostile container stopped",
        || {
            let row = agent
                .rows()
                .into_iter()
                .find(|r| r["cgroup"] == cgroup.as_str())?;
            (row["state"] == "kContainerExited").then_some(())
        },
    );

    // The table cuts a long id to its column; what shows is escaped.
    let shown = format!("/dsh-evil-{}-\\x1b", std::process::id());
    let ps = outputs.run(&agent, &["ps", "-a"]);
    assert!(ps.contains(&shown), "{ps}");
    let wide = outputs.run(&agent, &["ps", "-a", "--wide"]);
    assert!(wide.contains(&shown), "{wide}");
    outputs.run(&agent, &["ps"]);
    let rows: Value =
        serde_json::from_str(&outputs.run(&agent, &["ps", "-a", "--json"])).expect("JSON");
    assert!(
        rows.as_array()
            .expect("rows")
            .iter()
            .any(|r| r["id"] == cgroup.as_str())
    );
    // The row can say Exited a moment before the journal has the signal
    // and exit lines (signals are summed per interval): wait for them.
    wait_until(Duration::from_secs(10), "the signal's log line", || {
        agent
            .ok(&["log", "-a", &cgroup])
            .contains("receive signal SIGTERM from pid")
            .then_some(())
    });
    let log = outputs.run(&agent, &["log", "-a", &cgroup]);
    let comm = r"\x1b]2;pwn\x07\u{9b}sh";
    assert!(
        log.contains("receive signal SIGTERM from pid") && log.contains(comm),
        "{log}"
    );
    // The hostile program's exec is churn: summed up under its escaped comm.
    assert!(log.contains(&format!("({comm} 1)")), "{log}");
    outputs.run(&agent, &["log", &cgroup]);
    outputs.run(&agent, &["log"]);
    outputs.run(&agent, &["log", "-a"]);
    let lines = outputs.run(&agent, &["log", "-a", &cgroup, "--json"]);
    let entries: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let raw_comm = String::from_utf8(EVIL_COMM.to_vec()).expect("UTF-8");
    assert!(
        entries.iter().any(|e| e["comm"] == raw_comm.as_str()),
        "{lines}"
    );
    // An unknown name: the error lists the candidates, hostile ones escaped.
    outputs.run(&agent, &["log", "no-such-container"]);
    let unknown = outputs.0.len() - 1;
    assert!(!outputs.0[unknown].3, "an unknown name is an error");
    let err = outputs.stderr_of(unknown);
    assert!(
        err.contains("no container matches") && err.contains(r"\x1b[31mRED"),
        "{err}"
    );
    outputs.run(&agent, &["status"]);
    outputs.run(&agent, &["status", "--json"]);
    // `top` in a pipe prints one snapshot.
    let top = Command::new(dsh_bin())
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .args(["top", "-a"])
        .output()
        .expect("dsh top");
    assert!(String::from_utf8_lossy(&top.stdout).contains(&shown));
    outputs.0.push((
        "dsh top -a".into(),
        top.stdout,
        top.stderr,
        top.status.success(),
    ));
    outputs.check();
    for (i, (what, _, stderr, ok)) in outputs.0.iter().enumerate() {
        assert!(
            *ok || i == unknown,
            "{what} failed: {}",
            String::from_utf8_lossy(stderr)
        );
    }

    // The agent's own log names the hostile cgroup, escaped.
    let agent_log = std::fs::read(&agent.log_path).expect("agent log");
    if let Some(why) = raw_control(&agent_log) {
        panic!("the agent's log holds a raw control character: {why}");
    }
    let agent_log = String::from_utf8_lossy(&agent_log);
    assert!(
        agent_log.contains(r"\x1b[31mRED\x1b]0;title\x07"),
        "the agent's log never named the hostile cgroup:\n{agent_log}"
    );
    // The metrics (last, so the steps above keep their timing): a strict
    // parser reads the exposition, and the label is the exact name of the
    // exited container, escaped as the format asks (the `\` of `\xff` too).
    let exposition = wait_until(Duration::from_secs(10), "the hostile series", || {
        let got = curl(&metrics_url(&agent), &[]);
        assert_eq!(got.status, 200);
        let label = format!("cgroup=\"{}\"", cgroup.replace('\\', "\\\\"));
        got.body.contains(&label).then_some(got.body)
    });
    promtool_check(&exposition);

    let _ = std::fs::remove_dir_all(program.parent().expect("dir"));
}
