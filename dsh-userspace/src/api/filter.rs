//! `dsh ps --filter KEY=VALUE`, as docker and kubectl users expect: the same
//! key given twice matches either value; different keys must all match.
use std::str::FromStr;

use crate::model::{health::Health, row::ContainerRow, state::State};

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Health(Health),
    State(State),
    /// A part of the id (docker's `name=` matches a substring too).
    Name(String),
    /// The node's name, exactly.
    Node(String),
}

const STATES: [State; 5] = [
    State::Pulling,
    State::Booting,
    State::Running,
    State::Error,
    State::Exited,
];

const HEALTHS: [Health; 3] = [Health::Good, Health::Warning, Health::UnHealthy];

impl FromStr for Filter {
    type Err = String;

    /// `health=UnHealthy`, `state=kContainerRunning` (or `running`),
    /// `name=web`, `node=host-1`; health and state ignore case.
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not KEY=VALUE (keys: health, state, name, node)"))?;
        match key {
            "health" => HEALTHS
                .into_iter()
                .find(|h| h.as_str().eq_ignore_ascii_case(value))
                .map(Filter::Health)
                .ok_or_else(|| format!("health {value:?} is not Good, Warning or UnHealthy")),
            "state" => STATES
                .into_iter()
                .find(|st| {
                    let full = st.as_str();
                    full.eq_ignore_ascii_case(value)
                        || full["kContainer".len()..].eq_ignore_ascii_case(value)
                })
                .map(Filter::State)
                .ok_or_else(|| {
                    let names: Vec<&str> = STATES.iter().map(|s| s.as_str()).collect();
                    format!("state {value:?} is not one of {}", names.join(", "))
                }),
            "name" if !value.is_empty() => Ok(Filter::Name(value.to_owned())),
            "node" if !value.is_empty() => Ok(Filter::Node(value.to_owned())),
            "name" | "node" => Err(format!("{key}= needs a value")),
            _ => Err(format!(
                "unknown filter key {key:?}; use health, state, name or node"
            )),
        }
    }
}

impl Filter {
    fn matches(&self, row: &ContainerRow, node: &str) -> bool {
        match self {
            Filter::Health(h) => row.health.eq_ignore_ascii_case(h.as_str()),
            Filter::State(s) => row.state == *s,
            Filter::Name(part) => row.id.contains(part.as_str()),
            Filter::Node(n) => node == n,
        }
    }

    fn same_key(&self, other: &Filter) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

/// Whether `row` (on `node`) passes every key's filters.
pub fn matches(filters: &[Filter], row: &ContainerRow, node: &str) -> bool {
    filters.iter().all(|f| {
        filters
            .iter()
            .filter(|g| g.same_key(f))
            .any(|g| g.matches(row, node))
    })
}

/// The node names asked for, if any (`node=` filters).
pub fn nodes(filters: &[Filter]) -> Vec<&str> {
    filters
        .iter()
        .filter_map(|f| match f {
            Filter::Node(n) => Some(n.as_str()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, state: State, health: &str) -> ContainerRow {
        ContainerRow {
            id: id.into(),
            key: "abc".into(),
            runtime: "docker".into(),
            runtime_id: "abc".into(),
            cgroup: "/docker/abc".into(),
            pod_uid: None,
            namespace: None,
            pod: None,
            container: None,
            image: None,
            endpoint: "-".into(),
            state,
            main_pid: None,
            rtime_s: None,
            btime_s: None,
            cpu_used_cores: 0.0,
            cpu_limit_cores: None,
            mem_used_bytes: 0,
            mem_limit_bytes: None,
            mem_usage_bytes: 0,
            mem_working_set_bytes: 0,
            mem_anon_bytes: 0,
            mem_file_bytes: 0,
            mem_kernel_bytes: 0,
            restart: 0,
            listed: true,
            health: health.into(),
            health_reasons: Vec::new(),
            oom_kills: 0,
            core_dumps: 0,
            process_exits: 0,
            pids: None,
            pids_max: None,
            pids_refused_total: 0,
            fd_limit_errors_total: 0,
            mem_high_events_total: 0,
            mem_max_events_total: 0,
            pressure: None,
            syscalls_per_s: 0.0,
            syscall_errors_per_s: 0.0,
            syscall_accounting: Default::default(),
            syscalls_sampled: true,
            block_read_bytes_per_s: 0.0,
            block_write_bytes_per_s: 0.0,
            cpu_throttled_ratio: None,
            net_rx_bytes_per_s: None,
            net_tx_bytes_per_s: None,
            net: None,
            net_shared_with: None,
            addrs_not_kept: 0,
            tcp: None,
        }
    }

    fn parse(v: &[&str]) -> Vec<Filter> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn keys_and_values_parse_as_operators_type_them() {
        assert_eq!(
            "health=unhealthy".parse(),
            Ok(Filter::Health(Health::UnHealthy))
        );
        assert_eq!("state=running".parse(), Ok(Filter::State(State::Running)));
        assert_eq!(
            "state=kContainerError".parse(),
            Ok(Filter::State(State::Error))
        );
        assert_eq!("name=a=b".parse(), Ok(Filter::Name("a=b".into())));
        for bad in ["health=sick", "state=dead", "color=red", "name=", "node"] {
            let err = bad.parse::<Filter>().unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(
            "state=dead"
                .parse::<Filter>()
                .unwrap_err()
                .contains("kContainerRunning")
        );
    }

    #[test]
    fn same_key_is_or_different_keys_are_and() {
        let web = row("web-1", State::Running, "Good");
        let db = row("db", State::Error, "UnHealthy");
        let f = parse(&["name=web", "name=db"]);
        assert!(matches(&f, &web, "n") && matches(&f, &db, "n"));
        let f = parse(&["name=web", "health=UnHealthy"]);
        assert!(!matches(&f, &web, "n") && !matches(&f, &db, "n"));
        let f = parse(&["state=error", "health=UnHealthy", "node=n"]);
        assert!(matches(&f, &db, "n") && !matches(&f, &db, "m"));
        assert!(matches(&[], &web, "n"));
        assert_eq!(nodes(&parse(&["node=a", "name=x", "node=b"])), ["a", "b"]);
    }
}
