// The Algebra of the k-source solver (union.hpp) for a team: what the CUDA driver runs (a thread
// block per distribution) and what the CPU test executor runs with teams of 1 to 256 ranks.
//
// The Newton matrix sum_x E_x Z_x E_x^T, Z_x = m_x diag(pi_x) + (m_x / s_x - m_x) pi_x pi_x^T,
// is gathered one entry per rank: the entry of the unknowns alpha_i(a, y) and alpha_j(b, y2)
// sums Z_x(y, y2) over the cells with x_i = a and x_j = b (for i = j, only a = b couples), so no
// two ranks write one location; then the team Cholesky (team_linalg.hpp), taking every positive
// pivot, redone with the diagonal raised by 1e-14 of itself, growing tenfold up to 1e-6, while
// a pivot is not (as the CPU algebra, csrc/cpu/union_cpu.cpp). Work per factorisation: about
// k^2 ny (cells ny) / 2 multiply-adds for the matrix and order^3 / 3 for the factor.
#pragma once
#include <cmath>

#include "fastpid/team_linalg.hpp"
#include "fastpid/union.hpp"

namespace fastpid {

template <class Team>
class UnionTeamAlgebra {
 public:
  static FASTPID_HD int64_t workspace_doubles(const UnionShape& s) { return carved_doubles<UnionTeamAlgebra>(s); }

  FASTPID_HD UnionTeamAlgebra() = default;
  FASTPID_HD UnionTeamAlgebra(double* ws, const UnionShape& s) {
    Carver cv(ws);
    carve(cv, s);
  }

  // The unknowns' (source, value, label), from the numbering of union.hpp's build.
  FASTPID_HD void prepare(Team& t, const UnionShape& sh, const int* index, int order) {
    order_ = order;
    for (int v = t.rank(); v < sh.full; v += t.size()) {
      const int u = index[v];
      if (u < 0) continue;
      int i = 0;
      while (i + 1 < sh.k && v >= sh.offset[i + 1]) ++i;
      var_source[u] = i;
      var_value[u] = (v - sh.offset[i]) / sh.ny;
      var_label[u] = (v - sh.offset[i]) % sh.ny;
    }
    t.sync();
  }

  FASTPID_HD void factorize(Team& t, const UnionShape& sh, const int*, const int*, const double* g, const double* m,
                            const double* s, const double* soft) {
    assemble(t, sh, g, m, s, soft, 0.0);
    factor(t);
    for (double shift = 1e-14; shift <= 1e-6 && huge_pivot(t); shift *= 10) {
      assemble(t, sh, g, m, s, soft, shift);
      factor(t);
    }
  }

  FASTPID_HD void solve(Team& t, double* x) { cholesky_solve_team(t, H, order_, x); }

  FASTPID_HD void carve(Carver& cv, const UnionShape& s) {
    H = cv.doubles(int64_t(s.full) * s.full);
    scale = cv.doubles(s.full);
    var_source = cv.ints(s.full);
    var_value = cv.ints(s.full);
    var_label = cv.ints(s.full);
  }

 private:
  double* H = nullptr;      // (order, order): the Newton matrix (lower triangle), then its factor
  double* scale = nullptr;  // (order): H's diagonal before factorisation
  int* var_source = nullptr;
  int* var_value = nullptr;
  int* var_label = nullptr;
  int order_ = 0;

  // H's lower triangle at the point, its diagonal raised by `shift` of itself.
  FASTPID_HD void assemble(Team& t, const UnionShape& sh, const double* g, const double* m, const double* s,
                           const double* soft, double shift) {
    const int n = order_, ny = sh.ny;
    const int64_t entries = int64_t(n) * (n + 1) / 2;
    for (int64_t q = t.rank(); q < entries; q += t.size()) {
      int r, c;
      tri_unindex(q, r, c);  // r >= c: r's source is c's or a later one (the numbering is by source)
      const int i = var_source[r], a = var_value[r], y = var_label[r];
      const int j = var_source[c], b = var_value[c], y2 = var_label[c];
      double sum = 0.0;
      const auto add = [&](int64_t x) {
        if (g[x] == union_detail::kNegInf) return;
        const double* pi = soft + x * ny;
        sum += (m[x] / s[x] - m[x]) * pi[y] * pi[y2] + (y == y2 ? m[x] * pi[y] : 0.0);
      };
      if (i == j) {
        if (a == b)
          for (int64_t h = 0; h < sh.runs(i); ++h)
            for (int64_t x = sh.run(i, a, h), end = x + sh.stride[i]; x < end; ++x) add(x);
      } else {  // j < i: x_j is the more significant digit of the cell index
        const int64_t inner = sh.stride[j] / (sh.stride[i] * sh.n[i]);  // x_i's runs per value of x_j's
        for (int64_t h2 = 0; h2 < sh.runs(j); ++h2)
          for (int64_t l2 = 0; l2 < inner; ++l2) {
            const int64_t h = (h2 * sh.n[j] + b) * inner + l2;  // a run of the cells with x_j = b
            for (int64_t x = sh.run(i, a, h), end = x + sh.stride[i]; x < end; ++x) add(x);
          }
      }
      if (r == c) {
        sum = shift > 0 ? sum * (1.0 + shift) + 1e-300 : sum;
        scale[r] = sum;
      }
      H[int64_t(r) * n + c] = sum;
    }
    t.sync();
  }

  FASTPID_HD void factor(Team& t) { cholesky_team(t, H, order_, scale, 0.0, exact_detail::kPivotHuge); }

  FASTPID_HD bool huge_pivot(Team& t) {
    double found = 0;
    for (int r = t.rank(); r < order_; r += t.size()) found = H[int64_t(r) * order_ + r] == exact_detail::kPivotHuge ? 1.0 : found;
    return t.max(found) > 0;
  }
};

}  // namespace fastpid
