// The CPU test executor of kernel bodies (DESIGN.md section 4): runs one body with a team of
// T ranks, each rank a fiber (its own stack, as a GPU thread has its own registers). At every
// sync() all ranks stop; the next phase then runs every rank, in a freshly shuffled order, up
// to its next sync(). A body that writes a location from two ranks in one phase, or reads in
// a phase what another rank writes in it, gives order-dependent results, which the tests
// compare against the OpenMP path. Ranks that disagree on the number of sync() calls (non-
// uniform control flow, a deadlock on the GPU) raise std::logic_error.
#pragma once
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "fastpid/team.hpp"

namespace fastpid {

class FiberExecutor;

struct FiberTeam {
  static constexpr bool kSerial = false;
  FiberExecutor* executor;
  int r;
  int rank() const { return r; }
  int size() const;
  void sync();
  double sum(double v);
  double max(double v);
};

class FiberExecutor {
 public:
  FiberExecutor(int team_size, uint64_t seed);
  ~FiberExecutor();
  FiberExecutor(const FiberExecutor&) = delete;
  FiberExecutor& operator=(const FiberExecutor&) = delete;

  // Runs body(team) for every rank of the team, phase by phase, until every rank returns.
  void run(const std::function<void(FiberTeam&)>& body);
  int size() const { return int(fibers_.size()); }

 private:
  friend struct FiberTeam;
  struct Fiber;
  static void entry();
  void yield_from(int rank);

  std::vector<std::unique_ptr<Fiber>> fibers_;
  std::vector<double> scratch_;
  std::mt19937_64 rng_;
  const std::function<void(FiberTeam&)>* body_ = nullptr;
  int starting_ = -1;
  struct MainContext;
  std::unique_ptr<MainContext> main_;
};

inline int FiberTeam::size() const { return executor->size(); }
inline void FiberTeam::sync() { executor->yield_from(r); }
inline double FiberTeam::sum(double v) { return scratch_sum(*this, executor->scratch_.data(), v); }
inline double FiberTeam::max(double v) { return scratch_max(*this, executor->scratch_.data(), v); }

// Runs Kernel on every distribution of a batch with the fiber executor (test use only), as the
// CUDA driver does: a grid of `workers` simulated blocks, each walking the batch with its own
// slice of one workspace (walk_batch), the blocks one after another.
template <class Kernel>
void run_batch_fibers(const double* P, Shape shape, SolverOptions opt, SolveOutputs out, int team_size, uint64_t seed,
                      int workers) {
  FiberExecutor executor(team_size, seed);
  const int64_t per_worker = Kernel::workspace_doubles(shape) + 1;
  std::vector<double> ws(size_t(per_worker * workers));
  for (int w = 0; w < workers; ++w)
    executor.run([&](FiberTeam& team) { walk_batch<Kernel>(team, w, workers, P, shape, opt, out, ws.data() + w * per_worker); });
}

}  // namespace fastpid
