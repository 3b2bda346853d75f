//! `dsh exec`, `dsh ssh` and `dsh which` against real Docker containers:
//! the command sees the container's hostname, processes, cgroups and files
//! (or the host's files with --host-tools), and exit codes pass through.
use std::{
    path::PathBuf,
    process::{Command, Output},
    time::Duration,
};

use serde_json::Value;

use crate::agentkit::{Agent, Container, Tmux, docker, dsh_bin, wait_until, workload_mounts};

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

/// The lines of a /proc/PID/status that say what a process may do.
const POWERS: &[&str] = &[
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
];

fn powers(status: &str) -> Vec<(String, String)> {
    let lines: Vec<(String, String)> = status
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            POWERS.contains(&k).then(|| {
                (
                    k.to_owned(),
                    v.split_whitespace().collect::<Vec<_>>().join(" "),
                )
            })
        })
        .collect();
    assert_eq!(lines.len(), POWERS.len(), "{status}");
    lines
}

fn field(powers: &[(String, String)], key: &str) -> String {
    powers
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[test]
fn exec_has_only_the_containers_powers() {
    let agent = Agent::fresh("powers", &[]);
    let plain = Container::run("powers-root", &[], &["sleep", "1000"]);
    let user = Container::run(
        "powers-user",
        &[
            "--user",
            "1000:1000",
            "--cap-drop",
            "ALL",
            "--group-add",
            "44",
            "--security-opt",
            "no-new-privileges",
        ],
        &["sleep", "1000"],
    );
    let host = powers(&std::fs::read_to_string("/proc/self/status").expect("own status"));
    for c in [&plain, &user] {
        let row = running_row(&agent, &c.name);
        let main_pid = row["main_pid"].as_u64().expect("main pid");
        let main =
            powers(&std::fs::read_to_string(format!("/proc/{main_pid}/status")).expect("status"));
        let entered = powers(&agent.ok(&["exec", &c.name, "--", "cat", "/proc/self/status"]));
        assert_eq!(
            entered, main,
            "{}: exec has the main process's powers",
            c.name
        );
        // What the runtime's own exec gives, too.
        let docker_exec = powers(&docker(&["exec", &c.name, "cat", "/proc/self/status"]));
        assert_eq!(field(&entered, "Uid"), field(&docker_exec, "Uid"));
        assert_eq!(field(&entered, "CapEff"), field(&docker_exec, "CapEff"));
        assert_ne!(field(&entered, "CapEff"), field(&host, "CapEff"));
        // --host-tools: the host's binaries, still the container's powers.
        let tools = powers(&agent.ok(&[
            "exec",
            "--host-tools",
            &c.name,
            "--",
            "cat",
            "/proc/self/status",
        ]));
        assert_eq!(tools, main, "{}: --host-tools keeps the powers", c.name);
    }
    let user_powers = powers(&agent.ok(&["exec", &user.name, "--", "cat", "/proc/self/status"]));
    assert_eq!(field(&user_powers, "Uid"), "1000 1000 1000 1000");
    assert_eq!(field(&user_powers, "Gid"), "1000 1000 1000 1000");
    assert!(field(&user_powers, "Groups").split(' ').any(|g| g == "44"));
    assert_eq!(field(&user_powers, "CapEff"), "0000000000000000");
    assert_eq!(field(&user_powers, "NoNewPrivs"), "1");
    let env = agent.ok(&["exec", &user.name, "--", "env"]);
    assert!(env.contains("HOME=/\n"), "{env}");

    // No descriptor of dsh's (nor one dsh was handed) reaches the command:
    // 0, 1, 2 and ls's own directory.
    let line = format!(
        "exec {} --state-dir {} exec {} -- ls /proc/self/fd 7</etc/hostname 9>/dev/null",
        dsh_bin(),
        agent.state_dir.display(),
        user.name
    );
    let out = Command::new("sh").args(["-c", &line]).output().expect("sh");
    assert!(out.status.success(), "{}", stderr(&out));
    let fds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "open descriptors");

    // --privileged: host root, said on stderr.
    let out = agent.dsh(&[
        "exec",
        "--privileged",
        &user.name,
        "--",
        "cat",
        "/proc/self/status",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = powers(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(field(&root, "Uid"), "0 0 0 0");
    assert_eq!(field(&root, "CapEff"), field(&host, "CapEff"));
    assert!(
        stderr(&out).contains("--privileged: running as host root with every capability"),
        "{}",
        stderr(&out)
    );
    for command in ["exec", "ssh"] {
        let help = agent.ok(&[command, "--help"]);
        assert!(
            help.contains("--privileged") && help.contains("host root"),
            "{help}"
        );
    }
}

/// Types `line` and Enter into tmux session `it`.
fn type_line(tmux: &Tmux, line: &str) {
    tmux.cmd(&["send-keys", "-t", "it", line, "Enter"]);
}

/// Waits up to 15 s for `what` on session `it`'s pane.
fn wait_for_text(tmux: &Tmux, what: &str) {
    wait_until(Duration::from_secs(15), what, || {
        tmux.pane().contains(what).then_some(())
    })
}

#[test]
fn ssh_has_a_terminal_of_its_own() {
    let agent = Agent::fresh("ssh-pty", &[]);
    let mut opts: Vec<String> = workload_mounts();
    opts.extend(["--hostname".into(), "dsh-pty-box".into()]);
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let c = Container::run("ssh-pty", &opts, &["sleep", "1000"]);
    running_row(&agent, &c.name);
    let marker = PathBuf::from(format!("/tmp/dsh-it-tiocsti-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let tmux = Tmux::new("ssh-pty");
    // An interactive shell on the host: whatever reaches its terminal's
    // input after `dsh ssh` ends, it runs.
    tmux.start("sh");
    let keys = |line: &str| type_line(&tmux, line);
    let wait_for = |what: &str| wait_for_text(&tmux, what);
    keys(&format!(
        "{} --state-dir {} ssh {}",
        dsh_bin(),
        agent.state_dir.display(),
        c.name
    ));
    keys("echo $((6*7))-$(hostname)");
    wait_for("42-dsh-pty-box");
    // A pty of its own, sized like the operator's pane, and resized with it.
    let pane_size = || {
        let out = tmux.cmd(&[
            "display",
            "-p",
            "-t",
            "it",
            "size=#{pane_height}x#{pane_width}",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    keys("echo size=$(stty size | tr ' ' x)");
    wait_for(&pane_size());
    tmux.cmd(&["resize-window", "-t", "it", "-x", "120", "-y", "30"]);
    let resized = pane_size();
    assert!(resized.ends_with("x120"), "{resized}");
    keys("echo size=$(stty size | tr ' ' x)");
    wait_for(&resized);
    // TIOCSTI lands in the shell's own terminal...
    keys("/dsh-workload tiocsti 'echo pushed-$((5+5))'");
    wait_for("pushed-10");
    // ...and what is pushed just before the shell exits is lost with it,
    // never read by the operator's shell.
    keys(&format!(
        "/dsh-workload tiocsti 'touch {}'; exit 3",
        marker.display()
    ));
    // Keys typed while dsh still runs are the container's: wait for the
    // host's shell to be in the foreground again.
    wait_until(Duration::from_secs(15), "dsh ssh to exit", || {
        let out = tmux.cmd(&["display", "-p", "-t", "it", "#{pane_current_command}"]);
        (String::from_utf8_lossy(&out.stdout).trim() != "dsh").then_some(())
    });
    keys("echo back-$((1+1))");
    wait_for("back-2");
    let pane = tmux.pane();
    assert!(pane.contains("tiocsti: pushed"), "{pane}");
    assert!(
        !marker.exists(),
        "a TIOCSTI from the container reached the operator's terminal: {pane}"
    );
    // The operator's terminal is back in cooked mode: the shell echoes and
    // runs lines as before.
    keys("echo cooked-$((2+2))");
    wait_for("cooked-4");
}

#[test]
fn exec_never_hands_over_the_operators_terminal() {
    let agent = Agent::fresh("exec-tty", &[]);
    let c = Container::run("exec-tty", &[], &["sleep", "1000"]);
    running_row(&agent, &c.name);
    let tmux = Tmux::new("exec-tty");
    tmux.start("sh");
    let keys = |line: &str| type_line(&tmux, line);
    let wait_for = |what: &str| wait_for_text(&tmux, what);
    let dsh = format!("{} --state-dir {}", dsh_bin(), agent.state_dir.display());
    // stdin not a terminal, stdout and stderr the operator's: they reach the
    // command as pipes, and it has no controlling terminal to open.
    keys(&format!(
        "{dsh} exec {} -- sh -c 'ls -l /proc/self/fd/1 /proc/self/fd/2; \
         echo x >/dev/tty || echo no-tty-$((1+1))' </dev/null",
        c.name
    ));
    wait_for("no-tty-2");
    let pane = tmux.pane();
    assert!(
        pane.contains("/proc/self/fd/1 -> pipe:") && pane.contains("/proc/self/fd/2 -> pipe:"),
        "{pane}"
    );
    assert!(!pane.contains("-> /dev/pts"), "{pane}");
    // The command runs in a session of its own; Ctrl-C still reaches it.
    keys(&format!(
        "{dsh} exec {} -- sleep 100 </dev/null; echo rc=$?",
        c.name
    ));
    wait_until(Duration::from_secs(15), "sleep to run", || {
        docker(&["exec", &c.name, "ps"])
            .contains("sleep 100")
            .then_some(())
    });
    tmux.cmd(&["send-keys", "-t", "it", "C-c"]);
    wait_for("rc=130");
}
