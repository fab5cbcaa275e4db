//! `rankwise info`: what a run here would use. The first thing to run on a new cluster.

use std::ffi::{c_char, c_int, c_void, CStr, CString};

use crate::launch::{self, Choice, Via};

pub fn print() {
    let row = |k: &str, v: String| println!("{k:<9} {v}");
    row("MPI", mpi());
    row("launcher", launcher());
    row("HDF5", hdf5());
    row("BLAS", blas());
    row("CUDA", cuda());
    row("Slurm", slurm());
    row("threads", threads());
}

/// The MPI library this binary links: MPI_Get_library_version may be called before MPI_Init.
fn mpi() -> String {
    format!("{} ({})", rankwise_runtime::mpi_library(), linked("libmpi").unwrap_or_else(|| "statically linked".into()))
}

/// The launcher `rankwise run` would take for a program linked like this binary.
fn launcher() -> String {
    let linked = linked("libmpi").and_then(|path| launch::parse_linked_mpi(path.rsplit('/').next()?));
    match launch::choose(Choice::Auto, linked.as_ref()) {
        Ok(Via::Srun { flavour }) => format!("srun (inside Slurm job), for {flavour}"),
        Ok(Via::Mpirun { path, flavour }) => format!("{} ({flavour})", path.display()),
        Err(e) => format!("none: {e}"),
    }
}

fn hdf5() -> String {
    let (a, b, c) = hdf5::library_version();
    // Only a parallel build has the MPI-IO driver.
    let parallel = if symbol(std::ptr::null_mut(), "H5Pset_fapl_mpio").is_some() { "parallel" } else { "serial" };
    format!("{a}.{b}.{c}, {parallel} ({})", linked("libhdf5").unwrap_or_else(|| "?".into()))
}

fn blas() -> String {
    let Some(lib) = open("libopenblas.so.0") else {
        return if open("libblas.so.3").is_some() { "libblas.so.3 (not OpenBLAS)".into() } else { "none found".into() };
    };
    let Some(config) = symbol(lib, "openblas_get_config") else { return "OpenBLAS (unknown version)".into() };
    // SAFETY: `char *openblas_get_config(void)` returns a static string.
    let config = unsafe { CStr::from_ptr(std::mem::transmute::<*mut c_void, extern "C" fn() -> *const c_char>(config)()) };
    config.to_string_lossy().trim().to_string()
}

/// The driver's version and the devices it shows (honouring CUDA_VISIBLE_DEVICES), via libcuda
/// itself: no CUDA toolkit needed, and no panic without one.
fn cuda() -> String {
    let Some(lib) = open("libcuda.so.1") else { return "none (no CUDA driver)".into() };
    type IntFn = unsafe extern "C" fn(*mut c_int) -> c_int;
    let f = |name: &str| symbol(lib, name);
    let (Some(init), Some(ver), Some(count), Some(name)) =
        (f("cuInit"), f("cuDriverGetVersion"), f("cuDeviceGetCount"), f("cuDeviceGetName"))
    else {
        return "none (libcuda lacks the driver API)".into();
    };
    // SAFETY: the CUDA driver API signatures, as documented; CUdevice is an int.
    unsafe {
        let init: unsafe extern "C" fn(u32) -> c_int = std::mem::transmute(init);
        let (ver, count): (IntFn, IntFn) = (std::mem::transmute(ver), std::mem::transmute(count));
        let name: unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int = std::mem::transmute(name);
        let mut v = 0;
        ver(&mut v);
        let driver = format!("driver API {}.{}", v / 1000, (v % 1000) / 10);
        let rc = init(0);
        if rc != 0 {
            return format!("{driver}, no GPU (cuInit error {rc})");
        }
        let mut n = 0;
        if count(&mut n) != 0 || n == 0 {
            return format!("{driver}, no GPU visible");
        }
        let names: Vec<String> = (0..n)
            .map(|d| {
                let mut buf = [0 as c_char; 256];
                name(buf.as_mut_ptr(), 256, d);
                format!("{d}: {}", CStr::from_ptr(buf.as_ptr()).to_string_lossy())
            })
            .collect();
        format!("{driver}, {n} GPU(s): {}", names.join("; "))
    }
}

fn slurm() -> String {
    let keys = ["SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_JOB_PARTITION", "SLURM_JOB_NUM_NODES", "SLURM_JOB_NODELIST",
        "SLURM_NTASKS", "SLURM_CPUS_PER_TASK", "SLURM_RESTART_COUNT"];
    if std::env::var_os("SLURM_JOB_ID").is_none() {
        return "not inside a Slurm job".into();
    }
    keys.iter().filter_map(|k| Some(format!("{k}={}", std::env::var(k).ok()?))).collect::<Vec<_>>().join(" ")
}

/// What each rank's pools would take here: RAYON_NUM_THREADS, else its CPUs shared by the ranks
/// on them (see `rankwise_runtime::threads`); OpenBLAS the same unless a variable says.
fn threads() -> String {
    use rankwise_runtime::threads::{blas_from_env, from_env, share, usable_cpus, THREADS_ENV};
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = usable_cpus();
    let per_rank = match from_env() {
        Some(n) => format!("{n} per rank ({THREADS_ENV})"),
        None => format!(
            "per rank its CPUs shared by the ranks on them: {} for 1 rank here, {} for 2, {} for 4 ({THREADS_ENV} unset)",
            share(cpus, 1),
            share(cpus, 2),
            share(cpus, 4)
        ),
    };
    let blas = match blas_from_env() {
        Some((k, v)) => format!("OpenBLAS {v} ({k})"),
        None => "OpenBLAS the same".into(),
    };
    format!("{per_rank}; {blas}; {} cores, {logical} hardware threads, {cpus} usable", launch::Host::here().cores)
}

/// The file a loaded library whose name starts with `prefix` came from.
fn linked(prefix: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.rsplit('/').next().is_some_and(|f| f.starts_with(prefix) && f.contains(".so")))
        .map(str::to_string)
}

fn open(lib: &str) -> Option<*mut c_void> {
    let name = CString::new(lib).ok()?;
    // SAFETY: dlopen with a valid C string; the handle is never closed (info runs once).
    let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    (!h.is_null()).then_some(h)
}

/// `handle` null means every library already loaded.
fn symbol(handle: *mut c_void, name: &str) -> Option<*mut c_void> {
    let name = CString::new(name).ok()?;
    let handle = if handle.is_null() { libc::RTLD_DEFAULT } else { handle };
    // SAFETY: dlsym with a valid handle and C string.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}
