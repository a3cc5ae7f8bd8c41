// Dense kernels of the interior-point methods on the CPU: a register-tiled symmetric rank-k
// update, a blocked Cholesky factorisation with the pivot rule of exact_detail, and blocked
// triangular solves. Shared by the bivariate exact solver (exact_cpu.cpp) and the k-source
// solver (union_cpu.cpp); measured and tuned for the first (results/exact_cholesky_cpu.json).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "fastpid/exact.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {
namespace dense_cpu {

// S[j][jj] -= sum_i X[i][j] X[i][jj] for jj <= j (lower triangle); X is k x n with row stride
// ldx >= padded(n) (the padding columns are read, never used); S has row stride ld.
// Register tiles of kRows x kCols entries of S are accumulated over the rows of X and written
// once, so the update is bound by arithmetic rather than by S's memory traffic; the rows are
// taken kDepth at a time so that the strip of X a tile reads stays in cache (measured on this
// project's machine: 8 x 16 tiles run at 23 G multiply-adds/s from depth 100 on, 4 x 16 at
// 20; depth 6 reaches only 11, which is why the blocks of many x1 are stacked, see Chunk).
constexpr int kRows = 8, kCols = 16, kDepth = 256;
inline int padded(int n) { return (n + kCols - 1) / kCols * kCols; }
constexpr int kColsSingle = 32;  // the same tiles in float: twice the columns per register
inline int padded_single(int n) { return (n + kColsSingle - 1) / kColsSingle * kColsSingle; }
// One row of tiles (rows j0 .. j0 + kRows) of the update, columns jj_begin .. jj_end (multiples of
// Cols, clipped to the lower triangle), over the rows i0 .. i1 of X. Accumulated in T (double,
// or float for the single-precision Schur complement, see factorize_sources; Cols: two vector
// registers of T per row of a tile).
template <class T, int Cols>
inline void syrk_tile_row(const T* X, int i0, int i1, int n, int64_t ldx, double* S, int64_t ld, int j0, int jj_begin,
                   int jj_end) {
  const int rows = std::min(kRows, n - j0);
  jj_end = std::min(jj_end, j0 + rows);
  for (int jj0 = jj_begin; jj0 < jj_end; jj0 += Cols) {
    T acc[kRows][Cols] = {};
    for (int i = i0; i < i1; ++i) {
      const T* xi = X + int64_t(i) * ldx;
      for (int r = 0; r < kRows; ++r) {
        const T v = r < rows ? xi[j0 + r] : T(0);
#pragma omp simd
        for (int c = 0; c < Cols; ++c) acc[r][c] += v * xi[jj0 + c];
      }
    }
    if (jj0 + Cols <= j0 + 1) {  // the whole tile lies below the diagonal
      for (int r = 0; r < rows; ++r) {
        double* srow = S + int64_t(j0 + r) * ld + jj0;
#pragma omp simd
        for (int c = 0; c < Cols; ++c) srow[c] -= acc[r][c];
      }
    } else {  // a tile on the diagonal: keep to the lower triangle
      for (int r = 0; r < rows; ++r) {
        double* srow = S + int64_t(j0 + r) * ld;
        const int lim = std::min(Cols, j0 + r + 1 - jj0);
        for (int c = 0; c < lim; ++c) srow[jj0 + c] -= acc[r][c];
      }
    }
  }
}

// Below this many columns an update is not shared between threads (a fork costs microseconds).
// Measured on one distribution with 2 threads (same-run medians, 384 -> 128): dense 16^3
// 6.56 -> 6.20 ms, 20x20x101 16.7 -> 16.1, 20x20x28 17.9 -> 17.2; smaller shapes untouched.
constexpr int kParallelColumns = 128;
// Columns of X per pass: the strip the tiles of one pass read (kDepth x kPanelColumns doubles,
// 512 KB) stays in the core's L2 while every row of tiles sweeps it.
constexpr int kPanelColumns = 256;

// X of T: double (ldx >= padded(n)) or float (ldx >= padded_single(n)).
template <class T>
inline void syrk_lower_sub(const T* X, int k, int n, int64_t ldx, double* S, int64_t ld, int threads = 1) {
  constexpr int cols = sizeof(T) == sizeof(float) ? kColsSingle : kCols;
  const int tile_rows = (n + kRows - 1) / kRows;
  for (int i0 = 0; i0 < k; i0 += kDepth) {
    const int i1 = std::min(k, i0 + kDepth);
    for (int jb = 0; jb < n; jb += kPanelColumns) {
      const int first = jb / kRows;  // rows of tiles above jb have no columns in this pass
      if (threads > 1 && n >= kParallelColumns) {
        // Rows of tiles own disjoint rows of S, dealt dynamically.
#ifdef FASTPID_WITH_OPENMP
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
#endif
        for (int t = first; t < tile_rows; ++t) syrk_tile_row<T, cols>(X, i0, i1, n, ldx, S, ld, t * kRows, jb, jb + kPanelColumns);
      } else {
        for (int t = first; t < tile_rows; ++t) syrk_tile_row<T, cols>(X, i0, i1, n, ldx, S, ld, t * kRows, jb, jb + kPanelColumns);
      }
    }
  }
}

// The Cholesky pivot of a column whose updated diagonal is d (its diagonal before the
// factorisation's updates: scale > 0), by the rule of exact_detail::kPivotRelative (or another
// relative threshold: the k-source solver takes every positive pivot, see union_cpu.cpp).
inline double pivot(double d, double scale, double relative = exact_detail::kPivotRelative) {
  return d > relative * scale ? std::sqrt(d) : exact_detail::kPivotHuge;
}

// In-place Cholesky factorisation of a symmetric positive (semi)definite matrix stored
// row-major in the lower triangle (row stride ld), unblocked; see cholesky().
inline void cholesky_unblocked(double* A, int n, int64_t ld, double relative = exact_detail::kPivotRelative) {
  for (int j = 0; j < n; ++j) {
    double* rj = A + int64_t(j) * ld;
    double d = rj[j];
#pragma omp simd reduction(- : d)
    for (int k = 0; k < j; ++k) d -= rj[k] * rj[k];
    const double ljj = pivot(d, std::abs(rj[j]) + 1e-300, relative);
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
// Right-looking and blocked: each block of columns (its diagonal block and the rows below)
// is copied transposed into `panel` (see panel_size), so that a column of the factor is a
// contiguous row there: its diagonal block is factorised right-looking (factor_panel), then
// the rows below it in strips of 8 held in registers (factor_panel_strip); the trailing
// update, most of the work, is the register-tiled syrk_lower_sub on the part below the
// diagonal block, shared by `threads` threads.
// Measured on 20x20x6 (order 120, one thread): the Cholesky's own loops (apart from its syrk)
// went from 8.7% to 6.5% of a solve; with the blocked solves below, the kernel from 1.21 to
// 1.13 ms, dense 16^3 from 5.6 to 4.4 ms (results/exact_cholesky_cpu.json). Before, the
// diagonal blocks were factorised by dot products of their short rows, latency-bound on
// the sums, and the panel solved after them by axpys that load and store a column each.
// Panels of kBlock columns; kBlockLarge from kLargeOrder on, where the deeper trailing update
// pays for the longer panel solve.
constexpr int kBlock = 24, kBlockLarge = 64, kLargeOrder = 512;
inline int64_t panel_size(int n) { return int64_t(kBlockLarge) * (kBlockLarge + padded(n)); }

// Columns 0 .. b of a panel (column c: row c of P, row stride ldp, its entries of rows
// i0 .. i1 of the matrix), factorised right-looking: scaled by inv[c], then subtracted from
// the columns after it. Rows below b need the diagonal block's factor (rows < b) final, which
// a call with i0 = 0 computes on the way (pivots: from the diagonal, with `scale` the
// diagonal before the panel's own updates, into inv).
inline void factor_panel(double* P, int64_t ldp, int b, int i0, int i1, const double* scale, double* inv,
                         double relative = exact_detail::kPivotRelative) {
  for (int c = 0; c < b; ++c) {
    double* pc = P + int64_t(c) * ldp;
    if (i0 == 0) {
      const double d = pc[c];
      const double ljj = pivot(d, scale[c], relative);
      pc[c] = ljj;
      inv[c] = 1.0 / ljj;
    }
    const double f = inv[c];
#pragma omp simd
    for (int i = std::max(i0, c + 1); i < i1; ++i) pc[i] *= f;
    for (int cc = c + 1; cc < b; ++cc) {
      const double l = pc[cc];
      double* pcc = P + int64_t(cc) * ldp;
#pragma omp simd
      for (int i = std::max(i0, cc); i < i1; ++i) pcc[i] -= l * pc[i];
    }
  }
}

// factor_panel on the rows i .. i + 8 (below the diagonal block) of a panel of exactly B columns,
// with the strip's B x 8 entries held in registers through all B columns (24 of the 32 vector
// registers for kBlock): a multiply-add per entry and column, against the axpys' load and
// store of both columns per multiply-add.
template <int B>
inline void factor_panel_strip(double* P, int64_t ldp, int i, const double* inv) {
  double v[B][8];
#pragma GCC unroll 64
  for (int c = 0; c < B; ++c)
#pragma omp simd
    for (int r = 0; r < 8; ++r) v[c][r] = P[c * ldp + i + r];
#pragma GCC unroll 64
  for (int c = 0; c < B; ++c) {
    const double f = inv[c];
#pragma omp simd
    for (int r = 0; r < 8; ++r) v[c][r] *= f;
    const double* lc = P + c * ldp;  // L(cc, c) for cc > c
#pragma GCC unroll 64
    for (int cc = c + 1; cc < B; ++cc) {
      const double l = lc[cc];
#pragma omp simd
      for (int r = 0; r < 8; ++r) v[cc][r] -= l * v[c][r];
    }
  }
#pragma GCC unroll 64
  for (int c = 0; c < B; ++c)
#pragma omp simd
    for (int r = 0; r < 8; ++r) P[c * ldp + i + r] = v[c][r];
}

// The rows i0 .. i1 of a panel below its diagonal block (already factorised), i0 - b and
// the padded row count multiples of 8.
inline void factor_panel_below(double* P, int64_t ldp, int b, int i0, int i1, const double* scale, double* inv) {
  if (b != kBlock) return factor_panel(P, ldp, b, i0, i1, scale, inv);
  for (int i = i0; i < i1; i += 8) factor_panel_strip<kBlock>(P, ldp, i, inv);
}

// `panel` holds panel_size(n) doubles; `relative`: the pivot rule's threshold (pivot()).
inline void cholesky(double* A, int n, double* panel, int threads = 1, double relative = exact_detail::kPivotRelative,
                     int64_t ld = 0) {
  if (ld == 0) ld = n;  // A's row stride (a trailing block of a larger matrix: its row length)
  const int block = n >= kLargeOrder ? kBlockLarge : kBlock;
  double scale[kBlockLarge], inv[kBlockLarge];
  for (int j0 = 0; j0 < n; j0 += block) {
    const int b = std::min(block, n - j0), rows = n - j0, m = rows - b;
    // Row c of the panel: column j0 + c from row j0 on (b entries of the diagonal block, then
    // the m rows below it, padded so that the syrk can read whole tiles).
    const int64_t ldp = b + padded(m);
    double* top = A + int64_t(j0) * ld + j0;
    for (int i = 0; i < rows; ++i) {
      const double* ai = top + int64_t(i) * ld;
      for (int c = 0; c <= std::min(i, b - 1); ++c) panel[c * ldp + i] = ai[c];
    }
    for (int c = 0; c < b; ++c) scale[c] = std::abs(panel[c * ldp + c]) + 1e-300;
    // The diagonal block first, then the rows below it (padded to whole strips of 8), in
    // ranges of whole tiles per thread.
    factor_panel(panel, ldp, b, 0, b, scale, inv, relative);
    const int below = (m + 7) / 8 * 8;
    if (threads > 1 && m >= kParallelColumns) {
      const int per = (m + threads * kCols - 1) / (threads * kCols) * kCols;
#ifdef FASTPID_WITH_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static, 1)
#endif
      for (int part = 0; part < threads; ++part)
        factor_panel_below(panel, ldp, b, b + std::min(below, part * per), b + std::min(below, (part + 1) * per), scale, inv);
    } else if (m > 0) {
      factor_panel_below(panel, ldp, b, b, b + below, scale, inv);
    }
    for (int i = 0; i < rows; ++i) {
      double* ai = top + int64_t(i) * ld;
      for (int c = 0; c <= std::min(i, b - 1); ++c) ai[c] = panel[c * ldp + i];
    }
    if (m > 0) syrk_lower_sub(panel + b, b, m, ldp, top + int64_t(b) * ld + b, ld, threads);
  }
}

// Triangular solves in blocks of kSolveRows rows. Row by row, each unknown waited on a
// horizontal sum and a division (forward) or on the stores of the row before (back); in
// blocks, the rows' long products with the part already solved are independent, and only a
// triangle of kSolveRows rows is sequential, with the divisions (reciprocals, computed apart)
// off its chain. Measured on 20x20x6: the solves' share of a solve fell from 7.0% to 3.5%.
constexpr int kSolveRows = 8;

// Solves L y = b in place (L lower triangular, row stride ld).
inline void forward_substitute(const double* L, int n, int64_t ld, double* b) {
  for (int i0 = 0; i0 < n; i0 += kSolveRows) {
    const int rows = std::min(kSolveRows, n - i0);
    double rinv[kSolveRows], acc[kSolveRows];
    for (int r = 0; r < rows; ++r) rinv[r] = 1.0 / L[int64_t(i0 + r) * (ld + 1)];
    for (int r = 0; r < rows; ++r) {  // the block's rows against the unknowns solved before it
      const double* li = L + int64_t(i0 + r) * ld;
      double v = b[i0 + r];
#pragma omp simd reduction(- : v)
      for (int k = 0; k < i0; ++k) v -= li[k] * b[k];
      acc[r] = v;
    }
    for (int r = 0; r < rows; ++r) {  // the block's triangle
      const double* li = L + int64_t(i0 + r) * ld + i0;
      double v = acc[r];
      for (int k = 0; k < r; ++k) v -= li[k] * b[i0 + k];
      b[i0 + r] = v * rinv[r];
    }
  }
}

// Solves L^T x = y in place, by columns of L^T (rows of L), so every access is contiguous.
inline void back_substitute(const double* L, int n, int64_t ld, double* b) {
  for (int i1 = n; i1 > 0; i1 -= kSolveRows) {
    const int i0 = std::max(0, i1 - kSolveRows), rows = i1 - i0;
    double rinv[kSolveRows];
    for (int r = 0; r < rows; ++r) rinv[r] = 1.0 / L[int64_t(i0 + r) * (ld + 1)];
    for (int r = rows - 1; r >= 0; --r) {  // the block's triangle
      const double* li = L + int64_t(i0 + r) * ld + i0;
      const double v = b[i0 + r] * rinv[r];
      b[i0 + r] = v;
      for (int k = 0; k < r; ++k) b[i0 + k] -= li[k] * v;
    }
    // The unknowns before the block, from all of its rows at once (one pass over them).
    const double* l0 = L + int64_t(i0) * ld;
    const double* x = b + i0;
    if (rows == kSolveRows) {
#pragma omp simd
      for (int k = 0; k < i0; ++k) {
        double v = b[k];
        for (int r = 0; r < kSolveRows; ++r) v -= l0[r * ld + k] * x[r];
        b[k] = v;
      }
    } else {
      for (int r = 0; r < rows; ++r)
#pragma omp simd
        for (int k = 0; k < i0; ++k) b[k] -= l0[r * ld + k] * x[r];
    }
  }
}

// Solves L L^T x = b in place, L from cholesky() (row stride n).
inline void cholesky_solve(const double* L, int n, double* b) {
  forward_substitute(L, n, n, b);
  back_substitute(L, n, n, b);
}

}  // namespace dense_cpu
}  // namespace fastpid
