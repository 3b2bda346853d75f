//! `dsh exec`: one command inside a running container's namespaces.
use std::{ffi::OsString, io::Write as _, path::Path, process::ExitCode};

use dsh::{
    api::{Reply, Request, client},
    cgroup::identity::identify,
    enter::{self, EnterError, Mode, Powers, Program, Target},
    model::state::State,
    untrusted,
};

/// Shared by `exec` and `ssh`.
#[derive(clap::Args)]
pub struct EnterOpts {
    /// Container: name, id prefix (4+ hex chars) or cgroup path.
    pub container: String,
    /// Run the host's binaries in the container's network, pid, uts and ipc
    /// namespaces (for images with no shell or tools). The mount namespace
    /// stays the host's: files, /proc and /sys are the host's (so `ps` lists
    /// host processes), while the network, hostname and the pids that
    /// signals and sockets reach are the container's.
    /// The command keeps the container's own powers here too.
    #[arg(long)]
    pub host_tools: bool,
    /// Run as host root with every capability inside the container. Without
    /// it the command has the container's own powers: its main process's
    /// uid, gids, capability sets, no_new_privs and AppArmor profile (not
    /// its seccomp filter). With it, whatever the image put in its binaries
    /// runs with power over the host.
    #[arg(long)]
    pub privileged: bool,
}

#[derive(clap::Args)]
pub struct ExecArgs {
    #[command(flatten)]
    opts: EnterOpts,
    /// The command and its arguments, after `--`; a bare name is looked up in
    /// a default PATH (inside the container, or on the host with --host-tools).
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

pub fn run(args: ExecArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    enter_and_run(&args.opts, state_dir, &[args.command])
}

/// Resolves the container through the agent, then runs the first of
/// `alternatives` that exists there, passing its exit code on.
pub fn enter_and_run(
    opts: &EnterOpts,
    state_dir: &Path,
    alternatives: &[Vec<OsString>],
) -> anyhow::Result<ExitCode> {
    let Reply::Resolved(row) = client::call(
        state_dir,
        &Request::Resolve {
            name: opts.container.clone(),
        },
    )?
    else {
        anyhow::bail!("the agent answered `resolve` with something else");
    };
    let name = &row.id;
    let pid = match (row.state, row.main_pid) {
        (State::Running, Some(pid)) => pid,
        (state, _) => anyhow::bail!("container {name} is not running ({state})"),
    };
    let mode = if opts.host_tools {
        Mode::HostTools
    } else {
        Mode::Container
    };
    let powers = if opts.privileged {
        Powers::HostRoot
    } else {
        Powers::Container
    };
    let target = Target::open(pid, mode, powers).map_err(|e| match e {
        EnterError::Gone { .. } => {
            anyhow::anyhow!("container {name} is not running: its main process {pid} has exited")
        }
        e => anyhow::Error::new(e).context(format!("container {name} (process {pid})")),
    })?;
    // The pid may have been reused since the agent last looked.
    let now_in = target.cgroup().and_then(identify).map(|i| i.cgroup);
    if now_in.as_deref() != Some(row.cgroup.as_str()) {
        anyhow::bail!(
            "container {name} is not running: process {pid} is no longer in its cgroup {}",
            row.cgroup
        );
    }
    let home = match target.credentials() {
        Some(creds) if creds.euid() != 0 => "/",
        _ => "/root",
    };
    let mut env = vec![
        ("PATH", enter::DEFAULT_PATH.to_owned()),
        ("HOME", home.to_owned()),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM", term));
    }
    let program = Program::new(alternatives, &env)?;
    if opts.privileged {
        let msg = format!(
            "dsh: --privileged: running as host root with every capability in container {}",
            untrusted::name(name)
        );
        eprintln!("{}", untrusted::text(&msg));
    }
    std::io::stdout().flush()?;
    match enter::run(&target, &program) {
        Ok(code) => Ok(ExitCode::from(code)),
        // Not found / not executable: the shell's exit codes, 127 and 126.
        Err(e) if e.exit_code() != 1 => {
            let msg = format!("container {}: {e}", untrusted::name(name));
            eprintln!("dsh: {}", untrusted::text(&msg));
            Ok(ExitCode::from(e.exit_code()))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("container {name}"))),
    }
}
