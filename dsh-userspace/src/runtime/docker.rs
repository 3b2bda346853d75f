//! Docker Engine API over its Unix socket (bollard); podman's
//! Docker-compatible API is the same client on another socket.
use std::collections::HashMap;

use anyhow::Context as _;
use bollard::{
    API_DEFAULT_VERSION, Docker,
    query_parameters::{EventsOptions, ListContainersOptionsBuilder},
};
use futures_util::StreamExt as _;

use super::{Change, Connection, Runtime, RuntimeMeta};

/// An Engine API client: Docker's, or podman's compatible one.
pub struct DockerApi {
    name: &'static str,
    socket: String,
    docker: Option<Docker>,
}

impl DockerApi {
    pub fn new(name: &'static str, socket: String) -> Self {
        Self {
            name,
            socket,
            docker: None,
        }
    }

    fn client(&self) -> anyhow::Result<&Docker> {
        self.docker.as_ref().context("not connected")
    }
}

impl Runtime for DockerApi {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn connect(&mut self) -> anyhow::Result<Connection> {
        self.docker = None;
        if !std::path::Path::new(&self.socket).exists() {
            anyhow::bail!("no socket at {}", self.socket);
        }
        let docker = Docker::connect_with_unix(&self.socket, 3, API_DEFAULT_VERSION)?
            // Speak the engine's API version (Debian's docker.io and podman
            // 4 stop at 1.41; bollard defaults to a newer one).
            .negotiate_version()
            .await?;
        let version = docker.version().await?.version.unwrap_or_default();
        // Subscribe before listing, so nothing between the two is missed.
        let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
        let changes = docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .filter_map(|ev| async move {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => return Some(Err(e.into())),
                };
                let id = ev.actor.and_then(|a| a.id)?;
                match ev.action.as_deref()? {
                    "destroy" | "remove" => Some(Ok(Change::Gone(id))),
                    "create" | "start" | "restart" | "die" | "rename" | "update" => {
                        Some(Ok(Change::Changed(id)))
                    }
                    _ => None,
                }
            })
            .boxed();
        self.docker = Some(docker);
        Ok(Connection { version, changes })
    }

    async fn list(&mut self) -> anyhow::Result<Vec<(String, RuntimeMeta)>> {
        let docker = self.client()?.clone();
        let list = docker
            .list_containers(Some(ListContainersOptionsBuilder::new().all(true).build()))
            .await?;
        let mut out = Vec::new();
        for id in list.into_iter().filter_map(|c| c.id) {
            if let Some(meta) = self.inspect(&id).await? {
                out.push((id, meta));
            }
        }
        Ok(out)
    }

    async fn inspect(&mut self, id: &str) -> anyhow::Result<Option<RuntimeMeta>> {
        match self.client()?.inspect_container(id, None).await {
            Ok(info) => Ok(Some(meta_of(self.name, info))),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn ping(&mut self) -> anyhow::Result<()> {
        self.client()?.ping().await?;
        Ok(())
    }
}

/// What dsh takes from a `GET /containers/{id}/json` answer (the body as
/// dockerd sent it); for tests and fuzzing, the agent decodes via bollard.
pub fn decode_inspect(body: &[u8]) -> Result<RuntimeMeta, serde_json::Error> {
    serde_json::from_slice(body).map(|info| meta_of("docker", info))
}

fn meta_of(runtime: &str, info: bollard::models::ContainerInspectResponse) -> RuntimeMeta {
    let net = info.network_settings.unwrap_or_default();
    let ip = net
        .networks
        .unwrap_or_default()
        .into_values()
        .filter_map(|n| n.ip_address)
        .find(|ip| !ip.is_empty());
    let mut ports: Vec<u16> = net
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, bindings)| bindings.as_ref().is_some_and(|b| !b.is_empty()))
        .filter_map(|(spec, _)| published_tcp_port(&spec))
        .collect();
    ports.sort_unstable();
    ports.dedup();
    RuntimeMeta {
        runtime: runtime.to_owned(),
        name: info
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: info.config.and_then(|c| c.image).unwrap_or_default(),
        ip,
        ports,
        restart_count: info.restart_count.unwrap_or(0).max(0) as u64,
        restarting: info.state.and_then(|s| s.restarting).unwrap_or(false),
        ..Default::default()
    }
}

/// "6379/tcp" → 6379; UDP and SCTP ports are not listening TCP ports.
fn published_tcp_port(spec: &str) -> Option<u16> {
    let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    (proto == "tcp").then(|| port.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(published_tcp_port("6379/tcp"), Some(6379));
        assert_eq!(published_tcp_port("53/udp"), None);
        assert_eq!(published_tcp_port("80"), Some(80));
        assert_eq!(published_tcp_port("x/tcp"), None);
    }

    #[test]
    fn metadata_from_a_real_inspect_document() {
        // Trimmed from `docker inspect` on this project's test engine.
        let json = r#"{"Id":"07c5","Name":"/web","RestartCount":2,"State":{"Restarting":true},
            "Config":{"Image":"dsh-test/busybox:latest"},
            "NetworkSettings":{"Ports":{"6379/tcp":[{"HostIp":"0.0.0.0","HostPort":"16379"}],"53/udp":null,"80/tcp":null},
              "Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}"#;
        let m = decode_inspect(json.as_bytes()).unwrap();
        assert_eq!(m.name, "web");
        assert_eq!(m.image, "dsh-test/busybox:latest");
        assert_eq!(m.ip.as_deref(), Some("172.17.0.2"));
        assert_eq!(m.ports, vec![6379]);
        assert_eq!(m.restart_count, 2);
        assert!(m.restarting);
        crate::fuzz_seeds::seed("docker_inspect", "web", json.as_bytes());
        let bare = r#"{"Id":"abc","Name":"/x\u001b]0;t\u0007","RestartCount":-1,"Config":null,
            "NetworkSettings":{"Ports":{"80":[{}],"80/tcp":[{}]},"Networks":{"none":{"IPAddress":""}}}}"#;
        let m = decode_inspect(bare.as_bytes()).unwrap();
        assert_eq!((m.name.as_str(), m.restart_count), ("x\x1b]0;t\x07", 0));
        assert!(!m.restarting);
        assert_eq!((m.ip, m.ports), (None, vec![80]));
        crate::fuzz_seeds::seed("docker_inspect", "bare", bare.as_bytes());
    }
}
