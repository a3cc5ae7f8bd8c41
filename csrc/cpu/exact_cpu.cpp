// The CPU algebra of the exact solver (exact.hpp): the Newton systems of the interior-point
// method with tuned serial kernels, and the OpenMP driver (one distribution per thread).
//
// Two eliminations of the Newton matrix sum_c E_c Z_c E_c^T, chosen per distribution by their
// work (cost_on_sources, cost_on_cells):
// - on the sources: the alpha unknowns of one x1 couple only to each other and to beta, so they
//   are eliminated block by block (n1 dense blocks of at most ny x ny), leaving a dense Schur
//   complement on beta, the side with fewer variables;
// - on the cells, when the label alphabet is large and that complement ((n2 ny)^2) dwarfs the
//   number of cells: per-label blocks first, then a dense system of one unknown per cell (see
//   "eliminated on the cells" below).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "batch_cpu.hpp"
#include "dense_cpu.hpp"
#include "fastpid/exact.hpp"
#include "fastpid/pid.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {
namespace {

using namespace dense_cpu;

constexpr double kCellsWorkFactor = 3.0;  // see CpuAlgebra::prepare
// A stalled run switches to the cells' elimination where its counted work is at most this many
// times the sources' (see CpuAlgebra::fall_back). Measured per iteration, one thread: 20x20x6
// histograms 8.5x dearer on the cells (counted, with kCellsWorkFactor: about 45x), dense 10^3
// 2.1x, 16^3 1.5x; so by those times a stalled 20x20x6 that does not recover spends about 0.2 s
// on its 100 iterations instead of 0.02 s.
constexpr double kFallBackWork = 100.0;
constexpr int kRefinementSteps = 8;     // at most, per solve on the cells (see solve_cells)
constexpr double kRefinedEnough = 1e-14;  // residual / right-hand side (max norms) that ends them

// inv = (L L^T)^-1 = L^-T L^-1 (k x k, both triangles, row stride k) from the Cholesky factor
// L (row stride k), which is overwritten by L^-1; `acc` is scratch of k doubles. Half the
// multiply-adds of k solves with the columns of the identity, and every inner loop a
// contiguous axpy (the solves were latency-bound on their divisions).
void spd_inverse_from_cholesky(double* L, int k, double* inv, double* acc) {
  for (int i = 0; i < k; ++i) {  // row i of L^-1 from the rows above it (already inverted)
    double* li = L + int64_t(i) * k;
    std::fill(acc, acc + i, 0.0);
    for (int r = 0; r < i; ++r) {
      const double a = li[r];
      const double* lr = L + int64_t(r) * k;
#pragma omp simd
      for (int c = 0; c <= r; ++c) acc[c] += a * lr[c];
    }
    const double inv_ii = 1.0 / li[i];
    for (int c = 0; c < i; ++c) li[c] = -acc[c] * inv_ii;
    li[i] = inv_ii;
  }
  std::fill(inv, inv + int64_t(k) * k, 0.0);
  for (int r = 0; r < k; ++r) {  // inv += (row r of L^-1)^T (row r of L^-1)
    const double* lr = L + int64_t(r) * k;
    for (int i = 0; i <= r; ++i) {
      const double a = lr[i];
      double* row = inv + int64_t(i) * k;
#pragma omp simd
      for (int c = 0; c <= r; ++c) row[c] += a * lr[c];
    }
  }
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

// The alpha block of one x1 value: its variables a0 .. a0 + k and the triples of its cells,
// t_first .. t_first + nJ (their beta variables are increasing, see factorize()).
struct AlphaBlock {
  int a0, k, t_first, nJ;
  bool empty() const { return k == 0 || nJ == 0; }
};

AlphaBlock alpha_block(const ExactStructure& st, int x1) {
  const int a0 = st.a_start[x1], c0 = st.x1_cell_start[x1], c1 = st.x1_cell_start[x1 + 1];
  const int t_first = st.cell_start[c0];
  return {a0, st.a_start[x1 + 1] - a0, t_first, st.cell_start[c1] - t_first};
}

// Where the eliminated coupling X = L^-1 B of each x1 block is stored. The Schur complement
// S -= X^T X is cheap only over many rows at once (a rank-6 update of a 120 x 120 S moves S
// through the cache for 6 multiply-adds per entry), so consecutive blocks whose beta variables
// lie in a common range are stacked into one chunk: one matrix of sum k rows, columns indexed
// by beta variable - col0 (zero where a block has no triple), updated into S by one syrk.
// A block whose betas are spread far wider than its triples (label-sparse x1 values) keeps
// a scattered layout of its own (column j = its j-th triple) and the scattered update.
struct BlockLayout {
  int64_t l_off = 0, x_off = 0;  // offsets of L (k x k) and X in Lblocks / Xblocks
  int64_t ldx = 0;               // row stride of X
  int col0 = -1;                 // stacked: beta variable of column 0; scattered: -1
};
struct Chunk {
  int rows = 0, col0 = 0, width = 0;
  int64_t x_off = 0, ldx = 0;
};
constexpr double kStackWidthSlack = 1.25;  // a chunk's columns may exceed any member's by this factor
constexpr double kScatteredSpread = 2.0;   // a block's beta range over its triples beyond which it stays scattered

// Chooses the chunks and the storage of every block (see BlockLayout); returns the sizes of
// Lblocks and Xblocks.
void plan_blocks(const ExactStructure& st, std::vector<BlockLayout>& layout, std::vector<Chunk>& chunks,
                 int64_t& l_size, int64_t& x_size) {
  layout.assign(st.n1, BlockLayout{});
  chunks.clear();
  std::vector<int> lo(st.n1, 0), hi(st.n1, 0), chunk_of(st.n1, -1);
  int open = -1;  // chunk that the next stacked block may join
  for (int x1 = 0; x1 < st.n1; ++x1) {
    const AlphaBlock blk = alpha_block(st, x1);
    if (blk.empty()) continue;
    lo[x1] = st.t_b[blk.t_first];  // betas increase along a block's triples
    hi[x1] = st.t_b[blk.t_first + blk.nJ - 1] + 1;
    const int width = hi[x1] - lo[x1];
    if (width > kScatteredSpread * blk.nJ) {
      open = -1;
      continue;
    }
    if (open >= 0) {
      Chunk& ch = chunks[open];
      const int u0 = std::min(ch.col0, lo[x1]), u1 = std::max(ch.col0 + ch.width, hi[x1]);
      if (u1 - u0 <= kStackWidthSlack * std::min(ch.width, width) || (u0 == ch.col0 && u1 - u0 == ch.width)) {
        ch.col0 = u0, ch.width = u1 - u0, ch.rows += blk.k;
        chunk_of[x1] = open;
        continue;
      }
    }
    chunks.push_back(Chunk{blk.k, lo[x1], width, 0, 0});
    open = int(chunks.size()) - 1;
    chunk_of[x1] = open;
  }
  l_size = x_size = 0;
  for (Chunk& ch : chunks) {
    ch.ldx = padded(ch.width);
    ch.x_off = x_size;
    x_size += int64_t(ch.rows) * ch.ldx;
  }
  std::vector<int64_t> chunk_fill(chunks.size(), 0);
  for (int x1 = 0; x1 < st.n1; ++x1) {
    const AlphaBlock blk = alpha_block(st, x1);
    if (blk.empty()) continue;
    BlockLayout& bl = layout[x1];
    bl.l_off = l_size;
    l_size += int64_t(blk.k) * blk.k;
    if (chunk_of[x1] >= 0) {
      const Chunk& ch = chunks[chunk_of[x1]];
      bl.col0 = ch.col0;
      bl.ldx = ch.ldx;
      bl.x_off = ch.x_off + chunk_fill[chunk_of[x1]] * ch.ldx;
      chunk_fill[chunk_of[x1]] += blk.k;
    } else {
      bl.col0 = -1;
      bl.ldx = padded(blk.nJ);
      bl.x_off = x_size;
      x_size += int64_t(blk.k) * bl.ldx;
    }
  }
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

void build_label_structure(const ExactStructure& st, LabelStructure& ls) {
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

// Z_c of a cell whose n triples are consecutive runs of alphas and betas (every label between
// its first and last present), added into L, X and S from the entry of its first triple (row
// strides ldl, ldx, lds): rows i, entries j < n (X) and j <= i (L, S). With n known to the
// compiler the loops unroll into straight code. As loops over a few triples, their exits
// were mispredicted and the diagonal terms added after them waited on the loops' stores
// (profiled on 20x20x6, cells of 6 triples: factorize_sources 15.7% -> 10.6% of a solve,
// the kernel 6.5% faster; dense 6^3 12%, dense 10^3 2%, 20x20x10 1%;
// results/exact_assembly_cpu.json).
template <int N>
inline void add_run_cell(double d, double m, const double* pc, double* L, int64_t ldl, double* X, int64_t ldx,
                         double* S, int64_t lds) {
  for (int i = 0; i < N; ++i) {
    const double di = d * pc[i], mi = m * pc[i];
    double* xrow = X + i * ldx;
    double* lrow = L + i * ldl;
    double* srow = S + i * lds;
    for (int j = 0; j < N; ++j) xrow[j] += di * pc[j] + (j == i ? mi : 0.0);
    for (int j = 0; j <= i; ++j) {
      const double z = di * pc[j] + (j == i ? mi : 0.0);
      lrow[j] += z;
      srow[j] += z;
    }
  }
}
// add_run_cell<n> for a run-time n, 1 <= n <= N.
template <int N>
inline void add_run_cell_of_size(int n, double d, double m, const double* pc, double* L, int64_t ldl, double* X,
                                 int64_t ldx, double* S, int64_t lds) {
  if constexpr (N > 1)
    if (n < N) return add_run_cell_of_size<N - 1>(n, d, m, pc, L, ldl, X, ldx, S, lds);
  add_run_cell<N>(d, m, pc, L, ldl, X, ldx, S, lds);
}
constexpr int kUnrolledCell = 12;  // largest run cell with its own add_run_cell

// Mixed precision: while the duality gap (nats, sum_c m_c s_c) exceeds kSingleGap, the Schur
// complement's update S -= X^T X is computed in single precision (twice the multiply-adds per
// instruction) on chunks of at least kSingleColumns columns. The early Newton directions need
// few digits; the certificate is always evaluated in double, so a worse direction could only
// cost iterations, never accuracy. Measured (results/exact_mixed_cpu.json): mean iterations of
// every family and of 20x20x6, dense 10^3 and 16^3 unchanged at 1e-7 bits and at 1e-10 nats
// (a gap of 1e-5 begins to add some); harsh-family draws of 12x12x8 to 32x32x8 at 1e-8 bits:
// no stop, the same iterations; dense 64^3 10.5 -> 9.3 s, 128x128x16 about 1.85 -> 1.6 s, 32^3
// about 5% faster; from 64 columns on (the same checks): 20x20x6 (120 columns) 5% faster,
// 20x20x10 9%, dense 10^3 4.5%. Narrower chunks (dense 6^3: 36) gain nothing; they stay in double.
constexpr double kSingleGap = 1e-4;
constexpr int kSingleColumns = 64;
constexpr double kSingleCancellation = 1e-5;  // see single_precision_kept_digits

// Per-thread storage of the Newton systems; reused across the distributions a thread handles.
// m, s, p (cells, cells, triples) point at the solver's current iterate during factorize and
// solve; rhs and dlam at the system's right-hand side and solution.
struct Workspace {
  const double *m = nullptr, *s = nullptr, *p = nullptr, *rhs = nullptr;
  double* dlam = nullptr;
  int threads = 1;  // threads that share the dense updates of one distribution (exact_cpu)
  std::vector<double> Lblocks, Xblocks, S, U, ya, panel;
  std::vector<float> Xsingle;  // one chunk of Xblocks in float (factorize_sources)
  std::vector<double> single_diag;  // S's diagonal before the single-precision update
  bool mixed_precision = true;  // SolverOptions::mixed_precision
  std::vector<BlockLayout> layout;  // the elimination on the sources (plan_blocks)
  std::vector<Chunk> chunks;
  // The elimination on the cells (LabelStructure above), when chosen for this distribution.
  bool on_cells = false;
  LabelStructure ls;
  std::vector<double> dfactor, dinv, G, wrow, t_p, cell_d, Kpp, Knp, Knn, cell_u, refine_r, refine_dx, cell_z, cell_r2, cell_dz;
  std::vector<int> t_la, t_lb, t_c, cell_order;  // t_*: per triple in label order (LabelStructure)
  int64_t wrow_stride = 0;                      // wrow: one row of W per thread
  int n_pos = 0, n_neg = 0;

  // Storage held, in doubles (KeptPerThread frees it above kKeptDoubles): every vector above,
  // so a vector added to this struct is added here too.
  int64_t held_doubles() const {
    int64_t bytes = int64_t(Xsingle.capacity() * sizeof(float) + layout.capacity() * sizeof(BlockLayout) + chunks.capacity() * sizeof(Chunk));
    for (const auto* v : {&Lblocks, &Xblocks, &S, &U, &ya, &panel, &single_diag, &dfactor, &dinv, &G, &wrow, &t_p, &cell_d, &Kpp, &Knp, &Knn,
                          &cell_u, &refine_r, &refine_dx, &cell_z, &cell_r2, &cell_dz})
      bytes += int64_t(v->capacity() * sizeof(double));
    for (const auto* v : {&t_la, &t_lb, &t_c, &cell_order, &ls.var_start, &ls.vars, &ls.var_local, &ls.triple_start, &ls.triples, &ls.t_cell})
      bytes += int64_t(v->capacity() * sizeof(int));
    return bytes / int64_t(sizeof(double)) + int64_t(ls.inv_off.capacity());
  }
};

// Whether the single-precision update left enough digits in S: every pivot of its Cholesky
// factor (unpinned, not cut) at least kSingleCancellation of the diagonal that the update
// started from. The update's rounding is about 6e-8 of that diagonal, so at 1e-5 a pivot keeps
// about two digits. On degenerate inputs (sum gates, duplicated and functionally dependent
// sources) S is nearly singular from the first iteration: pivots were cut, the float directions
// collapsed the step, and a 16x16x31 sum gate stopped after one iteration with a bound of
// 1.2e-4 bits. Measured (results/exact_structured_cpu.json): the check fails on those and on no
// input of the other families (20 draws each at 8^3 to 32x32x8; at 1e-4 it failed on a few of
// them, at 1e-3 on most, costing their float update for nothing).
bool single_precision_kept_digits(const ExactStructure& st, const Workspace& w) {
  const int nB = st.nB;
  for (int b = 0; b < nB; ++b) {
    if (st.pinned[b]) continue;
    const double l = w.S[int64_t(b) * nB + b];
    if (!(l < exact_detail::kPivotHuge && l * l >= kSingleCancellation * w.single_diag[b])) return false;
  }
  return true;
}

// Factorises the Newton matrix sum_c E_c Z_c E_c^T by block elimination of alpha.
// Z_c = diag(Q) + d_c p p^T with Q = m_c p and d_c = m_c / s_c - m_c.
void factorize_sources(const ExactStructure& st, Workspace& w) {
  const int nB = st.nB;
  std::fill(w.S.begin(), w.S.end(), 0.0);
  std::fill(w.Xblocks.begin(), w.Xblocks.end(), 0.0);
  for (int x1 = 0; x1 < st.n1; ++x1) {
    const AlphaBlock blk = alpha_block(st, x1);
    if (blk.empty()) continue;
    const BlockLayout& bl = w.layout[x1];
    const int a0 = blk.a0, k = blk.k, t_first = blk.t_first;
    const int c0 = st.x1_cell_start[x1], c1 = st.x1_cell_start[x1 + 1];
    double* L = w.Lblocks.data() + bl.l_off;
    double* X = w.Xblocks.data() + bl.x_off;
    const int64_t ldx = bl.ldx;
    std::fill(L, L + int64_t(k) * k, 0.0);
    // Z_c(t, u) = d p_t p_u + [t == u] m p_t into the alpha-alpha block of x1 (L, lower), the
    // alpha-beta coupling (X: row of u's alpha, column of t's beta) and the beta-beta block
    // (S, lower). Within a cell, the triples' alphas and betas both increase with the label,
    // so "lower" is u <= t; where they are consecutive (every label of the cell present: the
    // dense case) the rows are contiguous runs.
    for (int c = c0; c < c1; ++c) {
      const int t0 = st.cell_start[c], n = st.cell_start[c + 1] - t0;
      const double m = w.m[c], d = m / w.s[c] - m;
      const double* pc = w.p + t0;
      const int* ta = st.t_a + t0;
      const int* tb = st.t_b + t0;
      const int j0 = bl.col0 >= 0 ? tb[0] - bl.col0 : t0 - t_first;  // X column of the first triple
      const bool runs = ta[n - 1] - ta[0] == n - 1 && tb[n - 1] - tb[0] == n - 1;
      if (runs && n <= kUnrolledCell) {
        double* l = L + int64_t(ta[0] - a0) * (k + 1);
        double* x = X + int64_t(ta[0] - a0) * ldx + j0;
        double* sd = w.S.data() + int64_t(tb[0]) * (nB + 1);
        add_run_cell_of_size<kUnrolledCell>(n, d, m, pc, l, k, x, ldx, sd, nB);
        continue;
      }
      for (int i = 0; i < n; ++i) {
        const double di = d * pc[i];
        double* lrow = L + int64_t(ta[i] - a0) * k;
        double* xrow = X + int64_t(ta[i] - a0) * ldx;
        double* srow = w.S.data() + int64_t(tb[i]) * nB;
        if (runs) {  // larger than kUnrolledCell: these loops vectorise over the cell (add_run_cell
                     // with n at run time, the diagonal inside, measured dense 16^3 about 3% slower)
          lrow += ta[0] - a0;
          xrow += j0;
          srow += tb[0];
#pragma omp simd
          for (int j = 0; j < n; ++j) xrow[j] += di * pc[j];
#pragma omp simd
          for (int j = 0; j <= i; ++j) {
            lrow[j] += di * pc[j];
            srow[j] += di * pc[j];
          }
          xrow[i] += m * pc[i];
          lrow[i] += m * pc[i];
          srow[i] += m * pc[i];
        } else {
          for (int j = 0; j < n; ++j) {
            const double z = di * pc[j] + (j == i ? m * pc[i] : 0.0);
            xrow[bl.col0 >= 0 ? tb[j] - bl.col0 : t0 + j - t_first] += z;
            if (j <= i) {
              lrow[ta[j] - a0] += z;
              srow[tb[j]] += z;
            }
          }
        }
      }
    }
    cholesky_unblocked(L, k, k);
    // X <- L^{-1} X, row by row.
    const int width = bl.col0 >= 0 ? int(ldx) : blk.nJ;
    for (int i = 0; i < k; ++i) {
      double* xi = X + int64_t(i) * ldx;
      for (int r = 0; r < i; ++r) {
        const double l = L[int64_t(i) * k + r];
        const double* xr = X + int64_t(r) * ldx;
#pragma omp simd
        for (int j = 0; j < width; ++j) xi[j] -= l * xr[j];
      }
      const double inv = 1.0 / L[int64_t(i) * k + i];
#pragma omp simd
      for (int j = 0; j < width; ++j) xi[j] *= inv;
    }
    if (bl.col0 < 0)  // S -= X^T X on the scattered betas of this block's triples (increasing)
      syrk_lower_sub_scattered(X, k, blk.nJ, ldx, st.t_b + t_first, w.S.data(), nB, w.U.data());
  }
  // S -= X^T X over every stacked block at once; in single precision while the duality gap
  // is large (see kSingleGap).
  double gap = 0;
  for (int c = 0; c < st.C; ++c) gap += w.m[c] * w.s[c];
  bool single = false;
  for (const Chunk& ch : w.chunks) single |= w.mixed_precision && gap > kSingleGap && ch.width >= kSingleColumns;
  if (single)
    for (int b = 0; b < nB; ++b) w.single_diag[b] = w.S[int64_t(b) * nB + b];
  for (const Chunk& ch : w.chunks) {
    double* S = w.S.data() + int64_t(ch.col0) * nB + ch.col0;
    const double* X = w.Xblocks.data() + ch.x_off;
    if (single && ch.width >= kSingleColumns) {
      const int64_t ldf = padded_single(ch.width);
      float* Xf = w.Xsingle.data();
      for (int i = 0; i < ch.rows; ++i) {  // the row's padding zeroed, X read only up to width
        float* xf = Xf + i * ldf;
        const double* x = X + i * ch.ldx;
#pragma omp simd
        for (int j = 0; j < ch.width; ++j) xf[j] = float(x[j]);
        std::fill(xf + ch.width, xf + ldf, 0.0f);
      }
      syrk_lower_sub(Xf, ch.rows, ch.width, ldf, S, nB, w.threads);
    } else {
      syrk_lower_sub(X, ch.rows, ch.width, ch.ldx, S, nB, w.threads);
    }
  }
  for (int b = 0; b < nB; ++b)
    if (st.pinned[b]) {
      for (int j = 0; j < nB; ++j) w.S[int64_t(b) * nB + j] = w.S[int64_t(j) * nB + b] = 0.0;
      w.S[int64_t(b) * nB + b] = 1.0;
    }
  cholesky(w.S.data(), nB, w.panel.data(), w.threads);
  if (single && !single_precision_kept_digits(st, w)) {
    w.mixed_precision = false;  // for the rest of this distribution: cancellation only grows
    factorize_sources(st, w);
  }
}

// One x1 block's factors as solve_sources walks them: L (k x k), X = L^-1 B with its layout,
// and the betas its columns map to (stacked: the contiguous width from col0; scattered: bj).
struct BlockFactors {
  AlphaBlock blk;
  const double *L = nullptr, *X = nullptr;
  int64_t ldx = 0;
  int col0 = -1, width = 0;
  const int* bj = nullptr;
};

BlockFactors block_factors(const ExactStructure& st, const Workspace& w, int x1) {
  BlockFactors f;
  f.blk = alpha_block(st, x1);
  if (f.blk.empty()) return f;
  const BlockLayout& bl = w.layout[x1];
  f.L = w.Lblocks.data() + bl.l_off;
  f.X = w.Xblocks.data() + bl.x_off;
  f.ldx = bl.ldx;
  f.col0 = bl.col0;
  f.width = bl.col0 >= 0 ? std::min<int>(int(bl.ldx), st.nB - bl.col0) : f.blk.nJ;
  f.bj = st.t_b + f.blk.t_first;
  return f;
}

// Solves the factorised Newton system for the right-hand side w.rhs into w.dlam.
void solve_sources(const ExactStructure& st, Workspace& w) {
  const int nA = st.nA, nB = st.nB;
  double* rb = w.dlam + nA;
  std::copy(w.rhs + nA, w.rhs + nA + nB, rb);
  for (int x1 = 0; x1 < st.n1; ++x1) {  // y = L^-1 rhs_alpha, rb -= X^T y
    const BlockFactors f = block_factors(st, w, x1);
    if (f.blk.empty()) continue;
    const int a0 = f.blk.a0, k = f.blk.k;
    double* y = w.ya.data() + a0;
    for (int i = 0; i < k; ++i) {
      double v = w.rhs[a0 + i];
      for (int r = 0; r < i; ++r) v -= f.L[int64_t(i) * k + r] * y[r];
      y[i] = v / f.L[int64_t(i) * k + i];
    }
    for (int i = 0; i < k; ++i) {
      const double* xi = f.X + int64_t(i) * f.ldx;
      const double yi = y[i];
      if (f.col0 >= 0) {
        double* dst = rb + f.col0;
#pragma omp simd
        for (int j = 0; j < f.width; ++j) dst[j] -= xi[j] * yi;
      } else {
        for (int j = 0; j < f.width; ++j) rb[f.bj[j]] -= xi[j] * yi;
      }
    }
  }
  for (int b = 0; b < nB; ++b)
    if (st.pinned[b]) rb[b] = 0.0;
  cholesky_solve(w.S.data(), nB, rb);
  for (int x1 = 0; x1 < st.n1; ++x1) {  // dalpha = L^-T (y - X rb)
    const BlockFactors f = block_factors(st, w, x1);
    if (f.blk.empty()) continue;
    const int a0 = f.blk.a0, k = f.blk.k;
    const double* y = w.ya.data() + a0;
    double* da = w.dlam + a0;
    for (int i = 0; i < k; ++i) {
      const double* xi = f.X + int64_t(i) * f.ldx;
      double v = y[i];
      if (f.col0 >= 0) {
        const double* src = rb + f.col0;
#pragma omp simd reduction(- : v)
        for (int j = 0; j < f.width; ++j) v -= xi[j] * src[j];
      } else {
        for (int j = 0; j < f.width; ++j) v -= xi[j] * rb[f.bj[j]];
      }
      da[i] = v;
    }
    for (int i = k - 1; i >= 0; --i) {
      double v = da[i];
      for (int r = i + 1; r < k; ++r) v -= f.L[int64_t(r) * k + i] * da[r];
      da[i] = v / f.L[int64_t(i) * k + i];
    }
  }
}

// Work of one Newton factorisation on each side (multiply-adds), for the choice between them.
double cost_on_sources(const ExactStructure& st) {
  double cost = double(st.nB) * st.nB * st.nB / 3;
  for (int x1 = 0; x1 < st.n1; ++x1) {
    const AlphaBlock blk = alpha_block(st, x1);
    cost += double(blk.k) * blk.nJ * blk.nJ / 2 + double(blk.k) * blk.k * blk.nJ;
  }
  return cost;
}

double cost_on_cells(const ExactStructure& st) {
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

void factorize_cells(const ExactStructure& st, Workspace& w) {
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
    spd_inverse_from_cholesky(L, k, w.dinv.data() + ls.inv_off[y], w.wrow.data());
  }
  // G = V^T D^-1 V (lower triangle, cells x cells), label by label:
  // G(c, c') += p_t p_t' (Dinv(a, a') + Dinv(a, b') + Dinv(b, a') + Dinv(b, b')).
  double* G = w.G.data();
  std::fill(G, G + int64_t(C) * C, 0.0);
  // Per label, its triples' local indices into t_la, t_lb, t_c, t_p (offset by the label's
  // first triple), so that threads can then split G by rows.
  for (int y = 0; y < st.ny; ++y) {
    const int k = ls.var_start[y + 1] - ls.var_start[y];
    for (int i = ls.triple_start[y]; i < ls.triple_start[y + 1]; ++i) {
      const int t = ls.triples[i];
      w.t_la[i] = ls.var_local[st.t_a[t]];
      const int b = ls.var_local[nA + st.t_b[t]];
      w.t_lb[i] = b >= 0 ? b : k;  // slot k of every row of W is zero
      w.t_c[i] = ls.t_cell[t];
      w.t_p[i] = w.p[t];
    }
  }
  // Row i of W = Dinv e_a(i) + Dinv e_b(i), then G(c_i, c_j) += p_i p_j (W_i(a_j) + W_i(b_j)).
  // A thread owns a range of G's rows (cells), balanced for the lower triangle, over every label.
  const int parts = C >= kParallelColumns ? w.threads : 1;
#ifdef FASTPID_WITH_OPENMP
#pragma omp parallel for num_threads(parts) schedule(static, 1)
#endif
  for (int part = 0; part < parts; ++part) {
    const int row0 = int(C * std::sqrt(double(part) / parts)), row1 = int(C * std::sqrt(double(part + 1) / parts));
    double* W = w.wrow.data() + int64_t(part) * w.wrow_stride;
    for (int y = 0; y < st.ny; ++y) {
      const int v0 = ls.var_start[y], k = ls.var_start[y + 1] - v0;
      const int i0 = ls.triple_start[y], n = ls.triple_start[y + 1] - i0;
      if (k == 0 || n == 0) continue;
      const double* inv = w.dinv.data() + ls.inv_off[y];
      const int* la = w.t_la.data() + i0;
      const int* lb = w.t_lb.data() + i0;
      const int* cell = w.t_c.data() + i0;
      const double* pt = w.t_p.data() + i0;
      for (int i = 0; i < n; ++i) {
        if (cell[i] < row0 || cell[i] >= row1) continue;
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
  if (np > 0) cholesky(Kpp, np, w.panel.data(), w.threads);
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
  cholesky(M, nn, w.panel.data(), w.threads);
}

// x = D^-1 v on the unpinned variables (pinned entries of x are 0); v and x may alias.
void apply_dinv(const ExactStructure& st, Workspace& w, const double* v, double* x) {
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
void augmented_solve(const ExactStructure& st, Workspace& w, const double* r1, const double* r2, double* x, double* z) {
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
double augmented_residual(const ExactStructure& st, Workspace& w, const double* x, const double* z, double* r1, double* r2) {
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
void solve_cells(const ExactStructure& st, Workspace& w) {
  const int N = st.nA + st.nB, nc = w.n_pos + w.n_neg;
  double* x = w.dlam;
  double* z = w.cell_z.data();
  double* r1 = w.refine_r.data();
  double* r2 = w.cell_r2.data();
  double* dx = w.refine_dx.data();
  double* dz = w.cell_dz.data();
  std::copy(w.rhs, w.rhs + N, r1);
  for (int b = 0; b < st.nB; ++b)
    if (st.pinned[b]) r1[st.nA + b] = 0.0;
  std::fill(r2, r2 + nc, 0.0);
  double rhs_norm = 0;
  for (int v = 0; v < N; ++v) rhs_norm = std::max(rhs_norm, std::abs(r1[v]));
  augmented_solve(st, w, r1, r2, x, z);
  double previous = std::numeric_limits<double>::infinity();
  for (int step = 0; step < kRefinementSteps; ++step) {
    std::copy(w.rhs, w.rhs + N, r1);
    const double norm = augmented_residual(st, w, x, z, r1, r2);
    if (!(norm < 0.5 * previous)) break;  // no longer improving (or already exact)
    // At the rounding level of the right-hand side (tens of ulps) another step gains nothing:
    // measured on 20x20x101 histograms, the first refinement takes the residual from 5e-13 of
    // it to 1e-15 and the second, which this saves, no further; iterations unchanged on every
    // family at 1e-7 bits and 1e-10 nats (a threshold of 1e-12 would cost iterations at 1e-10).
    if (norm <= kRefinedEnough * rhs_norm) break;
    previous = norm;
    augmented_solve(st, w, r1, r2, dx, dz);
    for (int v = 0; v < N; ++v) x[v] += dx[v];
    for (int i = 0; i < nc; ++i) z[i] += dz[i];
  }
}

// The Algebra of exact.hpp on one CPU thread (SerialTeam only): the elimination with less
// work for each distribution, and its storage.
class CpuAlgebra {
 public:
  explicit CpuAlgebra(int threads = 1) { w.threads = threads; }
  void set_threads(int threads) { w.threads = threads; }
  // Doubles of storage held (for KeptPerThread; ints and floats counted at their size).
  friend int64_t held_doubles(const CpuAlgebra& a) { return a.w.held_doubles(); }
  void prepare(SerialTeam&, const ExactStructure& st, const SolverOptions& opt) {
    // The cells' path does more per multiply-add (gathers, explicit inverses, refinement
    // solves): measured, it breaks even at about a third of the sources' count (10x10x10 dense:
    // cells 4.0 ms, sources 1.7 ms; 32^3 even; 2x2x500: 2.7 ms against 0.52 s).
    w.mixed_precision = opt.mixed_precision;
    w.on_cells = opt.elimination == 2 || (opt.elimination == 0 && kCellsWorkFactor * cost_on_cells(st) < cost_on_sources(st));
    if (w.on_cells)
      prepare_cells(st);
    else
      prepare_sources(st);
  }
  // A stalled run on the sources' path continues on the cells' (when the elimination is
  // automatic and the cells' system is not far dearer: kFallBackWork), which has no
  // cancellation between the cells' rank-one terms (exact.hpp, solve).
  void fall_back(SerialTeam&, const ExactStructure& st, const SolverOptions& opt) {
    if (w.on_cells || opt.elimination != 0 || kCellsWorkFactor * cost_on_cells(st) > kFallBackWork * cost_on_sources(st)) return;
    w.on_cells = true;
    prepare_cells(st);
  }
  // A collapsed step (exact.hpp, solve): the Newton systems solved more accurately from here
  // on, first all in double (the single-precision Schur update loses the directions of
  // degenerate inputs: sum gates, duplicated sources), then on the cells (no cancellation
  // between rank-one terms); false when neither is left.
  bool escalate(SerialTeam& team, const ExactStructure& st, const SolverOptions& opt) {
    if (w.mixed_precision && !w.on_cells) {
      w.mixed_precision = false;
      return true;
    }
    const bool was_on_cells = w.on_cells;
    fall_back(team, st, opt);
    return w.on_cells != was_on_cells;
  }
  void factorize(SerialTeam&, const ExactStructure& st, const double* m, const double* s, const double* p) {
    w.m = m;
    w.s = s;
    w.p = p;
    if (w.on_cells)
      factorize_cells(st, w);
    else
      factorize_sources(st, w);
  }
  void solve(SerialTeam&, const ExactStructure& st, const double* rhs, double* x) {
    w.rhs = rhs;
    w.dlam = x;
    if (w.on_cells)
      solve_cells(st, w);
    else
      solve_sources(st, w);
  }

 private:
  void prepare_cells(const ExactStructure& st) {
    const int C = st.cells(), N = st.nA + st.nB;
    LabelStructure& ls = w.ls;
    build_label_structure(st, ls);
    int max_k = 0;
    for (int y = 0; y < st.ny; ++y) max_k = std::max(max_k, ls.var_start[y + 1] - ls.var_start[y]);
    w.dfactor.assign(int64_t(max_k) * max_k, 0.0);
    w.dinv.assign(ls.inv_off[st.ny], 0.0);
    w.wrow_stride = 2 * int64_t(max_k) + 1;
    w.wrow.assign(w.wrow_stride * std::max(1, w.threads), 0.0);
    for (auto* v : {&w.t_la, &w.t_lb, &w.t_c}) v->assign(st.triples(), 0);
    w.t_p.assign(st.triples(), 0.0);
    w.G.assign(int64_t(C) * C, 0.0);
    w.Kpp.assign(int64_t(C) * C, 0.0);
    w.Knp.clear();  // sized in factorize_cells by the number of cells with d < 0
    w.Knn.clear();
    w.cell_d.assign(C, 0.0);
    w.cell_order.assign(C, 0);
    for (auto* v : {&w.cell_z, &w.cell_r2, &w.cell_dz}) v->assign(C, 0.0);
    for (auto* v : {&w.cell_u, &w.refine_r, &w.refine_dx}) v->assign(N, 0.0);
    w.panel.assign(panel_size(C), 0.0);
  }
  void prepare_sources(const ExactStructure& st) {
    int64_t l_size = 0, x_size = 0, max_nJ = 0;
    plan_blocks(st, w.layout, w.chunks, l_size, x_size);
    for (int x1 = 0; x1 < st.n1; ++x1) max_nJ = std::max<int64_t>(max_nJ, alpha_block(st, x1).nJ);
    w.Lblocks.assign(l_size, 0.0);
    w.Xblocks.assign(x_size, 0.0);
    int64_t single_size = 0;  // only chunks that factorize_sources takes in single precision
    for (const Chunk& ch : w.chunks)
      if (w.mixed_precision && ch.width >= kSingleColumns) single_size = std::max(single_size, int64_t(ch.rows) * padded_single(ch.width));
    w.Xsingle.resize(single_size);  // every entry is written before it is read
    w.single_diag.resize(single_size > 0 ? st.nB : 0);
    w.U.assign(max_nJ, 0.0);
    w.S.assign(int64_t(st.nB) * st.nB, 0.0);
    w.panel.assign(panel_size(st.nB), 0.0);
    w.ya.assign(st.nA, 0.0);
  }

  Workspace w;
};

using CpuInteriorPoint = InteriorPoint<SerialTeam, CpuAlgebra>;

}  // namespace

void exact_cpu(const double* P, Shape shape, SolverOptions options, SolveOutputs out, int num_threads) {
  const int64_t per = shape.size();
  const int64_t workspace = CpuInteriorPoint::workspace_doubles(shape);
  num_threads = cpu_threads(num_threads);
  StopCheck stop;
  // Each thread solves whole distributions; an orphaned `omp for` outside a parallel region
  // runs them all on the calling thread.
  auto solve_batch = [&](int inner_threads) {
    ThreadWorkspace ws(workspace);
    SerialTeam team;
    KeptPerThread<CpuAlgebra> algebra;  // its Newton matrices' storage too (see batch_cpu.hpp)
    algebra->set_threads(inner_threads);
#ifdef FASTPID_WITH_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t b = 0; b < shape.batch; ++b) {
      if (stop.should_stop()) continue;  // the distributions left after a Ctrl-C are skipped
      CpuInteriorPoint solver(team, shape, options, ws.data(), *algebra);
      solver.solve(P + b * per, outputs_of(out, shape, b));
    }
  };
  if (shape.batch == 1 || num_threads == 1) {
    // One distribution (or one thread): its dense updates are shared by the threads instead.
    solve_batch(num_threads);
  } else {
#ifdef FASTPID_WITH_OPENMP
#pragma omp parallel num_threads(num_threads)
#endif
    solve_batch(1);
  }
  stop.finish();
}

double exact_newton_residual_cpu(const double* P, Shape shape, SolverOptions options) {
  ThreadWorkspace ws(CpuInteriorPoint::workspace_doubles(shape));
  SerialTeam team;
  CpuAlgebra algebra(1);
  CpuInteriorPoint solver(team, shape, options, ws.data(), algebra);
  return solver.newton_solve_residual(P);
}

int max_threads() { return cpu_threads(0); }

}  // namespace fastpid
