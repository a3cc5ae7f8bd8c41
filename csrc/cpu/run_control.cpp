// Thread counts and interruption of the CPU batch calls (run_control.hpp).
#include "run_control.hpp"

#include <pthread.h>

#include <atomic>

#ifdef FASTPID_WITH_OPENMP
#include <omp.h>
#endif

namespace fastpid {
namespace {

std::atomic<bool> g_forked{false};
std::atomic<StopPoll> g_poll{nullptr};

void mark_forked_child() { g_forked.store(true); }

// Registered when the module is loaded: a child forked afterwards (multiprocessing's fork start
// method, torch DataLoader workers) runs every call on one thread.
const int g_atfork_registered = pthread_atfork(nullptr, nullptr, mark_forked_child);

}  // namespace

bool forked_child() { return g_forked.load(); }

int cpu_threads(int requested) {
  (void)g_atfork_registered;
#ifdef FASTPID_WITH_OPENMP
  if (g_forked.load()) return 1;
  return requested > 0 ? requested : omp_get_max_threads();
#else
  (void)requested;
  return 1;
#endif
}

void set_stop_poll(StopPoll poll) { g_poll.store(poll); }
StopPoll stop_poll() { return g_poll.load(); }

}  // namespace fastpid
