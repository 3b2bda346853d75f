//! CRI-O through the HTTP API on its socket (what `crio-status` reads):
//! `GET /info` to connect and ping, `GET /containers/<id>` for one
//! container. That API has no list and no event stream, so the agent asks
//! for each CRI-O or Kubernetes cgroup it discovers (`supervise`'s lookups).
//!
//! No CRI-O package exists for the project's test hosts (Debian 12), so this
//! file is tested on responses written from CRI-O's own types
//! (`pkg/types.ContainerInfo`, `CrioInfo`), not on a running CRI-O.
use std::collections::HashMap;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, StatusCode, body::Bytes};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::{Connection, Runtime, RuntimeMeta, kube};

pub const DEFAULT_SOCKET: &str = "/var/run/crio/crio.sock";

pub struct Crio {
    socket: String,
}

impl Crio {
    pub fn new(socket: String) -> Self {
        Self { socket }
    }

    /// One GET on a fresh connection: (status, body).
    async fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .with_context(|| format!("connecting to {}", self.socket))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let conn = tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "crio")
            .body(Empty::<Bytes>::new())?;
        let resp = send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        conn.abort();
        Ok((status, body))
    }
}

/// CRI-O's `GET /info` (pkg/types.CrioInfo; fields dsh reads).
#[derive(Debug, Deserialize)]
pub struct CrioInfo {
    #[serde(default)]
    pub storage_driver: String,
    #[serde(default)]
    pub cgroup_driver: String,
}

/// CRI-O's `GET /containers/<id>` (pkg/types.ContainerInfo; fields dsh reads).
#[derive(Debug, Deserialize)]
pub struct ContainerInfo {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
}

impl Runtime for Crio {
    fn name(&self) -> &'static str {
        "crio"
    }

    async fn connect(&mut self) -> anyhow::Result<Connection> {
        if !std::path::Path::new(&self.socket).exists() {
            anyhow::bail!("no socket at {}", self.socket);
        }
        let info = self.info().await?;
        Ok(Connection {
            version: format!(
                "storage {}, cgroups {}",
                info.storage_driver, info.cgroup_driver
            ),
            changes: futures_util::stream::pending().boxed(),
        })
    }

    /// The HTTP API cannot list: containers come one by one as lookups.
    async fn list(&mut self) -> anyhow::Result<Vec<(String, RuntimeMeta)>> {
        Ok(Vec::new())
    }

    async fn inspect(&mut self, id: &str) -> anyhow::Result<Option<RuntimeMeta>> {
        // Ids come from cgroup paths (64 hex): nothing to escape in a path.
        anyhow::ensure!(
            id.bytes().all(|b| b.is_ascii_alphanumeric()),
            "odd container id {id:?}"
        );
        let (status, body) = self.get(&format!("/containers/{id}")).await?;
        match status {
            StatusCode::OK => Ok(Some(meta_of(&serde_json::from_slice(&body)?))),
            // CRI-O answers an unknown id with 404 (or, in older versions, 500
            // "can't find the container").
            StatusCode::NOT_FOUND | StatusCode::INTERNAL_SERVER_ERROR => Ok(None),
            s => anyhow::bail!("GET /containers/{id}: {s}"),
        }
    }

    async fn ping(&mut self) -> anyhow::Result<()> {
        self.info().await.map(drop)
    }
}

impl Crio {
    async fn info(&self) -> anyhow::Result<CrioInfo> {
        let (status, body) = self.get("/info").await?;
        anyhow::ensure!(status == StatusCode::OK, "GET /info: {status}");
        Ok(serde_json::from_slice(&body)?)
    }
}

/// Kubernetes containers by `namespace/pod/container` (labels, else the
/// annotations CRI-O copies them to); others by CRI-O's name.
pub fn meta_of(info: &ContainerInfo) -> RuntimeMeta {
    let kube = kube::KubeName::from_labels(&info.labels)
        .or_else(|| kube::KubeName::from_labels(&info.annotations));
    let sandbox = kube::is_sandbox(&info.labels) || kube::is_sandbox(&info.annotations);
    RuntimeMeta {
        runtime: "crio".to_owned(),
        name: kube
            .as_ref()
            .map_or_else(|| info.name.clone(), |k| k.display()),
        image: info.image.clone(),
        ip: info.ip_addresses.first().cloned(),
        sandbox,
        kube,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written from CRI-O's pkg/types.ContainerInfo (no CRI-O to record
    // from on this project's test hosts); values as a kubelet would set them.
    const CONTAINER: &str = r#"{
        "name": "k8s_nginx_web-7d9f_shop_8712f785-1a3e-41ec-a00b-e2dcc77431cb_0",
        "pid": 4242,
        "image": "docker.io/library/nginx:1.25",
        "image_ref": "docker.io/library/nginx@sha256:0d17",
        "created_time": 1700000000000000000,
        "labels": {
            "io.kubernetes.container.name": "nginx",
            "io.kubernetes.pod.name": "web-7d9f",
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.pod.uid": "8712f785-1a3e-41ec-a00b-e2dcc77431cb"
        },
        "annotations": {"io.kubernetes.container.restartCount": "2"},
        "crio_annotations": {"io.kubernetes.cri-o.ContainerType": "container"},
        "log_path": "/var/log/pods/shop_web-7d9f_8712f785/nginx/2.log",
        "root": "/var/lib/containers/storage/overlay/abc/merged",
        "sandbox": "3f5a",
        "ip_addresses": ["10.85.0.12"]
    }"#;

    const SANDBOX: &str = r#"{
        "name": "k8s_POD_web-7d9f_shop_8712f785-1a3e-41ec-a00b-e2dcc77431cb_0",
        "pid": 4200, "image": "registry.k8s.io/pause:3.9",
        "labels": {
            "io.kubernetes.container.name": "POD",
            "io.kubernetes.pod.name": "web-7d9f",
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.pod.uid": "8712f785-1a3e-41ec-a00b-e2dcc77431cb"
        },
        "annotations": {"io.kubernetes.cri-o.ContainerType": "sandbox"},
        "ip_addresses": ["10.85.0.12"]
    }"#;

    const INFO: &str = r#"{"storage_driver":"overlay","storage_image":"",
        "storage_root":"/var/lib/containers/storage","cgroup_driver":"systemd",
        "default_id_mappings":{"uids":[{"container_id":0,"host_id":0,"size":4294967295}],
        "gids":[{"container_id":0,"host_id":0,"size":4294967295}]}}"#;

    #[test]
    fn kubernetes_container() {
        let m = meta_of(&serde_json::from_str(CONTAINER).unwrap());
        assert_eq!(m.name, "shop/web-7d9f/nginx");
        assert_eq!(m.image, "docker.io/library/nginx:1.25");
        assert_eq!(m.ip.as_deref(), Some("10.85.0.12"));
        assert!(!m.sandbox);
        assert_eq!(
            m.workload().as_deref(),
            Some("k8s/8712f785-1a3e-41ec-a00b-e2dcc77431cb/nginx")
        );
    }

    #[test]
    fn infra_container_is_a_sandbox() {
        assert!(meta_of(&serde_json::from_str(SANDBOX).unwrap()).sandbox);
    }

    #[test]
    fn plain_container_keeps_crio_name() {
        let m = meta_of(&serde_json::from_str(r#"{"name":"db","image":"x"}"#).unwrap());
        assert_eq!((m.name.as_str(), m.kube), ("db", None));
    }

    #[test]
    fn info() {
        let i: CrioInfo = serde_json::from_str(INFO).unwrap();
        assert_eq!(
            (i.storage_driver.as_str(), i.cgroup_driver.as_str()),
            ("overlay", "systemd")
        );
    }

    /// The HTTP exchange itself, against a socket answering as CRI-O does.
    #[tokio::test(flavor = "current_thread")]
    async fn over_a_unix_socket() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let dir = std::env::temp_dir().join(format!("dsh-crio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("crio.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let (status, body) = if req.starts_with("GET /info ") {
                    ("200 OK", INFO)
                } else if req.starts_with("GET /containers/abc ") {
                    ("200 OK", CONTAINER)
                } else {
                    ("404 Not Found", "can't find the container")
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let mut c = Crio::new(sock.to_string_lossy().into_owned());
        let conn = c.connect().await.unwrap();
        assert_eq!(conn.version, "storage overlay, cgroups systemd");
        let m = c.inspect("abc").await.unwrap().unwrap();
        assert_eq!(m.name, "shop/web-7d9f/nginx");
        assert_eq!(c.inspect("def").await.unwrap(), None);
        assert!(c.inspect("../x").await.is_err());
        c.ping().await.unwrap();
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
        let mut gone = Crio::new(dir.join("none.sock").to_string_lossy().into_owned());
        let err = gone.connect().await.err().unwrap().to_string();
        assert!(err.starts_with("no socket at "), "{err}");
    }
}
