//! Kubernetes containers on a real containerd (the tests' own instance),
//! made with the kubelet's labels and cgroup parents: named
//! `namespace/pod/container` through containerd's API, a kubelet-style
//! restart (new id, same labels) continuing the row, an OOM kill, and a
//! pod sandbox that is not listed.
use std::time::Duration;

use crate::agentkit::{
    Agent, CONTAINERD_SOCKET, KubeContainer, PodCgroups, hex_id, log_msgs_with, runtimes_up,
    wait_until,
};

/// A pod uid (8-4-4-4-12 hex) unique to this test run and `n`.
fn pod_uid(n: u32) -> String {
    format!("{:08x}-1a3e-41ec-a00b-{:012x}", std::process::id(), n)
}

const SLEEPER: &[&str] = &[
    "sh",
    "-c",
    "trap 'exit 0' TERM; while :; do sleep 0.2; done",
];

#[test]
fn containerd_kubernetes_names_restarts_oom_and_sandboxes() {
    runtimes_up();
    let agent = Agent::fresh("containerd", &["--containerd-socket", CONTAINERD_SOCKET]);
    let ns = "dsh-it";
    let pod = format!("web-{}", std::process::id());
    let uid = pod_uid(1);
    let cgroupfs = |id: &str| format!("/kubepods/besteffort/pod{uid}/{id}");
    let uid2 = pod_uid(2);
    let slice = format!(
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice",
        uid2.replace('-', "_")
    );
    // Declared before the containers: dropped (removed) after them.
    let _pods = PodCgroups(vec![
        format!("/kubepods/besteffort/pod{uid}"),
        slice.clone(),
    ]);

    let sandbox = KubeContainer::run(
        hex_id(1),
        &cgroupfs(&hex_id(1)),
        (ns, &pod, &uid),
        None,
        &[],
        SLEEPER,
    );
    let app = KubeContainer::run(
        hex_id(2),
        &cgroupfs(&hex_id(2)),
        (ns, &pod, &uid),
        Some("app"),
        &[],
        SLEEPER,
    );
    // The systemd driver's shape (created literally: no systemd here).
    let pod2 = format!("db-{}", std::process::id());
    let _db = KubeContainer::run(
        hex_id(3),
        &format!("{slice}/cri-containerd-{}.scope", hex_id(3)),
        (ns, &pod2, &uid2),
        Some("db"),
        &[],
        SLEEPER,
    );
    let oom = KubeContainer::run(
        hex_id(4),
        &cgroupfs(&hex_id(4)),
        (ns, &pod, &uid),
        Some("hog"),
        &["--memory-limit", "33554432"],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );

    let app_name = format!("{ns}/{pod}/app");
    let row = wait_until(
        Duration::from_secs(20),
        "the app by its Kubernetes name",
        || {
            agent
                .row(&app_name)
                .filter(|r| r["state"] == "kContainerRunning")
        },
    );
    assert_eq!(row["runtime"], "kubernetes", "{row}");
    assert_eq!(row["pod_uid"], uid.as_str(), "{row}");
    let db_name = format!("{ns}/{pod2}/db");
    wait_until(Duration::from_secs(10), "the systemd-shaped one", || {
        agent.row(&db_name)
    });
    let rows = agent.rows();
    assert!(
        rows.iter().all(|r| r["runtime_id"] != sandbox.id.as_str()),
        "the pod sandbox must not be listed: {rows:?}"
    );
    assert!(
        agent.try_log_json(Some(&sandbox.id)).is_err(),
        "nor resolvable as a container"
    );

    // OOM-killed: UnHealthy, with an oom line.
    let hog = format!("{ns}/{pod}/hog");
    let row = wait_until(Duration::from_secs(20), "the OOM kill", || {
        agent.row(&hog).filter(|r| r["state"] == "kContainerError")
    });
    assert_eq!(row["health"], "UnHealthy", "{row}");
    assert_eq!(row["oom_kills"], 1, "{row}");
    let msgs = log_msgs_with(&agent, &hog, "oom");
    assert!(msgs.iter().any(|m| m.starts_with("oom")), "{msgs:?}");
    drop(oom);

    // The kubelet restarts `app`: the old container goes, a new id with the
    // same pod uid and container name comes. The same row, one restart.
    app.remove();
    let again = KubeContainer::run(
        hex_id(5),
        &cgroupfs(&hex_id(5)),
        (ns, &pod, &uid),
        Some("app"),
        &[],
        SLEEPER,
    );
    let row = wait_until(
        Duration::from_secs(20),
        "the restart on the same row",
        || {
            agent.row(&app_name).filter(|r| {
                r["runtime_id"] == again.id.as_str() && r["state"] == "kContainerRunning"
            })
        },
    );
    assert_eq!(row["restart"], 1, "{row}");
    let same_name = agent
        .rows()
        .into_iter()
        .filter(|r| r["id"] == app_name.as_str())
        .count();
    assert_eq!(same_name, 1, "one row for the container");
    // Its log goes on: both starts under the one name (the journal commits
    // every 200 ms, a little after the table changes).
    wait_until(Duration::from_secs(5), "both starts in the log", || {
        let msgs = log_msgs_with(&agent, &app_name, "start user process ok");
        let starts = msgs
            .iter()
            .filter(|m| *m == "start user process ok")
            .count();
        (starts == 2).then_some(())
    });
    let status = agent.status();
    let containerd = status["runtimes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "containerd"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(containerd["connected"], true, "{status}");
    // `dsh which` prints namespace, pod and container.
    let pid = row["main_pid"].as_u64().expect("main pid").to_string();
    let which = agent.ok(&["which", &pid]);
    assert!(which.contains(&app_name), "{which}");
}
