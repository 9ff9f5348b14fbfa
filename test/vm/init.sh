#!/bin/busybox sh
# The guest's /init: load the module chain, mount the host's root (read-only 9p), load the stub, and run
# the guest test with the host's Node from inside a chroot. Then power off; the harness reads the console.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
project=$(sed -n 's/.*wasmdrv.project=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "@@BOOTED $(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules.load); do insmod "/modules/$m" || echo "@@INIT-ERROR insmod $m failed"; done
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,ro hostroot /host || echo "@@INIT-ERROR 9p mount failed"
insmod /wasmdrv_uio.ko uart_port=0x2f8 uart_irq=3 || echo "@@INIT-ERROR insmod wasmdrv_uio failed"
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
# Scratch space for Node: /mnt, not /tmp, because the project itself may live under the host's /tmp.
mount -t tmpfs tmpfs /host/mnt
echo "@@GUEST-START $(cut -d' ' -f1 /proc/uptime)"
chroot /host /usr/bin/env HOME=/mnt TMPDIR=/mnt /usr/bin/node "$project/test/vm/guest.mjs" "$project" 2>&1
echo "@@GUEST-EXIT $? $(cut -d' ' -f1 /proc/uptime)"
dmesg | grep -iE "BUG|WARNING|Oops|Call Trace|wasmdrv" | sed 's/^/@@DMESG /'
poweroff -f
