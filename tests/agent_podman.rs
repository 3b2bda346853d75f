//! podman through its Docker-compatible API service: names, exit codes, an
//! OOM kill, and the endpoint read from the container's own network
//! namespace (podman's API gives no address for its default network).
use std::time::Duration;

use crate::agentkit::{
    Agent, PODMAN_SOCKET, PodmanContainer, log_msgs_with, runtimes_up, wait_until,
};

#[test]
fn podman_names_exit_codes_oom_and_endpoint() {
    runtimes_up();
    let agent = Agent::fresh("podman", &["--podman-socket", PODMAN_SOCKET]);
    let web = PodmanContainer::run("pm-web", &[], &["httpd", "-f", "-p", "8080"]);
    let three = PodmanContainer::run("pm-three", &[], &["sh", "-c", "sleep 1; exit 3"]);
    let oom = PodmanContainer::run(
        "pm-oom",
        &["--memory", "32m", "--memory-swap", "32m"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    let row = wait_until(
        Duration::from_secs(20),
        "the named podman container",
        || {
            agent.row(&web.name).filter(|r| {
                r["endpoint"]
                    .as_str()
                    .is_some_and(|e| e.ends_with(":{8080}") && !e.starts_with('*'))
            })
        },
    );
    assert_eq!(row["runtime"], "podman", "{row}");
    assert_eq!(row["image"], "localhost/dsh-test/busybox:latest", "{row}");
    let msgs = log_msgs_with(&agent, &three.name, "exit code 3");
    // The main process's exit line carries its summary: `exit code 3 (ran ...)`.
    assert!(
        msgs.iter().any(|m| m.starts_with("exit code 3 (ran ")),
        "{msgs:?}"
    );
    // runc re-executes itself in the new cgroup before the user process:
    // that is no start of the container's own, and no restart after it.
    assert_eq!(
        msgs.iter()
            .filter(|m| *m == "start user process ok")
            .count(),
        1,
        "{msgs:?}"
    );
    assert_eq!(agent.row(&three.name).expect("its row")["restart"], 0);
    let msgs = log_msgs_with(&agent, &oom.name, "oom");
    assert!(msgs.iter().any(|m| m.starts_with("oom")), "{msgs:?}");
    let row = agent.row(&oom.name).expect("the OOM-killed row");
    assert_eq!(row["health"], "UnHealthy", "{row}");
    let status = agent.status();
    let podman = status["runtimes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "podman"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(podman["connected"], true, "{status}");
}
