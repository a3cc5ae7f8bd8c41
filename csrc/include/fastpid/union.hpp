// The k-source union problem, max H_Q(Y | X1..Xk) over the couplings Q with every (Xi, Y)
// marginal of P (docs/design.md section 7), for one distribution of shape (n1, ..., nk, ny):
// written once for every executor (DESIGN.md section 4), as the bivariate "exact" is.
//
// The method: a primal-dual interior-point method, as exact.hpp is for k = 2. The dual
//     max  -sum_i <alpha_i, P(xi, y)>   s.t.  g_x(alpha) = logsumexp_y sum_i alpha_i(xi, y) <= 0  (every cell x)
// has the cell masses m_x as its multipliers, Q(x, y) = m_x softmax_y(...), and the KKT system
//     sum_x m_x E_x pi_x = P's marginals,   m_x s_x = mu,   s_x = -g_x > 0
// (E_x places a label's weight on the k alphas of cell x). Eliminating the masses leaves a
// dense system in the alphas of order ny * sum_i ni, less the gauge (one alpha_i(xi*, y) per
// source after the first and label held at 0; the marginal equations it drops are implied by
// the others):
//     sum_x E_x Z_x E_x^T dalpha = P - sum_x E_x pi_x (sigma mu - corr_x) / s_x,
//     Z_x = m_x diag(pi_x) + (m_x / s_x - m_x) pi_x pi_x^T,
// solved by Cholesky for Mehrotra's predictor and corrector; the masses and slacks move by the
// fraction-to-boundary rule, the alphas within a trust region. Entries (x, y) with P(xi, y) = 0
// for some i carry no mass in any feasible Q and are left out, as their alpha is minus infinity.
//
// The start is the conditionally independent coupling Q(x, y) = prod_i P(xi, y) / P(y)^(k-1),
// which meets every marginal: the alphas are its log-conditionals, lowered per value of the
// first source until each cell's constraint holds with a slack of at least 1.
//
// Every certified iterate gives, as in the bivariate solvers, a feasible coupling (m pi rounded
// exactly onto the k marginals: per label, each marginal scaled down to at most its target in
// turn, then the product of the k deficits over the deficit mass to the power k - 1 added: the
// multi-marginal rounding of Lin, Ho, Cuturi and Jordan, 2019) and a feasible dual point (each
// source's alphas raised, value by value, until the tightest of their cells is active). The gap
// between -sum Q log Q(y|x) of the first and the dual value of the second bounds the error of
// the optimum: the distribution stops once it is below tol.
//
// UnionPoint<Team, Algebra> is the algorithm, every loop strided over a team; the Newton
// systems sit behind the Algebra interface:
//     prepare(team, shape, index, order)               once per distribution
//     factorize(team, shape, index, value, g, m, s, soft)  the Newton matrix at the point
//     solve(team, x)                                   x = H^-1 x, on the order unknowns
// UnionCpuAlgebra (csrc/cpu/union_cpu.cpp: the matrix assembled per pair of sources, then
// eliminated densely or on one source) is what the OpenMP driver runs; UnionTeamAlgebra
// (union_team_algebra.hpp) is what the CUDA driver and the CPU test executor run.
//
// Sums over the cells that share a value of a source ("gathers") visit those cells in
// increasing order on every parallel team (each rank owns whole outputs), so a team of any size
// adds every output's terms in the same order; one thread (SerialTeam) sums them in vectorised
// blocks instead (see gather): the same sums to rounding.
#pragma once
#include <cmath>
#if defined(FASTPID_UNION_TRACE)
#include <cstdio>
#endif

#include "fastpid/elementary.hpp"
#include "fastpid/exact.hpp"
#include "fastpid/team.hpp"

namespace fastpid {

constexpr int kMaxSources = 8;

namespace union_detail {
constexpr double kNegInf = -HUGE_VAL;
constexpr double kBoundary = 0.99;       // fraction-to-boundary of the masses' and slacks' steps
constexpr double kStartSlack = 1.0;      // the start's smallest cell slack
constexpr double kMaxDualMove = 2.0;     // nats per iteration, for any alpha (see step)
// Centring targets stay above kMuFloor * tol / cells: with deterministic targets the dual's
// supremum is approached only as some alphas fall without bound, a few nats per iteration,
// while Mehrotra's sigma would take mu down 100-fold per iteration; the Newton matrix (m / s
// terms) then loses every digit before the alphas get there (traced on Y = min(X1, X2, X3):
// mu 1e-24, marginal residuals growing from 1e-5 to 0.2, 200 iterations 1.8e-7 nats short).
constexpr double kMuFloor = 1e-3;
constexpr double kRecentreStep = 1e-1;   // steps below this recentre the cell masses (see step)
constexpr int kRecentreMax = 3;          // at most this many times per distribution
constexpr double kCertifyWithin = 10.0;  // see run
constexpr int kCertifyEvery = 4;         // see run
constexpr double kCertifyNear = 100.0;   // see run
constexpr int kMaxLabelsFolded = 16;     // the serial gather's partial sums (more labels: one by one)
}  // namespace union_detail

// The shape of a batch of distributions (batch, n1, ..., nk, ny), P's last source varying
// fastest; the alphas of source i are offset[i] .. offset[i] + n[i] ny, (xi, y) in order.
struct UnionShape {
  int64_t batch = 0;
  int k = 0, ny = 0, full = 0;  // full: sum_i n[i] ny
  int n[kMaxSources] = {};
  int offset[kMaxSources] = {};
  int64_t stride[kMaxSources] = {};  // of x_i in the cell index
  int64_t cells = 0;
  FASTPID_HD int64_t size() const { return cells * ny; }
  FASTPID_HD int nmax() const {
    int m = 0;
    for (int i = 0; i < k; ++i) m = n[i] > m ? n[i] : m;
    return m;
  }
  // The cells with x_i = a are, for h < runs(i) and l < stride[i], run(i, a, h) + l.
  FASTPID_HD int64_t runs(int i) const { return cells / (stride[i] * n[i]); }
  FASTPID_HD int64_t run(int i, int a, int64_t h) const { return (h * n[i] + a) * stride[i]; }
};

// dims = (n1, ..., nk, ny); throws nothing: the caller checks 2 <= k <= kMaxSources.
inline UnionShape union_shape(const int* dims, int k, int64_t batch) {
  UnionShape s;
  s.batch = batch;
  s.k = k;
  s.ny = dims[k];
  int64_t stride = 1;
  for (int i = k - 1; i >= 0; --i) s.n[i] = dims[i], s.stride[i] = stride, stride *= dims[i];
  s.cells = stride;
  for (int i = 0; i < k; ++i) s.offset[i] = s.full, s.full += s.n[i] * s.ny;
  return s;
}

// Per batch: the tolerance of each distribution (nats), the iteration cap, and the outputs
// (value and bound in nats; dual: (batch, full) or null).
struct UnionOutputs {
  const double* tol;
  int max_iter;
  double* value;
  double* bound;
  uint8_t* converged;
  int32_t* iterations;
  double* dual;
};

template <class Team, class Algebra>
class UnionPoint {
 public:
  static FASTPID_HD int64_t workspace_doubles(const UnionShape& s) { return carved_doubles<Arrays>(s); }

  FASTPID_HD UnionPoint(Team& team, const UnionShape& shape, double* ws, Algebra& algebra)
      : t(team), sh(shape), alg(algebra) {
    Carver cv(ws);
    w.carve(cv, sh);
  }

  // Solves distribution b of the batch (P: its entries) and writes its outputs.
  FASTPID_HD void solve(const double* P, const UnionOutputs& out, int64_t b);

 private:
  struct Arrays {
    double *marg, *py, *alpha, *raised, *best, *dalpha, *full_rhs, *deficit, *rhs, *shift;  // (full) and (ny)
    double *g, *g_work, *m, *s, *ds, *dm, *corr, *wc;                                       // (cells)
    double *soft, *q, *fold;                                                                 // (cells ny)
    double *have, *norm;
    int *index, *pinned, *value, *counts;
    FASTPID_HD void carve(Carver& cv, const UnionShape& sh) {
      const int64_t full = sh.full, cells = sh.cells, entries = sh.size(), nmax = sh.nmax();
      marg = cv.doubles(full); py = cv.doubles(sh.ny); alpha = cv.doubles(full); raised = cv.doubles(full);
      best = cv.doubles(full); dalpha = cv.doubles(full); full_rhs = cv.doubles(full); deficit = cv.doubles(full);
      rhs = cv.doubles(full); shift = cv.doubles(int64_t(sh.k) * sh.ny);
      g = cv.doubles(cells); g_work = cv.doubles(cells); m = cv.doubles(cells); s = cv.doubles(cells);
      ds = cv.doubles(cells); dm = cv.doubles(cells); corr = cv.doubles(cells); wc = cv.doubles(cells);
      soft = cv.doubles(entries); q = cv.doubles(entries);
      fold = Team::kSerial ? cv.doubles(entries / 2 + 1) : nullptr;  // the serial gather's (runs >= 2)
      have = cv.doubles(nmax * sh.ny); norm = cv.doubles(int64_t(sh.k) * sh.ny);
      index = cv.ints(full); pinned = cv.ints(int64_t(sh.k) * sh.ny); value = cv.ints(cells * sh.k); counts = cv.ints(2);
    }
  };

  Team& t;
  const UnionShape sh;
  Algebra& alg;
  Arrays w;
  int order_ = 0;        // Newton unknowns
  double active_ = 0;    // cells with an allowed label
  double mu_floor_ = 0;
  int recentred_ = 0;

  FASTPID_HD int rank() const { return t.rank(); }
  FASTPID_HD int T() const { return t.size(); }
  FASTPID_HD int pos(int64_t c, int i) const { return sh.offset[i] + w.value[c * sh.k + i] * sh.ny; }

  // out[a * ny + y] = sum over the cells with x_i = a of X[c * ny + y], then finish(e, sum) for
  // every output e = a * ny + y (by the rank that owns it).
  //
  // One thread sums in two vectorised passes instead of cell by cell (a chain of dependent adds
  // per output, and runs of one cell for the last source: 13% of a 10x10x10x4 solve). The cells
  // with x_i = a are, per h < runs, the len = stride[i] consecutive cells from run(i, a, h), so X
  // is (runs, n_i, len, ny): the runs are added element-wise into w.fold (or read in place where
  // there is one run), then each value's len x ny block is folded over len with kLanes
  // independent partial sums. A team sums each output over the cells in increasing order (see
  // the file's comment); both orders are exact sums to rounding.
  template <class Finish>
  FASTPID_HD void gather(int i, const double* X, double* out, Finish finish) {
    const int ny = sh.ny, ni = sh.n[i];
    const int64_t runs = sh.runs(i), len = sh.stride[i];
    if constexpr (Team::kSerial) {
      const int64_t block = len * ny, run_size = int64_t(ni) * block;
      const double* folded = X;
      if (runs > 1) {
        double* acc = w.fold;
        for (int64_t e = 0; e < run_size; ++e) acc[e] = X[e];
        for (int64_t h = 1; h < runs; ++h) {
          const double* from = X + h * run_size;
          FASTPID_PRAGMA(omp simd)
          for (int64_t e = 0; e < run_size; ++e) acc[e] += from[e];
        }
        folded = acc;
      }
      constexpr int kLanes = 4;
      const int64_t wide = int64_t(kLanes) * ny;
      double part[kLanes * union_detail::kMaxLabelsFolded];
      for (int a = 0; a < ni; ++a) {
        const double* b = folded + a * block;
        double* o = out + int64_t(a) * ny;
        if (ny > union_detail::kMaxLabelsFolded || block < wide) {
          for (int y = 0; y < ny; ++y) o[y] = 0.0;
          for (int64_t e = 0; e < block; ++e) o[e % ny] += b[e];
        } else {
          for (int64_t j = 0; j < wide; ++j) part[j] = b[j];
          int64_t e = wide;
          for (; e + wide <= block; e += wide) {
            FASTPID_PRAGMA(omp simd)
            for (int64_t j = 0; j < wide; ++j) part[j] += b[e + j];
          }
          for (int64_t j = 0; e + j < block; ++j) part[j] += b[e + j];
          for (int y = 0; y < ny; ++y) {
            double sum = 0.0;
            for (int l = 0; l < kLanes; ++l) sum += part[l * ny + y];
            o[y] = sum;
          }
        }
        for (int y = 0; y < ny; ++y) finish(int64_t(a) * ny + y, o[y]);
      }
    } else {
      for (int64_t e = rank(); e < int64_t(ni) * ny; e += T()) {
        const int a = int(e / ny), y = int(e % ny);
        double sum = 0.0;
        for (int64_t h = 0; h < runs; ++h)
          for (int64_t c = sh.run(i, a, h), end = c + len; c < end; ++c) sum += X[c * ny + y];
        out[e] = sum;
        finish(e, sum);
      }
    }
  }

  // out[c * ny + y] = (add ? out[c * ny + y] : 0) + a[pos(c, i) + y] for every cell, by one
  // thread in vectorised passes: per h < runs, the run of n_i values' blocks of len cells; with
  // len 1 (the last source) the run is source i's alphas in order, else each value's ny alphas
  // are tiled kTile times and added along its block. Summed over the sources in order, this
  // is the cells' sum_i a_i(xi, y) that a loop per cell gathers with k ny scattered loads.
  template <bool Add>
  FASTPID_HD void broadcast(int i, const double* a, double* out) {
    constexpr int kTile = 8;
    const int ny = sh.ny, ni = sh.n[i];
    const int64_t runs = sh.runs(i), len = sh.stride[i], block = len * ny, run_size = int64_t(ni) * block;
    const double* alphas = a + sh.offset[i];
    if (len == 1) {
      for (int64_t h = 0; h < runs; ++h) {
        double* o = out + h * run_size;
        FASTPID_PRAGMA(omp simd)
        for (int64_t e = 0; e < run_size; ++e) o[e] = Add ? o[e] + alphas[e] : alphas[e];
      }
      return;
    }
    double tile[kTile * union_detail::kMaxLabelsFolded];
    const int64_t wide = int64_t(kTile) * ny;
    for (int v = 0; v < ni; ++v) {
      const double* row = alphas + int64_t(v) * ny;
      const bool tiled = ny <= union_detail::kMaxLabelsFolded;
      if (tiled)
        for (int r = 0; r < kTile; ++r)
          for (int y = 0; y < ny; ++y) tile[r * ny + y] = row[y];
      for (int64_t h = 0; h < runs; ++h) {
        double* o = out + h * run_size + int64_t(v) * block;
        if (!tiled) {
          for (int64_t e = 0; e < block; ++e) o[e] = Add ? o[e] + row[e % ny] : row[e % ny];
          continue;
        }
        int64_t e = 0;
        for (; e + wide <= block; e += wide) {
          FASTPID_PRAGMA(omp simd)
          for (int64_t j = 0; j < wide; ++j) o[e + j] = Add ? o[e + j] + tile[j] : tile[j];
        }
        for (int64_t j = 0; e + j < block; ++j) o[e + j] = Add ? o[e + j] + tile[j] : tile[j];
      }
    }
  }

  FASTPID_HD void build(const double* P);
  FASTPID_HD void start();
  FASTPID_HD void evaluate(const double* a);
  FASTPID_HD double mu();
  FASTPID_HD void raise_to_slack(double* a, double* g, int sources, double slack);
  FASTPID_HD void certify(double& entropy, double& upper);
  FASTPID_HD void round_onto_marginals();
  FASTPID_HD void direction(double target, const double* corr);
  FASTPID_HD void boundary_steps(double& along_m, double& along_s);
  FASTPID_HD void step();
};

// ---------------------------------------------------------------------------------------
// The structure: each cell's values, the marginals, and the Newton unknowns (rank 0 numbers
// them and publishes the count through w.counts).
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::build(const double* P) {
  const int k = sh.k, ny = sh.ny;
  for (int64_t c = rank(); c < sh.cells; c += T())
    for (int i = 0; i < k; ++i) w.value[c * k + i] = int(c / sh.stride[i] % sh.n[i]);
  for (int i = 0; i < k; ++i) gather(i, P, w.marg + sh.offset[i], [](int64_t, double) {});
  t.sync();
  for (int y = rank(); y < ny; y += T()) {
    double total = 0;
    for (int a = 0; a < sh.n[0]; ++a) total += w.marg[int64_t(a) * ny + y];
    w.py[y] = total;
  }
  if (rank() == 0) {
    // variables: the alphas with P(xi, y) > 0, less one per (source > 0, label) for the gauge
    int order = 0;
    for (int v = 0; v < sh.full; ++v) w.index[v] = -1;
    for (int i = 0; i < k; ++i)
      for (int y = 0; y < ny; ++y) {
        int pinned = -1;
        if (i > 0) {  // the value of xi with the most mass at y holds alpha_i(., y) at 0
          double most = 0;
          for (int a = 0; a < sh.n[i]; ++a) {
            const double v = w.marg[sh.offset[i] + a * ny + y];
            if (v > most) most = v, pinned = a;
          }
        }
        w.pinned[i * ny + y] = pinned;
        for (int a = 0; a < sh.n[i]; ++a)
          if (w.marg[sh.offset[i] + a * ny + y] > 0 && a != pinned) w.index[sh.offset[i] + a * ny + y] = order++;
      }
    w.counts[0] = order;
  }
  t.sync();
  order_ = w.counts[0];
  alg.prepare(t, sh, w.index, order_);
}

// g_x and softmax_x of every cell at a (cells with no allowed label get g = -inf), into w.g and
// w.soft, in three passes: the exps are one long loop over all entries, which vectorises (per
// cell, a loop of ny is too short for the vector units when ny is small).
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::evaluate(const double* a) {
  using union_detail::kNegInf;
  const int k = sh.k, ny = sh.ny;
  if constexpr (Team::kSerial) {  // z_x(y) (-inf where an entry is left out)
    broadcast<false>(0, a, w.soft);
    for (int i = 1; i < k; ++i) broadcast<true>(i, a, w.soft);
  }
  for (int64_t c = rank(); c < sh.cells; c += T()) {  // z_x(y) - max_y z_x(y), and the max in g
    double* sc = w.soft + c * ny;
    double top = kNegInf;
    for (int y = 0; y < ny; ++y) {
      double z;
      if constexpr (Team::kSerial) {
        z = sc[y];
      } else {
        z = 0;
        for (int i = 0; i < k; ++i) z += a[pos(c, i) + y];
        sc[y] = z;
      }
      top = z > top ? z : top;
    }
    w.g[c] = top;
    if (top != kNegInf)
      for (int y = 0; y < ny; ++y) sc[y] -= top;
  }
  t.sync();
  const int64_t entries = sh.size();
  double* soft = w.soft;
  FASTPID_PRAGMA(omp simd)
  for (int64_t e = rank(); e < entries; e += T()) soft[e] = simd_exp(soft[e]);  // 0 where -inf
  t.sync();
  for (int64_t c = rank(); c < sh.cells; c += T()) {
    double* sc = w.soft + c * ny;
    if (w.g[c] == kNegInf) {
      for (int y = 0; y < ny; ++y) sc[y] = 0.0;
      continue;
    }
    double sum = 0;
    for (int y = 0; y < ny; ++y) sum += sc[y];
    const double inv = 1.0 / sum;
    for (int y = 0; y < ny; ++y) sc[y] *= inv;
    w.g[c] += simd_log(sum);
  }
  t.sync();
}

template <class Team, class Algebra>
FASTPID_HD double UnionPoint<Team, Algebra>::mu() {
  double total = 0;
  for (int64_t c = rank(); c < sh.cells; c += T())
    if (w.g[c] != union_detail::kNegInf) total += w.m[c] * w.s[c];
  total = t.sum(total);
  return active_ > 0 ? total / active_ : 0.0;
}

// The conditionally independent coupling and its log-conditionals (see the file's comment).
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::start() {
  using union_detail::kNegInf;
  const int k = sh.k, ny = sh.ny;
  for (int v = rank(); v < sh.full; v += T()) {
    int i = 0;
    while (i + 1 < k && v >= sh.offset[i + 1]) ++i;
    const int y = (v - sh.offset[i]) % ny;
    w.alpha[v] = w.marg[v] > 0 ? ::log(w.marg[v]) - (i == 0 ? (k - 1) * ::log(w.py[y]) : 0.0) : kNegInf;
  }
  t.sync();
  // the gauge: source i > 0's alphas at label y shifted so that the pinned one is 0, source
  // 0's the other way, which leaves every cell's sum unchanged
  for (int e = rank(); e < k * ny; e += T()) {
    const int i = e / ny, y = e % ny, pinned = w.pinned[e];
    w.shift[e] = i > 0 && pinned >= 0 ? w.alpha[sh.offset[i] + pinned * ny + y] : 0.0;
  }
  t.sync();
  for (int v = rank(); v < sh.full; v += T()) {
    if (w.alpha[v] == kNegInf) continue;
    int i = 0;
    while (i + 1 < k && v >= sh.offset[i + 1]) ++i;
    const int y = (v - sh.offset[i]) % ny;
    if (i > 0) {
      w.alpha[v] -= w.shift[i * ny + y];
    } else {
      for (int j = 1; j < k; ++j) w.alpha[v] += w.shift[j * ny + y];
    }
  }
  t.sync();
  // here g_x = log of the coupling's cell mass; lower source 0's alphas per value until every
  // cell's slack is at least kStartSlack
  evaluate(w.alpha);
  double active = 0;
  for (int64_t c = rank(); c < sh.cells; c += T()) {
    const bool on = w.g[c] != kNegInf;
    w.m[c] = on ? ::exp(w.g[c]) : 0.0;
    active += on;
  }
  active_ = t.sum(active);
  t.sync();
  raise_to_slack(w.alpha, w.g, 1, -union_detail::kStartSlack);
  evaluate(w.alpha);
  for (int64_t c = rank(); c < sh.cells; c += T()) w.s[c] = w.g[c] != kNegInf ? -w.g[c] : 0.0;
  t.sync();
}

// The alphas of each of the first `sources` sources, value by value, moved so that the
// tightest cell of that value has g = `slack`, in turn; g holds the cells' g at a and is kept
// so (moving alpha_i(xi, .) by d moves g of every cell with that xi by d: no exp is needed).
// With slack 0 and every source, the raise of the certificate: the point stays feasible and its
// dual value only rises.
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::raise_to_slack(double* a, double* g, int sources, double slack) {
  using union_detail::kNegInf;
  const int ny = sh.ny;
  double* tightest = w.have;  // (n_i)
  for (int i = 0; i < sources; ++i) {
    const int64_t runs = sh.runs(i), len = sh.stride[i];
    for (int v = rank(); v < sh.n[i]; v += T()) {
      double top = kNegInf;
      for (int64_t h = 0; h < runs; ++h)
        for (int64_t c = sh.run(i, v, h), end = c + len; c < end; ++c) top = g[c] > top ? g[c] : top;
      tightest[v] = top == kNegInf ? kNegInf : top - slack;  // the move down
    }
    t.sync();
    for (int64_t e = rank(); e < int64_t(sh.n[i]) * ny; e += T()) {
      const double move = tightest[e / ny];
      double& v = a[sh.offset[i] + e];
      if (move != kNegInf && v != kNegInf) v -= move;
    }
    for (int64_t c = rank(); c < sh.cells; c += T())
      if (g[c] != kNegInf) g[c] -= tightest[w.value[c * sh.k + i]];
    t.sync();
  }
}

// The certificate at the current point: -sum Q log Q(y|x) of the rounded coupling and the
// raised dual value, in nats.
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::certify(double& entropy, double& upper) {
  using union_detail::kNegInf;
  const int ny = sh.ny;
  for (int64_t c = rank(); c < sh.cells; c += T()) {
    const double mass = w.g[c] != kNegInf ? w.m[c] : 0.0;
    for (int y = 0; y < ny; ++y) w.q[c * ny + y] = mass * w.soft[c * ny + y];
  }
  t.sync();
  round_onto_marginals();
  // sum Q log Q(y|x) = sum Q log Q - sum_x m_x log m_x, each a long loop
  const int64_t entries = sh.size();
  const double* q = w.q;
  double f = 0;
  FASTPID_PRAGMA(omp simd reduction(+ : f))
  for (int64_t e = rank(); e < entries; e += T()) f += q[e] > 0 ? q[e] * simd_log(q[e]) : 0.0;
  for (int64_t c = rank(); c < sh.cells; c += T()) {
    double mass = 0;
    for (int y = 0; y < ny; ++y) mass += q[c * ny + y];
    w.wc[c] = mass;
  }
  const double* mass = w.wc;
  double cells = 0;
  FASTPID_PRAGMA(omp simd reduction(+ : cells))
  for (int64_t c = rank(); c < sh.cells; c += T()) cells += mass[c] > 0 ? mass[c] * simd_log(mass[c]) : 0.0;
  entropy = t.sum(cells) - t.sum(f);
  for (int v = rank(); v < sh.full; v += T()) w.raised[v] = w.alpha[v];
  for (int64_t c = rank(); c < sh.cells; c += T()) w.g_work[c] = w.g[c];
  t.sync();
  raise_to_slack(w.raised, w.g_work, sh.k, 0.0);
  double d = 0;
  for (int v = rank(); v < sh.full; v += T())
    if (w.marg[v] > 0) d += w.raised[v] * w.marg[v];
  upper = -t.sum(d);
}

// Each label's slice of w.q onto its k marginals P(xi, y), exactly (see the file's comment).
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::round_onto_marginals() {
  const int k = sh.k, ny = sh.ny;
  for (int i = 0; i < k; ++i) {  // scale each marginal down to at most its target, in turn
    const double* want = w.marg + sh.offset[i];
    double* scale = w.have;
    gather(i, w.q, scale, [&](int64_t e, double have) { scale[e] = have > want[e] ? want[e] / have : 1.0; });
    t.sync();
    for (int64_t c = rank(); c < sh.cells; c += T()) {
      const double* f = scale + int64_t(w.value[c * k + i]) * ny;
      double* qc = w.q + c * ny;
      for (int y = 0; y < ny; ++y) qc[y] *= f[y];
    }
    t.sync();
  }
  for (int i = 0; i < k; ++i) {  // what each marginal lacks, (xi, y)
    const double* want = w.marg + sh.offset[i];
    double* deficit = w.deficit + sh.offset[i];
    gather(i, w.q, deficit, [&](int64_t e, double have) { deficit[e] = want[e] - have > 0 ? want[e] - have : 0.0; });
  }
  t.sync();
  // Per source and label, the deficit mass M_i(y); every source's is the same up to rounding.
  for (int e = rank(); e < k * ny; e += T()) {
    const int i = e / ny, y = e % ny;
    double total = 0;
    for (int a = 0; a < sh.n[i]; ++a) total += w.deficit[sh.offset[i] + int64_t(a) * ny + y];
    w.norm[e] = total;
  }
  t.sync();
  // add(x, y) = d_0(x0, y) prod_{i > 0} d_i(xi, y) / M_i(y): source i > 0's marginal gains
  // d_i M_0 / M_i, which is d_i up to rounding. (Dividing the product of the k deficits by
  // M_0^(k-1) instead, where every deficit is rounding noise of a marginal met already, scales
  // the added mass by the ratio of two noises: on a near-deterministic 3x3x3x4 draw a coupling
  // 1.8e-9 nats above the optimum, certified with a negative gap.)
  for (int64_t c = rank(); c < sh.cells; c += T()) {
    double* qc = w.q + c * ny;
    for (int y = 0; y < ny; ++y) {
      double add = w.deficit[pos(c, 0) + y];
      for (int i = 1; i < k && add > 0; ++i) {
        const double mass = w.norm[i * ny + y];
        add = mass > 0 ? add * (w.deficit[pos(c, i) + y] / mass) : 0.0;
      }
      if (add > 0) qc[y] += add;
    }
  }
  t.sync();
}

// The direction for the complementarity targets target - corr_x: w.dalpha (every alpha, 0 at
// the fixed ones), then u_x = pi_x^T E_x^T dalpha, w.ds = -u - (s + g), w.dm.
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::direction(double target, const double* corr) {
  using union_detail::kNegInf;
  const int k = sh.k, ny = sh.ny;
  for (int64_t c = rank(); c < sh.cells; c += T())
    w.wc[c] = w.g[c] != kNegInf ? (target - (corr ? corr[c] : 0.0) + w.m[c] * (w.s[c] + w.g[c])) / w.s[c] : 0.0;
  t.sync();
  for (int64_t c = rank(); c < sh.cells; c += T()) {  // (q: free between certificates)
    const double f = w.wc[c];
    for (int y = 0; y < ny; ++y) w.q[c * ny + y] = w.soft[c * ny + y] * f;
  }
  t.sync();
  for (int i = 0; i < k; ++i) gather(i, w.q, w.full_rhs + sh.offset[i], [](int64_t, double) {});
  t.sync();
  for (int v = rank(); v < sh.full; v += T())
    if (w.index[v] >= 0) w.rhs[w.index[v]] = w.marg[v] - w.full_rhs[v];
  t.sync();
  alg.solve(t, w.rhs);
  for (int v = rank(); v < sh.full; v += T()) w.dalpha[v] = w.index[v] >= 0 ? w.rhs[w.index[v]] : 0.0;
  t.sync();
  if constexpr (Team::kSerial) {  // each cell's sum_i dalpha_i(xi, y), into q (free again)
    broadcast<false>(0, w.dalpha, w.q);
    for (int i = 1; i < k; ++i) broadcast<true>(i, w.dalpha, w.q);
  }
  for (int64_t c = rank(); c < sh.cells; c += T()) {
    if (w.g[c] == kNegInf) {
      w.ds[c] = w.dm[c] = 0.0;
      continue;
    }
    const double* pi = w.soft + c * ny;
    double u = 0;  // (dalpha is 0 on the entries left out, where pi is 0)
    if constexpr (Team::kSerial) {
      const double* d = w.q + c * ny;
      for (int y = 0; y < ny; ++y) u += pi[y] * d[y];
    } else {
      for (int i = 0; i < k; ++i) {
        const double* d = w.dalpha + pos(c, i);
        for (int y = 0; y < ny; ++y) u += pi[y] * d[y];
      }
    }
    const double s = w.s[c], mass = w.m[c];
    w.ds[c] = -(s + w.g[c]) - u;
    w.dm[c] = (target - (corr ? corr[c] : 0.0) - mass * w.ds[c]) / s - mass;
  }
  t.sync();
}

// The longest steps up to 1 with m + step dm >= (1 - kBoundary) m and the same for s, over the
// active cells, in one pass (dividing only where the bound binds).
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::boundary_steps(double& along_m, double& along_s) {
  using union_detail::kBoundary;
  double sm = 1.0, ss = 1.0;
  for (int64_t c = rank(); c < sh.cells; c += T()) {
    if (w.g[c] == union_detail::kNegInf) continue;
    if (kBoundary * w.m[c] < -sm * w.dm[c]) sm = -kBoundary * w.m[c] / w.dm[c];
    if (kBoundary * w.s[c] < -ss * w.ds[c]) ss = -kBoundary * w.s[c] / w.ds[c];
  }
  along_m = -t.max(-sm);
  along_s = -t.max(-ss);
}

// One predictor-corrector iteration, or a recentring of the masses.
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::step() {
  using namespace union_detail;
  alg.factorize(t, sh, w.index, w.value, w.g, w.m, w.s, w.soft);
  const double mu0 = mu();
  direction(0.0, nullptr);  // the predictor
  double am, as;
  boundary_steps(am, as);
  double total = 0;
  for (int64_t c = rank(); c < sh.cells; c += T())
    if (w.g[c] != kNegInf) total += (w.m[c] + am * w.dm[c]) * (w.s[c] + as * w.ds[c]);
  total = t.sum(total);
  const double ratio = dmin(1.0, dmax(0.0, total / active_ / mu0));
  const double sigma = ratio * ratio * ratio;
  for (int64_t c = rank(); c < sh.cells; c += T()) w.corr[c] = w.dm[c] * w.ds[c];  // Mehrotra's second-order term
  t.sync();
  direction(dmax(sigma * mu0, mu_floor_), w.corr);  // the corrector
  double step_m, step_s;
  boundary_steps(step_m, step_s);
  double step = dmin(step_m, step_s);
  // Trust region on the alphas: logsumexp is linear only over moderate moves, and the Newton
  // step of an alpha that carries a tiny probability can be huge.
  double move = 0;
  for (int v = rank(); v < sh.full; v += T()) move = dmax(move, ::fabs(w.dalpha[v]));
  move = t.max(move);
  if (step * move > kMaxDualMove) step = kMaxDualMove / move;
  // Badly centred: cells whose product m s is orders of magnitude below mu (the start's mass on
  // a cell that must be empty, as where X3 copies X1, at a large slack) make every step tiny.
  // Raising those masses to mu / s puts every cell back on the central path; the iteration is
  // redone from there (traced on X3 = g(X1): steps of 3e-3 to 4e-2 for 200 iterations, 0.005
  // nats short, before; the bivariate exact solver's rule, exact.hpp).
  if (step < kRecentreStep && recentred_ < kRecentreMax) {
    for (int64_t c = rank(); c < sh.cells; c += T())
      if (w.g[c] != kNegInf) w.m[c] = dmax(w.m[c], mu0 / w.s[c]);
    ++recentred_;
    t.sync();
    return;
  }
  for (int v = rank(); v < sh.full; v += T())
    if (w.index[v] >= 0) w.alpha[v] += step * w.dalpha[v];
  for (int64_t c = rank(); c < sh.cells; c += T())
    if (w.g[c] != kNegInf) w.m[c] += step * w.dm[c], w.s[c] += step * w.ds[c];
  t.sync();
  evaluate(w.alpha);
}

// Iterates until the certified gap is below the distribution's tol or max_iter iterations;
// writes the best certificate (value, bound, in nats), converged, the iterations and the
// certificate's raised dual point.
template <class Team, class Algebra>
FASTPID_HD void UnionPoint<Team, Algebra>::solve(const double* P, const UnionOutputs& out, int64_t b) {
  using namespace union_detail;
  const double tol = out.tol[b];
  const int max_iter = out.max_iter;
  recentred_ = 0;
  build(P);
  start();
  mu_floor_ = active_ > 0 ? kMuFloor * tol / active_ : 0.0;
  double best_value = NAN, best_bound = HUGE_VAL, last_gap = HUGE_VAL, last_mu = 0;
  bool kept = false;
  int last_it = 0, it = 0;
  for (;; ++it) {
    // The certificate costs a logarithm per entry and k passes of rounding: skipped while the
    // gap predicted from the last one (scaled by the fall of mu since) is above kCertifyWithin
    // tol, as the bivariate exact does; always at the start and the end, once mu stops falling
    // (at its floor the prediction never reaches tol: 13 of 560 FAMILIES3 draws ran to the cap
    // with their gap 1e-13 at tol 1e-10, before), kCertifyEvery iterations after the last, and
    // at every iteration once the last gap was within kCertifyNear tol: near the optimum the
    // iterates of a degenerate input can wander, and the one that reached tol must not be
    // skipped (a 3x3x2x3 sum gate at tol 1e-9 nats: 6.6e-10 at iteration 24, never again
    // below 1.3e-9 in the 176 that followed).
    const double now = mu();
    const bool due = it == 0 || it >= max_iter || it - last_it >= kCertifyEvery || now > 0.5 * last_mu ||
                     last_gap < kCertifyNear * tol || !(last_gap * now / last_mu > kCertifyWithin * tol);
    if (due) {
      double entropy, upper;
      certify(entropy, upper);
      const double gap = dmax(0.0, upper - entropy);
#if defined(FASTPID_UNION_TRACE) && !defined(__CUDA_ARCH__)
      if (rank() == 0) std::fprintf(stderr, "it %d mu %.3g entropy %.17g upper %.17g gap %.3g\n", it, now, entropy, upper, upper - entropy);
#endif
      if (gap < best_bound) {
        best_bound = gap, best_value = entropy, kept = true;
        for (int v = rank(); v < sh.full; v += T()) w.best[v] = w.raised[v];
      }
      last_gap = gap, last_mu = mu(), last_it = it;
    }
    if (best_bound <= tol || it >= max_iter) break;
    step();
  }
  t.sync();
  if (rank() == 0) {
    out.value[b] = best_value;
    out.bound[b] = best_bound;
    out.converged[b] = best_bound <= tol;
    out.iterations[b] = it;
  }
  if (out.dual)
    for (int v = rank(); v < sh.full; v += T()) out.dual[b * sh.full + v] = kept ? w.best[v] : w.raised[v];
}

// One worker of `workers` walking the batch as a block of the CUDA persistent grid does (see
// walk_batch, team.hpp), solving each distribution with UnionPoint in its workspace: the
// algorithm's arrays, then the algebra's.
template <class Team, class Algebra>
FASTPID_HD void union_walk_batch(Team& team, int64_t worker, int64_t workers, const double* P, const UnionShape& shape,
                                 const UnionOutputs& out, double* workspace) {
  const int64_t own = UnionPoint<Team, Algebra>::workspace_doubles(shape);
  Algebra algebra(workspace + own, shape);
  UnionPoint<Team, Algebra> point(team, shape, workspace, algebra);
  for (int64_t b = worker; b < shape.batch; b += workers) {
    point.solve(P + b * shape.size(), out, b);
    team.sync();  // the next distribution's first phase must not overwrite what this one still reads
  }
}

}  // namespace fastpid
