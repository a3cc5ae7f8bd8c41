// Plain C++ interface shared by the CPU and CUDA kernels of fastpid.
//
// Every kernel works on a batch of joint distributions P[b, x1, x2, y] stored contiguously
// in float64 (shape (batch, n1, n2, ny)), already validated and normalised by the Python
// layer. Each kernel computes, per distribution, the maximal conditional entropy
//     value = max_{Q in Delta_P} H_Q(Y | X1, X2)      (nats)
// from which the Python layer derives every PID atom, together with a certified bound on
// its error, taken from a feasible coupling (upper value) and a feasible dual point.
#pragma once
#include <cstdint>
#include <vector>

#include "fastpid/elementary.hpp"

#if defined(__CUDACC__)
#define FASTPID_HD __host__ __device__
#else
#define FASTPID_HD
#endif

namespace fastpid {

struct Shape {
  int64_t batch;
  int n1, n2, ny;
  FASTPID_HD int64_t size() const { return int64_t(n1) * n2 * ny; }
};

struct SolverOptions {
  double tol = 1e-7 * 0.6931471805599453;  // certified gap to reach, in nats
  int max_iter = 100;                        // iterations per distribution
  int elimination = 0;                       // exact: Newton systems eliminated on 0 the side
                                             // with the smaller dense factor (automatic),
                                             // 1 the sources, 2 the cells (tests)
  bool mixed_precision = true;               // exact (CPU): early Schur complements in float
                                             // (exact_cpu.cpp, kSingleGap); off for tests
  int scaling_iters = 200;                   // refine: iterative-scaling steps before Newton
  double penalty = 100.0;                    // refine: first penalty of the augmented Lagrangian
  double penalty_growth = 3.0;               // refine: penalty growth per outer step
};

// Per-distribution outputs. Pointers to optional outputs may be null.
struct SolveOutputs {
  double* value = nullptr;       // (batch): H_Q(Y|X1,X2) of the returned feasible coupling (nats)
  double* bound = nullptr;       // (batch): certified gap: value - true optimum is in [-bound, 0]
  uint8_t* converged = nullptr;  // (batch): bound <= tol
  int32_t* iterations = nullptr; // (batch)
  double* coupling = nullptr;    // optional (batch, n1, n2, ny): the feasible coupling Q
  double* dual1 = nullptr;       // optional (batch, n1, ny): alpha, 0 where P(x1, y) = 0
  double* dual2 = nullptr;       // optional (batch, n2, ny): beta, 0 where P(x2, y) = 0
};

// x log x with 0 log 0 = 0 (vectorises in omp simd loops on the CPU: elementary.hpp).
FASTPID_HD inline double xlogx(double x) { return x > 0.0 ? x * simd_log(x) : 0.0; }

// One entry of the backward of the value (envelope theorem, grad_cpu.cpp): the derivative
// -(alpha(x1, y) + beta(x2, y)) times the incoming gradient g where P > 0, and 0 where P == 0.
// Shared by the CPU loop and the CUDA kernel.
FASTPID_HD inline double value_grad_entry(double g, double p, double alpha, double beta) {
  return p > 0 ? -g * (alpha + beta) : 0.0;
}

// The backward over the flat entries first, first + stride, ... of the whole batch: the body
// of the CUDA kernel (first = global thread index, stride = grid size), run by the CPU tests
// with a simulated grid (value_grad_grid_cpu).
FASTPID_HD inline void value_grad_strided(int64_t first, int64_t stride, const double* grad_value, const double* P,
                                          const double* dual1, const double* dual2, Shape shape, double* grad_P) {
  const int n1 = shape.n1, n2 = shape.n2, ny = shape.ny;
  const int64_t per = shape.size(), total = shape.batch * per;
  for (int64_t e = first; e < total; e += stride) {
    const int64_t b = e / per, i = e % per;
    const int x1 = int(i / (int64_t(n2) * ny)), x2 = int(i / ny % n2), y = int(i % ny);
    grad_P[e] = value_grad_entry(grad_value[b], P[e], dual1[(b * n1 + x1) * ny + y], dual2[(b * n2 + x2) * ny + y]);
  }
}

// Closed-form proxy: the conditional-independence coupling Q0 = P(x1,y) P(x2,y) / P(y),
// with the dual point alpha = log P(y|x1), beta = log P(x2|y) as its certificate.
void proxy_cpu(const double* P, Shape shape, SolverOptions options, SolveOutputs out,
               int num_threads);

// Refinement (refine.hpp): iterative scaling from the proxy, then a semismooth Newton
// augmented-Lagrangian method, memory linear in the size of P; same outputs and certificate.
void refine_cpu(const double* P, Shape shape, SolverOptions options, SolveOutputs out,
                int num_threads);

// The kernel bodies run by the CPU test executor with a team of `team_size` fibers in
// shuffled order, for tests of the GPU execution model, over a simulated grid of `workers`
// blocks walking the batch as the CUDA driver does. kernel: "proxy", "refine", "exact" (the
// interior-point method with the team algebra of exact_team_algebra.hpp), or the
// executor's self-tests "selftest_race" and "selftest_divergent" (bodies that break the team
// contract on purpose).
void team_executor_cpu(const char* kernel, const double* P, Shape shape, SolverOptions options,
                       SolveOutputs out, int team_size, uint64_t seed, int workers = 1);

// Exact solver: primal-dual interior point method on the dual problem (see DESIGN.md),
// each distribution stopping once its certified gap is <= options.tol.
void exact_cpu(const double* P, Shape shape, SolverOptions options, SolveOutputs out,
               int num_threads);

// The exact solver's Newton system at the start point of one distribution P (shape.batch = 1),
// factorised and solved by the CPU algebra (options.elimination, options.mixed_precision) for a
// fixed right-hand side: the residual evaluated from the triples over the right-hand side
// (tests of the algebra's assembly, factorisation and solves).
double exact_newton_residual_cpu(const double* P, Shape shape, SolverOptions options);

// Backward of the exact or proxy value: grad_P = -grad_value * (alpha(x1,y) + beta(x2,y))
// where P > 0, and 0 where P == 0 (see grad_cpu.cpp). dual1/dual2 as in SolveOutputs.
void value_grad_cpu(const double* grad_value, const double* P, const double* dual1, const double* dual2,
                    Shape shape, double* grad_P, int num_threads);

// Backward of decompose's differentiable outputs (the value and the four informations of
// informations_cpu) with respect to the entries of P as given, whose totals need not be 1:
// per distribution, with p = P / total and the incoming gradients of the value and of
// I(X1;Y), I(X2;Y), I(X1,X2;Y), H(Y) (grad_informations, (batch, 4)),
//   d/dp = -g_value (alpha + beta) + g_1 (log p(x1,y) - log p(x1) - log p(y) - 1)
//          + g_2 (log p(x2,y) - log p(x2) - log p(y) - 1) + g_12 (log p - log p(x1,x2) - log p(y) - 1)
//          - g_H (log p(y) + 1)                     where p > 0, and 0 where p == 0;
// grad_P = d/dp / total, and with `normalize` (the division by the total inside the graph)
// (d/dp - sum p d/dp) / total.
void pid_grad_cpu(const double* grad_value, const double* grad_informations, const double* P, const double* dual1,
                  const double* dual2, Shape shape, bool normalize, double* grad_P, int num_threads);

// value_grad_strided run for every thread of a simulated grid of `blocks` x `threads`, one after
// another (tests of the CUDA kernel's index arithmetic on the CPU).
void value_grad_grid_cpu(const double* grad_value, const double* P, const double* dual1, const double* dual2,
                         Shape shape, double* grad_P, int blocks, int threads);

// Per distribution, in nats: I(X1;Y), I(X2;Y), I(X1,X2;Y) and H(Y) into out[4 b .. 4 b + 3].
void informations_cpu(const double* P, Shape shape, double* out, int num_threads);

// For a batch of distributions of shape dims = (n1, ..., nk, ny) and subsets of the sources
// (bit i of masks[s]: source i is in subset s): H(X_S, Y) and H(X_S) in nats, out of shape
// (batch, subsets, 2); the conditional entropies H(Y | X_S) of the k-source decompositions
// are their differences (S empty: H(Y) and 0).
void subset_entropies_cpu(const double* P, int64_t batch, const std::vector<int>& dims, const std::vector<int>& masks,
                          double* out, int num_threads);

// The k-source union problem (union_cpu.cpp) for a batch of distributions of shape dims =
// (n1, ..., nk, ny), k >= 2, normalised: per distribution, max H_Q(Y | X1..Xk) in nats of a
// feasible coupling (value), its certified gap to the optimum (bound), whether that reached
// its tol (one per distribution), the iterations taken and, where dual is not null, the certificate's dual point: per
// distribution sum_i ni * ny alphas, source by source in (xi, y) order, -inf at the entries
// left out (P(xi, y) = 0), whose negated sum over a cell's sources is the derivative of the
// optimal value in P(x, y) (the envelope theorem).
// elimination: how the CPU algebra factorises the Newton systems (union_cpu.cpp): by counted
// cost, densely, or on the source with the most unknowns.
constexpr int kUnionEliminationAuto = 0, kUnionEliminationDense = 1, kUnionEliminationSource = 2;
void union_cpu(const double* P, int64_t batch, const std::vector<int>& dims, const double* tol, int max_iter, double* value,
               double* bound, uint8_t* converged, int32_t* iterations, double* dual, int num_threads,
               int elimination = kUnionEliminationAuto);

// union_cpu's algorithm with the team algebra (union_team_algebra.hpp), run by the CPU test
// executor: teams of team_size fibers, a simulated grid of `workers` blocks (tests).
void union_team_executor_cpu(const double* P, int64_t batch, const std::vector<int>& dims, const double* tol, int max_iter,
                             double* value, double* bound, uint8_t* converged, int32_t* iterations, double* dual,
                             int team_size, uint64_t seed, int workers);

// Per distribution (batch rows of `per` entries): its total and whether it has a NaN or
// infinite entry and a negative entry: the passes over the data that the input checks need
// (_backend.check_flat), in one.
void input_totals_cpu(const double* P, int64_t batch, int64_t per, double* total, bool* nonfinite, bool* negative);

int max_threads();

}  // namespace fastpid
