"""Type hints for the Rankwise extension module (``rankwise._rankwise``, re-exported by ``rankwise``).

Arrays are numpy float64 arrays; kernels read and write them in place (no copies on the CPU).
"Collective" calls must be made by every rank of the communicator, in the same order.
"""

import os
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
PathLike = Union[str, os.PathLike]
ParamValue = Union[bool, int, float, str]

EXIT_REQUEUE: int
"""The exit code of a run that checkpointed and stopped early: "requeue me" (75)."""
EXIT_BAD_INPUT: int
"""The exit code of a run stopped by bad input (2)."""

class RankwiseError(Exception):
    """Every error Rankwise raises."""

class InputError(RankwiseError):
    """The user's input: an inputs key or value, an impossible decomposition, another run's checkpoint."""

class ShapeError(RankwiseError):
    """Arrays of the wrong dtype, shape or layout, or that share memory where they must not."""

class MpiError(RankwiseError):
    """MPI is not running, or the communicator or exchange cannot be used."""

class CheckpointError(RankwiseError):
    """Reading or writing checkpoints and output: a damaged file, a folder that cannot be written."""

class LinalgError(RankwiseError):
    """A factorisation failed."""

class BackendError(RankwiseError):
    """An unknown or unusable back end."""

# ---------------------------------------------------------------------------------------------
# Kernels (Not Collective)

class Backend:
    """Where kernels run: "cpu", "cuda" (device ``device``) or "auto" (CUDA when usable)."""
    def __init__(self, name: str = "cpu", device: int = 0) -> None: ...
    @property
    def name(self) -> str: ...

def laplacian(src: Array, dst: Array, ghost: int, h: Sequence[float], backend: Optional[Backend] = None) -> None:
    """``dst = lap(src)`` on the interior of a 2-D or 3-D block with ``ghost`` layers."""
def heat_step(src: Array, dst: Array, ghost: int, h: Sequence[float], nu_dt: float, backend: Optional[Backend] = None) -> None:
    """``dst = src + nu_dt * lap(src)`` on the interior of a 2-D or 3-D block."""
def jacobi(u: Array, f: Array, dst: Array, ghost: int, h: Sequence[float], omega: float = 1.0, backend: Optional[Backend] = None) -> None:
    """One weighted Jacobi sweep for ``-lap(u) = f`` into ``dst``."""
def axpy(a: float, x: Array, y: Array, backend: Optional[Backend] = None) -> None:
    """``y = a x + y``."""
def axpby(a: float, x: Array, b: float, y: Array, backend: Optional[Backend] = None) -> None:
    """``y = a x + b y``."""
def scale(a: float, x: Array, backend: Optional[Backend] = None) -> None:
    """``x = a x``."""
def fill(a: float, x: Array, backend: Optional[Backend] = None) -> None:
    """``x = a`` everywhere."""
def copy(x: Array, y: Array, backend: Optional[Backend] = None) -> None:
    """``y = x``."""
def dot(x: Array, y: Array, backend: Optional[Backend] = None) -> float:
    """``x . y`` of this process's arrays."""
def norm2(x: Array, backend: Optional[Backend] = None) -> float:
    """``sqrt(x . x)``."""

class CsrMatrix:
    """A CSR matrix (scipy's ``indptr``, ``indices``, ``data``) in a back end's memory."""
    def __init__(self, shape: Tuple[int, int], indptr: Sequence[int], indices: Sequence[int], data: Sequence[float], backend: Optional[Backend] = None) -> None: ...
    @property
    def shape(self) -> Tuple[int, int]: ...
    @property
    def nnz(self) -> int: ...
    def spmv(self, x: Array, y: Array) -> None:
        """``y = A x``."""

def spmv(a: CsrMatrix, x: Array, y: Array) -> None:
    """``y = a @ x``."""
def matmul(a: Array, b: Array, c: Array, backend: Optional[Backend] = None) -> None:
    """``c = a @ b``."""
def lu_solve(a: Array, b: Array) -> Array:
    """The solution of ``a x = b`` (LU with partial pivoting)."""
def cholesky(a: Array) -> Array:
    """The lower-triangular ``l`` with ``a = l l^T``."""
def eigh(a: Array) -> Tuple[Array, Array]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a symmetric ``a``."""

# ---------------------------------------------------------------------------------------------
# The runtime

class Runtime:
    """Collective over ``comm``. One rank's runtime on a duplicate of an mpi4py intra-communicator
    (``MPI.COMM_WORLD`` by default). Close it (or use ``with``) before MPI is finalised."""
    def __init__(self, comm: Optional[object] = None) -> None: ...
    @property
    def rank(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def local_rank(self) -> int: ...
    @property
    def host(self) -> str: ...
    @property
    def gpu(self) -> Optional[int]:
        """The CUDA device this rank is bound to, or None."""
    def timer(self, name: str) -> Timer:
        """A timer for a ``with`` block; times add up per name."""
    def timer_get(self, name: str) -> Tuple[int, float]:
        """Calls and total seconds of timer ``name`` on this rank."""
    def timers_report(self) -> str:
        """Collective. The timers' min/avg/max over ranks."""
    def log(self, message: str, level: str = "info") -> None:
        """Log as Rankwise programs do (``[rank N] LEVEL message`` on stderr)."""
    def abort(self, message: str, code: int = 1) -> None:
        """Abort every rank of the job after printing ``message``."""
    def close(self) -> None:
        """Collective. Print the timer report on rank 0 and free the communicators."""
    def __enter__(self) -> Runtime: ...
    def __exit__(self, t: Optional[type], v: Optional[BaseException], tb: Optional[TracebackType]) -> bool: ...

class Timer:
    def __enter__(self) -> Timer: ...
    def __exit__(self, t: Optional[type], v: Optional[BaseException], tb: Optional[TracebackType]) -> bool: ...

class Config:
    """A run's inputs: ``--inputs FILE`` (TOML) and ``--set key=value`` from ``args``
    (``sys.argv[1:]`` by default); with ``runtime``, rank 0 reads the file (collective)."""
    def __init__(self, args: Optional[List[str]] = None, runtime: Optional[Runtime] = None) -> None: ...
    @staticmethod
    def from_toml(text: str, name: str = "<string>") -> Config: ...
    def set(self, arg: str) -> None: ...
    def get(self, key: str, default: ParamValue) -> ParamValue:
        """The value of ``key`` of ``default``'s type, or ``default``."""
    def get_int(self, key: str) -> Optional[int]: ...
    def get_float(self, key: str) -> Optional[float]: ...
    def get_bool(self, key: str) -> Optional[bool]: ...
    def get_str(self, key: str) -> Optional[str]: ...
    def __contains__(self, key: str) -> bool: ...
    def invalid(self, key: str, message: str) -> InputError:
        """An InputError naming where ``key`` was given, to raise."""
    def finish(self) -> None:
        """Raise InputError for an input the program never asked for."""
    def dump(self) -> str: ...

class Decomposition:
    """Collective. A global index space of 1-3 dimensions split over the ranks."""
    def __init__(self, runtime: Runtime, shape: Sequence[int], periodic: Optional[Sequence[bool]] = None, grid: Optional[Sequence[int]] = None) -> None: ...
    @property
    def ndim(self) -> int: ...
    @property
    def shape(self) -> List[int]: ...
    @property
    def grid(self) -> List[int]: ...
    @property
    def periodic(self) -> List[bool]: ...
    @property
    def coords(self) -> List[int]: ...
    @property
    def owned(self) -> List[range]:
        """This rank's block: one range of global indices per dimension."""
    def owned_by(self, rank: int) -> List[range]: ...
    @property
    def local_shape(self) -> List[int]: ...
    def neighbour(self, offset: Sequence[int]) -> Optional[int]: ...

class Field:
    """One rank's block of a distributed float64 array with ``ghost`` layers; ``data`` and
    ``interior`` are numpy views of its memory."""
    def __init__(self, decomposition: Decomposition, ghost: int = 1) -> None: ...
    @property
    def data(self) -> Array:
        """The whole local block, ghosts included (a view)."""
    @property
    def interior(self) -> Array:
        """The owned cells (a view)."""
    @property
    def ghost(self) -> int: ...
    @property
    def origin(self) -> List[int]: ...
    @property
    def global_shape(self) -> List[int]: ...
    @property
    def start(self) -> List[int]: ...
    def exchange(self, stencil: str = "star") -> None:
        """Collective. Fill the ghosts ("star": faces; "box": faces, edges, corners)."""
    def begin_exchange(self, stencil: str = "star") -> Exchange:
        """Collective. Split phase: finish with Exchange.finish()."""
    def sum(self) -> float:
        """Collective. The exact sum of the owned cells."""
    def dot(self, other: Field) -> float:
        """Collective. The exactly summed dot product."""
    def min(self) -> float: ...
    def max(self) -> float: ...
    def checksum(self) -> int:
        """Collective. The position-keyed checksum, the same on any rank count."""
    def gather(self, root: int = 0) -> Optional[Array]: ...
    def scatter(self, array: Optional[Array], root: int = 0) -> None: ...

class Exchange:
    """A halo exchange in flight."""
    def finish(self) -> None:
        """Collective. Wait and fill the ghosts."""
    def __enter__(self) -> Exchange: ...
    def __exit__(self, t: Optional[type], v: Optional[BaseException], tb: Optional[TracebackType]) -> bool: ...

def overlap_boxes(shape: Sequence[int], reach: int = 1) -> Tuple[Tuple[slice, ...], List[Tuple[slice, ...]]]:
    """The inner box and the shell boxes of a split-phase update (owned-cell indices)."""
def field_checksum(field: Field) -> int:
    """Collective. ``field.checksum()``."""

class StopAction(Enum):
    CarryOn = 0
    Checkpoint = 1
    CheckpointAndStop = 2

class StopDecision:
    @property
    def action(self) -> StopAction: ...
    @property
    def reason(self) -> Optional[str]: ...
    @property
    def checkpoint(self) -> bool: ...
    @property
    def stop(self) -> bool: ...

class StopPolicy:
    """Collective. Signals, the Slurm job's end or a wall time, as one decision on every rank."""
    def __init__(self, runtime: Runtime, margin: float = 30.0, wall_time: Optional[float] = None) -> None: ...
    def check(self, step: int) -> StopDecision:
        """Collective."""
    def time_left(self) -> Optional[float]: ...

# ---------------------------------------------------------------------------------------------
# Checkpoints

class CheckpointInfo:
    path: Path
    step: int
    time: float
    ranks: int
    params: Dict[str, ParamValue]
    fields: List[str]
    rankwise_version: str

class Restored:
    info: CheckpointInfo
    step: int
    time: float
    skipped: List[str]

class Checkpoints:
    """A folder of checkpoints ckpt-<step>.h5, keeping the newest ``keep`` (0: all); written in the
    background with ``asynchronous``; with a node-local level in ``local`` (the shared file every
    ``flush_every``-th time, 10 by default)."""
    def __init__(self, path: PathLike, keep: int = 2, asynchronous: bool = False, local: Optional[PathLike] = None, flush_every: Optional[int] = None) -> None: ...
    @property
    def path(self) -> Path: ...
    def write(self, step: int, time: float, fields: Dict[str, Field], params: Optional[Dict[str, ParamValue]] = None, stop: bool = False) -> Path:
        """Collective. Write a checkpoint (committed on return unless asynchronous); its path.
        ``stop``: the last before a stop, to the shared file whatever ``flush_every`` says."""
    def wait(self) -> Optional[Path]:
        """Collective. Wait for the background checkpoint in flight; the path it committed."""
    def make(self, runtime: Runtime) -> None:
        """Collective. Create the folders and write there (InputError if one cannot be used)."""
    def clear_local(self, runtime: Runtime) -> None:
        """Collective. Wait, then remove this rank's node-local files."""
    def restore(self, fields: Dict[str, Field], expect: Optional[Dict[str, ParamValue]] = None) -> Optional[Restored]:
        """Collective. Restore the newest valid checkpoint (any rank count), or None."""
    def list(self) -> List[Tuple[Path, Union[CheckpointInfo, RankwiseError]]]: ...
    def newest_valid(self) -> Tuple[Optional[CheckpointInfo], List[str]]: ...

def verify(path: PathLike) -> CheckpointInfo:
    """Check every field of a checkpoint against its checksum (CheckpointError if damaged)."""
def inspect(path: PathLike) -> CheckpointInfo: ...
def write_output(path: PathLike, step: int, time: float, fields: Dict[str, Field], params: Optional[Dict[str, ParamValue]] = None) -> Path:
    """Collective. The checkpoint format to one file, with XDMF beside it (ParaView)."""
def write_png(field: Field, path: PathLike) -> Optional[Tuple[float, float]]:
    """Collective. A PNG of a small field on rank 0."""
