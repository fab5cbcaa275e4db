/* Bad input through the C API: every call below must return its error code and a message, never
 * crash. Prints "ok NAME" per check, "FAIL NAME ..." otherwise; run by tests/capi.rs at 2 ranks. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include <rankwise.h>

static int failures = 0, rank = 0;

static void expect(const char *name, int got, int want, const char *needle) {
    const char *msg = rankwise_error_message();
    if (got == want && (needle == NULL || strstr(msg, needle) != NULL) && (want == RANKWISE_OK || msg[0] != '\0')) {
        if (rank == 0)
            printf("ok %s: %s\n", name, msg);
    } else {
        printf("FAIL %s: got %d (%s), wanted %d with \"%s\"\n", name, got, msg, want, needle ? needle : "");
        failures++;
    }
}

int main(int argc, char **argv) {
    rankwise_runtime *rt = NULL;
    /* Before MPI_Init: no runtime. */
    expect("before-init", rankwise_runtime_create(MPI_COMM_WORLD, &rt), RANKWISE_ERR_MPI, "MPI is not running");
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    expect("null-out", rankwise_runtime_create(MPI_COMM_WORLD, NULL), RANKWISE_ERR_NULL, "output pointer is null");
    expect("comm-null", rankwise_runtime_create(MPI_COMM_NULL, &rt), RANKWISE_ERR_MPI, "MPI_COMM_NULL");

    /* An inter-communicator between the even and the odd ranks. */
    MPI_Comm half, inter;
    MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
    MPI_Intercomm_create(half, 0, MPI_COMM_WORLD, rank % 2 == 0 ? 1 : 0, 99, &inter);
    expect("inter-communicator", rankwise_runtime_create(inter, &rt), RANKWISE_ERR_MPI, "inter-communicator");
    MPI_Comm_free(&inter);
    MPI_Comm_free(&half);

    expect("runtime", rankwise_runtime_create(MPI_COMM_WORLD, &rt), RANKWISE_OK, NULL);
    int r, size;
    expect("null-handle", rankwise_runtime_rank(NULL, &r, &size), RANKWISE_ERR_NULL, "null rankwise_runtime");

    /* Handles: destroyed, foreign, of the wrong kind. */
    size_t global[2] = {8, 8};
    int periodic[2] = {1, 1};
    rankwise_decomposition *d;
    expect("decomposition", rankwise_decomposition_create(rt, 2, global, NULL, periodic, &d), RANKWISE_OK, NULL);
    rankwise_field *f, *dead;
    expect("field", rankwise_field_create(d, 1, &f), RANKWISE_OK, NULL);
    expect("field-2", rankwise_field_create(d, 1, &dead), RANKWISE_OK, NULL);
    rankwise_field *copy = dead;
    expect("destroy", rankwise_field_destroy(&dead), RANKWISE_OK, NULL);
    expect("destroy-nulls", dead == NULL ? RANKWISE_OK : -1, RANKWISE_OK, NULL);
    expect("destroy-null-again", rankwise_field_destroy(&dead), RANKWISE_OK, NULL);
    expect("freed-handle", rankwise_field_exchange(copy, RANKWISE_STENCIL_STAR), RANKWISE_ERR_HANDLE, "destroyed already");
    expect("freed-destroy", rankwise_field_destroy(&copy), RANKWISE_ERR_HANDLE, "destroyed already");
    double junk[16];
    expect("foreign-handle", rankwise_field_exchange((rankwise_field *)junk, RANKWISE_STENCIL_STAR), RANKWISE_ERR_HANDLE, "not made by Rankwise");
    expect("wrong-kind", rankwise_field_exchange((rankwise_field *)d, RANKWISE_STENCIL_STAR), RANKWISE_ERR_HANDLE, "rankwise_decomposition handle was given where a rankwise_field");
    expect("bad-stencil", rankwise_field_exchange(f, 7), RANKWISE_ERR_INPUT, "stencil 7");

    /* Shapes. */
    expect("ndim", rankwise_decomposition_create(rt, 4, global, NULL, periodic, &d), RANKWISE_ERR_SHAPE, "1 to 3 dimensions");
    size_t huge[2] = {1, 8};
    rankwise_decomposition *d2 = NULL;
    int e = rankwise_decomposition_create(rt, 2, huge, (size_t[]){2, 1}, NULL, &d2);
    expect("too-many-ranks", e, RANKWISE_ERR_INPUT, "more ranks");
    size_t start[2], count[2];
    rankwise_decomposition_owned(d, start, count, NULL);
    double block[100];
    size_t wrong[2] = {count[0] + 2, count[1] + 3};
    rankwise_field *w;
    expect("wrap-shape", rankwise_field_wrap(d, 1, block, wrong, &w), RANKWISE_ERR_SHAPE, "this rank's block with 1 ghost layers");
    expect("wrap-null", rankwise_field_wrap(d, 1, NULL, wrong, &w), RANKWISE_ERR_NULL, "null");
    double src[25] = {0}, dst[25] = {0}, h[2] = {0.1, 0.1};
    size_t shape[2] = {5, 5};
    expect("stencil-ok", rankwise_heat_step_2d(NULL, src, dst, shape, NULL, 1, h, 0.1), RANKWISE_OK, NULL);
    expect("stencil-ghost", rankwise_heat_step_2d(NULL, src, dst, shape, NULL, 3, h, 0.1), RANKWISE_ERR_SHAPE, "shape");
    expect("stencil-null", rankwise_heat_step_2d(NULL, NULL, dst, shape, NULL, 1, h, 0.1), RANKWISE_ERR_NULL, "null array");
    expect("stencil-overlap", rankwise_heat_step_2d(NULL, src, src + 3, shape, NULL, 1, h, 0.1), RANKWISE_ERR_SHAPE, "overlap");
    ptrdiff_t bad_strides[2] = {0, 1};
    expect("stencil-strides", rankwise_heat_step_2d(NULL, src, dst, shape, bad_strides, 1, h, 0.1), RANKWISE_ERR_SHAPE, "strides must be positive");
    expect("backend-name", rankwise_backend_create("tpu", 0, &(rankwise_backend *){NULL}), RANKWISE_ERR_BACKEND, "unknown back end 'tpu'");
    double a[4] = {1, 2, 2, 4}, b[2] = {1, 1}, x[2];
    expect("singular", rankwise_lu_solve(2, a, b, x), RANKWISE_ERR_LINALG, "linear algebra");
    size_t indptr[3] = {0, 1, 2}, indices[2] = {0, 5};
    double values[2] = {1, 1};
    rankwise_csr *csr;
    expect("csr-index", rankwise_csr_create(NULL, 2, 2, indptr, indices, values, &csr), RANKWISE_ERR_SHAPE, "shape");
    expect("exchange-finish-null", rankwise_exchange_finish(NULL), RANKWISE_ERR_NULL, "output pointer is null");

    /* Inputs. */
    rankwise_config *cfg;
    const char *args[] = {"prog", "--set", "n=oops", "--set", "stesp=3"};
    expect("config", rankwise_config_from_args(5, args, &cfg), RANKWISE_OK, NULL);
    int64_t n;
    expect("config-type", rankwise_config_int(cfg, "n", 1, &n, NULL), RANKWISE_ERR_INPUT, "`n` = \"oops\": expected i64");
    expect("config-unknown", rankwise_config_finish(cfg), RANKWISE_ERR_INPUT, "unknown input `stesp`");
    char small[4];
    expect("config-buffer", rankwise_config_string(cfg, "n", NULL, small, sizeof small, NULL), RANKWISE_ERR_SHAPE, "cannot hold");
    rankwise_config_destroy(&cfg);
    const char *bad_args[] = {"prog", "--bogus"};
    expect("config-args", rankwise_config_from_args(2, bad_args, &cfg), RANKWISE_ERR_INPUT, "unexpected argument");

    /* Checkpoints. */
    expect("verify-missing", rankwise_checkpoint_verify("/nonexistent/ckpt-0000000001.h5", NULL), RANKWISE_ERR_IO, "nonexistent");
    rankwise_restore *req;
    rankwise_checkpoints *cks;
    rankwise_restore_create(&req);
    rankwise_checkpoints_create("/nonexistent-dir", 2, &cks);
    int found;
    expect("restore-nothing", rankwise_restore_run(req, cks, &found, NULL, NULL), RANKWISE_ERR_INPUT, "no field to restore");
    rankwise_restore_destroy(&req);
    rankwise_checkpoints_destroy(&cks);
    expect("timer-stop", rankwise_timer_stop(rt, "never"), RANKWISE_ERR_INPUT, "was not started");

    rankwise_field_destroy(&f);
    rankwise_decomposition_destroy(&d);
    expect("runtime-destroy", rankwise_runtime_destroy(&rt), RANKWISE_OK, NULL);
    MPI_Finalize();
    if (rank == 0)
        printf("%d failed\n", failures);
    return failures != 0;
}
