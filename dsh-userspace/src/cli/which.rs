//! `dsh which`: the container (and pod) a host pid belongs to, from its
//! cgroup; names come from the agent when it runs.
use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use dsh::{
    api::{Reply, Request, client},
    cgroup::layout::CgroupLayout,
    cgroup::{self, identity::identify},
    render::which::{InContainer, Which},
    report::chain,
    untrusted,
};

#[derive(clap::Args)]
pub struct WhichArgs {
    /// A process id, as the host sees it.
    pid: u32,
    /// One JSON object instead of the line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: WhichArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let pid = args.pid;
    let layout = CgroupLayout::detect().context("reading /proc/self/mounts")?;
    let lines = match cgroup::proc_cgroups(pid) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("no process {pid}")
        }
        Err(e) => return Err(e).with_context(|| format!("reading /proc/{pid}/cgroup")),
    };
    let path = cgroup::attribution_path(&lines, &layout).with_context(|| {
        format!("process {pid} has no cgroup in this host's attribution hierarchy")
    })?;
    let Some(id) = identify(path) else {
        let which = Which::NotInContainer {
            pid,
            in_container: false,
            process_cgroup: path,
        };
        print(&which, args.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    // The agent knows names and states; the cgroup path alone knows the
    // runtime and its id.
    let resolved = client::call(
        state_dir,
        &Request::Resolve {
            name: id.cgroup.clone(),
        },
    );
    let row = match resolved {
        Ok(Reply::Resolved(row)) => Some(row),
        Ok(_) => None,
        Err(client::ClientError::Agent(_)) => {
            eprintln!("dsh: the agent does not know this container (yet); showing its cgroup only");
            None
        }
        Err(e) => {
            eprintln!(
                "dsh: {}; container names need the agent",
                untrusted::text(&chain(&e))
            );
            None
        }
    };
    let row = row.as_deref();
    let which = Which::InContainer(Box::new(InContainer {
        pid,
        in_container: true,
        id: row.map(|r| r.id.as_str()),
        state: row.map(|r| r.state),
        runtime: id.runtime.as_str(),
        runtime_id: &id.runtime_id,
        cgroup: &id.cgroup,
        pod_uid: id.pod_uid.as_deref(),
        namespace: row.and_then(|r| r.namespace.as_deref()),
        pod: row.and_then(|r| r.pod.as_deref()),
        container: row.and_then(|r| r.container.as_deref()),
        process_cgroup: path,
    }));
    print(&which, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print(which: &Which<'_>, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", which.json()?);
    } else {
        println!("{}", which.line());
    }
    Ok(())
}
