//! A row's cgroup id is its identity: a second cgroup claiming a row's
//! runtime id (a look-alike in a delegated subtree, a duplicate) never
//! re-points, ends or writes into the row; a restart (the old cgroup gone)
//! still continues it.
use jiff::{SignedDuration, Timestamp};

use super::{Attach, Model, health::HealthRules, state::State};
use crate::{
    cgroup::{
        CgroupId,
        identity::{Identity, Runtime},
    },
    signal::ExitStatus,
};

const ID: &str = "07c561cc06f3bd45658a4dec58468bc6d68032d6c4f168a2079b679f09c8233e";
const DELEGATED: &str = "/user.slice/user-1000.slice/user@1000.service";

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn cg(id: u64) -> CgroupId {
    CgroupId::new(id)
}

fn docker_at(cgroup: String) -> Identity {
    docker_id_at(ID, cgroup)
}

/// A Docker container `id` in `cgroup`.
fn docker_id_at(id: &str, cgroup: String) -> Identity {
    Identity {
        runtime: Runtime::Docker,
        runtime_id: id.to_owned(),
        pod_uid: None,
        cgroup,
    }
}

fn real() -> Identity {
    docker_at(format!("/docker/{ID}"))
}

/// The same id under a delegated subtree.
fn look_alike() -> Identity {
    docker_at(format!("{DELEGATED}/docker/{ID}"))
}

/// The real container, running with main process 50 in cgroup 100.
fn running() -> Model {
    let mut m = Model::new(HealthRules::default(), SignedDuration::from_hours(1));
    let i = real();
    let path = i.cgroup.clone();
    assert_eq!(m.cgroup_created(i, &path, cg(100), t(0)), Attach::Attached);
    m.exec(cg(100), 50, "redis-server", t(1));
    m.take_log();
    m
}

#[test]
fn a_second_cgroup_with_a_live_rows_id_changes_nothing() {
    let mut m = running();
    let before = m.get(ID).unwrap().clone();
    let spoof = look_alike();
    let path = spoof.cgroup.clone();
    let got = m.cgroup_created(spoof.clone(), &path, cg(900), t(2));
    assert_eq!(
        got,
        Attach::Refused {
            holder: Some(cg(100))
        }
    );
    // Its sub-cgroups are refused too, and nothing in it reaches the row.
    let sub = format!("{path}/x");
    assert!(matches!(
        m.cgroup_created(spoof, &sub, cg(901), t(2)),
        Attach::Refused { .. }
    ));
    assert_eq!(m.key_of_cgroup(cg(900)), None);
    m.exec(cg(900), 70, "sh", t(3));
    m.exit(cg(900), 70, "sh", ExitStatus::Exited(1), t(3));
    m.cgroup_removed(cg(901), t(4));
    m.cgroup_removed(cg(900), t(4));
    assert!(m.take_log().is_empty());
    let after = m.get(ID).unwrap();
    assert_eq!(after.cgroup_id, Some(cg(100)));
    assert_eq!(after.identity, before.identity);
    assert_eq!(after.state, State::Running);
    assert_eq!(after.main_tgid, Some(50));
    assert_eq!(after.process_execs, before.process_execs);
}

#[test]
fn the_look_alike_is_listed_as_itself() {
    let mut m = running();
    let plain = look_alike().plain();
    let path = plain.cgroup.clone();
    assert_eq!(plain.runtime, Runtime::Cgroup);
    assert_eq!(plain.runtime_id, path);
    assert_eq!(
        m.cgroup_created(plain, &path, cg(900), t(2)),
        Attach::Attached
    );
    assert_eq!(m.key_of_cgroup(cg(900)), Some(path.as_str()));
    // The real container's name and id prefix still resolve to it alone.
    assert_eq!(m.resolve(&ID[..8]).unwrap(), ID);
    assert_eq!(m.resolve(&path).unwrap(), path);
    m.cgroup_removed(cg(900), t(3));
    let log = m.take_log();
    assert!(log.iter().all(|e| e.key == path), "{log:?}");
    assert_eq!(m.get(ID).unwrap().state, State::Running);
}

#[test]
fn a_sub_cgroup_joins_only_under_the_rows_own_path() {
    let mut m = running();
    let init = format!("/docker/{ID}/init.scope");
    assert_eq!(
        m.cgroup_created(real(), &init, cg(101), t(2)),
        Attach::Attached
    );
    assert_eq!(m.key_of_cgroup(cg(101)), Some(ID));
    // The same cgroup again is known, not re-pointed.
    assert_eq!(
        m.cgroup_created(look_alike().plain(), &init, cg(101), t(2)),
        Attach::Known
    );
    assert_eq!(m.key_of_cgroup(cg(101)), Some(ID));
}

#[test]
fn a_restart_takes_the_row_once_the_old_cgroup_is_gone() {
    let mut m = running();
    m.exit(cg(100), 50, "redis-server", ExitStatus::Exited(0), t(2));
    let again = real();
    let path = again.cgroup.clone();
    // Before the old cgroup's removal: refused, whoever asks.
    assert_eq!(
        m.cgroup_created(again.clone(), &path, cg(101), t(3)),
        Attach::Refused {
            holder: Some(cg(100))
        }
    );
    m.cgroup_removed(cg(100), t(3));
    assert_eq!(
        m.cgroup_created(again, &path, cg(101), t(3)),
        Attach::Attached
    );
    m.exec(cg(101), 60, "redis-server", t(4));
    let c = m.get(ID).unwrap();
    assert_eq!(
        (c.cgroup_id, c.state, c.restarts),
        (Some(cg(101)), State::Running, 1)
    );
}

#[test]
fn block_io_of_a_look_alike_counts_for_its_own_path() {
    let mut m = running();
    m.blkcg_created(&real(), cg(500));
    m.blkcg_created(&look_alike(), cg(501));
    assert_eq!(m.key_of_blkcg(cg(500)), Some(ID));
    let own = look_alike().cgroup;
    assert_eq!(m.key_of_blkcg(cg(501)), Some(own.as_str()));
}

#[test]
fn journal_ids_that_name_no_live_cgroup_are_let_go_at_start_up() {
    let m = running();
    let saved: Vec<_> = m.containers().cloned().collect();
    let mut m = Model::new(HealthRules::default(), SignedDuration::from_hours(1));
    m.restore(saved);
    assert_eq!(m.key_of_cgroup(cg(100)), Some(ID));
    // After a reboot, id 100 is another cgroup (ids repeat across boots).
    let stale = m.unmap_stale(|id, path| id == cg(100) && path == "/other");
    assert_eq!(stale, [cg(100)]);
    assert_eq!(m.key_of_cgroup(cg(100)), None);
    let other = Identity {
        runtime: Runtime::Cgroup,
        runtime_id: "/other".into(),
        pod_uid: None,
        cgroup: "/other".into(),
    };
    assert_eq!(
        m.cgroup_created(other, "/other", cg(100), t(5)),
        Attach::Attached
    );
    assert_eq!(m.key_of_cgroup(cg(100)), Some("/other"));
    // The container restarted while the agent was down: its new cgroup
    // takes the row once the stale id is let go, with no removal lines.
    let i = real();
    let path = i.cgroup.clone();
    assert!(matches!(
        m.cgroup_created(i.clone(), &path, cg(102), t(5)),
        Attach::Refused { .. }
    ));
    m.release_stale(cg(100));
    assert_eq!(m.cgroup_created(i, &path, cg(102), t(5)), Attach::Attached);
    assert_eq!(m.get(ID).unwrap().cgroup_id, Some(cg(102)));
    let log = m.take_log();
    assert!(log.iter().all(|e| e.to != Some(State::Exited)), "{log:?}");
}

/// The kubelet's next incarnation (a new id aliased to the row) whose
/// cgroup comes while the row's lingers gets a row of its own; a second
/// cgroup with the row's current id is refused like any look-alike.
#[test]
fn an_aliased_incarnation_never_takes_a_live_row() {
    let mut m = running();
    let next = "1".repeat(64);
    m.aliases.insert(next.clone(), ID.to_owned());
    let i = docker_id_at(&next, format!("/docker/{next}"));
    let path = i.cgroup.clone();
    assert_eq!(m.cgroup_created(i, &path, cg(200), t(2)), Attach::Attached);
    assert_eq!(m.key_of_cgroup(cg(200)), Some(next.as_str()));
    assert_eq!(m.get(ID).unwrap().cgroup_id, Some(cg(100)));
    // The row continued by an aliased id (the old cgroup gone first): a
    // look-alike of that current id is refused like any other.
    m.cgroup_removed(cg(100), t(3));
    let third = "2".repeat(64);
    m.aliases.insert(third.clone(), ID.to_owned());
    let i = docker_id_at(&third, format!("/docker/{third}"));
    let path = i.cgroup.clone();
    assert_eq!(m.cgroup_created(i, &path, cg(300), t(4)), Attach::Attached);
    assert_eq!(m.key_of_cgroup(cg(300)), Some(ID));
    let spoof = docker_id_at(&third, format!("{DELEGATED}/docker/{third}"));
    let path = spoof.cgroup.clone();
    assert_eq!(
        m.cgroup_created(spoof, &path, cg(301), t(5)),
        Attach::Refused {
            holder: Some(cg(300))
        }
    );
    assert_eq!(m.key_of_cgroup(cg(301)), None);
    assert_eq!(m.key_for(&third), ID);
    assert!(m.get(&third).is_none());
}
