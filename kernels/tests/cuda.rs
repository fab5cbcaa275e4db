//! The CUDA back end against the CPU back end: the same calls through [`Backend`] must give the
//! CPU's bits where the CUDA kernels round as the CPU ones (elementwise, stencils, SpMV) and its
//! answer to rounding elsewhere (reductions, matmul). They need a GPU: `#[ignore]`d here, run by
//! `make gpu-check` (`--include-ignored`), where a missing driver, device or NVRTC fails them.
mod common;

use common::{assert_close, random};
use ndarray::{Array2, ArrayD};
use rankwise_kernels::cuda::{self, DeviceBlock, Side};
use rankwise_kernels::cudarc::driver::{sys, DevicePtr};
use rankwise_kernels::{Backend, CudaBackend, Csr, Error};

const TOL: f64 = 1e-12;

fn cuda() -> CudaBackend {
    CudaBackend::new(0).unwrap_or_else(|e| panic!("no usable CUDA back end: {e}"))
}

fn gpu() -> Backend {
    Backend::Cuda(cuda())
}

/// gpu-check runs this first: what the machine has, and whether the kernels load there.
#[test]
#[ignore = "needs a GPU"]
fn toolchain_driver_and_device() {
    eprintln!(); // after the harness's "test ... " (gpu-check keeps the lines below)
    eprintln!("{}", cuda::driver_version().unwrap_or_else(|e| e.to_string()));
    eprintln!("{}", cuda::nvrtc_version().unwrap_or_else(|e| e.to_string()));
    let gpu = cuda();
    let ctx = gpu.stream().context();
    eprintln!("device 0: {} (compute capability {:?}) of {:?} visible", gpu.device_name().unwrap(), ctx.compute_capability().unwrap(), cuda::device_count());
    assert_eq!(Backend::auto(0).name(), "cuda", "Backend::auto chooses CUDA where it is usable");
    assert_eq!(Backend::from_name("auto").unwrap().name(), "cuda");
}

/// The inputs every back end gets (host arrays, uploaded by each).
struct Inputs {
    u2: Array2<f64>,
    f2: Array2<f64>,
    u3: ndarray::Array3<f64>,
    f3: ndarray::Array3<f64>,
    x: ndarray::Array1<f64>,
    y: ndarray::Array1<f64>,
    sparse: Csr<f64>,
    a: Array2<f64>,
    b: Array2<f64>,
}

impl Inputs {
    fn new() -> Self {
        // Sizes that are no multiple of any block size, so that the edges of the grids are tested.
        let dense = random((1000, 900));
        let mask = random((1000, 900)).mapv(|m| if m.abs() < 0.12 { 1.0 } else { 0.0 });
        Inputs {
            u2: random((203, 301)),
            f2: random((203, 301)),
            u3: random((37, 45, 71)),
            f3: random((37, 45, 71)),
            x: random(1_000_003),
            y: random(1_000_003),
            sparse: Csr::from_dense((dense * mask).view()),
            a: random((100, 70)),
            b: random((70, 45)),
        }
    }
}

/// Runs every kernel through the one API and returns the named results (and dot products).
/// Named arrays and named scalars that a back end computed.
type Results = (Vec<(&'static str, ArrayD<f64>)>, Vec<(&'static str, f64)>);

fn run_all(be: &Backend, inp: &Inputs) -> Result<Results, Error> {
    let mut out = vec![];
    let h2 = [0.3, 0.7];
    let h3 = [0.3, 0.5, 0.9];
    let (u2, f2) = (be.upload(inp.u2.view())?, be.upload(inp.f2.view())?);
    let (u3, f3) = (be.upload(inp.u3.view())?, be.upload(inp.f3.view())?);
    for g in [1, 2] {
        let mut d2 = be.upload(inp.f2.view())?; // ghosts must stay as they were
        be.laplacian_2d(&u2, &mut d2, g, h2)?;
        out.push(("laplacian_2d", be.download(&d2)?.into_dyn()));
        be.heat_step_2d(&u2, &mut d2, g, h2, 0.01)?;
        out.push(("heat_step_2d", be.download(&d2)?.into_dyn()));
        be.jacobi_2d(&u2, &f2, &mut d2, g, h2, 2.0 / 3.0)?;
        out.push(("jacobi_2d", be.download(&d2)?.into_dyn()));
        let mut d3 = be.upload(inp.f3.view())?;
        be.laplacian_3d(&u3, &mut d3, g, h3)?;
        out.push(("laplacian_3d", be.download(&d3)?.into_dyn()));
        be.heat_step_3d(&u3, &mut d3, g, h3, 0.01)?;
        out.push(("heat_step_3d", be.download(&d3)?.into_dyn()));
        be.jacobi_3d(&u3, &f3, &mut d3, g, h3, 1.0)?;
        out.push(("jacobi_3d", be.download(&d3)?.into_dyn()));
    }

    let x = be.upload(inp.x.view())?;
    let mut y = be.upload(inp.y.view())?;
    let dots = vec![("dot", be.dot(&x, &y)?), ("norm2", be.norm2(&x)?)];
    be.axpy(1.5, &x, &mut y)?;
    out.push(("axpy", be.download(&y)?.into_dyn()));
    be.axpby(-0.5, &x, 2.0, &mut y)?;
    out.push(("axpby", be.download(&y)?.into_dyn()));
    be.scale(0.25, &mut y)?;
    out.push(("scale", be.download(&y)?.into_dyn()));
    be.copy(&x, &mut y)?;
    out.push(("copy", be.download(&y)?.into_dyn()));
    be.fill(3.5, &mut y)?;
    out.push(("fill", be.download(&y)?.into_dyn()));

    let a = be.upload_csr(&inp.sparse)?;
    let xs = be.upload(inp.x.slice(ndarray::s![..inp.sparse.ncols()]))?;
    let mut ys = be.zeros(ndarray::Ix1(inp.sparse.nrows()))?;
    be.spmv(&a, &xs, &mut ys)?;
    out.push(("spmv", be.download(&ys)?.into_dyn()));

    let (a, b) = (be.upload(inp.a.view())?, be.upload(inp.b.view())?);
    let mut c = be.zeros(ndarray::Ix2(inp.a.nrows(), inp.b.ncols()))?;
    be.matmul(&a, &b, &mut c)?;
    out.push(("matmul", be.download(&c)?.into_dyn()));
    Ok((out, dots))
}

/// The kernels whose every value is one rounded expression, in the CPU's order: the same bits.
const BIT_FOR_BIT: [&str; 12] =
    ["laplacian_2d", "heat_step_2d", "jacobi_2d", "laplacian_3d", "heat_step_3d", "jacobi_3d", "axpy", "axpby", "scale", "copy", "fill", "spmv"];

#[test]
#[ignore = "needs a GPU"]
fn every_kernel_gives_the_cpu_answer_and_the_cpu_bits_where_it_rounds_alike() {
    let inp = Inputs::new();
    let (want, want_dots) = run_all(&Backend::Cpu, &inp).unwrap();
    let (got, got_dots) = run_all(&gpu(), &inp).unwrap();
    let mut differing = vec![];
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        assert_close(name, g.view(), w.view(), TOL);
        let bits = g.iter().zip(w.iter()).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        if BIT_FOR_BIT.contains(name) && bits > 0 {
            differing.push(format!("{name}: {bits} of {} values", g.len()));
        }
    }
    assert!(differing.is_empty(), "CPU and GPU differ in the last bit: {differing:?}");
    let size: f64 = inp.x.iter().zip(&inp.y).map(|(a, b)| (a * b).abs()).sum();
    for ((name, g), (_, w)) in got_dots.iter().zip(&want_dots) {
        assert!((g - w).abs() / size < TOL, "{name}: {g} vs {w}");
    }
}

/// With `Rounding::Fma` the same kernels still give the CPU's answer to rounding.
#[test]
#[ignore = "needs a GPU"]
fn fused_multiply_adds_give_the_cpu_answer_to_rounding() {
    let fma = Backend::Cuda(CudaBackend::with_rounding(0, rankwise_kernels::Rounding::Fma).unwrap());
    let inp = Inputs::new();
    let (want, _) = run_all(&Backend::Cpu, &inp).unwrap();
    let (got, _) = run_all(&fma, &inp).unwrap();
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        assert_close(name, g.view(), w.view(), TOL);
    }
}

/// A CUDA-aware MPI shares a message buffer with another process of the node through
/// `cuIpcGetMemHandle`, which fails on memory from cudarc's stream-ordered pool.
#[test]
#[ignore = "needs a GPU"]
fn exchange_buffers_can_be_shared_between_processes() {
    let gpu = cuda();
    let buf = gpu.face_buffer(1000).unwrap();
    let stream = gpu.stream();
    let ipc = |ptr| {
        let mut handle = std::mem::MaybeUninit::<sys::CUipcMemHandle>::uninit();
        // Safety: an out-parameter and a live device address.
        unsafe { sys::cuIpcGetMemHandle(handle.as_mut_ptr(), ptr) }
    };
    let (ptr, _used) = buf.device_ptr(stream);
    assert_eq!(ipc(ptr), sys::CUresult::CUDA_SUCCESS, "cuIpcGetMemHandle on an exchange buffer");
    assert_eq!(gpu.stream().clone_dtoh(&*buf).unwrap(), vec![0.0; 1000], "zeroed");
    let pooled = stream.alloc_zeros::<f64>(1000).unwrap();
    let (ptr, _used) = pooled.device_ptr(stream);
    eprintln!("cuIpcGetMemHandle on cudarc's own allocation: {:?} (pool allocations: {})", ipc(ptr), stream.context().has_async_alloc());
}

#[test]
#[ignore = "needs a GPU"]
fn forked_streams_overlap_and_join() {
    let main = cuda();
    let side = main.fork().unwrap();
    let u0 = random((512, 512));
    let (u, mut lap) = (main.upload(u0.view()).unwrap(), main.upload(u0.view()).unwrap());
    let mut halo = side.zeros(u0.raw_dim()).unwrap();
    // A copy on the side stream (as a halo exchange would stage one) beside the interior kernel.
    side.join(&main).unwrap();
    side.copy(&u, &mut halo).unwrap();
    main.laplacian_2d(&u, &mut lap, 1, [1.0, 1.0]).unwrap();
    main.join(&side).unwrap();
    main.axpy(1.0, &halo, &mut lap).unwrap();
    let mut want = u0.clone();
    rankwise_kernels::cpu::laplacian_2d(u0.view(), want.view_mut(), 1, [1.0, 1.0]).unwrap();
    want += &u0;
    assert_close("lap + copy over two streams", main.download(&lap).unwrap().view(), want.view(), TOL);
}

#[test]
#[ignore = "needs a GPU"]
fn a_buffer_on_the_wrong_backend_is_an_error() {
    let gpu = gpu();
    let host = Backend::Cpu.upload(random(10).view()).unwrap();
    let mut dev = gpu.upload(random(10).view()).unwrap();
    let e = gpu.axpy(1.0, &host, &mut dev).unwrap_err();
    assert!(e.to_string().contains("lives in the other back end's memory"), "{e}");
    assert!(Backend::Cpu.download(&dev).is_err());
}

#[test]
#[ignore = "needs a GPU"]
fn faces_pack_and_unpack_like_host_slices() {
    let gpu = cuda();
    let g = 2;
    let a = random((9, 11, 13));
    let mut block = DeviceBlock::upload(&gpu, a.view(), g).unwrap();
    let mut want = a.clone();
    for axis in 0..3 {
        let n = a.shape()[axis];
        let len = block.face_len(axis);
        let mut buf = gpu.face_buffer(len).unwrap();
        for (side, owned, ghost) in [(Side::Low, g..2 * g, 0..g), (Side::High, n - 2 * g..n - g, n - g..n)] {
            block.pack(&gpu, axis, side, &mut buf).unwrap();
            let packed = gpu.stream().clone_dtoh(&*buf).unwrap();
            gpu.synchronize().unwrap();
            // Faces span the other axes' ghosts too: those filled by earlier axes travel on
            // (how edges and corners get filled), so compare with the block as it is now.
            let face = want.slice_axis(ndarray::Axis(axis), owned.into()).to_owned();
            assert_eq!(&packed[..len], face.as_slice().unwrap(), "pack {axis} {side:?}");

            // Through pinned host memory, as a halo exchange stages it for MPI.
            let incoming = random(len);
            let mut pinned = gpu.pinned(len).unwrap();
            pinned.as_mut_slice().unwrap().copy_from_slice(incoming.as_slice().unwrap());
            gpu.face_from_host(&pinned, &mut buf).unwrap();
            block.unpack(&gpu, axis, side, &buf).unwrap();
            let shape = face.raw_dim();
            want.slice_axis_mut(ndarray::Axis(axis), ghost.into()).assign(&incoming.into_shape_with_order(shape).unwrap());
        }
    }
    assert_eq!(block.download(&gpu).unwrap(), want);
    let mut small = gpu.face_buffer(3).unwrap();
    assert!(matches!(block.pack(&gpu, 0, Side::Low, &mut small), Err(Error::Shape(_))));
}

/// A split-phase step updates the inner box and the shell apart: together they give the whole
/// interior's update bit for bit, and a box that reaches the block's edge is an error.
#[test]
#[ignore = "needs a GPU"]
fn stencils_on_boxes_tile_the_interior() {
    let gpu = cuda();
    let (u2, u3) = (random((37, 70)).into_dyn(), random((9, 12, 35)).into_dyn());
    for u0 in [u2, u3] {
        let n = u0.shape().to_vec();
        let h: Vec<f64> = (0..n.len()).map(|k| 0.1 + 0.2 * k as f64).collect();
        let u = gpu.upload(u0.view()).unwrap();
        let (mut whole, mut parts) = (gpu.upload(u0.view()).unwrap(), gpu.upload(u0.view()).unwrap());
        let interior: Vec<_> = n.iter().map(|&n| 1..n - 1).collect();
        gpu.heat_step_cells(&u, &mut whole, &interior, &h, 0.01).unwrap();
        // The inner box 3 cells in, then the shell: along each axis its low and high slabs,
        // earlier axes limited to the inner range.
        let inner: Vec<_> = n.iter().map(|&n| 4..n - 4).collect();
        gpu.heat_step_cells(&u, &mut parts, &inner, &h, 0.01).unwrap();
        for a in 0..n.len() {
            for slab in [1..4, n[a] - 4..n[a] - 1] {
                let cells: Vec<_> = (0..n.len()).map(|k| if k < a { inner[k].clone() } else if k == a { slab.clone() } else { interior[k].clone() }).collect();
                gpu.heat_step_cells(&u, &mut parts, &cells, &h, 0.01).unwrap();
            }
        }
        let (whole, parts) = (gpu.download(&whole).unwrap(), gpu.download(&parts).unwrap());
        assert!(whole.iter().zip(&parts).all(|(a, b)| a.to_bits() == b.to_bits()), "{n:?}");
        assert_ne!(whole, u0, "the interior was updated");
        let edge: Vec<_> = n.iter().map(|&n| 0..n - 1).collect();
        let mut out = gpu.upload(u0.view()).unwrap();
        assert!(matches!(gpu.heat_step_cells(&u, &mut out, &edge, &h, 0.01), Err(Error::Shape(_))));
    }
}
