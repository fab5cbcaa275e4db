"""Heat diffusion on the periodic unit square or cube, from Python: the Rust heat example
(examples/heat.rs) with the same inputs, the same kernels on numpy views of Rankwise's fields, and
the same final line and checksum for the same inputs, on any rank count.

The initial state is one Fourier mode, ``u = prod_i sin(2 pi x_i)``, whose exact solution decays as
``exp(-4 pi^2 dim alpha t)``: the final line gives the error against it, and a checksum of the
field's bits. Checkpoints every ``checkpoint.every`` steps; a run restarts from the newest valid
one in ``checkpoint.dir``, written on any rank count.

    rankwise run -n 4 python3 examples/python/heat.py -i examples/inputs/heat.toml --set n=256
    mpirun -np 4 python3 examples/python/heat.py -i examples/inputs/heat.toml
"""

import math
import os
import sys
import time as clock

import numpy as np
from mpi4py import MPI

import rankwise


def inputs(cfg):
    """The run's inputs, checked as the Rust example checks them."""
    n = cfg.get("n", 64)
    dim = cfg.get("dim", 2)
    alpha = cfg.get("alpha", 1.0)
    cfl = cfg.get("cfl", 0.5)
    backend = cfg.get("backend", "cpu")
    if n < 2:
        raise cfg.invalid("n", "need at least 2 cells per side")
    if dim not in (2, 3):
        raise cfg.invalid("dim", "must be 2 or 3")
    if not alpha > 0.0 or not (0.0 < cfl <= 1.0):
        raise rankwise.InputError("alpha must be positive and cfl in (0, 1]")
    if backend not in ("cpu", "cuda", "auto"):
        raise cfg.invalid("backend", "expected cpu, cuda or auto")
    # Forward Euler is stable for dt <= h^2 / (2 dim alpha); the same operations as in Rust.
    h = 1.0 / n
    dt = cfl * h * h / (2.0 * dim * alpha)
    steps = cfg.get("steps", 100)
    t_end = cfg.get_float("t_end")
    if t_end is not None:
        steps = math.ceil(t_end / dt)
        dt = t_end / steps
    every = cfg.get("checkpoint.every", 0)
    ckpt_dir = cfg.get_str("checkpoint.dir")
    if every > 0 and ckpt_dir is None:
        raise cfg.invalid("checkpoint.every", "needs checkpoint.dir (where to write them)")
    mode = cfg.get("checkpoint.mode", "sync")
    if mode not in ("sync", "async"):
        raise cfg.invalid("checkpoint.mode", "expected sync or async")
    local = cfg.get_str("checkpoint.local")
    if local is not None and ckpt_dir is None:
        raise cfg.invalid("checkpoint.local", "needs checkpoint.dir (the shared level)")
    flush_every = cfg.get("checkpoint.flush_every", 10 if local is not None else 1)
    if flush_every == 0:
        raise cfg.invalid("checkpoint.flush_every", "must be at least 1")
    if flush_every > 1 and local is None:
        raise cfg.invalid("checkpoint.flush_every", "needs checkpoint.local (where the others go)")
    out_dir = cfg.get_str("output.dir")
    # `output.png`: true (the default: heat-final.png in output.dir, if given), false, or a path.
    try:
        png_flag = cfg.get_bool("output.png")
        png = None if png_flag is False else (os.path.join(out_dir, "heat-final.png") if out_dir else None)
    except rankwise.InputError:
        png = cfg.get_str("output.png")
    margin = cfg.get("stop.margin", 30.0)
    if not 0.0 <= margin <= 86400.0:
        raise cfg.invalid("stop.margin", "must be between 0 and 86400 seconds")
    inp = dict(n=n, dim=dim, steps=steps, alpha=alpha, dt=dt, backend=backend, ckpt_dir=ckpt_dir,
               ckpt_every=every, ckpt_keep=cfg.get("checkpoint.keep", 2),
               ckpt_async=mode == "async", ckpt_local=local, flush_every=flush_every,
               progress_every=cfg.get("progress.every", 0), out_dir=out_dir, png=png, margin=margin)
    cfg.finish()
    return inp


def mode(start, shape, h, decay=1.0):
    """``decay * prod_i sin(2 pi (k_i + 0.5) h)`` on the block at ``start`` of ``shape``, with the
    C library's sin and the Rust example's order of operations: the same bits."""
    axes = [np.array([math.sin(2.0 * math.pi * (s + k + 0.5) * h) for k in range(m)]) for s, m in zip(start, shape)]
    out = axes[0].reshape([-1] + [1] * (len(axes) - 1))
    for i, a in enumerate(axes[1:], 1):
        out = out * a.reshape([1] * i + [-1] + [1] * (len(axes) - 1 - i))
    return decay * out


def heat_step(u, v, h, nu_dt, be):
    """One explicit step ``v = u + nu_dt lap(u)``: the cells that need no ghost while the halo
    exchange runs, then the shell next to the ghosts."""
    inner, shell = rankwise.overlap_boxes(u.interior.shape, 1)
    ex = u.begin_exchange("star")
    update(u, v, inner, h, nu_dt, be)
    ex.finish()
    for cells in shell:
        update(u, v, cells, h, nu_dt, be)


def update(u, v, cells, h, nu_dt, be):
    """The heat kernel on the owned cells ``cells`` (slices of owned-cell indices): with one
    ghost layer, owned cell i sits at data index i + 1, so the block with its ghosts is
    data[start : stop + 2]."""
    if any(c.stop <= c.start for c in cells):
        return
    block = tuple(slice(c.start, c.stop + 2) for c in cells)
    rankwise.heat_step(u.data[block], v.data[block], 1, [h] * len(cells), nu_dt, backend=be)


def rust_e(x):
    """``x`` as Rust's ``{:.6e}`` writes it (``1.234560e-3``, no padded exponent)."""
    mantissa, exponent = f"{x:.6e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def run(rt):
    cfg = rankwise.Config(runtime=rt)
    inp = inputs(cfg)
    n, dim = inp["n"], inp["dim"]
    d = rankwise.Decomposition(rt, [n] * dim, periodic=[True] * dim)
    u, v = rankwise.Field(d, 1), rankwise.Field(d, 1)
    h = 1.0 / n
    u.interior[...] = mode(u.start, u.interior.shape, h)
    params = {"n": n, "dim": dim, "alpha": inp["alpha"]}

    if inp["ckpt_async"] and MPI.Query_thread() != MPI.THREAD_MULTIPLE:
        raise rankwise.InputError("checkpoint.mode = async needs MPI_THREAD_MULTIPLE; mpi4py initialised MPI with less (mpi4py.rc.thread_level)")
    catalogue = None
    if inp["ckpt_dir"]:
        # Synchronous: written and committed on return. Otherwise a snapshot: to the node-local
        # level, and to the shared file (every flush_every-th, and before a stop), in the
        # background if asynchronous; the next checkpoint, a stop and the end wait for it.
        catalogue = rankwise.Checkpoints(inp["ckpt_dir"], keep=inp["ckpt_keep"], asynchronous=inp["ckpt_async"],
                                         local=inp["ckpt_local"], flush_every=inp["flush_every"] if inp["ckpt_local"] else None)
        catalogue.make(rt)  # a folder that cannot be used is bad input now, not at the first checkpoint
    step = 0
    if catalogue is not None:
        try:
            restored = catalogue.restore({"u": u}, expect=params)
        except rankwise.InputError as e:
            raise rankwise.InputError(f"{e}: use another checkpoint.dir, or move that one away") from None
        skipped = len(restored.skipped) if restored else len(catalogue.list())
        skipped = f"; {skipped} newer damaged checkpoint(s) skipped" if skipped else ""
        if restored:
            step = restored.step
            rt.log(f"restarted from step {step} ({restored.info.ranks} ranks wrote it, {rt.size} now): {restored.info.path}{skipped}")
        elif skipped:
            rt.log(f"no valid checkpoint in {catalogue.path}{skipped}: starting from step 0", "warn")

    # All ranks decide together: "cuda" is bad input unless every rank has a GPU.
    try:
        be, why = rankwise.Backend(inp["backend"], rt.gpu or 0), None
    except rankwise.BackendError as e:
        be, why = None, str(e)
    whys = [w for w in MPI.COMM_WORLD.allgather(why) if w]
    if whys:
        raise cfg.invalid("backend", f"no usable GPU: {whys[0]}")
    policy = rankwise.StopPolicy(rt, margin=inp["margin"])
    nu_dt = inp["alpha"] * inp["dt"]
    t0, first = clock.perf_counter(), step
    while step < inp["steps"]:
        with rt.timer("step"):
            heat_step(u, v, h, nu_dt, be)
            u, v = v, u
        step += 1
        due = inp["ckpt_every"] > 0 and step % inp["ckpt_every"] == 0 and step < inp["steps"]
        decision = policy.check(step)
        if catalogue is not None and (due or decision.checkpoint):
            with rt.timer("checkpoint"):
                catalogue.wait()
                catalogue.write(step, step * inp["dt"], {"u": u}, params, stop=decision.stop)
        if decision.stop:
            if catalogue is not None:
                catalogue.wait()
                rt.log(f"stopping at step {step} ({decision.reason}); checkpoint written")
            else:
                rt.log(f"stopping at step {step} ({decision.reason}) without a checkpoint: no checkpoint.dir", "warn")
            return rankwise.EXIT_REQUEUE
        if inp["progress_every"] > 0 and step % inp["progress_every"] == 0:
            rate = (step - first) / (clock.perf_counter() - t0)
            rt.log(f"step {step}/{inp['steps']} t={step * inp['dt']:.6f} {rate:.1f} steps/s, {(inp['steps'] - step) / rate:.0f} s left")

    if catalogue is not None:
        catalogue.clear_local(rt)

    # Error against the exact decay of the mode (exact sums: the same on any rank count), and the
    # field's position-keyed checksum.
    t = inp["steps"] * inp["dt"]
    decay = math.exp(-4.0 * (math.pi * math.pi) * dim * inp["alpha"] * t)
    v.interior[...] = u.interior - mode(u.start, u.interior.shape, h, decay)
    l2 = math.sqrt(v.dot(v) / (n ** dim))
    checksum = rankwise.field_checksum(u)
    if rt.rank == 0:
        # One write: under mpirun stdout is unbuffered, and print's separate newline would split
        # the line in mpirun's tagged output.
        sys.stdout.write(f"final step={inp['steps']} time={rust_e(t)} l2_error={rust_e(l2)} checksum={checksum:016x}\n")
        sys.stdout.flush()
    if inp["out_dir"]:
        path = rankwise.write_output(os.path.join(inp["out_dir"], "heat-final.h5"), inp["steps"], t, {"u": u}, params)
        rt.log(f"wrote {path} and {os.path.splitext(path)[0]}.xmf")
    if inp["png"]:
        lo_hi = rankwise.write_png(u, inp["png"])
        if lo_hi:
            rt.log(f"wrote {inp['png']} (colours from {rust_e(lo_hi[0])} to {rust_e(lo_hi[1])})")
    return 0


def main():
    rt = rankwise.Runtime(MPI.COMM_WORLD)
    try:
        code = run(rt)
    except rankwise.InputError as e:
        # Every rank reads the same inputs and checkpoints, so every rank stops here: one line.
        if rt.rank == 0:
            print(f"error: {e}", file=sys.stderr, flush=True)
        code = rankwise.EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - a rank that fails alone must not leave the others waiting
        rt.abort(f"error: {type(e).__name__}: {e}", 1)
    rt.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
