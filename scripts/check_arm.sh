#!/usr/bin/env bash
# One arithmetic across CPUs: builds the native engine's kernels without
# Python (scripts/arm_harness.c) for this x86-64 CPU and for 64-bit ARM,
# runs a fixed training with every kernel set (ARM: the portable set, under
# QEMU's user-mode emulation) and checks that all print the same checksum
# of weights, moments, losses and evaluations.
#
#     apt install gcc-aarch64-linux-gnu qemu-user    # Debian / Ubuntu
#     bash scripts/check_arm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-O3 -ffp-contract=off -fno-math-errno)
gcc "${flags[@]}" -o "$tmp/x86" scripts/arm_harness.c -lm
aarch64-linux-gnu-gcc "${flags[@]}" -static -o "$tmp/arm" \
    scripts/arm_harness.c -lm
lines=()
for set in c avx2 avx512; do
    if line=$("$tmp/x86" "$set" 2>/dev/null); then
        echo "x86-64 $set:  $line"
        lines+=("$line")
    fi
done
line=$(qemu-aarch64 "$tmp/arm" c)
echo "aarch64 c (QEMU): $line"
lines+=("$line")
if [ "$(printf '%s\n' "${lines[@]}" | sort -u | wc -l)" -ne 1 ]; then
    echo 'MISMATCH: the kernel sets do not give the same bits' >&2
    exit 1
fi
echo 'the same bits on every kernel set and CPU'
