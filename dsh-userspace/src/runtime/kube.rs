//! Kubernetes identity from the labels the kubelet puts on every container
//! it asks a CRI runtime (containerd, CRI-O) for.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// containerd's CRI plugin: `sandbox` for a pod's pause container.
pub const CRI_CONTAINERD_KIND: &str = "io.cri-containerd.kind";
/// CRI-O: `sandbox` for a pod's infra container.
pub const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
/// dockershim and CRI-O name the infra container `POD`.
const INFRA_NAME: &str = "POD";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeName {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub pod_uid: String,
}

impl KubeName {
    /// `namespace/pod/container`, the contract's id for a Kubernetes container.
    pub fn display(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.pod, self.container)
    }

    /// Stable across the kubelet's restarts (new container ids) of one
    /// container of one pod; a re-created pod has a new uid.
    pub fn workload(&self) -> String {
        format!("k8s/{}/{}", self.pod_uid, self.container)
    }

    /// From a container's labels (or CRI-O's annotations); None when the
    /// kubelet did not make it. A sandbox has no container name: `POD`.
    pub fn from_labels(labels: &HashMap<String, String>) -> Option<Self> {
        let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        Some(Self {
            namespace: get(POD_NAMESPACE)?,
            pod: get(POD_NAME)?,
            pod_uid: get(POD_UID)?,
            container: get(CONTAINER_NAME).unwrap_or_else(|| INFRA_NAME.to_owned()),
        })
    }
}

/// A pod's sandbox (pause, infra) container, by any runtime's marking.
pub fn is_sandbox(labels: &HashMap<String, String>) -> bool {
    let is = |k: &str, v: &str| labels.get(k).is_some_and(|x| x == v);
    is(CRI_CONTAINERD_KIND, "sandbox")
        || is(CRIO_CONTAINER_TYPE, "sandbox")
        || (labels.contains_key(POD_UID) && is(CONTAINER_NAME, INFRA_NAME))
        || (labels.contains_key(POD_UID) && !labels.contains_key(CONTAINER_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kubelet_labels() {
        let l = labels(&[
            (POD_NAMESPACE, "shop"),
            (POD_NAME, "web-7d9f"),
            (POD_UID, "8712f785-1a3e-41ec-a00b-e2dcc77431cb"),
            (CONTAINER_NAME, "nginx"),
            (CRI_CONTAINERD_KIND, "container"),
        ]);
        let k = KubeName::from_labels(&l).unwrap();
        assert_eq!(k.display(), "shop/web-7d9f/nginx");
        assert_eq!(
            k.workload(),
            "k8s/8712f785-1a3e-41ec-a00b-e2dcc77431cb/nginx"
        );
        assert!(!is_sandbox(&l));
        assert_eq!(KubeName::from_labels(&labels(&[(POD_NAME, "x")])), None);
    }

    #[test]
    fn sandboxes() {
        let base = [(POD_NAMESPACE, "shop"), (POD_NAME, "web"), (POD_UID, "u")];
        let mut l = labels(&base);
        assert!(is_sandbox(&l), "no container name: the pod's own");
        l.insert(CONTAINER_NAME.into(), "POD".into());
        assert!(is_sandbox(&l));
        let mut l = labels(&base);
        l.insert(CRI_CONTAINERD_KIND.into(), "sandbox".into());
        assert!(is_sandbox(&l));
        assert!(!is_sandbox(&labels(&[("nerdctl/name", "web")])));
    }
}
