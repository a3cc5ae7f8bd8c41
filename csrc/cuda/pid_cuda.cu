// CUDA executor of fastpid's kernel bodies (proxy.hpp, refine.hpp, exact.hpp with the team
// algebra of exact_team_algebra.hpp): the very code the CPU test executor runs, with a thread
// block as the team. A persistent grid of blocks walks the batch, each
// block with its own workspace in global memory; launched on the caller's stream; every
// launch is checked. Inputs and outputs are device pointers owned by the Python layer (torch).
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "fastpid/exact_team_algebra.hpp"
#include "fastpid/pid.hpp"
#include "fastpid/pid_cuda.hpp"
#include "fastpid/proxy.hpp"
#include "fastpid/refine.hpp"
#include "fastpid/union_team_algebra.hpp"

namespace fastpid {
namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("fastpid CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

// The team of a thread block. blockDim.x must be a multiple of 32 (whole warps).
// Reductions: a fixed shuffle tree within each warp, then the warp totals added in warp
// order by every thread, so every thread gets the same, reproducible value.
struct BlockTeam {
  static constexpr bool kSerial = false;
  double* scratch;  // shared, >= 32 doubles
  FASTPID_HD int rank() const {
#ifdef __CUDA_ARCH__
    return int(threadIdx.x);
#else
    return 0;
#endif
  }
  FASTPID_HD int size() const {
#ifdef __CUDA_ARCH__
    return int(blockDim.x);
#else
    return 1;
#endif
  }
  FASTPID_HD void sync() const {
#ifdef __CUDA_ARCH__
    __syncthreads();
#endif
  }
  FASTPID_HD double sum(double v) const {
#ifdef __CUDA_ARCH__
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    double total = 0;
    for (int w = 0; w < int(blockDim.x >> 5); ++w) total += scratch[w];
    __syncthreads();
    return total;
#else
    return v;
#endif
  }
  FASTPID_HD double max(double v) const {
#ifdef __CUDA_ARCH__
    for (int offset = 16; offset > 0; offset >>= 1) v = dmax(v, __shfl_down_sync(0xffffffffu, v, offset));
    if ((threadIdx.x & 31) == 0) scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    double best = scratch[0];
    for (int w = 1; w < int(blockDim.x >> 5); ++w) best = dmax(best, scratch[w]);
    __syncthreads();
    return best;
#else
    return v;
#endif
  }
};

// Every launch has at most kMaxTeam threads per block (cuda_plan: 128 or 256), so the compiler
// may give each thread up to 65536 / kMaxTeam = 256 registers and no launch can fail for lack of
// them; ptxas reports what each kernel takes (benchmarks/gpu_run.sh keeps those lines).
constexpr int kMaxTeam = 256;

template <class Kernel>
__global__ void __launch_bounds__(kMaxTeam) batch_kernel(const double* __restrict__ P, Shape shape, SolverOptions opt, SolveOutputs out,
                             double* __restrict__ workspace, int64_t workspace_per_block) {
  __shared__ double scratch[32];
  BlockTeam team{scratch};
  walk_batch<Kernel>(team, blockIdx.x, gridDim.x, P, shape, opt, out, workspace + int64_t(blockIdx.x) * workspace_per_block);
}

template <class Kernel>
CudaPlan plan_for(Shape shape, int threads) {
  CudaPlan plan;
  plan.threads = threads;
  plan.workspace_per_block = std::max<int64_t>(Kernel::workspace_doubles(shape), 1);
  int device = 0, sms = 1, per_sm = 1;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, batch_kernel<Kernel>, threads, 0),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  int64_t blocks = std::min<int64_t>(shape.batch, int64_t(sms) * std::max(per_sm, 1));
  // The workspace of every resident block is allocated at once (by the caller, from torch):
  // at most half of the free device memory, so that large shapes run with fewer blocks
  // instead of failing (the exact solver's Schur complement is (min(n1, n2) ny)^2 doubles).
  size_t free_bytes = 0, total_bytes = 0;
  check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  const int64_t affordable = int64_t(free_bytes / 2 / sizeof(double)) / plan.workspace_per_block;
  plan.blocks = int(std::max<int64_t>(1, std::min<int64_t>(blocks, affordable)));
  return plan;
}

template <class Kernel>
void launch(const double* P, Shape shape, SolverOptions opt, SolveOutputs out, double* workspace, CudaPlan plan,
            void* stream) {
  if (shape.batch == 0) return;
  if (plan.threads % 32 != 0 || plan.threads < 32 || plan.threads > kMaxTeam)
    throw std::invalid_argument("CUDA team size must be a multiple of 32 in 32.." + std::to_string(kMaxTeam));
  batch_kernel<Kernel><<<dim3(unsigned(plan.blocks)), dim3(unsigned(plan.threads)), 0, static_cast<cudaStream_t>(stream)>>>(
      P, shape, opt, out, workspace, plan.workspace_per_block);
  check(cudaGetLastError(), "kernel launch");
}

// The k-source solver (union.hpp with union_team_algebra.hpp): one block per distribution, a
// persistent grid walking the batch as batch_kernel does.
__global__ void __launch_bounds__(kMaxTeam) union_batch_kernel(const double* __restrict__ P, UnionShape shape, UnionOutputs out,
                                                             double* __restrict__ workspace, int64_t workspace_per_block) {
  __shared__ double scratch[32];
  BlockTeam team{scratch};
  union_walk_batch<BlockTeam, UnionTeamAlgebra<BlockTeam>>(team, blockIdx.x, gridDim.x, P, shape, out,
                                                           workspace + int64_t(blockIdx.x) * workspace_per_block);
}

constexpr int kGradThreads = 256;

__global__ void __launch_bounds__(kGradThreads) value_grad_kernel(const double* __restrict__ grad_value, const double* __restrict__ P,
                                  const double* __restrict__ dual1, const double* __restrict__ dual2, Shape shape,
                                  double* __restrict__ grad_P) {
  value_grad_strided(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, int64_t(gridDim.x) * blockDim.x, grad_value, P,
                     dual1, dual2, shape, grad_P);
}

}  // namespace

void cuda_value_grad(const double* grad_value, const double* P, const double* dual1, const double* dual2, Shape shape,
                     double* grad_P, void* stream) {
  const int64_t total = shape.batch * shape.size();
  if (total == 0) return;
  const int threads = kGradThreads;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65535);
  value_grad_kernel<<<dim3(unsigned(blocks)), dim3(threads), 0, static_cast<cudaStream_t>(stream)>>>(
      grad_value, P, dual1, dual2, shape, grad_P);
  check(cudaGetLastError(), "value_grad launch");
}

template <class F>
CudaKernelInfo info_of(F* kernel) {
  cudaFuncAttributes attr{};
  check(cudaFuncGetAttributes(&attr, kernel), "cudaFuncGetAttributes");
  CudaKernelInfo info;
  info.registers = attr.numRegs;
  info.local_bytes = int64_t(attr.localSizeBytes);
  info.shared_bytes = int64_t(attr.sharedSizeBytes);
  info.max_threads = attr.maxThreadsPerBlock;
  info.binary_version = attr.binaryVersion;
  return info;
}

CudaKernelInfo cuda_kernel_info(const std::string& kernel) {
  if (kernel == "proxy") return info_of(batch_kernel<ProxyKernel>);
  if (kernel == "refine") return info_of(batch_kernel<RefineKernel>);
  if (kernel == "exact") return info_of(batch_kernel<ExactKernel>);
  if (kernel == "value_grad") return info_of(value_grad_kernel);
  if (kernel == "union") return info_of(union_batch_kernel);
  throw std::invalid_argument("unknown CUDA kernel '" + kernel + "' (proxy, refine, exact, union or value_grad)");
}

CudaPlan cuda_union_plan(const UnionShape& shape) {
  CudaPlan plan;
  plan.threads = shape.cells > 256 ? 256 : 128;
  plan.workspace_per_block = UnionPoint<BlockTeam, UnionTeamAlgebra<BlockTeam>>::workspace_doubles(shape) +
                             UnionTeamAlgebra<BlockTeam>::workspace_doubles(shape) + 1;
  int device = 0, sms = 1, per_sm = 1;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, union_batch_kernel, plan.threads, 0),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  const int64_t blocks = std::min<int64_t>(shape.batch, int64_t(sms) * std::max(per_sm, 1));
  size_t free_bytes = 0, total_bytes = 0;  // at most half the free memory for the workspaces (see plan_for)
  check(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  const int64_t affordable = int64_t(free_bytes / 2 / sizeof(double)) / plan.workspace_per_block;
  plan.blocks = int(std::max<int64_t>(1, std::min<int64_t>(blocks, affordable)));
  return plan;
}

void cuda_union_launch(const double* P, const UnionShape& shape, const UnionOutputs& out, double* workspace, CudaPlan plan,
                       void* stream) {
  if (shape.batch == 0) return;
  if (plan.threads % 32 != 0 || plan.threads < 32 || plan.threads > kMaxTeam)
    throw std::invalid_argument("CUDA team size must be a multiple of 32 in 32.." + std::to_string(kMaxTeam));
  union_batch_kernel<<<dim3(unsigned(plan.blocks)), dim3(unsigned(plan.threads)), 0, static_cast<cudaStream_t>(stream)>>>(
      P, shape, out, workspace, plan.workspace_per_block);
  check(cudaGetLastError(), "union kernel launch");
}

CudaPlan cuda_plan(const std::string& kernel, Shape shape) {
  if (kernel == "proxy") return plan_for<ProxyKernel>(shape, 128);
  if (kernel == "refine") return plan_for<RefineKernel>(shape, shape.n1 * shape.n2 > 256 ? 256 : 128);
  if (kernel == "exact") return plan_for<ExactKernel>(shape, shape.n1 * shape.n2 > 256 ? 256 : 128);
  throw std::invalid_argument("unknown CUDA kernel '" + kernel + "' (proxy, refine or exact)");
}

void cuda_launch(const std::string& kernel, const double* P, Shape shape, SolverOptions opt, SolveOutputs out,
                 double* workspace, CudaPlan plan, void* stream) {
  if (kernel == "proxy")
    launch<ProxyKernel>(P, shape, opt, out, workspace, plan, stream);
  else if (kernel == "refine")
    launch<RefineKernel>(P, shape, opt, out, workspace, plan, stream);
  else if (kernel == "exact")
    launch<ExactKernel>(P, shape, opt, out, workspace, plan, stream);
  else
    throw std::invalid_argument("unknown CUDA kernel '" + kernel + "' (proxy, refine or exact)");
}

}  // namespace fastpid
