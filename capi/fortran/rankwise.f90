!> Rankwise for Fortran 2003 codes (`use rankwise`): the runtime on your MPI communicator (the
!> `integer` handle of `use mpi`), fields over your arrays, halo exchange, reproducible sums,
!> checkpoints, the stop policy and the kernels, over the C API (rankwise.h) by iso_c_binding.
!>
!> As in PETSc, every procedure is a subroutine whose last argument `ierr` is RANKWISE_OK (0) or
!> an error code; `rankwise_error_message(msg)` tells what went wrong. Arrays keep Fortran's
!> order: shapes, starts and cell sizes are given first index first (the module reverses them
!> for the C side, whose last index varies fastest), and the same field in a C and a Fortran
!> program has the same global index for the same cell with the indices reversed.
module rankwise
  use, intrinsic :: iso_c_binding
  implicit none
  private

  integer, parameter, public :: RANKWISE_OK = 0, RANKWISE_ERR_NULL = 1, RANKWISE_ERR_HANDLE = 2, &
    RANKWISE_ERR_SHAPE = 3, RANKWISE_ERR_INPUT = 4, RANKWISE_ERR_MPI = 5, RANKWISE_ERR_IO = 6, &
    RANKWISE_ERR_LINALG = 7, RANKWISE_ERR_BACKEND = 8, RANKWISE_ERR_INTERNAL = 9
  integer, parameter, public :: RANKWISE_STENCIL_STAR = 0, RANKWISE_STENCIL_BOX = 1
  integer, parameter, public :: RANKWISE_CARRY_ON = 0, RANKWISE_CHECKPOINT = 1, &
    RANKWISE_CHECKPOINT_AND_STOP = 2, RANKWISE_EXIT_REQUEUE = 75

  !> Opaque handles: made by a _create, freed by a _destroy.
  type, public :: rankwise_runtime
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_config
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_decomposition
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_field
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_exchange
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_checkpoints
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_writer
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_restore
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_stop
    type(c_ptr) :: p = c_null_ptr
  end type
  type, public :: rankwise_backend
    type(c_ptr) :: p = c_null_ptr
  end type

  public :: rankwise_error_message, rankwise_abort
  public :: rankwise_runtime_create, rankwise_runtime_destroy, rankwise_runtime_rank, rankwise_runtime_gpu
  public :: rankwise_timer_start, rankwise_timer_stop, rankwise_timers_report
  public :: rankwise_config_from_command_line, rankwise_config_destroy, rankwise_config_int, &
    rankwise_config_real, rankwise_config_bool, rankwise_config_string, rankwise_config_invalid, &
    rankwise_config_finish
  public :: rankwise_decomposition_create, rankwise_decomposition_destroy, rankwise_decomposition_owned
  public :: rankwise_field_wrap, rankwise_field_destroy, rankwise_field_exchange, rankwise_exchange_begin, &
    rankwise_exchange_finish, rankwise_field_sum, rankwise_field_dot, rankwise_field_checksum, &
    rankwise_field_write_png
  public :: rankwise_checkpoints_create, rankwise_checkpoints_destroy, rankwise_checkpoint_begin, &
    rankwise_output_begin, rankwise_writer_param_int, rankwise_writer_param_real, rankwise_writer_field, &
    rankwise_writer_commit, rankwise_restore_create, rankwise_restore_field, rankwise_restore_expect_int, &
    rankwise_restore_expect_real, rankwise_restore_run, rankwise_restore_destroy
  public :: rankwise_stop_create, rankwise_stop_check, rankwise_stop_destroy
  public :: rankwise_backend_create, rankwise_backend_destroy, rankwise_heat_step, rankwise_laplacian, &
    rankwise_axpy, rankwise_dot, rankwise_norm2, rankwise_matmul

  !> A field over the caller's 2-D or 3-D array (local block with its ghost layers).
  interface rankwise_field_wrap
    module procedure field_wrap_2d, field_wrap_3d
  end interface
  !> One explicit heat step `dst = src + nu_dt lap(src)` on the interior, 2-D or 3-D.
  interface rankwise_heat_step
    module procedure heat_step_2d, heat_step_3d
  end interface
  !> `dst = lap(src)` on the interior, 2-D or 3-D.
  interface rankwise_laplacian
    module procedure laplacian_2d, laplacian_3d
  end interface

  interface
    function c_error_message_copy(buf, len) bind(C, name="rankwise_error_message_copy") result(n)
      import :: c_char, c_size_t
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_size_t), value :: len
      integer(c_size_t) :: n
    end function
    function c_set_error(code, msg) bind(C, name="rankwise_set_error") result(e)
      import :: c_int, c_char
      integer(c_int), value :: code
      character(kind=c_char), intent(in) :: msg(*)
      integer(c_int) :: e
    end function
    function c_abort(rt, code, msg) bind(C, name="rankwise_abort") result(e)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: rt
      integer(c_int), value :: code
      character(kind=c_char), intent(in) :: msg(*)
      integer(c_int) :: e
    end function
    function c_runtime_create_f(comm, rt) bind(C, name="rankwise_runtime_create_f") result(e)
      import :: c_ptr, c_int
      integer(c_int), value :: comm
      type(c_ptr), intent(out) :: rt
      integer(c_int) :: e
    end function
    function c_runtime_destroy(rt) bind(C, name="rankwise_runtime_destroy") result(e)
      import :: c_ptr, c_int
      type(c_ptr), intent(inout) :: rt
      integer(c_int) :: e
    end function
    function c_runtime_rank(rt, rank, size) bind(C, name="rankwise_runtime_rank") result(e)
      import :: c_ptr, c_int
      type(c_ptr), value :: rt
      integer(c_int), intent(out) :: rank, size
      integer(c_int) :: e
    end function
    function c_runtime_gpu(rt, device) bind(C, name="rankwise_runtime_gpu") result(e)
      import :: c_ptr, c_int
      type(c_ptr), value :: rt
      integer(c_int), intent(out) :: device
      integer(c_int) :: e
    end function
    function c_timer(rt, name) bind(C) result(e)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: rt
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int) :: e
    end function
    function c_timers_report(rt) bind(C, name="rankwise_timers_report") result(e)
      import :: c_ptr, c_int
      type(c_ptr), value :: rt
      integer(c_int) :: e
    end function
    function c_config_from_command_line(cfg) bind(C, name="rankwise_config_from_command_line") result(e)
      import :: c_ptr, c_int
      type(c_ptr), intent(out) :: cfg
      integer(c_int) :: e
    end function
    function c_destroy(h) bind(C) result(e)
      import :: c_ptr, c_int
      type(c_ptr), intent(inout) :: h
      integer(c_int) :: e
    end function
    function c_config_int(cfg, key, fallback, value, given) bind(C, name="rankwise_config_int") result(e)
      import :: c_ptr, c_int, c_char, c_int64_t
      type(c_ptr), value :: cfg
      character(kind=c_char), intent(in) :: key(*)
      integer(c_int64_t), value :: fallback
      integer(c_int64_t), intent(out) :: value
      integer(c_int), intent(out) :: given
      integer(c_int) :: e
    end function
    function c_config_real(cfg, key, fallback, value, given) bind(C, name="rankwise_config_real") result(e)
      import :: c_ptr, c_int, c_char, c_double
      type(c_ptr), value :: cfg
      character(kind=c_char), intent(in) :: key(*)
      real(c_double), value :: fallback
      real(c_double), intent(out) :: value
      integer(c_int), intent(out) :: given
      integer(c_int) :: e
    end function
    function c_config_bool(cfg, key, fallback, value, given) bind(C, name="rankwise_config_bool") result(e)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: cfg
      character(kind=c_char), intent(in) :: key(*)
      integer(c_int), value :: fallback
      integer(c_int), intent(out) :: value, given
      integer(c_int) :: e
    end function
    function c_config_string(cfg, key, fallback, buf, len, given) bind(C, name="rankwise_config_string") result(e)
      import :: c_ptr, c_int, c_char, c_size_t
      type(c_ptr), value :: cfg
      character(kind=c_char), intent(in) :: key(*), fallback(*)
      character(kind=c_char), intent(out) :: buf(*)
      integer(c_size_t), value :: len
      integer(c_int), intent(out) :: given
      integer(c_int) :: e
    end function
    function c_config_invalid(cfg, key, msg) bind(C, name="rankwise_config_invalid") result(e)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: cfg
      character(kind=c_char), intent(in) :: key(*), msg(*)
      integer(c_int) :: e
    end function
    function c_config_finish(cfg) bind(C, name="rankwise_config_finish") result(e)
      import :: c_ptr, c_int
      type(c_ptr), value :: cfg
      integer(c_int) :: e
    end function
    function c_decomposition_create(rt, ndim, global, grid, periodic, d) bind(C, name="rankwise_decomposition_create") result(e)
      import :: c_ptr, c_int, c_size_t
      type(c_ptr), value :: rt
      integer(c_int), value :: ndim
      integer(c_size_t), intent(in) :: global(*)
      type(c_ptr), value :: grid
      integer(c_int), intent(in) :: periodic(*)
      type(c_ptr), intent(out) :: d
      integer(c_int) :: e
    end function
    function c_decomposition_owned(d, start, count, grid) bind(C, name="rankwise_decomposition_owned") result(e)
      import :: c_ptr, c_int, c_size_t
      type(c_ptr), value :: d
      integer(c_size_t), intent(out) :: start(*), count(*)
      type(c_ptr), value :: grid
      integer(c_int) :: e
    end function
    function c_field_wrap(d, ghost, data, shape, f) bind(C, name="rankwise_field_wrap") result(e)
      import :: c_ptr, c_int, c_size_t
      type(c_ptr), value :: d, data
      integer(c_int), value :: ghost
      integer(c_size_t), intent(in) :: shape(*)
      type(c_ptr), intent(out) :: f
      integer(c_int) :: e
    end function
    function c_field_exchange(f, stencil) bind(C, name="rankwise_field_exchange") result(e)
      import :: c_ptr, c_int
      type(c_ptr), value :: f
      integer(c_int), value :: stencil
      integer(c_int) :: e
    end function
    function c_exchange_begin(f, stencil, ex) bind(C, name="rankwise_exchange_begin") result(e)
      import :: c_ptr, c_int
      type(c_ptr), value :: f
      integer(c_int), value :: stencil
      type(c_ptr), intent(out) :: ex
      integer(c_int) :: e
    end function
    function c_field_real(f, x) bind(C) result(e)
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: f
      real(c_double), intent(out) :: x
      integer(c_int) :: e
    end function
    function c_field_dot(a, b, x) bind(C, name="rankwise_field_dot") result(e)
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: a, b
      real(c_double), intent(out) :: x
      integer(c_int) :: e
    end function
    function c_field_checksum(f, x) bind(C, name="rankwise_field_checksum") result(e)
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: f
      integer(c_int64_t), intent(out) :: x
      integer(c_int) :: e
    end function
    function c_field_write_png(f, path) bind(C, name="rankwise_field_write_png") result(e)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: f
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int) :: e
    end function
    function c_checkpoints_create(path, keep, c) bind(C, name="rankwise_checkpoints_create") result(e)
      import :: c_ptr, c_int, c_char
      character(kind=c_char), intent(in) :: path(*)
      integer(c_int), value :: keep
      type(c_ptr), intent(out) :: c
      integer(c_int) :: e
    end function
    function c_checkpoint_begin(c, d, step, time, w) bind(C, name="rankwise_checkpoint_begin") result(e)
      import :: c_ptr, c_int, c_int64_t, c_double
      type(c_ptr), value :: c, d
      integer(c_int64_t), value :: step
      real(c_double), value :: time
      type(c_ptr), intent(out) :: w
      integer(c_int) :: e
    end function
    function c_output_begin(path, d, step, time, w) bind(C, name="rankwise_output_begin") result(e)
      import :: c_ptr, c_int, c_int64_t, c_double, c_char
      character(kind=c_char), intent(in) :: path(*)
      type(c_ptr), value :: d
      integer(c_int64_t), value :: step
      real(c_double), value :: time
      type(c_ptr), intent(out) :: w
      integer(c_int) :: e
    end function
    function c_param_int(w, name, v) bind(C) result(e)
      import :: c_ptr, c_int, c_char, c_int64_t
      type(c_ptr), value :: w
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int64_t), value :: v
      integer(c_int) :: e
    end function
    function c_param_real(w, name, v) bind(C) result(e)
      import :: c_ptr, c_int, c_char, c_double
      type(c_ptr), value :: w
      character(kind=c_char), intent(in) :: name(*)
      real(c_double), value :: v
      integer(c_int) :: e
    end function
    function c_named_field(w, name, f) bind(C) result(e)
      import :: c_ptr, c_int, c_char
      type(c_ptr), value :: w, f
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int) :: e
    end function
    function c_writer_commit(w, path, len) bind(C, name="rankwise_writer_commit") result(e)
      import :: c_ptr, c_int, c_size_t
      type(c_ptr), intent(inout) :: w
      type(c_ptr), value :: path
      integer(c_size_t), value :: len
      integer(c_int) :: e
    end function
    function c_restore_create(r) bind(C, name="rankwise_restore_create") result(e)
      import :: c_ptr, c_int
      type(c_ptr), intent(out) :: r
      integer(c_int) :: e
    end function
    function c_restore_run(r, c, found, step, time) bind(C, name="rankwise_restore_run") result(e)
      import :: c_ptr, c_int, c_int64_t, c_double
      type(c_ptr), value :: r, c
      integer(c_int), intent(out) :: found
      integer(c_int64_t), intent(out) :: step
      real(c_double), intent(out) :: time
      integer(c_int) :: e
    end function
    function c_stop_create(rt, margin, wall, s) bind(C, name="rankwise_stop_create") result(e)
      import :: c_ptr, c_int, c_double
      type(c_ptr), value :: rt
      real(c_double), value :: margin, wall
      type(c_ptr), intent(out) :: s
      integer(c_int) :: e
    end function
    function c_stop_check(s, step, action) bind(C, name="rankwise_stop_check") result(e)
      import :: c_ptr, c_int, c_int64_t
      type(c_ptr), value :: s
      integer(c_int64_t), value :: step
      integer(c_int), intent(out) :: action
      integer(c_int) :: e
    end function
    function c_backend_create(name, device, be) bind(C, name="rankwise_backend_create") result(e)
      import :: c_ptr, c_int, c_char
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: device
      type(c_ptr), intent(out) :: be
      integer(c_int) :: e
    end function
    function c_stencil(be, src, dst, shape, strides, ghost, h, nu_dt) bind(C) result(e)
      import :: c_ptr, c_int, c_size_t, c_double
      type(c_ptr), value :: be, src, dst, strides
      integer(c_size_t), intent(in) :: shape(*)
      integer(c_size_t), value :: ghost
      real(c_double), intent(in) :: h(*)
      real(c_double), value :: nu_dt
      integer(c_int) :: e
    end function
    function c_lap(be, src, dst, shape, strides, ghost, h) bind(C) result(e)
      import :: c_ptr, c_int, c_size_t, c_double
      type(c_ptr), value :: be, src, dst, strides
      integer(c_size_t), intent(in) :: shape(*)
      integer(c_size_t), value :: ghost
      real(c_double), intent(in) :: h(*)
      integer(c_int) :: e
    end function
    function c_axpy(be, n, a, x, y) bind(C, name="rankwise_axpy") result(e)
      import :: c_ptr, c_int, c_size_t, c_double
      type(c_ptr), value :: be
      integer(c_size_t), value :: n
      real(c_double), value :: a
      real(c_double), intent(in) :: x(*)
      real(c_double), intent(inout) :: y(*)
      integer(c_int) :: e
    end function
    function c_dot(be, n, x, y, r) bind(C, name="rankwise_dot") result(e)
      import :: c_ptr, c_int, c_size_t, c_double
      type(c_ptr), value :: be
      integer(c_size_t), value :: n
      real(c_double), intent(in) :: x(*), y(*)
      real(c_double), intent(out) :: r
      integer(c_int) :: e
    end function
    function c_norm2(be, n, x, r) bind(C, name="rankwise_norm2") result(e)
      import :: c_ptr, c_int, c_size_t, c_double
      type(c_ptr), value :: be
      integer(c_size_t), value :: n
      real(c_double), intent(in) :: x(*)
      real(c_double), intent(out) :: r
      integer(c_int) :: e
    end function
    function c_matmul(be, m, k, n, a, b, c) bind(C, name="rankwise_matmul") result(e)
      import :: c_ptr, c_int, c_size_t, c_double
      type(c_ptr), value :: be
      integer(c_size_t), value :: m, k, n
      real(c_double), intent(in) :: a(*), b(*)
      real(c_double), intent(out) :: c(*)
      integer(c_int) :: e
    end function
  end interface

  ! Procedures with one C shape behind several names.
  procedure(c_timer), bind(C, name="rankwise_timer_start") :: c_timer_start
  procedure(c_timer), bind(C, name="rankwise_timer_stop") :: c_timer_stop
  procedure(c_destroy), bind(C, name="rankwise_config_destroy") :: c_config_destroy
  procedure(c_destroy), bind(C, name="rankwise_decomposition_destroy") :: c_decomposition_destroy
  procedure(c_destroy), bind(C, name="rankwise_field_destroy") :: c_field_destroy
  procedure(c_destroy), bind(C, name="rankwise_exchange_finish") :: c_exchange_finish
  procedure(c_destroy), bind(C, name="rankwise_checkpoints_destroy") :: c_checkpoints_destroy
  procedure(c_destroy), bind(C, name="rankwise_restore_destroy") :: c_restore_destroy
  procedure(c_destroy), bind(C, name="rankwise_stop_destroy") :: c_stop_destroy
  procedure(c_destroy), bind(C, name="rankwise_backend_destroy") :: c_backend_destroy
  procedure(c_field_real), bind(C, name="rankwise_field_sum") :: c_field_sum
  procedure(c_param_int), bind(C, name="rankwise_writer_param_int") :: c_writer_param_int
  procedure(c_param_int), bind(C, name="rankwise_restore_expect_int") :: c_restore_expect_int
  procedure(c_param_real), bind(C, name="rankwise_writer_param_real") :: c_writer_param_real
  procedure(c_param_real), bind(C, name="rankwise_restore_expect_real") :: c_restore_expect_real
  procedure(c_named_field), bind(C, name="rankwise_writer_field") :: c_writer_field
  procedure(c_named_field), bind(C, name="rankwise_restore_field") :: c_restore_field
  procedure(c_stencil), bind(C, name="rankwise_heat_step_2d") :: c_heat_step_2d
  procedure(c_stencil), bind(C, name="rankwise_heat_step_3d") :: c_heat_step_3d
  procedure(c_lap), bind(C, name="rankwise_laplacian_2d") :: c_laplacian_2d
  procedure(c_lap), bind(C, name="rankwise_laplacian_3d") :: c_laplacian_3d

contains

  !> A Fortran string as a NUL-terminated C string.
  pure function cstr(s) result(c)
    character(*), intent(in) :: s
    character(kind=c_char, len=len_trim(s) + 1) :: c
    c = trim(s) // c_null_char
  end function

  !> RANKWISE_ERR_SHAPE, with "what: the arrays' shapes do not fit" as the last error.
  integer function shape_error(what)
    character(*), intent(in) :: what
    shape_error = c_set_error(int(RANKWISE_ERR_SHAPE, c_int), cstr(what // ": the arrays' shapes do not fit together"))
  end function

  !> The message of the last error on this thread ("" after a success).
  subroutine rankwise_error_message(msg)
    character(*), intent(out) :: msg
    character(kind=c_char) :: buf(len(msg) + 1)
    integer(c_size_t) :: n
    integer :: i
    n = c_error_message_copy(buf, int(size(buf), c_size_t))
    msg = ''
    do i = 1, min(int(n), len(msg))
      msg(i:i) = buf(i)
    end do
  end subroutine

  !> Abort every rank of the job with exit code `code` after printing `msg` with this rank's number.
  subroutine rankwise_abort(rt, code, msg)
    type(rankwise_runtime), intent(in) :: rt
    integer, intent(in) :: code
    character(*), intent(in) :: msg
    integer(c_int) :: e
    e = c_abort(rt%p, int(code, c_int), cstr(msg))
  end subroutine

  !> Collective over `comm` (an MPI_Fint, e.g. MPI_COMM_WORLD). MPI must be initialised.
  subroutine rankwise_runtime_create(comm, rt, ierr)
    integer, intent(in) :: comm
    type(rankwise_runtime), intent(out) :: rt
    integer, intent(out) :: ierr
    ierr = c_runtime_create_f(int(comm, c_int), rt%p)
  end subroutine

  !> Collective. Before MPI_Finalize.
  subroutine rankwise_runtime_destroy(rt, ierr)
    type(rankwise_runtime), intent(inout) :: rt
    integer, intent(out) :: ierr
    ierr = c_runtime_destroy(rt%p)
  end subroutine

  !> This rank (0-based) and the number of ranks.
  subroutine rankwise_runtime_rank(rt, rank, size, ierr)
    type(rankwise_runtime), intent(in) :: rt
    integer, intent(out) :: rank, size, ierr
    integer(c_int) :: r, s
    ierr = c_runtime_rank(rt%p, r, s)
    rank = r
    size = s
  end subroutine

  !> The CUDA device this rank is bound to, -1 for none.
  subroutine rankwise_runtime_gpu(rt, device, ierr)
    type(rankwise_runtime), intent(in) :: rt
    integer, intent(out) :: device, ierr
    integer(c_int) :: d
    ierr = c_runtime_gpu(rt%p, d)
    device = d
  end subroutine

  subroutine rankwise_timer_start(rt, name, ierr)
    type(rankwise_runtime), intent(in) :: rt
    character(*), intent(in) :: name
    integer, intent(out) :: ierr
    ierr = c_timer_start(rt%p, cstr(name))
  end subroutine

  subroutine rankwise_timer_stop(rt, name, ierr)
    type(rankwise_runtime), intent(in) :: rt
    character(*), intent(in) :: name
    integer, intent(out) :: ierr
    ierr = c_timer_stop(rt%p, cstr(name))
  end subroutine

  !> Collective. The timers' min/avg/max over ranks, on rank 0.
  subroutine rankwise_timers_report(rt, ierr)
    type(rankwise_runtime), intent(in) :: rt
    integer, intent(out) :: ierr
    ierr = c_timers_report(rt%p)
  end subroutine

  !> The inputs on this program's command line: --inputs FILE and --set key=value.
  subroutine rankwise_config_from_command_line(cfg, ierr)
    type(rankwise_config), intent(out) :: cfg
    integer, intent(out) :: ierr
    ierr = c_config_from_command_line(cfg%p)
  end subroutine

  subroutine rankwise_config_destroy(cfg, ierr)
    type(rankwise_config), intent(inout) :: cfg
    integer, intent(out) :: ierr
    ierr = c_config_destroy(cfg%p)
  end subroutine

  !> The integer input `key`, or `fallback`; `given` (optional) tells which.
  subroutine rankwise_config_int(cfg, key, fallback, value, ierr, given)
    type(rankwise_config), intent(in) :: cfg
    character(*), intent(in) :: key
    integer(c_int64_t), intent(in) :: fallback
    integer(c_int64_t), intent(out) :: value
    integer, intent(out) :: ierr
    logical, intent(out), optional :: given
    integer(c_int) :: g
    ierr = c_config_int(cfg%p, cstr(key), fallback, value, g)
    if (present(given)) given = g /= 0
  end subroutine

  subroutine rankwise_config_real(cfg, key, fallback, value, ierr, given)
    type(rankwise_config), intent(in) :: cfg
    character(*), intent(in) :: key
    real(c_double), intent(in) :: fallback
    real(c_double), intent(out) :: value
    integer, intent(out) :: ierr
    logical, intent(out), optional :: given
    integer(c_int) :: g
    ierr = c_config_real(cfg%p, cstr(key), fallback, value, g)
    if (present(given)) given = g /= 0
  end subroutine

  subroutine rankwise_config_bool(cfg, key, fallback, value, ierr, given)
    type(rankwise_config), intent(in) :: cfg
    character(*), intent(in) :: key
    logical, intent(in) :: fallback
    logical, intent(out) :: value
    integer, intent(out) :: ierr
    logical, intent(out), optional :: given
    integer(c_int) :: g, v
    ierr = c_config_bool(cfg%p, cstr(key), merge(1_c_int, 0_c_int, fallback), v, g)
    value = v /= 0
    if (present(given)) given = g /= 0
  end subroutine

  !> The string input `key`, or `fallback`, blank-padded into `value`.
  subroutine rankwise_config_string(cfg, key, fallback, value, ierr, given)
    type(rankwise_config), intent(in) :: cfg
    character(*), intent(in) :: key, fallback
    character(*), intent(out) :: value
    integer, intent(out) :: ierr
    logical, intent(out), optional :: given
    character(kind=c_char) :: buf(len(value) + 1)
    integer(c_int) :: g
    integer :: i
    ierr = c_config_string(cfg%p, cstr(key), cstr(fallback), buf, int(size(buf), c_size_t), g)
    value = ''
    if (ierr == RANKWISE_OK) then
      do i = 1, len(value)
        if (buf(i) == c_null_char) exit
        value(i:i) = buf(i)
      end do
    end if
    if (present(given)) given = g /= 0
  end subroutine

  !> Make "`key` = value: `msg`" (naming where key was given) the last error; ierr = RANKWISE_ERR_INPUT.
  subroutine rankwise_config_invalid(cfg, key, msg, ierr)
    type(rankwise_config), intent(in) :: cfg
    character(*), intent(in) :: key, msg
    integer, intent(out) :: ierr
    ierr = c_config_invalid(cfg%p, cstr(key), cstr(msg))
  end subroutine

  !> Fail on the first input the program never asked for.
  subroutine rankwise_config_finish(cfg, ierr)
    type(rankwise_config), intent(in) :: cfg
    integer, intent(out) :: ierr
    ierr = c_config_finish(cfg%p)
  end subroutine

  !> Collective. Split `global` (Fortran order) over all ranks; `periodic` per dimension.
  subroutine rankwise_decomposition_create(rt, global, periodic, d, ierr)
    type(rankwise_runtime), intent(in) :: rt
    integer, intent(in) :: global(:)
    logical, intent(in) :: periodic(:)
    type(rankwise_decomposition), intent(out) :: d
    integer, intent(out) :: ierr
    integer(c_size_t) :: g(size(global))
    integer(c_int) :: p(size(global))
    integer :: n
    n = size(global)
    if (size(periodic) /= n) then
      ierr = shape_error("rankwise_decomposition_create")
      return
    end if
    g = int(global(n:1:-1), c_size_t)
    p = merge(1_c_int, 0_c_int, periodic(n:1:-1))
    ierr = c_decomposition_create(rt%p, int(n, c_int), g, c_null_ptr, p, d%p)
  end subroutine

  subroutine rankwise_decomposition_destroy(d, ierr)
    type(rankwise_decomposition), intent(inout) :: d
    integer, intent(out) :: ierr
    ierr = c_decomposition_destroy(d%p)
  end subroutine

  !> This rank's owned block: per dimension (Fortran order) its first global index `lo`
  !> (1-based) and its length `count`.
  subroutine rankwise_decomposition_owned(d, lo, count, ierr)
    type(rankwise_decomposition), intent(in) :: d
    integer, intent(out) :: lo(:), count(:)
    integer, intent(out) :: ierr
    integer(c_size_t) :: s(size(lo)), c(size(lo))
    integer :: n
    n = size(lo)
    ierr = c_decomposition_owned(d%p, s, c, c_null_ptr)
    lo = int(s(n:1:-1)) + 1
    count = int(c(n:1:-1))
  end subroutine

  subroutine field_wrap_2d(d, ghost, a, f, ierr)
    type(rankwise_decomposition), intent(in) :: d
    integer, intent(in) :: ghost
    real(c_double), intent(inout), target, contiguous :: a(:, :)
    type(rankwise_field), intent(out) :: f
    integer, intent(out) :: ierr
    integer(c_size_t) :: shape(2)
    shape = int([size(a, 2), size(a, 1)], c_size_t)
    ierr = c_field_wrap(d%p, int(ghost, c_int), c_loc(a), shape, f%p)
  end subroutine

  subroutine field_wrap_3d(d, ghost, a, f, ierr)
    type(rankwise_decomposition), intent(in) :: d
    integer, intent(in) :: ghost
    real(c_double), intent(inout), target, contiguous :: a(:, :, :)
    type(rankwise_field), intent(out) :: f
    integer, intent(out) :: ierr
    integer(c_size_t) :: shape(3)
    shape = int([size(a, 3), size(a, 2), size(a, 1)], c_size_t)
    ierr = c_field_wrap(d%p, int(ghost, c_int), c_loc(a), shape, f%p)
  end subroutine

  subroutine rankwise_field_destroy(f, ierr)
    type(rankwise_field), intent(inout) :: f
    integer, intent(out) :: ierr
    ierr = c_field_destroy(f%p)
  end subroutine

  !> Collective. Fill the ghost cells from their owners.
  subroutine rankwise_field_exchange(f, stencil, ierr)
    type(rankwise_field), intent(in) :: f
    integer, intent(in) :: stencil
    integer, intent(out) :: ierr
    ierr = c_field_exchange(f%p, int(stencil, c_int))
  end subroutine

  !> Collective. Split phase: send the faces, compute on cells that need no ghost, then finish.
  subroutine rankwise_exchange_begin(f, stencil, ex, ierr)
    type(rankwise_field), intent(in) :: f
    integer, intent(in) :: stencil
    type(rankwise_exchange), intent(out) :: ex
    integer, intent(out) :: ierr
    ierr = c_exchange_begin(f%p, int(stencil, c_int), ex%p)
  end subroutine

  subroutine rankwise_exchange_finish(ex, ierr)
    type(rankwise_exchange), intent(inout) :: ex
    integer, intent(out) :: ierr
    ierr = c_exchange_finish(ex%p)
  end subroutine

  !> Collective. The exact sum of the owned cells (the same bits on any rank count).
  subroutine rankwise_field_sum(f, s, ierr)
    type(rankwise_field), intent(in) :: f
    real(c_double), intent(out) :: s
    integer, intent(out) :: ierr
    ierr = c_field_sum(f%p, s)
  end subroutine

  !> Collective. sum(a * b) over the owned cells, summed exactly.
  subroutine rankwise_field_dot(a, b, s, ierr)
    type(rankwise_field), intent(in) :: a, b
    real(c_double), intent(out) :: s
    integer, intent(out) :: ierr
    ierr = c_field_dot(a%p, b%p, s)
  end subroutine

  !> Collective. The position-keyed checksum (print with Z16.16 as 16 hex digits).
  subroutine rankwise_field_checksum(f, s, ierr)
    type(rankwise_field), intent(in) :: f
    integer(c_int64_t), intent(out) :: s
    integer, intent(out) :: ierr
    ierr = c_field_checksum(f%p, s)
  end subroutine

  subroutine rankwise_field_write_png(f, path, ierr)
    type(rankwise_field), intent(in) :: f
    character(*), intent(in) :: path
    integer, intent(out) :: ierr
    ierr = c_field_write_png(f%p, cstr(path))
  end subroutine

  subroutine rankwise_checkpoints_create(path, keep, c, ierr)
    character(*), intent(in) :: path
    integer, intent(in) :: keep
    type(rankwise_checkpoints), intent(out) :: c
    integer, intent(out) :: ierr
    ierr = c_checkpoints_create(cstr(path), int(keep, c_int), c%p)
  end subroutine

  subroutine rankwise_checkpoints_destroy(c, ierr)
    type(rankwise_checkpoints), intent(inout) :: c
    integer, intent(out) :: ierr
    ierr = c_checkpoints_destroy(c%p)
  end subroutine

  !> Collective. Begin the checkpoint of `step` at `time`.
  subroutine rankwise_checkpoint_begin(c, d, step, time, w, ierr)
    type(rankwise_checkpoints), intent(in) :: c
    type(rankwise_decomposition), intent(in) :: d
    integer(c_int64_t), intent(in) :: step
    real(c_double), intent(in) :: time
    type(rankwise_writer), intent(out) :: w
    integer, intent(out) :: ierr
    ierr = c_checkpoint_begin(c%p, d%p, step, time, w%p)
  end subroutine

  !> Collective. Begin writing the same format to the file `path` (plus an XDMF file for ParaView).
  subroutine rankwise_output_begin(path, d, step, time, w, ierr)
    character(*), intent(in) :: path
    type(rankwise_decomposition), intent(in) :: d
    integer(c_int64_t), intent(in) :: step
    real(c_double), intent(in) :: time
    type(rankwise_writer), intent(out) :: w
    integer, intent(out) :: ierr
    ierr = c_output_begin(cstr(path), d%p, step, time, w%p)
  end subroutine

  subroutine rankwise_writer_param_int(w, name, v, ierr)
    type(rankwise_writer), intent(in) :: w
    character(*), intent(in) :: name
    integer(c_int64_t), intent(in) :: v
    integer, intent(out) :: ierr
    ierr = c_writer_param_int(w%p, cstr(name), v)
  end subroutine

  subroutine rankwise_writer_param_real(w, name, v, ierr)
    type(rankwise_writer), intent(in) :: w
    character(*), intent(in) :: name
    real(c_double), intent(in) :: v
    integer, intent(out) :: ierr
    ierr = c_writer_param_real(w%p, cstr(name), v)
  end subroutine

  subroutine rankwise_writer_field(w, name, f, ierr)
    type(rankwise_writer), intent(in) :: w
    character(*), intent(in) :: name
    type(rankwise_field), intent(in) :: f
    integer, intent(out) :: ierr
    ierr = c_writer_field(w%p, cstr(name), f%p)
  end subroutine

  !> Collective. Publish the checkpoint and free the writer.
  subroutine rankwise_writer_commit(w, ierr)
    type(rankwise_writer), intent(inout) :: w
    integer, intent(out) :: ierr
    ierr = c_writer_commit(w%p, c_null_ptr, 0_c_size_t)
  end subroutine

  subroutine rankwise_restore_create(r, ierr)
    type(rankwise_restore), intent(out) :: r
    integer, intent(out) :: ierr
    ierr = c_restore_create(r%p)
  end subroutine

  subroutine rankwise_restore_field(r, name, f, ierr)
    type(rankwise_restore), intent(in) :: r
    character(*), intent(in) :: name
    type(rankwise_field), intent(in) :: f
    integer, intent(out) :: ierr
    ierr = c_restore_field(r%p, cstr(name), f%p)
  end subroutine

  subroutine rankwise_restore_expect_int(r, name, v, ierr)
    type(rankwise_restore), intent(in) :: r
    character(*), intent(in) :: name
    integer(c_int64_t), intent(in) :: v
    integer, intent(out) :: ierr
    ierr = c_restore_expect_int(r%p, cstr(name), v)
  end subroutine

  subroutine rankwise_restore_expect_real(r, name, v, ierr)
    type(rankwise_restore), intent(in) :: r
    character(*), intent(in) :: name
    real(c_double), intent(in) :: v
    integer, intent(out) :: ierr
    ierr = c_restore_expect_real(r%p, cstr(name), v)
  end subroutine

  !> Collective. Restart from the newest valid checkpoint (any rank count); `found` false: none.
  subroutine rankwise_restore_run(r, c, found, step, time, ierr)
    type(rankwise_restore), intent(in) :: r
    type(rankwise_checkpoints), intent(in) :: c
    logical, intent(out) :: found
    integer(c_int64_t), intent(out) :: step
    real(c_double), intent(out) :: time
    integer, intent(out) :: ierr
    integer(c_int) :: f
    step = 0
    time = 0
    ierr = c_restore_run(r%p, c%p, f, step, time)
    found = f /= 0
  end subroutine

  subroutine rankwise_restore_destroy(r, ierr)
    type(rankwise_restore), intent(inout) :: r
    integer, intent(out) :: ierr
    ierr = c_restore_destroy(r%p)
  end subroutine

  !> Collective. Watch for SIGUSR2/SIGTERM and the job's end (`margin` seconds kept free;
  !> `wall` > 0: a wall-time limit from now).
  subroutine rankwise_stop_create(rt, margin, wall, s, ierr)
    type(rankwise_runtime), intent(in) :: rt
    real(c_double), intent(in) :: margin, wall
    type(rankwise_stop), intent(out) :: s
    integer, intent(out) :: ierr
    ierr = c_stop_create(rt%p, margin, wall, s%p)
  end subroutine

  !> Collective. RANKWISE_CARRY_ON, RANKWISE_CHECKPOINT or RANKWISE_CHECKPOINT_AND_STOP.
  subroutine rankwise_stop_check(s, step, action, ierr)
    type(rankwise_stop), intent(in) :: s
    integer(c_int64_t), intent(in) :: step
    integer, intent(out) :: action, ierr
    integer(c_int) :: a
    ierr = c_stop_check(s%p, step, a)
    action = a
  end subroutine

  subroutine rankwise_stop_destroy(s, ierr)
    type(rankwise_stop), intent(inout) :: s
    integer, intent(out) :: ierr
    ierr = c_stop_destroy(s%p)
  end subroutine

  !> "cpu", "cuda" (on `device`) or "auto".
  subroutine rankwise_backend_create(name, device, be, ierr)
    character(*), intent(in) :: name
    integer, intent(in) :: device
    type(rankwise_backend), intent(out) :: be
    integer, intent(out) :: ierr
    ierr = c_backend_create(cstr(name), int(device, c_int), be%p)
  end subroutine

  subroutine rankwise_backend_destroy(be, ierr)
    type(rankwise_backend), intent(inout) :: be
    integer, intent(out) :: ierr
    ierr = c_backend_destroy(be%p)
  end subroutine

  subroutine heat_step_2d(be, src, dst, ghost, h, nu_dt, ierr)
    type(rankwise_backend), intent(in) :: be
    real(c_double), intent(in), target, contiguous :: src(:, :)
    real(c_double), intent(inout), target, contiguous :: dst(:, :)
    integer, intent(in) :: ghost
    real(c_double), intent(in) :: h(2), nu_dt
    integer, intent(out) :: ierr
    if (any(shape(src) /= shape(dst))) then
      ierr = shape_error("heat_step_2d")
      return
    end if
    ierr = c_heat_step_2d(be%p, c_loc(src), c_loc(dst), int([size(src, 2), size(src, 1)], c_size_t), &
      c_null_ptr, int(ghost, c_size_t), h(2:1:-1), nu_dt)
  end subroutine

  subroutine heat_step_3d(be, src, dst, ghost, h, nu_dt, ierr)
    type(rankwise_backend), intent(in) :: be
    real(c_double), intent(in), target, contiguous :: src(:, :, :)
    real(c_double), intent(inout), target, contiguous :: dst(:, :, :)
    integer, intent(in) :: ghost
    real(c_double), intent(in) :: h(3), nu_dt
    integer, intent(out) :: ierr
    if (any(shape(src) /= shape(dst))) then
      ierr = shape_error("heat_step_3d")
      return
    end if
    ierr = c_heat_step_3d(be%p, c_loc(src), c_loc(dst), int([size(src, 3), size(src, 2), size(src, 1)], c_size_t), &
      c_null_ptr, int(ghost, c_size_t), h(3:1:-1), nu_dt)
  end subroutine

  subroutine laplacian_2d(be, src, dst, ghost, h, ierr)
    type(rankwise_backend), intent(in) :: be
    real(c_double), intent(in), target, contiguous :: src(:, :)
    real(c_double), intent(inout), target, contiguous :: dst(:, :)
    integer, intent(in) :: ghost
    real(c_double), intent(in) :: h(2)
    integer, intent(out) :: ierr
    if (any(shape(src) /= shape(dst))) then
      ierr = shape_error("laplacian_2d")
      return
    end if
    ierr = c_laplacian_2d(be%p, c_loc(src), c_loc(dst), int([size(src, 2), size(src, 1)], c_size_t), &
      c_null_ptr, int(ghost, c_size_t), h(2:1:-1))
  end subroutine

  subroutine laplacian_3d(be, src, dst, ghost, h, ierr)
    type(rankwise_backend), intent(in) :: be
    real(c_double), intent(in), target, contiguous :: src(:, :, :)
    real(c_double), intent(inout), target, contiguous :: dst(:, :, :)
    integer, intent(in) :: ghost
    real(c_double), intent(in) :: h(3)
    integer, intent(out) :: ierr
    if (any(shape(src) /= shape(dst))) then
      ierr = shape_error("laplacian_3d")
      return
    end if
    ierr = c_laplacian_3d(be%p, c_loc(src), c_loc(dst), int([size(src, 3), size(src, 2), size(src, 1)], c_size_t), &
      c_null_ptr, int(ghost, c_size_t), h(3:1:-1))
  end subroutine

  !> y = a x + y.
  subroutine rankwise_axpy(be, a, x, y, ierr)
    type(rankwise_backend), intent(in) :: be
    real(c_double), intent(in) :: a
    real(c_double), intent(in), contiguous :: x(:)
    real(c_double), intent(inout), contiguous :: y(:)
    integer, intent(out) :: ierr
    if (size(x) /= size(y)) then
      ierr = shape_error("rankwise_axpy")
      return
    end if
    ierr = c_axpy(be%p, int(size(x), c_size_t), a, x, y)
  end subroutine

  !> r = x . y (this rank's part).
  subroutine rankwise_dot(be, x, y, r, ierr)
    type(rankwise_backend), intent(in) :: be
    real(c_double), intent(in), contiguous :: x(:), y(:)
    real(c_double), intent(out) :: r
    integer, intent(out) :: ierr
    if (size(x) /= size(y)) then
      ierr = shape_error("rankwise_dot")
      return
    end if
    ierr = c_dot(be%p, int(size(x), c_size_t), x, y, r)
  end subroutine

  subroutine rankwise_norm2(be, x, r, ierr)
    type(rankwise_backend), intent(in) :: be
    real(c_double), intent(in), contiguous :: x(:)
    real(c_double), intent(out) :: r
    integer, intent(out) :: ierr
    ierr = c_norm2(be%p, int(size(x), c_size_t), x, r)
  end subroutine

  !> c = matmul(a, b) by BLAS (column-major: computed as c^T = b^T a^T in C order).
  subroutine rankwise_matmul(be, a, b, c, ierr)
    type(rankwise_backend), intent(in) :: be
    real(c_double), intent(in), contiguous :: a(:, :), b(:, :)
    real(c_double), intent(out), contiguous :: c(:, :)
    integer, intent(out) :: ierr
    if (size(a, 2) /= size(b, 1) .or. size(c, 1) /= size(a, 1) .or. size(c, 2) /= size(b, 2)) then
      ierr = shape_error("rankwise_matmul")
      return
    end if
    ierr = c_matmul(be%p, int(size(b, 2), c_size_t), int(size(a, 2), c_size_t), int(size(a, 1), c_size_t), b, a, c)
  end subroutine
end module rankwise
