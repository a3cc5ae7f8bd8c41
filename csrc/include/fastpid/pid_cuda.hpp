// Host-side launchers of the CUDA executor (compiled only when FASTPID_WITH_CUDA).
// All pointers are device pointers; `stream` is the caller's cudaStream_t.
#pragma once
#include <cstdint>
#include <string>

#include "fastpid/pid.hpp"

namespace fastpid {

// How a batch is launched: a persistent grid of `blocks` blocks of `threads` threads, each
// block with `workspace_per_block` doubles of device workspace (the caller allocates
// blocks * workspace_per_block doubles).
struct CudaPlan {
  int blocks = 1;
  int threads = 128;
  int64_t workspace_per_block = 1;
};

// kernel: "proxy", "refine" or "exact" (the kernel bodies of proxy.hpp, refine.hpp and
// exact_team_algebra.hpp).
CudaPlan cuda_plan(const std::string& kernel, Shape shape);

// Enqueues the kernel on `stream`; returns without synchronising.
void cuda_launch(const std::string& kernel, const double* P, Shape shape, SolverOptions opt, SolveOutputs out,
                 double* workspace, CudaPlan plan, void* stream);

// Backward of the value on the device (value_grad_entry per entry of the batch), on `stream`.
void cuda_value_grad(const double* grad_value, const double* P, const double* dual1, const double* dual2, Shape shape,
                     double* grad_P, void* stream);

}  // namespace fastpid
