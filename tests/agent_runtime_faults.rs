//! Runtime sockets that are absent, refusing, or hanging (a SIGSTOPped
//! containerd that accepts connections and never answers): the agent keeps
//! sampling, rows fall back to cgroup paths, `dsh status` says which
//! runtime is in which state, and names come back with the runtime.
use std::{os::unix::net::UnixListener, time::Duration};

use serde_json::Value;

use crate::agentkit::{
    Agent, CONTAINERD_SOCKET, KubeContainer, PodCgroups, hex_id, runtimes_up, wait_until,
};

fn runtime(status: &Value, name: &str) -> Value {
    status["runtimes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no runtime {name} in {status}"))
}

/// The tests' containerd (not Docker's), by its command line.
fn test_containerd_pid() -> i32 {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.starts_with("containerd ") && cmd.contains(CONTAINERD_SOCKET)).then_some(pid)
        })
        .expect("the tests' containerd runs")
}

/// SIGSTOP now, SIGCONT on drop (even when an assertion fails).
struct Stopped(i32);

impl Stopped {
    fn new(pid: i32) -> Self {
        // SAFETY: kill(2) on the tests' own containerd.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

#[test]
fn runtime_sockets_absent_refusing_and_hanging() {
    runtimes_up();
    let dir = std::env::temp_dir().join(format!("dsh-it-sockets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("socket dir");
    // A socket file nobody listens on any more: connect() is refused.
    let refusing = dir.join("crio.sock");
    drop(UnixListener::bind(&refusing).expect("bind"));
    let absent = dir.join("podman.sock");
    let agent = Agent::fresh(
        "rtfaults",
        &[
            "--containerd-socket",
            CONTAINERD_SOCKET,
            "--crio-socket",
            refusing.to_str().unwrap(),
            "--podman-socket",
            absent.to_str().unwrap(),
        ],
    );
    let uid = format!("{:08x}-1a3e-41ec-a00b-{:012x}", std::process::id(), 9);
    let pod = format!("faults-{}", std::process::id());
    let id = hex_id(9);
    let cgroup = format!("/kubepods/besteffort/pod{uid}/{id}");
    let _pod = PodCgroups(vec![format!("/kubepods/besteffort/pod{uid}")]);
    let _c = KubeContainer::run(
        id.clone(),
        &cgroup,
        ("dsh-it", &pod, &uid),
        Some("app"),
        &[],
        &["sleep", "600"],
    );
    let name = format!("dsh-it/{pod}/app");
    wait_until(Duration::from_secs(20), "the name from containerd", || {
        agent.row(&name)
    });
    let status = wait_until(
        Duration::from_secs(10),
        "the refused and absent runtimes",
        || {
            let s = agent.status();
            let crio = runtime(&s, "crio")["detail"].as_str()?.to_owned();
            (crio.contains("refused")
                && runtime(&s, "podman")["detail"]
                    .as_str()?
                    .contains("no socket"))
            .then_some(s)
        },
    );
    assert_eq!(runtime(&status, "crio")["connected"], false, "{status}");
    assert_eq!(runtime(&status, "podman")["connected"], false, "{status}");
    assert_eq!(
        runtime(&status, "containerd")["connected"],
        true,
        "{status}"
    );

    // containerd hangs: noticed by the next ping (5 s) and its timeout (3 s).
    let stopped = Stopped::new(test_containerd_pid());
    let status = wait_until(Duration::from_secs(20), "containerd seen as hung", || {
        let s = agent.status();
        (runtime(&s, "containerd")["connected"] == false).then_some(s)
    });
    let detail = runtime(&status, "containerd")["detail"].to_string();
    assert!(detail.contains("did not answer"), "{status}");
    let row = wait_until(Duration::from_secs(5), "the row by cgroup path", || {
        agent.row(&cgroup)
    });
    assert_eq!(row["state"], "kContainerRunning", "{row}");
    // Sampling goes on meanwhile.
    let up = status["uptime_s"].as_u64();
    std::thread::sleep(Duration::from_secs(2));
    let later = agent.status();
    assert!(later["uptime_s"].as_u64() > up, "{later}");
    assert!(later["sample_duration_ms"].as_f64().is_some());

    drop(stopped);
    wait_until(Duration::from_secs(20), "the name back", || {
        agent.row(&name)
    });
    let _ = std::fs::remove_dir_all(&dir);
}
