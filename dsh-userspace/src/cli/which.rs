//! `dsh which`: the container (and pod) a host pid belongs to, from its
//! cgroup; names come from the agent when it runs.
use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use dsh::{
    api::{Reply, Request, client},
    cgroup::layout::CgroupLayout,
    cgroup::{self, identity::identify},
    report::chain,
    untrusted::{self, json},
};
use serde_json::json;

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
        if args.json {
            let v = json!({ "pid": pid, "in_container": false, "process_cgroup": path });
            println!("{}", json::to_string(&v)?);
        } else {
            println!(
                "{pid} is not in a container (cgroup {})",
                untrusted::name(path)
            );
        }
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
    let runtime = id.runtime.as_str();
    if args.json {
        let v = json!({
            "pid": pid,
            "in_container": true,
            "id": row.as_ref().map(|r| r.id.clone()),
            "state": row.as_ref().map(|r| r.state),
            "runtime": runtime,
            "runtime_id": id.runtime_id,
            "cgroup": id.cgroup,
            "pod_uid": id.pod_uid,
            "namespace": row.as_ref().and_then(|r| r.namespace.clone()),
            "pod": row.as_ref().and_then(|r| r.pod.clone()),
            "container": row.as_ref().and_then(|r| r.container.clone()),
            "process_cgroup": path,
        });
        println!("{}", json::to_string(&v)?);
    } else {
        let name = row.as_ref().map_or("-", |r| r.id.as_str());
        let short = if id.runtime_id.len() == 64 {
            &id.runtime_id[..12]
        } else {
            id.runtime_id.as_str()
        };
        let mut line = format!(
            "{pid} {} {runtime} {} {}",
            untrusted::name(name),
            untrusted::name(short),
            untrusted::name(&id.cgroup)
        );
        if let Some(uid) = &id.pod_uid {
            line.push_str(&format!(" pod {uid}"));
        }
        if let Some(r) = &row
            && let (Some(ns), Some(pod), Some(c)) = (&r.namespace, &r.pod, &r.container)
        {
            line.push_str(&format!(
                " namespace {} pod-name {} container {}",
                untrusted::name(ns),
                untrusted::name(pod),
                untrusted::name(c)
            ));
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
