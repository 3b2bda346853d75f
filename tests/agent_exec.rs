//! `dsh exec`, `dsh ssh` and `dsh which` against real Docker containers:
//! the command sees the container's hostname, processes, cgroups and files
//! (or the host's files with --host-tools), and exit codes pass through.
use std::{
    path::PathBuf,
    process::{Command, Output},
    time::Duration,
};

use serde_json::Value;

use crate::agentkit::{Agent, Container, Tmux, docker, dsh_bin, wait_until};

/// The container's row once the agent knows its main process.
fn running_row(agent: &Agent, name: &str) -> Value {
    wait_until(Duration::from_secs(20), "the container's main pid", || {
        agent
            .row(name)
            .filter(|r| r["state"] == "kContainerRunning" && r["main_pid"].is_u64())
    })
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn exec_runs_in_the_containers_namespaces() {
    let agent = Agent::fresh("exec", &[]);
    let c = Container::run("exec", &["--hostname", "dsh-exec-box"], &["sleep", "1000"]);
    running_row(&agent, &c.name);
    let exec = |cmd: &[&str]| {
        let mut args = vec!["exec", c.name.as_str(), "--"];
        args.extend(cmd);
        agent.dsh(&args)
    };
    let ok = |cmd: &[&str]| {
        let out = exec(cmd);
        assert!(out.status.success(), "exec {cmd:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // uts: the container's hostname, as `docker exec` sees it.
    assert_eq!(ok(&["hostname"]).trim(), "dsh-exec-box");
    assert_eq!(docker(&["exec", &c.name, "hostname"]), "dsh-exec-box");
    // pid + mount: the container's /proc, whose pid 1 is its main command,
    // and only its handful of processes.
    assert_eq!(ok(&["cat", "/proc/1/cmdline"]), "sleep\u{0}1000\u{0}");
    let pids: Vec<u32> = ok(&["ls", "/proc"])
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(pids.contains(&1) && pids.len() < 10, "{pids:?}");
    // cgroups: joined in every hierarchy.
    let cgroups = ok(&["cat", "/proc/self/cgroup"]);
    assert!(
        cgroups.lines().all(|l| l.contains(&c.id)),
        "every hierarchy should be the container's: {cgroups}"
    );
    // Environment: a sane default, nothing leaked from the caller but TERM.
    let out = Command::new(dsh_bin())
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .args(["exec", &c.name, "--", "env"])
        .env("DSH_IT_LEAK", "leaked")
        .env("TERM", "xterm-it")
        .output()
        .expect("running dsh");
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(env.contains("TERM=xterm-it"), "{env}");
    assert!(env.contains("HOME=/root"), "{env}");
    assert!(
        env.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{env}"
    );
    assert!(!env.contains("DSH_IT_LEAK"), "{env}");

    // Exit codes pass through; a signal is 128 + its number.
    assert_eq!(code(&exec(&["sh", "-c", "exit 7"])), Some(7));
    assert_eq!(code(&exec(&["sh", "-c", "kill -9 $$"])), Some(137));
    let missing = exec(&["no-such-command"]);
    assert_eq!(code(&missing), Some(127));
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );

    // Unknown and stopped containers are clear errors.
    let unknown = agent.dsh(&["exec", "no-such-container", "--", "true"]);
    assert_eq!(code(&unknown), Some(1));
    assert!(
        stderr(&unknown).contains("no-such-container"),
        "{}",
        stderr(&unknown)
    );
    docker(&["kill", &c.name]);
    wait_until(Duration::from_secs(20), "the container to stop", || {
        agent
            .row(&c.name)
            .filter(|r| r["state"] != "kContainerRunning")
    });
    let stopped = exec(&["true"]);
    assert_eq!(code(&stopped), Some(1));
    assert!(
        stderr(&stopped).contains("is not running"),
        "{}",
        stderr(&stopped)
    );
}

#[test]
fn ssh_is_an_interactive_shell_in_the_container() {
    let agent = Agent::fresh("ssh", &[]);
    let c = Container::run("ssh", &["--hostname", "dsh-ssh-box"], &["sleep", "1000"]);
    running_row(&agent, &c.name);
    let tmux = Tmux::new("ssh");
    let status_file = PathBuf::from(format!("/tmp/dsh-it-ssh-{}.status", std::process::id()));
    let _ = std::fs::remove_file(&status_file);
    let line = format!(
        "{} --state-dir {} ssh {}; echo $? > {}",
        dsh_bin(),
        agent.state_dir.display(),
        c.name,
        status_file.display()
    );
    tmux.start(&line);

    tmux.cmd(&[
        "send-keys",
        "-t",
        "it",
        "hostname > /tmp/x; echo done-$((40+2))",
        "Enter",
    ]);
    wait_until(Duration::from_secs(15), "done-42 on the terminal", || {
        tmux.pane().contains("done-42").then_some(())
    });
    // It ran in the container's filesystem, with its hostname.
    assert_eq!(docker(&["exec", &c.name, "cat", "/tmp/x"]), "dsh-ssh-box");

    tmux.cmd(&["send-keys", "-t", "it", "exit 5", "Enter"]);
    wait_until(Duration::from_secs(10), "the tmux session to end", || {
        (!tmux.alive()).then_some(())
    });
    let status = std::fs::read_to_string(&status_file).expect("the exit status file");
    let _ = std::fs::remove_file(&status_file);
    assert_eq!(status.trim(), "5", "the shell's exit code passes through");
}

/// An image holding one file, a static busybox named `sleep` (busybox runs
/// the applet its argv[0] names): no shell, no tools.
fn no_shell_image() -> &'static str {
    const IMAGE: &str = "dsh-test/noshell:latest";
    let have = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        let dir = std::env::temp_dir().join(format!("dsh-it-noshell-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy("/bin/busybox", dir.join("sleep")).expect("copying /bin/busybox");
        let tar = format!(
            "tar -C {} -c . | docker import - {IMAGE} >/dev/null",
            dir.display()
        );
        let ok = Command::new("sh").args(["-c", &tar]).status();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(ok.is_ok_and(|s| s.success()), "importing {IMAGE}");
    }
    IMAGE
}

#[test]
fn host_tools_in_an_image_without_a_shell() {
    let agent = Agent::fresh("hosttools", &[]);
    let image = no_shell_image();
    let c = Container::run_image(
        "hosttools",
        image,
        &["--hostname", "dsh-bare-box"],
        &["/sleep", "1000"],
    );
    running_row(&agent, &c.name);

    // Without --host-tools there is nothing to run.
    let no_sh = agent.dsh(&["exec", &c.name, "--", "sh", "-c", "true"]);
    assert_eq!(code(&no_sh), Some(127));
    assert!(
        stderr(&no_sh).contains("not found in the container")
            && stderr(&no_sh).contains("--host-tools"),
        "{}",
        stderr(&no_sh)
    );
    let ssh = agent.dsh(&["ssh", &c.name]);
    assert_eq!(code(&ssh), Some(127), "{}", stderr(&ssh));

    // The host's binaries, the container's uts, pid and net namespaces.
    let host = |cmd: &str| agent.ok(&["exec", "--host-tools", &c.name, "--", "sh", "-c", cmd]);
    assert_eq!(host("hostname").trim(), "dsh-bare-box");
    // The host's files: the image has no /etc at all.
    assert!(host("cat /etc/os-release").contains("ID="));
    // A pid of its own namespace: the shell is not pid 1 (sleep is), and is small.
    let pid: u32 = host("echo $$").trim().parse().expect("a pid");
    assert!(pid > 1 && pid < 100, "{pid}");
    let net = host("readlink /proc/self/ns/net");
    let container_net = std::fs::read_link(format!(
        "/proc/{}/ns/net",
        docker(&["inspect", "-f", "{{.State.Pid}}", &c.name])
    ))
    .expect("the container's net ns");
    assert_eq!(net.trim(), container_net.to_string_lossy());
    assert_eq!(
        code(&agent.dsh(&["exec", "--host-tools", &c.name, "--", "sh", "-c", "exit 9"])),
        Some(9)
    );
}

#[test]
fn which_names_the_container_of_a_pid() {
    let agent = Agent::fresh("which", &[]);
    let c = Container::run("which", &[], &["sleep", "1000"]);
    let row = running_row(&agent, &c.name);
    let pid = row["main_pid"].as_u64().unwrap().to_string();

    let v: Value = serde_json::from_str(&agent.ok(&["which", "--json", &pid])).expect("JSON");
    // `/docker/<id>` with Docker's cgroupfs driver, `.../docker-<id>.scope` with systemd's.
    let cgroup = v["cgroup"].as_str().expect("a cgroup").to_owned();
    assert!(cgroup.contains(&c.id), "{v}");
    let line = agent.ok(&["which", &pid]);
    let want = format!("{pid} {} docker {} {cgroup}", c.name, &c.id[..12]);
    assert_eq!(line.trim(), want);
    assert_eq!(v["id"], c.name.as_str());
    assert_eq!(v["runtime_id"], c.id.as_str());
    assert_eq!(v["state"], "kContainerRunning");

    let me = std::process::id().to_string();
    let outside = agent.ok(&["which", &me]);
    assert!(
        outside.starts_with(&format!("{me} is not in a container (cgroup ")),
        "{outside}"
    );
    let gone = agent.dsh(&["which", "999999999"]);
    assert_eq!(code(&gone), Some(1));
    assert!(
        stderr(&gone).contains("no process 999999999"),
        "{}",
        stderr(&gone)
    );

    // Without the agent: runtime and id from the cgroup path, no name.
    let out = Command::new(dsh_bin())
        .args(["--state-dir", "/nonexistent-dsh-state", "which", &pid])
        .output()
        .expect("running dsh");
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        line.trim(),
        format!("{pid} - docker {} {cgroup}", &c.id[..12])
    );
    assert!(
        stderr(&out).contains("names need the agent"),
        "{}",
        stderr(&out)
    );
}
