#!/bin/sh
# /init of dsh's test VMs (cargo xtask vm-test). Mounts what the tests need,
# sets up the cgroup layout named on the kernel command line (dsh.layout=),
# formats nothing (the host made the disk's file system), runs the listed
# integration tests and powers off. Lines starting with "DSHVM:" are for the
# host, which reads them (and libtest's own lines) from the serial console.
export PATH=/bin HOME=/root
say() { echo "DSHVM:$*"; }
finish() {
    say done
    sync
    poweroff -f
}
setup_failed() {
    say "setup-failed $*"
    finish
}

mount -t proc proc /proc || setup_failed "mount /proc"
mount -t sysfs sysfs /sys || setup_failed "mount /sys"
mount -t devtmpfs devtmpfs /dev || setup_failed "mount /dev"
mount -t tmpfs tmpfs /tmp || setup_failed "mount /tmp"
mount -t tmpfs tmpfs /run
ip link set lo up || setup_failed "loopback up"
say "kernel $(uname -r)"

layout=
for word in $(cat /proc/cmdline); do
    case "$word" in dsh.layout=*) layout=${word#dsh.layout=} ;; esac
done

# One v1 hierarchy per enabled controller, on a tmpfs, as v1 and hybrid
# hosts (and container runtimes' expectations) have them.
mount_v1() {
    mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup || setup_failed "tmpfs on /sys/fs/cgroup"
    # /proc/cgroups: subsys_name hierarchy num_cgroups enabled
    for c in $(awk '!/^#/ && $4 == 1 { print $1 }' /proc/cgroups); do
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || setup_failed "mount v1 $c"
    done
}

case "$layout" in
v2)
    mount -t cgroup2 cgroup2 /sys/fs/cgroup || setup_failed "mount cgroup2"
    # Every controller enabled for the root's children (the tests' cgroups).
    for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
        echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || setup_failed "enable $c"
    done
    say "layout v2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
    ;;
v1)
    mount_v1
    say "layout v1 hierarchies: $(ls /sys/fs/cgroup | tr '\n' ' ')"
    ;;
hybrid)
    mount_v1
    mkdir -p /sys/fs/cgroup/unified
    mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified || setup_failed "mount cgroup2"
    say "layout hybrid hierarchies: $(ls /sys/fs/cgroup | tr '\n' ' ')"
    ;;
*) setup_failed "unknown layout '$layout' (dsh.layout= on the kernel command line)" ;;
esac

# The virtio disk for the block I/O test: its modules, then the device.
for m in /modules/*.ko; do
    [ -e "$m" ] || continue
    insmod "$m" || setup_failed "insmod $m"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -b /dev/vda ] || setup_failed "no /dev/vda after loading the virtio modules"
mkdir -p /mnt/disk
mount -t ext4 /dev/vda /mnt/disk || setup_failed "mount /dev/vda (ext4)"
say "disk /dev/vda on /mnt/disk"

export DSH_WORKLOAD=/dsh/dsh-workload DSH_BIN=/dsh/dsh DSH_TEST_BLOCK_DIR=/mnt/disk
say "tests-start"
# shellcheck disable=SC2046 # one argument per test name
/dsh/integration --test-threads=1 --exact $(cat /dsh/tests) 2>&1
say "tests-exit $?"
finish
