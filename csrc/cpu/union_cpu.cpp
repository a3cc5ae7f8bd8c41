// The k-source union problem (the algorithm: csrc/include/fastpid/union.hpp) on the CPU: the
// OpenMP driver, one distribution per thread with a team of one, and the CPU algebra of its
// Newton systems.
//
// The algebra assembles the Newton matrix in two passes. Every cell adds its Z_x (ny x ny) to
// one block per pair of sources i < j (the block of the values (xi, xj) the cell has); each
// source's own blocks are sums of a pair's blocks over the other source's values; then every
// block is scattered once into the lower triangle of the matrix (the only part the Cholesky
// reads). Scattering every cell's (k ny)^2 entries directly was 45% of a 10x10x10x4 solve (stores
// to random places of the matrix); a cell's block adds are contiguous, and the scatter has only
// n_i n_j ny^2 entries per pair.
//
// Two eliminations, chosen per distribution by counted multiply-adds (or forced, for tests):
// - dense: the bivariate exact's blocked Cholesky of the whole matrix (dense_cpu.hpp);
// - on a source: the unknowns of the source with the most of them first, whose own block is
//   block-diagonal (one ny x ny block per value: no cell has two values of one source), so its
//   factor is those blocks' factors, the coupling rows below are solved against them one block
//   at a time, and only the Schur complement of the other sources, order R = order - E, is
//   factorised densely: E R^2 / 2 + R^3 / 3 against (E + R)^3 / 3. On a 10x10x10x4 histogram
//   where every (xi, y) occurs (order 120 less 8 for the gauge: E = 40, R = 72) that is 0.23 M
//   against 0.47 M multiply-adds.
// Both leave the whole factor L in hess_ (the first's zeros included), so the solves are one.
// Every positive pivot is taken (see factorize).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dense_cpu.hpp"
#include "fastpid/pid.hpp"
#include "fastpid/union.hpp"
#include "fastpid/union_team_algebra.hpp"
#include "run_control.hpp"
#include "team_executor.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {
namespace {

// One block of the Newton matrix's assembly: the cells' Z_x summed per pair of values (xi, xj)
// of sources i <= j (per value xi where i == j), ny x ny each, from `offset` in blocks_.
struct PairBlock {
  int i, j;
  int stride;      // values of xj per value of xi (1 where i == j)
  int64_t offset;  // of its first block
};

class UnionCpuAlgebra {
 public:
  UnionCpuAlgebra(double*, const UnionShape&, int elimination = kUnionEliminationAuto) : elimination_(elimination) {}

  void prepare(SerialTeam&, const UnionShape& sh, const int* index, int order) {
    order_ = order;
    plan_elimination(sh, index);
    pair_blocks_.clear();
    blocks_size_ = 0;
    for (int i = 0; i < sh.k; ++i)
      for (int j = i; j < sh.k; ++j) {
        const int stride = i == j ? 1 : sh.n[j];
        pair_blocks_.push_back({i, j, stride, blocks_size_});
        blocks_size_ += int64_t(sh.n[i]) * stride * sh.ny * sh.ny;
      }
    z_.resize(size_t(sh.ny) * sh.ny);
    panel_.resize(size_t(dense_cpu::panel_size(order_)));
    plan_scatter(sh);
  }

  void factorize(SerialTeam&, const UnionShape& sh, const int*, const int* value, const double* g, const double* m,
                 const double* s, const double* soft) {
    const int nn = sh.ny * sh.ny, k = sh.k;
    blocks_.assign(size_t(blocks_size_), 0.0);
    switch (sh.ny) {  // the label count fixed at compile time where it is small: the cell's Z
                      // and its adds whole vectors (11% of a 10x10x10x4 solve at run time)
      case 2: sum_cells<2>(sh, value, g, m, s, soft); break;
      case 3: sum_cells<3>(sh, value, g, m, s, soft); break;
      case 4: sum_cells<4>(sh, value, g, m, s, soft); break;
      case 5: sum_cells<5>(sh, value, g, m, s, soft); break;
      case 6: sum_cells<6>(sh, value, g, m, s, soft); break;
      case 8: sum_cells<8>(sh, value, g, m, s, soft); break;
      default: sum_cells<0>(sh, value, g, m, s, soft);
    }
    // Source i's own block at xi is the sum of a pair's blocks over the other source's values:
    // (i, i + 1)'s over x_{i+1}, the last source's from (0, k - 1) over x0.
    for (const PairBlock& pb : pair_blocks_) {
      if (pb.i != pb.j) continue;
      const int i = pb.i, other = i + 1 < k ? i + 1 : 0;
      const PairBlock& from = pair(std::min(i, other), std::max(i, other));
      for (int a = 0; a < sh.n[from.i]; ++a)
        for (int b = 0; b < sh.n[from.j]; ++b) {
          const double* src = &blocks_[size_t(from.offset + (int64_t(a) * from.stride + b) * nn)];
          double* dst = &blocks_[size_t(pb.offset + int64_t(from.i == i ? a : b) * nn)];
#pragma omp simd
          for (int t = 0; t < nn; ++t) dst[t] += src[t];
        }
    }
    // A pivot that is not positive (late iterations mix m / s of cells near their bound with
    // O(m) terms) comes back as a huge value, which zeroes the step along its direction; the
    // factorisation is first redone with the diagonal raised by 1e-14 of itself, growing
    // tenfold up to 1e-6, and the huge pivots stay only where that does not help. Measured on
    // 3,000 draws of the harsh family at tol 1e-10 nats: 8 or 9 short (up to 1.3e-7 nats) with
    // exact's pivot rule (below 1e-14 of the diagonal: huge) with or without the shifts, 3 with
    // this one.
    scatter(sh, 0.0);
    factor();
    for (double shift = 1e-14; shift <= 1e-6 && huge_pivot(); shift *= 10) {
      scatter(sh, shift);
      factor();
    }
  }

  void solve(SerialTeam&, double* x) {
    double* y = perm_x_.data();
    for (int p = 0; p < order_; ++p) y[perm_[p]] = x[p];
    dense_cpu::cholesky_solve(hess_.data(), order_, y);
    for (int p = 0; p < order_; ++p) x[p] = y[perm_[p]];
  }


 private:
  int elimination_;
  int order_ = 0;
  int eliminated_ = 0;          // E: the eliminated source's unknowns (0: dense)
  std::vector<int> perm_;       // the algorithm's unknown p is row perm_[p] of the matrix
  std::vector<int> row_of_;     // (full) the row of each alpha, -1 where it is not an unknown
  std::vector<int> groups_;     // the eliminated source's diagonal blocks: first rows, then E
  std::vector<PairBlock> pair_blocks_;
  int64_t blocks_size_ = 0;
  std::vector<double> blocks_, z_, hess_, panel_, perm_x_;
  std::vector<int64_t> target_;  // plan_scatter

  // Every cell's Z_x = m_x diag(pi_x) + (m_x / s_x - m_x) pi_x pi_x^T added to its block of
  // each pair of sources i < j; NY: the label count, or 0 for ny at run time.
  template <int NY>
  void sum_cells(const UnionShape& sh, const int* value, const double* g, const double* m, const double* s,
                 const double* soft) {
    const int ny = NY ? NY : sh.ny, nn = ny * ny, k = sh.k;
    int64_t offset[kMaxSources * kMaxSources], stride[kMaxSources * kMaxSources];
    int first[kMaxSources * kMaxSources], second[kMaxSources * kMaxSources], pairs = 0;
    for (const PairBlock& pb : pair_blocks_)
      if (pb.i != pb.j) offset[pairs] = pb.offset, stride[pairs] = pb.stride, first[pairs] = pb.i, second[pairs++] = pb.j;
    double* z = z_.data();
    for (int64_t c = 0; c < sh.cells; ++c) {
      if (g[c] == union_detail::kNegInf) continue;
      const double mass = m[c], d = mass / s[c] - mass;
      const double* pi = soft + c * ny;
      for (int y = 0; y < ny; ++y) {
        const double wy = d * pi[y], diagonal = mass * pi[y];
#pragma omp simd
        for (int y2 = 0; y2 < ny; ++y2) z[y * ny + y2] = wy * pi[y2] + (y2 == y ? diagonal : 0.0);
      }
      const int* xs = value + c * k;
      for (int q = 0; q < pairs; ++q) {
        double* block = &blocks_[size_t(offset[q] + (int64_t(xs[first[q]]) * stride[q] + xs[second[q]]) * nn)];
#pragma omp simd
        for (int t = 0; t < nn; ++t) block[t] += z[t];
      }
    }
  }

  // The elimination for this distribution's unknowns (see the file's comment) and the order
  // of the matrix's rows: the eliminated source's unknowns first, by value, then the others in
  // the algorithm's order.
  void plan_elimination(const UnionShape& sh, const int* index) {
    int source = 0, most = -1;
    int count[kMaxSources] = {};
    for (int i = 0; i < sh.k; ++i) {
      for (int v = sh.offset[i]; v < sh.offset[i] + sh.n[i] * sh.ny; ++v) count[i] += index[v] >= 0;
      if (count[i] > most) most = count[i], source = i;
    }
    const double E = most, R = order_ - most;
    const double dense = double(order_) * order_ * order_ / 3, on_source = E * R * R / 2 + R * R * R / 3 + R * E * sh.ny;
    const bool eliminate = elimination_ == kUnionEliminationSource || (elimination_ == kUnionEliminationAuto && on_source < dense);
    eliminated_ = eliminate && most > 0 ? most : 0;
    perm_.assign(size_t(order_), -1);
    row_of_.assign(size_t(sh.full), -1);
    groups_.clear();
    int next = 0;
    if (eliminated_ > 0)
      for (int a = 0; a < sh.n[source]; ++a) {
        const int first = next;
        for (int y = 0; y < sh.ny; ++y) {
          const int v = sh.offset[source] + a * sh.ny + y;
          if (index[v] >= 0) perm_[index[v]] = next, row_of_[v] = next++;
        }
        if (next > first) groups_.push_back(first);
      }
    groups_.push_back(next);
    for (int v = 0; v < sh.full; ++v)
      if (index[v] >= 0 && perm_[index[v]] < 0) perm_[index[v]] = next, row_of_[v] = next++;
    hess_.resize(size_t(order_) * order_);
    perm_x_.resize(size_t(order_));
  }

  // hess_ (its lower triangle) into its Cholesky factor, by the planned elimination.
  void factor() {
    const int m = order_, E = eliminated_, R = m - E;
    double* H = hess_.data();
    if (E == 0) return dense_cpu::cholesky(H, m, panel_.data(), 1, 0.0);
    // The coupling rows below the eliminated source, transposed into the panel (column c of
    // L21 a contiguous row of X) for vectorised solves and the register-tiled update.
    const int64_t ldp = dense_cpu::padded(R);
    if (int64_t(E) * ldp > int64_t(panel_.size())) panel_.resize(size_t(int64_t(E) * ldp));
    double* X = panel_.data();
    for (int c = 0; c < E; ++c) {
      double* xc = X + c * ldp;
      for (int r = 0; r < R; ++r) xc[r] = H[int64_t(E + r) * m + c];
      for (int r = R; r < ldp; ++r) xc[r] = 0.0;
    }
    // Each diagonal block's factor L_g, then L21's columns of the block: L21 L_g^T = B, solved
    // column by column for every row at once.
    for (size_t gi = 0; gi + 1 < groups_.size(); ++gi) {
      const int g = groups_[gi], b = groups_[gi + 1] - g;
      dense_cpu::cholesky_unblocked(H + int64_t(g) * m + g, b, m, 0.0);
      for (int j = 0; j < b; ++j) {
        const double* lj = H + int64_t(g + j) * m + g;
        double* xj = X + (g + j) * ldp;
        for (int l = 0; l < j; ++l) {
          const double f = lj[l];
          const double* xl = X + (g + l) * ldp;
#pragma omp simd
          for (int r = 0; r < R; ++r) xj[r] -= f * xl[r];
        }
        const double inv = 1.0 / lj[j];
#pragma omp simd
        for (int r = 0; r < R; ++r) xj[r] *= inv;
      }
    }
    for (int r = 0; r < R; ++r) {
      double* h = H + int64_t(E + r) * m;
      for (int c = 0; c < E; ++c) h[c] = X[c * ldp + r];
    }
    // The Schur complement of the others, S -= L21 L21^T in place, factorised densely.
    double* S = H + int64_t(E) * m + E;  // the others' block, row stride m
    dense_cpu::syrk_lower_sub(X, E, R, ldp, S, m);
    dense_cpu::cholesky(S, R, panel_.data(), 1, 0.0, m);
  }

  const PairBlock& pair(int i, int j) const {
    for (const PairBlock& pb : pair_blocks_)
      if (pb.i == i && pb.j == j) return pb;
    return pair_blocks_.front();  // not reached: every pair i <= j has a block
  }

  bool huge_pivot() const {
    for (int r = 0; r < order_; ++r)
      if (hess_[size_t(r) * order_ + r] == exact_detail::kPivotHuge) return true;
    return false;
  }

  // Where each entry of the pair blocks goes in hess_ (row row_of_, lower triangle), -1 where
  // nowhere (a label that is no unknown, or the upper half of a source's own block): the same
  // for every iteration of a distribution. An entry of two sources lies in the lower triangle
  // one way round. Every lower entry of hess_ gets at most one block entry.
  void plan_scatter(const UnionShape& sh) {
    const int ny = sh.ny, m = order_, nn = ny * ny;
    target_.assign(size_t(blocks_size_), -1);
    for (const PairBlock& pb : pair_blocks_) {
      const int ni = sh.n[pb.i], nj = pb.i == pb.j ? 1 : sh.n[pb.j];
      for (int a = 0; a < ni; ++a)
        for (int bj = 0; bj < nj; ++bj) {
          const int b = pb.i == pb.j ? a : bj;
          const int64_t first = pb.offset + (int64_t(a) * pb.stride + bj) * nn;
          const int* row_of = row_of_.data() + sh.offset[pb.j] + b * ny;
          const int* col_of = row_of_.data() + sh.offset[pb.i] + a * ny;
          for (int y = 0; y < ny; ++y)
            for (int y2 = 0; y2 < ny; ++y2) {
              const int row = row_of[y2], col = col_of[y];
              if (row < 0 || col < 0) continue;
              if (row >= col)
                target_[size_t(first + y * ny + y2)] = int64_t(row) * m + col;
              else if (pb.i != pb.j)  // (a source's own block holds both (row, col) and (col, row))
                target_[size_t(first + y * ny + y2)] = int64_t(col) * m + row;
            }
        }
    }
  }

  // The pair blocks into hess_ (plan_scatter), the diagonal raised by `shift` of itself.
  void scatter(const UnionShape&, double shift) {
    const int m = order_;
    std::fill(hess_.begin(), hess_.end(), 0.0);
    double* H = hess_.data();
    const double* blocks = blocks_.data();
    const int64_t* target = target_.data();
    for (int64_t t = 0; t < blocks_size_; ++t)
      if (target[t] >= 0) H[target[t]] = blocks[t];
    if (shift > 0)
      for (int r = 0; r < m; ++r) H[size_t(r) * m + r] = H[size_t(r) * m + r] * (1.0 + shift) + 1e-300;
  }
};

UnionOutputs outputs_of(const double* tol, int max_iter, double* value, double* bound, uint8_t* converged,
                        int32_t* iterations, double* dual) {
  return {tol, max_iter, value, bound, converged, iterations, dual};
}

}  // namespace

void union_cpu(const double* P, int64_t batch, const std::vector<int>& dims, const double* tol, int max_iter, double* value,
               double* bound, uint8_t* converged, int32_t* iterations, double* dual, int num_threads, int elimination) {
  const UnionShape sh = union_shape(dims.data(), int(dims.size()) - 1, batch);
  const UnionOutputs out = outputs_of(tol, max_iter, value, bound, converged, iterations, dual);
  const int64_t own = UnionPoint<SerialTeam, UnionCpuAlgebra>::workspace_doubles(sh);
  StopCheck stop;
  num_threads = cpu_threads(num_threads);
  num_threads = int(std::max<int64_t>(1, std::min<int64_t>(num_threads, batch)));
#ifdef FASTPID_WITH_OPENMP
#pragma omp parallel num_threads(num_threads)
#endif
  {
    std::vector<double> workspace(static_cast<size_t>(own));
    SerialTeam team;
    UnionCpuAlgebra algebra(nullptr, sh, elimination);
    UnionPoint<SerialTeam, UnionCpuAlgebra> point(team, sh, workspace.data(), algebra);
#ifdef FASTPID_WITH_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t b = 0; b < batch; ++b) {
      if (stop.should_stop()) continue;
      point.solve(P + b * sh.size(), out, b);
    }
  }
  stop.finish();
}

void union_team_executor_cpu(const double* P, int64_t batch, const std::vector<int>& dims, const double* tol, int max_iter,
                             double* value, double* bound, uint8_t* converged, int32_t* iterations, double* dual,
                             int team_size, uint64_t seed, int workers) {
  const UnionShape sh = union_shape(dims.data(), int(dims.size()) - 1, batch);
  const UnionOutputs out = outputs_of(tol, max_iter, value, bound, converged, iterations, dual);
  using Algebra = UnionTeamAlgebra<FiberTeam>;
  const int64_t per_worker = UnionPoint<FiberTeam, Algebra>::workspace_doubles(sh) + Algebra::workspace_doubles(sh) + 1;
  std::vector<double> ws(size_t(per_worker * workers));
  FiberExecutor executor(team_size, seed);
  for (int w = 0; w < workers; ++w)
    executor.run([&](FiberTeam& team) { union_walk_batch<FiberTeam, Algebra>(team, w, workers, P, sh, out, ws.data() + w * per_worker); });
}

}  // namespace fastpid
