//! `dsh ps --prometheus URL`: the health table of every node a Prometheus
//! server scrapes, read back through its HTTP API (`/api/v1/query`). The
//! fleet needs no dsh-to-dsh protocol: each agent exposes its own node and
//! Prometheus, which the fleet runs anyway, joins them.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Duration,
};

use futures_util::{StreamExt as _, TryStreamExt as _};
use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
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
    /// Set when several different series claim this node and id (two
    /// agents with one node name, say): this row is one of them and its
    /// figures may mix them. Says which scrape targets disagree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<String>,
    /// Why it is not Good, as the node's `dsh_container_health_reason`
    /// series name it (`pids_refused`, `io_stalled`, ...); the figures
    /// behind them stay on the node (`dsh ps --wide` there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// How long the whole set of queries may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The largest answer read for one query. An info series takes about
/// 500 bytes of JSON: this is room for some 60,000 containers, and what a
/// broken or hostile server can make dsh hold per query.
pub const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Queries in flight at once: with [`MAX_ANSWER_BYTES`], what bounds the
/// memory a fleet query takes (answers are held whole to be decoded).
const MAX_IN_FLIGHT: usize = 4;

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
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "Prometheus at {url} answered {query:?} with more than {} MiB; \
         narrow the query with --filter node=NAME",
        MAX_ANSWER_BYTES >> 20
    )]
    TooLarge { url: String, query: String },
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
    let mut promql = vec![
        format!("{}{sel}", names::CONTAINER_INFO),
        format!("{}{sel}", names::AGENT_SYSCALL_ACCOUNTING),
        format!("{}{sel}", names::CONTAINER_HEALTH_REASON),
    ];
    promql.extend(FIGURES.iter().map(|f| f.promql(&sel)));
    let mut answers: Vec<Vec<Series>> = rt.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let work = futures_util::stream::iter(promql)
            .map(|q| query(&client, &endpoint, q))
            .buffered(MAX_IN_FLIGHT)
            .try_collect::<Vec<_>>();
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| FleetError::Timeout {
                url: base.to_owned(),
            })?
    })?;
    // In the order asked: info, accounting, reasons, then one per figure.
    let figures = answers.split_off(3.min(answers.len()));
    let mut firsts = answers.into_iter();
    let info = firsts.next().unwrap_or_default();
    let accounting = firsts.next().unwrap_or_default();
    let reasons = firsts.next().unwrap_or_default();
    let answers = FIGURES.iter().copied().zip(figures).collect();
    let mut rows = assemble(&info, &accounting_by_node(&accounting), &answers);
    add_reasons(&mut rows, &reasons);
    if !all {
        rows.retain(|r| r.row.listed);
    }
    Ok(rows)
}

/// Each row's reasons from the `dsh_container_health_reason` series, at
/// most a few per row (a hostile exporter could send any number).
fn add_reasons(rows: &mut [FleetRow], series: &[Series]) {
    const MOST: usize = 16;
    let mut by_key: HashMap<Key, Vec<String>> = HashMap::new();
    for s in series {
        if let Some(r) = s.metric.get("reason") {
            let list = by_key.entry(key(s)).or_default();
            if list.len() < MOST && !list.contains(r) {
                list.push(r.clone());
            }
        }
    }
    for row in rows {
        if let Some(mut list) = by_key.remove(&(row.node.clone(), row.row.id.clone())) {
            list.sort();
            row.reasons = list;
        }
    }
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
    let body = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|source| {
            if source.is::<LengthLimitError>() {
                FleetError::TooLarge {
                    url: shown.clone(),
                    query: promql.clone(),
                }
            } else {
                FleetError::Read {
                    url: shown.clone(),
                    source,
                }
            }
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

/// The labels that say which container a series is: all but the scrape
/// job's name (one agent scraped by two jobs is the same container twice).
fn identity(s: &Series) -> Vec<(&str, &str)> {
    let mut labels: Vec<(&str, &str)> = s
        .metric
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .filter(|(k, _)| !matches!(*k, "job" | "__name__"))
        .collect();
    labels.sort_unstable();
    labels
}

/// One info series per (node, id), and what is wrong when several
/// different ones claim it: rows are joined with their figures by node
/// and id alone, so neither may silently win.
fn claims(info: &[Series]) -> Vec<(&Series, Option<String>)> {
    let mut groups: BTreeMap<Key, Vec<&Series>> = BTreeMap::new();
    for s in info {
        groups.entry(key(s)).or_default().push(s);
    }
    groups
        .into_values()
        .filter_map(|mut group| {
            group.sort_by_cached_key(|s| identity(s));
            let distinct: BTreeSet<Vec<(&str, &str)>> = group.iter().map(|s| identity(s)).collect();
            let duplicate = (distinct.len() > 1).then(|| {
                let instances: BTreeSet<&str> = group
                    .iter()
                    .filter_map(|s| s.metric.get("instance").map(String::as_str))
                    .collect();
                format!(
                    "{} different series claim this node and id (instances: {}); \
                     one is shown, its figures may mix them",
                    distinct.len(),
                    instances.into_iter().collect::<Vec<_>>().join(", ")
                )
            });
            Some((*group.first()?, duplicate))
        })
        .collect()
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
    let mut rows: Vec<FleetRow> = claims(info)
        .into_iter()
        .filter_map(|(s, duplicate)| {
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
                pids_max: None,
                pids_refused_total: 0,
                fd_limit_errors_total: 0,
                mem_high_events_total: 0,
                mem_max_events_total: 0,
                pressure: None,
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
                addrs_not_kept: 0,
                tcp: None,
            };
            Some(FleetRow {
                node: k.0,
                row,
                duplicate,
                reasons: Vec::new(),
            })
        })
        .collect();
    rows.sort_by(|a, b| (&a.node, &a.row.id).cmp(&(&b.node, &b.row.id)));
    rows
}

#[cfg(test)]
mod tests;
