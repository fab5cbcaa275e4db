"""Rankwise for Python: the Rankwise runtime, kernels and checkpoints on numpy arrays and mpi4py
communicators.

``from mpi4py import MPI`` initialises MPI (mpi4py finalises it at exit); Rankwise neither
initialises nor finalises it, and works on a duplicate of the communicator it is given::

    import rankwise
    rt = rankwise.Runtime()                       # MPI.COMM_WORLD, or Runtime(comm)
    d = rankwise.Decomposition(rt, [256, 256], periodic=[True, True])
    u = rankwise.Field(d, ghost=1)                # u.data, u.interior: numpy views, no copies
    u.exchange()                                  # or ex = u.begin_exchange(); ...; ex.finish()

Every error is a :class:`RankwiseError` (bad input: :class:`InputError`; arrays:
:class:`ShapeError`; files: :class:`CheckpointError`; ...). A failure inside a collective call
that would leave the other ranks waiting aborts the job with a message instead.
"""

# mpi4py first: it initialises MPI and loads the MPI library for the whole process, which the
# extension then shares.
from mpi4py import MPI as _MPI  # noqa: F401

from ._rankwise import *  # noqa: F401,F403
from ._rankwise import (  # noqa: F401
    RankwiseError, InputError, ShapeError, MpiError, CheckpointError, LinalgError, BackendError,
    Backend, CsrMatrix, Runtime, Timer, Config, Decomposition, Field, Exchange, StopPolicy,
    StopAction, StopDecision, Checkpoints, CheckpointInfo, Restored, EXIT_REQUEUE, EXIT_BAD_INPUT,
)


def _one_mpi():
    """Refuse a process with two MPI libraries (mpi4py built for one MPI, Rankwise for another),
    which would crash at the first MPI call. Each MPI maps one core library (Open MPI's
    libmpi.so.40, MPICH's libmpich.so.12, Intel MPI's libmpi.so.12): more than one is two MPIs."""
    try:
        with open("/proc/self/maps") as maps:
            names = {line.rsplit("/", 1)[-1].strip() for line in maps if "/libmpi" in line}
    except OSError:
        return
    core = sorted(n for n in names if n.startswith(("libmpi.so.", "libmpich.so.")))
    if len(core) > 1:
        raise ImportError(
            f"two MPI libraries in one process ({', '.join(core)}): mpi4py and Rankwise must be built for the same MPI"
        )


_one_mpi()

__all__ = [n for n in dir() if not n.startswith("_")]

import atexit as _atexit  # noqa: E402

from ._rankwise import _finish_background_checkpoint  # noqa: E402

# Registered after mpi4py's import, so it runs before mpi4py finalises MPI.
_atexit.register(_finish_background_checkpoint)
