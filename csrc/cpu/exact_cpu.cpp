// Exact BROJA solver on the CPU: a primal-dual interior-point method on the dual problem
//
//     max_{alpha, beta}  sum alpha(x1,y) P(x1,y) + sum beta(x2,y) P(x2,y)
//     s.t.  s_c = -logsumexp_y(alpha(x1,y) + beta(x2,y)) >= 0   for every cell c = (x1, x2)
//
// whose multipliers m_c are the cell masses of the optimal coupling,
// Q(x1,x2,y) = m_c softmax_y(alpha + beta). Only the entries with P(x1,y) > 0 and P(x2,y) > 0
// are variables ("triples"); the rest of Q is zero in every feasible coupling.
//
// Each Newton system has (n1 + n2) ny unknowns. Its matrix is sum_c E_c Z_c E_c^T with
// Z_c = diag(Q_c) + (m_c / s_c - m_c) p_c p_c^T, where E_c scatters the triples of cell c to
// their alpha and beta entries. The alpha unknowns of one x1 couple only to each other and to
// beta, so they are eliminated block by block (n1 dense blocks of at most ny x ny), leaving a
// dense Schur complement on beta, of the side with fewer variables (the sides are swapped
// internally when that is x1). One beta per label is pinned to fix the gauge freedom
// (alpha + c(y), beta - c(y)). When the label alphabet is large, that complement
// ((n2 ny)^2) dwarfs the number of cells, and the system is eliminated on the cells instead
// (per-label blocks first, then a dense system of one unknown per cell; see "eliminated on
// the cells" below); each distribution takes the path with less work.
//
// Every iteration also produces a certificate: the dual point is strictly feasible, and the
// coupling is rounded exactly onto the marginal constraints (per label, scale rows and columns
// down, then add the rank-one correction of the remaining mass), so
//     dual objective <= optimum <= f(rounded coupling)
// and their difference is the certified bound on every PID atom.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fastpid/pid.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {
namespace {

constexpr double kStepToBoundary = 0.99;  // fraction-to-boundary rule for m and s
constexpr double kMaxDualMove = 2.0;  // nats per iteration, for any dual variable (see below)
constexpr double kCellsWorkFactor = 3.0;  // see solve_one
constexpr int kRefinementSteps = 8;     // at most, per solve on the cells (see solve_newton_cells)

// S[j][jj] -= sum_i X[i][j] X[i][jj] for jj <= j (lower triangle); X is k x n with row stride
// ldx >= padded(n) (the padding columns are read, never used); S has row stride ld.
// Register tiles of kRows x kCols entries of S are accumulated over the k rows of X and
// written once, so the update is bound by arithmetic rather than by S's memory traffic.
constexpr int kRows = 4, kCols = 16;
inline int padded(int n) { return (n + kCols - 1) / kCols * kCols; }
void syrk_lower_sub(const double* X, int k, int n, int64_t ldx, double* S, int64_t ld) {
  for (int j0 = 0; j0 < n; j0 += kRows) {
    const int rows = std::min(kRows, n - j0);
    for (int jj0 = 0; jj0 < j0 + rows; jj0 += kCols) {
      double acc[kRows][kCols] = {};
      for (int i = 0; i < k; ++i) {
        const double* xi = X + int64_t(i) * ldx;
        for (int r = 0; r < kRows; ++r) {
          const double v = r < rows ? xi[j0 + r] : 0.0;
#pragma omp simd
          for (int c = 0; c < kCols; ++c) acc[r][c] += v * xi[jj0 + c];
        }
      }
      if (jj0 + kCols <= j0 + 1) {  // the whole tile lies below the diagonal
        for (int r = 0; r < rows; ++r) {
          double* srow = S + int64_t(j0 + r) * ld + jj0;
#pragma omp simd
          for (int c = 0; c < kCols; ++c) srow[c] -= acc[r][c];
        }
      } else {  // a tile on the diagonal: keep to the lower triangle
        for (int r = 0; r < rows; ++r) {
          double* srow = S + int64_t(j0 + r) * ld;
          const int lim = std::min(kCols, j0 + r + 1 - jj0);
          for (int c = 0; c < lim; ++c) srow[jj0 + c] -= acc[r][c];
        }
      }
    }
  }
}

// In-place Cholesky factorisation of a symmetric positive (semi)definite matrix stored
// row-major in the lower triangle (row stride ld), unblocked; see cholesky().
void cholesky_unblocked(double* A, int n, int64_t ld) {
  for (int j = 0; j < n; ++j) {
    double* rj = A + int64_t(j) * ld;
    double d = rj[j];
#pragma omp simd reduction(- : d)
    for (int k = 0; k < j; ++k) d -= rj[k] * rj[k];
    const double scale = std::abs(rj[j]) + 1e-300;
    const double ljj = d > 1e-14 * scale ? std::sqrt(d) : 1e64;
    rj[j] = ljj;
    const double inv = 1.0 / ljj;
    for (int i = j + 1; i < n; ++i) {
      double* ri = A + int64_t(i) * ld;
      double v = ri[j];
#pragma omp simd reduction(- : v)
      for (int k = 0; k < j; ++k) v -= ri[k] * rj[k];
      ri[j] = v * inv;
    }
  }
}

// In-place Cholesky factorisation of a symmetric positive (semi)definite matrix stored
// row-major in the lower triangle. A pivot that is not safely positive comes from a
// direction the constraints do not determine (an ill-conditioned interior-point system);
// it is replaced by a huge value, which sets the step along that direction to zero.
// Right-looking and blocked: most of the work is the trailing update, done by the
// register-tiled syrk_lower_sub on a transposed copy of each panel (`panel`: kBlock * padded(n)).
constexpr int kBlock = 24;
void cholesky(double* A, int n, double* panel) {
  for (int j0 = 0; j0 < n; j0 += kBlock) {
    const int b = std::min(kBlock, n - j0), m = n - j0 - b;
    double* diag = A + int64_t(j0) * n + j0;
    cholesky_unblocked(diag, b, n);
    // Panel below the block, L21 = A21 L11^{-T}, solved in transposed layout (b x m in
    // `panel`, contiguous over the panel's rows) and copied back into A.
    const int64_t ldp = padded(m);
    for (int c = 0; c < b; ++c) {
      double* pc = panel + c * ldp;
      for (int i = 0; i < m; ++i) pc[i] = A[int64_t(j0 + b + i) * n + j0 + c];
      const double* lc = diag + int64_t(c) * n;
      for (int k = 0; k < c; ++k) {
        const double l = lc[k];
        const double* pk = panel + k * ldp;
#pragma omp simd
        for (int i = 0; i < m; ++i) pc[i] -= l * pk[i];
      }
      const double inv = 1.0 / lc[c];
      for (int i = 0; i < m; ++i) {
        pc[i] *= inv;
        A[int64_t(j0 + b + i) * n + j0 + c] = pc[i];
      }
    }
    if (m > 0) syrk_lower_sub(panel, b, m, ldp, A + int64_t(j0 + b) * n + j0 + b, n);
  }
}

// Solves L y = b in place (L lower triangular, row stride ld).
void forward_substitute(const double* L, int n, int64_t ld, double* b) {
  for (int i = 0; i < n; ++i) {
    const double* ri = L + int64_t(i) * ld;
    double v = b[i];
#pragma omp simd reduction(- : v)
    for (int k = 0; k < i; ++k) v -= ri[k] * b[k];
    b[i] = v / ri[i];
  }
}

// Solves L^T x = y in place, by columns of L^T (rows of L), so every access is contiguous.
void back_substitute(const double* L, int n, int64_t ld, double* b) {
  for (int i = n - 1; i >= 0; --i) {
    const double* ri = L + int64_t(i) * ld;
    const double v = b[i] / ri[i];
    b[i] = v;
#pragma omp simd
    for (int k = 0; k < i; ++k) b[k] -= ri[k] * v;
  }
}

// Solves L L^T x = b in place, L from cholesky() (row stride n).
void cholesky_solve(const double* L, int n, double* b) {
  forward_substitute(L, n, n, b);
  back_substitute(L, n, n, b);
}

// The same update for columns that map to scattered rows/columns idx[j] of S (idx increasing).
void syrk_lower_sub_scattered(const double* X, int k, int n, int64_t ldx, const int* idx, double* S,
                              int64_t ld, double* row) {
  for (int j = 0; j < n; ++j) {
    std::fill(row, row + j + 1, 0.0);
    for (int i = 0; i < k; ++i) {
      const double* xi = X + int64_t(i) * ldx;
      const double v = xi[j];
      if (v == 0.0) continue;
#pragma omp simd
      for (int jj = 0; jj <= j; ++jj) row[jj] += v * xi[jj];
    }
    double* srow = S + int64_t(idx[j]) * ld;
    for (int jj = 0; jj <= j; ++jj) srow[idx[jj]] -= row[jj];
  }
}

// Sparse structure of one distribution, in the internal orientation (side "a" is eliminated,
// side "b" is kept in the Schur complement).
struct Structure {
  int n1 = 0, n2 = 0, ny = 0;
  bool swapped = false;           // internal x1 is the caller's x2
  int nA = 0, nB = 0;             // alpha and beta variables (entries with positive marginal)
  std::vector<int> a_start;       // (n1 + 1): alpha variables of x1 are a_start[x1] ..
  std::vector<int> a_index;       // (n1 * ny): variable of (x1, y), or -1
  std::vector<int> b_index;       // (n2 * ny): variable of (x2, y), or -1
  std::vector<double> pa, pb;     // marginal mass of each alpha / beta variable
  std::vector<int> cell_start;    // (C + 1): triples of cell c
  std::vector<int> cell_x1, cell_x2;  // (C)
  std::vector<int> x1_cell_start; // (n1 + 1): cells of x1 (cells are sorted by x1, then x2)
  std::vector<int> t_a, t_b, t_y; // triple -> alpha variable, beta variable, label
  std::vector<char> pinned;       // (nB): beta variables held fixed to remove the gauge
  std::vector<double> y_mass;     // (ny)
  int cells() const { return int(cell_x1.size()); }
  int triples() const { return int(t_a.size()); }
};

inline double entry(const double* P, const Shape& s, bool swapped, int x1, int x2, int y) {
  return swapped ? P[(int64_t(x2) * s.n2 + x1) * s.ny + y] : P[(int64_t(x1) * s.n2 + x2) * s.ny + y];
}

void build_structure(const double* P, const Shape& shape, Structure& st) {
  const int ny = shape.ny;
  std::vector<double> m1(int64_t(shape.n1) * ny, 0.0), m2(int64_t(shape.n2) * ny, 0.0);
  for (int x1 = 0; x1 < shape.n1; ++x1)
    for (int x2 = 0; x2 < shape.n2; ++x2)
      for (int y = 0; y < ny; ++y) {
        const double v = P[(int64_t(x1) * shape.n2 + x2) * ny + y];
        m1[int64_t(x1) * ny + y] += v;
        m2[int64_t(x2) * ny + y] += v;
      }
  int64_t c1 = std::count_if(m1.begin(), m1.end(), [](double v) { return v > 0; });
  int64_t c2 = std::count_if(m2.begin(), m2.end(), [](double v) { return v > 0; });
  // Keep the side with fewer variables in the dense Schur complement.
  st.swapped = c2 > c1;
  const std::vector<double>& ma = st.swapped ? m2 : m1;
  const std::vector<double>& mb = st.swapped ? m1 : m2;
  st.n1 = st.swapped ? shape.n2 : shape.n1;
  st.n2 = st.swapped ? shape.n1 : shape.n2;
  st.ny = ny;

  st.a_index.assign(int64_t(st.n1) * ny, -1);
  st.b_index.assign(int64_t(st.n2) * ny, -1);
  st.a_start.assign(st.n1 + 1, 0);
  st.pa.clear();
  st.pb.clear();
  for (int x1 = 0; x1 < st.n1; ++x1) {
    st.a_start[x1] = int(st.pa.size());
    for (int y = 0; y < ny; ++y)
      if (ma[int64_t(x1) * ny + y] > 0) {
        st.a_index[int64_t(x1) * ny + y] = int(st.pa.size());
        st.pa.push_back(ma[int64_t(x1) * ny + y]);
      }
  }
  st.a_start[st.n1] = int(st.pa.size());
  for (int x2 = 0; x2 < st.n2; ++x2)
    for (int y = 0; y < ny; ++y)
      if (mb[int64_t(x2) * ny + y] > 0) {
        st.b_index[int64_t(x2) * ny + y] = int(st.pb.size());
        st.pb.push_back(mb[int64_t(x2) * ny + y]);
      }
  st.nA = int(st.pa.size());
  st.nB = int(st.pb.size());

  st.y_mass.assign(ny, 0.0);
  for (int x2 = 0; x2 < st.n2; ++x2)
    for (int y = 0; y < ny; ++y) st.y_mass[y] += mb[int64_t(x2) * ny + y];

  st.cell_start.clear();
  st.cell_x1.clear();
  st.cell_x2.clear();
  st.t_a.clear();
  st.t_b.clear();
  st.t_y.clear();
  st.x1_cell_start.assign(st.n1 + 1, 0);
  for (int x1 = 0; x1 < st.n1; ++x1) {
    st.x1_cell_start[x1] = int(st.cell_x1.size());
    for (int x2 = 0; x2 < st.n2; ++x2) {
      const int first = int(st.t_a.size());
      for (int y = 0; y < ny; ++y) {
        const int a = st.a_index[int64_t(x1) * ny + y], b = st.b_index[int64_t(x2) * ny + y];
        if (a < 0 || b < 0) continue;
        st.t_a.push_back(a);
        st.t_b.push_back(b);
        st.t_y.push_back(y);
      }
      if (int(st.t_a.size()) > first) {
        st.cell_start.push_back(first);
        st.cell_x1.push_back(x1);
        st.cell_x2.push_back(x2);
      }
    }
  }
  st.x1_cell_start[st.n1] = int(st.cell_x1.size());
  st.cell_start.push_back(int(st.t_a.size()));

  // Pin, for every label, the beta variable of largest mass.
  st.pinned.assign(st.nB, 0);
  for (int y = 0; y < ny; ++y) {
    int best = -1;
    double best_mass = 0;
    for (int x2 = 0; x2 < st.n2; ++x2) {
      const int b = st.b_index[int64_t(x2) * ny + y];
      if (b >= 0 && st.pb[b] > best_mass) best = b, best_mass = st.pb[b];
    }
    if (best >= 0) st.pinned[best] = 1;
  }
}

// The alpha block of one x1 value: its variables a0 .. a0 + k and the triples of its cells,
// t_first .. t_first + nJ (their beta variables are increasing, see factorize()).
struct AlphaBlock {
  int a0, k, t_first, nJ;
  bool empty() const { return k == 0 || nJ == 0; }
};

AlphaBlock alpha_block(const Structure& st, int x1) {
  const int a0 = st.a_start[x1], c0 = st.x1_cell_start[x1], c1 = st.x1_cell_start[x1 + 1];
  const int t_first = st.cell_start[c0];
  return {a0, st.a_start[x1 + 1] - a0, t_first, st.cell_start[c1] - t_first};
}

// ---------------------------------------------------------------------------------------
// The same Newton system eliminated on the cells (for large label alphabets). The matrix is
//     H = D + V diag(d) V^T,   D = sum_t Q_t (e_a(t) + e_b(t)) (e_a(t) + e_b(t))^T,
// with column c of V the cell's softmax scattered to its alpha and beta variables, p_c, and
// d_c = m_c / s_c - m_c. D is block diagonal over the labels (one block of at most n1 + n2
// variables per label, positive definite once the label's pinned beta is removed: its
// bipartite graph is complete), so by Woodbury
//     H^-1 = D^-1 - D^-1 V K^-1 V^T D^-1,   K = diag(1 / d) + V^T D^-1 V   (cells x cells).
// The dense factor is K, of the number of cells, instead of the sources' (n2 ny)^2: far
// smaller when ny is large. d_c < 0 where s_c > 1 (cells the optimum leaves empty), so K is
// indefinite; with the cells of positive d first, K_pp is positive definite and the Schur
// complement of the negative block is negative definite (H is positive definite), so both
// are factorised by Cholesky. Cells with d_c = 0 have no rank-one term.

// Per-label structure of the variables and triples, built when this path is chosen.
struct LabelStructure {
  std::vector<int> var_start;     // (ny + 1): variables of label y (alpha, then unpinned beta)
  std::vector<int> vars;          // global index (alpha a, or nA + b)
  std::vector<int> var_local;     // (nA + nB): index within its label, -1 for pinned betas
  std::vector<int> triple_start;  // (ny + 1): triples of label y, increasing (so cells too)
  std::vector<int> triples;
  std::vector<int> t_cell;        // (T): triple -> cell
  std::vector<int64_t> inv_off;   // (ny + 1): offsets of the per-label inverses of D
};

void build_label_structure(const Structure& st, LabelStructure& ls) {
  const int ny = st.ny, nA = st.nA, N = st.nA + st.nB, T = st.triples();
  ls.var_local.assign(N, -1);
  ls.var_start.assign(ny + 1, 0);
  ls.vars.clear();
  for (int y = 0; y < ny; ++y) {
    ls.var_start[y] = int(ls.vars.size());
    for (int x1 = 0; x1 < st.n1; ++x1) {
      const int a = st.a_index[int64_t(x1) * ny + y];
      if (a >= 0) ls.var_local[a] = int(ls.vars.size()) - ls.var_start[y], ls.vars.push_back(a);
    }
    for (int x2 = 0; x2 < st.n2; ++x2) {
      const int b = st.b_index[int64_t(x2) * ny + y];
      if (b >= 0 && !st.pinned[b]) ls.var_local[nA + b] = int(ls.vars.size()) - ls.var_start[y], ls.vars.push_back(nA + b);
    }
  }
  ls.var_start[ny] = int(ls.vars.size());
  ls.t_cell.resize(T);
  for (int c = 0; c < st.cells(); ++c)
    for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t) ls.t_cell[t] = c;
  ls.triple_start.assign(ny + 2, 0);
  for (int t = 0; t < T; ++t) ++ls.triple_start[st.t_y[t] + 2];
  for (int y = 0; y < ny; ++y) ls.triple_start[y + 2] += ls.triple_start[y + 1];
  ls.triples.resize(T);
  for (int t = 0; t < T; ++t) ls.triples[ls.triple_start[st.t_y[t] + 1]++] = t;
  ls.triple_start.resize(ny + 1);
  ls.inv_off.assign(ny + 1, 0);
  for (int y = 0; y < ny; ++y) {
    const int64_t k = ls.var_start[y + 1] - ls.var_start[y];
    ls.inv_off[y + 1] = ls.inv_off[y] + k * k;
  }
}

// Per-thread storage of one solve; reused across the distributions a thread handles.
struct Workspace {
  Structure st;
  std::vector<double> lam, m, s, s_true, p, q;
  std::vector<double> rd, rhs, dlam, dm, ds, comp, target, x1_violation;
  std::vector<double> Lblocks, Xblocks, S, U, ya, panel;
  std::vector<int64_t> l_off, x_off;
  std::vector<double> q_round, row_sum, col_sum, y_norm;
  std::vector<double> best_q, best_lam;
  // The elimination on the cells (LabelStructure above), when chosen for this distribution.
  bool on_cells = false;
  LabelStructure ls;
  std::vector<double> dfactor, dinv, G, wrow, t_p, cell_d, Kpp, Knp, Knn, cell_u, refine_r, refine_dx, cell_z, cell_r2, cell_dz;
  std::vector<int> t_la, t_lb, t_c, cell_order;
  int n_pos = 0, n_neg = 0;
};

// s_c = -logsumexp over the cell's triples of lam_a + lam_b, and the softmax p.
void cell_slacks(const Structure& st, const double* lam, double* s, double* p) {
  const int C = st.cells();
  for (int c = 0; c < C; ++c) {
    const int t0 = st.cell_start[c], t1 = st.cell_start[c + 1];
    double zmax = -std::numeric_limits<double>::infinity();
    for (int t = t0; t < t1; ++t) zmax = std::max(zmax, lam[st.t_a[t]] + lam[st.nA + st.t_b[t]]);
    double sum = 0;
    for (int t = t0; t < t1; ++t) {
      p[t] = std::exp(lam[st.t_a[t]] + lam[st.nA + st.t_b[t]] - zmax);
      sum += p[t];
    }
    const double inv = 1.0 / sum;
    for (int t = t0; t < t1; ++t) p[t] *= inv;
    s[c] = -(zmax + std::log(sum));
  }
}

// Objective f(Q) = sum Q log(Q / m) = -H_Q(Y|X1,X2) of an exactly feasible rounding of Q.
// Writes the rounded coupling to q_round.
double rounded_objective(const Structure& st, Workspace& w, const double* q) {
  const int T = st.triples(), C = st.cells();
  double* qr = w.q_round.data();
  std::fill(w.row_sum.begin(), w.row_sum.end(), 0.0);
  std::fill(w.col_sum.begin(), w.col_sum.end(), 0.0);
  for (int t = 0; t < T; ++t) {
    qr[t] = q[t] > 0 ? q[t] : 0.0;
    w.row_sum[st.t_a[t]] += qr[t];
  }
  for (int t = 0; t < T; ++t) {
    const double r = w.row_sum[st.t_a[t]], target = st.pa[st.t_a[t]];
    if (r > target) qr[t] *= target / r;
    w.col_sum[st.t_b[t]] += qr[t];
  }
  for (int t = 0; t < T; ++t) {
    const double c = w.col_sum[st.t_b[t]], target = st.pb[st.t_b[t]];
    if (c > target) qr[t] *= target / c;
  }
  // Remaining row and column deficits (non-negative), corrected by a rank-one term per label.
  std::fill(w.row_sum.begin(), w.row_sum.end(), 0.0);
  std::fill(w.col_sum.begin(), w.col_sum.end(), 0.0);
  for (int t = 0; t < T; ++t) {
    w.row_sum[st.t_a[t]] += qr[t];
    w.col_sum[st.t_b[t]] += qr[t];
  }
  std::fill(w.y_norm.begin(), w.y_norm.end(), 0.0);
  for (int x1 = 0; x1 < st.n1; ++x1)
    for (int y = 0; y < st.ny; ++y) {
      const int a = st.a_index[int64_t(x1) * st.ny + y];
      if (a < 0) continue;
      w.row_sum[a] = std::max(st.pa[a] - w.row_sum[a], 0.0);
      w.y_norm[y] += w.row_sum[a];
    }
  for (int b = 0; b < st.nB; ++b) w.col_sum[b] = std::max(st.pb[b] - w.col_sum[b], 0.0);
  for (int t = 0; t < T; ++t) {
    const double norm = w.y_norm[st.t_y[t]];
    if (norm > 0) qr[t] += w.row_sum[st.t_a[t]] * w.col_sum[st.t_b[t]] / norm;
  }
  double f = 0;
  for (int c = 0; c < C; ++c) {
    double mass = 0, ent = 0;
    for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t) {
      mass += qr[t];
      ent += xlogx(qr[t]);
    }
    f += ent - xlogx(mass);
  }
  return f;
}

// Factorises the Newton matrix sum_c E_c Z_c E_c^T by block elimination of alpha.
// Z_c = diag(Q) + d_c p p^T with Q = m_c p and d_c = m_c / s_c - m_c.
void factorize(const Structure& st, Workspace& w) {
  const int nB = st.nB;
  std::fill(w.S.begin(), w.S.end(), 0.0);
  for (int x1 = 0; x1 < st.n1; ++x1) {
    const AlphaBlock blk = alpha_block(st, x1);
    if (blk.empty()) continue;
    const int a0 = blk.a0, k = blk.k, t_first = blk.t_first, nJ = blk.nJ;
    const int c0 = st.x1_cell_start[x1], c1 = st.x1_cell_start[x1 + 1];
    double* L = w.Lblocks.data() + w.l_off[x1];
    double* X = w.Xblocks.data() + w.x_off[x1];
    std::fill(L, L + int64_t(k) * k, 0.0);
    const int64_t ldx = padded(nJ);
    std::fill(X, X + int64_t(k) * ldx, 0.0);
    for (int c = c0; c < c1; ++c) {
      const int t0 = st.cell_start[c], t1 = st.cell_start[c + 1];
      const double m = w.m[c], d = m / w.s[c] - m;
      for (int t = t0; t < t1; ++t) {
        const int la = st.t_a[t] - a0, j = t - t_first, bt = st.t_b[t];
        const double pt = w.p[t];
        for (int u = t0; u < t1; ++u) {
          double z = d * pt * w.p[u];
          if (u == t) z += m * pt;
          const int lu = st.t_a[u] - a0, bu = st.t_b[u];
          if (lu <= la) L[int64_t(la) * k + lu] += z;  // alpha-alpha block of x1
          X[int64_t(lu) * ldx + j] += z;                 // alpha-beta coupling
          if (bu <= bt) w.S[int64_t(bt) * nB + bu] += z;  // beta-beta block
        }
      }
    }
    cholesky_unblocked(L, k, k);
    // X <- L^{-1} X, row by row.
    for (int i = 0; i < k; ++i) {
      double* xi = X + int64_t(i) * ldx;
      for (int r = 0; r < i; ++r) {
        const double l = L[int64_t(i) * k + r];
        const double* xr = X + int64_t(r) * ldx;
        for (int j = 0; j < nJ; ++j) xi[j] -= l * xr[j];
      }
      const double inv = 1.0 / L[int64_t(i) * k + i];
      for (int j = 0; j < nJ; ++j) xi[j] *= inv;
    }
    // S -= X^T X on the beta variables of these triples (increasing with j).
    const int* bj = st.t_b.data() + t_first;
    if (bj[nJ - 1] - bj[0] == nJ - 1)
      syrk_lower_sub(X, k, nJ, ldx, w.S.data() + int64_t(bj[0]) * nB + bj[0], nB);
    else
      syrk_lower_sub_scattered(X, k, nJ, ldx, bj, w.S.data(), nB, w.U.data());
  }
  for (int b = 0; b < nB; ++b)
    if (st.pinned[b]) {
      for (int j = 0; j < nB; ++j) w.S[int64_t(b) * nB + j] = w.S[int64_t(j) * nB + b] = 0.0;
      w.S[int64_t(b) * nB + b] = 1.0;
    }
  cholesky(w.S.data(), nB, w.panel.data());
}

// Solves the factorised Newton system for the right-hand side w.rhs into w.dlam.
void solve_newton(const Structure& st, Workspace& w) {
  const int nA = st.nA, nB = st.nB;
  double* rb = w.dlam.data() + nA;
  std::copy(w.rhs.begin() + nA, w.rhs.begin() + nA + nB, rb);
  for (int x1 = 0; x1 < st.n1; ++x1) {
    const AlphaBlock blk = alpha_block(st, x1);
    if (blk.empty()) continue;
    const int a0 = blk.a0, k = blk.k, t_first = blk.t_first, nJ = blk.nJ;
    const double* L = w.Lblocks.data() + w.l_off[x1];
    const double* X = w.Xblocks.data() + w.x_off[x1];
    double* y = w.ya.data() + a0;
    for (int i = 0; i < k; ++i) {
      double v = w.rhs[a0 + i];
      for (int r = 0; r < i; ++r) v -= L[int64_t(i) * k + r] * y[r];
      y[i] = v / L[int64_t(i) * k + i];
    }
    const int* bj = st.t_b.data() + t_first;
    const bool contiguous = bj[nJ - 1] - bj[0] == nJ - 1;  // the common, dense case
    for (int i = 0; i < k; ++i) {
      const double* xi = X + int64_t(i) * padded(nJ);
      const double yi = y[i];
      if (contiguous) {
        double* dst = rb + bj[0];
#pragma omp simd
        for (int j = 0; j < nJ; ++j) dst[j] -= xi[j] * yi;
      } else {
        for (int j = 0; j < nJ; ++j) rb[bj[j]] -= xi[j] * yi;
      }
    }
  }
  for (int b = 0; b < nB; ++b)
    if (st.pinned[b]) rb[b] = 0.0;
  cholesky_solve(w.S.data(), nB, rb);
  for (int x1 = 0; x1 < st.n1; ++x1) {
    const AlphaBlock blk = alpha_block(st, x1);
    if (blk.empty()) continue;
    const int a0 = blk.a0, k = blk.k, t_first = blk.t_first, nJ = blk.nJ;
    const double* L = w.Lblocks.data() + w.l_off[x1];
    const double* X = w.Xblocks.data() + w.x_off[x1];
    double* y = w.ya.data() + a0;
    double* da = w.dlam.data() + a0;
    const int* bj = st.t_b.data() + t_first;
    const bool contiguous = bj[nJ - 1] - bj[0] == nJ - 1;
    for (int i = 0; i < k; ++i) {
      const double* xi = X + int64_t(i) * padded(nJ);
      double v = y[i];
      if (contiguous) {
        const double* src = rb + bj[0];
#pragma omp simd reduction(- : v)
        for (int j = 0; j < nJ; ++j) v -= xi[j] * src[j];
      } else {
        for (int j = 0; j < nJ; ++j) v -= xi[j] * rb[bj[j]];
      }
      da[i] = v;
    }
    for (int i = k - 1; i >= 0; --i) {
      double v = da[i];
      for (int r = i + 1; r < k; ++r) v -= L[int64_t(r) * k + i] * da[r];
      da[i] = v / L[int64_t(i) * k + i];
    }
  }
}

// Work of one Newton factorisation on each side (multiply-adds), for the choice between them.
double cost_on_sources(const Structure& st) {
  double cost = double(st.nB) * st.nB * st.nB / 3;
  for (int x1 = 0; x1 < st.n1; ++x1) {
    const AlphaBlock blk = alpha_block(st, x1);
    cost += double(blk.k) * blk.nJ * blk.nJ / 2 + double(blk.k) * blk.k * blk.nJ;
  }
  return cost;
}

double cost_on_cells(const Structure& st) {
  std::vector<double> vars(st.ny, 0.0), triples(st.ny, 0.0);
  for (int a = 0; a < st.n1 * st.ny; ++a)
    if (st.a_index[a] >= 0) vars[a % st.ny] += 1;
  for (int b = 0; b < st.n2 * st.ny; ++b)
    if (st.b_index[b] >= 0) vars[b % st.ny] += 1;
  for (int t = 0; t < st.triples(); ++t) triples[st.t_y[t]] += 1;
  double cost = double(st.cells()) * st.cells() * st.cells() / 3;
  for (int y = 0; y < st.ny; ++y) cost += 1.4 * vars[y] * vars[y] * vars[y] + triples[y] * triples[y];
  return cost;
}

void factorize_cells(const Structure& st, Workspace& w) {
  const LabelStructure& ls = w.ls;
  const int C = st.cells(), nA = st.nA;
  // Per label: D_y, factorised, then inverted (explicitly: the cell system needs its entries).
  for (int y = 0; y < st.ny; ++y) {
    const int v0 = ls.var_start[y], k = ls.var_start[y + 1] - v0;
    if (k == 0) continue;
    double* L = w.dfactor.data();
    std::fill(L, L + int64_t(k) * k, 0.0);
    for (int i = ls.triple_start[y]; i < ls.triple_start[y + 1]; ++i) {
      const int t = ls.triples[i];
      const double q = w.m[ls.t_cell[t]] * w.p[t];
      const int la = ls.var_local[st.t_a[t]], lb = ls.var_local[nA + st.t_b[t]];
      L[int64_t(la) * k + la] += q;
      if (lb >= 0) {
        L[int64_t(lb) * k + lb] += q;
        L[int64_t(lb) * k + la] += q;  // lb > la: betas follow the alphas
      }
    }
    cholesky_unblocked(L, k, k);
    double* inv = w.dinv.data() + ls.inv_off[y];
    for (int j = 0; j < k; ++j) {
      double* col = inv + int64_t(j) * k;  // symmetric: column j stored as row j
      std::fill(col, col + k, 0.0);
      col[j] = 1.0;
      cholesky_solve(L, k, col);
    }
  }
  // G = V^T D^-1 V (lower triangle, cells x cells), label by label:
  // G(c, c') += p_t p_t' (Dinv(a, a') + Dinv(a, b') + Dinv(b, a') + Dinv(b, b')).
  double* G = w.G.data();
  std::fill(G, G + int64_t(C) * C, 0.0);
  for (int y = 0; y < st.ny; ++y) {
    const int v0 = ls.var_start[y], k = ls.var_start[y + 1] - v0;
    const int i0 = ls.triple_start[y], n = ls.triple_start[y + 1] - i0;
    if (k == 0 || n == 0) continue;
    const double* inv = w.dinv.data() + ls.inv_off[y];
    int* la = w.t_la.data();
    int* lb = w.t_lb.data();
    int* cell = w.t_c.data();
    double* pt = w.t_p.data();
    for (int i = 0; i < n; ++i) {
      const int t = ls.triples[i0 + i];
      la[i] = ls.var_local[st.t_a[t]];
      const int b = ls.var_local[nA + st.t_b[t]];
      lb[i] = b >= 0 ? b : k;  // slot k of every row of W is zero
      cell[i] = ls.t_cell[t];
      pt[i] = w.p[t];
    }
    // Row i of W = Dinv e_a(i) + Dinv e_b(i), then G(c_i, c_j) += p_i p_j (W_i(a_j) + W_i(b_j)).
    double* W = w.wrow.data();
    for (int i = 0; i < n; ++i) {
      const double* ra = inv + int64_t(la[i]) * k;
      if (lb[i] < k) {
        const double* rb = inv + int64_t(lb[i]) * k;
        for (int j = 0; j < k; ++j) W[j] = ra[j] + rb[j];
      } else {
        for (int j = 0; j < k; ++j) W[j] = ra[j];
      }
      W[k] = 0.0;
      double* grow = G + int64_t(cell[i]) * C;
      const double pi = pt[i];
#pragma omp simd
      for (int j = 0; j <= i; ++j) grow[cell[j]] += pi * pt[j] * (W[la[j]] + W[lb[j]]);
    }
  }
  // K = diag(1/d) + G with the cells of positive d first ("pos"), then negative ("neg").
  int np = 0, nn = 0;
  for (int c = 0; c < C; ++c) {
    const double d = w.m[c] / w.s[c] - w.m[c];
    w.cell_d[c] = d;
    if (d > 0) w.cell_order[np++] = c;
  }
  for (int c = 0; c < C; ++c)
    if (w.cell_d[c] < 0) w.cell_order[np + nn++] = c;
  w.n_pos = np;
  w.n_neg = nn;
  auto g = [&](int c, int c2) { return c >= c2 ? G[int64_t(c) * C + c2] : G[int64_t(c2) * C + c]; };
  double* Kpp = w.Kpp.data();
  for (int i = 0; i < np; ++i) {
    const int ci = w.cell_order[i];
    for (int j = 0; j <= i; ++j) Kpp[int64_t(i) * np + j] = g(ci, w.cell_order[j]);
    Kpp[int64_t(i) * np + i] += 1.0 / w.cell_d[ci];
  }
  if (np > 0) cholesky(Kpp, np, w.panel.data());
  if (nn == 0) return;
  // X = K_np L_pp^-T (rows: negative cells), then M = X X^T - K_nn, positive definite.
  if (w.Knp.size() < size_t(nn) * np) w.Knp.resize(size_t(nn) * np);
  if (w.Knn.size() < size_t(nn) * nn) w.Knn.resize(size_t(nn) * nn);
  double* X = w.Knp.data();
  double* M = w.Knn.data();
  for (int i = 0; i < nn; ++i) {
    const int ci = w.cell_order[np + i];
    double* xi = X + int64_t(i) * np;
    for (int j = 0; j < np; ++j) {
      const double* lj = Kpp + int64_t(j) * np;
      double v = g(ci, w.cell_order[j]);
      for (int r = 0; r < j; ++r) v -= lj[r] * xi[r];
      xi[j] = v / lj[j];
    }
    for (int j = 0; j <= i; ++j) {
      const double* xj = X + int64_t(j) * np;
      double v = -g(ci, w.cell_order[np + j]);
      for (int r = 0; r < np; ++r) v += xi[r] * xj[r];
      M[int64_t(i) * nn + j] = v;
    }
    M[int64_t(i) * nn + i] -= 1.0 / w.cell_d[ci];
  }
  cholesky(M, nn, w.panel.data());
}

// x = D^-1 v on the unpinned variables (pinned entries of x are 0); v and x may alias.
void apply_dinv(const Structure& st, Workspace& w, const double* v, double* x) {
  const LabelStructure& ls = w.ls;
  double* local = w.wrow.data();
  for (int y = 0; y < st.ny; ++y) {
    const int v0 = ls.var_start[y], k = ls.var_start[y + 1] - v0;
    const double* inv = w.dinv.data() + ls.inv_off[y];
    for (int j = 0; j < k; ++j) local[j] = v[ls.vars[v0 + j]];
    for (int i = 0; i < k; ++i) {
      const double* row = inv + int64_t(i) * k;
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int j = 0; j < k; ++j) acc += row[j] * local[j];
      local[k + i] = acc;
    }
    for (int i = 0; i < k; ++i) x[ls.vars[v0 + i]] = local[k + i];
  }
  for (int b = 0; b < st.nB; ++b)
    if (st.pinned[b]) x[st.nA + b] = 0.0;
}

// One solve of the augmented system  [D V; V^T -diag(1/d)] [x; z] = [r1; r2]  (z on the
// cells in w.cell_order) with the factors of factorize_cells:
//     K z = V^T D^-1 r1 - r2,   x = D^-1 (r1 - V z).
// With r2 = 0, x = H^-1 r1 (Woodbury). r1 and x must not alias.
void augmented_solve(const Structure& st, Workspace& w, const double* r1, const double* r2, double* x, double* z) {
  const int nA = st.nA, np = w.n_pos, nn = w.n_neg;
  apply_dinv(st, w, r1, x);
  for (int i = 0; i < np + nn; ++i) {
    const int c = w.cell_order[i];
    double v = 0;
    for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t) v += w.p[t] * (x[st.t_a[t]] + x[nA + st.t_b[t]]);
    z[i] = v - r2[i];
  }
  // K = [Lpp 0; X I] diag(I, -M) [Lpp^T X^T; 0 I] with M = Lm Lm^T.
  const double* Lpp = w.Kpp.data();
  const double* X = w.Knp.data();
  forward_substitute(Lpp, np, np, z);
  if (nn > 0) {
    double* zn = z + np;
    for (int i = 0; i < nn; ++i) {
      const double* xi = X + int64_t(i) * np;
      double v = zn[i];
      for (int k = 0; k < np; ++k) v -= xi[k] * z[k];
      zn[i] = -v;  // the middle factor is -M
    }
    cholesky_solve(w.Knn.data(), nn, zn);
    for (int i = 0; i < nn; ++i) {
      const double* xi = X + int64_t(i) * np;
      for (int k = 0; k < np; ++k) z[k] -= xi[k] * zn[i];
    }
  }
  back_substitute(Lpp, np, np, z);
  // x -= D^-1 V z.
  double* u = w.cell_u.data();
  std::fill(u, u + nA + st.nB, 0.0);
  for (int i = 0; i < np + nn; ++i) {
    const int c = w.cell_order[i];
    for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t) {
      u[st.t_a[t]] += w.p[t] * z[i];
      u[nA + st.t_b[t]] += w.p[t] * z[i];
    }
  }
  apply_dinv(st, w, u, u);
  for (int v = 0; v < nA + st.nB; ++v) x[v] -= u[v];
}

// Residuals of the augmented system at (x, z): r1 -= D x + V z, r2 = -(V^T x - z / d).
// Returns the largest |entry| of either. Pinned entries of r1 are 0.
double augmented_residual(const Structure& st, Workspace& w, const double* x, const double* z, double* r1, double* r2) {
  const int nA = st.nA;
  for (int t = 0; t < st.triples(); ++t) {
    const double v = w.m[w.ls.t_cell[t]] * w.p[t] * (x[st.t_a[t]] + x[nA + st.t_b[t]]);
    r1[st.t_a[t]] -= v;
    r1[nA + st.t_b[t]] -= v;
  }
  double norm = 0;
  for (int i = 0; i < w.n_pos + w.n_neg; ++i) {
    const int c = w.cell_order[i];
    double g = 0;
    for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t) {
      r1[st.t_a[t]] -= w.p[t] * z[i];
      r1[nA + st.t_b[t]] -= w.p[t] * z[i];
      g += w.p[t] * (x[st.t_a[t]] + x[nA + st.t_b[t]]);
    }
    r2[i] = z[i] / w.cell_d[c] - g;
    norm = std::max(norm, std::abs(r2[i]));
  }
  for (int v = 0; v < nA + st.nB; ++v) {
    if (v >= nA && st.pinned[v - nA]) r1[v] = 0.0;
    norm = std::max(norm, std::abs(r1[v]));
  }
  return norm;
}

// Solves the factorised system for w.rhs into w.dlam. Woodbury alone loses digits where the
// cells' rank-one terms dominate D (late iterations: d_c = m_c / s_c grows without bound);
// iterative refinement on the augmented system recovers them, because its residuals never
// multiply by d (Bjorck's refinement for least squares).
void solve_newton_cells(const Structure& st, Workspace& w) {
  const int N = st.nA + st.nB, nc = w.n_pos + w.n_neg;
  double* x = w.dlam.data();
  double* z = w.cell_z.data();
  double* r1 = w.refine_r.data();
  double* r2 = w.cell_r2.data();
  double* dx = w.refine_dx.data();
  double* dz = w.cell_dz.data();
  std::copy(w.rhs.begin(), w.rhs.begin() + N, r1);
  for (int b = 0; b < st.nB; ++b)
    if (st.pinned[b]) r1[st.nA + b] = 0.0;
  std::fill(r2, r2 + nc, 0.0);
  augmented_solve(st, w, r1, r2, x, z);
  double previous = std::numeric_limits<double>::infinity();
  for (int step = 0; step < kRefinementSteps; ++step) {
    std::copy(w.rhs.begin(), w.rhs.begin() + N, r1);
    const double norm = augmented_residual(st, w, x, z, r1, r2);
    if (!(norm < 0.5 * previous)) break;  // no longer improving (or already exact)
    previous = norm;
    augmented_solve(st, w, r1, r2, dx, dz);
    for (int v = 0; v < N; ++v) x[v] += dx[v];
    for (int i = 0; i < nc; ++i) z[i] += dz[i];
  }
}

// Newton direction of the system
//     sum_c m_c grad LSE_c = P,   s_c + LSE_c(lambda) = 0,   m_c s_c = target_c
// for the targets in w.target: fills w.dlam, w.dm and w.ds.
void direction(const Structure& st, Workspace& w) {
  const int C = st.cells(), N = st.nA + st.nB;
  for (int c = 0; c < C; ++c)
    w.comp[c] = (w.target[c] - w.m[c] * w.s[c] + w.m[c] * (w.s[c] - w.s_true[c])) / w.s[c];
  std::copy(w.rd.begin(), w.rd.end(), w.rhs.begin());
  for (int c = 0; c < C; ++c)
    for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t) {
      const double v = w.p[t] * w.comp[c];
      w.rhs[st.t_a[t]] -= v;
      w.rhs[st.nA + st.t_b[t]] -= v;
    }
  std::fill(w.dlam.begin(), w.dlam.begin() + N, 0.0);
  if (w.on_cells)
    solve_newton_cells(st, w);
  else
    solve_newton(st, w);
  for (int c = 0; c < C; ++c) {
    double g = 0;
    for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t)
      g += w.p[t] * (w.dlam[st.t_a[t]] + w.dlam[st.nA + st.t_b[t]]);
    w.ds[c] = w.s_true[c] - w.s[c] - g;
    w.dm[c] = w.comp[c] + w.m[c] / w.s[c] * g;
  }
}

// Longest step along (w.dm, w.ds), up to 1, that keeps every multiplier and slack positive
// with the fraction-to-boundary rule.
double step_length(const Workspace& w, int C) {
  double step = 1.0;
  for (int c = 0; c < C; ++c) {
    if (w.dm[c] < 0) step = std::min(step, -kStepToBoundary * w.m[c] / w.dm[c]);
    if (w.ds[c] < 0) step = std::min(step, -kStepToBoundary * w.s[c] / w.ds[c]);
  }
  return step;
}

// Dual objective of lambda after lowering the alphas of each x1 by the largest LSE
// violation of its cells, which makes it feasible (alpha(x1, .) - v shifts every LSE of
// x1's cells by -v). `slack` holds -LSE of every cell at lambda.
double shifted_dual(const Structure& st, Workspace& w, const double* lam, const double* slack) {
  std::fill(w.x1_violation.begin(), w.x1_violation.end(), 0.0);
  for (int c = 0; c < st.cells(); ++c)
    w.x1_violation[st.cell_x1[c]] = std::max(w.x1_violation[st.cell_x1[c]], -slack[c]);
  double dual = 0;
  for (int x1 = 0; x1 < st.n1; ++x1)
    for (int a = st.a_start[x1]; a < st.a_start[x1 + 1]; ++a) dual += (lam[a] - w.x1_violation[x1]) * st.pa[a];
  for (int v = 0; v < st.nB; ++v) dual += lam[st.nA + v] * st.pb[v];
  return dual;
}

struct SolveResult {
  double value, bound;
  int iterations;
};

SolveResult solve_one(const double* P, const Shape& shape, const SolverOptions& opt, Workspace& w,
                      double* coupling_out, double* dual1_out, double* dual2_out) {
  Structure& st = w.st;
  build_structure(P, shape, st);
  const int nA = st.nA, nB = st.nB, N = nA + nB, C = st.cells(), T = st.triples();

  // Zeroed storage of every size this distribution needs.
  for (auto* v : {&w.lam, &w.rd, &w.rhs, &w.dlam, &w.best_lam}) v->assign(N, 0.0);
  for (auto* v : {&w.m, &w.s, &w.s_true, &w.ds, &w.dm, &w.target, &w.comp}) v->assign(C, 0.0);
  for (auto* v : {&w.p, &w.q, &w.q_round, &w.best_q}) v->assign(T, 0.0);
  for (auto* v : {&w.ya, &w.row_sum}) v->assign(nA, 0.0);
  w.col_sum.assign(nB, 0.0);
  w.y_norm.assign(st.ny, 0.0);
  w.x1_violation.assign(st.n1, 0.0);
  // The cells' path does more per multiply-add (gathers, explicit inverses, refinement
  // solves): measured, it breaks even at about a third of the sources' count (10x10x10 dense:
  // cells 4.0 ms, sources 1.7 ms; 32^3 even; 2x2x500: 2.7 ms against 0.52 s).
  w.on_cells = opt.elimination == 2 || (opt.elimination == 0 && kCellsWorkFactor * cost_on_cells(st) < cost_on_sources(st));
  if (w.on_cells) {
    LabelStructure& ls = w.ls;
    build_label_structure(st, ls);
    int max_k = 0, max_t = 0;
    for (int y = 0; y < st.ny; ++y) {
      max_k = std::max(max_k, ls.var_start[y + 1] - ls.var_start[y]);
      max_t = std::max(max_t, ls.triple_start[y + 1] - ls.triple_start[y]);
    }
    w.dfactor.assign(int64_t(max_k) * max_k, 0.0);
    w.dinv.assign(ls.inv_off[st.ny], 0.0);
    w.wrow.assign(2 * int64_t(max_k) + 1, 0.0);
    for (auto* v : {&w.t_la, &w.t_lb, &w.t_c}) v->assign(max_t, 0);
    w.t_p.assign(max_t, 0.0);
    w.G.assign(int64_t(C) * C, 0.0);
    w.Kpp.assign(int64_t(C) * C, 0.0);
    w.Knp.clear();  // sized in factorize_cells by the number of cells with d < 0
    w.Knn.clear();
    w.cell_d.assign(C, 0.0);
    w.cell_order.assign(C, 0);
    for (auto* v : {&w.cell_z, &w.cell_r2, &w.cell_dz}) v->assign(C, 0.0);
    for (auto* v : {&w.cell_u, &w.refine_r, &w.refine_dx}) v->assign(N, 0.0);
    w.panel.assign(int64_t(kBlock) * padded(C), 0.0);
  } else {
    w.l_off.assign(st.n1 + 1, 0);
    w.x_off.assign(st.n1 + 1, 0);
    int64_t max_nJ = 0;
    for (int x1 = 0; x1 < st.n1; ++x1) {
      const AlphaBlock blk = alpha_block(st, x1);
      w.l_off[x1 + 1] = w.l_off[x1] + int64_t(blk.k) * blk.k;
      w.x_off[x1 + 1] = w.x_off[x1] + int64_t(blk.k) * padded(blk.nJ);
      max_nJ = std::max<int64_t>(max_nJ, blk.nJ);
    }
    w.Lblocks.assign(w.l_off[st.n1], 0.0);
    w.Xblocks.assign(w.x_off[st.n1], 0.0);
    w.U.assign(max_nJ, 0.0);
    w.S.assign(int64_t(nB) * nB, 0.0);
    w.panel.assign(int64_t(kBlock) * padded(nB), 0.0);
  }

  // Start: the dual point of the closed-form proxy, alpha = log P(y|x1) - log 2 (strictly
  // feasible), beta = log P(x2|y), and cell masses of the proxy coupling.
  std::vector<double> x1_mass(st.n1, 0.0);
  for (int x1 = 0; x1 < st.n1; ++x1)
    for (int a = st.a_start[x1]; a < st.a_start[x1 + 1]; ++a) x1_mass[x1] += st.pa[a];
  for (int x1 = 0; x1 < st.n1; ++x1)
    for (int a = st.a_start[x1]; a < st.a_start[x1 + 1]; ++a)
      w.lam[a] = std::log(st.pa[a] / x1_mass[x1]) - std::log(2.0);
  for (int x2 = 0; x2 < st.n2; ++x2)
    for (int y = 0; y < st.ny; ++y) {
      const int b = st.b_index[int64_t(x2) * st.ny + y];
      if (b >= 0) w.lam[nA + b] = std::log(st.pb[b] / st.y_mass[y]);
    }
  for (int c = 0; c < C; ++c) {
    double mass = 0;
    for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t)
      mass += st.pa[st.t_a[t]] * st.pb[st.t_b[t]] / st.y_mass[st.t_y[t]];
    w.m[c] = mass + 1e-3 / C;
  }
  cell_slacks(st, w.lam.data(), w.s_true.data(), w.p.data());
  std::copy(w.s_true.begin(), w.s_true.end(), w.s.begin());

  double best_f = std::numeric_limits<double>::infinity();
  double best_dual = -std::numeric_limits<double>::infinity();
  int it = 0;
  for (;; ++it) {
    // Residuals of the marginal constraints at the current point (w.s_true and w.p hold
    // -LSE and the softmax of every cell at w.lam).
    std::copy(st.pa.begin(), st.pa.end(), w.rd.begin());
    std::copy(st.pb.begin(), st.pb.end(), w.rd.begin() + nA);
    for (int c = 0; c < C; ++c)
      for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t) {
        w.q[t] = w.m[c] * w.p[t];
        w.rd[st.t_a[t]] -= w.q[t];
        w.rd[nA + st.t_b[t]] -= w.q[t];
      }
    // Certificate. Dual: lambda made feasible by lowering the alphas of each x1 by the largest
    // violation of its cells (alpha(x1, .) - v shifts every LSE of x1's cells by -v).
    const double dual = shifted_dual(st, w, w.lam.data(), w.s_true.data());
    if (dual > best_dual) {
      best_dual = dual;
      for (int x1 = 0; x1 < st.n1; ++x1)
        for (int a = st.a_start[x1]; a < st.a_start[x1 + 1]; ++a)
          w.best_lam[a] = w.lam[a] - w.x1_violation[x1];
      std::copy(w.lam.begin() + nA, w.lam.end(), w.best_lam.begin() + nA);
    }
    // Primal: the coupling m * p rounded exactly onto the constraints.
    const double f = rounded_objective(st, w, w.q.data());
    if (f < best_f) {
      best_f = f;
      std::copy(w.q_round.begin(), w.q_round.end(), w.best_q.begin());
    }
    if (best_f - best_dual <= opt.tol || it >= opt.max_iter || C == 0) break;

    double mu = 0;
    for (int c = 0; c < C; ++c) mu += w.m[c] * w.s[c];
    mu /= C;
    if (w.on_cells)
      factorize_cells(st, w);
    else
      factorize(st, w);

    // Mehrotra predictor-corrector: the affine direction chooses the centring parameter and
    // supplies the second-order term of the complementarity products.
    std::fill(w.target.begin(), w.target.end(), 0.0);
    direction(st, w);
    double step = step_length(w, C);
    double mu_aff = 0;
    for (int c = 0; c < C; ++c) mu_aff += (w.m[c] + step * w.dm[c]) * (w.s[c] + step * w.ds[c]);
    mu_aff /= C;
    const double ratio = std::min(1.0, std::max(mu_aff / mu, 0.0));
    const double sigma = ratio * ratio * ratio;
    for (int c = 0; c < C; ++c) w.target[c] = sigma * mu - w.dm[c] * w.ds[c];
    direction(st, w);
    step = step_length(w, C);
    // Trust region on the dual point: LSE is linear only over moderate moves, and the
    // Newton step of a variable that carries a tiny probability can be huge.
    double max_move = 0;
    for (int v = 0; v < N; ++v) max_move = std::max(max_move, std::abs(w.dlam[v]));
    if (step * max_move > kMaxDualMove) step = kMaxDualMove / max_move;
    if (!(step > 1e-14)) break;  // no progress possible: keep the certificate reached so far
    for (int v = 0; v < N; ++v) w.lam[v] += step * w.dlam[v];
    cell_slacks(st, w.lam.data(), w.s_true.data(), w.p.data());
    for (int c = 0; c < C; ++c) {
      w.m[c] += step * w.dm[c];
      w.s[c] += step * w.ds[c];
    }
  }

  if (coupling_out) {
    std::fill(coupling_out, coupling_out + shape.size(), 0.0);
    for (int c = 0; c < C; ++c) {
      const int x1 = st.cell_x1[c], x2 = st.cell_x2[c];
      for (int t = st.cell_start[c]; t < st.cell_start[c + 1]; ++t) {
        const int i1 = st.swapped ? x2 : x1, i2 = st.swapped ? x1 : x2;
        coupling_out[(int64_t(i1) * shape.n2 + i2) * shape.ny + st.t_y[t]] = w.best_q[t];
      }
    }
  }
  if (dual1_out || dual2_out) {
    double* da = st.swapped ? dual2_out : dual1_out;
    double* db = st.swapped ? dual1_out : dual2_out;
    for (int x1 = 0; x1 < st.n1; ++x1)
      for (int y = 0; y < st.ny; ++y) {
        const int a = st.a_index[int64_t(x1) * st.ny + y];
        if (da) da[int64_t(x1) * st.ny + y] = a >= 0 ? w.best_lam[a] : 0.0;
      }
    for (int x2 = 0; x2 < st.n2; ++x2)
      for (int y = 0; y < st.ny; ++y) {
        const int b = st.b_index[int64_t(x2) * st.ny + y];
        if (db) db[int64_t(x2) * st.ny + y] = b >= 0 ? w.best_lam[nA + b] : 0.0;
      }
  }
  return {-best_f, std::max(best_f - best_dual, 0.0), it};
}

}  // namespace

void exact_cpu(const double* P, Shape shape, SolverOptions options, SolveOutputs out,
               int num_threads) {
  const int64_t per = shape.size();
#ifdef FASTPID_WITH_OPENMP
  if (num_threads <= 0) num_threads = omp_get_max_threads();
#pragma omp parallel num_threads(num_threads)
#endif
  {
    Workspace w;
#ifdef FASTPID_WITH_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t b = 0; b < shape.batch; ++b) {
      const SolveResult r =
          solve_one(P + b * per, shape, options, w, out.coupling ? out.coupling + b * per : nullptr,
                    out.dual1 ? out.dual1 + b * int64_t(shape.n1) * shape.ny : nullptr,
                    out.dual2 ? out.dual2 + b * int64_t(shape.n2) * shape.ny : nullptr);
      out.value[b] = r.value;
      out.bound[b] = r.bound;
      out.converged[b] = r.bound <= options.tol && std::isfinite(r.value);
      out.iterations[b] = r.iterations;
    }
  }
}

int max_threads() {
#ifdef FASTPID_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace fastpid
