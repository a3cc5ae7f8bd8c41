// The k-source union problem, max H_Q(Y | X1..Xk) over the couplings Q with every (Xi, Y)
// marginal of P (docs/design.md section 7), for a batch of distributions of shape
// (n1, ..., nk, ny), on the CPU: one distribution per OpenMP thread. (CPU only: the team/CUDA
// form of the bivariate solvers is still to come.)
//
// The method: a primal-dual interior-point method, as the bivariate "exact" (exact.hpp) is for
// k = 2. The dual
//     max  -sum_i <alpha_i, P(xi, y)>   s.t.  g_x(alpha) = logsumexp_y sum_i alpha_i(xi, y) <= 0  (every cell x)
// has the cell masses m_x as its multipliers, Q(x, y) = m_x softmax_y(...), and the KKT system
//     sum_x m_x E_x pi_x = P's marginals,   m_x s_x = mu,   s_x = -g_x > 0
// (E_x places a label's weight on the k alphas of cell x). Eliminating the masses leaves a
// dense system in the alphas of order ny * sum_i ni, less the gauge (one alpha_i(xi*, y) per
// source after the first and label held at 0; the marginal equations it drops are implied by
// the others):
//     sum_x E_x Z_x E_x^T dalpha = P - sum_x E_x pi_x (sigma mu - corr_x) / s_x,
//     Z_x = m_x diag(pi_x) + (m_x / s_x - m_x) pi_x pi_x^T,
// solved by Cholesky for Mehrotra's predictor and corrector. The alphas move by the longest
// step that keeps every cell's constraint strictly satisfied (by backtracking on the exact g),
// the masses by the fraction-to-boundary rule. Entries (x, y) with P(xi, y) = 0 for some i carry
// no mass in any feasible Q and are left out, as their alpha is minus infinity.
//
// The start is the conditionally independent coupling Q(x, y) = prod_i P(xi, y) / P(y)^(k-1),
// which meets every marginal: the alphas are its log-conditionals, lowered per value of the
// first source until each cell's constraint holds with a slack of at least 1.
//
// Every iterate is certified, as in the bivariate solvers: the coupling m pi is rounded exactly
// onto the k marginals (per label: each marginal scaled down to at most its target in turn,
// then the product of the k deficits divided by the deficit mass to the power k - 1 added: the
// multi-marginal rounding of Lin, Ho, Cuturi and Jordan, 2019), which makes it feasible; the
// dual point is feasible throughout, and each source's alphas are raised until the tightest of
// their cells is active. The gap between -sum Q log Q(y|x) of the first and the dual value of
// the second bounds the error of the optimum: the distribution stops once it is below tol.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "dense_cpu.hpp"
#include "fastpid/pid.hpp"
#include "run_control.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kBoundary = 0.99;   // fraction-to-boundary of the masses' and slacks' steps
constexpr double kStartSlack = 1.0;  // the start's smallest cell slack
constexpr double kMaxDualMove = 2.0;  // nats per iteration, for any alpha (see step)
// Centring targets stay above kMuFloor * tol / cells: with deterministic targets the dual's
// supremum is approached only as some alphas fall without bound, a few nats per iteration,
// while Mehrotra's sigma would take mu down 100-fold per iteration; the Newton matrix (m / s
// terms) then loses every digit before the alphas get there (traced on Y = min(X1, X2, X3):
// mu 1e-24, marginal residuals growing from 1e-5 to 0.2, 200 iterations 1.8e-7 nats short).
constexpr double kMuFloor = 1e-3;
constexpr double kRecentreStep = 1e-1;  // steps below this recentre the cell masses (see step)
constexpr int kRecentreMax = 3;         // at most this many times per distribution
constexpr double kCertifyWithin = 10.0;  // see run
constexpr int kCertifyEvery = 4;         // see run

struct Problem {
  int k, ny;
  std::vector<int> n;            // n[i], i < k
  std::vector<int64_t> stride;   // of x_i in the flat cell index
  int64_t cells;
  std::vector<int> offset;       // of source i's alphas (ni * ny of them) in the full vector
  int full;                      // sum_i ni * ny
};

// One block of the Newton matrix's assembly: the cells' Z_x summed per pair of values (xi, xj)
// of sources i <= j (per value xi where i == j), ny x ny each, from `offset` in blocks_.
struct PairBlock {
  int i, j;
  int stride;      // values of xj per value of xi (1 where i == j)
  int64_t offset;  // of its first block
};

class UnionSolver {
 public:
  UnionSolver(const Problem& pr, const double* p) : pr_(pr), k_(pr.k), ny_(pr.ny) {
    const int ny = ny_;
    marg_.assign(pr.full, 0.0);
    pos_.resize(pr.cells * k_);
    value_.resize(pr.cells * k_);
    for (int64_t c = 0; c < pr.cells; ++c)
      for (int i = 0; i < k_; ++i) {
        const int xi = int((c / pr.stride[i]) % pr.n[i]);
        value_[c * k_ + i] = xi;
        pos_[c * k_ + i] = pr.offset[i] + xi * ny;
        for (int y = 0; y < ny; ++y) marg_[pos_[c * k_ + i] + y] += p[c * ny + y];
      }
    py_.assign(ny, 0.0);
    for (int x = 0; x < pr.n[0]; ++x)
      for (int y = 0; y < ny; ++y) py_[y] += marg_[x * ny + y];
    // variables: the alphas with P(xi, y) > 0, less one per (source > 0, label) for the gauge
    index_.assign(pr.full, -1);
    pinned_.assign(int64_t(k_) * ny, -1);
    int m = 0;
    for (int i = 0; i < k_; ++i)
      for (int y = 0; y < ny; ++y) {
        int pinned = -1;
        if (i > 0) {  // the value of xi with the most mass at y holds alpha_i(., y) at 0
          double best = 0;
          for (int xi = 0; xi < pr.n[i]; ++xi)
            if (marg_[pr.offset[i] + xi * ny + y] > best) best = marg_[pr.offset[i] + xi * ny + y], pinned = xi;
        }
        pinned_[i * ny + y] = pinned;
        for (int xi = 0; xi < pr.n[i]; ++xi)
          if (marg_[pr.offset[i] + xi * ny + y] > 0 && xi != pinned) index_[pr.offset[i] + xi * ny + y] = m++;
      }
    m_ = m;
    // the pair blocks (i <= j) of the Newton matrix's assembly (see factorise)
    blocks_size_ = 0;
    for (int i = 0; i < k_; ++i)
      for (int j = i; j < k_; ++j) {
        const int stride = i == j ? 1 : pr.n[j];
        pair_blocks_.push_back({i, j, stride, blocks_size_});
        blocks_size_ += int64_t(pr.n[i]) * stride * ny * ny;
      }
    z_.resize(int64_t(ny) * ny);
    g_.assign(pr.cells, kNegInf);
    g_work_.assign(pr.cells, kNegInf);
    m_work_.assign(pr.cells, 0.0);
    soft_.assign(pr.cells * ny, 0.0);
    start();
  }

  int order() const { return m_; }

  // Iterates until the certified gap is below tol or max_iter iterations; returns the best
  // certificate (value, bound, in nats), the iterations and the raised dual point.
  void run(double tol, int max_iter, double* value, double* bound, int* iterations, double* dual) {
    int64_t active = 0;
    for (int64_t c = 0; c < pr_.cells; ++c) active += g_[c] != kNegInf;
    mu_floor_ = active ? kMuFloor * tol / double(active) : 0.0;
    double best_value = std::numeric_limits<double>::quiet_NaN(), best_bound = std::numeric_limits<double>::infinity();
    std::vector<double> best_dual;
    double last_gap = std::numeric_limits<double>::infinity(), last_mu = 0;
    int last_it = 0;
    const auto certified = [&](int it) {
      double entropy, upper;
      certify(&entropy, &upper);
      const double gap = std::max(0.0, upper - entropy);
#ifdef FASTPID_UNION_TRACE
      std::fprintf(stderr, "it %d mu %.3g entropy %.14f upper %.14f gap %.3g\n", it, mu(), entropy, upper, gap);
#endif
      if (gap < best_bound) {
        best_bound = gap, best_value = entropy;
        if (dual) best_dual = raised_;
      }
      last_gap = gap, last_mu = mu();
    };
    int it = 0;
    for (;; ++it) {
      // The certificate costs a logarithm per entry and k passes of rounding: skipped while the
      // gap predicted from the last one (scaled by the fall of mu since) is above
      // kCertifyWithin tol, as the bivariate exact does; always at the start and the end, and
      // once mu stops falling (at its floor the prediction never reaches tol: 13 of 560
      // FAMILIES3 draws ran to the cap with their gap 1e-13 at tol 1e-10, before) or
      // kCertifyEvery iterations after the last.
      const double now = mu();
      const bool due = it == 0 || it >= max_iter || it - last_it >= kCertifyEvery || now > 0.5 * last_mu ||
                       !(last_gap * now / last_mu > kCertifyWithin * tol);
      if (due) certified(it), last_it = it;
      if (best_bound <= tol || it >= max_iter) break;
      step();
    }
    *value = best_value;
    *bound = best_bound;
    *iterations = it;
    if (dual)
      for (int v = 0; v < pr_.full; ++v) dual[v] = best_dual.empty() ? raised_[v] : best_dual[v];
  }

 private:
  // g_x and softmax_x of every cell at a (cells with no allowed label get g = -inf), into g_
  // and soft_. In passes over all the cells, so that the exps are one long vectorised loop
  // (per cell, a loop of ny is too short for the vector units when ny is small).
  void evaluate(const std::vector<double>& a) {
    const int ny = ny_;
    const int64_t entries = pr_.cells * ny;
    double* soft = soft_.data();
    for (int64_t c = 0; c < pr_.cells; ++c) {  // z_x(y) - max_y z_x(y), and the max in g
      const int* pc = &pos_[c * k_];
      double* sc = soft + c * ny;
      double top = kNegInf;
      for (int y = 0; y < ny; ++y) {
        double z = 0;
        for (int i = 0; i < k_; ++i) z += a[pc[i] + y];
        sc[y] = z;  // -inf where an entry is left out
        top = std::max(top, z);
      }
      g_[c] = top;
      if (top == kNegInf) continue;
      for (int y = 0; y < ny; ++y) sc[y] -= top;
    }
#pragma omp simd
    for (int64_t e = 0; e < entries; ++e) soft[e] = simd_exp(soft[e]);  // 0 where -inf
    for (int64_t c = 0; c < pr_.cells; ++c) {
      double* sc = soft + c * ny;
      if (g_[c] == kNegInf) {
        for (int y = 0; y < ny; ++y) sc[y] = 0.0;
        continue;
      }
      double sum = 0;
      for (int y = 0; y < ny; ++y) sum += sc[y];
      const double inv = 1.0 / sum;
      for (int y = 0; y < ny; ++y) sc[y] *= inv;
      g_[c] += simd_log(sum);
    }
  }

  double mu() const {
    double total = 0;
    int64_t active = 0;
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf) total += m_cell_[c] * s_cell_[c], ++active;
    return active ? total / double(active) : 0.0;
  }

  // The conditionally independent coupling and its log-conditionals (see the file's comment).
  void start() {
    const int ny = ny_;
    alpha_.assign(pr_.full, kNegInf);
    for (int i = 0; i < k_; ++i)
      for (int x = 0; x < pr_.n[i]; ++x)
        for (int y = 0; y < ny; ++y) {
          const int v = pr_.offset[i] + x * ny + y;
          if (marg_[v] > 0) alpha_[v] = std::log(marg_[v]) - (i == 0 ? (k_ - 1) * std::log(py_[y]) : 0.0);
        }
    // the gauge: source i > 0's alphas at label y shifted so that the pinned one is 0, source
    // 0's the other way, which leaves every cell's sum unchanged
    for (int i = 1; i < k_; ++i)
      for (int y = 0; y < ny; ++y) {
        const int pinned = pinned_[i * ny + y];
        if (pinned < 0) continue;
        const double shift = alpha_[pr_.offset[i] + pinned * ny + y];
        for (int x = 0; x < pr_.n[i]; ++x)
          if (alpha_[pr_.offset[i] + x * ny + y] != kNegInf) alpha_[pr_.offset[i] + x * ny + y] -= shift;
        for (int x = 0; x < pr_.n[0]; ++x)
          if (alpha_[x * ny + y] != kNegInf) alpha_[x * ny + y] += shift;
      }
    // here g_x = log of the coupling's cell mass; lower source 0's alphas per value until
    // every cell's slack is at least kStartSlack
    evaluate(alpha_);
    m_cell_.assign(pr_.cells, 0.0);
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf) m_cell_[c] = std::exp(g_[c]);
    raise_to_slack(alpha_, g_, 1, -kStartSlack);
    evaluate(alpha_);
    s_cell_.assign(pr_.cells, 0.0);
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf) s_cell_[c] = -g_[c];
  }

  // The alphas of each of the first `sources` sources, value by value, moved so that the
  // tightest cell of that value has g = `slack`, in turn; g holds the cells' g at a and is
  // kept so (moving alpha_i(xi, .) by d moves g of every cell with that xi by d: no exp is
  // needed). With slack 0 and every source, the raise of the certificate: the point stays
  // feasible and its dual value only rises.
  void raise_to_slack(std::vector<double>& a, std::vector<double>& g, int sources, double slack) {
    const int ny = ny_;
    for (int i = 0; i < sources; ++i) {
      tightest_.assign(pr_.n[i], kNegInf);
      for (int64_t c = 0; c < pr_.cells; ++c) {
        double& t = tightest_[value_[c * k_ + i]];
        t = std::max(t, g[c]);
      }
      for (int xi = 0; xi < pr_.n[i]; ++xi) {
        if (tightest_[xi] == kNegInf) continue;
        tightest_[xi] -= slack;  // the move down
        for (int y = 0; y < ny; ++y) {
          double& v = a[pr_.offset[i] + xi * ny + y];
          if (v != kNegInf) v -= tightest_[xi];
        }
      }
      for (int64_t c = 0; c < pr_.cells; ++c)
        if (g[c] != kNegInf) g[c] -= tightest_[value_[c * k_ + i]];
    }
  }

  // The certificate at the current point: -sum Q log Q(y|x) of the rounded coupling and the
  // raised dual value, in nats.
  void certify(double* entropy, double* upper) {
    const int ny = ny_;
    q_.assign(pr_.cells * ny, 0.0);
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf)
        for (int y = 0; y < ny; ++y) q_[c * ny + y] = m_cell_[c] * soft_[c * ny + y];
    round_onto_marginals(q_);
    // sum Q log Q(y|x) = sum Q log Q - sum_x m_x log m_x, each a long vectorised loop
    const int64_t entries = pr_.cells * ny;
    const double* q = q_.data();
    double f = 0;
#pragma omp simd reduction(+ : f)
    for (int64_t e = 0; e < entries; ++e) f += q[e] > 0 ? q[e] * simd_log(q[e]) : 0.0;
    for (int64_t c = 0; c < pr_.cells; ++c) {
      double mass = 0;
      for (int y = 0; y < ny; ++y) mass += q[c * ny + y];
      m_work_[c] = mass;
    }
    const double* mass = m_work_.data();
    double cells = 0;
#pragma omp simd reduction(+ : cells)
    for (int64_t c = 0; c < pr_.cells; ++c) cells += mass[c] > 0 ? mass[c] * simd_log(mass[c]) : 0.0;
    *entropy = cells - f;
    raised_ = alpha_;
    g_work_ = g_;
    raise_to_slack(raised_, g_work_, k_, 0.0);
    double d = 0;
    for (int v = 0; v < pr_.full; ++v)
      if (marg_[v] > 0) d += raised_[v] * marg_[v];
    *upper = -d;
  }

  // Each label's slice onto its k marginals P(xi, y), exactly (see the file's comment); every
  // pass goes over the cells in storage order, all labels at once.
  void round_onto_marginals(std::vector<double>& q) {
    const int ny = ny_;
    const auto marginal = [&](int i) {  // have_ = source i's marginal of q, (xi, y)
      have_.assign(int64_t(pr_.n[i]) * ny, 0.0);
      for (int64_t c = 0; c < pr_.cells; ++c) {
        double* h = &have_[int64_t(value_[c * k_ + i]) * ny];
        const double* qc = &q[c * ny];
        for (int y = 0; y < ny; ++y) h[y] += qc[y];
      }
    };
    for (int i = 0; i < k_; ++i) {  // scale each marginal down to at most its target, in turn
      marginal(i);
      const double* want = &marg_[pr_.offset[i]];
      for (int v = 0; v < pr_.n[i] * ny; ++v) have_[v] = have_[v] > want[v] ? want[v] / have_[v] : 1.0;
      for (int64_t c = 0; c < pr_.cells; ++c) {
        const double* scale = &have_[int64_t(value_[c * k_ + i]) * ny];
        double* qc = &q[c * ny];
        for (int y = 0; y < ny; ++y) qc[y] *= scale[y];
      }
    }
    deficit_.resize(int64_t(k_) * pr_.full);
    for (int i = 0; i < k_; ++i) {  // what each marginal lacks, (xi, y)
      marginal(i);
      const double* want = &marg_[pr_.offset[i]];
      for (int v = 0; v < pr_.n[i] * ny; ++v) deficit_[pr_.offset[i] + v] = std::max(0.0, want[v] - have_[v]);
    }
    norm_.assign(ny, 0.0);  // per label: the deficit mass (source 0's) to the power k - 1
    for (int x = 0; x < pr_.n[0]; ++x)
      for (int y = 0; y < ny; ++y) norm_[y] += deficit_[x * ny + y];
    for (int y = 0; y < ny; ++y) norm_[y] = norm_[y] > 0 ? std::pow(norm_[y], k_ - 1) : 0.0;
    for (int64_t c = 0; c < pr_.cells; ++c) {
      const int* pc = &pos_[c * k_];
      double* qc = &q[c * ny];
      for (int y = 0; y < ny; ++y) {
        if (!(norm_[y] > 0)) continue;
        double add = 1.0;
        for (int i = 0; i < k_ && add > 0; ++i) add *= deficit_[pc[i] + y];
        if (add > 0) qc[y] += add / norm_[y];
      }
    }
  }

  // The Newton matrix sum_x E_x Z_x E_x^T at the current point, factorised.
  //
  // Assembled in two passes. Every cell adds its Z_x (ny x ny) to one block per pair of sources
  // (i <= j): the block of the values (xi, xj) the cell has; then each block is scattered once
  // into the lower triangle of the matrix (the only part the Cholesky reads). Scattering every
  // cell's (k ny)^2 entries directly was 45% of a 10x10x10x4 solve (stores to random places
  // of the matrix); a cell's block adds are contiguous, and the scatter has only n_i n_j ny^2
  // entries per pair.
  void factorise() {
    const int ny = ny_, nn = ny * ny;
    blocks_.assign(blocks_size_, 0.0);
    double* z = z_.data();
    for (int64_t c = 0; c < pr_.cells; ++c) {
      if (g_[c] == kNegInf) continue;
      const double s = s_cell_[c], mass = m_cell_[c], d = mass / s - mass;
      const double* pi = &soft_[c * ny];
      for (int y = 0; y < ny; ++y) {
        const double w = d * pi[y], diagonal = mass * pi[y];
#pragma omp simd
        for (int y2 = 0; y2 < ny; ++y2) z[y * ny + y2] = w * pi[y2] + (y2 == y ? diagonal : 0.0);
      }
      const int* xs = &value_[c * k_];
      for (const PairBlock& pb : pair_blocks_) {
        if (pb.i == pb.j) continue;  // summed from the pairs' blocks below
        double* block = &blocks_[pb.offset + (int64_t(xs[pb.i]) * pb.stride + xs[pb.j]) * nn];
#pragma omp simd
        for (int t = 0; t < nn; ++t) block[t] += z[t];
      }
    }
    // Source i's own block at xi is the sum of a pair's blocks over the other source's values:
    // (i, i + 1)'s over x_{i+1}, the last source's from (0, k - 1) over x0.
    for (const PairBlock& pb : pair_blocks_) {
      if (pb.i != pb.j) continue;
      const int i = pb.i, other = i + 1 < k_ ? i + 1 : 0;
      const PairBlock& from = pair_index(std::min(i, other), std::max(i, other));
      for (int a = 0; a < pr_.n[from.i]; ++a)
        for (int b = 0; b < pr_.n[from.j]; ++b) {
          const double* src = &blocks_[from.offset + (int64_t(a) * from.stride + b) * nn];
          double* dst = &blocks_[pb.offset + int64_t(from.i == i ? a : b) * nn];
#pragma omp simd
          for (int t = 0; t < nn; ++t) dst[t] += src[t];
        }
    }
    // The bivariate exact's blocked Cholesky (dense_cpu.hpp), taking every positive pivot. A
    // pivot that is not (late iterations mix m / s of cells near their bound with O(m) terms)
    // comes back as a huge value, which zeroes the step along its direction; the factorisation
    // is first redone with the diagonal raised by 1e-14 of itself, growing tenfold up to 1e-6,
    // and the huge pivots stay only where that does not help. Measured on 3,000 draws of the
    // harsh family at tol 1e-10 nats: 8 or 9 short (up to 1.3e-7 nats) with exact's pivot rule
    // (below 1e-14 of the diagonal: huge) with or without the shifts, 3 with this one.
    panel_.resize(size_t(dense_cpu::panel_size(m_)));
    scatter(0.0);
    dense_cpu::cholesky(hess_.data(), m_, panel_.data(), 1, 0.0);
    for (double shift = 1e-14; shift <= 1e-6 && has_huge_pivot(); shift *= 10) {
      scatter(shift);
      dense_cpu::cholesky(hess_.data(), m_, panel_.data(), 1, 0.0);
    }
  }

  bool has_huge_pivot() const {
    for (int r = 0; r < m_; ++r)
      if (hess_[int64_t(r) * m_ + r] == exact_detail::kPivotHuge) return true;
    return false;
  }

  const PairBlock& pair_index(int i, int j) const {
    for (const PairBlock& pb : pair_blocks_)
      if (pb.i == i && pb.j == j) return pb;
    return pair_blocks_.front();  // not reached: every pair i <= j has a block
  }

  // The pair blocks into the lower triangle of hess_, the diagonal raised by `shift` of itself.
  void scatter(double shift) {
    const int ny = ny_, m = m_, nn = ny * ny;
    hess_.assign(int64_t(m) * m, 0.0);
    for (const PairBlock& pb : pair_blocks_) {
      const int ni = pr_.n[pb.i], nj = pb.i == pb.j ? 1 : pr_.n[pb.j];
      for (int a = 0; a < ni; ++a)
        for (int bj = 0; bj < nj; ++bj) {
          const int b = pb.i == pb.j ? a : bj;
          const double* block = &blocks_[pb.offset + (int64_t(a) * pb.stride + bj) * nn];
          const int* row_of = &index_[pr_.offset[pb.j] + b * ny];  // source j's variables: the later rows
          const int* col_of = &index_[pr_.offset[pb.i] + a * ny];
          for (int y = 0; y < ny; ++y) {
            const int col = col_of[y];
            if (col < 0) continue;
            for (int y2 = 0; y2 < ny; ++y2) {
              const int row = row_of[y2];
              if (row >= col) hess_[int64_t(row) * m + col] += block[y * ny + y2];
            }
          }
        }
    }
    if (shift > 0)
      for (int r = 0; r < m; ++r) hess_[int64_t(r) * m + r] = hess_[int64_t(r) * m + r] * (1.0 + shift) + 1e-300;
  }

  // The direction for the complementarity targets target - corr_x: dalpha (full vector, 0 at
  // fixed entries), then u_x = pi_x^T E_x^T dalpha, ds = -u, dm.
  void direction(double target, const std::vector<double>* corr, std::vector<double>& dalpha, std::vector<double>& ds,
                 std::vector<double>& dm) {
    const int ny = ny_;
    // the right-hand side over every alpha (contiguous per cell and source), then the variables'
    full_rhs_.assign(pr_.full, 0.0);
    for (int64_t c = 0; c < pr_.cells; ++c) {
      if (g_[c] == kNegInf) continue;
      const double wc = (target - (corr ? (*corr)[c] : 0.0) + m_cell_[c] * (s_cell_[c] + g_[c])) / s_cell_[c];
      const double* pi = &soft_[c * ny];
      for (int i = 0; i < k_; ++i) {
        double* r = &full_rhs_[pos_[c * k_ + i]];
#pragma omp simd
        for (int y = 0; y < ny; ++y) r[y] += pi[y] * wc;
      }
    }
    std::vector<double>& b = rhs_;
    b.assign(m_, 0.0);
    for (int v = 0; v < pr_.full; ++v)
      if (index_[v] >= 0) b[index_[v]] = marg_[v] - full_rhs_[v];
    dense_cpu::cholesky_solve(hess_.data(), m_, b.data());
    dalpha.assign(pr_.full, 0.0);
    for (int v = 0; v < pr_.full; ++v)
      if (index_[v] >= 0) dalpha[v] = b[index_[v]];
    ds.assign(pr_.cells, 0.0);
    dm.assign(pr_.cells, 0.0);
    for (int64_t c = 0; c < pr_.cells; ++c) {
      if (g_[c] == kNegInf) continue;
      const double* pi = &soft_[c * ny];
      double u = 0;
      for (int y = 0; y < ny; ++y) {
        if (pi[y] == 0) continue;
        double sum = 0;
        for (int i = 0; i < k_; ++i) sum += dalpha[pos_[c * k_ + i] + y];
        u += pi[y] * sum;
      }
      const double s = s_cell_[c], mass = m_cell_[c];
      ds[c] = -(s + g_[c]) - u;
      dm[c] = (target - (corr ? (*corr)[c] : 0.0) - mass * ds[c]) / s - mass;
    }
  }

  // Longest step up to 1 with v + step dv >= (1 - kBoundary) v.
  double boundary_step(const std::vector<double>& v, const std::vector<double>& dv) const {
    double step = 1.0;
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf && dv[c] < 0) step = std::min(step, -kBoundary * v[c] / dv[c]);
    return step;
  }

  // One predictor-corrector iteration, or a recentring of the masses.
  void step() {
    factorise();
    const double mu0 = mu();
    // predictor
    direction(0.0, nullptr, dalpha_, ds_, dm_);
    const double am = boundary_step(m_cell_, dm_), as = boundary_step(s_cell_, ds_);
    double total = 0;
    int64_t active = 0;
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf) total += (m_cell_[c] + am * dm_[c]) * (s_cell_[c] + as * ds_[c]), ++active;
    const double ratio = std::min(1.0, std::max(0.0, total / double(active) / mu0));
    const double sigma = ratio * ratio * ratio;
    // corrector: Mehrotra's second-order term
    corr_.assign(pr_.cells, 0.0);
    for (int64_t c = 0; c < pr_.cells; ++c) corr_[c] = dm_[c] * ds_[c];
    direction(std::max(sigma * mu0, mu_floor_), &corr_, dalpha_, ds_, dm_);
    double step = std::min(boundary_step(m_cell_, dm_), boundary_step(s_cell_, ds_));
    // Trust region on the alphas: logsumexp is linear only over moderate moves, and the Newton
    // step of an alpha that carries a tiny probability can be huge.
    double max_move = 0;
    for (int v = 0; v < pr_.full; ++v) max_move = std::max(max_move, std::fabs(dalpha_[v]));
    if (step * max_move > kMaxDualMove) step = kMaxDualMove / max_move;
    // Badly centred: cells whose product m s is orders of magnitude below mu (the start's
    // mass on a cell that must be empty, as where X3 copies X1, at a large slack) make every
    // step tiny. Raising those masses to mu / s puts every cell back on the central path; the
    // iteration is redone from there (traced on X3 = g(X1): steps of 3e-3 to 4e-2 for 200
    // iterations, 0.005 nats short, before; the bivariate exact solver's rule, exact.hpp).
    if (step < kRecentreStep && recentred_ < kRecentreMax) {
      for (int64_t c = 0; c < pr_.cells; ++c)
        if (g_[c] != kNegInf) m_cell_[c] = std::max(m_cell_[c], mu0 / s_cell_[c]);
      ++recentred_;
      return;
    }
    const double step_m = step, step_a = step;
#ifdef FASTPID_UNION_TRACE
    {
      double rs = 0, rd = 0;
      std::vector<double> have(pr_.full, 0.0);
      for (int64_t c = 0; c < pr_.cells; ++c)
        if (g_[c] != kNegInf) {
          rs = std::max(rs, std::fabs(s_cell_[c] + g_[c]) * m_cell_[c]);
          for (int i = 0; i < k_; ++i)
            for (int y = 0; y < ny_; ++y) have[pos_[c * k_ + i] + y] += m_cell_[c] * soft_[c * ny_ + y];
        }
      for (int v = 0; v < pr_.full; ++v) rd = std::max(rd, std::fabs(have[v] - marg_[v]));
      std::fprintf(stderr, "  sigma %.3g step_m %.3g step_a %.3g  |m(s+g)| %.3g |marg| %.3g\n", sigma, step_m, step_a, rs, rd);
    }
#endif
    for (int v = 0; v < pr_.full; ++v)
      if (index_[v] >= 0) alpha_[v] += step_a * dalpha_[v];
    for (int64_t c = 0; c < pr_.cells; ++c)
      if (g_[c] != kNegInf) m_cell_[c] += step_m * dm_[c], s_cell_[c] += step_a * ds_[c];
    evaluate(alpha_);
  }

  const Problem& pr_;
  const int k_, ny_;
  std::vector<double> marg_;     // P(xi, y) of every source, at the alphas' positions
  std::vector<double> py_;       // P(y)
  std::vector<int> pos_;         // cell x, source i -> position of alpha_i(xi, 0)
  std::vector<int> value_;       // cell x, source i -> xi
  std::vector<int> index_;       // full position -> Newton variable (-1: fixed or excluded)
  std::vector<int> pinned_;      // (source, label) -> the value held at 0 (-1: none)
  int m_ = 0;
  double mu_floor_ = 0;
  int recentred_ = 0;
  std::vector<double> alpha_, raised_, g_, soft_, m_cell_, s_cell_;
  std::vector<double> g_work_, m_work_, q_;
  std::vector<PairBlock> pair_blocks_;
  int64_t blocks_size_ = 0;
  std::vector<double> blocks_, z_, hess_, panel_, dalpha_, ds_, dm_, corr_, rhs_, full_rhs_;
  std::vector<double> tightest_, have_, deficit_, norm_;  // the certificate's scratch
};

}  // namespace

void union_cpu(const double* P, int64_t batch, const std::vector<int>& dims, const double* tol, int max_iter, double* value,
               double* bound, uint8_t* converged, int32_t* iterations, double* dual, int num_threads) {
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
    int it = 0;
    solver.run(tol[b], max_iter, &value[b], &bound[b], &it, dual ? dual + b * pr.full : nullptr);
    converged[b] = bound[b] <= tol[b];
    iterations[b] = it;
  }
  stop.finish();
}

}  // namespace fastpid
