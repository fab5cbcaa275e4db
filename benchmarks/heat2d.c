/* The C + MPI reference for examples/bench_heat2d.rs: the same explicit 5-point heat steps on an
 * N x N grid of doubles, split over an MPI_Dims_create rank grid in the same blocks, with the same
 * overlap (post the halo messages, update the cells that read no ghost, wait, update the rest).
 * Built and run by scripts/bench-heat.sh.
 *
 *   mpirun -np P heat2d-c [N [STEPS]]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K 0.2

static int block_start(int n, int p, int i) { int q = n / p, r = n % p; return i * q + (i < r ? i : r); }
static int block_len(int n, int p, int i) { return n / p + (i < n % p); }

/* Rows [r0, r1) x columns [c0, c1) of v from u; local indices, ghosts included; w = row length. */
static void step(const double *restrict u, double *restrict v, int w, int r0, int r1, int c0, int c1) {
    for (int i = r0; i < r1; i++) {
        const double *up = u + (size_t)(i - 1) * w, *mid = u + (size_t)i * w, *dn = u + (size_t)(i + 1) * w;
        double *out = v + (size_t)i * w;
        for (int j = c0; j < c1; j++)
            out[j] = mid[j] + K * (up[j] + dn[j] + mid[j - 1] + mid[j + 1] - 4.0 * mid[j]);
    }
}

typedef struct { MPI_Comm comm; int nb[4]; MPI_Datatype col; int nx, ny, w; } Halo;

/* Post the four face messages (rows contiguous, columns as a vector type). */
static void halo_begin(const Halo *h, double *u, MPI_Request req[8]) {
    int nx = h->nx, ny = h->ny, w = h->w;
    /* neighbours: 0 up (row-1), 1 down, 2 left (col-1), 3 right */
    MPI_Irecv(u + 1, ny, MPI_DOUBLE, h->nb[0], 0, h->comm, &req[0]);
    MPI_Irecv(u + (size_t)(nx + 1) * w + 1, ny, MPI_DOUBLE, h->nb[1], 1, h->comm, &req[1]);
    MPI_Irecv(u + w, 1, h->col, h->nb[2], 2, h->comm, &req[2]);
    MPI_Irecv(u + w + ny + 1, 1, h->col, h->nb[3], 3, h->comm, &req[3]);
    MPI_Isend(u + w + 1, ny, MPI_DOUBLE, h->nb[0], 1, h->comm, &req[4]);
    MPI_Isend(u + (size_t)nx * w + 1, ny, MPI_DOUBLE, h->nb[1], 0, h->comm, &req[5]);
    MPI_Isend(u + w + 1, 1, h->col, h->nb[2], 3, h->comm, &req[6]);
    MPI_Isend(u + w + ny, 1, h->col, h->nb[3], 2, h->comm, &req[7]);
}

static void update_edges(const double *u, double *v, int w, int nx, int ny) {
    step(u, v, w, 1, 2, 1, ny + 1);
    if (nx > 1) step(u, v, w, nx, nx + 1, 1, ny + 1);
    step(u, v, w, 2, nx, 1, 2);
    if (ny > 1) step(u, v, w, 2, nx, ny, ny + 1);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int n = argc > 1 ? atoi(argv[1]) : 4096, steps = argc > 2 ? atoi(argv[2]) : 100;
    int size, rank, dims[2] = {0, 0}, periods[2] = {0, 0}, coords[2];
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Dims_create(size, 2, dims);
    Halo h;
    MPI_Cart_create(MPI_COMM_WORLD, 2, dims, periods, 0, &h.comm);
    MPI_Comm_rank(h.comm, &rank);
    MPI_Cart_coords(h.comm, rank, 2, coords);
    MPI_Cart_shift(h.comm, 0, 1, &h.nb[0], &h.nb[1]);
    MPI_Cart_shift(h.comm, 1, 1, &h.nb[2], &h.nb[3]);
    int nx = block_len(n, dims[0], coords[0]), ny = block_len(n, dims[1], coords[1]);
    int x0 = block_start(n, dims[0], coords[0]), y0 = block_start(n, dims[1], coords[1]);
    int w = ny + 2;
    h.nx = nx; h.ny = ny; h.w = w;
    MPI_Type_vector(nx, 1, w, MPI_DOUBLE, &h.col);
    MPI_Type_commit(&h.col);

    size_t cells = (size_t)(nx + 2) * w;
    double *u = calloc(cells, sizeof *u), *v = calloc(cells, sizeof *v);
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < ny; j++)
            u[(size_t)(i + 1) * w + j + 1] = (double)(((x0 + i) * 7 + (y0 + j) * 13) % 17) / 16.0;

    MPI_Request req[8];
    /* Blocking halo: how long an exchange takes when nothing hides it. */
    int warm = steps / 4 > 5 ? steps / 4 : 5;
    double t_halo = 0;
    for (int s = 0; s < warm; s++) {
        double t = MPI_Wtime();
        halo_begin(&h, u, req);
        MPI_Waitall(8, req, MPI_STATUSES_IGNORE);
        t_halo += MPI_Wtime() - t;
        step(u, v, w, 1, nx + 1, 1, ny + 1);
        double *x = u; u = v; v = x;
    }
    /* Overlapped steps: the timed run. */
    MPI_Barrier(h.comm);
    double t_exposed = 0, t0 = MPI_Wtime();
    for (int s = 0; s < steps; s++) {
        double t = MPI_Wtime();
        halo_begin(&h, u, req);
        t_exposed += MPI_Wtime() - t;
        step(u, v, w, 2, nx, 2, ny);
        t = MPI_Wtime();
        MPI_Waitall(8, req, MPI_STATUSES_IGNORE);
        t_exposed += MPI_Wtime() - t;
        update_edges(u, v, w, nx, ny);
        double *x = u; u = v; v = x;
    }
    double local[3] = {MPI_Wtime() - t0, t_halo / warm, t_exposed / steps}, worst[3];
    MPI_Reduce(local, worst, 3, MPI_DOUBLE, MPI_MAX, 0, h.comm);
    double sum = 0, total = 0;
    for (int i = 1; i <= nx; i++)
        for (int j = 1; j <= ny; j++) sum += u[(size_t)i * w + j];
    MPI_Reduce(&sum, &total, 1, MPI_DOUBLE, MPI_SUM, 0, h.comm);
    if (rank == 0) {
        double per = worst[0] / steps, hidden = worst[1] > 0 ? 1.0 - worst[2] / worst[1] : 0;
        printf("RESULT impl=c np=%d grid=%dx%d n=%d steps=%d s_per_step=%.6f gbs=%.2f halo_s=%.6f exposed_s=%.6f hidden=%.2f checksum=%.12e\n",
               size, dims[0], dims[1], n, steps, per, 16.0 * n * (double)n / per / 1e9, worst[1], worst[2],
               hidden < 0 ? 0 : hidden, total);
    }
    free(u); free(v);
    MPI_Type_free(&h.col);
    MPI_Comm_free(&h.comm);
    MPI_Finalize();
    return 0;
}
