// How a native batch call runs on the CPU: how many OpenMP threads it takes, and how it stops
// early when the user presses Ctrl-C.
#pragma once
#include <atomic>
#include <chrono>
#include <exception>
#include <thread>

namespace fastpid {

// The threads a batch call runs on: `requested` (<= 0: all OpenMP threads), and 1 in a process
// forked from one that had used OpenMP threads: libgomp's thread pool does not survive fork, and
// a parallel region of more than one thread in the child waits for ever for threads that are no
// longer there (a single-thread region starts none and is safe). Every OpenMP region of the
// library takes its count from here.
int cpu_threads(int requested);

// Whether this process is a child forked after the library was loaded.
bool forked_child();

// Asked by the calling thread of a batch call, at most every kStopPollSeconds, whether the call
// must stop; installed by the Python bindings (a pending KeyboardInterrupt: the poll runs
// Python's signal handlers, which leaves the exception set for the binding to raise).
using StopPoll = bool (*)();
void set_stop_poll(StopPoll poll);
StopPoll stop_poll();

// Thrown by a batch call that stopped on the poll, after its threads have left their loops.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "fastpid: interrupted"; }
};

constexpr double kStopPollSeconds = 0.05;

// One per batch call: every thread asks should_stop() before each distribution; the calling
// thread polls (others only read the flag), so a stop is seen within one distribution's time
// plus kStopPollSeconds. finish() throws Interrupted if the call was stopped.
class StopCheck {
 public:
  StopCheck() : caller_(std::this_thread::get_id()), poll_(stop_poll()), last_(std::chrono::steady_clock::now()) {}
  bool should_stop() {
    if (stopped_.load(std::memory_order_relaxed)) return true;
    if (poll_ == nullptr || std::this_thread::get_id() != caller_) return false;
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_).count() < kStopPollSeconds) return false;
    last_ = now;
    if (!poll_()) return false;
    stopped_.store(true, std::memory_order_relaxed);
    return true;
  }
  void finish() const {
    if (stopped_.load()) throw Interrupted();
  }

 private:
  std::thread::id caller_;
  StopPoll poll_;
  std::chrono::steady_clock::time_point last_;
  std::atomic<bool> stopped_{false};
};

}  // namespace fastpid
