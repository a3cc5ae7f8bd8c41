// Closed-form proxy, one distribution per team: the conditional-independence coupling
//     Q0(x1, x2, y) = P(x1, y) P(x2, y) / P(y),
// which is feasible, certified by the feasible dual point alpha = log P(y|x1),
// beta = log P(x2|y) (sum_y P(y|x1) P(x2|y) <= 1); its dual objective is -H(Y|X1) - H(X2|Y).
#pragma once
#include <cmath>

#include "fastpid/team.hpp"

namespace fastpid {

struct ProxyKernel {
  // Workspace per distribution: the marginals P(x1, y), P(x2, y), P(y) and P(x1).
  static FASTPID_HD int64_t workspace_doubles(Shape s) { return (int64_t(s.n1) + s.n2 + 1) * s.ny + s.n1; }

  template <class Team>
  static FASTPID_HD void run(Team& team, const double* p, Shape s, SolverOptions opt, double* ws, DistOutputs out) {
    const int n1 = s.n1, n2 = s.n2, ny = s.ny;
    const int r0 = team.rank(), T = team.size();
    double* m1 = ws;                    // (n1, ny)
    double* m2 = m1 + int64_t(n1) * ny; // (n2, ny)
    double* my = m2 + int64_t(n2) * ny; // (ny)
    double* mx1 = my + ny;              // (n1)

    // Marginals: each rank owns whole output entries, so no two ranks write one location.
    for (int64_t r = r0; r < int64_t(n1) * ny; r += T) {
      const int x1 = int(r / ny), y = int(r % ny);
      double sum = 0;
      for (int x2 = 0; x2 < n2; ++x2) sum += p[(int64_t(x1) * n2 + x2) * ny + y];
      m1[r] = sum;
    }
    for (int64_t r = r0; r < int64_t(n2) * ny; r += T) {
      const int x2 = int(r / ny), y = int(r % ny);
      double sum = 0;
      for (int x1 = 0; x1 < n1; ++x1) sum += p[(int64_t(x1) * n2 + x2) * ny + y];
      m2[r] = sum;
    }
    team.sync();
    for (int y = r0; y < ny; y += T) {
      double sum = 0;
      for (int x1 = 0; x1 < n1; ++x1) sum += m1[int64_t(x1) * ny + y];
      my[y] = sum;
    }
    for (int x1 = r0; x1 < n1; x1 += T) {
      double sum = 0;
      for (int y = 0; y < ny; ++y) sum += m1[int64_t(x1) * ny + y];
      mx1[x1] = sum;
    }
    team.sync();

    double f = 0;  // sum over cells of sum_y Q log Q - m log m, this rank's share
    for (int64_t c = r0; c < int64_t(n1) * n2; c += T) {
      const int x1 = int(c / n2), x2 = int(c % n2);
      double mass = 0, ent = 0;
      for (int y = 0; y < ny; ++y) {
        const double q = my[y] > 0 ? m1[int64_t(x1) * ny + y] * m2[int64_t(x2) * ny + y] / my[y] : 0.0;
        mass += q;
        ent += xlogx(q);
        if (out.coupling) out.coupling[c * ny + y] = q;
      }
      f += ent - xlogx(mass);
    }
    double dual = 0;
    for (int64_t r = r0; r < int64_t(n1) * ny; r += T) {
      const double v = m1[r];
      const double alpha = v > 0 ? ::log(v / mx1[r / ny]) : 0.0;
      dual += v * alpha;
      if (out.dual1) out.dual1[r] = alpha;
    }
    for (int64_t r = r0; r < int64_t(n2) * ny; r += T) {
      const double v = m2[r];
      const double beta = v > 0 ? ::log(v / my[r % ny]) : 0.0;
      dual += v * beta;
      if (out.dual2) out.dual2[r] = beta;
    }
    f = team.sum(f);
    dual = team.sum(dual);
    if (r0 == 0) {
      const double bound = dmax(f - dual, 0.0);
      *out.value = -f;
      *out.bound = bound;
      *out.converged = bound <= opt.tol && is_finite(f);
      *out.iterations = 0;
    }
  }
};

}  // namespace fastpid
