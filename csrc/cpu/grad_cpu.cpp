// Backward of the maximal conditional entropy: by the envelope theorem, the optimal value
// max_Q H_Q(Y|X1,X2) = -max_{alpha,beta} <alpha, P(x1,y)> + <beta, P(x2,y)> has derivative
//     d value / d P(x1, x2, y) = -(alpha(x1, y) + beta(x2, y))
// at the optimal dual point. Cells where P is exactly zero get 0: the derivative along
// directions that keep zero cells at zero (the convention of every fastpid gradient).
#include "fastpid/pid.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {

void value_grad_cpu(const double* grad_value, const double* P, const double* dual1, const double* dual2,
                    Shape shape, double* grad_P, int num_threads) {
  const int n1 = shape.n1, n2 = shape.n2, ny = shape.ny;
  const int64_t per = shape.size();
#ifdef FASTPID_WITH_OPENMP
  if (num_threads <= 0) num_threads = omp_get_max_threads();
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

void value_grad_grid_cpu(const double* grad_value, const double* P, const double* dual1, const double* dual2,
                         Shape shape, double* grad_P, int blocks, int threads) {
  const int64_t stride = int64_t(blocks) * threads;
  for (int64_t t = 0; t < stride; ++t) value_grad_strided(t, stride, grad_value, P, dual1, dual2, shape, grad_P);
}

}  // namespace fastpid
