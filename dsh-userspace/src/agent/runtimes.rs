//! The runtimes the agent follows: one supervised client per socket, each
//! with its connection state for `dsh status`, and the lookups the agent
//! sends them for containers it discovered in cgroups.
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    api::RuntimeStatus,
    cgroup::identity::{Identity, Runtime as Kind},
    runtime::{self, Pacing, Runtime, RuntimeUpdate, containerd, crio, docker, podman},
};

/// Which sockets to follow (None: that runtime is not followed).
#[derive(Clone, Debug, Default)]
pub struct RuntimeSockets {
    pub docker: Option<String>,
    pub containerd: Option<String>,
    pub podman: Option<String>,
    pub crio: Option<String>,
}

struct Followed {
    status: RuntimeStatus,
    lookups: mpsc::Sender<String>,
    task: JoinHandle<()>,
}

pub struct Runtimes {
    followed: Vec<Followed>,
}

impl Runtimes {
    pub fn start(sockets: &RuntimeSockets, tx: &mpsc::Sender<RuntimeUpdate>) -> Self {
        let mut r = Self {
            followed: Vec::new(),
        };
        if let Some(s) = &sockets.docker {
            r.follow(docker::DockerApi::new("docker", s.clone()), s, tx);
        }
        if let Some(s) = &sockets.containerd {
            r.follow(containerd::Containerd::new(s.clone()), s, tx);
        }
        if let Some(s) = &sockets.podman {
            r.follow(podman::client(s.clone()), s, tx);
        }
        if let Some(s) = &sockets.crio {
            r.follow(crio::Crio::new(s.clone()), s, tx);
        }
        r
    }

    fn follow<R: Runtime>(&mut self, rt: R, socket: &str, tx: &mpsc::Sender<RuntimeUpdate>) {
        let (lookups, rx) = mpsc::channel(1024);
        let status = RuntimeStatus {
            name: rt.name().to_owned(),
            connected: false,
            detail: format!("connecting to {socket}"),
        };
        let task = tokio::spawn(runtime::supervise(rt, tx.clone(), rx, Pacing::default()));
        self.followed.push(Followed {
            status,
            lookups,
            task,
        });
    }

    /// Records a connection change for `dsh status`.
    pub fn on_update(&mut self, update: &RuntimeUpdate) {
        let (runtime, connected, detail) = match update {
            RuntimeUpdate::Connected { runtime, version } => {
                (*runtime, true, format!("version {version}"))
            }
            RuntimeUpdate::Disconnected { runtime, error } => (*runtime, false, error.clone()),
            RuntimeUpdate::Container { .. } => return,
        };
        if let Some(f) = self.followed.iter_mut().find(|f| f.status.name == runtime) {
            f.status.connected = connected;
            f.status.detail = detail;
        }
    }

    pub fn is_connected(&self, runtime: &str) -> bool {
        self.followed
            .iter()
            .any(|f| f.status.name == runtime && f.status.connected)
    }

    /// Asks the connected runtimes that may own this container about it
    /// (CRI-O can only be asked; the others may not have spoken yet).
    pub fn lookup(&self, identity: &Identity) {
        for f in &self.followed {
            if f.status.connected && owned_by(identity, &f.status.name) {
                // A full queue drops the lookup: the runtime is behind, and
                // its events or the next listing will name the container.
                let _ = f.lookups.try_send(identity.runtime_id.clone());
            }
        }
    }

    pub fn statuses(&self) -> Vec<RuntimeStatus> {
        self.followed.iter().map(|f| f.status.clone()).collect()
    }

    pub fn stop(&self) {
        for f in &self.followed {
            f.task.abort();
        }
    }
}

/// The first containerd socket that exists (containerd's own, k3s, k0s,
/// microk8s), else containerd's default.
pub fn probe_containerd_socket() -> String {
    containerd::SOCKETS
        .iter()
        .find(|s| std::path::Path::new(s).exists())
        .unwrap_or(&containerd::SOCKETS[0])
        .to_string()
}

/// Whether `runtime` may name a container of this cgroup kind.
pub fn owned_by(identity: &Identity, runtime: &str) -> bool {
    matches!(
        (identity.runtime, runtime),
        (Kind::Docker, "docker")
            | (Kind::Podman, "podman")
            | (Kind::Containerd, "containerd")
            | (Kind::Crio, "crio")
            | (Kind::Kubernetes, "containerd" | "crio")
    )
}

pub fn default_podman_socket() -> &'static str {
    podman::DEFAULT_SOCKET
}

pub fn default_crio_socket() -> &'static str {
    crio::DEFAULT_SOCKET
}
