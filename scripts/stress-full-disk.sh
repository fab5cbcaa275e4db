#!/usr/bin/env bash
# A full disk at every size: heat (2-D n=256, 2 ranks, a checkpoint every 10 steps) with its
# shared checkpoint directory, or its node-local one, on a tmpfs of its own whose size steps
# across the points where a checkpoint stops fitting (its data, its metadata, its partner copy).
# Every run must end with exit 0 (it fit) or exit 1 saying what could not be written, never with a
# signal (a SIGBUS in a copy into a mapped file, a crash in HDF5), never hang, and leave no
# `.partial`. The short deterministic cases are in tests/heat.rs and tests/local_level.rs.
# Needs root (mount).
#   scripts/stress-full-disk.sh                       both levels, their default ranges
#   LEVELS=local FROM=1000 TO=2600 STEP=32 scripts/stress-full-disk.sh      (sizes in KiB)
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release --quiet --example heat || exit 1
heat=$PWD/${CARGO_TARGET_DIR:-target}/release/examples/heat
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1
mpirun=${RANKWISE_MPIRUN:-mpirun}
work=$(mktemp -d /tmp/rankwise-full-disk.XXXXXX)
disk=$work/disk
mkdir -p "$disk"
trap 'umount "$disk" 2>/dev/null; rm -rf "$work"' EXIT
failed=0
for level in ${LEVELS:-shared local}; do
  case $level in
    shared) range=(${FROM:-900} ${STEP:-16} ${TO:-1400}); sets=(--set checkpoint.dir="$disk/ckpt" --set checkpoint.keep=2) ;;
    local) range=(${FROM:-1000} ${STEP:-32} ${TO:-2600}); sets=(--set checkpoint.dir="$work/shared" --set checkpoint.local="$disk/local" --set checkpoint.flush_every=100) ;;
    *) echo "unknown level $level (shared or local)"; exit 2 ;;
  esac
  for kib in $(seq "${range[@]}"); do
    rm -rf "$work/shared"
    mount -t tmpfs -o size="${kib}k" tmpfs "$disk" || exit 1
    out=$(timeout 300 "$mpirun" -np 2 "$heat" --set n=256 --set steps=60 --set checkpoint.every=10 "${sets[@]}" 2>&1)
    rc=$?
    partial=$(find "$disk" "$work" -name '*.partial' 2>/dev/null | head -3 | tr '\n' ' ')
    verdict=ok
    case $rc in
      0) ;;
      1) grep -q "error: .*\(No space left on device\|bytes free\)" <<<"$out" || verdict="exit 1 without saying the disk is full" ;;
      124) verdict="hung" ;;
      *) verdict="exit $rc (a signal or a crash)" ;;
    esac
    [ -z "$partial" ] || verdict="left $partial"
    echo "$level ${kib} KiB: exit $rc, $verdict"
    if [ "$verdict" != ok ]; then
      failed=$((failed + 1))
      tail -5 <<<"$out" | sed 's/^/    /'
    fi
    umount "$disk"
  done
done
echo "full-disk stress: $failed failed"
[ "$failed" -eq 0 ]
