//! Checkpoints: write fields with parameters, restart from the newest valid checkpoint on any rank
//! count, list and verify; the same format as a final output for ParaView; a picture.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use rankwise_io::{Checkpoint, CheckpointDir, CheckpointInfo as RInfo, CheckpointWriter, IoError, Param};

use crate::parallel::{Field, Runtime};
use crate::{collective, local, CheckpointError, InputError, ShapeError};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Checkpoints>()?;
    m.add_class::<CheckpointInfo>()?;
    m.add_class::<Restored>()?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(write_output, m)?)?;
    m.add_function(wrap_pyfunction!(write_png, m)?)?;
    m.add_function(wrap_pyfunction!(_finish_background_checkpoint, m)?)?;
    Ok(())
}

/// At the interpreter's exit, before mpi4py finalises MPI: a checkpoint still written in the
/// background finishes while MPI runs (rankwise/__init__.py registers this with atexit).
#[pyfunction]
fn _finish_background_checkpoint() {
    if crate::mpi_running() {
        if let Err(e) = rankwise_io::flush::wait() {
            crate::emit(format!("rankwise: the last checkpoint failed in the background: {e}\n"));
        }
    }
}

pub(crate) fn io(e: IoError) -> PyErr {
    match e {
        // The program and the file disagree: another run's checkpoint, the user's to sort out.
        IoError::Param { .. } | IoError::Shape { .. } | IoError::MissingField { .. } | IoError::Dtype { .. } | IoError::Directory(_) => InputError::new_err(e.to_string()),
        e => CheckpointError::new_err(e.to_string()),
    }
}

fn param(name: &str, v: &Bound<'_, PyAny>) -> PyResult<Param> {
    // bool first: Python's bool is an int.
    Ok(if v.is_instance_of::<PyBool>() {
        Param::Bool(v.extract()?)
    } else if v.is_instance_of::<PyInt>() {
        Param::Int(v.extract()?)
    } else if v.is_instance_of::<PyFloat>() {
        Param::Float(v.extract()?)
    } else if v.is_instance_of::<PyString>() {
        Param::Str(v.extract()?)
    } else {
        return Err(InputError::new_err(format!("parameter `{name}`: a bool, int, float or str, not {}", v.get_type().name()?)));
    })
}

fn params(d: Option<&Bound<'_, PyDict>>) -> PyResult<Vec<(String, Param)>> {
    let Some(d) = d else { return Ok(vec![]) };
    d.iter().map(|(k, v)| {
        let k: String = k.extract()?;
        let p = param(&k, &v)?;
        Ok((k, p))
    }).collect()
}

/// The fields of a `{name: Field}` dict, borrowed, in the dict's order; at least one.
fn fields<'py>(d: &Bound<'py, PyDict>, what: &str) -> PyResult<Vec<(String, Bound<'py, Field>)>> {
    let out = d.iter().map(|(k, v)| {
        let name: String = k.extract()?;
        let f = v.cast::<Field>().map_err(|_| ShapeError::new_err(format!("{what}: `{name}` is not a rankwise.Field")))?.clone();
        Ok((name, f))
    }).collect::<PyResult<Vec<_>>>()?;
    if out.is_empty() {
        return Err(InputError::new_err(format!("{what}: no fields given")));
    }
    Ok(out)
}

/// Collective. Write `fields` and `params` into `w` and commit it.
fn write_all(mut w: CheckpointWriter<'_>, fields: &[(String, Bound<'_, Field>)], params: &[(String, Param)]) -> PyResult<PathBuf> {
    for (k, v) in params {
        w.param(k, v.clone()).map_err(io)?;
    }
    for (name, f) in fields {
        w.write_field(name, &f.borrow().field).map_err(io)?;
    }
    w.commit().map_err(io)
}

/// A checkpoint's metadata.
#[pyclass(module = "rankwise", get_all)]
pub struct CheckpointInfo {
    path: PathBuf,
    step: u64,
    time: f64,
    /// How many ranks wrote it.
    ranks: u64,
    /// The parameters it was written with.
    params: Py<PyDict>,
    /// Its fields' names.
    fields: Vec<String>,
    rankwise_version: String,
}

#[pymethods]
impl CheckpointInfo {
    fn __repr__(&self) -> String {
        format!("rankwise.CheckpointInfo(step={}, time={:e}, ranks={}, fields={:?}, path={:?})", self.step, self.time, self.ranks, self.fields, self.path)
    }
}

fn info(py: Python<'_>, i: &RInfo) -> PyResult<CheckpointInfo> {
    let params = PyDict::new(py);
    for (k, v) in &i.params {
        match v {
            Param::Int(x) => params.set_item(k, x)?,
            Param::Float(x) => params.set_item(k, x)?,
            Param::Bool(x) => params.set_item(k, x)?,
            Param::Str(x) => params.set_item(k, x)?,
        }
    }
    Ok(CheckpointInfo {
        path: i.path.clone(),
        step: i.step,
        time: i.time,
        ranks: i.ranks,
        params: params.unbind(),
        fields: i.fields.iter().map(|f| f.name.clone()).collect(),
        rankwise_version: i.rankwise_version.clone(),
    })
}

/// What :meth:`Checkpoints.restore` found.
#[pyclass(module = "rankwise", get_all)]
pub struct Restored {
    /// The checkpoint the fields now hold.
    info: Py<CheckpointInfo>,
    step: u64,
    time: f64,
    /// Newer checkpoints that were damaged and skipped, one message each.
    skipped: Vec<String>,
}

/// A folder of checkpoints ``ckpt-<step>.h5`` (one shared parallel HDF5 file each, any rank
/// count reads it back; h5py and ParaView read it too), keeping the newest ``keep`` (0: all);
/// written in the background with ``asynchronous`` (needs MPI_THREAD_MULTIPLE, mpi4py's
/// default), and with a node-local level first in ``local`` (``%h``: the host's name), the shared
/// file every ``flush_every``-th time (10). Restore takes the newest that verifies on either level.
#[pyclass(module = "rankwise")]
pub struct Checkpoints {
    dir: CheckpointDir,
    /// Through snapshots (in the background, or with a node-local level).
    snapshots: bool,
}

#[pymethods]
impl Checkpoints {
    #[new]
    #[pyo3(signature = (path, keep = 2, asynchronous = false, local = None, flush_every = None))]
    fn new(path: PathBuf, keep: usize, asynchronous: bool, local: Option<PathBuf>, flush_every: Option<u64>) -> PyResult<Self> {
        if path.as_os_str().is_empty() {
            return Err(InputError::new_err("Checkpoints: an empty folder name"));
        }
        let mut dir = CheckpointDir::new(path).keep(keep).asynchronous(asynchronous);
        let snapshots = asynchronous || local.is_some();
        match (local, flush_every) {
            (Some(l), every) => dir = dir.local(l, every.unwrap_or(10)),
            (None, Some(every)) if every != 1 => return Err(InputError::new_err("Checkpoints: flush_every needs local (where the other checkpoints go)")),
            (None, _) => {}
        }
        Ok(Checkpoints { dir, snapshots })
    }
    /// The folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.dir.root().to_path_buf()
    }
    /// Collective. Write the checkpoint of ``step`` at simulation time ``time``: ``fields``
    /// (``{name: Field}``, on one decomposition) and ``params`` (``{name: bool|int|float|str}``,
    /// checked at restore), by collective parallel HDF5, committed (durable, then published) on
    /// return, older ones beyond ``keep`` removed. Returns the file's path.
    ///
    /// With ``asynchronous`` the fields are copied and the file is written by a thread of each
    /// rank while the program goes on (:meth:`wait` for it; the next write waits too); with
    /// ``local`` each rank's blocks go to that node-local folder (and a partner's copy), and only
    /// every ``flush_every``-th checkpoint, or one with ``stop``, to the shared file.
    #[pyo3(signature = (step, time, fields, params = None, stop = false))]
    fn write(&self, step: u64, time: f64, fields: &Bound<'_, PyDict>, params: Option<&Bound<'_, PyDict>>, stop: bool) -> PyResult<PathBuf> {
        let fields = self::fields(fields, "Checkpoints.write")?;
        let params = self::params(params)?;
        let d = fields[0].1.borrow().field.decomposition().clone();
        if self.snapshots {
            let mut s = self.dir.snapshot(step, time);
            for (k, v) in &params {
                s.param(k, v.clone());
            }
            for (name, f) in &fields {
                s.write_field(name, &f.borrow().field);
            }
            if stop {
                s.shared();
            }
            return collective(|| s.submit(d.comm()).map_err(io));
        }
        collective(|| write_all(self.dir.create(d.comm(), step, time).map_err(io)?, &fields, &params))
    }
    /// Collective. Wait for the background checkpoint in flight, if any; the path of the one that
    /// committed, or None.
    fn wait(&self) -> PyResult<Option<PathBuf>> {
        collective(|| rankwise_io::flush::wait().map_err(io))
    }
    /// Collective. Create the folder (and the node-local one) where missing and write a file
    /// there: a folder that cannot be used raises :class:`InputError` before the first step,
    /// not :class:`CheckpointError` at the first checkpoint.
    fn make(&self, runtime: PyRef<'_, Runtime>) -> PyResult<()> {
        let rt = runtime.get()?;
        collective(|| self.dir.make(rt.world()).map_err(io))
    }
    /// Collective. Wait for any background checkpoint, then remove this rank's node-local files
    /// (a run that completed keeps none).
    fn clear_local(&self, runtime: PyRef<'_, Runtime>) -> PyResult<()> {
        let rt = runtime.get()?;
        collective(|| self.dir.clear_local(rt.world()).map_err(io))
    }
    /// Collective. Restart from the newest checkpoint that verifies, on any rank count: damaged
    /// ones are skipped (a warning on rank 0, and listed in :attr:`Restored.skipped`). The
    /// checkpoint's ``params`` must equal ``expect``; its fields are read into ``fields`` only
    /// once all of them verified. Returns None (fields untouched) when there is no usable
    /// checkpoint.
    ///
    /// Raises :class:`InputError` when the newest checkpoint was written by another run (other
    /// parameters, shapes or fields), :class:`CheckpointError` when the folder cannot be read.
    #[pyo3(signature = (fields, expect = None))]
    fn restore(&self, py: Python<'_>, fields: &Bound<'_, PyDict>, expect: Option<&Bound<'_, PyDict>>) -> PyResult<Option<Restored>> {
        let fields = self::fields(fields, "Checkpoints.restore")?;
        let expect = params(expect)?;
        let mut borrowed = fields.iter().map(|(n, f)| f.try_borrow_mut().map(|b| (n.as_str(), b))).collect::<Result<Vec<_>, _>>()
            .map_err(|_| ShapeError::new_err("Checkpoints.restore: a field is given twice, or is in use"))?;
        let d = borrowed[0].1.field.decomposition().clone();
        // The closure may run twice (staged, then delivered): it only reads, checks and writes
        // the fields, whose data the catalogue hands over only once all of it verified.
        let load = |ck: &Checkpoint| -> rankwise_io::Result<()> {
            for (n, v) in &expect {
                ck.expect_param(n, v.clone())?;
            }
            for (n, f) in borrowed.iter_mut() {
                ck.read_field(n, &mut f.field)?;
            }
            Ok(())
        };
        let restored = collective(|| self.dir.restore(d.comm(), load).map_err(io))?;
        restored.map(|r| Ok(Restored { info: Py::new(py, info(py, &r.info)?)?, step: r.info.step, time: r.info.time, skipped: r.skipped })).transpose()
    }
    /// Not Collective (this process reads). Every committed checkpoint, oldest first, each
    /// with its metadata or, when that cannot be read, the error: ``[(path, info or error)]``.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<(PathBuf, Py<PyAny>)>> {
        local(|| {
            self.dir.list().map_err(io)?.into_iter().map(|(p, r)| {
                let v = match r {
                    Ok(i) => Py::new(py, info(py, &i)?)?.into_any(),
                    Err(e) => io(e).into_value(py).into_any(),
                };
                Ok((p, v))
            }).collect()
        })
    }
    /// Not Collective. The newest checkpoint whose data match their checksums (None when none
    /// does), and the errors of the damaged newer ones.
    fn newest_valid(&self, py: Python<'_>) -> PyResult<(Option<CheckpointInfo>, Vec<String>)> {
        local(|| {
            let (newest, bad) = self.dir.newest_valid().map_err(io)?;
            Ok((newest.map(|i| info(py, &i)).transpose()?, bad.iter().map(|e| e.to_string()).collect()))
        })
    }
    fn __repr__(&self) -> String {
        format!("rankwise.Checkpoints({:?})", self.dir.root())
    }
}

/// Not Collective (this process reads). Read every field of the checkpoint file ``path`` and check
/// it against its checksum; its metadata, or :class:`CheckpointError` with the damage found.
#[pyfunction]
fn verify(py: Python<'_>, path: PathBuf) -> PyResult<CheckpointInfo> {
    local(|| info(py, &rankwise_io::verify(&path).map_err(io)?))
}

/// Not Collective. The metadata of the checkpoint file ``path`` (its data are not checked).
#[pyfunction]
fn inspect(py: Python<'_>, path: PathBuf) -> PyResult<CheckpointInfo> {
    local(|| info(py, &rankwise_io::inspect(&path).map_err(io)?))
}

/// Collective. Write ``fields`` and ``params`` in the checkpoint format to the file ``path``, with
/// an XDMF file beside it (a final state for ParaView). Returns the path.
#[pyfunction]
#[pyo3(signature = (path, step, time, fields, params = None))]
fn write_output(path: PathBuf, step: u64, time: f64, fields: &Bound<'_, PyDict>, params: Option<&Bound<'_, PyDict>>) -> PyResult<PathBuf> {
    let fields = self::fields(fields, "write_output")?;
    let params = self::params(params)?;
    let d = fields[0].1.borrow().field.decomposition().clone();
    collective(|| write_all(CheckpointWriter::create_file(d.comm(), path, step, time).map_err(io)?, &fields, &params))
}

/// Collective. Draw ``field`` as a PNG on rank 0 (a 3-D field's middle plane along the first
/// axis, the only plane gathered there), colours from its smallest to its largest value.
/// Returns ``(min, max)`` on rank 0, None elsewhere.
#[pyfunction]
fn write_png(field: PyRef<'_, Field>, path: PathBuf) -> PyResult<Option<(f64, f64)>> {
    let n = field.field.decomposition().ndim();
    if n < 2 {
        return Err(ShapeError::new_err(format!("write_png: a picture needs a 2-D or 3-D field, not {n}-D")));
    }
    collective(|| rankwise_io::image::write_field_png(&field.field, &path).map_err(io))
}
