#!/usr/bin/env bash
# Debian packages the QEMU tests need: QEMU (TCG), Debian's kernel with matching headers (the stub is
# built against them), busybox for the initramfs, cpio to pack it. Idempotent: does nothing when all
# are present. Needs root (CI and our machines run as root).
set -euo pipefail

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx insmod || need+=(busybox-static)
command -v modinfo >/dev/null || need+=(kmod)
# pci.ids, for the vendor/device/class names `wasmdrv devices` prints (optional at run time)
[ -e /usr/share/misc/pci.ids ] || [ -e /usr/share/hwdata/pci.ids ] || need+=(hwdata)
# a Debian kernel image with the headers of the same version
have_kernel=""
for img in /boot/vmlinuz-*-amd64; do
  [ -e "$img" ] || continue
  v=${img#/boot/vmlinuz-}
  [ -d "/usr/src/linux-headers-$v" ] && [ -d "/lib/modules/$v/kernel" ] && have_kernel=$v
done
[ -n "$have_kernel" ] || need+=(linux-image-amd64 linux-headers-amd64)
# and Debian 12's newer kernel line (6.12, in bookworm's archive): the stub must build and run on both
# (WASMDRV_VM_KERNELS=all runs the scenarios on each installed kernel)
have_612=""
for img in /boot/vmlinuz-6.12*-amd64; do
  [ -e "$img" ] || continue
  v=${img#/boot/vmlinuz-}
  [ -d "/usr/src/linux-headers-$v" ] && [ -d "/lib/modules/$v/kernel" ] && have_612=$v
done
[ -n "$have_612" ] || need+=(linux-image-6.12-amd64 linux-headers-6.12-amd64)

if [ ${#need[@]} -eq 0 ]; then
  echo "install-deps: everything present (kernel $have_kernel)"
  exit 0
fi
echo "install-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install-deps: done"
