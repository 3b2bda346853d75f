//! Block I/O attributed to the cgroup that issued it.
use crate::common::{TestCgroup, ensure_loaded, probe};

#[test]
fn direct_write_is_attributed_to_its_cgroup() {
    const MIB: u64 = 4;
    let cg = TestCgroup::new("blk");
    // /var/tmp is on the root file system, a real block device (not tmpfs);
    // `DSH_TEST_BLOCK_DIR` names another (the VMs' virtio disk).
    let dir = std::env::var("DSH_TEST_BLOCK_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let file = format!("{dir}/dsh-test-direct-{}", std::process::id());
    ensure_loaded();
    let status = cg.run(&["direct-write", &file, &MIB.to_string()]);
    let _ = std::fs::remove_file(&file);
    assert!(status.success(), "O_DIRECT write failed");
    // Completion is asynchronous to the write returning only for buffered
    // I/O; O_DIRECT + fsync has completed. Give the kernel a moment anyway.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let stats = probe().probe.block_stats().expect("block stats");
    let ids = [cg.id(), cg.blkcg_id()];
    // Summed over both ids: on a hybrid host the blkcg is the v1 blkio cgroup.
    let mut mine = dsh_ebpf::BlockStats::ZERO;
    for s in ids.iter().filter_map(|id| stats.get(id)) {
        mine.write_bytes += s.write_bytes;
        mine.write_ops += s.write_ops;
        mine.read_ops += s.read_ops;
        for (a, b) in mine.latency.iter_mut().zip(s.latency) {
            *a += b;
        }
    }
    let (written, ops) = (mine.write_bytes, mine.write_ops);
    assert!(
        written >= MIB << 20,
        "{MIB} MiB O_DIRECT write attributed {written} bytes to the cgroup (ids {ids:?})"
    );
    assert!(ops > 0);
    let hist: u64 = mine.latency.iter().sum();
    assert_eq!(hist, ops + mine.read_ops);

    // A removed cgroup's entry is deleted by the agent on the rmdir event:
    // agent_cost::removed_cgroups_leave_the_kernel_maps.
}
