"""Checkpoints from Python at any rank count: written, listed, verified, restored on the same
decomposition or a one-rank one; another run's checkpoint is refused with the fields untouched;
a damaged newest checkpoint is skipped for the previous one."""

import os

import numpy as np
import pytest
from mpi4py import MPI

import rankwise


def field(rt, shape, value):
    d = rankwise.Decomposition(rt, shape, periodic=[True] * len(shape))
    f = rankwise.Field(d, 1)
    sl = tuple(slice(r.start, r.stop) for r in d.owned)
    f.interior[...] = value[sl]
    return f


def test_write_list_verify_restore(rt, comm, shared_dir):
    shape = [12, 10]
    whole = np.arange(120.0).reshape(shape)
    u = field(rt, shape, whole)
    ck = rankwise.Checkpoints(shared_dir, keep=2)
    for step in (10, 20, 30):
        path = ck.write(step, step * 0.5, {"u": u}, {"n": 12, "alpha": 1.0, "scheme": "euler", "flag": True})
    assert os.path.basename(path) == "ckpt-0000000030.h5"
    listed = ck.list()
    assert [os.path.basename(p) for p, _ in listed] == ["ckpt-0000000020.h5", "ckpt-0000000030.h5"]
    info = rankwise.verify(listed[-1][0])
    assert info.step == 30 and info.time == 15.0 and info.ranks == comm.size and info.fields == ["u"]
    assert info.params == {"n": 12, "alpha": 1.0, "scheme": "euler", "flag": True}
    assert rankwise.inspect(listed[0][0]).step == 20
    newest, bad = ck.newest_valid()
    assert newest.step == 30 and bad == []

    v = field(rt, shape, np.zeros(shape))
    r = ck.restore({"u": v}, expect={"n": 12, "alpha": 1.0})
    assert r is not None and r.step == 30 and r.time == 15.0 and r.skipped == [] and r.info.ranks == comm.size
    np.testing.assert_array_equal(v.interior, u.interior)
    # On another decomposition: one rank reads the whole field back.
    one = rankwise.Runtime(MPI.COMM_SELF)
    w = field(one, shape, np.zeros(shape))
    assert ck.restore({"u": w}).step == 30
    np.testing.assert_array_equal(w.interior, whole)
    one.close()


def test_another_runs_checkpoint_is_refused_and_the_fields_untouched(rt, shared_dir):
    shape = [6, 6]
    u = field(rt, shape, np.ones(shape))
    ck = rankwise.Checkpoints(shared_dir)
    ck.write(5, 1.0, {"u": u}, {"alpha": 1.0})
    v = field(rt, shape, np.full(shape, 7.0))
    with pytest.raises(rankwise.InputError, match="written with alpha = 1.0, this run has alpha = 2.0"):
        ck.restore({"u": v}, expect={"alpha": 2.0})
    assert (v.interior == 7.0).all()
    with pytest.raises(rankwise.InputError, match="no field `p`"):
        ck.restore({"p": v})
    assert (v.interior == 7.0).all()
    bigger = field(rt, [8, 6], np.zeros((8, 6)))
    with pytest.raises(rankwise.InputError, match="global shape"):
        ck.restore({"u": bigger})


def test_no_checkpoint_is_none(rt, shared_dir):
    u = field(rt, [4, 4], np.full((4, 4), 3.0))
    assert rankwise.Checkpoints(os.path.join(shared_dir, "empty")).restore({"u": u}) is None
    assert (u.interior == 3.0).all()


def test_a_damaged_checkpoint_is_skipped(rt, comm, shared_dir):
    shape = [16, 16]
    u = field(rt, shape, np.full(shape, 1.0))
    ck = rankwise.Checkpoints(shared_dir, keep=0)
    ck.write(1, 0.1, {"u": u})
    u.interior[...] = 2.0
    newest = ck.write(2, 0.2, {"u": u})
    comm.Barrier()
    if rt.rank == 0:
        # Flip bytes in the middle of the field's data.
        size = os.path.getsize(newest)
        with open(newest, "r+b") as f:
            f.seek(size - 1024)
            f.write(bytes(b ^ 0xFF for b in f.read(512)))
    comm.Barrier()
    with pytest.raises(rankwise.CheckpointError, match="corrupt"):
        rankwise.verify(newest)
    newest_ok, bad = ck.newest_valid()
    assert newest_ok.step == 1 and len(bad) == 1
    v = field(rt, shape, np.zeros(shape))
    r = ck.restore({"u": v})
    assert r.step == 1 and len(r.skipped) == 1 and "ckpt-0000000002.h5" in r.skipped[0]
    assert (v.interior == 1.0).all()


def test_bad_arguments(rt, shared_dir):
    u = field(rt, [4, 4], np.zeros((4, 4)))
    ck = rankwise.Checkpoints(shared_dir)
    with pytest.raises(rankwise.InputError, match="no fields"):
        ck.write(1, 0.0, {})
    with pytest.raises(rankwise.ShapeError, match="`u` is not a rankwise.Field"):
        ck.write(1, 0.0, {"u": np.zeros(3)})
    with pytest.raises(rankwise.InputError, match="parameter `p`"):
        ck.write(1, 0.0, {"u": u}, {"p": [1, 2]})
    with pytest.raises(rankwise.CheckpointError):
        rankwise.verify(os.path.join(shared_dir, "nothing.h5"))


def test_background_and_node_local_checkpoints(rt, shared_dir):
    shape = [10, 8]
    whole = np.arange(80.0).reshape(shape)
    u = field(rt, shape, whole)
    ck = rankwise.Checkpoints(os.path.join(shared_dir, "async"), asynchronous=True)
    ck.write(3, 0.3, {"u": u}, {"n": 10})
    u.interior[...] = -1.0  # the snapshot was taken at write: this does not reach the file
    committed = ck.wait()
    assert committed is not None and os.path.basename(committed) == "ckpt-0000000003.h5"
    assert ck.wait() is None
    v = field(rt, shape, np.zeros(shape))
    assert ck.restore({"u": v}, expect={"n": 10}).step == 3
    np.testing.assert_array_equal(v.interior, field(rt, shape, whole).interior)

    # A node-local level: only every 2nd checkpoint (and one before a stop) to the shared file.
    local = os.path.join(shared_dir, "local-%h")
    ck = rankwise.Checkpoints(os.path.join(shared_dir, "shared"), keep=0, local=local, flush_every=2)
    for step in (1, 2, 3):
        u.interior[...] = step
        ck.write(step, step * 1.0, {"u": u})
    ck.wait()
    assert [os.path.basename(p) for p, _ in ck.list()] == ["ckpt-0000000002.h5"]
    w = field(rt, shape, np.zeros(shape))
    r = ck.restore({"u": w})
    assert r.step == 3 and (w.interior == 3.0).all()
    ck.clear_local(rt)
    r = ck.restore({"u": w})
    assert r.step == 2 and (w.interior == 2.0).all()
    with pytest.raises(rankwise.InputError, match="flush_every needs local"):
        rankwise.Checkpoints(shared_dir, flush_every=3)
