"""What calling Rankwise from Python costs: the same work looped in Python (through the package)
and in Rust (the package's reference loops, same process, same memory), in alternating rounds.

    mpirun -np 2 python3 python/benchmarks/bench.py [ROUNDS]     (scripts/bench-python.sh runs it)

1. A 1024x1024 explicit heat step (``rankwise.heat_step`` on 1026x1026 arrays with one ghost
   layer), on rank 0 alone; target: Python at most 1.10x Rust.
2. A halo exchange of 1 MiB faces (``Field.exchange``: 131072 doubles per face, 2 ranks on a
   [2, 1] grid), the slowest rank's time; target: at most 1.10x.

Each call is timed alone (the exchange after a barrier, as its slowest rank saw it), and each
figure is the fastest call: the machine is shared, and slower calls are mostly other processes'
time slices.
"""

import sys
import time

import numpy as np
from mpi4py import MPI

import rankwise
from rankwise import _rankwise


def heat(rounds):
    n = 1024
    init = np.fromfunction(lambda i, j: ((i * (n + 2) + j) % 97) / 97.0, (n + 2, n + 2))
    u, v = init.copy(), init.copy()
    h = [1.0 / n, 1.0 / n]
    nu_dt = 0.2 * h[0] * h[0]  # stable: no NaN in the timing
    calls = 50
    best_py = best_rs = float("inf")
    for _ in range(rounds):
        for i in range(calls):
            src, dst = (u, v) if i % 2 == 0 else (v, u)
            t0 = time.perf_counter()
            rankwise.heat_step(src, dst, 1, h, nu_dt)
            best_py = min(best_py, time.perf_counter() - t0)
        best_rs = min(best_rs, min(_rankwise._reference_heat_steps(u, v, calls, h, nu_dt)))
    return best_py, best_rs


def halo(rt, comm, rounds):
    m = (1 << 20) // 8
    d = rankwise.Decomposition(rt, [4 * rt.size, m], periodic=[False, False], grid=[rt.size, 1])
    f = rankwise.Field(d, 1)
    f.interior[...] = 1.0
    calls = 50
    # Per call, after a barrier: the slowest rank's time; the best call of all.
    def slowest(ts):
        out = np.empty_like(ts)
        comm.Allreduce(ts, out, op=MPI.MAX)
        return out

    best_py = best_rs = float("inf")
    for _ in range(rounds):
        ts = np.empty(calls)
        for i in range(calls):
            comm.Barrier()
            t0 = time.perf_counter()
            f.exchange("star")
            ts[i] = time.perf_counter() - t0
        best_py = min(best_py, slowest(ts).min())
        best_rs = min(best_rs, slowest(np.array(_rankwise._reference_exchanges(f, calls))).min())
    return best_py, best_rs


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    comm = MPI.COMM_WORLD
    rt = rankwise.Runtime(comm)
    if rt.size < 2:
        rt.close()
        sys.exit("error: run on 2 ranks (the halo exchange needs a neighbour): mpirun -np 2 python3 python/benchmarks/bench.py")
    if rt.rank == 0:
        py, rs = heat(rounds)
        sys.stdout.write(f"RESULT what=heat n=1024 python_us={py * 1e6:.1f} rust_us={rs * 1e6:.1f} ratio={py / rs:.3f}\n")
    comm.Barrier()
    py, rs = halo(rt, comm, rounds)
    if rt.rank == 0:
        sys.stdout.write(f"RESULT what=halo face_bytes=1048576 python_us={py * 1e6:.1f} rust_us={rs * 1e6:.1f} ratio={py / rs:.3f}\n")
        sys.stdout.flush()
    rt.close()


if __name__ == "__main__":
    main()
