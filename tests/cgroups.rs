//! Cgroup lifecycle and TCP listen events; and no tracefs needed.
use std::{net::TcpListener, process::Stdio};

use dsh::probe::event::EventKind;

use crate::common::{TestCgroup, WAIT, ensure_loaded, probe, tracefs_mounted, wait_ready};

#[test]
fn mkdir_and_rmdir_are_seen_with_path() {
    ensure_loaded();
    let cg = TestCgroup::new("lifecycle");
    let id = cg.id();
    let path = format!("/{}", cg.name);
    let ev = probe()
        .wait_for(
            WAIT,
            |e| matches!(&e.kind, EventKind::CgroupMkdir { id: i, .. } if *i == id),
        )
        .expect("no mkdir event");
    let EventKind::CgroupMkdir { path: p, level, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(p, path);
    assert_eq!(level, 1);
    drop(cg);
    let ev = probe()
        .wait_for(
            WAIT,
            |e| matches!(&e.kind, EventKind::CgroupRmdir { id: i, .. } if *i == id),
        )
        .expect("no rmdir event");
    let EventKind::CgroupRmdir { path: p, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(p, path);
}

#[test]
fn tcp_listen_is_seen_with_port_and_cgroup() {
    let cg = TestCgroup::new("listen");
    ensure_loaded();
    // A free port, chosen by the kernel, released for the workload to take.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = cg
        .command(&["listen", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn listener");
    wait_ready(&mut child);
    let pid = child.id();
    // (The probe above listened on the port too, from the test's own cgroup.)
    let ev = probe()
        .wait_for(WAIT, |e| {
            matches!(e.kind, EventKind::Listen { port: p, listening: true, .. } if p == port)
                && e.task.tgid == pid
        })
        .expect("no listen event from the workload");
    assert_eq!(ev.task.cgroup_id, cg.id());
    let EventKind::Listen { addr, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(addr.to_string(), "127.0.0.1");
    drop(child.stdin.take());
    child.wait().unwrap();
    probe()
        .wait_for(WAIT, |e| {
            matches!(e.kind, EventKind::Listen { port: p, listening: false, .. } if p == port)
                && e.task.tgid == pid
        })
        .expect("no event when the socket stopped listening");
}

#[test]
fn programs_were_loaded_without_tracefs() {
    let p = probe();
    assert!(
        !p.tracefs_mounted_at_load,
        "tracefs was mounted when the tests loaded the programs, so this run does not prove \
         they work without it; run through `cargo xtask test`, which unmounts it"
    );
    assert!(
        !tracefs_mounted(),
        "something mounted tracefs during the tests"
    );
}

/// The agent finds a cgroup an event names before its mkdir was read: by
/// file handle on cgroup2, by walking a v1 hierarchy.
#[test]
fn cgroup_ids_resolve_to_their_paths() {
    use dsh::{
        cgroup::by_id::path_of,
        cgroup::layout::{CgroupLayout, CgroupLayoutKind, cgroup_id},
    };
    let cg = TestCgroup::new("by-id");
    let layout = CgroupLayout::detect().expect("mounts");
    let want = Some(format!("/{}", cg.name));
    let root = layout.attribution_root().expect("a hierarchy");
    let cgroup2 = layout.kind != CgroupLayoutKind::V1;
    assert_eq!(path_of(root, cgroup2, cg.id()).expect("look-up"), want);
    // Every hierarchy the test cgroup is in, walked as v1 would be.
    for (controller, mount) in &layout.v1 {
        let dir = mount.join(&cg.name);
        if controller.starts_with("name=") || !dir.exists() {
            continue;
        }
        let id = cgroup_id(&dir).expect("stat");
        assert_eq!(
            path_of(mount, false, id).expect("walk"),
            want,
            "{controller}"
        );
    }
    if let Some(unified) = &layout.unified {
        let id = cgroup_id(&unified.join(&cg.name)).expect("stat");
        assert_eq!(path_of(unified, true, id).expect("handle"), want);
        assert_eq!(path_of(unified, false, id).expect("walk"), want);
    }
    let gone = cg.id();
    drop(cg);
    assert_eq!(path_of(root, cgroup2, gone).expect("look-up"), None);
}
