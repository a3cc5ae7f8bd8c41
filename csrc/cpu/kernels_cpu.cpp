// The OpenMP drivers of the team kernel bodies (proxy.hpp, refine.hpp), and their runs on the
// CPU test executor.
#include <stdexcept>
#include <string>

#include "batch_cpu.hpp"
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

void team_executor_cpu(const char* kernel, const double* P, Shape shape, SolverOptions options, SolveOutputs out,
                       int team_size, uint64_t seed) {
  const std::string name(kernel);
  if (name == "proxy")
    run_batch_fibers<ProxyKernel>(P, shape, options, out, team_size, seed);
  else if (name == "refine")
    run_batch_fibers<RefineKernel>(P, shape, options, out, team_size, seed);
  else
    throw std::invalid_argument("team executor: unknown kernel '" + name + "' (proxy or refine)");
}

}  // namespace fastpid
