// The OpenMP drivers of the team kernel bodies (proxy.hpp, refine.hpp), and the runs of every
// kernel body the CUDA driver runs (proxy, refine, exact with the team algebra) on the CPU test
// executor.
#include <stdexcept>
#include <string>

#include "batch_cpu.hpp"
#include "fastpid/exact_team_algebra.hpp"
#include "fastpid/proxy.hpp"
#include "fastpid/refine.hpp"
#include "team_executor.hpp"

namespace fastpid {

void proxy_cpu(const double* P, Shape shape, SolverOptions options, SolveOutputs out, int num_threads) {
  run_batch_cpu<ProxyKernel>(P, shape, options, out, num_threads);
}

void refine_cpu(const double* P, Shape shape, SolverOptions options, SolveOutputs out, int num_threads) {
  run_batch_cpu<RefineKernel>(P, shape, options, out, num_threads);
}

namespace {

// Self-tests of the executor, written to break the team contract on purpose: the tests check
// that the executor exposes each fault (see tests/test_team.py).
struct SelftestRaceKernel {  // every rank writes one location in the same phase
  static int64_t workspace_doubles(Shape) { return 1; }
  template <class Team>
  static void run(Team& team, const double*, Shape, SolverOptions, double* ws, DistOutputs out) {
    ws[0] = team.rank();
    team.sync();
    if (team.rank() == 0) *out.value = ws[0];  // the last writer's rank: depends on the order
    team.sync();
  }
};

struct SelftestDivergentKernel {  // rank 0 takes one more sync() than the others
  static int64_t workspace_doubles(Shape) { return 1; }
  template <class Team>
  static void run(Team& team, const double*, Shape, SolverOptions, double*, DistOutputs out) {
    if (team.rank() == 0) team.sync();
    *out.value = 0;
  }
};

}  // namespace

void team_executor_cpu(const char* kernel, const double* P, Shape shape, SolverOptions options, SolveOutputs out,
                       int team_size, uint64_t seed, int workers) {
  const std::string name(kernel);
  if (name == "proxy")
    run_batch_fibers<ProxyKernel>(P, shape, options, out, team_size, seed, workers);
  else if (name == "refine")
    run_batch_fibers<RefineKernel>(P, shape, options, out, team_size, seed, workers);
  else if (name == "exact")
    run_batch_fibers<ExactKernel>(P, shape, options, out, team_size, seed, workers);
  else if (name == "selftest_race")
    run_batch_fibers<SelftestRaceKernel>(P, shape, options, out, team_size, seed, workers);
  else if (name == "selftest_divergent")
    run_batch_fibers<SelftestDivergentKernel>(P, shape, options, out, team_size, seed, workers);
  else
    throw std::invalid_argument("team executor: unknown kernel '" + name + "' (proxy, refine, exact, selftest_race or selftest_divergent)");
}

}  // namespace fastpid
