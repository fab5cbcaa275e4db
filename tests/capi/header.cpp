// A C++ program includes rankwise.h as it is installed and calls the kernels on std::vector.
#include <cstdio>
#include <vector>

#include <rankwise.h>

int main() {
    const size_t n = 6;
    std::vector<double> u(n * n, 1.0), v(n * n, 0.0);
    u[2 * n + 3] = 2.0;
    const size_t shape[2] = {n, n};
    const double h[2] = {1.0, 1.0};
    if (rankwise_laplacian_2d(nullptr, u.data(), v.data(), shape, nullptr, 1, h) != RANKWISE_OK) {
        std::fprintf(stderr, "error: %s\n", rankwise_error_message());
        return 1;
    }
    double dot = 0.0;
    rankwise_dot(nullptr, v.size(), v.data(), v.data(), &dot);
    std::printf("lap center=%g neighbour=%g dot=%g\n", v[2 * n + 3], v[2 * n + 2], dot);
    return 0;
}
