//! Writing a checkpoint (collective, atomic) and reading one back on any number of ranks.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use hdf5::dataset::{AllocTime, FillTime};
use mpi::collective::SystemOperation;
use mpi::raw::AsRaw;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, Slice, Zip};
use rankwise_runtime::{memory, Field};

use crate::catalogue::CheckpointDir;
use crate::checksum::{self, Element};
use crate::error::{Context, IoError, Result};
use crate::guard;
use crate::hyperslab::{self, IoMode};
use crate::meta::{self, CheckpointInfo, FieldInfo, Param};

/// A verified read goes in slabs of about this many bytes per rank (`RANKWISE_CKPT_READ_SLAB`,
/// default 32 MiB), each summed while the next is read.
fn slab_bytes() -> usize {
    std::env::var("RANKWISE_CKPT_READ_SLAB").ok().and_then(|v| v.parse().ok()).unwrap_or(32 << 20).max(1)
}

/// Each rank writes a field's runs straight into the file ([`hyperslab::write_direct`]) where every
/// rank's runs are at least this many bytes (`RANKWISE_CKPT_DIRECT_RUN`, default 256 KiB; `0`:
/// wherever the dataset allows).
fn direct_run() -> u64 {
    std::env::var("RANKWISE_CKPT_DIRECT_RUN").ok().and_then(|v| v.parse().ok()).unwrap_or(256 << 10)
}

/// How fields are laid out in the file.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// Chunk shape (same rank as the field); `None` stores fields contiguously, which is fastest.
    pub chunk: Option<Vec<usize>>,
    /// Deflate level 1-9; needs chunks (a default of about 1 MiB slabs is chosen when unset).
    pub deflate: Option<u8>,
}

/// One checkpoint being written. Every rank holds one; every call is collective.
///
/// Nothing is visible under the checkpoint's name until [`CheckpointWriter::commit`]: the data go
/// to `NAME.partial`, which a crash leaves behind and the catalogue ignores.
pub struct CheckpointWriter<'c> {
    comm: &'c SimpleCommunicator,
    dir: CheckpointDir,
    file: Option<hdf5::File>,
    partial: PathBuf,
    path: PathBuf,
    step: u64,
    time: f64,
    layout: Layout,
    params: Vec<(String, Param)>,
    fields: Vec<FieldInfo>,
}

impl<'c> CheckpointWriter<'c> {
    /// Collective. Start the checkpoint of `step` at simulation `time` in `dir`.
    pub(crate) fn create(comm: &'c SimpleCommunicator, dir: &CheckpointDir, step: u64, time: f64) -> Result<Self> {
        Self::create_at(comm, dir, dir.path_for(step), step, time)
    }

    /// Collective. A checkpoint-format file at `path` itself, outside any catalogue (a final
    /// state, a snapshot for ParaView): the same format and atomic commit, with its `.xmf` beside it.
    pub fn create_file(comm: &'c SimpleCommunicator, path: impl Into<PathBuf>, step: u64, time: f64) -> Result<Self> {
        let path = path.into();
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Self::create_at(comm, &CheckpointDir::new(parent), path, step, time)
    }

    fn create_at(comm: &'c SimpleCommunicator, dir: &CheckpointDir, path: PathBuf, step: u64, time: f64) -> Result<Self> {
        crate::flush::wait()?;
        let partial = partial_name(&path);
        let prep = if comm.rank() == 0 { dir.prepare() } else { Ok(()) };
        agree(comm, "preparing the checkpoint directory", prep)?;
        // Large datasets start on a page boundary, where direct transfers can begin.
        let file = hdf5::File::with_options()
            .with_fapl(|p| p.mpio(comm.as_raw(), None).alignment(64 << 10, crate::direct::ALIGN as u64))
            .create(&partial)
            .context(|| format!("creating {}", partial.display()));
        let file = agree(comm, "creating the checkpoint file", file)?;
        meta::put_str(&file, "format", meta::FORMAT)?;
        meta::put(&file, "format_version", &meta::FORMAT_VERSION)?;
        meta::put(&file, "version_check", &meta::version_check(meta::FORMAT_VERSION))?;
        meta::put_str(&file, "rankwise_version", env!("CARGO_PKG_VERSION"))?;
        meta::put_str(&file, "checksum_algorithm", checksum::ALGORITHM)?;
        meta::put(&file, "step", &step)?;
        meta::put(&file, "time", &time)?;
        meta::put(&file, "ranks", &(comm.size() as u64))?;
        file.create_group(meta::PARAMS).context(|| "creating the parameters group".into())?;
        file.create_group(meta::TABLES).context(|| "creating the block tables group".into())?;
        Ok(CheckpointWriter {
            comm,
            dir: dir.clone(),
            file: Some(file),
            partial,
            path,
            step,
            time,
            layout: Layout::default(),
            params: vec![],
            fields: vec![],
        })
    }

    fn file(&self) -> &hdf5::File {
        self.file.as_ref().expect("open until commit")
    }

    /// Chunking and compression for the fields written after this call.
    pub fn layout(&mut self, layout: Layout) -> &mut Self {
        self.layout = layout;
        self
    }

    /// Collective. Store a scalar parameter (the same value on every rank).
    pub fn param(&mut self, name: &str, value: impl Into<Param>) -> Result<&mut Self> {
        let g = self.file().group(meta::PARAMS).context(|| "opening the parameters group".into())?;
        let value = value.into();
        meta::put_param(&g, name, &value)?;
        self.params.push((name.into(), value));
        Ok(self)
    }

    /// Collective. Write the field `name` of global shape `global`; this rank supplies `block`,
    /// which sits at `start` (possibly empty: the rank still takes part). The blocks of all ranks
    /// must cover the array exactly once, as a decomposition's owned blocks do.
    pub fn write_block<T: Element>(&mut self, name: &str, global: &[usize], start: &[usize], block: ArrayViewD<T>) -> Result<IoMode> {
        let fits = check_name(name).and_then(|()| check_block(name, global, start, block.shape()));
        agree(self.comm, "checking the blocks", fits)?;
        let mut b = self.file().new_dataset::<T>().shape(global).fill_time(FillTime::Never);
        let chunk = self.layout.chunk.clone().or_else(|| self.layout.deflate.map(|_| default_chunk::<T>(global)));
        // Where every rank's block lies in long runs of a contiguous dataset, each rank writes its
        // runs straight into the space HDF5 allocated for it (allocated now), past the page cache
        // on a disk: collective buffering has nothing to gather there.
        let direct = chunk.is_none() && {
            let run = hyperslab::file_run::<T>(global, block.shape()) as u64;
            let mut shortest = 0u64;
            self.comm.all_reduce_into(&run, &mut shortest, SystemOperation::min());
            shortest >= direct_run().max(1)
        };
        match chunk {
            Some(chunk) => b = b.chunk(chunk),
            None => b = b.alloc_time(Some(AllocTime::Early)),
        }
        if let Some(level) = self.layout.deflate {
            b = b.deflate(level);
        }
        let ds = b.create(name).context(|| format!("creating field `{name}`"))?;
        // The checksum is summed on a thread of its own while the data are written (one core sums
        // faster than a disk writes), so a checkpoint costs the write alone. Not in the
        // background, where a second busy thread would take its core from the step loop: there
        // each piece is summed as it is written directly, else after the write.
        let write = |fused: Option<&mut u64>| {
            let direct = direct.then(|| hyperslab::write_direct(self.file(), &ds, &self.partial, global, start, &block, fused)).flatten();
            match direct {
                Some(written) => written.map(|()| IoMode::DIRECT),
                None => hyperslab::write(&ds, start, &block),
            }
            .context(|| format!("writing field `{name}`"))
        };
        let (mode, sum) = match crate::flush::in_background() {
            true => {
                let mut fused = 0;
                let mode = write(Some(&mut fused));
                let sum = match &mode {
                    Ok(m) if m.is_direct() => fused,
                    Ok(_) => checksum::block_sum_serial(global, start, &block),
                    Err(_) => 0,
                };
                (mode, sum)
            }
            false => std::thread::scope(|s| {
                let summing = s.spawn(|| checksum::block_sum_serial(global, start, &block));
                (write(None), summing.join().expect("summing a block does not panic"))
            }),
        };
        let mode = agree(self.comm, "writing a field", mode.and_then(|m| collective(name, m)).map_err(|e| short_of_space(e, &self.partial)))?;
        let sum = global_sum(self.comm, sum);
        meta::put(&ds, "checksum", &sum)?;
        meta::put_str(&ds, "dtype", T::DTYPE)?;
        let (blocks, blocks_checksum) = self.write_table(name, start, block.shape())?;
        self.fields.push(FieldInfo { name: name.into(), shape: global.to_vec(), dtype: T::DTYPE.into(), checksum: sum, blocks, blocks_checksum });
        Ok(mode)
    }

    /// Collective. The decomposition a field was written with: row r of `rankwise/NAME` is rank r's
    /// block as (start.., shape..), each rank writing its own row, so nothing grows with the rank
    /// count on any one rank. Returns the row count and the table's checksum.
    fn write_table(&mut self, name: &str, start: &[usize], shape: &[usize]) -> Result<(usize, u64)> {
        let (rank, ranks) = (self.comm.rank() as usize, self.comm.size() as usize);
        let row: Vec<u64> = start.iter().chain(shape).map(|&x| x as u64).collect();
        let table = self
            .file()
            .new_dataset::<u64>()
            .shape([ranks, row.len()])
            .create(format!("{}/{name}", meta::TABLES).as_str())
            .context(|| format!("creating the block table of `{name}`"))?;
        let written = hyperslab::write(&table, &[rank, 0], &ndarray::ArrayView1::from(&row).into_dyn().insert_axis(ndarray::Axis(0)));
        let written = written.context(|| format!("writing the block table of `{name}`")).map_err(|e| short_of_space(e, &self.partial));
        agree(self.comm, "writing a block table", written)?;
        let sum = global_sum(self.comm, checksum::bits_sum((rank * row.len()) as u64, row.iter().copied()));
        meta::put(&table, "checksum", &sum)?;
        Ok((ranks, sum))
    }
    /// Collective. Write `field` as `name`: this rank's interior (in place, not copied) at its
    /// owned block of the decomposition's global shape.
    pub fn write_field<T: Element>(&mut self, name: &str, field: &Field<T>) -> Result<IoMode> {
        let d = field.decomposition();
        self.write_block(name, d.global_shape(), &owned_start(d.owned()), field.interior())
    }

    /// Collective. Close the file, make it durable (fsync), give it its final name (atomic rename),
    /// write the XDMF description beside it and drop checkpoints beyond the directory's `keep`.
    pub fn commit(mut self) -> Result<PathBuf> {
        // Last, over everything written: the metadata checksum.
        let info = CheckpointInfo {
            path: self.path.clone(),
            step: self.step,
            time: self.time,
            format_version: meta::FORMAT_VERSION,
            rankwise_version: env!("CARGO_PKG_VERSION").into(),
            ranks: self.comm.size() as u64,
            params: std::mem::take(&mut self.params),
            fields: self.fields.clone(),
        };
        meta::put(self.file(), "meta_checksum", &meta::digest(&info))?;
        let file = self.file.take().expect("open until commit");
        let closed = file.close().context(|| format!("closing {}", self.partial.display())).map_err(|e| short_of_space(e, &self.partial));
        agree(self.comm, "closing the checkpoint file", closed)?;
        let publish = if self.comm.rank() == 0 { self.publish() } else { Ok(()) };
        agree(self.comm, "publishing the checkpoint", publish)?;
        // The node-local level up to this step is now on the shared filesystem.
        if let Some(root) = self.dir.local_root() {
            crate::local::prune(root, Some(self.step));
        }
        Ok(self.path.clone())
    }

    fn publish(&self) -> Result<()> {
        fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
            move |source| IoError::File { path: path.to_path_buf(), source }
        }
        std::fs::File::open(&self.partial).and_then(|f| f.sync_all()).map_err(io(&self.partial))?;
        std::fs::rename(&self.partial, &self.path).map_err(io(&self.path))?;
        // The rename itself must reach the disk before older checkpoints are deleted.
        std::fs::File::open(self.dir.root()).and_then(|d| d.sync_all()).map_err(io(self.dir.root()))?;
        crate::xdmf::write(&self.path, self.step, self.time, &self.fields)?;
        self.dir.prune()
    }
}

impl Drop for CheckpointWriter<'_> {
    /// A checkpoint abandoned before its commit (a write failed: a full disk) leaves no
    /// `.partial` behind to hold the space the next one needs.
    fn drop(&mut self) {
        drop(self.file.take());
        // Also when closing the file failed; once committed, there is no `.partial` left to remove.
        if self.comm.rank() == 0 {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// `e`, with the free space of `file`'s filesystem when it is nearly full (under 1 MiB free).
pub(crate) fn short_of_space(e: IoError, file: &Path) -> IoError {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return e };
    // SAFETY: a NUL-terminated path and a statvfs the call fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return e;
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    if free >= 1 << 20 {
        return e;
    }
    IoError::NoSpace { path: dir.into(), free, source: Box::new(e) }
}

/// A checkpoint opened for reading: collectively (every rank reads its own block) or, for serial
/// tools, by one process without MPI.
///
/// Before any HDF5 call on the file, its metadata are checked by one process in a child process
/// ([`crate::guard`]), so a damaged file is judged alike on every rank and cannot crash or hang
/// the job.
pub struct Checkpoint<'c> {
    comm: Option<&'c SimpleCommunicator>,
    source: Source,
    info: CheckpointInfo,
    staging: RefCell<Staging>,
}

/// Where the data come from: the shared HDF5 file, or this rank's node-local file.
enum Source {
    Hdf5(hdf5::File),
    Local(crate::local::RankFile),
}

/// Inside [`CheckpointDir::restore`] the load closure runs twice: first every read goes to a buffer
/// of the checkpoint's own and is verified (`Stage`); only when every read of every rank verified
/// does it run again, and the reads then hand the buffers over (`Deliver`).
#[derive(Default)]
struct Staging {
    mode: Mode,
    reads: Vec<Staged>,
    next: usize,
}

#[derive(Clone, Copy, Default, PartialEq)]
pub(crate) enum Mode {
    /// Read into the caller's memory at once (a checkpoint opened outside `restore`).
    #[default]
    Direct,
    Stage,
    Deliver,
}

struct Staged {
    what: String,
    data: Option<Box<dyn std::any::Any>>,
}

impl<'c> Checkpoint<'c> {
    /// Collective. Open a checkpoint with the MPI-IO driver and check its metadata. Rank 0 first
    /// checks the file alone ([`crate::guard::check`]); every rank takes its verdict.
    pub fn open(comm: &'c SimpleCommunicator, path: &Path) -> Result<Self> {
        crate::flush::wait()?;
        let checked = if comm.rank() == 0 { guard::check(path) } else { Ok(()) };
        guard::share(comm, path, checked)?;
        let file = hdf5::File::with_options().with_fapl(|p| p.mpio(comm.as_raw(), None)).open(path).map_err(|e| unreadable(path, e));
        let file = agree(comm, "opening the checkpoint", file)?;
        let info = agree(comm, "reading checkpoint metadata", meta::read_info(&file, path))?;
        Ok(Checkpoint { comm: Some(comm), source: Source::Hdf5(file), info, staging: RefCell::default() })
    }

    /// Open a checkpoint in this process alone, with HDF5's default driver (no MPI needed), after
    /// the same check as [`Checkpoint::open`].
    pub fn open_serial(path: &Path) -> Result<Checkpoint<'static>> {
        crate::flush::wait()?;
        guard::check(path)?;
        Self::open_unguarded(path)
    }

    /// [`Checkpoint::open_serial`] without the child-process check: what that check runs.
    pub(crate) fn open_unguarded(path: &Path) -> Result<Checkpoint<'static>> {
        let file = hdf5::File::open(path).map_err(|e| unreadable(path, e))?;
        let info = meta::read_info(&file, path)?;
        Ok(Checkpoint { comm: None, source: Source::Hdf5(file), info, staging: RefCell::default() })
    }

    /// This rank's part of a node-local checkpoint (checked already).
    pub(crate) fn local(comm: &'c SimpleCommunicator, file: crate::local::RankFile) -> Self {
        Checkpoint { comm: Some(comm), info: file.info.clone(), source: Source::Local(file), staging: RefCell::default() }
    }

    pub(crate) fn file(&self) -> &hdf5::File {
        match &self.source {
            Source::Hdf5(f) => f,
            Source::Local(_) => unreachable!("only a shared checkpoint is checked as a file"),
        }
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        let mut s = self.staging.borrow_mut();
        s.mode = mode;
        s.next = 0;
        if mode == Mode::Stage {
            s.reads.clear();
        }
    }

    /// After the delivering pass: every staged read was handed over.
    pub(crate) fn delivered(&self) -> Result<()> {
        let s = self.staging.borrow();
        match s.reads.get(s.next) {
            Some(r) => Err(IoError::Replay { expected: r.what.clone(), found: "nothing more".into() }),
            None => Ok(()),
        }
    }

    pub fn info(&self) -> &CheckpointInfo {
        &self.info
    }
    pub fn step(&self) -> u64 {
        self.info.step
    }
    pub fn time(&self) -> f64 {
        self.info.time
    }
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.info.param(name)
    }
    /// Check that the checkpoint was written with `name = value`, so that a restart never picks
    /// up another run's state ([`IoError::Param`] otherwise; a missing parameter counts as different).
    pub fn expect_param(&self, name: &str, value: impl Into<Param>) -> Result<()> {
        let expected = value.into();
        match self.param(name) {
            Some(found) if *found == expected => Ok(()),
            found => Err(IoError::Param {
                path: self.info.path.clone(),
                name: name.into(),
                expected: expected.to_string(),
                found: found.map_or("nothing".into(), |f| f.to_string()),
            }),
        }
    }

    /// Collective. Read this rank's block of field `name` (of shape `shape` at `start`; empty is
    /// fine) and verify the field's checksum. The blocks of all ranks must cover the array exactly
    /// once, as the owned blocks of a decomposition do, at any rank count. `global` is the shape
    /// the caller expects.
    pub fn read_block<T: Element>(&self, name: &str, global: &[usize], start: &[usize], shape: &[usize]) -> Result<ArrayD<T>> {
        match self.mode() {
            Mode::Direct => {
                let mut block = ArrayD::<T>::default(IxDyn(shape));
                self.read_block_into(name, global, start, block.view_mut())?;
                Ok(block)
            }
            Mode::Stage => {
                let mut block = ArrayD::from_elem(IxDyn(shape), T::default());
                self.read_verified_into(name, global, start, block.view_mut())?;
                self.stage(name, start, Box::new(block.clone()));
                Ok(block)
            }
            Mode::Deliver => self.take::<T>(name, start, shape),
        }
    }

    /// Collective. [`Checkpoint::read_block`] into memory the caller has, e.g. a field's interior.
    /// Opened by [`Checkpoint::open`], the block is read in place (when it is a corner of a C-order
    /// array, as ghosted blocks are) and `out` holds what was read even when the checksum then
    /// fails; inside [`CheckpointDir::restore`], `out` is written only once the whole checkpoint
    /// verified on every rank.
    pub fn read_block_into<T: Element>(&self, name: &str, global: &[usize], start: &[usize], mut out: ArrayViewMutD<T>) -> Result<()> {
        match self.mode() {
            Mode::Direct => {
                self.expect_shape(name, global)?;
                self.read_slab_into(name, start, out.view_mut())?;
                self.verify_block(name, global, start, &out.view())
            }
            Mode::Stage => {
                let mut block = ArrayD::from_elem(out.raw_dim(), T::default());
                self.read_verified_into(name, global, start, block.view_mut())?;
                self.stage(name, start, Box::new(block));
                Ok(())
            }
            Mode::Deliver => {
                let staged = self.take::<T>(name, start, out.shape())?;
                copy_rows(out, &staged.view());
                Ok(())
            }
        }
    }

    /// Collective. Read field `name` into `field`'s interior (this rank's owned block) and verify
    /// its checksum; the ghost cells are left as they are. Any rank count and ghost width.
    ///
    /// Inside [`CheckpointDir::restore`] the block is staged in a buffer of the field's own shape,
    /// ghosts included, which the delivering pass makes the field's storage: no copy.
    pub fn read_field<T: Element>(&self, name: &str, field: &mut Field<T>) -> Result<()> {
        let d = field.decomposition().clone();
        let start = owned_start(d.owned());
        match self.mode() {
            Mode::Direct => self.read_block_into(name, d.global_shape(), &start, field.interior_mut()),
            Mode::Stage => {
                let mut staged = memory::zeroed::<T>(field.data().raw_dim());
                let (g, local) = (field.ghost(), d.local_shape());
                let interior = staged.slice_each_axis_mut(|ax| Slice::from(g..g + local[ax.axis.index()]));
                self.read_verified_into(name, d.global_shape(), &start, interior)?;
                self.stage(name, &start, Box::new(staged));
                Ok(())
            }
            Mode::Deliver => {
                let staged = self.take::<T>(name, &start, field.data().shape())?;
                // Handing a large block back to the system takes a while (40 ms a GiB); the
                // program need not wait for it (where no thread can be had, it is freed here).
                let old = field.replace_interior(staged);
                if old.len() * std::mem::size_of::<T>() >= 64 << 20 {
                    let _ = std::thread::Builder::new().name("rankwise-free".into()).spawn(move || drop(old));
                }
                Ok(())
            }
        }
    }

    /// Collective (when opened collectively). Read any hyperslab of field `name`, unverified.
    pub fn read_slab<T: Element>(&self, name: &str, start: &[usize], shape: &[usize]) -> Result<ArrayD<T>> {
        if self.mode() == Mode::Deliver {
            return self.take::<T>(name, start, shape);
        }
        let mut slab = ArrayD::from_elem(IxDyn(shape), T::default());
        self.read_slab_into(name, start, slab.view_mut())?;
        if self.mode() == Mode::Stage {
            self.stage(name, start, Box::new(slab.clone()));
        }
        Ok(slab)
    }

    /// Collective (when opened collectively). [`Checkpoint::read_slab`] into `out`.
    pub fn read_slab_into<T: Element>(&self, name: &str, start: &[usize], mut out: ArrayViewMutD<T>) -> Result<()> {
        match self.mode() {
            Mode::Direct => self.read_raw(name, start, out),
            Mode::Stage => {
                let mut slab = ArrayD::from_elem(out.raw_dim(), T::default());
                self.read_raw(name, start, slab.view_mut())?;
                self.stage(name, start, Box::new(slab));
                Ok(())
            }
            Mode::Deliver => {
                let staged = self.take::<T>(name, start, out.shape())?;
                out.assign(&staged);
                Ok(())
            }
        }
    }

    fn mode(&self) -> Mode {
        self.staging.borrow().mode
    }

    fn expect_shape(&self, name: &str, global: &[usize]) -> Result<()> {
        let f = self.info.field(name)?;
        if f.shape != global {
            return Err(IoError::Shape { name: name.into(), expected: global.to_vec(), found: f.shape.clone() });
        }
        Ok(())
    }

    /// Collective. Read this rank's block into `out` (a staging buffer) and verify it. From the
    /// shared file the block is read in slabs along its first axis, each summed on the rank's
    /// threads while the next one is read, so that verifying costs little more than reading.
    fn read_verified_into<T: Element>(&self, name: &str, global: &[usize], start: &[usize], mut out: ArrayViewMutD<T>) -> Result<()> {
        self.expect_shape(name, global)?;
        let mine = if out.ndim() == 0 || matches!(self.source, Source::Local(_)) { 1 } else { (out.len() * std::mem::size_of::<T>() / slab_bytes()).max(1) };
        // Every rank makes the same number of (collective) reads.
        let slabs = match self.comm {
            Some(c) => {
                let mut most = 0usize;
                c.all_reduce_into(&mine, &mut most, SystemOperation::max());
                most
            }
            None => mine,
        };
        if slabs == 1 {
            self.read_raw(name, start, out.view_mut())?;
            return self.verify_sum(name, checksum::block_sum(global, start, &out.view()));
        }
        let rows = out.shape()[0];
        let mut parts = Vec::with_capacity(slabs);
        let mut rest = out;
        for k in 0..slabs {
            let (slab, r) = rest.split_at(Axis(0), (k + 1) * rows / slabs - k * rows / slabs);
            rest = r;
            parts.push(slab);
        }
        // The staging buffer is fresh memory: a page fault per 4 KiB costs as much as the read
        // itself, so another thread faults each slab in before the read reaches it.
        let spans: Vec<(usize, usize)> = parts.iter().map(|p| span(&p.view())).collect();
        let sum = std::thread::scope(|s| {
            s.spawn(move || spans.into_iter().for_each(populate));
            let (tx, rx) = std::sync::mpsc::channel::<(Vec<usize>, ArrayViewMutD<T>)>();
            let summer = s.spawn(move || rx.iter().map(|(at, slab)| checksum::block_sum(global, &at, &slab.view())).fold(0, u64::wrapping_add));
            let mut read = Ok(());
            for (k, mut slab) in parts.into_iter().enumerate() {
                let mut at = start.to_vec();
                at[0] += k * rows / slabs;
                read = self.read_raw(name, &at, slab.view_mut());
                if read.is_err() {
                    break;
                }
                tx.send((at, slab)).expect("the summing thread runs until the sender is dropped");
            }
            drop(tx);
            let sum = summer.join().expect("summing a block does not panic");
            read.map(|()| sum)
        })?;
        self.verify_sum(name, sum)
    }

    /// Collective. Whether the ranks' blocks together match field `name`'s checksum.
    fn verify_block<T: Element>(&self, name: &str, global: &[usize], start: &[usize], block: &ArrayViewD<T>) -> Result<()> {
        self.verify_sum(name, checksum::block_sum(global, start, block))
    }

    /// Collective. [`Checkpoint::verify_block`] of this rank's contribution `sum`.
    fn verify_sum(&self, name: &str, sum: u64) -> Result<()> {
        let f = self.info.field(name)?;
        let sum = match self.comm {
            Some(c) => global_sum(c, sum),
            None => sum,
        };
        if sum != f.checksum {
            return Err(IoError::Corrupt {
                path: self.info.path.clone(),
                reason: format!("field `{name}` has checksum {sum:016x}, the file says {:016x}", f.checksum),
            });
        }
        Ok(())
    }

    /// Collective (when opened collectively). The read itself. Contiguous fields are read straight
    /// from the file where they can be ([`hyperslab::read_direct`]), else with a collective
    /// transfer; chunked ones independently, since a damaged chunk may fail on some ranks only,
    /// which inside a collective transfer would leave the others waiting.
    fn read_raw<T: Element>(&self, name: &str, start: &[usize], mut out: ArrayViewMutD<T>) -> Result<()> {
        let f = self.info.field(name)?;
        if f.dtype != T::DTYPE {
            return Err(IoError::Dtype { name: name.into(), expected: T::DTYPE.into(), found: f.dtype.clone() });
        }
        let fits = check_block(name, &f.shape, start, out.shape());
        let read = fits.and_then(|()| match &self.source {
            Source::Hdf5(file) => {
                let ds = file.dataset(name).map_err(|e| unreadable(&self.info.path, e))?;
                let collective = self.comm.is_some() && !ds.is_chunked();
                let direct = hyperslab::read_direct(file, &ds, &self.info.path, &f.shape, start, out.view_mut());
                direct.unwrap_or_else(|| hyperslab::read_into(&ds, start, out, collective).map(drop)).map_err(|e| unreadable(&self.info.path, e))
            }
            Source::Local(file) => file.read(self.info.fields.iter().position(|g| g.name == name).expect("found above"), start, out),
        });
        match self.comm {
            Some(c) => agree(c, "reading a field", read),
            None => read,
        }
        .map(drop)
    }

    fn stage(&self, name: &str, start: &[usize], data: Box<dyn std::any::Any>) {
        self.staging.borrow_mut().reads.push(Staged { what: format!("`{name}` at {start:?}"), data: Some(data) });
    }

    /// The next staged read, which must be the one the caller asks for now.
    fn take<T: Element>(&self, name: &str, start: &[usize], shape: &[usize]) -> Result<ArrayD<T>> {
        let mut s = self.staging.borrow_mut();
        let found = format!("`{name}` at {start:?}");
        let i = s.next;
        s.next += 1;
        let Some(staged) = s.reads.get_mut(i) else {
            return Err(IoError::Replay { expected: "nothing more".into(), found });
        };
        match staged.data.take().map(|d| d.downcast::<ArrayD<T>>()) {
            Some(Ok(a)) if staged.what == found && a.shape() == shape => Ok(*a),
            _ => Err(IoError::Replay { expected: staged.what.clone(), found: format!("{found} of shape {shape:?} as {}", T::DTYPE) }),
        }
    }
}

/// `dst = src` a row (the contiguous last axis) at a time, on the rank's threads: as fast as a
/// memory copy, where an element-wise copy into or out of a field's ghosted block is not.
pub(crate) fn copy_rows<T: Element>(mut dst: ArrayViewMutD<T>, src: &ArrayViewD<T>) {
    match dst.ndim() {
        0 => dst.assign(src),
        n => Zip::from(dst.lanes_mut(Axis(n - 1))).and(src.lanes(Axis(n - 1))).par_for_each(|mut d, s| match (d.as_slice_mut(), s.as_slice()) {
            (Some(d), Some(s)) => d.copy_from_slice(s),
            (_, _) => d.assign(&s),
        }),
    }
}

/// [`copy_rows`] for a copy that another thread reads much later (a snapshot's flush): stores
/// that bypass the cache, where the CPU has them, spare reading the destination in first, a third
/// of the memory traffic. Each task copies whole sub-blocks along the first axis and fences once.
pub(crate) fn stream_rows<T: Element>(mut dst: ArrayViewMutD<T>, src: &ArrayViewD<T>) {
    let copy = |mut d: ArrayViewMutD<T>, s: ArrayViewD<T>| {
        let n = d.ndim();
        for (mut d, s) in d.lanes_mut(Axis(n - 1)).into_iter().zip(s.lanes(Axis(n - 1))) {
            match (d.as_slice_mut(), s.as_slice()) {
                (Some(d), Some(s)) => stream_copy(d, s),
                (_, _) => d.assign(&s),
            }
        }
        stream_fence();
    };
    match dst.ndim() {
        0 => dst.assign(src),
        1 => copy(dst, src.view()),
        _ => {
            use ndarray::parallel::prelude::*;
            dst.axis_iter_mut(Axis(0)).into_par_iter().zip(src.axis_iter(Axis(0))).for_each(|(d, s)| copy(d.into_dyn(), s.into_dyn()))
        }
    }
}

/// [`stream_rows`] that also returns [`checksum::block_sum`] of `src`, the block at `start` of
/// `global`: each row is summed straight after its copy, from cache, so that the block is read
/// from memory once, not twice.
pub(crate) fn stream_rows_sum<T: Element>(mut dst: ArrayViewMutD<T>, src: &ArrayViewD<T>, global: &[usize], start: &[usize]) -> u64 {
    let n = dst.ndim();
    if n < 2 || src.is_empty() {
        stream_rows(dst.view_mut(), src);
        return checksum::block_sum(global, start, src);
    }
    use ndarray::parallel::prelude::*;
    dst.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(src.axis_iter(Axis(0)))
        .enumerate()
        .map(|(i, (mut d, s))| {
            let mut at = start.to_vec();
            at[0] += i;
            let mut sum = 0u64;
            for ((mut d, s), first) in d.rows_mut().into_iter().zip(s.rows()).zip(checksum::row_starts(global, &at, s.shape())) {
                sum = sum.wrapping_add(match (d.as_slice_mut(), s.as_slice()) {
                    (Some(d), Some(s)) => {
                        stream_copy(d, s);
                        checksum::run_sum(first, s)
                    }
                    (_, _) => {
                        d.assign(&s);
                        checksum::run_sum(first, &s.to_vec())
                    }
                });
            }
            stream_fence();
            sum
        })
        .reduce(|| 0, u64::wrapping_add)
}

/// `dst = src` with non-temporal stores (AVX), else a plain copy. [`stream_fence`] must follow
/// before another thread reads `dst`.
fn stream_copy<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX; both slices hold `len` elements, and do not overlap (one is
        // borrowed mutably).
        return unsafe { stream_avx(dst.as_mut_ptr().cast(), src.as_ptr().cast(), std::mem::size_of_val(src)) };
    }
    dst.copy_from_slice(src);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn stream_avx(dst: *mut u8, src: *const u8, len: usize) {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_stream_si256};
    // Plain stores up to the first 32-byte boundary of `dst`, streaming ones from there.
    let head = dst.align_offset(32).min(len);
    std::ptr::copy_nonoverlapping(src, dst, head);
    let mut i = head;
    while i + 32 <= len {
        _mm256_stream_si256(dst.add(i).cast::<__m256i>(), _mm256_loadu_si256(src.add(i).cast::<__m256i>()));
        i += 32;
    }
    std::ptr::copy_nonoverlapping(src.add(i), dst.add(i), len - i);
}

/// Order this thread's non-temporal stores before what it does next.
fn stream_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

/// The addresses from `v`'s first element to past its last.
fn span<T>(v: &ArrayViewD<T>) -> (usize, usize) {
    let last: isize = v.shape().iter().zip(v.strides()).map(|(&n, &s)| (n.max(1) as isize - 1) * s).sum();
    let first = v.as_ptr() as usize;
    if v.is_empty() { (first, first) } else { (first, first + (last as usize + 1) * std::mem::size_of::<T>()) }
}

/// Fault in the pages of `(start, end)`, memory a staging buffer owns, without changing what they
/// hold (MADV_POPULATE_WRITE, Linux 5.14; older kernels fault on first use as before).
fn populate((start, end): (usize, usize)) {
    const PAGE: usize = 4096;
    let (a, b) = (start / PAGE * PAGE, end.next_multiple_of(PAGE));
    if b > a {
        // SAFETY: the pages belong to one live allocation (a page rounded outward still lies in
        // its mapping) and populating leaves their contents as they are.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_POPULATE_WRITE) };
    }
}

fn owned_start(owned: &[std::ops::Range<usize>]) -> Vec<usize> {
    owned.iter().map(|r| r.start).collect()
}

fn unreadable(path: &Path, e: hdf5::Error) -> IoError {
    IoError::Corrupt { path: path.into(), reason: format!("unreadable: {e}") }
}

pub(crate) fn partial_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    s.into()
}

/// Field names are HDF5 dataset names at the file's root, beside the reserved groups.
fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name == "." {
        "empty"
    } else if name.contains('/') {
        "contains `/`"
    } else if name == meta::PARAMS || name == meta::TABLES {
        "reserved for the checkpoint's own metadata"
    } else {
        return Ok(());
    };
    Err(IoError::Name { name: name.into(), reason })
}

fn check_block(name: &str, global: &[usize], start: &[usize], shape: &[usize]) -> Result<()> {
    let empty = shape.iter().any(|&n| n == 0);
    let fits = global.len() == start.len()
        && global.len() == shape.len()
        && !global.is_empty()
        && (empty || (0..global.len()).all(|d| start[d] + shape[d] <= global[d]));
    if fits {
        Ok(())
    } else {
        Err(IoError::Block { name: name.into(), start: start.to_vec(), shape: shape.to_vec(), global: global.to_vec() })
    }
}

fn collective(name: &str, mode: IoMode) -> Result<IoMode> {
    if mode.is_collective() || mode.is_direct() {
        Ok(mode)
    } else {
        Err(IoError::NotCollective { name: name.into(), mode: mode.to_string() })
    }
}

/// Chunks of whole trailing dimensions, about 1 MiB each.
fn default_chunk<T>(global: &[usize]) -> Vec<usize> {
    let row: usize = global[1..].iter().product::<usize>().max(1) * std::mem::size_of::<T>();
    let mut c = global.to_vec();
    c[0] = (1usize << 20).div_ceil(row).clamp(1, global[0].max(1));
    c
}

/// Collective. The wrapping sum of the ranks' checksum contributions.
fn global_sum(comm: &SimpleCommunicator, local: u64) -> u64 {
    let mut total = 0u64;
    comm.all_reduce_into(&local, &mut total, SystemOperation::sum());
    total
}

/// Collective. Give every rank the same outcome of a step that may fail on some ranks only, so that
/// none goes on into a collective call that another has left. A damaged file anywhere is damage
/// everywhere (so every rank skips it alike); other failures are reported by the ranks that hit them.
pub(crate) fn agree<T>(comm: &SimpleCommunicator, what: &str, r: Result<T>) -> Result<T> {
    let class = |r: &Result<T>| match r {
        Ok(_) => 0u8,
        Err(e) if e.is_corrupt() => 1,
        Err(_) => 2,
    };
    let (mine, mut worst) = (class(&r), 0u8);
    if crate::flush::in_background() {
        // The flushing thread waits without spinning: a blocking all-reduce would busy-poll a
        // core the step loop needs for as long as rank 0 syncs the file, for example.
        mpi::request::scope(|s| {
            let mut req = comm.immediate_all_reduce_into(s, &mine, &mut worst, SystemOperation::max());
            while let Err(pending) = req.test() {
                req = pending;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        });
    } else {
        comm.all_reduce_into(&mine, &mut worst, SystemOperation::max());
    }
    match (worst, r) {
        (0, r) => r,
        (1, r) => Err(first_damage(comm, r.err())),
        (_, r) => {
            // The ranks that did not fail so say why another did, rather than only that it did.
            let own = match &r {
                Err(e) if !e.is_corrupt() => Some(format!("rank {}: {e}", comm.rank())),
                _ => None,
            };
            let first = lowest_message(comm, own).unwrap_or_default();
            match r {
                Err(e) if !e.is_corrupt() => Err(e),
                _ => Err(IoError::OtherRank { what: what.into(), first }),
            }
        }
    }
}

/// Collective. The damage the lowest-numbered rank that found some reports, on every rank, so
/// that all of them say the same and the log names the file and the reason.
fn first_damage(comm: &SimpleCommunicator, mine: Option<IoError>) -> IoError {
    let mine = mine.map(|e| match e {
        IoError::Corrupt { path, reason } => format!("{}\0{reason}", path.display()),
        _ => String::new(),
    });
    let text = lowest_message(comm, mine).unwrap_or_default();
    let (path, reason) = text.split_once('\0').unwrap_or(("(another rank)", &text));
    IoError::Corrupt { path: path.into(), reason: reason.into() }
}

/// Collective. `mine` of the lowest rank that has one, on every rank (`None` where none has).
pub(crate) fn lowest_message(comm: &SimpleCommunicator, mine: Option<String>) -> Option<String> {
    let me = if mine.is_some() { comm.rank() } else { i32::MAX };
    let mut first = 0i32;
    comm.all_reduce_into(&me, &mut first, SystemOperation::min());
    if first == i32::MAX {
        return None;
    }
    let mut msg = mine.filter(|_| comm.rank() == first).unwrap_or_default().into_bytes();
    let root = comm.process_at_rank(first);
    let mut len = msg.len() as u64;
    root.broadcast_into(&mut len);
    msg.resize(len as usize, 0);
    root.broadcast_into(&mut msg[..]);
    Some(String::from_utf8_lossy(&msg).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Dimension, SliceInfoElem};

    /// Streamed copies (summed or not) equal plain ones bit for bit: every dimension, views with ghosts (rows
    /// that start anywhere in a cache line), lengths off any vector width, f32 and f64.
    #[test]
    fn streamed_rows_equal_copied_ones() {
        fn check<T: Element + PartialEq + std::fmt::Debug>(value: impl Fn(usize) -> T) {
            for shape in [vec![1usize], vec![77], vec![3, 5], vec![9, 33], vec![4, 6, 31], vec![2, 3, 130], vec![0, 4]] {
                for ghost in [0usize, 1, 3] {
                    let outer: Vec<usize> = shape.iter().map(|n| n + 2 * ghost).collect();
                    let src = ArrayD::from_shape_fn(IxDyn(&outer), |i| value(i.slice().iter().fold(0, |a, &k| a * 131 + k)));
                    let inner: Vec<SliceInfoElem> = shape.iter().map(|&n| SliceInfoElem::from(ghost..ghost + n)).collect();
                    let src = src.slice(inner.as_slice());
                    let mut streamed = ArrayD::<T>::default(IxDyn(&shape));
                    stream_rows(streamed.view_mut(), &src.view());
                    assert_eq!(streamed.view(), src, "{shape:?} ghost {ghost}");
                    // Summed on the way: the block's checksum wherever it sits in the array.
                    let global: Vec<usize> = shape.iter().map(|n| n + 5).collect();
                    let start: Vec<usize> = shape.iter().enumerate().map(|(d, _)| (d + ghost) % 5).collect();
                    let mut summed = ArrayD::<T>::default(IxDyn(&shape));
                    let sum = stream_rows_sum(summed.view_mut(), &src.view(), &global, &start);
                    assert_eq!(summed.view(), src, "{shape:?} ghost {ghost}");
                    assert_eq!(sum, checksum::block_sum(&global, &start, &src.view()), "{shape:?} ghost {ghost}");
                }
            }
        }
        check(|k| k as f64 * 0.37 - 11.0);
        check(|k| k as f32 * -1.25 + 3.0);
    }
}
