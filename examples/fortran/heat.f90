!> Heat diffusion on the periodic unit square, written as a Fortran simulation code that links
!> Rankwise: its own MPI_Init, its inputs read through the Rankwise config reader, its own arrays
!> as distributed fields with halo exchange, the heat kernel on them, checkpoints, restart from
!> the newest valid one on any rank count, stop-and-requeue on a signal or near the time limit.
!> It solves the 2-D problem of examples/heat.rs with the same inputs and ends with the same
!> `final ...` line.
!>
!>   mpifort -O2 -o heat heat.f90 $(pkg-config --cflags --libs rankwise)
!>   rankwise run -n 4 ./heat -i examples/inputs/heat.toml --set n=256
program heat
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: error_unit, output_unit
  use mpi
  use rankwise
  implicit none

  real(c_double), parameter :: pi = 3.14159265358979323846_c_double
  type(rankwise_runtime) :: rt
  type(rankwise_config) :: cfg
  type(rankwise_backend) :: be
  type(rankwise_decomposition) :: d
  type(rankwise_field) :: fu, fv, ft
  type(rankwise_checkpoints) :: ckpts
  type(rankwise_restore) :: req
  type(rankwise_stop) :: stop
  type(rankwise_writer) :: w
  real(c_double), allocatable, target :: a(:, :), b(:, :)
  real(c_double), pointer, contiguous :: u(:, :), v(:, :), t(:, :)
  integer(c_int64_t) :: n, dim, steps, every, keep, progress_every, step, first, checksum
  real(c_double) :: alpha, cfl, t_end, margin, h, dt, nu_dt, time, decay, err2, l2, t0, rate
  character(len=16) :: backend_name
  character(len=4096) :: ckpt_dir, out_dir, png_path
  logical :: t_end_given, ckpt_given, out_given, png, found, due, at_end
  integer :: ierr, rank, nranks, gpu, action, lo(2), count(2), i, j

  call MPI_Init(ierr)
  call rankwise_runtime_create(MPI_COMM_WORLD, rt, ierr)
  if (ierr /= RANKWISE_OK) then
    call report('rankwise_runtime_create')
    call MPI_Abort(MPI_COMM_WORLD, 1, ierr)
  end if
  call rankwise_runtime_rank(rt, rank, nranks, ierr)
  call check(ierr, 'rankwise_runtime_rank')

  ! The inputs of examples/heat.rs (2-D).
  call rankwise_config_from_command_line(cfg, ierr)
  call input(ierr)
  call rankwise_config_int(cfg, 'n', 64_c_int64_t, n, ierr); call input(ierr)
  call rankwise_config_int(cfg, 'dim', 2_c_int64_t, dim, ierr); call input(ierr)
  call rankwise_config_real(cfg, 'alpha', 1.0_c_double, alpha, ierr); call input(ierr)
  call rankwise_config_real(cfg, 'cfl', 0.5_c_double, cfl, ierr); call input(ierr)
  call rankwise_config_string(cfg, 'backend', 'cpu', backend_name, ierr); call input(ierr)
  if (n < 2) call invalid('n', 'need at least 2 cells per side')
  if (dim /= 2) call invalid('dim', 'the Fortran example is 2-D (examples/heat.rs does 3-D)')
  if (.not. (alpha > 0)) call invalid('alpha', 'must be positive')
  if (.not. (cfl > 0 .and. cfl <= 1)) call invalid('cfl', 'must be in (0, 1]')
  ! Forward Euler is stable for dt <= h^2 / (2 dim alpha); parenthesised as C and Rust evaluate it.
  h = 1.0_c_double / real(n, c_double)
  dt = ((cfl * h) * h) / ((2.0_c_double * real(dim, c_double)) * alpha)
  call rankwise_config_int(cfg, 'steps', 100_c_int64_t, steps, ierr); call input(ierr)
  call rankwise_config_real(cfg, 't_end', 0.0_c_double, t_end, ierr, t_end_given); call input(ierr)
  if (t_end_given) then
    steps = int(ceiling(t_end / dt), c_int64_t)
    dt = t_end / real(steps, c_double)
  end if
  call rankwise_config_int(cfg, 'checkpoint.every', 0_c_int64_t, every, ierr); call input(ierr)
  call rankwise_config_string(cfg, 'checkpoint.dir', '', ckpt_dir, ierr, ckpt_given); call input(ierr)
  if (every > 0 .and. .not. ckpt_given) call invalid('checkpoint.every', 'needs checkpoint.dir (where to write them)')
  call rankwise_config_string(cfg, 'output.dir', '', out_dir, ierr, out_given); call input(ierr)
  ! output.png: true (the default: heat-final.png in output.dir), false, or a file name.
  png_path = trim(out_dir) // '/heat-final.png'
  call rankwise_config_bool(cfg, 'output.png', .true., png, ierr)
  if (ierr == RANKWISE_OK) then
    png = png .and. out_given
  else
    call rankwise_config_string(cfg, 'output.png', '', png_path, ierr); call input(ierr)
    png = .true.
  end if
  call rankwise_config_real(cfg, 'stop.margin', 30.0_c_double, margin, ierr); call input(ierr)
  if (.not. (margin >= 0 .and. margin <= 86400)) call invalid('stop.margin', 'must be between 0 and 86400 seconds')
  call rankwise_config_int(cfg, 'checkpoint.keep', 2_c_int64_t, keep, ierr); call input(ierr)
  ! A checkpoint at the last step too: a finished run extended with more steps continues.
  call rankwise_config_bool(cfg, 'checkpoint.at_end', .true., at_end, ierr); call input(ierr)
  call rankwise_config_int(cfg, 'progress.every', 0_c_int64_t, progress_every, ierr); call input(ierr)
  call rankwise_config_finish(cfg, ierr); call input(ierr)
  call rankwise_config_destroy(cfg, ierr)

  call rankwise_runtime_gpu(rt, gpu, ierr)
  call rankwise_backend_create(trim(backend_name), max(gpu, 0), be, ierr); call input(ierr)

  ! The periodic square over all ranks; our own arrays, one ghost layer, as two fields.
  call rankwise_decomposition_create(rt, [int(n), int(n)], [.true., .true.], d, ierr); call input(ierr)
  call rankwise_decomposition_owned(d, lo, count, ierr); call check(ierr, 'rankwise_decomposition_owned')
  allocate(a(0:count(1) + 1, 0:count(2) + 1), b(0:count(1) + 1, 0:count(2) + 1))
  a = 0
  b = 0
  call rankwise_field_wrap(d, 1, a, fu, ierr); call check(ierr, 'rankwise_field_wrap')
  call rankwise_field_wrap(d, 1, b, fv, ierr); call check(ierr, 'rankwise_field_wrap')
  u => a
  v => b
  do j = 1, count(2)
    do i = 1, count(1)
      u(i, j) = mode(lo(1) + i - 2, lo(2) + j - 2)
    end do
  end do

  ! Restart from the newest valid checkpoint, if any, written on any rank count.
  step = 0
  if (ckpt_given) then
    call rankwise_checkpoints_create(trim(ckpt_dir), int(keep), ckpts, ierr)
    call check(ierr, 'rankwise_checkpoints_create')
    call rankwise_restore_create(req, ierr)
    call rankwise_restore_expect_int(req, 'n', n, ierr)
    call rankwise_restore_expect_int(req, 'dim', dim, ierr)
    call rankwise_restore_expect_real(req, 'alpha', alpha, ierr)
    call rankwise_restore_field(req, 'u', fu, ierr); call check(ierr, 'rankwise_restore_field')
    call rankwise_restore_run(req, ckpts, found, step, time, ierr)
    ! Another run's checkpoint is the user's mistake: say so, and leave it where it is.
    if (ierr == RANKWISE_ERR_INPUT) call input(ierr, ': use another checkpoint.dir, or move that one away')
    call check(ierr, 'rankwise_restore_run')
    if (found .and. rank == 0) write(error_unit, '(a,i0,a,i0,a)') 'restarted from step ', step, ' (', nranks, ' ranks now)'
    call rankwise_restore_destroy(req, ierr)
  end if

  call rankwise_stop_create(rt, margin, 0.0_c_double, stop, ierr); call check(ierr, 'rankwise_stop_create')
  nu_dt = alpha * dt
  first = step
  t0 = MPI_Wtime()
  do while (step < steps)
    call rankwise_timer_start(rt, 'step', ierr)
    call rankwise_field_exchange(fu, RANKWISE_STENCIL_STAR, ierr); call check(ierr, 'rankwise_field_exchange')
    call rankwise_heat_step(be, u, v, 1, [h, h], nu_dt, ierr); call check(ierr, 'rankwise_heat_step')
    t => u; u => v; v => t
    ft = fu; fu = fv; fv = ft
    call rankwise_timer_stop(rt, 'step', ierr)
    step = step + 1
    time = real(step, c_double) * dt
    due = (every > 0 .and. mod(step, max(every, 1_c_int64_t)) == 0 .and. step < steps) .or. (at_end .and. step == steps)
    call rankwise_stop_check(stop, step, action, ierr); call check(ierr, 'rankwise_stop_check')
    if (ckpt_given .and. (due .or. action /= RANKWISE_CARRY_ON)) then
      call rankwise_timer_start(rt, 'checkpoint', ierr)
      call rankwise_checkpoint_begin(ckpts, d, step, time, w, ierr)
      call check(ierr, 'rankwise_checkpoint_begin')
      call rankwise_writer_param_int(w, 'n', n, ierr); call check(ierr, 'rankwise_writer_param_int')
      call rankwise_writer_param_int(w, 'dim', dim, ierr); call check(ierr, 'rankwise_writer_param_int')
      call rankwise_writer_param_real(w, 'alpha', alpha, ierr); call check(ierr, 'rankwise_writer_param_real')
      call rankwise_writer_field(w, 'u', fu, ierr); call check(ierr, 'rankwise_writer_field')
      call rankwise_writer_commit(w, ierr); call check(ierr, 'rankwise_writer_commit')
      call rankwise_timer_stop(rt, 'checkpoint', ierr)
      if (rank == 0) write(error_unit, '(a,i0)') 'checkpoint at step ', step
    end if
    if (action == RANKWISE_CHECKPOINT_AND_STOP) then
      if (rank == 0) write(error_unit, '(a,i0)') 'stopping at step ', step
      call rankwise_stop_destroy(stop, ierr)
      call rankwise_runtime_destroy(rt, ierr)
      call MPI_Finalize(ierr)
      call exit(RANKWISE_EXIT_REQUEUE)
    end if
    if (rank == 0 .and. progress_every > 0) then
      if (mod(step, progress_every) == 0) then
        rate = real(step - first, c_double) / (MPI_Wtime() - t0)
        write(error_unit, '(a,i0,a,i0,a,f0.6,a,f0.1,a)') 'step ', step, '/', steps, ' t=', time, ' ', rate, ' steps/s'
      end if
    end if
  end do

  ! Error against the exact decay of the mode (exact sums: the same on any rank count), and
  ! the field's position-keyed checksum.
  time = real(steps, c_double) * dt
  decay = exp((((-4.0_c_double * (pi * pi)) * real(dim, c_double)) * alpha) * time)
  do j = 1, count(2)
    do i = 1, count(1)
      v(i, j) = u(i, j) - decay * mode(lo(1) + i - 2, lo(2) + j - 2)
    end do
  end do
  call rankwise_field_dot(fv, fv, err2, ierr); call check(ierr, 'rankwise_field_dot')
  call rankwise_field_checksum(fu, checksum, ierr); call check(ierr, 'rankwise_field_checksum')
  l2 = sqrt(err2 / real(n * n, c_double))
  if (rank == 0) then
    write(output_unit, '(a,i0,a,a,a,a,a,a)') 'final step=', steps, ' time=', sci(time), ' l2_error=', sci(l2), &
      ' checksum=', hex(checksum)
    flush(output_unit)
  end if
  if (out_given) then
    call rankwise_output_begin(trim(out_dir) // '/heat-final.h5', d, steps, time, w, ierr)
    call check(ierr, 'rankwise_output_begin')
    call rankwise_writer_param_int(w, 'n', n, ierr)
    call rankwise_writer_param_int(w, 'dim', dim, ierr)
    call rankwise_writer_param_real(w, 'alpha', alpha, ierr)
    call rankwise_writer_field(w, 'u', fu, ierr); call check(ierr, 'rankwise_writer_field')
    call rankwise_writer_commit(w, ierr); call check(ierr, 'rankwise_writer_commit')
  end if
  if (png) then
    call rankwise_field_write_png(fu, trim(png_path), ierr); call check(ierr, 'rankwise_field_write_png')
  end if

  call rankwise_stop_destroy(stop, ierr)
  if (ckpt_given) call rankwise_checkpoints_destroy(ckpts, ierr)
  call rankwise_field_destroy(fu, ierr)
  call rankwise_field_destroy(fv, ierr)
  call rankwise_decomposition_destroy(d, ierr)
  call rankwise_backend_destroy(be, ierr)
  call rankwise_timers_report(rt, ierr)
  call rankwise_runtime_destroy(rt, ierr)
  call MPI_Finalize(ierr)

contains

  !> The initial mode at the 0-based global cell (i, j), as examples/heat.rs computes it.
  real(c_double) function mode(i, j)
    integer, intent(in) :: i, j
    mode = sin(((2.0_c_double * pi) * (real(i, c_double) + 0.5_c_double)) * h) &
         * sin(((2.0_c_double * pi) * (real(j, c_double) + 0.5_c_double)) * h)
  end function

  subroutine report(what)
    character(*), intent(in) :: what
    character(len=1024) :: msg
    call rankwise_error_message(msg)
    write(error_unit, '(a)') 'error: ' // what // ': ' // trim(msg)
  end subroutine

  !> A failure that may be this rank's alone: abort the job, so the others do not wait.
  subroutine check(e, what)
    integer, intent(in) :: e
    character(*), intent(in) :: what
    character(len=1024) :: msg
    if (e == RANKWISE_OK) return
    call rankwise_error_message(msg)
    call rankwise_abort(rt, 1, what // ': ' // trim(msg))
  end subroutine

  !> The user's input is wrong, the same on every rank: say it once and exit 2.
  subroutine input(e, hint)
    integer, intent(in) :: e
    character(*), intent(in), optional :: hint
    character(len=1024) :: msg
    integer :: ignored
    if (e == RANKWISE_OK) return
    call rankwise_error_message(msg)
    if (rank == 0) then
      if (present(hint)) then
        write(error_unit, '(a)') 'error: ' // trim(msg) // hint
      else
        write(error_unit, '(a)') 'error: ' // trim(msg)
      end if
    end if
    call rankwise_runtime_destroy(rt, ignored)
    call MPI_Finalize(ignored)
    call exit(2)
  end subroutine

  subroutine invalid(key, why)
    character(*), intent(in) :: key, why
    integer :: e
    call rankwise_config_invalid(cfg, key, why, e)
    call input(e)
  end subroutine

  !> Rust's `{:.6e}`: 1.234560e-3.
  function sci(x) result(s)
    real(c_double), intent(in) :: x
    character(len=:), allocatable :: s
    character(len=32) :: buf, ex
    integer :: k, e
    write(buf, '(es20.6e4)') x
    buf = adjustl(buf)
    k = index(buf, 'E')
    read(buf(k + 1:), *) e
    write(ex, '(i0)') e
    s = buf(:k - 1) // 'e' // trim(ex)
  end function

  !> 16 lower-case hex digits of the 64 bits.
  function hex(x) result(s)
    integer(c_int64_t), intent(in) :: x
    character(len=16) :: s
    character(len=16), parameter :: digits = '0123456789abcdef'
    integer :: k
    do k = 0, 15
      s(16 - k:16 - k) = digits(int(ibits(x, 4 * k, 4)) + 1:int(ibits(x, 4 * k, 4)) + 1)
    end do
  end function
end program heat
