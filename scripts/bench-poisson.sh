#!/usr/bin/env bash
# Time per CG iteration: the poisson example against two references, a fixed number of
# iterations (tolerance 0) at each size and rank count, the median of REPEAT rounds each:
#  - c: a hand-written matrix-free C + MPI CG (benchmarks/cg.c: the same grid, operator, slabs and
#    right-hand side; three fused passes per iteration). Target: ours <= 1.0x with cg.dot=rows,
#    <= 0.9x with cg.dot=plain.
#  - petsc: PETSc's KSPCG (benchmarks/petsc_cg.c: the same problem as an assembled AIJ matrix,
#    PCNONE). PETSc comes from the distribution; PETSC=0 leaves it out.
# Ours runs with each dot product of DOTS (rows, exact, plain; rows-separate or plain-separate
# run with cg.fuse=false: the separate loops instead of the two sweeps, the same bits, to show what
# the fusion gains); the ratios are ours / reference, of the wall time and
# of the CPU time (which leaves out waiting for a core on a loaded machine). All runs of a round
# take turns, so that a burst of load on the machine hits each of them.
#   scripts/bench-poisson.sh              N = 1024 and 2048, at 1 and 2 ranks, 300 iterations
#   NS=512 RANKS="1 2 4" ITERS=100 REPEAT=5 DOTS=rows PETSC=0 scripts/bench-poisson.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
NS=${NS:-"1024 2048"} RANKS=${RANKS:-"1 2"} ITERS=${ITERS:-300} REPEAT=${REPEAT:-3} DOTS=${DOTS:-"rows exact plain"}
PETSC=${PETSC:-1}

cargo build --release --quiet --example poisson
target=${CARGO_TARGET_DIR:-target}/release
mpicc -O3 -o "$target/cg-c" benchmarks/cg.c -lm
refs="c"
if [ "$PETSC" = 1 ]; then
  # PETSc from the distribution (Debian/Ubuntu petsc-dev), only for this benchmark.
  export PKG_CONFIG_PATH="${PETSC_DIR:-/usr/lib/petsc}/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  if ! pkg-config --exists PETSc; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "bench-poisson: installing petsc-dev" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends petsc-dev >/dev/null
  fi
  # Debian's PETSc is built on OpenMPI: its driver builds and runs with OpenMPI whatever RANKWISE_MPI says.
  "$(command -v mpicc.openmpi || echo mpicc)" -O3 -o "$target/petsc-cg" benchmarks/petsc_cg.c $(pkg-config --cflags --libs PETSc)
  petsc_mpirun=$(command -v mpirun.openmpi || echo mpirun)
  refs+=" petsc"
fi
cores=$(nproc)

# Shared memory and loopback only; one thread per rank for both (PETSc's BLAS is threaded).
export OMPI_MCA_btl=self,vader OMPI_MCA_oob_tcp_if_include=lo OMPI_MCA_rmaps_base_oversubscribe=1 \
  OMPI_MCA_mpi_yield_when_idle=1 RAYON_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
mpirun=${RANKWISE_MPIRUN:-mpirun}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
median() { # the median of key $1 (s_per_iter or cpu_per_iter) in lines $2
  awk -v key="$1" '{ for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) { split($i, a, "="); print a[2] } }' <<<"$2" |
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "poisson: CG on n x n cells, $ITERS iterations, median of $REPEAT rounds, $cores cores, load $(cut -d' ' -f1 /proc/loadavg)"
for n in $NS; do
  for np in $RANKS; do
    declare -A lines=()
    for _ in $(seq "$REPEAT"); do
      lines[c]+=$($mpirun -np "$np" "$target/cg-c" "$n" "$ITERS" | grep '^RESULT')$'\n'
      if [ "$PETSC" = 1 ]; then
        lines[petsc]+=$($petsc_mpirun -np "$np" "$target/petsc-cg" "$n" "$ITERS" | grep '^RESULT')$'\n'
      fi
      for dot in $DOTS; do
        fuse=true; [ "${dot%-separate}" = "$dot" ] || fuse=false
        lines[$dot]+=$($mpirun -np "$np" "$target/examples/poisson" --set n="$n" --set cg.tol=0 --set cg.max_iter="$ITERS" \
          --set cg.dot="${dot%-separate}" --set cg.fuse=$fuse 2>/dev/null | grep '^final')$'\n'
      done
    done
    for ref in $refs; do printf '%s' "${lines[$ref]}"; done
    for dot in $DOTS; do
      printf '%s' "${lines[$dot]}"
      ours=$(head -1 <<<"${lines[$dot]}")
      for ref in $refs; do
        theirs=$(head -1 <<<"${lines[$ref]}")
        # Same operator, right-hand side and algorithm: the residuals agree to rounding (or both
        # are rounding noise, once CG has converged).
        if ! awk -v a="$(field residual "$theirs")" -v b="$(field residual "$ours")" \
          'BEGIN { d = a - b; exit !(d * d <= 1e-12 * a * a || (a < 1e-10 && b < 1e-10)) }'; then
          echo "error: residuals of $ref and ours differ at n=$n np=$np: not the same computation" >&2; exit 1
        fi
        awk -v n="$n" -v np="$np" -v dot="$dot" -v ref="$ref" \
          -v r="$(median s_per_iter "${lines[$dot]}")" -v c="$(median s_per_iter "${lines[$ref]}")" \
          -v rc="$(median cpu_per_iter "${lines[$dot]}")" -v cc="$(median cpu_per_iter "${lines[$ref]}")" \
          'BEGIN { printf "n=%s np=%s dot=%s rankwise/%s = %.3f wall (%.3e s / %.3e s per iteration), %.3f cpu (%.3e s / %.3e s)\n",
                   n, np, dot, ref, r / c, r, c, rc / cc, rc, cc }'
      done
    done
    unset lines
  done
done
