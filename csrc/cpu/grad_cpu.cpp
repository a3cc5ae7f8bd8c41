// Backward of the maximal conditional entropy: by the envelope theorem, the optimal value
// max_Q H_Q(Y|X1,X2) = -max_{alpha,beta} <alpha, P(x1,y)> + <beta, P(x2,y)> has derivative
//     d value / d P(x1, x2, y) = -(alpha(x1, y) + beta(x2, y))
// at the optimal dual point. Cells where P is exactly zero get 0: the derivative along
// directions that keep zero cells at zero (the convention of every fastpid gradient).
#include <algorithm>
#include <vector>

#include "fastpid/pid.hpp"
#include "marginals.hpp"
#include "run_control.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {

void value_grad_cpu(const double* grad_value, const double* P, const double* dual1, const double* dual2,
                    Shape shape, double* grad_P, int num_threads) {
  const int n1 = shape.n1, n2 = shape.n2, ny = shape.ny;
  const int64_t per = shape.size();
#ifdef FASTPID_WITH_OPENMP
  num_threads = cpu_threads(num_threads);
#pragma omp parallel for num_threads(num_threads) schedule(static)
#endif
  for (int64_t b = 0; b < shape.batch; ++b) {
    const double g = grad_value[b];
    const double* a = dual1 + b * int64_t(n1) * ny;
    const double* be = dual2 + b * int64_t(n2) * ny;
    const double* p = P + b * per;
    double* out = grad_P + b * per;
    for (int x1 = 0; x1 < n1; ++x1)
      for (int x2 = 0; x2 < n2; ++x2)
        for (int y = 0; y < ny; ++y) {
          const int64_t i = (int64_t(x1) * n2 + x2) * ny + y;
          out[i] = value_grad_entry(g, p[i], a[int64_t(x1) * ny + y], be[int64_t(x2) * ny + y]);
        }
  }
}

void pid_grad_cpu(const double* grad_value, const double* grad_informations, const double* P, const double* dual1,
                  const double* dual2, Shape shape, bool normalize, double* grad_P, int num_threads) {
  const int n1 = shape.n1, n2 = shape.n2, ny = shape.ny;
  const int64_t per = shape.size();
  num_threads = cpu_threads(num_threads);
  const auto log_of = [](double q) { return q > 0 ? simd_log(q) : 0.0; };
#ifdef FASTPID_WITH_OPENMP
#pragma omp parallel num_threads(num_threads)
#endif
  {
    // log P(x1, y), log P(x2, y), log P(x1, x2), log P(y), log P(x1), log P(x2) of p = P / total.
    Marginals marginals(n1, n2, ny);
    std::vector<double>& m = marginals.all;
    const double *x1y = marginals.x1y, *x2y = marginals.x2y, *x12 = marginals.x12, *py = marginals.py,
                 *px1 = marginals.px1, *px2 = marginals.px2;
#ifdef FASTPID_WITH_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t b = 0; b < shape.batch; ++b) {
      const double* p = P + b * per;
      double* out = grad_P + b * per;
      const double total = marginals.fill(p);
      const double inv = 1.0 / total, log_total = simd_log(total);
      for (double& v : m) v = v > 0 ? simd_log(v) - log_total : 0.0;  // logs of the normalised marginals
      const double gv = grad_value[b];
      const double* gi = grad_informations + 4 * b;  // I(X1;Y), I(X2;Y), I(X1,X2;Y), H(Y)
      const double* a = dual1 + b * int64_t(n1) * ny;
      const double* be = dual2 + b * int64_t(n2) * ny;
      double weighted = 0;  // sum_e p_e d/dp_e, for the division by the total when normalize
      for (int x1 = 0; x1 < n1; ++x1)
        for (int x2 = 0; x2 < n2; ++x2)
          for (int y = 0; y < ny; ++y) {
            const int64_t i = (int64_t(x1) * n2 + x2) * ny + y;
            if (!(p[i] > 0)) {
              out[i] = 0.0;
              continue;
            }
            const double ly = py[y];
            const double d = value_grad_entry(gv, p[i], a[int64_t(x1) * ny + y], be[int64_t(x2) * ny + y]) +
                             gi[0] * (x1y[int64_t(x1) * ny + y] - px1[x1] - ly - 1.0) +
                             gi[1] * (x2y[int64_t(x2) * ny + y] - px2[x2] - ly - 1.0) +
                             gi[2] * (log_of(p[i]) - log_total - x12[int64_t(x1) * n2 + x2] - ly - 1.0) -
                             gi[3] * (ly + 1.0);
            out[i] = d;
            weighted += d * p[i] * inv;
          }
      const double shift = normalize ? weighted : 0.0;
      for (int64_t i = 0; i < per; ++i) out[i] = (out[i] - shift) * inv;
    }
  }
}

void value_grad_grid_cpu(const double* grad_value, const double* P, const double* dual1, const double* dual2,
                         Shape shape, double* grad_P, int blocks, int threads) {
  const int64_t stride = int64_t(blocks) * threads;
  for (int64_t t = 0; t < stride; ++t) value_grad_strided(t, stride, grad_value, P, dual1, dual2, shape, grad_P);
}

}  // namespace fastpid
