//! The journal keeps what matters: a crash outlives a flood of process
//! churn, a full disk loses no critical line, a damaged file is moved aside,
//! and names mean what operators mean by them.
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use dsh_testkit::Tmpfs;
use serde_json::Value;

use crate::{
    agentkit::{Agent, Container, docker, wait_until},
    common::TestCgroup,
};

/// Cgroups whose main processes spawn processes as fast as they can. Each
/// one's churn is one chatty line per sample (`--interval 100ms`: ten a
/// second), so a flood of chatty lines takes a crowd of them.
struct Flood(Vec<(TestCgroup, std::process::Child)>);

impl Flood {
    fn new(tag: &str, n: usize) -> Flood {
        Flood(
            (0..n)
                .map(|i| {
                    let cg = TestCgroup::new(&format!("{tag}{i}"));
                    let child = cg
                        .command_of(
                            std::path::Path::new("/bin/sh"),
                            &["-c", "while :; do /bin/true; done"],
                        )
                        .stdin(Stdio::null())
                        .spawn()
                        .expect("a churning shell");
                    (cg, child)
                })
                .collect(),
        )
    }

    fn name(&self, i: usize) -> String {
        format!("/{}", self.0[i].0.name)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const FAST: [&str; 2] = ["--interval", "100ms"];

fn journal(agent: &Agent) -> Value {
    agent.status()["journal"].clone()
}

fn msgs(log: &[Value]) -> Vec<&str> {
    log.iter().filter_map(|e| e["msg"].as_str()).collect()
}

#[test]
fn a_crash_outlives_a_flood_of_process_churn() {
    let agent = Agent::fresh("flood", &["--retention-entries", "1000", FAST[0], FAST[1]]);
    let three = Container::run("three", &[], &["sh", "-c", "sleep 1; exit 3"]);
    let exit = wait_until(Duration::from_secs(20), "exit code 3", || {
        let log = agent.try_log_json(Some(&three.name)).ok()?;
        log.into_iter().find(|e| {
            e["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("exit code 3 (ran "))
        })
    });
    // The exit summary: run time, CPU (and the memory peak where kept).
    assert!(exit["run_time_s"].as_f64() >= Some(0.9), "{exit}");
    assert!(exit["cpu_s"].as_f64().is_some(), "{exit}");
    assert_eq!(exit["durable"], true);

    // 40 s of churn, or until it has pushed five budgets' worth through.
    let noisy = Flood::new("noisy", 30);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(40)
        && journal(&agent)["chatty_evicted"].as_u64() < Some(5000)
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let j = journal(&agent);
    assert!(j["chatty_evicted"].as_u64() > Some(1000), "{j}");
    assert!(j["chatty_entries"].as_u64() <= Some(1000), "{j}");
    let text = agent.ok(&["log", &three.name]);
    assert!(
        text.contains("with msg exit code 3 (ran "),
        "the crash is still there: {text}"
    );
    let churn = agent.log_json(Some(&noisy.name(0)));
    assert!(
        churn.iter().any(|e| e["kind"] == "churn"),
        "churn is kept too"
    );
    assert!(churn.iter().any(|e| e["kind"] == "start"), "and its start");
}

#[test]
fn a_full_disk_loses_no_critical_line() {
    let fs = Tmpfs::new("full", "4m");
    let mut agent = Agent::start(&fs.path().join("state"), &FAST);
    let pid = agent.pid();
    let noisy = Flood::new("full-noisy", 5);
    wait_until(Duration::from_secs(20), "churn in the journal", || {
        (journal(&agent)["chatty_entries"].as_u64() > Some(100)).then_some(())
    });
    fs.fill();
    let failing = wait_until(Duration::from_secs(20), "the journal failing", || {
        let j = journal(&agent);
        (j["writable"] == false).then_some(j)
    });
    assert!(failing["failing_since"].is_string(), "{failing}");
    assert!(
        failing["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{failing}"
    );
    // A crash while the disk is full is shown all the same.
    let seven = Container::run("seven", &[], &["sh", "-c", "sleep 0.5; exit 7"]);
    let line = wait_until(Duration::from_secs(20), "exit code 7", || {
        let log = agent.try_log_json(Some(&seven.name)).ok()?;
        log.into_iter().find(|e| {
            e["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("exit code 7"))
        })
    });
    let text = agent.ok(&["log", &seven.name]);
    assert!(text.contains("with msg exit code 7"), "{text}");
    let j = journal(&agent);
    assert!(
        j["dropped_chatty"].as_u64() > Some(0),
        "churn that could not be written is counted: {j}"
    );
    eprintln!("while full: exit line durable={}, {j}", line["durable"]);

    // Room again: lines become durable without a restart.
    fs.resize("64m");
    let recovered = wait_until(
        Duration::from_secs(20),
        "the journal writable again",
        || {
            let j = journal(&agent);
            (j["writable"] == true && j["pending"] == 0 && j["recovered_at"].is_string())
                .then_some(j)
        },
    );
    assert!(recovered["failing_since"].is_null(), "{recovered}");
    assert_eq!(agent.pid(), pid);
    let zero = Container::run("zero", &[], &["sh", "-c", "exit 0"]);
    wait_until(Duration::from_secs(20), "a new durable line", || {
        let log = agent.try_log_json(Some(&zero.name)).ok()?;
        log.iter()
            .any(|e| e["kind"] == "exit" && e["durable"] == true)
            .then_some(())
    });
    let log = agent.log_json(Some(&seven.name));
    let exit = log
        .iter()
        .find(|e| e["exit_code"] == 7)
        .expect("exit 7 kept");
    assert_eq!(exit["durable"], true, "{exit}");
    let status = agent.ok(&["status"]);
    assert!(status.contains("journal: writable again since"), "{status}");
    drop(noisy);
    agent.stop();
}

/// A process in a plain cgroup: a start (or restart) line and an exit line.
fn run_in(cg: &TestCgroup) {
    let status = cg.run(&["exit", "4"]);
    assert_eq!(status.code(), Some(4));
}

#[test]
fn a_damaged_journal_is_moved_aside_and_a_healthy_one_kept() {
    let mut agent = Agent::fresh("damaged", &[]);
    let cg = TestCgroup::new("damaged");
    let path = format!("/{}", cg.name);
    run_in(&cg);
    wait_until(Duration::from_secs(10), "lines", || {
        agent
            .try_log_json(Some(&path))
            .ok()
            .filter(|l| !l.is_empty())
    });
    let file = agent.state_dir.join("journal.redb");
    type Damage = fn(&std::path::Path);
    let damages: [(&str, Damage); 2] = [
        ("truncated", |p| {
            let len = std::fs::metadata(p).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(len / 3).unwrap();
        }),
        ("overwritten", |p| {
            let len = std::fs::metadata(p).unwrap().len() as usize;
            let junk: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
            std::fs::write(p, junk).unwrap();
        }),
    ];
    for (how, damage) in damages {
        agent.stop();
        damage(&file);
        agent.start_again();
        let j = journal(&agent);
        let aside = j["moved_aside"]["path"].as_str().unwrap_or_default();
        assert!(aside.contains("journal.redb.corrupt-"), "{how}: {j}");
        assert!(std::path::Path::new(aside).exists(), "{how}: {aside}");
        assert!(agent.ok(&["status"]).contains("moved aside to"), "{how}");
        std::fs::remove_file(aside).unwrap();
        agent.ok(&["ps", "-a"]);
        run_in(&cg);
        let log = wait_until(Duration::from_secs(10), "new lines", || {
            agent
                .try_log_json(Some(&path))
                .ok()
                .filter(|l| !l.is_empty())
        });
        // A second start, on a healthy journal, keeps every line.
        agent.restart();
        assert!(journal(&agent)["moved_aside"].is_null(), "{how}");
        let again = agent.log_json(Some(&path));
        assert_eq!(&again[..log.len()], &log[..], "{how}: lines kept");
    }
}

/// `docker rm` then `docker run --name` with the same name.
#[test]
fn a_reused_name_means_the_new_container() {
    let mut agent = Agent::fresh("reused", &[]);
    let first = Container::run("reused", &[], &["sh", "-c", "exit 5"]);
    let (name, old_id) = (first.name.clone(), first.id.clone());
    wait_until(Duration::from_secs(20), "the first one's exit", || {
        let log = agent.try_log_json(Some(&name)).ok()?;
        log.iter().any(|e| e["exit_code"] == 5).then_some(())
    });
    drop(first); // docker rm -f
    let second = Container::run("reused", &[], &["sleep", "60"]);
    assert_eq!(second.name, name);
    // Without --all: the current container's lines only.
    let log = wait_until(Duration::from_secs(20), "the new one's start", || {
        let out = agent.dsh(&["log", "--json", &name]);
        assert!(out.status.success(), "dsh log {name} exits 0");
        let log: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect();
        log.iter()
            .any(|e| e["kind"] == "start" && e["key"] == second.id.as_str())
            .then_some(log)
    });
    assert!(
        log.iter().all(|e| e["key"] == second.id.as_str()),
        "only the current container: {log:?}"
    );
    // The earlier one: by id prefix, and listed by --all.
    let old = agent.log_json(Some(&old_id[..12]));
    assert!(
        msgs(&old).iter().any(|m| m.starts_with("exit code 5")),
        "{old:?}"
    );
    let all = agent.ok(&["log", "--all", &name]);
    let earlier = format!(
        "--- {name}: container {} (earlier incarnation)",
        &old_id[..12]
    );
    let current = format!("--- {name}: container {} (current)", &second.id[..12]);
    let (at_earlier, at_current) = (all.find(&earlier), all.find(&current));
    assert!(
        at_earlier.is_some() && at_earlier < at_current,
        "both incarnations, oldest first: {all}"
    );
    assert!(all.contains("with msg exit code 5"), "{all}");

    // Removed containers keep their name across agent restarts.
    agent.restart();
    let row = wait_until(
        Duration::from_secs(10),
        "the removed container's row",
        || {
            agent
                .rows()
                .into_iter()
                .find(|r| r["runtime_id"] == old_id.as_str())
        },
    );
    assert_eq!(row["id"], name.as_str(), "{row}");
    let table = agent.ok(&["ps", "-a"]);
    assert!(
        !table.contains(&format!("/docker/{old_id}")),
        "no long ids in the table: {table}"
    );
    let out = agent.dsh(&["log", &name]);
    assert!(out.status.success());
    docker(&["rm", "-f", &second.name]);
}
