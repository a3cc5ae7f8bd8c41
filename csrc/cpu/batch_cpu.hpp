// The OpenMP driver of every kernel body: one SerialTeam per distribution, the batch spread
// over the threads, one workspace per thread.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "fastpid/team.hpp"
#include "run_control.hpp"

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {

// Storage of the calling thread kept between calls, up to kKeptDoubles per kind: one 20x20x6
// exact solve on fresh memory spent about 0.15 ms of its 1.25 in the kernel's page faults (its
// workspace and Newton matrices are allocated by mmap and returned on every call), against
// 1.1 ms per distribution in a batch. Larger storage is allocated per call and given back:
// a solve that needs it takes far longer than its page faults. The solvers write every entry
// before they read it (tested with the workspace filled with NaN), so kept storage is not
// cleared between calls.
constexpr int64_t kKeptDoubles = int64_t(1) << 21;  // 16 MiB

inline int64_t held_doubles(const std::vector<double>& v) { return int64_t(v.capacity()); }

// The thread's kept object of type T (a workspace vector, an algebra), borrowed for one call;
// a second borrower on the same thread (none today) gets a fresh object that is freed at the
// end, and the kept one is freed once it holds more than kKeptDoubles (held_doubles(T)).
template <class T>
class KeptPerThread {
 public:
  KeptPerThread() {
    Slot& slot = thread_slot();
    if (!slot.in_use) {
      slot.in_use = borrowed_ = true;
      if (!slot.object) slot.object = std::make_unique<T>();
      object_ = slot.object.get();
    } else {
      own_ = std::make_unique<T>();
      object_ = own_.get();
    }
  }
  ~KeptPerThread() {
    if (!borrowed_) return;
    Slot& slot = thread_slot();
    if (held_doubles(*slot.object) > kKeptDoubles) slot.object.reset();
    slot.in_use = false;
  }
  KeptPerThread(const KeptPerThread&) = delete;
  KeptPerThread& operator=(const KeptPerThread&) = delete;
  T& operator*() { return *object_; }
  T* operator->() { return object_; }

 private:
  struct Slot {
    std::unique_ptr<T> object;
    bool in_use = false;
  };
  static Slot& thread_slot() {
    thread_local Slot slot;
    return slot;
  }
  std::unique_ptr<T> own_;
  T* object_ = nullptr;
  bool borrowed_ = false;
};

// A workspace of at least n doubles from the thread's kept storage (contents undefined).
class ThreadWorkspace {
 public:
  explicit ThreadWorkspace(int64_t n) {
    n = std::max<int64_t>(n, 1);
    if (int64_t(kept_->size()) < n) kept_->resize(size_t(n));
  }
  double* data() { return kept_->data(); }

 private:
  KeptPerThread<std::vector<double>> kept_;
};

template <class Kernel>
void run_batch_cpu(const double* P, Shape shape, SolverOptions opt, SolveOutputs out, int num_threads) {
  const int64_t per = shape.size();
  const int64_t workspace = Kernel::workspace_doubles(shape);
  StopCheck stop;
#ifdef FASTPID_WITH_OPENMP
  num_threads = cpu_threads(num_threads);
  // Chunks small enough to balance distributions that take very different times.
  const int chunk = int(std::max<int64_t>(1, std::min<int64_t>(64, shape.batch / (int64_t(num_threads) * 8))));
#pragma omp parallel num_threads(num_threads)
#endif
  {
    ThreadWorkspace ws(workspace);
    SerialTeam team;
#ifdef FASTPID_WITH_OPENMP
#pragma omp for schedule(dynamic, chunk)
#endif
    for (int64_t b = 0; b < shape.batch; ++b) {
      if (stop.should_stop()) continue;  // the distributions left after a Ctrl-C are skipped
      Kernel::run(team, P + b * per, shape, opt, ws.data(), outputs_of(out, shape, b));
    }
  }
  stop.finish();
}

}  // namespace fastpid
