//! Kubernetes rows: named from the kubelet's labels, continued across the
//! kubelet's restarts (new container ids), sandboxes not listed.
use jiff::{SignedDuration, Timestamp};

use super::{Model, cause::OomAtDeath, health::HealthRules, state::State};
use crate::{
    cgroup::{
        CgroupId,
        identity::{Identity, Runtime},
    },
    runtime::{RuntimeMeta, kube::KubeName},
    signal::{ExitStatus, Signal},
};

const UID: &str = "8712f785-1a3e-41ec-a00b-e2dcc77431cb";

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn id(n: u8) -> String {
    format!("{:0>64}", n)
}

fn kube(n: u8) -> Identity {
    Identity {
        runtime: Runtime::Kubernetes,
        runtime_id: id(n),
        pod_uid: Some(UID.to_owned()),
        cgroup: format!("/kubepods/besteffort/pod{UID}/{}", id(n)),
    }
}

fn meta(container: &str, sandbox: bool) -> RuntimeMeta {
    let k = KubeName {
        namespace: "shop".into(),
        pod: "web".into(),
        container: container.into(),
        pod_uid: UID.into(),
    };
    RuntimeMeta {
        runtime: "containerd".into(),
        name: k.display(),
        kube: Some(k),
        sandbox,
        ..Default::default()
    }
}

/// One incarnation: cgroup `cg`, main process `pid`, started at `at`.
fn run(m: &mut Model, n: u8, cg: u64, pid: u32, at: i64) {
    let cg = CgroupId::new(cg);
    let i = kube(n);
    let path = i.cgroup.clone();
    m.cgroup_created(i, &path, cg, t(at));
    m.exec(cg, pid, "sh", t(at + 1));
}

fn cg(id: u64) -> CgroupId {
    CgroupId::new(id)
}

fn model() -> Model {
    Model::new(HealthRules::default(), SignedDuration::from_hours(1))
}

#[test]
fn kubelet_restart_continues_the_row_when_named_first() {
    let mut m = model();
    m.set_meta(&id(1), Some(meta("nginx", false)), t(0));
    run(&mut m, 1, 100, 50, 0);
    let rows = m.rows(true, t(2));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, "shop/web/nginx");
    m.oom_kill(
        cg(100),
        50,
        OomAtDeath {
            mem_used: None,
            mem_limit: None,
            sampled: false,
        },
        t(3),
    );
    m.exit(
        cg(100),
        50,
        "sh",
        ExitStatus::Killed {
            signal: Signal::from_raw(9),
            core_dumped: false,
        },
        t(3),
    );
    m.cgroup_removed(cg(100), t(4));
    // The kubelet: a new container id, same pod uid and container name.
    m.set_meta(&id(2), Some(meta("nginx", false)), t(5));
    m.set_meta(&id(1), None, t(5)); // the old one removed later: no effect
    run(&mut m, 2, 200, 60, 5);
    let rows = m.rows(true, t(7));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r.id.as_str(), r.restart, r.oom_kills),
        ("shop/web/nginx", 1, 1)
    );
    assert_eq!(r.runtime_id, id(2));
    assert_eq!(r.state, State::Running);
    let key = m.key_for(&id(2)).to_owned();
    assert_eq!(
        key,
        id(1),
        "the row keeps its first key, so its log goes on"
    );
    let lines: Vec<String> = m.take_log().iter().map(|e| e.key.clone()).collect();
    assert!(lines.iter().all(|k| *k == id(1)), "{lines:?}");
    assert_eq!(m.resolve("shop/web/nginx").unwrap(), id(1));
    assert_eq!(m.resolve(&id(2)[..12]).unwrap(), id(1));
}

#[test]
fn kubelet_restart_continues_the_row_when_the_cgroup_comes_first() {
    let mut m = model();
    run(&mut m, 1, 100, 50, 0);
    m.set_meta(&id(1), Some(meta("nginx", false)), t(1));
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(1), t(2));
    m.cgroup_removed(cg(100), t(2));
    run(&mut m, 2, 200, 60, 5);
    m.set_meta(&id(2), Some(meta("nginx", false)), t(7));
    let rows = m.rows(true, t(8));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].id.as_str(), rows[0].restart),
        ("shop/web/nginx", 1)
    );
    assert_eq!(m.take_changes().forgotten, vec![id(1)]);
    // The next restart joins the row that took over.
    m.set_meta(&id(3), Some(meta("nginx", false)), t(9));
    m.exit(cg(200), 60, "sh", ExitStatus::Exited(1), t(9));
    run(&mut m, 3, 300, 70, 10);
    let rows = m.rows(true, t(12));
    assert_eq!((rows.len(), rows[0].restart), (1, 2));
}

#[test]
fn a_new_pod_with_the_same_name_is_a_new_row_and_sandboxes_are_hidden() {
    let mut m = model();
    m.set_meta(&id(9), Some(meta("POD", true)), t(0));
    run(&mut m, 9, 900, 90, 0);
    m.set_meta(&id(1), Some(meta("nginx", false)), t(0));
    run(&mut m, 1, 100, 50, 0);
    let rows = m.rows(true, t(2));
    assert_eq!(rows.len(), 1, "the sandbox is not listed: {rows:?}");
    assert!(m.take_log().iter().all(|e| e.key != id(9)), "nor logged");
    let mut other = meta("nginx", false);
    if let Some(k) = other.kube.as_mut() {
        k.pod_uid = "another".into();
    }
    m.set_meta(&id(4), Some(other), t(3));
    run(&mut m, 4, 400, 40, 3);
    assert_eq!(m.rows(true, t(5)).len(), 2);
    // Restored from the journal: the row key and workload are kept.
    let saved: Vec<_> = m.containers().cloned().collect();
    let mut again = model();
    again.restore(saved);
    again.set_meta(&id(5), Some(meta("nginx", false)), t(6));
    assert_eq!(again.key_for(&id(5)), id(1));
}

/// A Kubernetes name resolves as a reused Docker name does: the kubelet's
/// restart is the same row (no earlier incarnation), a new pod (new uid)
/// under the same name is a new one, and the name then means the current.
#[test]
fn a_recreated_pod_is_an_earlier_incarnation_and_a_kubelet_restart_is_not() {
    let mut m = model();
    m.set_meta(&id(1), Some(meta("nginx", false)), t(0));
    run(&mut m, 1, 100, 50, 0);
    m.exit(cg(100), 50, "sh", ExitStatus::Exited(1), t(2));
    m.cgroup_removed(cg(100), t(2));
    m.set_meta(&id(2), Some(meta("nginx", false)), t(3));
    run(&mut m, 2, 200, 60, 3);
    m.set_meta(&id(1), None, t(4));
    assert_eq!(m.resolve("shop/web/nginx").unwrap(), id(1));
    assert!(m.earlier_incarnations("shop/web/nginx", &id(1)).is_empty());
    // The pod deleted and created again: a new uid.
    m.exit(cg(200), 60, "sh", ExitStatus::Exited(0), t(5));
    m.cgroup_removed(cg(200), t(5));
    m.set_meta(&id(2), None, t(5));
    let mut again = meta("nginx", false);
    if let Some(k) = again.kube.as_mut() {
        k.pod_uid = "another".into();
    }
    m.set_meta(&id(3), Some(again), t(6));
    run(&mut m, 3, 300, 70, 6);
    assert_eq!(m.resolve("shop/web/nginx").unwrap(), id(3));
    assert_eq!(
        m.earlier_incarnations("shop/web/nginx", &id(3)),
        vec![id(1)]
    );
}
