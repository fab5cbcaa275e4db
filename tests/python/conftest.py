"""Fixtures for the Python package's tests. Run under mpirun at any rank count (tests/python.rs
does, at 1-4 ranks): every rank runs every test, in the same order."""

import os
import shutil
import tempfile

import pytest
from mpi4py import MPI

import rankwise


@pytest.fixture(scope="session")
def comm():
    return MPI.COMM_WORLD


@pytest.fixture(scope="session")
def rt(comm):
    r = rankwise.Runtime(comm)
    yield r
    r.close()


@pytest.fixture
def shared_dir(comm):
    """A fresh folder that every rank sees (rank 0 makes it and tells the others)."""
    path = None
    if comm.rank == 0:
        path = tempfile.mkdtemp(prefix="rankwise-py-", dir=os.environ.get("RANKWISE_TEST_SCRATCH"))
    path = comm.bcast(path, root=0)
    yield path
    comm.Barrier()
    if comm.rank == 0:
        shutil.rmtree(path, ignore_errors=True)
