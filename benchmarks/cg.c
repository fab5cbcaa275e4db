/* The hand-written C + MPI reference for the poisson example's time per CG iteration: the same
 * 2-D problem (-lap u = f on the unit square, n x n cells, cell-centred, Dirichlet u = 0 through
 * the ghost cell = -inside, f from u = x(1-x) y(1-y)), matrix-free, rows split over the ranks in
 * the same slabs, a fixed number of iterations. Each iteration is three fused passes, as a
 * careful C programmer writes them:
 *   1. q = A p (5-point stencil; halo rows exchanged, overlapped with the inner rows) and p.q
 *   2. x += alpha p, r -= alpha q and r.r
 *   3. p = r + beta p
 * with one MPI_Allreduce after passes 1 and 2. Built and run by scripts/bench-poisson.sh.
 *
 *   mpirun -np P cg-c N ITERATIONS
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>

/* CPU time of this process (leaves out waiting for a core on a loaded machine), as ours reports. */
static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int block_start(int n, int p, int i) { int q = n / p, r = n % p; return i * q + (i < r ? i : r); }
static int block_len(int n, int p, int i) { return n / p + (i < n % p); }
static double bubble(int k, double h) { double x = (k + 0.5) * h; return x * (1.0 - x); }

/* Pass 1 on local rows [r0, r1) (1-based, row i at p + i*w): q = A p, returns the rows' p.q. */
static double apply(const double *restrict p, double *restrict q, int w, int n, int r0, int r1, double c) {
    double pq = 0;
    for (int i = r0; i < r1; i++) {
        const double *up = p + (size_t)(i - 1) * w, *mid = p + (size_t)i * w, *dn = p + (size_t)(i + 1) * w;
        double *out = q + (size_t)i * w;
        for (int j = 1; j <= n; j++) {
            double a = c * (4.0 * mid[j] - up[j] - dn[j] - mid[j - 1] - mid[j + 1]);
            out[j] = a;
            pq += mid[j] * a;
        }
    }
    return pq;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int n = argc > 1 ? atoi(argv[1]) : 1024, iters = argc > 2 ? atoi(argv[2]) : 100;
    if (n < 2 || iters < 1) {
        fprintf(stderr, "error: usage: cg-c N ITERATIONS (N >= 2, ITERATIONS >= 1)\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int size, rank;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int nx = block_len(n, size, rank), x0 = block_start(n, size, rank), w = n + 2;
    int above = rank > 0 ? rank - 1 : MPI_PROC_NULL, below = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    size_t cells = (size_t)(nx + 2) * w;
    double *x = calloc(cells, sizeof *x), *r = calloc(cells, sizeof *r), *p = calloc(cells, sizeof *p),
           *q = calloc(cells, sizeof *q);
    double h = 1.0 / n, c = 1.0 / (h * h);
    /* x = 0, so r = f; p = r. */
    double rr_local = 0;
    for (int i = 1; i <= nx; i++)
        for (int j = 1; j <= n; j++) {
            size_t k = (size_t)i * w + j;
            r[k] = p[k] = 2.0 * bubble(j - 1, h) + 2.0 * bubble(x0 + i - 1, h);
            rr_local += r[k] * r[k];
        }
    double rr, rr0;
    MPI_Allreduce(&rr_local, &rr, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    rr0 = rr;

    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime(), c0 = cpu_seconds();
    for (int it = 0; it < iters; it++) {
        /* Dirichlet ghosts at the domain's edges: ghost = -inside. */
        for (int i = 1; i <= nx; i++) {
            p[(size_t)i * w] = -p[(size_t)i * w + 1];
            p[(size_t)i * w + n + 1] = -p[(size_t)i * w + n];
        }
        if (above == MPI_PROC_NULL)
            for (int j = 1; j <= n; j++) p[j] = -p[w + j];
        if (below == MPI_PROC_NULL)
            for (int j = 1; j <= n; j++) p[(size_t)(nx + 1) * w + j] = -p[(size_t)nx * w + j];
        MPI_Request req[4];
        MPI_Irecv(p + 1, n, MPI_DOUBLE, above, 0, MPI_COMM_WORLD, &req[0]);
        MPI_Irecv(p + (size_t)(nx + 1) * w + 1, n, MPI_DOUBLE, below, 1, MPI_COMM_WORLD, &req[1]);
        MPI_Isend(p + w + 1, n, MPI_DOUBLE, above, 1, MPI_COMM_WORLD, &req[2]);
        MPI_Isend(p + (size_t)nx * w + 1, n, MPI_DOUBLE, below, 0, MPI_COMM_WORLD, &req[3]);
        /* 1. q = A p and p.q: inner rows while the halo travels, then the first and last. */
        double pq_local = apply(p, q, w, n, 2, nx, c), pq;
        MPI_Waitall(4, req, MPI_STATUSES_IGNORE);
        pq_local += apply(p, q, w, n, 1, nx < 1 ? 1 : 2, c);
        if (nx > 1) pq_local += apply(p, q, w, n, nx, nx + 1, c);
        MPI_Allreduce(&pq_local, &pq, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        double alpha = rr / pq, rr_new;
        /* 2. x += alpha p, r -= alpha q, r.r */
        rr_local = 0;
        for (int i = 1; i <= nx; i++) {
            double *xi = x + (size_t)i * w, *ri = r + (size_t)i * w;
            const double *pi = p + (size_t)i * w, *qi = q + (size_t)i * w;
            for (int j = 1; j <= n; j++) {
                xi[j] += alpha * pi[j];
                ri[j] -= alpha * qi[j];
                rr_local += ri[j] * ri[j];
            }
        }
        MPI_Allreduce(&rr_local, &rr_new, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        double beta = rr_new / rr;
        rr = rr_new;
        /* 3. p = r + beta p */
        for (int i = 1; i <= nx; i++) {
            double *pi = p + (size_t)i * w;
            const double *ri = r + (size_t)i * w;
            for (int j = 1; j <= n; j++) pi[j] = ri[j] + beta * pi[j];
        }
    }
    double t = MPI_Wtime() - t0, cpu = cpu_seconds() - c0, t_max, cpu_max;
    MPI_Reduce(&t, &t_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&cpu, &cpu_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("RESULT impl=c np=%d n=%d iterations=%d residual=%.6e s_per_iter=%.6e cpu_per_iter=%.6e\n", size, n, iters,
               rr0 > 0 ? sqrt(rr / rr0) : 0.0, t_max / iters, cpu_max / iters);
    free(x); free(r); free(p); free(q);
    MPI_Finalize();
    return 0;
}
