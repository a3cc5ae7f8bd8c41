// Teams: the execution model every fastpid kernel body is written against (DESIGN.md section 4).
//
// A kernel body solves one distribution with a team of size() workers, each knowing its
// rank(). The body is a sequence of phases separated by sync(); inside a phase every rank
// works on its own share of the items (strided by rank), and reductions (sum, max) return the
// same value on every rank. The contract a body must keep, on every executor:
//   - uniform control flow: every rank executes the same sequence of sync() and reductions;
//   - no races inside a phase: a location written by one rank in a phase is neither written
//     nor read by another rank in that phase.
// Executors:
//   SerialTeam      size 1; the OpenMP driver runs one body per distribution and thread.
//   BlockTeam       a CUDA thread block (csrc/cuda), sync() = __syncthreads().
//   FiberTeam       the CPU test executor (csrc/cpu/team_executor.hpp): T ranks as fibers, each
//                   phase run for every rank in a shuffled order, so the very code the GPU runs
//                   - its striding, reductions and barriers - runs in every CPU test.
#pragma once
#include <cstdint>

#include "fastpid/pid.hpp"

namespace fastpid {

// Math helpers callable from host and device code.
FASTPID_HD inline double dmin(double a, double b) { return a < b ? a : b; }
FASTPID_HD inline double dmax(double a, double b) { return a > b ? a : b; }
FASTPID_HD inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
FASTPID_HD inline bool is_finite(double x) { return x - x == 0; }  // false for inf and NaN

// Executor for one rank on its own: the OpenMP driver gives each distribution one thread.
struct SerialTeam {
  static constexpr bool kSerial = true;
  FASTPID_HD int rank() const { return 0; }
  FASTPID_HD int size() const { return 1; }
  FASTPID_HD void sync() const {}
  FASTPID_HD double sum(double v) const { return v; }
  FASTPID_HD double max(double v) const { return v; }
};

// Reductions of a team that owns `scratch` (size() doubles, shared by the team): each rank
// writes its value, then every rank adds all values in rank order, so every rank gets the
// same result. The second sync() lets the scratch be reused by the next reduction.
template <class Team>
FASTPID_HD double scratch_sum(Team& team, double* scratch, double v) {
  scratch[team.rank()] = v;
  team.sync();
  double total = 0;
  for (int r = 0; r < team.size(); ++r) total += scratch[r];
  team.sync();
  return total;
}

template <class Team>
FASTPID_HD double scratch_max(Team& team, double* scratch, double v) {
  scratch[team.rank()] = v;
  team.sync();
  double best = scratch[0];
  for (int r = 1; r < team.size(); ++r) best = dmax(best, scratch[r]);
  team.sync();
  return best;
}

// Per-distribution outputs of a kernel body (pointers into the batch outputs of SolveOutputs;
// the optional ones may be null).
struct DistOutputs {
  double* value;
  double* bound;
  uint8_t* converged;
  int32_t* iterations;
  double* coupling;  // (n1, n2, ny)
  double* dual1;     // (n1, ny)
  double* dual2;     // (n2, ny)
};

FASTPID_HD inline DistOutputs outputs_of(const SolveOutputs& out, const Shape& s, int64_t b) {
  return {out.value + b, out.bound + b, out.converged + b, out.iterations + b,
          out.coupling ? out.coupling + b * s.size() : nullptr,
          out.dual1 ? out.dual1 + b * int64_t(s.n1) * s.ny : nullptr,
          out.dual2 ? out.dual2 + b * int64_t(s.n2) * s.ny : nullptr};
}

// One worker of `workers` walking the batch the way a block of the CUDA persistent grid does:
// distributions worker, worker + workers, ..., each solved by the whole team in the worker's
// own workspace, which is reused (not cleared) from one distribution to the next. The CUDA
// driver runs this with worker = blockIdx.x; the CPU test executor runs it for every worker
// of a simulated grid, so the grid walk is tested on the CPU too.
template <class Kernel, class Team>
FASTPID_HD void walk_batch(Team& team, int64_t worker, int64_t workers, const double* P, Shape shape, SolverOptions opt,
                           const SolveOutputs& out, double* workspace) {
  for (int64_t b = worker; b < shape.batch; b += workers) {
    Kernel::run(team, P + b * shape.size(), shape, opt, workspace, outputs_of(out, shape, b));
    team.sync();  // the next distribution's first phase must not overwrite what this one still reads
  }
}

}  // namespace fastpid
