// method="refine": one distribution per team, from the closed-form proxy to a certified
// optimum, with memory linear in the size of P.
//
// Notation (internal orientation): side A (index i, nA values) and side B (index j, nB <= nA
// values) are the two sources, B being the smaller (the sides are swapped when the caller's
// x2 has more values). PA(i, y) = P(i, y), PB(j, y) = P(j, y). The program depends on P only
// through these marginals, and its optimal coupling has the product form
// Q(i, j, y) = m(i, j) exp(a(i, y) + b(j, y)) (KKT, DESIGN.md). Every coupling this solver
// handles is kept in that form, Q = R(i, j) UA(i, y) VB(j, y): a cell matrix R (nA x nB) and
// two per-label factors, so every pass over the data is a product of R with a factor
// (team_linalg.hpp) and no array of the size of P is kept.
//
// Phase 1, iterative scaling (entropic mirror descent with step 1 on the cell masses; see
// DESIGN.md): from Q0, repeat  UA = PA / (R VB),  VB = PB / (R^T UA),  R <- R * (UA VB^T).
// Cheap, and it finds the support of the optimal cell masses, but it converges only like
// O(1/t): cells whose optimal mass is 0 sit at sum_y UA VB = 1 - 1e-4 and decay slowly.
//
// Phase 2, a semismooth Newton augmented-Lagrangian method on the dual problem
//     max <a, PA> + <b, PB>   s.t.  g_c(a, b) = log sum_y exp(a(i, y) + b(j, y)) <= 0,
// with multipliers w_c (the cell masses): each outer step minimises
//     Psi(a, b) = -<a, PA> - <b, PB> + 1/(2 rho) sum_c max(0, w_c + rho g_c)^2
// by Newton's method with an Armijo line search, then sets w <- max(0, w + rho g) and grows rho
// (SolverOptions: from 100, 3x per outer step, measured in benchmarks/bench_refine.py: a
// 10x growth deactivates whole groups of small cells on large alphabets and stalls there).
// The Newton matrix is L + J^T D J: L is block diagonal over labels (the coupling
// Q = max(0, w + rho g) softmax(a + b) as a bipartite matrix per label), J has one row per
// active cell (its softmax), D = rho - w~ > 0. It is solved through the Woodbury identity:
// per-label Cholesky factors of L's Schur complement on side B (nB x nB per label), then the
// system C = D^-1 + J L^-1 J^T on the active cells, whose conditioning does not degrade as rho
// grows: formed from the per-label inverses of L and factorised when the active set is small
// (kDenseCells), otherwise by conjugate gradients, every product again a product with R.
//
// Every step is certified as in the exact solver: the coupling R UA VB is rounded exactly
// onto the marginals (upper bound on min -H(Y|X1,X2)) and the dual point is shifted to
// feasibility per value of the larger side, or per value of the smaller side, whichever is
// better (lower bound). Each distribution stops once the gap is <= tol.
#pragma once
#include <cmath>

#include "fastpid/team.hpp"
#include "fastpid/team_linalg.hpp"

namespace fastpid {

namespace refine_detail {
constexpr double kRhoMax = 1e8;
constexpr double kProximal = 1e-7;      // relative regularisation of the Newton matrix
constexpr double kMaxDualMove = 2.0;    // nats per Newton step for any dual variable
constexpr double kArmijo = 1e-4;
constexpr int kInnerMax = 30;           // Newton steps per outer step at most
constexpr int kCheckEvery = 25;         // certify every this many scaling iterations
constexpr double kNoCell = -1e300;      // g of a cell without any (i, j, y) of positive marginals
// Newton systems on at most this many active cells are formed and factorised (exact
// directions, O(|A|^3) work, |A|^2 memory); larger ones are solved by conjugate gradients
// (memory linear in the size of P). The active set at the optimum has at most about
// (nA + nB) ny cells, so the dense path is prepared only for shapes where that is small.
constexpr int64_t kDenseCells = 1024;
}  // namespace refine_detail

struct RefineKernel {
  struct Layout {
    int nA, nB, ny;
    bool swapped;
    int64_t nAy, nBy, nC, nK;
    int64_t dense_cap;  // most active cells the dense path takes
    bool dense;         // the dense path is prepared
    FASTPID_HD explicit Layout(Shape s)
        : nA(s.n2 > s.n1 ? s.n2 : s.n1), nB(s.n2 > s.n1 ? s.n1 : s.n2), ny(s.ny), swapped(s.n2 > s.n1),
          nAy(int64_t(nA) * ny), nBy(int64_t(nB) * ny), nC(int64_t(nA) * nB),
          nK(int64_t(nB) * (nB + 1) / 2 * ny),
          dense_cap(imin(nC, refine_detail::kDenseCells)),
          dense(imin(nC, (int64_t(nA) + nB) * ny) <= refine_detail::kDenseCells) {}
    // Arrays, in doubles: 13 of nA*ny, 13 of nB*ny, 10 cell arrays, the factors, a few vectors;
    // the dense path adds the per-label inverses of L and the cell system.
    FASTPID_HD int64_t doubles() const {
      const int64_t base = 13 * nAy + 13 * nBy + 10 * nC + nK + 3 * ny + 2 * nA + 2 * nB;
      return base + (dense ? dense_doubles() : 0);
    }
    FASTPID_HD int64_t dense_doubles() const {
      return nK + int64_t(nB) * nB * ny + nC * ny + int64_t(nA) * nA * ny + dense_cap * ny + dense_cap * dense_cap +
             2 * dense_cap + 1;
    }
  };

  static FASTPID_HD int64_t workspace_doubles(Shape s) { return Layout(s).doubles(); }

  template <class Team>
  static FASTPID_HD void run(Team& team, const double* p, Shape s, SolverOptions opt, double* ws, DistOutputs out);
};

template <class Team>
class Refiner {
 public:
  FASTPID_HD Refiner(Team& team, Shape shape, SolverOptions opt, double* ws)
      : t(team), L(shape), shape(shape), opt(opt), nA(L.nA), nB(L.nB), ny(L.ny), rho(opt.penalty) {
    double* q = ws;
    auto take = [&q](int64_t n) { double* r = q; q += n; return r; };
    PA = take(L.nAy); a = take(L.nAy); UA = take(L.nAy); ga = take(L.nAy); rA = take(L.nAy);
    da = take(L.nAy); tA = take(L.nAy); uA = take(L.nAy); alphaA = take(L.nAy); defA = take(L.nAy);
    best_a = take(L.nAy); bestUA = take(L.nAy); bestDefA = take(L.nAy);
    PB = take(L.nBy); b = take(L.nBy); VB = take(L.nBy); gb = take(L.nBy); cB = take(L.nBy);
    db = take(L.nBy); tB = take(L.nBy); uB = take(L.nBy); betaB = take(L.nBy); defB = take(L.nBy);
    best_b = take(L.nBy); bestVB = take(L.nBy); bestDefB = take(L.nBy);
    w = take(L.nC); Z = take(L.nC); g = take(L.nC); R = take(L.nC); bestR = take(L.nC);
    cx = take(L.nC); cr = take(L.nC); cp = take(L.nC); cq = take(L.nC); cz = take(L.nC);
    K = take(L.nK);
    py = take(ny); ynorm = take(ny); bestYnorm = take(ny);
    pA = take(nA); shiftA = take(nA); pB = take(nB); shiftB = take(nB);
    if (L.dense) {
      Linv = take(L.nK); Kinv = take(int64_t(nB) * nB * ny); LAB = take(L.nC * ny);
      LAA = take(int64_t(nA) * nA * ny); Pact = take(L.dense_cap * ny); Cmat = take(L.dense_cap * L.dense_cap);
      xact = take(L.dense_cap + 1); actd = take(L.dense_cap);
    }
  }

  FASTPID_HD void solve(const double* P, DistOutputs out);

 private:
  Team& t;
  const RefineKernel::Layout L;
  const Shape shape;
  const SolverOptions opt;
  const int nA, nB, ny;
  double *PA, *a, *UA, *ga, *rA, *da, *tA, *uA, *alphaA, *defA, *best_a, *bestUA, *bestDefA;
  double *PB, *b, *VB, *gb, *cB, *db, *tB, *uB, *betaB, *defB, *best_b, *bestVB, *bestDefB;
  double *w, *Z, *g, *R, *bestR, *cx, *cr, *cp, *cq, *cz, *K;
  double *py, *ynorm, *bestYnorm, *pA, *shiftA, *pB, *shiftB;
  double *Linv = nullptr, *Kinv = nullptr, *LAB = nullptr, *LAA = nullptr, *Pact = nullptr, *Cmat = nullptr,
         *xact = nullptr, *actd = nullptr;  // dense path
  double best_up = 1e300, best_lo = -1e300;
  double rho;
  int steps = 0;

  FASTPID_HD int rank() const { return t.rank(); }
  FASTPID_HD int T() const { return t.size(); }
  FASTPID_HD double gap() const { return best_up - best_lo; }

  FASTPID_HD double entry(const double* P, int i, int j, int y) const {
    return L.swapped ? P[(int64_t(j) * shape.n2 + i) * ny + y] : P[(int64_t(i) * shape.n2 + j) * ny + y];
  }
  FASTPID_HD double team_dot(const double* x, const double* y, int64_t n) {
    double s = 0;
    for (int64_t e = rank(); e < n; e += T()) s += x[e] * y[e];
    return t.sum(s);
  }
  FASTPID_HD void copy(double* dst, const double* src, int64_t n) {
    for (int64_t e = rank(); e < n; e += T()) dst[e] = src[e];
  }

  FASTPID_HD void load(const double* P);
  FASTPID_HD void scaling_step(bool certify_now);
  FASTPID_HD void start_newton();
  FASTPID_HD double evaluate();
  FASTPID_HD double gradient();
  FASTPID_HD void certify(bool dual_valid);
  FASTPID_HD double primal_objective();
  FASTPID_HD double dual_objective(bool commit_if_better);
  FASTPID_HD void factorize();
  FASTPID_HD void solve_L(const double* vA, const double* vB, double* xA, double* xB);
  FASTPID_HD void apply_JT(const double* v, double* vA, double* vB);
  FASTPID_HD void apply_J(const double* xA, const double* xB, double* v);
  FASTPID_HD int newton_direction(double gnorm);
  FASTPID_HD int solve_cells_cg(double gnorm, double active);
  FASTPID_HD void solve_cells_dense();
  FASTPID_HD double D_inverse(int64_t c) const { return 1.0 / dmax(rho - R[c] * Z[c], 1e-3 * rho); }
  FASTPID_HD bool line_search(double psi);
  FASTPID_HD void recentre();
  FASTPID_HD void write(const double* P, DistOutputs out);
};

// ---------------------------------------------------------------------------------------
template <class Team>
FASTPID_HD void Refiner<Team>::load(const double* P) {
  for (int64_t e = rank(); e < L.nAy; e += T()) {
    const int i = int(e / ny), y = int(e % ny);
    double s = 0;
    for (int j = 0; j < nB; ++j) s += entry(P, i, j, y);
    PA[e] = s;
  }
  for (int64_t e = rank(); e < L.nBy; e += T()) {
    const int j = int(e / ny), y = int(e % ny);
    double s = 0;
    for (int i = 0; i < nA; ++i) s += entry(P, i, j, y);
    PB[e] = s;
  }
  t.sync();
  for (int y = rank(); y < ny; y += T()) {
    double s = 0;
    for (int i = 0; i < nA; ++i) s += PA[int64_t(i) * ny + y];
    py[y] = s;
  }
  for (int i = rank(); i < nA; i += T()) {
    double s = 0;
    for (int y = 0; y < ny; ++y) s += PA[int64_t(i) * ny + y];
    pA[i] = s;
  }
  for (int j = rank(); j < nB; j += T()) {
    double s = 0;
    for (int y = 0; y < ny; ++y) s += PB[int64_t(j) * ny + y];
    pB[j] = s;
  }
  t.sync();
  // Start of the scaling phase: Q0 = PA PB / py, i.e. R = 1, UA = PA, VB = PB / py.
  for (int64_t e = rank(); e < L.nAy; e += T()) UA[e] = PA[e];
  for (int64_t e = rank(); e < L.nBy; e += T()) {
    const double q = py[e % ny];
    VB[e] = q > 0 ? PB[e] / q : 0.0;
  }
  for (int64_t c = rank(); c < L.nC; c += T()) R[c] = 1.0;
  for (int64_t e = rank(); e < L.nAy; e += T()) best_a[e] = 0.0;
  for (int64_t e = rank(); e < L.nBy; e += T()) best_b[e] = 0.0;
  t.sync();
}

// One iteration of iterative scaling; the certificate (when asked) is taken at the coupling
// R UA VB after the two scalings, before the cell masses are updated.
template <class Team>
FASTPID_HD void Refiner<Team>::scaling_step(bool certify_now) {
  cells_times(t, R, VB, tA, nA, nB, ny);
  t.sync();
  for (int64_t e = rank(); e < L.nAy; e += T()) UA[e] = PA[e] > 0 && tA[e] > 0 ? PA[e] / tA[e] : 0.0;
  t.sync();
  cells_t_times(t, R, UA, tB, nA, nB, ny);
  t.sync();
  for (int64_t e = rank(); e < L.nBy; e += T()) VB[e] = PB[e] > 0 && tB[e] > 0 ? PB[e] / tB[e] : 0.0;
  t.sync();
  // Z = UA VB^T per cell (the scalings are plain numbers here: a = log UA, b = log VB).
  for (int64_t c = rank(); c < L.nC; c += T()) {
    const int i = int(c / nB), j = int(c % nB);
    double z = 0;
    for (int y = 0; y < ny; ++y) z += UA[int64_t(i) * ny + y] * VB[int64_t(j) * ny + y];
    Z[c] = z;
  }
  if (certify_now) {
    // The dual point (log UA, log VB) is usable only if no scaling underflowed to 0.
    double missing = 0;
    for (int64_t e = rank(); e < L.nAy; e += T()) {
      missing += PA[e] > 0 && !(UA[e] > 0);
      a[e] = UA[e] > 0 ? ::log(UA[e]) : 0.0;
    }
    for (int64_t e = rank(); e < L.nBy; e += T()) {
      missing += PB[e] > 0 && !(VB[e] > 0);
      b[e] = VB[e] > 0 ? ::log(VB[e]) : 0.0;
    }
    for (int64_t c = rank(); c < L.nC; c += T()) g[c] = Z[c] > 0 ? ::log(Z[c]) : refine_detail::kNoCell;
    missing = t.sum(missing);
    t.sync();
    certify(missing == 0);
  }
  t.sync();
  for (int64_t c = rank(); c < L.nC; c += T()) R[c] *= Z[c];
  t.sync();
}

// The primal upper bound of the coupling Q = R UA VB: rounded exactly onto the marginals
// (rows scaled down, then columns, then the remaining deficits added as one rank-one term
// per label), and its objective sum_cells [sum_y Q log Q - m log m].
template <class Team>
FASTPID_HD double Refiner<Team>::primal_objective() {
  cells_times(t, R, VB, tA, nA, nB, ny);
  t.sync();
  for (int64_t e = rank(); e < L.nAy; e += T()) {
    const double row = UA[e] * tA[e];
    alphaA[e] = row > PA[e] ? PA[e] / row : 1.0;
    uA[e] = UA[e] * alphaA[e];
  }
  t.sync();
  cells_t_times(t, R, uA, tB, nA, nB, ny);
  t.sync();
  for (int64_t e = rank(); e < L.nBy; e += T()) {
    const double col = VB[e] * tB[e];
    betaB[e] = col > PB[e] ? PB[e] / col : 1.0;
    defB[e] = dmax(PB[e] - betaB[e] * col, 0.0);
    uB[e] = VB[e] * betaB[e];
  }
  t.sync();
  cells_times(t, R, uB, tA, nA, nB, ny);
  t.sync();
  for (int64_t e = rank(); e < L.nAy; e += T()) defA[e] = dmax(PA[e] - uA[e] * tA[e], 0.0);
  t.sync();
  for (int y = rank(); y < ny; y += T()) {
    double s = 0;
    for (int i = 0; i < nA; ++i) s += defA[int64_t(i) * ny + y];
    ynorm[y] = s;
  }
  t.sync();
  double f = 0;
  for (int64_t c = rank(); c < L.nC; c += T()) {
    const int i = int(c / nB), j = int(c % nB);
    const double r = R[c];
    double mass = 0, ent = 0;
    for (int y = 0; y < ny; ++y) {
      const int64_t ea = int64_t(i) * ny + y, eb = int64_t(j) * ny + y;
      double q = r * uA[ea] * uB[eb];
      if (ynorm[y] > 0) q += defA[ea] * defB[eb] / ynorm[y];
      mass += q;
      ent += xlogx(q);
    }
    f += ent - xlogx(mass);
  }
  return t.sum(f);
}

// The dual lower bound of (a, b) with cell values g: shifted to feasibility either per
// value of side A or per value of side B, whichever gives the larger objective. When it
// improves on the best so far, the feasible point is stored in best_a, best_b.
template <class Team>
FASTPID_HD double Refiner<Team>::dual_objective(bool commit_if_better) {
  using refine_detail::kNoCell;
  double lin = 0;
  for (int64_t e = rank(); e < L.nAy; e += T())
    if (PA[e] > 0) lin += a[e] * PA[e];
  for (int64_t e = rank(); e < L.nBy; e += T())
    if (PB[e] > 0) lin += b[e] * PB[e];
  double lossA = 0, lossB = 0;
  for (int i = rank(); i < nA; i += T()) {
    double m = kNoCell;
    for (int j = 0; j < nB; ++j) m = dmax(m, g[int64_t(i) * nB + j]);
    shiftA[i] = m > kNoCell ? m : 0.0;
    lossA += pA[i] * shiftA[i];
  }
  for (int j = rank(); j < nB; j += T()) {
    double m = kNoCell;
    for (int i = 0; i < nA; ++i) m = dmax(m, g[int64_t(i) * nB + j]);
    shiftB[j] = m > kNoCell ? m : 0.0;
    lossB += pB[j] * shiftB[j];
  }
  lin = t.sum(lin);
  lossA = t.sum(lossA);
  lossB = t.sum(lossB);
  const bool by_A = lossA <= lossB;
  const double lo = lin - (by_A ? lossA : lossB);
  if (commit_if_better && lo > best_lo) {
    for (int64_t e = rank(); e < L.nAy; e += T()) best_a[e] = PA[e] > 0 ? a[e] - (by_A ? shiftA[e / ny] : 0.0) : 0.0;
    for (int64_t e = rank(); e < L.nBy; e += T()) best_b[e] = PB[e] > 0 ? b[e] - (by_A ? 0.0 : shiftB[e / ny]) : 0.0;
    best_lo = lo;
  }
  return lo;
}

template <class Team>
FASTPID_HD void Refiner<Team>::certify(bool dual_valid) {
  const double up = primal_objective();
  if (up < best_up) {
    best_up = up;
    copy(bestR, R, L.nC);
    copy(bestUA, uA, L.nAy);
    copy(bestVB, uB, L.nBy);
    copy(bestDefA, defA, L.nAy);
    copy(bestDefB, defB, L.nBy);
    for (int y = rank(); y < ny; y += T()) bestYnorm[y] = ynorm[y];
  }
  if (dual_valid) dual_objective(true);
  t.sync();
}

// ---------------------------------------------------------------------------------------
// Phase 2. State: (a, b) and multipliers w; evaluate() fills UA = exp(a - amax), VB, Z, g,
// R = w~ / Z with w~ = max(0, w + rho g), so that the coupling is again Q = R UA VB.
template <class Team>
FASTPID_HD void Refiner<Team>::start_newton() {
  for (int64_t e = rank(); e < L.nAy; e += T()) a[e] = PA[e] > 0 && UA[e] > 0 ? ::log(UA[e]) : 0.0;
  for (int64_t e = rank(); e < L.nBy; e += T()) b[e] = PB[e] > 0 && VB[e] > 0 ? ::log(VB[e]) : 0.0;
  for (int64_t c = rank(); c < L.nC; c += T()) w[c] = R[c];  // cell masses of the last scaling step
  t.sync();
  recentre();
}

// Gauge: (a(., y) + c, b(., y) - c) is the same point; keep max_j b(j, y) = 0 so that the
// exponentials stay in range.
template <class Team>
FASTPID_HD void Refiner<Team>::recentre() {
  for (int y = rank(); y < ny; y += T()) {
    double m = -1e300;
    for (int j = 0; j < nB; ++j)
      if (PB[int64_t(j) * ny + y] > 0) m = dmax(m, b[int64_t(j) * ny + y]);
    if (m > -1e300) {
      for (int j = 0; j < nB; ++j)
        if (PB[int64_t(j) * ny + y] > 0) b[int64_t(j) * ny + y] -= m;
      for (int i = 0; i < nA; ++i)
        if (PA[int64_t(i) * ny + y] > 0) a[int64_t(i) * ny + y] += m;
    }
  }
  t.sync();
}

template <class Team>
FASTPID_HD double Refiner<Team>::evaluate() {
  using refine_detail::kNoCell;
  // Per-row maxima keep every exponential <= 1 (shiftA, shiftB serve as the maxima here).
  for (int i = rank(); i < nA; i += T()) {
    double m = -1e300;
    for (int y = 0; y < ny; ++y)
      if (PA[int64_t(i) * ny + y] > 0) m = dmax(m, a[int64_t(i) * ny + y]);
    shiftA[i] = m > -1e300 ? m : 0.0;
  }
  for (int j = rank(); j < nB; j += T()) {
    double m = -1e300;
    for (int y = 0; y < ny; ++y)
      if (PB[int64_t(j) * ny + y] > 0) m = dmax(m, b[int64_t(j) * ny + y]);
    shiftB[j] = m > -1e300 ? m : 0.0;
  }
  t.sync();
  double lin = 0;
  for (int64_t e = rank(); e < L.nAy; e += T()) {
    UA[e] = PA[e] > 0 ? ::exp(a[e] - shiftA[e / ny]) : 0.0;
    if (PA[e] > 0) lin += a[e] * PA[e];
  }
  for (int64_t e = rank(); e < L.nBy; e += T()) {
    VB[e] = PB[e] > 0 ? ::exp(b[e] - shiftB[e / ny]) : 0.0;
    if (PB[e] > 0) lin += b[e] * PB[e];
  }
  t.sync();
  double quad = 0;
  for (int64_t c = rank(); c < L.nC; c += T()) {
    const int i = int(c / nB), j = int(c % nB);
    const double* ua = UA + int64_t(i) * ny;
    const double* vb = VB + int64_t(j) * ny;
    double z = 0;
    for (int y = 0; y < ny; ++y) z += ua[y] * vb[y];
    double gc;
    if (z > 0) {
      gc = ::log(z) + shiftA[i] + shiftB[j];
    } else {
      // Either no label has both marginals positive (no cell), or the sum underflowed:
      // then evaluate the log-sum-exp around its own maximum.
      double m = -1e300;
      for (int y = 0; y < ny; ++y)
        if (PA[int64_t(i) * ny + y] > 0 && PB[int64_t(j) * ny + y] > 0) m = dmax(m, a[int64_t(i) * ny + y] + b[int64_t(j) * ny + y]);
      if (m > -1e300) {
        double s = 0;
        for (int y = 0; y < ny; ++y)
          if (PA[int64_t(i) * ny + y] > 0 && PB[int64_t(j) * ny + y] > 0) s += ::exp(a[int64_t(i) * ny + y] + b[int64_t(j) * ny + y] - m);
        gc = m + ::log(s);
      } else {
        gc = kNoCell;
      }
    }
    Z[c] = z;
    g[c] = gc;
    const double wt = gc > kNoCell ? dmax(w[c] + rho * gc, 0.0) : 0.0;
    R[c] = z > 0 ? wt / z : 0.0;  // an underflowed cell carries no mass in the coupling
    quad += wt * wt;
  }
  lin = t.sum(lin);
  quad = t.sum(quad);
  return -lin + quad / (2 * rho);
}

// Gradient of Psi (marginals of the coupling minus those of P) into ga, gb; the coupling's
// row and column sums into rA, cB. Returns the l1 norm of the gradient.
template <class Team>
FASTPID_HD double Refiner<Team>::gradient() {
  cells_times(t, R, VB, tA, nA, nB, ny);
  cells_t_times(t, R, UA, tB, nA, nB, ny);
  t.sync();
  double norm = 0;
  for (int64_t e = rank(); e < L.nAy; e += T()) {
    rA[e] = UA[e] * tA[e];
    ga[e] = PA[e] > 0 ? rA[e] - PA[e] : 0.0;
    norm += ga[e] < 0 ? -ga[e] : ga[e];
  }
  for (int64_t e = rank(); e < L.nBy; e += T()) {
    cB[e] = VB[e] * tB[e];
    gb[e] = PB[e] > 0 ? cB[e] - PB[e] : 0.0;
    norm += gb[e] < 0 ? -gb[e] : gb[e];
  }
  return t.sum(norm);
}

// Factors of L: rA, cB become the regularised diagonals; K holds, per label, the Cholesky
// factor of diag(cB) - Q^T diag(1/rA) Q with Q(i, j) = R(i, j) UA(i, y) VB(j, y).
template <class Team>
FASTPID_HD void Refiner<Team>::factorize() {
  using refine_detail::kProximal;
  for (int64_t e = rank(); e < L.nAy; e += T()) {
    rA[e] = PA[e] > 0 ? rA[e] * (1 + kProximal) + kProximal * PA[e] + 1e-300 : 1.0;
    uA[e] = PA[e] > 0 ? UA[e] * UA[e] / rA[e] : 0.0;
  }
  for (int64_t e = rank(); e < L.nBy; e += T())
    cB[e] = PB[e] > 0 ? cB[e] * (1 + kProximal) + kProximal * PB[e] + 1e-300 : 1.0;
  t.sync();
  const int64_t pairs = int64_t(nB) * (nB + 1) / 2;
  for (int64_t q = rank(); q < pairs; q += T()) {
    int j, k;
    tri_unindex(q, j, k);
    double* kq = K + q * ny;
    for (int y = 0; y < ny; ++y) kq[y] = 0.0;
    for (int i = 0; i < nA; ++i) {
      const double rr = R[int64_t(i) * nB + j] * R[int64_t(i) * nB + k];
      if (rr == 0.0) continue;
      const double* s = uA + int64_t(i) * ny;
      for (int y = 0; y < ny; ++y) kq[y] += rr * s[y];
    }
    const double* vj = VB + int64_t(j) * ny;
    const double* vk = VB + int64_t(k) * ny;
    for (int y = 0; y < ny; ++y) kq[y] = (j == k ? cB[int64_t(j) * ny + y] : 0.0) - vj[y] * vk[y] * kq[y];
  }
  t.sync();
  cholesky_by_label(t, K, nB, ny);
  t.sync();
}

// x = L^-1 v (block elimination of side A, whose block is diagonal).
template <class Team>
FASTPID_HD void Refiner<Team>::solve_L(const double* vA, const double* vB, double* xA, double* xB) {
  for (int64_t e = rank(); e < L.nAy; e += T()) tA[e] = PA[e] > 0 ? UA[e] * vA[e] / rA[e] : 0.0;
  t.sync();
  cells_t_times(t, R, tA, tB, nA, nB, ny);
  t.sync();
  for (int64_t e = rank(); e < L.nBy; e += T()) xB[e] = PB[e] > 0 ? vB[e] - VB[e] * tB[e] : 0.0;
  t.sync();
  cholesky_solve_by_label(t, K, nB, ny, xB);
  t.sync();
  for (int64_t e = rank(); e < L.nBy; e += T()) tB[e] = VB[e] * xB[e];
  t.sync();
  cells_times(t, R, tB, tA, nA, nB, ny);
  t.sync();
  for (int64_t e = rank(); e < L.nAy; e += T()) xA[e] = PA[e] > 0 ? (vA[e] - UA[e] * tA[e]) / rA[e] : 0.0;
  t.sync();
}

// J^T v for a vector v on the cells (zero off the active set): each active cell's softmax
// p_c(y) = UA VB / Z scattered to its two sides.
template <class Team>
FASTPID_HD void Refiner<Team>::apply_JT(const double* v, double* vA, double* vB) {
  for (int64_t c = rank(); c < L.nC; c += T()) cz[c] = v[c] != 0.0 ? v[c] / Z[c] : 0.0;
  t.sync();
  cells_times(t, cz, VB, tA, nA, nB, ny);
  cells_t_times(t, cz, UA, tB, nA, nB, ny);
  t.sync();
  for (int64_t e = rank(); e < L.nAy; e += T()) vA[e] = UA[e] * tA[e];
  for (int64_t e = rank(); e < L.nBy; e += T()) vB[e] = VB[e] * tB[e];
  t.sync();
}

// (J x)_c = sum_y p_c(y) (xA(i, y) + xB(j, y)) on the active cells (R > 0), 0 elsewhere.
template <class Team>
FASTPID_HD void Refiner<Team>::apply_J(const double* xA, const double* xB, double* v) {
  for (int64_t c = rank(); c < L.nC; c += T()) {
    if (R[c] > 0) {
      const int i = int(c / nB), j = int(c % nB);
      double s = 0;
      for (int y = 0; y < ny; ++y) {
        const int64_t ea = int64_t(i) * ny + y, eb = int64_t(j) * ny + y;
        s += UA[ea] * VB[eb] * (xA[ea] + xB[eb]);
      }
      v[c] = s / Z[c];
    } else {
      v[c] = 0.0;
    }
  }
  t.sync();
}

// Newton direction (da, db) of Psi: (L + J^T D J) d = -grad, by Woodbury:
//   d = z - L^-1 J^T x,  z = L^-1 (-grad),  C x = J z,  C = D^-1 + J L^-1 J^T on the active cells.
// Returns the number of CG iterations (0 on the dense path).
template <class Team>
FASTPID_HD int Refiner<Team>::newton_direction(double gnorm) {
  factorize();
  for (int64_t e = rank(); e < L.nAy; e += T()) uA[e] = -ga[e];
  for (int64_t e = rank(); e < L.nBy; e += T()) uB[e] = -gb[e];
  t.sync();
  solve_L(uA, uB, da, db);  // z
  apply_J(da, db, cr);      // right-hand side of the cell system
  double active = 0;
  for (int64_t c = rank(); c < L.nC; c += T()) active += R[c] > 0;
  active = t.sum(active);
  int its = 0;
  if (L.dense && active <= double(L.dense_cap))
    solve_cells_dense();
  else
    its = solve_cells_cg(gnorm, active);
  apply_JT(cx, uA, uB);
  solve_L(uA, uB, uA, uB);
  for (int64_t e = rank(); e < L.nAy; e += T()) da[e] -= uA[e];
  for (int64_t e = rank(); e < L.nBy; e += T()) db[e] -= uB[e];
  t.sync();
  return its;
}

// C cx = cr by conjugate gradients (matrix-free: every product is two L solves' worth of
// products with R). The relative residual goes down to min(1e-6, 0.1 |grad|).
template <class Team>
FASTPID_HD int Refiner<Team>::solve_cells_cg(double gnorm, double active) {
  for (int64_t c = rank(); c < L.nC; c += T()) {
    cx[c] = 0.0;
    cp[c] = cr[c];
  }
  double rr = team_dot(cr, cr, L.nC);
  const double target = rr * dmin(1e-12, dmax(1e-26, 1e-2 * gnorm * gnorm));  // relative, squared
  const int max_cg = int(dmin(2.0 * active + 20.0, 2000.0));
  int it = 0;
  while (rr > target && it < max_cg) {
    apply_JT(cp, uA, uB);
    solve_L(uA, uB, uA, uB);
    apply_J(uA, uB, cq);
    for (int64_t c = rank(); c < L.nC; c += T())
      if (R[c] > 0) cq[c] += cp[c] * D_inverse(c);
    const double pq = team_dot(cp, cq, L.nC);
    if (!(pq > 0)) break;
    const double alpha = rr / pq;
    for (int64_t c = rank(); c < L.nC; c += T()) {
      cx[c] += alpha * cp[c];
      cr[c] -= alpha * cq[c];
    }
    const double rr_new = team_dot(cr, cr, L.nC);
    const double beta = rr_new / rr;
    rr = rr_new;
    for (int64_t c = rank(); c < L.nC; c += T()) cp[c] = cr[c] + beta * cp[c];
    t.sync();
    ++it;
  }
  return it;
}

// C cx = cr with C formed on the active cells and factorised. With H = diag(1/rA) Q per
// label, L^-1 has the blocks LAA = diag(1/rA) + H K^-1 H^T, LAB = -H K^-1, LBB = K^-1, and
//   C(k, l) = [k == l] / D_k + sum_y p_k(y) p_l(y) (LAA(i_k, i_l) + LAB(i_k, j_l) + LAB(i_l, j_k) + LBB(j_k, j_l)).
template <class Team>
FASTPID_HD void Refiner<Team>::solve_cells_dense() {
  inverse_by_label(t, K, nB, ny, Linv, Kinv);
  t.sync();
  // LAB(i, j, y) = -UA(i, y) / rA(i, y) sum_k R(i, k) VB(k, y) Kinv(k, j, y)
  for (int i = rank(); i < nA; i += T()) {
    double* out = LAB + int64_t(i) * nB * ny;
    for (int64_t e = 0; e < int64_t(nB) * ny; ++e) out[e] = 0.0;
    for (int k = 0; k < nB; ++k) {
      const double r = R[int64_t(i) * nB + k];
      if (r == 0.0) continue;
      const double* vk = VB + int64_t(k) * ny;
      for (int j = 0; j < nB; ++j) {
        const double* kinv = Kinv + (int64_t(k) * nB + j) * ny;
        double* o = out + int64_t(j) * ny;
        for (int y = 0; y < ny; ++y) o[y] += r * vk[y] * kinv[y];
      }
    }
    const double* ua = UA + int64_t(i) * ny;
    const double* ra = rA + int64_t(i) * ny;
    for (int j = 0; j < nB; ++j) {
      double* o = out + int64_t(j) * ny;
      for (int y = 0; y < ny; ++y) o[y] *= -ua[y] / ra[y];
    }
  }
  t.sync();
  // LAA(i, i2, y) = [i == i2] / rA(i, y) - UA(i2, y) / rA(i2, y) sum_j LAB(i, j, y) R(i2, j) VB(j, y)
  for (int i = rank(); i < nA; i += T()) {
    const double* lab = LAB + int64_t(i) * nB * ny;
    for (int i2 = 0; i2 < nA; ++i2) {
      double* o = LAA + (int64_t(i) * nA + i2) * ny;
      for (int y = 0; y < ny; ++y) o[y] = 0.0;
      for (int j = 0; j < nB; ++j) {
        const double r = R[int64_t(i2) * nB + j];
        if (r == 0.0) continue;
        const double* l = lab + int64_t(j) * ny;
        const double* vj = VB + int64_t(j) * ny;
        for (int y = 0; y < ny; ++y) o[y] += l[y] * r * vj[y];
      }
      const double* ua = UA + int64_t(i2) * ny;
      const double* ra2 = rA + int64_t(i2) * ny;
      const double* ra = rA + int64_t(i) * ny;
      for (int y = 0; y < ny; ++y) o[y] = (i == i2 ? 1.0 / ra[y] : 0.0) - ua[y] / ra2[y] * o[y];
    }
  }
  // The active cells, in order (rank 0; the list is small next to the work above).
  if (rank() == 0) {
    int64_t n = 0;
    for (int64_t c = 0; c < L.nC; ++c)
      if (R[c] > 0) actd[n++] = double(c);
    xact[0] = double(n);  // count, read after the sync below
  }
  t.sync();
  const int64_t n = int64_t(xact[0]);
  t.sync();
  for (int64_t k = rank(); k < n; k += T()) {
    const int64_t c = int64_t(actd[k]);
    const int i = int(c / nB), j = int(c % nB);
    for (int y = 0; y < ny; ++y) Pact[k * ny + y] = UA[int64_t(i) * ny + y] * VB[int64_t(j) * ny + y] / Z[c];
    xact[k] = cr[c];
  }
  t.sync();
  for (int64_t k = rank(); k < n; k += T()) {
    const int64_t ck = int64_t(actd[k]);
    const int ik = int(ck / nB), jk = int(ck % nB);
    const double* pk = Pact + k * ny;
    for (int64_t l = 0; l <= k; ++l) {
      const int64_t cl = int64_t(actd[l]);
      const int il = int(cl / nB), jl = int(cl % nB);
      const double* pl = Pact + l * ny;
      const double* laa = LAA + (int64_t(ik) * nA + il) * ny;
      const double* lab1 = LAB + (int64_t(ik) * nB + jl) * ny;
      const double* lab2 = LAB + (int64_t(il) * nB + jk) * ny;
      const double* lbb = Kinv + (int64_t(jk) * nB + jl) * ny;
      double v = 0;
      for (int y = 0; y < ny; ++y) v += pk[y] * pl[y] * (laa[y] + lab1[y] + lab2[y] + lbb[y]);
      Cmat[k * n + l] = v + (k == l ? D_inverse(ck) : 0.0);
    }
  }
  t.sync();
  cholesky_team(t, Cmat, int(n));
  cholesky_solve_team(t, Cmat, int(n), xact);
  for (int64_t c = rank(); c < L.nC; c += T()) cx[c] = 0.0;
  t.sync();
  for (int64_t k = rank(); k < n; k += T()) cx[int64_t(actd[k])] = xact[k];
  t.sync();
}

// Armijo backtracking along (da, db) from (a, b). No dual variable may move more than
// kMaxDualMove nats: a variable that carries a tiny probability can have a huge Newton step,
// and the linearisation of log-sum-exp is honest only over moderate moves. The direction is
// clipped coordinate by coordinate, which keeps the progress of the other variables; if that
// is no longer a descent direction, it is scaled as a whole instead. Returns false if no step
// decreases Psi; on success (a, b) and the evaluated state are at the new point.
template <class Team>
FASTPID_HD bool Refiner<Team>::line_search(double psi) {
  const double cap = refine_detail::kMaxDualMove;
  double move = 0, clipped = 0;
  for (int64_t e = rank(); e < L.nAy; e += T()) {
    move = dmax(move, da[e] < 0 ? -da[e] : da[e]);
    clipped += ga[e] * dmax(-cap, dmin(cap, da[e]));
  }
  for (int64_t e = rank(); e < L.nBy; e += T()) {
    move = dmax(move, db[e] < 0 ? -db[e] : db[e]);
    clipped += gb[e] * dmax(-cap, dmin(cap, db[e]));
  }
  move = t.max(move);
  clipped = t.sum(clipped);
  const bool clip = move > cap && clipped < 0;
  const double scale = move > cap && !clip ? cap / move : 1.0;
  double slope = 0;
  for (int64_t e = rank(); e < L.nAy; e += T()) {
    da[e] = clip ? dmax(-cap, dmin(cap, da[e])) : da[e] * scale;
    slope += ga[e] * da[e];
  }
  for (int64_t e = rank(); e < L.nBy; e += T()) {
    db[e] = clip ? dmax(-cap, dmin(cap, db[e])) : db[e] * scale;
    slope += gb[e] * db[e];
  }
  slope = t.sum(slope);
  if (!(slope < 0)) return false;
  // keep the current point in (uA, uB) while trial points are evaluated in (a, b)
  copy(uA, a, L.nAy);
  copy(uB, b, L.nBy);
  t.sync();
  double step = 1.0;
  for (int tries = 0; tries < 40; ++tries) {
    for (int64_t e = rank(); e < L.nAy; e += T()) a[e] = uA[e] + step * da[e];
    for (int64_t e = rank(); e < L.nBy; e += T()) b[e] = uB[e] + step * db[e];
    t.sync();
    const double trial = evaluate();
    if (trial <= psi + refine_detail::kArmijo * step * slope) return true;
    step *= 0.5;
  }
  copy(a, uA, L.nAy);
  copy(b, uB, L.nBy);
  t.sync();
  return false;
}

template <class Team>
FASTPID_HD void Refiner<Team>::solve(const double* P, DistOutputs out) {
  load(P);
  const int max_iter = opt.max_iter;
  const int scaling = opt.scaling_iters < max_iter ? opt.scaling_iters : max_iter;
  for (int k = 1; k <= scaling; ++k) {
    ++steps;
    scaling_step(k % refine_detail::kCheckEvery == 0 || k == scaling);
    if (k % refine_detail::kCheckEvery == 0 && gap() <= opt.tol) break;
  }
  if (steps == 0) scaling_step(true);  // max_iter == 0: certify the proxy itself
  if (gap() > opt.tol && steps < max_iter) {
    start_newton();
    int inner = 0;
    while (steps < max_iter) {
      const double psi = evaluate();
      const double gnorm = gradient();
      t.sync();
      certify(true);
      if (gap() <= opt.tol) break;
      if (gnorm <= dmax(1e-15, 0.1 * gap()) || inner >= refine_detail::kInnerMax) {
        // outer step of the augmented Lagrangian: multipliers from the current cell masses
        for (int64_t c = rank(); c < L.nC; c += T()) w[c] = R[c] * Z[c];
        rho = dmin(rho * opt.penalty_growth, refine_detail::kRhoMax);
        inner = 0;
        t.sync();
        continue;
      }
      ++steps;
      ++inner;
      newton_direction(gnorm);
      // No descent that Psi, in floating point, can see along the Newton direction (inexact
      // where CG solves a large active set). Forcing outer steps instead was tried: on dense
      // 128x128x16 it took 6x the time for a 20% smaller gap. Keep the best certificate.
      if (!line_search(psi)) break;
      recentre();
    }
  }
  write(P, out);
}

template <class Team>
FASTPID_HD void Refiner<Team>::write(const double* P, DistOutputs out) {
  (void)P;
  if (out.coupling) {
    for (int64_t c = rank(); c < L.nC; c += T()) {
      const int i = int(c / nB), j = int(c % nB);
      const int x1 = L.swapped ? j : i, x2 = L.swapped ? i : j;
      double* dst = out.coupling + (int64_t(x1) * shape.n2 + x2) * ny;
      for (int y = 0; y < ny; ++y) {
        const int64_t ea = int64_t(i) * ny + y, eb = int64_t(j) * ny + y;
        double q = bestR[c] * bestUA[ea] * bestVB[eb];
        if (bestYnorm[y] > 0) q += bestDefA[ea] * bestDefB[eb] / bestYnorm[y];
        dst[y] = q;
      }
    }
  }
  double* d1 = L.swapped ? out.dual2 : out.dual1;
  double* d2 = L.swapped ? out.dual1 : out.dual2;
  if (d1)
    for (int64_t e = rank(); e < L.nAy; e += T()) d1[e] = best_a[e];
  if (d2)
    for (int64_t e = rank(); e < L.nBy; e += T()) d2[e] = best_b[e];
  if (rank() == 0) {
    const double bound = dmax(best_up - best_lo, 0.0);
    *out.value = -best_up;
    *out.bound = bound;
    *out.converged = bound <= opt.tol && is_finite(best_up);
    *out.iterations = steps;
  }
}

template <class Team>
FASTPID_HD void RefineKernel::run(Team& team, const double* p, Shape s, SolverOptions opt, double* ws, DistOutputs out) {
  Refiner<Team> refiner(team, s, opt, ws);
  refiner.solve(p, out);
}

}  // namespace fastpid
