//! The boundary between C and Rust: error codes with a thread-local message, opaque handles that
//! are checked before use, and guards that keep every panic on the Rust side.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

/// Success.
pub const RANKWISE_OK: c_int = 0;
/// A null pointer where a value or handle was needed.
pub const RANKWISE_ERR_NULL: c_int = 1;
/// A handle that is not live: destroyed already, never made by Rankwise, or of another kind.
pub const RANKWISE_ERR_HANDLE: c_int = 2;
/// Shapes, ghost widths, strides or buffer lengths that do not fit together.
pub const RANKWISE_ERR_SHAPE: c_int = 3;
/// The user's input: the inputs file and `--set` values, an impossible decomposition, a
/// checkpoint written by another run. The same on every rank.
pub const RANKWISE_ERR_INPUT: c_int = 4;
/// MPI is not running, or the communicator cannot be used (an inter-communicator).
pub const RANKWISE_ERR_MPI: c_int = 5;
/// Reading or writing files (checkpoints, output).
pub const RANKWISE_ERR_IO: c_int = 6;
/// A factorisation failed (a singular or not positive definite matrix).
pub const RANKWISE_ERR_LINALG: c_int = 7;
/// An unknown or unusable back end (no GPU for "cuda").
pub const RANKWISE_ERR_BACKEND: c_int = 8;
/// An internal error in Rankwise (a bug), caught at the boundary; please report it.
pub const RANKWISE_ERR_INTERNAL: c_int = 9;

/// An error on its way to C: a code and one line of text.
#[derive(Debug)]
pub(crate) struct Failure {
    pub code: c_int,
    pub message: String,
}

pub(crate) type Res<T = ()> = Result<T, Failure>;

pub(crate) fn fail(code: c_int, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

thread_local! {
    static LAST: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = text);
}

/// The message of the last error on this thread ("" after a success), valid until the next
/// Rankwise call on this thread. Not Collective.
#[no_mangle]
pub extern "C" fn rankwise_error_message() -> *const c_char {
    LAST.with(|l| l.borrow().as_ptr())
}

/// Copy the message of the last error on this thread into `buf` (`len` bytes, always
/// NUL-terminated, cut if too short) and return its full length. For Fortran. Not Collective.
///
/// # Safety
/// `buf` must be null or point to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn rankwise_error_message_copy(buf: *mut c_char, len: usize) -> usize {
    LAST.with(|l| {
        let bytes = l.borrow();
        let bytes = bytes.as_bytes();
        if !buf.is_null() && len > 0 {
            let n = bytes.len().min(len - 1);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
        bytes.len()
    })
}

/// Make `message` this thread's last error and return `code`: for language bindings over this API
/// (the Fortran module) that find an error before calling into it. Not Collective.
///
/// # Safety
/// `message` must be null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rankwise_set_error(code: c_int, message: *const c_char) -> c_int {
    let text = if message.is_null() { String::new() } else { CStr::from_ptr(message).to_string_lossy().into_owned() };
    set_last(&text);
    code
}

fn report(r: Res) -> c_int {
    match r {
        Ok(()) => {
            set_last("");
            RANKWISE_OK
        }
        Err(f) => {
            set_last(&f.message);
            f.code
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "(no message)".into())
}

/// Run a call that only this rank makes: a panic becomes [`RANKWISE_ERR_INTERNAL`].
pub(crate) fn local(f: impl FnOnce() -> Res) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => report(r),
        Err(p) => report(Err(fail(RANKWISE_ERR_INTERNAL, format!("internal error in Rankwise: {}", panic_text(p.as_ref()))))),
    }
}

/// Run a collective call: a panic leaves this rank unable to take part in what the others are
/// doing, so it aborts the job with a message instead of leaving them waiting.
pub(crate) fn collective(f: impl FnOnce() -> Res) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => report(r),
        Err(p) => abort_job(&format!("internal error in Rankwise during a collective call: {}", panic_text(p.as_ref()))),
    }
}

pub(crate) use rankwise_runtime::{abort_job, emit};

/// The live handles, by address, with their kind: a destroyed or foreign handle is told apart
/// before it is dereferenced.
static LIVE: Mutex<Option<HashMap<usize, &'static str>>> = Mutex::new(None);

fn live() -> std::sync::MutexGuard<'static, Option<HashMap<usize, &'static str>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A type that C holds as an opaque handle.
pub(crate) trait Handle: Sized + 'static {
    /// Its C name, for messages.
    const KIND: &'static str;
}

/// Box `value`, register it, and store the handle in `*out`.
pub(crate) fn give<T: Handle>(out: *mut *mut T, value: T) -> Res {
    let p = Box::into_raw(Box::new(value));
    live().get_or_insert_with(HashMap::new).insert(p as usize, T::KIND);
    // SAFETY: the caller checked `out` with `out_ptr`.
    unsafe { *out = p };
    Ok(())
}

fn check<T: Handle>(p: *const T, what: &str) -> Res {
    if p.is_null() {
        return Err(fail(RANKWISE_ERR_NULL, format!("{what}: a null {} handle", T::KIND)));
    }
    match live().as_ref().and_then(|m| m.get(&(p as usize)).copied()) {
        Some(k) if k == T::KIND => Ok(()),
        Some(k) => Err(fail(RANKWISE_ERR_HANDLE, format!("{what}: a {k} handle was given where a {} was needed", T::KIND))),
        None => Err(fail(RANKWISE_ERR_HANDLE, format!("{what}: not a live {} (destroyed already, or not made by Rankwise)", T::KIND))),
    }
}

/// The object behind a live handle.
pub(crate) fn get<'a, T: Handle>(p: *const T, what: &str) -> Res<&'a T> {
    check(p, what)?;
    // SAFETY: registered by `give` and not yet taken back.
    Ok(unsafe { &*p })
}

/// The object behind a live handle, to change it. The caller makes sure no other reference to
/// it is alive (see `distinct`).
pub(crate) fn get_mut<'a, T: Handle>(p: *mut T, what: &str) -> Res<&'a mut T> {
    check(p, what)?;
    // SAFETY: as in `get`.
    Ok(unsafe { &mut *p })
}

/// Unregister the handle in `*pp`, set `*pp` to null and return the object. A null `*pp` is
/// nothing to destroy.
pub(crate) fn take<T: Handle>(pp: *mut *mut T, what: &str) -> Res<Option<Box<T>>> {
    let slot = out_ptr(pp, what)?;
    let p = *slot;
    if p.is_null() {
        return Ok(None);
    }
    check(p, what)?;
    live().as_mut().map(|m| m.remove(&(p as usize)));
    *slot = std::ptr::null_mut();
    // SAFETY: made by `Box::into_raw` in `give`, unregistered just now.
    Ok(Some(unsafe { Box::from_raw(p) }))
}

/// A non-null pointer the result goes to.
pub(crate) fn out_ptr<'a, T>(p: *mut T, what: &str) -> Res<&'a mut T> {
    // SAFETY: non-null; the C caller promises it points to a writable T.
    unsafe { p.as_mut() }.ok_or_else(|| fail(RANKWISE_ERR_NULL, format!("{what}: the output pointer is null")))
}

/// A C string argument.
pub(crate) fn text<'a>(s: *const c_char, what: &str) -> Res<&'a str> {
    if s.is_null() {
        return Err(fail(RANKWISE_ERR_NULL, format!("{what}: a null string")));
    }
    // SAFETY: non-null, NUL-terminated by the C caller's promise.
    unsafe { CStr::from_ptr(s) }.to_str().map_err(|_| fail(RANKWISE_ERR_INPUT, format!("{what}: the string is not UTF-8")))
}

/// `n` elements the C caller gives (null is an error unless `n` is 0).
pub(crate) fn slice<'a, T>(p: *const T, n: usize, what: &str) -> Res<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(fail(RANKWISE_ERR_NULL, format!("{what}: a null array")));
    }
    // SAFETY: the caller promises `n` readable elements.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

pub(crate) fn slice_mut<'a, T>(p: *mut T, n: usize, what: &str) -> Res<&'a mut [T]> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(fail(RANKWISE_ERR_NULL, format!("{what}: a null array")));
    }
    // SAFETY: the caller promises `n` writable elements.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

/// Copy `s` into a C buffer of `len` bytes, NUL-terminated; too short is an error.
pub(crate) fn copy_out(s: &str, buf: *mut c_char, len: usize, what: &str) -> Res {
    let out = slice_mut(buf as *mut u8, len, what)?;
    if s.len() + 1 > out.len() {
        return Err(fail(RANKWISE_ERR_SHAPE, format!("{what}: a buffer of {len} bytes cannot hold {:?} ({} bytes and the NUL)", s, s.len())));
    }
    out[..s.len()].copy_from_slice(s.as_bytes());
    out[s.len()] = 0;
    Ok(())
}
