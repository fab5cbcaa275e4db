// C = A B, row-major, A m x k, B k x n. Shared-memory tiles of GEMM_TILE^2; a block of
// (GEMM_TILE, GEMM_ROWS) threads, each thread computing GEMM_TILE / GEMM_ROWS rows of one column.
// Its sums run in another order than OpenBLAS's anyway, so it need not round as the CPU does:
// explicit fused multiply-adds (kept under --fmad=false), half the instructions of mul + add.
#define GEMM_TILE 32
#define GEMM_ROWS 8

extern "C" __global__ void gemm_tiled(const double* __restrict__ A, const double* __restrict__ B,
                                      double* __restrict__ C, int m, int n, int k) {
    // +1 column: the strided reads of As by one warp hit distinct banks.
    __shared__ double As[GEMM_TILE][GEMM_TILE + 1];
    __shared__ double Bs[GEMM_TILE][GEMM_TILE + 1];
    const int per = GEMM_TILE / GEMM_ROWS;
    int tx = threadIdx.x, ty = threadIdx.y;
    int col = blockIdx.x * GEMM_TILE + tx;
    int row0 = blockIdx.y * GEMM_TILE + ty;
    double acc[GEMM_TILE / GEMM_ROWS] = {0.0};
    for (int t = 0; t < k; t += GEMM_TILE) {
        for (int r = 0; r < per; r++) {
            int tr = ty + r * GEMM_ROWS, row = row0 + r * GEMM_ROWS;
            As[tr][tx] = (row < m && t + tx < k) ? A[(size_t)row * k + t + tx] : 0.0;
            Bs[tr][tx] = (t + tr < k && col < n) ? B[(size_t)(t + tr) * n + col] : 0.0;
        }
        __syncthreads();
        for (int q = 0; q < GEMM_TILE; q++) {
            double b = Bs[q][tx];
            for (int r = 0; r < per; r++) acc[r] = fma(As[ty + r * GEMM_ROWS][q], b, acc[r]);
        }
        __syncthreads();
    }
    for (int r = 0; r < per; r++) {
        int row = row0 + r * GEMM_ROWS;
        if (row < m && col < n) C[(size_t)row * n + col] = acc[r];
    }
}
