// Second-order stencils on a block with g ghost layers, row-major (last axis fastest):
// out = a*u + b*(lap(u) + f) on the interior (f = 0 unless has_f). The terms are summed in the
// order of the CPU back end (cpu/stencil.rs: along-row axis first) so both round alike.
// Threads map x to the fastest axis so that a warp reads consecutive addresses.

extern "C" __global__ void stencil_2d(const double* __restrict__ u, const double* __restrict__ f,
                                      int has_f, double* __restrict__ out, int nx, int ny, int g,
                                      double cx, double cy, double a, double b) {
    int j = g + blockIdx.x * blockDim.x + threadIdx.x;
    int i = g + blockIdx.y * blockDim.y + threadIdx.y;
    if (i >= nx - g || j >= ny - g) return;
    size_t c = (size_t)i * ny + j;
    double uc = u[c];
    double lap = cy * (u[c - 1] + u[c + 1] - 2.0 * uc);
    lap += cx * (u[c - ny] + u[c + ny] - 2.0 * uc);
    if (has_f) lap += f[c];
    out[c] = a * uc + b * lap;
}

extern "C" __global__ void stencil_3d(const double* __restrict__ u, const double* __restrict__ f,
                                      int has_f, double* __restrict__ out, int nx, int ny, int nz,
                                      int g, double cx, double cy, double cz, double a, double b) {
    int k = g + blockIdx.x * blockDim.x + threadIdx.x;
    int j = g + blockIdx.y * blockDim.y + threadIdx.y;
    int i = g + blockIdx.z * blockDim.z + threadIdx.z;
    if (i >= nx - g || j >= ny - g || k >= nz - g) return;
    size_t sy = nz, sx = (size_t)ny * nz;
    size_t c = i * sx + j * sy + k;
    double uc = u[c];
    double lap = cz * (u[c - 1] + u[c + 1] - 2.0 * uc);
    lap += cx * (u[c - sx] + u[c + sx] - 2.0 * uc);
    lap += cy * (u[c - sy] + u[c + sy] - 2.0 * uc);
    if (has_f) lap += f[c];
    out[c] = a * uc + b * lap;
}
