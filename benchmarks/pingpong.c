/* The reference for comm-bench's ping-pong (benchmarks/comm.rs): IMB-MPI1's PingPong loop, written
 * out because IMB is not packaged here. Ranks 0 and 1 bounce one message with MPI_Send/MPI_Recv;
 * a sample times its iterations together, as IMB does (1000 iterations, fewer from 40 KiB on so
 * that a sample moves at most 40 MiB: IMB's MSGSPERSAMPLE and OVERALL_VOL). IMB reports one
 * sample; this takes 9 and prints the fastest and the median one-way time, in comm-bench's
 * POINT format. Built and run by scripts/bench-comm.sh.
 *
 * IMB starts MPI with MPI_Init (MPI_THREAD_SINGLE); `funneled` starts it at
 * MPI_THREAD_FUNNELED instead, the level a rankwise program asks for (its rayon threads never
 * call MPI). Open MPI takes its internal locks at every level above SINGLE, which costs some
 * 40 ns a message on shared memory: this shows that cost apart from the Rust side's.
 *
 *   mpirun -np 2 pingpong-c [funneled]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLES 9

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int funneled = argc > 1 && strcmp(argv[1], "funneled") == 0, provided;
    if (argc > 1 && !funneled) {
        fprintf(stderr, "error: pingpong-c: unknown argument %s (the only one is funneled)\n", argv[1]);
        return 2;
    }
    if (funneled)
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    else
        MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    /* IMB times on a communicator it splits off the world (as comm-bench on its decomposition's
     * duplicate): making one starts Open MPI's non-blocking-collective progress, polled from
     * then on. */
    MPI_Comm comm;
    MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &comm);
    if (size < 2) {
        fprintf(stderr, "error: pingpong-c needs 2 ranks or more\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const int sizes[] = {8, 32, 128, 512, 2 << 10, 8 << 10, 32 << 10, 128 << 10, 512 << 10, 2 << 20};
    char *buf = calloc(2 << 20, 1);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int bytes = sizes[s], iters = (40 << 20) / bytes;
        iters = iters > 1000 ? 1000 : iters < 1 ? 1 : iters;
        double one_way[SAMPLES];
        for (int k = -1; k < SAMPLES; k++) { /* sample -1: warm-up */
            MPI_Barrier(comm);
            double t0 = MPI_Wtime();
            for (int i = 0; i < iters; i++) {
                if (rank == 0) {
                    MPI_Send(buf, bytes, MPI_BYTE, 1, 0, comm);
                    MPI_Recv(buf, bytes, MPI_BYTE, 1, 0, comm, MPI_STATUS_IGNORE);
                } else if (rank == 1) {
                    MPI_Recv(buf, bytes, MPI_BYTE, 0, 0, comm, MPI_STATUS_IGNORE);
                    MPI_Send(buf, bytes, MPI_BYTE, 0, 0, comm);
                }
            }
            double t = (MPI_Wtime() - t0) / (2.0 * iters);
            if (k >= 0) MPI_Allreduce(&t, &one_way[k], 1, MPI_DOUBLE, MPI_MAX, comm);
        }
        qsort(one_way, SAMPLES, sizeof *one_way, cmp);
        if (rank == 0)
            printf("POINT series=%s np=%d msgs=1 bytes=%d seconds=%.6e median=%.6e\n", funneled ? "pingpong_imb_funneled" : "pingpong_imb", size, bytes, one_way[0],
                   one_way[SAMPLES / 2]);
    }
    free(buf);
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return 0;
}
