//! Container identity from a cgroup path: which runtime made the cgroup, the
//! runtime's id for the container, and the container's own cgroup.
//!
//! Shapes recognised (paths relative to the hierarchy's mount point):
//! - docker: `/docker/<id>` (cgroupfs), `.../docker-<id>.scope` (systemd);
//! - kubernetes: `/kubepods[/<qos>]/pod<uid>/<container>` (cgroupfs) and
//!   `/kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid>.slice/<container>`
//!   (systemd), where `<container>` is `<id>`, `crio-<id>`, or
//!   `{cri-containerd,crio,docker}-<id>.scope`; kind's `--cgroup-root=/kubelet`
//!   adds a `kubelet.slice/kubelet-kubepods...` prefix;
//! - containerd (ctr, nerdctl): `/<namespace>/<id>` (containerd's default
//!   `filepath.Join("/", ns, id)`), `.../nerdctl-<id>.scope`;
//! - CRI-O outside kubepods: `.../crio-<id>[.scope]`;
//! - podman: `/libpod_parent/libpod-<id>` (cgroupfs), `.../libpod-<id>.scope`
//!   (systemd, root or rootless), `.../libpod-payload-<id>` (`--cgroups=split`,
//!   quadlet's default);
//! - other systemd scopes, and plain cgroups directly under the root.
//!
//! The shallowest element that is a container wins, so anything below it
//! (`init.scope`, CRI-O's `container`, a workload's own sub-cgroups) is
//! reported as a sub-cgroup of that container.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Docker,
    Containerd,
    Kubernetes,
    Crio,
    Podman,
    Systemd,
    Cgroup,
}

impl Runtime {
    pub const ALL: [Runtime; 7] = [
        Runtime::Docker,
        Runtime::Containerd,
        Runtime::Kubernetes,
        Runtime::Crio,
        Runtime::Podman,
        Runtime::Systemd,
        Runtime::Cgroup,
    ];

    /// The name rows and `--json` carry (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Kubernetes => "kubernetes",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
            Runtime::Systemd => "systemd",
            Runtime::Cgroup => "cgroup",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub runtime: Runtime,
    /// The runtime's id: the 64-hex container id for docker, containerd, CRI-O,
    /// podman and kubernetes; the unit name ("foo.scope") for systemd scopes; the
    /// cgroup path for plain cgroups.
    pub runtime_id: String,
    /// Kubernetes pod uid with dashes ("1b2c...-...."), when the path carries one.
    pub pod_uid: Option<String>,
    /// The container's own cgroup path: `path` itself, or the ancestor of `path`
    /// that is the container when `path` is a sub-cgroup inside the container
    /// (e.g. "/docker/<id>/init.scope" -> "/docker/<id>").
    pub cgroup: String,
}

impl Identity {
    /// Whether the path's shape names someone's id (a runtime's container
    /// id, a systemd unit) rather than the cgroup itself: such a claim
    /// counts only from a cgroup root made (`cgroup::delegation`), as
    /// anyone may name a cgroup in a subtree of their own after any id.
    pub fn claims_an_id(&self) -> bool {
        self.runtime != Runtime::Cgroup
    }

    /// The container's cgroup as a plain cgroup under its own path: what
    /// a cgroup is listed as whose claim to an id does not count.
    pub fn plain(self) -> Identity {
        Identity {
            runtime: Runtime::Cgroup,
            runtime_id: self.cgroup.clone(),
            pod_uid: None,
            cgroup: self.cgroup,
        }
    }
}

/// Name prefixes (of `<prefix><id>` or `<prefix><id>.scope`) and the engine
/// that uses them. Longer prefixes sharing a start come first.
const ENGINE_PREFIXES: &[(&str, Runtime)] = &[
    ("docker-", Runtime::Docker),
    ("cri-containerd-", Runtime::Containerd),
    ("nerdctl-", Runtime::Containerd),
    ("crio-", Runtime::Crio),
    ("libpod-payload-", Runtime::Podman),
    ("libpod-", Runtime::Podman),
];

/// conmon, the per-container monitor of CRI-O and podman, gets its own cgroup
/// named after the container's id. It is runtime plumbing, not the workload,
/// and reporting it would give two cgroups the same container id.
const CONMON_PREFIXES: &[&str] = &["crio-conmon-", "libpod-conmon-"];

/// Top-level cgroups that only hold other cgroups (runtime parents, system
/// managers' trees), so they are never a plain-cgroup container themselves.
const SYSTEM_PARENTS: &[&str] = &[
    "docker",
    "kubepods",
    "kubelet",
    "libpod_parent",
    "lxc",
    "machine",
    // Talos' runtime trees.
    "system",
    "podruntime",
    "init",
];

/// containerd namespaces whose directory (`/<ns>`) only holds container ids.
const CONTAINERD_NAMESPACES: &[&str] = &["default", "k8s.io", "moby", "buildkit"];

/// None for cgroups that are not a container: the root, slices, pod-level
/// cgroups, conmon scopes, the runtime's own service cgroups, ...
///
/// A path names the same cgroup however its slashes are spelt (repeated,
/// trailing, or no leading one, as an operator may type it), so it is
/// normalised first; `.` and `..` are never part of a kernel's cgroup path
/// and make it no container.
pub fn identify(path: &str) -> Option<Identity> {
    let elems: Vec<&str> = path.split('/').filter(|e| !e.is_empty()).collect();
    if elems.is_empty() || elems.iter().any(|e| matches!(*e, "." | "..")) {
        return None;
    }
    let container = |i: usize, runtime, runtime_id: &str, pod_uid: Option<String>| {
        Some(Identity {
            runtime,
            runtime_id: runtime_id.to_owned(),
            pod_uid,
            cgroup: format!("/{}", elems[..=i].join("/")),
        })
    };

    // Inside the kubelet's tree: `in_kube` once past `kubepods[.slice]`, and
    // the pod's uid once past the pod cgroup.
    let mut in_kube = false;
    let mut pod: Option<String> = None;
    for (i, &e) in elems.iter().enumerate() {
        // A systemd manager's own cgroup (PID 1's or a user manager's).
        if e == "init.scope" || CONMON_PREFIXES.iter().any(|p| e.starts_with(p)) {
            return None;
        }
        if in_kube {
            if pod.is_none() {
                // QoS levels sit between kubepods and the pod; skip them.
                pod = pod_uid(e);
                continue;
            }
            // Whatever engine runs below the kubelet, the container is the
            // kubelet's; an unknown child of a pod is not a container.
            let id = engine_id(e)
                .map(|(_, id)| id)
                .or(is_hex64(e).then_some(e))?;
            return container(i, Runtime::Kubernetes, id, pod);
        }
        if e == "kubepods" || e == "kubepods.slice" || e.ends_with("-kubepods.slice") {
            in_kube = true;
            continue;
        }
        if let Some((runtime, id)) = engine_id(e) {
            return container(i, runtime, id, None);
        }
        // `<slice>:<prefix>:<id>`: a systemd-style cgroupsPath that a runtime
        // in cgroupfs mode used literally (seen under containerd.service).
        if let Some((slice, prefix, id)) = systemd_triple(e) {
            let uid = pod_uid(slice);
            let runtime = if uid.is_some() {
                Runtime::Kubernetes
            } else {
                ENGINE_PREFIXES
                    .iter()
                    .find(|(p, _)| p.strip_suffix('-') == Some(prefix))
                    .map_or(Runtime::Containerd, |&(_, r)| r)
            };
            return container(i, runtime, id, uid);
        }
        if i >= 1 && is_hex64(e) {
            if elems[i - 1] == "docker" {
                return container(i, Runtime::Docker, e, None);
            }
            // containerd's default `/<namespace>/<id>` (ctr, nerdctl with the
            // cgroupfs driver). Only a 64-hex id counts, and only directly
            // below a top-level cgroup that is not a known system parent.
            if i == 1 && top_level(elems[0]) != TopLevel::System {
                return container(i, Runtime::Containerd, e, None);
            }
        }
        if e.ends_with(".scope") {
            // An engine's scope with a malformed id is not a container we
            // can name; reporting it as a plain scope would mislabel it.
            if ENGINE_PREFIXES.iter().any(|(p, _)| e.starts_with(p)) {
                return None;
            }
            return container(i, Runtime::Systemd, e, None);
        }
        if i == 0 && top_level(e) == TopLevel::Plain {
            // `/<plain>/<64hex>` is a containerd namespace, handled at i == 1.
            if !elems.get(1).is_some_and(|c| is_hex64(c)) {
                return container(i, Runtime::Cgroup, &format!("/{e}"), None);
            }
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TopLevel {
    /// A parent of other cgroups: systemd units, runtime parents.
    System,
    /// A known containerd namespace directory.
    Namespace,
    /// Anything else: a cgroup someone made by hand is a container.
    Plain,
}

fn top_level(name: &str) -> TopLevel {
    const UNIT_SUFFIXES: &[&str] = &[".slice", ".scope", ".service", ".mount", ".socket"];
    if UNIT_SUFFIXES.iter().any(|s| name.ends_with(s))
        || SYSTEM_PARENTS.contains(&name)
        || name.starts_with("lxc.payload")
        || name.starts_with("lxc.monitor")
    {
        TopLevel::System
    } else if CONTAINERD_NAMESPACES.contains(&name) {
        TopLevel::Namespace
    } else {
        TopLevel::Plain
    }
}

/// `<prefix><64hex>` or `<prefix><64hex>.scope` for a known engine prefix.
fn engine_id(name: &str) -> Option<(Runtime, &str)> {
    let stem = name.strip_suffix(".scope").unwrap_or(name);
    ENGINE_PREFIXES.iter().find_map(|&(prefix, runtime)| {
        let id = stem.strip_prefix(prefix)?;
        is_hex64(id).then_some((runtime, id))
    })
}

/// Splits `<slice>:<prefix>:<64hex>`.
fn systemd_triple(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.splitn(3, ':');
    let (slice, prefix, id) = (parts.next()?, parts.next()?, parts.next()?);
    is_hex64(id).then_some((slice, prefix, id))
}

/// The pod uid, with dashes, from a pod cgroup's name: `pod<uid>` (cgroupfs)
/// or `...-pod<uid with underscores>.slice` (systemd, which reserves '-' for
/// the slice hierarchy). Static pods use a 32-hex config hash as their uid.
fn pod_uid(name: &str) -> Option<String> {
    let raw = match name.strip_suffix(".slice") {
        Some(slice) => slice.rsplit_once("-pod")?.1,
        None => name.strip_prefix("pod")?,
    };
    let uid = raw.replace('_', "-");
    let groups: Vec<usize> = uid.split('-').map(str::len).collect();
    let hex = uid.bytes().all(|b| b == b'-' || is_lower_hex(b));
    (hex && (groups == [8, 4, 4, 4, 12] || groups == [32])).then_some(uid)
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(is_lower_hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Runtime::*;

    const ID: &str = "b43d92bf1e5c6f78bb9b7bc6f40721280299855ba692092716e3a1b6c0b86f3f";
    const UID: &str = "8712f785-1a3e-41ec-a00b-e2dcc77431cb";
    const UID_: &str = "8712f785_1a3e_41ec_a00b_e2dcc77431cb";

    #[test]
    fn runtime_names_are_the_serde_names() {
        for r in Runtime::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str(), "{r:?}");
        }
    }

    /// `path` (with "{ID}" and "{UID_}" filled in) is the container `cgroup`.
    fn sub(path: &str, cgroup: &str, runtime: Runtime, id: &str, pod: Option<&str>) {
        let fill = |s: &str| s.replace("{ID}", ID).replace("{UID_}", UID_);
        let want = Identity {
            runtime,
            runtime_id: id.to_owned(),
            pod_uid: pod.map(str::to_owned),
            cgroup: fill(cgroup),
        };
        assert_eq!(identify(&fill(path)), Some(want), "{path}");
    }

    /// `path` is a container of `runtime` with id `ID`, or a kube one.
    fn own(path: &str, runtime: Runtime) {
        let pod = (runtime == Kubernetes).then_some(UID);
        sub(path, path, runtime, ID, pod);
    }

    fn none(path: &str) {
        let path = path.replace("{ID}", ID).replace("{UID_}", UID_);
        assert_eq!(identify(&path), None, "{path}");
    }

    #[test]
    fn docker() {
        own("/docker/{ID}", Docker);
        own("/system.slice/docker-{ID}.scope", Docker);
        // Rootless docker with the systemd driver.
        own(
            "/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope",
            Docker,
        );
        none("/system.slice/docker.service");
        none("/docker");
    }

    #[test]
    fn kubernetes_cgroupfs() {
        for pod in [
            format!("/kubepods/burstable/pod{UID}"),
            format!("/kubepods/besteffort/pod{UID}"),
            format!("/kubepods/pod{UID}"), // guaranteed
        ] {
            none(&pod);
            own(&format!("{pod}/{{ID}}"), Kubernetes); // docker, containerd
            own(&format!("{pod}/crio-{{ID}}"), Kubernetes);
            none(&format!("{pod}/crio-conmon-{{ID}}"));
            none(&format!("{pod}/not-a-container"));
        }
        none("/kubepods");
        none("/kubepods/burstable");
        // Static pods carry a 32-hex config hash as their uid.
        let hash = "9729a196c4723b60ab401eaff722982d";
        let p = format!("/kubepods/burstable/pod{hash}/{{ID}}");
        sub(&p, &p, Kubernetes, ID, Some(hash));
    }

    #[test]
    fn kubernetes_systemd() {
        for pod in [
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice",
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice",
            "/kubepods.slice/kubepods-pod{UID_}.slice", // guaranteed
            // kind runs the kubelet with --cgroup-root=/kubelet.
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_}.slice",
        ] {
            none(pod);
            for engine in ["cri-containerd", "crio", "docker"] {
                let p = format!("{pod}/{engine}-{{ID}}.scope");
                own(&p, Kubernetes);
                // CRI-O on cgroup v2 moves the workload into `container`.
                sub(&format!("{p}/container"), &p, Kubernetes, ID, Some(UID));
            }
            none(&format!("{pod}/crio-conmon-{{ID}}.scope"));
        }
        none("/kubepods.slice");
        none("/kubepods.slice/kubepods-burstable.slice");
        own(
            "/system.slice/containerd.service/\
             kubepods-burstable-pod{UID_}.slice:cri-containerd:{ID}",
            Kubernetes,
        );
    }

    #[test]
    fn containerd() {
        own("/default/{ID}", Containerd);
        own("/k8s.io/{ID}", Containerd);
        own("/myns/{ID}", Containerd);
        own("/system.slice/nerdctl-{ID}.scope", Containerd);
        own(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/nerdctl-{ID}.scope",
            Containerd,
        );
        none("/default");
        none("/default/my-ctr");
        none("/k8s.io");
    }

    #[test]
    fn crio_and_podman() {
        own("/machine.slice/crio-{ID}.scope", Crio);
        none("/system.slice/crio-conmon-{ID}.scope");
        none("/system.slice/crio.service");
        own("/machine.slice/libpod-{ID}.scope", Podman);
        own("/libpod_parent/libpod-{ID}", Podman);
        own(
            "/machine.slice/machine-libpod_pod_0123abcd.slice/libpod-{ID}.scope",
            Podman,
        );
        let p = "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope";
        own(p, Podman);
        sub(&format!("{p}/container"), p, Podman, ID, None);
        own("/system.slice/web.service/libpod-payload-{ID}", Podman);
        none("/machine.slice/libpod-conmon-{ID}.scope");
        none("/libpod_parent/conmon");
        none("/libpod_parent");
        none("/machine.slice/machine-libpod_pod_0123abcd.slice");
    }

    #[test]
    fn systemd_scopes() {
        let p = "/system.slice/run-r1234.scope";
        sub(p, p, Systemd, "run-r1234.scope", None);
        let p = "/user.slice/user-0.slice/session-3.scope";
        sub(p, p, Systemd, "session-3.scope", None);
        sub(&format!("{p}/sub"), p, Systemd, "session-3.scope", None);
        none("/init.scope");
        none("/system.slice");
        none("/user.slice/user-1000.slice/user@1000.service/init.scope");
        none("/machine.slice");
    }

    #[test]
    fn plain_cgroups() {
        for p in ["/dsh-test-foo-123", "/mybench-17", "/tëst-ünïcode"] {
            sub(p, p, Cgroup, p, None);
        }
        sub(
            "/mybench-17/child/x",
            "/mybench-17",
            Cgroup,
            "/mybench-17",
            None,
        );
        for p in [
            "/docker",
            "/kubepods",
            "/lxc.payload.web",
            "/lxc.monitor.web",
            "/moby",
        ] {
            none(p);
        }
    }

    #[test]
    fn sub_cgroups() {
        let c = "/docker/{ID}";
        sub("/docker/{ID}/init.scope", c, Docker, ID, None);
        sub("/docker/{ID}/anything/deeper", c, Docker, ID, None);
        sub("/docker/{ID}/", c, Docker, ID, None); // trailing slash
        let c = "/system.slice/docker-{ID}.scope";
        sub(&format!("{c}/init.scope"), c, Docker, ID, None);
        let c = format!("/kubepods/besteffort/pod{UID}/{{ID}}");
        sub(&format!("{c}/kube-proxy"), &c, Kubernetes, ID, Some(UID));
        sub("/default/{ID}/x", "/default/{ID}", Containerd, ID, None);
    }

    /// The path with its slashes normalised: one leading, no repeats, no trailing.
    fn normalise(path: &str) -> String {
        let elems: Vec<&str> = path.split('/').filter(|e| !e.is_empty()).collect();
        format!("/{}", elems.join("/"))
    }

    #[test]
    fn slashes_do_not_change_identity() {
        let c = format!("/docker/{ID}");
        for p in [
            format!("/docker//{ID}"),
            format!("//docker/{ID}/"),
            format!("docker/{ID}"),
            format!("/docker/{ID}///init.scope"),
        ] {
            sub(&p, &c, Docker, ID, None);
        }
        sub("/a//b", "/a", Cgroup, "/a", None);
        sub("a", "/a", Cgroup, "/a", None);
    }

    /// What the fuzz target checks on arbitrary paths, on every path the
    /// other tests use: the container's own cgroup is a normalised prefix of
    /// the path and identifies as the same container.
    #[test]
    fn a_containers_cgroup_identifies_as_itself() {
        let fill = |s: &str| s.replace("{ID}", ID).replace("{UID_}", UID_);
        let paths = [
            "/docker/{ID}/init.scope",
            "/kubepods.slice/kubepods-pod{UID_}.slice/crio-{ID}.scope/container",
            "/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{ID}",
            "/mybench-17/child/x",
            "/default/{ID}/x",
            "/user.slice/user-0.slice/session-3.scope/sub",
        ];
        for p in paths.map(fill) {
            let id = identify(&p).expect("a container");
            let n = normalise(&p);
            assert!(
                n == id.cgroup || n.starts_with(&format!("{}/", id.cgroup)),
                "{p}"
            );
            assert_eq!(identify(&id.cgroup).as_ref(), Some(&id), "{p}");
        }
    }

    /// Paths of every shape the tests above know: the `cgroup_identity`
    /// fuzz target's seeds.
    #[test]
    fn fuzz_seeds() {
        let fill = |s: &str| s.replace("{ID}", ID).replace("{UID_}", UID_);
        let paths = [
            "/docker/{ID}/init.scope",
            "/system.slice/docker-{ID}.scope",
            "/kubepods/burstable/pod8712f785-1a3e-41ec-a00b-e2dcc77431cb/crio-{ID}",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope",
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_}.slice/crio-{ID}.scope/container",
            "/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{ID}",
            "/k8s.io/{ID}",
            "/user.slice/user-1000.slice/user@1000.service/user.slice/nerdctl-{ID}.scope",
            "/machine.slice/libpod-conmon-{ID}.scope",
            "/system.slice/web.service/libpod-payload-{ID}",
            "/user.slice/user-0.slice/session-3.scope/sub",
            "/mybench-17/child/x",
            "/lxc.payload.web",
            "/evil\x1b[31mRED\x1b]0;title\x07",
            "//docker///{ID}/",
        ];
        for (i, p) in paths.iter().enumerate() {
            crate::fuzz_seeds::seed(
                "cgroup_identity",
                &format!("path-{i:02}"),
                fill(p).as_bytes(),
            );
        }
    }

    #[test]
    fn odd_inputs() {
        let odd = "/ // /// docker /docker/ /docker/xyz /./x /../etc /docker/.. \
            /docker/{ID}/../x /kubepods/pod /kubepods/podé /system.slice/é.slice \
            /kubepods.slice/kubepods-pod.slice/crio-.scope /system.slice/x:y:z /machine/é:é:é";
        for p in odd.split_whitespace().chain([""]) {
            none(p);
        }
        let (upper, short) = (ID.to_uppercase(), &ID[1..]);
        none(&format!("/docker/{upper}"));
        none(&format!("/docker/{short}"));
        none(&format!("/system.slice/docker-{short}.scope"));
    }
}
