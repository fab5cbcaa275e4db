//! The CUDA back end (cudarc with dynamic loading: builds and runs without CUDA installed).

/// Why the CUDA back end is not available.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver (libcuda) found")]
    NoDriver,
    #[error("CUDA driver error: {0}")]
    Driver(String),
}

/// Number of visible CUDA devices. Never panics: without a driver it says so.
pub fn device_count() -> Result<usize, CudaError> {
    // cudarc panics when libcuda is missing, so ask first.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError::NoDriver);
    }
    match cudarc::driver::CudaContext::device_count() {
        Ok(n) => Ok(n as usize),
        Err(e) if format!("{e:?}").contains("NO_DEVICE") => Ok(0),
        Err(e) => Err(CudaError::Driver(format!("{e:?}"))),
    }
}
