//! Checkpoints: write named fields with parameters, restart from the newest valid checkpoint on
//! any rank count, list and verify.

use std::ffi::{c_char, c_int};
use std::path::PathBuf;
use std::sync::Arc;

use rankwise_io::{Checkpoint, CheckpointDir, CheckpointWriter, IoError};
use ::rankwise_runtime::Decomposition;

use crate::boundary::*;
use crate::parallel::{rankwise_decomposition, rankwise_field};

/// A directory of checkpoints `ckpt-<step>.h5`, keeping the newest few.
pub struct rankwise_checkpoints {
    dir: CheckpointDir,
}
impl Handle for rankwise_checkpoints {
    const KIND: &'static str = "rankwise_checkpoints";
}

fn io(e: IoError) -> Failure {
    match e {
        // The program and the file disagree: another run's checkpoint, the user's to sort out.
        IoError::Param { .. } | IoError::Shape { .. } | IoError::MissingField { .. } | IoError::Dtype { .. } | IoError::Directory(_) => fail(RANKWISE_ERR_INPUT, e.to_string()),
        e => fail(RANKWISE_ERR_IO, e.to_string()),
    }
}

/// Not Collective. The checkpoints in folder `path` (made when the first is written), keeping
/// the newest `keep` (0: all).
///
/// # Safety
/// `path` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_checkpoints_create(path: *const c_char, keep: c_int, out: *mut *mut rankwise_checkpoints) -> c_int {
    local(|| {
        const W: &str = "rankwise_checkpoints_create";
        let path = text(path, W)?;
        out_ptr(out, W)?;
        if keep < 0 || path.is_empty() {
            return Err(fail(RANKWISE_ERR_INPUT, format!("{W}: a folder name and keep >= 0, not {path:?} and {keep}")));
        }
        give(out, rankwise_checkpoints { dir: CheckpointDir::new(path).keep(keep as usize) })
    })
}

/// Not Collective. Free the handle and set `*c` to null (the files stay).
///
/// # Safety
/// `c` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_checkpoints_destroy(c: *mut *mut rankwise_checkpoints) -> c_int {
    local(|| take(c, "rankwise_checkpoints_destroy").map(drop))
}

/// A checkpoint being written.
pub struct rankwise_writer {
    // Declared first, so dropped before the decomposition whose communicator it borrows.
    w: Option<CheckpointWriter<'static>>,
    d: Arc<Decomposition>,
}
impl Handle for rankwise_writer {
    const KIND: &'static str = "rankwise_writer";
}

fn writer_on(d: &Arc<Decomposition>, make: impl FnOnce(&'static mpi::topology::SimpleCommunicator) -> rankwise_io::Result<CheckpointWriter<'static>>) -> Res<rankwise_writer> {
    let d = d.clone();
    // SAFETY: the communicator lives in the Arc'd decomposition, which the writer keeps (and drops
    // after itself): the borrow never outlives it.
    let comm: &'static mpi::topology::SimpleCommunicator = unsafe { &*(d.comm() as *const _) };
    Ok(rankwise_writer { w: Some(make(comm).map_err(io)?), d })
}

/// Collective over `d`'s ranks. Begin the checkpoint of `step` at simulation time `time` in `c`.
/// Add parameters and fields, then [`rankwise_writer_commit`].
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_checkpoint_begin(c: *const rankwise_checkpoints, d: *const rankwise_decomposition, step: u64, time: f64, out: *mut *mut rankwise_writer) -> c_int {
    collective(|| {
        const W: &str = "rankwise_checkpoint_begin";
        let (c, d) = (get(c, W)?, get(d, W)?);
        out_ptr(out, W)?;
        let w = writer_on(&d.d, |comm| c.dir.create(comm, step, time))?;
        give(out, w)
    })
}

/// Collective over `d`'s ranks. Begin writing the same format to the file `path` (a final state
/// for ParaView: an XDMF file is written beside it).
///
/// # Safety
/// `path` a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_output_begin(path: *const c_char, d: *const rankwise_decomposition, step: u64, time: f64, out: *mut *mut rankwise_writer) -> c_int {
    collective(|| {
        const W: &str = "rankwise_output_begin";
        let path = PathBuf::from(text(path, W)?);
        let d = get(d, W)?;
        out_ptr(out, W)?;
        let w = writer_on(&d.d, |comm| CheckpointWriter::create_file(comm, path, step, time))?;
        give(out, w)
    })
}

fn writer<'a>(w: *mut rankwise_writer, what: &str) -> Res<&'a mut CheckpointWriter<'static>> {
    get_mut(w, what)?.w.as_mut().ok_or_else(|| fail(RANKWISE_ERR_HANDLE, format!("{what}: the writer was committed already")))
}

/// Collective. Store the integer parameter `name` = `value`.
///
/// # Safety
/// `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_writer_param_int(w: *mut rankwise_writer, name: *const c_char, value: i64) -> c_int {
    collective(|| {
        let n = text(name, "rankwise_writer_param_int")?;
        writer(w, "rankwise_writer_param_int")?.param(n, value).map_err(io).map(drop)
    })
}

/// Collective. Store the real parameter `name` = `value`.
///
/// # Safety
/// `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_writer_param_real(w: *mut rankwise_writer, name: *const c_char, value: f64) -> c_int {
    collective(|| {
        let n = text(name, "rankwise_writer_param_real")?;
        writer(w, "rankwise_writer_param_real")?.param(n, value).map_err(io).map(drop)
    })
}

/// Collective. Write the owned cells of `f` as the field `name` (its global shape, with a
/// checksum), by collective parallel HDF5.
///
/// # Safety
/// `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_writer_field(w: *mut rankwise_writer, name: *const c_char, f: *const rankwise_field) -> c_int {
    collective(|| {
        const W: &str = "rankwise_writer_field";
        let n = text(name, W)?;
        let f = get(f, W)?;
        let wr = get(w, W)?;
        let d = f.field.decomposition();
        if d.global_shape() != wr.d.global_shape() {
            return Err(fail(RANKWISE_ERR_SHAPE, format!("{W}: field `{n}` is not on the writer's decomposition")));
        }
        let start: Vec<usize> = d.owned().iter().map(|r| r.start).collect();
        writer(w, W)?.write_block(n, d.global_shape(), &start, f.interior()).map_err(io).map(drop)
    })
}

/// Collective. Close, make durable and publish the checkpoint (older ones beyond `keep` go), free
/// the writer and set `*w` to null. `path` (if not null) receives the file's name.
///
/// # Safety
/// `w` must point to a handle variable; `path` null or `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn rankwise_writer_commit(w: *mut *mut rankwise_writer, path: *mut c_char, len: usize) -> c_int {
    collective(|| {
        const W: &str = "rankwise_writer_commit";
        let Some(mut wr) = take(w, W)? else { return Err(fail(RANKWISE_ERR_NULL, format!("{W}: a null rankwise_writer handle"))) };
        let file = wr.w.take().expect("a writer is committed once").commit().map_err(io)?;
        if !path.is_null() {
            copy_out(&file.display().to_string(), path, len, W)?;
        }
        Ok(())
    })
}

/// What to read back at a restart: named fields, and the parameters they must have been written
/// with.
pub struct rankwise_restore {
    fields: Vec<(String, *mut rankwise_field)>,
    ints: Vec<(String, i64)>,
    reals: Vec<(String, f64)>,
}
impl Handle for rankwise_restore {
    const KIND: &'static str = "rankwise_restore";
}

/// Not Collective. An empty restart request.
///
/// # Safety
/// `out` writable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_restore_create(out: *mut *mut rankwise_restore) -> c_int {
    local(|| {
        out_ptr(out, "rankwise_restore_create")?;
        give(out, rankwise_restore { fields: vec![], ints: vec![], reals: vec![] })
    })
}

/// Not Collective. Read the field `name` into the owned cells of `f` (ghosts untouched).
///
/// # Safety
/// `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_restore_field(r: *mut rankwise_restore, name: *const c_char, f: *mut rankwise_field) -> c_int {
    local(|| {
        const W: &str = "rankwise_restore_field";
        let n = text(name, W)?.to_string();
        get(f, W)?;
        get_mut(r, W)?.fields.push((n, f));
        Ok(())
    })
}

/// Not Collective. Require the integer parameter `name` to be `value` in the checkpoint.
///
/// # Safety
/// `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_restore_expect_int(r: *mut rankwise_restore, name: *const c_char, value: i64) -> c_int {
    local(|| {
        let n = text(name, "rankwise_restore_expect_int")?.to_string();
        get_mut(r, "rankwise_restore_expect_int")?.ints.push((n, value));
        Ok(())
    })
}

/// Not Collective. Require the real parameter `name` to be `value` in the checkpoint.
///
/// # Safety
/// `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_restore_expect_real(r: *mut rankwise_restore, name: *const c_char, value: f64) -> c_int {
    local(|| {
        let n = text(name, "rankwise_restore_expect_real")?.to_string();
        get_mut(r, "rankwise_restore_expect_real")?.reals.push((n, value));
        Ok(())
    })
}

/// Not Collective. Free the request and set `*r` to null.
///
/// # Safety
/// `r` must point to a handle variable.
#[no_mangle]
pub unsafe extern "C" fn rankwise_restore_destroy(r: *mut *mut rankwise_restore) -> c_int {
    local(|| take(r, "rankwise_restore_destroy").map(drop))
}

/// Collective. Restart from the newest checkpoint in `c` that verifies, on any rank count: damaged
/// ones are skipped (with a warning on rank 0). On success `*found` is 1 and `*step`, `*time` say
/// where the run stands, and the fields hold the data; with no usable checkpoint `*found` is 0 and
/// the fields are as they were.
///
/// # Errors
/// `RANKWISE_ERR_INPUT` when the newest checkpoint was written by another run (other parameters,
/// shape or fields): the message says which; `RANKWISE_ERR_IO` when the folder cannot be read.
///
/// # Safety
/// `found`, `step`, `time` writable (`step` and `time` may be null).
#[no_mangle]
pub unsafe extern "C" fn rankwise_restore_run(r: *const rankwise_restore, c: *const rankwise_checkpoints, found: *mut c_int, step: *mut u64, time: *mut f64) -> c_int {
    collective(|| {
        const W: &str = "rankwise_restore_run";
        let (r, c) = (get(r, W)?, get(c, W)?);
        let found = out_ptr(found, W)?;
        let Some(&(_, first)) = r.fields.first() else { return Err(fail(RANKWISE_ERR_INPUT, format!("{W}: no field to restore (rankwise_restore_field)"))) };
        let comm_of = get(first, W)?.field.decomposition().clone();
        // Staged: the checkpoint is read into blocks of Rankwise's, and reaches the fields only
        // once all of it verified. The closure only reads into that staging memory.
        let mut staged: Vec<ndarray::ArrayD<f64>> = Vec::new();
        for (_, f) in &r.fields {
            staged.push(get(*f, W)?.interior().to_owned());
        }
        let load = |ck: &Checkpoint| -> rankwise_io::Result<()> {
            for (n, v) in &r.ints {
                ck.expect_param(n, *v)?;
            }
            for (n, v) in &r.reals {
                ck.expect_param(n, *v)?;
            }
            for ((n, f), block) in r.fields.iter().zip(staged.iter_mut()) {
                // SAFETY: checked live above; only its decomposition is read.
                let d = unsafe { &**f }.field.decomposition();
                let start: Vec<usize> = d.owned().iter().map(|x| x.start).collect();
                ck.read_block_into(n, d.global_shape(), &start, block.view_mut())?;
            }
            Ok(())
        };
        let restored = c.dir.restore(comm_of.comm(), load).map_err(io)?;
        *found = restored.is_some() as c_int;
        if let Some(res) = restored {
            for ((_, f), block) in r.fields.iter().zip(&staged) {
                get_mut(*f, W)?.interior_mut().assign(block);
            }
            if let Some(s) = step.as_mut() {
                *s = res.info.step;
            }
            if let Some(t) = time.as_mut() {
                *t = res.info.time;
            }
        }
        Ok(())
    })
}

/// Not Collective (one process reads). How many committed checkpoints `c` holds, and the step of
/// the newest one whose data match their checksums (`*valid` 0 when none does).
///
/// # Safety
/// `count`, `valid`, `step` writable (`step` may be null).
#[no_mangle]
pub unsafe extern "C" fn rankwise_checkpoints_list(c: *const rankwise_checkpoints, count: *mut usize, valid: *mut c_int, step: *mut u64) -> c_int {
    local(|| {
        const W: &str = "rankwise_checkpoints_list";
        let c = get(c, W)?;
        *out_ptr(count, W)? = c.dir.checkpoints().map_err(io)?.len();
        let (newest, _) = c.dir.newest_valid().map_err(io)?;
        *out_ptr(valid, W)? = newest.is_some() as c_int;
        if let (Some(s), Some(info)) = (step.as_mut(), newest) {
            *s = info.step;
        }
        Ok(())
    })
}

/// Not Collective (one process reads). Verify the checkpoint file `path`: every field against its
/// checksum. Its step goes to `*step` (may be null).
///
/// # Errors
/// `RANKWISE_ERR_IO` with the damage found.
///
/// # Safety
/// `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_checkpoint_verify(path: *const c_char, step: *mut u64) -> c_int {
    local(|| {
        let path = PathBuf::from(text(path, "rankwise_checkpoint_verify")?);
        let info = rankwise_io::verify(&path).map_err(io)?;
        if let Some(s) = step.as_mut() {
            *s = info.step;
        }
        Ok(())
    })
}

/// Collective. Draw the field as a PNG on rank 0 (a 3-D field's middle plane along the first
/// axis, the only plane gathered there), colours from its smallest to its largest value.
///
/// # Safety
/// `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_field_write_png(f: *mut rankwise_field, path: *const c_char) -> c_int {
    collective(|| {
        const W: &str = "rankwise_field_write_png";
        let path = PathBuf::from(text(path, W)?);
        let f = get_mut(f, W)?;
        let field = f.synced();
        let n = field.decomposition().ndim();
        if n < 2 {
            return Err(fail(RANKWISE_ERR_SHAPE, format!("{W}: a picture needs a 2-D or 3-D field, not {n}-D")));
        }
        rankwise_io::image::write_field_png(field, &path).map_err(io)?;
        Ok(())
    })
}
