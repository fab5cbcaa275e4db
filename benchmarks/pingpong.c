/* The reference for comm-bench's ping-pong (benchmarks/comm.rs): IMB-MPI1's PingPong loop, written
 * out because IMB is not packaged here. Ranks 0 and 1 bounce one message with MPI_Send/MPI_Recv;
 * a sample times its iterations together, as IMB does (1000 iterations, fewer from 40 KiB on so
 * that a sample moves at most 40 MiB: IMB's MSGSPERSAMPLE and OVERALL_VOL). IMB reports one
 * sample; this takes 9 and prints the fastest and the median one-way time, in comm-bench's
 * POINT format. It times a C halo exchange of the same bytes the same way (series exchange_c),
 * the reference for Field::exchange. Built and run by scripts/bench-comm.sh.
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

/* One sample: `iters` rounds timed together; the slowest rank's seconds per message one way
 * (ping-pong: ranks 0 and 1 bounce `buf` with MPI_Send/MPI_Recv) or per exchange (ranks 0 and 1
 * each send `buf` to the other and receive into `other`: MPI_Irecv, MPI_Isend, MPI_Waitall, as
 * a hand-written halo exchange does). */
static double sample(int exchange, char *buf, char *other, int bytes, int iters, int rank, MPI_Comm comm) {
    MPI_Barrier(comm);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters && rank < 2; i++) {
        if (exchange) {
            MPI_Request q[2];
            MPI_Irecv(other, bytes, MPI_BYTE, 1 - rank, 1, comm, &q[0]);
            MPI_Isend(buf, bytes, MPI_BYTE, 1 - rank, 1, comm, &q[1]);
            MPI_Waitall(2, q, MPI_STATUSES_IGNORE);
        } else if (rank == 0) {
            MPI_Send(buf, bytes, MPI_BYTE, 1, 0, comm);
            MPI_Recv(buf, bytes, MPI_BYTE, 1, 0, comm, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(buf, bytes, MPI_BYTE, 0, 0, comm, MPI_STATUS_IGNORE);
            MPI_Send(buf, bytes, MPI_BYTE, 0, 0, comm);
        }
    }
    double t = (MPI_Wtime() - t0) / (exchange ? iters : 2.0 * iters), worst;
    MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, comm);
    return worst;
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
    char *buf = calloc(2 << 20, 1), *other = calloc(2 << 20, 1);
    const char *level = funneled ? "_funneled" : "";
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int bytes = sizes[s], iters = (40 << 20) / bytes;
        iters = iters > 1000 ? 1000 : iters < 1 ? 1 : iters;
        for (int exchange = 0; exchange < 2; exchange++) {
            double t[SAMPLES];
            sample(exchange, buf, other, bytes, iters, rank, comm); /* warm-up */
            for (int k = 0; k < SAMPLES; k++) t[k] = sample(exchange, buf, other, bytes, iters, rank, comm);
            qsort(t, SAMPLES, sizeof *t, cmp);
            if (rank == 0)
                printf("POINT series=%s%s np=%d msgs=1 bytes=%d seconds=%.6e median=%.6e\n", exchange ? "exchange_c" : "pingpong_imb",
                       level, size, bytes, t[0], t[SAMPLES / 2]);
        }
    }
    free(other);
    free(buf);
    MPI_Comm_free(&comm);
    MPI_Finalize();
    return 0;
}
