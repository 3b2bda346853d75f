//! Docker Engine API over its Unix socket (bollard). Every call has a
//! timeout and runs in its own task, so an absent, restarting or hung
//! dockerd never holds up sampling: the agent just keeps cgroup names.
use std::{collections::HashMap, time::Duration};

use bollard::{
    API_DEFAULT_VERSION, Docker,
    query_parameters::{EventsOptions, ListContainersOptionsBuilder},
};
use futures_util::StreamExt as _;
use tokio::{sync::mpsc, time::timeout};

use super::{RuntimeMeta, RuntimeUpdate};

const RUNTIME: &str = "docker";
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_secs(2);

/// Follows dockerd until the receiver is dropped, reconnecting as needed.
pub async fn watch(socket: String, tx: mpsc::Sender<RuntimeUpdate>) {
    let mut last_error = String::new();
    loop {
        match session(&socket, &tx).await {
            Ok(()) => return, // the agent is shutting down
            Err(e) => {
                let error = format!("{e:#}");
                if error != last_error {
                    log::warn!("docker: {error}");
                }
                last_error = error.clone();
                if tx
                    .send(RuntimeUpdate::Disconnected {
                        runtime: RUNTIME,
                        error,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One connection: list what exists, then follow container events. Returns
/// Ok only when the agent has gone.
async fn session(socket: &str, tx: &mpsc::Sender<RuntimeUpdate>) -> anyhow::Result<()> {
    if !std::path::Path::new(socket).exists() {
        anyhow::bail!("no socket at {socket}");
    }
    let docker = Docker::connect_with_unix(socket, CALL_TIMEOUT.as_secs(), API_DEFAULT_VERSION)?;
    let version = timeout(CALL_TIMEOUT, docker.version())
        .await
        .map_err(|_| anyhow::anyhow!("dockerd did not answer within {CALL_TIMEOUT:?}"))??;
    // Subscribe before listing, so nothing between the two is missed.
    let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
    let mut events = docker.events(Some(EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }));
    if tx
        .send(RuntimeUpdate::Connected {
            runtime: RUNTIME,
            version: version.version.unwrap_or_default(),
        })
        .await
        .is_err()
    {
        return Ok(());
    }
    let list = timeout(
        CALL_TIMEOUT,
        docker.list_containers(Some(ListContainersOptionsBuilder::new().all(true).build())),
    )
    .await
    .map_err(|_| anyhow::anyhow!("listing containers timed out"))??;
    for c in list {
        if let Some(id) = c.id
            && !send_inspect(&docker, &id, tx).await
        {
            return Ok(());
        }
    }
    while let Some(ev) = events.next().await {
        let ev = ev?;
        let (Some(action), Some(id)) = (ev.action, ev.actor.and_then(|a| a.id)) else {
            continue;
        };
        let alive = match action.as_str() {
            "destroy" => {
                let gone = RuntimeUpdate::Container { id, meta: None };
                if tx.send(gone).await.is_err() {
                    return Ok(());
                }
                continue;
            }
            "create" | "start" | "restart" | "die" | "rename" | "update" => {
                send_inspect(&docker, &id, tx).await
            }
            _ => true,
        };
        if !alive {
            return Ok(());
        }
    }
    anyhow::bail!("dockerd closed the event stream")
}

/// Inspects one container and forwards its metadata; false once the agent
/// is gone. A failed inspect (removed meanwhile, timeout) is not fatal.
async fn send_inspect(docker: &Docker, id: &str, tx: &mpsc::Sender<RuntimeUpdate>) -> bool {
    let meta = match timeout(CALL_TIMEOUT, docker.inspect_container(id, None)).await {
        Ok(Ok(info)) => Some(meta_of(info)),
        Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        })) => None,
        Ok(Err(e)) => {
            log::debug!("docker: inspect {id}: {e}");
            return true;
        }
        Err(_) => {
            log::debug!("docker: inspect {id} timed out");
            return true;
        }
    };
    tx.send(RuntimeUpdate::Container {
        id: id.to_owned(),
        meta,
    })
    .await
    .is_ok()
}

/// What dsh takes from a `GET /containers/{id}/json` answer (the body as
/// dockerd sent it); for tests and fuzzing, the agent decodes via bollard.
pub fn decode_inspect(body: &[u8]) -> Result<RuntimeMeta, serde_json::Error> {
    serde_json::from_slice(body).map(meta_of)
}

fn meta_of(info: bollard::models::ContainerInspectResponse) -> RuntimeMeta {
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
        name: info
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
        image: info.config.and_then(|c| c.image).unwrap_or_default(),
        ip,
        ports,
        restart_count: info.restart_count.unwrap_or(0).max(0) as u64,
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
        let json = r#"{"Id":"07c5","Name":"/web","RestartCount":2,
            "Config":{"Image":"dsh-test/busybox:latest"},
            "NetworkSettings":{"Ports":{"6379/tcp":[{"HostIp":"0.0.0.0","HostPort":"16379"}],"53/udp":null,"80/tcp":null},
              "Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}"#;
        let m = decode_inspect(json.as_bytes()).unwrap();
        assert_eq!(m.name, "web");
        assert_eq!(m.image, "dsh-test/busybox:latest");
        assert_eq!(m.ip.as_deref(), Some("172.17.0.2"));
        assert_eq!(m.ports, vec![6379]);
        assert_eq!(m.restart_count, 2);
        crate::fuzz_seeds::seed("docker_inspect", "web", json.as_bytes());
        let bare = r#"{"Id":"abc","Name":"/x\u001b]0;t\u0007","RestartCount":-1,"Config":null,
            "NetworkSettings":{"Ports":{"80":[{}],"80/tcp":[{}]},"Networks":{"none":{"IPAddress":""}}}}"#;
        let m = decode_inspect(bare.as_bytes()).unwrap();
        assert_eq!((m.name.as_str(), m.restart_count), ("x\x1b]0;t\x07", 0));
        assert_eq!((m.ip, m.ports), (None, vec![80]));
        crate::fuzz_seeds::seed("docker_inspect", "bare", bare.as_bytes());
    }
}
