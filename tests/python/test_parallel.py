"""The runtime on an mpi4py communicator, at any rank count: fields whose blocks are numpy views
of Rankwise's memory, halo exchange (one call and split phase), exact reductions, timers, the
stop policy, the inputs."""

import math
import os
import signal
import time

import numpy as np
import pytest
from mpi4py import MPI

import rankwise


def global_value(idx, shape):
    """A value per global cell that tells every cell apart."""
    v = 0.0
    for i, n in zip(idx, shape):
        v = v * 1000 + (i % n)
    return v + 0.25


def fill(field, shape):
    start = field.start
    it = np.nditer(field.interior, flags=["multi_index"], op_flags=["writeonly"])
    for x in it:
        x[...] = global_value([s + i for s, i in zip(start, it.multi_index)], shape)


def test_runtime_on_the_callers_communicator(rt, comm):
    assert (rt.rank, rt.size) == (comm.rank, comm.size)
    assert 0 <= rt.local_rank < rt.size and rt.host
    # A runtime on a sub-communicator: its own ranks; the caller's communicators stay usable.
    sub = comm.Split(comm.rank % 2, comm.rank)
    r2 = rankwise.Runtime(sub)
    assert (r2.rank, r2.size) == (sub.rank, sub.size)
    r2.close()
    r2.close()  # a second close does nothing
    with pytest.raises(rankwise.RankwiseError, match="closed"):
        r2.rank
    assert sub.allreduce(1) == sub.size
    sub.Free()
    assert comm.allreduce(1) == comm.size


def test_not_a_communicator(rt):
    with pytest.raises(rankwise.MpiError, match="an mpi4py communicator .* was expected, not int"):
        rankwise.Runtime(3)
    with pytest.raises(rankwise.MpiError, match="inter-communicator|COMM_NULL"):
        rankwise.Runtime(MPI.COMM_NULL)


def test_decomposition_covers_the_global_shape(rt, comm):
    d = rankwise.Decomposition(rt, [13, 7], periodic=[True, False])
    assert d.shape == [13, 7] and math.prod(d.grid) == comm.size
    cells = comm.allreduce(math.prod(len(r) for r in d.owned))
    assert cells == 13 * 7
    assert d.local_shape == [len(r) for r in d.owned]
    assert d.owned_by(rt.rank) == d.owned
    with pytest.raises(rankwise.InputError):
        rankwise.Decomposition(rt, [4, 4], grid=[comm.size + 1, 1])
    with pytest.raises(rankwise.ShapeError, match="1 to 3 dimensions"):
        rankwise.Decomposition(rt, [2, 2, 2, 2])


def test_field_blocks_are_views_of_rankwise_memory(rt):
    d = rankwise.Decomposition(rt, [8, 6], periodic=[True, True])
    u = rankwise.Field(d, ghost=2)
    data, interior = u.data, u.interior
    assert data.shape == tuple(n + 4 for n in d.local_shape) and interior.shape == tuple(d.local_shape)
    assert data.dtype == np.float64 and data.flags.writeable
    assert np.shares_memory(data, interior) and np.shares_memory(data, u.data)
    assert data.ctypes.data == u.data.ctypes.data  # the same memory each time, no copy
    interior[...] = 3.0
    assert (u.data[2:-2, 2:-2] == 3.0).all() and u.data[0, 0] == 0.0
    # A view keeps its field alive.
    del u
    assert (data[2:-2, 2:-2] == 3.0).all()


@pytest.mark.parametrize("stencil", ["star", "box"])
@pytest.mark.parametrize("split", [False, True])
def test_exchange_fills_ghosts_with_the_owners_values(rt, stencil, split):
    shape = [9, 10]
    d = rankwise.Decomposition(rt, shape, periodic=[True, True])
    u = rankwise.Field(d, ghost=1)
    fill(u, shape)
    before = u.data  # a view: it sees what the exchange writes
    if split:
        ex = u.begin_exchange(stencil)
        ex.finish()
        with pytest.raises(rankwise.MpiError, match="finished already"):
            ex.finish()
    else:
        u.exchange(stencil)
    o = u.origin
    for i in range(before.shape[0]):
        for j in range(before.shape[1]):
            corner = i in (0, before.shape[0] - 1) and j in (0, before.shape[1] - 1)
            want = global_value([o[0] + i, o[1] + j], shape)
            if corner and stencil == "star":
                continue
            assert before[i, j] == want, (i, j)


def test_exchange_as_context_and_bad_stencil(rt):
    d = rankwise.Decomposition(rt, [6, 6, 6], periodic=[True, True, True])
    u = rankwise.Field(d, 1)
    fill(u, [6, 6, 6])
    with u.begin_exchange("box"):
        pass
    o = u.origin
    assert u.data[0, 0, 0] == global_value([o[0], o[1], o[2]], [6, 6, 6])
    with pytest.raises(rankwise.InputError, match='stencil "plus"'):
        u.exchange("plus")


def test_exact_sum_and_dot_and_checksum(rt, comm):
    shape = [11, 5]
    d = rankwise.Decomposition(rt, shape, periodic=[False, False])
    u, v = rankwise.Field(d, 1), rankwise.Field(d, 1)
    # Values whose float sum depends on the order: the exact sum does not.
    rng = np.random.default_rng(7)
    whole = rng.standard_normal(shape) * 10.0 ** rng.integers(-8, 8, shape)
    sl = tuple(slice(r.start, r.stop) for r in d.owned)
    u.interior[...] = whole[sl]
    v.interior[...] = 2.0
    assert u.sum() == math.fsum(whole.ravel())
    assert u.dot(v) == math.fsum((2.0 * whole).ravel())
    assert u.min() == whole.min() and u.max() == whole.max()
    # The checksum is the one-rank checksum of the same global array.
    assert rankwise.field_checksum(u) == u.checksum()
    one = rankwise.Runtime(MPI.COMM_SELF)
    full = rankwise.Field(rankwise.Decomposition(one, shape), 0)
    full.interior[...] = whole
    assert full.checksum() == u.checksum()
    one.close()
    w = rankwise.Field(rankwise.Decomposition(rt, [5, 11]), 1)
    with pytest.raises(rankwise.ShapeError, match="different decompositions"):
        u.dot(w)


def test_gather_and_scatter(rt):
    shape = [7, 4]
    d = rankwise.Decomposition(rt, shape)
    u = rankwise.Field(d, 1)
    whole = np.arange(28.0).reshape(shape)
    u.scatter(whole if rt.rank == 0 else None)
    g = u.gather()
    if rt.rank == 0:
        np.testing.assert_array_equal(g, whole)
    else:
        assert g is None
    with pytest.raises(rankwise.ShapeError):
        u.scatter(np.zeros((3, 3)) if rt.rank == 0 else None)


def test_timers(rt):
    with rt.timer("py-work"):
        time.sleep(0.01)
    with rt.timer("py-work"):
        pass
    calls, seconds = rt.timer_get("py-work")
    assert calls == 2 and seconds >= 0.01
    assert rt.timer_get("never") == (0, 0.0)
    assert "py-work" in rt.timers_report()


def test_stop_policy(rt):
    p = rankwise.StopPolicy(rt, margin=0.0)
    d = p.check(1)
    assert d.action == rankwise.StopAction.CarryOn and not d.checkpoint and not d.stop
    # A wall time that runs out: checkpoint and stop, on every rank alike.
    p = rankwise.StopPolicy(rt, margin=0.0, wall_time=0.2)
    time.sleep(0.3)
    d = p.check(1)
    assert d.action == rankwise.StopAction.CheckpointAndStop and d.stop and d.reason == "time_limit"
    assert rankwise.EXIT_REQUEUE == 75
    # A signal on one rank (SIGTERM: stop) is every rank's decision at the next check.
    p = rankwise.StopPolicy(rt, margin=0.0)
    assert p.check(1).action == rankwise.StopAction.CarryOn
    if rt.rank == rt.size - 1:
        os.kill(os.getpid(), signal.SIGTERM)
    d = p.check(2)
    assert d.action == rankwise.StopAction.CheckpointAndStop and d.reason == "preemption"
    del p
    with pytest.raises(rankwise.InputError, match="margin"):
        rankwise.StopPolicy(rt, margin=-1.0)


def test_config(rt):
    c = rankwise.Config(["--set", "n=32", "--set", "name=run1", "--set", "checkpoint.every=5"])
    assert c.get("n", 0) == 32 and c.get("alpha", 1.5) == 1.5 and c.get("name", "") == "run1"
    assert c.get_int("checkpoint.every") == 5 and c.get_float("n") == 32.0 and c.get_str("missing") is None
    assert "n" in c and "missing" not in c
    c.finish()
    with pytest.raises(rankwise.InputError, match="stepz"):
        rankwise.Config(["--set", "stepz=4"]).finish()
    with pytest.raises(rankwise.InputError, match="n"):
        rankwise.Config(["--set", "n=abc"]).get("n", 1)
    with pytest.raises(rankwise.InputError):
        rankwise.Config(["--bogus"])
    t = rankwise.Config.from_toml("n = 4\n[stop]\nmargin = 2.5\n")
    assert t.get("stop.margin", 0.0) == 2.5
    err = t.invalid("n", "must be even")
    assert isinstance(err, rankwise.InputError) and "must be even" in str(err)
    # Collective: rank 0 reads, every rank gets the same.
    c = rankwise.Config(["--set", "n=8"], runtime=rt)
    assert c.get("n", 0) == 8
