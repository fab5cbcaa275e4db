/* The reference for comm-bench's ping-pong (benchmarks/comm.rs): IMB-MPI1's PingPong loop, written
 * out because IMB is not packaged here. Ranks 0 and 1 bounce one message with MPI_Send/MPI_Recv;
 * a sample times its iterations together, as IMB does (1000 iterations, fewer from 40 KiB on so
 * that a sample moves at most 40 MiB: IMB's MSGSPERSAMPLE and OVERALL_VOL). IMB reports one
 * sample; this takes 9 and prints the fastest and the median one-way time, in comm-bench's
 * POINT format. Built and run by scripts/bench-comm.sh.
 *
 *   mpirun -np 2 pingpong-c
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define SAMPLES 9

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
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
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int i = 0; i < iters; i++) {
                if (rank == 0) {
                    MPI_Send(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
                    MPI_Recv(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else if (rank == 1) {
                    MPI_Recv(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    MPI_Send(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
                }
            }
            double t = (MPI_Wtime() - t0) / (2.0 * iters);
            if (k >= 0) MPI_Allreduce(&t, &one_way[k], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        }
        qsort(one_way, SAMPLES, sizeof *one_way, cmp);
        if (rank == 0)
            printf("POINT series=pingpong_imb np=%d msgs=1 bytes=%d seconds=%.6e median=%.6e\n", size, bytes, one_way[0],
                   one_way[SAMPLES / 2]);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
