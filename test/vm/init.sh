#!/bin/busybox sh
# The guest's /init: load the module chain, mount the host's root (read-only 9p), load the stub with the
# scenario's arguments, and run the scenario's guest script with the host's Node from inside a chroot.
# Then power off; the harness reads the console. Kernel command line (set by scripts/vm/run-vm-tests.mjs):
#   wasmdrv.project=DIR wasmdrv.guest=test/vm/X.mjs wasmdrv.node=/path/to/node wasmdrv.stub=a=1,b=2|-|none
#   [wasmdrv.env=K=V,K2=V2]   (WASMDRV_VM_GUEST_ENV on the host: extra environment for the guest script)
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
arg() { sed -n "s/.*wasmdrv\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
project=$(arg project)
guest=$(arg guest)
node=$(arg node)
stub=$(arg stub)
echo "@@BOOTED $(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules.load); do insmod "/modules/$m" || echo "@@INIT-ERROR insmod $m failed"; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,ro hostroot /host || echo "@@INIT-ERROR 9p mount failed"
if [ "$stub" != "none" ]; then
  [ "$stub" = "-" ] && stub=""
  # shellcheck disable=SC2046
  insmod /wasmdrv_uio.ko $(echo "$stub" | tr ',' ' ') || echo "@@INIT-ERROR insmod wasmdrv_uio failed"
fi
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
# Scratch space for Node: /mnt, not /tmp, because the project itself may live under the host's /tmp.
mount -t tmpfs tmpfs /host/mnt
# wasmdrv.cores=1 (WASMDRV_VM_CORES=1 on the host): keep a crashing process's core in /mnt and print its
# threads' stacks with the host's gdb after the guest script (a debugging aid; needs gdb on the host).
cores=$(arg cores)
if [ -n "$cores" ]; then
  ulimit -c unlimited
  echo '/mnt/core.%e.%p' > /proc/sys/kernel/core_pattern
fi
echo "@@GUEST-START $(cut -d' ' -f1 /proc/uptime)"
# shellcheck disable=SC2046
chroot /host /usr/bin/env HOME=/mnt TMPDIR=/mnt $(arg env | tr ',' ' ') "$node" "$project/$guest" "$project" 2>&1
echo "@@GUEST-EXIT $? $(cut -d' ' -f1 /proc/uptime)"
if [ -n "$cores" ]; then
  for c in /host/mnt/core.*; do
    [ -e "$c" ] || continue
    echo "@@CORE $c"
    chroot /host gdb -q -batch -ex 'info threads' -ex 'thread apply all bt 25' "$node" "${c#/host}" 2>&1 | sed 's/^/@@GDB /'
  done
fi
dmesg | grep -iE "BUG|WARNING|Oops|Call Trace|wasmdrv" | sed 's/^/@@DMESG /'
poweroff -f
