//! The heat step on the GPU (`backend = "cuda"`, or `"auto"` when every rank has a GPU): the
//! field lives in device memory as a [`DeviceField`]; each step updates the inner cells while
//! the halo exchange runs (packed, staged and unpacked on the field's own stream), then the
//! shell. The host copy is refreshed only for checkpoints and the final figures.
//!
//! Nothing in a step waits for the GPU when no message is sent (one rank, periodic): a timer
//! around a step would measure its kernel launches. [`Heat::report`] gives the time per step
//! from the wall clock between the end of the first step and the final synchronise.

use std::ops::Range;
use std::time::Instant;

use rankwise::kernels::CudaBackend;
use rankwise::runtime::mpi::collective::SystemOperation;
use rankwise::runtime::mpi::traits::*;
use rankwise::runtime::{overlap_boxes, Config, DeviceField, Field, GpuBinding, Runtime, Stencil};

use super::Res;

/// Two device fields: the state and the next one.
pub struct Heat {
    u: DeviceField,
    v: DeviceField,
    steps: u64,
    /// When the first step had finished on the GPU, and the steps done by then.
    clock: Option<(Instant, u64)>,
}

/// Collective. The GPU state for `backend` ("cpu", "cuda" or "auto"), starting from `u`;
/// `None` for the CPU. All ranks decide together: "cuda" is bad input unless every rank has a
/// usable GPU, "auto" then falls back to the CPU.
pub fn select(rt: &Runtime, cfg: &Config, backend: &str, u: &Field<f64>) -> Res<Option<Heat>> {
    if backend == "cpu" {
        return Ok(None);
    }
    let mine = match rt.gpu() {
        GpuBinding::None { reason } => Err(reason.clone()),
        GpuBinding::Device { ordinal, .. } => CudaBackend::new(*ordinal).map_err(|e| e.to_string()),
    };
    let mut everywhere = 0;
    rt.world().all_reduce_into(&(mine.is_ok() as i32), &mut everywhere, SystemOperation::min());
    match (mine, everywhere == 1) {
        (Ok(gpu), true) => {
            let (u, v) = (DeviceField::upload(&gpu, u)?, DeviceField::new(&gpu, u.decomposition(), u.ghost())?);
            if rt.is_root() {
                log::info!("heat on the GPU: {} ({})", gpu.device_name()?, rt.gpu());
            }
            Ok(Some(Heat { u, v, steps: 0, clock: None }))
        }
        (mine, _) if backend == "auto" => {
            if rt.is_root() {
                log::info!("backend auto: the CPU ({})", mine.err().unwrap_or_else(|| "another rank has no usable GPU".into()));
            }
            Ok(None)
        }
        (Err(reason), _) => Err(cfg.invalid("backend", format!("no usable GPU: {reason}")).into()),
        (Ok(_), _) => Err(cfg.invalid("backend", "another rank has no usable GPU").into()),
    }
}

impl Heat {
    /// One explicit step, `v = u + nu_dt lap(u)`, then `u` and `v` swap.
    pub fn step(&mut self, h: f64, nu_dt: f64) -> Res<()> {
        let (inner, shell) = overlap_boxes(&self.u.decomposition().local_shape(), 1);
        let exchange = self.u.begin_exchange(Stencil::Star)?;
        self.update(&inner, h, nu_dt)?;
        exchange.finish(&mut self.u)?;
        for cells in &shell {
            self.update(cells, h, nu_dt)?;
        }
        std::mem::swap(&mut self.u, &mut self.v);
        self.steps += 1;
        if self.clock.is_none() {
            // The first step allocates the exchange buffers: the clock starts after it.
            self.u.gpu().synchronize()?;
            self.clock = Some((Instant::now(), self.steps));
        }
        Ok(())
    }

    /// Waits for the GPU; rank 0 logs the time per step since the end of the first one
    /// (scripts/gpu-check.sh reads it).
    pub fn report(&self, rt: &Runtime) -> Res<()> {
        self.u.gpu().synchronize()?;
        if let (Some((start, first)), true) = (self.clock, rt.is_root()) {
            let (n, secs) = (self.steps - first, start.elapsed().as_secs_f64());
            if n > 0 {
                log::info!("GPU steps: {n} in {secs:.6} s, {:.6e} s/step (wall clock, first step excluded, to the final synchronise)", secs / n as f64);
            }
        }
        Ok(())
    }

    /// The kernel on the owned cells `cells` (interior indices), issued on the compute stream.
    fn update(&mut self, cells: &[Range<usize>], h: f64, nu_dt: f64) -> Res<()> {
        // With ghost width 1, owned cell i is block index i + 1.
        let cells: Vec<Range<usize>> = cells.iter().map(|r| r.start + 1..r.end + 1).collect();
        let spacing = vec![h; cells.len()];
        let gpu = self.u.gpu();
        gpu.heat_step_cells(self.u.block().array(), self.v.block_mut().array_mut(), &cells, &spacing, nu_dt)?;
        Ok(())
    }

    /// Copies the current state into `u` (for a checkpoint or the final figures).
    pub fn to_host(&self, u: &mut Field<f64>) -> Res<()> {
        Ok(self.u.to_host(u)?)
    }
}
