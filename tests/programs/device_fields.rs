//! GPU test program for device fields, launched by tests/gpu.rs under mpirun:
//! `device-fields SPEC...`, each SPEC `SHAPE:PERIODIC:GHOST:STENCIL` as in fields.rs.
//!
//! For each SPEC on the automatic rank grid: the same values in a host `Field` and a
//! `DeviceField` (ghosts included, every cell distinct), both exchanged, the whole blocks compared
//! bit for bit; in one call, in split phase with a kernel on the compute stream between begin and
//! finish, and twice in a row (the buffers are reused); with device pointers to MPI as well when
//! the MPI library says it is CUDA-aware. Prints `rank=R runs=N checked=C bad=B`. Without a
//! usable GPU on every rank, rank 0 prints one `skipping CUDA test` line and all exit 0.

use std::sync::Arc;

use rankwise::kernels::CudaBackend;
use rankwise::runtime::mpi::collective::SystemOperation;
use rankwise::runtime::mpi::traits::*;
use rankwise::runtime::{self, cuda_aware_mpi, BadInput, Decomposition, DeviceField, Exit, Field, GpuBinding, InitOptions, Runtime, Stencil};

type E = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let specs: Vec<String> = std::env::args().skip(1).collect();
    runtime::run(InitOptions::default(), |rt: &mut Runtime| -> Result<Exit, E> {
        let Some(gpu) = gpu_everywhere(rt) else { return Ok(Exit::Done) };
        let pointers: &[bool] = if cuda_aware_mpi() == Some(true) { &[false, true] } else { &[false] };
        let (mut runs, mut checked, mut bad) = (0, 0, 0);
        for spec in &specs {
            let parts: Vec<&str> = spec.split(':').collect();
            let [sh, per, ghost, stencil] = parts[..] else { return Err(BadInput(format!("bad spec {spec:?}")).into()) };
            let global: Vec<usize> = sh.split('x').map(str::parse).collect::<Result<_, _>>()?;
            let periodic: Vec<bool> = per.chars().map(|c| c == '1').collect();
            let ghost: usize = ghost.parse()?;
            let stencil = if stencil == "box" { Stencil::Box } else { Stencil::Star };
            let d = Arc::new(Decomposition::new(rt, &global, &periodic)?);
            let mut host = Field::<f64>::new(&d, ghost);
            // Distinct values everywhere, ghosts included: a ghost left alone keeps its own.
            let n = host.data().len() as f64;
            host.data_mut().iter_mut().enumerate().for_each(|(i, v)| *v = -1.0 - (i as f64 + n * rt.rank() as f64));
            host.fill_with(|g| g.iter().fold(0.0, |a, &i| a * 100.0 + i as f64) + 0.25);
            let mut want = host.clone();
            want.exchange(stencil);
            for &device_pointers in pointers {
                for form in ["one call", "split phase", "twice"] {
                    let mut dev = DeviceField::upload(&gpu, &host)?;
                    dev.set_device_pointers_to_mpi(device_pointers)?;
                    match form {
                        "one call" => dev.exchange(stencil)?,
                        "split phase" => {
                            let exchange = dev.begin_exchange(stencil)?;
                            // A stencil on the cells whose neighbours are all owned, on the
                            // compute stream while the ghosts are filled on the halo stream.
                            let mut out = DeviceField::new(&gpu, &d, ghost)?;
                            let n = dev.block().array().shape().to_vec();
                            let inner: Vec<_> = n.iter().map(|&n| ghost + 1..(ghost + 1).max(n - ghost - 1)).collect();
                            if (2..=3).contains(&n.len()) {
                                gpu.laplacian_cells(dev.block().array(), out.block_mut().array_mut(), &inner, &vec![1.0; n.len()])?;
                            }
                            exchange.finish(&mut dev)?;
                        }
                        _ => {
                            dev.exchange(stencil)?;
                            dev.exchange(stencil)?;
                        }
                    }
                    let mut got = Field::<f64>::new(&d, ghost);
                    dev.to_host(&mut got)?;
                    let wrong = got.data().iter().zip(want.data().iter()).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                    if wrong > 0 {
                        println!("bad {spec} ({form}, device pointers {device_pointers}): {wrong} cells differ");
                    }
                    checked += got.data().len();
                    bad += wrong;
                    runs += 1;
                }
            }
        }
        println!("rank={} runs={runs} checked={checked} bad={bad}", rt.rank());
        Ok(Exit::Done)
    })
}

/// Collective. This rank's CUDA back end when every rank has one; otherwise rank 0 says why.
fn gpu_everywhere(rt: &Runtime) -> Option<CudaBackend> {
    let mine = match rt.gpu() {
        GpuBinding::None { reason } => Err(reason.clone()),
        GpuBinding::Device { ordinal, .. } => CudaBackend::new(*ordinal).map_err(|e| e.to_string()),
    };
    let mut all = 0;
    rt.world().all_reduce_into(&(mine.is_ok() as i32), &mut all, SystemOperation::min());
    match mine {
        Ok(gpu) if all == 1 => Some(gpu),
        mine => {
            if rt.is_root() {
                let why = mine.err().unwrap_or_else(|| "another rank has none".into());
                println!("skipping CUDA test: no usable CUDA back end on every rank ({why})");
            }
            None
        }
    }
}
