/* Fields through the C API: a field over the caller's memory and one in Rankwise's memory, the
 * split-phase and the one-call halo exchange, with box stencils on a periodic 7 x 5 grid; every
 * ghost must hold its periodic owner's value. Then the exact sum, and checkpoints listed and
 * verified. Prints "fields ok" on rank 0, or "FAIL ..." lines. */
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include <rankwise.h>

#define NX 7
#define NY 5
#define G 2

static double value(long i, long j) {
    i = ((i % NX) + NX) % NX;
    j = ((j % NY) + NY) % NY;
    return i * 100.0 + j;
}

#define OK(call) do { if ((call) != RANKWISE_OK) { printf("FAIL %s: %s\n", #call, rankwise_error_message()); MPI_Abort(MPI_COMM_WORLD, 1); } } while (0)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    rankwise_runtime *rt;
    OK(rankwise_runtime_create(MPI_COMM_WORLD, &rt));
    int rank, size, bad = 0;
    OK(rankwise_runtime_rank(rt, &rank, &size));
    size_t global[2] = {NX, NY}, start[2], count[2], shape[2];
    int periodic[2] = {1, 1};
    rankwise_decomposition *d;
    OK(rankwise_decomposition_create(rt, 2, global, NULL, periodic, &d));
    OK(rankwise_decomposition_owned(d, start, count, NULL));
    rankwise_field *owned, *mine;
    OK(rankwise_field_create(d, G, &owned));
    OK(rankwise_field_shape(owned, shape, NULL));
    double *a, *b = calloc(shape[0] * shape[1], sizeof *b);
    OK(rankwise_field_data(owned, &a));
    OK(rankwise_field_wrap(d, G, b, shape, &mine));
    for (size_t i = 0; i < count[0]; i++)
        for (size_t j = 0; j < count[1]; j++)
            a[(i + G) * shape[1] + j + G] = b[(i + G) * shape[1] + j + G] = value(start[0] + i, start[1] + j);
    rankwise_exchange *ex;
    OK(rankwise_exchange_begin(mine, RANKWISE_STENCIL_BOX, &ex));
    OK(rankwise_exchange_finish(&ex));
    OK(rankwise_field_exchange(owned, RANKWISE_STENCIL_BOX));
    for (size_t i = 0; i < shape[0]; i++)
        for (size_t j = 0; j < shape[1]; j++) {
            double want = value((long)(start[0] + i) - G, (long)(start[1] + j) - G);
            double *cells[2] = {a, b};
            for (int k = 0; k < 2; k++)
                if (cells[k][i * shape[1] + j] != want) {
                    printf("FAIL rank %d %s cell (%zu, %zu): %g, not %g\n", rank, k ? "caller's" : "Rankwise's", i, j, cells[k][i * shape[1] + j], want);
                    bad++;
                }
        }
    double sum_a, sum_b, want = 0;
    for (int i = 0; i < NX; i++)
        for (int j = 0; j < NY; j++)
            want += value(i, j);
    OK(rankwise_field_sum(owned, &sum_a));
    OK(rankwise_field_sum(mine, &sum_b));
    uint64_t ca, cb;
    OK(rankwise_field_checksum(owned, &ca));
    OK(rankwise_field_checksum(mine, &cb));
    if (sum_a != want || sum_b != want || ca != cb) {
        printf("FAIL sums %g %g (want %g), checksums %016" PRIx64 " %016" PRIx64 "\n", sum_a, sum_b, want, ca, cb);
        bad++;
    }
    /* Two checkpoints, keep 1: one listed, valid, at step 2. */
    if (argc > 1) {
        rankwise_checkpoints *c;
        OK(rankwise_checkpoints_create(argv[1], 1, &c));
        for (uint64_t step = 1; step <= 2; step++) {
            rankwise_writer *w;
            char path[4096];
            OK(rankwise_checkpoint_begin(c, d, step, 0.5 * step, &w));
            OK(rankwise_writer_field(w, "u", mine));
            OK(rankwise_writer_commit(&w, path, sizeof path));
            uint64_t s;
            OK(rankwise_checkpoint_verify(path, &s));
            if (s != step) bad++;
        }
        size_t n;
        int valid;
        uint64_t newest;
        OK(rankwise_checkpoints_list(c, &n, &valid, &newest));
        if (n != 1 || !valid || newest != 2) {
            printf("FAIL list: %zu checkpoints, valid %d, newest %" PRIu64 "\n", n, valid, newest);
            bad++;
        }
        rankwise_checkpoints_destroy(&c);
    }
    rankwise_field_destroy(&owned);
    rankwise_field_destroy(&mine);
    free(b);
    rankwise_decomposition_destroy(&d);
    int all;
    MPI_Allreduce(&bad, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0 && all == 0)
        printf("fields ok\n");
    rankwise_runtime_destroy(&rt);
    MPI_Finalize();
    return all != 0;
}
