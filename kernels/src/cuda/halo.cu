// Halo faces of a block (row-major, padded to 3-D as n0 x n1 x n2): copy the slab of shape
// s0 x s1 x s2 at offset (o0, o1, o2) into a contiguous buffer (pack) or back (unpack), so
// that one contiguous transfer moves a whole face whatever its axis.
__device__ size_t slab_index(size_t idx, int n1, int n2, int s1, int s2, int o0, int o1, int o2) {
    size_t k = idx % s2, j = (idx / s2) % s1, i = idx / ((size_t)s1 * s2);
    return ((i + o0) * n1 + (j + o1)) * n2 + (k + o2);
}

extern "C" __global__ void pack_slab(const double* __restrict__ block, double* __restrict__ buf,
                                     unsigned long long len, int n1, int n2, int s1, int s2,
                                     int o0, int o1, int o2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < len; i += (size_t)gridDim.x * blockDim.x)
        buf[i] = block[slab_index(i, n1, n2, s1, s2, o0, o1, o2)];
}

extern "C" __global__ void unpack_slab(double* __restrict__ block, const double* __restrict__ buf,
                                       unsigned long long len, int n1, int n2, int s1, int s2,
                                       int o0, int o1, int o2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < len; i += (size_t)gridDim.x * blockDim.x)
        block[slab_index(i, n1, n2, s1, s2, o0, o1, o2)] = buf[i];
}
