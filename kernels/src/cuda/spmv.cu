// y = A x for a CSR matrix, one thread per row (32-bit indices; the host checks they fit).
extern "C" __global__ void csr_spmv(unsigned int nrows, const unsigned int* __restrict__ indptr,
                                    const unsigned int* __restrict__ indices,
                                    const double* __restrict__ values, const double* __restrict__ x,
                                    double* __restrict__ y) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nrows) return;
    double s = 0.0;
    for (unsigned int p = indptr[i]; p < indptr[i + 1]; p++) s += values[p] * x[indices[p]];
    y[i] = s;
}
