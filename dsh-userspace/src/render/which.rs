//! `dsh which`: the line or JSON object naming the container a host pid
//! belongs to. Every string may come from a container (its cgroup path,
//! names), so the line escapes them and the JSON is written by
//! `untrusted::json`.
use serde::Serialize;

use crate::{model::state::State, untrusted};

/// What `dsh which --json` prints.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Which<'a> {
    NotInContainer {
        pid: u32,
        /// Always false.
        in_container: bool,
        process_cgroup: &'a str,
    },
    InContainer(Box<InContainer<'a>>),
}

/// A pid inside a container; the agent's fields are null when it does not
/// run or does not know the container yet.
#[derive(Debug, Serialize)]
pub struct InContainer<'a> {
    pub pid: u32,
    /// Always true.
    pub in_container: bool,
    /// The agent's name for the container.
    pub id: Option<&'a str>,
    pub state: Option<State>,
    pub runtime: &'a str,
    pub runtime_id: &'a str,
    /// The container's own cgroup.
    pub cgroup: &'a str,
    pub pod_uid: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub container: Option<&'a str>,
    /// The process's cgroup (the container's or one below it).
    pub process_cgroup: &'a str,
}

impl Which<'_> {
    pub fn json(&self) -> serde_json::Result<String> {
        untrusted::json::to_string(self)
    }

    /// The one-line form: `pid name runtime short-id cgroup [pod ...]`.
    pub fn line(&self) -> String {
        let c = match self {
            Which::NotInContainer {
                pid,
                process_cgroup,
                ..
            } => {
                return format!(
                    "{pid} is not in a container (cgroup {})",
                    untrusted::name(process_cgroup)
                );
            }
            Which::InContainer(c) => c,
        };
        // A 64-hex runtime id is shown as Docker shows it, 12 characters.
        let short = if c.runtime_id.len() == 64 {
            c.runtime_id.get(..12).unwrap_or(c.runtime_id)
        } else {
            c.runtime_id
        };
        let mut line = format!(
            "{} {} {} {} {}",
            c.pid,
            untrusted::name(c.id.unwrap_or("-")),
            c.runtime,
            untrusted::name(short),
            untrusted::name(c.cgroup)
        );
        if let Some(uid) = c.pod_uid {
            line.push_str(&format!(" pod {}", untrusted::name(uid)));
        }
        if let (Some(ns), Some(pod), Some(name)) = (c.namespace, c.pod, c.container) {
            line.push_str(&format!(
                " namespace {} pod-name {} container {}",
                untrusted::name(ns),
                untrusted::name(pod),
                untrusted::name(name)
            ));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::{InContainer, Which};
    use crate::model::state::State;

    fn docker(id: Option<&'static str>) -> Which<'static> {
        Which::InContainer(Box::new(InContainer {
            pid: 42,
            in_container: true,
            id,
            state: id.map(|_| State::Running),
            runtime: "docker",
            runtime_id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            cgroup: "/system.slice/docker-0123.scope",
            pod_uid: None,
            namespace: None,
            pod: None,
            container: None,
            process_cgroup: "/system.slice/docker-0123.scope",
        }))
    }

    #[test]
    fn the_line_names_the_container_and_shortens_the_id() {
        assert_eq!(
            docker(Some("web")).line(),
            "42 web docker 0123456789ab /system.slice/docker-0123.scope"
        );
        assert!(docker(None).line().starts_with("42 - docker "));
    }

    #[test]
    fn json_keeps_every_field_and_nulls_what_the_agent_did_not_say() {
        let v: serde_json::Value = serde_json::from_str(&docker(None).json().unwrap()).unwrap();
        assert_eq!(v["in_container"], true);
        assert!(v["id"].is_null() && v["state"].is_null() && v["pod"].is_null());
        assert_eq!(v["runtime_id"].as_str().map(str::len), Some(64));
        let out = Which::NotInContainer {
            pid: 1,
            in_container: false,
            process_cgroup: "/init.scope",
        };
        let v: serde_json::Value = serde_json::from_str(&out.json().unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"pid": 1, "in_container": false, "process_cgroup": "/init.scope"})
        );
        assert_eq!(out.line(), "1 is not in a container (cgroup /init.scope)");
    }

    #[test]
    fn a_hostile_cgroup_name_is_escaped_on_the_line() {
        let out = Which::NotInContainer {
            pid: 1,
            in_container: false,
            process_cgroup: "/evil\u{1b}[2J",
        };
        assert!(!out.line().contains('\u{1b}'), "{}", out.line());
    }
}
