// Host-side launchers of the CUDA executor (compiled only when FASTPID_WITH_CUDA).
// All pointers are device pointers; `stream` is the caller's cudaStream_t.
#pragma once
#include <cstdint>
#include <string>

#include "fastpid/pid.hpp"
#include "fastpid/union.hpp"

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

// What the compiled kernel takes per thread and block (cudaFuncGetAttributes), for the launch
// plans that benchmarks record: kernel "proxy", "refine", "exact", "union" or "value_grad".
struct CudaKernelInfo {
  int registers = 0;         // per thread
  int64_t local_bytes = 0;   // per thread: spills and local arrays
  int64_t shared_bytes = 0;  // static shared memory per block
  int max_threads = 0;       // the most threads per block a launch may have
  int binary_version = 0;    // the SASS architecture loaded (90: sm_90)
};
CudaKernelInfo cuda_kernel_info(const std::string& kernel);

// Enqueues the kernel on `stream`; returns without synchronising.
void cuda_launch(const std::string& kernel, const double* P, Shape shape, SolverOptions opt, SolveOutputs out,
                 double* workspace, CudaPlan plan, void* stream);

// The k-source solver (union.hpp): its launch plan on the current device, and its launch on
// `stream` (outputs as union_cpu's, device pointers; out.tol: one tolerance per distribution).
CudaPlan cuda_union_plan(const UnionShape& shape);
void cuda_union_launch(const double* P, const UnionShape& shape, const UnionOutputs& out, double* workspace, CudaPlan plan,
                       void* stream);

// Backward of the value on the device (value_grad_entry per entry of the batch), on `stream`.
void cuda_value_grad(const double* grad_value, const double* P, const double* dual1, const double* dual2, Shape shape,
                     double* grad_P, void* stream);

}  // namespace fastpid
