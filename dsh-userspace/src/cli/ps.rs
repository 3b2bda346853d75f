//! `dsh ps`: the health table, of this host (from the agent) or of the
//! fleet (from Prometheus, `--prometheus`).
use std::{io::Write as _, path::Path, process::ExitCode};

use dsh::{
    api::{
        Reply, Request, client,
        filter::{self, Filter},
        fleet,
    },
    render::{self, health, table},
    untrusted::{self, json},
};

#[derive(clap::Args)]
pub struct PsArgs {
    /// Also list containers that are no longer running.
    #[arg(short, long)]
    all: bool,
    /// One JSON array instead of the table.
    #[arg(long)]
    json: bool,
    /// More columns: runtime id, image, pids, OOM kills, core dumps, rates.
    #[arg(long)]
    wide: bool,
    /// The rows only, without the header line.
    #[arg(long)]
    no_headers: bool,
    /// Only rows with KEY=VALUE: health=UnHealthy, state=running,
    /// name=PART (of the id), node=NAME. Repeat it: one key's values are
    /// alternatives, different keys must all match.
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    filters: Vec<Filter>,
    /// The fleet view: the same table for every node this Prometheus server
    /// scrapes (e.g. http://prometheus:9090), with a node column.
    #[arg(long, env = "DSH_PROMETHEUS", value_name = "URL")]
    prometheus: Option<String>,
    /// Only this node (repeatable); the same as --filter node=NAME.
    #[arg(long, value_name = "NAME")]
    node: Vec<String>,
}

pub fn run(mut args: PsArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    args.filters.extend(args.node.drain(..).map(Filter::Node));
    match args.prometheus.take() {
        Some(url) => fleet_view(&args, &url),
        None => host_view(&args, state_dir),
    }
}

fn host_view(args: &PsArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let (notes, reply) = client::call_noting(state_dir, &Request::Ps { all: args.all })?;
    let Reply::Rows(mut rows) = reply else {
        anyhow::bail!("the agent answered `ps` with something else");
    };
    for note in &notes {
        // On stderr: the table (or JSON) on stdout stays as scripts read it.
        eprintln!("dsh: note: {}", untrusted::text(note));
    }
    if !args.filters.is_empty() {
        // `node=` compares with the agent's --node-name.
        let node = if filter::nodes(&args.filters).is_empty() {
            String::new()
        } else {
            match client::call(state_dir, &Request::Status)? {
                Reply::Status(s) => s.node,
                _ => anyhow::bail!("the agent answered `status` with something else"),
            }
        };
        rows.retain(|r| filter::matches(&args.filters, r, &node));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        json::to_writer_pretty(&mut out, &health::rows_json(&rows)?)?;
        out.write_all(b"\n")?;
    } else if args.no_headers {
        out.write_all(table::body(&rows, args.wide).as_bytes())?;
    } else {
        out.write_all(table::table(&rows, args.wide).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn fleet_view(args: &PsArgs, url: &str) -> anyhow::Result<ExitCode> {
    let nodes = filter::nodes(&args.filters);
    let mut rows = fleet::rows(url, &nodes, args.all)?;
    rows.retain(|r| filter::matches(&args.filters, &r.row, &r.node));
    let mut out = std::io::stdout().lock();
    if args.json {
        json::to_writer_pretty(&mut out, &rows)?;
        out.write_all(b"\n")?;
    } else {
        let text = render::fleet::table(&rows, args.wide, !args.no_headers);
        out.write_all(text.as_bytes())?;
        eprint!("{}", render::fleet::duplicates(&rows));
    }
    Ok(ExitCode::SUCCESS)
}
