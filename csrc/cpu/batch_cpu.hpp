// The OpenMP driver of every kernel body: one SerialTeam per distribution, the batch spread
// over the threads, one workspace per thread.
#pragma once
#include <algorithm>
#include <vector>

#include "fastpid/team.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {

template <class Kernel>
void run_batch_cpu(const double* P, Shape shape, SolverOptions opt, SolveOutputs out, int num_threads) {
  const int64_t per = shape.size();
  const int64_t workspace = Kernel::workspace_doubles(shape);
#ifdef FASTPID_WITH_OPENMP
  if (num_threads <= 0) num_threads = omp_get_max_threads();
  // Chunks small enough to balance distributions that take very different times.
  const int chunk = int(std::max<int64_t>(1, std::min<int64_t>(64, shape.batch / (int64_t(num_threads) * 8))));
#pragma omp parallel num_threads(num_threads)
#endif
  {
    std::vector<double> ws(size_t(std::max<int64_t>(workspace, 1)));
    SerialTeam team;
#ifdef FASTPID_WITH_OPENMP
#pragma omp for schedule(dynamic, chunk)
#endif
    for (int64_t b = 0; b < shape.batch; ++b)
      Kernel::run(team, P + b * per, shape, opt, ws.data(), outputs_of(out, shape, b));
  }
}

}  // namespace fastpid
