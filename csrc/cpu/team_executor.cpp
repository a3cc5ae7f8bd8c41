// Fibers on ucontext (POSIX, available on every Linux and macOS libc): the executor switches
// between the scheduler and one rank at a time, so a phase's ranks run strictly one after the
// other in the order the scheduler draws.
#include "team_executor.hpp"

#include <ucontext.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

namespace fastpid {

namespace {
constexpr size_t kStackBytes = 256 * 1024;
FiberExecutor* g_current = nullptr;  // the executor whose fiber is being entered (single-threaded use)
}  // namespace

struct FiberExecutor::MainContext {
  ucontext_t context;
};

struct FiberExecutor::Fiber {
  ucontext_t context;
  std::vector<char> stack;
  enum State { Ready, AtSync, Done } state = Ready;
  int64_t syncs = 0;
};

FiberExecutor::FiberExecutor(int team_size, uint64_t seed) : rng_(seed), main_(new MainContext) {
  if (team_size < 1) throw std::invalid_argument("team size must be >= 1");
  for (int r = 0; r < team_size; ++r) {
    fibers_.emplace_back(new Fiber);
    fibers_.back()->stack.resize(kStackBytes);
  }
  scratch_.assign(size_t(team_size), 0.0);
}

FiberExecutor::~FiberExecutor() = default;

void FiberExecutor::entry() {
  FiberExecutor* self = g_current;
  const int rank = self->starting_;
  FiberTeam team{self, rank};
  (*self->body_)(team);
  self->fibers_[size_t(rank)]->state = Fiber::Done;
  // Returning resumes uc_link, the scheduler.
}

void FiberExecutor::yield_from(int rank) {
  Fiber& f = *fibers_[size_t(rank)];
  f.state = Fiber::AtSync;
  ++f.syncs;
  swapcontext(&f.context, &main_->context);
}

void FiberExecutor::run(const std::function<void(FiberTeam&)>& body) {
  body_ = &body;
  const int T = size();
  for (int r = 0; r < T; ++r) {
    Fiber& f = *fibers_[size_t(r)];
    f.state = Fiber::Ready;
    f.syncs = 0;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.data();
    f.context.uc_stack.ss_size = f.stack.size();
    f.context.uc_link = &main_->context;
    makecontext(&f.context, &FiberExecutor::entry, 0);
  }
  std::vector<int> order(static_cast<size_t>(T));
  std::iota(order.begin(), order.end(), 0);
  for (;;) {
    std::shuffle(order.begin(), order.end(), rng_);
    for (int r : order) {
      Fiber& f = *fibers_[size_t(r)];
      if (f.state == Fiber::Done) continue;
      g_current = this;
      starting_ = r;
      f.state = Fiber::Ready;
      swapcontext(&main_->context, &f.context);
    }
    int done = 0;
    for (auto& f : fibers_) done += f->state == Fiber::Done;
    if (done == T) break;
    // Every rank must have stopped at the same sync(): on a GPU anything else deadlocks or races.
    const int64_t syncs = fibers_[0]->syncs;
    for (int r = 0; r < T; ++r)
      if (fibers_[size_t(r)]->state == Fiber::Done || fibers_[size_t(r)]->syncs != syncs)
        throw std::logic_error("team executor: ranks disagree on sync() (rank " + std::to_string(r) + " at sync " +
                               std::to_string(fibers_[size_t(r)]->syncs) + ", rank 0 at sync " +
                               std::to_string(syncs) + "): control flow is not uniform across the team");
  }
  body_ = nullptr;
}

}  // namespace fastpid
