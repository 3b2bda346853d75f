//! TEMPORARY STUB (being replaced by the full identity module).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime { Docker, Containerd, Kubernetes, Crio, Podman, Systemd, Cgroup }

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub runtime: Runtime,
    pub runtime_id: String,
    pub pod_uid: Option<String>,
    pub cgroup: String,
}

pub fn identify(path: &str) -> Option<Identity> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some("docker"), Some(id)) if id.len() == 64 => Some(Identity { runtime: Runtime::Docker, runtime_id: id.to_owned(), pod_uid: None, cgroup: format!("/docker/{id}") }),
        (Some(top), _) if !top.is_empty() && top != "docker" => Some(Identity { runtime: Runtime::Cgroup, runtime_id: format!("/{top}"), pod_uid: None, cgroup: format!("/{top}") }),
        _ => None,
    }
}
