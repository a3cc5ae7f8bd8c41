// Closed-form proxy on the CPU: the conditional-independence coupling
//     Q0(x1, x2, y) = P(x1, y) P(x2, y) / P(y),
// which is feasible, certified by the feasible dual point alpha = log P(y|x1),
// beta = log P(x2|y) (sum_y P(y|x1) P(x2|y) <= 1), whose objective is -H(Y|X1) - H(X2|Y).
#include <cmath>
#include <vector>

#include "fastpid/pid.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {

void proxy_cpu(const double* P, Shape shape, SolverOptions options, SolveOutputs out,
               int num_threads) {
  const int n1 = shape.n1, n2 = shape.n2, ny = shape.ny;
  const int64_t per = shape.size();
#ifdef FASTPID_WITH_OPENMP
  if (num_threads <= 0) num_threads = omp_get_max_threads();
#pragma omp parallel num_threads(num_threads)
#endif
  {
    std::vector<double> m1(int64_t(n1) * ny), m2(int64_t(n2) * ny), my(ny), mx1(n1);
#ifdef FASTPID_WITH_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t b = 0; b < shape.batch; ++b) {
      const double* p = P + b * per;
      std::fill(m1.begin(), m1.end(), 0.0);
      std::fill(m2.begin(), m2.end(), 0.0);
      std::fill(my.begin(), my.end(), 0.0);
      std::fill(mx1.begin(), mx1.end(), 0.0);
      for (int x1 = 0; x1 < n1; ++x1)
        for (int x2 = 0; x2 < n2; ++x2)
          for (int y = 0; y < ny; ++y) {
            const double v = p[(int64_t(x1) * n2 + x2) * ny + y];
            m1[int64_t(x1) * ny + y] += v;
            m2[int64_t(x2) * ny + y] += v;
          }
      for (int x1 = 0; x1 < n1; ++x1)
        for (int y = 0; y < ny; ++y) {
          my[y] += m1[int64_t(x1) * ny + y];
          mx1[x1] += m1[int64_t(x1) * ny + y];
        }
      double f = 0, dual = 0;
      double* q_out = out.coupling ? out.coupling + b * per : nullptr;
      for (int x1 = 0; x1 < n1; ++x1)
        for (int x2 = 0; x2 < n2; ++x2) {
          double mass = 0, ent = 0;
          for (int y = 0; y < ny; ++y) {
            const double q = my[y] > 0 ? m1[int64_t(x1) * ny + y] * m2[int64_t(x2) * ny + y] / my[y] : 0.0;
            mass += q;
            ent += xlogx(q);
            if (q_out) q_out[(int64_t(x1) * n2 + x2) * ny + y] = q;
          }
          f += ent - xlogx(mass);
        }
      for (int x1 = 0; x1 < n1; ++x1)
        for (int y = 0; y < ny; ++y) {
          const double v = m1[int64_t(x1) * ny + y];
          const double alpha = v > 0 ? std::log(v / mx1[x1]) : 0.0;
          dual += v * alpha;
          if (out.dual1) out.dual1[(b * n1 + x1) * ny + y] = alpha;
        }
      for (int x2 = 0; x2 < n2; ++x2)
        for (int y = 0; y < ny; ++y) {
          const double v = m2[int64_t(x2) * ny + y];
          const double beta = v > 0 ? std::log(v / my[y]) : 0.0;
          dual += v * beta;
          if (out.dual2) out.dual2[(b * n2 + x2) * ny + y] = beta;
        }
      out.value[b] = -f;
      out.bound[b] = std::max(f - dual, 0.0);
      out.converged[b] = out.bound[b] <= options.tol && std::isfinite(f);
      out.iterations[b] = 0;
    }
  }
}

}  // namespace fastpid
