//! `dsh ps --prometheus URL`: the health table of every node a Prometheus
//! server scrapes, read back through its HTTP API (`/api/v1/query`). The
//! fleet needs no dsh-to-dsh protocol: each agent exposes its own node and
//! Prometheus, which the fleet runs anyway, joins them.
use std::{collections::HashMap, time::Duration};

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde::{Deserialize, Serialize};

use dsh_metrics::names;

use crate::model::{health::Health, row::ContainerRow, state::State, syscalls::SyscallAccounting};

/// A row of the fleet table: the node it came from, then `dsh ps`'s row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetRow {
    pub node: String,
    #[serde(flatten)]
    pub row: ContainerRow,
}

/// How long the whole set of queries may take.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{url:?} is not a Prometheus URL like http://HOST:9090: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach Prometheus at {url}")]
    Connect {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading Prometheus' answer from {url}")]
    Read {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("Prometheus at {url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Prometheus rejected the query {query:?}: {error}")]
    Query { query: String, error: String },
    #[error("Prometheus' answer to {query:?} is not what its API documents")]
    Decode {
        query: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("Prometheus at {url} did not answer within {TIMEOUT:?}")]
    Timeout { url: String },
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// One figure of the table and the PromQL that gives it per (node, id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Figure {
    Restarts,
    OomKills,
    CoreDumps,
    StartTime,
    Boot,
    CpuLimit,
    MemUsage,
    MemLimit,
    CpuUsed,
    Syscalls,
    SyscallErrors,
    BlockRead,
    BlockWrite,
    Throttled,
    ProcessExits,
    MemWorkingSet,
    MemRss,
    MemCache,
    NetRx,
    NetTx,
}

const FIGURES: [Figure; 20] = [
    Figure::Restarts,
    Figure::OomKills,
    Figure::CoreDumps,
    Figure::StartTime,
    Figure::Boot,
    Figure::CpuLimit,
    Figure::MemUsage,
    Figure::MemLimit,
    Figure::CpuUsed,
    Figure::Syscalls,
    Figure::SyscallErrors,
    Figure::BlockRead,
    Figure::BlockWrite,
    Figure::Throttled,
    Figure::ProcessExits,
    Figure::MemWorkingSet,
    Figure::MemRss,
    Figure::MemCache,
    Figure::NetRx,
    Figure::NetTx,
];

impl Figure {
    /// The query, its series selected by `sel` (`{node="a"}` or empty).
    fn promql(self, sel: &str) -> String {
        let plain = |name: &str| format!("{name}{sel}");
        // Per-second rates from the last two samples: "over the last
        // interval", as the local table shows them.
        let rate = |name: &str| format!("irate({name}{sel}[5m])");
        match self {
            Figure::Restarts => plain(names::CONTAINER_RESTARTS),
            Figure::OomKills => plain(names::CONTAINER_OOM_KILLS),
            Figure::CoreDumps => plain(names::CONTAINER_CORE_DUMPS),
            Figure::StartTime => plain(names::CONTAINER_START_TIME),
            Figure::Boot => plain(names::CONTAINER_BOOT),
            Figure::CpuLimit => plain(names::CONTAINER_CPU_LIMIT),
            Figure::MemUsage => plain(names::CONTAINER_MEMORY_USAGE),
            Figure::MemLimit => plain(names::CONTAINER_MEMORY_LIMIT),
            Figure::CpuUsed => rate(names::CONTAINER_CPU_USAGE),
            Figure::Syscalls => syscall_rate(names::CONTAINER_SYSCALLS, sel),
            Figure::SyscallErrors => syscall_rate(names::CONTAINER_SYSCALL_ERRORS, sel),
            Figure::ProcessExits => plain(names::CONTAINER_PROCESS_EXITS),
            Figure::MemWorkingSet => plain(names::CONTAINER_MEMORY_WORKING_SET),
            Figure::MemRss => plain(names::CONTAINER_MEMORY_RSS),
            Figure::MemCache => plain(names::CONTAINER_MEMORY_CACHE),
            Figure::NetRx => rate(names::CONTAINER_NETWORK_RECEIVE),
            Figure::NetTx => rate(names::CONTAINER_NETWORK_TRANSMIT),
            Figure::BlockRead => rate(names::CONTAINER_BLOCK_READ),
            Figure::BlockWrite => rate(names::CONTAINER_BLOCK_WRITE),
            // The share of CFS periods throttled over the last minute, as the
            // Warning rule reads it.
            Figure::Throttled => format!(
                "increase({}{sel}[1m]) / increase({}{sel}[1m])",
                names::CONTAINER_CPU_THROTTLED_PERIODS,
                names::CONTAINER_CPU_PERIODS
            ),
        }
    }
}

/// A syscall rate by the node's accounting: the last two samples where every
/// syscall is counted; where they are sampled the estimated total grows once
/// per window, so the average over five minutes. Nodes that do not count
/// them (`--syscalls off`) have no series.
fn syscall_rate(name: &str, sel: &str) -> String {
    let mode = |m: SyscallAccounting| {
        format!(
            "{}{{mode=\"{}\"}}",
            names::AGENT_SYSCALL_ACCOUNTING,
            m.as_str()
        )
    };
    format!(
        "irate({name}{sel}[5m]) and on(node) {} or rate({name}{sel}[5m]) and on(node) {}",
        mode(SyscallAccounting::Exact),
        mode(SyscallAccounting::Sampled)
    )
}

/// `{node="a"}`, `{node=~"a|b"}` or nothing: asks Prometheus for only
/// those nodes' series.
fn selector(nodes: &[&str]) -> String {
    // PromQL string literals take Go's escapes; RE2 needs its own.
    let lit = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    match nodes {
        [] => String::new(),
        [one] => format!("{{node=\"{}\"}}", lit(one)),
        many => {
            let alts: Vec<String> = many.iter().map(|n| lit(&regex_escape(n))).collect();
            format!("{{node=~\"{}\"}}", alts.join("|"))
        }
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One series of an instant vector: its labels and `[time, "value"]`.
#[derive(Clone, Debug, Deserialize)]
pub struct Series {
    pub metric: HashMap<String, String>,
    pub value: (f64, String),
}

#[derive(Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<Series>,
}

/// Every row of the fleet on `nodes` (all when empty); `all` keeps the
/// containers that no longer run.
pub fn rows(base: &str, nodes: &[&str], all: bool) -> Result<Vec<FleetRow>, FleetError> {
    let endpoint = query_endpoint(base)?;
    let sel = selector(nodes);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(FleetError::Runtime)?;
    let (info, accounting, figures) = rt.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let ask = |promql: String| query(&client, &endpoint, promql);
        let work = async {
            let info = ask(format!("{}{sel}", names::CONTAINER_INFO));
            let accounting = ask(format!("{}{sel}", names::AGENT_SYSCALL_ACCOUNTING));
            let figures =
                futures_util::future::try_join_all(FIGURES.iter().map(|f| ask(f.promql(&sel))));
            futures_util::future::try_join3(info, accounting, figures).await
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| FleetError::Timeout {
                url: base.to_owned(),
            })?
    })?;
    let answers = FIGURES.iter().copied().zip(figures).collect();
    let mut rows = assemble(&info, &accounting_by_node(&accounting), &answers);
    if !all {
        rows.retain(|r| r.row.listed);
    }
    Ok(rows)
}

/// `BASE/api/v1/query`, keeping a path prefix (Prometheus behind a proxy
/// at `/prometheus/`).
fn query_endpoint(base: &str) -> Result<url::Url, FleetError> {
    let bad = |reason: String| FleetError::BadUrl {
        url: base.to_owned(),
        reason,
    };
    let mut url = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
    if url.scheme() != "http" {
        return Err(bad(format!(
            "only http is spoken here, not {} (put a local proxy in front)",
            url.scheme()
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.join("api/v1/query").map_err(|e| bad(e.to_string()))
}

async fn query(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    endpoint: &url::Url,
    promql: String,
) -> Result<Vec<Series>, FleetError> {
    let mut url = endpoint.clone();
    url.query_pairs_mut().append_pair("query", &promql);
    let uri: hyper::Uri = url.as_str().parse().map_err(|e| FleetError::BadUrl {
        url: url.to_string(),
        reason: format!("{e}"),
    })?;
    let shown = endpoint.to_string();
    let answer = client
        .get(uri)
        .await
        .map_err(|source| FleetError::Connect {
            url: shown.clone(),
            source,
        })?;
    let status = answer.status();
    let body = answer
        .into_body()
        .collect()
        .await
        .map_err(|source| FleetError::Read {
            url: shown.clone(),
            source,
        })?
        .to_bytes();
    decode(&shown, &promql, status.as_u16(), &body)
}

/// The API's JSON envelope: data on success, the server's error otherwise
/// (a bad query answers 400 with an error in the same envelope).
fn decode(url: &str, promql: &str, status: u16, body: &[u8]) -> Result<Vec<Series>, FleetError> {
    let answer: ApiAnswer = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(source) if status == 200 => {
            return Err(FleetError::Decode {
                query: promql.to_owned(),
                source,
            });
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            return Err(FleetError::Http {
                url: url.to_owned(),
                status,
                body: text.chars().take(200).collect::<String>().trim().to_owned(),
            });
        }
    };
    match (answer.status.as_str(), answer.data) {
        ("success", Some(d)) if d.result_type == "vector" => Ok(d.result),
        ("success", _) => Err(FleetError::Query {
            query: promql.to_owned(),
            error: "the answer is not an instant vector".to_owned(),
        }),
        _ => Err(FleetError::Query {
            query: promql.to_owned(),
            error: answer.error.unwrap_or_else(|| format!("HTTP {status}")),
        }),
    }
}

/// Each node's syscall accounting (`dsh_agent_syscall_accounting{mode}`).
fn accounting_by_node(series: &[Series]) -> HashMap<String, SyscallAccounting> {
    series
        .iter()
        .filter_map(|s| {
            let mode = s.metric.get("mode")?.parse().ok()?;
            Some((s.metric.get("node")?.clone(), mode))
        })
        .collect()
}

type Key = (String, String);

fn key(s: &Series) -> Key {
    let label = |k: &str| s.metric.get(k).cloned().unwrap_or_default();
    (label("node"), label("id"))
}

/// Joins the info series (one per container) with each figure's values by
/// (node, id); a figure a container lacks keeps the table's default. A node
/// that does not say how it counts syscalls (an agent older than the
/// accounting modes) counted every one.
fn assemble(
    info: &[Series],
    accounting: &HashMap<String, SyscallAccounting>,
    figures: &HashMap<Figure, Vec<Series>>,
) -> Vec<FleetRow> {
    let by_key: HashMap<Figure, HashMap<Key, f64>> = figures
        .iter()
        .map(|(f, series)| {
            let values = series
                .iter()
                .filter_map(|s| {
                    let v: f64 = s.value.1.parse().ok()?;
                    v.is_finite().then(|| (key(s), v))
                })
                .collect();
            (*f, values)
        })
        .collect();
    let mut rows: Vec<FleetRow> = info
        .iter()
        .filter_map(|s| {
            let k = key(s);
            let get = |f: Figure| by_key.get(&f).and_then(|m| m.get(&k)).copied();
            let label = |l: &str| s.metric.get(l).cloned().unwrap_or_default();
            let state: State =
                serde_json::from_value(serde_json::Value::String(label("state"))).ok()?;
            let running = state == State::Running;
            let count = |f| get(f).map_or(0, |v| v as u64);
            let now = s.value.0;
            let syscalls = accounting
                .get(&k.0)
                .copied()
                .unwrap_or(SyscallAccounting::Exact);
            let image = label("image");
            let named = |l: &str| Some(label(l)).filter(|v| !v.is_empty());
            let endpoint = label("endpoint");
            let row = ContainerRow {
                id: k.1.clone(),
                // An agent older than the key label: its runtime id.
                key: named("key").unwrap_or_else(|| label("runtime_id")),
                namespace: named("namespace"),
                pod: named("pod"),
                container: named("container"),
                runtime: label("runtime"),
                runtime_id: label("runtime_id"),
                cgroup: label("cgroup"),
                pod_uid: None,
                image: (!image.is_empty()).then_some(image),
                endpoint: if endpoint.is_empty() {
                    "-".to_owned()
                } else {
                    endpoint
                },
                state,
                main_pid: None,
                rtime_s: get(Figure::StartTime)
                    .filter(|_| running)
                    .map(|t| (now - t).max(0.0) as i64),
                btime_s: get(Figure::Boot),
                cpu_used_cores: get(Figure::CpuUsed).filter(|_| running).unwrap_or(0.0),
                cpu_limit_cores: get(Figure::CpuLimit),
                // `mem(u)` is the working set (an older agent: its usage).
                mem_used_bytes: get(Figure::MemWorkingSet)
                    .or(get(Figure::MemUsage))
                    .map_or(0, |v| v as u64),
                mem_limit_bytes: get(Figure::MemLimit).map(|v| v as u64),
                mem_usage_bytes: count(Figure::MemUsage),
                mem_working_set_bytes: count(Figure::MemWorkingSet),
                mem_anon_bytes: count(Figure::MemRss),
                mem_file_bytes: count(Figure::MemCache),
                // Not exported: the charge's parts beyond anon and file.
                mem_kernel_bytes: 0,
                restart: count(Figure::Restarts),
                // As plain `dsh ps` lists: the live ones and the UnHealthy
                // dead (each agent exports those only while it keeps them).
                listed: state.is_live() || label("health") == Health::UnHealthy.as_str(),
                health: label("health"),
                // The reasons stay on the node (`dsh ps --wide` there).
                health_reasons: Vec::new(),
                oom_kills: count(Figure::OomKills),
                core_dumps: count(Figure::CoreDumps),
                process_exits: count(Figure::ProcessExits),
                pids: None,
                syscalls_per_s: get(Figure::Syscalls).unwrap_or(0.0),
                syscall_errors_per_s: get(Figure::SyscallErrors).unwrap_or(0.0),
                syscall_accounting: syscalls,
                syscalls_sampled: syscalls == SyscallAccounting::Sampled,
                block_read_bytes_per_s: get(Figure::BlockRead).unwrap_or(0.0),
                block_write_bytes_per_s: get(Figure::BlockWrite).unwrap_or(0.0),
                cpu_throttled_ratio: get(Figure::Throttled),
                net_rx_bytes_per_s: get(Figure::NetRx).filter(|_| running),
                net_tx_bytes_per_s: get(Figure::NetTx).filter(|_| running),
                // The cumulative counters and who reports a shared namespace
                // stay on the node (`dsh ps --json` there).
                net: None,
                net_shared_with: None,
            };
            Some(FleetRow { node: k.0, row })
        })
        .collect();
    rows.sort_by(|a, b| (&a.node, &a.row.id).cmp(&(&b.node, &b.row.id)));
    // The same node scraped by two jobs gives the same row twice.
    rows.dedup_by(|a, b| a.node == b.node && a.row.id == b.row.id);
    rows
}

#[cfg(test)]
mod tests;
