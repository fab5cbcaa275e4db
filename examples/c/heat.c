/*
 * Heat diffusion on the periodic unit square, written as a C simulation code that links
 * Rankwise: its own MPI_Init, its inputs read through the Rankwise config reader, a distributed
 * field with split-phase halo exchange, the heat kernel on its arrays, checkpoints every few
 * steps, restart from the newest valid one on any rank count, stop-and-requeue on a signal or
 * near the time limit. It solves the 2-D problem of examples/heat.rs with the same inputs and
 * ends with the same `final ...` line.
 *
 *   mpicc -O2 -o heat heat.c $(pkg-config --cflags --libs rankwise) -lm
 *   rankwise run -n 4 ./heat -i examples/inputs/heat.toml --set n=256
 */
#include <inttypes.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rankwise.h>

static rankwise_runtime *rt;
static int rank;

/* A failure that may be this rank's alone: abort the job, so the others do not wait. */
#define CHECK(call)                                                                 \
    do {                                                                            \
        if ((call) != RANKWISE_OK) {                                                \
            char msg_[1024];                                                        \
            snprintf(msg_, sizeof msg_, "%s: %s", #call, rankwise_error_message()); \
            rankwise_abort(rt, 1, msg_);                                            \
        }                                                                           \
    } while (0)

/* The user's input is wrong, the same on every rank: say it once and exit 2. */
static void bad_input(const char *hint) {
    if (rank == 0)
        fprintf(stderr, "error: %s%s\n", rankwise_error_message(), hint);
    rankwise_runtime_destroy(&rt);
    MPI_Finalize();
    exit(2);
}
#define INPUT(call) do { if ((call) != RANKWISE_OK) bad_input(""); } while (0)

/* Rust's `{:.6e}`: 1.234560e-3, not C's 1.234560e-03. */
static const char *sci(double x, char *buf) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.6e", x);
    char *e = strchr(tmp, 'e');
    if (!e)
        return strcpy(buf, tmp);
    *e = '\0';
    sprintf(buf, "%se%d", tmp, atoi(e + 1));
    return buf;
}

static double mode(size_t i, size_t j, double h) {
    return sin(2.0 * M_PI * (i + 0.5) * h) * sin(2.0 * M_PI * (j + 0.5) * h);
}

/* The heat kernel on owned rows [r0, r1) and columns [c0, c1) (local interior coordinates) of
 * blocks whose rows are `ld` apart: with ghost width 1 the source block with its ghosts starts
 * at data row r0, column c0. */
static void update(const rankwise_backend *be, const double *u, double *v, size_t ld, size_t r0, size_t r1,
                   size_t c0, size_t c1, const double h[2], double nu_dt) {
    if (r1 <= r0 || c1 <= c0)
        return;
    size_t shape[2] = {r1 - r0 + 2, c1 - c0 + 2};
    ptrdiff_t strides[2] = {(ptrdiff_t)ld, 1};
    CHECK(rankwise_heat_step_2d(be, u + r0 * ld + c0, v + r0 * ld + c0, shape, strides, 1, h, nu_dt));
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (rankwise_runtime_create(MPI_COMM_WORLD, &rt) != RANKWISE_OK) {
        fprintf(stderr, "error: %s\n", rankwise_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    int size;
    CHECK(rankwise_runtime_rank(rt, &rank, &size));

    /* The inputs of examples/heat.rs (2-D). */
    rankwise_config *cfg;
    INPUT(rankwise_config_from_args(argc, (const char *const *)argv, &cfg));
    int64_t n, dim, steps, every, keep, progress_every;
    double alpha, cfl, t_end, margin;
    int t_end_given, png_given, png, at_end;
    char backend_name[16], ckpt_dir[4096], out_dir[4096], png_path[4096];
    int ckpt_given, out_given;
    INPUT(rankwise_config_int(cfg, "n", 64, &n, NULL));
    INPUT(rankwise_config_int(cfg, "dim", 2, &dim, NULL));
    INPUT(rankwise_config_real(cfg, "alpha", 1.0, &alpha, NULL));
    INPUT(rankwise_config_real(cfg, "cfl", 0.5, &cfl, NULL));
    INPUT(rankwise_config_string(cfg, "backend", "cpu", backend_name, sizeof backend_name, NULL));
    if (n < 2)
        bad_input((rankwise_config_invalid(cfg, "n", "need at least 2 cells per side"), ""));
    if (dim != 2)
        bad_input((rankwise_config_invalid(cfg, "dim", "the C example is 2-D (examples/heat.rs does 3-D)"), ""));
    if (!(alpha > 0.0))
        bad_input((rankwise_config_invalid(cfg, "alpha", "must be positive"), ""));
    if (!(cfl > 0.0 && cfl <= 1.0))
        bad_input((rankwise_config_invalid(cfg, "cfl", "must be in (0, 1]"), ""));
    /* Forward Euler is stable for dt <= h^2 / (2 dim alpha). */
    double h = 1.0 / (double)n;
    double dt = cfl * h * h / (2.0 * (double)dim * alpha);
    INPUT(rankwise_config_int(cfg, "steps", 100, &steps, NULL));
    INPUT(rankwise_config_real(cfg, "t_end", 0.0, &t_end, &t_end_given));
    if (t_end_given) {
        steps = (int64_t)ceil(t_end / dt);
        dt = t_end / (double)steps;
    }
    INPUT(rankwise_config_int(cfg, "checkpoint.every", 0, &every, NULL));
    INPUT(rankwise_config_string(cfg, "checkpoint.dir", NULL, ckpt_dir, sizeof ckpt_dir, &ckpt_given));
    if (every > 0 && !ckpt_given)
        bad_input((rankwise_config_invalid(cfg, "checkpoint.every", "needs checkpoint.dir (where to write them)"), ""));
    INPUT(rankwise_config_string(cfg, "output.dir", NULL, out_dir, sizeof out_dir, &out_given));
    /* output.png: true (the default: heat-final.png in output.dir), false, or a file name. */
    png = out_given;
    snprintf(png_path, sizeof png_path, "%.4000s/heat-final.png", out_dir);
    if (rankwise_config_bool(cfg, "output.png", 1, &png, &png_given) == RANKWISE_OK) {
        png = png && out_given;
    } else {
        INPUT(rankwise_config_string(cfg, "output.png", NULL, png_path, sizeof png_path, NULL));
        png = 1;
    }
    INPUT(rankwise_config_real(cfg, "stop.margin", 30.0, &margin, NULL));
    if (!(margin >= 0.0 && margin <= 86400.0))
        bad_input((rankwise_config_invalid(cfg, "stop.margin", "must be between 0 and 86400 seconds"), ""));
    INPUT(rankwise_config_int(cfg, "checkpoint.keep", 2, &keep, NULL));
    /* A checkpoint at the last step too: a finished run extended with more steps continues. */
    INPUT(rankwise_config_bool(cfg, "checkpoint.at_end", 1, &at_end, NULL));
    INPUT(rankwise_config_int(cfg, "progress.every", 0, &progress_every, NULL));
    INPUT(rankwise_config_finish(cfg));
    rankwise_config_destroy(&cfg);

    rankwise_backend *be;
    int gpu;
    CHECK(rankwise_runtime_gpu(rt, &gpu));
    if (rankwise_backend_create(backend_name, gpu < 0 ? 0 : gpu, &be) != RANKWISE_OK)
        bad_input("");

    /* The periodic square over all ranks; two fields with one ghost layer. */
    size_t global[2] = {(size_t)n, (size_t)n}, start[2], count[2], shape[2];
    int periodic[2] = {1, 1};
    rankwise_decomposition *d;
    INPUT(rankwise_decomposition_create(rt, 2, global, NULL, periodic, &d));
    CHECK(rankwise_decomposition_owned(d, start, count, NULL));
    rankwise_field *fu, *fv;
    CHECK(rankwise_field_create(d, 1, &fu));
    CHECK(rankwise_field_create(d, 1, &fv));
    CHECK(rankwise_field_shape(fu, shape, NULL));
    double *u, *v;
    CHECK(rankwise_field_data(fu, &u));
    CHECK(rankwise_field_data(fv, &v));
    const size_t ld = shape[1];
    for (size_t i = 0; i < count[0]; i++)
        for (size_t j = 0; j < count[1]; j++)
            u[(i + 1) * ld + j + 1] = mode(start[0] + i, start[1] + j, h);

    /* Restart from the newest valid checkpoint, if any, written on any rank count. */
    rankwise_checkpoints *ckpts = NULL;
    uint64_t step = 0;
    if (ckpt_given) {
        CHECK(rankwise_checkpoints_create(ckpt_dir, (int)keep, &ckpts));
        rankwise_restore *req;
        CHECK(rankwise_restore_create(&req));
        CHECK(rankwise_restore_expect_int(req, "n", n));
        CHECK(rankwise_restore_expect_int(req, "dim", dim));
        CHECK(rankwise_restore_expect_real(req, "alpha", alpha));
        CHECK(rankwise_restore_field(req, "u", fu));
        int found;
        int e = rankwise_restore_run(req, ckpts, &found, &step, NULL);
        /* Another run's checkpoint is the user's mistake: say so, and leave it where it is. */
        if (e == RANKWISE_ERR_INPUT)
            bad_input(": use another checkpoint.dir, or move that one away");
        CHECK(e);
        if (found && rank == 0)
            fprintf(stderr, "restarted from step %" PRIu64 " (%d ranks now)\n", step, size);
        rankwise_restore_destroy(&req);
    }

    rankwise_stop *stop;
    CHECK(rankwise_stop_create(rt, margin, 0.0, &stop));
    const double hh[2] = {h, h}, nu_dt = alpha * dt;
    const size_t nx = count[0], ny = count[1];
    const int inner = nx >= 3 && ny >= 3;
    double t0 = MPI_Wtime();
    const uint64_t first = step;
    while (step < (uint64_t)steps) {
        CHECK(rankwise_timer_start(rt, "step"));
        /* Overlap the halo exchange with the cells that need no ghost, then the shell. */
        rankwise_exchange *ex;
        CHECK(rankwise_exchange_begin(fu, RANKWISE_STENCIL_STAR, &ex));
        if (inner)
            update(be, u, v, ld, 1, nx - 1, 1, ny - 1, hh, nu_dt);
        CHECK(rankwise_exchange_finish(&ex));
        if (inner) {
            update(be, u, v, ld, 0, 1, 0, ny, hh, nu_dt);
            update(be, u, v, ld, nx - 1, nx, 0, ny, hh, nu_dt);
            update(be, u, v, ld, 1, nx - 1, 0, 1, hh, nu_dt);
            update(be, u, v, ld, 1, nx - 1, ny - 1, ny, hh, nu_dt);
        } else {
            update(be, u, v, ld, 0, nx, 0, ny, hh, nu_dt);
        }
        rankwise_field *ft = fu; fu = fv; fv = ft;
        double *t = u; u = v; v = t;
        CHECK(rankwise_timer_stop(rt, "step"));
        step++;
        double time = (double)step * dt;
        int due = (every > 0 && step % (uint64_t)every == 0 && step < (uint64_t)steps) || (at_end && step == (uint64_t)steps);
        int action;
        CHECK(rankwise_stop_check(stop, step, &action));
        if (ckpts && (due || action != RANKWISE_CARRY_ON)) {
            CHECK(rankwise_timer_start(rt, "checkpoint"));
            rankwise_writer *w;
            CHECK(rankwise_checkpoint_begin(ckpts, d, step, time, &w));
            CHECK(rankwise_writer_param_int(w, "n", n));
            CHECK(rankwise_writer_param_int(w, "dim", dim));
            CHECK(rankwise_writer_param_real(w, "alpha", alpha));
            CHECK(rankwise_writer_field(w, "u", fu));
            char path[4096];
            CHECK(rankwise_writer_commit(&w, path, sizeof path));
            CHECK(rankwise_timer_stop(rt, "checkpoint"));
            if (rank == 0)
                fprintf(stderr, "checkpoint %s\n", path);
        }
        if (action == RANKWISE_CHECKPOINT_AND_STOP) {
            if (rank == 0)
                fprintf(stderr, "stopping at step %" PRIu64 "%s\n", step, ckpts ? "; checkpoint written" : " without a checkpoint: no checkpoint.dir");
            rankwise_stop_destroy(&stop);
            rankwise_runtime_destroy(&rt);
            MPI_Finalize();
            return RANKWISE_EXIT_REQUEUE;
        }
        if (rank == 0 && progress_every > 0 && step % (uint64_t)progress_every == 0) {
            double rate = (double)(step - first) / (MPI_Wtime() - t0);
            fprintf(stderr, "step %" PRIu64 "/%" PRId64 " t=%.6f %.1f steps/s, %.0f s left\n", step, steps, time, rate, (double)((uint64_t)steps - step) / rate);
        }
    }

    /* Error against the exact decay of the mode (exact sums: the same on any rank count), and
     * the field's position-keyed checksum. */
    double time = (double)steps * dt;
    double decay = exp(-4.0 * (M_PI * M_PI) * (double)dim * alpha * time);
    for (size_t i = 0; i < nx; i++)
        for (size_t j = 0; j < ny; j++)
            v[(i + 1) * ld + j + 1] = u[(i + 1) * ld + j + 1] - decay * mode(start[0] + i, start[1] + j, h);
    double err2;
    uint64_t sum;
    CHECK(rankwise_field_dot(fv, fv, &err2));
    CHECK(rankwise_field_checksum(fu, &sum));
    double l2 = sqrt(err2 / (double)(n * n));
    if (rank == 0) {
        char a[64], b[64];
        printf("final step=%" PRId64 " time=%s l2_error=%s checksum=%016" PRIx64 "\n", steps, sci(time, a), sci(l2, b), sum);
        fflush(stdout);
    }
    if (out_given) {
        char path[4096 + 16];
        snprintf(path, sizeof path, "%s/heat-final.h5", out_dir);
        rankwise_writer *w;
        CHECK(rankwise_output_begin(path, d, (uint64_t)steps, time, &w));
        CHECK(rankwise_writer_param_int(w, "n", n));
        CHECK(rankwise_writer_param_int(w, "dim", dim));
        CHECK(rankwise_writer_param_real(w, "alpha", alpha));
        CHECK(rankwise_writer_field(w, "u", fu));
        CHECK(rankwise_writer_commit(&w, NULL, 0));
    }
    if (png)
        CHECK(rankwise_field_write_png(fu, png_path));

    rankwise_stop_destroy(&stop);
    rankwise_checkpoints_destroy(&ckpts);
    rankwise_field_destroy(&fu);
    rankwise_field_destroy(&fv);
    rankwise_decomposition_destroy(&d);
    rankwise_backend_destroy(&be);
    CHECK(rankwise_timers_report(rt));
    rankwise_runtime_destroy(&rt);
    MPI_Finalize();
    return 0;
}
