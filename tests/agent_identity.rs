//! A container's identity cannot be forged from a delegated subtree: an
//! unprivileged user who owns a cgroup directory (as systemd's
//! `user@UID.service` is owned by its user) makes and removes cgroups named
//! like a running Docker container's (`.../docker/<id>`,
//! `.../docker-<id>.scope`, `.../cri-containerd-<id>.scope`), in every
//! hierarchy; the container keeps its row, its state, its statistics and
//! its log, and the look-alikes are listed as the plain cgroups they are.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    agentkit::{Agent, Container, wait_until},
    promkit::{curl, metrics_url},
};

/// The user that makes the look-alikes (nobody).
const UID: u32 = 65534;

/// Every cgroup hierarchy's mount (cgroup2 and each v1 one).
fn hierarchy_mounts() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
    let mut out: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            matches!(f.get(2), Some(&"cgroup" | &"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .collect();
    out.dedup();
    out
}

/// `<mount>/dsh-it-<pid>.slice/user@65534.service` in every hierarchy,
/// owned by the user the way systemd delegates a user manager's cgroup
/// (the directory and its `cgroup.procs`, `cgroup.subtree_control`,
/// `cgroup.threads`; the slice above stays root's). Removed on drop with
/// whatever is left below it.
struct Delegated {
    /// Relative to each mount, with a leading '/'.
    rel: String,
    mounts: Vec<PathBuf>,
}

impl Delegated {
    fn new() -> Delegated {
        let slice = format!("/dsh-it-{}.slice", std::process::id());
        let rel = format!("{slice}/user@{UID}.service");
        let d = Delegated {
            rel,
            mounts: hierarchy_mounts(),
        };
        assert!(!d.mounts.is_empty(), "no cgroup hierarchy mounted");
        for m in &d.mounts {
            let dir = d.dir(m);
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            std::os::unix::fs::chown(&dir, Some(UID), Some(UID)).expect("chown");
            for f in ["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"] {
                let _ = std::os::unix::fs::chown(dir.join(f), Some(UID), Some(UID));
            }
        }
        d
    }

    fn dir(&self, mount: &Path) -> PathBuf {
        mount.join(self.rel.trim_start_matches('/'))
    }

    /// Runs `script` as the user (no groups, no capabilities), with the
    /// delegated directory of every hierarchy as its arguments; its stdout.
    fn as_user(&self, script: &str) -> String {
        let uid = UID.to_string();
        let out = Command::new("setpriv")
            .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
            .args(["sh", "-ec", script, "sh"])
            .args(self.mounts.iter().map(|m| self.dir(m)))
            .output()
            .expect("setpriv (util-linux)");
        assert!(
            out.status.success(),
            "as uid {UID}: {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for m in &self.mounts {
            let Some(slice) = self.dir(m).parent().map(Path::to_path_buf) else {
                continue;
            };
            // Deepest first: cgroupfs removes only empty directories one by one.
            let mut dirs = Vec::new();
            let mut stack = vec![slice];
            while let Some(d) = stack.pop() {
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            stack.push(e.path());
                        }
                    }
                }
                dirs.push(d);
            }
            for d in dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

/// The look-alike cgroups of container `id`, relative to a delegated dir:
/// Docker's cgroupfs and systemd shapes, containerd's (the id is the row's
/// key whatever the runtime), and a sub-cgroup of one.
fn look_alikes(id: &str) -> [String; 4] {
    [
        format!("docker/{id}"),
        format!("docker-{id}.scope"),
        format!("cri-containerd-{id}.scope"),
        format!("docker-{id}.scope/init.scope"),
    ]
}

/// A shell line that makes every one of `shapes` under `$d`.
fn mkdir_each(shapes: &[String]) -> String {
    shapes
        .iter()
        .map(|s| format!("mkdir -p \"$d/{s}\""))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Container `name`'s log once its start line is committed and a second
/// passes without a new line (no churn summary still to come).
fn settled_log(agent: &Agent, name: &str) -> Vec<Value> {
    wait_until(Duration::from_secs(10), "the log settled", || {
        let log = agent.log_json(Some(name));
        let started = log.iter().any(|e| e["kind"] == "start");
        std::thread::sleep(Duration::from_millis(1000));
        (started && agent.log_json(Some(name)) == log).then_some(log)
    })
}

fn row_of(agent: &Agent, name: &str) -> Option<Value> {
    agent.rows().into_iter().find(|r| r["id"] == name)
}

#[test]
fn a_delegated_user_cannot_take_a_containers_identity() {
    let agent = Agent::fresh("identity", &[]);
    // One process that never forks: any line its log gains is not its own.
    let real = Container::run("identity", &[], &["sleep", "3600"]);
    let running = |r: &Value| {
        r["state"] == "kContainerRunning" && r["mem_used_bytes"].as_u64().is_some_and(|m| m > 0)
    };
    let row = wait_until(Duration::from_secs(20), "the container running", || {
        row_of(&agent, &real.name).filter(running)
    });
    let cgroup = row["cgroup"].as_str().expect("cgroup").to_owned();
    assert!(cgroup.ends_with(&real.id), "{row}");
    // Its start line committed, and no churn summary still to come.
    let log_before = settled_log(&agent, &real.name);
    let restarts = row_of(&agent, &real.name).expect("the row")["restart"].clone();
    let delegated = Delegated::new();
    let shapes = look_alikes(&real.id);
    // 20 rounds of mkdir and rmdir of every shape in every hierarchy.
    let make = mkdir_each(&shapes);
    let remove = "rmdir \"$d/docker-ID.scope/init.scope\" \"$d/docker-ID.scope\" \
                  \"$d/docker/ID\" \"$d/docker\" \"$d/cri-containerd-ID.scope\""
        .replace("ID", &real.id);
    let _ = delegated.as_user(&format!(
        "for i in $(seq 20); do for d; do {make}; done; sleep 0.05; \
         for d; do {remove}; done; done"
    ));
    // Then they stay, so they are seen listed.
    let _ = delegated.as_user(&format!("for d; do {make}; done"));
    // A sampling tick or two later, the container is as it was.
    std::thread::sleep(Duration::from_millis(1500));
    let row = row_of(&agent, &real.name).expect("the container's row");
    assert!(running(&row), "{row}");
    assert_eq!(row["cgroup"], cgroup.as_str(), "{row}");
    assert_eq!(row["runtime_id"], real.id.as_str(), "{row}");
    assert_eq!(row["restart"], restarts, "{row}\n{log_before:?}");
    let log_after = agent.log_json(Some(&real.name));
    assert_eq!(
        log_after, log_before,
        "the container's log gained lines from look-alikes"
    );
    let own_paths: Vec<String> = shapes[..3]
        .iter()
        .map(|s| format!("{}/{s}", delegated.rel))
        .collect();
    let rows = wait_until(Duration::from_secs(10), "the look-alikes listed", || {
        let rows = agent.rows();
        own_paths
            .iter()
            .all(|p| rows.iter().any(|r| r["cgroup"] == p.as_str()))
            .then_some(rows)
    });
    for p in &own_paths {
        let r = rows.iter().find(|r| r["cgroup"] == p.as_str()).unwrap();
        // Under its own path, as a plain cgroup: never the container.
        assert_eq!(r["id"], p.as_str(), "{r}");
        assert_eq!(r["runtime_id"], p.as_str(), "{r}");
    }
    let named: Vec<&Value> = rows.iter().filter(|r| r["id"] == real.name).collect();
    assert_eq!(named.len(), 1, "{named:?}");

    // Its id prefix still names the container alone.
    let log = agent.ok(&["log", &real.id[..12]]);
    assert!(log.contains(&real.name), "{log}");
}

/// The start-up scan judges the same way, and a container restarted while
/// the agent was down (same path, a new cgroup id) still continues its row.
#[test]
fn the_start_up_scan_keeps_identity_and_a_restart_while_down() {
    let mut agent = Agent::fresh("identity-scan", &[]);
    let real = Container::run("identity-scan", &[], &["sleep", "3600"]);
    let row = wait_until(Duration::from_secs(20), "the container running", || {
        row_of(&agent, &real.name).filter(|r| r["state"] == "kContainerRunning")
    });
    let cgroup = row["cgroup"].as_str().expect("cgroup").to_owned();
    let log_before = settled_log(&agent, &real.name);
    agent.stop();
    crate::agentkit::docker(&["restart", "-t", "0", &real.name]);
    let delegated = Delegated::new();
    let shapes = look_alikes(&real.id);
    let make = mkdir_each(&shapes);
    let _ = delegated.as_user(&format!("for d; do {make}; done"));
    agent.start_again();

    // Named once Docker has answered the restarted agent.
    let row = wait_until(Duration::from_secs(10), "the row named again", || {
        row_of(&agent, &real.name)
    });
    assert_eq!(row["state"], "kContainerRunning", "{row}");
    assert_eq!(row["cgroup"], cgroup.as_str(), "{row}");
    assert_eq!(row["restart"], 1, "{row}");
    let log = agent.log_json(Some(&real.name));
    assert_eq!(log[..log_before.len()], log_before[..]);
    let new: Vec<&str> = log[log_before.len()..]
        .iter()
        .map(|e| e["msg"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        new,
        [
            format!("create cgroup {cgroup}").as_str(),
            "start user process ok (restarted while the agent was down)"
        ],
        "{log:?}"
    );
    let rows = agent.rows();
    for s in &shapes[..3] {
        let p = format!("{}/{s}", delegated.rel);
        let r = rows.iter().find(|r| r["cgroup"] == p.as_str());
        let r = r.unwrap_or_else(|| panic!("{p} not listed: {rows:?}"));
        assert_eq!((&r["id"], &r["runtime_id"]), (&json!(p), &json!(p)), "{r}");
    }
}

/// The agent's journal file, in bytes.
fn journal_bytes(agent: &Agent) -> u64 {
    std::fs::metadata(agent.state_dir.join("journal.redb")).map_or(0, |m| m.len())
}

/// 10 s of mkdir and rmdir of distinct names in a delegated subtree (in
/// every hierarchy): the cgroups that never ran a process and were gone
/// within a sample leave no row, no metric series and one summary line per
/// sample; the rest stay within the parent's line budget; a real container
/// beside them keeps its row, statistics and log.
#[test]
fn a_mkdir_rmdir_loop_costs_bounded_lines_and_series() {
    let agent = Agent::fresh("cgroup-churn", &["--metrics-addr", "127.0.0.1:0"]);
    let real = Container::run("cgroup-churn", &[], &["sleep", "3600"]);
    let running = |r: &Value| {
        r["state"] == "kContainerRunning" && r["mem_used_bytes"].as_u64().is_some_and(|m| m > 0)
    };
    let row = wait_until(Duration::from_secs(20), "the container running", || {
        row_of(&agent, &real.name).filter(running)
    });
    let log_before = settled_log(&agent, &real.name);
    let bytes_before = journal_bytes(&agent);
    let delegated = Delegated::new();
    let rounds: u64 = delegated
        .as_user(
            "end=$(($(date +%s) + 10)); i=0; \
             while [ \"$(date +%s)\" -lt \"$end\" ]; do i=$((i + 1)); \
             for d; do mkdir \"$d/loop-$i.scope\"; done; \
             for d; do rmdir \"$d/loop-$i.scope\"; done; done; echo \"$i\"",
        )
        .trim()
        .parse()
        .expect("the loop's round count");
    assert!(rounds >= 100, "only {rounds} rounds of mkdir and rmdir");
    // A few samples later, everything is summed up and committed.
    std::thread::sleep(Duration::from_millis(2000));
    let bytes_grown = journal_bytes(&agent).saturating_sub(bytes_before);

    let under = |v: &Value| v.as_str().is_some_and(|k| k.starts_with(&delegated.rel));
    let lines: Vec<Value> = agent
        .log_json(None)
        .into_iter()
        .filter(|e| under(&e["key"]))
        .collect();
    let vanished: u64 = lines
        .iter()
        .filter_map(|e| e["msg"].as_str())
        .filter(|m| m.contains(" created and removed under "))
        .filter_map(|m| m.split(' ').next()?.replace(',', "").parse::<u64>().ok())
        .sum();
    let rows: Vec<Value> = agent
        .rows()
        .into_iter()
        .filter(|r| under(&r["cgroup"]))
        .collect();
    let exposition = curl(&metrics_url(&agent), &[]).body;
    let series = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&delegated.rel))
        .count();
    let real_series = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&format!("\"{}\"", real.name)))
        .count();
    let line_bytes: usize = lines.iter().map(|e| e.to_string().len()).sum();
    eprintln!(
        "{rounds} rounds: {} lines ({line_bytes} bytes as JSON; {vanished} cgroups summed \
         as vanished), {} rows, {series} metric series (a container has {real_series}), \
         journal file grew {bytes_grown} bytes",
        lines.len(),
        rows.len()
    );
    // Every round is a vanished cgroup or a row (one caught by a sample).
    assert_eq!(vanished + rows.len() as u64, rounds, "{lines:?}\n{rows:?}");
    // 12 s at 500 ms: about 24 samples, each at most one summary and a
    // cgroup or two caught alive (its create, destroy and exit lines).
    assert!(lines.len() <= 150, "{} lines: {lines:?}", lines.len());
    assert!(rows.len() <= 50, "{} rows", rows.len());
    assert!(
        series <= rows.len() * real_series.max(1),
        "{series} series for {} rows",
        rows.len()
    );
    assert!(
        bytes_grown <= 1 << 20,
        "the journal grew {bytes_grown} bytes"
    );

    let after = row_of(&agent, &real.name).expect("the container's row");
    assert!(running(&after), "{after}");
    assert_eq!(after["cgroup"], row["cgroup"], "{after}");
    assert_eq!(after["restart"], row["restart"], "{after}");
    assert_eq!(agent.log_json(Some(&real.name)), log_before);
}
