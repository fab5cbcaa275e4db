//! The references of python/benchmarks/bench.py: the same work as its Python loops, looped in Rust, in the
//! same process on the same memory, so that the benchmark shows what calling from Python costs.

use std::time::Instant;

use ndarray::Ix2;
use pyo3::prelude::*;
use rankwise_kernels::cpu;
use mpi::traits::*;
use rankwise_runtime::Stencil;

use crate::kernels::{array_out, kernel_err};
use crate::parallel::Field;
use crate::{collective, local, ShapeError};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_reference_heat_steps, m)?)?;
    m.add_function(wrap_pyfunction!(_reference_exchanges, m)?)?;
    Ok(())
}

/// `calls` heat steps from `u` into `v` and back (as `rankwise.heat_step` alternating the two),
/// looped in Rust; the seconds each took.
#[pyfunction]
fn _reference_heat_steps(u: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>, calls: usize, h: [f64; 2], nu_dt: f64) -> PyResult<Vec<f64>> {
    local(|| {
        let (mut a, mut b) = (array_out(u, "u")?, array_out(v, "v")?);
        let (mut a, mut b) = (a.as_array_mut().into_dimensionality::<Ix2>(), b.as_array_mut().into_dimensionality::<Ix2>());
        let (Ok(a), Ok(b)) = (a.as_mut(), b.as_mut()) else { return Err(ShapeError::new_err("2-D arrays")) };
        let mut times = Vec::with_capacity(calls);
        for i in 0..calls {
            let t0 = Instant::now();
            if i % 2 == 0 {
                cpu::heat_step_2d(a.view(), b.view_mut(), 1, h, nu_dt).map_err(kernel_err)?;
            } else {
                cpu::heat_step_2d(b.view(), a.view_mut(), 1, h, nu_dt).map_err(kernel_err)?;
            }
            times.push(t0.elapsed().as_secs_f64());
        }
        Ok(times)
    })
}

/// Collective. `calls` halo exchanges (faces) of `field`, looped in Rust, each after a barrier;
/// the seconds each took on this rank.
#[pyfunction]
fn _reference_exchanges(mut field: PyRefMut<'_, Field>, calls: usize) -> PyResult<Vec<f64>> {
    collective(|| {
        let comm = field.field.decomposition().clone();
        let mut times = Vec::with_capacity(calls);
        for _ in 0..calls {
            comm.comm().barrier();
            let t0 = Instant::now();
            field.field.exchange(Stencil::Star);
            times.push(t0.elapsed().as_secs_f64());
        }
        Ok(times)
    })
}
