// The k-source union problem, max H_Q(Y | X1..Xk) over the couplings Q with every (Xi, Y)
// marginal of P (docs/design.md section 7), for a batch of distributions of shape
// (n1, ..., nk, ny), on the CPU: one distribution per OpenMP thread.
//
// The method: a log-barrier method on the dual
//     max  sum_i <alpha_i, P(xi, y)>   s.t.  g_x(alpha) = logsumexp_y sum_i alpha_i(xi, y) <= 0  (every cell x)
// with Newton's method for each centring (the Hessian is dense of order ny * sum_i ni, less the
// gauge: one alpha_i(xi*, y) per source after the first and label held at 0), a step kept
// inside the cells' constraints by backtracking, and t multiplied by kGrowth after each
// centring. (A first version, CPU only: the team/CUDA form of the bivariate solvers is to come.) Entries (x, y) with P(xi, y) = 0 for some i carry no mass in any feasible Q and are
// left out, as their alpha is minus infinity.
//
// Every centring ends with the certificate, as in the bivariate solvers: the coupling
// Q(x, y) = m(x) softmax_y(...) with the barrier's multipliers m(x) = 1 / (t (-g_x)) is rounded
// exactly onto the k marginals (per label: each marginal scaled down to at most its target in
// turn, then the product of the k deficits divided by the deficit mass to the power k - 1 added:
// the multi-marginal rounding of Lin, Ho, Cuturi and Jordan, 2019), which makes it feasible; the
// dual point is feasible throughout, and each source's alphas are raised until the tightest of
// their cells is active. The gap between -sum Q log Q(y|x) of the first and the dual value of
// the second bounds the error of the optimum: the distribution stops once it is below tol.
#include <algorithm>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "fastpid/pid.hpp"
#include "run_control.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {
namespace {

// t's factor between centrings. Measured: with 8 the centrings of a sparse 20x20x20x4 histogram
// (10,000 samples) ran into kNewtonPerCentring and the run ended 0.013 nats short; with 2 it
// converges (260 steps). Small dense inputs then take 3 to 10 times the steps of 8 and stop near
// 1e-9 to 4e-7 nats when asked for 1e-10 (the barrier's multipliers 1 / (t (-g)), from which the
// coupling is built, lose digits as t grows): a primal-dual method with the cell masses as
// variables, as the bivariate "exact", is the next step.
constexpr double kGrowth = 2.0;
constexpr double kCentred = 1e-7;        // Newton decrement^2 / 2 that ends a centring
constexpr int kNewtonPerCentring = 60;   // a cap; 5 to 15 is typical
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Problem {
  int k, ny;
  std::vector<int> n;            // n[i], i < k
  std::vector<int64_t> stride;   // of x_i in the flat cell index
  int64_t cells;
  std::vector<int> offset;       // of source i's alphas (ni * ny of them) in the full vector
  int full;                      // sum_i ni * ny
};

// Cholesky of the dense SPD matrix a (order m, row-major), in place (lower); false if not SPD.
bool cholesky(std::vector<double>& a, int m) {
  for (int j = 0; j < m; ++j) {
    double d = a[int64_t(j) * m + j];
    for (int p = 0; p < j; ++p) d -= a[int64_t(j) * m + p] * a[int64_t(j) * m + p];
    if (!(d > 0)) return false;
    d = std::sqrt(d);
    a[int64_t(j) * m + j] = d;
    for (int i = j + 1; i < m; ++i) {
      double s = a[int64_t(i) * m + j];
      const double* ri = &a[int64_t(i) * m];
      const double* rj = &a[int64_t(j) * m];
      for (int p = 0; p < j; ++p) s -= ri[p] * rj[p];
      a[int64_t(i) * m + j] = s / d;
    }
  }
  return true;
}

void cholesky_solve(const std::vector<double>& l, int m, std::vector<double>& b) {
  for (int i = 0; i < m; ++i) {
    double s = b[i];
    for (int p = 0; p < i; ++p) s -= l[int64_t(i) * m + p] * b[p];
    b[i] = s / l[int64_t(i) * m + i];
  }
  for (int i = m - 1; i >= 0; --i) {
    double s = b[i];
    for (int p = i + 1; p < m; ++p) s -= l[int64_t(p) * m + i] * b[p];
    b[i] = s / l[int64_t(i) * m + i];
  }
}

class UnionSolver {
 public:
  UnionSolver(const Problem& pr, const double* p) : pr_(pr), p_(p) {
    const int ny = pr.ny;
    marg_.assign(pr.full, 0.0);
    for (int64_t c = 0; c < pr.cells; ++c)
      for (int i = 0; i < pr.k; ++i) {
        const int xi = int((c / pr.stride[i]) % pr.n[i]);
        for (int y = 0; y < ny; ++y) marg_[pr.offset[i] + int64_t(xi) * ny + y] += p[c * ny + y];
      }
    // variables: the alphas with P(xi, y) > 0, less one per (source > 0, label) for the gauge
    index_.assign(pr.full, -1);
    int m = 0;
    for (int i = 0; i < pr.k; ++i)
      for (int y = 0; y < ny; ++y) {
        int pinned = -1;
        if (i > 0) {  // the value of xi with the most mass at y holds alpha_i(., y) at 0
          double best = 0;
          for (int xi = 0; xi < pr.n[i]; ++xi)
            if (marg_[pr.offset[i] + int64_t(xi) * ny + y] > best) best = marg_[pr.offset[i] + int64_t(xi) * ny + y], pinned = xi;
        }
        for (int xi = 0; xi < pr.n[i]; ++xi)
          if (marg_[pr.offset[i] + int64_t(xi) * ny + y] > 0 && xi != pinned) index_[pr.offset[i] + int64_t(xi) * ny + y] = m++;
      }
    m_ = m;
    // alpha: 0 where allowed (pinned ones too), -inf elsewhere; source 0 starts low enough
    // that every cell is strictly feasible
    alpha_.assign(pr.full, kNegInf);
    for (int v = 0; v < pr.full; ++v)
      if (marg_[v] > 0) alpha_[v] = 0.0;
    for (int x = 0; x < pr.n[0] * ny; ++x)
      if (marg_[pr.offset[0] + x] > 0) alpha_[pr.offset[0] + x] = -std::log(double(ny)) - 1.0;
    g_.assign(pr.cells, 0.0);
    soft_.assign(pr.cells * ny, 0.0);
  }

  // the dual objective sum_i <alpha_i, P_i> (over allowed entries)
  double dual_value(const std::vector<double>& a) const {
    double s = 0;
    for (int v = 0; v < pr_.full; ++v)
      if (marg_[v] > 0) s += a[v] * marg_[v];
    return s;
  }

  // g_x and softmax_x for every cell (the cells with no allowed label get g = -inf); with
  // `feasible_only`, false at the first cell with g >= 0 (the dual raise reads g of any point)
  bool evaluate(const std::vector<double>& a, bool feasible_only = true) {
    const int ny = pr_.ny;
    std::vector<double> z(ny);
    for (int64_t c = 0; c < pr_.cells; ++c) {
      double top = kNegInf;
      for (int y = 0; y < ny; ++y) {
        double s = 0;
        for (int i = 0; i < pr_.k && s != kNegInf; ++i) {
          const int xi = int((c / pr_.stride[i]) % pr_.n[i]);
          s += a[pr_.offset[i] + int64_t(xi) * ny + y];
        }
        z[y] = s;
        top = std::max(top, s);
      }
      if (top == kNegInf) {
        g_[c] = kNegInf;
        continue;
      }
      double sum = 0;
      for (int y = 0; y < ny; ++y) sum += (soft_[c * ny + y] = z[y] == kNegInf ? 0.0 : std::exp(z[y] - top));
      for (int y = 0; y < ny; ++y) soft_[c * ny + y] /= sum;
      g_[c] = top + std::log(sum);
      if (feasible_only && !(g_[c] < 0)) return false;
    }
    return true;
  }

  // F_t = -t D - sum log(-g) at the last evaluate()
  double barrier(double t, const std::vector<double>& a) const {
    double f = -t * dual_value(a);
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf) f -= std::log(-g_[c]);
    return f;
  }

  // One centring at t; returns the Newton steps taken.
  int centre(double t) {
    const int ny = pr_.ny, m = m_;
    std::vector<double> hess, grad(m), step(m), trial(pr_.full);
    int steps = 0;
    evaluate(alpha_);
    for (; steps < kNewtonPerCentring; ++steps) {
      hess.assign(int64_t(m) * m, 0.0);
      std::fill(grad.begin(), grad.end(), 0.0);
      for (int v = 0; v < pr_.full; ++v)
        if (index_[v] >= 0) grad[index_[v]] = -t * marg_[v];
      std::vector<int> vars(int64_t(pr_.k) * ny);
      for (int64_t c = 0; c < pr_.cells; ++c) {
        if (g_[c] == kNegInf) continue;
        const double s = -g_[c];
        const double* pi = &soft_[c * ny];
        for (int i = 0; i < pr_.k; ++i) {
          const int xi = int((c / pr_.stride[i]) % pr_.n[i]);
          for (int y = 0; y < ny; ++y) vars[i * ny + y] = index_[pr_.offset[i] + int64_t(xi) * ny + y];
        }
        // d(-log s) = grad g / s; d2 = grad g grad g^T / s^2 + Hess g / s, Hess g = diag(pi) - pi pi^T
        const double outer = 1.0 / (s * s) - 1.0 / s;
        for (int i = 0; i < pr_.k; ++i)
          for (int y = 0; y < ny; ++y) {
            const int r = vars[i * ny + y];
            if (r < 0 || pi[y] == 0) continue;
            grad[r] += pi[y] / s;
            double* row = &hess[int64_t(r) * m];
            for (int j = 0; j < pr_.k; ++j)
              for (int y2 = 0; y2 < ny; ++y2) {
                const int col = vars[j * ny + y2];
                if (col < 0) continue;
                row[col] += pi[y] * pi[y2] * outer + (y == y2 ? pi[y] / s : 0.0);
              }
          }
      }
      // Late centrings mix 1/s^2 of cells near their bound with O(1) terms: where rounding
      // makes the factorisation fail, a relative shift of the diagonal (a damped Newton step)
      // is tried, growing tenfold, before the run stops with its best certificate.
      std::vector<double> diagonal(m);
      for (int r = 0; r < m; ++r) diagonal[r] = hess[int64_t(r) * m + r];
      std::vector<double> saved = hess;
      bool factored = cholesky(hess, m);
      for (double shift = 1e-14; !factored && shift <= 1e-6; shift *= 10) {
        hess = saved;
        for (int r = 0; r < m; ++r) hess[int64_t(r) * m + r] += shift * diagonal[r] + 1e-300;
        factored = cholesky(hess, m);
      }
      if (!factored) return -1;
      for (int r = 0; r < m; ++r) step[r] = -grad[r];
      cholesky_solve(hess, m, step);
      double decrement = 0;
      for (int r = 0; r < m; ++r) decrement -= grad[r] * step[r];
      if (decrement / 2 < kCentred) break;
      // backtracking: feasible, then sufficient decrease
      const double f0 = barrier(t, alpha_);
      double length = 1.0;
      bool moved = false;
      for (int tries = 0; tries < 60; ++tries, length *= 0.5) {
        trial = alpha_;
        for (int v = 0; v < pr_.full; ++v)
          if (index_[v] >= 0) trial[v] += length * step[index_[v]];
        if (!evaluate(trial)) continue;
        if (barrier(t, trial) <= f0 - 0.25 * length * decrement) {
          alpha_.swap(trial);
          moved = true;
          break;
        }
      }
      if (!moved) {
        evaluate(alpha_);
        break;
      }
    }
    evaluate(alpha_);
    return steps;
  }

  // The certificate at t: (feasible coupling's max-entropy value, dual value after raising),
  // both in nats, value H_Q(Y|X) and upper bound -D on the maximum.
  void certify(double t, double* entropy, double* upper) {
    const int ny = pr_.ny;
    // the coupling of the barrier's multipliers
    std::vector<double> q(pr_.cells * ny, 0.0);
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf) {
        const double mass = 1.0 / (t * -g_[c]);
        for (int y = 0; y < ny; ++y) q[c * ny + y] = mass * soft_[c * ny + y];
      }
    round_onto_marginals(q);
    double f = 0;  // sum Q log Q(y|x)
    for (int64_t c = 0; c < pr_.cells; ++c) {
      double mass = 0;
      for (int y = 0; y < ny; ++y) mass += q[c * ny + y];
      if (mass <= 0) continue;
      for (int y = 0; y < ny; ++y)
        if (q[c * ny + y] > 0) f += q[c * ny + y] * std::log(q[c * ny + y] / mass);
    }
    *entropy = -f;
    // dual: raise every source's alphas at each xi by the slack of its tightest cell
    std::vector<double> a = alpha_;
    for (int i = 0; i < pr_.k; ++i) {
      evaluate(a, false);
      std::vector<double> tightest(pr_.n[i], kNegInf);
      for (int64_t c = 0; c < pr_.cells; ++c) {
        const int xi = int((c / pr_.stride[i]) % pr_.n[i]);
        tightest[xi] = std::max(tightest[xi], g_[c]);
      }
      for (int xi = 0; xi < pr_.n[i]; ++xi)
        if (tightest[xi] != kNegInf)
          for (int y = 0; y < ny; ++y) {
            double& v = a[pr_.offset[i] + int64_t(xi) * ny + y];
            if (v != kNegInf) v -= tightest[xi];
          }
    }
    *upper = -dual_value(a);
    evaluate(alpha_);
  }

  const std::vector<double>& alpha() const { return alpha_; }

 private:
  // Each label's slice onto its k marginals P(xi, y), exactly (see the file's comment).
  void round_onto_marginals(std::vector<double>& q) const {
    const int ny = pr_.ny;
    std::vector<double> have;
    for (int y = 0; y < ny; ++y) {
      std::vector<std::vector<double>> deficit(pr_.k);
      for (int i = 0; i < pr_.k; ++i) {
        have.assign(pr_.n[i], 0.0);
        for (int64_t c = 0; c < pr_.cells; ++c) have[(c / pr_.stride[i]) % pr_.n[i]] += q[c * ny + y];
        std::vector<double> scale(pr_.n[i]);
        for (int xi = 0; xi < pr_.n[i]; ++xi) {
          const double want = marg_[pr_.offset[i] + int64_t(xi) * ny + y];
          scale[xi] = have[xi] > want ? want / have[xi] : 1.0;
        }
        for (int64_t c = 0; c < pr_.cells; ++c) q[c * ny + y] *= scale[(c / pr_.stride[i]) % pr_.n[i]];
      }
      double mass = 0;
      for (int i = 0; i < pr_.k; ++i) {
        have.assign(pr_.n[i], 0.0);
        for (int64_t c = 0; c < pr_.cells; ++c) have[(c / pr_.stride[i]) % pr_.n[i]] += q[c * ny + y];
        deficit[i].resize(pr_.n[i]);
        double total = 0;
        for (int xi = 0; xi < pr_.n[i]; ++xi)
          total += (deficit[i][xi] = std::max(0.0, marg_[pr_.offset[i] + int64_t(xi) * ny + y] - have[xi]));
        if (i == 0) mass = total;
      }
      if (!(mass > 0)) continue;
      const double norm = std::pow(mass, pr_.k - 1);
      for (int64_t c = 0; c < pr_.cells; ++c) {
        double add = 1.0;
        for (int i = 0; i < pr_.k && add > 0; ++i) add *= deficit[i][(c / pr_.stride[i]) % pr_.n[i]];
        if (add > 0) q[c * ny + y] += add / norm;
      }
    }
  }

  const Problem& pr_;
  const double* p_;
  std::vector<double> marg_;   // P(xi, y) of every source, at the alphas' positions
  std::vector<int> index_;     // full position -> Newton variable (-1: fixed or excluded)
  int m_ = 0;
  std::vector<double> alpha_, g_, soft_;
};

}  // namespace

void union_cpu(const double* P, int64_t batch, const std::vector<int>& dims, double tol, int max_iter, double* value,
               double* bound, uint8_t* converged, int32_t* iterations, int num_threads) {
  Problem pr;
  pr.k = int(dims.size()) - 1;
  pr.ny = dims.back();
  pr.n.assign(dims.begin(), dims.end() - 1);
  pr.stride.assign(pr.k, 1);
  for (int i = pr.k - 2; i >= 0; --i) pr.stride[i] = pr.stride[i + 1] * pr.n[i + 1];
  pr.cells = pr.stride[0] * pr.n[0];
  pr.offset.assign(pr.k, 0);
  pr.full = 0;
  for (int i = 0; i < pr.k; ++i) pr.offset[i] = pr.full, pr.full += pr.n[i] * pr.ny;
  const int64_t per = pr.cells * pr.ny;
  StopCheck stop;
  num_threads = cpu_threads(num_threads);
#ifdef FASTPID_WITH_OPENMP
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 1)
#endif
  for (int64_t b = 0; b < batch; ++b) {
    if (stop.should_stop()) continue;
    UnionSolver solver(pr, P + b * per);
    double t = double(std::max<int64_t>(1, pr.cells));
    int steps = 0;
    double best_value = std::numeric_limits<double>::quiet_NaN(), best_bound = std::numeric_limits<double>::infinity();
    bool done = false;
    while (!done) {
      const int taken = solver.centre(t);
      if (taken < 0) break;  // the Newton matrix lost definiteness: keep the best certificate
      steps += taken + 1;
      double entropy, upper;
      solver.certify(t, &entropy, &upper);
      const double gap = std::max(0.0, upper - entropy);
#ifdef FASTPID_UNION_TRACE
      std::fprintf(stderr, "t %.3g steps %d entropy %.12f upper %.12f gap %.3g\n", t, taken, entropy, upper, gap);
#endif
      if (gap < best_bound) best_bound = gap, best_value = entropy;
      done = best_bound <= tol || steps >= max_iter || t > 1e18;
      t *= kGrowth;
    }
    value[b] = best_value;
    bound[b] = best_bound;
    converged[b] = best_bound <= tol;
    iterations[b] = steps;
  }
  stop.finish();
}

}  // namespace fastpid
