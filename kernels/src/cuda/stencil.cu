// Second-order stencils on a row-major block (last axis fastest): out = a*u + b*(lap(u) + f) on
// the box of cells [i0, i1) x [j0, j1) (x [k0, k1)), every one of them at least one cell in from
// the block's edges (f = 0 unless has_f). The whole interior of a block with g ghost layers is
// the box [g, n - g) on every axis; a split-phase step updates its inner box and its shell apart.
// The terms are summed in the order of the CPU back end (cpu/stencil.rs: along-row axis first)
// so both round alike. Threads map x to the fastest axis so that a warp reads consecutive
// addresses.

extern "C" __global__ void stencil_2d(const double* __restrict__ u, const double* __restrict__ f,
                                      int has_f, double* __restrict__ out, int ny,
                                      int i0, int i1, int j0, int j1,
                                      double cx, double cy, double a, double b) {
    int j = j0 + blockIdx.x * blockDim.x + threadIdx.x;
    int i = i0 + blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= i1 || j >= j1) return;
    size_t c = (size_t)i * ny + j;
    double uc = u[c];
    double lap = cy * (u[c - 1] + u[c + 1] - 2.0 * uc);
    lap += cx * (u[c - ny] + u[c + ny] - 2.0 * uc);
    if (has_f) lap += f[c];
    out[c] = a * uc + b * lap;
}

extern "C" __global__ void stencil_3d(const double* __restrict__ u, const double* __restrict__ f,
                                      int has_f, double* __restrict__ out, int ny, int nz,
                                      int i0, int i1, int j0, int j1, int k0, int k1,
                                      double cx, double cy, double cz, double a, double b) {
    int k = k0 + blockIdx.x * blockDim.x + threadIdx.x;
    int j = j0 + blockIdx.y * blockDim.y + threadIdx.y;
    int i = i0 + blockIdx.z * blockDim.z + threadIdx.z;
    if (i >= i1 || j >= j1 || k >= k1) return;
    size_t sy = nz, sx = (size_t)ny * nz;
    size_t c = i * sx + j * sy + k;
    double uc = u[c];
    double lap = cz * (u[c - 1] + u[c + 1] - 2.0 * uc);
    lap += cx * (u[c - sx] + u[c + sx] - 2.0 * uc);
    lap += cy * (u[c - sy] + u[c + sy] - 2.0 * uc);
    if (has_f) lap += f[c];
    out[c] = a * uc + b * lap;
}
