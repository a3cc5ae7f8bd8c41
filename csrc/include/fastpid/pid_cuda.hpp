// Host-side launchers of the CUDA kernels (compiled only when FASTPID_WITH_CUDA).
// All pointers are device pointers; `stream` is the caller's cudaStream_t.
#pragma once
#include <cstdint>

#include "fastpid/pid.hpp"

namespace fastpid {

// Doubles of device scratch memory proxy_cuda needs for a batch of this shape.
int64_t proxy_cuda_scratch_doubles(Shape shape);

// Closed-form proxy of every distribution, one thread block per distribution.
void proxy_cuda(const double* P, Shape shape, SolverOptions options, SolveOutputs out, double* scratch,
                void* stream);

}  // namespace fastpid
