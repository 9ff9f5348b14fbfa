#!/usr/bin/env bash
# Debian packages that build the C and Rust drivers: clang-14 and lld-14 (wasm32, freestanding), Debian's
# rustc with the wasm32-unknown-unknown standard library (the rustup toolchain on our machines has no
# wasm32 target and cannot fetch one). Idempotent: does nothing when all are present. Needs root.
set -euo pipefail

need=()
command -v clang-14 >/dev/null || need+=(clang-14)
command -v wasm-ld-14 >/dev/null || need+=(lld-14)
[ -x /usr/bin/rustc ] || need+=(rustc)
[ -d /usr/lib/rustlib/wasm32-unknown-unknown/lib ] || need+=(libstd-rust-dev-wasm32)
# The formatter `npm run lint` runs over kernel-stub/ and native/ (.clang-format: the kernel's style).
command -v clang-format-14 >/dev/null || need+=(clang-format-14)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-toolchains: missing ${need[*]}; run as root (or apt-get install them) to build the C and Rust drivers" >&2
  exit 1
fi
echo "install-toolchains: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}" >/dev/null
echo "install-toolchains: done"
