#!/bin/busybox sh
# /init of the legoos lab guest (busybox-static initramfs). It loads the modules listed in
# /etc/modules.order, mounts the host root read-only (9p) under a tmpfs overlay, mounts the
# VM's writable share at /lab, gives eth0 its address, creates rxe0, mounts cgroup v1
# controllers, and then makes the overlay the real root (switch_root) and serves the command
# channel from there: the host drops <id>.sh into /lab/cmd, the agent claims it by renaming it,
# runs it and writes <id>.out, <id>.err and, last, <id>.rc.
# A real root, not chroot: the kernel refuses to create a user namespace from a chrooted
# process (EPERM), and native processes run in bubblewrap's user namespace.
# Parameters come from the kernel command line: legoos.name= legoos.ip= legoos.hosts=
/bin/busybox mkdir -p /proc /sys /dev /tmp /newroot /mnt/host /mnt/rw
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

NAME=vm; IP=; HOSTS=; PROJECT=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    legoos.name=*) NAME=${arg#legoos.name=} ;;
    legoos.ip=*) IP=${arg#legoos.ip=} ;;
    legoos.hosts=*) HOSTS=${arg#legoos.hosts=} ;;
    legoos.project=*) PROJECT=${arg#legoos.project=} ;;
  esac
done

CONSOLE=/dev/console
fail() {
  echo "legoos-init: FAILED: $*" >$CONSOLE
  # Tell the host why, if the share is mounted; then stop the VM (QEMU runs with -no-reboot).
  [ -d /newroot/lab ] && echo "$*" >/newroot/lab/failed 2>/dev/null
  sync
  poweroff -f
}

while read -r mod; do
  [ -n "$mod" ] || continue
  insmod "/lib/modules/$mod" || fail "insmod $mod"
done </etc/modules.order

mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro hostroot /mnt/host || fail "mount hostroot"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw || fail "mount tmpfs"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot || fail "mount overlay"
# The new root gets the initramfs's own /proc, /sys and /dev, moved rather than mounted a second
# time, so that nothing stays mounted (hidden) under the initramfs that switch_root empties.
mount --move /proc /newroot/proc || fail "move /proc"
mount --move /sys /newroot/sys || fail "move /sys"
mount --move /dev /newroot/dev || fail "move /dev"
CONSOLE=/newroot/dev/console
mkdir -p /newroot/dev/pts /newroot/dev/shm /newroot/lab /newroot/tmp /newroot/run
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs tmpfs /newroot/tmp
mount -t tmpfs tmpfs /newroot/run
# The checkout itself again, uncached: the host rebuilds dist/ and build/Release while VMs run,
# and a loose cache would keep serving the replaced files (or none at all). Mounted after the
# guest's own tmpfs mounts and at its host path, created if one of them (a checkout under /tmp,
# as CI clones) hides it.
if [ -n "$PROJECT" ]; then
  mkdir -p "/newroot$PROJECT" || fail "mkdir $PROJECT"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro project "/newroot$PROJECT" || fail "mount project"
  # node_modules does not change under a running lab and node touches it ~2000 times per start:
  # uncached, that is ~40 s of 9p round trips under TCG. Take it from the cached host root.
  if [ -d "/mnt/host$PROJECT/node_modules" ]; then
    mount --bind "/mnt/host$PROJECT/node_modules" "/newroot$PROJECT/node_modules" || fail "bind node_modules"
  fi
fi
# The results share: cache=none so files the host drops in are seen at once.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 labshare /newroot/lab || fail "mount labshare"
rm -f /newroot/lab/failed

hostname "$NAME"
echo "$NAME" >/newroot/etc/hostname
{
  echo "127.0.0.1 localhost"
  echo "$HOSTS" | tr ',' '\n' | while IFS='=' read -r h a; do [ -n "$h" ] && echo "$a $h"; done
} >/newroot/etc/hosts

ip link set lo up
if [ -n "$IP" ]; then
  # Jumbo frames give rxe0 a 4096-byte active MTU: a 4 KiB READ/WRITE (an ExCache line) is one
  # packet. At the default 1500 (rxe MTU 1024) a 4 KiB WRITE is a 4-packet burst whose ACK is
  # often lost on this link; the requester then waits out its retry timer (~45 ms a WRITE).
  ip link set eth0 mtu 9000 || fail "eth0 mtu 9000"
  ip link set eth0 up || fail "eth0 missing"
  ip addr add "$IP" dev eth0 || fail "ip addr $IP"
  # The address must exist before rxe0 so that GID index 1 is the IPv4-mapped RoCE v2 GID.
  chroot /newroot rdma link add rxe0 type rxe netdev eth0 || fail "rdma link add rxe0"
fi
ulimit -l unlimited

# cgroup v1 hierarchies for the native processes' limits (lib/monitors/processor/sandbox.ts).
# Nothing mounts cgroup2 here, so every v1 controller is free. Without them the sandbox falls
# back to RLIMIT_NPROC, which the ready file reports.
CGROUPS=none
if mount -t tmpfs -o mode=0755,size=1m cgroup_root /newroot/sys/fs/cgroup 2>/dev/null; then
  CGROUPS=v1
  for c in memory pids cpu; do
    mkdir -p "/newroot/sys/fs/cgroup/$c"
    mount -t cgroup -o "$c" "$c" "/newroot/sys/fs/cgroup/$c" 2>/dev/null || CGROUPS=none
  done
fi

{
  echo "name=$NAME"
  echo "ip=$IP"
  echo "kernel=$(uname -r)"
  echo "cgroups=$CGROUPS"
} >/newroot/lab/ready.tmp

# The agent runs from the new root with its own busybox (the initramfs is emptied by
# switch_root). It stays PID 1, so it also reaps orphans (monitors started in the background).
# It announces readiness itself: a failed switch_root stops the VM before the host sees "ready".
mkdir -p /newroot/run/legoos/bin
cp /bin/busybox /newroot/run/legoos/busybox || fail "copy busybox"
cat >/newroot/run/legoos/agent.sh <<'AGENT'
/run/legoos/busybox --install -s /run/legoos/bin
export PATH=/run/legoos/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
CMDPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
C=/lab/cmd
mkdir -p "$C"
echo "uptime=$(cut -d' ' -f1 /proc/uptime)" >>/lab/ready.tmp
mv /lab/ready.tmp /lab/ready
echo "legoos-init: $(hostname) ready ($(grep cgroups= /lab/ready))" >/dev/console
while :; do
  [ -e /lab/poweroff ] && { sync; poweroff -f; }
  for f in "$C"/*.sh; do
    [ -e "$f" ] || continue
    id=${f%.sh}
    mv "$f" "$id.run" 2>/dev/null || continue
    (
      PATH=$CMDPATH /bin/sh "$id.run" >"$id.out" 2>"$id.err" </dev/null
      echo $? >"$id.rc.tmp"
      mv "$id.rc.tmp" "$id.rc"
    ) &
  done
  sleep 0.1
done
AGENT

exec switch_root -c /dev/console /newroot /run/legoos/busybox sh /run/legoos/agent.sh
