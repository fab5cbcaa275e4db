"""What calling Rankwise from Python costs: the same work looped in Python (through the package)
and in Rust (the package's reference loops, same process, same memory), in alternating rounds.

    mpirun -np 2 python3 python/benchmarks/bench.py [ROUNDS]     (scripts/bench-python.sh runs it)

1. A 1024x1024 explicit heat step (``rankwise.heat_step`` on 1026x1026 arrays with one ghost
   layer), on rank 0 alone; target: Python at most 1.10x Rust.
2. A halo exchange of 1 MiB faces (``Field.exchange``: 131072 doubles per face, 2 ranks on a
   [2, 1] grid), the slowest rank's time; target: at most 1.10x.

Each figure is the best round (the machine is shared; slower rounds are other processes' time).
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
    calls = 200
    best_py = best_rs = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(calls):
            if i % 2 == 0:
                rankwise.heat_step(u, v, 1, h, nu_dt)
            else:
                rankwise.heat_step(v, u, 1, h, nu_dt)
        best_py = min(best_py, (time.perf_counter() - t0) / calls)
        best_rs = min(best_rs, _rankwise._reference_heat_steps(u, v, calls, h, nu_dt) / calls)
    return best_py, best_rs


def halo(rt, comm, rounds):
    m = (1 << 20) // 8
    d = rankwise.Decomposition(rt, [4 * rt.size, m], periodic=[False, False], grid=[rt.size, 1])
    f = rankwise.Field(d, 1)
    f.interior[...] = 1.0
    calls = 200
    slowest = lambda t: comm.allreduce(t, op=MPI.MAX)  # noqa: E731
    best_py = best_rs = float("inf")
    for _ in range(rounds):
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(calls):
            f.exchange("star")
        best_py = min(best_py, slowest(time.perf_counter() - t0) / calls)
        comm.Barrier()
        best_rs = min(best_rs, slowest(_rankwise._reference_exchanges(f, calls)) / calls)
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
