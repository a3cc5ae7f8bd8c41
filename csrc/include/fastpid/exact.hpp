// method="exact": a primal-dual interior-point method on the dual problem
//
//     max_{alpha, beta}  sum alpha(x1,y) P(x1,y) + sum beta(x2,y) P(x2,y)
//     s.t.  s_c = -logsumexp_y(alpha(x1,y) + beta(x2,y)) >= 0   for every cell c = (x1, x2)
//
// whose multipliers m_c are the cell masses of the optimal coupling,
// Q(x1,x2,y) = m_c softmax_y(alpha + beta). Only the entries with P(x1,y) > 0 and P(x2,y) > 0
// are variables ("triples"); the rest of Q is zero in every feasible coupling.
//
// Written once for every executor (DESIGN.md section 4): InteriorPoint<Team, Algebra> is the
// algorithm (structure of the distribution, start, Mehrotra predictor-corrector steps,
// certificate, outputs), every loop strided over a team. The Newton systems are the only part
// that differs per device, behind the Algebra interface:
//     prepare(team, st, opt)          once per distribution, after the structure is built
//     fall_back(team, st, opt)        once, if the method stalls: another elimination, if any
//     escalate(team, st, opt)         when a step collapses: a more accurate solve, if any (bool)
//     factorize(team, st, m, s, p)    the Newton matrix sum_c E_c Z_c E_c^T (below)
//     solve(team, st, rhs, x)         x = H^-1 rhs on the N = nA + nB dual variables
// CpuAlgebra (csrc/cpu/exact_cpu.cpp: tuned serial kernels, an elimination chosen per
// distribution) is what the OpenMP driver runs; TeamAlgebra (exact_team_algebra.hpp) is what
// the CUDA driver and the CPU test executor run.
//
// Each Newton system has (n1 + n2) ny unknowns. Its matrix is sum_c E_c Z_c E_c^T with
// Z_c = diag(Q_c) + (m_c / s_c - m_c) p_c p_c^T, where E_c scatters the triples of cell c to
// their alpha and beta entries. One beta per label is pinned (held at its value) to fix the
// gauge freedom (alpha + c(y), beta - c(y)).
//
// Every iteration also produces a certificate: the dual point is made feasible, and the
// coupling is rounded exactly onto the marginal constraints (per label, scale rows and columns
// down, then add the rank-one correction of the remaining mass), so
//     dual objective <= optimum <= f(rounded coupling)
// and their difference is the certified bound on every PID atom.
#pragma once
#include <cmath>

#include "fastpid/team.hpp"

namespace fastpid {

namespace exact_detail {
constexpr double kStepToBoundary = 0.99;  // fraction-to-boundary rule for m and s
constexpr double kMaxDualMove = 2.0;      // nats per iteration, for any dual variable (see below)
constexpr double kRefineGap = 1e-9;       // nats of mu * cells below which the step's solve is refined
constexpr double kRoundAbove = 10.0;      // predicted gaps (in tol) above which the primal is not rounded
constexpr double kMuFloor = 1e-3;         // centring targets stay above kMuFloor * tol / cells (see solve)
constexpr int kStallIterations = 16;      // iterations without mu halving that switch damping on (see solve)
constexpr double kRecentreStep = 1e-3;    // steps below this recentre the cell masses (see solve)
constexpr int kRecentreMax = 3;           // at most this many times per distribution
constexpr double kStartSlack = 0.003;     // slack of the tightest cell of each x1 at the start
constexpr int kScalingSteps = 40;
constexpr double kScalingFloor = 1e-250;  // cell masses of the scaling never reach 0 (underflow)
constexpr double kStartMassFloor = 1e-4;  // total mass added to the start's cell masses (spread evenly)
constexpr double kInfinity = HUGE_VAL;
// Cholesky pivots of the Newton systems (both algebras): a pivot below kPivotRelative of its
// diagonal (before the factorisation's own updates) is a direction the system does not
// determine; it is replaced by kPivotHuge, which zeroes the step along it.
constexpr double kPivotRelative = 1e-14;
constexpr double kPivotHuge = 1e64;
}  // namespace exact_detail

// Cuts one workspace (doubles) into typed arrays; with a null base it only counts, so the same
// code gives the workspace size before launch and the pointers inside the kernel.
struct Carver {
  double* base;
  int64_t used = 0;
  FASTPID_HD explicit Carver(double* b) : base(b) {}
  FASTPID_HD double* doubles(int64_t n) {
    double* r = base ? base + used : nullptr;
    used += n;
    return r;
  }
  FASTPID_HD int* ints(int64_t n) {  // doubles are at least as aligned as ints
    int* r = base ? reinterpret_cast<int*>(base + used) : nullptr;
    used += (n + 1) / 2;
    return r;
  }
};

// Doubles that Arrays::carve(Carver&, s) takes for shape s (Arrays default-constructible; s a
// Shape, or the k-source solver's UnionShape).
template <class Arrays, class ShapeOf>
FASTPID_HD int64_t carved_doubles(const ShapeOf& s) {
  Carver cv(nullptr);
  Arrays a;
  a.carve(cv, s);
  return cv.used;
}

// Sparse structure of one distribution, in the internal orientation: side x1 has the alpha
// variables (eliminated first on the sources' path), side x2 the beta variables, the side with
// fewer variables (the sides are swapped when that is the caller's x1). Views into the
// workspace, sized for the worst case of the shape.
struct ExactStructure {
  int n1 = 0, n2 = 0, ny = 0;
  bool swapped = false;              // internal x1 is the caller's x2
  int nA = 0, nB = 0, C = 0, T = 0;  // alpha and beta variables, cells, triples
  int* a_start;        // (n1 + 1): alpha variables of x1 are a_start[x1] .. (increasing y)
  int* a_index;        // (n1 * ny): variable of (x1, y), or -1
  int* a_y;            // (nA): label of each alpha variable
  int* b_index;        // (n2 * ny): variable of (x2, y), or -1
  int* b_x;            // (nB): x2 of each beta variable
  int* b_y;            // (nB): label of each beta variable
  int* pinned;         // (nB): beta variables held fixed to remove the gauge
  int* cell_start;     // (C + 1): triples of cell c (cells sorted by x1, then x2)
  int* cell_x1;        // (C)
  int* cell_x2;        // (C)
  int* x1_cell_start;  // (n1 + 1): cells of x1
  int* t_a;            // (T): triple -> alpha variable
  int* t_b;            // (T): triple -> beta variable
  int* t_y;            // (T): triple -> label
  int* t_c;            // (T): triple -> cell
  int* triple_of;      // (n1 * n2 * ny): triple of (x1, x2, y), or -1
  double* pa;          // (nA): marginal mass of each alpha variable
  double* pb;          // (nB)
  double* y_mass;      // (ny)
  FASTPID_HD int cells() const { return C; }
  FASTPID_HD int triples() const { return T; }
  FASTPID_HD int triple(int x1, int x2, int y) const { return triple_of[(int64_t(x1) * n2 + x2) * ny + y]; }

  FASTPID_HD void carve(Carver& cv, Shape s) {
    const int64_t nmax = s.n1 > s.n2 ? s.n1 : s.n2;
    const int64_t side = nmax * s.ny, cells = int64_t(s.n1) * s.n2, entries = s.size();
    a_start = cv.ints(nmax + 1);
    a_index = cv.ints(side);
    a_y = cv.ints(side);
    b_index = cv.ints(side);
    b_x = cv.ints(side);
    b_y = cv.ints(side);
    pinned = cv.ints(side);
    cell_start = cv.ints(cells + 1);
    cell_x1 = cv.ints(cells);
    cell_x2 = cv.ints(cells);
    x1_cell_start = cv.ints(nmax + 1);
    t_a = cv.ints(entries);
    t_b = cv.ints(entries);
    t_y = cv.ints(entries);
    t_c = cv.ints(entries);
    triple_of = cv.ints(entries);
    pa = cv.doubles(side);
    pb = cv.doubles(side);
    y_mass = cv.doubles(s.ny);
  }
};

template <class Team, class Algebra>
class InteriorPoint {
 public:
  // Workspace of the algorithm itself (the algebra brings its own), in doubles.
  static FASTPID_HD int64_t workspace_doubles(Shape s) { return carved_doubles<Arrays>(s); }

  FASTPID_HD InteriorPoint(Team& team, Shape shape, SolverOptions opt, double* ws, Algebra& algebra)
      : t(team), shape(shape), opt(opt), alg(algebra) {
    Carver cv(ws);
    w.carve(cv, shape);
  }

  FASTPID_HD void solve(const double* P, DistOutputs out);
  // Test of the algebra (tests/test_elimination.py): the Newton system at the start point of P,
  // factorised and solved for a fixed right-hand side; returns that solution's componentwise
  // backward error, its residual evaluated from the triples (direction_residual, independent of
  // the algebra's assembly) over |H| |x| + |rhs|.
  FASTPID_HD double newton_solve_residual(const double* P);

 private:
  struct Arrays {
    ExactStructure st;
    double *marg1, *marg2;                          // caller-orientation marginals
    int* counts;                                    // scalars rank 0 publishes to the team
    int* cell_id;                                   // (n1 * n2): cell of (x1, x2), or -1
    double *lam, *rd, *rhs, *dlam, *best_lam, *res, *corr;  // (N)
    double *m, *s, *s_true, *ds, *dm, *target, *comp;  // (C)
    double *p, *q, *q_round, *best_q, *tval;        // (T)
    double *row_sum, *col_sum, *y_norm, *x1_shift, *x2_shift;
    FASTPID_HD void carve(Carver& cv, Shape sh) {
      st.carve(cv, sh);
      const int64_t nmax = sh.n1 > sh.n2 ? sh.n1 : sh.n2;
      const int64_t side = nmax * sh.ny, N = int64_t(sh.n1 + sh.n2) * sh.ny;
      const int64_t C = int64_t(sh.n1) * sh.n2, T = sh.size();
      marg1 = cv.doubles(int64_t(sh.n1) * sh.ny);
      marg2 = cv.doubles(int64_t(sh.n2) * sh.ny);
      counts = cv.ints(8);
      cell_id = cv.ints(C);
      lam = cv.doubles(N); rd = cv.doubles(N); rhs = cv.doubles(N); dlam = cv.doubles(N); best_lam = cv.doubles(N);
      res = cv.doubles(N); corr = cv.doubles(N);
      m = cv.doubles(C); s = cv.doubles(C); s_true = cv.doubles(C); ds = cv.doubles(C); dm = cv.doubles(C);
      target = cv.doubles(C); comp = cv.doubles(C);
      p = cv.doubles(T); q = cv.doubles(T); q_round = cv.doubles(T); best_q = cv.doubles(T); tval = cv.doubles(T);
      row_sum = cv.doubles(side); col_sum = cv.doubles(side); y_norm = cv.doubles(sh.ny);
      x1_shift = cv.doubles(nmax);
      x2_shift = cv.doubles(nmax);
    }
  };

  Team& t;
  const Shape shape;
  const SolverOptions opt;
  Algebra& alg;
  Arrays w;

  FASTPID_HD int rank() const { return t.rank(); }
  FASTPID_HD int T() const { return t.size(); }
  FASTPID_HD int N() const { return w.st.nA + w.st.nB; }

  FASTPID_HD void build(const double* P);
  FASTPID_HD void begin(const double* P);
  FASTPID_HD void start();
  FASTPID_HD int scaling_steps() const;
  FASTPID_HD void scaling_start(int steps);
  FASTPID_HD void scaling_dense(int steps);
  FASTPID_HD void cell_slacks();
  FASTPID_HD void accumulate_triples(const double* init_a, const double* init_b, double sign, const double* val,
                                     double* out, bool rows, bool cols);
  FASTPID_HD void rows_then_columns_scaled();
  FASTPID_HD double rounded_objective();
  FASTPID_HD double round_primal(double& best_f);
  FASTPID_HD double shifted_dual();
  FASTPID_HD void direction(bool refine);
  FASTPID_HD double direction_residual(const double* x);
  FASTPID_HD void refine_direction();
  FASTPID_HD double step_length();
  FASTPID_HD void write(DistOutputs out, double best_f, double best_dual, int it);
};

// ---------------------------------------------------------------------------------------
// The structure: marginals (parallel), variable numbering and the cell list (prefix sums by
// rank 0, published through w.counts), triples (parallel over candidate cells).
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::build(const double* P) {
  const int n1 = shape.n1, n2 = shape.n2, ny = shape.ny;
  ExactStructure& st = w.st;
  double c1 = 0, c2 = 0;
  for (int64_t e = rank(); e < int64_t(n1) * ny; e += T()) {
    const int x1 = int(e / ny), y = int(e % ny);
    double v = 0;
    for (int x2 = 0; x2 < n2; ++x2) v += P[(int64_t(x1) * n2 + x2) * ny + y];
    w.marg1[e] = v;
    c1 += v > 0;
  }
  for (int64_t e = rank(); e < int64_t(n2) * ny; e += T()) {
    const int x2 = int(e / ny), y = int(e % ny);
    double v = 0;
    for (int x1 = 0; x1 < n1; ++x1) v += P[(int64_t(x1) * n2 + x2) * ny + y];
    w.marg2[e] = v;
    c2 += v > 0;
  }
  c1 = t.sum(c1);
  c2 = t.sum(c2);
  // Keep the side with fewer variables in the dense Schur complement.
  st.swapped = c2 > c1;
  const double* ma = st.swapped ? w.marg2 : w.marg1;
  const double* mb = st.swapped ? w.marg1 : w.marg2;
  st.n1 = st.swapped ? n2 : n1;
  st.n2 = st.swapped ? n1 : n2;
  st.ny = ny;
  const int N1 = st.n1, N2 = st.n2;
  t.sync();
  if (rank() == 0) {
    int nA = 0;
    for (int x1 = 0; x1 < N1; ++x1) {
      st.a_start[x1] = nA;
      for (int y = 0; y < ny; ++y) {
        const double v = ma[int64_t(x1) * ny + y];
        st.a_index[int64_t(x1) * ny + y] = v > 0 ? nA : -1;
        if (v > 0) st.a_y[nA] = y, st.pa[nA++] = v;
      }
    }
    st.a_start[N1] = nA;
    int nB = 0;
    for (int x2 = 0; x2 < N2; ++x2)
      for (int y = 0; y < ny; ++y) {
        const double v = mb[int64_t(x2) * ny + y];
        st.b_index[int64_t(x2) * ny + y] = v > 0 ? nB : -1;
        if (v > 0) st.b_x[nB] = x2, st.b_y[nB] = y, st.pb[nB++] = v;
      }
    for (int y = 0; y < ny; ++y) {
      double mass = 0;
      for (int x2 = 0; x2 < N2; ++x2) mass += mb[int64_t(x2) * ny + y];
      st.y_mass[y] = mass;
    }
    // Pin, for every label, the beta variable of largest mass.
    for (int b = 0; b < nB; ++b) st.pinned[b] = 0;
    for (int y = 0; y < ny; ++y) {
      int best = -1;
      double best_mass = 0;
      for (int x2 = 0; x2 < N2; ++x2) {
        const int b = st.b_index[int64_t(x2) * ny + y];
        if (b >= 0 && st.pb[b] > best_mass) best = b, best_mass = st.pb[b];
      }
      if (best >= 0) st.pinned[best] = 1;
    }
    w.counts[0] = nA;
    w.counts[1] = nB;
  }
  t.sync();
  st.nA = w.counts[0];
  st.nB = w.counts[1];
  for (int64_t cc = rank(); cc < int64_t(N1) * N2; cc += T()) {
    const int x1 = int(cc / N2), x2 = int(cc % N2);
    int n = 0;
    for (int y = 0; y < ny; ++y) n += st.a_index[int64_t(x1) * ny + y] >= 0 && st.b_index[int64_t(x2) * ny + y] >= 0;
    w.cell_id[cc] = n;
  }
  t.sync();
  if (rank() == 0) {
    int C = 0, Tn = 0;
    for (int x1 = 0; x1 < N1; ++x1) {
      st.x1_cell_start[x1] = C;
      for (int x2 = 0; x2 < N2; ++x2) {
        const int64_t cc = int64_t(x1) * N2 + x2;
        const int n = w.cell_id[cc];
        if (n == 0) {
          w.cell_id[cc] = -1;
          continue;
        }
        st.cell_start[C] = Tn;
        st.cell_x1[C] = x1;
        st.cell_x2[C] = x2;
        w.cell_id[cc] = C++;
        Tn += n;
      }
    }
    st.x1_cell_start[N1] = C;
    st.cell_start[C] = Tn;
    w.counts[2] = C;
    w.counts[3] = Tn;
  }
  t.sync();
  st.C = w.counts[2];
  st.T = w.counts[3];
  for (int64_t cc = rank(); cc < int64_t(N1) * N2; cc += T()) {
    const int x1 = int(cc / N2), x2 = int(cc % N2), c = w.cell_id[cc];
    int tr = c >= 0 ? st.cell_start[c] : 0;
    for (int y = 0; y < ny; ++y) {
      const int a = st.a_index[int64_t(x1) * ny + y], b = st.b_index[int64_t(x2) * ny + y];
      if (a < 0 || b < 0) {
        st.triple_of[cc * ny + y] = -1;
        continue;
      }
      st.triple_of[cc * ny + y] = tr;
      st.t_a[tr] = a;
      st.t_b[tr] = b;
      st.t_y[tr] = y;
      st.t_c[tr] = c;
      ++tr;
    }
  }
  t.sync();
}

// Start: a few steps of iterative scaling from the closed-form proxy coupling, then its dual
// point lowered or raised per x1 to a small slack, and its cell masses (scaling_start below).
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::start() {
  const ExactStructure& st = w.st;
  const int C = st.C;
  for (int64_t v = rank(); v < N(); v += T()) w.rd[v] = w.rhs[v] = w.dlam[v] = w.best_lam[v] = 0.0;
  for (int64_t c = rank(); c < C; c += T()) w.ds[c] = w.dm[c] = w.target[c] = w.comp[c] = 0.0;
  for (int64_t tr = rank(); tr < st.T; tr += T()) w.q[tr] = w.q_round[tr] = w.best_q[tr] = 0.0;
  t.sync();
  scaling_start(scaling_steps());
  cell_slacks();
  // Move the alphas of each x1 until its tightest cell has slack kStartSlack: the scaled dual
  // point is close to the optimum's but not feasible; shifted, it is both, and the cells of
  // each x1 start near their slacks at the optimum (0 where the optimal mass is positive).
  for (int x1 = rank(); x1 < st.n1; x1 += T()) {
    double smin = exact_detail::kInfinity;
    for (int c = st.x1_cell_start[x1]; c < st.x1_cell_start[x1 + 1]; ++c) smin = dmin(smin, w.s_true[c]);
    if (smin < exact_detail::kInfinity)
      for (int a = st.a_start[x1]; a < st.a_start[x1 + 1]; ++a) w.lam[a] += smin - exact_detail::kStartSlack;
  }
  t.sync();
  cell_slacks();
  for (int64_t c = rank(); c < C; c += T()) w.s[c] = w.s_true[c];
  t.sync();
}

// Scaling steps before the first interior-point iteration. Measured (same run, 1 thread):
// 30 to 40 are best on small and dense shapes (20x20x6, 10^3, 16^3: more cost more than the
// iterations they save); where the labels outnumber the values of both sources, an iteration
// (the cells' elimination over many labels) costs more and twice as many pay (20x20x101,
// 4x4x1000, 20x20x300; 320 would double 4x4x1000's time); otherwise, where the sources' dense
// Schur complement has order 1024 or more, an iteration is so dear that ten times as many pay
// (dense 32^3: 7 -> 6 iterations, 0.39 -> 0.33 s; 64^3: 7 -> 6, 24 -> 14 s; the sweeps are in
// results/exact_start_cpu.json).
template <class Team, class Algebra>
FASTPID_HD int InteriorPoint<Team, Algebra>::scaling_steps() const {
  const ExactStructure& st = w.st;
  if (st.ny > st.n1 + st.n2) return 2 * exact_detail::kScalingSteps;
  return st.nB >= 1024 ? 10 * exact_detail::kScalingSteps : exact_detail::kScalingSteps;
}

// Iterative scaling (the first phase of method="refine", here on the triples): the coupling
// Q = R_c UA_a VB_b, from the proxy's (R = 1, UA = P(x1, y), VB = P(x2 | y)), repeats
//     UA = PA / (R VB),   VB = PB / (R UA),   R_c <- R_c sum_y UA VB.
// Each step costs three passes over the triples (no exp or log), far less than an
// interior-point iteration, and it leaves a dual point (log UA, log VB) and cell masses much
// nearer the optimum than the proxy's: measured on every family, 40 steps save 1.5 to 4
// iterations, and the harsh family's rare stalls are halved (results/exact_start_cpu.json).
// Writes w.lam (the dual point) and w.m (the cell masses of the last scaled coupling plus a
// small floor, so that every cell starts interior).
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::scaling_start(int steps) {
  const ExactStructure& st = w.st;
  const int nA = st.nA, C = st.C;
  double* ua = w.lam;       // UA then VB, in the linear domain until the end
  double* vb = w.lam + nA;
  double* r = w.comp;       // R per cell (w.comp is rewritten by every direction)
  double* sums = w.rd;
  for (int64_t a = rank(); a < nA; a += T()) ua[a] = st.pa[a];
  for (int64_t b = rank(); b < st.nB; b += T()) vb[b] = st.pb[b] / st.y_mass[st.b_y[b]];
  for (int64_t c = rank(); c < C; c += T()) r[c] = 1.0;
  t.sync();
  if constexpr (Team::kSerial) {
    // Mostly filled: the same steps as products of dense n1 x n2 and n x ny matrices, whose
    // inner loops run over contiguous labels (profiled on 20x20x6: the steps' share of a solve
    // 10% -> 5.6% against the triples' scatter).
    if (2 * int64_t(st.T) >= int64_t(st.n1) * st.n2 * st.ny) {
      scaling_dense(steps);
      steps = 0;
    }
  }
  for (int k = 0; k < steps; ++k) {
    for (int64_t tr = rank(); tr < st.T; tr += T()) w.tval[tr] = r[st.t_c[tr]] * vb[st.t_b[tr]];
    t.sync();
    accumulate_triples(nullptr, nullptr, 1.0, w.tval, sums, true, false);
    for (int64_t a = rank(); a < nA; a += T())
      if (sums[a] > 0) ua[a] = st.pa[a] / sums[a];
    t.sync();
    for (int64_t tr = rank(); tr < st.T; tr += T()) w.tval[tr] = r[st.t_c[tr]] * ua[st.t_a[tr]];
    t.sync();
    accumulate_triples(nullptr, nullptr, 1.0, w.tval, sums, false, true);
    for (int64_t b = rank(); b < st.nB; b += T())
      if (sums[nA + b] > 0) vb[b] = st.pb[b] / sums[nA + b];
    t.sync();
    for (int64_t c = rank(); c < C; c += T()) {
      double z = 0;
      for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr) z += ua[st.t_a[tr]] * vb[st.t_b[tr]];
      // A cell whose mass decays geometrically is kept above underflow: a zero R would leave
      // variables without any mass to scale.
      r[c] = dmax(r[c] * z, exact_detail::kScalingFloor);
    }
    t.sync();
  }
  for (int64_t c = rank(); c < C; c += T()) {
    double z = 0;
    for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr) z += ua[st.t_a[tr]] * vb[st.t_b[tr]];
    w.m[c] = r[c] * z + exact_detail::kStartMassFloor / C;
    r[c] = 0.0;
  }
  t.sync();
  for (int64_t v = rank(); v < N(); v += T()) {
    w.lam[v] = simd_log(w.lam[v]);
    w.rd[v] = 0.0;
  }
  t.sync();
}

// One factor of a scaling step: f = target / sums where both are positive (f kept elsewhere);
// target is (x, y) with the labels contiguous, f and sums are too when labels_inner, else
// (y, x). In contiguous loops, so that the divisions vectorise (with strides computed at run
// time they did not: dense 4x4x1000, 80 steps, took 4.6 -> 5.4 ms).
FASTPID_HD inline void update_scaled(bool labels_inner, int n, int ny, const double* target, const double* sums, double* f) {
  if (labels_inner) {
    FASTPID_PRAGMA(omp simd)
    for (int e = 0; e < n * ny; ++e) f[e] = sums[e] > 0 && f[e] > 0 ? target[e] / sums[e] : f[e];
  } else {
    for (int y = 0; y < ny; ++y) {
      FASTPID_PRAGMA(omp simd)
      for (int x = 0; x < n; ++x) {
        const int e = y * n + x;
        f[e] = sums[e] > 0 && f[e] > 0 ? target[x * ny + y] / sums[e] : f[e];
      }
    }
  }
}

// acc[j] = sum_k a[k * ak] b[k * ldb + j] for j < width <= kScalingLanes: one row of lanes of a
// small matrix product (see scaling_dense), the sum over k inside so that the lanes stay in
// registers (three vectors) and nothing is stored until the end.
constexpr int kScalingLanes = 24;
FASTPID_HD inline void lanes_product(int width, int kk, const double* a, int ak, const double* b, int ldb, double* acc) {
  for (int j = 0; j < kScalingLanes; ++j) acc[j] = 0.0;
  for (int k = 0; k < kk; ++k) {
    const double ak_k = a[k * ak];
    const double* bk = b + k * ldb;
    FASTPID_PRAGMA(omp simd)
    for (int j = 0; j < kScalingLanes; ++j) acc[j] += j < width ? ak_k * bk[j] : 0.0;
  }
}

// C = A B for A (m x kk), B (kk x n), C (m x n), all dense with rows contiguous, in rows of
// lanes (lanes_product).
FASTPID_HD inline void small_product(int m, int n, int kk, const double* A, const double* B, double* C) {
  double acc[kScalingLanes];
  for (int i = 0; i < m; ++i)
    for (int x0 = 0; x0 < n; x0 += kScalingLanes) {
      const int width = n - x0 < kScalingLanes ? n - x0 : kScalingLanes;
      lanes_product(width, kk, A + i * kk, 1, B + x0, n, acc);
      for (int j = 0; j < width; ++j) C[i * n + x0 + j] = acc[j];
    }
}

// scaling_start's steps for one thread on dense arrays UA (x1, y), VB (x2, y) and R (x1, x2)
// (zero where a variable or a cell is absent, so every product sums exactly the triples'
// terms); takes and leaves UA, VB and R in scaling_start's arrays. Each step is three small
// matrix products (R VB, R^T UA, UA VB^T). Where the labels outnumber x2, their inner loops run
// over the labels; otherwise over x1 or x2 (UA, VB stored (y, x), R also transposed, RT), in
// rows of register lanes (lanes_product). Profiled on 20x20x6: with the labels inner, loops
// of 6, the steps took 8% of a solve; over x with a dot product per entry of R VB and an axpy
// per row of R^T UA, 6.7%; in lanes, 2.8% (the start, max_iter=0, 205 -> 176 us; five
// alternating runs each, results/exact_cholesky_cpu.json).
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::scaling_dense(int steps) {
  const ExactStructure& st = w.st;
  const int n1 = st.n1, n2 = st.n2, ny = st.ny, nA = st.nA;
  // Strides of UA and VB: labels contiguous (y inner), or x1 and x2 contiguous (x inner).
  const bool labels_inner = ny >= n2;
  const int ua_x = labels_inner ? ny : 1, ua_y = labels_inner ? 1 : n1;
  const int vb_x = labels_inner ? ny : 1, vb_y = labels_inner ? 1 : n2;
  double* ua = w.res;            // n1 x ny entries
  double* vb = w.res + n1 * ny;  // n2 x ny
  double* sums = w.rd;           // row sums (n1 x ny) then column sums (n2 x ny), as UA and VB
  double* r = w.tval;            // (n1 x n2)
  double* rt = w.q;              // (n2 x n1), x inner only; w.q is rewritten before it is read
  const double* pa = st.swapped ? w.marg2 : w.marg1;  // P(x1, y), dense
  const double* pb = st.swapped ? w.marg1 : w.marg2;
  for (int x1 = 0; x1 < n1; ++x1)
    for (int y = 0; y < ny; ++y) {
      const int a = st.a_index[x1 * ny + y];
      ua[x1 * ua_x + y * ua_y] = a >= 0 ? w.lam[a] : 0.0;
    }
  for (int x2 = 0; x2 < n2; ++x2)
    for (int y = 0; y < ny; ++y) {
      const int b = st.b_index[x2 * ny + y];
      vb[x2 * vb_x + y * vb_y] = b >= 0 ? w.lam[nA + b] : 0.0;
    }
  for (int e = 0; e < n1 * n2; ++e) r[e] = w.cell_id[e] >= 0 ? w.comp[w.cell_id[e]] : 0.0;
  if (!labels_inner) {
    for (int x1 = 0; x1 < n1; ++x1)
      for (int x2 = 0; x2 < n2; ++x2) rt[x2 * n1 + x1] = r[x1 * n2 + x2];
  }
  double acc[kScalingLanes];
  for (int k = 0; k < steps; ++k) {
    if (labels_inner) {
      // UA = PA / (R VB)
      for (int e = 0; e < n1 * ny; ++e) sums[e] = 0.0;
      for (int x1 = 0; x1 < n1; ++x1) {
        const double* rr = r + x1 * n2;
        double* row = sums + x1 * ny;
        for (int x2 = 0; x2 < n2; ++x2) {
          const double rc = rr[x2];
          const double* v = vb + x2 * ny;
          FASTPID_PRAGMA(omp simd)
          for (int y = 0; y < ny; ++y) row[y] += rc * v[y];
        }
      }
      update_scaled(true, n1, ny, pa, sums, ua);
      // VB = PB / (R^T UA)
      for (int e = 0; e < n2 * ny; ++e) sums[e] = 0.0;
      for (int x1 = 0; x1 < n1; ++x1) {
        const double* rr = r + x1 * n2;
        const double* u = ua + x1 * ny;
        for (int x2 = 0; x2 < n2; ++x2) {
          const double rc = rr[x2];
          double* col = sums + x2 * ny;
          FASTPID_PRAGMA(omp simd)
          for (int y = 0; y < ny; ++y) col[y] += rc * u[y];
        }
      }
      update_scaled(true, n2, ny, pb, sums, vb);
      // R = R * (UA VB^T), kept above underflow
      for (int x1 = 0; x1 < n1; ++x1) {
        double* rr = r + x1 * n2;
        const double* u = ua + x1 * ny;
        for (int x2 = 0; x2 < n2; ++x2) {
          const double* v = vb + x2 * ny;
          double dot = 0;
          for (int y = 0; y < ny; ++y) dot += u[y] * v[y];
          rr[x2] = rr[x2] == 0 ? 0.0 : dmax(rr[x2] * dot, exact_detail::kScalingFloor);
        }
      }
      continue;
    }
    // UA = PA / (R VB): sums (y, x1) = VB (y, x2) RT (x2, x1)
    small_product(ny, n1, n2, vb, rt, sums);
    update_scaled(false, n1, ny, pa, sums, ua);
    // VB = PB / (R^T UA): sums (y, x2) = UA (y, x1) R (x1, x2)
    small_product(ny, n2, n1, ua, r, sums);
    update_scaled(false, n2, ny, pb, sums, vb);
    // R = R * (UA^T VB), kept above underflow, and RT with it
    for (int x1 = 0; x1 < n1; ++x1)
      for (int x0 = 0; x0 < n2; x0 += kScalingLanes) {
        const int width = n2 - x0 < kScalingLanes ? n2 - x0 : kScalingLanes;
        lanes_product(width, ny, ua + x1, n1, vb + x0, n2, acc);
        for (int j = 0; j < width; ++j) {
          double& rc = r[x1 * n2 + x0 + j];
          rc = rc == 0 ? 0.0 : dmax(rc * acc[j], exact_detail::kScalingFloor);
          rt[(x0 + j) * n1 + x1] = rc;
        }
      }
  }
  for (int x1 = 0; x1 < n1; ++x1)
    for (int y = 0; y < ny; ++y) {
      const int a = st.a_index[x1 * ny + y];
      if (a >= 0) w.lam[a] = ua[x1 * ua_x + y * ua_y];
    }
  for (int x2 = 0; x2 < n2; ++x2)
    for (int y = 0; y < ny; ++y) {
      const int b = st.b_index[x2 * ny + y];
      if (b >= 0) w.lam[nA + b] = vb[x2 * vb_x + y * vb_y];
    }
  for (int e = 0; e < n1 * n2; ++e)
    if (w.cell_id[e] >= 0) w.comp[w.cell_id[e]] = r[e];
}

// s_c = -logsumexp over the cell's triples of lam_a + lam_b (into s_true), and the softmax p.
// In three passes so that the exps run in one long loop over the triples (it vectorises, see
// elementary.hpp), not in the cells' short ones: z = lam_a + lam_b into p and the cell's
// largest z into s_true, then p = exp(z - max), then the cell's normalisation.
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::cell_slacks() {
  const ExactStructure& st = w.st;
  const double* lam = w.lam;
  for (int64_t c = rank(); c < st.C; c += T()) {
    double zmax = -exact_detail::kInfinity;
    for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr) {
      w.p[tr] = lam[st.t_a[tr]] + lam[st.nA + st.t_b[tr]];
      zmax = dmax(zmax, w.p[tr]);
    }
    w.s_true[c] = zmax;
  }
  t.sync();
  FASTPID_PRAGMA(omp simd)
  for (int64_t tr = rank(); tr < st.T; tr += T()) w.p[tr] = simd_exp(w.p[tr] - w.s_true[st.t_c[tr]]);
  t.sync();
  for (int64_t c = rank(); c < st.C; c += T()) {
    const int t0 = st.cell_start[c], t1 = st.cell_start[c + 1];
    double sum = 0;
    for (int tr = t0; tr < t1; ++tr) sum += w.p[tr];
    const double inv = 1.0 / sum;
    for (int tr = t0; tr < t1; ++tr) w.p[tr] *= inv;
    w.s_true[c] = -(w.s_true[c] + simd_log(sum));
  }
  t.sync();
}

// out[v] = init[v] + sign * (sum of val over the triples of variable v), for the alpha
// variables (rows; init_a, or 0 when null) and/or the beta variables (cols; init_b); out may
// alias init. The serial schedule scatters triple by triple; a parallel team gathers per
// variable (each rank owns whole variables) through triple_of. Both add in the same order
// (alpha: x2 increasing, beta: x1 increasing), and sign = +-1 is exact, so they agree.
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::accumulate_triples(const double* init_a, const double* init_b, double sign,
                                                                  const double* val, double* out, bool rows, bool cols) {
  const ExactStructure& st = w.st;
  const int nA = st.nA, ny = st.ny;
  if constexpr (Team::kSerial) {
    if (rows)
      for (int a = 0; a < nA; ++a) out[a] = init_a ? init_a[a] : 0.0;
    if (cols)
      for (int b = 0; b < st.nB; ++b) out[nA + b] = init_b ? init_b[b] : 0.0;
    for (int tr = 0; tr < st.T; ++tr) {
      if (rows) out[st.t_a[tr]] += sign * val[tr];
      if (cols) out[nA + st.t_b[tr]] += sign * val[tr];
    }
  } else {
    if (rows)
      for (int64_t e = rank(); e < int64_t(st.n1) * ny; e += T()) {
        const int a = st.a_index[e];
        if (a < 0) continue;
        const int x1 = int(e / ny), y = int(e % ny);
        double v = init_a ? init_a[a] : 0.0;
        for (int x2 = 0; x2 < st.n2; ++x2) {
          const int tr = st.triple(x1, x2, y);
          if (tr >= 0) v += sign * val[tr];
        }
        out[a] = v;
      }
    if (cols)
      for (int64_t b = rank(); b < st.nB; b += T()) {
        const int x2 = st.b_x[b], y = st.b_y[b];
        double v = init_b ? init_b[b] : 0.0;
        for (int x1 = 0; x1 < st.n1; ++x1) {
          const int tr = st.triple(x1, x2, y);
          if (tr >= 0) v += sign * val[tr];
        }
        out[nA + b] = v;
      }
  }
  t.sync();
}

// w.q_round = w.q clipped at 0, its rows (alpha variables) scaled down to their marginals,
// then its columns: the team schedule of the first steps of rounded_objective.
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::rows_then_columns_scaled() {
  const ExactStructure& st = w.st;
  double* qr = w.q_round;
  double* sums = w.dlam;
  for (int64_t tr = rank(); tr < st.T; tr += T()) qr[tr] = w.q[tr] > 0 ? w.q[tr] : 0.0;
  t.sync();
  accumulate_triples(nullptr, nullptr, 1.0, qr, sums, true, false);
  for (int64_t tr = rank(); tr < st.T; tr += T()) {
    const double r = sums[st.t_a[tr]], target = st.pa[st.t_a[tr]];
    if (r > target) qr[tr] *= target / r;
  }
  t.sync();
  accumulate_triples(nullptr, nullptr, 1.0, qr, sums, false, true);
  for (int64_t tr = rank(); tr < st.T; tr += T()) {
    const double c = sums[st.nA + st.t_b[tr]], target = st.pb[st.t_b[tr]];
    if (c > target) qr[tr] *= target / c;
  }
  t.sync();
}

// Objective f(Q) = sum Q log(Q / m) = -H_Q(Y|X1,X2) of an exactly feasible rounding of w.q,
// written to w.q_round (w.dlam is scratch here: the last direction has been applied).
template <class Team, class Algebra>
FASTPID_HD double InteriorPoint<Team, Algebra>::rounded_objective() {
  const ExactStructure& st = w.st;
  const int nA = st.nA, nB = st.nB, ny = st.ny;
  double* qr = w.q_round;
  double* sums = w.dlam;
  rows_then_columns_scaled();
  // Remaining row and column deficits (non-negative), corrected by a rank-one term per label.
  accumulate_triples(nullptr, nullptr, 1.0, qr, sums, true, true);
  double* row = w.row_sum;
  double* col = w.col_sum;
  for (int64_t a = rank(); a < nA; a += T()) row[a] = dmax(st.pa[a] - sums[a], 0.0);
  for (int64_t b = rank(); b < nB; b += T()) col[b] = dmax(st.pb[b] - sums[nA + b], 0.0);
  t.sync();
  for (int y = rank(); y < ny; y += T()) {
    double norm = 0;
    for (int x1 = 0; x1 < st.n1; ++x1) {
      const int a = st.a_index[int64_t(x1) * ny + y];
      if (a >= 0) norm += row[a];
    }
    w.y_norm[y] = norm;
  }
  t.sync();
  for (int64_t tr = rank(); tr < st.T; tr += T()) {
    const double norm = w.y_norm[st.t_y[tr]];
    if (norm > 0) qr[tr] += row[st.t_a[tr]] * col[st.t_b[tr]] / norm;
  }
  t.sync();
  // f = sum_t xlogx(Q_t) - sum_c xlogx(mass_c), the first in one long loop (it vectorises).
  double f = 0;
  FASTPID_PRAGMA(omp simd reduction(+ : f))
  for (int64_t tr = rank(); tr < st.T; tr += T()) f += xlogx(qr[tr]);
  for (int64_t c = rank(); c < st.C; c += T()) {
    double mass = 0;
    for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr) mass += qr[tr];
    f -= xlogx(mass);
  }
  return t.sum(f);
}

// Dual objective of lambda made feasible and as tight as two shifts make it: the alphas of each
// x1 move by minus the largest LSE of its cells (alpha(x1, .) - v shifts every LSE of x1's
// cells by -v: lowered where a cell is violated, raised where all are slack), then the betas of
// each x2 likewise over its cells. Every LSE ends <= 0 (feasible), and each x1 and x2 has a cell
// at 0, so no single shift can raise the objective further.
template <class Team, class Algebra>
FASTPID_HD double InteriorPoint<Team, Algebra>::shifted_dual() {
  const ExactStructure& st = w.st;
  double dual = 0;
  for (int x1 = rank(); x1 < st.n1; x1 += T()) {
    double v = -exact_detail::kInfinity;
    for (int c = st.x1_cell_start[x1]; c < st.x1_cell_start[x1 + 1]; ++c) v = dmax(v, -w.s_true[c]);
    if (!(v > -exact_detail::kInfinity)) v = 0.0;  // no cells: no variables either
    w.x1_shift[x1] = v;
    for (int a = st.a_start[x1]; a < st.a_start[x1 + 1]; ++a) dual += (w.lam[a] - v) * st.pa[a];
  }
  t.sync();
  for (int x2 = rank(); x2 < st.n2; x2 += T()) {
    double v = -exact_detail::kInfinity;
    for (int x1 = 0; x1 < st.n1; ++x1) {
      const int c = w.cell_id[int64_t(x1) * st.n2 + x2];
      if (c >= 0) v = dmax(v, -w.s_true[c] - w.x1_shift[x1]);
    }
    w.x2_shift[x2] = v > -exact_detail::kInfinity ? v : 0.0;
  }
  t.sync();
  for (int64_t b = rank(); b < st.nB; b += T()) dual += (w.lam[st.nA + b] - w.x2_shift[st.b_x[b]]) * st.pb[b];
  return t.sum(dual);
}

// Newton direction of the system
//     sum_c m_c grad LSE_c = P,   s_c + LSE_c(lambda) = 0,   m_c s_c = target_c
// for the targets in w.target: fills w.dlam, w.dm and w.ds.
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::direction(bool refine) {
  const ExactStructure& st = w.st;
  if constexpr (Team::kSerial) {  // the steps of the parallel schedule below, fused into one pass
    for (int v = 0; v < N(); ++v) w.rhs[v] = w.rd[v];
    for (int c = 0; c < st.C; ++c) {
      const double comp = (w.target[c] - w.m[c] * w.s[c] + w.m[c] * (w.s[c] - w.s_true[c])) / w.s[c];
      w.comp[c] = comp;
      for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr) {
        const double v = w.p[tr] * comp;
        w.rhs[st.t_a[tr]] -= v;
        w.rhs[st.nA + st.t_b[tr]] -= v;
      }
    }
  } else {
    for (int64_t c = rank(); c < st.C; c += T()) {
      const double comp = (w.target[c] - w.m[c] * w.s[c] + w.m[c] * (w.s[c] - w.s_true[c])) / w.s[c];
      w.comp[c] = comp;
      for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr) w.tval[tr] = w.p[tr] * comp;
    }
    t.sync();
    accumulate_triples(w.rd, w.rd + st.nA, -1.0, w.tval, w.rhs, true, true);
  }
  for (int64_t v = rank(); v < N(); v += T()) w.dlam[v] = 0.0;
  t.sync();
  alg.solve(t, st, w.rhs, w.dlam);
  t.sync();
  if (refine) refine_direction();
  for (int64_t c = rank(); c < st.C; c += T()) {
    double g = 0;
    for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr)
      g += w.p[tr] * (w.dlam[st.t_a[tr]] + w.dlam[st.nA + st.t_b[tr]]);
    w.ds[c] = w.s_true[c] - w.s[c] - g;
    w.dm[c] = w.comp[c] + w.m[c] / w.s[c] * g;
  }
  t.sync();
}

// w.res = rhs - H x from the triples (H x = sum_c E_c Z_c E_c^T x, Z_c = diag(m_c p) + d_c p p^T),
// zero at the pinned betas; returns its largest |entry|.
template <class Team, class Algebra>
FASTPID_HD double InteriorPoint<Team, Algebra>::direction_residual(const double* x) {
  const ExactStructure& st = w.st;
  const int nA = st.nA;
  for (int64_t c = rank(); c < st.C; c += T()) {
    const int t0 = st.cell_start[c], t1 = st.cell_start[c + 1];
    double g = 0;
    for (int tr = t0; tr < t1; ++tr) g += w.p[tr] * (x[st.t_a[tr]] + x[nA + st.t_b[tr]]);
    const double m = w.m[c], d = m / w.s[c] - m;
    for (int tr = t0; tr < t1; ++tr) w.tval[tr] = w.p[tr] * (m * (x[st.t_a[tr]] + x[nA + st.t_b[tr]]) + d * g);
  }
  t.sync();
  accumulate_triples(w.rhs, w.rhs + nA, -1.0, w.tval, w.res, true, true);
  double norm = 0;
  for (int64_t v = rank(); v < N(); v += T()) {
    if (v >= nA && st.pinned[v - nA]) w.res[v] = 0.0;
    norm = dmax(norm, w.res[v] < 0 ? -w.res[v] : w.res[v]);
  }
  return t.max(norm);
}

// One step of iterative refinement of w.dlam: dlam + H^-1 (rhs - H dlam). Late in the method
// H's condition grows like 1 / mu and the factorisation loses digits: measured, without it the
// marginal residuals stop falling near 1e-10 and about 9% of 20x20x6 histograms asked for 1e-10
// nats stopped between 1e-10 and 4e-10. The refined direction is kept only where it lowers the
// residual: where the factorisation has lost every digit along some direction (a pivot just
// above the cut of 1e-14 of its diagonal), the correction is amplified along it instead (traced
// on a 12x12x8 histogram of 60 samples: the residual 7.7e-8 -> 7.5e-7 and a dual move of 16
// nats, after which the run stopped short). Measured on 2,000 such histograms at 1e-10 nats
// (half of 60 samples, half of 5,000): stops short 10 -> 0 on the CPU, 42 -> 13 with the team
// algebra; the harsh family's 1.19M draws at 1e-8 bits: 33 stops before and after; iterations
// of every family unchanged (results/exact_refine_check.json). Further steps changed nothing.
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::refine_direction() {
  const double norm = direction_residual(w.dlam);
  for (int64_t v = rank(); v < N(); v += T()) w.corr[v] = 0.0;
  t.sync();
  alg.solve(t, w.st, w.res, w.corr);
  t.sync();
  for (int64_t v = rank(); v < N(); v += T()) w.corr[v] += w.dlam[v];  // the refined direction
  t.sync();
  if (direction_residual(w.corr) < norm) {
    for (int64_t v = rank(); v < N(); v += T()) w.dlam[v] = w.corr[v];
    t.sync();
  }
}

// Longest step along (w.dm, w.ds), up to 1, that keeps every multiplier and slack positive
// with the fraction-to-boundary rule.
template <class Team, class Algebra>
FASTPID_HD double InteriorPoint<Team, Algebra>::step_length() {
  double step = 1.0;
  for (int64_t c = rank(); c < w.st.C; c += T()) {
    if (w.dm[c] < 0) step = dmin(step, -exact_detail::kStepToBoundary * w.m[c] / w.dm[c]);
    if (w.ds[c] < 0) step = dmin(step, -exact_detail::kStepToBoundary * w.s[c] / w.ds[c]);
  }
  return -t.max(-step);
}

// The current coupling rounded (rounded_objective), kept in w.best_q if its objective is the
// lowest so far; returns that objective.
template <class Team, class Algebra>
FASTPID_HD double InteriorPoint<Team, Algebra>::round_primal(double& best_f) {
  const double f = rounded_objective();
  if (f < best_f) {
    best_f = f;
    for (int64_t tr = rank(); tr < w.st.T; tr += T()) w.best_q[tr] = w.q_round[tr];
  }
  t.sync();
  return f;
}

// The structure of P, the algebra's storage for it and the start point (solve and
// newton_solve_residual).
template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::begin(const double* P) {
  build(P);
  alg.prepare(t, w.st, opt);
  t.sync();
  start();
}

template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::solve(const double* P, DistOutputs out) {
  begin(P);
  const ExactStructure& st = w.st;
  const int nA = st.nA, C = st.C;

  double best_f = exact_detail::kInfinity, best_dual = -exact_detail::kInfinity;
  double gap_at_round = 0, mu_at_round = 0;  // gap and mu where the primal was last rounded
  bool rounded_now = false;
  // The gap mu * C need not fall far below tol, and driving it further only spoils the Newton
  // systems (their rank-one cell terms grow like 1 / mu) while the marginal residuals, which the
  // primal rounding pays for, stop falling (traced: mu at 1e-28, residuals stuck at 1e-8, the
  // bound just above tol). Measured on the harsh family at tol 1e-8 bits (597,505 inputs): the
  // floor alone takes the stops short from 45 to 24; on 597,477 held-out inputs it also makes
  // 2 new ones, which converged without it (results/exact_stall_cpu.json).
  const double mu_floor = C > 0 ? exact_detail::kMuFloor * opt.tol / C : 0.0;
  // Damping against limit cycles: mu rising and falling with period 2 to 4 (each step cut by the
  // slacks or the trust region, never converging). Once mu has not halved for kStallIterations,
  // every step that follows an iteration whose mu rose is halved. Off until then, so that a run
  // whose mu keeps halving never sees it (measured: 24 -> 17 stops of the 597,505, none new).
  double mu_ref = exact_detail::kInfinity, mu_before = exact_detail::kInfinity;
  int since_halved = 0;
  bool damped = false;
  int recentred = 0;
  int it = 0;
  for (;; ++it) {
    // Residuals of the marginal constraints at the current point (w.s_true and w.p hold
    // -LSE and the softmax of every cell at w.lam).
    if constexpr (Team::kSerial) {  // fused, as in direction()
      for (int a = 0; a < nA; ++a) w.rd[a] = st.pa[a];
      for (int b = 0; b < st.nB; ++b) w.rd[nA + b] = st.pb[b];
      for (int c = 0; c < C; ++c)
        for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr) {
          w.q[tr] = w.m[c] * w.p[tr];
          w.rd[st.t_a[tr]] -= w.q[tr];
          w.rd[nA + st.t_b[tr]] -= w.q[tr];
        }
    } else {
      for (int64_t c = rank(); c < C; c += T())
        for (int tr = st.cell_start[c]; tr < st.cell_start[c + 1]; ++tr) w.q[tr] = w.m[c] * w.p[tr];
      t.sync();
      accumulate_triples(st.pa, st.pb, -1.0, w.q, w.rd, true, true);
    }
    // Certificate. Dual: lambda made feasible (shifted_dual).
    const double dual = shifted_dual();
    t.sync();
    if (dual > best_dual) {
      best_dual = dual;
      for (int x1 = rank(); x1 < st.n1; x1 += T())
        for (int a = st.a_start[x1]; a < st.a_start[x1 + 1]; ++a) w.best_lam[a] = w.lam[a] - w.x1_shift[x1];
      for (int64_t b = rank(); b < st.nB; b += T()) w.best_lam[nA + b] = w.lam[nA + b] - w.x2_shift[st.b_x[b]];
    }
    double mu = 0;
    for (int64_t c = rank(); c < C; c += T()) mu += w.m[c] * w.s[c];
    mu = C > 0 ? t.sum(mu) / C : 0.0;
    if (mu < 0.5 * mu_ref) {
      mu_ref = mu;
      since_halved = 0;
    } else if (++since_halved >= exact_detail::kStallIterations) {
      // Stalled: the algebra may switch to another elimination of the Newton systems (the
      // CPU's sources' path loses along a tiny-mass variable's direction once the cells' rank-one
      // terms grow like 1 / mu: its pivot is cut, its move is zero and the marginal residual
      // there never falls; the cells' elimination has no such cancellation), once.
      if (!damped) alg.fall_back(t, st, opt);
      damped = true;
    }
    const bool last = it >= opt.max_iter || C == 0;
    // Primal: the coupling m * p rounded exactly onto the constraints (a log per triple). The
    // gap of the current point falls about like mu, so it is predicted from the last one
    // evaluated and the rounding skipped while the prediction is far above tol: measured on
    // every family and the harsh one, half the roundings are skipped and 1 in 100
    // distributions takes one more iteration. Once mu sits at its floor the prediction stops
    // falling with it, so from there the primal is rounded every iteration.
    if (it == 0 || last || gap_at_round * mu <= exact_detail::kRoundAbove * opt.tol * mu_at_round || mu <= 2 * mu_floor) {
      gap_at_round = round_primal(best_f) - dual;
      mu_at_round = mu;
      rounded_now = true;
    } else {
      rounded_now = false;
    }
    if (best_f - best_dual <= opt.tol || last) break;

    alg.factorize(t, st, w.m, w.s, w.p);
    t.sync();

    // Mehrotra predictor-corrector: the affine direction chooses the centring parameter and
    // supplies the second-order term of the complementarity products.
    for (int64_t c = rank(); c < C; c += T()) w.target[c] = 0.0;
    t.sync();
    direction(false);
    double step = step_length();
    double mu_aff = 0;
    for (int64_t c = rank(); c < C; c += T()) mu_aff += (w.m[c] + step * w.dm[c]) * (w.s[c] + step * w.ds[c]);
    mu_aff = t.sum(mu_aff) / C;
    const double ratio = dmin(1.0, dmax(mu_aff / mu, 0.0));
    const double sigma = ratio * ratio * ratio;
    for (int64_t c = rank(); c < C; c += T()) w.target[c] = dmax(sigma * mu, mu_floor) - w.dm[c] * w.ds[c];
    t.sync();
    direction(mu * C < exact_detail::kRefineGap);  // the step taken: refined once the gap is tiny
    step = step_length();
    // Trust region on the dual point: LSE is linear only over moderate moves, and the
    // Newton step of a variable that carries a tiny probability can be huge.
    double max_move = 0;
    for (int64_t v = rank(); v < N(); v += T()) max_move = dmax(max_move, w.dlam[v] < 0 ? -w.dlam[v] : w.dlam[v]);
    max_move = t.max(max_move);
    if (step * max_move > exact_detail::kMaxDualMove) step = exact_detail::kMaxDualMove / max_move;
    // Badly centred: cells whose product m s is orders of magnitude below mu (a mass that
    // should be 0 at a large slack, next to cells far from theirs) make the Newton direction
    // move the dual by hundreds of nats and every step tiny. Traced on functionally dependent
    // and near-copied sources (X2 = g(X1) with P(x1, y) down to 1e-26): steps of 1e-5 to 1e-2
    // from the first iteration, 100 iterations, bounds up to 8e-3 bits. Raising those masses
    // to mu / s puts every cell back on the central path; the iteration is redone from there
    // (those inputs then converge in 13 to 46 iterations; on the other families the rule never
    // fires, and the harsh family's iterations fell 3%: results/exact_structured_cpu.json).
    if (step < exact_detail::kRecentreStep && recentred < exact_detail::kRecentreMax) {
      for (int64_t c = rank(); c < C; c += T()) w.m[c] = dmax(w.m[c], mu / w.s[c]);
      t.sync();
      ++recentred;
      continue;
    }
    if (damped && mu > mu_before) step *= 0.5;
    mu_before = mu;
    if (!(step > 1e-14)) {
      // No progress along this direction: the iteration is redone from the same point with the
      // algebra's more accurate solve where it has one, else the certificate reached is kept.
      if (alg.escalate(t, st, opt)) continue;
      if (!rounded_now) round_primal(best_f);
      break;
    }
    for (int64_t v = rank(); v < N(); v += T()) w.lam[v] += step * w.dlam[v];
    t.sync();
    cell_slacks();
    for (int64_t c = rank(); c < C; c += T()) {
      w.m[c] += step * w.dm[c];
      w.s[c] += step * w.ds[c];
    }
    t.sync();
  }
  write(out, best_f, best_dual, it);
}

template <class Team, class Algebra>
FASTPID_HD double InteriorPoint<Team, Algebra>::newton_solve_residual(const double* P) {
  begin(P);
  const ExactStructure& st = w.st;
  alg.factorize(t, st, w.m, w.s, w.p);
  t.sync();
  for (int64_t v = rank(); v < N(); v += T()) {
    const bool pinned = v >= st.nA && st.pinned[v - st.nA];  // no equation: held at 0
    w.rhs[v] = pinned ? 0.0 : cos(1.7 * double(v) + 0.3);
    w.dlam[v] = 0.0;
  }
  t.sync();
  alg.solve(t, st, w.rhs, w.dlam);
  t.sync();
  direction_residual(w.dlam);
  // The solve's componentwise backward error, max_v |rhs - H x|_v / (|H| |x| + |rhs|)_v (Oettli
  // and Prager): a backward-stable factorisation leaves it near the rounding unit whatever H's
  // condition, whereas |rhs - H x| / |rhs| grows with it (measured on structured inputs with
  // many empty cells: up to 2.6e-9 from the same factorisations whose backward error is 1e-16).
  // |H| |x| is formed from the triples like H x with every term taken positive; H's terms share
  // one sign where m / s > m (every slack below 1), so this is |H| |x| itself there.
  for (int64_t c = rank(); c < st.C; c += T()) {
    const int t0 = st.cell_start[c], t1 = st.cell_start[c + 1];
    double g = 0;
    for (int tr = t0; tr < t1; ++tr) g += w.p[tr] * (fabs(w.dlam[st.t_a[tr]]) + fabs(w.dlam[st.nA + st.t_b[tr]]));
    const double m = w.m[c], d = fabs(m / w.s[c] - m);
    for (int tr = t0; tr < t1; ++tr)
      w.tval[tr] = w.p[tr] * (m * (fabs(w.dlam[st.t_a[tr]]) + fabs(w.dlam[st.nA + st.t_b[tr]])) + d * g);
  }
  for (int64_t v = rank(); v < N(); v += T()) w.rhs[v] = fabs(w.rhs[v]);
  t.sync();
  accumulate_triples(w.rhs, w.rhs + st.nA, 1.0, w.tval, w.corr, true, true);
  double backward = 0;
  for (int64_t v = rank(); v < N(); v += T()) {
    const double r = fabs(w.res[v]);
    if (r > 0) backward = dmax(backward, w.corr[v] > 0 ? r / w.corr[v] : 1.0);
  }
  return t.max(backward);
}

template <class Team, class Algebra>
FASTPID_HD void InteriorPoint<Team, Algebra>::write(DistOutputs out, double best_f, double best_dual, int it) {
  const ExactStructure& st = w.st;
  const int ny = st.ny;
  if (out.coupling) {
    for (int64_t e = rank(); e < shape.size(); e += T()) out.coupling[e] = 0.0;
    t.sync();
    for (int64_t tr = rank(); tr < st.T; tr += T()) {
      const int c = st.t_c[tr], x1 = st.cell_x1[c], x2 = st.cell_x2[c];
      const int i1 = st.swapped ? x2 : x1, i2 = st.swapped ? x1 : x2;
      out.coupling[(int64_t(i1) * shape.n2 + i2) * ny + st.t_y[tr]] = w.best_q[tr];
    }
  }
  double* da = st.swapped ? out.dual2 : out.dual1;
  double* db = st.swapped ? out.dual1 : out.dual2;
  if (da)
    for (int64_t e = rank(); e < int64_t(st.n1) * ny; e += T()) da[e] = st.a_index[e] >= 0 ? w.best_lam[st.a_index[e]] : 0.0;
  if (db)
    for (int64_t e = rank(); e < int64_t(st.n2) * ny; e += T())
      db[e] = st.b_index[e] >= 0 ? w.best_lam[st.nA + st.b_index[e]] : 0.0;
  if (rank() == 0) {
    const double bound = dmax(best_f - best_dual, 0.0);
    *out.value = -best_f;
    *out.bound = bound;
    *out.converged = bound <= opt.tol && is_finite(best_f);
    *out.iterations = it;
  }
}

}  // namespace fastpid
