#!/usr/bin/env bash
# What calling Rankwise from Python costs (python/benchmarks/bench.py): a 1024x1024 heat step and a halo
# exchange of 1 MiB faces, each looped in Python through the package and in Rust (the package's
# reference loops) in one run, alternating rounds of 50 calls timed one by one, the fastest call of
# ROUNDS rounds and REPEAT runs; targets: at most 1.10x.
#   scripts/bench-python.sh        ROUNDS=5 REPEAT=3
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ROUNDS=${ROUNDS:-5} REPEAT=${REPEAT:-3}
PY=${RANKWISE_PYTHON:-/usr/bin/python3}
site=${CARGO_TARGET_DIR:-$PWD/target}/python-bench-site
rm -rf "$site"
PATH="$PWD/target/python-tools/bin:$PATH" PYTHONPATH="$PWD/target/python-tools" PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore \
  "$PY" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps --target "$site" ./python
export RAYON_NUM_THREADS=1 OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader} OMPI_MCA_oob_tcp_if_include=${OMPI_MCA_oob_tcp_if_include:-lo}
out=""
for _ in $(seq "$REPEAT"); do
  out+=$(PYTHONPATH="$site" ${RANKWISE_MPIRUN:-mpirun} -np 2 "$PY" python/benchmarks/bench.py "$ROUNDS")$'\n'
done
echo "Python vs Rust, one thread per rank, fastest call of $((ROUNDS * REPEAT)) rounds of 50 ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
printf '%-34s %12s %12s %9s\n' "" "Python us" "Rust us" "Py/Rust"
for what in heat halo; do
  best() { grep "what=$what " <<<"$out" | sed "s/.*$1_us=\\([^ ]*\\).*/\\1/" | sort -g | head -1; }
  py=$(best python) rs=$(best rust)
  label=$([ "$what" = heat ] && echo "heat step 1024x1024 (rank 0)" || echo "halo exchange, 1 MiB faces (2 ranks)")
  awk -v l="$label" -v p="$py" -v r="$rs" 'BEGIN { printf "%-34s %12.1f %12.1f %8.3fx\n", l, p, r, p / r }'
done
