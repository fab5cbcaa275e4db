/* The cost of calling the 2-D heat kernel through the C API: rankwise_heat_step_2d on N x N
 * interiors (N = 64 and 1024, one ghost layer), called from C. scripts/bench-capi.sh runs it beside
 * capi/examples/stencil_bench.rs, which times the same kernel called from Rust.
 * Prints: RESULT lang=c n=N ns_per_call=T (best of ROUNDS rounds of at least 0.2 s each). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <rankwise.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    const size_t sizes[2] = {64, 1024};
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s] + 2, shape[2] = {n, n};
        double *u = malloc(n * n * sizeof *u), *v = malloc(n * n * sizeof *v);
        for (size_t i = 0; i < n * n; i++)
            u[i] = v[i] = (double)(i % 97) / 97.0;
        const double h[2] = {1.0 / sizes[s], 1.0 / sizes[s]};
        const double nu_dt = 0.2 * h[0] * h[0]; /* stable: no NaN or infinity in the timing */
        /* Calls per timing: about 0.2 s at 1 ns per cell. */
        long calls = (long)(2e8 / (double)(sizes[s] * sizes[s])) + 1;
        double best = 1e30;
        for (int r = 0; r < rounds; r++) {
            double t0 = now();
            for (long c = 0; c < calls; c++) {
                if (rankwise_heat_step_2d(NULL, u, v, shape, NULL, 1, h, nu_dt) != RANKWISE_OK) {
                    fprintf(stderr, "error: %s\n", rankwise_error_message());
                    return 1;
                }
                double *t = u; u = v; v = t;
            }
            double per = (now() - t0) / calls * 1e9;
            if (per < best)
                best = per;
        }
        printf("RESULT lang=c n=%zu ns_per_call=%.1f check=%.17g\n", sizes[s], best, u[n + 1]);
        free(u);
        free(v);
    }
    return 0;
}
