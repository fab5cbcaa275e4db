// Vector operations with grid-stride loops (any n with a bounded grid).
// The reductions assume blockDim.x == REDUCE_THREADS (a power of two; the host launches so).
#define REDUCE_THREADS 256

extern "C" __global__ void axpby(unsigned long long n, double a, const double* __restrict__ x,
                                 double b, double* __restrict__ y) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = a * x[i] + b * y[i];
}

extern "C" __global__ void scale(unsigned long long n, double a, double* __restrict__ x) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] *= a;
}

extern "C" __global__ void fill(unsigned long long n, double a, double* __restrict__ x) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = a;
}

// Sums a block's values in shared memory; thread 0 gets the total.
__device__ double block_sum(double v) {
    __shared__ double s[REDUCE_THREADS];
    s[threadIdx.x] = v;
    __syncthreads();
    for (int w = REDUCE_THREADS / 2; w > 0; w >>= 1) {
        if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    return s[0];
}

// partial[blockIdx.x] = this block's share of x . y; a fixed grid keeps the sum deterministic.
extern "C" __global__ void dot_partial(unsigned long long n, const double* __restrict__ x,
                                       const double* __restrict__ y, double* __restrict__ partial) {
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc += x[i] * y[i];
    double total = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// One block: partial[m] = sum of partial[0..m].
extern "C" __global__ void sum_partials(unsigned int m, double* partial) {
    double acc = 0.0;
    for (unsigned int i = threadIdx.x; i < m; i += blockDim.x) acc += partial[i];
    double total = block_sum(acc);
    if (threadIdx.x == 0) partial[m] = total;
}
