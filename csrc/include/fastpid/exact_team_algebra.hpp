// The Algebra of the exact solver (exact.hpp) for a team: what the CUDA driver runs (a thread
// block per distribution) and what the CPU test executor runs with teams of 1 to 256 ranks.
//
// The Newton matrix is eliminated on the sources, as CpuAlgebra does on its sources' path: the
// alpha unknowns of each x1 (a dense block of k <= ny) first, leaving a dense Schur complement
// on the beta unknowns (the side with fewer variables):
//     S = H_BB - sum_x1 X_x1^T X_x1,   X_x1 = L_x1^-1 H_{A(x1), B},   L_x1 L_x1^T = H_{A(x1), A(x1)}.
// Every phase is parallel over independent outputs, so no two ranks write one location:
//   factorize: the alpha blocks (one entry per rank), the coupling X^T (one entry per rank,
//     stored per triple: XT[t * ny + i] for the alpha unknown i of the triple's x1), the
//     per-x1 Cholesky factors (one x1 per rank), the forward solves of X's columns (one triple
//     per rank), the Schur complement (one entry of S per rank, gathered over x1 through
//     triple_of), then the team Cholesky of S (team_linalg.hpp);
//   solve: the mirror image (per x1, per beta unknown, the team solve on S, per alpha unknown,
//     per x1).
// Pivots follow the rule of exact_detail::kPivotRelative (exact.hpp), as on the CPU.
// Work per factorisation: sum_x1 (k^3 / 3 + nJ k^2 / 2) + nB^2 n1 k / 2 + nB^3 / 3 multiply-adds
// (nJ: triples of x1), as on the CPU; the Schur complement's entries are gathered, not
// accumulated, so the CPU's register-tiled rank-k update has no counterpart here.
#pragma once
#include <cmath>

#include "fastpid/exact.hpp"
#include "fastpid/team_linalg.hpp"

namespace fastpid {

template <class Team>
class TeamAlgebra {
 public:
  static FASTPID_HD int64_t workspace_doubles(Shape s) { return carved_doubles<TeamAlgebra>(s); }

  FASTPID_HD TeamAlgebra() = default;
  FASTPID_HD TeamAlgebra(double* ws, Shape s) {
    Carver cv(ws);
    carve(cv, s);
  }

  FASTPID_HD void prepare(Team&, const ExactStructure&, const SolverOptions&) {}
  FASTPID_HD void fall_back(Team&, const ExactStructure&, const SolverOptions&) {}  // one elimination only
  // All in double, one elimination: nothing more accurate to switch to (see exact.hpp, solve).
  FASTPID_HD bool escalate(Team&, const ExactStructure&, const SolverOptions&) { return false; }
  FASTPID_HD void factorize(Team& t, const ExactStructure& st, const double* m, const double* s, const double* p);
  FASTPID_HD void solve(Team& t, const ExactStructure& st, const double* rhs, double* x);

  FASTPID_HD void carve(Carver& cv, Shape s) {
    const int64_t nmax = s.n1 > s.n2 ? s.n1 : s.n2, nmin = s.n1 > s.n2 ? s.n2 : s.n1;
    L = cv.doubles(nmax * s.ny * s.ny);
    XT = cv.doubles(s.size() * s.ny);
    S = cv.doubles(nmin * s.ny * nmin * s.ny);
    scale = cv.doubles(nmin * s.ny);
    y = cv.doubles(nmax * s.ny);
  }

 private:
  double* L = nullptr;      // (n1, ny, ny): per x1, the Cholesky factor of its alpha block (row stride ny)
  double* XT = nullptr;     // (triples, ny): X^T, then L^-1 applied (row t: the triple's column of X)
  double* S = nullptr;      // (nB, nB): the Schur complement on beta, then its factor (row-major, lower)
  double* scale = nullptr;  // (nB): S's diagonal before factorisation, for the pivot rule
  double* y = nullptr;      // (nA): L^-1 rhs on the alpha unknowns

  // Z_c(t, u) = d_c p_t p_u + [t == u] m_c p_t for two triples of cell c, d_c = m_c / s_c - m_c.
  static FASTPID_HD double z(const ExactStructure& st, const double* m, const double* s, const double* p, int tr, int u) {
    const int c = st.t_c[tr];
    const double d = m[c] / s[c] - m[c];
    double v = d * p[tr] * p[u];
    if (u == tr) v += m[c] * p[tr];
    return v;
  }
};

template <class Team>
FASTPID_HD void TeamAlgebra<Team>::factorize(Team& t, const ExactStructure& st, const double* m, const double* s,
                                             const double* p) {
  const int ny = st.ny, n1 = st.n1, n2 = st.n2, nB = st.nB;
  const int R = t.rank(), TS = t.size();
  // Alpha blocks: L_x1(la, lu) = sum over x2 of Z(triple(x1, x2, y_la), triple(x1, x2, y_lu)).
  for (int64_t e = R; e < int64_t(n1) * ny * ny; e += TS) {
    const int x1 = int(e / (int64_t(ny) * ny)), la = int(e / ny % ny), lu = int(e % ny);
    const int a0 = st.a_start[x1], k = st.a_start[x1 + 1] - a0;
    if (la >= k || lu > la) continue;
    const int ya = st.a_y[a0 + la], yu = st.a_y[a0 + lu];
    double v = 0;
    for (int x2 = 0; x2 < n2; ++x2) {
      const int tr = st.triple(x1, x2, ya), u = st.triple(x1, x2, yu);
      if (tr >= 0 && u >= 0) v += z(st, m, s, p, tr, u);
    }
    L[e] = v;
  }
  // Coupling of alpha unknown i of x1 with the beta unknown of triple j = (x1, x2, y):
  // Z(triple(x1, x2, y_i), j), zero when that triple does not exist.
  for (int64_t e = R; e < int64_t(st.T) * ny; e += TS) {
    const int j = int(e / ny), i = int(e % ny), c = st.t_c[j];
    const int x1 = st.cell_x1[c], a0 = st.a_start[x1];
    if (i >= st.a_start[x1 + 1] - a0) continue;
    const int tr = st.triple(x1, st.cell_x2[c], st.a_y[a0 + i]);
    XT[e] = tr >= 0 ? z(st, m, s, p, tr, j) : 0.0;
  }
  t.sync();
  for (int x1 = R; x1 < n1; x1 += TS) {
    double* Lx = L + int64_t(x1) * ny * ny;
    const int k = st.a_start[x1 + 1] - st.a_start[x1];
    for (int j = 0; j < k; ++j) {
      double* rj = Lx + int64_t(j) * ny;
      double d = rj[j];
      for (int r = 0; r < j; ++r) d -= rj[r] * rj[r];
      const double ljj = d > exact_detail::kPivotRelative * ((rj[j] < 0 ? -rj[j] : rj[j]) + 1e-300) ? ::sqrt(d) : exact_detail::kPivotHuge;
      rj[j] = ljj;
      for (int i = j + 1; i < k; ++i) {
        double* ri = Lx + int64_t(i) * ny;
        double v = ri[j];
        for (int r = 0; r < j; ++r) v -= ri[r] * rj[r];
        ri[j] = v / ljj;
      }
    }
  }
  t.sync();
  // X <- L^-1 X, one column (triple) per rank.
  for (int j = R; j < st.T; j += TS) {
    const int x1 = st.cell_x1[st.t_c[j]], k = st.a_start[x1 + 1] - st.a_start[x1];
    const double* Lx = L + int64_t(x1) * ny * ny;
    double* xj = XT + int64_t(j) * ny;
    for (int i = 0; i < k; ++i) {
      double v = xj[i];
      for (int r = 0; r < i; ++r) v -= Lx[int64_t(i) * ny + r] * xj[r];
      xj[i] = v / Lx[int64_t(i) * ny + i];
    }
  }
  t.sync();
  // S(bi, bj) = sum over x1 of [Z of the two triples when they share a cell] - X^T X.
  const int64_t pairs = int64_t(nB) * (nB + 1) / 2;
  for (int64_t q = R; q < pairs; q += TS) {
    int bi, bj;
    tri_unindex(q, bi, bj);
    double v = 0;
    if (st.pinned[bi] || st.pinned[bj]) {
      v = bi == bj ? 1.0 : 0.0;  // pinned unknowns: an identity row
    } else {
      const int x2i = st.b_x[bi], yi = st.b_y[bi], x2j = st.b_x[bj], yj = st.b_y[bj];
      for (int x1 = 0; x1 < n1; ++x1) {
        const int ti = st.triple(x1, x2i, yi), tj = st.triple(x1, x2j, yj);
        if (ti < 0 || tj < 0) continue;
        if (x2i == x2j) v += z(st, m, s, p, ti, tj);
        const int k = st.a_start[x1 + 1] - st.a_start[x1];
        const double* xi = XT + int64_t(ti) * ny;
        const double* xj = XT + int64_t(tj) * ny;
        double dot = 0;
        for (int r = 0; r < k; ++r) dot += xi[r] * xj[r];
        v -= dot;
      }
    }
    S[int64_t(bi) * nB + bj] = v;
    if (bi == bj) scale[bi] = (v < 0 ? -v : v) + 1e-300;
  }
  t.sync();
  cholesky_team(t, S, nB, scale, exact_detail::kPivotRelative, exact_detail::kPivotHuge);
  t.sync();
}

template <class Team>
FASTPID_HD void TeamAlgebra<Team>::solve(Team& t, const ExactStructure& st, const double* rhs, double* x) {
  const int ny = st.ny, n1 = st.n1, nA = st.nA, nB = st.nB;
  const int R = t.rank(), TS = t.size();
  for (int x1 = R; x1 < n1; x1 += TS) {
    const int a0 = st.a_start[x1], k = st.a_start[x1 + 1] - a0;
    const double* Lx = L + int64_t(x1) * ny * ny;
    for (int i = 0; i < k; ++i) {
      double v = rhs[a0 + i];
      for (int r = 0; r < i; ++r) v -= Lx[int64_t(i) * ny + r] * y[a0 + r];
      y[a0 + i] = v / Lx[int64_t(i) * ny + i];
    }
  }
  t.sync();
  double* xb = x + nA;
  for (int b = R; b < nB; b += TS) {
    if (st.pinned[b]) {
      xb[b] = 0.0;
      continue;
    }
    double v = rhs[nA + b];
    for (int x1 = 0; x1 < n1; ++x1) {
      const int tj = st.triple(x1, st.b_x[b], st.b_y[b]);
      if (tj < 0) continue;
      const int a0 = st.a_start[x1], k = st.a_start[x1 + 1] - a0;
      const double* xj = XT + int64_t(tj) * ny;
      for (int r = 0; r < k; ++r) v -= xj[r] * y[a0 + r];
    }
    xb[b] = v;
  }
  t.sync();
  cholesky_solve_team(t, S, nB, xb);
  for (int64_t e = R; e < int64_t(n1) * ny; e += TS) {
    const int a = st.a_index[e];
    if (a < 0) continue;
    const int x1 = int(e / ny), i = a - st.a_start[x1];
    const int t0 = st.cell_start[st.x1_cell_start[x1]], t1 = st.cell_start[st.x1_cell_start[x1 + 1]];
    double v = y[a];
    for (int j = t0; j < t1; ++j) v -= XT[int64_t(j) * ny + i] * xb[st.t_b[j]];
    x[a] = v;
  }
  t.sync();
  for (int x1 = R; x1 < n1; x1 += TS) {
    const int a0 = st.a_start[x1], k = st.a_start[x1 + 1] - a0;
    const double* Lx = L + int64_t(x1) * ny * ny;
    for (int i = k - 1; i >= 0; --i) {
      double v = x[a0 + i];
      for (int r = i + 1; r < k; ++r) v -= Lx[int64_t(r) * ny + i] * x[a0 + r];
      x[a0 + i] = v / Lx[int64_t(i) * ny + i];
    }
  }
  t.sync();
}

// method="exact" as a kernel body (team.hpp): the interior-point method with the team algebra,
// the algorithm's arrays first in the workspace, then the algebra's.
struct ExactKernel {
  static FASTPID_HD int64_t workspace_doubles(Shape s) {
    return InteriorPoint<SerialTeam, TeamAlgebra<SerialTeam>>::workspace_doubles(s) + TeamAlgebra<SerialTeam>::workspace_doubles(s);
  }
  template <class Team>
  static FASTPID_HD void run(Team& team, const double* p, Shape s, SolverOptions opt, double* ws, DistOutputs out) {
    TeamAlgebra<Team> algebra(ws + InteriorPoint<Team, TeamAlgebra<Team>>::workspace_doubles(s), s);
    InteriorPoint<Team, TeamAlgebra<Team>> solver(team, s, opt, ws, algebra);
    solver.solve(p, out);
  }
};

}  // namespace fastpid
