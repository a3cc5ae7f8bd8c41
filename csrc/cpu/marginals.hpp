// The marginals of one distribution p of shape (n1, n2, ny), in one buffer reused across the
// distributions of a thread: P(x1, y), P(x2, y), P(x1, x2), P(y), P(x1), P(x2). Shared by the
// informations (informations_cpu.cpp) and the backward (grad_cpu.cpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace fastpid {

struct Marginals {
  int n1, n2, ny;
  std::vector<double> all;
  double *x1y, *x2y, *x12, *py, *px1, *px2;

  Marginals(int n1_, int n2_, int ny_)
      : n1(n1_), n2(n2_), ny(ny_), all(size_t(n1_) * ny_ + size_t(n2_) * ny_ + size_t(n1_) * n2_ + ny_ + n1_ + n2_) {
    x1y = all.data();
    x2y = x1y + int64_t(n1) * ny;
    x12 = x2y + int64_t(n2) * ny;
    py = x12 + int64_t(n1) * n2;
    px1 = py + ny;
    px2 = px1 + n1;
  }

  // Sums p into every marginal (in one pass over p, the label loop vectorised); returns the total.
  double fill(const double* p) {
    std::fill(all.begin(), all.end(), 0.0);
    for (int x1 = 0; x1 < n1; ++x1)
      for (int x2 = 0; x2 < n2; ++x2) {
        const double* row = p + (int64_t(x1) * n2 + x2) * ny;
        double* a = x1y + int64_t(x1) * ny;
        double* c = x2y + int64_t(x2) * ny;
        double cell = 0;
#pragma omp simd reduction(+ : cell)
        for (int y = 0; y < ny; ++y) {
          a[y] += row[y];
          c[y] += row[y];
          cell += row[y];
        }
        x12[int64_t(x1) * n2 + x2] = cell;
      }
    for (int x1 = 0; x1 < n1; ++x1)
      for (int y = 0; y < ny; ++y) px1[x1] += x1y[int64_t(x1) * ny + y], py[y] += x1y[int64_t(x1) * ny + y];
    for (int x2 = 0; x2 < n2; ++x2)
      for (int y = 0; y < ny; ++y) px2[x2] += x2y[int64_t(x2) * ny + y];
    double total = 0;
    for (int y = 0; y < ny; ++y) total += py[y];
    return total;
  }
};

}  // namespace fastpid
