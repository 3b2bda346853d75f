//! containerd through its own gRPC API (`containerd-client`, tonic):
//! containers of every namespace but Docker's (`moby`, named by Docker),
//! followed through containerd's event stream. Kubernetes containers
//! (namespace `k8s.io`) are named `namespace/pod/container` from the
//! kubelet's labels and pod sandboxes are marked; nerdctl containers by
//! their `nerdctl/name` label; others by their containerd id.
use std::collections::HashMap;

use anyhow::Context as _;
use containerd_client::{
    events::{ContainerCreate, ContainerDelete, ContainerUpdate, TaskStart},
    services::v1::{
        Container, GetContainerRequest, ListContainersRequest, ListNamespacesRequest,
        SubscribeRequest, containers_client::ContainersClient, events_client::EventsClient,
        namespaces_client::NamespacesClient, version_client::VersionClient,
    },
    tonic::{self, Code, Request, Streaming, transport::Channel},
    types::Envelope,
};
use futures_util::StreamExt as _;
use prost::Message as _;
use tokio::task::JoinHandle;

use super::{Change, Connection, Runtime, RuntimeMeta, kube};

/// Where containerd listens: its default, then k3s's, k0s's and microk8s's.
pub const SOCKETS: &[&str] = &[
    "/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
    "/run/k0s/containerd.sock",
    "/var/snap/microk8s/common/run/containerd.sock",
];

/// Docker's containers live in containerd's `moby` namespace when Docker
/// shares the host's containerd; Docker itself names them better.
const SKIPPED_NAMESPACES: &[&str] = &["moby"];

/// The label nerdctl keeps a container's name in.
const NERDCTL_NAME: &str = "nerdctl/name";

pub struct Containerd {
    socket: String,
    channel: Option<Channel>,
    /// Container id → its namespace, as last seen (ids are unique per namespace).
    namespaces: HashMap<String, String>,
}

impl Containerd {
    pub fn new(socket: String) -> Self {
        Self {
            socket,
            channel: None,
            namespaces: HashMap::new(),
        }
    }

    fn channel(&self) -> anyhow::Result<Channel> {
        self.channel.clone().context("not connected")
    }

    async fn namespace_names(&self) -> anyhow::Result<Vec<String>> {
        let mut client = NamespacesClient::new(self.channel()?);
        let list = client.list(ListNamespacesRequest::default()).await?;
        Ok(list
            .into_inner()
            .namespaces
            .into_iter()
            .map(|n| n.name)
            .filter(|n| !SKIPPED_NAMESPACES.contains(&n.as_str()))
            .collect())
    }

    async fn get(&self, namespace: &str, id: &str) -> anyhow::Result<Option<Container>> {
        let mut client = ContainersClient::new(self.channel()?);
        let req = in_namespace(GetContainerRequest { id: id.to_owned() }, namespace)?;
        match client.get(req).await {
            Ok(r) => Ok(r.into_inner().container),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }
}

/// A request carrying containerd's namespace header.
fn in_namespace<T>(msg: T, namespace: &str) -> anyhow::Result<Request<T>> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "containerd-namespace",
        namespace
            .parse()
            .with_context(|| format!("namespace {namespace:?}"))?,
    );
    Ok(req)
}

impl Runtime for Containerd {
    fn name(&self) -> &'static str {
        "containerd"
    }

    async fn connect(&mut self) -> anyhow::Result<Connection> {
        self.channel = None;
        if !std::path::Path::new(&self.socket).exists() {
            anyhow::bail!("no socket at {}", self.socket);
        }
        let channel = containerd_client::connect(&self.socket)
            .await
            .with_context(|| format!("connecting to {}", self.socket))?;
        let version = VersionClient::new(channel.clone())
            .version(())
            .await?
            .into_inner()
            .version;
        // Subscribe before listing, so nothing between the two is missed.
        // containerd sends the stream's headers with its first event only,
        // so the subscription runs in a task of its own, started now and
        // awaited by the stream (an idle containerd must not look hung).
        let filters = vec![
            r#"topic~="^/containers/""#.to_owned(),
            r#"topic=="/tasks/start""#.to_owned(),
        ];
        let mut events = EventsClient::new(channel.clone());
        let subscribed = Subscription(tokio::spawn(async move {
            events.subscribe(SubscribeRequest { filters }).await
        }));
        let changes = futures_util::stream::unfold(Feed::Pending(subscribed), next_change).boxed();
        self.channel = Some(channel);
        Ok(Connection { version, changes })
    }

    async fn list(&mut self) -> anyhow::Result<Vec<(String, RuntimeMeta)>> {
        let mut out = Vec::new();
        for ns in self.namespace_names().await? {
            let mut client = ContainersClient::new(self.channel()?);
            let req = in_namespace(ListContainersRequest::default(), &ns)?;
            for c in client.list(req).await?.into_inner().containers {
                self.namespaces.insert(c.id.clone(), ns.clone());
                out.push((c.id.clone(), meta_of(&c)));
            }
        }
        Ok(out)
    }

    async fn inspect(&mut self, id: &str) -> anyhow::Result<Option<RuntimeMeta>> {
        let known = self.namespaces.get(id).cloned();
        let candidates = match known {
            Some(ns) => vec![ns],
            None => self.namespace_names().await?,
        };
        for ns in candidates {
            if let Some(c) = self.get(&ns, id).await? {
                self.namespaces.insert(id.to_owned(), ns);
                return Ok(Some(meta_of(&c)));
            }
        }
        self.namespaces.remove(id);
        Ok(None)
    }

    async fn ping(&mut self) -> anyhow::Result<()> {
        VersionClient::new(self.channel()?).version(()).await?;
        Ok(())
    }
}

/// The pending subscription; aborted when the connection is dropped.
struct Subscription(JoinHandle<Result<tonic::Response<Streaming<Envelope>>, tonic::Status>>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Feed {
    Pending(Subscription),
    Open(Box<Streaming<Envelope>>),
    Done,
}

/// The next container change from the event stream, once it is open.
async fn next_change(feed: Feed) -> Option<(anyhow::Result<Change>, Feed)> {
    let mut events = match feed {
        Feed::Pending(mut s) => match (&mut s.0).await {
            Ok(Ok(resp)) => Box::new(resp.into_inner()),
            Ok(Err(status)) => return Some((Err(status.into()), Feed::Done)),
            Err(e) => return Some((Err(e.into()), Feed::Done)),
        },
        Feed::Open(events) => events,
        Feed::Done => return None,
    };
    loop {
        match events.message().await {
            Ok(Some(env)) => {
                if let Some(c) = change_of(&env) {
                    return Some((Ok(c), Feed::Open(events)));
                }
            }
            Ok(None) => return None,
            Err(status) => return Some((Err(status.into()), Feed::Done)),
        }
    }
}

/// The container an event is about, with the namespace it lives in.
fn change_of(env: &Envelope) -> Option<Change> {
    if SKIPPED_NAMESPACES.contains(&env.namespace.as_str()) {
        return None;
    }
    let payload = env.event.as_ref()?.value.as_slice();
    let id = match env.topic.as_str() {
        "/containers/create" => ContainerCreate::decode(payload).ok()?.id,
        "/containers/update" => ContainerUpdate::decode(payload).ok()?.id,
        "/containers/delete" => {
            return Some(Change::Gone(ContainerDelete::decode(payload).ok()?.id));
        }
        "/tasks/start" => TaskStart::decode(payload).ok()?.container_id,
        _ => return None,
    };
    Some(Change::Changed(id))
}

/// Names as the contract wants them: Kubernetes, nerdctl, else the id.
pub fn meta_of(c: &Container) -> RuntimeMeta {
    let kube = kube::KubeName::from_labels(&c.labels);
    let name = match (&kube, c.labels.get(NERDCTL_NAME)) {
        (Some(k), _) => k.display(),
        (None, Some(n)) if !n.is_empty() => n.clone(),
        _ => c.id.clone(),
    };
    RuntimeMeta {
        runtime: "containerd".to_owned(),
        name,
        image: c.image.clone(),
        sandbox: kube::is_sandbox(&c.labels),
        kube,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, labels: &[(&str, &str)]) -> Container {
        Container {
            id: id.to_owned(),
            image: "docker.io/dsh-test/busybox:latest".to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn names() {
        let k = container(
            "0a1b",
            &[
                (kube::POD_NAMESPACE, "shop"),
                (kube::POD_NAME, "web"),
                (kube::POD_UID, "u-1"),
                (kube::CONTAINER_NAME, "nginx"),
                (kube::CRI_CONTAINERD_KIND, "container"),
            ],
        );
        let m = meta_of(&k);
        assert_eq!((m.name.as_str(), m.sandbox), ("shop/web/nginx", false));
        assert_eq!(m.workload().as_deref(), Some("k8s/u-1/nginx"));
        let n = meta_of(&container("0a1c", &[(NERDCTL_NAME, "db")]));
        assert_eq!((n.name.as_str(), n.workload()), ("db", None));
        assert_eq!(meta_of(&container("plain", &[])).name, "plain");
        let pause = container(
            "0a1d",
            &[
                (kube::POD_NAMESPACE, "shop"),
                (kube::POD_NAME, "web"),
                (kube::POD_UID, "u-1"),
                (kube::CRI_CONTAINERD_KIND, "sandbox"),
            ],
        );
        assert!(meta_of(&pause).sandbox);
    }

    fn envelope<M: prost::Message + prost::Name>(ns: &str, topic: &str, m: &M) -> Envelope {
        Envelope {
            namespace: ns.to_owned(),
            topic: topic.to_owned(),
            event: Some(prost_types::Any {
                // containerd sends the type URL without its leading '/'.
                type_url: M::full_name(),
                value: m.encode_to_vec(),
            }),
            timestamp: None,
        }
    }

    #[test]
    fn events() {
        let create = ContainerCreate {
            id: "c1".into(),
            ..Default::default()
        };
        let e = envelope("k8s.io", "/containers/create", &create);
        assert_eq!(change_of(&e), Some(Change::Changed("c1".into())));
        let start = TaskStart {
            container_id: "c1".into(),
            pid: 42,
        };
        let e = envelope("default", "/tasks/start", &start);
        assert_eq!(change_of(&e), Some(Change::Changed("c1".into())));
        let delete = ContainerDelete { id: "c1".into() };
        let e = envelope("k8s.io", "/containers/delete", &delete);
        assert_eq!(change_of(&e), Some(Change::Gone("c1".into())));
        let e = envelope("moby", "/containers/create", &create);
        assert_eq!(change_of(&e), None, "Docker names its own");
        let e = envelope("k8s.io", "/snapshot/prepare", &create);
        assert_eq!(change_of(&e), None);
    }
}
